/*
 * test_kctl.c - the kext glue (kext/kextlog_kctl.c), for real, on the fake
 * kernel of xnu_shim.c: registration, one privileged client, HELLO ->
 * RESUME -> replay -> ACK over the control, ENOBUFS and the timer's retry,
 * hostile client input, the sysctls, the timer, stop refused while a client
 * is connected; and the frames the kext would send against the frames the
 * simulator sends, byte for byte (test_same_bytes_as_simulator).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mach/mach_types.h>

#include "kextlog.h"
#include "kextlog_codec.h"
#include "kextlog_test.h"
#include "kextlog_workload.h"
#include "xnu_shim.h"

#define NAME      "com.example.kextlog.test"
#define CONTROL   "com.example.kextlog.test.log"
#define SYSCTL(x) "debug.kextlog_test." x
#define RECORDS   256u
#define VERSION   0x010203u
#define BOOT_SESSION "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

static const uint8_t boot_id[KEXTLOG_ID_SIZE] = {
	0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
	0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
};

static const char *const counter_names[] = {
	"delivered", "acknowledged", "diverted", "truncated", "heap", "nomem", "ratelimited",
	"logged", "filtered", "send_busy", "bad_input", "connects", "ring_records",
	"ring_capacity", "ring_high_water",
};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* ---- driving the glue ---- */

static struct kextlog_settings settings(uint32_t socket_type)
{
	return (struct kextlog_settings){
		.control_name = CONTROL,
		.producer_name = NAME,
		.producer_version = VERSION,
		.socket_type = socket_type,
		.ring_records = RECORDS,
		.ring_boot_arg = "kextlog_test_ring",
		.min_level = KEXTLOG_LEVEL_TRACE,
		.sysctl_name = "kextlog_test",
	};
}

/* On the kernel as the test prepared it. */
static void start_with(const struct kextlog_settings *settings)
{
	REQUIRE(kextlog_start(settings) == 0);
}

static void start(uint32_t socket_type)
{
	struct kextlog_settings s = settings(socket_type);

	kextlog_shim_reset();
	start_with(&s);
}

/* Everything the glue took is back, and it broke no rule of the KPIs. */
static void check_released(void)
{
	CHECK(!kextlog_shim.registered);
	CHECK_EQ(kextlog_shim.oid_count, 0);
	CHECK_EQ(kextlog_shim.live_calls, 0);
	CHECK_EQ(kextlog_shim.live_blocks, 0);
	CHECK_EQ(kextlog_shim.live_locks, 0);
	CHECK_EQ(kextlog_shim.live_groups, 0);
	CHECK_EQ(kextlog_shim.live_tags, 0);
	CHECK_EQ(kextlog_shim.live_mbufs, 0);
	CHECK_EQ(kextlog_shim.bad_frees, 0);
	CHECK_EQ(kextlog_shim.bad_oids, 0);
	CHECK_EQ(kextlog_shim.bad_units, 0);
}

static void stop(void)
{
	CHECK_EQ(kextlog_stop(), 0);
	check_released();
}

static uint64_t read_sysctl(const char *name)
{
	uint64_t value = UINT64_MAX;

	CHECK_EQ(kextlog_shim_sysctl_read(name, &value), 0);
	return value;
}

static bool printed(const char *text)
{
	return strstr(kextlog_shim.printed, text) != NULL;
}

/* ---- the client's side ---- */

struct reader {
	uint32_t unit;
	struct kextlog_shim_client *client;
	size_t offset; /* frames before it have been read */
	_Alignas(8) uint8_t frame[KEXTLOG_FRAME_MAX];
};

static void connect_client(struct reader *reader, int type)
{
	memset(reader, 0, sizeof *reader);
	REQUIRE(kextlog_shim_connect(type, true, &reader->unit) == 0);
	reader->client = kextlog_shim_client(reader->unit);
}

/* The next frame the client got (STATUS too when with_status), checked;
 * NULL when it has read them all. */
static const struct kextlog_frame_header *next_any(struct reader *reader, bool with_status)
{
	while (reader->offset < reader->client->received_length) {
		const uint8_t *data = reader->client->received + reader->offset;
		uint32_t length = 0;

		REQUIRE(kextlog_wire_check(data, reader->client->received_length - reader->offset,
		    &length) == KEXTLOG_WIRE_OK);
		memcpy(reader->frame, data, length);
		reader->offset += length;
		if (with_status || ((const struct kextlog_frame_header *)reader->frame)->type !=
		    KEXTLOG_FRAME_STATUS)
			return (const void *)reader->frame;
	}
	return NULL;
}

static const struct kextlog_frame_header *next_frame(struct reader *reader)
{
	return next_any(reader, false);
}

static const struct kextlog_log_frame *next_log(struct reader *reader)
{
	const struct kextlog_frame_header *frame = next_frame(reader);

	REQUIRE(frame != NULL);
	REQUIRE(frame->type == KEXTLOG_FRAME_LOG);
	return (const void *)frame;
}

static struct kextlog_hello_frame read_hello(struct reader *reader)
{
	const struct kextlog_frame_header *frame = next_frame(reader);
	struct kextlog_hello_frame hello;

	REQUIRE(frame != NULL && frame->type == KEXTLOG_FRAME_HELLO);
	memcpy(&hello, frame, sizeof hello);
	return hello;
}

static bool message_is(const struct kextlog_log_frame *frame, const char *text)
{
	return frame->message_length == strlen(text) &&
	    memcmp(frame->message, text, frame->message_length) == 0;
}

