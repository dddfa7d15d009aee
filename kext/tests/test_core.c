/*
 * test_core.c - the delivery contract of the portable core, driven through a
 * fake platform: a clock the test moves, a task it chooses, a client whose
 * room it sets (none: the ENOBUFS case; a prefix: a stream socket), and
 * observers for the last-resort print and the tap.
 */
#include <stdlib.h>
#include <string.h>

#include "kextlog_codec.h"
#include "kextlog_core.h"
#include "kextlog_test.h"

#define UNLIMITED UINT32_MAX
#define TAPS_MAX 4096u
#define LOG_FRAME_MAX KEXTLOG_FRAME_MAX
#define BATCH_BYTES (64u * 1024u)
#define WALL_START 1700000000000000000ull

struct last_resort_call {
	char what[64];
	char message[KEXTLOG_MESSAGE_MAX + 1];
};

struct platform {
	struct kextlog_core core;
	uint32_t ring_records;
	uint32_t ring_bytes;
	_Alignas(8) uint8_t ring_memory[1024 * 1024];

	uint64_t wall_ns; /* moves on at every read, so each record has its own time */
	uint64_t mono_ns; /* moved by the test only */
	struct kextlog_task task;
	bool locked;

	/* What the core does in one hold of its lock: the most bytes it sends,
	 * the most frames that leave the ring.  on_unlock runs once, after an
	 * unlock, as another thread that was waiting for the lock. */
	uint32_t bytes_this_hold, most_bytes_per_hold;
	uint32_t records_at_lock, most_released_per_hold;
	void   (*on_unlock)(struct platform *p);

	/* The client: takes up to room bytes (UNLIMITED: all), whole sends only
	 * unless it is a stream. */
	bool     stream;
	uint32_t room;
	uint32_t largest_batch; /* the longest send of several frames */
	uint32_t sends;
	_Alignas(8) uint8_t sent[1024 * 1024];
	uint32_t sent_length;
	uint32_t read;    /* next_frame() has read the frames before this */
	_Alignas(8) uint8_t frame[KEXTLOG_FRAME_MAX]; /* the last one, aligned */

	/* The heap path (heap_ops only): allocations can be made to fail, and
	 * may run a hook, as another thread writing a format's argument. */
	bool     alloc_fails;
	uint32_t allocations;  /* outstanding */
	uint32_t alloc_calls;
	void   (*on_alloc)(struct platform *p);

	struct last_resort_call last_resort[80];
	uint32_t last_resort_calls;
	_Alignas(8) uint8_t taps[TAPS_MAX][LOG_FRAME_MAX]; /* tap i holds seq i + 1 */
	uint32_t tap_count;
	uint64_t messages;
};

static const uint8_t instance_id[KEXTLOG_ID_SIZE] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
};
static const uint8_t boot_id[KEXTLOG_ID_SIZE] = {
	0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
	0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
};

/* ---- the fake platform ---- */

static void fake_lock(void *context)
{
	struct platform *p = context;

	CHECK(!p->locked); /* the core never re-enters its lock */
	p->locked = true;
	p->bytes_this_hold = 0;
	p->records_at_lock = p->core.ring.records;
}

static void fake_unlock(void *context)
{
	struct platform *p = context;

	void (*hook)(struct platform *p) = p->on_unlock;

	CHECK(p->locked);
	if (p->bytes_this_hold > p->most_bytes_per_hold)
		p->most_bytes_per_hold = p->bytes_this_hold;
	if (p->records_at_lock > p->core.ring.records &&
	    p->records_at_lock - p->core.ring.records > p->most_released_per_hold)
		p->most_released_per_hold = p->records_at_lock - p->core.ring.records;
	p->locked = false;
	p->on_unlock = NULL;
	if (hook != NULL)
		hook(p);
}

static uint64_t fake_wall_time(void *context)
{
	struct platform *p = context;

	p->wall_ns += 1000;
	return p->wall_ns;
}

static uint64_t fake_mono_time(void *context)
{
	return ((struct platform *)context)->mono_ns;
}

static void fake_current_task(void *context, struct kextlog_task *task)
{
	struct platform *p = context;

	CHECK(!p->locked);
	*task = p->task;
}

/* A datagram carries whole, valid frames; returns how many. */
static uint32_t check_datagram(const uint8_t *data, uint32_t length)
{
	uint32_t offset = 0, frames = 0, frame_length = 0;

	while (offset < length) {
		CHECK_EQ(kextlog_wire_check(data + offset, length - offset, &frame_length),
		    KEXTLOG_WIRE_OK);
		REQUIRE(frame_length > 0);
		offset += frame_length;
		frames++;
	}
	CHECK_EQ(offset, length);
	return frames;
}

static uint32_t fake_send(void *context, const uint8_t *data, uint32_t length)
{
	struct platform *p = context;
	uint32_t taken = length;

	CHECK(p->locked);
	CHECK(length > 0);
	p->sends++;
	if (!p->stream && check_datagram(data, length) > 1 && length > p->largest_batch)
		p->largest_batch = length;
	if (p->room < length) {
		if (!p->stream || p->room == 0)
			return 0;
		taken = p->room;
	}
	REQUIRE(p->sent_length + taken <= sizeof p->sent);
	memcpy(p->sent + p->sent_length, data, taken);
	p->sent_length += taken;
	p->bytes_this_hold += taken;
	if (p->room != UNLIMITED)
		p->room -= taken;
	return taken;
}

static void fake_last_resort(void *context, uint32_t level, const char *what,
    const char *message)
{
	struct platform *p = context;
	struct last_resort_call *call;

	CHECK(!p->locked);
	/* The level is the one named at the end of what (the summary: WARNING). */
	CHECK(strcmp(what, "stop") == 0 ? level == KEXTLOG_LEVEL_WARNING :
	    level >= KEXTLOG_LEVEL_TRACE && level <= KEXTLOG_LEVEL_ERROR &&
	    strcmp(strrchr(what, ' ') + 1, kextlog_level_name(level)) == 0);
	REQUIRE(p->last_resort_calls < sizeof p->last_resort / sizeof p->last_resort[0]);
	call = &p->last_resort[p->last_resort_calls++];
	REQUIRE(strlen(what) < sizeof call->what);
	REQUIRE(strlen(message) < sizeof call->message);
	strcpy(call->what, what);
	strcpy(call->message, message);
}

/* Call i of the last resort printed "<what>: <message>". */
static bool printed(struct platform *p, uint32_t i, const char *what, const char *message)
{
	return i < p->last_resort_calls && strcmp(p->last_resort[i].what, what) == 0 &&
	    strcmp(p->last_resort[i].message, message) == 0;
}

static void fake_tap(void *context, const struct kextlog_log_frame *frame)
{
	struct platform *p = context;
	uint32_t length;

	CHECK(p->locked);
	REQUIRE(p->tap_count < TAPS_MAX);
	REQUIRE(frame->header.length <= LOG_FRAME_MAX);
	CHECK_EQ(kextlog_wire_check((const uint8_t *)frame, frame->header.length, &length),
	    KEXTLOG_WIRE_OK);
	CHECK_EQ(frame->seq, p->tap_count + 1); /* dense from 1, lost or kept */
	memcpy(p->taps[p->tap_count++], frame, frame->header.length);
}

static void *fake_alloc(void *context, size_t size)
{
	struct platform *p = context;
	void *memory;

	CHECK(!p->locked); /* never allocates under the lock */
	p->alloc_calls++;
	if (p->on_alloc != NULL)
		p->on_alloc(p);
	if (p->alloc_fails)
		return NULL;
	memory = malloc(size);
	REQUIRE(memory != NULL);
	memset(memory, 0xA5, size); /* the core must clear what it sends */
	p->allocations++;
	return memory;
}

static void fake_free(void *context, void *memory, size_t size)
{
	struct platform *p = context;

	(void)size;
	CHECK(p->allocations > 0);
	p->allocations--;
	free(memory);
}

static const struct kextlog_ops fake_ops = {
	.lock = fake_lock,
	.unlock = fake_unlock,
	.wall_time_ns = fake_wall_time,
	.mono_time_ns = fake_mono_time,
	.current_task = fake_current_task,
	.send = fake_send,
	.last_resort = fake_last_resort,
	.tap = fake_tap,
};

