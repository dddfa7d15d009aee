/*
 * fuzz_core.c - the portable core driven by a script of events decoded from
 * the fuzz input, on a fake platform like the one of tests/test_core.c: log
 * calls of any level, format and length (stack and heap paths, allocations
 * that fail, arguments that change between the two passes, rate limits),
 * clients that connect over datagrams or a stream and write ACK, RESUME and
 * arbitrary bytes split anywhere, a client with no room or room for part of
 * a frame, disconnects, a small ring that fills, timer ticks.
 *
 * It checks invariants after every event, not only for crashes:
 * - every byte a client gets is a well-formed frame (kextlog_fuzz.h reads
 *   them, not kextlog_wire_check), each datagram whole frames; HELLO first
 *   and once per connection, with this instance's identity and the ring's size;
 * - the seqs of LOG and LOSS frames in a connection are dense and increasing
 *   from where RESUME (or the resume timeout) says they start, and a RELEASED
 *   LOSS comes only first;
 * - each LOG is byte for byte the frame the tap saw when its seq was given,
 *   and that frame says what was logged (text, level, task, clocks, flags);
 *   a RING_FULL LOSS holds only seqs the last-resort print got, a LOG none;
 * - nothing acknowledged is sent again: no LOG or RING_FULL LOSS at or below
 *   the core's acknowledged seq, which never passes what the client claimed
 *   (its ACKs, up to what it was sent, and its RESUMEs);
 * - the ring's accounting adds up: walked frame by frame it holds
 *   ring.records frames in tail - head bytes, in seq order, every seq below
 *   them claimed by the client, every seq after them a pending loss; the
 *   counters agree (logged, lost, next_seq, ring records and bytes);
 * - at the end either a well-behaved client resumes from 1 and acknowledges
 *   until the core is idle: every seq was received as a LOG or counted lost
 *   in a RING_FULL LOSS, never both, unless the client gave it up itself
 *   (RESUME past it); or the logger stops: every record kept and not
 *   acknowledged goes to the last-resort print, in seq order, after one
 *   summary, and the ring is empty; either way every lock was released and
 *   every allocation freed.
 */
#include "kextlog_codec.h"
#include "kextlog_core.h"
#include "kextlog_fuzz.h"

#define EVENTS_MAX    256u
#define SEQS_MAX      1024u   /* log calls past it are skipped */
#define RESUMES_MAX   64u
#define WINDOW        64u     /* client bytes kept to find the frames a write completes */
#define UNLIMITED     UINT32_MAX
#define TEXT_MAX      2100u   /* longer than KEXTLOG_MESSAGE_MAX */
#define WALL_START    1700000000000000000ull
#define DRAIN_ROUNDS  16u

/* What the next tap must see: the text the harness formatted itself, or
 * (rate-limit reports, arguments that change while formatted) any text. */
struct expectation {
	bool     any_text;
	uint32_t level;
	char     text[TEXT_MAX + 1];
	uint32_t length;          /* what vsnprintf says the whole text takes */
};

/* One connection, as the client sees it. */
struct client {
	bool     connected;
	bool     stream;
	uint8_t  partial[FUZZ_FRAME_MAX]; /* a stream's incomplete frame */
	uint32_t partial_length;
	bool     hello;
	uint64_t hello_oldest;
	uint64_t seqs_at_connect;
	bool     started;        /* a LOG or LOSS came */
	uint64_t next;           /* the seq the next LOG or LOSS must start at */
	uint64_t high;           /* last seq received whole, 0: none */
	uint64_t sent_bound;     /* most the core can count as sent: high, or a RESUME's seq - 1 */
	/* Where each RESUME written (right instance) asks to start, up to the
	 * next seq then: the start may be before it only by losses not yet in
	 * the ring, all at the end. */
	uint64_t resumes[RESUMES_MAX];
	uint32_t resume_count;
	bool     timed_out;      /* a tick came after the resume timeout */
	uint64_t connected_mono;
	uint8_t  window[WINDOW]; /* the last bytes written */
	uint32_t window_length;
};

struct harness {
	struct kextlog_core *core; /* its own allocation, so ASan sees a write past it */
	struct kextlog_config config;
	uint8_t  *ring;
	uint32_t  ring_bytes, ring_records;
	struct fuzz_input *input;

	uint64_t wall_ns, last_wall, mono_ns;
	struct kextlog_task task;
	bool     locked;
	uint32_t room;           /* what the client takes before it has no room */
	uint64_t received;       /* bytes clients took, in all */
	bool     alloc_fails;
	uint32_t allocations;
	char    *mutable_text;   /* an argument that another "thread" changes */
	uint32_t mutable_lengths[2];
	uint32_t mutations;

	struct client client;
	struct expectation expect;
	uint64_t seqs;           /* seqs given */
	uint8_t *taps[SEQS_MAX]; /* the frame of each seq, as the tap saw it */
	bool     lost[SEQS_MAX + 1];
	bool     got_log[SEQS_MAX + 1];
	bool     got_ring_full[SEQS_MAX + 1];
	uint64_t lost_count;
	bool     end_with_stop;  /* the input ends with kextlog_core_stop, not a drain */
	bool     stopping;
	bool     stop_summary;
	uint64_t stop_acked;     /* acknowledged when the stop began */
	uint64_t stop_next;      /* the seq to print next at stop, 0: none yet */
	uint64_t stop_printed;
	uint64_t claimed;        /* highest seq the client said it has */
	uint64_t resume_claimed; /* highest RESUME seq - 1 it wrote */
};

static void read_frames(struct harness *h, const uint8_t *data, uint32_t length, bool datagram);

/* FUZZ_TRACE=1 prints the script and what the client reads, to explain a finding. */
static bool tracing;

#define TRACE(...) do { if (tracing) fprintf(stderr, __VA_ARGS__); } while (0)

