/*
 * test_scan.c - kextlog_wire_scan, the daemon's bulk reader: it describes
 * exactly the frames kextlog_wire_check accepts, numbers process names, and
 * skips everything else in counted runs, resynchronising at the next frame.
 */
#include <stdio.h>
#include <string.h>

#include "kextlog_scan.h"
#include "kextlog_test.h"

static _Alignas(8) uint8_t data[64 * KEXTLOG_FRAME_MAX];
static size_t used;
static struct kextlog_scan_names names;
static struct kextlog_scan_entry entries[64];

static void reset(void)
{
	used = 0;
	memset(data, 0, sizeof data);
	memset(&names, 0, sizeof names);
}

/* Frames are encoded aligned, then copied: after garbage they need not be. */
static void add_message(uint64_t seq, const char *process, const char *message, uint16_t length)
{
	static _Alignas(8) uint8_t frame[KEXTLOG_FRAME_MAX];
	uint32_t size = kextlog_encode_log((struct kextlog_log_frame *)frame, seq, 1000 + seq,
	    2000 + seq, 77, 88, process, KEXTLOG_LEVEL_WARNING, KEXTLOG_LOG_TRUNCATED, message, length);

	memcpy(data + used, frame, size);
	used += size;
}

static void add_log(uint64_t seq, const char *process, const char *message)
{
	add_message(seq, process, message, (uint16_t)strlen(message));
}

static void add_bytes(const char *bytes, size_t length)
{
	memcpy(data + used, bytes, length);
	used += length;
}

/* A scan of data[from, available) as a datagram connection (ends, end_count)
 * or a stream (NULL): the data, the ends and the entries each in an
 * allocation of exactly the size passed, so that AddressSanitizer sees any
 * read or write past them; the entries are copied back to entries[]. */
static size_t scan_exact(size_t from, size_t available, const uint32_t *ends, size_t end_count,
    size_t max, size_t *offset)
{
	uint8_t *exact = kextlog_test_exact(data, available);
	uint32_t *exact_ends = ends != NULL ? kextlog_test_exact(ends, end_count * sizeof *ends) : NULL;
	struct kextlog_scan_entry *exact_entries = kextlog_test_exact(entries, max * sizeof *entries);
	size_t count;

	REQUIRE(max <= sizeof entries / sizeof entries[0]);
	*offset = from;
	count = kextlog_wire_scan(exact, available, exact_ends, end_count, offset, &names,
	    exact_entries, max);
	memcpy(entries, exact_entries, max * sizeof *entries);
	kextlog_test_free(exact_entries, max * sizeof *entries);
	if (exact_ends != NULL)
		kextlog_test_free(exact_ends, end_count * sizeof *ends);
	kextlog_test_free(exact, available);
	return count;
}

/* A stream scan of data[from, available). */
static size_t scan(size_t from, size_t available, size_t max, size_t *offset)
{
	return scan_exact(from, available, NULL, 0, max, offset);
}

static void check_skipped(const struct kextlog_scan_entry *entry, size_t offset, size_t bytes,
    unsigned problem)
{
	CHECK_EQ(entry->type, KEXTLOG_SCAN_SKIPPED);
	CHECK_EQ(entry->offset, offset);
	CHECK_EQ(entry->skipped, bytes);
	CHECK_EQ(entry->problem, problem);
}