static const struct kextlog_ops heap_ops = {
	.lock = fake_lock,
	.unlock = fake_unlock,
	.wall_time_ns = fake_wall_time,
	.mono_time_ns = fake_mono_time,
	.current_task = fake_current_task,
	.send = fake_send,
	.last_resort = fake_last_resort,
	.tap = fake_tap,
	.alloc = fake_alloc,
	.free = fake_free,
};

static struct kextlog_config default_config(void)
{
	struct kextlog_config config = {
		.producer_version = 0x010203,
		.min_level = KEXTLOG_LEVEL_TRACE,
		.send_batch_bytes = BATCH_BYTES,
		.resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS,
		.status_interval_ns = UINT64_MAX, /* test_status turns it on */
	};

	memcpy(config.instance_id, instance_id, sizeof instance_id);
	memcpy(config.boot_id, boot_id, sizeof boot_id);
	strcpy(config.name, "com.example.kextlog.test");
	return config;
}

static struct platform *start_with(const struct kextlog_config *config, uint32_t records)
{
	struct platform *p = calloc(1, sizeof *p);

	REQUIRE(p != NULL);
	p->ring_records = records;
	p->ring_bytes = kextlog_ring_bytes(records);
	REQUIRE(p->ring_bytes <= sizeof p->ring_memory);
	p->wall_ns = WALL_START;
	p->mono_ns = 5000000;
	p->task = (struct kextlog_task){ .pid = 4242, .tid = 0x1a2b3c4d5eull, .name = "mds_stores" };
	p->room = UNLIMITED;
	kextlog_core_init(&p->core, &fake_ops, p, config, p->ring_memory, p->ring_bytes, records);
	return p;
}

static struct platform *start(uint32_t records)
{
	struct kextlog_config config = default_config();

	return start_with(&config, records);
}

/* Every lock was released and every allocation freed; frees the platform. */
static void finish(struct platform *p)
{
	CHECK(!p->locked);
	CHECK_EQ(p->allocations, 0);
	free(p);
}

/* ---- driving the core ---- */

static struct kextlog_counters counters(struct platform *p)
{
	struct kextlog_counters snapshot;

	kextlog_core_counters(&p->core, &snapshot);
	return snapshot;
}

/* One message of exactly `length` characters. */
static void log_length(struct platform *p, uint32_t level, uint32_t length)
{
	static char text[8 * KEXTLOG_MESSAGE_MAX];
	int prefix = snprintf(text, sizeof text, "message %llu:", (unsigned long long)++p->messages);

	REQUIRE(length < sizeof text);
	for (uint32_t i = (uint32_t)prefix; i < length; i++)
		text[i] = (char)('a' + (p->messages + i) % 26);
	text[length] = '\0';
	kextlog_core_log(&p->core, level, "%s", text);
}

static void log_some(struct platform *p, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		log_length(p, KEXTLOG_LEVEL_INFO, 20 + (uint32_t)(p->messages * 37 % 120));
}

static void receive(struct platform *p, const void *frame, uint32_t length)
{
	CHECK_EQ(kextlog_core_receive(&p->core, frame, length), KEXTLOG_WIRE_OK);
}

static void resume_at(struct platform *p, uint64_t seq)
{
	struct kextlog_resume_frame resume;

	receive(p, &resume, kextlog_encode_resume(&resume, instance_id, seq));
	kextlog_core_pump(&p->core);
}

static void ack(struct platform *p, uint64_t seq)
{
	struct kextlog_ack_frame frame;

	receive(p, &frame, kextlog_encode_ack(&frame, seq));
}

static void connect_client(struct platform *p)
{
	kextlog_core_connect(&p->core);
	kextlog_core_pump(&p->core);
}

/* ---- reading what the client got ---- */

/* The next frame the client got, copied out: after a stream was cut in the
 * middle of a frame, the next connection's frames are not aligned. */
static const struct kextlog_frame_header *next_frame(struct platform *p, uint16_t type)
{
	const struct kextlog_frame_header *header = (const void *)p->frame;
	uint32_t length = 0;

	REQUIRE(p->read < p->sent_length);
	REQUIRE(kextlog_wire_check(p->sent + p->read, p->sent_length - p->read, &length) ==
	    KEXTLOG_WIRE_OK);
	memcpy(p->frame, p->sent + p->read, length);
	CHECK_EQ(header->type, type);
	p->read += length;
	return header;
}

static void expect_nothing(struct platform *p)
{
	CHECK_EQ(p->sent_length, p->read);
}

static void expect_hello(struct platform *p, uint64_t oldest_seq, uint64_t next_seq)
{
	const struct kextlog_hello_frame *hello =
	    (const void *)next_frame(p, KEXTLOG_FRAME_HELLO);

	CHECK(memcmp(hello->instance_id, instance_id, KEXTLOG_ID_SIZE) == 0);
	CHECK(memcmp(hello->boot_id, boot_id, KEXTLOG_ID_SIZE) == 0);
	CHECK_EQ(hello->oldest_seq, oldest_seq);
	CHECK_EQ(hello->next_seq, next_seq);
	CHECK_EQ(hello->ring_records, p->ring_records);
	CHECK_EQ(hello->ring_bytes, p->ring_bytes);
	CHECK_EQ(hello->producer_version, 0x010203);
	CHECK(strcmp(hello->name, "com.example.kextlog.test") == 0);
}

static const struct kextlog_log_frame *tap(struct platform *p, uint64_t seq)
{
	REQUIRE(seq >= 1 && seq <= p->tap_count);
	return (const void *)p->taps[seq - 1];
}

static bool has_message(const struct kextlog_log_frame *log, const char *text)
{
	return log->message_length == strlen(text) &&
	    memcmp(log->message, text, log->message_length) == 0;
}

/* The frame the client got for seq is the one the tap saw, byte for byte. */
static void expect_logs(struct platform *p, uint64_t first_seq, uint64_t last_seq)
{
	for (uint64_t seq = first_seq; seq <= last_seq; seq++) {
		const struct kextlog_log_frame *log = (const void *)next_frame(p, KEXTLOG_FRAME_LOG);

		CHECK_EQ(log->seq, seq);
		CHECK(memcmp(log, tap(p, seq), tap(p, seq)->header.length) == 0);
	}
}

static const struct kextlog_loss_frame *expect_loss(struct platform *p, uint64_t first_seq,
    uint64_t last_seq, uint32_t reason)
{
	const struct kextlog_loss_frame *loss = (const void *)next_frame(p, KEXTLOG_FRAME_LOSS);

	CHECK_EQ(loss->first_seq, first_seq);
	CHECK_EQ(loss->last_seq, last_seq);
	CHECK_EQ(loss->count, last_seq - first_seq + 1);
	CHECK_EQ(loss->reason, reason);
	return loss;
}

/* ---- the contract ---- */

static void test_seqs(void)
{
	struct kextlog_config config = default_config();
	struct platform *p;
	const struct kextlog_log_frame *log;

	config.min_level = KEXTLOG_LEVEL_INFO;
	p = start_with(&config, 64);
	CHECK(kextlog_core_idle(&p->core));
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_TRACE, "below %d", 1);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_INFO, "vnode %s opened by %d", "/usr/lib/dyld", 42);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_DEBUG, "below %d", 2);
	p->task = (struct kextlog_task){ .pid = 1, .tid = 0x65, .name = "launchd" };
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_ERROR, "error %u", 7u);
	/* A name that fills the field has no NUL. */
	memcpy(p->task.name, "0123456789abcdef0123456789ABCDEF", KEXTLOG_PROCESS_NAME_MAX);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_WARNING, "warning");
	kextlog_core_set_min_level(&p->core, KEXTLOG_LEVEL_TRACE);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_TRACE, "trace");
	kextlog_core_set_min_level(&p->core, KEXTLOG_LEVEL_ERROR);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_WARNING, "below %d", 3);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_ERROR, "error %u", 8u);

	CHECK_EQ(p->tap_count, 5);
	CHECK_EQ(counters(p).logged, 5);
	CHECK_EQ(counters(p).below_min_level, 3);
	CHECK_EQ(counters(p).next_seq, 6);
	CHECK_EQ(counters(p).ring_records, 5);
	CHECK_EQ(counters(p).ring_capacity, 64);
	CHECK_EQ(counters(p).lost, 0);
	CHECK(counters(p).ring_bytes_used > 0);
	CHECK_EQ(p->sends, 0); /* no client */
	CHECK(!kextlog_core_idle(&p->core));

	static const uint8_t levels[] = {
		KEXTLOG_LEVEL_INFO, KEXTLOG_LEVEL_ERROR, KEXTLOG_LEVEL_WARNING,
		KEXTLOG_LEVEL_TRACE, KEXTLOG_LEVEL_ERROR,
	};
	for (uint64_t seq = 1; seq <= 5; seq++) {
		log = tap(p, seq);
		CHECK_EQ(log->level, levels[seq - 1]);
		CHECK_EQ(log->flags, 0);
		CHECK_EQ(log->mono_ns, p->mono_ns);
		CHECK(log->time_ns > WALL_START && log->time_ns <= p->wall_ns);
		if (seq > 1)
			CHECK(log->time_ns > tap(p, seq - 1)->time_ns);
	}
	log = tap(p, 1);
	CHECK_EQ(log->pid, 4242);
	CHECK_EQ(log->tid, 0x1a2b3c4d5eull);
	CHECK(strcmp(log->process, "mds_stores") == 0);
	CHECK(has_message(log, "vnode /usr/lib/dyld opened by 42"));
	log = tap(p, 2);
	CHECK_EQ(log->pid, 1);
	CHECK_EQ(log->tid, 0x65);
	CHECK(strcmp(log->process, "launchd") == 0);
	CHECK(has_message(log, "error 7"));
	CHECK(memcmp(tap(p, 3)->process, p->task.name, KEXTLOG_PROCESS_NAME_MAX) == 0);
	CHECK(has_message(tap(p, 4), "trace"));
	CHECK(has_message(tap(p, 5), "error 8"));
	finish(p);
}

