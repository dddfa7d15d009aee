/*
 * log_kctl.h - the seed's interface (bsd_kext_log's log_kctl.h), on kextlog.
 *
 * A kext written against the seed keeps its call sites: it includes this
 * header where it included the seed's log_kctl.h, calls log_kctl_register()
 * and log_kctl_deregister() from its start and stop routines, and logs with
 * log_printf() and log_trace() .. log_error().  In a file that includes it,
 * levels are the seed's numbers, as names and as numbers alike: 0 TRACE,
 * 1 DEBUG, 2 INFO, 3 WARNING, 4 ERROR (kextlog's are one more), and
 * log_debug() exists only when DEBUG is defined (the seed's debug build).
 * kext/README.md, "Porting from the seed", says what changes around them.
 *
 * The logger's settings come from what the seed's Makefile defines:
 * BUNDLEID_S (the producer name in HELLO) and KEXTNAME_S (the sysctls,
 * debug.<KEXTNAME_S>.*).  The control is KEXTLOG_KCTL_NAME, as the seed's
 * kextlog.h named it, by default BUNDLEID_S ".kctl" (the seed's own name),
 * of type KEXTLOG_KCTL_SOCKTYPE (SOCK_DGRAM by default); the ring holds
 * LOG_KCTL_RING_RECORDS records (16,384 by default: 4 MiB).  Define any of
 * them before including this header to choose otherwise.
 */
#ifndef LOG_KCTL_H
#define LOG_KCTL_H

#include <mach/kern_return.h>
#include <sys/socket.h>
#include <sys/systm.h> /* the seed's header brought in the kernel's printf() */

#include "kextlog.h"

#if !defined(BUNDLEID_S) || !defined(KEXTNAME_S)
#error "log_kctl.h: define BUNDLEID_S and KEXTNAME_S, as the seed's Makefile does (-DBUNDLEID_S=\"...\")"
#endif
#ifndef KEXTLOG_KCTL_NAME
#define KEXTLOG_KCTL_NAME BUNDLEID_S ".kctl"
#endif
#ifndef KEXTLOG_KCTL_SOCKTYPE
#define KEXTLOG_KCTL_SOCKTYPE SOCK_DGRAM
#endif
#ifndef LOG_KCTL_RING_RECORDS
#define LOG_KCTL_RING_RECORDS 16384u
#endif

/* The seed's start: KERN_SUCCESS, or KERN_FAILURE with the reason in the
 * kernel log. */
static inline kern_return_t log_kctl_register(void)
{
	static const struct kextlog_settings settings = {
		.control_name = KEXTLOG_KCTL_NAME,
		.producer_name = BUNDLEID_S,
		.socket_type = KEXTLOG_KCTL_SOCKTYPE == SOCK_STREAM ? KEXTLOG_SOCKET_STREAM :
		    KEXTLOG_SOCKET_DGRAM,
		.ring_records = LOG_KCTL_RING_RECORDS,
		.min_level = KEXTLOG_LEVEL_TRACE, /* the seed kept every level */
		.sysctl_name = KEXTNAME_S,
	};
	int error = kextlog_start(&settings);

	if (error != 0)
		printf("%s: log_kctl_register: kextlog_start failed (error %d)\n", BUNDLEID_S, error);
	return error == 0 ? KERN_SUCCESS : KERN_FAILURE;
}

/* The seed's stop: KERN_FAILURE while the daemon is connected (the kext
 * must then refuse to unload); what it did not acknowledge goes to the
 * kernel log. */
static inline kern_return_t log_kctl_deregister(void)
{
	return kextlog_stop() == 0 ? KERN_SUCCESS : KERN_FAILURE;
}

/* From here on, the seed's level numbers. */
#define KEXTLOG_LEVEL_TRACE   0
#define KEXTLOG_LEVEL_DEBUG   1
#define KEXTLOG_LEVEL_INFO    2
#define KEXTLOG_LEVEL_WARNING 3
#define KEXTLOG_LEVEL_ERROR   4

/* Every level a caller passes is the seed's; log_trace() .. log_error()
 * expand to log_printf() and so take the seed's names above. */
#define log_printf(level, ...)        (log_printf)((uint32_t)(level) + 1u, __VA_ARGS__)
#define kextlog_level_enabled(level) (kextlog_level_enabled)((uint32_t)(level) + 1u)

#undef log_debug
#ifdef DEBUG
#define log_debug(...) log_printf(KEXTLOG_LEVEL_DEBUG, __VA_ARGS__)
#else
#define log_debug(...) KEXTLOG_DISCARD(KEXTLOG_LEVEL_DEBUG, __VA_ARGS__)
#endif

#endif /* LOG_KCTL_H */
