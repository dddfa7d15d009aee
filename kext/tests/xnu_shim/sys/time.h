/* TEST CODE: the host's <sys/time.h> plus XNU's nanotime (com.apple.kpi.bsd),
 * see ../../xnu_shim.h. */
#ifndef XNU_SHIM_SYS_TIME_H
#define XNU_SHIM_SYS_TIME_H

#include_next <sys/time.h>

void nanotime(struct timespec *ts);

#endif
