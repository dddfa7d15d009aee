/*
 * kextlog.h - logging from kernel code.
 *
 *     log_info("vnode %s opened by %d", path, pid);
 *
 * Each message gets a seq and waits in the kextlog ring until the daemon
 * has stored it.  log_printf() never sleeps; call it from thread context
 * (KAuth callbacks, syscalls, work loops), never from an interrupt handler
 * or with a spinlock held.
 */
#ifndef KEXTLOG_H
#define KEXTLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "kextlog_wire.h"

#ifndef __printflike
#define __printflike(fmt, args) __attribute__((__format__(__printf__, fmt, args)))
#endif

#ifdef __cplusplus /* an IOKit driver includes it from C++ */
extern "C" {
#endif

/* level is one of KEXTLOG_LEVEL_TRACE .. KEXTLOG_LEVEL_ERROR. */
void log_printf(uint32_t level, const char *format, ...) __printflike(2, 3);

#define log_trace(...)   log_printf(KEXTLOG_LEVEL_TRACE, __VA_ARGS__)
#define log_info(...)    log_printf(KEXTLOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_printf(KEXTLOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)   log_printf(KEXTLOG_LEVEL_ERROR, __VA_ARGS__)

/* A call that is compiled out: never made, its arguments never evaluated,
 * yet still checked against the format (and counted as used: no warnings). */
#define KEXTLOG_DISCARD(...) ((void)(0 && (log_printf(__VA_ARGS__), 0)))

/* Debug messages exist only in debug builds, as in the seed. */
#ifdef KEXTLOG_RELEASE
#define log_debug(...) KEXTLOG_DISCARD(KEXTLOG_LEVEL_DEBUG, __VA_ARGS__)
#else
#define log_debug(...) log_printf(KEXTLOG_LEVEL_DEBUG, __VA_ARGS__)
#endif

/* For log storms, as printk_ratelimited: each call site passes at most
 * KEXTLOG_RATELIMIT_BURST messages per KEXTLOG_RATELIMIT_INTERVAL_NS (see
 * kextlog_core.h); the rest get no seq and are counted, and the next message
 * that passes is preceded by a WARNING saying how many were suppressed where.
 *
 *     log_printf_ratelimited(KEXTLOG_LEVEL_WARNING, "denied %s", path);
 */
struct kextlog_ratelimit {
	uint64_t window_start_ns; /* monotonic */
	uint32_t passed;          /* messages let through in this window */
	uint32_t suppressed;      /* messages held back since the last report */
};

/* True when a message from the call site owning state may be logged now. */
bool kextlog_ratelimit(struct kextlog_ratelimit *state, const char *where);

#define KEXTLOG_STRING_(x) #x
#define KEXTLOG_STRING(x)  KEXTLOG_STRING_(x)
#define log_printf_ratelimited(level, ...)                                          \
	do {                                                                        \
		static struct kextlog_ratelimit kextlog_site_;                      \
		if (kextlog_ratelimit(&kextlog_site_, __FILE__ ":" KEXTLOG_STRING(__LINE__))) \
			log_printf((level), __VA_ARGS__);                           \
	} while (0)

/* ---- Running the logger in a kext: kext/kextlog_kctl.c, see kext/README.md ---- */

/* The kind of socket the daemon connects with (it tries both). */
enum kextlog_socket_type {
	KEXTLOG_SOCKET_DGRAM  = 0, /* each send is one datagram of whole frames */
	KEXTLOG_SOCKET_STREAM = 1, /* a byte stream of frames */
};

/* Ring capacity, in records of KEXTLOG_RING_RECORD_BYTES (256) wired bytes. */
#define KEXTLOG_RING_RECORDS_MIN 64u
#define KEXTLOG_RING_RECORDS_MAX 262144u

struct kextlog_settings {
	const char *control_name;     /* the kernel control (kctl:NAME), under 96 bytes */
	const char *producer_name;    /* announced in HELLO: the bundle id, under 64 bytes */
	uint32_t    producer_version; /* major << 16 | minor << 8 | patch */
	uint32_t    socket_type;      /* enum kextlog_socket_type */
	uint32_t    ring_records;     /* clamped to KEXTLOG_RING_RECORDS_MIN..MAX */
	const char *ring_boot_arg;    /* boot-arg overriding ring_records; NULL: none */
	uint32_t    min_level;        /* messages under it get no seq; sysctl can change it */
	const char *sysctl_name;      /* sysctls under debug.<sysctl_name>: under 32 bytes, no dot */
};

/* Call from the kext's start routine, before anything logs.  Allocates the
 * ring (this may sleep), registers the control and the sysctls, arms the
 * timer.  Returns 0 or an errno. */
int kextlog_start(const struct kextlog_settings *settings);

/* Call from the kext's stop routine, before taking down what logs.  While
 * the daemon is connected it returns EBUSY and changes nothing: the kext
 * must then refuse to unload.  Otherwise it prints every record the daemon
 * did not acknowledge to the kernel log, after one line saying how many and
 * which seqs, frees everything and returns 0.  Outside
 * kextlog_start()..kextlog_stop(), log_printf() prints to the kernel log
 * (messages under the last minimum level excepted). */
int kextlog_stop(void);

/* True when messages at level are logged now: lets a caller skip costly
 * arguments, such as a vnode's path, that nobody will read. */
bool kextlog_level_enabled(uint32_t level);

#ifdef __cplusplus
}
#endif

#endif /* KEXTLOG_H */
