/*
 * fuzz_scan.c - kextlog_wire_scan, the daemon's bulk reader, on data built
 * from the input: valid HELLO, LOG, LOSS and STATUS frames, frames the
 * reader must skip (unknown types, the client's own, a value past one of the
 * field bounds),
 * garbage without the magic's first byte, any bytes, frames with a byte
 * changed or cut short; read as datagrams (boundaries where the input says)
 * or as a stream cut into reads anywhere, with few or many entries a call.
 * Every call gets its data in an allocation exactly as long as it says, and
 * its entries too.
 *
 * Invariants, for any data:
 * - the entries tile the bytes: each starts where the last ended, a frame
 *   by its length and a skipped run by its size (never 0); the offset
 *   returned is where they end; a call stops early only for want of
 *   entries, or on a stream before bytes that may begin a frame;
 * - a frame entry is one the check written from docs/protocol.md accepts
 *   there, within its datagram, of a type the daemon reads, with every
 *   field as in the bytes and within the field bounds of kextlog_wire.h;
 *   its process name is the names table's entry of that number; a frame
 *   skipped as out of range is a valid one past a bound;
 * - no valid frame begins inside a frame entry or a skipped run (the scan
 *   resynchronises at the first one);
 * And when the data is only frames and clean garbage, and no frame begins
 * anywhere but where a piece starts: exactly the expected entries come out,
 * in order, however the stream was cut.
 */
#include "kextlog_scan.h"
#include "kextlog_fuzz.h"

#define DATA_MAX    8192u
#define PIECES_MAX  256u

/* What the scan should make of a piece of clean data. */
struct expected {
	uint32_t offset;
	uint32_t size;
	uint16_t type;     /* a frame type, or KEXTLOG_SCAN_SKIPPED */
	uint8_t  problem;
};

struct scan_case {
	uint8_t  data[DATA_MAX];
	uint32_t length;
	uint32_t ends[PIECES_MAX + 1]; /* datagram ends */
	uint32_t end_count;
	uint32_t starts[PIECES_MAX];   /* where each frame piece starts */
	uint32_t start_count;
	struct expected expected[PIECES_MAX];
	uint32_t expected_count;
	bool     clean;
	struct kextlog_scan_entry got[2 * DATA_MAX]; /* every entry of every call */
	uint32_t got_count;
};

/* ---- building the data ---- */

static void expect(struct scan_case *s, uint32_t offset, uint32_t size, uint16_t type,
    uint8_t problem)
{
	if (s->expected_count < PIECES_MAX)
		s->expected[s->expected_count++] = (struct expected){ offset, size, type, problem };
	else
		s->clean = false;
}

/* Within the field bounds of kextlog_wire.h (docs/protocol.md, "Field
 * bounds"), read from the bytes: what a frame entry must be, and what a
 * frame skipped as out of range is not. */
static bool within_bounds(const uint8_t *frame, uint16_t type)
{
	switch (type) {
	case FUZZ_LOG:
		return fuzz_le(frame, 16, 8) >= 1 && fuzz_le(frame, 16, 8) <= KEXTLOG_SEQ_MAX &&
		    fuzz_le(frame, 24, 8) <= KEXTLOG_TIME_MAX && fuzz_le(frame, 32, 8) <= KEXTLOG_TIME_MAX &&
		    fuzz_le(frame, 40, 8) <= KEXTLOG_TID_MAX && fuzz_le(frame, 48, 4) <= KEXTLOG_PID_MAX &&
		    fuzz_le(frame, 54, 2) <= KEXTLOG_FLAGS_MAX;
	case FUZZ_LOSS:
		return fuzz_le(frame, 24, 8) <= KEXTLOG_SEQ_MAX && fuzz_le(frame, 40, 8) <= KEXTLOG_TIME_MAX &&
		    fuzz_le(frame, 48, 8) <= KEXTLOG_TIME_MAX;
	case FUZZ_HELLO:
		return !fuzz_zero(frame, 16, 32) && fuzz_le(frame, 48, 8) >= 1 &&
		    fuzz_le(frame, 48, 8) <= fuzz_le(frame, 56, 8) &&
		    fuzz_le(frame, 56, 8) <= KEXTLOG_SEQ_MAX + 1;
	case FUZZ_STATUS:
		return fuzz_le(frame, 16, 8) <= KEXTLOG_SEQ_MAX + 1 && fuzz_le(frame, 24, 8) <= KEXTLOG_SEQ_MAX &&
		    fuzz_le(frame, 32, 8) <= KEXTLOG_TIME_MAX && fuzz_le(frame, 40, 4) <= fuzz_le(frame, 44, 4) &&
		    fuzz_le(frame, 48, 4) <= fuzz_le(frame, 52, 4);
	default:
		return true;
	}
}

