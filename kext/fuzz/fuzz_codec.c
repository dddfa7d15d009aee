/*
 * fuzz_codec.c - the frame check and the encoders.
 *
 * One input in six is bytes for kextlog_wire_check, in allocations exactly
 * as long as the length passed (whole, and cut at several points): its
 * answer and length must be those of the check written from
 * docs/protocol.md in kextlog_fuzz.h.  The others build a frame of one
 * kind from field values in the input: each encoder writes exactly the
 * frame's length into an allocation of that size (prefilled, so a field it
 * forgets to write shows), reads its text and names no further than it may
 * (they too sit in exact allocations), and the frame reads back, field by
 * field, as it was asked to be, padding zeroed; the check accepts it whole
 * and says SHORT for every prefix.
 */
#include "kextlog_codec.h"
#include "kextlog_fuzz.h"

#define PREFILL 0xaa

static const char *const statuses[] = {
	"OK", "SHORT", "BAD_MAGIC", "BAD_VERSION", "BAD_LENGTH", "BAD_FIELD", "UNKNOWN",
};

/* kextlog_wire_check on exactly available bytes of data, against the oracle. */
static void check_against_oracle(const uint8_t *data, size_t available)
{
	uint8_t *copy = fuzz_exact_copy(data, available);
	uint32_t length = 0, expected_length = 0;
	enum kextlog_wire_status status = kextlog_wire_check(copy, available, &length);
	enum fuzz_check expected = fuzz_check_frame(copy, available, &expected_length);

	FUZZ_ASSERT((unsigned)status == (unsigned)expected, "%zu bytes: the check says %s, expected %s",
	    available, status <= KEXTLOG_WIRE_UNKNOWN ? statuses[status] : "?", statuses[expected]);
	if (expected == FUZZ_OK || expected == FUZZ_UNKNOWN)
		FUZZ_ASSERT(length == expected_length, "length %u, the header says %u", length,
		    expected_length);
	fuzz_exact_free(copy, available);
}

static void fuzz_bytes(struct fuzz_input *input)
{
	uint16_t cut = fuzz_u16(input);
	const uint8_t *data;
	size_t size = fuzz_take(input, input->size, &data);

	check_against_oracle(data, size);
	check_against_oracle(data, cut % (size + 1));
	check_against_oracle(data, size < FUZZ_HEADER ? size : FUZZ_HEADER);
	if (size > 0)
		check_against_oracle(data, size - 1);
}

/* The check accepts the frame whole, and only whole. */
static void check_whole(const uint8_t *frame, uint32_t length)
{
	uint32_t checked = 0;
	uint8_t *copy = fuzz_exact_copy(frame, length);

	FUZZ_ASSERT(kextlog_wire_check(copy, length, &checked) == KEXTLOG_WIRE_OK && checked == length,
	    "an encoded frame of %u bytes fails the check", length);
	fuzz_exact_free(copy, length);
	for (uint32_t available = 0; available < length; available += 1 + available / 8) {
		copy = fuzz_exact_copy(frame, available);
		FUZZ_ASSERT(kextlog_wire_check(copy, available, &checked) == KEXTLOG_WIRE_SHORT,
		    "%u bytes of a %u-byte frame are not SHORT", available, length);
		fuzz_exact_free(copy, available);
	}
}

static uint8_t *prefilled(uint32_t length)
{
	uint8_t *frame = malloc(length);

	FUZZ_ASSERT(frame != NULL, "out of memory");
	memset(frame, PREFILL, length);
	return frame;
}

/* A name of any length from the input in an exact allocation: terminated
 * (shorter, as long as or longer than the field) or filling it unterminated;
 * or none (NULL: the field is zeros). */
static char *make_name(struct fuzz_input *input, uint32_t field, uint32_t *kept, size_t *size)
{
	uint32_t length = fuzz_below(input, field + 10);
	bool terminated = length != field || (fuzz_u8(input) & 1);
	char *name;

	*kept = 0;
	if (length == field + 9)
		return NULL;

	*size = length + terminated;
	name = malloc(*size);
	FUZZ_ASSERT(name != NULL, "out of memory");
	for (uint32_t i = 0; i < length; i++) {
		char c = (char)fuzz_u8(input);

		name[i] = c == 0 ? 'n' : c;
	}
	if (terminated)
		name[length] = '\0';
	*kept = length < field ? length : field;
	return name;
}

