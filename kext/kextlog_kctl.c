/*
 * kextlog_kctl.c - the kextlog logger in a macOS kext: the portable core on
 * a kernel control socket, with a timer and sysctls.
 *
 * The kernel twin of kext/sim/kextlog_sim.c: the same core, with public KPIs
 * as its platform (com.apple.kpi.bsd, libkern and mach, and com.apple.kpi.iokit
 * for the ring's boot-arg; kext/README.md maps each symbol to its bundle).
 *
 * Locking: one mutex serialises the core (a mutex, because ctl_enqueuedata,
 * called under it, takes the client socket's mutex) and says which unit is
 * the client.  Lifetime: log_printf() callers and the timer are counted, so
 * kextlog_stop() frees nothing that one of them still uses.
 */
#include <kern/clock.h>
#include <kern/locks.h>
#include <kern/thread.h>
#include <kern/thread_call.h>
#include <libkern/OSMalloc.h>
#include <libkern/sysctl.h>
#include <mach/mach_time.h>
#include <pexpert/pexpert.h>
#include <sys/errno.h>
#include <sys/kern_control.h>
#include <sys/kpi_mbuf.h>
#include <sys/proc.h>
#include <sys/sysctl.h>
#include <sys/systm.h>
#include <sys/time.h>
#include <uuid/uuid.h>

#include "kextlog.h"
#include "kextlog_core.h"

/* The client's receive buffer (ctl_recvsize), where bursts wait until the
 * daemon reads.  Bounded by kern.ipc.maxsockbuf (8 MiB by default): until
 * macOS 14 a request over 8/9 of it made every connect fail (ENOBUFS). */
#define RECEIVE_BUFFER_BYTES (4u << 20)
#define SEND_BUFFER_BYTES    4096u   /* ctl_sendsize: the client only sends ACK and RESUME */
#define SEND_BATCH_BYTES     65536u  /* most bytes per enqueue, so per datagram */
#define INPUT_PIECE_BYTES    256u    /* client input is copied out of its mbufs in pieces */
#define TICK_MS              100u
#define WAIT_MS              10u     /* how often kextlog_stop() looks whether users are gone */
#define NS_PER_MS            1000000u
#define NS_PER_S             1000000000ull
#define SYSCTL_NAME_MAX      32u

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* The read-only sysctls: struct kextlog_counters fields under their names. */
static const struct {
	const char *name;
	const char *description;
	size_t      offset;
} counter_sysctls[] = {
	{ "delivered", "frames (LOG, LOSS) handed to the client, replays included",
	  offsetof(struct kextlog_counters, frames_sent) },
	{ "acknowledged", "highest seq the client acknowledged",
	  offsetof(struct kextlog_counters, acked_seq) },
	{ "diverted", "messages the ring could not keep: printed by the kernel, lost",
	  offsetof(struct kextlog_counters, lost) },
	{ "truncated", "messages cut to fit", offsetof(struct kextlog_counters, truncated) },
	{ "heap", "messages formatted on the heap path", offsetof(struct kextlog_counters, heap) },
	{ "nomem", "long messages cut for want of memory", offsetof(struct kextlog_counters, nomem) },
	{ "ratelimited", "messages held back by a call site's rate limit",
	  offsetof(struct kextlog_counters, ratelimited) },
	{ "logged", "messages that got a seq", offsetof(struct kextlog_counters, logged) },
	{ "filtered", "messages under the minimum level",
	  offsetof(struct kextlog_counters, below_min_level) },
	{ "send_busy", "sends the client had no room for (retried)",
	  offsetof(struct kextlog_counters, send_busy) },
	{ "bad_input", "client writes refused: malformed, or not valid now",
	  offsetof(struct kextlog_counters, bad_input) },
	{ "connects", "clients accepted", offsetof(struct kextlog_counters, connects) },
	{ "ring_records", "frames held now", offsetof(struct kextlog_counters, ring_records) },
	{ "ring_capacity", "ring capacity in records", offsetof(struct kextlog_counters, ring_capacity) },
	{ "ring_high_water", "most frames held at once",
	  offsetof(struct kextlog_counters, ring_high_water) },
};