static bool message_has(const struct kextlog_log_frame *frame, const char *text)
{
	size_t length = strlen(text);

	for (size_t i = 0; i + length <= frame->message_length; i++)
		if (memcmp(frame->message + i, text, length) == 0)
			return true;
	return false;
}

static void write_frame(struct reader *reader, const void *frame, uint32_t length, size_t piece)
{
	CHECK_EQ(kextlog_shim_write(reader->unit, frame, length, piece), 0);
	CHECK_EQ(kextlog_shim.live_mbufs, 0); /* the glue freed the chain */
}

static void write_resume(struct reader *reader, const uint8_t *instance_id, uint64_t seq,
    size_t piece)
{
	struct kextlog_resume_frame resume;

	write_frame(reader, &resume, kextlog_encode_resume(&resume, instance_id, seq), piece);
}

static void write_ack(struct reader *reader, uint64_t seq)
{
	struct kextlog_ack_frame ack;

	write_frame(reader, &ack, kextlog_encode_ack(&ack, seq), 0);
}

/* Connected, HELLO read and answered with RESUME from seq 1. */
static void connect_streaming(struct reader *reader, int type)
{
	struct kextlog_hello_frame hello;

	connect_client(reader, type);
	hello = read_hello(reader);
	write_resume(reader, hello.instance_id, 1, 0);
}

/* ---- the tests ---- */

static void test_start_and_stop(void)
{
	const struct kern_ctl_reg *control = &kextlog_shim.registration;
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);
	char name[128];

	start(KEXTLOG_SOCKET_DGRAM);
	CHECK(kextlog_shim.registered);
	CHECK(strcmp(control->ctl_name, CONTROL) == 0);
	CHECK_EQ(control->ctl_flags, CTL_FLAG_PRIVILEGED); /* root only, dynamic id, datagrams */
	/* A receive buffer for bursts, within kern.ipc.maxsockbuf's default. */
	CHECK(control->ctl_recvsize >= (1u << 20) && control->ctl_recvsize <= (7u << 20));
	CHECK(control->ctl_sendsize >= 2048);
	CHECK(control->ctl_connect != NULL && control->ctl_disconnect != NULL &&
	    control->ctl_send != NULL);
	CHECK(kextlog_shim.timer_pending);
	CHECK_EQ(kextlog_shim.live_blocks, 1); /* the ring */
	CHECK_EQ(kextlog_shim.live_locks, 1);
	CHECK_EQ(kextlog_shim.oid_count, COUNT(counter_names) + 2); /* and the node, min_level */
	for (size_t i = 0; i < COUNT(counter_names); i++) {
		const struct sysctl_oid *oid;

		snprintf(name, sizeof name, SYSCTL("%s"), counter_names[i]);
		oid = kextlog_shim_sysctl_find(name);
		REQUIRE(oid != NULL);
		CHECK_EQ(oid->oid_kind & CTLTYPE, CTLTYPE_QUAD);
		CHECK_EQ(kextlog_shim_sysctl_write(name, 1), EPERM); /* read-only */
	}
	CHECK_EQ(read_sysctl(SYSCTL("ring_capacity")), RECORDS);
	CHECK_EQ(read_sysctl(SYSCTL("min_level")), KEXTLOG_LEVEL_TRACE);
	CHECK_EQ(kextlog_start(&s), EALREADY);
	stop();
	CHECK_EQ(kextlog_stop(), 0); /* stopping twice does nothing */

	/* A second load cycle registers everything afresh. */
	kextlog_shim_reset();
	start_with(&s);
	CHECK(kextlog_shim.registered);
	CHECK_EQ(kextlog_shim.oid_count, COUNT(counter_names) + 2);
	stop();
}

static void check_refused(struct kextlog_settings s)
{
	CHECK_EQ(kextlog_start(&s), EINVAL);
	check_released();
}

static void test_bad_settings(void)
{
	char too_long[MAX_KCTL_NAME + 1]; /* its last 64 or 32 characters: one too many there */
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);

	memset(too_long, 'a', MAX_KCTL_NAME);
	too_long[MAX_KCTL_NAME] = '\0';
	kextlog_shim_reset();
	CHECK_EQ(kextlog_start(NULL), EINVAL);
	s.control_name = "";
	check_refused(s);
	s.control_name = too_long;
	check_refused(s);
	s = settings(KEXTLOG_SOCKET_DGRAM);
	s.producer_name = too_long + MAX_KCTL_NAME - KEXTLOG_NAME_MAX;
	check_refused(s);
	s = settings(KEXTLOG_SOCKET_DGRAM);
	s.sysctl_name = "kextlog.test";
	check_refused(s);
	s.sysctl_name = too_long + MAX_KCTL_NAME - 32;
	check_refused(s);
	s.sysctl_name = NULL;
	check_refused(s);
	s = settings(KEXTLOG_SOCKET_DGRAM);
	s.min_level = 0;
	check_refused(s);
	s.min_level = KEXTLOG_LEVEL_ERROR + 1;
	check_refused(s);
	s = settings(KEXTLOG_SOCKET_STREAM + 1);
	check_refused(s);
}

static void test_start_failures(void)
{
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);

	kextlog_shim_reset();
	kextlog_shim.osmalloc_fails = true; /* no ring */
	CHECK_EQ(kextlog_start(&s), ENOMEM);
	check_released();

	kextlog_shim_reset();
	kextlog_shim.register_error = EEXIST; /* another kext has the name */
	CHECK_EQ(kextlog_start(&s), EEXIST);
	check_released();
	CHECK(printed("cannot register the control " CONTROL));

	start(KEXTLOG_SOCKET_DGRAM); /* and it starts afterwards */
	stop();
}