static void test_fields_and_stops(void)
{
	size_t offset, first, second, count;
	struct kextlog_loss_frame *loss;

	reset();
	add_log(1, "launchd", "hello");
	first = used;
	add_log(2, "mds_stores", "world!");
	second = used - first;
	loss = (struct kextlog_loss_frame *)(data + used);
	used += kextlog_encode_loss(loss, 3, 9, 5, 6, KEXTLOG_LOSS_RING_FULL);
	add_log(10, "launchd", "again");

	count = scan(0, used, 64, &offset);
	CHECK_EQ(count, 4);
	CHECK_EQ(offset, used);
	CHECK_EQ(entries[0].offset, 0);
	CHECK_EQ(entries[1].offset, first);
	CHECK_EQ(entries[0].seq, 1);
	CHECK_EQ(entries[0].time_ns, 1001);
	CHECK_EQ(entries[0].mono_ns, 2001);
	CHECK_EQ(entries[0].pid, 77);
	CHECK_EQ(entries[0].tid, 88);
	CHECK_EQ(entries[0].level, KEXTLOG_LEVEL_WARNING);
	CHECK_EQ(entries[0].flags, KEXTLOG_LOG_TRUNCATED);
	CHECK_EQ(entries[0].message_length, 5);
	CHECK_EQ(entries[0].message_nul, 0);
	CHECK_EQ(entries[0].process_length, 7);
	CHECK_EQ(entries[2].type, KEXTLOG_FRAME_LOSS);
	/* Names are numbered in the order they first appear, once each. */
	CHECK_EQ(entries[0].process, 0);
	CHECK_EQ(entries[1].process, 1);
	CHECK_EQ(entries[3].process, 0);
	CHECK_EQ(names.count, 2);
	CHECK(strcmp(names.names[1], "mds_stores") == 0);

	/* The entries run out: it stops after a whole frame, and goes on from there. */
	count = scan(0, used, 2, &offset);
	CHECK_EQ(count, 2);
	CHECK_EQ(offset, first + second);
	count = scan(offset, used, 64, &offset);
	CHECK_EQ(count, 2);
	CHECK_EQ(entries[0].offset, first + second);
	/* A stream cut inside a frame: described up to it, the rest waits. */
	count = scan(0, used - 1, 64, &offset);
	CHECK_EQ(count, 3);
	CHECK_EQ(offset, first + second + sizeof *loss);
}

static void test_garbage_is_skipped_in_one_run(void)
{
	size_t offset, count, garbage;

	reset();
	add_log(1, "launchd", "before");
	garbage = used;
	add_bytes("not a frame at all, K KX KXL", 28); /* not a multiple of 8 long */
	add_log(2, "launchd", "after");
	count = scan(0, used, 64, &offset);
	REQUIRE(count == 3);
	CHECK_EQ(entries[0].seq, 1);
	check_skipped(&entries[1], garbage, 28, KEXTLOG_WIRE_BAD_MAGIC);
	CHECK_EQ(entries[2].seq, 2);
	CHECK_EQ(entries[2].offset, garbage + 28);
	CHECK_EQ(offset, used);

	/* Endless garbage: all of it skipped, but for a tail that may begin a frame. */
	reset();
	memset(data, 'x', 5000);
	data[4998] = 'K';
	data[4999] = 'X';
	used = 5000;
	count = scan(0, used, 64, &offset);
	REQUIRE(count == 1);
	check_skipped(&entries[0], 0, 4998, KEXTLOG_WIRE_BAD_MAGIC);
	CHECK_EQ(offset, 4998);
	/* ... which, once the next bytes show it does not, goes too. */
	data[5000] = 'y';
	used = 5001;
	count = scan(offset, used, 64, &offset);
	REQUIRE(count == 1);
	check_skipped(&entries[0], 4998, 3, KEXTLOG_WIRE_BAD_MAGIC);
	CHECK_EQ(offset, used);
}

static void test_malformed_frames_each_say_why(void)
{
	struct { size_t at; uint8_t value; unsigned problem; } cases[] = {
		{ 4, 9, KEXTLOG_WIRE_BAD_VERSION },
		{ 8, 12, KEXTLOG_WIRE_BAD_LENGTH },
		{ 56, 9, KEXTLOG_WIRE_BAD_FIELD },            /* level */
		{ 53, 0x7f, KEXTLOG_WIRE_BAD_FIELD },         /* message length */
		{ 23, 0x80, KEXTLOG_SCAN_OUT_OF_RANGE },      /* seq 2^63 and more */
		{ 31, 0xff, KEXTLOG_SCAN_OUT_OF_RANGE },      /* time_ns */
		{ 51, 0x80, KEXTLOG_SCAN_OUT_OF_RANGE },      /* pid above INT32_MAX */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t offset, count, bad;

		reset();
		add_log(1, "launchd", "before");
		bad = used;
		add_log(2, "launchd", "bad");
		data[bad + cases[i].at] = cases[i].value;
		add_log(3, "launchd", "after");
		count = scan(0, used, 64, &offset);
		REQUIRE(count == 3);
		CHECK_EQ(entries[0].seq, 1);
		check_skipped(&entries[1], bad, 104, cases[i].problem);
		CHECK_EQ(entries[2].seq, 3);
		CHECK_EQ(offset, used);
	}
}

static void test_seq_zero_is_out_of_range(void)
{
	size_t offset;

	reset();
	add_log(0, "launchd", "no seq");
	REQUIRE(scan(0, used, 64, &offset) == 1);
	check_skipped(&entries[0], 0, used, KEXTLOG_SCAN_OUT_OF_RANGE);
}

