/*
 * xnu_shim.c - TEST CODE: the fake kernel behind tests/xnu_shim/ (see
 * xnu_shim.h).  It follows XNU where the glue depends on it: kern_control.c
 * (EPROTOTYPE, EPERM, disconnect after a refused connect, EBUSY at
 * deregister, ENOBUFS when the receive buffer lacks room), kpi_mbuf.c
 * (mbuf_copydata fails past the chain) and kern_newsysctl.c (OID_AUTO
 * numbers written back, write permission checked before the handler).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <kern/clock.h>
#include <kern/locks.h>
#include <kern/thread.h>
#include <libkern/OSMalloc.h>
#include <libkern/sysctl.h>
#include <mach/mach_time.h>
#include <pexpert/pexpert.h>
#include <sys/proc.h>
#include <sys/systm.h>
#include <sys/time.h>
#include <uuid/uuid.h>

#include "kextlog_codec.h"
#include "xnu_shim.h"

#define TICKS_PER_NS   3u
#define SLEEP_NS       10000000ull
#define SLEEPS_MAX     100000u      /* a wait that long never ends */
#define WALL_START_NS  1700000000123456789ull
#define MONO_START_NS  3600000000000ull
#define CONTROL_ID     0x4b584c47u

struct kextlog_shim kextlog_shim;

static void fatal(const char *what)
{
	fprintf(stderr, "xnu_shim: %s\n", what);
	abort();
}

static void *zalloc(size_t size)
{
	void *memory = calloc(1, size);

	if (memory == NULL)
		fatal("out of memory");
	return memory;
}

/* ---- locks ---- */

struct _lck_grp_ {
	int locks;
};

struct __lck_mtx_t__ {
	pthread_mutex_t mutex;
	lck_grp_t      *group;
};

lck_grp_t *lck_grp_alloc_init(const char *grp_name, lck_grp_attr_t *attr)
{
	(void)grp_name;
	(void)attr;
	kextlog_shim.live_groups++;
	return zalloc(sizeof(lck_grp_t));
}

void lck_grp_free(lck_grp_t *grp)
{
	if (grp->locks != 0)
		fatal("lck_grp_free: the group still has locks");
	kextlog_shim.live_groups--;
	free(grp);
}

/* Error-checking: locking twice or unlocking a free mutex aborts. */
lck_mtx_t *lck_mtx_alloc_init(lck_grp_t *grp, lck_attr_t *attr)
{
	lck_mtx_t *lock = zalloc(sizeof *lock);
	pthread_mutexattr_t checking;

	(void)attr;
	pthread_mutexattr_init(&checking);
	pthread_mutexattr_settype(&checking, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&lock->mutex, &checking);
	pthread_mutexattr_destroy(&checking);
	lock->group = grp;
	grp->locks++;
	kextlog_shim.live_locks++;
	return lock;
}

void lck_mtx_free(lck_mtx_t *lck, lck_grp_t *grp)
{
	if (lck->group != grp)
		fatal("lck_mtx_free: wrong group");
	pthread_mutex_destroy(&lck->mutex);
	grp->locks--;
	kextlog_shim.live_locks--;
	free(lck);
}

void lck_mtx_lock(lck_mtx_t *lck)
{
	if (pthread_mutex_lock(&lck->mutex) != 0)
		fatal("lck_mtx_lock: already held");
}

void lck_mtx_unlock(lck_mtx_t *lck)
{
	if (pthread_mutex_unlock(&lck->mutex) != 0)
		fatal("lck_mtx_unlock: not held");
}

/* ---- memory ---- */

struct __OSMallocTag__ {
	int blocks;
};

/* Each block starts with its size and tag, checked by OSFree. */
struct block {
	uint32_t    size;
	OSMallocTag tag;
	_Alignas(16) uint8_t memory[];
};

OSMallocTag OSMalloc_Tagalloc(const char *name, uint32_t flags)
{
	(void)name;
	(void)flags;
	kextlog_shim.live_tags++;
	return zalloc(sizeof(struct __OSMallocTag__));
}

void OSMalloc_Tagfree(OSMallocTag tag)
{
	if (tag->blocks != 0)
		kextlog_shim.bad_frees++;
	kextlog_shim.live_tags--;
	free(tag);
}

