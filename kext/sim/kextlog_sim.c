/*
 * kextlog_sim.c - the host simulator (see kextlog_sim.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kextlog.h"
#include "kextlog_sim.h"
#include "kextlog_workload.h"

#define KEXTLOG_SIM_NAME     "kextlog.simulator"
#define KEXTLOG_SIM_VERSION  0x000100u
#define SERVE_TICK_MS        10     /* resume timeout and retry granularity */
#define BURST_FAST           256    /* records per pump at full speed */
#define BURST_MAX            1024   /* most records per pump when catching up with the rate */
#define SEND_BATCH_BYTES     65536u /* most bytes per datagram */
#define SOCKET_BUFFER_BYTES  (4 << 20)

struct kextlog_sim {
	struct kextlog_sim_config config;
	char            socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct kextlog_core core;
	uint8_t        *ring_memory;
	pthread_mutex_t core_lock;
	struct kextlog_workload workload;
	FILE           *tap;

	int             listen_fd;
	int             client_fd;    /* -1 when no client; written by the server thread only */
	int             wake[2];      /* a pipe that interrupts the server's poll */

	pthread_mutex_t state_lock;   /* guards the fields below */
	pthread_cond_t  state_changed;
	int             stopping;
	int             generating;
	int             finished;
	uint64_t        generated;

	pthread_t       generator;
	pthread_t       server;
	int             threads_started;
};

/* log_printf() is global, as in the kext: one simulator per process. */
static struct kextlog_sim *active_sim;

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void sim_lock(void *context)
{
	pthread_mutex_lock(&((struct kextlog_sim *)context)->core_lock);
}

static void sim_unlock(void *context)
{
	pthread_mutex_unlock(&((struct kextlog_sim *)context)->core_lock);
}

static uint64_t sim_wall_time(void *context)
{
	(void)context;
	return clock_ns(CLOCK_REALTIME);
}

static uint64_t sim_mono_time(void *context)
{
	(void)context;
	return clock_ns(CLOCK_MONOTONIC);
}

static void sim_current_task(void *context, struct kextlog_task *task)
{
	*task = ((struct kextlog_sim *)context)->workload.current;
}

/* The kext's ctl_enqueuedata: never waits; no room means the frames stay. */
static uint32_t sim_send(void *context, const uint8_t *data, uint32_t length)
{
	struct kextlog_sim *sim = context;
	ssize_t sent = send(sim->client_fd, data, length, MSG_DONTWAIT | MSG_NOSIGNAL);

	/* A gone client is noticed by the server thread's poll. */
	return sent > 0 ? (uint32_t)sent : 0;
}

/* The kext's printf: one line each. */
static void sim_last_resort(void *context, uint32_t level, const char *what,
    const char *message)
{
	struct kextlog_sim *sim = context;

	(void)level; /* named in what, as the kext's printf has it */
	if (sim->config.last_resort_fd >= 0)
		dprintf(sim->config.last_resort_fd, "kextlog: %s: %s\n", what, message);
}

static void sim_tap(void *context, const struct kextlog_log_frame *frame)
{
	struct kextlog_sim *sim = context;

	if (sim->tap != NULL)
		fwrite(frame, frame->header.length, 1, sim->tap);
}

static void *sim_alloc(void *context, size_t size)
{
	(void)context;
	return malloc(size);
}

static void sim_free(void *context, void *memory, size_t size)
{
	(void)context;
	(void)size;
	free(memory);
}

static const struct kextlog_ops sim_ops = {
	.lock = sim_lock,
	.unlock = sim_unlock,
	.wall_time_ns = sim_wall_time,
	.mono_time_ns = sim_mono_time,
	.current_task = sim_current_task,
	.send = sim_send,
	.last_resort = sim_last_resort,
	.tap = sim_tap,
	.alloc = sim_alloc,
	.free = sim_free,
};

void log_printf(uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	kextlog_core_vlog(&active_sim->core, level, format, arguments);
	va_end(arguments);
}

bool kextlog_ratelimit(struct kextlog_ratelimit *state, const char *where)
{
	return kextlog_core_ratelimit(&active_sim->core, state, where);
}