/* ---- the platform ---- */

static void fuzz_lock(void *context)
{
	struct harness *h = context;

	FUZZ_ASSERT(!h->locked, "the core took its lock twice");
	h->locked = true;
}

static void fuzz_unlock(void *context)
{
	struct harness *h = context;

	FUZZ_ASSERT(h->locked, "the core released a lock it did not hold");
	h->locked = false;
}

static uint64_t fuzz_wall_time(void *context)
{
	struct harness *h = context;

	h->wall_ns += 1000;
	h->last_wall = h->wall_ns;
	return h->wall_ns;
}

static uint64_t fuzz_mono_time(void *context)
{
	return ((struct harness *)context)->mono_ns;
}

static void fuzz_current_task(void *context, struct kextlog_task *task)
{
	struct harness *h = context;

	FUZZ_ASSERT(!h->locked, "current_task called under the lock");
	*task = h->task;
}

/* The client takes all of a send, none of it (no room), or on a stream a
 * prefix; what it takes it reads at once. */
static uint32_t fuzz_send(void *context, const uint8_t *data, uint32_t length)
{
	struct harness *h = context;
	uint32_t taken = length;

	FUZZ_ASSERT(h->locked, "send without the lock");
	FUZZ_ASSERT(h->client.connected, "send with no client connected");
	FUZZ_ASSERT(length > 0, "an empty send");
	if (h->room != UNLIMITED && h->room < length) {
		if (!h->client.stream || h->room == 0)
			return 0;
		taken = h->room;
	}
	if (h->room != UNLIMITED)
		h->room -= taken;
	h->received += taken;
	read_frames(h, data, taken, !h->client.stream);
	return taken;
}

static const char *const level_names[] = { "TRACE", "DEBUG", "INFO", "WARNING", "ERROR" };

/* The text of seq's frame, as the last resort prints it: up to a NUL. */
static void check_printed_text(struct harness *h, uint64_t seq, uint32_t level,
    const char *level_name, const char *message)
{
	const struct kextlog_log_frame *frame = (const void *)h->taps[seq - 1];
	size_t length = strlen(message);

	FUZZ_ASSERT(level == frame->level && strcmp(level_name, level_names[frame->level - 1]) == 0,
	    "seq %llu printed as %s (level %u)", (unsigned long long)seq, level_name, level);
	FUZZ_ASSERT(length <= frame->message_length && memcmp(message, frame->message, length) == 0 &&
	    (length == frame->message_length || frame->message[length] == '\0'),
	    "the last resort's text of seq %llu is not its frame's", (unsigned long long)seq);
}

/* A message the ring could not keep ("lost seq N LEVEL"), or at stop the
 * summary ("stop") and each record not acknowledged ("unacknowledged seq N
 * LEVEL"), in seq order. */
static void fuzz_last_resort(void *context, uint32_t level, const char *what,
    const char *message)
{
	struct harness *h = context;
	unsigned long long seq;
	char level_name[16];

	FUZZ_ASSERT(!h->locked, "last resort under the lock");
	if (sscanf(what, "lost seq %llu %15s", &seq, level_name) == 2) {
		FUZZ_ASSERT(!h->stopping && seq == h->seqs && seq >= 1 && !h->lost[seq],
		    "last resort for seq %llu, the newest is %llu", seq, (unsigned long long)h->seqs);
		check_printed_text(h, seq, level, level_name, message);
		TRACE("  seq %llu to the last resort\n", seq);
		h->lost[seq] = true;
		h->lost_count++;
	} else if (strcmp(what, "stop") == 0) {
		FUZZ_ASSERT(h->stopping && !h->stop_summary && h->stop_next == 0 &&
		    level == KEXTLOG_LEVEL_WARNING, "a stop summary outside stop, twice, late or not a warning");
		h->stop_summary = true;
	} else {
		FUZZ_ASSERT(sscanf(what, "unacknowledged seq %llu %15s", &seq, level_name) == 2,
		    "last resort for \"%s\"", what);
		FUZZ_ASSERT(h->stopping && h->stop_summary, "seq %llu printed outside stop", seq);
		/* The next seq kept and not acknowledged. */
		while (h->stop_next <= h->seqs && (h->stop_next <= h->stop_acked || h->lost[h->stop_next]))
			h->stop_next++;
		FUZZ_ASSERT(seq == h->stop_next, "seq %llu printed at stop, expected %llu", seq,
		    (unsigned long long)h->stop_next);
		check_printed_text(h, seq, level, level_name, message);
		h->stop_next++;
		h->stop_printed++;
	}
}

static void check_tap(struct harness *h, const struct kextlog_log_frame *frame)
{
	const struct expectation *e = &h->expect;
	uint32_t kept = e->length, flags = 0;
	char process[KEXTLOG_PROCESS_NAME_MAX] = { 0 };

	FUZZ_ASSERT(frame->time_ns == h->last_wall && frame->mono_ns == h->mono_ns,
	    "LOG clocks are not the platform's");
	FUZZ_ASSERT(frame->pid == h->task.pid && frame->tid == h->task.tid, "LOG task");
	strncpy(process, h->task.name, sizeof process);
	FUZZ_ASSERT(memcmp(frame->process, process, sizeof process) == 0, "LOG process name");
	FUZZ_ASSERT(frame->level == e->level, "LOG level %u, logged at %u", frame->level, e->level);
	if (e->any_text) {
		FUZZ_ASSERT(frame->message_length <= KEXTLOG_MESSAGE_MAX, "LOG message too long");
		return;
	}
	if (kept > KEXTLOG_STACK_MESSAGE && (h->core->ops->alloc == NULL || h->alloc_fails)) {
		kept = KEXTLOG_STACK_MESSAGE;
		flags = KEXTLOG_LOG_TRUNCATED | (h->core->ops->alloc != NULL ? KEXTLOG_LOG_NOMEM : 0);
	} else if (kept > KEXTLOG_MESSAGE_MAX) {
		kept = KEXTLOG_MESSAGE_MAX;
		flags = KEXTLOG_LOG_TRUNCATED;
	}
	FUZZ_ASSERT(frame->message_length == kept && frame->flags == flags &&
	    memcmp(frame->message, e->text, kept) == 0,
	    "LOG message of %u bytes, flags %#x; logged %u bytes, expected %u and %#x",
	    frame->message_length, frame->flags, e->length, kept, flags);
}