/* 0 <= n <= max from the input; the bounds themselves often. */
static uint64_t up_to(struct fuzz_input *input, uint64_t max)
{
	uint8_t choice = fuzz_u8(input) % 4;
	uint64_t value = choice < 2 ? 0 : fuzz_u64(input);

	if (choice == 1)
		return max;
	return max == UINT64_MAX ? value : value % (max + 1);
}

/* A frame of kind 0-3 (LOG, LOSS, HELLO, STATUS) within the bounds; 4 one
 * of those with a value past a bound; 5 a client's frame; 6 an unknown type. */
static uint32_t encode_frame(struct fuzz_input *input, uint8_t *frame, uint32_t kind)
{
	static const uint8_t ids[16] = { 1, 2, 3 };
	uint64_t seq = 1 + up_to(input, KEXTLOG_SEQ_MAX - 1), times[2], tid = up_to(input, KEXTLOG_TID_MAX);
	uint32_t pid = (uint32_t)up_to(input, KEXTLOG_PID_MAX), length;
	uint16_t flags = (uint16_t)up_to(input, KEXTLOG_FLAGS_MAX);
	uint64_t lost = up_to(input, KEXTLOG_SEQ_MAX);
	const uint8_t *text;
	char process[32] = { 0 }, message[FUZZ_MESSAGE_MAX];
	uint16_t message_length = (uint16_t)(fuzz_u8(input) & 1 ? fuzz_below(input, 1025) : fuzz_below(input, 40));
	size_t got;

	for (int i = 0; i < 2; i++)
		times[i] = up_to(input, KEXTLOG_TIME_MAX);
	if (kind == 4) { /* one value past its bound */
		uint32_t which = fuzz_below(input, 14);
		uint64_t past = 1 + (fuzz_u8(input) & 1 ? 0 : (uint64_t)fuzz_u32(input));

		kind = which < 7 ? 0 : which < 9 ? 1 : which < 11 ? 2 : 3;
		switch (which) {
		case 0:  seq = 0; break;
		case 1:  seq = KEXTLOG_SEQ_MAX + past; break;
		case 2:  times[0] = KEXTLOG_TIME_MAX + past; break;
		case 3:  times[1] = KEXTLOG_TIME_MAX + past; break;
		case 4:  tid = KEXTLOG_TID_MAX + past; break;
		case 5:  pid = KEXTLOG_PID_MAX + (uint32_t)fuzz_below(input, 1000) + 1; break;
		case 6:  flags = (uint16_t)(KEXTLOG_FLAGS_MAX + 1 + fuzz_below(input, 0x8000)); break;
		case 7:  seq = KEXTLOG_SEQ_MAX + past; break;      /* LOSS last_seq */
		case 8:  times[1] = KEXTLOG_TIME_MAX + past; break;
		case 9:  seq = KEXTLOG_SEQ_MAX + 1 + past; break;  /* HELLO next_seq */
		case 10: return kextlog_encode_hello((void *)frame, (const uint8_t[16]){ 0 }, ids, 1, seq,
		    pid, pid, pid, "fuzz"); /* no one's instance id */
		case 11: seq = KEXTLOG_SEQ_MAX + 1 + past; break;  /* STATUS next_seq */
		case 12: lost = KEXTLOG_SEQ_MAX + past; break;     /* STATUS lost */
		default: return kextlog_encode_status((void *)frame, seq, 0, 0, pid + 1, pid, 0, 0);
		}
	}
	switch (kind) {
	case 0:
		got = fuzz_take(input, 32, &text);
		memcpy(process, text, got);
		got = fuzz_take(input, 64, &text);
		for (uint32_t i = 0; i < message_length; i++)
			message[i] = (char)(got > 0 ? text[i % got] : 'm');
		return kextlog_encode_log((void *)frame, seq, times[0], times[1], pid, tid, process,
		    1 + fuzz_below(input, 5), flags, message, message_length);
	case 1:
		return kextlog_encode_loss((void *)frame, seq > KEXTLOG_SEQ_MAX ? 1 : seq,
		    seq + up_to(input, seq > KEXTLOG_SEQ_MAX ? 0 : KEXTLOG_SEQ_MAX - seq), times[0],
		    times[1], 1 + fuzz_below(input, 3));
	case 2:
		return kextlog_encode_hello((void *)frame, ids, ids, 1 + up_to(input, seq - 1), seq, pid,
		    pid, pid, "fuzz");
	case 3:
		length = (uint32_t)up_to(input, pid);
		return kextlog_encode_status((void *)frame, seq, lost, times[1], length, pid, length, pid);
	case 5: /* valid, not for the daemon */
		return fuzz_u8(input) & 1 ? kextlog_encode_ack((void *)frame, seq) :
		    kextlog_encode_resume((void *)frame, ids, seq);
	default: /* a type nobody knows, well-formed */
		length = 16 + 8 * fuzz_below(input, 20);
		memset(frame, 0, length);
		got = fuzz_take(input, length - 16u, &text);
		memcpy(frame + 16, text, got);
		kextlog_encode_header((void *)frame, (uint16_t)(5 + fuzz_below(input, 59) +
		    (fuzz_u8(input) & 1 ? 61 : 0)), length);
		return length;
	}
}

