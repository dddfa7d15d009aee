/*
 * kextlog_wire.h - the kextlog wire protocol, defined once.
 *
 * The kext, the host simulator, the C tests and the Python daemon (through
 * cffi, compiled against this very file) all use these definitions.
 * docs/protocol.md explains the contract around them.
 *
 * A change here is a change of the protocol: docs/protocol.md (layouts,
 * flags, reasons, bounds, check results) and the cffi declarations the
 * daemon compiles from this file (kextlog_store/_build_native.py) change
 * with it.
 *
 * Every frame starts with struct kextlog_frame_header.  All fields are
 * fixed-width little-endian (the kext only runs on little-endian Macs).
 * Frames are self-delimiting and their length is a multiple of 8, so several
 * frames can follow each other in one buffer (a SOCK_DGRAM control glues
 * enqueued frames together) or be split across reads (SOCK_STREAM).
 * Padding fields and the bytes after a message up to the frame's length are
 * zero: no kernel memory reaches user space.
 */
#ifndef KEXTLOG_WIRE_H
#define KEXTLOG_WIRE_H

#include <stdint.h>

#define KEXTLOG_WIRE_MAGIC   0x474c584bu /* "KXLG" in memory order */
#define KEXTLOG_WIRE_VERSION 1u

/* Longest message text a LOG frame carries; longer messages are cut and
 * flagged KEXTLOG_LOG_TRUNCATED. */
#define KEXTLOG_MESSAGE_MAX      1024u
#define KEXTLOG_PROCESS_NAME_MAX 32u  /* NUL-padded, not always NUL-terminated */
#define KEXTLOG_NAME_MAX         64u  /* producer name in HELLO, NUL-padded */
#define KEXTLOG_ID_SIZE          16u  /* instance and boot ids: 128-bit UUIDs */
#define KEXTLOG_FRAME_ALIGN      8u

#define KEXTLOG_FRAME_ALIGNED(length) \
	(((length) + KEXTLOG_FRAME_ALIGN - 1u) & ~(uint32_t)(KEXTLOG_FRAME_ALIGN - 1u))

/* Field bounds: what a receiver accepts (docs/protocol.md, "Field bounds").
 * A frame with a value past them is malformed: skipped and counted, never
 * stored with a changed value.  They keep one producer's values inside its
 * own part of the store.  A record's key packs the store's instance number
 * and the seq into 63 bits (instance << KEXTLOG_SEQ_BITS | seq), so a seq
 * past KEXTLOG_SEQ_MAX would name another instance's record; and with at
 * most KEXTLOG_INSTANCES_MAX instances, whose counts never exceed their
 * seqs, any sum of counts or marks over the store fits in a signed 64-bit
 * integer.  A producer never gives out a seq past KEXTLOG_SEQ_MAX (2^44 - 1,
 * 203 days at a million messages a second): it starts a new instance first. */
#define KEXTLOG_SEQ_BITS      44u
#define KEXTLOG_SEQ_MAX       (((uint64_t)1 << KEXTLOG_SEQ_BITS) - 1u) /* LOG, LOSS, HELLO, STATUS seqs */
#define KEXTLOG_INSTANCES_MAX (((uint64_t)1 << (63u - KEXTLOG_SEQ_BITS)) - 1u) /* in one store */
/* Times in ns, wall-clock and monotonic: up to the year 2116.  Signed 64-bit
 * columns, with room for what readers add to them (zone offsets, windows). */
#define KEXTLOG_TIME_MAX      ((uint64_t)1 << 62)
#define KEXTLOG_TID_MAX       (((uint64_t)1 << 63) - 1u) /* a signed 64-bit column */
#define KEXTLOG_PID_MAX       0x7fffffffu /* a pid_t */
/* LOG flags: bit 15 is reserved (a signed 16-bit column), bit 14 is the
 * consumer's (KEXTLOG_STORED_BYTES). */
#define KEXTLOG_FLAGS_MAX     0x3fffu
/* Set by the consumer in a stored record's flags, never sent: its message
 * held bytes that are not UTF-8 text (or NUL), stored as \xHH escapes with
 * each literal backslash doubled, so the bytes can be given back. */
#define KEXTLOG_STORED_BYTES  0x4000u

/* Frame types in numbered ranges: 1-63 kernel to user, 64-127 user to kernel. */
enum kextlog_frame_type {
	KEXTLOG_FRAME_HELLO  = 1,
	KEXTLOG_FRAME_LOG    = 2,
	KEXTLOG_FRAME_LOSS   = 3,
	KEXTLOG_FRAME_STATUS = 4,
	KEXTLOG_FRAME_ACK    = 64,
	KEXTLOG_FRAME_RESUME = 65,
};