/* Everything kextlog_start() sets up; zero when stopped. */
static struct {
	bool                started;
	struct kextlog_core core;
	uint8_t            *ring;
	uint32_t            ring_bytes;
	OSMallocTag         malloc_tag;
	lck_grp_t          *lock_group;
	lck_mtx_t          *lock;
	kern_ctl_ref        control;
	bool                stream;
	bool                client;       /* under lock: a client is connected ... */
	uint32_t            client_unit;  /* ... on this unit */
	thread_call_t       timer;
	uint32_t            timer_armed;  /* atomic: an invocation is pending or running */
	uint32_t            timer_stopping;
	bool                sysctls_registered;
	char                sysctl_name[SYSCTL_NAME_MAX];
	struct sysctl_oid_list sysctl_children;
	struct sysctl_oid   sysctl_node;
	struct sysctl_oid   sysctl_oids[COUNT(counter_sysctls) + 1]; /* the counters, min_level */
} logger;

/* Who may use the core: outside logger, so that resetting logger never
 * races with a log_printf() that arrives as the logger stops. */
static struct {
	uint32_t running; /* atomic: log_printf() goes to the core */
	uint32_t callers; /* atomic: log_printf() calls using the core now */
} gate;

/* What log_printf() prints outside kextlog_start()..kextlog_stop(). */
static uint32_t fallback_min_level = KEXTLOG_LEVEL_TRACE;

/* ---- the platform of the core ---- */

static void platform_lock(void *context)
{
	(void)context;
	lck_mtx_lock(logger.lock);
}

static void platform_unlock(void *context)
{
	(void)context;
	lck_mtx_unlock(logger.lock);
}

static uint64_t platform_wall_time(void *context)
{
	struct timespec now;

	(void)context;
	nanotime(&now);
	return (uint64_t)now.tv_sec * NS_PER_S + (uint64_t)now.tv_nsec;
}

/* Since boot, not counting sleep (mach_absolute_time stops while asleep). */
static uint64_t platform_mono_time(void *context)
{
	uint64_t ns;

	(void)context;
	absolutetime_to_nanoseconds(mach_absolute_time(), &ns);
	return ns;
}

static void platform_current_task(void *context, struct kextlog_task *task)
{
	(void)context;
	task->pid = (uint32_t)proc_selfpid();
	task->tid = thread_tid(current_thread());
	proc_selfname(task->name, (int)sizeof task->name);
}

/* Under the lock, so the client cannot change.  A SOCK_DGRAM control glues
 * enqueued data to the current record unless told it ends: CTL_DATA_EOR
 * makes each send one datagram of whole frames, as the daemon reads them. */
static uint32_t platform_send(void *context, const uint8_t *data, uint32_t length)
{
	uint32_t flags = logger.stream ? 0 : CTL_DATA_EOR;

	(void)context;
	/* ENOBUFS (no room), ENOMEM (no mbufs), EINVAL (the client is leaving):
	 * the frames stay in the ring for the next try.  The KPI only reads data. */
	if (ctl_enqueuedata(logger.control, logger.client_unit, (void *)(uintptr_t)data, length,
	    flags) != 0)
		return 0;
	return length;
}

static void platform_last_resort(void *context, uint32_t level, const char *what,
    const char *message)
{
	(void)context;
	(void)level; /* printf has none: the level is named in what */
	printf("%s: %s: %s\n", logger.core.config.name, what, message);
}

static void *platform_alloc(void *context, size_t size)
{
	(void)context;
	return size <= UINT32_MAX ? OSMalloc_noblock((uint32_t)size, logger.malloc_tag) : NULL;
}

static void platform_free(void *context, void *memory, size_t size)
{
	(void)context;
	OSFree(memory, (uint32_t)size, logger.malloc_tag);
}