/* Field bounds (kextlog_wire.h): a frame at them is described, one past
 * them is skipped as out of range, whatever its type. */
static void add_frame(const void *frame, uint32_t size)
{
	memcpy(data + used, frame, size);
	used += size;
}

static void check_bound(const void *frame, uint32_t size, bool accepted)
{
	size_t offset, count;

	reset();
	add_log(1, "launchd", "before");
	add_frame(frame, size);
	add_log(2, "launchd", "after");
	count = scan(0, used, 64, &offset);
	REQUIRE(count == 3);
	CHECK_EQ(entries[0].seq, 1);
	if (accepted)
		CHECK_EQ(entries[1].type, ((const struct kextlog_frame_header *)frame)->type);
	else
		check_skipped(&entries[1], 104, size, KEXTLOG_SCAN_OUT_OF_RANGE);
	CHECK_EQ(entries[2].seq, 2);
	CHECK_EQ(offset, used);
}

static void test_field_bounds(void)
{
	static const uint8_t instance[KEXTLOG_ID_SIZE] = { 1 }, zeros[KEXTLOG_ID_SIZE] = { 0 };
	static _Alignas(8) uint8_t frame[KEXTLOG_FRAME_MAX];
	struct kextlog_log_frame *log = (struct kextlog_log_frame *)frame;
	struct kextlog_loss_frame *loss = (struct kextlog_loss_frame *)frame;
	struct kextlog_hello_frame *hello = (struct kextlog_hello_frame *)frame;
	struct kextlog_status_frame *status = (struct kextlog_status_frame *)frame;
	uint32_t size;

	for (int past = 0; past <= 1; past++) {
		size = kextlog_encode_log(log, KEXTLOG_SEQ_MAX + (uint64_t)past, KEXTLOG_TIME_MAX,
		    KEXTLOG_TIME_MAX, KEXTLOG_PID_MAX, KEXTLOG_TID_MAX, "p", KEXTLOG_LEVEL_INFO,
		    KEXTLOG_FLAGS_MAX, "m", 1);
		check_bound(frame, size, !past);
		log->flags = (uint16_t)(KEXTLOG_FLAGS_MAX + (unsigned)past);
		log->seq = 1;
		check_bound(frame, size, !past);
		size = kextlog_encode_loss(loss, 1, KEXTLOG_SEQ_MAX + (uint64_t)past, 0, 0,
		    KEXTLOG_LOSS_RING_FULL);
		check_bound(frame, size, !past);
		size = kextlog_encode_hello(hello, past ? zeros : instance, zeros, 1, 1, 64, 4096, 0, "k");
		check_bound(frame, size, !past);
		size = kextlog_encode_hello(hello, instance, zeros, KEXTLOG_SEQ_MAX + 1,
		    KEXTLOG_SEQ_MAX + 1 + (uint64_t)past, 64, 4096, 0, "k");
		check_bound(frame, size, !past);
		size = kextlog_encode_hello(hello, instance, zeros, (uint64_t)!past, 1, 64, 4096, 0, "k");
		check_bound(frame, size, !past);
		size = kextlog_encode_status(status, KEXTLOG_SEQ_MAX + 1 + (uint64_t)past,
		    KEXTLOG_SEQ_MAX, 0, 64, 64, 4096, 4096);
		check_bound(frame, size, !past);
		status->next_seq = 1;
		status->ring_records += (uint32_t)past;
		check_bound(frame, size, !past);
	}
}

