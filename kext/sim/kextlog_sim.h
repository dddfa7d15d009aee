/*
 * kextlog_sim.h - the host simulator: the portable core, driven by the
 * KAuth-like workload, serving the kext's protocol on a Unix socket.
 *
 * It stands in for the loaded kext on machines without one.  A seqpacket
 * socket plays a SOCK_DGRAM kernel control (message boundaries), a stream
 * socket a SOCK_STREAM one; one client at a time, as the kext's control.
 * Two threads: one generates records at the configured rate (the kext's
 * logging threads), one serves the client (the kext's control callbacks and
 * timer).  `kextlog simulate` drives it through cffi.
 */
#ifndef KEXTLOG_SIM_H
#define KEXTLOG_SIM_H

#include "kextlog_core.h"

struct kextlog_sim_config {
	const char *socket_path;
	int         stream;            /* 1: SOCK_STREAM, 0: SOCK_SEQPACKET */
	uint64_t    rate;              /* records per second; 0: as fast as possible */
	uint64_t    count;             /* stop generating after this many; 0: no limit */
	uint64_t    duration_ns;       /* stop generating after this long; 0: no limit */
	uint32_t    ring_records;
	uint32_t    min_level;
	uint64_t    seed;              /* workload seed */
	const char *tap_path;          /* every generated LOG frame, appended; NULL: none */
	int         last_resort_fd;    /* the kernel printf's stand-in: lost messages, and at stop
	                                * the unacknowledged; -1: nowhere */
	uint64_t    resume_timeout_ns;
};

struct kextlog_sim_status {
	uint8_t  instance_id[KEXTLOG_ID_SIZE];
	uint64_t generated;
	int      generating;  /* still producing records */
	int      connected;   /* a client is connected */
	int      finished;    /* done generating and every seq acknowledged */
	struct kextlog_counters counters;
};

struct kextlog_sim;

/* Starts serving and generating.  On failure returns -1 with a one-line
 * reason in error. */
int kextlog_sim_start(const struct kextlog_sim_config *config, struct kextlog_sim **sim,
    char *error, size_t error_size);

/* Waits up to timeout_ms; returns 1 once the simulation has finished. */
int kextlog_sim_wait(struct kextlog_sim *sim, uint32_t timeout_ms);

void kextlog_sim_status(struct kextlog_sim *sim, struct kextlog_sim_status *status);

/* Stops both threads, as the kext stops: the client is dropped, and every
 * record not acknowledged goes to last_resort_fd (counted in
 * printed_at_stop).  Once; kextlog_sim_destroy() does it if not done. */
void kextlog_sim_stop(struct kextlog_sim *sim);

/* Stops, closes the sockets, removes the socket file, frees. */
void kextlog_sim_destroy(struct kextlog_sim *sim);

#endif /* KEXTLOG_SIM_H */
