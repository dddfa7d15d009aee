/*
 * bsd_kext_log.c - the demo kext: the seed's bsd_kext_log, on kextlog.
 *
 * Listens to the generic, process, vnode and fileop KAuth scopes (TN2127)
 * and logs what it sees, massively at TRACE, through log_printf().  It never
 * takes part in a decision: every listener returns KAUTH_RESULT_DEFER.
 *
 * Start: the logger first, then the listeners.  Stop: the logger first, so
 * that an unload refused because the daemon is connected leaves everything
 * running; then the listeners, waiting for the callbacks still in flight.
 *
 * The Makefile takes the bundle id and version from Info.plist:
 * BSD_KEXT_LOG_BUNDLE (tokens), BSD_KEXT_LOG_VERSION (a string) and
 * BSD_KEXT_LOG_VERSION_NUMBER (major << 16 | minor << 8 | patch), and
 * BSD_KEXT_LOG_STREAM for a SOCK_STREAM control.
 */
#include <sys/types.h> /* first: <sys/kauth.h> needs uid_t */

#include <libkern/OSMalloc.h>
#include <mach/kmod.h>
#include <mach/mach_types.h>
#include <sys/errno.h>
#include <sys/kauth.h>
#include <sys/param.h>
#include <sys/proc.h>
#include <sys/systm.h>
#include <sys/vnode.h>

#include "kextlog.h"

#define BUNDLE_ID    KEXTLOG_STRING(BSD_KEXT_LOG_BUNDLE)
#define RING_RECORDS 16384u /* 4 MiB of wired memory */
#define WAIT_MS      10u
#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const struct kextlog_settings logger_settings = {
	.control_name = BUNDLE_ID, /* the daemon runs: kextlog ingest --source kctl:<bundle id> */
	.producer_name = BUNDLE_ID,
	.producer_version = BSD_KEXT_LOG_VERSION_NUMBER,
#ifdef BSD_KEXT_LOG_STREAM /* make SOCKET=stream */
	.socket_type = KEXTLOG_SOCKET_STREAM,
#else
	.socket_type = KEXTLOG_SOCKET_DGRAM,
#endif
	.ring_records = RING_RECORDS,
	.ring_boot_arg = "bsd_kext_log_ring",
#ifdef KEXTLOG_RELEASE
	.min_level = KEXTLOG_LEVEL_INFO,
#else
	.min_level = KEXTLOG_LEVEL_TRACE, /* the seed's massive logs; sysctl min_level=3 quiets them */
#endif
	.sysctl_name = "bsd_kext_log",
};

static OSMallocTag malloc_tag;
static uint32_t callbacks_in_flight; /* atomic */

/* Around every listener body: kauth_unlisten_scope() does not wait for
 * listeners that are running, so the stop routine waits for this count. */
static void callback_enter(void)
{
	__atomic_add_fetch(&callbacks_in_flight, 1, __ATOMIC_SEQ_CST);
}

static void callback_leave(void)
{
	__atomic_sub_fetch(&callbacks_in_flight, 1, __ATOMIC_SEQ_CST);
}

/* TN2127: a fileop path argument may be NULL. */
static const char *path_text(uintptr_t path)
{
	return path != 0 ? (const char *)path : "(no path)";
}

static int generic_listener(kauth_cred_t credential, void *idata __unused, kauth_action_t action,
    uintptr_t arg0 __unused, uintptr_t arg1 __unused, uintptr_t arg2 __unused,
    uintptr_t arg3 __unused)
{
	callback_enter();
	if (action == KAUTH_GENERIC_ISSUSER)
		log_info("generic: KAUTH_GENERIC_ISSUSER uid=%u", kauth_cred_getuid(credential));
	else
		log_debug("generic: action %d", action);
	callback_leave();
	return KAUTH_RESULT_DEFER;
}

/* arg0 is the target process; for CANSIGNAL arg1 is the signal. */
static int process_listener(kauth_cred_t credential, void *idata __unused, kauth_action_t action,
    uintptr_t arg0, uintptr_t arg1, uintptr_t arg2 __unused, uintptr_t arg3 __unused)
{
	proc_t target = (proc_t)arg0;
	char name[MAXCOMLEN + 1] = "?";
	int pid = -1;

	callback_enter();
	if (target != NULL) {
		pid = proc_pid(target);
		proc_name(pid, name, (int)sizeof name);
	}
	if (action == KAUTH_PROCESS_CANSIGNAL)
		log_info("process: KAUTH_PROCESS_CANSIGNAL target=%d (%s) signal=%d uid=%u", pid, name,
		    (int)arg1, kauth_cred_getuid(credential));
	else if (action == KAUTH_PROCESS_CANTRACE)
		log_info("process: KAUTH_PROCESS_CANTRACE target=%d (%s) uid=%u", pid, name,
		    kauth_cred_getuid(credential));
	else
		log_debug("process: action %d target=%d (%s)", action, pid, name);
	callback_leave();
	return KAUTH_RESULT_DEFER;
}

