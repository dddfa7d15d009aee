/* TEST CODE: stand-in for XNU's <mach/mach_types.h>, see ../../xnu_shim.h:
 * what a kext's start and stop routines take. */
#ifndef XNU_SHIM_MACH_MACH_TYPES_H
#define XNU_SHIM_MACH_MACH_TYPES_H

#include <mach/kern_return.h>

typedef struct kmod_info kmod_info_t;

#endif
