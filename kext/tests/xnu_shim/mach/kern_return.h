/* TEST CODE: stand-in for XNU's <mach/kern_return.h>, see ../../xnu_shim.h. */
#ifndef XNU_SHIM_MACH_KERN_RETURN_H
#define XNU_SHIM_MACH_KERN_RETURN_H

typedef int kern_return_t;

#define KERN_SUCCESS 0
#define KERN_FAILURE 5

#endif
