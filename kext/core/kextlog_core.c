/*
 * kextlog_core.c - the portable core (see kextlog_core.h).
 *
 * Order of the stream a client sees: HELLO, then (after RESUME or the
 * timeout) possibly one RELEASED LOSS for what is no longer held, then the
 * ring from the requested seq on, in seq order.  Losses that happen while the
 * ring is full wait in core->pending and enter the ring, as one LOSS frame,
 * before the next record that fits: the ring stays in seq order and every seq
 * is accounted for exactly once.
 */
#include "kextlog_codec.h"
#include "kextlog_core.h"

/* Room for what a last-resort line is about: "unacknowledged seq <20 digits> WARNING". */
#define LAST_RESORT_WHAT 64u

/* A LOG frame under construction, with room for the stack-formatted message
 * and vsnprintf's terminating NUL. */
union stack_frame {
	struct kextlog_log_frame log;
	uint8_t bytes[KEXTLOG_FRAME_ALIGNED(sizeof(struct kextlog_log_frame) +
	    KEXTLOG_STACK_MESSAGE + 1u)];
};

void kextlog_core_init(struct kextlog_core *core, const struct kextlog_ops *ops, void *context,
    const struct kextlog_config *config, uint8_t *ring_memory, uint32_t ring_bytes,
    uint32_t ring_records)
{
	memset(core, 0, sizeof *core);
	core->ops = ops;
	core->context = context;
	core->config = *config;
	kextlog_ring_init(&core->ring, ring_memory, ring_bytes, ring_records);
	core->next_seq = 1;
}

/* The oldest seq held and not acknowledged (acknowledged frames may still
 * wait in the ring: they leave it a batch at a time). */
static uint64_t oldest_held_seq(struct kextlog_core *core)
{
	uint64_t position = core->ring.head;
	const struct kextlog_frame_header *oldest = kextlog_ring_frame(&core->ring, &position);
	uint64_t seq;

	if (oldest != NULL)
		seq = kextlog_frame_first_seq(oldest);
	else
		seq = core->loss_pending ? core->pending.first_seq : core->next_seq;
	return seq > core->acked_seq ? seq : core->acked_seq + 1;
}

static bool flush_pending_loss(struct kextlog_core *core)
{
	struct kextlog_loss_frame frame;

	if (!core->loss_pending)
		return true;
	kextlog_encode_loss(&frame, core->pending.first_seq, core->pending.last_seq,
	    core->pending.first_time_ns, core->pending.last_time_ns, KEXTLOG_LOSS_RING_FULL);
	if (!kextlog_ring_push(&core->ring, &frame, sizeof frame))
		return false;
	core->loss_pending = false;
	return true;
}

/* True when the oldest frame is acknowledged: it may leave the ring. */
static bool releasable(struct kextlog_core *core)
{
	uint64_t position = core->ring.head;
	const struct kextlog_frame_header *oldest = kextlog_ring_frame(&core->ring, &position);

	return oldest != NULL && kextlog_frame_last_seq(oldest) <= core->acked_seq;
}

/* Drops the oldest frame if it is acknowledged; false when it is not.  A
 * LOSS acknowledged in part keeps only the rest, so that a replay never
 * reports an acknowledged seq again (its first time is then unknown). */
static bool release_one(struct kextlog_core *core)
{
	uint64_t position = core->ring.head;
	const struct kextlog_frame_header *oldest = kextlog_ring_frame(&core->ring, &position);

	if (oldest != NULL && oldest->type == KEXTLOG_FRAME_LOSS &&
	    kextlog_frame_first_seq(oldest) <= core->acked_seq &&
	    kextlog_frame_last_seq(oldest) > core->acked_seq) {
		struct kextlog_loss_frame loss;

		memcpy(&loss, oldest, sizeof loss);
		kextlog_encode_loss(&loss, core->acked_seq + 1, loss.last_seq, 0, loss.last_time_ns,
		    loss.reason);
		memcpy(core->ring.buffer + position % core->ring.size, &loss, sizeof loss);
	}
	if (!releasable(core))
		return false;
	kextlog_ring_pop(&core->ring);
	/* After a RESUME the cursor starts at the head, before what it releases. */
	if (core->cursor_frame < core->ring.head) {
		core->cursor = core->ring.head;
		core->cursor_frame = core->ring.head;
	}
	return true;
}

