/*
 * kextlog_codec.c - building and checking frames (see kextlog_codec.h).
 */
#include "kextlog_codec.h"

void kextlog_encode_header(struct kextlog_frame_header *header, uint16_t type, uint32_t length)
{
	header->magic = KEXTLOG_WIRE_MAGIC;
	header->version = KEXTLOG_WIRE_VERSION;
	header->type = type;
	header->length = length;
	header->padding = 0;
}

static void copy_name(char *destination, size_t size, const char *source)
{
	size_t i;

	for (i = 0; i < size && source != NULL && source[i] != '\0'; i++)
		destination[i] = source[i];
	for (; i < size; i++)
		destination[i] = '\0';
}

uint32_t kextlog_encode_hello(struct kextlog_hello_frame *frame,
    const uint8_t instance_id[KEXTLOG_ID_SIZE], const uint8_t boot_id[KEXTLOG_ID_SIZE],
    uint64_t oldest_seq, uint64_t next_seq, uint32_t ring_records, uint32_t ring_bytes,
    uint32_t producer_version, const char *name)
{
	memset(frame, 0, sizeof *frame);
	kextlog_encode_header(&frame->header, KEXTLOG_FRAME_HELLO, sizeof *frame);
	memcpy(frame->instance_id, instance_id, KEXTLOG_ID_SIZE);
	memcpy(frame->boot_id, boot_id, KEXTLOG_ID_SIZE);
	frame->oldest_seq = oldest_seq;
	frame->next_seq = next_seq;
	frame->ring_records = ring_records;
	frame->ring_bytes = ring_bytes;
	frame->producer_version = producer_version;
	copy_name(frame->name, sizeof frame->name, name);
	return sizeof *frame;
}

uint32_t kextlog_encode_log(struct kextlog_log_frame *frame, uint64_t seq, uint64_t time_ns,
    uint64_t mono_ns, uint32_t pid, uint64_t tid, const char *process, uint32_t level,
    uint16_t flags, const char *message, uint16_t message_length)
{
	uint32_t length = KEXTLOG_FRAME_ALIGNED((uint32_t)sizeof *frame + message_length);

	/* message may already sit in frame->message (the core formats in place). */
	if (message != frame->message)
		memmove(frame->message, message, message_length);
	memset(frame->message + message_length, 0, length - sizeof *frame - message_length);
	memset(frame, 0, sizeof *frame);
	kextlog_encode_header(&frame->header, KEXTLOG_FRAME_LOG, length);
	frame->seq = seq;
	frame->time_ns = time_ns;
	frame->mono_ns = mono_ns;
	frame->tid = tid;
	frame->pid = pid;
	frame->message_length = message_length;
	frame->flags = flags;
	frame->level = (uint8_t)level;
	copy_name(frame->process, sizeof frame->process, process);
	return length;
}

uint32_t kextlog_encode_loss(struct kextlog_loss_frame *frame, uint64_t first_seq,
    uint64_t last_seq, uint64_t first_time_ns, uint64_t last_time_ns, uint32_t reason)
{
	memset(frame, 0, sizeof *frame);
	kextlog_encode_header(&frame->header, KEXTLOG_FRAME_LOSS, sizeof *frame);
	frame->first_seq = first_seq;
	frame->last_seq = last_seq;
	frame->count = last_seq - first_seq + 1;
	frame->first_time_ns = first_time_ns;
	frame->last_time_ns = last_time_ns;
	frame->reason = reason;
	return sizeof *frame;
}

uint32_t kextlog_encode_status(struct kextlog_status_frame *frame, uint64_t next_seq,
    uint64_t lost, uint64_t time_ns, uint32_t ring_records, uint32_t ring_capacity,
    uint32_t ring_bytes_used, uint32_t ring_bytes)
{
	memset(frame, 0, sizeof *frame);
	kextlog_encode_header(&frame->header, KEXTLOG_FRAME_STATUS, sizeof *frame);
	frame->next_seq = next_seq;
	frame->lost = lost;
	frame->time_ns = time_ns;
	frame->ring_records = ring_records;
	frame->ring_capacity = ring_capacity;
	frame->ring_bytes_used = ring_bytes_used;
	frame->ring_bytes = ring_bytes;
	return sizeof *frame;
}

uint32_t kextlog_encode_ack(struct kextlog_ack_frame *frame, uint64_t seq)
{
	memset(frame, 0, sizeof *frame);
	kextlog_encode_header(&frame->header, KEXTLOG_FRAME_ACK, sizeof *frame);
	frame->seq = seq;
	return sizeof *frame;
}

