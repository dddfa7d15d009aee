// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * kextlog_linux.c - the kextlog logger in a Linux module: the portable core
 * (kext/core, unchanged) behind a misc character device, /dev/kextlog.
 *
 * The Linux twin of kext/kextlog_kctl.c.  Other modules log through the
 * exported log_printf() of kextlog.h; `kextlog ingest --source dev:/dev/kextlog`
 * reads the device.  docs/protocol.md ("Linux") gives the contract.
 *
 * Locking: log_printf() may be called from process, softirq and hardirq
 * context, kprobe handlers included, so one spinlock taken with irqsave
 * serialises the core, and nothing under it sleeps: send() copies whole
 * frames into the device buffer (out) and wakes the reader through an
 * irq_work (no scheduler lock is taken under ours, whoever the caller is).
 * The reader copies to user space outside the spinlock: only it consumes
 * out, under read_mutex, and send() only appends past out_length.
 *
 * Lifetime: modules that log through this one hold a reference on it, so
 * they are gone before it unloads; an open /dev/kextlog holds one too, so
 * rmmod is refused while a reader has it open.
 */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/irq_work.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/uuid.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "kextlog.h"
#include "kextlog_core.h"

#define PRODUCER_NAME     "kextlog"
#define PRODUCER_VERSION  0x000100u   /* 0.1.0, as MODULE_VERSION */
#define OUT_BYTES         65536u      /* frames waiting for read() */
#define SEND_BATCH_BYTES  16384u      /* most bytes per send: out takes a batch or none of it */
#define INPUT_PIECE_BYTES 256u        /* client input is copied in pieces of this size */
#define WRITE_MAX_BYTES   4096u       /* most bytes one write() takes (ACK: 24, RESUME: 40) */
#define TICK_MS           100u
#define BOOT_ID_PATH      "/proc/sys/kernel/random/boot_id"

static unsigned int ring_records = 16384; /* 4 MiB */
module_param(ring_records, uint, 0444);
MODULE_PARM_DESC(ring_records, "ring capacity in records of 256 bytes (64..262144), at load");

static unsigned int min_level = KEXTLOG_LEVEL_TRACE;

static struct {
	spinlock_t          lock;
	unsigned long       lock_flags;  /* the holder's saved interrupt state */
	struct kextlog_core core;
	bool                started;     /* under kernel_param_lock: min_level goes to the core */
	u8                 *ring;
	atomic_t            reader;      /* 1 while /dev/kextlog is open */
	struct mutex        read_mutex;  /* the one consumer of out */
	wait_queue_head_t   readers;
	struct irq_work     wake;
	struct delayed_work tick;
	u32                 out_length;  /* under lock; read unlocked only as a hint */
	u8                  out[OUT_BYTES] __aligned(KEXTLOG_FRAME_ALIGN);
} logger = {
	.lock = __SPIN_LOCK_UNLOCKED(logger.lock),
	.read_mutex = __MUTEX_INITIALIZER(logger.read_mutex),
	.readers = __WAIT_QUEUE_HEAD_INITIALIZER(logger.readers),
};

/* The printk level of a record's level. */
static const char *const printk_levels[] = {
	[KEXTLOG_LEVEL_TRACE] = KERN_DEBUG,
	[KEXTLOG_LEVEL_DEBUG] = KERN_DEBUG,
	[KEXTLOG_LEVEL_INFO] = KERN_INFO,
	[KEXTLOG_LEVEL_WARNING] = KERN_WARNING,
	[KEXTLOG_LEVEL_ERROR] = KERN_ERR,
};

/* ---- the platform of the core ---- */

static void platform_lock(void *context)
{
	unsigned long flags;

	spin_lock_irqsave(&logger.lock, flags);
	logger.lock_flags = flags;
}

static void platform_unlock(void *context)
{
	spin_unlock_irqrestore(&logger.lock, logger.lock_flags);
}

static uint64_t platform_wall_time(void *context)
{
	return ktime_get_real_ns();
}

/* Since boot, not counting suspend: mach_absolute_time's clock on macOS. */
static uint64_t platform_mono_time(void *context)
{
	return ktime_get_ns();
}

/* In interrupt context current is whoever was interrupted, not the logger:
 * the record names the context and the CPU instead.  comm is copied
 * without task_lock(), which an interrupted holder would deadlock on. */
static void platform_current_task(void *context, struct kextlog_task *task)
{
	if (in_task()) {
		task->pid = task_tgid_nr(current);
		task->tid = task_pid_nr(current);
		strscpy(task->name, current->comm, sizeof task->name);
		return;
	}
	snprintf(task->name, sizeof task->name, "%s/%u",
	    in_nmi() ? "nmi" : in_hardirq() ? "hardirq" : "softirq", smp_processor_id());
}

