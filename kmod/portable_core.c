// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * The portable core of kext/core, compiled into the module unchanged (kbuild
 * builds objects only inside the module's folder; libc/ maps the C headers).
 */
#include "kextlog_codec.c"
#include "kextlog_core.c"
#include "kextlog_ring.c"