static void test_one_privileged_client(void)
{
	struct reader reader;
	uint32_t unit;

	start(KEXTLOG_SOCKET_DGRAM);
	CHECK_EQ(kextlog_shim_connect(SOCK_DGRAM, false, &unit), EPERM);
	CHECK_EQ(kextlog_shim_connect(SOCK_STREAM, true, &unit), EPROTOTYPE);
	CHECK_EQ(read_sysctl(SYSCTL("connects")), 0); /* the kernel refused those */

	connect_streaming(&reader, SOCK_DGRAM);
	CHECK_EQ(kextlog_shim_connect(SOCK_DGRAM, true, &unit), EISCONN);
	CHECK_EQ(read_sysctl(SYSCTL("connects")), 1);
	/* XNU called disconnect for the refused client: the first one stays. */
	log_info("after the refused client");
	CHECK(message_is(next_log(&reader), "after the refused client"));
	CHECK_EQ(kextlog_shim.bad_units, 0);

	kextlog_shim_disconnect(reader.unit);
	CHECK_EQ(kextlog_shim_connect(SOCK_DGRAM, true, &unit), 0); /* the next is welcome */
	kextlog_shim_disconnect(unit);
	stop();
}

static void test_hello_resume_replay_ack(void)
{
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);
	struct kextlog_hello_frame hello;
	const struct kextlog_log_frame *log;
	struct reader reader;
	uint64_t wall[6], mono[6];
	char text[64];

	kextlog_shim_reset();
	kextlog_shim.boot_session = BOOT_SESSION;
	start_with(&s);
	for (int i = 1; i <= 5; i++) {
		kextlog_shim.wall_ns += 1000003;
		kextlog_shim.mono_ns += 999;
		wall[i] = kextlog_shim.wall_ns;
		mono[i] = kextlog_shim.mono_ns;
		log_info("before the daemon %d", i);
	}

	connect_client(&reader, SOCK_DGRAM);
	hello = read_hello(&reader);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(hello.instance_id[i], i); /* the first uuid_generate_random */
	CHECK(memcmp(hello.boot_id, boot_id, sizeof boot_id) == 0);
	CHECK_EQ(hello.oldest_seq, 1);
	CHECK_EQ(hello.next_seq, 6);
	CHECK_EQ(hello.ring_records, RECORDS);
	CHECK_EQ(hello.ring_bytes, kextlog_ring_bytes(RECORDS));
	CHECK_EQ(hello.producer_version, VERSION);
	CHECK(strcmp(hello.name, NAME) == 0);
	CHECK(next_frame(&reader) == NULL); /* nothing until RESUME */

	write_resume(&reader, hello.instance_id, 1, 1); /* one byte per mbuf */
	for (int i = 1; i <= 5; i++) {
		log = next_log(&reader);
		snprintf(text, sizeof text, "before the daemon %d", i);
		CHECK(message_is(log, text));
		CHECK_EQ(log->seq, i);
		CHECK_EQ(log->level, KEXTLOG_LEVEL_INFO);
		CHECK_EQ(log->time_ns, wall[i]);
		CHECK_EQ(log->mono_ns, mono[i]);
		CHECK_EQ(log->pid, kextlog_shim.task.pid);
		CHECK_EQ(log->tid, kextlog_shim.task.tid);
		CHECK(strcmp(log->process, kextlog_shim.task.name) == 0);
	}
	log_warning("live");
	log = next_log(&reader);
	CHECK_EQ(log->seq, 6);
	CHECK_EQ(log->level, KEXTLOG_LEVEL_WARNING);
	CHECK(next_frame(&reader) == NULL);
	CHECK_EQ(read_sysctl(SYSCTL("delivered")), 6);
	CHECK_EQ(read_sysctl(SYSCTL("ring_records")), 6);

	write_ack(&reader, 4);
	CHECK_EQ(read_sysctl(SYSCTL("acknowledged")), 4);
	CHECK_EQ(read_sysctl(SYSCTL("ring_records")), 2);
	write_ack(&reader, 100); /* more than was sent: refused */
	CHECK_EQ(read_sysctl(SYSCTL("bad_input")), 1);
	CHECK_EQ(read_sysctl(SYSCTL("acknowledged")), 4);
	write_ack(&reader, 6);
	CHECK_EQ(read_sysctl(SYSCTL("acknowledged")), 6);
	CHECK_EQ(read_sysctl(SYSCTL("ring_records")), 0);

	/* A daemon that comes back resumes after what it has. */
	kextlog_shim_disconnect(reader.unit);
	log_error("while away");
	connect_client(&reader, SOCK_DGRAM);
	hello = read_hello(&reader);
	CHECK_EQ(hello.oldest_seq, 7);
	write_resume(&reader, hello.instance_id, 7, 0);
	log = next_log(&reader);
	CHECK_EQ(log->seq, 7);
	CHECK(message_is(log, "while away"));
	kextlog_shim_disconnect(reader.unit);
	stop();
}

