/* <stdio.h> in a Linux module: the core needs only vsnprintf. */
#pragma once
#include <linux/kernel.h>