static void fuzz_tap(void *context, const struct kextlog_log_frame *frame)
{
	struct harness *h = context;
	struct fuzz_frame read;
	const char *why;

	FUZZ_ASSERT(h->locked, "tap without the lock");
	FUZZ_ASSERT(h->seqs < SEQS_MAX, "more seqs than log calls");
	FUZZ_ASSERT(fuzz_read_frame((const uint8_t *)frame, frame->header.length, &read, &why) ==
	    FUZZ_READ_FRAME && read.type == FUZZ_LOG, "the tap's frame: %s", why);
	FUZZ_ASSERT(read.first_seq == h->seqs + 1, "seq %llu given after %llu",
	    (unsigned long long)read.first_seq, (unsigned long long)h->seqs);
	check_tap(h, frame);
	TRACE("  seq %llu given, %u bytes of text\n", (unsigned long long)read.first_seq,
	    read.message_length);
	h->taps[h->seqs] = malloc(read.length);
	FUZZ_ASSERT(h->taps[h->seqs] != NULL, "out of memory");
	memcpy(h->taps[h->seqs], frame, read.length);
	h->seqs++;
}

static void *fuzz_alloc(void *context, size_t size)
{
	struct harness *h = context;
	void *memory;

	FUZZ_ASSERT(!h->locked, "alloc under the lock");
	if (h->mutable_text != NULL && h->mutations < 2) {
		/* Another thread changes the argument between the passes. */
		uint32_t length = h->mutable_lengths[h->mutations++];

		memset(h->mutable_text, 'm', length);
		h->mutable_text[length] = '\0';
	}
	if (h->alloc_fails)
		return NULL;
	memory = malloc(size);
	FUZZ_ASSERT(memory != NULL, "out of memory");
	memset(memory, 0xa5, size); /* the core must clear what it sends */
	h->allocations++;
	return memory;
}

static void fuzz_free(void *context, void *memory, size_t size)
{
	struct harness *h = context;

	(void)size;
	FUZZ_ASSERT(!h->locked, "free under the lock");
	FUZZ_ASSERT(h->allocations > 0, "free of memory the platform never gave");
	h->allocations--;
	free(memory);
}

static const struct kextlog_ops heap_ops = {
	.lock = fuzz_lock, .unlock = fuzz_unlock,
	.wall_time_ns = fuzz_wall_time, .mono_time_ns = fuzz_mono_time,
	.current_task = fuzz_current_task, .send = fuzz_send,
	.last_resort = fuzz_last_resort, .tap = fuzz_tap,
	.alloc = fuzz_alloc, .free = fuzz_free,
};

static const struct kextlog_ops stack_ops = {
	.lock = fuzz_lock, .unlock = fuzz_unlock,
	.wall_time_ns = fuzz_wall_time, .mono_time_ns = fuzz_mono_time,
	.current_task = fuzz_current_task, .send = fuzz_send,
	.last_resort = fuzz_last_resort, .tap = fuzz_tap,
};

/* ---- the client reads ---- */

static uint64_t acked_now(struct harness *h)
{
	return h->core->acked_seq;
}

/* The first LOG or LOSS of a connection starts where it was asked to:
 * at HELLO's oldest seq after the resume timeout, or at a RESUME's seq, or
 * before it when the seqs in between are losses not yet in the ring. */
static bool justified_start(struct harness *h, uint64_t first)
{
	struct client *c = &h->client;

	if (c->timed_out && first == c->hello_oldest)
		return true;
	for (uint32_t i = 0; i < c->resume_count; i++) {
		bool pending = first <= c->resumes[i];

		for (uint64_t seq = first; pending && seq < c->resumes[i]; seq++)
			pending = h->lost[seq];
		if (pending)
			return true;
	}
	return false;
}

