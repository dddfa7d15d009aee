/*
 * sim_capture.c - the simulator's half of test_kctl's byte-for-byte test.
 *
 * Runs the real simulator (kext/sim: its platform, its workload, its Unix
 * socket), connects to it as the daemon does (seqpacket, RESUME from seq 1)
 * and writes every LOG frame it receives to stdout, in order.  test_kctl
 * replays the same workload through the kext glue, with the clock values of
 * these frames, and compares the bytes.  A separate program because both
 * the simulator and the glue define log_printf().
 *
 *     sim_capture SEED COUNT > frames
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kextlog_codec.h"
#include "kextlog_sim.h"

#define DATAGRAM_MAX (256u * 1024u)

static int fail(const char *what)
{
	fprintf(stderr, "sim_capture: %s\n", what);
	return 1;
}

static int send_frame(int fd, const void *frame, uint32_t length)
{
	return send(fd, frame, length, MSG_NOSIGNAL) == (ssize_t)length ? 0 : -1;
}

/* Reads until count LOG frames have come; answers HELLO with RESUME(1). */
static int capture(int fd, uint32_t count)
{
	static _Alignas(8) uint8_t datagram[DATAGRAM_MAX];
	uint32_t logs = 0;

	while (logs < count) {
		ssize_t got = recv(fd, datagram, sizeof datagram, 0);
		uint32_t length;

		if (got <= 0)
			return fail("the simulator closed the connection");
		for (size_t offset = 0; offset < (size_t)got; offset += length) {
			const struct kextlog_frame_header *header = (const void *)(datagram + offset);
			struct kextlog_resume_frame resume;

			if (kextlog_wire_check(datagram + offset, (size_t)got - offset, &length) !=
			    KEXTLOG_WIRE_OK)
				return fail("a malformed frame");
			if (header->type == KEXTLOG_FRAME_HELLO) {
				const struct kextlog_hello_frame *hello = (const void *)header;

				if (send_frame(fd, &resume, kextlog_encode_resume(&resume,
				    hello->instance_id, 1)) != 0)
					return fail("cannot send RESUME");
			} else if (header->type == KEXTLOG_FRAME_LOG) {
				if (fwrite(header, length, 1, stdout) != 1)
					return fail("cannot write the frames");
				logs++;
			} else if (header->type == KEXTLOG_FRAME_LOSS) {
				return fail("the simulator lost records");
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	char directory[] = "/tmp/kextlog-capture-XXXXXX";
	struct sockaddr_un address = { .sun_family = AF_UNIX };
	struct kextlog_sim_config config = {
		.socket_path = address.sun_path,
		.min_level = KEXTLOG_LEVEL_TRACE,
		.last_resort_fd = -1, /* it acknowledges nothing: no need to see it all at stop */
		.resume_timeout_ns = KEXTLOG_RESUME_TIMEOUT_NS,
	};
	struct kextlog_sim *sim;
	char error[256];
	int fd, result;

	if (argc != 3)
		return fail("usage: sim_capture SEED COUNT");
	config.seed = strtoull(argv[1], NULL, 10);
	config.count = strtoull(argv[2], NULL, 10);
	config.ring_records = (uint32_t)(2 * config.count); /* room for all: nothing is lost */
	if (mkdtemp(directory) == NULL)
		return fail("cannot make a directory for the socket");
	snprintf(address.sun_path, sizeof address.sun_path, "%s/sim.sock", directory);
	if (kextlog_sim_start(&config, &sim, error, sizeof error) != 0) {
		rmdir(directory);
		return fail(error);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)&address, sizeof address) != 0)
		result = fail("cannot connect to the simulator");
	else
		result = capture(fd, (uint32_t)config.count);
	if (fd >= 0)
		close(fd);
	kextlog_sim_destroy(sim);
	rmdir(directory);
	if (fflush(stdout) != 0)
		return fail("cannot write the frames");
	return result;
}