static void append(struct scan_case *s, const uint8_t *bytes, uint32_t length)
{
	memcpy(s->data + s->length, bytes, length);
	s->length += length;
}

static void build(struct scan_case *s, struct fuzz_input *input, bool datagrams)
{
	_Alignas(8) uint8_t frame[FUZZ_FRAME_MAX];
	const uint8_t *bytes;

	s->clean = true;
	while (fuzz_left(input) && s->start_count < PIECES_MAX && s->end_count < PIECES_MAX) {
		uint32_t kind = fuzz_below(input, 12), length, at;

		if (kind < 7) {
			length = encode_frame(input, frame, kind);
		} else if (kind == 7) { /* garbage that cannot begin a frame */
			length = (uint32_t)fuzz_take(input, 1 + fuzz_below(input, 64), &bytes);
			memcpy(frame, bytes, length);
			for (uint32_t i = 0; i < length; i++)
				frame[i] = frame[i] == 'K' ? 'k' : frame[i];
		} else if (kind == 8) { /* anything */
			length = (uint32_t)fuzz_take(input, 1 + fuzz_below(input, 64), &bytes);
			memcpy(frame, bytes, length);
			s->clean = false;
		} else if (kind == 9 || kind == 10) { /* a frame with a byte changed, or cut short */
			length = encode_frame(input, frame, fuzz_below(input, 7));
			at = fuzz_below(input, length);
			if (kind == 9)
				frame[at] = fuzz_u8(input);
			else
				length = at;
			s->clean = false;
		} else { /* a datagram ends here */
			if (datagrams && s->length > 0 &&
			    (s->end_count == 0 || s->ends[s->end_count - 1] < s->length))
				s->ends[s->end_count++] = s->length;
			continue;
		}
		if (length == 0 || s->length + length > DATA_MAX)
			break;
		if (kind < 4)
			expect(s, s->length, length, (uint16_t)fuzz_le(frame, 6, 2), 0);
		else if (kind < 7)
			expect(s, s->length, length, KEXTLOG_SCAN_SKIPPED,
			    kind == 4 ? KEXTLOG_SCAN_OUT_OF_RANGE : KEXTLOG_WIRE_UNKNOWN);
		else if (kind == 7)
			expect(s, s->length, length, KEXTLOG_SCAN_SKIPPED, KEXTLOG_WIRE_BAD_MAGIC);
		if (kind < 7)
			s->starts[s->start_count++] = s->length;
		append(s, frame, length);
	}
	if (datagrams && s->length > 0 &&
	    (s->end_count == 0 || s->ends[s->end_count - 1] < s->length))
		s->ends[s->end_count++] = s->length;
}

