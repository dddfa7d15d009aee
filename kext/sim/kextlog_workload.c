/*
 * kextlog_workload.c - what the seed kext's KAuth listeners print, made up.
 *
 * A pool of processes is drawn once per seed: pids with gaps, as on a Mac
 * that has been up a while, each with a name and a few threads; half of the
 * events come from the busiest few.  An event picks a level first, so the
 * level mix is exact, then one of the messages a listener prints at it.
 */
#include "kextlog.h"
#include "kextlog_workload.h"

#define BUSY_PROCESSES 64u
#define MAX_THREADS    8u
#define PID_GAP_MAX    24u
/* Kernel addresses of vnodes and credentials, as %llx shows them. */
#define KERNEL_ZONE    0xffffff8000000000ull

/* Names of the pool, with how many of its processes have each.  The first
 * two are pids 0 and 1 only. */
static const struct {
	char     name[KEXTLOG_PROCESS_NAME_MAX];
	uint32_t uid;
	uint32_t weight;
} names[] = {
	{ "kernel_task", 0, 0 },
	{ "launchd", 0, 0 },
	{ "mdworker_shared", 501, 30 },
	{ "mds_stores", 0, 4 },
	{ "mds", 0, 1 },
	{ "Finder", 501, 1 },
	{ "sshd", 0, 6 },
	{ "cfprefsd", 501, 4 },
	{ "syslogd", 0, 1 },
	{ "WindowServer", 88, 1 },
	{ "python3", 501, 10 },
	{ "git", 501, 16 },
	{ "clang", 501, 20 },
	{ "ld", 501, 6 },
	{ "make", 501, 6 },
	{ "Safari", 501, 1 },
	{ "com.apple.WebKit.WebContent", 501, 8 },
	{ "Terminal", 501, 1 },
	{ "zsh", 501, 10 },
	{ "login", 0, 3 },
	{ "fseventsd", 0, 1 },
	{ "coreservicesd", 0, 1 },
	{ "distnoted", 501, 2 },
	{ "UserEventAgent", 0, 2 },
	{ "securityd", 0, 1 },
	{ "trustd", 501, 2 },
	{ "opendirectoryd", 0, 1 },
	{ "notifyd", 0, 1 },
	{ "configd", 0, 1 },
	{ "node", 501, 8 },
	{ "Xcode", 501, 1 },
	{ "kextd", 0, 1 },
};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const char *const paths[] = {
	"/usr/lib/dyld",
	"/usr/lib/libSystem.B.dylib",
	"/usr/lib/system/libsystem_kernel.dylib",
	"/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation",
	"/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
	"/Applications/Safari.app/Contents/MacOS/Safari",
	"/Users/dev/project/main.c",
	"/Users/dev/project/kext/core/kextlog_core.c",
	"/Users/dev/project/Makefile",
	"/Users/dev/project/.git/index",
	"/Users/dev/project/.git/objects/pack/pack-5f1c3a9e.idx",
	"/Users/dev/.zsh_history",
	"/Users/dev/Library/Preferences/com.apple.finder.plist",
	"/Library/Preferences/SystemConfiguration/preferences.plist",
	"/private/var/db/mds/system/mds.lock",
	"/private/var/log/system.log",
	"/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/cc-8f2a1b.o",
	"/private/etc/ssh/sshd_config",
	"/usr/bin/python3",
	"/usr/bin/git",
	"/bin/zsh",
	"/dev/null",
	"/dev/ttys003",
	"/.Spotlight-V100/Store-V2/9C1A2B3D/store.db",
};

/* Longer than the stack limit on their own: any message quoting one is cut. */
static const char *const long_paths[] = {
	"/Users/dev/project/web/node_modules/@babel/core/node_modules/@babel/"
	"helper-compilation-targets/node_modules/browserslist/node_modules/caniuse-lite/"
	"node_modules/electron-to-chromium/node_modules/node-releases/data/release-schedule/"
	"release-schedule.json.gz",
	"/Users/dev/Library/Developer/Xcode/DerivedData/kextlog-bqxzfmgwcjhvdkaoteuyrnlspqwx/"
	"Build/Intermediates.noindex/kextlog.build/Debug/kextlog.build/Objects-normal/x86_64/"
	"kextlog_core.LinkFileList.dependencies/ModuleCache.noindex/3JTRS5BV2BGR8/Darwin-1Q2W3E4R5T6Y.pcm",
};