static void *allocate(uint32_t size, OSMallocTag tag, bool fails)
{
	struct block *block;

	if (fails)
		return NULL;
	block = zalloc(sizeof *block + size);
	block->size = size;
	block->tag = tag;
	memset(block->memory, 0xA5, size); /* whoever sends it must clear it */
	tag->blocks++;
	kextlog_shim.live_blocks++;
	return block->memory;
}

void *OSMalloc(uint32_t size, OSMallocTag tag)
{
	return allocate(size, tag, kextlog_shim.osmalloc_fails);
}

void *OSMalloc_noblock(uint32_t size, OSMallocTag tag)
{
	return allocate(size, tag, kextlog_shim.noblock_fails);
}

void OSFree(void *addr, uint32_t size, OSMallocTag tag)
{
	struct block *block = (struct block *)((uint8_t *)addr - offsetof(struct block, memory));

	if (block->size != size || block->tag != tag)
		kextlog_shim.bad_frees++;
	tag->blocks--;
	kextlog_shim.live_blocks--;
	free(block);
}

/* ---- time, task, boot ---- */

void nanotime(struct timespec *ts)
{
	ts->tv_sec = (time_t)(kextlog_shim.wall_ns / 1000000000ull);
	ts->tv_nsec = (long)(kextlog_shim.wall_ns % 1000000000ull);
}

uint64_t mach_absolute_time(void)
{
	return kextlog_shim.mono_ns * TICKS_PER_NS;
}

void absolutetime_to_nanoseconds(uint64_t abstime, uint64_t *result)
{
	*result = abstime / TICKS_PER_NS;
}

void clock_interval_to_deadline(uint32_t interval, uint32_t scale_factor, uint64_t *result)
{
	*result = mach_absolute_time() + (uint64_t)interval * scale_factor * TICKS_PER_NS;
}

static const struct kextlog_task *task(void)
{
	return kextlog_shim.task_source != NULL ? kextlog_shim.task_source : &kextlog_shim.task;
}

static struct thread {
	int unused;
} the_thread;

thread_t current_thread(void)
{
	return &the_thread;
}

uint64_t thread_tid(thread_t thread)
{
	if (thread != &the_thread)
		fatal("thread_tid: not the current thread");
	return task()->tid;
}

int proc_selfpid(void)
{
	return (int)task()->pid;
}

/* As XNU's: the name cut to size - 1 bytes, NUL-terminated. */
void proc_selfname(char *buf, int size)
{
	snprintf(buf, (size_t)size, "%.*s", (int)sizeof task()->name, task()->name);
}

boolean_t PE_parse_boot_argn(const char *arg_string, void *arg_ptr, int max_arg)
{
	if (kextlog_shim.boot_arg == NULL || strcmp(arg_string, kextlog_shim.boot_arg) != 0)
		return FALSE;
	if (max_arg != (int)sizeof kextlog_shim.boot_arg_value)
		fatal("PE_parse_boot_argn: a 4-byte number was expected");
	memcpy(arg_ptr, &kextlog_shim.boot_arg_value, sizeof kextlog_shim.boot_arg_value);
	return TRUE;
}

int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
	size_t length;

	if (newp != NULL || newlen != 0)
		fatal("sysctlbyname: the glue only reads");
	if (strcmp(name, "kern.bootsessionuuid") != 0 || kextlog_shim.boot_session == NULL)
		return ENOENT;
	length = strlen(kextlog_shim.boot_session) + 1;
	if (*oldlenp < length)
		return ENOMEM;
	memcpy(oldp, kextlog_shim.boot_session, length);
	*oldlenp = length;
	return 0;
}

/* Predictable ids: call n gives bytes n*16 + 0..15. */
void uuid_generate_random(uuid_t out)
{
	for (int i = 0; i < 16; i++)
		out[i] = (uint8_t)(kextlog_shim.uuids * 16u + (unsigned)i);
	kextlog_shim.uuids++;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int uuid_parse(const uuid_string_t in, uuid_t uu)
{
	int byte = 0;

	for (int i = 0; i < 36; i++) {
		int high, low;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (in[i] != '-')
				return -1;
			continue;
		}
		high = hex_digit(in[i]);
		low = hex_digit(in[++i]);
		if (high < 0 || low < 0)
			return -1;
		uu[byte++] = (uint8_t)(high << 4 | low);
	}
	return in[36] == '\0' ? 0 : -1;
}

