/* <stdbool.h> in a Linux module: bool, true and false. */
#pragma once
#include <linux/stddef.h>
#include <linux/types.h>
