/* TEST CODE: stand-in for XNU's <kern/locks.h> (com.apple.kpi.libkern), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_KERN_LOCKS_H
#define XNU_SHIM_KERN_LOCKS_H

#include "../xnu_shim_types.h"

typedef struct _lck_grp_ lck_grp_t;
typedef struct __lck_grp_attr__ lck_grp_attr_t;
typedef struct __lck_attr__ lck_attr_t;
typedef struct __lck_mtx_t__ lck_mtx_t;

#define LCK_GRP_ATTR_NULL (lck_grp_attr_t *)NULL
#define LCK_ATTR_NULL     (lck_attr_t *)NULL

lck_grp_t *lck_grp_alloc_init(const char *grp_name, lck_grp_attr_t *attr);
void lck_grp_free(lck_grp_t *grp);
lck_mtx_t *lck_mtx_alloc_init(lck_grp_t *grp, lck_attr_t *attr);
void lck_mtx_free(lck_mtx_t *lck, lck_grp_t *grp);
void lck_mtx_lock(lck_mtx_t *lck);
void lck_mtx_unlock(lck_mtx_t *lck);

#endif