static const struct kextlog_ops platform_ops = {
	.lock = platform_lock,
	.unlock = platform_unlock,
	.wall_time_ns = platform_wall_time,
	.mono_time_ns = platform_mono_time,
	.current_task = platform_current_task,
	.send = platform_send,
	.last_resort = platform_last_resort,
	.alloc = platform_alloc,
	.free = platform_free,
};

/* ---- the kernel control ---- */

static bool is_client(uint32_t unit)
{
	bool client;

	lck_mtx_lock(logger.lock);
	client = logger.client && logger.client_unit == unit;
	lck_mtx_unlock(logger.lock);
	return client;
}

static errno_t control_connect(kern_ctl_ref control, struct sockaddr_ctl *address,
    void **unitinfo)
{
	bool taken;

	(void)control;
	(void)unitinfo;
	lck_mtx_lock(logger.lock);
	taken = logger.client;
	if (!taken) {
		logger.client = true;
		logger.client_unit = address->sc_unit;
	}
	lck_mtx_unlock(logger.lock);
	if (taken)
		return EISCONN; /* one client at a time */
	kextlog_core_connect(&logger.core);
	return 0;
}

/* XNU also calls this for a client whose connect was refused: only the
 * client's own disconnect ends the connection. */
static errno_t control_disconnect(kern_ctl_ref control, u_int32_t unit, void *unitinfo)
{
	(void)control;
	(void)unitinfo;
	if (!is_client(unit))
		return 0;
	kextlog_core_disconnect(&logger.core);
	lck_mtx_lock(logger.lock);
	logger.client = false;
	lck_mtx_unlock(logger.lock);
	return 0;
}

/* What the client wrote (ACK, RESUME).  Input is untrusted, even from root:
 * it is copied out piece by piece, never past what the chain holds, and the
 * core checks every frame against the connection's state.  A write is
 * dropped from its first refused piece on (counted once, bad_input); the
 * chain is freed whatever happens. */
static errno_t control_send(kern_ctl_ref control, u_int32_t unit, void *unitinfo, mbuf_t chain,
    int flags)
{
	uint8_t piece[INPUT_PIECE_BYTES];
	size_t length = 0, offset = 0;

	(void)control;
	(void)unitinfo;
	(void)flags;
	if (is_client(unit)) {
		for (mbuf_t m = chain; m != NULL; m = mbuf_next(m))
			length += mbuf_len(m);
		while (offset < length) {
			size_t size = length - offset < sizeof piece ? length - offset : sizeof piece;

			if (mbuf_copydata(chain, offset, size, piece) != 0 ||
			    kextlog_core_receive(&logger.core, piece, size) != KEXTLOG_WIRE_OK)
				break;
			offset += size;
		}
	}
	mbuf_freem(chain);
	return 0;
}

/* ---- the timer ---- */

static void arm_timer(void)
{
	uint64_t deadline;

	clock_interval_to_deadline(TICK_MS, NS_PER_MS, &deadline);
	thread_call_enter_delayed(logger.timer, deadline);
}

/* The resume timeout, STATUS frames, and another try for frames the client
 * had no room for: the KPI does not tell a kext that the client has read. */
static void timer_fired(thread_call_param_t param0, thread_call_param_t param1)
{
	(void)param0;
	(void)param1;
	kextlog_core_tick(&logger.core);
	if (__atomic_load_n(&logger.timer_stopping, __ATOMIC_SEQ_CST) == 0)
		arm_timer();
	else
		__atomic_store_n(&logger.timer_armed, 0, __ATOMIC_SEQ_CST); /* its last touch */
}

/* Sleeps until *count is 0.  Nobody wakes the channel: it polls. */
static void wait_for_zero(uint32_t *count)
{
	while (__atomic_load_n(count, __ATOMIC_SEQ_CST) != 0) {
		struct timespec pause = { .tv_sec = 0, .tv_nsec = WAIT_MS * NS_PER_MS };

		msleep(count, NULL, 0, "kextlog", &pause);
	}
}

/* thread_call_cancel_wait() is private to Apple: the timer itself says when
 * it has stopped re-arming. */