static const struct {
	uint32_t    right;
	const char *name;
} vnode_rights[] = {
	{ KAUTH_VNODE_READ_DATA, "READ_DATA" },
	{ KAUTH_VNODE_WRITE_DATA, "WRITE_DATA" },
	{ KAUTH_VNODE_EXECUTE, "EXECUTE" },
	{ KAUTH_VNODE_DELETE, "DELETE" },
	{ KAUTH_VNODE_APPEND_DATA, "APPEND_DATA" },
	{ KAUTH_VNODE_DELETE_CHILD, "DELETE_CHILD" },
	{ KAUTH_VNODE_READ_ATTRIBUTES, "READ_ATTRIBUTES" },
	{ KAUTH_VNODE_WRITE_ATTRIBUTES, "WRITE_ATTRIBUTES" },
	{ KAUTH_VNODE_READ_EXTATTRIBUTES, "READ_EXTATTRIBUTES" },
	{ KAUTH_VNODE_WRITE_EXTATTRIBUTES, "WRITE_EXTATTRIBUTES" },
	{ KAUTH_VNODE_READ_SECURITY, "READ_SECURITY" },
	{ KAUTH_VNODE_WRITE_SECURITY, "WRITE_SECURITY" },
	{ KAUTH_VNODE_TAKE_OWNERSHIP, "TAKE_OWNERSHIP" },
	{ KAUTH_VNODE_LINKTARGET, "LINKTARGET" },
	{ KAUTH_VNODE_CHECKIMMUTABLE, "CHECKIMMUTABLE" },
	{ KAUTH_VNODE_ACCESS, "ACCESS" }, /* advisory: access(2) and friends */
};

/* "READ_DATA|READ_ATTRIBUTES": what a vnode request asks for. */
static void describe_rights(kauth_action_t action, char *text, size_t size)
{
	size_t used = 0;

	text[0] = '\0';
	for (size_t i = 0; i < COUNT(vnode_rights) && used < size; i++) {
		if ((uint32_t)action & vnode_rights[i].right)
			used += (size_t)snprintf(text + used, size - used, "%s%s", used != 0 ? "|" : "",
			    vnode_rights[i].name);
	}
}

/* The path buffer comes from the heap, not the kernel's small stack, and
 * without waiting: this runs on every file access. */
static void log_vnode(kauth_action_t action, vnode_t vp)
{
	char rights[256];
	char *path = OSMalloc_noblock(MAXPATHLEN, malloc_tag);
	int length = MAXPATHLEN;
	int error = vp == NULL ? EINVAL : path == NULL ? ENOMEM : vn_getpath(vp, path, &length);

	describe_rights(action, rights, sizeof rights);
	if (error == 0)
		log_trace("vnode: %s path=%s", rights, path);
	else /* vn_getpath cannot name every vnode; a storm of these is cut short */
		log_printf_ratelimited(KEXTLOG_LEVEL_WARNING, "vnode: %s without a path (error %d)",
		    rights, error);
	if (path != NULL)
		OSFree(path, MAXPATHLEN, malloc_tag);
}

/* arg1 is the vnode; arg2 its directory (may be NULL), not used here. */
static int vnode_listener(kauth_cred_t credential __unused, void *idata __unused,
    kauth_action_t action, uintptr_t arg0 __unused, uintptr_t arg1, uintptr_t arg2 __unused,
    uintptr_t arg3 __unused)
{
	callback_enter();
	/* The busiest scope: no path lookup unless TRACE is kept. */
	if (kextlog_level_enabled(KEXTLOG_LEVEL_TRACE))
		log_vnode(action, (vnode_t)arg1);
	callback_leave();
	return KAUTH_RESULT_DEFER;
}

