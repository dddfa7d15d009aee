/*
 * kextlog_fuzz.h - what the libFuzzer targets of kext/fuzz share: the input
 * read as a series of choices, a failure that libFuzzer records, and a
 * reader of frames written from docs/protocol.md alone.
 *
 * The reader is the harnesses' oracle: it reads each field by its offset,
 * byte by byte, and checks everything a sender must get right (padding
 * zeroed included), without kextlog_wire_check or the structs of
 * kextlog_wire.h, so that a mistake in either cannot hide itself.
 */
#ifndef KEXTLOG_FUZZ_H
#define KEXTLOG_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken invariant: say which, and abort so that libFuzzer keeps the input. */
#define FUZZ_ASSERT(condition, ...) do { \
	if (!(condition)) { \
		fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #condition); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)

/* ---- the input as choices; once it runs out, every choice is 0 ---- */

struct fuzz_input {
	const uint8_t *data;
	size_t         size;
	size_t         at;
};

static inline bool fuzz_left(const struct fuzz_input *input)
{
	return input->at < input->size;
}

static inline uint64_t fuzz_bits(struct fuzz_input *input, unsigned bytes)
{
	uint64_t value = 0;

	for (unsigned i = 0; i < bytes && input->at < input->size; i++)
		value |= (uint64_t)input->data[input->at++] << (8 * i);
	return value;
}

static inline uint8_t fuzz_u8(struct fuzz_input *input) { return (uint8_t)fuzz_bits(input, 1); }
static inline uint16_t fuzz_u16(struct fuzz_input *input) { return (uint16_t)fuzz_bits(input, 2); }
static inline uint32_t fuzz_u32(struct fuzz_input *input) { return (uint32_t)fuzz_bits(input, 4); }
static inline uint64_t fuzz_u64(struct fuzz_input *input) { return fuzz_bits(input, 8); }

/* 0 <= n < limit (limit > 0). */
static inline uint32_t fuzz_below(struct fuzz_input *input, uint32_t limit)
{
	return (uint32_t)(fuzz_bits(input, limit <= 256 ? 1 : limit <= 65536 ? 2 : 4) % limit);
}

/* Up to count bytes of the input, fewer at its end. */
static inline size_t fuzz_take(struct fuzz_input *input, size_t count, const uint8_t **bytes)
{
	size_t left = input->size - input->at;

	*bytes = input->data + input->at;
	if (count > left)
		count = left;
	input->at += count;
	return count;
}

/* ---- frames, read from docs/protocol.md ---- */

#define FUZZ_HEADER      16u
#define FUZZ_HELLO_SIZE  144u
#define FUZZ_LOG_FIXED   96u
#define FUZZ_LOSS_SIZE   64u
#define FUZZ_STATUS_SIZE 56u
#define FUZZ_ACK_SIZE    24u
#define FUZZ_RESUME_SIZE 40u
#define FUZZ_MESSAGE_MAX 1024u
#define FUZZ_FRAME_MAX   1120u

enum { FUZZ_HELLO = 1, FUZZ_LOG = 2, FUZZ_LOSS = 3, FUZZ_STATUS = 4, FUZZ_ACK = 64, FUZZ_RESUME = 65 };
enum { FUZZ_RING_FULL = 1, FUZZ_RELEASED = 2 };

static inline uint64_t fuzz_le(const uint8_t *data, size_t offset, unsigned bytes)
{
	uint64_t value = 0;

	for (unsigned i = 0; i < bytes; i++)
		value |= (uint64_t)data[offset + i] << (8 * i);
	return value;
}

static inline void fuzz_put_le(uint8_t *data, size_t offset, unsigned bytes, uint64_t value)
{
	for (unsigned i = 0; i < bytes; i++)
		data[offset + i] = (uint8_t)(value >> (8 * i));
}

static inline bool fuzz_zero(const uint8_t *data, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (data[i] != 0)
			return false;
	return true;
}

/* A kernel-to-user frame as its fields say. */
struct fuzz_frame {
	uint16_t type;
	uint32_t length;
	uint64_t first_seq;  /* LOG: its seq; LOSS: the range */
	uint64_t last_seq;
	uint32_t reason;     /* LOSS */
	uint64_t oldest_seq; /* HELLO */
	uint64_t next_seq;   /* HELLO, STATUS */
	uint32_t ring_records, ring_bytes;                       /* HELLO, STATUS: capacity */
	uint32_t held_records, held_bytes;                       /* STATUS: in use */
	uint64_t lost;                                           /* STATUS */
	uint16_t message_length;                                 /* LOG */
	uint16_t flags;
	uint8_t  level;
	const uint8_t *bytes;                                    /* the whole frame */
};

enum fuzz_read { FUZZ_READ_FRAME, FUZZ_READ_SHORT, FUZZ_READ_BAD };

/* Reads the kernel-to-user frame at data (available bytes present) the way a
 * strict consumer would.  BAD says why in *why. */
static inline enum fuzz_read fuzz_read_frame(const uint8_t *data, size_t available,
    struct fuzz_frame *frame, const char **why)
{
	uint32_t length, expected;

	memset(frame, 0, sizeof *frame);
	*why = "";
	if (available < FUZZ_HEADER)
		return available == 0 || memcmp(data, "KXLG\1\0", available < 6 ? available : 6) == 0 ?
		    FUZZ_READ_SHORT : (*why = "bad magic or version", FUZZ_READ_BAD);
	length = (uint32_t)fuzz_le(data, 8, 4);
	frame->type = (uint16_t)fuzz_le(data, 6, 2);
	frame->length = length;
	frame->bytes = data;
	if (memcmp(data, "KXLG", 4) != 0)
		return *why = "bad magic", FUZZ_READ_BAD;
	if (fuzz_le(data, 4, 2) != 1)
		return *why = "bad version", FUZZ_READ_BAD;
	if (!fuzz_zero(data, 12, 16))
		return *why = "header padding not zero", FUZZ_READ_BAD;
	if (length % 8 != 0 || length < FUZZ_HEADER || length > FUZZ_FRAME_MAX)
		return *why = "bad length", FUZZ_READ_BAD;
	switch (frame->type) {
	case FUZZ_HELLO:  expected = FUZZ_HELLO_SIZE; break;
	case FUZZ_LOSS:   expected = FUZZ_LOSS_SIZE; break;
	case FUZZ_STATUS: expected = FUZZ_STATUS_SIZE; break;
	case FUZZ_LOG:    expected = length < FUZZ_LOG_FIXED ? FUZZ_LOG_FIXED : length; break;
	default:          return *why = "not a kernel-to-user type", FUZZ_READ_BAD;
	}
	if (length != expected)
		return *why = "wrong length for the type", FUZZ_READ_BAD;
	if (available < length)
		return FUZZ_READ_SHORT;
	switch (frame->type) {
	case FUZZ_HELLO:
		frame->oldest_seq = fuzz_le(data, 48, 8);
		frame->next_seq = fuzz_le(data, 56, 8);
		frame->ring_records = (uint32_t)fuzz_le(data, 64, 4);
		frame->ring_bytes = (uint32_t)fuzz_le(data, 68, 4);
		if (!fuzz_zero(data, 76, 80))
			return *why = "HELLO padding not zero", FUZZ_READ_BAD;
		if (frame->oldest_seq == 0 || frame->oldest_seq > frame->next_seq)
			return *why = "HELLO oldest_seq out of 1..next_seq", FUZZ_READ_BAD;
		break;
	case FUZZ_LOG:
		frame->first_seq = frame->last_seq = fuzz_le(data, 16, 8);
		frame->message_length = (uint16_t)fuzz_le(data, 52, 2);
		frame->flags = (uint16_t)fuzz_le(data, 54, 2);
		frame->level = data[56];
		if (frame->first_seq == 0)
			return *why = "LOG seq 0", FUZZ_READ_BAD;
		if (frame->level < 1 || frame->level > 5)
			return *why = "LOG level out of 1..5", FUZZ_READ_BAD;
		if (frame->message_length > FUZZ_MESSAGE_MAX ||
		    ((FUZZ_LOG_FIXED + frame->message_length + 7u) & ~7u) != length)
			return *why = "LOG message_length does not match the length", FUZZ_READ_BAD;
		if ((frame->flags & ~3u) != 0)
			return *why = "LOG flags unknown", FUZZ_READ_BAD;
		if (!fuzz_zero(data, 57, 64) || !fuzz_zero(data, FUZZ_LOG_FIXED + frame->message_length, length))
			return *why = "LOG padding not zero", FUZZ_READ_BAD;
		break;
	case FUZZ_LOSS:
		frame->first_seq = fuzz_le(data, 16, 8);
		frame->last_seq = fuzz_le(data, 24, 8);
		frame->reason = (uint32_t)fuzz_le(data, 56, 4);
		if (frame->first_seq == 0 || frame->first_seq > frame->last_seq ||
		    fuzz_le(data, 32, 8) != frame->last_seq - frame->first_seq + 1)
			return *why = "LOSS seq range or count", FUZZ_READ_BAD;
		if (frame->reason != FUZZ_RING_FULL && frame->reason != FUZZ_RELEASED)
			return *why = "LOSS reason unknown", FUZZ_READ_BAD;
		if (!fuzz_zero(data, 60, 64))
			return *why = "LOSS padding not zero", FUZZ_READ_BAD;
		break;
	case FUZZ_STATUS:
		frame->next_seq = fuzz_le(data, 16, 8);
		frame->lost = fuzz_le(data, 24, 8);
		frame->held_records = (uint32_t)fuzz_le(data, 40, 4);
		frame->ring_records = (uint32_t)fuzz_le(data, 44, 4);
		frame->held_bytes = (uint32_t)fuzz_le(data, 48, 4);
		frame->ring_bytes = (uint32_t)fuzz_le(data, 52, 4);
		break;
	}
	return FUZZ_READ_FRAME;
}

/* What a receiver's check must say of the bytes at data (docs/protocol.md,
 * "Checking a frame"), in the order of the header's fields: SHORT until a
 * header is there, then the magic, the version, the length (aligned, 16 to
 * 1120, and right for a known type, even before all of it arrived: a stream
 * reader must not wait for a frame that can never be valid), UNKNOWN with
 * the length to skip, SHORT until the whole frame is there, the fields.
 * Values are those of enum kextlog_wire_status. */
enum fuzz_check { FUZZ_OK = 0, FUZZ_SHORT, FUZZ_BAD_MAGIC, FUZZ_BAD_VERSION, FUZZ_BAD_LENGTH,
	FUZZ_BAD_FIELD, FUZZ_UNKNOWN };

static inline enum fuzz_check fuzz_check_frame(const uint8_t *data, size_t available,
    uint32_t *length)
{
	uint32_t size, fixed;
	uint16_t type;

	if (available < FUZZ_HEADER)
		return FUZZ_SHORT;
	if (memcmp(data, "KXLG", 4) != 0)
		return FUZZ_BAD_MAGIC;
	if (fuzz_le(data, 4, 2) != 1)
		return FUZZ_BAD_VERSION;
	size = (uint32_t)fuzz_le(data, 8, 4);
	type = (uint16_t)fuzz_le(data, 6, 2);
	if (size % 8 != 0 || size < FUZZ_HEADER || size > FUZZ_FRAME_MAX)
		return FUZZ_BAD_LENGTH;
	switch (type) {
	case FUZZ_HELLO:  fixed = FUZZ_HELLO_SIZE; break;
	case FUZZ_LOG:    fixed = FUZZ_LOG_FIXED; break;
	case FUZZ_LOSS:   fixed = FUZZ_LOSS_SIZE; break;
	case FUZZ_STATUS: fixed = FUZZ_STATUS_SIZE; break;
	case FUZZ_ACK:    fixed = FUZZ_ACK_SIZE; break;
	case FUZZ_RESUME: fixed = FUZZ_RESUME_SIZE; break;
	default:
		*length = size;
		return FUZZ_UNKNOWN;
	}
	if (size < fixed || (type != FUZZ_LOG && size != fixed))
		return FUZZ_BAD_LENGTH;
	if (available < size)
		return FUZZ_SHORT;
	*length = size;
	if (type == FUZZ_LOG) {
		uint64_t message_length = fuzz_le(data, 52, 2);

		if (data[56] < 1 || data[56] > 5 || message_length > FUZZ_MESSAGE_MAX ||
		    ((FUZZ_LOG_FIXED + message_length + 7u) & ~7u) != size)
			return FUZZ_BAD_FIELD;
	} else if (type == FUZZ_LOSS) {
		uint64_t first = fuzz_le(data, 16, 8), last = fuzz_le(data, 24, 8);

		if (first == 0 || first > last || fuzz_le(data, 32, 8) != last - first + 1)
			return FUZZ_BAD_FIELD;
	}
	return FUZZ_OK;
}

/* A copy of data in an allocation of exactly length bytes, so that
 * AddressSanitizer sees a read past it.  Free it. */
static inline uint8_t *fuzz_exact_copy(const uint8_t *data, size_t length)
{
	uint8_t *copy = malloc(length == 0 ? 1 : length);

	FUZZ_ASSERT(copy != NULL, "out of memory");
	if (length > 0)
		memcpy(copy, data, length);
	return length == 0 ? copy + 1 : copy;
}

static inline void fuzz_exact_free(uint8_t *copy, size_t length)
{
	free(length == 0 ? copy - 1 : copy);
}

#endif /* KEXTLOG_FUZZ_H */
