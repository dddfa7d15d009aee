/* TEST CODE: stand-in for XNU's <sys/kpi_mbuf.h> (com.apple.kpi.bsd), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_SYS_KPI_MBUF_H
#define XNU_SHIM_SYS_KPI_MBUF_H

#include "../xnu_shim_types.h"

typedef struct mbuf *mbuf_t;

errno_t mbuf_copydata(const mbuf_t mbuf, size_t offset, size_t length, void *out_data);
void mbuf_freem(mbuf_t mbuf);
size_t mbuf_len(const mbuf_t mbuf);
mbuf_t mbuf_next(const mbuf_t mbuf);

#endif