static void test_datagrams_and_streams(void)
{
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);
	struct reader reader;
	uint32_t unit;
	uint64_t seq = 0;

	kextlog_shim_reset();
	s.ring_records = 4096;
	start_with(&s);
	connect_streaming(&reader, SOCK_DGRAM);
	kextlog_shim.room = 0; /* a backlog, sent in batches when there is room */
	for (int i = 0; i < 2000; i++)
		log_trace("datagram test message %d with some words to make it longer", i);
	kextlog_shim.room = SIZE_MAX;
	CHECK(kextlog_shim_fire_timer());
	CHECK(reader.client->enqueues > 2);                       /* batched ... */
	CHECK_EQ(reader.client->enqueues_eor, reader.client->enqueues); /* each one datagram */
	CHECK_EQ(reader.client->split_datagrams, 0);                /* of whole frames */
	CHECK(reader.client->largest_enqueue <= 65536);
	while (next_frame(&reader) != NULL)
		seq++;
	CHECK_EQ(seq, 2000);
	kextlog_shim_disconnect(reader.unit);
	stop();

	/* SOCK_STREAM: the control takes only stream clients; no records. */
	start(KEXTLOG_SOCKET_STREAM);
	CHECK_EQ(kextlog_shim.registration.ctl_flags,
	    CTL_FLAG_PRIVILEGED | CTL_FLAG_REG_SOCK_STREAM);
	CHECK_EQ(kextlog_shim_connect(SOCK_DGRAM, true, &unit), EPROTOTYPE);
	connect_streaming(&reader, SOCK_STREAM);
	log_info("over a stream");
	CHECK(message_is(next_log(&reader), "over a stream"));
	CHECK_EQ(reader.client->enqueues_eor, 0);
	kextlog_shim_disconnect(reader.unit);
	stop();
}

static void test_no_room_then_retry(void)
{
	struct reader reader;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_streaming(&reader, SOCK_DGRAM);
	kextlog_shim.room = 0; /* ctl_enqueuedata: ENOBUFS */
	for (int i = 1; i <= 10; i++)
		log_info("busy %d", i);
	CHECK(next_frame(&reader) == NULL);
	CHECK(kextlog_shim.enqueue_failures >= 10);
	CHECK(read_sysctl(SYSCTL("send_busy")) >= 10);
	CHECK_EQ(read_sysctl(SYSCTL("ring_records")), 10); /* they wait in the ring */
	CHECK_EQ(read_sysctl(SYSCTL("diverted")), 0);

	kextlog_shim.room = SIZE_MAX; /* the client read: only the timer can tell */
	CHECK(kextlog_shim_fire_timer());
	for (uint64_t seq = 1; seq <= 10; seq++)
		CHECK_EQ(next_log(&reader)->seq, seq);
	CHECK(kextlog_shim.timer_pending); /* re-armed */

	kextlog_shim.enqueue_error = ENOMEM; /* no mbufs: the same */
	log_info("no mbufs");
	CHECK(next_frame(&reader) == NULL);
	kextlog_shim.enqueue_error = 0;
	write_ack(&reader, 10); /* the client's ACK is another chance */
	CHECK(message_is(next_log(&reader), "no mbufs"));
	kextlog_shim_disconnect(reader.unit);
	stop();
}

static void test_hostile_input(void)
{
	static uint8_t garbage[1 << 20];
	struct kextlog_ack_frame ack;
	struct kextlog_frame_header unknown;
	struct reader reader;
	uint32_t length;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_streaming(&reader, SOCK_DGRAM);
	for (size_t i = 0; i < 3000; i++)
		garbage[i] = (uint8_t)(i * 37 + 11);
	write_frame(&reader, garbage, 3000, 7);
	CHECK_EQ(read_sysctl(SYSCTL("bad_input")), 1);
	memset(garbage, 0, sizeof garbage); /* a megabyte of zeros in 1500-byte mbufs */
	write_frame(&reader, garbage, sizeof garbage, 1500);
	CHECK_EQ(read_sysctl(SYSCTL("bad_input")), 2);
	write_frame(&reader, garbage, 0, 0); /* an empty write */
	CHECK(kextlog_shim.largest_copy <= 256); /* copied out in small pieces */

	/* A frame of a type the kext does not know is skipped, not an error. */
	kextlog_encode_header(&unknown, 100, sizeof unknown);
	write_frame(&reader, &unknown, sizeof unknown, 0);
	CHECK_EQ(read_sysctl(SYSCTL("bad_input")), 2);

	/* Still in step: an ACK cut across two writes works. */
	log_info("one");
	log_info("two");
	length = kextlog_encode_ack(&ack, 2);
	write_frame(&reader, &ack, 10, 0);
	CHECK_EQ(read_sysctl(SYSCTL("acknowledged")), 0);
	write_frame(&reader, (const uint8_t *)&ack + 10, length - 10, 3);
	CHECK_EQ(read_sysctl(SYSCTL("acknowledged")), 2);
	CHECK(message_is(next_log(&reader), "one"));
	CHECK(message_is(next_log(&reader), "two"));
	kextlog_shim_disconnect(reader.unit);
	stop();
}

/* The attack: once something is acknowledged, RESUMEs glued in one
 * write each asked for a RELEASED loss in a fixed buffer.  The first RESUME
 * of a connection counts; the rest of the write is refused, and every byte
 * the client gets is a frame. */
