/*
 * hostile.c - a hostile reader of /dev/kextlog, in the test guest of
 * `make kmod-test`: other users, a second reader, bad buffers, garbage,
 * huge lengths, frames out of turn and RESUME after RESUME.  Each check
 * prints a line; the exit status is the number that failed.  The module
 * must refuse what it should, count malformed writes (bad_input), never
 * oops, and keep serving the next reader.
 *
 *     hostile [DEVICE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kextlog_codec.h"

#define RESUMES 1000
#define HUGE_COUNT (1ul << 30) /* past any buffer here, inside the address space */
#define BUFFER_BYTES 65536u

static const char *device = "/dev/kextlog";
static unsigned failures;
static unsigned refused_writes; /* EINVAL writes: the module counts each once */
static uint8_t buffer[BUFFER_BYTES] __attribute__((aligned(8)));

/* read() and write() as the system calls, with the bad buffers and sizes
 * that the C library's checks would not let through. */
static long raw_read(int fd, void *data, size_t length)
{
	return syscall(SYS_read, fd, data, length);
}

static long raw_write(int fd, const void *data, size_t length)
{
	return syscall(SYS_write, fd, data, length);
}

static void check(int ok, const char *what, long result)
{
	printf("hostile: %s %s (result %ld, %s)\n", ok ? "ok:" : "FAIL:", what, result,
	    result < 0 ? strerror(errno) : "no error");
	if (!ok)
		failures++;
}

/* A call that must fail with the given errno. */
static void refused(long result, int expected, const char *what)
{
	check(result < 0 && errno == expected, what, result);
}

/* A write the module must refuse as malformed. */
static void malformed(int fd, const void *data, size_t length, const char *what)
{
	long result = raw_write(fd, data, length);

	refused(result, EINVAL, what);
	if (result < 0 && errno == EINVAL)
		refused_writes++;
}

/* In a child: as change() leaves it, open must fail with expected. */
static void open_as(void (*change)(void), int expected, const char *what)
{
	pid_t child = fork();
	int status = 0;

	if (child == 0) {
		int fd;

		change();
		fd = open(device, O_RDWR);
		_exit(fd < 0 && errno == expected ? 0 : 1);
	}
	waitpid(child, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, what, child);
}

static void become_nobody(void)
{
	if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
		_exit(2);
}

/* Root, without CAP_SYS_ADMIN: the file mode lets it in, the module not. */
static void drop_sys_admin(void)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &header, data) != 0)
		_exit(2);
	data[0].effective &= ~(1u << CAP_SYS_ADMIN);
	data[0].permitted &= ~(1u << CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &header, data) != 0)
		_exit(2);
}