static void check_name(const uint8_t *field, uint32_t size, const char *name, uint32_t kept)
{
	FUZZ_ASSERT((kept == 0 || memcmp(field, name, kept) == 0) && fuzz_zero(field, kept, size),
	    "a name is not copied and NUL-padded");
}

static void fuzz_log(struct fuzz_input *input)
{
	uint64_t seq = fuzz_u64(input), time_ns = fuzz_u64(input), mono_ns = fuzz_u64(input);
	uint64_t tid = fuzz_u64(input);
	uint32_t pid = fuzz_u32(input), level = 1 + fuzz_below(input, 5), kept;
	uint16_t flags = fuzz_u16(input) & 3, message_length = (uint16_t)fuzz_below(input, FUZZ_MESSAGE_MAX + 1);
	bool in_place = fuzz_u8(input) & 1;
	uint32_t length = (FUZZ_LOG_FIXED + message_length + 7u) & ~7u;
	uint8_t *frame = prefilled(length);
	char *message = malloc(message_length == 0 ? 1 : message_length);
	size_t name_size;
	char *process = make_name(input, 32, &kept, &name_size);
	const uint8_t *text;
	struct fuzz_frame read;
	const char *why;

	FUZZ_ASSERT(message != NULL, "out of memory");
	for (uint32_t i = 0, got = (uint32_t)fuzz_take(input, 64, &text); i < message_length; i++)
		message[i] = (char)(got > 0 ? text[i % got] : i);
	if (in_place) /* the core formats in the frame itself */
		memcpy(frame + FUZZ_LOG_FIXED, message, message_length);
	FUZZ_ASSERT(kextlog_encode_log((void *)frame, seq == 0 ? 1 : seq, time_ns, mono_ns, pid, tid,
	    process, level, flags, in_place ? (const char *)frame + FUZZ_LOG_FIXED : message,
	    message_length) == length, "LOG length");
	check_whole(frame, length);
	FUZZ_ASSERT(fuzz_read_frame(frame, length, &read, &why) == FUZZ_READ_FRAME, "LOG: %s", why);
	FUZZ_ASSERT(read.type == FUZZ_LOG && read.first_seq == (seq == 0 ? 1 : seq) &&
	    fuzz_le(frame, 24, 8) == time_ns && fuzz_le(frame, 32, 8) == mono_ns &&
	    fuzz_le(frame, 40, 8) == tid && fuzz_le(frame, 48, 4) == pid && read.level == level &&
	    read.flags == flags && read.message_length == message_length &&
	    memcmp(frame + FUZZ_LOG_FIXED, message, message_length) == 0, "LOG fields");
	check_name(frame + 64, 32, process, kept);
	FUZZ_ASSERT(kextlog_frame_first_seq((void *)frame) == read.first_seq &&
	    kextlog_frame_last_seq((void *)frame) == read.first_seq, "LOG seqs");
	free(process);
	free(message);
	free(frame);
}

static void fuzz_hello(struct fuzz_input *input)
{
	uint8_t instance_id[16], boot_id[16];
	uint64_t next_seq = 1 + fuzz_u64(input) / 2, oldest_seq = 1 + fuzz_u64(input) % next_seq;
	uint32_t records = fuzz_u32(input), bytes = fuzz_u32(input), version = fuzz_u32(input), kept;
	size_t name_size;
	char *name;
	uint8_t *frame = prefilled(FUZZ_HELLO_SIZE);
	struct fuzz_frame read;
	const char *why;

	for (int i = 0; i < 16; i++) {
		instance_id[i] = fuzz_u8(input);
		boot_id[i] = fuzz_u8(input);
	}
	name = make_name(input, 64, &kept, &name_size);
	FUZZ_ASSERT(kextlog_encode_hello((void *)frame, instance_id, boot_id, oldest_seq, next_seq,
	    records, bytes, version, name) == FUZZ_HELLO_SIZE, "HELLO length");
	check_whole(frame, FUZZ_HELLO_SIZE);
	FUZZ_ASSERT(fuzz_read_frame(frame, FUZZ_HELLO_SIZE, &read, &why) == FUZZ_READ_FRAME,
	    "HELLO: %s", why);
	FUZZ_ASSERT(memcmp(frame + 16, instance_id, 16) == 0 && memcmp(frame + 32, boot_id, 16) == 0 &&
	    read.oldest_seq == oldest_seq && read.next_seq == next_seq &&
	    read.ring_records == records && read.ring_bytes == bytes &&
	    fuzz_le(frame, 72, 4) == version, "HELLO fields");
	check_name(frame + 80, 64, name, kept);
	free(name);
	free(frame);
}