static void test_hello_then_resume(void)
{
	struct platform *p = start(64);

	log_some(p, 3);
	connect_client(p);
	expect_hello(p, 1, 4);
	expect_nothing(p);
	CHECK_EQ(counters(p).connects, 1);

	/* Nothing but HELLO until RESUME. */
	log_some(p, 2);
	kextlog_core_pump(&p->core);
	kextlog_core_tick(&p->core);
	expect_nothing(p);
	CHECK_EQ(counters(p).frames_sent, 0);

	resume_at(p, 1);
	expect_logs(p, 1, 5);
	expect_nothing(p);
	CHECK_EQ(counters(p).frames_sent, 5);

	/* Live: a log is kept, the pump sends it. */
	log_some(p, 1);
	expect_nothing(p);
	kextlog_core_pump(&p->core);
	expect_logs(p, 6, 6);
	expect_nothing(p);
	finish(p);
}

static void test_resume_other_instance(void)
{
	struct platform *p = start(64);
	struct kextlog_resume_frame resume;
	uint8_t other[KEXTLOG_ID_SIZE] = { 99 };

	log_some(p, 2);
	connect_client(p);
	expect_hello(p, 1, 3);
	CHECK(kextlog_core_receive(&p->core, (const uint8_t *)&resume,
	    kextlog_encode_resume(&resume, other, 1)) != KEXTLOG_WIRE_OK);
	CHECK_EQ(counters(p).bad_input, 1);
	kextlog_core_pump(&p->core);
	expect_nothing(p);

	resume_at(p, 1);
	expect_logs(p, 1, 2);
	expect_nothing(p);
	finish(p);
}

static void test_ack(void)
{
	struct platform *p = start(64);
	struct kextlog_ack_frame frame;

	log_some(p, 10);
	connect_client(p);
	expect_hello(p, 1, 11);
	resume_at(p, 1);
	expect_logs(p, 1, 10);

	ack(p, 4);
	CHECK_EQ(counters(p).acked_seq, 4);
	CHECK_EQ(counters(p).ring_records, 6);
	CHECK(!kextlog_core_idle(&p->core));
	ack(p, 4); /* again: changes nothing, and is fine */
	CHECK_EQ(counters(p).bad_input, 0);
	CHECK_EQ(kextlog_core_receive(&p->core, (const uint8_t *)&frame,
	    kextlog_encode_ack(&frame, 2)), KEXTLOG_WIRE_BAD_FIELD); /* backwards: refused */
	CHECK_EQ(counters(p).bad_input, 1);
	CHECK_EQ(counters(p).acked_seq, 4);
	CHECK_EQ(counters(p).ring_records, 6);

	/* 11 and 12 are kept but not sent: an ACK of them is refused, whole. */
	log_some(p, 2);
	CHECK_EQ(kextlog_core_receive(&p->core, (const uint8_t *)&frame,
	    kextlog_encode_ack(&frame, 1000)), KEXTLOG_WIRE_BAD_FIELD);
	CHECK_EQ(counters(p).bad_input, 2);
	CHECK_EQ(counters(p).acked_seq, 4);
	ack(p, 10);
	CHECK_EQ(counters(p).acked_seq, 10);
	CHECK_EQ(counters(p).ring_records, 2);
	kextlog_core_pump(&p->core);
	expect_logs(p, 11, 12);
	expect_nothing(p);
	ack(p, 12);
	CHECK_EQ(counters(p).ring_records, 0);
	CHECK_EQ(counters(p).ring_high_water, 10);
	CHECK(kextlog_core_idle(&p->core));
	finish(p);
}

static void test_reconnect(void)
{
	struct platform *p = start(64);
	uint32_t sends;

	log_some(p, 10);
	connect_client(p);
	expect_hello(p, 1, 11);
	resume_at(p, 1);
	expect_logs(p, 1, 10);
	ack(p, 4);
	kextlog_core_disconnect(&p->core);

	/* Kept while nobody listens. */
	sends = p->sends;
	log_some(p, 1);
	kextlog_core_pump(&p->core);
	kextlog_core_tick(&p->core);
	CHECK_EQ(p->sends, sends);

	/* The new client gets everything not acknowledged again. */
	connect_client(p);
	expect_hello(p, 5, 12);
	expect_nothing(p);
	resume_at(p, 5);
	expect_logs(p, 5, 11);
	expect_nothing(p);
	CHECK_EQ(counters(p).connects, 2);
	CHECK_EQ(counters(p).frames_sent, 17);

	/* A client that committed up to 7 but whose ACK never arrived. */
	kextlog_core_disconnect(&p->core);
	connect_client(p);
	expect_hello(p, 5, 12);
	resume_at(p, 8);
	expect_logs(p, 8, 11);
	expect_nothing(p);
	finish(p);
}

static void test_resume_released(void)
{
	struct platform *p = start(64);

	log_some(p, 10);
	connect_client(p);
	resume_at(p, 1);
	ack(p, 6);
	kextlog_core_disconnect(&p->core);
	p->read = p->sent_length;

	/* This client's store only has 1 and 2: 3..6 are gone. */
	connect_client(p);
	expect_hello(p, 7, 11);
	resume_at(p, 3);
	expect_loss(p, 3, 6, KEXTLOG_LOSS_RELEASED);
	expect_logs(p, 7, 10);
	expect_nothing(p);
	CHECK_EQ(counters(p).frames_sent, 10 + 4); /* ring frames only */
	finish(p);
}

static void test_resume_timeout(void)
{
	struct kextlog_config config = default_config();
	struct platform *p;
	uint64_t connected;

	config.resume_timeout_ns = 2000000;
	p = start_with(&config, 64);
	log_some(p, 3);
	connected = p->mono_ns;
	connect_client(p);
	expect_hello(p, 1, 4);
	p->mono_ns += config.resume_timeout_ns / 2;
	kextlog_core_tick(&p->core);
	expect_nothing(p);

	p->mono_ns = connected + config.resume_timeout_ns;
	kextlog_core_tick(&p->core);
	expect_logs(p, 1, 3);
	expect_nothing(p);
	log_some(p, 1);
	kextlog_core_pump(&p->core);
	expect_logs(p, 4, 4);

	/* After a reconnect, the timeout replays from the oldest frame held. */
	ack(p, 2);
	kextlog_core_disconnect(&p->core);
	connected = p->mono_ns;
	connect_client(p);
	expect_hello(p, 3, 5);
	p->mono_ns = connected + config.resume_timeout_ns;
	kextlog_core_tick(&p->core);
	expect_logs(p, 3, 4);
	expect_nothing(p);
	finish(p);
}