static void read_seqs(struct harness *h, const struct fuzz_frame *f)
{
	struct client *c = &h->client;

	FUZZ_ASSERT(c->hello, "a LOG or LOSS before HELLO");
	FUZZ_ASSERT(f->last_seq <= h->seqs, "seqs up to %llu sent, %llu given",
	    (unsigned long long)f->last_seq, (unsigned long long)h->seqs);
	if (!c->started) {
		FUZZ_ASSERT(justified_start(h, f->first_seq),
		    "the connection starts at seq %llu: no RESUME or timeout asked for it",
		    (unsigned long long)f->first_seq);
		if (f->type == FUZZ_LOSS && f->reason == FUZZ_RELEASED)
			FUZZ_ASSERT(f->last_seq + 1 == c->hello_oldest,
			    "RELEASED up to %llu, HELLO said the oldest held is %llu",
			    (unsigned long long)f->last_seq, (unsigned long long)c->hello_oldest);
		c->started = true;
	} else {
		FUZZ_ASSERT(f->first_seq == c->next, "seq %llu follows %llu in one connection",
		    (unsigned long long)f->first_seq, (unsigned long long)c->next - 1);
		FUZZ_ASSERT(f->type == FUZZ_LOG || f->reason == FUZZ_RING_FULL,
		    "a RELEASED LOSS after the start of the stream");
	}
	c->next = f->last_seq + 1;
	c->high = f->last_seq;
	if (c->high > c->sent_bound)
		c->sent_bound = c->high;

	if (f->type == FUZZ_LOG) {
		uint64_t seq = f->first_seq;

		FUZZ_ASSERT(!h->lost[seq], "LOG %llu went to the last resort", (unsigned long long)seq);
		FUZZ_ASSERT(seq > acked_now(h), "LOG %llu sent again after ACK %llu",
		    (unsigned long long)seq, (unsigned long long)acked_now(h));
		FUZZ_ASSERT(memcmp(f->bytes, h->taps[seq - 1], f->length) == 0,
		    "LOG %llu is not the frame its seq was given to", (unsigned long long)seq);
		h->got_log[seq] = true;
	} else if (f->reason == FUZZ_RING_FULL) {
		FUZZ_ASSERT(f->first_seq > acked_now(h), "RING_FULL LOSS from %llu sent again after ACK %llu",
		    (unsigned long long)f->first_seq, (unsigned long long)acked_now(h));
		for (uint64_t seq = f->first_seq; seq <= f->last_seq; seq++) {
			FUZZ_ASSERT(h->lost[seq], "RING_FULL LOSS holds %llu, which was kept",
			    (unsigned long long)seq);
			h->got_ring_full[seq] = true;
		}
	} else {
		FUZZ_ASSERT(f->last_seq <= h->claimed, "RELEASED up to %llu, the client claimed %llu",
		    (unsigned long long)f->last_seq, (unsigned long long)h->claimed);
	}
}

static void read_frame(struct harness *h, const struct fuzz_frame *f)
{
	struct client *c = &h->client;

	TRACE("    client reads type %u seqs %llu..%llu reason %u\n", f->type,
	    (unsigned long long)f->first_seq, (unsigned long long)f->last_seq, f->reason);

	if (f->type == FUZZ_HELLO) {
		FUZZ_ASSERT(!c->hello, "a second HELLO in one connection");
		FUZZ_ASSERT(memcmp(f->bytes + 16, h->config.instance_id, KEXTLOG_ID_SIZE) == 0 &&
		    memcmp(f->bytes + 32, h->config.boot_id, KEXTLOG_ID_SIZE) == 0, "HELLO identity");
		FUZZ_ASSERT(f->next_seq == c->seqs_at_connect + 1, "HELLO next_seq %llu, %llu given",
		    (unsigned long long)f->next_seq, (unsigned long long)c->seqs_at_connect);
		FUZZ_ASSERT(f->ring_records == h->ring_records && f->ring_bytes == h->ring_bytes,
		    "HELLO ring size");
		c->hello = true;
		c->hello_oldest = f->oldest_seq;
		return;
	}
	FUZZ_ASSERT(c->hello, "type %u before HELLO", f->type);
	if (f->type == FUZZ_STATUS) {
		FUZZ_ASSERT(f->next_seq <= h->seqs + 1 && f->lost <= h->lost_count &&
		    f->ring_records == h->ring_records && f->ring_bytes == h->ring_bytes &&
		    f->held_records <= f->ring_records && f->held_bytes <= f->ring_bytes, "STATUS fields");
		return;
	}
	read_seqs(h, f);
}

/* Datagram: whole frames only.  Stream: frames may be cut anywhere. */
static void read_frames(struct harness *h, const uint8_t *data, uint32_t length, bool datagram)
{
	struct client *c = &h->client;
	struct fuzz_frame frame;
	const char *why;
	uint32_t at = 0;

	while (at < length) {
		uint32_t take;

		if (!datagram && c->partial_length > 0) {
			take = length - at < FUZZ_FRAME_MAX - c->partial_length ?
			    length - at : FUZZ_FRAME_MAX - c->partial_length;
			memcpy(c->partial + c->partial_length, data + at, take);
			switch (fuzz_read_frame(c->partial, c->partial_length + take, &frame, &why)) {
			case FUZZ_READ_BAD:
				FUZZ_ASSERT(false, "the client got a malformed frame: %s", why);
				break;
			case FUZZ_READ_SHORT:
				c->partial_length += take;
				return;
			case FUZZ_READ_FRAME:
				at += frame.length - c->partial_length;
				c->partial_length = 0;
				read_frame(h, &frame);
			}
			continue;
		}
		switch (fuzz_read_frame(data + at, length - at, &frame, &why)) {
		case FUZZ_READ_BAD:
			FUZZ_ASSERT(false, "the client got a malformed frame: %s", why);
			break;
		case FUZZ_READ_SHORT:
			FUZZ_ASSERT(!datagram, "a datagram ends inside a frame");
			memcpy(c->partial, data + at, length - at);
			c->partial_length = length - at;
			return;
		case FUZZ_READ_FRAME:
			read_frame(h, &frame);
			at += frame.length;
		}
	}
}

/* ---- the client writes ---- */

/* What a write may make the core do: the client's claims and RESUMEs are
 * taken from every ACK or RESUME that ends in it, wherever it starts (the
 * core may read it or not: claims are upper bounds). */