static void set_state(struct kextlog_sim *sim, int *field, int value)
{
	pthread_mutex_lock(&sim->state_lock);
	*field = value;
	pthread_cond_broadcast(&sim->state_changed);
	pthread_mutex_unlock(&sim->state_lock);
}

static int stopping(struct kextlog_sim *sim)
{
	int result;

	pthread_mutex_lock(&sim->state_lock);
	result = sim->stopping;
	pthread_mutex_unlock(&sim->state_lock);
	return result;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec pause = { .tv_sec = (time_t)(ns / 1000000000ull),
		                  .tv_nsec = (long)(ns % 1000000000ull) };

	nanosleep(&pause, NULL);
}

static void wake_server(struct kextlog_sim *sim)
{
	ssize_t ignored = write(sim->wake[1], "w", 1); /* a full pipe wakes it too */

	(void)ignored;
}

static void drain_wakes(struct kextlog_sim *sim)
{
	char drain[64];
	ssize_t ignored = read(sim->wake[0], drain, sizeof drain);

	(void)ignored;
}

/* Records at the configured rate, in bursts, each burst then pumped: the
 * kext's callers log one message at a time, this batches to keep up. */
static void *generate(void *argument)
{
	struct kextlog_sim *sim = argument;
	const struct kextlog_sim_config *config = &sim->config;
	uint64_t start = clock_ns(CLOCK_MONOTONIC);
	uint64_t generated = 0;

	while (!stopping(sim)) {
		uint64_t elapsed = clock_ns(CLOCK_MONOTONIC) - start;
		uint64_t burst = BURST_FAST;

		if ((config->count && generated >= config->count) ||
		    (config->duration_ns && elapsed >= config->duration_ns))
			break;
		if (config->rate) {
			uint64_t due = (uint64_t)((double)config->rate * (double)elapsed / 1e9);

			if (due <= generated) {
				uint64_t next = (uint64_t)((double)(generated + 1) * 1e9 /
				    (double)config->rate);
				sleep_ns(next > elapsed ? next - elapsed : 0);
				continue;
			}
			burst = due - generated < BURST_MAX ? due - generated : BURST_MAX;
		}
		if (config->count && burst > config->count - generated)
			burst = config->count - generated;
		for (uint64_t i = 0; i < burst; i++)
			kextlog_workload_event(&sim->workload);
		generated += burst;
		if (sim->tap != NULL)
			fflush(sim->tap); /* readers follow the file as it grows */
		pthread_mutex_lock(&sim->state_lock);
		sim->generated = generated;
		pthread_mutex_unlock(&sim->state_lock);
		kextlog_core_pump(&sim->core);
	}
	set_state(sim, &sim->generating, 0);
	wake_server(sim);
	return NULL;
}

static void drop_client(struct kextlog_sim *sim)
{
	/* The core stops sending before the descriptor goes away. */
	kextlog_core_disconnect(&sim->core);
	close(sim->client_fd);
	sim->client_fd = -1;
}