int kextlog_shim_printf(const char *format, ...)
{
	size_t room = sizeof kextlog_shim.printed - kextlog_shim.printed_length;
	va_list arguments;
	int length;

	va_start(arguments, format);
	length = vsnprintf(kextlog_shim.printed + kextlog_shim.printed_length, room, format, arguments);
	va_end(arguments);
	if (length > 0)
		kextlog_shim.printed_length += (size_t)length < room ? (size_t)length : room - 1;
	return length;
}

/* ---- the timer ---- */

struct thread_call {
	thread_call_func_t  func;
	thread_call_param_t param0;
};

static struct thread_call *the_call;

thread_call_t thread_call_allocate(thread_call_func_t func, thread_call_param_t param0)
{
	if (the_call != NULL)
		fatal("thread_call_allocate: the glue needs one");
	the_call = zalloc(sizeof *the_call);
	the_call->func = func;
	the_call->param0 = param0;
	kextlog_shim.live_calls++;
	return the_call;
}

boolean_t thread_call_enter_delayed(thread_call_t call, uint64_t deadline)
{
	boolean_t was_pending = kextlog_shim.timer_pending;

	if (call != the_call)
		fatal("thread_call_enter_delayed: unknown call");
	kextlog_shim.timer_pending = true;
	kextlog_shim.timer_deadline = deadline;
	return was_pending;
}

/* With cancel_misses the call counts as begun: it stays queued and runs at
 * the next sleep, as it would on another CPU. */
boolean_t thread_call_cancel(thread_call_t call)
{
	if (call != the_call)
		fatal("thread_call_cancel: unknown call");
	if (!kextlog_shim.timer_pending || kextlog_shim.cancel_misses)
		return FALSE;
	kextlog_shim.timer_pending = false;
	return TRUE;
}

boolean_t thread_call_free(thread_call_t call)
{
	if (call != the_call)
		fatal("thread_call_free: unknown call");
	if (kextlog_shim.timer_pending)
		return FALSE;
	free(the_call);
	the_call = NULL;
	kextlog_shim.live_calls--;
	return TRUE;
}

bool kextlog_shim_fire_timer(void)
{
	if (!kextlog_shim.timer_pending)
		return false;
	kextlog_shim.timer_pending = false;
	kextlog_shim.timer_fires++;
	the_call->func(the_call->param0, NULL);
	return true;
}

/* Time passes; a timer that falls due meanwhile runs. */
int msleep(void *chan, lck_mtx_t *mtx, int pri, const char *wmesg, struct timespec *ts)
{
	(void)chan;
	(void)pri;
	(void)wmesg;
	if (mtx != NULL || ts == NULL)
		fatal("msleep: the glue sleeps with a timeout and no mutex");
	if (++kextlog_shim.sleeps > SLEEPS_MAX)
		fatal("msleep: waiting forever");
	kextlog_shim.mono_ns += SLEEP_NS;
	if (kextlog_shim.timer_pending && kextlog_shim.timer_deadline <= mach_absolute_time())
		kextlog_shim_fire_timer();
	return EWOULDBLOCK;
}

/* ---- mbufs ---- */

struct mbuf {
	struct mbuf *next;
	size_t       length;
	uint8_t      data[];
};

size_t mbuf_len(const mbuf_t mbuf)
{
	return mbuf->length;
}

mbuf_t mbuf_next(const mbuf_t mbuf)
{
	return mbuf->next;
}

errno_t mbuf_copydata(const mbuf_t mbuf, size_t offset, size_t length, void *out_data)
{
	uint8_t *out = out_data;
	const struct mbuf *m = mbuf;

	if (length > kextlog_shim.largest_copy)
		kextlog_shim.largest_copy = length;
	while (m != NULL && offset >= m->length) {
		offset -= m->length;
		m = m->next;
	}
	while (length > 0) {
		size_t part;

		if (m == NULL)
			return EINVAL;
		part = m->length - offset < length ? m->length - offset : length;
		memcpy(out, m->data + offset, part);
		out += part;
		length -= part;
		offset = 0;
		m = m->next;
	}
	return 0;
}

void mbuf_freem(mbuf_t mbuf)
{
	while (mbuf != NULL) {
		struct mbuf *next = mbuf->next;

		free(mbuf);
		kextlog_shim.live_mbufs--;
		mbuf = next;
	}
}