/* ---- checking ---- */

/* Where the datagram holding at ends (the data's end on a stream). */
static uint32_t limit_of(const struct scan_case *s, uint32_t at, uint32_t available)
{
	for (uint32_t i = 0; i < s->end_count; i++)
		if (s->ends[i] > at)
			return s->ends[i];
	return available;
}

/* A whole frame (any type the check accepts, or a well-formed unknown one)
 * begins at at, within limit. */
static bool frame_begins(const uint8_t *data, uint32_t at, uint32_t limit)
{
	uint32_t length = 0;
	enum fuzz_check status;

	if (data[at] != 'K')
		return false;
	status = fuzz_check_frame(data + at, limit - at, &length);
	return status == FUZZ_OK || (status == FUZZ_UNKNOWN && length <= limit - at);
}

static void check_no_frame_inside(const uint8_t *data, uint32_t from, uint32_t to, uint32_t limit)
{
	for (uint32_t at = from + 1; at < to; at++)
		FUZZ_ASSERT(!frame_begins(data, at, limit),
		    "a frame begins at %u, inside the entry at %u..%u", at, from, to);
}

static void check_frame_entry(const uint8_t *data, const struct kextlog_scan_entry *entry,
    uint32_t limit, const struct kextlog_scan_names *names)
{
	const uint8_t *frame = data + entry->offset;
	uint32_t length = 0;

	FUZZ_ASSERT(fuzz_check_frame(frame, limit - entry->offset, &length) == FUZZ_OK,
	    "the entry at %u is not a whole valid frame within its datagram", entry->offset);
	FUZZ_ASSERT(entry->type == fuzz_le(frame, 6, 2) && entry->type >= FUZZ_HELLO &&
	    entry->type <= FUZZ_STATUS, "entry type %u", entry->type);
	if (entry->type == FUZZ_LOG) {
		uint32_t process_length = 0;

		while (process_length < 32 && frame[64 + process_length] != 0)
			process_length++;
		FUZZ_ASSERT(entry->seq == fuzz_le(frame, 16, 8) && entry->time_ns == fuzz_le(frame, 24, 8) &&
		    entry->mono_ns == fuzz_le(frame, 32, 8) && entry->tid == fuzz_le(frame, 40, 8) &&
		    entry->pid == fuzz_le(frame, 48, 4) &&
		    entry->message_length == fuzz_le(frame, 52, 2) &&
		    entry->flags == fuzz_le(frame, 54, 2) && entry->level == frame[56] &&
		    entry->process_length == process_length &&
		    entry->message_nul == (memchr(frame + 96, 0, entry->message_length) != NULL),
		    "LOG entry fields at %u", entry->offset);
		FUZZ_ASSERT(entry->process == KEXTLOG_SCAN_NO_NAME ||
		    (entry->process < names->count &&
		    memcmp(names->names[entry->process], frame + 64, 32) == 0),
		    "process number %u is not the frame's name", entry->process);
	}
	FUZZ_ASSERT(within_bounds(frame, entry->type), "the entry at %u is past a field bound",
	    entry->offset);
}

