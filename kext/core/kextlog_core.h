/*
 * kextlog_core.h - the portable core of the kextlog logger.
 *
 * Formats messages, gives each a seq, keeps the frames in the ring until the
 * client acknowledges them, speaks the delivery protocol (HELLO, RESUME,
 * replay, LOSS, ACK) and counts everything.  The same code runs in the macOS
 * kext, in the host simulator and in the C tests; the platform supplies the
 * clock, the current task, the transport and the last-resort print through
 * struct kextlog_ops.  docs/protocol.md describes the contract.
 *
 * Every entry point may be called from any thread; the core serialises them
 * with the platform's lock, and bounds what it does in one hold of it.  None
 * of them sleeps or waits for the client.
 */
#ifndef KEXTLOG_CORE_H
#define KEXTLOG_CORE_H

#include "kextlog.h"
#include "kextlog_port.h"
#include "kextlog_ring.h"
#include "kextlog_wire.h"

/* Messages are formatted on the stack up to this many bytes; longer ones are
 * formatted again into a non-waiting allocation of their size, up to
 * KEXTLOG_MESSAGE_MAX (beyond it they are cut and flagged TRUNCATED).  When
 * the allocation fails the stack copy is sent, flagged TRUNCATED and NOMEM. */
#define KEXTLOG_STACK_MESSAGE 256u

/* A format whose arguments change length between the two passes (a string
 * another thread is writing) is formatted again this many times at most. */
#define KEXTLOG_FORMAT_RETRIES 2u

/* Rate limiting per call site, as printk_ratelimited: at most BURST messages
 * per INTERVAL; the rest are counted and reported when the next passes. */
#define KEXTLOG_RATELIMIT_INTERVAL_NS 5000000000ull
#define KEXTLOG_RATELIMIT_BURST       10u

/* Acknowledged frames leave the ring at most this many per hold of the lock
 * (an ACK may cover the whole ring). */
#define KEXTLOG_RELEASE_BATCH 1024u

/* How long the core waits for RESUME after HELLO before replaying everything
 * it holds (for clients that do not speak the whole protocol). */
#define KEXTLOG_RESUME_TIMEOUT_NS 1000000000ull

/* How often a streaming client gets a STATUS frame (from the timer). */
#define KEXTLOG_STATUS_INTERVAL_NS 1000000000ull

struct kextlog_task {
	uint32_t pid;
	uint64_t tid;
	char     name[KEXTLOG_PROCESS_NAME_MAX];
};

struct kextlog_ops {
	/* Serialise the core: a mutex in the kext (ctl_enqueuedata, called under
	 * it, takes the socket's mutex, so it cannot be a spinlock). */
	void     (*lock)(void *context);
	void     (*unlock)(void *context);
	/* Called without the lock, when a message is logged. */
	uint64_t (*wall_time_ns)(void *context);
	uint64_t (*mono_time_ns)(void *context);
	void     (*current_task)(void *context, struct kextlog_task *task);
	/* Hands bytes to the connected client, under the lock, never waiting.
	 * data holds whole frames, or the rest of a frame a stream transport took
	 * only part of.  Returns how many bytes the client took: all of them, none
	 * (no room now, the ENOBUFS case: the frames stay and go out on a later
	 * try), or a prefix on a stream transport. */
	uint32_t (*send)(void *context, const uint8_t *data, uint32_t length);
	/* Called without the lock: a line for the last-resort print (the kernel
	 * printf of the seed), "<what>: <message>" after the platform's prefix.
	 * For a message the ring cannot keep (what: "lost seq 5 WARNING"; the
	 * message is then a loss), and at stop for each record not acknowledged
	 * ("unacknowledged seq 5 INFO"), after one summary ("stop").  level is
	 * the record's (WARNING for the summary), for a platform whose print has
	 * levels. */
	void     (*last_resort)(void *context, uint32_t level, const char *what,
	             const char *message);
	/* Optional, under the lock: sees every LOG frame when it gets its seq,
	 * kept or not.  The simulator records them; the kext leaves it NULL. */
	void     (*tap)(void *context, const struct kextlog_log_frame *frame);
	/* Called without the lock: memory for a long message that never waits
	 * for it (NULL when there is none); NULL alloc disables the heap path. */
	void    *(*alloc)(void *context, size_t size);
	void     (*free)(void *context, void *memory, size_t size);
};


struct kextlog_config {
	uint8_t  instance_id[KEXTLOG_ID_SIZE]; /* random, new at every load */
	uint8_t  boot_id[KEXTLOG_ID_SIZE];
	char     name[KEXTLOG_NAME_MAX];       /* announced in HELLO */
	uint32_t producer_version;
	uint32_t min_level;                    /* messages below it get no seq */
	uint32_t send_batch_bytes;             /* most bytes per send (a datagram's size) */
	uint64_t resume_timeout_ns;
	uint64_t status_interval_ns;
};

/* Counters, read as one snapshot by kextlog_core_counters(). */
struct kextlog_counters {
	uint64_t logged;          /* messages that got a seq */
	uint64_t below_min_level; /* messages under the minimum level: no seq */
	uint64_t lost;            /* got a seq, did not fit the ring: last-resort print */
	uint64_t truncated;
	uint64_t heap;            /* formatted on the heap path */
	uint64_t format_retries;  /* formatted again: the arguments changed length */
	uint64_t nomem;           /* heap path failed: the stack copy went, cut */
	uint64_t ratelimited;     /* held back by a call site's rate limit: no seq */
	uint64_t frames_sent;     /* ring frames (LOG, LOSS) handed to a client, replays included */
	uint64_t send_busy;       /* sends the client had no room for */
	uint64_t bad_input;       /* client writes refused: malformed, or not valid now */
	uint64_t connects;
	uint64_t next_seq;
	uint64_t acked_seq;       /* highest seq acknowledged */
	uint64_t ring_records;    /* frames held now */
	uint64_t ring_bytes_used;
	uint64_t ring_high_water; /* most frames held at once */
	uint64_t ring_capacity;   /* records */
	uint64_t printed_at_stop; /* records unacknowledged at stop: printed by the last resort */
};

