/* <stdint.h> in a Linux module: the kernel's fixed-width types. */
#pragma once
#include <linux/limits.h>
#include <linux/types.h>

#define UINT16_MAX U16_MAX
#define UINT32_MAX U32_MAX
#define UINT64_MAX U64_MAX
#define INT32_MAX  S32_MAX
#define INT64_MAX  S64_MAX
#define UINT64_C(c) c##ULL
