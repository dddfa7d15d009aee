/*
 * xnu_shim_types.h - TEST CODE: the few XNU base types the stand-in headers
 * share (see ../xnu_shim.h).
 */
#ifndef XNU_SHIM_TYPES_H
#define XNU_SHIM_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef int boolean_t;
typedef int errno_t;

#define TRUE  1
#define FALSE 0

#endif /* XNU_SHIM_TYPES_H */