static void note_written(struct harness *h, const uint8_t *data, size_t length)
{
	struct client *c = &h->client;

	for (size_t i = 0; i < length; i++) {
		if (c->window_length == WINDOW) {
			memmove(c->window, c->window + 1, WINDOW - 1);
			c->window_length--;
		}
		c->window[c->window_length++] = data[i];
		for (uint32_t size = FUZZ_ACK_SIZE; size <= FUZZ_RESUME_SIZE; size += 16) {
			const uint8_t *f = c->window + c->window_length - size;
			uint64_t seq, bound;

			if (c->window_length < size || memcmp(f, "KXLG\1\0", 6) != 0 ||
			    fuzz_le(f, 8, 4) != size)
				continue;
			if (size == FUZZ_ACK_SIZE && fuzz_le(f, 6, 2) == FUZZ_ACK) {
				seq = fuzz_le(f, 16, 8);
				TRACE("  client writes ACK %llu\n", (unsigned long long)seq);
				bound = seq < c->sent_bound ? seq : c->sent_bound;
				if (bound > h->claimed)
					h->claimed = bound;
			} else if (size == FUZZ_RESUME_SIZE && fuzz_le(f, 6, 2) == FUZZ_RESUME &&
			    memcmp(f + 16, h->config.instance_id, KEXTLOG_ID_SIZE) == 0) {
				seq = fuzz_le(f, 32, 8);
				TRACE("  client writes RESUME %llu\n", (unsigned long long)seq);
				bound = (seq < h->seqs + 1 ? seq : h->seqs + 1);
				bound = bound == 0 ? 0 : bound - 1;
				if (bound > h->claimed)
					h->claimed = bound;
				if (bound > c->sent_bound)
					c->sent_bound = bound;
				if (seq > 0 && seq - 1 > h->resume_claimed)
					h->resume_claimed = seq - 1;
				if (c->resume_count < RESUMES_MAX)
					c->resumes[c->resume_count++] = seq == 0 ? 1 :
					    seq < h->seqs + 1 ? seq : h->seqs + 1;
			}
		}
	}
}

/* Writes bytes as the client, cut into pieces as the input says. */
static void client_write(struct harness *h, const uint8_t *data, size_t length)
{
	size_t at = 0;
	bool whole = fuzz_u8(h->input) & 1;

	while (at < length) {
		size_t piece = whole ? length - at : 1 + fuzz_below(h->input, 64);

		if (piece > length - at)
			piece = length - at;
		/* Input with no client (a platform that hands it over late) is refused. */
		if (!h->client.connected) {
			FUZZ_ASSERT(kextlog_core_receive(h->core, data + at, piece) != KEXTLOG_WIRE_OK,
			    "input with no client accepted");
			return;
		}
		/* Before the core reads it: claims depend on what was sent so far. */
		note_written(h, data + at, piece);
		kextlog_core_receive(h->core, data + at, piece);
		at += piece;
	}
}

static uint64_t choose_ack(struct harness *h)
{
	switch (fuzz_below(h->input, 4)) {
	case 0:  return h->client.high;
	case 1:  return h->client.high - (h->client.high < 8 ? h->client.high : fuzz_below(h->input, 8));
	case 2:  return fuzz_u64(h->input);
	default: return h->seqs + fuzz_below(h->input, 4);
	}
}

static uint64_t choose_resume(struct harness *h)
{
	switch (fuzz_below(h->input, 4)) {
	case 0:  return h->client.high + 1;
	case 1:  return fuzz_below(h->input, (uint32_t)h->seqs + 3);
	case 2:  return fuzz_u64(h->input);
	default: return 0;
	}
}

/* One ACK or RESUME into frame, or now and then a well-formed frame of
 * another type (a newer client's, or one of the producer's); returns its
 * length (at most KEXTLOG_FRAME_MAX). */
static uint32_t encode_client_frame(struct harness *h, uint8_t *frame)
{
	uint8_t kind = fuzz_u8(h->input);

	if (kind % 16 == 15) {
		static const uint16_t types[] = { 1, 2, 3, 4, 66, 100, 127, 128, 200 };
		uint32_t length = 16 + 8 * fuzz_below(h->input, (KEXTLOG_FRAME_MAX - 16) / 8 + 1);

		memset(frame, 0, length);
		kextlog_encode_header((void *)frame,
		    types[fuzz_below(h->input, sizeof types / sizeof types[0])], length);
		return length;
	}
	if (kind & 1)
		return kextlog_encode_ack((void *)frame, choose_ack(h));
	if (fuzz_u8(h->input) % 8 == 0) {
		uint8_t other[KEXTLOG_ID_SIZE] = { 0x99 };

		return kextlog_encode_resume((void *)frame, other, choose_resume(h));
	}
	return kextlog_encode_resume((void *)frame, h->config.instance_id, choose_resume(h));
}

/* ---- log calls ---- */

static void begin_expectation(struct harness *h, uint32_t level)
{
	h->expect.any_text = false;
	h->expect.level = level < KEXTLOG_LEVEL_TRACE ? KEXTLOG_LEVEL_TRACE :
	    level > KEXTLOG_LEVEL_ERROR ? KEXTLOG_LEVEL_ERROR : level;
}

static bool can_log(struct harness *h)
{
	return h->seqs + 1 < SEQS_MAX; /* room for a rate-limit report too */
}

/* A text of length bytes from the input (no NUL: it is a %s argument). */
static void fill_text(struct harness *h, char *text, uint32_t length)
{
	const uint8_t *bytes;
	size_t got = fuzz_take(h->input, length < 16 ? length : 16, &bytes);

	for (uint32_t i = 0; i < length; i++) {
		uint8_t byte = got > 0 ? bytes[i % got] : (uint8_t)('a' + i % 26);

		text[i] = (char)(byte == 0 ? '0' : byte);
	}
	text[length] = '\0';
}

static void log_one(struct harness *h)
{
	static char argument[TEXT_MAX + 1];
	uint32_t level = fuzz_below(h->input, 8);
	uint32_t length = fuzz_below(h->input, TEXT_MAX);
	uint32_t number = fuzz_u32(h->input);
	int width = (int)fuzz_below(h->input, TEXT_MAX);
	char c = (char)fuzz_u8(h->input);

	if (!can_log(h))
		return;
	fill_text(h, argument, length);
	begin_expectation(h, level);
	/* Each format twice: the harness's own snprintf says what it makes. */
#define LOG_AND_EXPECT(...) do { \
		h->expect.length = (uint32_t)snprintf(h->expect.text, sizeof h->expect.text, \
		    __VA_ARGS__); \
		kextlog_core_log(h->core, level, __VA_ARGS__); \
	} while (0)
	switch (fuzz_below(h->input, 5)) {
	case 0: LOG_AND_EXPECT("%s", argument); break;
	case 1: LOG_AND_EXPECT("%.*s|%u", width, argument, number); break;
	case 2: LOG_AND_EXPECT("%c%s%c", c, argument, c); break;   /* NUL bytes in a message */
	case 3: LOG_AND_EXPECT("%*u:%s", width, number, argument); break;
	default: LOG_AND_EXPECT("vnode %s opened by %d (%x)", argument, (int)number, number); break;
	}