static void test_ring_full(void)
{
	struct platform *p = start(4);
	const struct kextlog_loss_frame *loss;

	connect_client(p);
	expect_hello(p, 1, 1);
	resume_at(p, 1);
	log_some(p, 4);
	kextlog_core_pump(&p->core);
	expect_logs(p, 1, 4);

	/* Nothing acknowledged, the ring is full: these go to the last resort. */
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_WARNING, "lost %d", 5);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_ERROR, "lost %d", 6);
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_TRACE, "lost %d", 7);
	CHECK_EQ(p->last_resort_calls, 3);
	CHECK(printed(p, 0, "lost seq 5 WARNING", "lost 5"));
	CHECK(printed(p, 1, "lost seq 6 ERROR", "lost 6"));
	CHECK(printed(p, 2, "lost seq 7 TRACE", "lost 7"));
	CHECK_EQ(counters(p).lost, 3);
	CHECK_EQ(counters(p).logged, 7);
	CHECK_EQ(counters(p).ring_records, 4);
	CHECK_EQ(p->tap_count, 7);
	kextlog_core_pump(&p->core);
	expect_nothing(p);
	CHECK(!kextlog_core_idle(&p->core));

	/* The older frames were kept: a new client gets all of them. */
	kextlog_core_disconnect(&p->core);
	connect_client(p);
	expect_hello(p, 1, 8);
	resume_at(p, 1);
	expect_logs(p, 1, 4);
	expect_nothing(p);

	/* Room again: the loss is reported, in seq order, before the next record. */
	ack(p, 4);
	CHECK(!kextlog_core_idle(&p->core)); /* the loss is not reported yet */
	log_some(p, 1);
	kextlog_core_pump(&p->core);
	loss = expect_loss(p, 5, 7, KEXTLOG_LOSS_RING_FULL);
	CHECK_EQ(loss->first_time_ns, tap(p, 5)->time_ns);
	CHECK_EQ(loss->last_time_ns, tap(p, 7)->time_ns);
	expect_logs(p, 8, 8);
	expect_nothing(p);
	ack(p, 8);
	CHECK(kextlog_core_idle(&p->core));
	CHECK_EQ(counters(p).lost, 3);
	CHECK_EQ(p->last_resort_calls, 3);
	finish(p);
}

static void test_send_busy(void)
{
	struct platform *p = start(64);
	uint64_t busy;

	log_some(p, 5);
	p->room = 0;
	connect_client(p);
	expect_nothing(p);
	CHECK(counters(p).send_busy >= 1);
	CHECK(kextlog_core_backlogged(&p->core));

	p->room = UNLIMITED;
	kextlog_core_pump(&p->core);
	expect_hello(p, 1, 6);
	CHECK(!kextlog_core_backlogged(&p->core)); /* the records wait for RESUME, not room */

	busy = counters(p).send_busy;
	p->room = 0;
	resume_at(p, 1);
	kextlog_core_pump(&p->core);
	expect_nothing(p);
	CHECK(counters(p).send_busy > busy);
	CHECK_EQ(counters(p).frames_sent, 0);
	CHECK(kextlog_core_backlogged(&p->core));

	p->room = UNLIMITED;
	kextlog_core_pump(&p->core);
	expect_logs(p, 1, 5);
	expect_nothing(p);
	CHECK_EQ(counters(p).frames_sent, 5);
	CHECK(!kextlog_core_backlogged(&p->core));
	finish(p);
}

/* Pumps with a stream client that takes `chunk` bytes at a time, or 1..300
 * bytes chosen by *random when chunk is 0, until nothing more comes. */
static void drain(struct platform *p, uint32_t chunk, uint64_t *random)
{
	uint32_t before;

	do {
		*random = *random * 6364136223846793005ull + 1442695040888963407ull;
		p->room = chunk != 0 ? chunk : 1 + (uint32_t)(*random >> 33) % 300;
		before = p->sent_length;
		kextlog_core_pump(&p->core);
	} while (p->sent_length != before);
	p->room = UNLIMITED;
}

/* The same story told to a client that takes everything and to one that takes
 * a few bytes at a time: the bytes must be the same. */
static void stream_story(struct platform *p, uint32_t chunk)
{
	uint64_t random = 42;

	p->stream = true;
	for (uint32_t i = 0; i < 40; i++)
		log_length(p, KEXTLOG_LEVEL_INFO, 1 + i * 29 % 400);
	connect_client(p);
	drain(p, chunk, &random);
	resume_at(p, 1);
	drain(p, chunk, &random);
	ack(p, 20);
	for (uint32_t i = 0; i < 10; i++)
		log_length(p, KEXTLOG_LEVEL_ERROR, 60 + i * 13);
	drain(p, chunk, &random);
}

static void test_stream(void)
{
	struct platform *whole = start(64), *trickle = start(64);
	uint64_t random = 7;

	stream_story(whole, UNLIMITED);
	stream_story(trickle, 0);
	CHECK_EQ(trickle->sent_length, whole->sent_length);
	CHECK(memcmp(trickle->sent, whole->sent, whole->sent_length) == 0);
	expect_hello(whole, 1, 41);
	expect_logs(whole, 1, 50);
	expect_nothing(whole);

	/* Cut in the middle of a frame: the next connection starts clean. */
	ack(trickle, 50);
	trickle->read = trickle->sent_length;
	log_some(trickle, 5);
	trickle->room = 150;
	kextlog_core_pump(&trickle->core);
	CHECK_EQ(trickle->sent_length, trickle->read + 150);
	kextlog_core_disconnect(&trickle->core);
	trickle->read = trickle->sent_length;
	connect_client(trickle);
	drain(trickle, 0, &random);
	resume_at(trickle, 51);
	drain(trickle, 0, &random);
	expect_hello(trickle, 51, 56);
	expect_logs(trickle, 51, 55);
	expect_nothing(trickle);
	finish(whole);
	finish(trickle);
}

/* LOG frames take 104..352 bytes: under a 256-byte batch the longer go alone. */
static void test_batch(uint32_t batch_bytes)
{
	struct kextlog_config config = default_config();
	struct platform *p;

	config.send_batch_bytes = batch_bytes;
	p = start_with(&config, 200);
	for (uint32_t i = 0; i < 100; i++)
		log_length(p, KEXTLOG_LEVEL_INFO, 1 + i * 53 % 300);
	connect_client(p);
	resume_at(p, 1);
	expect_hello(p, 1, 101);
	expect_logs(p, 1, 100);
	expect_nothing(p);
	CHECK_EQ(counters(p).lost, 0);
	/* Several frames in one send never exceed the batch; one frame alone may. */
	CHECK(p->largest_batch > 0);
	CHECK(p->largest_batch <= batch_bytes);
	finish(p);
}

static void test_truncation(void)
{
	struct platform *p = start(64);
	const struct kextlog_log_frame *log;
	char text[1001];

	log_length(p, KEXTLOG_LEVEL_INFO, KEXTLOG_STACK_MESSAGE - 1);
	log_length(p, KEXTLOG_LEVEL_INFO, KEXTLOG_STACK_MESSAGE);
	log_length(p, KEXTLOG_LEVEL_INFO, KEXTLOG_STACK_MESSAGE + 1);
	memset(text, 'x', 1000);
	text[1000] = '\0';
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_INFO, "%s", text);

	CHECK_EQ(tap(p, 1)->message_length, KEXTLOG_STACK_MESSAGE - 1);
	CHECK_EQ(tap(p, 1)->flags, 0);
	CHECK_EQ(tap(p, 2)->message_length, KEXTLOG_STACK_MESSAGE);
	CHECK_EQ(tap(p, 2)->flags, 0);
	CHECK_EQ(tap(p, 3)->message_length, KEXTLOG_STACK_MESSAGE);
	CHECK_EQ(tap(p, 3)->flags, KEXTLOG_LOG_TRUNCATED);
	log = tap(p, 4);
	CHECK_EQ(log->message_length, KEXTLOG_STACK_MESSAGE);
	CHECK_EQ(log->flags, KEXTLOG_LOG_TRUNCATED);
	CHECK(memcmp(log->message, text, KEXTLOG_STACK_MESSAGE) == 0);
	CHECK_EQ(counters(p).truncated, 2);

	connect_client(p);
	resume_at(p, 1);
	expect_hello(p, 1, 5);
	expect_logs(p, 1, 4);
	expect_nothing(p);
	finish(p);
}

