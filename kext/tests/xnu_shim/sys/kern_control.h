/* TEST CODE: stand-in for XNU's <sys/kern_control.h> (com.apple.kpi.bsd), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_SYS_KERN_CONTROL_H
#define XNU_SHIM_SYS_KERN_CONTROL_H

#include "../xnu_shim_types.h"
#include <sys/kpi_mbuf.h>

#define MAX_KCTL_NAME 96

struct sockaddr_ctl {
	u_char    sc_len;
	u_char    sc_family;
	u_int16_t ss_sysaddr;
	u_int32_t sc_id;
	u_int32_t sc_unit;
	u_int32_t sc_reserved[5];
};

typedef void *kern_ctl_ref;

#define CTL_FLAG_PRIVILEGED      0x1
#define CTL_FLAG_REG_ID_UNIT     0x2
#define CTL_FLAG_REG_SOCK_STREAM 0x4

#define CTL_DATA_NOWAKEUP 0x1
#define CTL_DATA_EOR      0x2

typedef errno_t (*ctl_connect_func)(kern_ctl_ref kctlref, struct sockaddr_ctl *sac,
    void **unitinfo);
typedef errno_t (*ctl_disconnect_func)(kern_ctl_ref kctlref, u_int32_t unit, void *unitinfo);
typedef errno_t (*ctl_send_func)(kern_ctl_ref kctlref, u_int32_t unit, void *unitinfo, mbuf_t m,
    int flags);
typedef errno_t (*ctl_setopt_func)(kern_ctl_ref kctlref, u_int32_t unit, void *unitinfo, int opt,
    void *data, size_t len);
typedef errno_t (*ctl_getopt_func)(kern_ctl_ref kctlref, u_int32_t unit, void *unitinfo, int opt,
    void *data, size_t *len);

struct kern_ctl_reg {
	char                ctl_name[MAX_KCTL_NAME];
	u_int32_t           ctl_id;
	u_int32_t           ctl_unit;
	u_int32_t           ctl_flags;
	u_int32_t           ctl_sendsize;
	u_int32_t           ctl_recvsize;
	ctl_connect_func    ctl_connect;
	ctl_disconnect_func ctl_disconnect;
	ctl_send_func       ctl_send;
	ctl_setopt_func     ctl_setopt;
	ctl_getopt_func     ctl_getopt;
};

errno_t ctl_register(struct kern_ctl_reg *userkctl, kern_ctl_ref *kctlref);
errno_t ctl_deregister(kern_ctl_ref kctlref);
errno_t ctl_enqueuedata(kern_ctl_ref kctlref, u_int32_t unit, void *data, size_t len,
    u_int32_t flags);

#endif
