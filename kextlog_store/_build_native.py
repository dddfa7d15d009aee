"""cffi API-mode build of kextlog_store._native, run by setuptools at install.

The module compiles kext/include/kextlog_wire.h itself, so every struct and
constant below is checked by the C compiler against the one definition of the
wire format: Python never hand-codes an offset or a value.  It also carries
the portable core and the simulator (the kext stand-in on hosts without one).
"""

from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent

CDEF = """
#define KEXTLOG_WIRE_MAGIC ...
#define KEXTLOG_WIRE_VERSION ...
#define KEXTLOG_MESSAGE_MAX ...
#define KEXTLOG_PROCESS_NAME_MAX ...
#define KEXTLOG_NAME_MAX ...
#define KEXTLOG_ID_SIZE ...
#define KEXTLOG_FRAME_MAX ...
#define KEXTLOG_SEQ_BITS ...
#define KEXTLOG_SEQ_MAX ...
#define KEXTLOG_INSTANCES_MAX ...
#define KEXTLOG_TIME_MAX ...
#define KEXTLOG_TID_MAX ...
#define KEXTLOG_PID_MAX ...
#define KEXTLOG_FLAGS_MAX ...
#define KEXTLOG_STORED_BYTES ...
#define KEXTLOG_STACK_MESSAGE ...
#define KEXTLOG_RESUME_TIMEOUT_NS ...

enum kextlog_frame_type {
    KEXTLOG_FRAME_HELLO, KEXTLOG_FRAME_LOG, KEXTLOG_FRAME_LOSS, KEXTLOG_FRAME_STATUS,
    KEXTLOG_FRAME_ACK, KEXTLOG_FRAME_RESUME, ...
};
enum kextlog_level {
    KEXTLOG_LEVEL_TRACE, KEXTLOG_LEVEL_DEBUG, KEXTLOG_LEVEL_INFO,
    KEXTLOG_LEVEL_WARNING, KEXTLOG_LEVEL_ERROR, ...
};
enum kextlog_log_flag { KEXTLOG_LOG_TRUNCATED, ... };
enum kextlog_loss_reason { KEXTLOG_LOSS_RING_FULL, KEXTLOG_LOSS_RELEASED, ... };
enum kextlog_wire_status {
    KEXTLOG_WIRE_OK, KEXTLOG_WIRE_SHORT, KEXTLOG_WIRE_BAD_MAGIC, KEXTLOG_WIRE_BAD_VERSION,
    KEXTLOG_WIRE_BAD_LENGTH, KEXTLOG_WIRE_BAD_FIELD, KEXTLOG_WIRE_UNKNOWN, ...
};

struct kextlog_frame_header {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t length;
    uint32_t padding;
};
struct kextlog_hello_frame {
    struct kextlog_frame_header header;
    uint8_t instance_id[16];
    uint8_t boot_id[16];
    uint64_t oldest_seq;
    uint64_t next_seq;
    uint32_t ring_records;
    uint32_t ring_bytes;
    uint32_t producer_version;
    uint32_t padding;
    char name[64];
};
struct kextlog_log_frame {
    struct kextlog_frame_header header;
    uint64_t seq;
    uint64_t time_ns;
    uint64_t mono_ns;
    uint64_t tid;
    uint32_t pid;
    uint16_t message_length;
    uint16_t flags;
    uint8_t level;
    uint8_t padding[7];
    char process[32];
    char message[];
};
struct kextlog_loss_frame {
    struct kextlog_frame_header header;
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t count;
    uint64_t first_time_ns;
    uint64_t last_time_ns;
    uint32_t reason;
    uint32_t padding;
};
struct kextlog_status_frame {
    struct kextlog_frame_header header;
    uint64_t next_seq;
    uint64_t lost;
    uint64_t time_ns;
    uint32_t ring_records;
    uint32_t ring_capacity;
    uint32_t ring_bytes_used;
    uint32_t ring_bytes;
};
struct kextlog_ack_frame {
    struct kextlog_frame_header header;
    uint64_t seq;
};
struct kextlog_resume_frame {
    struct kextlog_frame_header header;
    uint8_t instance_id[16];
    uint64_t seq;
};

enum kextlog_wire_status kextlog_wire_check(const uint8_t *data, size_t available,
    uint32_t *length);
uint32_t kextlog_encode_hello(struct kextlog_hello_frame *frame,
    const uint8_t *instance_id, const uint8_t *boot_id,
    uint64_t oldest_seq, uint64_t next_seq, uint32_t ring_records, uint32_t ring_bytes,
    uint32_t producer_version, const char *name);
uint32_t kextlog_encode_log(struct kextlog_log_frame *frame, uint64_t seq, uint64_t time_ns,
    uint64_t mono_ns, uint32_t pid, uint64_t tid, const char *process, uint32_t level,
    uint16_t flags, const char *message, uint16_t message_length);
uint32_t kextlog_encode_loss(struct kextlog_loss_frame *frame, uint64_t first_seq,
    uint64_t last_seq, uint64_t first_time_ns, uint64_t last_time_ns, uint32_t reason);
uint32_t kextlog_encode_status(struct kextlog_status_frame *frame, uint64_t next_seq,
    uint64_t lost, uint64_t time_ns, uint32_t ring_records, uint32_t ring_capacity,
    uint32_t ring_bytes_used, uint32_t ring_bytes);
uint32_t kextlog_encode_ack(struct kextlog_ack_frame *frame, uint64_t seq);
uint32_t kextlog_encode_resume(struct kextlog_resume_frame *frame,
    const uint8_t *instance_id, uint64_t seq);

#define KEXTLOG_SCAN_NAMES ...
#define KEXTLOG_SCAN_NO_NAME ...
#define KEXTLOG_SCAN_SKIPPED ...
enum kextlog_scan_problem { KEXTLOG_SCAN_TRUNCATED, KEXTLOG_SCAN_OUT_OF_RANGE, ... };
struct kextlog_scan_names {
    uint16_t count;
    ...;
};
struct kextlog_scan_entry {
    uint64_t seq;
    uint64_t time_ns;
    uint64_t mono_ns;
    uint64_t tid;
    uint32_t offset;
    uint32_t pid;
    uint16_t type;
    uint16_t flags;
    uint16_t message_length;
    uint16_t process;
    uint8_t level;
    uint8_t process_length;
    uint8_t message_nul;
    uint8_t problem;
    uint32_t skipped;
};
size_t kextlog_wire_scan(const uint8_t *data, size_t available, const uint32_t *ends,
    size_t end_count, size_t *offset, struct kextlog_scan_names *names,
    struct kextlog_scan_entry *entries, size_t max_entries);

struct kextlog_counters {
    uint64_t logged;
    uint64_t below_min_level;
    uint64_t lost;
    uint64_t truncated;
    uint64_t heap;
    uint64_t format_retries;
    uint64_t nomem;
    uint64_t ratelimited;
    uint64_t frames_sent;
    uint64_t send_busy;
    uint64_t bad_input;
    uint64_t connects;
    uint64_t next_seq;
    uint64_t acked_seq;
    uint64_t ring_records;
    uint64_t ring_bytes_used;
    uint64_t ring_high_water;
    uint64_t ring_capacity;
    uint64_t printed_at_stop;
};
struct kextlog_sim_config {
    const char *socket_path;
    int stream;
    uint64_t rate;
    uint64_t count;
    uint64_t duration_ns;
    uint32_t ring_records;
    uint32_t min_level;
    uint64_t seed;
    const char *tap_path;
    int last_resort_fd;
    uint64_t resume_timeout_ns;
};
struct kextlog_sim_status {
    uint8_t instance_id[16];
    uint64_t generated;
    int generating;
    int connected;
    int finished;
    struct kextlog_counters counters;
};
struct kextlog_sim;
int kextlog_sim_start(const struct kextlog_sim_config *config, struct kextlog_sim **sim,
    char *error, size_t error_size);
int kextlog_sim_wait(struct kextlog_sim *sim, uint32_t timeout_ms);
void kextlog_sim_status(struct kextlog_sim *sim, struct kextlog_sim_status *status);
void kextlog_sim_stop(struct kextlog_sim *sim);
void kextlog_sim_destroy(struct kextlog_sim *sim);
"""

SOURCES = [
    "kext/core/kextlog_codec.c",
    "kext/core/kextlog_ring.c",
    "kext/core/kextlog_core.c",
    "kext/core/kextlog_scan.c",
    "kext/sim/kextlog_workload.c",
    "kext/sim/kextlog_sim.c",
]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "kextlog_store._native",
    '#include "kextlog_scan.h"\n#include "kextlog_sim.h"\n',
    # Relative to the project root, where setuptools runs the build.
    sources=SOURCES,
    include_dirs=["kext/include", "kext/core", "kext/sim"],
    # Warnings are errors in kext/Makefile's builds; cffi's glue is not ours to fix.
    extra_compile_args=["-std=gnu11", "-O2"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(ROOT), verbose=True)