/* A 64-bit xorshift: the same garbage on every run. */
static uint64_t next_random(void)
{
	static uint64_t state = 0x9e3779b97f4a7c15ull;

	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

/* Reads whatever is there without waiting, until nothing is. */
static void drain(int fd)
{
	while (read(fd, buffer, sizeof buffer) > 0)
		;
}

int main(int argc, char **argv)
{
	struct kextlog_hello_frame hello;
	struct kextlog_resume_frame resume;
	struct kextlog_ack_frame ack;
	struct kextlog_frame_header header;
	struct pollfd poller;
	unsigned rounds;
	long result;
	int fd, second;

	if (argc > 1)
		device = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);

	open_as(become_nobody, EACCES, "another user cannot open the device");
	open_as(drop_sys_admin, EPERM, "root without CAP_SYS_ADMIN cannot open it");

	fd = open(device, O_RDWR | O_NONBLOCK);
	check(fd >= 0, "root opens the device", fd);
	if (fd < 0)
		return 1;
	second = open(device, O_RDWR | O_NONBLOCK);
	refused(second, EBUSY, "a second reader gets EBUSY");

	/* Out of turn, first, and the RESUME right after: until RESUME, or the
	 * resume timeout a second from the open, the module sends nothing after
	 * HELLO and takes nothing but RESUME. */
	kextlog_encode_ack(&ack, 1);
	malformed(fd, &ack, sizeof ack, "ACK before RESUME is refused");
	refused(raw_read(fd, NULL, sizeof buffer), EFAULT, "a read into a bad address gets EFAULT");
	refused(read(fd, buffer, 1), EINVAL, "a read smaller than the next frame gets EINVAL");
	/* A count far past the buffer: the module copies only the frames it has. */
	result = raw_read(fd, buffer, HUGE_COUNT);
	memcpy(&hello, buffer, sizeof hello);
	check(result == sizeof hello && hello.header.type == KEXTLOG_FRAME_HELLO,
	    "the first read is HELLO, whole, whatever the count", result);
	refused(read(fd, buffer, sizeof buffer), EAGAIN, "O_NONBLOCK: nothing to read gets EAGAIN");
	poller = (struct pollfd){ .fd = fd, .events = POLLIN | POLLOUT };
	result = poll(&poller, 1, 0);
	check(result == 1 && poller.revents == POLLOUT, "poll: writable, nothing to read", result);

	kextlog_encode_resume(&resume, hello.instance_id, 1);
	resume.instance_id[0] ^= 0xff;
	malformed(fd, &resume, sizeof resume, "RESUME for another instance is refused");
	/* The connection's one RESUME, a byte at a time, from seq 1: the ring
	 * is replayed to us. */
	kextlog_encode_resume(&resume, hello.instance_id, 1);
	result = 1;
	for (size_t i = 0; i < sizeof resume && result == 1; i++)
		result = write(fd, (const uint8_t *)&resume + i, 1);
	check(result == 1, "RESUME written a byte at a time is taken", result);

	/* Malformed, whatever the state. */
	for (size_t i = 0; i < sizeof buffer / 8; i++)
		((uint64_t *)(void *)buffer)[i] = next_random();
	malformed(fd, buffer, sizeof buffer, "garbage is refused");
	kextlog_encode_header(&header, KEXTLOG_FRAME_RESUME, 0xfffffff8u);
	malformed(fd, &header, sizeof header, "a frame of 4 GiB is refused");
	kextlog_encode_header(&header, KEXTLOG_FRAME_RESUME, 8);
	malformed(fd, &header, sizeof header, "a frame shorter than its header is refused");
	memset(buffer, 0, sizeof buffer);
	malformed(fd, buffer, HUGE_COUNT, "a write of 1 GiB is read in part, and refused");
	refused(raw_write(fd, NULL, 1u << 30), EFAULT, "a write from a bad address gets EFAULT");
	/* An unknown frame type is skipped, body and all, as the protocol says. */
	kextlog_encode_header((struct kextlog_frame_header *)(void *)buffer, 100, 64);
	result = write(fd, buffer, 64);
	check(result == 64, "a frame of an unknown type is skipped", result);

	/* RESUME again and again, from anywhere (0, huge, random), and ACKs of
	 * any seq, with reads between: each RESUME is refused (one a connection),
	 * an ACK taken only between what is committed and what was sent. */
	for (rounds = 0; rounds < RESUMES; rounds++) {
		uint64_t seq = rounds == 0 ? 0 : rounds == 1 ? UINT64_MAX : next_random();

		kextlog_encode_resume(&resume, hello.instance_id, seq);
		if (write(fd, &resume, sizeof resume) >= 0 || errno != EINVAL)
			break;
		refused_writes++;
		kextlog_encode_ack(&ack, rounds % 2 ? seq : seq % (hello.next_seq + 2));
		if (write(fd, &ack, sizeof ack) < 0) {
			if (errno != EINVAL)
				break;
			refused_writes++;
		}
		if (rounds % 16 == 0)
			drain(fd);
	}
	check(rounds == RESUMES, "1000 more RESUMEs refused, ACKs of any seq taken or refused",
	    rounds);
	drain(fd);
	close(fd);

	fd = open(device, O_RDWR);
	result = fd < 0 ? fd : read(fd, buffer, sizeof buffer);
	memcpy(&header, buffer, sizeof header);
	check(result > 0 && header.type == KEXTLOG_FRAME_HELLO,
	    "after it closed, the next reader gets HELLO", result);
	if (fd >= 0)
		close(fd);
	printf("hostile: refused_writes=%u failures=%u\n", refused_writes, failures);
	return (int)failures;
}
