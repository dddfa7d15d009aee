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

/* level is one of KEXTLOG_LEVEL_TRACE .. KEXTLOG_LEVEL_ERROR. */
void log_printf(uint32_t level, const char *format, ...) __printflike(2, 3);

#define log_trace(...)   log_printf(KEXTLOG_LEVEL_TRACE, __VA_ARGS__)
#define log_info(...)    log_printf(KEXTLOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_printf(KEXTLOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)   log_printf(KEXTLOG_LEVEL_ERROR, __VA_ARGS__)

/* Debug messages exist only in debug builds, as in the seed. */
#ifdef KEXTLOG_RELEASE
#define log_debug(...) ((void)0)
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

#endif /* KEXTLOG_H */