static void test_resumes_in_one_write(void)
{
	struct kextlog_resume_frame resumes[16];
	struct kextlog_hello_frame hello;
	const struct kextlog_frame_header *frame;
	const struct kextlog_loss_frame *loss;
	struct reader reader;
	uint32_t length = 0;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_streaming(&reader, SOCK_DGRAM);
	for (int i = 1; i <= 6; i++)
		log_info("record %d", i);
	write_ack(&reader, 4);
	kextlog_shim_disconnect(reader.unit);

	connect_client(&reader, SOCK_DGRAM);
	hello = read_hello(&reader);
	for (size_t i = 0; i < COUNT(resumes); i++)
		length += kextlog_encode_resume(&resumes[i], hello.instance_id, 1);
	write_frame(&reader, resumes, length, 0);
	CHECK_EQ(read_sysctl(SYSCTL("bad_input")), 1);
	frame = next_frame(&reader);
	REQUIRE(frame != NULL && frame->type == KEXTLOG_FRAME_LOSS);
	loss = (const void *)frame;
	CHECK_EQ(loss->first_seq, 1);
	CHECK_EQ(loss->last_seq, 4);
	CHECK_EQ(next_log(&reader)->seq, 5);
	CHECK_EQ(next_log(&reader)->seq, 6);
	CHECK(next_frame(&reader) == NULL); /* next_frame checked every byte */
	write_ack(&reader, 6);
	CHECK_EQ(read_sysctl(SYSCTL("ring_records")), 0);
	kextlog_shim_disconnect(reader.unit);
	stop();
}

/* Frames leave the kernel with every padding byte zero, also a frame
 * formatted in a heap block that OSMalloc_noblock filled with 0xA5. */
static void check_zeroed(const struct kextlog_log_frame *log)
{
	const uint8_t *bytes = (const uint8_t *)log;
	size_t name = strnlen(log->process, sizeof log->process);

	CHECK_EQ(log->header.padding, 0);
	for (size_t i = 0; i < sizeof log->padding; i++)
		CHECK_EQ(log->padding[i], 0);
	for (size_t i = name; i < sizeof log->process; i++)
		CHECK_EQ(log->process[i], 0);
	for (size_t i = sizeof *log + log->message_length; i < log->header.length; i++)
		CHECK_EQ(bytes[i], 0);
}

static void test_sysctls(void)
{
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);
	const struct kextlog_log_frame *log;
	struct reader reader;
	char long_text[601];

	kextlog_shim_reset();
	s.ring_records = 64;
	start_with(&s);
	memset(long_text, 'x', sizeof long_text - 1);
	long_text[sizeof long_text - 1] = '\0';

	log_trace("one");
	CHECK_EQ(read_sysctl(SYSCTL("logged")), 1);
	CHECK_EQ(kextlog_shim_sysctl_write(SYSCTL("min_level"), KEXTLOG_LEVEL_INFO), 0);
	CHECK_EQ(read_sysctl(SYSCTL("min_level")), KEXTLOG_LEVEL_INFO);
	CHECK(!kextlog_level_enabled(KEXTLOG_LEVEL_DEBUG));
	CHECK(kextlog_level_enabled(KEXTLOG_LEVEL_INFO));
	log_debug("filtered");
	CHECK_EQ(read_sysctl(SYSCTL("filtered")), 1);
	CHECK_EQ(read_sysctl(SYSCTL("logged")), 1);
	CHECK_EQ(kextlog_shim_sysctl_write(SYSCTL("min_level"), 0), EINVAL);
	CHECK_EQ(kextlog_shim_sysctl_write(SYSCTL("min_level"), KEXTLOG_LEVEL_ERROR + 1), EINVAL);
	CHECK_EQ(read_sysctl(SYSCTL("min_level")), KEXTLOG_LEVEL_INFO);

	connect_streaming(&reader, SOCK_DGRAM);
	CHECK(message_is(next_log(&reader), "one"));
	log_info("%s", long_text); /* the heap path */
	log = next_log(&reader);
	CHECK_EQ(log->message_length, 600);
	CHECK_EQ(log->flags, 0);
	check_zeroed(log);
	CHECK_EQ(read_sysctl(SYSCTL("heap")), 1);
	kextlog_shim.noblock_fails = true; /* no memory: the stack copy, cut */
	log_info("%s", long_text);
	log = next_log(&reader);
	CHECK_EQ(log->message_length, KEXTLOG_STACK_MESSAGE);
	CHECK_EQ(log->flags, KEXTLOG_LOG_TRUNCATED | KEXTLOG_LOG_NOMEM);
	check_zeroed(log);
	kextlog_shim.noblock_fails = false;
	CHECK_EQ(read_sysctl(SYSCTL("nomem")), 1);
	CHECK_EQ(read_sysctl(SYSCTL("truncated")), 1);
	CHECK_EQ(kextlog_shim.live_blocks, 1); /* every heap block freed: the ring is left */

	kextlog_shim_disconnect(reader.unit);

	/* No client and the ring full: the kernel log, counted. */
	for (int i = 0; i < 100; i++)
		log_error("overflow %d", i);
	CHECK(read_sysctl(SYSCTL("diverted")) > 0);
	CHECK_EQ(read_sysctl(SYSCTL("ring_capacity")), 64);
	CHECK_EQ(read_sysctl(SYSCTL("ring_high_water")), 64);
	CHECK(printed(NAME ": lost seq "));
	CHECK(printed(" ERROR: overflow 99"));
	CHECK_EQ(read_sysctl(SYSCTL("connects")), 1);
	CHECK_EQ(read_sysctl(SYSCTL("bad_input")), 0);
	stop();
}

/* One call site, in a storm. */
static void storm(uint32_t i)
{
	log_printf_ratelimited(KEXTLOG_LEVEL_WARNING, "storm %u", i);
}

