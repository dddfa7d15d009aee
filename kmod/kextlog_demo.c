// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * kextlog_demo.c - a workload that logs through kextlog from the contexts
 * a real module logs from, as the KAuth demo kext does on macOS:
 *
 *   - process context on every CPU: a kthread bound to each online CPU logs
 *     `records` messages (0: until unload) at `rate` per second (0: flat out);
 *   - softirq context: a timer logs every `timer_ms` milliseconds;
 *   - the open path: a kprobe on do_filp_open() logs every file opened, with
 *     the pid and name of the process that opens it (exec opens too).
 *
 * /sys/module/kextlog_demo/parameters/finished counts the kthreads that have
 * logged all their records.
 */
#include <linux/atomic.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/kprobes.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>

#include "kextlog.h"

static unsigned int records;
module_param(records, uint, 0444);
MODULE_PARM_DESC(records, "messages each CPU's kthread logs (0: until unload)");

static unsigned int rate = 100;
module_param(rate, uint, 0444);
MODULE_PARM_DESC(rate, "messages per second from each kthread (0: as fast as it can)");

static unsigned int timer_ms = 100;
module_param(timer_ms, uint, 0444);
MODULE_PARM_DESC(timer_ms, "period of the timer that logs from softirq context (0: no timer)");

static bool probe = true;
module_param(probe, bool, 0444);
MODULE_PARM_DESC(probe, "log every file opened, from a kprobe on do_filp_open()");

static atomic_t finished = ATOMIC_INIT(0);

static int finished_get(char *text, const struct kernel_param *parameter)
{
	return sysfs_emit(text, "%d\n", atomic_read(&finished));
}

static const struct kernel_param_ops finished_operations = { .get = finished_get };
module_param_cb(finished, &finished_operations, NULL, 0444);
MODULE_PARM_DESC(finished, "kthreads that have logged all their records");

static struct task_struct **threads; /* by CPU; NULL where none runs */
static struct timer_list timer;
static bool timer_stopping;
static unsigned long ticks;

/* Mostly chatter, sometimes worse: the mix of a real module. */
static uint32_t level_of(u64 n)
{
	if (n % 1000 == 0)
		return KEXTLOG_LEVEL_ERROR;
	if (n % 100 == 0)
		return KEXTLOG_LEVEL_WARNING;
	return n % 2 != 0 ? KEXTLOG_LEVEL_TRACE : KEXTLOG_LEVEL_INFO;
}

static int storm(void *data)
{
	unsigned int cpu = (unsigned int)(uintptr_t)data;
	u64 started = ktime_get_ns();
	u64 n;

	for (n = 1; (records == 0 || n <= records) && !kthread_should_stop(); n++) {
		log_printf(level_of(n), "storm: cpu %u message %llu of %u", cpu, n, records);
		if (rate == 0) {
			cond_resched();
			continue;
		}
		/* Paced against the start, so sleeping late does not slow the rate. */
		{
			u64 due = started + div_u64(n * NSEC_PER_SEC, rate);
			u64 now = ktime_get_ns();

			if (due > now)
				usleep_range(div_u64(due - now, NSEC_PER_USEC),
				    div_u64(due - now, NSEC_PER_USEC) + 100);
		}
	}
	atomic_inc(&finished);
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return 0;
}

static void tick(struct timer_list *unused)
{
	log_info("timer: tick %lu on cpu %u", ++ticks, smp_processor_id());
	if (!READ_ONCE(timer_stopping))
		mod_timer(&timer, jiffies + msecs_to_jiffies(timer_ms));
}

/* do_filp_open(int dfd, struct filename *pathname, const struct open_flags *op):
 * the path is already in kernel memory. */
static int opening(struct kprobe *kprobe, struct pt_regs *regs)
{
	const struct filename *name = (const void *)regs_get_kernel_argument(regs, 1);

	log_info("fileop: open path=%s", IS_ERR_OR_NULL(name) ? "(none)" : name->name);
	return 0;
}

static struct kprobe open_probe = {
	.symbol_name = "do_filp_open",
	.pre_handler = opening,
};

static void stop_threads(void)
{
	unsigned int cpu;

	for_each_possible_cpu(cpu) {
		if (threads[cpu] != NULL)
			kthread_stop(threads[cpu]);
	}
	kfree(threads);
}

static int __init demo_init(void)
{
	unsigned int cpu;
	int error;

	threads = kcalloc(nr_cpu_ids, sizeof *threads, GFP_KERNEL);
	if (threads == NULL)
		return -ENOMEM;
	for_each_online_cpu(cpu) {
		struct task_struct *thread = kthread_create(storm, (void *)(uintptr_t)cpu,
		    "kextlog_demo/%u", cpu);

		if (IS_ERR(thread)) {
			stop_threads();
			return PTR_ERR(thread);
		}
		kthread_bind(thread, cpu);
		threads[cpu] = thread;
		wake_up_process(thread);
	}
	if (timer_ms != 0) {
		timer_setup(&timer, tick, 0);
		mod_timer(&timer, jiffies + msecs_to_jiffies(timer_ms));
	}
	if (probe) {
		error = register_kprobe(&open_probe);
		if (error != 0) {
			log_error("demo: cannot probe %s (error %d): running without it",
			    open_probe.symbol_name, error);
			probe = false;
		}
	}
	log_info("demo: started: a kthread on each of %u CPUs, %u messages each at %u/s, timer %u ms, probe %s",
	    num_online_cpus(), records, rate, timer_ms, probe ? open_probe.symbol_name : "off");
	return 0;
}

static void __exit demo_exit(void)
{
	if (probe)
		unregister_kprobe(&open_probe);
	if (timer_ms != 0) {
		WRITE_ONCE(timer_stopping, true);
		del_timer_sync(&timer);
	}
	stop_threads();
	log_info("demo: stopped after %lu timer ticks", ticks);
}

module_init(demo_init);
module_exit(demo_exit);

MODULE_DESCRIPTION("kextlog demo: logs from kthreads on every CPU, a timer and a kprobe");
MODULE_LICENSE("Dual MIT/GPL");
MODULE_VERSION("0.1.0");