/* Under the lock: at most KEXTLOG_RELEASE_BATCH acknowledged frames leave the
 * ring (an ACK may cover the whole ring); true when none is left. */
static bool release_some(struct kextlog_core *core)
{
	bool done = false;

	for (uint32_t i = 0; i < KEXTLOG_RELEASE_BATCH && !done; i++)
		done = !release_one(core);
	flush_pending_loss(core); /* the room may let a pending loss in */
	return done;
}

/* Everything up to seq is committed: its frames may leave the ring. */
static void acknowledged(struct kextlog_core *core, uint64_t seq)
{
	if (seq > core->acked_seq)
		core->acked_seq = seq;
}

/* Into the ring, after any pending loss; acknowledged frames still in it make
 * room, one at a time, only as much as the frame needs. */
static bool keep(struct kextlog_core *core, const void *frame, uint32_t length)
{
	while (!flush_pending_loss(core) || !kextlog_ring_push(&core->ring, frame, length)) {
		if (!release_one(core))
			return false;
	}
	return true;
}

static void add_pending_loss(struct kextlog_core *core, uint64_t seq, uint64_t time_ns)
{
	if (!core->loss_pending) {
		core->loss_pending = true;
		core->pending.first_seq = seq;
		core->pending.first_time_ns = time_ns;
	}
	core->pending.last_seq = seq;
	core->pending.last_time_ns = time_ns;
}

/* A formatted message: in the stack frame, or in a heap frame of heap_size
 * bytes that the caller frees; both have room for a NUL after the text. */
struct message {
	struct kextlog_log_frame *frame;
	uint32_t length;
	uint16_t flags;
	size_t   heap_size;
	uint32_t retries;
};

static size_t heap_frame_size(uint32_t length)
{
	return KEXTLOG_FRAME_ALIGNED((uint32_t)sizeof(struct kextlog_log_frame) + length + 1u);
}

/* The stack pass first; a longer message is formatted again on the heap, at
 * its own size, and again if its arguments grew in between (a string that
 * another thread writes), a bounded number of times. */
static void format_message(struct kextlog_core *core, union stack_frame *stack,
    const char *format, va_list arguments, struct message *message)
{
	uint32_t needed;
	va_list pass;
	int result;

	va_copy(pass, arguments);
	result = vsnprintf(stack->log.message, KEXTLOG_STACK_MESSAGE + 1u, format, pass);
	va_end(pass);
	needed = result > 0 ? (uint32_t)result : 0;
	*message = (struct message){ .frame = &stack->log, .length = needed };
	if (needed <= KEXTLOG_STACK_MESSAGE)
		return;

	while (core->ops->alloc != NULL) {
		uint32_t room = needed < KEXTLOG_MESSAGE_MAX ? needed : KEXTLOG_MESSAGE_MAX;
		size_t size = heap_frame_size(room);
		struct kextlog_log_frame *heap = core->ops->alloc(core->context, size);

		if (heap == NULL) {
			message->flags = KEXTLOG_LOG_NOMEM;
			break;
		}
		va_copy(pass, arguments);
		result = vsnprintf(heap->message, room + 1u, format, pass);
		va_end(pass);
		needed = result > 0 ? (uint32_t)result : 0;
		if (needed <= room || room == KEXTLOG_MESSAGE_MAX ||
		    message->retries == KEXTLOG_FORMAT_RETRIES) {
			message->frame = heap;
			message->heap_size = size;
			message->length = needed < room ? needed : room;
			message->flags = needed > room ? KEXTLOG_LOG_TRUNCATED : 0;
			return;
		}
		core->ops->free(core->context, heap, size);
		message->retries++;
	}
	/* No heap path, or no memory for it: the stack copy, cut. */
	message->length = KEXTLOG_STACK_MESSAGE;
	message->flags |= KEXTLOG_LOG_TRUNCATED;
}