/* One call: data[0..available) from *offset, in exact allocations. */
static size_t scan_once(struct scan_case *s, uint32_t available, bool datagrams, size_t *offset,
    struct kextlog_scan_names *names, uint32_t max_entries)
{
	uint8_t *data = fuzz_exact_copy(s->data, available);
	uint32_t *ends = NULL, end_count = 0;
	struct kextlog_scan_entry *entries = malloc(max_entries * sizeof *entries);
	size_t start = *offset, at = start, count;

	FUZZ_ASSERT(entries != NULL, "out of memory");
	if (datagrams) {
		while (end_count < s->end_count && s->ends[end_count] <= available)
			end_count++;
		ends = (uint32_t *)fuzz_exact_copy((const uint8_t *)s->ends, end_count * sizeof *ends);
	}
	count = kextlog_wire_scan(data, available, ends, end_count, offset, names, entries,
	    max_entries);
	FUZZ_ASSERT(count <= max_entries && *offset >= start && *offset <= available,
	    "%zu entries of %u, offset %zu of %u", count, max_entries, *offset, available);
	for (size_t i = 0; i < count; i++) {
		const struct kextlog_scan_entry *entry = &entries[i];
		uint32_t limit = limit_of(s, entry->offset, available), size;

		FUZZ_ASSERT(entry->offset == at, "entry %zu at %u, the last ended at %zu", i,
		    entry->offset, at);
		if (entry->type == KEXTLOG_SCAN_SKIPPED) {
			size = entry->skipped;
			FUZZ_ASSERT(size > 0 && entry->offset + size <= limit,
			    "a skipped run of %u bytes at %u, its datagram ends at %u", size, entry->offset,
			    limit);
			FUZZ_ASSERT((entry->problem >= KEXTLOG_WIRE_BAD_MAGIC &&
			    entry->problem <= KEXTLOG_WIRE_UNKNOWN) ||
			    entry->problem == KEXTLOG_SCAN_TRUNCATED ||
			    entry->problem == KEXTLOG_SCAN_OUT_OF_RANGE, "problem %u", entry->problem);
			if (entry->problem == KEXTLOG_SCAN_OUT_OF_RANGE)
				FUZZ_ASSERT(fuzz_check_frame(data + entry->offset, limit - entry->offset,
				    &size) == FUZZ_OK && size == entry->skipped &&
				    !within_bounds(data + entry->offset, (uint16_t)fuzz_le(data + entry->offset, 6, 2)),
				    "the frame skipped as out of range at %u is within the bounds", entry->offset);
		} else {
			check_frame_entry(data, entry, limit, names);
			size = (uint32_t)fuzz_le(data + entry->offset, 8, 4);
		}
		check_no_frame_inside(data, entry->offset, entry->offset + size, limit);
		at += size;
		FUZZ_ASSERT(s->got_count < sizeof s->got / sizeof s->got[0], "too many entries");
		s->got[s->got_count++] = *entry;
	}
	FUZZ_ASSERT(*offset == at, "offset %zu, the entries end at %zu", *offset, at);
	if (count < max_entries && at < available) {
		size_t rest = available - at;

		FUZZ_ASSERT(!datagrams, "a datagram scan stopped at %zu of %u", at, available);
		FUZZ_ASSERT(memcmp(data + at, "KXLG\1\0", rest < 6 ? rest : 6) == 0,
		    "a stream scan stopped at %zu before bytes that cannot begin a frame", at);
	}
	free(entries);
	if (datagrams)
		fuzz_exact_free((uint8_t *)ends, end_count * sizeof *ends);
	fuzz_exact_free(data, available);
	return count;
}

/* Clean data: no frame begins but where a frame piece starts. */
static bool frames_only_at_starts(const struct scan_case *s)
{
	uint32_t piece = 0;

	for (uint32_t at = 0; at < s->length; at++) {
		bool start = piece < s->start_count && s->starts[piece] == at;

		if (start)
			piece++;
		else if (frame_begins(s->data, at, limit_of(s, at, s->length)))
			return false;
	}
	return true;
}