#undef LOG_AND_EXPECT
}

/* Short messages, many: the ring fills. */
static void log_burst(struct harness *h)
{
	uint32_t count = 1 + fuzz_below(h->input, 96);
	uint32_t length = fuzz_below(h->input, 200);
	uint32_t level = 1 + fuzz_below(h->input, 5);

	for (uint32_t i = 0; i < count && can_log(h); i++) {
		begin_expectation(h, level);
		h->expect.length = (uint32_t)snprintf(h->expect.text, sizeof h->expect.text,
		    "burst %u %.*s", i, (int)length, "0123456789abcdefghijklmnopqrstuvwxyz"
		    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
		    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
		    "0123456789abcdefghijklmnopqrstuvwxyz");
		kextlog_core_log(h->core, level, "%s", h->expect.text);
	}
}

/* A long argument that changes length between the core's passes. */
static void log_changing(struct harness *h)
{
	uint32_t length = KEXTLOG_STACK_MESSAGE + 1 + fuzz_below(h->input, TEXT_MAX - 300);
	char *text = malloc(TEXT_MAX + 1);

	FUZZ_ASSERT(text != NULL, "out of memory");
	if (!can_log(h)) {
		free(text);
		return;
	}
	memset(text, 'x', length);
	text[length] = '\0';
	h->mutable_text = text;
	h->mutable_lengths[0] = fuzz_below(h->input, TEXT_MAX);
	h->mutable_lengths[1] = fuzz_below(h->input, TEXT_MAX);
	h->mutations = 0;
	begin_expectation(h, KEXTLOG_LEVEL_INFO);
	h->expect.any_text = true;
	kextlog_core_log(h->core, KEXTLOG_LEVEL_INFO, "%s", text);
	h->mutable_text = NULL;
	free(text);
}

static void log_ratelimited(struct harness *h, struct kextlog_ratelimit *site)
{
	bool pass;

	if (!can_log(h))
		return;
	begin_expectation(h, KEXTLOG_LEVEL_WARNING);
	h->expect.any_text = true; /* a report of what was held back, perhaps */
	pass = kextlog_core_ratelimit(h->core, site, "fuzz_core.c");
	if (pass && can_log(h)) {
		begin_expectation(h, KEXTLOG_LEVEL_ERROR);
		h->expect.length = (uint32_t)snprintf(h->expect.text, sizeof h->expect.text,
		    "limited %llu", (unsigned long long)h->seqs);
		kextlog_core_log(h->core, KEXTLOG_LEVEL_ERROR, "%s", h->expect.text);
	}
}

/* ---- connections ---- */

static void connect_client(struct harness *h, bool stream)
{
	struct client *c = &h->client;

	memset(c, 0, sizeof *c);
	c->connected = true;
	c->stream = stream;
	c->seqs_at_connect = h->seqs;
	c->connected_mono = h->mono_ns;
	TRACE("  %s client, %llu seqs given\n", stream ? "stream" : "datagram",
	    (unsigned long long)h->seqs);
	kextlog_core_connect(h->core);
}

static void disconnect_client(struct harness *h)
{
	kextlog_core_disconnect(h->core);
	h->client.connected = false;
}

static void tick(struct harness *h)
{
	struct client *c = &h->client;

	/* The core reads the same clock under its lock, and may start at once. */
	if (c->connected && h->mono_ns - c->connected_mono >= h->config.resume_timeout_ns)
		c->timed_out = true;
	kextlog_core_tick(h->core);
}

/* ---- the invariants of the ring and the counters ---- */

