/*
 * kextlog_scan.c - reading many frames in one call (see kextlog_scan.h).
 */
#include "kextlog_scan.h"

/* How every header begins in memory (the wire is little-endian): the magic
 * and the version. */
static const uint8_t header_start[6] = {
	KEXTLOG_WIRE_MAGIC & 0xffu, (KEXTLOG_WIRE_MAGIC >> 8) & 0xffu,
	(KEXTLOG_WIRE_MAGIC >> 16) & 0xffu, KEXTLOG_WIRE_MAGIC >> 24,
	KEXTLOG_WIRE_VERSION & 0xffu, KEXTLOG_WIRE_VERSION >> 8,
};

/* The number of a process name (NUL-padded to KEXTLOG_PROCESS_NAME_MAX). */
static uint16_t name_number(struct kextlog_scan_names *names, const char *name)
{
	uint32_t hash = 2166136261u; /* FNV-1a */
	uint32_t mask = 2 * KEXTLOG_SCAN_NAMES - 1;

	for (uint32_t i = 0; i < KEXTLOG_PROCESS_NAME_MAX; i++)
		hash = (hash ^ (uint8_t)name[i]) * 16777619u;
	for (uint32_t slot = hash & mask;; slot = (slot + 1) & mask) {
		uint16_t number = names->slots[slot];

		if (number == 0) {
			if (names->count == KEXTLOG_SCAN_NAMES)
				return KEXTLOG_SCAN_NO_NAME;
			memcpy(names->names[names->count], name, KEXTLOG_PROCESS_NAME_MAX);
			names->slots[slot] = ++names->count;
			return (uint16_t)(names->count - 1);
		}
		if (memcmp(names->names[number - 1], name, KEXTLOG_PROCESS_NAME_MAX) == 0)
			return (uint16_t)(number - 1);
	}
}

static bool all_zero(const uint8_t *bytes, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (bytes[i] != 0)
			return false;
	return true;
}

/* Whether a checked frame's values are within the field bounds of
 * kextlog_wire.h: what the store holds without one producer's values
 * reaching another's keys, counts, marks or sums.  Seqs start at 1. */
static bool in_bounds(const uint8_t *frame, uint16_t type)
{
	if (type == KEXTLOG_FRAME_LOG) {
		struct kextlog_log_frame log;

		memcpy(&log, frame, sizeof log);
		return log.seq != 0 && log.seq <= KEXTLOG_SEQ_MAX && log.time_ns <= KEXTLOG_TIME_MAX &&
		    log.mono_ns <= KEXTLOG_TIME_MAX && log.tid <= KEXTLOG_TID_MAX &&
		    log.pid <= KEXTLOG_PID_MAX && log.flags <= KEXTLOG_FLAGS_MAX;
	}
	if (type == KEXTLOG_FRAME_LOSS) {
		struct kextlog_loss_frame loss;

		/* The check saw 1 <= first_seq <= last_seq and count = the range's size. */
		memcpy(&loss, frame, sizeof loss);
		return loss.last_seq <= KEXTLOG_SEQ_MAX && loss.first_time_ns <= KEXTLOG_TIME_MAX &&
		    loss.last_time_ns <= KEXTLOG_TIME_MAX;
	}
	if (type == KEXTLOG_FRAME_HELLO) {
		struct kextlog_hello_frame hello;

		/* An instance id of zeros is no one's: two producers would share it. */
		memcpy(&hello, frame, sizeof hello);
		return !all_zero(hello.instance_id, sizeof hello.instance_id) &&
		    hello.oldest_seq >= 1 && hello.oldest_seq <= hello.next_seq &&
		    hello.next_seq <= KEXTLOG_SEQ_MAX + 1;
	}
	if (type == KEXTLOG_FRAME_STATUS) {
		struct kextlog_status_frame status;

		memcpy(&status, frame, sizeof status);
		return status.next_seq <= KEXTLOG_SEQ_MAX + 1 && status.lost <= KEXTLOG_SEQ_MAX &&
		    status.time_ns <= KEXTLOG_TIME_MAX && status.ring_records <= status.ring_capacity &&
		    status.ring_bytes_used <= status.ring_bytes;
	}
	return true;
}

/* Fills entry for a checked HELLO, LOG, LOSS or STATUS frame; false (entry
 * unused) when it holds a value out of bounds. */
static bool describe(const uint8_t *frame, uint16_t type, uint32_t offset,
    struct kextlog_scan_names *names, struct kextlog_scan_entry *entry)
{
	if (!in_bounds(frame, type))
		return false;
	memset(entry, 0, sizeof *entry);
	entry->offset = offset;
	entry->type = type;
	if (type == KEXTLOG_FRAME_LOG) {
		struct kextlog_log_frame log;
		uint8_t length = 0;

		memcpy(&log, frame, sizeof log);
		while (length < KEXTLOG_PROCESS_NAME_MAX && log.process[length] != '\0')
			length++;
		entry->seq = log.seq;
		entry->time_ns = log.time_ns;
		entry->mono_ns = log.mono_ns;
		entry->tid = log.tid;
		entry->pid = log.pid;
		entry->flags = log.flags;
		entry->message_length = log.message_length;
		entry->level = log.level;
		entry->process_length = length;
		entry->message_nul = memchr(frame + sizeof log, '\0', log.message_length) != NULL;
		entry->process = name_number(names, log.process);
	}
	return true;
}

