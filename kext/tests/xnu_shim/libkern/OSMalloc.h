/* TEST CODE: stand-in for XNU's <libkern/OSMalloc.h> (com.apple.kpi.libkern), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_LIBKERN_OSMALLOC_H
#define XNU_SHIM_LIBKERN_OSMALLOC_H

#include "../xnu_shim_types.h"

typedef struct __OSMallocTag__ *OSMallocTag;

#define OSMT_DEFAULT 0x00

OSMallocTag OSMalloc_Tagalloc(const char *name, uint32_t flags);
void OSMalloc_Tagfree(OSMallocTag tag);
void *OSMalloc(uint32_t size, OSMallocTag tag);
void *OSMalloc_noblock(uint32_t size, OSMallocTag tag);
void OSFree(void *addr, uint32_t size, OSMallocTag tag);

#endif
