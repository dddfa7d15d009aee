/*
 * seed_kext.c - TEST CODE: a kext written against the seed (bsd_kext_log),
 * its includes and calls as they were, on kextlog through log_kctl.h.
 * `make check` compiles it against the SDK; test_kctl.c runs it on the fake
 * kernel and reads what it logged.
 */

/* What the seed's Makefile passes with -D, for its debug build. */
#define KEXTNAME_S "seed_kext"
#define BUNDLEID_S "com.example.seed_kext"
#define DEBUG      1

#include <mach/mach_types.h>

#include "log_kctl.h"

kern_return_t seed_kext_start(kmod_info_t *ki, void *d);
kern_return_t seed_kext_stop(kmod_info_t *ki, void *d);
void seed_kext_log(int pid, const char *path);

kern_return_t seed_kext_start(kmod_info_t *ki, void *d)
{
	kern_return_t r;

	(void)ki;
	(void)d;
	r = log_kctl_register();
	if (r)
		return r;
	log_info("started, kctl %s", KEXTLOG_KCTL_NAME);
	return KERN_SUCCESS;
}

kern_return_t seed_kext_stop(kmod_info_t *ki, void *d)
{
	(void)ki;
	(void)d;
	return log_kctl_deregister();
}

/* The seed's calls: each wrapper, log_printf() by name and by number. */
void seed_kext_log(int pid, const char *path)
{
	log_trace("vnode %s by %d", path, pid);
	log_debug("debug %d", pid);
	log_info("info %s", path);
	log_warning("warning %d", pid);
	log_error("error %s", path);
	log_printf(KEXTLOG_LEVEL_WARNING, "log_printf WARNING %d", pid);
	log_printf(2, "log_printf 2 (INFO in the seed)");
	if (kextlog_level_enabled(KEXTLOG_LEVEL_INFO))
		log_printf(KEXTLOG_LEVEL_ERROR, "INFO is enabled");
}