void kextlog_core_vlog(struct kextlog_core *core, uint32_t level, const char *format,
    va_list arguments)
{
	union stack_frame stack;
	struct message message;
	struct kextlog_task task;
	uint64_t time_ns, mono_ns, seq;
	uint32_t length;
	bool kept;

	if (level < KEXTLOG_LEVEL_TRACE)
		level = KEXTLOG_LEVEL_TRACE;
	if (level > KEXTLOG_LEVEL_ERROR)
		level = KEXTLOG_LEVEL_ERROR;
	/* Read unlocked: a new minimum level applies from the next message on. */
	if (level < core->config.min_level) {
		core->ops->lock(core->context);
		core->counters.below_min_level++;
		core->ops->unlock(core->context);
		return;
	}

	time_ns = core->ops->wall_time_ns(core->context);
	mono_ns = core->ops->mono_time_ns(core->context);
	memset(&task, 0, sizeof task);
	core->ops->current_task(core->context, &task);
	format_message(core, &stack, format, arguments, &message);

	core->ops->lock(core->context);
	seq = core->next_seq++;
	length = kextlog_encode_log(message.frame, seq, time_ns, mono_ns, task.pid, task.tid,
	    task.name, level, message.flags, message.frame->message, (uint16_t)message.length);
	core->counters.logged++;
	core->counters.format_retries += message.retries;
	if (message.heap_size != 0)
		core->counters.heap++;
	if (message.flags & KEXTLOG_LOG_TRUNCATED)
		core->counters.truncated++;
	if (message.flags & KEXTLOG_LOG_NOMEM)
		core->counters.nomem++;
	if (core->ops->tap != NULL)
		core->ops->tap(core->context, message.frame);
	kept = keep(core, message.frame, length);
	if (!kept) {
		add_pending_loss(core, seq, time_ns);
		core->counters.lost++;
	}
	core->ops->unlock(core->context);

	if (!kept) {
		char what[LAST_RESORT_WHAT];

		message.frame->message[message.length] = '\0'; /* there is room for it */
		snprintf(what, sizeof what, "lost seq %llu %s", (unsigned long long)seq,
		    kextlog_level_name(level));
		core->ops->last_resort(core->context, level, what, message.frame->message);
	}
	if (message.heap_size != 0)
		core->ops->free(core->context, message.frame, message.heap_size);
}

void kextlog_core_log(struct kextlog_core *core, uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	kextlog_core_vlog(core, level, format, arguments);
	va_end(arguments);
}

/* Refuses a frame that does not fit: the state machine never queues more than
 * HELLO and one LOSS (STATUS only into an empty queue), so no client can make
 * it try, but a mistake there must not become a wild write. */
static bool queue_control(struct kextlog_core *core, const void *frame, uint32_t length)
{
	if (length > sizeof core->control - core->control_length)
		return false;
	memcpy(core->control + core->control_length, frame, length);
	core->control_length += length;
	return true;
}

/* Sends the rest of the control frames; false while some remain. */
static bool pump_control(struct kextlog_core *core)
{
	uint32_t length = core->control_length - core->control_sent;
	uint32_t taken;

	if (length == 0)
		return true;
	taken = core->ops->send(core->context, core->control + core->control_sent, length);
	core->control_sent += taken;
	if (taken < length) {
		core->counters.send_busy++;
		return false;
	}
	core->control_length = 0;
	core->control_sent = 0;
	return true;
}

/* One send of the frames after the cursor: a contiguous run of whole frames
 * (or the rest of a partly sent one), at most limit bytes unless its first
 * frame alone is larger.  Returns what the client took; *offered says how
 * much was offered (0: nothing to send). */
static uint32_t pump_ring_once(struct kextlog_core *core, uint32_t limit, uint32_t *offered)
{
	const struct kextlog_frame_header *frame;
	uint64_t position = core->cursor_frame;
	uint64_t start, end;
	uint32_t taken;

	*offered = 0;
	frame = kextlog_ring_frame(&core->ring, &position);
	if (frame == NULL)
		return 0;
	if (core->cursor == core->cursor_frame || core->cursor < position)
		core->cursor = position;
	core->cursor_frame = position;
	start = core->cursor;
	end = position + frame->length;
	/* Extend over the following frames while they are contiguous in memory:
	 * not past padding, nor past the end of the buffer. */
	while (end < core->ring.tail && end % core->ring.size != 0) {
		uint64_t next = end;
		const struct kextlog_frame_header *following = kextlog_ring_frame(&core->ring, &next);

		if (following == NULL || next != end || end + following->length - start > limit)
			break;
		end += following->length;
	}

	*offered = (uint32_t)(end - start);
	taken = core->ops->send(core->context, core->ring.buffer + (start % core->ring.size),
	    *offered);
	if (taken == 0) {
		core->counters.send_busy++;
		return 0;
	}
	core->cursor = start + taken;
	/* Account for every frame that went out whole. */
	position = core->cursor_frame;
	while ((frame = kextlog_ring_frame(&core->ring, &position)) != NULL &&
	    position + frame->length <= core->cursor) {
		core->sent_seq = kextlog_frame_last_seq(frame);
		core->counters.frames_sent++;
		position += frame->length;
	}
	core->cursor_frame = position;
	if (core->cursor < position)
		core->cursor = position;
	return taken;
}