uint32_t kextlog_encode_resume(struct kextlog_resume_frame *frame,
    const uint8_t instance_id[KEXTLOG_ID_SIZE], uint64_t seq)
{
	memset(frame, 0, sizeof *frame);
	kextlog_encode_header(&frame->header, KEXTLOG_FRAME_RESUME, sizeof *frame);
	memcpy(frame->instance_id, instance_id, KEXTLOG_ID_SIZE);
	frame->seq = seq;
	return sizeof *frame;
}

/* The fixed size of each known type; 0 for types this protocol does not define. */
static uint32_t fixed_size(uint16_t type)
{
	switch (type) {
	case KEXTLOG_FRAME_HELLO:  return sizeof(struct kextlog_hello_frame);
	case KEXTLOG_FRAME_LOG:    return sizeof(struct kextlog_log_frame);
	case KEXTLOG_FRAME_LOSS:   return sizeof(struct kextlog_loss_frame);
	case KEXTLOG_FRAME_STATUS: return sizeof(struct kextlog_status_frame);
	case KEXTLOG_FRAME_ACK:    return sizeof(struct kextlog_ack_frame);
	case KEXTLOG_FRAME_RESUME: return sizeof(struct kextlog_resume_frame);
	default:                   return 0;
	}
}

/* Fields are copied out first: a receiver's buffer need not be aligned. */
static enum kextlog_wire_status check_fields(const uint8_t *data, uint16_t type, uint32_t length)
{
	if (type == KEXTLOG_FRAME_LOG) {
		struct kextlog_log_frame log;

		memcpy(&log, data, sizeof log);
		if (log.level < KEXTLOG_LEVEL_TRACE || log.level > KEXTLOG_LEVEL_ERROR ||
		    log.message_length > KEXTLOG_MESSAGE_MAX)
			return KEXTLOG_WIRE_BAD_FIELD;
		if (KEXTLOG_FRAME_ALIGNED((uint32_t)sizeof log + log.message_length) != length)
			return KEXTLOG_WIRE_BAD_FIELD;
	} else if (type == KEXTLOG_FRAME_LOSS) {
		struct kextlog_loss_frame loss;

		memcpy(&loss, data, sizeof loss);
		if (loss.first_seq == 0 || loss.first_seq > loss.last_seq ||
		    loss.count != loss.last_seq - loss.first_seq + 1)
			return KEXTLOG_WIRE_BAD_FIELD;
	}
	return KEXTLOG_WIRE_OK;
}

enum kextlog_wire_status kextlog_wire_check(const uint8_t *data, size_t available,
    uint32_t *length)
{
	struct kextlog_frame_header header;
	uint32_t fixed;

	if (available < sizeof header)
		return KEXTLOG_WIRE_SHORT;
	/* The buffer may be unaligned (a stream read); copy before reading. */
	memcpy(&header, data, sizeof header);
	if (header.magic != KEXTLOG_WIRE_MAGIC)
		return KEXTLOG_WIRE_BAD_MAGIC;
	if (header.version != KEXTLOG_WIRE_VERSION)
		return KEXTLOG_WIRE_BAD_VERSION;
	if (header.length % KEXTLOG_FRAME_ALIGN != 0 || header.length < sizeof header ||
	    header.length > KEXTLOG_FRAME_MAX)
		return KEXTLOG_WIRE_BAD_LENGTH;
	fixed = fixed_size(header.type);
	if (fixed == 0) {
		*length = header.length;
		return KEXTLOG_WIRE_UNKNOWN;
	}
	if (header.length < fixed || (header.type != KEXTLOG_FRAME_LOG && header.length != fixed))
		return KEXTLOG_WIRE_BAD_LENGTH;
	if (available < header.length)
		return KEXTLOG_WIRE_SHORT;
	*length = header.length;
	return check_fields(data, header.type, header.length);
}

uint64_t kextlog_frame_first_seq(const struct kextlog_frame_header *header)
{
	if (header->type == KEXTLOG_FRAME_LOSS)
		return ((const struct kextlog_loss_frame *)(const void *)header)->first_seq;
	return ((const struct kextlog_log_frame *)(const void *)header)->seq;
}

uint64_t kextlog_frame_last_seq(const struct kextlog_frame_header *header)
{
	if (header->type == KEXTLOG_FRAME_LOSS)
		return ((const struct kextlog_loss_frame *)(const void *)header)->last_seq;
	return ((const struct kextlog_log_frame *)(const void *)header)->seq;
}
