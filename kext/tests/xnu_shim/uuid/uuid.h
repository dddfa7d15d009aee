/* TEST CODE: stand-in for XNU's <uuid/uuid.h> (com.apple.kpi.libkern), see ../../xnu_shim.h. */
#ifndef XNU_SHIM_UUID_UUID_H
#define XNU_SHIM_UUID_UUID_H

typedef unsigned char uuid_t[16];
typedef char uuid_string_t[37];

void uuid_generate_random(uuid_t out);
int uuid_parse(const uuid_string_t in, uuid_t uu);

#endif