/* Under the lock: acknowledged frames leave the ring, then the control frames
 * and at most one batch of ring frames (send_batch_bytes, or one larger
 * frame) go out.  True when more may be done now. */
static bool pump_batch(struct kextlog_core *core)
{
	uint32_t batch = core->config.send_batch_bytes, sent = 0;

	if (!release_some(core))
		return true; /* the ring frames wait until the released have left */
	if (core->connection == KEXTLOG_DISCONNECTED || !pump_control(core) ||
	    core->connection != KEXTLOG_STREAMING)
		return false;
	while (sent < batch) {
		uint32_t offered, taken = pump_ring_once(core, batch - sent, &offered);

		if (taken == 0 || taken < offered)
			return false; /* nothing left, or no room at the client */
		sent += taken;
	}
	return true;
}

void kextlog_core_pump(struct kextlog_core *core)
{
	core->ops->lock(core->context);
	pump_batch(core);
	core->ops->unlock(core->context);
}

/* As many batches as the client takes, the lock released between them: a
 * replay of the whole ring never holds up the logging threads. */
static void pump_all(struct kextlog_core *core)
{
	bool more;

	do {
		core->ops->lock(core->context);
		more = pump_batch(core);
		core->ops->unlock(core->context);
	} while (more);
}

void kextlog_core_connect(struct kextlog_core *core)
{
	struct kextlog_hello_frame hello;

	core->ops->lock(core->context);
	core->connection = KEXTLOG_AWAITING_RESUME;
	core->connected_at_ns = core->ops->mono_time_ns(core->context);
	core->control_length = 0;
	core->control_sent = 0;
	core->input_length = 0;
	core->input_skip = 0;
	core->counters.connects++;
	kextlog_encode_hello(&hello, core->config.instance_id, core->config.boot_id,
	    oldest_held_seq(core), core->next_seq, core->ring.max_records, core->ring.size,
	    core->config.producer_version, core->config.name);
	queue_control(core, &hello, sizeof hello);
	core->ops->unlock(core->context);
	kextlog_core_pump(core);
}

void kextlog_core_disconnect(struct kextlog_core *core)
{
	core->ops->lock(core->context);
	core->connection = KEXTLOG_DISCONNECTED;
	core->control_length = 0;
	core->control_sent = 0;
	core->ops->unlock(core->context);
}

/* Starts streaming from seq: what precedes it is released, what the ring no
 * longer holds of it is reported as one RELEASED loss.  False (nothing
 * changed) when that loss cannot be queued. */
static bool start_streaming(struct kextlog_core *core, uint64_t seq)
{
	uint64_t first_unheld = core->loss_pending ? core->pending.first_seq : core->next_seq;
	uint64_t oldest = oldest_held_seq(core);
	struct kextlog_loss_frame gap;

	if (seq == 0)
		seq = 1;
	if (seq > first_unheld)
		seq = first_unheld;
	/* The ring no longer holds seq..oldest - 1: a RELEASED loss says so. */
	if (seq < oldest && !queue_control(core, &gap, kextlog_encode_loss(&gap, seq, oldest - 1,
	    0, 0, KEXTLOG_LOSS_RELEASED)))
		return false;
	acknowledged(core, seq - 1);
	core->committed_seq = seq - 1;
	core->sent_seq = seq < oldest ? oldest - 1 : seq - 1;
	core->cursor = core->ring.head;
	core->cursor_frame = core->ring.head;
	core->connection = KEXTLOG_STREAMING;
	return true;
}

/* ACK(seq) while streaming: from what this connection's client has already
 * said it committed up to what it has been sent. */