/* The client's side of the protocol: which frame is valid in which state is
 * in kextlog_core.c (handle_frame) and docs/protocol.md. */
enum kextlog_connection {
	KEXTLOG_DISCONNECTED = 0,
	KEXTLOG_AWAITING_RESUME, /* HELLO queued or sent: one RESUME is valid */
	KEXTLOG_STREAMING,       /* replaying, then live: ACKs are valid */
};

/* A run of records lost for one reason, not yet in the ring. */
struct kextlog_pending_loss {
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t first_time_ns;
	uint64_t last_time_ns;
};

struct kextlog_core {
	const struct kextlog_ops *ops;
	void                     *context;
	struct kextlog_config     config;
	struct kextlog_ring       ring;
	uint64_t                  next_seq;
	uint64_t                  acked_seq;     /* highest seq acknowledged: its frames may go */
	bool                      loss_pending;
	struct kextlog_pending_loss pending;

	enum kextlog_connection   connection;
	uint64_t                  connected_at_ns;  /* monotonic */
	/* HELLO and a RELEASED loss, or a STATUS, go out before the next ring frame. */
	uint8_t                   control[sizeof(struct kextlog_hello_frame) +
	                                  sizeof(struct kextlog_loss_frame)];
	uint64_t                  status_sent_ns;   /* monotonic */
	uint32_t                  control_length;
	uint32_t                  control_sent;
	uint64_t                  cursor;        /* ring position of the next byte to send */
	uint64_t                  cursor_frame;  /* ring position of the frame holding it */
	uint64_t                  sent_seq;      /* highest seq whose frame went out whole */
	uint64_t                  committed_seq; /* this client's RESUME - 1, then its last ACK */
	uint8_t                   input[sizeof(struct kextlog_resume_frame)];
	uint32_t                  input_length;
	uint64_t                  input_skip;    /* bytes of an unknown frame still to skip */

	struct kextlog_counters   counters;
};

/* ring_memory (ring_bytes, from kextlog_ring_bytes(records)) stays owned by
 * the platform and must outlive the core.  Seqs start at 1. */
void kextlog_core_init(struct kextlog_core *core, const struct kextlog_ops *ops, void *context,
    const struct kextlog_config *config, uint8_t *ring_memory, uint32_t ring_bytes,
    uint32_t ring_records);

/* Formats and keeps one message.  Does not send: call kextlog_core_pump()
 * after one or several messages. */
void kextlog_core_log(struct kextlog_core *core, uint32_t level, const char *format, ...)
    __printflike(3, 4);
void kextlog_core_vlog(struct kextlog_core *core, uint32_t level, const char *format,
    va_list arguments) __printflike(3, 0);

/* True when a message from this call site may be logged now.  When it may
 * and earlier ones were held back, first logs one WARNING saying how many,
 * and where (e.g. "file.c:42"). */
bool kextlog_core_ratelimit(struct kextlog_core *core, struct kextlog_ratelimit *state,
    const char *where);

/* A client connected: HELLO goes out first, then nothing until RESUME or
 * the resume timeout. */
void kextlog_core_connect(struct kextlog_core *core);

/* The client is gone: unacknowledged frames stay in the ring. */
void kextlog_core_disconnect(struct kextlog_core *core);

/* Bytes the client wrote (ACK, RESUME; split or glued anyhow).  A frame that
 * is malformed, or not valid in the connection's state, is a problem: it and
 * the rest of the write are dropped, the write is counted once as bad input,
 * and the next write is read afresh.  Returns the problem, or OK. */
enum kextlog_wire_status kextlog_core_receive(struct kextlog_core *core, const uint8_t *data,
    size_t length);

/* Sends what the client may have now, one batch at most (send_batch_bytes,
 * after at most KEXTLOG_RELEASE_BATCH acknowledged frames leave the ring):
 * the pump of a logging thread never replays the ring under the lock.
 * kextlog_core_tick() and kextlog_core_receive() do the rest, a batch per
 * hold of the lock. */
void kextlog_core_pump(struct kextlog_core *core);

/* Timer: ends the wait for RESUME after the timeout, sends STATUS when due,
 * then sends all the client takes, a batch per hold of the lock. */
void kextlog_core_tick(struct kextlog_core *core);

/* True when frames wait for room at the connected client: the platform
 * should pump again when the client can take more. */
bool kextlog_core_backlogged(struct kextlog_core *core);

/* True when every seq given so far has been acknowledged (nothing held,
 * no loss waiting to be reported). */
bool kextlog_core_idle(struct kextlog_core *core);

/* The logger stops: the client is gone and nothing logs any more.  Every
 * record still held and not acknowledged goes to the last-resort print, in
 * seq order, after one summary line; the ring is empty afterwards. */
void kextlog_core_stop(struct kextlog_core *core);

void kextlog_core_set_min_level(struct kextlog_core *core, uint32_t level);

/* "TRACE" .. "ERROR", "?" for anything else. */
const char *kextlog_level_name(uint32_t level);

void kextlog_core_counters(struct kextlog_core *core, struct kextlog_counters *counters);

#endif /* KEXTLOG_CORE_H */
