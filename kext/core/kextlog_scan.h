/*
 * kextlog_scan.h - reading many frames in one call: the daemon's hot path.
 *
 * kextlog_wire_check() applied to every frame of a read, with the fields a
 * reader needs copied into fixed-size entries that Python unpacks in bulk
 * (struct.iter_unpack) instead of touching each frame through cffi; new
 * process names are numbered in a table the reader keeps between calls.  Not
 * part of the kext: only receivers of LOG frames use it.
 *
 * Bytes that are not a usable frame are skipped, never stop the scan: each
 * run of them becomes one SKIPPED entry saying how many bytes and why, and
 * the scan resynchronises at the next place where a valid frame begins
 * (docs/protocol.md, "Malformed input").
 */
#ifndef KEXTLOG_SCAN_H
#define KEXTLOG_SCAN_H

#include "kextlog_codec.h"

/* Process names repeat: each distinct one gets a small number, once, so the
 * reader decodes it once.  An open-addressing table of slot numbers. */
#define KEXTLOG_SCAN_NAMES 1024u
#define KEXTLOG_SCAN_NO_NAME 0xffffu /* the table is full: read the name itself */

/* The type of an entry that describes skipped bytes (frame types start at 1). */
#define KEXTLOG_SCAN_SKIPPED 0u

/* Why bytes were skipped: an enum kextlog_wire_status (BAD_MAGIC,
 * BAD_VERSION, BAD_LENGTH, BAD_FIELD, UNKNOWN) or one of these. */
enum kextlog_scan_problem {
	KEXTLOG_SCAN_TRUNCATED    = 16, /* a frame cut short: by its datagram's end, or by the next frame */
	KEXTLOG_SCAN_OUT_OF_RANGE = 17, /* a value past the field bounds of kextlog_wire.h */
};

struct kextlog_scan_names {
	uint16_t count;
	uint16_t slots[2 * KEXTLOG_SCAN_NAMES]; /* name number + 1; 0 is free */
	char     names[KEXTLOG_SCAN_NAMES][KEXTLOG_PROCESS_NAME_MAX];
};

struct kextlog_scan_entry {
	uint64_t seq;            /* LOG: its seq */
	uint64_t time_ns;
	uint64_t mono_ns;
	uint64_t tid;
	uint32_t offset;         /* of the frame or skipped bytes, from the start of data */
	uint32_t pid;
	uint16_t type;           /* HELLO, LOG, LOSS, STATUS or KEXTLOG_SCAN_SKIPPED */
	uint16_t flags;
	uint16_t message_length;
	uint16_t process;        /* its number in the names table, or KEXTLOG_SCAN_NO_NAME */
	uint8_t  level;
	uint8_t  process_length; /* bytes before the first NUL of the process name */
	uint8_t  message_nul;    /* LOG: the message holds a NUL byte */
	uint8_t  problem;        /* SKIPPED: why */
	uint32_t skipped;        /* SKIPPED: how many bytes */
};

/* Describes the frames of data from *offset on, and the bytes it skips, in
 * at most max_entries entries, and moves *offset past them.
 *
 * ends: where each datagram of data ends, ascending, the last at available
 * (end_count of them), for a datagram connection: a frame never spans two
 * datagrams, and one cut by its datagram's end is skipped as truncated.  NULL
 * for a stream: there a frame may be cut by the end of the data, and the
 * scan stops before it (the rest is on its way).
 *
 * Returns the number of entries.  Fewer than max_entries: everything up to
 * available is described, except on a stream the bytes from *offset on,
 * which wait for more. */
size_t kextlog_wire_scan(const uint8_t *data, size_t available, const uint32_t *ends,
    size_t end_count, size_t *offset, struct kextlog_scan_names *names,
    struct kextlog_scan_entry *entries, size_t max_entries);

#endif /* KEXTLOG_SCAN_H */