static enum kextlog_wire_status acknowledge(struct kextlog_core *core, uint64_t seq)
{
	if (seq < core->committed_seq || seq > core->sent_seq)
		return KEXTLOG_WIRE_BAD_FIELD;
	core->committed_seq = seq;
	acknowledged(core, seq);
	return KEXTLOG_WIRE_OK;
}

/*
 * The client's side of the protocol (docs/protocol.md, "What the producer
 * accepts from its client"), for one well-formed frame:
 *
 *   state             RESUME(s), this instance     ACK(n)                  any other frame
 *   AWAITING_RESUME   replay from s: STREAMING     refused                 refused
 *   STREAMING         refused                      committed..sent: release refused
 *
 * Refused: changes nothing, counted as bad input.  (Input while disconnected
 * never gets here, and unknown types of the client's range are skipped.)
 */
static enum kextlog_wire_status handle_frame(struct kextlog_core *core, const uint8_t *data)
{
	struct kextlog_frame_header header;

	memcpy(&header, data, sizeof header);
	switch (core->connection) {
	case KEXTLOG_AWAITING_RESUME:
		if (header.type == KEXTLOG_FRAME_RESUME) {
			struct kextlog_resume_frame resume;

			memcpy(&resume, data, sizeof resume);
			if (memcmp(resume.instance_id, core->config.instance_id,
			    KEXTLOG_ID_SIZE) == 0 && start_streaming(core, resume.seq))
				return KEXTLOG_WIRE_OK;
		}
		return KEXTLOG_WIRE_BAD_FIELD;
	case KEXTLOG_STREAMING:
		if (header.type == KEXTLOG_FRAME_ACK) {
			struct kextlog_ack_frame ack;

			memcpy(&ack, data, sizeof ack);
			return acknowledge(core, ack.seq);
		}
		return KEXTLOG_WIRE_BAD_FIELD;
	case KEXTLOG_DISCONNECTED: /* its input is refused before it is read */
		break;
	}
	return KEXTLOG_WIRE_BAD_FIELD;
}

/* The range of frame types a client may send (kextlog_wire.h): a newer
 * client's types there are skipped; known types outside it are the producer's. */
#define CLIENT_TYPES_FIRST 64u
#define CLIENT_TYPES_LAST  127u

/* Handles every whole frame in core->input; stops at the first problem.  A
 * frame of a known type that is not a client's (HELLO, LOG...: longer than
 * any client frame) fails the check as SHORT once its header is in. */
static enum kextlog_wire_status drain_input(struct kextlog_core *core)
{
	for (;;) {
		struct kextlog_frame_header header;
		uint32_t frame_length = 0;
		enum kextlog_wire_status status =
		    kextlog_wire_check(core->input, core->input_length, &frame_length);

		if (status == KEXTLOG_WIRE_SHORT && core->input_length >= sizeof header) {
			memcpy(&header, core->input, sizeof header);
			if (header.type != KEXTLOG_FRAME_ACK && header.type != KEXTLOG_FRAME_RESUME)
				return KEXTLOG_WIRE_BAD_FIELD; /* the producer's frame */
		}
		if (status == KEXTLOG_WIRE_SHORT)
			return KEXTLOG_WIRE_OK; /* wait for the rest: a client frame fits in input */
		if (status == KEXTLOG_WIRE_OK)
			status = handle_frame(core, core->input);
		if (status == KEXTLOG_WIRE_UNKNOWN) {
			memcpy(&header, core->input, sizeof header);
			if (header.type < CLIENT_TYPES_FIRST || header.type > CLIENT_TYPES_LAST)
				return KEXTLOG_WIRE_BAD_FIELD;
			status = KEXTLOG_WIRE_OK; /* a newer client's frame: skipped */
			if (frame_length > core->input_length) {
				core->input_skip = frame_length - core->input_length;
				frame_length = core->input_length;
			}
		}
		if (status != KEXTLOG_WIRE_OK)
			return status;
		memmove(core->input, core->input + frame_length, core->input_length - frame_length);
		core->input_length -= frame_length;
	}
}

/* A write is read up to its first problem; the rest of it, and whatever it
 * left buffered, is dropped, so the next write is read afresh. */