static void test_a_frame_cut_short_on_a_stream(void)
{
	size_t offset, count, cut;

	/* The rest of a frame never came: the next frame begins inside it. */
	reset();
	add_log(1, "launchd", "a message long enough to be cut in the middle");
	cut = 100;
	used = cut;
	add_log(2, "launchd", "next");
	count = scan(0, used, 64, &offset);
	REQUIRE(count == 2);
	check_skipped(&entries[0], 0, cut, KEXTLOG_SCAN_TRUNCATED);
	CHECK_EQ(entries[1].seq, 2);
	CHECK_EQ(offset, used);

	/* Cut inside the fixed part: the fields it reads are the next frame's. */
	for (cut = 16; cut < 96; cut++) {
		reset();
		add_log(1, "launchd", "x");
		used = cut;
		add_log(2, "launchd", "next");
		count = scan(0, used, 64, &offset);
		REQUIRE(count == 2);
		CHECK_EQ(entries[0].type, KEXTLOG_SCAN_SKIPPED);
		CHECK_EQ(entries[0].skipped, cut);
		CHECK_EQ(entries[1].seq, 2);
	}

	/* Whether a frame was cut may only show when the next has arrived. */
	reset();
	add_log(1, "launchd", "a message long enough to be cut in the middle");
	used = 100;
	add_log(2, "launchd", "next");
	count = scan(0, 150, 64, &offset); /* all of the first, not all of the second */
	CHECK_EQ(count, 0);
	CHECK_EQ(offset, 0);

	/* A message may end in what could begin a magic: not held back for it. */
	reset();
	add_log(1, "launchd", "a message of 24 bytes: K"); /* no padding after the K */
	count = scan(0, used, 64, &offset);
	CHECK_EQ(count, 1);
	CHECK_EQ(offset, used);
}

static void test_datagrams(void)
{
	uint32_t ends[3];
	size_t offset, count;

	/* A frame cut by its datagram's end; the next datagram is whole. */
	reset();
	add_log(1, "launchd", "first");
	add_log(2, "launchd", "cut by the end of its datagram");
	ends[0] = (uint32_t)(used - 20);
	used = ends[0];
	add_log(3, "launchd", "next datagram");
	ends[1] = (uint32_t)used;
	count = scan_exact(0, used, ends, 2, 64, &offset);
	REQUIRE(count == 3);
	CHECK_EQ(entries[0].seq, 1);
	check_skipped(&entries[1], 104, ends[0] - 104, KEXTLOG_SCAN_TRUNCATED);
	CHECK_EQ(entries[2].seq, 3);
	CHECK_EQ(offset, used);

	/* The start of a header at the end of a datagram is a frame cut short. */
	reset();
	add_log(1, "launchd", "first");
	add_bytes("KXL", 3);
	ends[0] = (uint32_t)used;
	add_log(2, "launchd", "second");
	ends[1] = (uint32_t)used;
	count = scan_exact(0, used, ends, 2, 64, &offset);
	REQUIRE(count == 3);
	check_skipped(&entries[1], ends[0] - 3, 3, KEXTLOG_SCAN_TRUNCATED);
	CHECK_EQ(entries[2].seq, 2);
}

static void test_message_nul_and_unknown_types(void)
{
	struct kextlog_frame_header *unknown;
	size_t offset, count;

	reset();
	unknown = (struct kextlog_frame_header *)data;
	kextlog_encode_header(unknown, 200, 32);
	used = 32;
	add_message(1, "p", "nul\0inside", 10);
	count = scan(0, used, 64, &offset);
	REQUIRE(count == 2);
	check_skipped(&entries[0], 0, 32, KEXTLOG_WIRE_UNKNOWN);
	CHECK_EQ(entries[1].message_nul, 1);
	CHECK_EQ(entries[1].message_length, 10);
	/* An unknown frame that has not all arrived waits, as any other. */
	count = scan(0, 20, 64, &offset);
	CHECK_EQ(count, 0);
	CHECK_EQ(offset, 0);
}

static void test_full_name_table(void)
{
	size_t offset;
	char process[KEXTLOG_PROCESS_NAME_MAX];

	reset();
	for (uint32_t i = 0; i <= KEXTLOG_SCAN_NAMES; i++) {
		used = 0;
		snprintf(process, sizeof process, "process-%u", i);
		add_log(1, process, "m");
		REQUIRE(scan(0, used, 64, &offset) == 1);
		CHECK_EQ(entries[0].process, i < KEXTLOG_SCAN_NAMES ? i : KEXTLOG_SCAN_NO_NAME);
	}
	/* Known names keep their numbers when the table is full. */
	used = 0;
	add_log(1, "process-7", "m");
	REQUIRE(scan(0, used, 64, &offset) == 1);
	CHECK_EQ(entries[0].process, 7);
}

int main(void)
{
	test_fields_and_stops();
	test_garbage_is_skipped_in_one_run();
	test_malformed_frames_each_say_why();
	test_seq_zero_is_out_of_range();
	test_field_bounds();
	test_a_frame_cut_short_on_a_stream();
	test_datagrams();
	test_message_nul_and_unknown_types();
	test_full_name_table();
	return kextlog_test_done("test_scan");
}