static void test_ratelimit_report(void)
{
	struct reader reader;
	const struct kextlog_log_frame *log;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_streaming(&reader, SOCK_DGRAM);
	for (uint32_t i = 0; i < KEXTLOG_RATELIMIT_BURST + 5; i++)
		storm(i);
	CHECK_EQ(read_sysctl(SYSCTL("ratelimited")), 5);
	for (uint32_t i = 0; i < KEXTLOG_RATELIMIT_BURST; i++)
		CHECK_EQ(next_log(&reader)->level, KEXTLOG_LEVEL_WARNING);
	CHECK(next_frame(&reader) == NULL);
	kextlog_shim.mono_ns += KEXTLOG_RATELIMIT_INTERVAL_NS; /* the next window */
	storm(100);
	log = next_log(&reader);
	CHECK_EQ(log->level, KEXTLOG_LEVEL_WARNING);
	CHECK(message_has(log, "5 messages suppressed at "));
	CHECK(message_is(next_log(&reader), "storm 100"));
	kextlog_shim_disconnect(reader.unit);
	stop();
}

static void test_stop_refused_while_connected(void)
{
	struct reader reader;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_streaming(&reader, SOCK_DGRAM);
	CHECK_EQ(kextlog_stop(), EBUSY);
	CHECK(printed("refusing to stop"));
	/* Nothing changed: it logs, delivers and counts as before. */
	CHECK(kextlog_shim.registered);
	CHECK(kextlog_shim.timer_pending);
	CHECK_EQ(kextlog_shim.oid_count, COUNT(counter_names) + 2);
	log_info("still here");
	CHECK(message_is(next_log(&reader), "still here"));
	write_ack(&reader, 1);
	CHECK_EQ(read_sysctl(SYSCTL("acknowledged")), 1);
	kextlog_shim_disconnect(reader.unit);
	stop();
}

/* The daemon is gone and some records were never acknowledged: at stop
 * they go to the kernel log, after one line saying which. */
static void test_stop_prints_unacknowledged(void)
{
	struct reader reader;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_streaming(&reader, SOCK_DGRAM);
	log_info("stored %d", 1);
	log_info("stored %d", 2);
	write_ack(&reader, 2);
	log_warning("never acknowledged %d", 3);
	kextlog_shim_disconnect(reader.unit);
	log_error("after the daemon left %d", 4);
	CHECK(!printed("unacknowledged"));
	stop();
	CHECK(printed(NAME ": stop: 2 unacknowledged records, seqs 3..4, printed below\n"
	    NAME ": unacknowledged seq 3 WARNING: never acknowledged 3\n"
	    NAME ": unacknowledged seq 4 ERROR: after the daemon left 4\n"));
	CHECK(!printed("stored"));
}

static void test_timer(void)
{
	const struct kextlog_frame_header *frame;
	struct reader reader;
	uint32_t fires;

	start(KEXTLOG_SOCKET_DGRAM);
	connect_client(&reader, SOCK_DGRAM); /* a client that only reads */
	read_hello(&reader);
	log_info("first");
	CHECK(kextlog_shim_fire_timer());
	CHECK(next_frame(&reader) == NULL); /* still waiting for RESUME */
	kextlog_shim.mono_ns += KEXTLOG_RESUME_TIMEOUT_NS;
	CHECK(kextlog_shim_fire_timer()); /* the resume timeout: replay */
	CHECK(message_is(next_log(&reader), "first"));
	kextlog_shim.mono_ns += KEXTLOG_STATUS_INTERVAL_NS;
	CHECK(kextlog_shim_fire_timer());
	frame = next_any(&reader, true);
	REQUIRE(frame != NULL);
	CHECK_EQ(frame->type, KEXTLOG_FRAME_STATUS);
	CHECK(kextlog_shim.timer_pending);
	kextlog_shim_disconnect(reader.unit);
	stop(); /* cancelled while pending: no wait */
	CHECK_EQ(kextlog_shim.sleeps, 0);

	/* The call has begun when stop cancels it: stop waits for it to run,
	 * see the stop and not re-arm. */
	start(KEXTLOG_SOCKET_DGRAM);
	fires = kextlog_shim.timer_fires;
	kextlog_shim.cancel_misses = true;
	stop();
	CHECK_EQ(kextlog_shim.timer_fires, fires + 1);
	CHECK(kextlog_shim.sleeps > 0);
}

static void test_outside_start_and_stop(void)
{
	struct kextlog_ratelimit site = { 0 };

	kextlog_shim_reset();
	log_info("before the start %d", 1);
	CHECK(printed("kextlog INFO: before the start 1"));
	CHECK(kextlog_level_enabled(KEXTLOG_LEVEL_TRACE));
	CHECK(kextlog_ratelimit(&site, "here"));

	start(KEXTLOG_SOCKET_DGRAM);
	CHECK_EQ(kextlog_shim_sysctl_write(SYSCTL("min_level"), KEXTLOG_LEVEL_WARNING), 0);
	stop();
	log_info("quiet");
	log_error("after the stop");
	CHECK(!printed("quiet"));
	CHECK(printed("kextlog ERROR: after the stop"));
	CHECK(!kextlog_level_enabled(KEXTLOG_LEVEL_INFO));
	CHECK(kextlog_level_enabled(KEXTLOG_LEVEL_ERROR));

	start(KEXTLOG_SOCKET_DGRAM); /* back to the default for the other tests */
	stop();
}