/* Under the lock: a batch of whole frames goes into out, or nothing (then
 * the frames stay in the ring until read() makes room), so out only ever
 * holds whole frames. */
static uint32_t platform_send(void *context, const uint8_t *data, uint32_t length)
{
	if (length > OUT_BYTES - logger.out_length)
		return 0;
	memcpy(logger.out + logger.out_length, data, length);
	WRITE_ONCE(logger.out_length, logger.out_length + length);
	irq_work_queue(&logger.wake);
	return length;
}

static void platform_last_resort(void *context, uint32_t level, const char *what,
    const char *message)
{
	printk("%s" PRODUCER_NAME ": %s: %s\n", printk_levels[level], what, message);
}

static void *platform_alloc(void *context, size_t size)
{
	return kmalloc(size, GFP_NOWAIT | __GFP_NOWARN);
}

static void platform_free(void *context, void *memory, size_t size)
{
	kfree(memory);
}

static const struct kextlog_ops platform_ops = {
	.lock = platform_lock,
	.unlock = platform_unlock,
	.wall_time_ns = platform_wall_time,
	.mono_time_ns = platform_mono_time,
	.current_task = platform_current_task,
	.send = platform_send,
	.last_resort = platform_last_resort,
	.alloc = platform_alloc,
	.free = platform_free,
};

static void wake_readers(struct irq_work *work)
{
	wake_up_interruptible(&logger.readers);
}

/* The resume timeout, STATUS frames, and another try for frames that found
 * out full. */
static void tick(struct work_struct *work)
{
	kextlog_core_tick(&logger.core);
	schedule_delayed_work(&logger.tick, msecs_to_jiffies(TICK_MS));
}

/* ---- /dev/kextlog ---- */

/* Root only (the node is 0600, and CAP_SYS_ADMIN is asked for), one reader
 * at a time: a second open gets EBUSY.  Opening is the client's connect. */
static int device_open(struct inode *inode, struct file *file)
{
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (atomic_cmpxchg(&logger.reader, 0, 1) != 0)
		return -EBUSY;
	stream_open(inode, file);
	kextlog_core_connect(&logger.core);
	return 0;
}

/* Frames still in out were never read: they stay in the ring, unacknowledged. */
static int device_release(struct inode *inode, struct file *file)
{
	kextlog_core_disconnect(&logger.core);
	platform_lock(NULL);
	logger.out_length = 0;
	platform_unlock(NULL);
	atomic_set_release(&logger.reader, 0);
	return 0;
}

/* How many bytes of out, from its start, are whole frames fitting in count. */
static u32 whole_frames(size_t count)
{
	u32 length = 0;

	while (length < logger.out_length) {
		const struct kextlog_frame_header *frame = (const void *)(logger.out + length);

		if (frame->length > count - length)
			break;
		length += frame->length;
	}
	return length;
}

/* Whole frames only: a buffer too small for the next frame gets EINVAL, as
 * /dev/kmsg does.  Blocks while there is nothing, unless O_NONBLOCK. */
static ssize_t device_read(struct file *file, char __user *buffer, size_t count, loff_t *offset)
{
	ssize_t result;
	u32 length;

	if (mutex_lock_interruptible(&logger.read_mutex))
		return -ERESTARTSYS;
	for (;;) {
		platform_lock(NULL);
		length = whole_frames(count);
		result = logger.out_length != 0 ? 0 : -EAGAIN;
		platform_unlock(NULL);
		if (result == 0)
			break;
		if (file->f_flags & O_NONBLOCK)
			goto out;
		if (wait_event_interruptible(logger.readers, READ_ONCE(logger.out_length) != 0)) {
			result = -ERESTARTSYS;
			goto out;
		}
	}
	result = -EINVAL;
	if (length == 0)
		goto out;
	/* Unlocked: send() only writes past out_length, and only we consume. */
	result = -EFAULT;
	if (copy_to_user(buffer, logger.out, length) != 0)
		goto out; /* nothing consumed */
	platform_lock(NULL);
	logger.out_length -= length;
	memmove(logger.out, logger.out + length, logger.out_length);
	platform_unlock(NULL);
	result = length;
out:
	mutex_unlock(&logger.read_mutex);
	if (result > 0)
		kextlog_core_tick(&logger.core); /* room again: all out takes, a batch at a time */
	return result;
}

/* ACK and RESUME frames, split or glued anyhow.  Input is untrusted, even
 * from root: at most WRITE_MAX_BYTES per call, copied in pieces, every frame
 * checked by the core; a write is refused (EINVAL) from its first malformed
 * piece on. */