/* ---- the kernel control ---- */

/* True when data is a run of whole, valid frames. */
static bool whole_frames(const uint8_t *data, size_t length)
{
	uint32_t frame_length;

	for (size_t offset = 0; offset < length; offset += frame_length)
		if (kextlog_wire_check(data + offset, length - offset, &frame_length) != KEXTLOG_WIRE_OK)
			return false;
	return true;
}

#define CONTROL_REF ((kern_ctl_ref)&kextlog_shim.registration)

struct kextlog_shim_client *kextlog_shim_client(uint32_t unit)
{
	for (uint32_t i = 0; i < KEXTLOG_SHIM_CLIENTS; i++)
		if (kextlog_shim.clients[i].attached && kextlog_shim.clients[i].unit == unit)
			return &kextlog_shim.clients[i];
	return NULL;
}

errno_t ctl_register(struct kern_ctl_reg *userkctl, kern_ctl_ref *kctlref)
{
	size_t name_length = strnlen(userkctl->ctl_name, sizeof userkctl->ctl_name);

	if (kextlog_shim.register_error != 0)
		return kextlog_shim.register_error;
	if (userkctl->ctl_connect == NULL || name_length == 0 || name_length == MAX_KCTL_NAME)
		return EINVAL;
	if (kextlog_shim.registered)
		return EEXIST;
	userkctl->ctl_id = CONTROL_ID;
	kextlog_shim.registration = *userkctl;
	kextlog_shim.registered = true;
	*kctlref = CONTROL_REF;
	return 0;
}

errno_t ctl_deregister(kern_ctl_ref kctlref)
{
	if (!kextlog_shim.registered || kctlref != CONTROL_REF)
		return EINVAL;
	for (uint32_t i = 0; i < KEXTLOG_SHIM_CLIENTS; i++)
		if (kextlog_shim.clients[i].attached)
			return EBUSY;
	kextlog_shim.registered = false;
	return 0;
}

errno_t ctl_enqueuedata(kern_ctl_ref kctlref, u_int32_t unit, void *data, size_t len,
    u_int32_t flags)
{
	struct kextlog_shim_client *client = kextlog_shim_client(unit);

	if (kctlref != CONTROL_REF || !kextlog_shim.registered || client == NULL) {
		kextlog_shim.bad_units++;
		return EINVAL;
	}
	if (kextlog_shim.enqueue_error != 0 || len > kextlog_shim.room) {
		kextlog_shim.enqueue_failures++;
		return kextlog_shim.enqueue_error != 0 ? kextlog_shim.enqueue_error : ENOBUFS;
	}
	client->received = realloc(client->received, client->received_length + len);
	if (client->received == NULL)
		fatal("out of memory");
	memcpy(client->received + client->received_length, data, len);
	client->received_length += len;
	client->enqueues++;
	if (flags & CTL_DATA_EOR) {
		client->enqueues_eor++;
		if (!whole_frames(data, len))
			client->split_datagrams++;
	}
	if (len > client->largest_enqueue)
		client->largest_enqueue = len;
	if (kextlog_shim.room != SIZE_MAX)
		kextlog_shim.room -= len;
	return 0;
}

static void detach(struct kextlog_shim_client *client)
{
	client->attached = false;
	client->connected = false;
}

int kextlog_shim_connect(int type, bool root, uint32_t *unit)
{
	const struct kern_ctl_reg *control = &kextlog_shim.registration;
	bool stream = (control->ctl_flags & CTL_FLAG_REG_SOCK_STREAM) != 0;
	struct sockaddr_ctl address = { .sc_len = sizeof address, .sc_id = CONTROL_ID };
	struct kextlog_shim_client *client = NULL;
	int error;

	if (!kextlog_shim.registered)
		return ENOENT;
	if (stream != (type == SOCK_STREAM))
		return EPROTOTYPE;
	if ((control->ctl_flags & CTL_FLAG_PRIVILEGED) && !root)
		return EPERM;
	/* The lowest free unit from 1, in a free slot. */
	for (address.sc_unit = 1; kextlog_shim_client(address.sc_unit) != NULL; address.sc_unit++)
		;
	for (uint32_t i = 0; i < KEXTLOG_SHIM_CLIENTS && client == NULL; i++)
		if (!kextlog_shim.clients[i].attached)
			client = &kextlog_shim.clients[i];
	if (client == NULL)
		fatal("too many clients");
	free(client->received);
	*client = (struct kextlog_shim_client){ .attached = true, .unit = address.sc_unit };
	error = control->ctl_connect(CONTROL_REF, &address, &client->unitinfo);
	if (error != 0) {
		/* XNU calls disconnect after a refused connect, then drops it. */
		if (control->ctl_disconnect != NULL)
			control->ctl_disconnect(CONTROL_REF, client->unit, client->unitinfo);
		detach(client);
		return error;
	}
	client->connected = true;
	*unit = client->unit;
	return 0;
}

