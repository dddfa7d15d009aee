/* TEST CODE: stand-in for XNU's <sys/systm.h>, see ../../xnu_shim.h: the
 * kernel's printf (com.apple.kpi.libkern) goes to the fake's record. */
#ifndef XNU_SHIM_SYS_SYSTM_H
#define XNU_SHIM_SYS_SYSTM_H

#include <stdio.h> /* first, so that the macro below renames only the glue's calls */

#define printf kextlog_shim_printf
int kextlog_shim_printf(const char *format, ...) __attribute__((__format__(__printf__, 1, 2)));

#endif