static void accept_client(struct kextlog_sim *sim)
{
	int fd = accept4(sim->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int size = SOCKET_BUFFER_BYTES;

	if (fd < 0)
		return;
	if (sim->client_fd >= 0) {
		close(fd); /* one client at a time, as the kext's control (EISCONN) */
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	sim->client_fd = fd;
	kextlog_core_connect(&sim->core);
}

static void read_client(struct kextlog_sim *sim)
{
	uint8_t buffer[4096];
	ssize_t got = recv(sim->client_fd, buffer, sizeof buffer, MSG_DONTWAIT);

	if (got > 0)
		kextlog_core_receive(&sim->core, buffer, (size_t)got);
	else if (got == 0 || (errno != EAGAIN && errno != EINTR))
		drop_client(sim);
}

static void *serve(void *argument)
{
	struct kextlog_sim *sim = argument;

	while (!stopping(sim)) {
		struct pollfd fds[3] = {
			{ .fd = sim->wake[0], .events = POLLIN },
			{ .fd = sim->listen_fd, .events = POLLIN },
			{ .fd = sim->client_fd, .events = POLLIN },
		};
		int generating;

		if (sim->client_fd >= 0 && kextlog_core_backlogged(&sim->core))
			fds[2].events |= POLLOUT;
		if (poll(fds, 3, SERVE_TICK_MS) < 0 && errno != EINTR)
			break;
		if (fds[0].revents & POLLIN)
			drain_wakes(sim);
		if (fds[1].revents & POLLIN)
			accept_client(sim);
		if (sim->client_fd >= 0 && fds[2].fd == sim->client_fd) {
			if (fds[2].revents & (POLLIN | POLLHUP | POLLERR))
				read_client(sim);
			else if (fds[2].revents & POLLOUT)
				kextlog_core_pump(&sim->core);
		}
		kextlog_core_tick(&sim->core);

		pthread_mutex_lock(&sim->state_lock);
		generating = sim->generating;
		pthread_mutex_unlock(&sim->state_lock);
		if (!generating && kextlog_core_idle(&sim->core)) {
			set_state(sim, &sim->finished, 1);
			break;
		}
	}
	if (sim->client_fd >= 0)
		drop_client(sim);
	return NULL;
}

static int fail(char *error, size_t error_size, const char *what, int code)
{
	snprintf(error, error_size, "%s: %s", what, strerror(code));
	return -1;
}

/* The kernel's boot session id, read as Linux publishes it. */
static void read_boot_id(uint8_t id[KEXTLOG_ID_SIZE])
{
	char text[64];
	FILE *file = fopen("/proc/sys/kernel/random/boot_id", "r");
	size_t n = 0;

	memset(id, 0, KEXTLOG_ID_SIZE);
	if (file == NULL)
		return;
	if (fgets(text, sizeof text, file) != NULL) {
		for (const char *c = text; *c != '\0' && n < 2 * KEXTLOG_ID_SIZE; c++) {
			unsigned value;

			if (sscanf(c, "%1x", &value) != 1)
				continue;
			id[n / 2] = (uint8_t)(id[n / 2] | (value << (n % 2 ? 0 : 4)));
			n++;
		}
	}
	fclose(file);
}

/* Refuses a path where a live simulator (or anything) listens; removes a
 * stale socket file left by one that died. */
static int claim_socket_path(const struct sockaddr_un *address, int type, char *error,
    size_t error_size)
{
	struct stat info;
	int probe;

	if (lstat(address->sun_path, &info) != 0)
		return 0;
	if (!S_ISSOCK(info.st_mode)) {
		snprintf(error, error_size, "%s exists and is not a socket", address->sun_path);
		return -1;
	}
	probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (const void *)address, sizeof *address) == 0) {
		close(probe);
		snprintf(error, error_size, "%s is in use by another producer", address->sun_path);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(address->sun_path);
	return 0;
}

static int open_listener(struct kextlog_sim *sim, char *error, size_t error_size)
{
	struct sockaddr_un address = { .sun_family = AF_UNIX };
	int type = sim->config.stream ? SOCK_STREAM : SOCK_SEQPACKET;

	if (strlen(sim->config.socket_path) >= sizeof address.sun_path) {
		snprintf(error, error_size, "socket path is longer than %zu bytes",
		    sizeof address.sun_path - 1);
		return -1;
	}
	strcpy(address.sun_path, sim->config.socket_path);
	strcpy(sim->socket_path, sim->config.socket_path);
	if (claim_socket_path(&address, type, error, error_size) != 0)
		return -1;
	sim->listen_fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sim->listen_fd < 0)
		return fail(error, error_size, "socket", errno);
	if (bind(sim->listen_fd, (const void *)&address, sizeof address) != 0)
		return fail(error, error_size, sim->socket_path, errno);
	/* Private before anyone can connect: only listen() admits clients. */
	if (chmod(sim->socket_path, 0600) != 0 || listen(sim->listen_fd, 4) != 0)
		return fail(error, error_size, sim->socket_path, errno);
	return 0;
}

static void release_resources(struct kextlog_sim *sim)
{
	if (sim->listen_fd >= 0) {
		close(sim->listen_fd);
		unlink(sim->socket_path);
	}
	if (sim->wake[0] >= 0) {
		close(sim->wake[0]);
		close(sim->wake[1]);
	}
	if (sim->tap != NULL)
		fclose(sim->tap);
	pthread_mutex_destroy(&sim->core_lock);
	pthread_mutex_destroy(&sim->state_lock);
	pthread_cond_destroy(&sim->state_changed);
	free(sim->ring_memory);
	free(sim);
	active_sim = NULL;
}

