/*
 * test_codec.c - every encoder against kextlog_wire_check, and every way a
 * frame can be malformed.
 */
#include <stdlib.h>
#include <string.h>

#include "kextlog_codec.h"
#include "kextlog_test.h"

#define FILL 0xaa /* what the output buffer holds before an encoder runs */

static _Alignas(8) uint8_t frame[2 * KEXTLOG_FRAME_MAX];

static const uint8_t instance_id[KEXTLOG_ID_SIZE] = {
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static const uint8_t boot_id[KEXTLOG_ID_SIZE] = {
	0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
	0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
};

static void prefill(void)
{
	memset(frame, FILL, sizeof frame);
}

static bool zero(const void *data, size_t length)
{
	const uint8_t *bytes = data;

	for (size_t i = 0; i < length; i++)
		if (bytes[i] != 0)
			return false;
	return true;
}

/* kextlog_wire_check on the first available bytes of `frame`, handed over in
 * an allocation of exactly that size: a read past them is caught. */
static enum kextlog_wire_status check(size_t available, uint32_t *length)
{
	void *exact = kextlog_test_exact(frame, available);
	enum kextlog_wire_status status = kextlog_wire_check(exact, available, length);

	kextlog_test_free(exact, available);
	return status;
}

/* The frame in `frame` is whole and OK with exactly `length` bytes, also when
 * more bytes follow it, and SHORT for every prefix. */
static void check_whole(uint32_t length)
{
	uint32_t checked = 0;

	CHECK_EQ(check(length, &checked), KEXTLOG_WIRE_OK);
	CHECK_EQ(checked, length);
	checked = 0;
	CHECK_EQ(check(sizeof frame, &checked), KEXTLOG_WIRE_OK);
	CHECK_EQ(checked, length);
	for (uint32_t available = 0; available < length; available++)
		CHECK_EQ(check(available, &checked), KEXTLOG_WIRE_SHORT);
}

static enum kextlog_wire_status check_all(void)
{
	uint32_t length;

	return check(sizeof frame, &length);
}

static void test_header(void)
{
	struct kextlog_frame_header *header = (struct kextlog_frame_header *)frame;

	prefill();
	kextlog_encode_header(header, KEXTLOG_FRAME_ACK, 24);
	CHECK_EQ(header->magic, KEXTLOG_WIRE_MAGIC);
	CHECK(memcmp(frame, "KXLG", 4) == 0);
	CHECK_EQ(header->version, KEXTLOG_WIRE_VERSION);
	CHECK_EQ(header->type, KEXTLOG_FRAME_ACK);
	CHECK_EQ(header->length, 24);
	CHECK_EQ(header->padding, 0);
	CHECK_EQ(frame[sizeof *header], FILL); /* the header encoder writes the header only */
}

static void test_hello(void)
{
	struct kextlog_hello_frame *hello = (struct kextlog_hello_frame *)frame;
	const char *name = "com.example.kextlog";
	uint32_t length;

	prefill();
	length = kextlog_encode_hello(hello, instance_id, boot_id, 7, 42, 4096, 1048576,
	    0x010203, name);
	CHECK_EQ(length, sizeof *hello);
	check_whole(length);
	CHECK_EQ(hello->header.type, KEXTLOG_FRAME_HELLO);
	CHECK_EQ(hello->header.length, length);
	CHECK(memcmp(hello->instance_id, instance_id, KEXTLOG_ID_SIZE) == 0);
	CHECK(memcmp(hello->boot_id, boot_id, KEXTLOG_ID_SIZE) == 0);
	CHECK_EQ(hello->oldest_seq, 7);
	CHECK_EQ(hello->next_seq, 42);
	CHECK_EQ(hello->ring_records, 4096);
	CHECK_EQ(hello->ring_bytes, 1048576);
	CHECK_EQ(hello->producer_version, 0x010203);
	CHECK(memcmp(hello->name, name, strlen(name)) == 0);
	CHECK(zero(hello->name + strlen(name), KEXTLOG_NAME_MAX - strlen(name)));
	CHECK_EQ(hello->header.padding, 0);
	CHECK_EQ(hello->padding, 0);
	CHECK_EQ(frame[length], FILL);
}

static struct kextlog_log_frame *encode_log(const char *process, uint32_t level,
    const char *message, uint16_t message_length)
{
	struct kextlog_log_frame *log = (struct kextlog_log_frame *)frame;
	uint32_t length;

	prefill();
	length = kextlog_encode_log(log, 1234, 1700000000123456789ull, 98765, 501,
	    0x1234567890ull, process, level, KEXTLOG_LOG_TRUNCATED, message, message_length);
	CHECK_EQ(length, KEXTLOG_FRAME_ALIGNED(sizeof *log + message_length));
	CHECK_EQ(log->header.length, length);
	CHECK_EQ(frame[length], FILL); /* nothing written past the frame */
	check_whole(length);
	return log;
}

static void test_log(void)
{
	struct kextlog_log_frame *log;
	char longest[KEXTLOG_MESSAGE_MAX];

	log = encode_log("mds_stores", KEXTLOG_LEVEL_WARNING, "hello, kext", 11);
	CHECK_EQ(log->header.length, 112);
	CHECK_EQ(log->header.type, KEXTLOG_FRAME_LOG);
	CHECK_EQ(log->seq, 1234);
	CHECK_EQ(log->time_ns, 1700000000123456789ull);
	CHECK_EQ(log->mono_ns, 98765);
	CHECK_EQ(log->tid, 0x1234567890ull);
	CHECK_EQ(log->pid, 501);
	CHECK_EQ(log->message_length, 11);
	CHECK_EQ(log->flags, KEXTLOG_LOG_TRUNCATED);
	CHECK_EQ(log->level, KEXTLOG_LEVEL_WARNING);
	CHECK(memcmp(log->process, "mds_stores", 10) == 0);
	CHECK(zero(log->process + 10, KEXTLOG_PROCESS_NAME_MAX - 10));
	CHECK(memcmp(log->message, "hello, kext", 11) == 0);
	CHECK(zero(log->message + 11, 112 - sizeof *log - 11));
	CHECK_EQ(log->header.padding, 0);
	CHECK(zero(log->padding, sizeof log->padding));
	CHECK_EQ(kextlog_frame_first_seq(&log->header), 1234);
	CHECK_EQ(kextlog_frame_last_seq(&log->header), 1234);

	/* Only message_length bytes of the message are read. */
	log = encode_log("x", KEXTLOG_LEVEL_TRACE, "12345678 and more", 8);
	CHECK_EQ(log->header.length, 104);
	CHECK(memcmp(log->message, "12345678", 8) == 0);

	log = encode_log("kernel_task", KEXTLOG_LEVEL_ERROR, "", 0);
	CHECK_EQ(log->header.length, sizeof *log);

	memset(longest, 'm', sizeof longest);
	log = encode_log("launchd", KEXTLOG_LEVEL_INFO, longest, KEXTLOG_MESSAGE_MAX);
	CHECK_EQ(log->header.length, KEXTLOG_FRAME_MAX);
	CHECK(memcmp(log->message, longest, sizeof longest) == 0);
}

/* Process names are NUL-padded, not always NUL-terminated: a name that fills
 * the field is read no further (ASan sees an overread of the exact-size
 * allocation) and a longer one is cut. */
static void test_log_process_name(void)
{
	const char *full = "com.apple.WebKit.WebContent.xpc"; /* 31 characters */
	char *unterminated = malloc(KEXTLOG_PROCESS_NAME_MAX);
	struct kextlog_log_frame *log;

	REQUIRE(unterminated != NULL);
	memcpy(unterminated, full, 31);
	unterminated[31] = 'X';
	log = encode_log(unterminated, KEXTLOG_LEVEL_INFO, "message", 7);
	CHECK(memcmp(log->process, unterminated, KEXTLOG_PROCESS_NAME_MAX) == 0);
	CHECK(memcmp(log->message, "message", 7) == 0);
	free(unterminated);

	log = encode_log("0123456789abcdef0123456789ABCDEF-and-more", KEXTLOG_LEVEL_INFO,
	    "message", 7);
	CHECK(memcmp(log->process, "0123456789abcdef0123456789ABCDEF", 32) == 0);
	CHECK(memcmp(log->message, "message", 7) == 0);
}

static void test_loss(void)
{
	struct kextlog_loss_frame *loss = (struct kextlog_loss_frame *)frame;
	uint32_t length;

	prefill();
	length = kextlog_encode_loss(loss, 5, 9, 1000, 2000, KEXTLOG_LOSS_RING_FULL);
	CHECK_EQ(length, sizeof *loss);
	check_whole(length);
	CHECK_EQ(loss->header.type, KEXTLOG_FRAME_LOSS);
	CHECK_EQ(loss->first_seq, 5);
	CHECK_EQ(loss->last_seq, 9);
	CHECK_EQ(loss->count, 5);
	CHECK_EQ(loss->first_time_ns, 1000);
	CHECK_EQ(loss->last_time_ns, 2000);
	CHECK_EQ(loss->reason, KEXTLOG_LOSS_RING_FULL);
	CHECK_EQ(loss->header.padding, 0);
	CHECK_EQ(loss->padding, 0);
	CHECK_EQ(kextlog_frame_first_seq(&loss->header), 5);
	CHECK_EQ(kextlog_frame_last_seq(&loss->header), 9);

	/* A single missing record. */
	prefill();
	length = kextlog_encode_loss(loss, 3, 3, 0, 0, KEXTLOG_LOSS_RELEASED);
	check_whole(length);
	CHECK_EQ(loss->count, 1);
	CHECK_EQ(kextlog_frame_first_seq(&loss->header), 3);
	CHECK_EQ(kextlog_frame_last_seq(&loss->header), 3);
}

static void test_status(void)
{
	struct kextlog_status_frame *status = (struct kextlog_status_frame *)frame;
	uint32_t length;

	prefill();
	length = kextlog_encode_status(status, 77, 3, 123456789, 10, 64, 2048, 16384);
	CHECK_EQ(length, sizeof *status);
	check_whole(length);
	CHECK_EQ(status->header.type, KEXTLOG_FRAME_STATUS);
	CHECK_EQ(status->header.padding, 0);
	CHECK_EQ(status->next_seq, 77);
	CHECK_EQ(status->lost, 3);
	CHECK_EQ(status->time_ns, 123456789);
	CHECK_EQ(status->ring_records, 10);
	CHECK_EQ(status->ring_capacity, 64);
	CHECK_EQ(status->ring_bytes_used, 2048);
	CHECK_EQ(status->ring_bytes, 16384);
}

static void test_ack_resume(void)
{
	struct kextlog_ack_frame *ack = (struct kextlog_ack_frame *)frame;
	struct kextlog_resume_frame *resume = (struct kextlog_resume_frame *)frame;
	uint32_t length;

	prefill();
	length = kextlog_encode_ack(ack, 0x123456789abcull);
	CHECK_EQ(length, sizeof *ack);
	check_whole(length);
	CHECK_EQ(ack->header.type, KEXTLOG_FRAME_ACK);
	CHECK_EQ(ack->seq, 0x123456789abcull);
	CHECK_EQ(ack->header.padding, 0);

	prefill();
	length = kextlog_encode_resume(resume, instance_id, 77);
	CHECK_EQ(length, sizeof *resume);
	check_whole(length);
	CHECK_EQ(resume->header.type, KEXTLOG_FRAME_RESUME);
	CHECK(memcmp(resume->instance_id, instance_id, KEXTLOG_ID_SIZE) == 0);
	CHECK_EQ(resume->seq, 77);
	CHECK_EQ(resume->header.padding, 0);
}

static void test_bad_header(void)
{
	struct kextlog_frame_header *header = (struct kextlog_frame_header *)frame;
	uint32_t length;

	kextlog_encode_ack((struct kextlog_ack_frame *)frame, 1);
	header->magic ^= 1;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_MAGIC);

	kextlog_encode_ack((struct kextlog_ack_frame *)frame, 1);
	header->version = KEXTLOG_WIRE_VERSION + 1;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_VERSION);
	header->version = 0;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_VERSION);

	kextlog_encode_ack((struct kextlog_ack_frame *)frame, 1);
	header->length = 28;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_LENGTH);

	/* Shorter than the fixed part of each type. */
	static const struct {
		uint16_t type;
		uint32_t length;
	} too_short[] = {
		{ KEXTLOG_FRAME_HELLO, sizeof(struct kextlog_hello_frame) - 8 },
		{ KEXTLOG_FRAME_LOG, sizeof(struct kextlog_log_frame) - 8 },
		{ KEXTLOG_FRAME_LOSS, sizeof(struct kextlog_loss_frame) - 8 },
		{ KEXTLOG_FRAME_ACK, sizeof(struct kextlog_ack_frame) - 8 },
		{ KEXTLOG_FRAME_RESUME, sizeof(struct kextlog_resume_frame) - 8 },
		{ 200, 8 },  /* even an unknown frame has a whole header */
		{ 200, 0 },  /* or a reader skipping it would never move */
	};
	for (size_t i = 0; i < sizeof too_short / sizeof too_short[0]; i++) {
		memset(frame, 0, sizeof frame);
		kextlog_encode_header(header, too_short[i].type, too_short[i].length);
		CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_LENGTH);
	}

	/* Too long, with all the bytes present and with the header alone: a
	 * stream reader must not wait for a frame that can never be valid. */
	memset(frame, 0, sizeof frame);
	kextlog_encode_log((struct kextlog_log_frame *)frame, 1, 0, 0, 1, 1, "p",
	    KEXTLOG_LEVEL_INFO, 0, "", 0);
	((struct kextlog_log_frame *)frame)->message_length = KEXTLOG_MESSAGE_MAX + 8;
	header->length = KEXTLOG_FRAME_MAX + 8;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_LENGTH);
	CHECK_EQ(check(sizeof *header, &length), KEXTLOG_WIRE_BAD_LENGTH);
	header->length = 0xfffffff8u;
	CHECK_EQ(check(sizeof *header, &length), KEXTLOG_WIRE_BAD_LENGTH);
}

