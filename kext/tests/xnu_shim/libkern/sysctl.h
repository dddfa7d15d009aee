/* TEST CODE: stand-in for XNU's <libkern/sysctl.h> (com.apple.kpi.libkern), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_LIBKERN_SYSCTL_H
#define XNU_SHIM_LIBKERN_SYSCTL_H

#include "../xnu_shim_types.h"

int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

#endif