int kextlog_sim_start(const struct kextlog_sim_config *config, struct kextlog_sim **out,
    char *error, size_t error_size)
{
	struct kextlog_config core_config = {
		.producer_version = KEXTLOG_SIM_VERSION,
		.min_level = config->min_level,
		.send_batch_bytes = SEND_BATCH_BYTES,
		.resume_timeout_ns = config->resume_timeout_ns,
		.status_interval_ns = KEXTLOG_STATUS_INTERVAL_NS,
	};
	uint32_t ring_bytes = kextlog_ring_bytes(config->ring_records);
	struct kextlog_sim *sim;

	if (active_sim != NULL) {
		snprintf(error, error_size, "a simulator already runs in this process");
		return -1;
	}
	sim = calloc(1, sizeof *sim);
	if (sim == NULL)
		return fail(error, error_size, "simulator", ENOMEM);
	active_sim = sim;
	sim->config = *config;
	sim->listen_fd = sim->client_fd = sim->wake[0] = sim->wake[1] = -1;
	sim->generating = 1;
	pthread_mutex_init(&sim->core_lock, NULL);
	pthread_mutex_init(&sim->state_lock, NULL);
	pthread_cond_init(&sim->state_changed, NULL);

	if (getrandom(core_config.instance_id, sizeof core_config.instance_id, 0) !=
	    (ssize_t)sizeof core_config.instance_id) {
		release_resources(sim);
		return fail(error, error_size, "getrandom", errno);
	}
	read_boot_id(core_config.boot_id);
	strcpy(core_config.name, KEXTLOG_SIM_NAME);
	sim->ring_memory = malloc(ring_bytes);
	if (sim->ring_memory == NULL) {
		release_resources(sim);
		return fail(error, error_size, "ring", ENOMEM);
	}
	if (config->tap_path != NULL && (sim->tap = fopen(config->tap_path, "ab")) == NULL) {
		int code = errno;

		release_resources(sim);
		return fail(error, error_size, config->tap_path, code);
	}
	if (pipe2(sim->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
	    open_listener(sim, error, error_size) != 0) {
		if (sim->wake[0] < 0)
			fail(error, error_size, "pipe", errno);
		release_resources(sim);
		return -1;
	}
	kextlog_core_init(&sim->core, &sim_ops, sim, &core_config, sim->ring_memory, ring_bytes,
	    config->ring_records);
	kextlog_workload_init(&sim->workload, config->seed);

	pthread_create(&sim->server, NULL, serve, sim);
	pthread_create(&sim->generator, NULL, generate, sim);
	sim->threads_started = 1;
	*out = sim;
	return 0;
}

int kextlog_sim_wait(struct kextlog_sim *sim, uint32_t timeout_ms)
{
	struct timespec deadline;
	int finished;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&sim->state_lock);
	while (!sim->finished &&
	    pthread_cond_timedwait(&sim->state_changed, &sim->state_lock, &deadline) == 0)
		;
	finished = sim->finished;
	pthread_mutex_unlock(&sim->state_lock);
	return finished;
}

void kextlog_sim_status(struct kextlog_sim *sim, struct kextlog_sim_status *status)
{
	memset(status, 0, sizeof *status);
	memcpy(status->instance_id, sim->core.config.instance_id, KEXTLOG_ID_SIZE);
	kextlog_core_counters(&sim->core, &status->counters);
	pthread_mutex_lock(&sim->state_lock);
	status->generated = sim->generated;
	status->generating = sim->generating;
	status->finished = sim->finished;
	pthread_mutex_unlock(&sim->state_lock);
	sim_lock(sim);
	status->connected = sim->core.connection != KEXTLOG_DISCONNECTED;
	sim_unlock(sim);
}

void kextlog_sim_stop(struct kextlog_sim *sim)
{
	if (!sim->threads_started)
		return;
	set_state(sim, &sim->stopping, 1);
	wake_server(sim);
	pthread_join(sim->generator, NULL);
	pthread_join(sim->server, NULL); /* it drops the client */
	sim->threads_started = 0;
	kextlog_core_stop(&sim->core);
}

void kextlog_sim_destroy(struct kextlog_sim *sim)
{
	kextlog_sim_stop(sim);
	release_resources(sim);
}