/* Adjacent skipped runs of one problem are one run (a stream's reads may
 * cut a run of garbage). */
static uint32_t merge_runs(struct expected *runs, uint32_t count)
{
	uint32_t out = 0;

	for (uint32_t i = 0; i < count; i++) {
		struct expected *last = out > 0 ? &runs[out - 1] : NULL;

		if (last != NULL && last->type == KEXTLOG_SCAN_SKIPPED &&
		    runs[i].type == KEXTLOG_SCAN_SKIPPED && last->problem == runs[i].problem &&
		    last->problem == KEXTLOG_WIRE_BAD_MAGIC && last->offset + last->size == runs[i].offset)
			last->size += runs[i].size;
		else
			runs[out++] = runs[i];
	}
	return out;
}

static void check_clean(struct scan_case *s)
{
	static struct expected got[2 * DATA_MAX];
	uint32_t got_count = 0, expected_count;

	if (!s->clean || !frames_only_at_starts(s))
		return;
	for (uint32_t i = 0; i < s->got_count; i++) {
		const struct kextlog_scan_entry *entry = &s->got[i];

		got[got_count++] = (struct expected){
			entry->offset,
			entry->type == KEXTLOG_SCAN_SKIPPED ? entry->skipped :
			    (uint32_t)fuzz_le(s->data + entry->offset, 8, 4),
			entry->type, entry->type == KEXTLOG_SCAN_SKIPPED ? entry->problem : 0,
		};
	}
	got_count = merge_runs(got, got_count);
	expected_count = merge_runs(s->expected, s->expected_count);
	FUZZ_ASSERT(got_count == expected_count, "%u entries, expected %u", got_count, expected_count);
	for (uint32_t i = 0; i < got_count; i++)
		FUZZ_ASSERT(got[i].offset == s->expected[i].offset && got[i].size == s->expected[i].size &&
		    got[i].type == s->expected[i].type && got[i].problem == s->expected[i].problem,
		    "entry %u: type %u problem %u at %u, %u bytes; expected type %u problem %u at %u, %u",
		    i, got[i].type, got[i].problem, got[i].offset, got[i].size, s->expected[i].type,
		    s->expected[i].problem, s->expected[i].offset, s->expected[i].size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scan_case s;
	struct fuzz_input input = { .data = data, .size = size };
	uint8_t mode = fuzz_u8(&input);
	bool datagrams = mode & 1;
	uint32_t max_entries = 1 + (mode >> 1) % 64;
	uint16_t read_seed = fuzz_u16(&input);
	struct kextlog_scan_names *names = calloc(1, sizeof *names);
	size_t offset = 0;
	uint32_t available = 0;

	FUZZ_ASSERT(names != NULL, "out of memory");
	memset(&s, 0, offsetof(struct scan_case, got));
	s.got_count = 0;
	build(&s, &input, datagrams);
	if (datagrams) {
		available = s.length;
		while (scan_once(&s, available, true, &offset, names, max_entries) == max_entries)
			;
	} else {
		/* Reads of sizes from the seed, as a reader gets them; then what
		 * waits at the end of the stream is read as a last datagram. */
		uint32_t step = 1 + read_seed % 2048;

		while (available < s.length) {
			available = available + step < s.length ? available + step : s.length;
			while (scan_once(&s, available, false, &offset, names, max_entries) == max_entries)
				;
			step = 1 + (step * 7 + read_seed) % 2048;
		}
		if (offset < s.length) {
			s.ends[0] = s.length;
			s.end_count = 1;
			while (scan_once(&s, s.length, true, &offset, names, max_entries) == max_entries)
				;
			s.end_count = 0;
		}
	}
	FUZZ_ASSERT(offset == s.length, "the scan ended at %zu of %u", offset, s.length);
	check_clean(&s);
	free(names);
	return 0;
}