static ssize_t device_write(struct file *file, const char __user *buffer, size_t count,
    loff_t *offset)
{
	u8 piece[INPUT_PIECE_BYTES];
	size_t total = min_t(size_t, count, WRITE_MAX_BYTES);
	size_t taken = 0;

	while (taken < total) {
		size_t size = min_t(size_t, total - taken, sizeof piece);

		if (copy_from_user(piece, buffer + taken, size) != 0)
			return taken != 0 ? taken : -EFAULT;
		if (kextlog_core_receive(&logger.core, piece, size) != KEXTLOG_WIRE_OK)
			return -EINVAL;
		taken += size;
	}
	return taken;
}

static __poll_t device_poll(struct file *file, poll_table *wait)
{
	__poll_t events = EPOLLOUT | EPOLLWRNORM; /* a write never waits */

	poll_wait(file, &logger.readers, wait);
	if (READ_ONCE(logger.out_length) != 0)
		events |= EPOLLIN | EPOLLRDNORM;
	return events;
}

static const struct file_operations device_operations = {
	.owner = THIS_MODULE, /* an open file holds the module: rmmod is refused */
	.open = device_open,
	.release = device_release,
	.read = device_read,
	.write = device_write,
	.poll = device_poll,
	.llseek = no_llseek,
};

/* ---- sysfs: /sys/class/misc/kextlog/ ---- */

struct counter_attribute {
	struct device_attribute attribute;
	size_t offset; /* in struct kextlog_counters */
};

static ssize_t counter_show(struct device *device, struct device_attribute *attribute,
    char *text)
{
	const struct counter_attribute *counter =
	    container_of(attribute, struct counter_attribute, attribute);
	struct kextlog_counters counters;
	u64 value;

	kextlog_core_counters(&logger.core, &counters);
	memcpy(&value, (const u8 *)&counters + counter->offset, sizeof value);
	return sysfs_emit(text, "%llu\n", value);
}

/* The names of the kext's sysctls, plus next_seq. */
#define COUNTER(name, field)                                                       \
	static struct counter_attribute counter_##name = {                         \
		.attribute = __ATTR(name, 0444, counter_show, NULL),               \
		.offset = offsetof(struct kextlog_counters, field),                \
	}
COUNTER(delivered, frames_sent);
COUNTER(acknowledged, acked_seq);
COUNTER(diverted, lost);
COUNTER(truncated, truncated);
COUNTER(heap, heap);
COUNTER(nomem, nomem);
COUNTER(ratelimited, ratelimited);
COUNTER(logged, logged);
COUNTER(filtered, below_min_level);
COUNTER(send_busy, send_busy);
COUNTER(bad_input, bad_input);
COUNTER(connects, connects);
COUNTER(next_seq, next_seq);
COUNTER(ring_records, ring_records);
COUNTER(ring_capacity, ring_capacity);
COUNTER(ring_high_water, ring_high_water);

static ssize_t connected_show(struct device *device, struct device_attribute *attribute,
    char *text)
{
	return sysfs_emit(text, "%d\n", atomic_read(&logger.reader));
}
static DEVICE_ATTR_RO(connected);

static ssize_t instance_show(struct device *device, struct device_attribute *attribute,
    char *text)
{
	return sysfs_emit(text, "%*phN\n", (int)KEXTLOG_ID_SIZE, logger.core.config.instance_id);
}
static DEVICE_ATTR_RO(instance);

static struct attribute *kextlog_attrs[] = {
	&counter_delivered.attribute.attr,
	&counter_acknowledged.attribute.attr,
	&counter_diverted.attribute.attr,
	&counter_truncated.attribute.attr,
	&counter_heap.attribute.attr,
	&counter_nomem.attribute.attr,
	&counter_ratelimited.attribute.attr,
	&counter_logged.attribute.attr,
	&counter_filtered.attribute.attr,
	&counter_send_busy.attribute.attr,
	&counter_bad_input.attribute.attr,
	&counter_connects.attribute.attr,
	&counter_next_seq.attribute.attr,
	&counter_ring_records.attribute.attr,
	&counter_ring_capacity.attribute.attr,
	&counter_ring_high_water.attribute.attr,
	&dev_attr_connected.attr,
	&dev_attr_instance.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kextlog);

static struct miscdevice kextlog_device = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kextlog",
	.fops = &device_operations,
	.mode = 0600,
	.groups = kextlog_groups,
};

/* ---- the minimum level: /sys/module/kextlog/parameters/min_level ---- */

/* Under kernel_param_lock (sysfs writes take it; module init too). */
static int min_level_set(const char *value, const struct kernel_param *parameter)
{
	unsigned int level;
	int error = kstrtouint(value, 0, &level);

	if (error != 0)
		return error;
	if (level < KEXTLOG_LEVEL_TRACE || level > KEXTLOG_LEVEL_ERROR)
		return -EINVAL;
	min_level = level;
	if (logger.started)
		kextlog_core_set_min_level(&logger.core, level);
	return 0;
}