static void test_receive_split(void)
{
	struct platform *p = start(64);
	struct kextlog_resume_frame resume;
	uint8_t glued[3 * sizeof(struct kextlog_ack_frame) + 32];
	uint32_t length, resume_length;

	log_some(p, 10);
	connect_client(p);
	expect_hello(p, 1, 11);

	/* RESUME one byte at a time: nothing happens before its last byte. */
	resume_length = kextlog_encode_resume(&resume, instance_id, 1);
	for (uint32_t i = 0; i < resume_length; i++) {
		CHECK_EQ(kextlog_core_receive(&p->core, (const uint8_t *)&resume + i, 1),
		    KEXTLOG_WIRE_OK);
		kextlog_core_pump(&p->core);
		if (i + 1 < resume_length)
			expect_nothing(p);
	}
	expect_logs(p, 1, 10);

	/* Two ACKs in one write. */
	length = kextlog_encode_ack((struct kextlog_ack_frame *)glued, 3);
	length += kextlog_encode_ack((struct kextlog_ack_frame *)(glued + length), 5);
	receive(p, glued, length);
	CHECK_EQ(counters(p).acked_seq, 5);

	/* ACK, a frame this core does not know (skipped), ACK: in 5-byte pieces. */
	length = kextlog_encode_ack((struct kextlog_ack_frame *)glued, 7);
	memset(glued + length, 0, 32);
	kextlog_encode_header((struct kextlog_frame_header *)(glued + length), 100, 32);
	length += 32;
	length += kextlog_encode_ack((struct kextlog_ack_frame *)(glued + length), 8);
	for (uint32_t offset = 0; offset < length; offset += 5)
		kextlog_core_receive(&p->core, glued + offset, length - offset < 5 ? length - offset : 5);
	CHECK_EQ(counters(p).acked_seq, 8);
	CHECK_EQ(counters(p).ring_records, 2);
	finish(p);
}

static void test_bad_input(void)
{
	struct platform *p = start(64);
	struct kextlog_ack_frame frame;
	uint32_t length;

	log_some(p, 3);
	connect_client(p);
	resume_at(p, 1);

	length = kextlog_encode_ack(&frame, 2);
	frame.header.magic = 0x12345678;
	CHECK_EQ(kextlog_core_receive(&p->core, (const uint8_t *)&frame, length),
	    KEXTLOG_WIRE_BAD_MAGIC);
	CHECK_EQ(counters(p).bad_input, 1);
	CHECK_EQ(counters(p).acked_seq, 0);
	ack(p, 1); /* the next write is read afresh */
	CHECK_EQ(counters(p).acked_seq, 1);

	length = kextlog_encode_ack(&frame, 2);
	frame.header.version = 9;
	CHECK_EQ(kextlog_core_receive(&p->core, (const uint8_t *)&frame, length),
	    KEXTLOG_WIRE_BAD_VERSION);
	CHECK_EQ(counters(p).bad_input, 2);
	ack(p, 2);
	CHECK_EQ(counters(p).acked_seq, 2);

	kextlog_encode_ack(&frame, 3);
	frame.header.length = 16;
	CHECK_EQ(kextlog_core_receive(&p->core, (const uint8_t *)&frame, 16),
	    KEXTLOG_WIRE_BAD_LENGTH);
	CHECK_EQ(counters(p).bad_input, 3);
	CHECK_EQ(counters(p).acked_seq, 2);
	ack(p, 3);
	CHECK_EQ(counters(p).acked_seq, 3);
	CHECK(kextlog_core_idle(&p->core));
	finish(p);
}

/* ---- the client's frames in every state (docs/protocol.md, "What the producer
 * accepts from its client") ---- */

enum client_state {
	STATE_DISCONNECTED, /* a client came, acknowledged 4 and went */
	STATE_AWAITING,     /* then another connected: HELLO sent */
	STATE_STREAMING,    /* which resumed at 5 and acknowledged 6 */
	STATE_TIMED_OUT,    /* or which never resumed: streaming after the timeout */
};

enum client_frame {
	FRAME_RESUME_LOW,    /* RESUME(1): 1..4 are no longer held */
	FRAME_RESUME_HIGH,   /* RESUME(8) */
	FRAME_RESUME_OTHER,  /* RESUME(1) for another instance */
	FRAME_ACK,           /* ACK(8): sent, not yet acknowledged */
	FRAME_ACK_BACKWARDS, /* ACK(3): below what this connection acknowledged or resumed after */
	FRAME_ACK_ABOVE,     /* ACK(1000): more than was sent */
	FRAME_HELLO,         /* the producer's frames, from the client */
	FRAME_LOG,
	FRAME_LOSS,
	FRAME_STATUS,
	FRAME_UNKNOWN_CLIENT, /* type 100: in the client's range, for a newer client */
	FRAME_UNKNOWN_OTHER,  /* type 200: in no range */
	FRAME_MALFORMED,      /* an ACK with a bad magic */
	FRAME_KINDS,
};

static const char *const frame_names[FRAME_KINDS] = {
	"RESUME(1)", "RESUME(8)", "RESUME(other instance)", "ACK(8)", "ACK(3)", "ACK(1000)",
	"HELLO", "LOG", "LOSS", "STATUS", "type 100", "type 200", "bad magic",
};

/* What a write of the frame (REPEATS copies, glued) does in the state. */
struct client_case {
	enum client_state state;
	enum client_frame frame;
	bool     accepted;         /* no bad input counted */
	enum kextlog_connection after;
	uint64_t acked;            /* counters.acked_seq after; the ring holds acked+1..10 */
	uint64_t loss_first, loss_last; /* the RELEASED loss the client gets, or 0 */
	uint64_t log_first, log_last;   /* the LOG frames it gets, or 0 */
};

#define REPEATS 16u /* 4 RESUMEs in one write once sent non-frame bytes, 12 wrote wild */
#define REFUSED(state, frame, after, acked) { state, frame, false, after, acked, 0, 0, 0, 0 }

static const struct client_case client_cases[] = {
	/* No client: nothing is read. */
	REFUSED(STATE_DISCONNECTED, FRAME_RESUME_LOW, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_RESUME_HIGH, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_RESUME_OTHER, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_ACK, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_ACK_BACKWARDS, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_ACK_ABOVE, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_HELLO, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_LOG, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_LOSS, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_STATUS, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_UNKNOWN_CLIENT, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_UNKNOWN_OTHER, KEXTLOG_DISCONNECTED, 4),
	REFUSED(STATE_DISCONNECTED, FRAME_MALFORMED, KEXTLOG_DISCONNECTED, 4),

	/* After HELLO: the first RESUME for this instance starts the stream; the
	 * copies after it find the connection streaming and are refused. */
	{ STATE_AWAITING, FRAME_RESUME_LOW, false, KEXTLOG_STREAMING, 4, 1, 4, 5, 10 },
	{ STATE_AWAITING, FRAME_RESUME_HIGH, false, KEXTLOG_STREAMING, 7, 0, 0, 8, 10 },
	REFUSED(STATE_AWAITING, FRAME_RESUME_OTHER, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_ACK, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_ACK_BACKWARDS, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_ACK_ABOVE, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_HELLO, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_LOG, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_LOSS, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_STATUS, KEXTLOG_AWAITING_RESUME, 4),
	{ STATE_AWAITING, FRAME_UNKNOWN_CLIENT, true, KEXTLOG_AWAITING_RESUME, 4, 0, 0, 0, 0 },
	REFUSED(STATE_AWAITING, FRAME_UNKNOWN_OTHER, KEXTLOG_AWAITING_RESUME, 4),
	REFUSED(STATE_AWAITING, FRAME_MALFORMED, KEXTLOG_AWAITING_RESUME, 4),

	/* Streaming after RESUME(5) and ACK(6): only ACKs from 6 to 10 count. */
	REFUSED(STATE_STREAMING, FRAME_RESUME_LOW, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_RESUME_HIGH, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_RESUME_OTHER, KEXTLOG_STREAMING, 6),
	{ STATE_STREAMING, FRAME_ACK, true, KEXTLOG_STREAMING, 8, 0, 0, 0, 0 },
	REFUSED(STATE_STREAMING, FRAME_ACK_BACKWARDS, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_ACK_ABOVE, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_HELLO, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_LOG, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_LOSS, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_STATUS, KEXTLOG_STREAMING, 6),
	{ STATE_STREAMING, FRAME_UNKNOWN_CLIENT, true, KEXTLOG_STREAMING, 6, 0, 0, 0, 0 },
	REFUSED(STATE_STREAMING, FRAME_UNKNOWN_OTHER, KEXTLOG_STREAMING, 6),
	REFUSED(STATE_STREAMING, FRAME_MALFORMED, KEXTLOG_STREAMING, 6),

	/* Streaming since the timeout, from the oldest held (5): RESUME is too late. */
	REFUSED(STATE_TIMED_OUT, FRAME_RESUME_LOW, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_RESUME_HIGH, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_RESUME_OTHER, KEXTLOG_STREAMING, 4),
	{ STATE_TIMED_OUT, FRAME_ACK, true, KEXTLOG_STREAMING, 8, 0, 0, 0, 0 },
	REFUSED(STATE_TIMED_OUT, FRAME_ACK_BACKWARDS, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_ACK_ABOVE, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_HELLO, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_LOG, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_LOSS, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_STATUS, KEXTLOG_STREAMING, 4),
	{ STATE_TIMED_OUT, FRAME_UNKNOWN_CLIENT, true, KEXTLOG_STREAMING, 4, 0, 0, 0, 0 },
	REFUSED(STATE_TIMED_OUT, FRAME_UNKNOWN_OTHER, KEXTLOG_STREAMING, 4),
	REFUSED(STATE_TIMED_OUT, FRAME_MALFORMED, KEXTLOG_STREAMING, 4),
};

