/* TEST CODE: stand-in for XNU's <kern/thread_call.h> (com.apple.kpi.mach), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_KERN_THREAD_CALL_H
#define XNU_SHIM_KERN_THREAD_CALL_H

#include "../xnu_shim_types.h"

typedef struct thread_call *thread_call_t;
typedef void *thread_call_param_t;
typedef void (*thread_call_func_t)(thread_call_param_t param0, thread_call_param_t param1);

thread_call_t thread_call_allocate(thread_call_func_t func, thread_call_param_t param0);
boolean_t thread_call_enter_delayed(thread_call_t call, uint64_t deadline);
boolean_t thread_call_cancel(thread_call_t call);
boolean_t thread_call_free(thread_call_t call);

#endif
