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

#endif /* KEXTLOG_H */