static const struct kernel_param_ops min_level_operations = {
	.set = min_level_set,
	.get = param_get_uint,
};
module_param_cb(min_level, &min_level_operations, &min_level, 0644);
MODULE_PARM_DESC(min_level, "minimum level logged: 1 TRACE, 2 DEBUG, 3 INFO, 4 WARNING, 5 ERROR");

/* ---- load and unload ---- */

/* The boot id of /proc (as in kextlog's kmsg source); zero when unknown. */
static void read_boot_id(uint8_t id[KEXTLOG_ID_SIZE])
{
	char text[UUID_STRING_LEN + 1] = "";
	struct file *file = filp_open(BOOT_ID_PATH, O_RDONLY, 0);
	loff_t position = 0;

	memset(id, 0, KEXTLOG_ID_SIZE);
	if (IS_ERR(file))
		return;
	if (kernel_read(file, text, UUID_STRING_LEN, &position) == UUID_STRING_LEN)
		uuid_parse(text, (uuid_t *)id);
	filp_close(file, NULL);
}

static int __init kextlog_init(void)
{
	struct kextlog_config config = {
		.name = PRODUCER_NAME,
		.producer_version = PRODUCER_VERSION,
		.send_batch_bytes = SEND_BATCH_BYTES,
		.resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS,
		.status_interval_ns = KEXTLOG_STATUS_INTERVAL_NS,
	};
	u32 records = clamp(ring_records, KEXTLOG_RING_RECORDS_MIN, KEXTLOG_RING_RECORDS_MAX);
	u32 ring_bytes = kextlog_ring_bytes(records);
	int error;

	if (records != ring_records)
		pr_warn(PRODUCER_NAME ": a ring of %u records is out of range, using %u\n",
		    ring_records, records);
	ring_records = records;
	logger.ring = kvmalloc(ring_bytes, GFP_KERNEL);
	if (logger.ring == NULL)
		return -ENOMEM;
	generate_random_uuid(config.instance_id);
	read_boot_id(config.boot_id);
	init_irq_work(&logger.wake, wake_readers);

	kernel_param_lock(THIS_MODULE);
	config.min_level = min_level;
	kextlog_core_init(&logger.core, &platform_ops, NULL, &config, logger.ring, ring_bytes,
	    records);
	logger.started = true;
	kernel_param_unlock(THIS_MODULE);

	INIT_DELAYED_WORK(&logger.tick, tick);
	schedule_delayed_work(&logger.tick, msecs_to_jiffies(TICK_MS));
	/* Last: from here a reader can open the device. */
	error = misc_register(&kextlog_device);
	if (error != 0) {
		cancel_delayed_work_sync(&logger.tick);
		kvfree(logger.ring);
		return error;
	}
	pr_info(PRODUCER_NAME ": instance %*phN, a ring of %u records on /dev/kextlog\n",
	    (int)KEXTLOG_ID_SIZE, config.instance_id, records);
	return 0;
}

static void __exit kextlog_exit(void)
{
	misc_deregister(&kextlog_device);
	cancel_delayed_work_sync(&logger.tick);
	irq_work_sync(&logger.wake);
	kextlog_core_stop(&logger.core); /* what was not acknowledged, to the kernel log */
	kvfree(logger.ring);
}

module_init(kextlog_init);
module_exit(kextlog_exit);

/* ---- the API of kextlog.h ---- */

/* Any context but NMI: the core takes a spinlock with interrupts off,
 * allocates without waiting and never sleeps. */
void log_printf(uint32_t level, const char *format, ...)
{
	va_list arguments;

	va_start(arguments, format);
	kextlog_core_vlog(&logger.core, level, format, arguments);
	va_end(arguments);
	kextlog_core_pump(&logger.core);
}
EXPORT_SYMBOL_GPL(log_printf);

bool kextlog_ratelimit(struct kextlog_ratelimit *state, const char *where)
{
	return kextlog_core_ratelimit(&logger.core, state, where);
}
EXPORT_SYMBOL_GPL(kextlog_ratelimit);

/* Read without the lock, as the core reads it. */
bool kextlog_level_enabled(uint32_t level)
{
	return level >= READ_ONCE(logger.core.config.min_level);
}
EXPORT_SYMBOL_GPL(kextlog_level_enabled);

MODULE_DESCRIPTION("kextlog: acknowledged logging from kernel modules into a queryable store");
MODULE_LICENSE("Dual MIT/GPL");
MODULE_VERSION("0.1.0");
