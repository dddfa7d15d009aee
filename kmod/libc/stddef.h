/* <stddef.h> in a Linux module: size_t, NULL and offsetof. */
#pragma once
#include <linux/stddef.h>
#include <linux/types.h>
