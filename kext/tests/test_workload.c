/*
 * test_workload.c - the KAuth-like workload: deterministic, the stated level
 * mix, thousands of processes that keep their names, realistic lengths.
 */
#include <stdarg.h>
#include <string.h>

#include "kextlog.h"
#include "kextlog_test.h"
#include "kextlog_workload.h"

#define EVENTS 100000u
#define PID_LIMIT 100000u /* macOS pids stay below it */
#define THREADS_MAX 16u

/* What the last event logged, captured by this file's log_printf(). */
struct event {
	uint32_t level;
	int      length; /* before any cut, as vsnprintf counts it */
	struct kextlog_task task;
	char     message[2048];
};

static const struct kextlog_workload *logging; /* the workload whose event is being logged */
static struct event last;
static uint32_t calls;

void log_printf(uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	last.level = level;
	last.length = vsnprintf(last.message, sizeof last.message, format, arguments);
	va_end(arguments);
	last.task = logging->current;
	calls++;
}

static void run_event(struct kextlog_workload *workload, struct event *event)
{
	logging = workload;
	calls = 0;
	kextlog_workload_event(workload);
	CHECK_EQ(calls, 1);
	*event = last;
}

static bool same_event(const struct event *a, const struct event *b)
{
	return a->level == b->level && a->length == b->length &&
	    a->task.pid == b->task.pid && a->task.tid == b->task.tid &&
	    memcmp(a->task.name, b->task.name, sizeof a->task.name) == 0 &&
	    strcmp(a->message, b->message) == 0;
}

static struct kextlog_workload first, second;

static void test_deterministic(void)
{
	struct event a, b;
	uint32_t differences = 0;

	kextlog_workload_init(&first, 42);
	kextlog_workload_init(&second, 42);
	for (uint32_t i = 0; i < 1000; i++) {
		run_event(&first, &a);
		run_event(&second, &b);
		CHECK(same_event(&a, &b));
	}

	kextlog_workload_init(&first, 42);
	kextlog_workload_init(&second, 43);
	for (uint32_t i = 0; i < 1000; i++) {
		run_event(&first, &a);
		run_event(&second, &b);
		differences += !same_event(&a, &b);
	}
	CHECK(differences > 900);
}

/* Per pid seen: its name and its distinct tids. */
static struct seen {
	bool     used;
	char     name[KEXTLOG_PROCESS_NAME_MAX];
	uint64_t tids[THREADS_MAX];
	uint32_t tid_count;
} seen[PID_LIMIT];

static bool known_scope(const char *message)
{
	static const char *const scopes[] = { "vnode: ", "fileop: ", "process: ", "generic: " };

	for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
		if (strncmp(message, scopes[i], strlen(scopes[i])) == 0)
			return true;
	return false;
}

static void see_task(const struct kextlog_task *task)
{
	struct seen *process;
	uint32_t i;

	REQUIRE(task->pid < PID_LIMIT);
	process = &seen[task->pid];
	if (!process->used) {
		process->used = true;
		memcpy(process->name, task->name, sizeof process->name);
	}
	CHECK(memcmp(process->name, task->name, sizeof process->name) == 0);
	for (i = 0; i < process->tid_count && process->tids[i] != task->tid; i++)
		continue;
	if (i == process->tid_count) {
		REQUIRE(process->tid_count < THREADS_MAX); /* a few threads per process */
		process->tids[process->tid_count++] = task->tid;
	}
}

static void test_mix(void)
{
	static struct event event;
	uint32_t levels[KEXTLOG_LEVEL_ERROR + 1] = { 0 };
	uint32_t pids = 0, threaded = 0, over_stack = 0, typical = 0, scopes[4] = { 0 };

	kextlog_workload_init(&first, 2024);
	for (uint32_t i = 0; i < EVENTS; i++) {
		run_event(&first, &event);
		REQUIRE(event.level >= KEXTLOG_LEVEL_TRACE && event.level <= KEXTLOG_LEVEL_ERROR);
		levels[event.level]++;
		CHECK(event.task.name[0] != '\0');
		CHECK(known_scope(event.message));
		scopes[0] += strncmp(event.message, "vnode: ", 7) == 0;
		scopes[1] += strncmp(event.message, "fileop: ", 8) == 0;
		scopes[2] += strncmp(event.message, "process: ", 9) == 0;
		scopes[3] += strncmp(event.message, "generic: ", 9) == 0;
		see_task(&event.task);
		over_stack += event.length > 256;
		typical += event.length >= 60 && event.length <= 160;
	}

	/* Percent of events, against trace 30, debug 10, info 50, warning 7, error 3. */
	CHECK(levels[KEXTLOG_LEVEL_TRACE] >= 27000 && levels[KEXTLOG_LEVEL_TRACE] <= 33000);
	CHECK(levels[KEXTLOG_LEVEL_DEBUG] >= 8000 && levels[KEXTLOG_LEVEL_DEBUG] <= 12000);
	CHECK(levels[KEXTLOG_LEVEL_INFO] >= 47000 && levels[KEXTLOG_LEVEL_INFO] <= 53000);
	CHECK(levels[KEXTLOG_LEVEL_WARNING] >= 5500 && levels[KEXTLOG_LEVEL_WARNING] <= 8500);
	CHECK(levels[KEXTLOG_LEVEL_ERROR] >= 2000 && levels[KEXTLOG_LEVEL_ERROR] <= 4000);

	for (uint32_t pid = 0; pid < PID_LIMIT; pid++) {
		pids += seen[pid].used;
		threaded += seen[pid].tid_count > 1;
	}
	CHECK(pids > 2000);
	CHECK(threaded > pids / 2);
	CHECK(seen[0].used && strcmp(seen[0].name, "kernel_task") == 0);
	CHECK(seen[1].used && strcmp(seen[1].name, "launchd") == 0);

	for (size_t i = 0; i < 4; i++)
		CHECK(scopes[i] > EVENTS / 100);
	/* Occasionally longer than the stack limit (about 1 in 200), mostly 60..160. */
	CHECK(over_stack >= EVENTS / 1000 && over_stack <= EVENTS / 50);
	CHECK(typical >= EVENTS * 8 / 10);
}

int main(void)
{
	test_deterministic();
	test_mix();
	return kextlog_test_done("test_workload");
}