static void test_ring_capacity(void)
{
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);

	kextlog_shim_reset();
	kextlog_shim.boot_arg = "kextlog_test_ring";
	kextlog_shim.boot_arg_value = 1000;
	start_with(&s);
	CHECK_EQ(read_sysctl(SYSCTL("ring_capacity")), 1000);
	stop();

	kextlog_shim_reset();
	kextlog_shim.boot_arg = "kextlog_test_ring";
	kextlog_shim.boot_arg_value = 10;
	start_with(&s);
	CHECK_EQ(read_sysctl(SYSCTL("ring_capacity")), KEXTLOG_RING_RECORDS_MIN);
	CHECK(printed("a ring of 10 records is out of range, using 64"));
	stop();

	kextlog_shim_reset();
	kextlog_shim.boot_arg = "kextlog_test_ring";
	kextlog_shim.boot_arg_value = 1000;
	s.ring_boot_arg = NULL; /* a kext without the boot-arg ignores it */
	s.ring_records = UINT32_MAX;
	start_with(&s);
	CHECK_EQ(read_sysctl(SYSCTL("ring_capacity")), KEXTLOG_RING_RECORDS_MAX);
	stop();
}

static void check_boot_id(const char *session, const uint8_t *expected)
{
	struct kextlog_settings s = settings(KEXTLOG_SOCKET_DGRAM);
	struct kextlog_hello_frame hello;
	struct reader reader;

	kextlog_shim_reset();
	kextlog_shim.boot_session = session;
	start_with(&s);
	connect_client(&reader, SOCK_DGRAM);
	hello = read_hello(&reader);
	CHECK(memcmp(hello.boot_id, expected, KEXTLOG_ID_SIZE) == 0);
	kextlog_shim_disconnect(reader.unit);
	stop();
}

static void test_boot_id(void)
{
	static const uint8_t zero[KEXTLOG_ID_SIZE];

	check_boot_id(BOOT_SESSION, boot_id);
	check_boot_id("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", boot_id);
	check_boot_id(NULL, zero);
	check_boot_id("not a uuid", zero);
	check_boot_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-and-more", zero);
}

/* ---- a kext written against the seed (seed_kext.c, through log_kctl.h) ---- */

kern_return_t seed_kext_start(kmod_info_t *ki, void *d);
kern_return_t seed_kext_stop(kmod_info_t *ki, void *d);
void seed_kext_log(int pid, const char *path);

static void expect_log(struct reader *reader, uint32_t level, const char *text)
{
	const struct kextlog_log_frame *log = next_log(reader);

	CHECK_EQ(log->level, level);
	if (!message_is(log, text))
		fprintf(stderr, "expected \"%s\", got \"%.*s\"\n", text, (int)log->message_length,
		    log->message);
	CHECK(message_is(log, text));
}

static void test_seed_kext(void)
{
	struct kextlog_hello_frame hello;
	struct reader reader;
	char text[128];
	uint32_t unit;

	kextlog_shim_reset();
	CHECK_EQ(seed_kext_start(NULL, NULL), KERN_SUCCESS);
	CHECK(strcmp(kextlog_shim.registration.ctl_name, "com.example.seed_kext.kctl") == 0);
	CHECK_EQ(kextlog_shim.registration.ctl_flags, CTL_FLAG_PRIVILEGED); /* SOCK_DGRAM */
	CHECK(kextlog_shim_sysctl_find("debug.seed_kext.delivered") != NULL);
	CHECK_EQ(seed_kext_start(NULL, NULL), KERN_FAILURE); /* started already */
	snprintf(text, sizeof text, "com.example.seed_kext: log_kctl_register: kextlog_start "
	    "failed (error %d)\n", EALREADY);
	CHECK(printed(text));

	connect_client(&reader, SOCK_DGRAM);
	hello = read_hello(&reader);
	CHECK(strcmp(hello.name, "com.example.seed_kext") == 0);
	write_resume(&reader, hello.instance_id, 1, 0);
	seed_kext_log(42, "/etc/hosts");
	/* The seed's levels 0..4, by name or number, are kextlog's 1..5. */
	expect_log(&reader, KEXTLOG_LEVEL_INFO, "started, kctl com.example.seed_kext.kctl");
	expect_log(&reader, KEXTLOG_LEVEL_TRACE, "vnode /etc/hosts by 42");
	expect_log(&reader, KEXTLOG_LEVEL_DEBUG, "debug 42");
	expect_log(&reader, KEXTLOG_LEVEL_INFO, "info /etc/hosts");
	expect_log(&reader, KEXTLOG_LEVEL_WARNING, "warning 42");
	expect_log(&reader, KEXTLOG_LEVEL_ERROR, "error /etc/hosts");
	expect_log(&reader, KEXTLOG_LEVEL_WARNING, "log_printf WARNING 42");
	expect_log(&reader, KEXTLOG_LEVEL_INFO, "log_printf 2 (INFO in the seed)");
	expect_log(&reader, KEXTLOG_LEVEL_ERROR, "INFO is enabled");
	CHECK(next_frame(&reader) == NULL);

	/* The seed's level 3 (WARNING) as the minimum: its INFO is not enabled. */
	CHECK_EQ(kextlog_shim_sysctl_write("debug.seed_kext.min_level", KEXTLOG_LEVEL_WARNING), 0);
	seed_kext_log(7, "/tmp");
	expect_log(&reader, KEXTLOG_LEVEL_WARNING, "warning 7");
	expect_log(&reader, KEXTLOG_LEVEL_ERROR, "error /tmp");
	expect_log(&reader, KEXTLOG_LEVEL_WARNING, "log_printf WARNING 7");
	CHECK(next_frame(&reader) == NULL);

	CHECK_EQ(seed_kext_stop(NULL, NULL), KERN_FAILURE); /* the daemon is connected */
	CHECK(kextlog_shim.registered);
	kextlog_shim_disconnect(reader.unit);
	CHECK_EQ(seed_kext_stop(NULL, NULL), KERN_SUCCESS);
	check_released();
	CHECK(printed("com.example.seed_kext: stop: 12 unacknowledged records, seqs 1..12"));
	CHECK_EQ(kextlog_shim_connect(SOCK_DGRAM, true, &unit), ENOENT); /* gone */
}

