/*
 * test_ring.c - the frame ring: capacity by records and by bytes, FIFO order,
 * padding at the end of the buffer, and many wraps with every byte checked.
 */
#include <string.h>

#include "kextlog_codec.h"
#include "kextlog_ring.h"
#include "kextlog_test.h"

#define SMALL_RING (2 * KEXTLOG_FRAME_MAX)
#define STRESS_FRAMES 100000u
#define STRESS_RECORDS 32u

static _Alignas(8) uint8_t memory[256 * 1024];
static _Alignas(8) uint8_t scratch[KEXTLOG_FRAME_MAX];

/* Frame `index` of `length` bytes: a real header, then bytes that depend on
 * both, so a frame read back from the wrong place cannot pass. */
static const void *make_frame(uint64_t index, uint32_t length)
{
	kextlog_encode_header((struct kextlog_frame_header *)scratch, KEXTLOG_FRAME_LOG, length);
	for (uint32_t i = sizeof(struct kextlog_frame_header); i < length; i++)
		scratch[i] = (uint8_t)(index * 131 + i * 7 + (index >> 8));
	return scratch;
}

static bool same_frame(const struct kextlog_frame_header *header, uint64_t index,
    uint32_t length)
{
	return header->length == length && memcmp(header, make_frame(index, length), length) == 0;
}

static bool push(struct kextlog_ring *ring, uint64_t index, uint32_t length)
{
	return kextlog_ring_push(ring, make_frame(index, length), length);
}

static uint32_t offset_of(const struct kextlog_ring *ring, const struct kextlog_frame_header *header)
{
	return (uint32_t)((const uint8_t *)header - ring->buffer);
}

/* The oldest frame, checked to lie whole inside the buffer. */
static const struct kextlog_frame_header *oldest(const struct kextlog_ring *ring)
{
	uint64_t position = ring->head;
	const struct kextlog_frame_header *header = kextlog_ring_frame(ring, &position);

	REQUIRE(header != NULL);
	CHECK_EQ(position % ring->size, offset_of(ring, header));
	CHECK(offset_of(ring, header) + header->length <= ring->size);
	return header;
}

static void test_bytes(void)
{
	CHECK(kextlog_ring_bytes(1) >= 2 * KEXTLOG_FRAME_MAX);
	CHECK(kextlog_ring_bytes(4) >= 2 * KEXTLOG_FRAME_MAX);
	CHECK(kextlog_ring_bytes(1000) >= 1000 * KEXTLOG_RING_RECORD_BYTES);
	CHECK_EQ(kextlog_ring_bytes(1) % KEXTLOG_FRAME_ALIGN, 0);
	CHECK_EQ(kextlog_ring_bytes(1001) % KEXTLOG_FRAME_ALIGN, 0);
}

static void test_full_by_records(void)
{
	struct kextlog_ring ring;
	uint64_t tail;

	REQUIRE(kextlog_ring_bytes(4) <= sizeof memory);
	kextlog_ring_init(&ring, memory, kextlog_ring_bytes(4), 4);
	CHECK(kextlog_ring_empty(&ring));
	for (uint64_t i = 0; i < 4; i++)
		CHECK(push(&ring, i, 104));
	tail = ring.tail;
	CHECK(!push(&ring, 4, 104));
	CHECK_EQ(ring.records, 4);
	CHECK_EQ(ring.tail, tail);
	CHECK_EQ(ring.high_water, 4);

	CHECK(same_frame(oldest(&ring), 0, 104));
	kextlog_ring_pop(&ring);
	CHECK_EQ(ring.records, 3);
	CHECK(push(&ring, 4, 104));
	for (uint64_t i = 1; i <= 4; i++) {
		CHECK(same_frame(oldest(&ring), i, 104));
		kextlog_ring_pop(&ring);
	}
	CHECK(kextlog_ring_empty(&ring));
	CHECK_EQ(ring.head, ring.tail);
	CHECK_EQ(ring.high_water, 4);
}

static void test_full_by_bytes(void)
{
	struct kextlog_ring ring;

	kextlog_ring_init(&ring, memory, SMALL_RING, 100);
	CHECK(push(&ring, 0, KEXTLOG_FRAME_MAX));
	CHECK(push(&ring, 1, KEXTLOG_FRAME_MAX)); /* exactly full */
	CHECK(!push(&ring, 2, 16));
	CHECK_EQ(ring.records, 2);
	CHECK_EQ(ring.tail - ring.head, SMALL_RING);

	kextlog_ring_pop(&ring);
	CHECK(push(&ring, 2, 104));
	CHECK(same_frame(oldest(&ring), 1, KEXTLOG_FRAME_MAX));
	kextlog_ring_pop(&ring);
	CHECK(same_frame(oldest(&ring), 2, 104));
	CHECK_EQ(offset_of(&ring, oldest(&ring)), 0);
}

