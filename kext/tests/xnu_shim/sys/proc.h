/* TEST CODE: stand-in for XNU's <sys/proc.h> (com.apple.kpi.bsd), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_SYS_PROC_H
#define XNU_SHIM_SYS_PROC_H

#include <time.h>

#include "../xnu_shim_types.h"
#include <kern/locks.h>

int proc_selfpid(void);
void proc_selfname(char *buf, int size);
int msleep(void *chan, lck_mtx_t *mtx, int pri, const char *wmesg, struct timespec *ts);

#endif
