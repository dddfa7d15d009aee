/*
 * single_writer.c - the SQLite single-writer limit for kextlog's own schema,
 * and the generator of the query benchmark's store.
 *
 *     single_writer DB COUNT [DAYS]
 *
 * DB is a database `kextlog db upgrade` created.  COUNT records come from the
 * simulator's workload (same messages, pids, levels) and go in through C
 * prepared statements: the same columns, transactions of 10,000 records with
 * their counters (an upsert per minute and level, and per pid and process, of
 * the batch, counted before the statements, as ingest's writer does), and the
 * same sorted pid_index
 * merge every 200,000 as ingest.  Times are the
 * clock's (DAYS absent) or spread evenly over the DAYS before now.  Prints one
 * JSON line: records, seconds spent in SQLite (making the records is not
 * counted), records per second.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kextlog.h"
#include "kextlog_workload.h"

#define BATCH 10000
#define PID_MERGE 200000
#define SEQ_BITS 44
#define NS_PER_MINUTE 60000000000ll
#define LEVELS 6 /* level numbers 1..5 */
#define MINUTES 64 /* distinct minutes a batch may span before it is counted out */

/* A batch's records per (minute, level), as the writer counts them. */
struct kextlog_bucket {
	int64_t minute;
	int64_t counts[LEVELS];
};
static struct kextlog_bucket buckets[MINUTES];
static int bucket_count;

/* A batch's records per (pid, process), as the writer counts them: open
 * addressing, counted out when half full (the workload has 3,000 pids). */
#define PID_SLOTS 8192
struct kextlog_pid_bucket {
	uint32_t pid;
	int64_t count; /* 0: a free slot */
	char name[KEXTLOG_PROCESS_NAME_MAX];
};
static struct kextlog_pid_bucket pid_buckets[PID_SLOTS];
static int pid_used[PID_SLOTS / 2];
static int pid_used_count;

static struct kextlog_workload workload;
static char message[KEXTLOG_MESSAGE_MAX + 1];
static uint32_t message_level;

/* The workload logs here: one message, kept for the insert. */
void log_printf(uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	vsnprintf(message, sizeof message, format, arguments);
	va_end(arguments);
	message_level = level;
}

bool kextlog_ratelimit(struct kextlog_ratelimit *state, const char *where)
{
	(void)state;
	(void)where;
	return true;
}

