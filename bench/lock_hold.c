/*
 * lock_hold.c - how long the core holds its lock, and how long a logging
 * thread waits for it, while a full ring is replayed to a client.
 *
 *     lock_hold [RECORDS]
 *
 * The core on the simulator's platform: a mutex, the clocks, the KAuth-like
 * workload, a SOCK_SEQPACKET client with a 4 MiB buffer (a DGRAM kernel
 * control).  The ring (RECORDS, 100,000 by default: the simulator's) fills
 * while no client is connected; then a client connects and resumes from
 * seq 1, and reads as fast as it can, acknowledging every 10,000 records as
 * ingest does after a commit.  Meanwhile a timer thread ticks every 10 ms
 * (the simulator's serve loop) and a logging thread logs and pumps every
 * 100 us (log_printf).  Five replays; prints one JSON line with the medians
 * (and the worst) of each replay's longest single hold of the lock by any
 * thread, in wall time and in the holder's CPU time (the work done under the
 * lock, without the preemptions a loaded machine adds), and of the logging
 * thread's longest wait for it, in microseconds; and the replay's duration.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kextlog.h"
#include "kextlog_codec.h"
#include "kextlog_core.h"
#include "kextlog_workload.h"

#define ROUNDS         5
#define SOCKET_BYTES   (4 << 20)   /* the simulator's SO_SNDBUF */
#define READ_BYTES     (256 << 10) /* ingest's reads */
#define ACK_EVERY      10000u
#define TICK_NS        10000000ull /* the simulator's serve loop */
#define LOG_EVERY_NS   100000ull

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct kextlog_core core;
static struct kextlog_workload workload;
static int producer_fd, client_fd;
static atomic_bool replaying;
static _Thread_local bool logging_thread;
static uint64_t acquired_ns;       /* under the lock */
static uint64_t acquired_cpu_ns;   /* under the lock: the holder's CPU time then */
static uint64_t longest_hold_ns;   /* under the lock */
static uint64_t longest_work_ns;   /* under the lock: CPU time, without preemption */
static uint64_t longest_wait_ns;   /* the logging thread's, under the lock */

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static void bench_lock(void *context)
{
	uint64_t asked = now_ns();

	(void)context;
	pthread_mutex_lock(&lock);
	acquired_ns = now_ns();
	acquired_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	if (logging_thread && acquired_ns - asked > longest_wait_ns)
		longest_wait_ns = acquired_ns - asked;
}

static void bench_unlock(void *context)
{
	uint64_t held = now_ns() - acquired_ns;
	uint64_t work = clock_ns(CLOCK_THREAD_CPUTIME_ID) - acquired_cpu_ns;

	(void)context;
	if (held > longest_hold_ns)
		longest_hold_ns = held;
	if (work > longest_work_ns)
		longest_work_ns = work;
	pthread_mutex_unlock(&lock);
}

static uint64_t wall(void *context)
{
	(void)context;
	return clock_ns(CLOCK_REALTIME);
}

static uint64_t mono(void *context)
{
	(void)context;
	return now_ns();
}

static void task(void *context, struct kextlog_task *current)
{
	(void)context;
	*current = workload.current;
}

/* The simulator's send: never waits; no room means the frames stay. */
static uint32_t send_frames(void *context, const uint8_t *data, uint32_t length)
{
	ssize_t sent = send(producer_fd, data, length, MSG_DONTWAIT | MSG_NOSIGNAL);

	(void)context;
	return sent > 0 ? (uint32_t)sent : 0;
}

static void quiet(void *context, uint32_t level, const char *what, const char *message)
{
	(void)context;
	(void)level;
	(void)what;
	(void)message;
}

static const struct kextlog_ops ops = {
	.lock = bench_lock,
	.unlock = bench_unlock,
	.wall_time_ns = wall,
	.mono_time_ns = mono,
	.current_task = task,
	.send = send_frames,
	.last_resort = quiet,
};

/* The workload logs through these, as the kext's code does. */
void log_printf(uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	kextlog_core_vlog(&core, level, format, arguments);
	va_end(arguments);
}

bool kextlog_ratelimit(struct kextlog_ratelimit *state, const char *where)
{
	return kextlog_core_ratelimit(&core, state, where);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec pause = { .tv_sec = 0, .tv_nsec = (long)ns };

	nanosleep(&pause, NULL);
}

static void *tick(void *argument)
{
	(void)argument;
	while (atomic_load(&replaying)) {
		kextlog_core_tick(&core);
		sleep_ns(TICK_NS);
	}
	return NULL;
}

