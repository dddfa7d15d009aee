/*
 * kextlog_ring.c - the frame ring (see kextlog_ring.h).
 *
 * When a frame does not fit between the tail and the end of the buffer, the
 * rest of the buffer becomes padding: a header of type 0 when there is room
 * for one, otherwise (8 bytes) implied.  Readers skip both.
 */
#include "kextlog_ring.h"

#define PADDING_TYPE 0u

uint32_t kextlog_ring_bytes(uint32_t records)
{
	uint64_t bytes = (uint64_t)records * KEXTLOG_RING_RECORD_BYTES;

	if (bytes < 2u * KEXTLOG_FRAME_MAX)
		bytes = 2u * KEXTLOG_FRAME_MAX;
	if (bytes > UINT32_MAX - KEXTLOG_FRAME_ALIGN)
		bytes = UINT32_MAX - KEXTLOG_FRAME_ALIGN;
	return KEXTLOG_FRAME_ALIGNED((uint32_t)bytes);
}

void kextlog_ring_init(struct kextlog_ring *ring, uint8_t *buffer, uint32_t size,
    uint32_t max_records)
{
	memset(ring, 0, sizeof *ring);
	ring->buffer = buffer;
	ring->size = size;
	ring->max_records = max_records;
}

static uint32_t offset_of(const struct kextlog_ring *ring, uint64_t position)
{
	return (uint32_t)(position % ring->size);
}

bool kextlog_ring_push(struct kextlog_ring *ring, const void *frame, uint32_t length)
{
	uint32_t offset = offset_of(ring, ring->tail);
	uint32_t to_end = ring->size - offset;
	uint32_t padding = length > to_end ? to_end : 0;
	uint64_t used = ring->tail - ring->head;

	if (ring->records >= ring->max_records || used + padding + length > ring->size)
		return false;
	if (padding >= sizeof(struct kextlog_frame_header)) {
		struct kextlog_frame_header marker = { .type = PADDING_TYPE, .length = padding };

		memcpy(ring->buffer + offset, &marker, sizeof marker);
	}
	ring->tail += padding;
	memcpy(ring->buffer + offset_of(ring, ring->tail), frame, length);
	ring->tail += length;
	ring->records++;
	if (ring->records > ring->high_water)
		ring->high_water = ring->records;
	return true;
}

const struct kextlog_frame_header *kextlog_ring_frame(const struct kextlog_ring *ring,
    uint64_t *position)
{
	while (*position < ring->tail) {
		uint32_t offset = offset_of(ring, *position);
		uint32_t to_end = ring->size - offset;
		const struct kextlog_frame_header *header =
		    (const void *)(ring->buffer + offset);

		if (to_end < sizeof *header)
			*position += to_end;
		else if (header->type == PADDING_TYPE)
			*position += header->length;
		else
			return header;
	}
	return NULL;
}

void kextlog_ring_pop(struct kextlog_ring *ring)
{
	const struct kextlog_frame_header *oldest = kextlog_ring_frame(ring, &ring->head);

	if (oldest == NULL)
		return;
	ring->head += oldest->length;
	ring->records--;
}