static uint64_t now_ns(clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void check(int result, sqlite3 *db, const char *what)
{
	if (result != SQLITE_OK && result != SQLITE_DONE && result != SQLITE_ROW) {
		fprintf(stderr, "single_writer: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

static void run(sqlite3 *db, const char *sql)
{
	check(sqlite3_exec(db, sql, NULL, NULL, NULL), db, sql);
}

static void count_out(sqlite3 *db, sqlite3_stmt *upsert, int64_t instance)
{
	for (int i = 0; i < bucket_count; i++) {
		for (int level = 1; level < LEVELS; level++) {
			if (!buckets[i].counts[level])
				continue;
			sqlite3_bind_int64(upsert, 1, buckets[i].minute);
			sqlite3_bind_int(upsert, 2, level);
			sqlite3_bind_int64(upsert, 3, instance);
			sqlite3_bind_int64(upsert, 4, buckets[i].counts[level]);
			check(sqlite3_step(upsert), db, "counter upsert");
			sqlite3_reset(upsert);
		}
	}
	bucket_count = 0;
}

static void count_record(sqlite3 *db, sqlite3_stmt *upsert, int64_t instance, int64_t time_ns,
    uint32_t level)
{
	int64_t minute = time_ns / NS_PER_MINUTE; /* times after 1970: floor */

	if (!bucket_count || buckets[bucket_count - 1].minute != minute) {
		if (bucket_count == MINUTES)
			count_out(db, upsert, instance);
		memset(&buckets[bucket_count], 0, sizeof buckets[bucket_count]);
		buckets[bucket_count++].minute = minute;
	}
	buckets[bucket_count - 1].counts[level < LEVELS ? level : LEVELS - 1]++;
}

static void count_pids_out(sqlite3 *db, sqlite3_stmt *upsert, int64_t instance)
{
	for (int i = 0; i < pid_used_count; i++) {
		struct kextlog_pid_bucket *bucket = &pid_buckets[pid_used[i]];

		sqlite3_bind_int(upsert, 1, (int)bucket->pid);
		sqlite3_bind_text(upsert, 2, bucket->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upsert, 3, instance);
		sqlite3_bind_int64(upsert, 4, bucket->count);
		check(sqlite3_step(upsert), db, "pid counter upsert");
		sqlite3_reset(upsert);
		bucket->count = 0;
	}
	pid_used_count = 0;
}

static void count_pid(sqlite3 *db, sqlite3_stmt *upsert, int64_t instance, uint32_t pid,
    const char *name)
{
	uint32_t slot = (pid * 2654435761u) & (PID_SLOTS - 1);

	while (pid_buckets[slot].count && (pid_buckets[slot].pid != pid ||
	    strncmp(pid_buckets[slot].name, name, KEXTLOG_PROCESS_NAME_MAX) != 0))
		slot = (slot + 1) & (PID_SLOTS - 1);
	if (!pid_buckets[slot].count) {
		if (pid_used_count == PID_SLOTS / 2) {
			count_pids_out(db, upsert, instance);
			count_pid(db, upsert, instance, pid, name);
			return;
		}
		pid_buckets[slot].pid = pid;
		memcpy(pid_buckets[slot].name, name, KEXTLOG_PROCESS_NAME_MAX);
		pid_used[pid_used_count++] = (int)slot;
	}
	pid_buckets[slot].count++;
}

static void merge_pids(sqlite3 *db, sqlite3_stmt *merge, int64_t first, int64_t last)
{
	sqlite3_bind_int64(merge, 1, first);
	sqlite3_bind_int64(merge, 2, last);
	check(sqlite3_step(merge), db, "pid merge");
	sqlite3_reset(merge);
}

int main(int argc, char **argv)
{
	sqlite3 *db;
	sqlite3_stmt *insert, *merge, *upsert, *pid_upsert;
	uint64_t count, start_ns, time_ns, step_ns = 0, began, seconds_ns = 0;
	int64_t instance, merged = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: single_writer DB COUNT [DAYS]\n");
		return 2;
	}
	count = strtoull(argv[2], NULL, 10);
	start_ns = now_ns(CLOCK_REALTIME);
	if (argc > 3) {
		uint64_t span = (uint64_t)(atof(argv[3]) * 86400e9);

		step_ns = span / (count ? count : 1);
		start_ns -= span;
	}
	check(sqlite3_open(argv[1], &db), db, argv[1]);
	/* As ingest's connection (store/engine.py): WAL is the file's; the rest per connection. */
	run(db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY");
	run(db, "INSERT INTO instances (host, uuid, source, name, boot_id, producer_version,"
	    " first_seen_ns, last_seen_ns) VALUES ('bench', lower(hex(randomblob(16))), 'bench',"
	    " 'single_writer', '', '0', 0, 0)");
	instance = sqlite3_last_insert_rowid(db);
	check(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO records (id, time_ns, mono_ns, level,"
	    " flags, pid, tid, process, message) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)", -1, &insert,
	    NULL), db, "prepare insert");
	check(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO pid_index (pid, time_ns, id)"
	    " SELECT pid, time_ns, id FROM records WHERE id > ? AND id <= ?"
	    " ORDER BY pid, time_ns, id", -1, &merge, NULL), db, "prepare merge");
	check(sqlite3_prepare_v2(db, "INSERT INTO record_counts (minute, level, instance_id, count)"
	    " VALUES (?, ?, ?, ?) ON CONFLICT (minute, level, instance_id)"
	    " DO UPDATE SET count = record_counts.count + excluded.count", -1, &upsert, NULL), db,
	    "prepare upsert");
	check(sqlite3_prepare_v2(db, "INSERT INTO pid_counts (pid, process, instance_id, count)"
	    " VALUES (?, ?, ?, ?) ON CONFLICT (pid, process, instance_id)"
	    " DO UPDATE SET count = pid_counts.count + excluded.count", -1, &pid_upsert, NULL), db,
	    "prepare pid upsert");
	kextlog_workload_init(&workload, 1);

	for (uint64_t seq = 1; seq <= count; seq++) {
		int64_t id = instance << SEQ_BITS | (int64_t)seq;

		kextlog_workload_event(&workload);
		time_ns = step_ns ? start_ns + seq * step_ns : now_ns(CLOCK_REALTIME);
		began = now_ns(CLOCK_MONOTONIC);
		if (seq % BATCH == 1)
			run(db, "BEGIN");
		sqlite3_bind_int64(insert, 1, id);
		sqlite3_bind_int64(insert, 2, (int64_t)time_ns);
		sqlite3_bind_int64(insert, 3, (int64_t)(seq * 1000));
		sqlite3_bind_int(insert, 4, (int)message_level);
		sqlite3_bind_int(insert, 5, (int)workload.current.pid);
		sqlite3_bind_int64(insert, 6, (int64_t)workload.current.tid);
		sqlite3_bind_text(insert, 7, workload.current.name, -1, SQLITE_STATIC);
		sqlite3_bind_text(insert, 8, message, -1, SQLITE_STATIC);
		check(sqlite3_step(insert), db, "insert");
		sqlite3_reset(insert);
		count_record(db, upsert, instance, (int64_t)time_ns, message_level);
		count_pid(db, pid_upsert, instance, workload.current.pid, workload.current.name);
		if (seq % BATCH == 0 || seq == count) {
			count_out(db, upsert, instance);
			count_pids_out(db, pid_upsert, instance);
			run(db, "COMMIT");
			if (id - merged >= PID_MERGE || seq == count) {
				run(db, "BEGIN");
				merge_pids(db, merge, merged ? merged : instance << SEQ_BITS, id);
				run(db, "COMMIT");
				merged = id;
			}
		}
		seconds_ns += now_ns(CLOCK_MONOTONIC) - began;
	}
	/* As ingest leaves it: everything accounted for, and in pid_index. */
	run(db, "UPDATE instances SET high_water = (SELECT max(seq) FROM records),"
	    " pid_indexed_seq = (SELECT max(seq) FROM records)");
	sqlite3_finalize(insert);
	sqlite3_finalize(merge);
	sqlite3_finalize(upsert);
	sqlite3_finalize(pid_upsert);
	sqlite3_close(db);
	printf("{\"records\": %llu, \"seconds\": %.3f, \"per_second\": %.0f}\n",
	    (unsigned long long)count, seconds_ns / 1e9, count / (seconds_ns / 1e9));
	return 0;
}