/* What begins at data + at, with limit - at bytes present. */
enum start {
	NOTHING,   /* no frame */
	FRAME,     /* a frame the check accepts whole, or a well-formed one of an unknown type */
	PERHAPS,   /* on a stream: the start of such a frame, if the rest arrives */
};

/* Whether the present bytes at data may begin a header. */
static bool header_prefix(const uint8_t *data, size_t present)
{
	return memcmp(data, header_start, present < sizeof header_start ? present :
	    sizeof header_start) == 0;
}

static enum start frame_start(const uint8_t *data, size_t at, size_t limit, bool stream)
{
	size_t present = limit - at;
	uint32_t length = 0;
	enum kextlog_wire_status status;

	if (!header_prefix(data + at, present))
		return NOTHING;
	status = kextlog_wire_check(data + at, present, &length);
	if (status == KEXTLOG_WIRE_OK || (status == KEXTLOG_WIRE_UNKNOWN && length <= present))
		return FRAME;
	if (stream && (status == KEXTLOG_WIRE_SHORT || status == KEXTLOG_WIRE_UNKNOWN))
		return PERHAPS;
	return NOTHING;
}

/* The first place in [from, to) where a frame begins (or perhaps does), and
 * which; to and NOTHING if there is none.  Frames are looked for at every
 * byte: garbage need not be a multiple of 8 bytes long. */
static size_t next_start(const uint8_t *data, size_t from, size_t to, size_t limit, bool stream,
    enum start *found)
{
	for (size_t at = from; at < to; at++) {
		const uint8_t *candidate = memchr(data + at, header_start[0], to - at);

		if (candidate == NULL)
			break;
		at = (size_t)(candidate - data);
		*found = frame_start(data, at, limit, stream);
		if (*found != NOTHING)
			return at;
	}
	*found = NOTHING;
	return to;
}

static bool expected(uint16_t type)
{
	return type == KEXTLOG_FRAME_HELLO || type == KEXTLOG_FRAME_LOG ||
	    type == KEXTLOG_FRAME_LOSS || type == KEXTLOG_FRAME_STATUS;
}

size_t kextlog_wire_scan(const uint8_t *data, size_t available, const uint32_t *ends,
    size_t end_count, size_t *offset, struct kextlog_scan_names *names,
    struct kextlog_scan_entry *entries, size_t max_entries)
{
	bool stream = ends == NULL;
	size_t at = *offset, count = 0, datagram = 0;

	if (stream)
		end_count = 0; /* a stream has no datagram ends, whatever the count says */

	while (at < available && count < max_entries) {
		size_t limit = available, next;
		uint32_t length = 0;
		enum kextlog_wire_status status;
		enum start inside = NOTHING;
		uint8_t problem;

		while (datagram < end_count && ends[datagram] <= at)
			datagram++;
		if (datagram < end_count)
			limit = ends[datagram];
		status = kextlog_wire_check(data + at, limit - at, &length);
		if (status == KEXTLOG_WIRE_UNKNOWN && length > limit - at)
			status = KEXTLOG_WIRE_SHORT;
		/* Fewer bytes than a header: short only if they may begin one. */
		if (status == KEXTLOG_WIRE_SHORT && !header_prefix(data + at, limit - at))
			status = KEXTLOG_WIRE_BAD_MAGIC;
		if (status == KEXTLOG_WIRE_SHORT && stream)
			break; /* the rest is on its way */
		if (status == KEXTLOG_WIRE_OK || status == KEXTLOG_WIRE_UNKNOWN) {
			struct kextlog_frame_header header;

			memcpy(&header, data + at, sizeof header);
			/* A frame that holds the start of another was cut short and
			 * glued to it; its length cannot be trusted.  (A message does
			 * not hold a frame: every header has NUL bytes, which printf
			 * text only has from a %c of 0.) */
			next = next_start(data, at + 1, at + length, limit, stream, &inside);
			/* Text may end in what could begin a magic, at the end of
			 * the data; only a header's first bytes with the version
			 * (NUL bytes) are worth holding the frame back for. */
			if (inside == PERHAPS && limit - next < sizeof header_start) {
				inside = NOTHING;
				next = at + length;
			}
			if (inside == PERHAPS)
				break; /* decided when the rest of that frame arrives */
			if (inside == FRAME)
				problem = KEXTLOG_SCAN_TRUNCATED;
			else if (status == KEXTLOG_WIRE_UNKNOWN || !expected(header.type))
				problem = KEXTLOG_WIRE_UNKNOWN;
			else if (!describe(data + at, header.type, (uint32_t)at, names, &entries[count]))
				problem = KEXTLOG_SCAN_OUT_OF_RANGE;
			else {
				count++;
				at += length;
				continue;
			}
		} else {
			/* Nothing here can be trusted, its length least of all. */
			problem = status == KEXTLOG_WIRE_SHORT ? KEXTLOG_SCAN_TRUNCATED : (uint8_t)status;
			next = next_start(data, at + 1, limit, limit, stream, &inside);
		}
		memset(&entries[count], 0, sizeof entries[count]);
		entries[count].type = KEXTLOG_SCAN_SKIPPED;
		entries[count].offset = (uint32_t)at;
		entries[count].problem = problem;
		entries[count].skipped = (uint32_t)(next - at);
		count++;
		at = next;
	}
	*offset = at;
	return count;
}
