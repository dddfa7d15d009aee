/* TEST CODE: stand-in for XNU's <sys/sysctl.h> (com.apple.kpi.bsd), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_SYS_SYSCTL_H
#define XNU_SHIM_SYS_SYSCTL_H

#include <sys/queue.h>

#include "../xnu_shim_types.h"

typedef uint64_t user_addr_t;

#define CTLTYPE         0xf
#define CTLTYPE_NODE    1
#define CTLTYPE_INT     2
#define CTLTYPE_STRING  3
#define CTLTYPE_QUAD    4
#define CTLFLAG_RD      0x80000000
#define CTLFLAG_WR      0x40000000
#define CTLFLAG_RW      (CTLFLAG_RD | CTLFLAG_WR)
#define CTLFLAG_ANYBODY 0x10000000
#define CTLFLAG_KERN    0x01000000
#define CTLFLAG_LOCKED  0x00800000
#define CTLFLAG_OID2    0x00400000

#define OID_AUTO (-1)

#define SYSCTL_HANDLER_ARGS (struct sysctl_oid *oidp, void *arg1, int arg2, \
	struct sysctl_req *req)

struct sysctl_req {
	struct proc *p;
	int          lock;
	user_addr_t  oldptr;
	size_t       oldlen;
	size_t       oldidx;
	int        (*oldfunc)(struct sysctl_req *, const void *, size_t);
	user_addr_t  newptr;
	size_t       newlen;
	size_t       newidx;
	int        (*newfunc)(struct sysctl_req *, void *, size_t);
};

SLIST_HEAD(sysctl_oid_list, sysctl_oid);

#define SYSCTL_OID_VERSION 1

struct sysctl_oid {
	struct sysctl_oid_list *oid_parent;
	SLIST_ENTRY(sysctl_oid) oid_link;
	int          oid_number;
	int          oid_kind;
	void        *oid_arg1;
	int          oid_arg2;
	const char  *oid_name;
	int        (*oid_handler)SYSCTL_HANDLER_ARGS;
	const char  *oid_fmt;
	const char  *oid_descr;
	int          oid_version;
	int          oid_refcnt;
};

#define SYSCTL_IN(r, p, l)  (r->newfunc)(r, p, l)
#define SYSCTL_OUT(r, p, l) (r->oldfunc)(r, p, l)

typedef int (*sysctl_handler_t) SYSCTL_HANDLER_ARGS;

int sysctl_handle_int SYSCTL_HANDLER_ARGS;
int sysctl_handle_quad SYSCTL_HANDLER_ARGS;
void sysctl_register_oid(struct sysctl_oid *oidp);
void sysctl_unregister_oid(struct sysctl_oid *oidp);

extern struct sysctl_oid_list sysctl__debug_children;

#endif