/* ---- the kext's frames are the simulator's ---- */

#define SAME_BYTES_SEED  20261127u
#define SAME_BYTES_COUNT 2000u

/* What sim_capture (beside this program) received from the simulator. */
static uint8_t *capture_simulator(const char *program, size_t *length)
{
	const char *slash = strrchr(program, '/');
	const char *directory = slash != NULL ? program : ".";
	int directory_length = slash != NULL ? (int)(slash - program) : 1;
	char command[4096];
	uint8_t *data = NULL;
	size_t capacity = 0, got;
	FILE *pipe;

	snprintf(command, sizeof command, "%.*s/sim_capture %u %u", directory_length, directory,
	    SAME_BYTES_SEED, SAME_BYTES_COUNT);
	pipe = popen(command, "r");
	REQUIRE(pipe != NULL);
	*length = 0;
	do {
		if (*length == capacity) {
			capacity = capacity != 0 ? 2 * capacity : 1 << 20;
			data = realloc(data, capacity);
			REQUIRE(data != NULL);
		}
		got = fread(data + *length, 1, capacity - *length, pipe);
		*length += got;
	} while (got > 0);
	REQUIRE(pclose(pipe) == 0);
	return data;
}

/* The same workload through the glue, each message at the clock values the
 * simulator's frame for it carries; returns the LOG frames the client got. */
static uint8_t *replay_through_kext(uint32_t socket_type, const uint8_t *reference,
    size_t reference_length, size_t *length)
{
	struct kextlog_settings s = settings(socket_type);
	struct kextlog_workload *workload = malloc(sizeof *workload);
	const struct kextlog_frame_header *frame;
	struct reader reader;
	uint8_t *sent = malloc(reference_length);
	size_t offset = 0;

	REQUIRE(workload != NULL && sent != NULL);
	kextlog_shim_reset();
	s.ring_records = 2 * SAME_BYTES_COUNT; /* as sim_capture's simulator */
	start_with(&s);
	kextlog_workload_init(workload, SAME_BYTES_SEED);
	kextlog_shim.task_source = &workload->current;
	while (offset < reference_length) {
		struct kextlog_log_frame fields;

		memcpy(&fields, reference + offset, sizeof fields);
		kextlog_shim.wall_ns = fields.time_ns;
		kextlog_shim.mono_ns = fields.mono_ns;
		kextlog_workload_event(workload);
		offset += fields.header.length;
	}
	CHECK_EQ(read_sysctl(SYSCTL("logged")), SAME_BYTES_COUNT);
	CHECK_EQ(read_sysctl(SYSCTL("diverted")), 0);

	connect_streaming(&reader, socket_type == KEXTLOG_SOCKET_STREAM ? SOCK_STREAM : SOCK_DGRAM);
	*length = 0;
	while ((frame = next_frame(&reader)) != NULL) {
		CHECK_EQ(frame->type, KEXTLOG_FRAME_LOG);
		REQUIRE(*length + frame->length <= reference_length);
		memcpy(sent + *length, frame, frame->length);
		*length += frame->length;
	}
	kextlog_shim_disconnect(reader.unit);
	stop();
	free(workload);
	return sent;
}

/* Names the first frame that differs, to make a failure readable. */
static void report_difference(const uint8_t *expected, const uint8_t *got, size_t length)
{
	size_t offset = 0;

	while (offset < length) {
		struct kextlog_log_frame frame;

		memcpy(&frame, expected + offset, sizeof frame);
		for (size_t i = 0; i < frame.header.length && offset + i < length; i++) {
			if (expected[offset + i] != got[offset + i]) {
				fprintf(stderr, "seq %llu differs at byte %zu of its frame\n",
				    (unsigned long long)frame.seq, i);
				return;
			}
		}
		offset += frame.header.length;
	}
}

static void test_same_bytes_as_simulator(const char *program)
{
	size_t reference_length, length;
	uint8_t *reference = capture_simulator(program, &reference_length);
	uint32_t types[] = { KEXTLOG_SOCKET_DGRAM, KEXTLOG_SOCKET_STREAM };

	REQUIRE(reference_length > SAME_BYTES_COUNT * sizeof(struct kextlog_log_frame));
	for (size_t i = 0; i < COUNT(types); i++) {
		uint8_t *sent = replay_through_kext(types[i], reference, reference_length, &length);

		CHECK_EQ(length, reference_length);
		if (length == reference_length && memcmp(sent, reference, length) != 0) {
			report_difference(reference, sent, length);
			CHECK(!"the kext's frames are the simulator's");
		}
		free(sent);
	}
	free(reference);
}

int main(int argc, char **argv)
{
	(void)argc;
	test_start_and_stop();
	test_bad_settings();
	test_start_failures();
	test_one_privileged_client();
	test_hello_resume_replay_ack();
	test_datagrams_and_streams();
	test_no_room_then_retry();
	test_hostile_input();
	test_resumes_in_one_write();
	test_sysctls();
	test_ratelimit_report();
	test_stop_refused_while_connected();
	test_stop_prints_unacknowledged();
	test_timer();
	test_outside_start_and_stop();
	test_ring_capacity();
	test_boot_id();
	test_seed_kext();
	test_same_bytes_as_simulator(argv[0]);
	kextlog_shim_reset();
	return kextlog_test_done("test_kctl");
}
