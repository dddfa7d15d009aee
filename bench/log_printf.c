/*
 * log_printf.c - what one log_printf costs in the portable core, next to a
 * bare vsnprintf of the same message.
 *
 *     log_printf [CALLS]
 *
 * The core runs as in the kext: a mutex, the clocks, a connected client that
 * takes every frame (the kext's log_printf pumps after each message), and an
 * ACK every 1,000 messages so the ring never fills.  Prints one JSON line:
 * nanoseconds per call for both, and their ratio (medians of 5 rounds).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kextlog_codec.h"
#include "kextlog_core.h"

#define ROUNDS 5

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t sink; /* keeps the compiler from dropping the baseline */

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void bench_lock(void *context) { (void)context; pthread_mutex_lock(&lock); }
static void bench_unlock(void *context) { (void)context; pthread_mutex_unlock(&lock); }
static uint64_t wall(void *context) { (void)context; return clock_ns(CLOCK_REALTIME); }
static uint64_t mono(void *context) { (void)context; return clock_ns(CLOCK_MONOTONIC); }

static void task(void *context, struct kextlog_task *current)
{
	(void)context;
	current->pid = 312;
	current->tid = 0x1a2b3c;
	memcpy(current->name, "mds_stores", sizeof "mds_stores");
}

static uint32_t take_all(void *context, const uint8_t *data, uint32_t length)
{
	(void)context;
	sink += data[0];
	return length;
}

static void never(void *context, uint32_t level, const char *what, const char *message)
{
	(void)context;
	(void)level;
	fprintf(stderr, "log_printf: unexpected last resort: %s: %s\n", what, message);
	exit(1);
}

static const struct kextlog_ops ops = {
	.lock = bench_lock,
	.unlock = bench_unlock,
	.wall_time_ns = wall,
	.mono_time_ns = mono,
	.current_task = task,
	.send = take_all,
	.last_resort = never,
};

static const char *const path = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation";

static void baseline(char *buffer, size_t size, const char *format, ...) __printflike(3, 4);
static void baseline(char *buffer, size_t size, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	sink += (uint64_t)vsnprintf(buffer, size, format, arguments);
	va_end(arguments);
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	uint64_t calls = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
	uint32_t records = 4096, ring_bytes = kextlog_ring_bytes(records);
	struct kextlog_config config = { .min_level = KEXTLOG_LEVEL_TRACE,
		.send_batch_bytes = 65536, .resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS,
		.status_interval_ns = UINT64_MAX, .name = "bench" };
	uint8_t *ring = malloc(ring_bytes);
	struct kextlog_core core;
	struct kextlog_resume_frame resume;
	struct kextlog_ack_frame ack;
	double core_ns[ROUNDS], bare_ns[ROUNDS];
	char buffer[KEXTLOG_STACK_MESSAGE + 1];

	if (ring == NULL)
		return 1;
	kextlog_core_init(&core, &ops, NULL, &config, ring, ring_bytes, records);
	kextlog_core_connect(&core);
	kextlog_core_receive(&core, (const uint8_t *)&resume,
	    kextlog_encode_resume(&resume, config.instance_id, 1));
	for (int round = 0; round < ROUNDS; round++) {
		uint64_t start = clock_ns(CLOCK_MONOTONIC);

		for (uint64_t i = 1; i <= calls; i++) {
			kextlog_core_log(&core, KEXTLOG_LEVEL_INFO,
			    "vnode: KAUTH_VNODE_READ_DATA vp=0x%llx path=%s pid=%d",
			    0xffffff801c1b6720ull + i, path, (int)(i & 0xffff));
			kextlog_core_pump(&core);
			if (i % 1000 == 0)
				kextlog_core_receive(&core, (const uint8_t *)&ack,
				    kextlog_encode_ack(&ack, core.next_seq - 1));
		}
		core_ns[round] = (double)(clock_ns(CLOCK_MONOTONIC) - start) / (double)calls;
		start = clock_ns(CLOCK_MONOTONIC);
		for (uint64_t i = 1; i <= calls; i++)
			baseline(buffer, sizeof buffer,
			    "vnode: KAUTH_VNODE_READ_DATA vp=0x%llx path=%s pid=%d",
			    0xffffff801c1b6720ull + i, path, (int)(i & 0xffff));
		bare_ns[round] = (double)(clock_ns(CLOCK_MONOTONIC) - start) / (double)calls;
	}
	qsort(core_ns, ROUNDS, sizeof core_ns[0], compare);
	qsort(bare_ns, ROUNDS, sizeof bare_ns[0], compare);
	printf("{\"calls\": %llu, \"log_printf_ns\": %.1f, \"vsnprintf_ns\": %.1f, \"ratio\": %.2f}\n",
	    (unsigned long long)calls, core_ns[ROUNDS / 2], bare_ns[ROUNDS / 2],
	    core_ns[ROUNDS / 2] / bare_ns[ROUNDS / 2]);
	free(ring);
	return 0;
}