/* The arguments of each action are listed in <sys/kauth.h>. */
static int fileop_listener(kauth_cred_t credential __unused, void *idata __unused,
    kauth_action_t action, uintptr_t arg0, uintptr_t arg1, uintptr_t arg2,
    uintptr_t arg3 __unused)
{
	callback_enter();
	switch (action) {
	case KAUTH_FILEOP_OPEN:
		log_info("fileop: KAUTH_FILEOP_OPEN path=%s", path_text(arg1));
		break;
	case KAUTH_FILEOP_CLOSE:
		log_trace("fileop: KAUTH_FILEOP_CLOSE path=%s%s", path_text(arg1),
		    (arg2 & KAUTH_FILEOP_CLOSE_MODIFIED) != 0 ? " modified" : "");
		break;
	case KAUTH_FILEOP_RENAME:
		log_info("fileop: KAUTH_FILEOP_RENAME from=%s to=%s", path_text(arg0), path_text(arg1));
		break;
	case KAUTH_FILEOP_EXCHANGE:
		log_info("fileop: KAUTH_FILEOP_EXCHANGE %s with %s", path_text(arg0), path_text(arg1));
		break;
	case KAUTH_FILEOP_LINK:
		log_info("fileop: KAUTH_FILEOP_LINK to=%s link=%s", path_text(arg0), path_text(arg1));
		break;
	case KAUTH_FILEOP_EXEC:
		log_info("fileop: KAUTH_FILEOP_EXEC path=%s", path_text(arg1));
		break;
	case KAUTH_FILEOP_DELETE:
		log_info("fileop: KAUTH_FILEOP_DELETE path=%s", path_text(arg1));
		break;
	case KAUTH_FILEOP_WILL_RENAME:
		log_info("fileop: KAUTH_FILEOP_WILL_RENAME from=%s to=%s", path_text(arg1),
		    path_text(arg2));
		break;
	default:
		log_debug("fileop: action %d", action);
		break;
	}
	callback_leave();
	return KAUTH_RESULT_DEFER;
}

static const struct {
	const char            *scope;
	kauth_scope_callback_t listener;
} scopes[] = {
	{ KAUTH_SCOPE_GENERIC, generic_listener },
	{ KAUTH_SCOPE_PROCESS, process_listener },
	{ KAUTH_SCOPE_VNODE, vnode_listener },
	{ KAUTH_SCOPE_FILEOP, fileop_listener },
};

static kauth_listener_t listeners[COUNT(scopes)];

static kern_return_t bsd_kext_log_start(kmod_info_t *info __unused, void *data __unused)
{
	int error;

	malloc_tag = OSMalloc_Tagalloc(BUNDLE_ID, OSMT_DEFAULT);
	if (malloc_tag == NULL)
		return KERN_RESOURCE_SHORTAGE;
	error = kextlog_start(&logger_settings);
	if (error != 0) {
		printf(BUNDLE_ID ": cannot start kextlog (error %d)\n", error);
		OSMalloc_Tagfree(malloc_tag);
		return KERN_FAILURE;
	}
	/* Without a listener the kext still runs: once the logger is up, a
	 * failed start could meet a connected daemon and be unable to undo it. */
	for (size_t i = 0; i < COUNT(scopes); i++) {
		listeners[i] = kauth_listen_scope(scopes[i].scope, scopes[i].listener, NULL);
		if (listeners[i] == NULL)
			log_error("cannot listen to %s: running without it", scopes[i].scope);
	}
	log_info("%s %s started", BUNDLE_ID, BSD_KEXT_LOG_VERSION);
	return KERN_SUCCESS;
}

static kern_return_t bsd_kext_log_stop(kmod_info_t *info __unused, void *data __unused)
{
	int error = kextlog_stop();

	if (error != 0) {
		printf(BUNDLE_ID ": not unloading while the kextlog daemon is connected (error %d): "
		    "stop it, then unload again\n", error);
		return KERN_FAILURE;
	}
	/* From here on the listeners' messages go to the kernel log. */
	for (size_t i = 0; i < COUNT(listeners); i++) {
		if (listeners[i] != NULL)
			kauth_unlisten_scope(listeners[i]);
		listeners[i] = NULL;
	}
	while (__atomic_load_n(&callbacks_in_flight, __ATOMIC_SEQ_CST) != 0) {
		struct timespec pause = { .tv_sec = 0, .tv_nsec = WAIT_MS * 1000000 };

		msleep(&callbacks_in_flight, NULL, 0, "bsd_kext_log", &pause);
	}
	OSMalloc_Tagfree(malloc_tag);
	return KERN_SUCCESS;
}

/* The kext's identity for the kernel, and the routines that libkmod's _start
 * and _stop call (as Xcode's generated _info.c declares them). */
extern kern_return_t _start(kmod_info_t *info, void *data);
extern kern_return_t _stop(kmod_info_t *info, void *data);
#define DECLARE_KMOD(bundle, version) KMOD_EXPLICIT_DECL(bundle, version, _start, _stop)
__attribute__((visibility("default"))) DECLARE_KMOD(BSD_KEXT_LOG_BUNDLE, BSD_KEXT_LOG_VERSION)
__private_extern__ kmod_start_func_t *_realmain = bsd_kext_log_start;
__private_extern__ kmod_stop_func_t *_antimain = bsd_kext_log_stop;