/* One frame of the kind, as a client would write it; returns its length. */
static uint32_t encode_client_frame(enum client_frame kind, uint8_t *out)
{
	static const uint8_t other[KEXTLOG_ID_SIZE] = { 99 };
	union {
		struct kextlog_frame_header header;
		struct kextlog_resume_frame resume;
		struct kextlog_ack_frame ack;
		struct kextlog_hello_frame hello;
		struct kextlog_loss_frame loss;
		struct kextlog_status_frame status;
		uint8_t bytes[KEXTLOG_FRAME_MAX];
	} frame;
	uint32_t length = 0;

	memset(&frame, 0, sizeof frame);
	switch (kind) {
	case FRAME_RESUME_LOW:
		length = kextlog_encode_resume(&frame.resume, instance_id, 1);
		break;
	case FRAME_RESUME_HIGH:
		length = kextlog_encode_resume(&frame.resume, instance_id, 8);
		break;
	case FRAME_RESUME_OTHER:
		length = kextlog_encode_resume(&frame.resume, other, 1);
		break;
	case FRAME_ACK:
		length = kextlog_encode_ack(&frame.ack, 8);
		break;
	case FRAME_ACK_BACKWARDS:
		length = kextlog_encode_ack(&frame.ack, 3);
		break;
	case FRAME_ACK_ABOVE:
		length = kextlog_encode_ack(&frame.ack, 1000);
		break;
	case FRAME_HELLO:
		length = kextlog_encode_hello(&frame.hello, instance_id, boot_id, 1, 11, 64, 4096, 1,
		    "a client");
		break;
	case FRAME_LOG:
		length = kextlog_encode_log((struct kextlog_log_frame *)(void *)frame.bytes, 3, 1, 1, 1,
		    1, "client", KEXTLOG_LEVEL_INFO, 0, "from the client", 15);
		break;
	case FRAME_LOSS:
		length = kextlog_encode_loss(&frame.loss, 1, 4, 0, 0, KEXTLOG_LOSS_RELEASED);
		break;
	case FRAME_STATUS:
		length = kextlog_encode_status(&frame.status, 11, 0, 1, 6, 64, 1000, 4096);
		break;
	case FRAME_UNKNOWN_CLIENT:
		length = 32;
		kextlog_encode_header(&frame.header, 100, length);
		break;
	case FRAME_UNKNOWN_OTHER:
		length = 32;
		kextlog_encode_header(&frame.header, 200, length);
		break;
	case FRAME_MALFORMED:
		length = kextlog_encode_ack(&frame.ack, 8);
		frame.header.magic = 0x12345678;
		break;
	case FRAME_KINDS:
		break;
	}
	memcpy(out, frame.bytes, length);
	return length;
}

/* Ten records; a first client acknowledged 1..4; then the state. */
static struct platform *reach(enum client_state state)
{
	struct platform *p = start(64);

	log_some(p, 10);
	connect_client(p);
	resume_at(p, 1);
	ack(p, 4);
	kextlog_core_disconnect(&p->core);
	if (state == STATE_DISCONNECTED)
		return p;
	connect_client(p);
	if (state == STATE_STREAMING) {
		resume_at(p, 5);
		ack(p, 6);
	} else if (state == STATE_TIMED_OUT) {
		p->mono_ns += KEXTLOG_RESUME_TIMEOUT_NS;
		kextlog_core_tick(&p->core);
	}
	return p;
}

/* Every byte the client ever got is a well-formed frame, one after another. */
static void expect_well_formed(struct platform *p)
{
	uint32_t offset = 0, length = 0;

	while (offset < p->sent_length) {
		REQUIRE(kextlog_wire_check(p->sent + offset, p->sent_length - offset, &length) ==
		    KEXTLOG_WIRE_OK);
		offset += length;
	}
}

static void test_client_frames(void)
{
	static uint8_t write[REPEATS * KEXTLOG_FRAME_MAX];

	for (size_t i = 0; i < sizeof client_cases / sizeof client_cases[0]; i++) {
		const struct client_case *c = &client_cases[i];
		struct platform *p = reach(c->state);
		uint64_t bad = counters(p).bad_input;
		uint32_t length = 0;
		enum kextlog_wire_status status;

		p->read = p->sent_length;
		for (uint32_t copy = 0; copy < REPEATS; copy++)
			length += encode_client_frame(c->frame, write + length);
		status = kextlog_core_receive(&p->core, write, length);
		kextlog_core_pump(&p->core);
		kextlog_core_tick(&p->core);

		if ((status == KEXTLOG_WIRE_OK) != c->accepted ||
		    counters(p).bad_input != bad + !c->accepted || p->core.connection != c->after ||
		    counters(p).acked_seq != c->acked)
			fprintf(stderr, "case %zu: %s in state %d\n", i, frame_names[c->frame],
			    (int)c->state);
		CHECK_EQ(status == KEXTLOG_WIRE_OK, c->accepted);
		CHECK_EQ(counters(p).bad_input, bad + !c->accepted); /* once per write */
		CHECK_EQ(p->core.connection, c->after);
		CHECK_EQ(counters(p).acked_seq, c->acked);
		CHECK_EQ(counters(p).ring_records, 10 - c->acked);
		expect_well_formed(p);
		if (c->loss_first != 0)
			expect_loss(p, c->loss_first, c->loss_last, KEXTLOG_LOSS_RELEASED);
		if (c->log_first != 0)
			expect_logs(p, c->log_first, c->log_last);
		expect_nothing(p);

		/* Whatever came, the connection is still in step: a valid frame works. */
		if (c->after == KEXTLOG_STREAMING) {
			ack(p, 10);
			CHECK_EQ(counters(p).ring_records, 0);
		} else if (c->after == KEXTLOG_AWAITING_RESUME) {
			resume_at(p, 9);
			expect_logs(p, 9, 10);
		}
		expect_nothing(p);
		finish(p);
	}
}

static void expect_status(struct platform *p, uint64_t next_seq, uint32_t ring_records)
{
	const struct kextlog_status_frame *status =
	    (const void *)next_frame(p, KEXTLOG_FRAME_STATUS);

	CHECK_EQ(status->next_seq, next_seq);
	CHECK_EQ(status->ring_records, ring_records);
	CHECK_EQ(status->ring_capacity, p->ring_records);
	CHECK_EQ(status->ring_bytes, p->ring_bytes);
	CHECK_EQ(status->ring_bytes_used == 0, ring_records == 0);
	CHECK(status->time_ns > WALL_START);
}

