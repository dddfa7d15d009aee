/*
 * xnu_shim.h - TEST CODE: a fake of the XNU KPIs that kext/kextlog_kctl.c
 * uses, so that the real glue runs on Linux under the sanitizers.
 *
 * tests/xnu_shim/ holds stand-in headers with the SDK's names and signatures
 * (the Mach-O compile of the glue against the real SDK keeps them honest);
 * tests/xnu_shim.c implements them as a small fake kernel, and this header
 * is how a test drives that kernel and looks inside it: clients that
 * connect, write mbuf chains and read what the kext enqueued; a clock and a
 * task the test sets; allocations that fail on demand; a timer fired by
 * hand; the registered sysctls, read and written by name.
 *
 * Single-threaded: the test is the only thread, as the kernel's callers.
 */
#ifndef XNU_SHIM_H
#define XNU_SHIM_H

#include <kern/thread_call.h>
#include <sys/kern_control.h>
#include <sys/sysctl.h>

#include "kextlog_core.h"

#define KEXTLOG_SHIM_CLIENTS 4u
#define KEXTLOG_SHIM_OIDS    64u

/* A socket connected, or connecting, to the control. */
struct kextlog_shim_client {
	bool     attached;        /* in the control's list: ctl_deregister sees it */
	bool     connected;       /* the kext accepted it */
	uint32_t unit;
	void    *unitinfo;
	uint8_t *received;        /* every byte the kext enqueued for it, in order */
	size_t   received_length;
	uint32_t enqueues;
	uint32_t enqueues_eor;    /* with CTL_DATA_EOR: one datagram each */
	uint32_t split_datagrams; /* datagrams that were not whole frames */
	size_t   largest_enqueue;
};

struct kextlog_shim {
	/* The kernel control. */
	bool                registered;
	struct kern_ctl_reg registration;   /* what the kext registered */
	errno_t             register_error; /* ctl_register fails with it */
	struct kextlog_shim_client clients[KEXTLOG_SHIM_CLIENTS];
	size_t              room;           /* free space in a client's receive buffer */
	errno_t             enqueue_error;  /* ctl_enqueuedata fails with it (ENOMEM) */
	uint32_t            enqueue_failures;
	uint32_t            bad_units;      /* enqueues to a unit that is not attached */

	/* mbufs, from client writes. */
	int                 live_mbufs;
	size_t              largest_copy;   /* longest mbuf_copydata */

	/* Time.  mach_absolute_time() counts three ticks per ns, so that a
	 * missing conversion shows. */
	uint64_t            wall_ns;
	uint64_t            mono_ns;
	uint32_t            sleeps;         /* msleep calls; each lets 10 ms pass */

	/* The current task: task, or *task_source when set. */
	struct kextlog_task task;
	const struct kextlog_task *task_source;

	/* Memory: OSMalloc fills blocks with 0xA5 and checks OSFree's size. */
	bool                osmalloc_fails;
	bool                noblock_fails;
	int                 live_blocks;
	int                 live_tags;
	int                 live_groups;
	int                 live_locks;
	uint32_t            bad_frees;

	/* The timer (one thread call at most, as the kext has). */
	int                 live_calls;
	bool                timer_pending;
	uint64_t            timer_deadline; /* in mach_absolute_time ticks */
	uint32_t            timer_fires;
	bool                cancel_misses;  /* thread_call_cancel finds the call already begun */

	/* sysctl */
	struct sysctl_oid  *oids[KEXTLOG_SHIM_OIDS];
	uint32_t            oid_count;
	uint32_t            bad_oids;       /* registrations XNU would refuse, bad unregistrations */

	/* Boot: a boot-arg and kern.bootsessionuuid (NULL: absent). */
	const char         *boot_arg;
	uint32_t            boot_arg_value;
	const char         *boot_session;
	uint8_t             uuids;          /* uuid_generate_random calls */

	/* The kernel log. */
	char                printed[16384];
	size_t              printed_length;
};

extern struct kextlog_shim kextlog_shim;

/* A fresh kernel: no control, no client, clock and task at known values,
 * unlimited room; frees what the last test left. */
void kextlog_shim_reset(void);

/* A client connects with socket type SOCK_DGRAM or SOCK_STREAM, as root or
 * not; returns what connect(2) would (0, ENOENT, EPROTOTYPE, EPERM, or the
 * kext's refusal) and the unit it got. */
int kextlog_shim_connect(int type, bool root, uint32_t *unit);

/* The client closes its socket. */
void kextlog_shim_disconnect(uint32_t unit);

/* The client writes length bytes, as a chain of mbufs of piece bytes (0:
 * one mbuf); returns what the kext's ctl_send returned. */
int kextlog_shim_write(uint32_t unit, const void *data, size_t length, size_t piece);

struct kextlog_shim_client *kextlog_shim_client(uint32_t unit);

/* Runs the pending timer call, as the kernel would when it is due; false
 * when none is pending. */
bool kextlog_shim_fire_timer(void);

/* Reads (a quad or an int) or writes (an int) a sysctl by its full name,
 * such as "debug.kextlog_test.delivered"; returns the handler's errno. */
int kextlog_shim_sysctl_read(const char *name, uint64_t *value);
int kextlog_shim_sysctl_write(const char *name, int value);
const struct sysctl_oid *kextlog_shim_sysctl_find(const char *name);

#endif /* XNU_SHIM_H */
