/* TEST CODE: stand-in for XNU's <pexpert/pexpert.h> (com.apple.kpi.iokit), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_PEXPERT_PEXPERT_H
#define XNU_SHIM_PEXPERT_PEXPERT_H

#include "../xnu_shim_types.h"

boolean_t PE_parse_boot_argn(const char *arg_string, void *arg_ptr, int max_arg);

#endif