static void fuzz_loss(struct fuzz_input *input)
{
	uint64_t first = 1 + fuzz_u64(input) / 2, last = first + fuzz_u64(input) / 2;
	uint64_t first_time = fuzz_u64(input), last_time = fuzz_u64(input);
	uint32_t reason = 1 + fuzz_below(input, 2);
	uint8_t *frame = prefilled(FUZZ_LOSS_SIZE);
	struct fuzz_frame read;
	const char *why;

	FUZZ_ASSERT(kextlog_encode_loss((void *)frame, first, last, first_time, last_time, reason) ==
	    FUZZ_LOSS_SIZE, "LOSS length");
	check_whole(frame, FUZZ_LOSS_SIZE);
	FUZZ_ASSERT(fuzz_read_frame(frame, FUZZ_LOSS_SIZE, &read, &why) == FUZZ_READ_FRAME,
	    "LOSS: %s", why);
	FUZZ_ASSERT(read.first_seq == first && read.last_seq == last && read.reason == reason &&
	    fuzz_le(frame, 40, 8) == first_time && fuzz_le(frame, 48, 8) == last_time, "LOSS fields");
	FUZZ_ASSERT(kextlog_frame_first_seq((void *)frame) == first &&
	    kextlog_frame_last_seq((void *)frame) == last, "LOSS seqs");
	free(frame);
}

static void fuzz_status(struct fuzz_input *input)
{
	uint64_t next_seq = fuzz_u64(input), lost = fuzz_u64(input), time_ns = fuzz_u64(input);
	uint32_t held = fuzz_u32(input), capacity = fuzz_u32(input), used = fuzz_u32(input);
	uint32_t bytes = fuzz_u32(input);
	uint8_t *frame = prefilled(FUZZ_STATUS_SIZE);
	struct fuzz_frame read;
	const char *why;

	FUZZ_ASSERT(kextlog_encode_status((void *)frame, next_seq, lost, time_ns, held, capacity, used,
	    bytes) == FUZZ_STATUS_SIZE, "STATUS length");
	check_whole(frame, FUZZ_STATUS_SIZE);
	FUZZ_ASSERT(fuzz_read_frame(frame, FUZZ_STATUS_SIZE, &read, &why) == FUZZ_READ_FRAME,
	    "STATUS: %s", why);
	FUZZ_ASSERT(read.next_seq == next_seq && read.lost == lost && fuzz_le(frame, 32, 8) == time_ns &&
	    read.held_records == held && read.ring_records == capacity && read.held_bytes == used &&
	    read.ring_bytes == bytes, "STATUS fields");
	free(frame);
}

/* The client's frames: ACK and RESUME. */
static void fuzz_client(struct fuzz_input *input)
{
	uint64_t seq = fuzz_u64(input);
	uint8_t instance_id[16];
	uint8_t *frame = prefilled(FUZZ_ACK_SIZE);

	FUZZ_ASSERT(kextlog_encode_ack((void *)frame, seq) == FUZZ_ACK_SIZE, "ACK length");
	check_whole(frame, FUZZ_ACK_SIZE);
	FUZZ_ASSERT(memcmp(frame, "KXLG\1\0\x40\0\x18\0\0\0\0\0\0\0", 16) == 0 &&
	    fuzz_le(frame, 16, 8) == seq, "ACK bytes");
	free(frame);

	for (int i = 0; i < 16; i++)
		instance_id[i] = fuzz_u8(input);
	frame = prefilled(FUZZ_RESUME_SIZE);
	FUZZ_ASSERT(kextlog_encode_resume((void *)frame, instance_id, seq) == FUZZ_RESUME_SIZE,
	    "RESUME length");
	check_whole(frame, FUZZ_RESUME_SIZE);
	FUZZ_ASSERT(memcmp(frame, "KXLG\1\0\x41\0\x28\0\0\0\0\0\0\0", 16) == 0 &&
	    memcmp(frame + 16, instance_id, 16) == 0 && fuzz_le(frame, 32, 8) == seq, "RESUME bytes");
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input input = { .data = data, .size = size };

	switch (fuzz_below(&input, 6)) {
	case 0:  fuzz_bytes(&input); break;
	case 1:  fuzz_log(&input); break;
	case 2:  fuzz_hello(&input); break;
	case 3:  fuzz_loss(&input); break;
	case 4:  fuzz_status(&input); break;
	default: fuzz_client(&input); break;
	}
	return 0;
}