static void stop_timer(void)
{
	__atomic_store_n(&logger.timer_stopping, 1, __ATOMIC_SEQ_CST);
	if (thread_call_cancel(logger.timer))
		__atomic_store_n(&logger.timer_armed, 0, __ATOMIC_SEQ_CST);
	wait_for_zero(&logger.timer_armed);
	thread_call_free(logger.timer);
}

/* ---- sysctl: debug.<sysctl_name>.* ---- */

static int sysctl_counter SYSCTL_HANDLER_ARGS
{
	struct kextlog_counters counters;
	uint64_t value;

	(void)arg1;
	kextlog_core_counters(&logger.core, &counters);
	memcpy(&value, (const uint8_t *)&counters + counter_sysctls[arg2].offset, sizeof value);
	return sysctl_handle_quad(oidp, &value, 0, req);
}

static int sysctl_min_level SYSCTL_HANDLER_ARGS
{
	int level = (int)logger.core.config.min_level;
	int error = sysctl_handle_int(oidp, &level, 0, req);

	(void)arg1;
	(void)arg2;
	if (error != 0 || req->newptr == 0)
		return error;
	if (level < KEXTLOG_LEVEL_TRACE || level > KEXTLOG_LEVEL_ERROR)
		return EINVAL;
	kextlog_core_set_min_level(&logger.core, (uint32_t)level);
	return 0;
}

static struct sysctl_oid make_oid(struct sysctl_oid_list *parent, int kind, void *arg1, int arg2,
    const char *name, int (*handler)SYSCTL_HANDLER_ARGS, const char *format,
    const char *description)
{
	return (struct sysctl_oid){
		.oid_parent = parent,
		.oid_number = OID_AUTO,
		.oid_kind = kind | CTLFLAG_LOCKED | CTLFLAG_OID2,
		.oid_arg1 = arg1,
		.oid_arg2 = arg2,
		.oid_name = name,
		.oid_handler = handler,
		.oid_fmt = format,
		.oid_descr = description,
		.oid_version = SYSCTL_OID_VERSION,
	};
}

/* Built at every start: registration writes the oid numbers back. */
static void register_sysctls(void)
{
	size_t count = COUNT(counter_sysctls);

	SLIST_INIT(&logger.sysctl_children);
	logger.sysctl_node = make_oid(&sysctl__debug_children, CTLTYPE_NODE | CTLFLAG_RW,
	    &logger.sysctl_children, 0, logger.sysctl_name, NULL, "N", "kextlog logger");
	for (size_t i = 0; i < count; i++)
		logger.sysctl_oids[i] = make_oid(&logger.sysctl_children, CTLTYPE_QUAD | CTLFLAG_RD,
		    NULL, (int)i, counter_sysctls[i].name, sysctl_counter, "QU",
		    counter_sysctls[i].description);
	logger.sysctl_oids[count] = make_oid(&logger.sysctl_children, CTLTYPE_INT | CTLFLAG_RW,
	    NULL, 0, "min_level", sysctl_min_level, "I",
	    "minimum level logged: 1 TRACE, 2 DEBUG, 3 INFO, 4 WARNING, 5 ERROR");

	sysctl_register_oid(&logger.sysctl_node);
	for (size_t i = 0; i < COUNT(logger.sysctl_oids); i++)
		sysctl_register_oid(&logger.sysctl_oids[i]);
	logger.sysctls_registered = true;
}

/* Waits for handlers that are running (the kernel does). */
static void unregister_sysctls(void)
{
	for (size_t i = 0; i < COUNT(logger.sysctl_oids); i++)
		sysctl_unregister_oid(&logger.sysctl_oids[i]);
	sysctl_unregister_oid(&logger.sysctl_node);
}

/* ---- start and stop ---- */

/* A non-empty string that fits in size bytes, NUL included. */
static bool fits(const char *text, size_t size)
{
	return text != NULL && text[0] != '\0' && strnlen(text, size) < size;
}

