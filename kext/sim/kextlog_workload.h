/*
 * kextlog_workload.h - a KAuth-like stream of log messages.
 *
 * Stands in for the seed kext's KAuth listeners: process, vnode, fileop and
 * a few generic-scope events from a few thousand processes, at all five
 * levels, with the message lengths real listeners print.  Deterministic for
 * a seed.  Portable like the core (no allocation, nothing beyond
 * kextlog_port.h), so a kext can link it as well as the simulator.
 */
#ifndef KEXTLOG_WORKLOAD_H
#define KEXTLOG_WORKLOAD_H

#include "kextlog_core.h"

#define KEXTLOG_WORKLOAD_PROCESSES 3000u

struct kextlog_workload_process {
	uint32_t pid;
	uint8_t  name;    /* index in the workload's process name table */
	uint8_t  threads; /* tids are derived from the pid and 0..threads-1 */
};

struct kextlog_workload {
	uint64_t rng;                 /* xorshift64* state, never 0 */
	struct kextlog_task current;  /* the task of the event being logged */
	struct kextlog_workload_process processes[KEXTLOG_WORKLOAD_PROCESSES];
};

void kextlog_workload_init(struct kextlog_workload *workload, uint64_t seed);

/* Picks a task (sets workload->current) and logs one event through
 * log_printf(), which the platform defines.  Debug events use log_debug(), so
 * KEXTLOG_RELEASE builds drop them, as in the seed. */
void kextlog_workload_event(struct kextlog_workload *workload);

#endif /* KEXTLOG_WORKLOAD_H */