void kextlog_shim_disconnect(uint32_t unit)
{
	struct kextlog_shim_client *client = kextlog_shim_client(unit);

	if (client == NULL)
		fatal("disconnect: no such client");
	if (kextlog_shim.registration.ctl_disconnect != NULL)
		kextlog_shim.registration.ctl_disconnect(CONTROL_REF, unit, client->unitinfo);
	detach(client);
}

int kextlog_shim_write(uint32_t unit, const void *data, size_t length, size_t piece)
{
	struct kextlog_shim_client *client = kextlog_shim_client(unit);
	struct mbuf *chain = NULL, **tail = &chain;
	const uint8_t *bytes = data;
	size_t offset = 0;

	if (client == NULL || !client->connected)
		return ENOTCONN;
	if (piece == 0)
		piece = length > 0 ? length : 1;
	do { /* a write of nothing is one empty mbuf */
		size_t size = length - offset < piece ? length - offset : piece;
		struct mbuf *m = zalloc(sizeof *m + size);

		m->length = size;
		memcpy(m->data, bytes + offset, size);
		*tail = m;
		tail = &m->next;
		kextlog_shim.live_mbufs++;
		offset += size;
	} while (offset < length);
	return kextlog_shim.registration.ctl_send(CONTROL_REF, unit, client->unitinfo, chain, 0);
}

/* ---- sysctl ---- */

struct sysctl_oid_list sysctl__debug_children;

static bool registered_list(const struct sysctl_oid_list *list)
{
	if (list == &sysctl__debug_children)
		return true;
	for (uint32_t i = 0; i < kextlog_shim.oid_count; i++)
		if ((kextlog_shim.oids[i]->oid_kind & CTLTYPE) == CTLTYPE_NODE &&
		    kextlog_shim.oids[i]->oid_arg1 == list)
			return true;
	return false;
}

/* XNU refuses (on arm64, panics on) an oid without CTLFLAG_OID2 and the
 * current version; a parent must be registered first. */
void sysctl_register_oid(struct sysctl_oid *oidp)
{
	if (!(oidp->oid_kind & CTLFLAG_OID2) || oidp->oid_version != SYSCTL_OID_VERSION ||
	    oidp->oid_number != OID_AUTO || !registered_list(oidp->oid_parent) ||
	    kextlog_shim.oid_count == KEXTLOG_SHIM_OIDS) {
		kextlog_shim.bad_oids++;
		return;
	}
	oidp->oid_number = 100 + (int)kextlog_shim.oid_count;
	kextlog_shim.oids[kextlog_shim.oid_count++] = oidp;
}

/* Children go before their node. */
void sysctl_unregister_oid(struct sysctl_oid *oidp)
{
	uint32_t i = 0;

	while (i < kextlog_shim.oid_count && kextlog_shim.oids[i] != oidp)
		i++;
	if (i == kextlog_shim.oid_count) {
		kextlog_shim.bad_oids++;
		return;
	}
	kextlog_shim.oids[i] = kextlog_shim.oids[--kextlog_shim.oid_count];
	for (uint32_t j = 0; j < kextlog_shim.oid_count; j++)
		if (kextlog_shim.oids[j]->oid_parent == oidp->oid_arg1)
			kextlog_shim.bad_oids++;
}

static int copy_out(struct sysctl_req *req, const void *data, size_t length)
{
	if (req->oldptr == 0)
		return 0;
	if (req->oldidx + length > req->oldlen)
		return ENOMEM;
	memcpy((uint8_t *)(uintptr_t)req->oldptr + req->oldidx, data, length);
	req->oldidx += length;
	return 0;
}

