/*
 * kextlog_scan.c - reading many frames in one call (see kextlog_scan.h).
 */
#include "kextlog_scan.h"

/* The number of a process name (NUL-padded to KEXTLOG_PROCESS_NAME_MAX). */
static uint16_t name_number(struct kextlog_scan_names *names, const char *name)
{
	uint32_t hash = 2166136261u; /* FNV-1a */
	uint32_t mask = 2 * KEXTLOG_SCAN_NAMES - 1;

	for (uint32_t i = 0; i < KEXTLOG_PROCESS_NAME_MAX; i++)
		hash = (hash ^ (uint8_t)name[i]) * 16777619u;
	for (uint32_t slot = hash & mask;; slot = (slot + 1) & mask) {
		uint16_t number = names->slots[slot];

		if (number == 0) {
			if (names->count == KEXTLOG_SCAN_NAMES)
				return KEXTLOG_SCAN_NO_NAME;
			memcpy(names->names[names->count], name, KEXTLOG_PROCESS_NAME_MAX);
			names->slots[slot] = ++names->count;
			return (uint16_t)(names->count - 1);
		}
		if (memcmp(names->names[number - 1], name, KEXTLOG_PROCESS_NAME_MAX) == 0)
			return (uint16_t)(number - 1);
	}
}

static void describe(const uint8_t *frame, uint32_t offset, struct kextlog_scan_names *names,
    struct kextlog_scan_entry *entry)
{
	struct kextlog_frame_header header;

	memcpy(&header, frame, sizeof header);
	memset(entry, 0, sizeof *entry);
	entry->offset = offset;
	entry->type = header.type;
	if (header.type == KEXTLOG_FRAME_LOG) {
		struct kextlog_log_frame log;
		uint8_t length = 0;

		memcpy(&log, frame, sizeof log);
		while (length < KEXTLOG_PROCESS_NAME_MAX && log.process[length] != '\0')
			length++;
		entry->seq = log.seq;
		entry->time_ns = log.time_ns;
		entry->mono_ns = log.mono_ns;
		entry->tid = log.tid;
		entry->pid = log.pid;
		entry->flags = log.flags;
		entry->message_length = log.message_length;
		entry->level = log.level;
		entry->process_length = length;
		entry->process = name_number(names, log.process);
	}
}

size_t kextlog_wire_scan(const uint8_t *data, size_t available,
    struct kextlog_scan_names *names, struct kextlog_scan_entry *entries, size_t max_entries,
    size_t *consumed, enum kextlog_wire_status *status)
{
	size_t offset = 0, count = 0;

	*status = KEXTLOG_WIRE_OK;
	while (offset < available && count < max_entries) {
		uint32_t length = 0;
		enum kextlog_wire_status check =
		    kextlog_wire_check(data + offset, available - offset, &length);

		if (check == KEXTLOG_WIRE_UNKNOWN && length <= available - offset) {
			offset += length;
			continue;
		}
		if (check != KEXTLOG_WIRE_OK) {
			*status = check == KEXTLOG_WIRE_UNKNOWN ? KEXTLOG_WIRE_SHORT : check;
			break;
		}
		describe(data + offset, (uint32_t)offset, names, &entries[count++]);
		offset += length;
	}
	*consumed = offset;
	return count;
}
