/* <string.h> in a Linux module: memcpy, memset, memcmp, memmove, strnlen... */
#pragma once
#include <linux/string.h>
