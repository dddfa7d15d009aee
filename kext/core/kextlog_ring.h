/*
 * kextlog_ring.h - the ring where frames wait until they are acknowledged.
 *
 * A byte FIFO of whole frames over caller-supplied memory.  Positions only
 * grow (64 bits never wrap in practice); a frame never straddles the end of
 * the buffer: the tail is padded instead, so every frame can be handed to
 * the transport as one contiguous run.  Not locked: the core holds its lock.
 */
#ifndef KEXTLOG_RING_H
#define KEXTLOG_RING_H

#include "kextlog_port.h"
#include "kextlog_wire.h"

/* Bytes reserved per record of capacity: a LOG frame with up to 160 bytes of
 * message.  Longer messages take more room, so the ring may hold fewer. */
#define KEXTLOG_RING_RECORD_BYTES 256u

struct kextlog_ring {
	uint8_t  *buffer;
	uint32_t  size;        /* bytes, a multiple of KEXTLOG_FRAME_ALIGN */
	uint32_t  max_records;
	uint64_t  head;        /* position of the oldest frame (or of padding before it) */
	uint64_t  tail;        /* position after the newest frame */
	uint32_t  records;     /* frames held */
	uint32_t  high_water;  /* most frames held at once */
};

/* Memory a ring of `records` records needs (never less than two largest frames). */
uint32_t kextlog_ring_bytes(uint32_t records);

/* size must be a multiple of KEXTLOG_FRAME_ALIGN and at least KEXTLOG_FRAME_MAX. */
void kextlog_ring_init(struct kextlog_ring *ring, uint8_t *buffer, uint32_t size,
    uint32_t max_records);

/* Copies a frame (length a multiple of 8) to the tail; false if it does not fit. */
bool kextlog_ring_push(struct kextlog_ring *ring, const void *frame, uint32_t length);

/* The frame at position (a frame boundary between head and tail), after
 * moving *position past any padding; NULL when *position is the tail. */
const struct kextlog_frame_header *kextlog_ring_frame(const struct kextlog_ring *ring,
    uint64_t *position);

/* Drops the oldest frame. */
void kextlog_ring_pop(struct kextlog_ring *ring);

static inline bool kextlog_ring_empty(const struct kextlog_ring *ring)
{
	return ring->records == 0;
}

#endif /* KEXTLOG_RING_H */