static bool valid(const struct kextlog_settings *settings)
{
	return settings != NULL && fits(settings->control_name, MAX_KCTL_NAME) &&
	    fits(settings->producer_name, KEXTLOG_NAME_MAX) &&
	    fits(settings->sysctl_name, SYSCTL_NAME_MAX) && strchr(settings->sysctl_name, '.') == NULL &&
	    settings->socket_type <= KEXTLOG_SOCKET_STREAM &&
	    settings->min_level >= KEXTLOG_LEVEL_TRACE && settings->min_level <= KEXTLOG_LEVEL_ERROR;
}

/* The kext's capacity, or the boot-arg's: a machine can get a larger ring
 * without a rebuild. */
static uint32_t ring_records(const struct kextlog_settings *settings)
{
	uint32_t records = settings->ring_records;
	uint32_t clamped;

	if (settings->ring_boot_arg != NULL)
		PE_parse_boot_argn(settings->ring_boot_arg, &records, (int)sizeof records);
	clamped = records < KEXTLOG_RING_RECORDS_MIN ? KEXTLOG_RING_RECORDS_MIN :
	    records > KEXTLOG_RING_RECORDS_MAX ? KEXTLOG_RING_RECORDS_MAX : records;
	if (clamped != records)
		printf("%s: kextlog: a ring of %u records is out of range, using %u\n",
		    settings->producer_name, records, clamped);
	return clamped;
}

/* The boot session (kern.bootsessionuuid, a string); zero when unknown. */
static void read_boot_id(uint8_t id[KEXTLOG_ID_SIZE])
{
	uuid_string_t text;
	size_t length = sizeof text;

	if (sysctlbyname("kern.bootsessionuuid", text, &length, NULL, 0) == 0) {
		text[sizeof text - 1] = '\0';
		if (uuid_parse(text, id) == 0)
			return;
	}
	memset(id, 0, KEXTLOG_ID_SIZE);
}

static struct kextlog_config core_config(const struct kextlog_settings *settings)
{
	struct kextlog_config config = {
		.producer_version = settings->producer_version,
		.min_level = settings->min_level,
		.send_batch_bytes = SEND_BATCH_BYTES,
		.resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS,
		.status_interval_ns = KEXTLOG_STATUS_INTERVAL_NS,
	};

	uuid_generate_random(config.instance_id);
	read_boot_id(config.boot_id);
	memcpy(config.name, settings->producer_name, strlen(settings->producer_name) + 1);
	return config;
}

/* Undoes kextlog_start() from wherever it got, once no client can come.
 * After a start, what the ring still holds unacknowledged goes to the
 * kernel log once nothing can log any more. */
static void teardown(void)
{
	if (logger.sysctls_registered)
		unregister_sysctls();
	__atomic_store_n(&gate.running, 0, __ATOMIC_SEQ_CST);
	wait_for_zero(&gate.callers);
	if (logger.timer != NULL)
		stop_timer();
	if (logger.started)
		kextlog_core_stop(&logger.core);
	if (logger.ring != NULL)
		OSFree(logger.ring, logger.ring_bytes, logger.malloc_tag);
	if (logger.lock != NULL)
		lck_mtx_free(logger.lock, logger.lock_group);
	if (logger.lock_group != NULL)
		lck_grp_free(logger.lock_group);
	if (logger.malloc_tag != NULL)
		OSMalloc_Tagfree(logger.malloc_tag);
	memset(&logger, 0, sizeof logger);
}