/* Walks head..tail: every frame in order, none straddling the end. */
static uint32_t check_held(const struct kextlog_ring *ring, uint64_t first_index,
    uint32_t (*length_of)(uint64_t))
{
	const struct kextlog_frame_header *header;
	uint64_t position = ring->head;
	uint32_t count = 0;

	while ((header = kextlog_ring_frame(ring, &position)) != NULL) {
		CHECK_EQ(position % ring->size, offset_of(ring, header));
		CHECK(offset_of(ring, header) + header->length <= ring->size);
		CHECK(same_frame(header, first_index + count, length_of(first_index + count)));
		REQUIRE(header->length >= sizeof *header && position < ring->tail);
		position += header->length;
		count++;
	}
	CHECK_EQ(position, ring->tail);
	CHECK_EQ(count, ring->records);
	return count;
}

static uint32_t padding_length(uint64_t index)
{
	static const uint32_t lengths[] = { 1000, 1000, 800, 1000, 1120, 1112, 104 };

	return lengths[index];
}

static void test_padding(void)
{
	struct kextlog_ring ring;

	kextlog_ring_init(&ring, memory, SMALL_RING, 100);
	CHECK(push(&ring, 0, 1000));
	CHECK(push(&ring, 1, 1000));
	kextlog_ring_pop(&ring);
	/* 240 bytes left at the end: frame 2 goes to the start after padding. */
	CHECK(push(&ring, 2, 800));
	CHECK_EQ(ring.tail, SMALL_RING + 800);
	CHECK_EQ(check_held(&ring, 1, padding_length), 2);
	CHECK(!push(&ring, 3, 1000)); /* 2040 bytes held, padding included */
	kextlog_ring_pop(&ring);
	CHECK(same_frame(oldest(&ring), 2, 800));
	CHECK_EQ(offset_of(&ring, oldest(&ring)), 0);
	kextlog_ring_pop(&ring);
	CHECK(kextlog_ring_empty(&ring));
	CHECK_EQ(ring.head, ring.tail);

	/* A gap smaller than a frame header. */
	kextlog_ring_init(&ring, memory, SMALL_RING, 100);
	CHECK(push(&ring, 4, 1120));
	CHECK(push(&ring, 5, 1112));
	kextlog_ring_pop(&ring);
	CHECK(push(&ring, 6, 104));
	CHECK_EQ(ring.tail, SMALL_RING + 104);
	CHECK_EQ(check_held(&ring, 5, padding_length), 2);
	kextlog_ring_pop(&ring);
	CHECK(same_frame(oldest(&ring), 6, 104));
	CHECK_EQ(offset_of(&ring, oldest(&ring)), 0);
}

/* xorshift64*, so the stress run is the same every time. */
static uint64_t random_state = 0x9e3779b97f4a7c15ull;

static uint64_t random_next(void)
{
	random_state ^= random_state >> 12;
	random_state ^= random_state << 25;
	random_state ^= random_state >> 27;
	return random_state * 0x2545f4914f6cdd1dull;
}

/* 104..1120 bytes in steps of 8, a pure function of the index. */
static uint32_t stress_length(uint64_t index)
{
	uint64_t mixed = (index + 1) * 0x9e3779b97f4a7c15ull;

	return 104 + 8 * (uint32_t)((mixed >> 40) % ((KEXTLOG_FRAME_MAX - 104) / 8 + 1));
}

/* Bytes a push of `length` needs at the tail, padding to the end included. */
static uint32_t needed(const struct kextlog_ring *ring, uint32_t length)
{
	uint32_t offset = (uint32_t)(ring->tail % ring->size);

	return ring->size - offset >= length ? length : ring->size - offset + length;
}

static void test_stress(void)
{
	struct kextlog_ring ring;
	uint64_t pushed = 0, popped = 0, last_head = 0, last_tail = 0;
	uint32_t most = 0;

	REQUIRE(kextlog_ring_bytes(STRESS_RECORDS) <= sizeof memory);
	kextlog_ring_init(&ring, memory, kextlog_ring_bytes(STRESS_RECORDS), STRESS_RECORDS);
	while (popped < STRESS_FRAMES) {
		while (pushed < STRESS_FRAMES && push(&ring, pushed, stress_length(pushed)))
			pushed++;
		if (pushed < STRESS_FRAMES) {
			/* Refused only when it really does not fit. */
			REQUIRE(!kextlog_ring_empty(&ring));
			CHECK(ring.records == STRESS_RECORDS ||
			    ring.tail - ring.head + needed(&ring, stress_length(pushed)) > ring.size);
		}
		CHECK(ring.tail - ring.head <= ring.size);
		CHECK_EQ(ring.records, pushed - popped);
		CHECK_EQ(check_held(&ring, popped, stress_length), pushed - popped);
		if (ring.records > most)
			most = ring.records;

		for (uint64_t n = 1 + random_next() % ring.records; n > 0; n--) {
			CHECK(same_frame(oldest(&ring), popped, stress_length(popped)));
			kextlog_ring_pop(&ring);
			popped++;
		}
		CHECK(ring.head >= last_head && ring.tail >= last_tail);
		last_head = ring.head;
		last_tail = ring.tail;
	}
	CHECK(kextlog_ring_empty(&ring));
	CHECK_EQ(ring.head, ring.tail);
	CHECK_EQ(ring.high_water, most);
	CHECK(ring.tail > 1000ull * ring.size); /* it wrapped many times */
}

int main(void)
{
	test_bytes();
	test_full_by_records();
	test_full_by_bytes();
	test_padding();
	test_stress();
	return kextlog_test_done("test_ring");
}