static void test_bad_log(void)
{
	struct kextlog_log_frame *log = (struct kextlog_log_frame *)frame;

	kextlog_encode_log(log, 1, 0, 0, 1, 1, "p", KEXTLOG_LEVEL_INFO, 0, "0123456789", 10);
	CHECK_EQ(check_all(), KEXTLOG_WIRE_OK);
	log->message_length = 20; /* needs 120 bytes, the frame has 112 */
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD);
	log->message_length = 8;  /* fits in 104 bytes, the frame has 112 */
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD);
	log->message_length = 16; /* exactly fills the 112 bytes */
	CHECK_EQ(check_all(), KEXTLOG_WIRE_OK);

	log->level = 0;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD);
	log->level = KEXTLOG_LEVEL_ERROR + 1;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD);
	for (uint8_t level = KEXTLOG_LEVEL_TRACE; level <= KEXTLOG_LEVEL_ERROR; level++) {
		log->level = level;
		CHECK_EQ(check_all(), KEXTLOG_WIRE_OK);
	}
}

static void test_bad_loss(void)
{
	struct kextlog_loss_frame *loss = (struct kextlog_loss_frame *)frame;

	kextlog_encode_loss(loss, 5, 9, 0, 0, KEXTLOG_LOSS_RING_FULL);
	loss->first_seq = 10;
	loss->count = 0;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD); /* first > last */

	kextlog_encode_loss(loss, 5, 9, 0, 0, KEXTLOG_LOSS_RING_FULL);
	loss->count = 4;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD);
	loss->count = 6;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD);

	kextlog_encode_loss(loss, 5, 9, 0, 0, KEXTLOG_LOSS_RING_FULL);
	loss->first_seq = 0;
	loss->count = 10;
	CHECK_EQ(check_all(), KEXTLOG_WIRE_BAD_FIELD); /* seqs start at 1 */
}

static void test_unknown(void)
{
	struct kextlog_frame_header *header = (struct kextlog_frame_header *)frame;
	uint32_t length = 0;

	memset(frame, 0, sizeof frame);
	kextlog_encode_header(header, 200, 48);
	CHECK_EQ(check(sizeof *header, &length), KEXTLOG_WIRE_UNKNOWN);
	CHECK_EQ(length, 48);
	length = 0;
	CHECK_EQ(check(48, &length), KEXTLOG_WIRE_UNKNOWN);
	CHECK_EQ(length, 48);
	for (uint32_t available = 0; available < sizeof *header; available++)
		CHECK_EQ(check(available, &length), KEXTLOG_WIRE_SHORT);
}

int main(void)
{
	test_header();
	test_hello();
	test_log();
	test_log_process_name();
	test_loss();
	test_status();
	test_ack_resume();
	test_bad_header();
	test_bad_log();
	test_bad_loss();
	test_unknown();
	return kextlog_test_done("test_codec");
}