/* Levels, least to most severe; 0 is never a valid level. */
enum kextlog_level {
	KEXTLOG_LEVEL_TRACE   = 1,
	KEXTLOG_LEVEL_DEBUG   = 2,
	KEXTLOG_LEVEL_INFO    = 3,
	KEXTLOG_LEVEL_WARNING = 4,
	KEXTLOG_LEVEL_ERROR   = 5,
};

/* LOG flags. */
enum kextlog_log_flag {
	KEXTLOG_LOG_TRUNCATED = 1u << 0, /* message was cut to fit */
	KEXTLOG_LOG_NOMEM     = 1u << 1, /* cut to the stack buffer: no memory for the whole message */
};

/* Why a LOSS frame's records are missing. */
enum kextlog_loss_reason {
	KEXTLOG_LOSS_RING_FULL = 1, /* the ring could not take them; sent to the last-resort print */
	KEXTLOG_LOSS_RELEASED  = 2, /* acknowledged to an earlier client, no longer held at RESUME */
};

struct kextlog_frame_header {
	uint32_t magic;   /* KEXTLOG_WIRE_MAGIC */
	uint16_t version; /* KEXTLOG_WIRE_VERSION */
	uint16_t type;    /* enum kextlog_frame_type */
	uint32_t length;  /* whole frame in bytes, header included, multiple of 8 */
	uint32_t padding;
};

/* Kernel to user, first frame of every connection. */
struct kextlog_hello_frame {
	struct kextlog_frame_header header;
	uint8_t  instance_id[KEXTLOG_ID_SIZE]; /* new at every kext load */
	uint8_t  boot_id[KEXTLOG_ID_SIZE];     /* boot session; zero if unknown */
	uint64_t oldest_seq;    /* oldest seq still held in the ring (== next_seq if none) */
	uint64_t next_seq;      /* seq the next message will get */
	uint32_t ring_records;  /* ring capacity in records */
	uint32_t ring_bytes;    /* ring capacity in bytes */
	uint32_t producer_version; /* major << 16 | minor << 8 | patch */
	uint32_t padding;
	char     name[KEXTLOG_NAME_MAX]; /* producer, e.g. the kext's bundle id */
};

/* Kernel to user, one record.  message_length bytes of text follow the
 * fixed part (not NUL-terminated), then zeros up to header.length. */
struct kextlog_log_frame {
	struct kextlog_frame_header header;
	uint64_t seq;       /* dense per instance, from 1 */
	uint64_t time_ns;   /* wall clock, ns since the Unix epoch (UTC) */
	uint64_t mono_ns;   /* monotonic clock, ns since boot */
	uint64_t tid;       /* thread id */
	uint32_t pid;
	uint16_t message_length;
	uint16_t flags;     /* enum kextlog_log_flag */
	uint8_t  level;     /* enum kextlog_level */
	uint8_t  padding[7];
	char     process[KEXTLOG_PROCESS_NAME_MAX];
	char     message[];
};

/* Kernel to user: records first_seq..last_seq (inclusive) are missing. */
struct kextlog_loss_frame {
	struct kextlog_frame_header header;
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t count;         /* last_seq - first_seq + 1 */
	uint64_t first_time_ns; /* wall clock of the first and last missing record; 0 if unknown */
	uint64_t last_time_ns;
	uint32_t reason;        /* enum kextlog_loss_reason */
	uint32_t padding;
};

/* Kernel to user, about once a second while streaming: the producer's view
 * for `kextlog status`.  Not part of the seq stream; never acknowledged. */
struct kextlog_status_frame {
	struct kextlog_frame_header header;
	uint64_t next_seq;        /* seq the next message will get */
	uint64_t lost;            /* messages that found the ring full, since load */
	uint64_t time_ns;         /* the producer's wall clock when it sent this */
	uint32_t ring_records;    /* frames held now (sent or not, not yet acknowledged) */
	uint32_t ring_capacity;   /* records */
	uint32_t ring_bytes_used;
	uint32_t ring_bytes;
};

/* User to kernel: every seq up to and including seq is committed. */
struct kextlog_ack_frame {
	struct kextlog_frame_header header;
	uint64_t seq;
};

/* User to kernel, answer to HELLO: send from seq on (the store's high-water
 * mark + 1 for this instance). */
struct kextlog_resume_frame {
	struct kextlog_frame_header header;
	uint8_t  instance_id[KEXTLOG_ID_SIZE]; /* must match HELLO's */
	uint64_t seq;
};

#define KEXTLOG_FRAME_MAX \
	KEXTLOG_FRAME_ALIGNED((uint32_t)sizeof(struct kextlog_log_frame) + KEXTLOG_MESSAGE_MAX)

