/*
 * kextlog_scan.h - reading many frames in one call: the daemon's hot path.
 *
 * kextlog_wire_check() applied to every frame of a read, with the fields a
 * reader needs copied into fixed-size entries that Python unpacks in bulk
 * (struct.iter_unpack) instead of touching each frame through cffi; new
 * process names are numbered in a table the reader keeps between calls.  Not
 * part of the kext: only receivers of LOG frames use it.
 */
#ifndef KEXTLOG_SCAN_H
#define KEXTLOG_SCAN_H

#include "kextlog_codec.h"

/* Process names repeat: each distinct one gets a small number, once, so the
 * reader decodes it once.  An open-addressing table of slot numbers. */
#define KEXTLOG_SCAN_NAMES 1024u
#define KEXTLOG_SCAN_NO_NAME 0xffffu /* the table is full: read the name itself */

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
	uint32_t offset;         /* of the frame, from the start of the scanned data */
	uint32_t pid;
	uint16_t type;           /* every known type gets an entry; see offset for the rest */
	uint16_t flags;
	uint16_t message_length;
	uint16_t process;        /* its number in the names table, or KEXTLOG_SCAN_NO_NAME */
	uint8_t  level;
	uint8_t  process_length; /* bytes before the first NUL of the process name */
};

/* Describes the whole, valid frames at the start of data, at most
 * max_entries of them; frames of unknown types are skipped.  Stops at the
 * first incomplete frame (status SHORT) or malformed one (its status), or
 * when entries are full or the data is used up (status OK).  *consumed is
 * the bytes of the frames described and skipped. */
size_t kextlog_wire_scan(const uint8_t *data, size_t available,
    struct kextlog_scan_names *names, struct kextlog_scan_entry *entries, size_t max_entries,
    size_t *consumed, enum kextlog_wire_status *status);

#endif /* KEXTLOG_SCAN_H */
