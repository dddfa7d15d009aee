/* <stdarg.h> in a Linux module. */
#pragma once
#include <linux/stdarg.h>