/* STATUS once per interval while streaming, only between whole frames. */
static void test_status(void)
{
	struct kextlog_config config = default_config();
	struct platform *p;

	config.status_interval_ns = KEXTLOG_STATUS_INTERVAL_NS;
	p = start_with(&config, 8);
	log_some(p, 3);
	connect_client(p);
	expect_hello(p, 1, 4);
	p->mono_ns += KEXTLOG_STATUS_INTERVAL_NS;
	log_some(p, 1);
	resume_at(p, 1);
	expect_logs(p, 1, 4);
	kextlog_core_tick(&p->core);
	expect_status(p, 5, 4);
	kextlog_core_tick(&p->core);
	expect_nothing(p); /* not again within the interval */

	ack(p, 4);
	for (uint32_t i = 0; i < 12; i++) /* 8 kept, 4 lost */
		log_some(p, 1);
	p->mono_ns += KEXTLOG_STATUS_INTERVAL_NS;
	p->room = 0; /* the client is full: nothing goes out, STATUS waits too */
	kextlog_core_tick(&p->core);
	expect_nothing(p);
	p->room = UNLIMITED;
	kextlog_core_pump(&p->core);
	/* Queued by the tick, sent first. */
	CHECK_EQ(((const struct kextlog_status_frame *)(const void *)next_frame(p,
	    KEXTLOG_FRAME_STATUS))->lost, 4);
	expect_logs(p, 5, 12);
	expect_nothing(p);

	/* A stream holding part of a frame gets no STATUS in the middle of it. */
	p->stream = true;
	ack(p, 12);
	log_some(p, 1);
	p->room = 10;
	kextlog_core_pump(&p->core);
	p->room = UNLIMITED;
	p->mono_ns += KEXTLOG_STATUS_INTERVAL_NS;
	p->room = 0;
	kextlog_core_tick(&p->core);
	p->room = UNLIMITED;
	kextlog_core_pump(&p->core);
	next_frame(p, KEXTLOG_FRAME_LOSS); /* seqs 13..16 were lost */
	expect_logs(p, 17, 17);
	expect_nothing(p);
	kextlog_core_tick(&p->core);
	expect_status(p, 18, 2);
	finish(p);
}

/* Two unsent frames, one ending exactly at the end of the ring's memory and
 * one at its start, go out as two sends: the run never reads past the end. */
static void test_run_at_buffer_end(void)
{
	struct platform *p = start(16); /* 4096 bytes: sixteen 256-byte frames */
	uint32_t message = 256 - (uint32_t)sizeof(struct kextlog_log_frame);

	REQUIRE(p->ring_bytes == 16 * 256);
	connect_client(p);
	resume_at(p, 1);
	expect_hello(p, 1, 1);
	for (uint32_t i = 0; i < 15; i++)
		log_length(p, KEXTLOG_LEVEL_INFO, message);
	kextlog_core_pump(&p->core);
	expect_logs(p, 1, 15);
	ack(p, 15);
	memset(p->ring_memory + p->ring_bytes, 0xEE, 256); /* what lies beyond */
	log_length(p, KEXTLOG_LEVEL_INFO, message); /* ends at the buffer's end */
	log_length(p, KEXTLOG_LEVEL_INFO, message); /* starts at its beginning */
	p->sends = 0;
	kextlog_core_pump(&p->core);
	CHECK_EQ(p->sends, 2);
	expect_logs(p, 16, 17);
	expect_nothing(p);
	finish(p);
}

/* A logging thread that gets the lock between two batches of a release. */
static void log_while_releasing(struct platform *p)
{
	log_some(p, 1);
}

/* Replays and releases of thousands of frames: no hold of the lock sends
 * more than one batch (a logging thread's pump sends one), or drops more
 * than KEXTLOG_RELEASE_BATCH frames; the rest is done a batch per hold. */
static void test_bounded_lock_holds(void)
{
	struct kextlog_config config = default_config();
	uint32_t batch = 4096, records = 1500;
	struct platform *p;

	config.send_batch_bytes = batch;
	p = start_with(&config, 4096);
	log_some(p, records);
	p->room = 0;
	connect_client(p);
	resume_at(p, 1);
	expect_nothing(p);

	/* A logging thread's pump: one batch of the replay, no more. */
	p->room = UNLIMITED;
	p->most_bytes_per_hold = 0;
	kextlog_core_pump(&p->core);
	CHECK(p->sent_length > 0 && p->sent_length <= batch + KEXTLOG_FRAME_MAX);
	CHECK(kextlog_core_backlogged(&p->core));
	/* The timer: the rest, a batch per hold. */
	kextlog_core_tick(&p->core);
	expect_hello(p, 1, records + 1);
	expect_logs(p, 1, records);
	expect_nothing(p);
	CHECK(p->most_bytes_per_hold <= batch + KEXTLOG_FRAME_MAX);
	CHECK(!kextlog_core_backlogged(&p->core));

	/* One ACK of everything: released a batch per hold. */
	ack(p, records);
	CHECK_EQ(counters(p).ring_records, 0);
	CHECK(p->most_released_per_hold > 0);
	CHECK(p->most_released_per_hold <= KEXTLOG_RELEASE_BATCH);
	CHECK(kextlog_core_idle(&p->core));

	/* A client that had the first 1,200 of the next records from an earlier
	 * connection: RESUME releases them a batch per hold, and sends none. */
	log_some(p, records);
	kextlog_core_disconnect(&p->core);
	p->read = p->sent_length;
	p->most_released_per_hold = 0;
	connect_client(p);
	expect_hello(p, records + 1, 2 * records + 1);
	resume_at(p, records + 1201);
	expect_logs(p, records + 1201, 2 * records);
	expect_nothing(p);
	CHECK_EQ(counters(p).ring_records, records - 1200);
	CHECK(p->most_released_per_hold > 0);
	CHECK(p->most_released_per_hold <= KEXTLOG_RELEASE_BATCH);
	finish(p);

	/* The ring is full of acknowledged frames not released yet when a
	 * message comes: they make room for it, it is not lost. */
	p = start(64);
	connect_client(p);
	resume_at(p, 1);
	log_some(p, 64);
	kextlog_core_pump(&p->core);
	expect_hello(p, 1, 1);
	expect_logs(p, 1, 64);
	p->on_unlock = log_while_releasing; /* after the ACK is read, before the release */
	ack(p, 64);
	CHECK_EQ(counters(p).lost, 0);
	CHECK_EQ(counters(p).ring_records, 1);
	expect_logs(p, 65, 65);
	expect_nothing(p);
	finish(p);
}

/* The text a LOG frame carries, NUL-terminated. */
static const char *text_of(const struct kextlog_log_frame *log)
{
	static char text[KEXTLOG_MESSAGE_MAX + 1];

	memcpy(text, log->message, log->message_length);
	text[log->message_length] = '\0';
	return text;
}

/* Printed at stop, in order from call `from`: "unacknowledged seq N LEVEL"
 * and the text, for each seq of first..last. */
static void expect_printed_at_stop(struct platform *p, uint32_t from, uint64_t first,
    uint64_t last)
{
	for (uint64_t seq = first; seq <= last; seq++) {
		char what[64];

		snprintf(what, sizeof what, "unacknowledged seq %llu %s", (unsigned long long)seq,
		    kextlog_level_name(tap(p, seq)->level));
		CHECK(printed(p, from++, what, text_of(tap(p, seq))));
	}
}

