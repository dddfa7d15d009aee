/*
 * test_scan.c - kextlog_wire_scan, the daemon's bulk reader: it describes
 * exactly the frames kextlog_wire_check accepts, and numbers process names.
 */
#include <stdio.h>
#include <string.h>

#include "kextlog_scan.h"
#include "kextlog_test.h"

static _Alignas(8) uint8_t data[64 * KEXTLOG_FRAME_MAX];
static size_t used;
static struct kextlog_scan_names names;
static struct kextlog_scan_entry entries[64];

static uint32_t add_log(uint64_t seq, const char *process, const char *message)
{
	struct kextlog_log_frame *log = (struct kextlog_log_frame *)(data + used);
	uint32_t length = kextlog_encode_log(log, seq, 1000 + seq, 2000 + seq, 77, 88, process,
	    KEXTLOG_LEVEL_WARNING, KEXTLOG_LOG_TRUNCATED, message, (uint16_t)strlen(message));

	used += length;
	return length;
}

static size_t scan(size_t available, size_t max, size_t *consumed, enum kextlog_wire_status *status)
{
	return kextlog_wire_scan(data, available, &names, entries, max, consumed, status);
}

static void test_fields_and_stops(void)
{
	enum kextlog_wire_status status;
	size_t consumed, first, second, count;
	struct kextlog_loss_frame *loss;

	used = 0;
	memset(&names, 0, sizeof names);
	first = add_log(1, "launchd", "hello");
	second = add_log(2, "mds_stores", "world!");
	loss = (struct kextlog_loss_frame *)(data + used);
	used += kextlog_encode_loss(loss, 3, 9, 5, 6, KEXTLOG_LOSS_RING_FULL);
	add_log(10, "launchd", "again");

	count = scan(used, 64, &consumed, &status);
	CHECK_EQ(count, 4);
	CHECK_EQ(consumed, used);
	CHECK_EQ(status, KEXTLOG_WIRE_OK);
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
	CHECK_EQ(entries[0].process_length, 7);
	CHECK_EQ(entries[2].type, KEXTLOG_FRAME_LOSS);
	/* Names are numbered in the order they first appear, once each. */
	CHECK_EQ(entries[0].process, 0);
	CHECK_EQ(entries[1].process, 1);
	CHECK_EQ(entries[3].process, 0);
	CHECK_EQ(names.count, 2);
	CHECK(strcmp(names.names[1], "mds_stores") == 0);

	/* The entries run out: it stops after a whole frame, status OK. */
	count = scan(used, 2, &consumed, &status);
	CHECK_EQ(count, 2);
	CHECK_EQ(status, KEXTLOG_WIRE_OK);
	CHECK_EQ(consumed, first + second);
	/* A frame cut short: described up to it, SHORT. */
	count = scan(used - 1, 64, &consumed, &status);
	CHECK_EQ(count, 3);
	CHECK_EQ(status, KEXTLOG_WIRE_SHORT);
	/* A malformed frame: described up to it, its problem. */
	loss->count = 99;
	count = scan(used, 64, &consumed, &status);
	CHECK_EQ(count, 2);
	CHECK_EQ(status, KEXTLOG_WIRE_BAD_FIELD);
	CHECK_EQ(consumed, (size_t)((uint8_t *)loss - data));
}

static void test_unknown_types_are_skipped(void)
{
	enum kextlog_wire_status status;
	struct kextlog_frame_header *unknown;
	size_t consumed, count;

	used = 0;
	memset(&names, 0, sizeof names);
	unknown = (struct kextlog_frame_header *)data;
	kextlog_encode_header(unknown, 200, 32);
	memset(data + sizeof *unknown, 0, 16);
	used = 32;
	add_log(1, "launchd", "after");
	count = scan(used, 64, &consumed, &status);
	CHECK_EQ(count, 1);
	CHECK_EQ(entries[0].offset, 32);
	CHECK_EQ(consumed, used);
	/* An unknown frame that has not all arrived waits, as any other. */
	count = scan(20, 64, &consumed, &status);
	CHECK_EQ(count, 0);
	CHECK_EQ(consumed, 0);
	CHECK_EQ(status, KEXTLOG_WIRE_SHORT);
}

static void test_full_name_table(void)
{
	enum kextlog_wire_status status;
	size_t consumed;
	char process[KEXTLOG_PROCESS_NAME_MAX];

	memset(&names, 0, sizeof names);
	for (uint32_t i = 0; i <= KEXTLOG_SCAN_NAMES; i++) {
		used = 0;
		snprintf(process, sizeof process, "process-%u", i);
		add_log(1, process, "m");
		REQUIRE(scan(used, 64, &consumed, &status) == 1);
		CHECK_EQ(entries[0].process, i < KEXTLOG_SCAN_NAMES ? i : KEXTLOG_SCAN_NO_NAME);
	}
	/* Known names keep their numbers when the table is full. */
	used = 0;
	add_log(1, "process-7", "m");
	REQUIRE(scan(used, 64, &consumed, &status) == 1);
	CHECK_EQ(entries[0].process, 7);
}

int main(void)
{
	test_fields_and_stops();
	test_unknown_types_are_skipped();
	test_full_name_table();
	return kextlog_test_done("test_scan");
}