enum kextlog_wire_status kextlog_core_receive(struct kextlog_core *core, const uint8_t *data,
    size_t length)
{
	enum kextlog_wire_status result = KEXTLOG_WIRE_OK;
	size_t used = 0;

	core->ops->lock(core->context);
	if (core->connection == KEXTLOG_DISCONNECTED)
		result = KEXTLOG_WIRE_BAD_FIELD; /* no client: nobody to read it for */
	while (result == KEXTLOG_WIRE_OK && used < length) {
		size_t take;

		if (core->input_skip > 0) {
			take = length - used < core->input_skip ? length - used : core->input_skip;
			core->input_skip -= take;
			used += take;
			continue;
		}
		take = sizeof core->input - core->input_length;
		if (take > length - used)
			take = length - used;
		memcpy(core->input + core->input_length, data + used, take);
		core->input_length += (uint32_t)take;
		used += take;
		result = drain_input(core);
	}
	if (result != KEXTLOG_WIRE_OK) {
		core->input_length = 0;
		core->input_skip = 0;
		core->counters.bad_input++; /* once per write, not per byte of garbage */
	}
	core->ops->unlock(core->context);
	pump_all(core);
	return result;
}

/* STATUS goes between whole frames only: never while the control area is
 * busy or a stream transport holds part of a ring frame. */
static void queue_status(struct kextlog_core *core, uint64_t now_ns)
{
	struct kextlog_status_frame status;

	if (core->connection != KEXTLOG_STREAMING || core->control_length != 0 ||
	    core->cursor != core->cursor_frame ||
	    now_ns - core->status_sent_ns < core->config.status_interval_ns)
		return;
	queue_control(core, &status, kextlog_encode_status(&status, core->next_seq,
	    core->counters.lost, core->ops->wall_time_ns(core->context), core->ring.records,
	    core->ring.max_records, (uint32_t)(core->ring.tail - core->ring.head), core->ring.size));
	core->status_sent_ns = now_ns;
}

void kextlog_core_tick(struct kextlog_core *core)
{
	uint64_t now_ns;

	core->ops->lock(core->context);
	now_ns = core->ops->mono_time_ns(core->context);
	if (core->connection == KEXTLOG_AWAITING_RESUME &&
	    now_ns - core->connected_at_ns >= core->config.resume_timeout_ns)
		start_streaming(core, oldest_held_seq(core));
	flush_pending_loss(core);
	queue_status(core, now_ns);
	core->ops->unlock(core->context);
	pump_all(core);
}

bool kextlog_core_ratelimit(struct kextlog_core *core, struct kextlog_ratelimit *state,
    const char *where)
{
	uint64_t now_ns = core->ops->mono_time_ns(core->context);
	uint32_t report = 0;
	bool pass;

	core->ops->lock(core->context);
	if (now_ns - state->window_start_ns >= KEXTLOG_RATELIMIT_INTERVAL_NS) {
		state->window_start_ns = now_ns;
		state->passed = 0;
	}
	pass = state->passed < KEXTLOG_RATELIMIT_BURST;
	if (pass) {
		state->passed++;
		report = state->suppressed;
		state->suppressed = 0;
	} else {
		state->suppressed++;
		core->counters.ratelimited++;
	}
	core->ops->unlock(core->context);

	if (report != 0)
		kextlog_core_log(core, KEXTLOG_LEVEL_WARNING, "kextlog: %u messages suppressed at %s",
		    report, where);
	return pass;
}

bool kextlog_core_backlogged(struct kextlog_core *core)
{
	uint64_t position;
	bool backlogged;

	core->ops->lock(core->context);
	position = core->cursor_frame; /* within the ring once nothing is releasable */
	backlogged = releasable(core) || core->control_length > core->control_sent ||
	    (core->connection == KEXTLOG_STREAMING &&
	    kextlog_ring_frame(&core->ring, &position) != NULL);
	core->ops->unlock(core->context);
	return backlogged;
}

bool kextlog_core_idle(struct kextlog_core *core)
{
	bool idle;

	core->ops->lock(core->context);
	idle = kextlog_ring_empty(&core->ring) && !core->loss_pending;
	core->ops->unlock(core->context);
	return idle;
}

/* The records the ring holds at stop (acknowledged frames have left it: the
 * last write of the client released them before it returned). */
struct held {
	uint64_t records;
	uint64_t first_seq, last_seq;
};