static const struct {
	const char *text;
	uint32_t    action;
} vnode_actions[] = {
	{ "KAUTH_VNODE_READ_DATA", 1u << 1 },
	{ "KAUTH_VNODE_READ_DATA|KAUTH_VNODE_READ_ATTRIBUTES", 1u << 1 | 1u << 7 },
	{ "KAUTH_VNODE_READ_ATTRIBUTES", 1u << 7 },
	{ "KAUTH_VNODE_READ_SECURITY", 1u << 11 },
	{ "KAUTH_VNODE_READ_EXTATTRIBUTES", 1u << 9 },
	{ "KAUTH_VNODE_EXECUTE", 1u << 3 },
	{ "KAUTH_VNODE_WRITE_DATA|KAUTH_VNODE_APPEND_DATA", 1u << 2 | 1u << 5 },
	{ "KAUTH_VNODE_WRITE_ATTRIBUTES", 1u << 8 },
	{ "KAUTH_VNODE_ACCESS|KAUTH_VNODE_READ_DATA", 1u << 31 | 1u << 1 },
	{ "KAUTH_VNODE_DELETE", 1u << 4 },
};

static const struct {
	const char *name;
	int         number;
} signals[] = {
	{ "SIGHUP", 1 }, { "SIGINT", 2 }, { "SIGKILL", 9 },
	{ "SIGTERM", 15 }, { "SIGCHLD", 20 }, { "SIGUSR1", 30 },
};

/* FREAD, FREAD|FWRITE, with O_CREAT, O_TRUNC, O_APPEND. */
static const uint32_t open_flags[] = { 0x1, 0x3, 0x203, 0x603, 0xb };

static uint64_t next(struct kextlog_workload *workload)
{
	uint64_t x = workload->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	workload->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint32_t below(struct kextlog_workload *workload, uint32_t bound)
{
	return (uint32_t)(next(workload) % bound);
}

static uint64_t thread_id(uint32_t pid, uint32_t thread)
{
	return 0x100000ull + (uint64_t)pid * MAX_THREADS + thread;
}

static unsigned long long kernel_address(struct kextlog_workload *workload)
{
	return KERNEL_ZONE | (next(workload) & 0x7ffffff0ull);
}

/* One quoted path in 140 is a long one: with the messages that quote none,
 * about one message in 200 is longer than the stack limit. */
static const char *path(struct kextlog_workload *workload)
{
	if (below(workload, 140) == 0)
		return long_paths[below(workload, COUNT(long_paths))];
	return paths[below(workload, COUNT(paths))];
}

static const struct kextlog_workload_process *process(struct kextlog_workload *workload)
{
	uint32_t bound = below(workload, 2) ? BUSY_PROCESSES : KEXTLOG_WORKLOAD_PROCESSES;

	return &workload->processes[below(workload, bound)];
}

static uint32_t uid(const struct kextlog_workload_process *process)
{
	return names[process->name].uid;
}

static uint8_t weighted_name(struct kextlog_workload *workload, uint32_t total_weight)
{
	uint32_t pick = below(workload, total_weight);
	uint8_t name = 0;

	while (pick >= names[name].weight)
		pick -= names[name++].weight;
	return name;
}

void kextlog_workload_init(struct kextlog_workload *workload, uint64_t seed)
{
	/* splitmix64 spreads nearby seeds apart; xorshift needs a non-zero state. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull;
	uint32_t total_weight = 0, pid = 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	memset(workload, 0, sizeof *workload);
	workload->rng = z != 0 ? z : 1;

	for (uint8_t name = 0; name < COUNT(names); name++)
		total_weight += names[name].weight;
	workload->processes[0] = (struct kextlog_workload_process){ 0, 0, MAX_THREADS };
	workload->processes[1] = (struct kextlog_workload_process){ 1, 1, 2 };
	for (uint32_t i = 2; i < KEXTLOG_WORKLOAD_PROCESSES; i++) {
		pid += 1 + below(workload, PID_GAP_MAX);
		workload->processes[i].pid = pid;
		workload->processes[i].name = weighted_name(workload, total_weight);
		workload->processes[i].threads = (uint8_t)(1 + below(workload, MAX_THREADS));
	}
}

static void trace_event(struct kextlog_workload *workload)
{
	switch (below(workload, 3)) {
	case 0: {
		uint32_t action = below(workload, COUNT(vnode_actions));

		log_trace("vnode: %s vp=0x%llx path=%s", vnode_actions[action].text,
		    kernel_address(workload), path(workload));
		break;
	}
	case 1:
		log_trace("fileop: KAUTH_FILEOP_CLOSE path=%s flags=0x%x", path(workload),
		    below(workload, 2) ? 0x2u : 0x0u);
		break;
	default:
		log_trace("vnode: callback action=0x%08x vp=0x%llx dvp=0x%llx result=KAUTH_RESULT_DEFER",
		    vnode_actions[below(workload, COUNT(vnode_actions))].action,
		    kernel_address(workload), kernel_address(workload));
		break;
	}
}

static void debug_event(struct kextlog_workload *workload)
{
	const struct kextlog_workload_process *target;

	switch (below(workload, 3)) {
	case 0: {
		const char *resolved = path(workload);

		log_debug("vnode: vn_getpath vp=0x%llx len=%u path=%s", kernel_address(workload),
		    (unsigned)strlen(resolved) + 1, resolved);
		break;
	}
	case 1:
		target = process(workload);
		log_debug("process: KAUTH_PROCESS_CANTRACE target=%u (%s) result=KAUTH_RESULT_DEFER",
		    target->pid, names[target->name].name);
		break;
	default:
		log_debug("fileop: KAUTH_FILEOP_LINK from=%s to=%s", path(workload), path(workload));
		break;
	}
}

static void info_event(struct kextlog_workload *workload,
    const struct kextlog_workload_process *current)
{
	const struct kextlog_workload_process *target;
	const char *renamed;

	switch (below(workload, 7)) {
	case 0:
		log_info("fileop: KAUTH_FILEOP_OPEN path=%s flags=0x%x", path(workload),
		    open_flags[below(workload, COUNT(open_flags))]);
		break;
	case 1: {
		uint32_t action = below(workload, COUNT(vnode_actions));

		log_info("vnode: %s vp=0x%llx path=%s", vnode_actions[action].text,
		    kernel_address(workload), path(workload));
		break;
	}
	case 2:
		log_info("fileop: KAUTH_FILEOP_EXEC vp=0x%llx path=%s", kernel_address(workload),
		    path(workload));
		break;
	case 3: {
		uint32_t signal = below(workload, COUNT(signals));

		target = process(workload);
		log_info("process: KAUTH_PROCESS_CANSIGNAL target=%u (%s) signal=%d (%s)",
		    target->pid, names[target->name].name, signals[signal].number,
		    signals[signal].name);
		break;
	}
	case 4:
		/* Editors save to a side file and rename it over the original. */
		renamed = path(workload);
		log_info("fileop: KAUTH_FILEOP_RENAME from=%s.sb-%08x to=%s", renamed,
		    (unsigned)next(workload), renamed);
		break;
	case 5:
		log_info("generic: KAUTH_GENERIC_ISSUSER cred=0x%llx uid=%u result=KAUTH_RESULT_ALLOW",
		    kernel_address(workload), uid(current));
		break;
	default:
		log_info("fileop: KAUTH_FILEOP_DELETE vp=0x%llx path=%s", kernel_address(workload),
		    path(workload));
		break;
	}
}