static int copy_in(struct sysctl_req *req, void *data, size_t length)
{
	if (req->newidx + length > req->newlen)
		return EINVAL;
	memcpy(data, (const uint8_t *)(uintptr_t)req->newptr + req->newidx, length);
	req->newidx += length;
	return 0;
}

/* As XNU's: out the value (arg1, else arg2), then in the new one. */
static int handle_number(void *arg1, int arg2, struct sysctl_req *req, size_t size)
{
	long long number = arg2;
	int error = SYSCTL_OUT(req, arg1 != NULL ? arg1 : (void *)&number, size);

	if (error != 0 || req->newptr == 0)
		return error;
	return arg1 != NULL ? SYSCTL_IN(req, arg1, size) : EPERM;
}

int sysctl_handle_int SYSCTL_HANDLER_ARGS
{
	(void)oidp;
	return handle_number(arg1, arg2, req, sizeof(int));
}

int sysctl_handle_quad SYSCTL_HANDLER_ARGS
{
	(void)oidp;
	return handle_number(arg1, arg2, req, sizeof(long long));
}

/* "debug.NODE.NAME" */
const struct sysctl_oid *kextlog_shim_sysctl_find(const char *name)
{
	const struct sysctl_oid_list *parent = &sysctl__debug_children;
	const struct sysctl_oid *found = NULL;
	const char *part;

	if (strncmp(name, "debug.", 6) != 0)
		return NULL;
	for (part = name + 6; parent != NULL && *part != '\0';) {
		size_t length = strcspn(part, ".");

		found = NULL;
		for (uint32_t i = 0; i < kextlog_shim.oid_count && found == NULL; i++) {
			const struct sysctl_oid *oid = kextlog_shim.oids[i];

			if (oid->oid_parent == parent && strlen(oid->oid_name) == length &&
			    strncmp(oid->oid_name, part, length) == 0)
				found = oid;
		}
		if (found == NULL)
			return NULL;
		parent = (found->oid_kind & CTLTYPE) == CTLTYPE_NODE ? found->oid_arg1 : NULL;
		part += length + (part[length] == '.');
	}
	return *part == '\0' ? found : NULL;
}

int kextlog_shim_sysctl_read(const char *name, uint64_t *value)
{
	struct sysctl_oid *oid = (struct sysctl_oid *)kextlog_shim_sysctl_find(name);
	long long quad = 0;
	int integer = 0;
	bool is_quad;
	struct sysctl_req req = { .oldfunc = copy_out, .newfunc = copy_in };
	int error;

	if (oid == NULL)
		return ENOENT;
	is_quad = (oid->oid_kind & CTLTYPE) == CTLTYPE_QUAD;
	req.oldptr = (user_addr_t)(uintptr_t)(is_quad ? (void *)&quad : (void *)&integer);
	req.oldlen = is_quad ? sizeof quad : sizeof integer;
	error = oid->oid_handler(oid, oid->oid_arg1, oid->oid_arg2, &req);
	*value = is_quad ? (uint64_t)quad : (uint64_t)(unsigned)integer;
	return error;
}

int kextlog_shim_sysctl_write(const char *name, int value)
{
	struct sysctl_oid *oid = (struct sysctl_oid *)kextlog_shim_sysctl_find(name);
	struct sysctl_req req = {
		.oldfunc = copy_out,
		.newfunc = copy_in,
		.newptr = (user_addr_t)(uintptr_t)&value,
		.newlen = sizeof value,
	};

	if (oid == NULL)
		return ENOENT;
	if (!(oid->oid_kind & CTLFLAG_WR))
		return EPERM;
	return oid->oid_handler(oid, oid->oid_arg1, oid->oid_arg2, &req);
}

/* ---- reset ---- */

void kextlog_shim_reset(void)
{
	for (uint32_t i = 0; i < KEXTLOG_SHIM_CLIENTS; i++)
		free(kextlog_shim.clients[i].received);
	free(the_call);
	the_call = NULL;
	memset(&kextlog_shim, 0, sizeof kextlog_shim);
	kextlog_shim.room = SIZE_MAX;
	kextlog_shim.wall_ns = WALL_START_NS;
	kextlog_shim.mono_ns = MONO_START_NS;
	kextlog_shim.task = (struct kextlog_task){
		.pid = 312, .tid = 0x2a7f13ull, .name = "mdworker_shared",
	};
}