int kextlog_start(const struct kextlog_settings *settings)
{
	struct kextlog_config config;
	struct kern_ctl_reg registration = {
		.ctl_sendsize = SEND_BUFFER_BYTES,
		.ctl_recvsize = RECEIVE_BUFFER_BYTES,
		.ctl_connect = control_connect,
		.ctl_disconnect = control_disconnect,
		.ctl_send = control_send,
	};
	uint32_t records;
	errno_t error;

	if (logger.started)
		return EALREADY;
	if (!valid(settings))
		return EINVAL;
	config = core_config(settings);
	records = ring_records(settings);
	logger.ring_bytes = kextlog_ring_bytes(records);
	logger.malloc_tag = OSMalloc_Tagalloc(settings->producer_name, OSMT_DEFAULT);
	logger.lock_group = lck_grp_alloc_init(settings->producer_name, LCK_GRP_ATTR_NULL);
	if (logger.malloc_tag != NULL)
		logger.ring = OSMalloc(logger.ring_bytes, logger.malloc_tag);
	if (logger.lock_group != NULL)
		logger.lock = lck_mtx_alloc_init(logger.lock_group, LCK_ATTR_NULL);
	logger.timer = thread_call_allocate(timer_fired, NULL);
	if (logger.ring == NULL || logger.lock == NULL || logger.timer == NULL) {
		teardown();
		return ENOMEM;
	}
	kextlog_core_init(&logger.core, &platform_ops, NULL, &config, logger.ring, logger.ring_bytes,
	    records);
	logger.stream = settings->socket_type == KEXTLOG_SOCKET_STREAM;
	__atomic_store_n(&gate.running, 1, __ATOMIC_SEQ_CST); /* from now on messages wait in the ring */
	logger.timer_armed = 1;
	arm_timer();
	memcpy(logger.sysctl_name, settings->sysctl_name, strlen(settings->sysctl_name) + 1);
	register_sysctls();

	/* Last: from here a client can connect. */
	memcpy(registration.ctl_name, settings->control_name, strlen(settings->control_name) + 1);
	registration.ctl_flags = CTL_FLAG_PRIVILEGED | (logger.stream ? CTL_FLAG_REG_SOCK_STREAM : 0);
	error = ctl_register(&registration, &logger.control);
	if (error != 0) {
		printf("%s: kextlog: cannot register the control %s (error %d)\n",
		    settings->producer_name, settings->control_name, error);
		teardown();
		return error;
	}
	logger.started = true;
	return 0;
}

int kextlog_stop(void)
{
	errno_t error;

	if (!logger.started)
		return 0;
	/* First, while everything still runs: with a client connected this
	 * fails and the kext stays loaded, logging as before. */
	error = ctl_deregister(logger.control);
	if (error != 0) {
		printf("%s: kextlog: a client is connected, refusing to stop (error %d)\n",
		    logger.core.config.name, error);
		return error;
	}
	fallback_min_level = logger.core.config.min_level;
	teardown();
	return 0;
}

/* ---- the API of kextlog.h ---- */

/* log_printf() and its kin use the core only between these two. */
static void leave(void)
{
	__atomic_sub_fetch(&gate.callers, 1, __ATOMIC_SEQ_CST);
}

static bool enter(void)
{
	__atomic_add_fetch(&gate.callers, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&gate.running, __ATOMIC_SEQ_CST) != 0)
		return true;
	leave();
	return false;
}

/* No ring to keep it in: the kernel log, as the seed did. */
static void __printflike(2, 0) print_directly(uint32_t level, const char *format,
    va_list arguments)
{
	char message[KEXTLOG_STACK_MESSAGE + 1];

	vsnprintf(message, sizeof message, format, arguments);
	printf("kextlog %s: %s\n", kextlog_level_name(level), message);
}

/* Never sleeps: the core allocates with OSMalloc_noblock and holds its mutex
 * only briefly.  Not from interrupt context or under a spinlock. */
void log_printf(uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	if (enter()) {
		kextlog_core_vlog(&logger.core, level, format, arguments);
		kextlog_core_pump(&logger.core);
		leave();
	} else if (level >= fallback_min_level) {
		print_directly(level, format, arguments);
	}
	va_end(arguments);
}

bool kextlog_ratelimit(struct kextlog_ratelimit *state, const char *where)
{
	bool pass = true;

	if (enter()) {
		pass = kextlog_core_ratelimit(&logger.core, state, where);
		leave();
	}
	return pass;
}

/* Read without the lock, as the core reads it: a new minimum level applies
 * from the next message on. */
bool kextlog_level_enabled(uint32_t level)
{
	uint32_t minimum = fallback_min_level;

	if (enter()) {
		minimum = logger.core.config.min_level;
		leave();
	}
	return level >= minimum;
}
