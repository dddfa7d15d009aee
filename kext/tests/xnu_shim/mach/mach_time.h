/* TEST CODE: stand-in for XNU's <mach/mach_time.h> (com.apple.kpi.mach), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_MACH_MACH_TIME_H
#define XNU_SHIM_MACH_MACH_TIME_H

#include "../xnu_shim_types.h"

uint64_t mach_absolute_time(void);

#endif