static void test_stop(void)
{
	struct platform *p = start(20);

	/* Everything acknowledged: nothing to say. */
	log_some(p, 3);
	connect_client(p);
	resume_at(p, 1);
	ack(p, 3);
	kextlog_core_disconnect(&p->core);
	kextlog_core_stop(&p->core);
	CHECK_EQ(p->last_resort_calls, 0);
	CHECK_EQ(counters(p).printed_at_stop, 0);
	finish(p);

	/* Never a client: all of it, after one line saying what follows. */
	p = start(20);
	log_some(p, 5);
	kextlog_core_stop(&p->core);
	CHECK_EQ(p->last_resort_calls, 6);
	CHECK(printed(p, 0, "stop", "5 unacknowledged records, seqs 1..5, printed below"));
	expect_printed_at_stop(p, 1, 1, 5);
	CHECK_EQ(counters(p).printed_at_stop, 5);
	CHECK_EQ(counters(p).ring_records, 0);
	CHECK(kextlog_core_idle(&p->core));
	finish(p);

	/* A client acknowledged some; a loss entered the ring between records. */
	p = start(20);
	connect_client(p);
	resume_at(p, 1);
	log_some(p, 20);
	kextlog_core_pump(&p->core);
	ack(p, 10);
	log_some(p, 20);               /* 21..30 kept, 31..40 lost (printed now) */
	kextlog_core_pump(&p->core);
	ack(p, 25);                    /* room: the loss of 31..40 enters the ring */
	log_some(p, 5);                /* 41..45 */
	kextlog_core_pump(&p->core);
	kextlog_core_disconnect(&p->core);
	CHECK_EQ(p->last_resort_calls, 10);
	CHECK(printed(p, 0, "lost seq 31 INFO", text_of(tap(p, 31))));
	kextlog_core_stop(&p->core);
	CHECK_EQ(p->last_resort_calls, 10 + 1 + 10);
	CHECK(printed(p, 10, "stop",
	    "10 unacknowledged records, seqs 26..45 (10 lost earlier, printed then), printed below"));
	expect_printed_at_stop(p, 11, 26, 30);
	expect_printed_at_stop(p, 16, 41, 45);
	CHECK_EQ(counters(p).printed_at_stop, 10);
	CHECK_EQ(counters(p).lost, 10);
	CHECK_EQ(counters(p).ring_records, 0);
	finish(p);

	/* Texts that fill their frame to the last byte (no padding for a NUL),
	 * from the heap path; one record alone. */
	p = start(20);
	p->core.ops = &heap_ops;
	log_length(p, KEXTLOG_LEVEL_ERROR, KEXTLOG_MESSAGE_MAX);
	log_length(p, KEXTLOG_LEVEL_WARNING, 1000);
	connect_client(p);
	resume_at(p, 1);
	ack(p, 1);
	kextlog_core_disconnect(&p->core);
	kextlog_core_stop(&p->core);
	CHECK_EQ(tap(p, 2)->header.length, sizeof(struct kextlog_log_frame) + 1000);
	CHECK(printed(p, 0, "stop", "1 unacknowledged record, seq 2, printed below"));
	expect_printed_at_stop(p, 1, 2, 2);
	CHECK_EQ(strlen(p->last_resort[1].message), 1000);
	finish(p);
}

/* Messages at every boundary of the stack buffer and of the maximum. */
static void test_heap_path(void)
{
	static const uint32_t lengths[] = {
		KEXTLOG_STACK_MESSAGE - 1, KEXTLOG_STACK_MESSAGE, KEXTLOG_STACK_MESSAGE + 1,
		700, KEXTLOG_MESSAGE_MAX - 1, KEXTLOG_MESSAGE_MAX, KEXTLOG_MESSAGE_MAX + 1, 5000,
	};
	struct platform *p = start(64);
	struct kextlog_counters c;
	uint32_t seq = 0;

	p->core.ops = &heap_ops;
	for (uint32_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		const struct kextlog_log_frame *log;
		uint32_t length = lengths[i];
		uint32_t kept = length < KEXTLOG_MESSAGE_MAX ? length : KEXTLOG_MESSAGE_MAX;

		log_length(p, KEXTLOG_LEVEL_INFO, length);
		log = tap(p, ++seq);
		CHECK_EQ(log->message_length, kept);
		CHECK_EQ(log->flags, length > KEXTLOG_MESSAGE_MAX ? KEXTLOG_LOG_TRUNCATED : 0);
		CHECK_EQ(log->header.length,
		    KEXTLOG_FRAME_ALIGNED((uint32_t)sizeof *log + kept));
		/* The text is the start of what was asked for, and nothing else. */
		CHECK_EQ(log->message[0], 'm');
		for (uint32_t b = (uint32_t)sizeof *log + kept; b < log->header.length; b++)
			CHECK_EQ(((const uint8_t *)log)[b], 0);
	}
	c = counters(p);
	CHECK_EQ(c.heap, 6);          /* everything over the stack buffer */
	CHECK_EQ(c.truncated, 2);     /* only what was over the maximum */
	CHECK_EQ(c.nomem, 0);
	CHECK_EQ(c.format_retries, 0);
	connect_client(p);
	resume_at(p, 1);
	expect_hello(p, 1, seq + 1);
	expect_logs(p, 1, seq); /* compares every byte with the tap */
	finish(p);
}

static void test_heap_nomem(void)
{
	struct platform *p = start(64);
	const struct kextlog_log_frame *log;

	p->core.ops = &heap_ops;
	p->alloc_fails = true;
	log_length(p, KEXTLOG_LEVEL_ERROR, 600);
	log = tap(p, 1);
	CHECK_EQ(log->message_length, KEXTLOG_STACK_MESSAGE);
	CHECK_EQ(log->flags, KEXTLOG_LOG_TRUNCATED | KEXTLOG_LOG_NOMEM);
	CHECK_EQ(counters(p).nomem, 1);
	CHECK_EQ(counters(p).truncated, 1);
	CHECK_EQ(counters(p).heap, 0);
	finish(p);
}

/* Another thread lengthens a string argument while it is being formatted:
 * the heap pass finds more text than the stack pass measured. */
static char growing[4096];

static void grow(struct platform *p)
{
	(void)p;
	strcat(growing, "0123456789012345678901234567890123456789012345678901234567890123456789");
}

static void test_arguments_change_between_passes(void)
{
	struct platform *p = start(64);
	const struct kextlog_log_frame *log;

	p->core.ops = &heap_ops;
	memset(growing, 'g', 300);
	growing[300] = '\0';
	p->on_alloc = grow; /* grows by 70 before each heap pass */
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_INFO, "%s", growing);
	log = tap(p, 1);
	/* Passes at 300 (stack), 370, 440, then a last one kept cut at its room. */
	CHECK_EQ(p->alloc_calls, KEXTLOG_FORMAT_RETRIES + 1);
	CHECK_EQ(counters(p).format_retries, KEXTLOG_FORMAT_RETRIES);
	CHECK_EQ(log->message_length, 300 + 70 * KEXTLOG_FORMAT_RETRIES);
	CHECK_EQ(log->flags, KEXTLOG_LOG_TRUNCATED);
	CHECK(memcmp(log->message, growing, log->message_length) == 0);

	/* A string that shrinks in between: the second pass is the message. */
	p->on_alloc = NULL;
	memset(growing, 's', 400);
	growing[400] = '\0';
	p->on_alloc = NULL;
	kextlog_core_log(&p->core, KEXTLOG_LEVEL_INFO, "%s", growing);
	CHECK_EQ(tap(p, 2)->message_length, 400);
	CHECK_EQ(tap(p, 2)->flags, 0);
	finish(p);
}

static void test_ratelimit(void)
{
	struct platform *p = start(64);
	struct kextlog_ratelimit site = { 0 };
	uint32_t passed = 0;

	for (uint32_t i = 0; i < 25; i++) {
		if (kextlog_core_ratelimit(&p->core, &site, "demo.c:42")) {
			passed++;
			log_some(p, 1);
		}
	}
	CHECK_EQ(passed, KEXTLOG_RATELIMIT_BURST);
	CHECK_EQ(counters(p).ratelimited, 25 - KEXTLOG_RATELIMIT_BURST);
	CHECK_EQ(counters(p).next_seq, KEXTLOG_RATELIMIT_BURST + 1); /* held back: no seq */

	p->mono_ns += KEXTLOG_RATELIMIT_INTERVAL_NS;
	CHECK(kextlog_core_ratelimit(&p->core, &site, "demo.c:42"));
	/* The report comes first, as a warning with the count and the place. */
	CHECK_EQ(tap(p, KEXTLOG_RATELIMIT_BURST + 1)->level, KEXTLOG_LEVEL_WARNING);
	CHECK(has_message(tap(p, KEXTLOG_RATELIMIT_BURST + 1),
	    "kextlog: 15 messages suppressed at demo.c:42"));
	CHECK(kextlog_core_ratelimit(&p->core, &site, "demo.c:42"));
	CHECK_EQ(counters(p).next_seq, KEXTLOG_RATELIMIT_BURST + 2); /* reported once */
	finish(p);
}

int main(void)
{
	test_seqs();
	test_hello_then_resume();
	test_resume_other_instance();
	test_ack();
	test_reconnect();
	test_resume_released();
	test_resume_timeout();
	test_ring_full();
	test_send_busy();
	test_stream();
	test_batch(256);
	test_batch(1500);
	test_truncation();
	test_receive_split();
	test_bad_input();
	test_client_frames();
	test_status();
	test_run_at_buffer_end();
	test_bounded_lock_holds();
	test_stop();
	test_heap_path();
	test_heap_nomem();
	test_arguments_change_between_passes();
	test_ratelimit();
	return kextlog_test_done("test_core");
}
