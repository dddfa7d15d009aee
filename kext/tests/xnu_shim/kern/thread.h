/* TEST CODE: stand-in for XNU's <kern/thread.h> (com.apple.kpi.mach), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_KERN_THREAD_H
#define XNU_SHIM_KERN_THREAD_H

#include "../xnu_shim_types.h"

typedef struct thread *thread_t;

thread_t current_thread(void);
uint64_t thread_tid(thread_t thread);

#endif