static void check_accounting(struct harness *h)
{
	const struct kextlog_ring *ring = &h->core->ring;
	struct kextlog_counters counters;
	struct fuzz_frame frame;
	const char *why;
	uint64_t position = ring->head, first = 0, next = 0, unheld;
	uint32_t records = 0;

	FUZZ_ASSERT(!h->locked, "the core kept its lock");
	FUZZ_ASSERT(ring->tail >= ring->head && ring->tail - ring->head <= ring->size,
	    "ring holds %llu bytes of %u", (unsigned long long)(ring->tail - ring->head), ring->size);
	/* The ring's layout (kextlog_ring.h): whole frames, padding to the end
	 * of the buffer when one does not fit there. */
	while (position < ring->tail) {
		uint32_t offset = (uint32_t)(position % ring->size), to_end = ring->size - offset;

		if (to_end < FUZZ_HEADER || fuzz_le(ring->buffer + offset, 6, 2) == 0) {
			FUZZ_ASSERT(to_end < FUZZ_HEADER || fuzz_le(ring->buffer + offset, 8, 4) == to_end,
			    "ring padding that does not run to the end");
			position += to_end;
			continue;
		}
		FUZZ_ASSERT(fuzz_read_frame(ring->buffer + offset, to_end, &frame, &why) ==
		    FUZZ_READ_FRAME, "ring frame at %llu: %s", (unsigned long long)position, why);
		FUZZ_ASSERT(frame.type == FUZZ_LOG ||
		    (frame.type == FUZZ_LOSS && frame.reason == FUZZ_RING_FULL),
		    "ring holds a frame of type %u", frame.type);
		FUZZ_ASSERT(records == 0 || frame.first_seq == next, "ring seqs %llu then %llu",
		    (unsigned long long)next - 1, (unsigned long long)frame.first_seq);
		for (uint64_t seq = frame.first_seq; seq <= frame.last_seq; seq++)
			FUZZ_ASSERT(h->lost[seq] == (frame.type == FUZZ_LOSS),
			    "ring seq %llu in the wrong kind of frame", (unsigned long long)seq);
		if (records++ == 0)
			first = frame.first_seq;
		next = frame.last_seq + 1;
		position += frame.length;
	}
	FUZZ_ASSERT(position == ring->tail, "ring frames end past the tail");
	FUZZ_ASSERT(records == ring->records && records <= ring->max_records &&
	    ring->high_water >= records, "ring holds %u frames, says %u (of %u)", records,
	    ring->records, ring->max_records);
	/* After the ring: losses on their way in (kextlog_core.h), all lost.
	 * Below it: released, which only the client's claims may do. */
	unheld = h->core->loss_pending ? h->core->pending.first_seq : h->seqs + 1;
	FUZZ_ASSERT(!h->core->loss_pending || h->core->pending.last_seq == h->seqs,
	    "the pending loss is not the newest seqs");
	FUZZ_ASSERT(records == 0 || next == unheld, "the ring ends at %llu, then %llu",
	    (unsigned long long)next - 1, (unsigned long long)unheld);
	for (uint64_t seq = unheld; seq <= h->seqs; seq++)
		FUZZ_ASSERT(h->lost[seq], "seq %llu is neither in the ring nor lost",
		    (unsigned long long)seq);
	if (records == 0)
		first = unheld;
	FUZZ_ASSERT(first - 1 <= h->claimed, "seqs up to %llu left the ring, the client claimed %llu",
	    (unsigned long long)first - 1, (unsigned long long)h->claimed);

	kextlog_core_counters(h->core, &counters);
	FUZZ_ASSERT(counters.logged == h->seqs && counters.next_seq == h->seqs + 1 &&
	    counters.lost == h->lost_count, "counters: logged %llu lost %llu next %llu",
	    (unsigned long long)counters.logged, (unsigned long long)counters.lost,
	    (unsigned long long)counters.next_seq);
	FUZZ_ASSERT(counters.ring_records == ring->records &&
	    counters.ring_bytes_used == ring->tail - ring->head, "ring counters");
	FUZZ_ASSERT(counters.acked_seq <= h->claimed, "acknowledged %llu, the client claimed %llu",
	    (unsigned long long)counters.acked_seq, (unsigned long long)h->claimed);
}

/* ---- the end: a well-behaved client takes everything ---- */

static void drain(struct harness *h)
{
	uint8_t frame[FUZZ_RESUME_SIZE];
	struct kextlog_counters counters;
	uint32_t round;

	h->room = UNLIMITED;
	h->alloc_fails = false;
	if (h->client.connected)
		disconnect_client(h);
	connect_client(h, false);
	note_written(h, frame, kextlog_encode_resume((void *)frame, h->config.instance_id, 1));
	kextlog_core_receive(h->core, frame, FUZZ_RESUME_SIZE);
	for (round = 0; round < DRAIN_ROUNDS && !kextlog_core_idle(h->core); round++) {
		kextlog_core_pump(h->core);
		note_written(h, frame, kextlog_encode_ack((void *)frame, h->client.high));
		kextlog_core_receive(h->core, frame, FUZZ_ACK_SIZE);
		tick(h);
		check_accounting(h);
	}
	FUZZ_ASSERT(kextlog_core_idle(h->core), "not idle after %u rounds of ACKs", round);
	FUZZ_ASSERT(h->seqs == 0 || h->client.next == h->seqs + 1,
	    "the last connection got seqs up to %llu of %llu",
	    (unsigned long long)h->client.next - 1, (unsigned long long)h->seqs);
	for (uint64_t seq = 1; seq <= h->seqs; seq++) {
		FUZZ_ASSERT(!(h->got_log[seq] && h->got_ring_full[seq]),
		    "seq %llu both received and lost", (unsigned long long)seq);
		FUZZ_ASSERT(h->got_log[seq] || h->got_ring_full[seq] || seq <= h->resume_claimed,
		    "seq %llu neither received nor counted lost", (unsigned long long)seq);
	}
	kextlog_core_counters(h->core, &counters);
	FUZZ_ASSERT(counters.acked_seq == h->seqs && counters.ring_records == 0,
	    "after the drain: acknowledged %llu of %llu, %llu frames held",
	    (unsigned long long)counters.acked_seq, (unsigned long long)h->seqs,
	    (unsigned long long)counters.ring_records);
	disconnect_client(h);
}

/* ---- or the end: the logger stops, the client gone ---- */

/* Every record kept and not acknowledged is printed, in seq order, after one
 * summary; the ring is empty afterwards. */
static void stop_logger(struct harness *h)
{
	struct kextlog_counters counters;
	uint64_t unacknowledged = 0;

	if (h->client.connected)
		disconnect_client(h);
	h->stopping = true;
	h->stop_acked = h->core->acked_seq;
	for (uint64_t seq = h->stop_acked + 1; seq <= h->seqs; seq++)
		unacknowledged += !h->lost[seq];
	kextlog_core_stop(h->core);
	kextlog_core_counters(h->core, &counters);
	FUZZ_ASSERT(h->stop_printed == unacknowledged && h->stop_summary == (unacknowledged > 0),
	    "%llu of %llu unacknowledged records printed at stop, summary %d",
	    (unsigned long long)h->stop_printed, (unsigned long long)unacknowledged, h->stop_summary);
	FUZZ_ASSERT(counters.printed_at_stop == unacknowledged && counters.ring_records == 0,
	    "after stop: %llu counted printed, %llu frames held",
	    (unsigned long long)counters.printed_at_stop, (unsigned long long)counters.ring_records);
}

