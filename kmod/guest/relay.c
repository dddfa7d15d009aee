/*
 * relay.c - copies bytes between /dev/kextlog and a virtio-serial port, in
 * the test guest of `make kmod-test`.  On the host the port is qemu's Unix
 * socket, where the real `kextlog ingest --source unix:PATH` connects.
 *
 *     relay PORT [DEVICE]
 *
 * Each host connection is one reader of the device: the device is opened
 * when the host connects (the module sends HELLO) and closed when it goes
 * (frames the host has not acknowledged stay in the module's ring).  The
 * port reports the host's coming and going with SIGIO and POLLHUP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUFFER_BYTES 65536u

struct pending {
	uint8_t data[BUFFER_BYTES];
	size_t  length;
	size_t  sent;
};

static void die(const char *what)
{
	fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Until the host is connected: the port hangs up while it is not. */
static void wait_for_host(int port, const sigset_t *sigio)
{
	for (;;) {
		struct pollfd poller = { .fd = port, .events = POLLIN };
		struct timespec patience = { .tv_sec = 1 };

		if (poll(&poller, 1, 0) < 0 && errno != EINTR)
			die("poll");
		if (!(poller.revents & POLLHUP))
			return;
		/* A SIGIO says the host connected (or data came); the timeout
		 * is a safety net, not the way the event arrives. */
		if (sigtimedwait(sigio, NULL, &patience) < 0 && errno != EAGAIN && errno != EINTR)
			die("sigtimedwait");
	}
}

/* Writes what is pending to fd without waiting; false on a hang-up. */
static int flush(int fd, struct pending *pending)
{
	while (pending->sent < pending->length) {
		ssize_t written = write(fd, pending->data + pending->sent,
		    pending->length - pending->sent);

		if (written < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 1;
			return 0;
		}
		pending->sent += (size_t)written;
	}
	pending->length = pending->sent = 0;
	return 1;
}

/* Reads what fd has into an empty pending buffer: 0 at the end (a host
 * that went away), -1 when there is nothing now. */
static ssize_t fill(int fd, struct pending *pending)
{
	ssize_t got = read(fd, pending->data, sizeof pending->data);

	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return -1;
		return 0;
	}
	pending->length = (size_t)got;
	pending->sent = 0;
	return got;
}

/* One host connection: until the host goes away. */
static void serve(int port, const char *device_path)
{
	static struct pending to_host, to_device;
	int device = open(device_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int open_host = 1;

	if (device < 0)
		die(device_path);
	to_host.length = to_host.sent = to_device.length = to_device.sent = 0;
	while (open_host) {
		struct pollfd pollers[2] = {
			{ .fd = device, .events = to_host.length ? 0 : POLLIN },
			{ .fd = port, .events = (to_device.length ? 0 : POLLIN) |
			      (to_host.length ? POLLOUT : 0) },
		};

		if (to_device.length)
			pollers[0].events |= POLLOUT;
		if (poll(pollers, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pollers[0].revents & (POLLERR | POLLNVAL))
			die("the device failed");
		if (!to_host.length && (pollers[0].revents & POLLIN) && fill(device, &to_host) == 0)
			die("read from the device");
		if (to_host.length && !flush(port, &to_host))
			open_host = 0;
		/* What the host sent before it went belongs to this connection. */
		if (!to_device.length && (pollers[1].revents & (POLLIN | POLLHUP))) {
			ssize_t got = fill(port, &to_device);

			if (got == 0)
				open_host = 0;
		}
		if (to_device.length && !flush(device, &to_device)) {
			fprintf(stderr, "relay: the device refused %zu bytes from the host: %s\n",
			    to_device.length - to_device.sent, strerror(errno));
			to_device.length = to_device.sent = 0;
		}
	}
	close(device);
}

int main(int argc, char **argv)
{
	const char *device_path = argc > 2 ? argv[2] : "/dev/kextlog";
	sigset_t sigio;
	int port;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: relay PORT [DEVICE]\n");
		return 2;
	}
	sigemptyset(&sigio);
	sigaddset(&sigio, SIGIO);
	sigprocmask(SIG_BLOCK, &sigio, NULL);
	port = open(argv[1], O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (port < 0)
		die(argv[1]);
	if (fcntl(port, F_SETOWN, getpid()) < 0 ||
	    fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_ASYNC) < 0)
		die("fcntl");
	for (;;) {
		wait_for_host(port, &sigio);
		fprintf(stderr, "relay: the host connected\n");
		serve(port, device_path);
		fprintf(stderr, "relay: the host went away\n");
	}
}
