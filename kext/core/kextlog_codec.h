/*
 * kextlog_codec.h - building and checking frames.
 *
 * The only code that encodes frames (the core, the simulator and, through
 * cffi, the Python daemon's ACK and RESUME all call these) and the one
 * check every receiver applies before it reads a frame's fields.
 */
#ifndef KEXTLOG_CODEC_H
#define KEXTLOG_CODEC_H

#include "kextlog_port.h"
#include "kextlog_wire.h"

/* Checks the frame at data, of which available bytes are present.  On
 * KEXTLOG_WIRE_OK and KEXTLOG_WIRE_UNKNOWN sets *length to the frame's length
 * (for UNKNOWN possibly more than available: skip that many bytes).  A frame
 * is only OK when all of it is present and every field is in range. */
enum kextlog_wire_status kextlog_wire_check(const uint8_t *data, size_t available,
    uint32_t *length);

/* Each encoder zeroes the frame, fills it and returns its length. */
void kextlog_encode_header(struct kextlog_frame_header *header, uint16_t type, uint32_t length);

uint32_t kextlog_encode_hello(struct kextlog_hello_frame *frame,
    const uint8_t instance_id[KEXTLOG_ID_SIZE], const uint8_t boot_id[KEXTLOG_ID_SIZE],
    uint64_t oldest_seq, uint64_t next_seq, uint32_t ring_records, uint32_t ring_bytes,
    uint32_t producer_version, const char *name);

/* frame must have room for KEXTLOG_FRAME_ALIGNED(sizeof *frame + message_length)
 * bytes; message_length must not exceed KEXTLOG_MESSAGE_MAX. */
uint32_t kextlog_encode_log(struct kextlog_log_frame *frame, uint64_t seq, uint64_t time_ns,
    uint64_t mono_ns, uint32_t pid, uint64_t tid, const char *process, uint32_t level,
    uint16_t flags, const char *message, uint16_t message_length);

uint32_t kextlog_encode_loss(struct kextlog_loss_frame *frame, uint64_t first_seq,
    uint64_t last_seq, uint64_t first_time_ns, uint64_t last_time_ns, uint32_t reason);

uint32_t kextlog_encode_status(struct kextlog_status_frame *frame, uint64_t next_seq,
    uint64_t lost, uint64_t time_ns, uint32_t ring_records, uint32_t ring_capacity,
    uint32_t ring_bytes_used, uint32_t ring_bytes);

uint32_t kextlog_encode_ack(struct kextlog_ack_frame *frame, uint64_t seq);

uint32_t kextlog_encode_resume(struct kextlog_resume_frame *frame,
    const uint8_t instance_id[KEXTLOG_ID_SIZE], uint64_t seq);

/* The first and last seq a LOG or LOSS frame accounts for. */
uint64_t kextlog_frame_first_seq(const struct kextlog_frame_header *header);
uint64_t kextlog_frame_last_seq(const struct kextlog_frame_header *header);

#endif /* KEXTLOG_CODEC_H */