/* ---- the script ---- */

static void setup(struct harness *h, struct fuzz_input *input)
{
	uint8_t settings = fuzz_u8(input);

	memset(h, 0, sizeof *h);
	h->input = input;
	for (uint32_t i = 0; i < KEXTLOG_ID_SIZE; i++) {
		h->config.instance_id[i] = (uint8_t)(0x10 + i);
		h->config.boot_id[i] = (uint8_t)(0xb0 + i);
	}
	strcpy(h->config.name, "com.example.kextlog.fuzz");
	h->config.producer_version = 0x010203;
	h->config.min_level = KEXTLOG_LEVEL_TRACE;
	h->config.send_batch_bytes = settings & 1 ? 65536u : 1 + fuzz_below(input, 4096);
	h->end_with_stop = settings & 8;
	h->config.resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS;
	h->config.status_interval_ns = settings & 2 ? UINT64_MAX : 1 + fuzz_below(input, 2000) * 1000000ull;
	h->ring_records = 2 + fuzz_below(input, 31);
	h->ring_bytes = kextlog_ring_bytes(h->ring_records);
	h->ring = malloc(h->ring_bytes);
	h->core = malloc(sizeof *h->core);
	FUZZ_ASSERT(h->ring != NULL && h->core != NULL, "out of memory");
	h->wall_ns = WALL_START;
	h->mono_ns = 5000000000ull;
	h->task.pid = 4242;
	h->task.tid = 0x1a2b3c4d5eull;
	strcpy(h->task.name, "mds_stores");
	h->room = UNLIMITED;
	kextlog_core_init(h->core, settings & 4 ? &stack_ops : &heap_ops, h, &h->config, h->ring,
	    h->ring_bytes, h->ring_records);
}

static void teardown(struct harness *h)
{
	FUZZ_ASSERT(!h->locked && h->allocations == 0, "a lock held or %u allocations left",
	    h->allocations);
	for (uint64_t seq = 0; seq < h->seqs; seq++)
		free(h->taps[seq]);
	free(h->core);
	free(h->ring);
}

static const char *const event_names[16] = {
	"log", "log", "log burst", "connect", "disconnect", "ACK or RESUME", "several in one write",
	"any bytes", "client room", "tick", "pump", "allocations fail or work", "minimum level",
	"rate-limited log", "log with an argument that changes", "another task",
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	tracing = getenv("FUZZ_TRACE") != NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness h;
	struct fuzz_input input = { .data = data, .size = size };
	struct kextlog_ratelimit sites[2] = { { 0 } };
	uint8_t bytes[16 * KEXTLOG_FRAME_MAX];
	uint64_t received;
	bool backlogged;
	const uint8_t *raw;

	setup(&h, &input);
	for (uint32_t event = 0; event < EVENTS_MAX && fuzz_left(&input); event++) {
		uint32_t length = 0, count;

		uint32_t kind = fuzz_below(&input, 16);

		TRACE("%s\n", event_names[kind]);
		switch (kind) {
		case 0:
		case 1:
			log_one(&h);
			break;
		case 2:
			log_burst(&h);
			break;
		case 3:
			connect_client(&h, fuzz_u8(&input) & 1);
			break;
		case 4:
			if (h.client.connected)
				disconnect_client(&h);
			break;
		case 5: /* one ACK or RESUME */
			client_write(&h, bytes, encode_client_frame(&h, bytes));
			break;
		case 6: /* several in one write */
			count = 1 + fuzz_below(&input, 16);
			for (uint32_t i = 0; i < count; i++)
				length += encode_client_frame(&h, bytes + length);
			client_write(&h, bytes, length);
			break;
		case 7: /* anything */
			length = (uint32_t)fuzz_take(&input, fuzz_below(&input, 160), &raw);
			client_write(&h, raw, length);
			break;
		case 8:
			switch (fuzz_below(&input, 3)) {
			case 0:  h.room = UNLIMITED; break;
			case 1:  h.room = 0; break;
			default: h.room = fuzz_below(&input, 4096); break;
			}
			break;
		case 9:
			h.mono_ns += fuzz_below(&input, 4) * (KEXTLOG_RESUME_TIMEOUT_NS / 2) +
			    fuzz_below(&input, 1000) * 1000000ull;
			tick(&h);
			break;
		case 10: /* a pump sends nothing unless the core says it has more (or
			  * a pending loss now fits in the ring: the timer's job) */
			received = h.received;
			backlogged = kextlog_core_backlogged(h.core) || h.core->loss_pending;
			kextlog_core_pump(h.core);
			FUZZ_ASSERT(backlogged || h.received == received,
			    "not backlogged, yet a pump sent %llu bytes",
			    (unsigned long long)(h.received - received));
			break;
		case 11:
			h.alloc_fails = !h.alloc_fails;
			break;
		case 12:
			kextlog_core_set_min_level(h.core, fuzz_below(&input, 7));
			break;
		case 13:
			log_ratelimited(&h, &sites[fuzz_u8(&input) & 1]);
			break;
		case 14:
			log_changing(&h);
			break;
		default: /* another task: a name that fills the field, or any */
			h.task.pid = fuzz_u32(&input);
			h.task.tid = fuzz_u64(&input);
			for (uint32_t i = 0; i < KEXTLOG_PROCESS_NAME_MAX; i++)
				h.task.name[i] = (char)fuzz_u8(&input);
			break;
		}
		check_accounting(&h);
	}
	kextlog_core_set_min_level(h.core, KEXTLOG_LEVEL_TRACE);
	if (h.end_with_stop)
		stop_logger(&h);
	else
		drain(&h);
	teardown(&h);
	return 0;
}
