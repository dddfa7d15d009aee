/* TEST CODE: stand-in for XNU's <kern/clock.h> (com.apple.kpi.mach), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_KERN_CLOCK_H
#define XNU_SHIM_KERN_CLOCK_H

#include "../xnu_shim_types.h"

void absolutetime_to_nanoseconds(uint64_t abstime, uint64_t *result);
void clock_interval_to_deadline(uint32_t interval, uint32_t scale_factor, uint64_t *result);

#endif