static void *log_steadily(void *argument)
{
	(void)argument;
	logging_thread = true;
	while (atomic_load(&replaying)) {
		log_printf(KEXTLOG_LEVEL_INFO, "kauth: fileop close path=%s", "/private/var/db/x");
		kextlog_core_pump(&core);
		sleep_ns(LOG_EVERY_NS);
	}
	return NULL;
}

/* Reads LOG frames until `records` of them have come, acknowledging as it goes. */
static void read_replay(uint64_t records)
{
	static uint8_t buffer[READ_BYTES];
	uint64_t got = 0, acked = 0, last_seq = 0;

	while (got < records) {
		ssize_t length = recv(client_fd, buffer, sizeof buffer, 0);
		uint32_t offset = 0, frame_length = 0;

		if (length <= 0) {
			perror("lock_hold: recv");
			exit(1);
		}
		while (offset < (uint32_t)length &&
		    kextlog_wire_check(buffer + offset, (size_t)length - offset, &frame_length) ==
		    KEXTLOG_WIRE_OK) {
			struct kextlog_frame_header header;

			memcpy(&header, buffer + offset, sizeof header);
			if (header.type == KEXTLOG_FRAME_LOG || header.type == KEXTLOG_FRAME_LOSS) {
				last_seq = kextlog_frame_last_seq((const void *)(buffer + offset));
				got += header.type == KEXTLOG_FRAME_LOG;
			}
			offset += frame_length;
		}
		if (got - acked >= ACK_EVERY || got >= records) {
			struct kextlog_ack_frame ack;

			kextlog_core_receive(&core, (const uint8_t *)&ack,
			    kextlog_encode_ack(&ack, last_seq));
			acked = got;
		}
	}
}

static int compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	uint32_t records = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 100000;
	uint32_t ring_bytes = kextlog_ring_bytes(records);
	struct kextlog_config config = { .min_level = KEXTLOG_LEVEL_TRACE,
		.send_batch_bytes = 65536, .resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS,
		.status_interval_ns = KEXTLOG_STATUS_INTERVAL_NS, .name = "bench" };
	uint8_t *ring = malloc(ring_bytes);
	uint64_t hold[ROUNDS], work[ROUNDS], wait[ROUNDS], replay[ROUNDS];

	if (ring == NULL)
		return 1;
	kextlog_workload_init(&workload, 1);
	for (int round = 0; round < ROUNDS; round++) {
		int fds[2], size = SOCKET_BYTES;
		struct kextlog_resume_frame resume;
		pthread_t ticker, logger;
		uint64_t started;

		kextlog_core_init(&core, &ops, NULL, &config, ring, ring_bytes, records);
		while (core.next_seq <= records)
			kextlog_workload_event(&workload);
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) != 0 ||
		    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0) {
			perror("lock_hold: socket");
			return 1;
		}
		producer_fd = fds[0];
		client_fd = fds[1];
		kextlog_core_connect(&core);

		longest_hold_ns = longest_work_ns = longest_wait_ns = 0;
		atomic_store(&replaying, true);
		pthread_create(&ticker, NULL, tick, NULL);
		pthread_create(&logger, NULL, log_steadily, NULL);
		started = now_ns();
		kextlog_core_receive(&core, (const uint8_t *)&resume,
		    kextlog_encode_resume(&resume, config.instance_id, 1));
		read_replay(records);
		replay[round] = now_ns() - started;
		atomic_store(&replaying, false);
		pthread_join(ticker, NULL);
		pthread_join(logger, NULL);
		kextlog_core_disconnect(&core);
		close(producer_fd);
		close(client_fd);
		hold[round] = longest_hold_ns;
		work[round] = longest_work_ns;
		wait[round] = longest_wait_ns;
	}
	qsort(hold, ROUNDS, sizeof hold[0], compare);
	qsort(work, ROUNDS, sizeof work[0], compare);
	qsort(wait, ROUNDS, sizeof wait[0], compare);
	qsort(replay, ROUNDS, sizeof replay[0], compare);
	printf("{\"records\": %u, \"longest_hold_us\": %.1f, \"worst_hold_us\": %.1f, "
	    "\"longest_work_us\": %.1f, \"worst_work_us\": %.1f, "
	    "\"longest_logger_wait_us\": %.1f, \"worst_logger_wait_us\": %.1f, "
	    "\"replay_ms\": %.1f}\n",
	    records, (double)hold[ROUNDS / 2] / 1e3, (double)hold[ROUNDS - 1] / 1e3,
	    (double)work[ROUNDS / 2] / 1e3, (double)work[ROUNDS - 1] / 1e3,
	    (double)wait[ROUNDS / 2] / 1e3, (double)wait[ROUNDS - 1] / 1e3,
	    (double)replay[ROUNDS / 2] / 1e6);
	free(ring);
	return 0;
}