/* Result of kextlog_wire_check(). */
enum kextlog_wire_status {
	KEXTLOG_WIRE_OK          = 0,  /* a whole, well-formed frame */
	KEXTLOG_WIRE_SHORT       = 1,  /* need more bytes */
	KEXTLOG_WIRE_BAD_MAGIC   = 2,
	KEXTLOG_WIRE_BAD_VERSION = 3,
	KEXTLOG_WIRE_BAD_LENGTH  = 4,  /* not aligned, too small for its type, or over KEXTLOG_FRAME_MAX */
	KEXTLOG_WIRE_BAD_FIELD   = 5,  /* a field out of range (level, message length, seq range...) */
	KEXTLOG_WIRE_UNKNOWN     = 6,  /* well-formed header of a type this side does not know: skip it */
};

#if !defined(__cplusplus)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

#define KEXTLOG_ASSERT_LAYOUT(type, field, offset) \
	_Static_assert(__builtin_offsetof(struct type, field) == (offset), #type "." #field " moved")

_Static_assert(sizeof(struct kextlog_frame_header) == 16, "header size");
KEXTLOG_ASSERT_LAYOUT(kextlog_frame_header, version, 4);
KEXTLOG_ASSERT_LAYOUT(kextlog_frame_header, type, 6);
KEXTLOG_ASSERT_LAYOUT(kextlog_frame_header, length, 8);

_Static_assert(sizeof(struct kextlog_hello_frame) == 144, "HELLO size");
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, instance_id, 16);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, boot_id, 32);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, oldest_seq, 48);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, next_seq, 56);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, ring_records, 64);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, ring_bytes, 68);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, producer_version, 72);
KEXTLOG_ASSERT_LAYOUT(kextlog_hello_frame, name, 80);

_Static_assert(sizeof(struct kextlog_log_frame) == 96, "LOG size");
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, seq, 16);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, time_ns, 24);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, mono_ns, 32);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, tid, 40);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, pid, 48);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, message_length, 52);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, flags, 54);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, level, 56);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, process, 64);
KEXTLOG_ASSERT_LAYOUT(kextlog_log_frame, message, 96);

_Static_assert(sizeof(struct kextlog_loss_frame) == 64, "LOSS size");
KEXTLOG_ASSERT_LAYOUT(kextlog_loss_frame, first_seq, 16);
KEXTLOG_ASSERT_LAYOUT(kextlog_loss_frame, last_seq, 24);
KEXTLOG_ASSERT_LAYOUT(kextlog_loss_frame, count, 32);
KEXTLOG_ASSERT_LAYOUT(kextlog_loss_frame, first_time_ns, 40);
KEXTLOG_ASSERT_LAYOUT(kextlog_loss_frame, last_time_ns, 48);
KEXTLOG_ASSERT_LAYOUT(kextlog_loss_frame, reason, 56);

_Static_assert(sizeof(struct kextlog_status_frame) == 56, "STATUS size");
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, next_seq, 16);
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, lost, 24);
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, time_ns, 32);
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, ring_records, 40);
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, ring_capacity, 44);
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, ring_bytes_used, 48);
KEXTLOG_ASSERT_LAYOUT(kextlog_status_frame, ring_bytes, 52);

_Static_assert(sizeof(struct kextlog_ack_frame) == 24, "ACK size");
KEXTLOG_ASSERT_LAYOUT(kextlog_ack_frame, seq, 16);

_Static_assert(sizeof(struct kextlog_resume_frame) == 40, "RESUME size");
KEXTLOG_ASSERT_LAYOUT(kextlog_resume_frame, instance_id, 16);
KEXTLOG_ASSERT_LAYOUT(kextlog_resume_frame, seq, 32);

_Static_assert(KEXTLOG_FRAME_MAX == 1120, "largest frame");
_Static_assert(KEXTLOG_MESSAGE_MAX <= UINT16_MAX, "message_length is 16 bits");
/* Sums over a whole store cannot overflow: each instance accounts for at
 * most KEXTLOG_SEQ_MAX seqs (stored, lost or filtered, once each). */
_Static_assert(KEXTLOG_INSTANCES_MAX * KEXTLOG_SEQ_MAX < (uint64_t)1 << 63,
    "a store's counts fit in 64 bits");
_Static_assert(((KEXTLOG_INSTANCES_MAX << KEXTLOG_SEQ_BITS) | KEXTLOG_SEQ_MAX) < (uint64_t)1 << 63,
    "record keys fit in 63 bits");
#endif

#endif /* KEXTLOG_WIRE_H */
