/*
 * kextlog_port.h - the few C library pieces the portable core needs.
 *
 * The core has no XNU dependency beyond what libkern offers under the same
 * names: in the kernel vsnprintf comes from libkern, elsewhere from libc.
 */
#ifndef KEXTLOG_PORT_H
#define KEXTLOG_PORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef KERNEL
#include <libkern/libkern.h>
#else
#include <stdio.h>
#endif

#ifndef __printflike
#define __printflike(fmt, args) __attribute__((__format__(__printf__, fmt, args)))
#endif

#endif /* KEXTLOG_PORT_H */