static struct held count_held(struct kextlog_core *core)
{
	struct held held = { 0 };
	const struct kextlog_frame_header *frame;
	uint64_t position = core->ring.head;

	while ((frame = kextlog_ring_frame(&core->ring, &position)) != NULL) {
		if (frame->type == KEXTLOG_FRAME_LOG) {
			if (held.records++ == 0)
				held.first_seq = kextlog_frame_first_seq(frame);
			held.last_seq = kextlog_frame_last_seq(frame);
		}
		position += frame->length;
	}
	return held;
}

static void print_summary(struct kextlog_core *core, const struct held *held)
{
	/* The ring accounts for every seq in order: those between that are not
	 * records were lost, and printed, when they were logged. */
	unsigned long long records = held->records, first = held->first_seq, last = held->last_seq;
	unsigned long long lost = last - first + 1 - records;
	char line[160];

	if (records == 1)
		snprintf(line, sizeof line, "1 unacknowledged record, seq %llu, printed below", first);
	else if (lost == 0)
		snprintf(line, sizeof line, "%llu unacknowledged records, seqs %llu..%llu, "
		    "printed below", records, first, last);
	else
		snprintf(line, sizeof line, "%llu unacknowledged records, seqs %llu..%llu (%llu "
		    "lost earlier, printed then), printed below", records, first, last, lost);
	core->ops->last_resort(core->context, KEXTLOG_LEVEL_WARNING, "stop", line);
}

/* Takes the oldest frame out of the ring (false when it is empty); for a LOG
 * frame, fills what and *level and sets *text to its text, NUL-terminated in place
 * (moved over the process name, which is not printed).  The text stays
 * valid until the next push: none comes, nothing logs at stop. */
static bool take_oldest(struct kextlog_core *core, char *what, size_t what_size,
    uint32_t *level, const char **text)
{
	uint64_t position = core->ring.head;
	const struct kextlog_frame_header *frame = kextlog_ring_frame(&core->ring, &position);
	struct kextlog_log_frame *log;
	char *moved;

	*text = NULL;
	if (frame == NULL)
		return false;
	if (frame->type == KEXTLOG_FRAME_LOG) {
		log = (void *)(core->ring.buffer + position % core->ring.size);
		moved = (char *)log + offsetof(struct kextlog_log_frame, process);
		memmove(moved, log->message, log->message_length);
		moved[log->message_length] = '\0';
		snprintf(what, what_size, "unacknowledged seq %llu %s", (unsigned long long)log->seq,
		    kextlog_level_name(log->level));
		*level = log->level;
		*text = moved;
	}
	kextlog_ring_pop(&core->ring);
	return true;
}

void kextlog_core_stop(struct kextlog_core *core)
{
	struct held held;

	core->ops->lock(core->context);
	held = count_held(core);
	core->counters.printed_at_stop += held.records;
	core->ops->unlock(core->context);
	if (held.records > 0)
		print_summary(core, &held);
	for (;;) {
		char what[LAST_RESORT_WHAT];
		const char *text;
		uint32_t level;
		bool took;

		core->ops->lock(core->context);
		took = take_oldest(core, what, sizeof what, &level, &text);
		core->ops->unlock(core->context);
		if (!took)
			break;
		if (text != NULL)
			core->ops->last_resort(core->context, level, what, text);
	}
}

void kextlog_core_set_min_level(struct kextlog_core *core, uint32_t level)
{
	core->ops->lock(core->context);
	core->config.min_level = level;
	core->ops->unlock(core->context);
}

void kextlog_core_counters(struct kextlog_core *core, struct kextlog_counters *counters)
{
	core->ops->lock(core->context);
	*counters = core->counters;
	counters->next_seq = core->next_seq;
	counters->acked_seq = core->acked_seq;
	counters->ring_records = core->ring.records;
	counters->ring_bytes_used = core->ring.tail - core->ring.head;
	counters->ring_high_water = core->ring.high_water;
	counters->ring_capacity = core->ring.max_records;
	core->ops->unlock(core->context);
}

const char *kextlog_level_name(uint32_t level)
{
	static const char *const names[] = { "?", "TRACE", "DEBUG", "INFO", "WARNING", "ERROR" };

	return names[level <= KEXTLOG_LEVEL_ERROR ? level : 0];
}