static void warning_event(struct kextlog_workload *workload,
    const struct kextlog_workload_process *current)
{
	const struct kextlog_workload_process *target;

	switch (below(workload, 3)) {
	case 0:
		log_warning("generic: KAUTH_GENERIC_ISSUSER uid=%u denied", uid(current));
		break;
	case 1:
		target = process(workload);
		log_warning("process: KAUTH_PROCESS_CANTRACE target=%u (%s) denied for uid=%u",
		    target->pid, names[target->name].name, uid(current));
		break;
	default:
		log_warning("vnode: KAUTH_VNODE_WRITE_DATA denied vp=0x%llx path=%s errno=%d",
		    kernel_address(workload), path(workload), below(workload, 2) ? 13 : 1);
		break;
	}
}

static void error_event(struct kextlog_workload *workload)
{
	switch (below(workload, 3)) {
	case 0:
		log_error("vnode: cannot resolve path for vp=0x%llx (NULL path)",
		    kernel_address(workload));
		break;
	case 1:
		log_error("vnode: vn_getpath failed errno=28 (ENOSPC) vp=0x%llx dvp=0x%llx",
		    kernel_address(workload), kernel_address(workload));
		break;
	default:
		log_error("fileop: KAUTH_FILEOP_RENAME without paths arg0=0x%llx arg1=0x%llx",
		    kernel_address(workload), kernel_address(workload));
		break;
	}
}

void kextlog_workload_event(struct kextlog_workload *workload)
{
	const struct kextlog_workload_process *current = process(workload);
	uint32_t level = below(workload, 100);

	workload->current.pid = current->pid;
	workload->current.tid = thread_id(current->pid, below(workload, current->threads));
	memcpy(workload->current.name, names[current->name].name, KEXTLOG_PROCESS_NAME_MAX);

	/* trace 30%, debug 10%, info 50%, warning 7%, error 3% */
	if (level < 30)
		trace_event(workload);
	else if (level < 40)
		debug_event(workload);
	else if (level < 90)
		info_event(workload, current);
	else if (level < 97)
		warning_event(workload, current);
	else
		error_event(workload);
}
