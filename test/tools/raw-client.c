/* raw-client.c — a misbehaving client of the plugin's socket, for test/integration/malformed.sh: bytes that are
 * not HTTP/2, HTTP/2 cut short, and Allocate calls too big for any kubelet (a 1 MB device ID, thousands of IDs).
 * Each command does one thing to SOCKET and prints one line saying what came back; the exit status says whether
 * the plugin behaved: answered or refused, within a generous deadline.
 *
 *   raw-client SOCKET garbage BYTES SEED   connect, write BYTES pseudo-random bytes (not an HTTP/2 preface), then
 *                                          read until the plugin closes the connection (exit 1 if it does not
 *                                          within 20 s)
 *   raw-client SOCKET h2-cut WHAT          connect and send a truncated HTTP/2 start, then close: WHAT = preface
 *                                          (half of the client preface), settings (the preface and a SETTINGS
 *                                          frame header announcing more payload than sent), headers (preface,
 *                                          SETTINGS, and a HEADERS frame cut in its middle)
 *   raw-client SOCKET hold MS              connect, send the preface and half a frame, keep the connection open
 *                                          MS milliseconds (others must be served meanwhile), then close
 *   raw-client SOCKET allocate IDS         one Allocate (IDs separated by ','); exit 0 when it is answered OK
 *   raw-client SOCKET allocate-big-id BYTES   Allocate with one device ID of BYTES characters: exit 0 when the
 *                                          plugin refuses it (any status but OK, DEADLINE_EXCEEDED, UNAVAILABLE)
 *   raw-client SOCKET allocate-many N ID   Allocate with N device IDs in one container: ID repeated, or with
 *                                          ID "unknown" N distinct IDs the plugin does not serve; exit 0 when
 *                                          answered (OK or a refusal) within the deadline
 * Output: "<command> status=<grpc status> details_bytes=<n> response_bytes=<n> ms=<round trip>" or, for the
 * socket commands, "<command> sent=<n> received=<n> closed_by_peer=<0|1> ms=<n>". */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "tool_unary.h"

#define CALL_DEADLINE_MS 60000
#define CLOSE_WAIT_MS 20000

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; /* 24 bytes */

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int
sock_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || strlen(path) >= sizeof sa.sun_path) {
		perror("socket");
		exit(2);
	}
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
		fprintf(stderr, "connect %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static size_t
send_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, (const char *) buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* the plugin closed it: fine, it refused */
		}
		off += (size_t) n;
	}
	return off;
}

/* Read until EOF or error, at most ms. Returns 1 when the peer closed (EOF or reset), 0 on timeout. */
static int
drain(int fd, long ms, size_t *received)
{
	double end = now_ms() + (double) ms;
	char buf[4096];
	for (;;) {
		double left = end - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int) left + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return 1;
		if (n > 0)
			*received += (size_t) n;
	}
}

/* A frame header: 24-bit length, type, flags, 31-bit stream id. */
static void
frame_header(uint8_t *h, unsigned len, uint8_t type, uint8_t flags, unsigned stream)
{
	h[0] = (uint8_t) (len >> 16);
	h[1] = (uint8_t) (len >> 8);
	h[2] = (uint8_t) len;
	h[3] = type;
	h[4] = flags;
	h[5] = (uint8_t) (stream >> 24);
	h[6] = (uint8_t) (stream >> 16);
	h[7] = (uint8_t) (stream >> 8);
	h[8] = (uint8_t) stream;
}

static int
cmd_garbage(const char *sock, long bytes, unsigned seed)
{
	int fd = sock_connect(sock);
	uint8_t *buf = malloc((size_t) bytes + 1);
	size_t sent, received = 0;
	double t0 = now_ms();

	srandom(seed);
	for (long i = 0; i < bytes; i++)
		buf[i] = (uint8_t) random();
	if (bytes > 0 && buf[0] == 'P')
		buf[0] = 'X'; /* never the start of a preface */
	sent = send_all(fd, buf, (size_t) bytes);
	free(buf);
	int closed = drain(fd, CLOSE_WAIT_MS, &received);
	printf("garbage sent=%zu received=%zu closed_by_peer=%d ms=%.1f\n", sent, received, closed, now_ms() - t0);
	close(fd);
	return closed ? 0 : 1;
}

/* The start of a connection cut short: what = preface | settings | headers. */
static size_t
truncated_start(int fd, const char *what)
{
	uint8_t h[9];
	size_t sent = 0;

	if (strcmp(what, "preface") == 0)
		return send_all(fd, preface, 12);
	sent += send_all(fd, preface, 24);
	if (strcmp(what, "settings") == 0) {
		frame_header(h, 36, 0x4 /* SETTINGS */, 0, 0); /* 36 bytes announced, 6 sent */
		sent += send_all(fd, h, 9);
		sent += send_all(fd, "\x00\x03\x00\x00\x00\x64", 6);
		return sent;
	}
	frame_header(h, 0, 0x4, 0, 0); /* an empty SETTINGS: valid */
	sent += send_all(fd, h, 9);
	/* HEADERS on stream 1 announcing 200 bytes of HPACK, END_HEADERS, then only 20 of them */
	frame_header(h, 200, 0x1, 0x4, 1);
	sent += send_all(fd, h, 9);
	static const uint8_t hpack[20] = { 0x83, 0x86, 0x44, 0x1f, '/', 'v', '1', 'b', 'e', 't',
					   'a', '1', '.', 'D', 'e', 'v', 'i', 'c', 'e', 'P' };
	sent += send_all(fd, hpack, sizeof hpack);
	return sent;
}

static int
cmd_h2_cut(const char *sock, const char *what)
{
	if (strcmp(what, "preface") != 0 && strcmp(what, "settings") != 0 && strcmp(what, "headers") != 0) {
		fprintf(stderr, "h2-cut: WHAT is preface, settings or headers\n");
		return 2;
	}
	int fd = sock_connect(sock);
	double t0 = now_ms();
	size_t sent = truncated_start(fd, what), received = 0;
	/* what the plugin says within a moment (its SETTINGS, maybe a GOAWAY), then we cut */
	int closed = drain(fd, 200, &received);
	close(fd);
	printf("h2-cut-%s sent=%zu received=%zu closed_by_peer=%d ms=%.1f\n", what, sent, received, closed,
	       now_ms() - t0);
	return 0;
}

static int
cmd_hold(const char *sock, long ms)
{
	int fd = sock_connect(sock);
	double t0 = now_ms();
	size_t sent = truncated_start(fd, "settings"), received = 0;
	int closed = drain(fd, ms, &received);
	close(fd);
	printf("hold sent=%zu received=%zu closed_by_peer=%d ms=%.1f\n", sent, received, closed, now_ms() - t0);
	return 0;
}

/* ---- gRPC calls ---- */

struct result {
	grpc_status_code status;
	size_t details_len, resp_len;
	double ms;
};

static void
allocate(const char *sock, V1beta1__AllocateRequest *req, struct result *r)
{
	char target[4200];
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel_args args;
	grpc_arg a[2];
	snprintf(target, sizeof target, "unix:%s", sock);
	/* accept whatever the plugin answers, however large */
	a[0].type = GRPC_ARG_INTEGER;
	a[0].key = (char *) GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	a[0].value.integer = -1;
	a[1].type = GRPC_ARG_INTEGER;
	a[1].key = (char *) GRPC_ARG_MAX_METADATA_SIZE;
	a[1].value.integer = 16 << 20;
	args.num_args = 2;
	args.args = a;
	grpc_channel *ch = grpc_channel_create(target, creds, &args);
	grpc_channel_credentials_release(creds);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice m = grpc_slice_from_static_string("/v1beta1.DevicePlugin/Allocate");
	struct unary_call u;

	size_t len = v1beta1__allocate_request__get_packed_size(req);
	grpc_slice s = grpc_slice_malloc(len);
	v1beta1__allocate_request__pack(req, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);

	double t0 = now_ms();
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(CALL_DEADLINE_MS, GPR_TIMESPAN));
	if (unary_call(ch, cq, m, bb, dl, &u) < 0) {
		fprintf(stderr, "start_batch failed\n");
		exit(2);
	}
	r->ms = now_ms() - t0;
	r->status = u.status;
	r->details_len = GRPC_SLICE_LENGTH(u.details);
	r->resp_len = u.resp != NULL ? grpc_byte_buffer_length(u.resp) : 0;
	unary_call_free(&u);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_byte_buffer_destroy(bb);
	grpc_channel_destroy(ch);
}

static int
answered(grpc_status_code st)
{
	return st != GRPC_STATUS_DEADLINE_EXCEEDED && st != GRPC_STATUS_UNAVAILABLE;
}

static int
cmd_allocate(const char *sock, const char *what, char **ids, size_t n)
{
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	V1beta1__ContainerAllocateRequest c = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT, *cp = &c;
	struct result r;
	c.devices_ids = ids;
	c.n_devices_ids = n;
	req.container_requests = &cp;
	req.n_container_requests = 1;
	allocate(sock, &req, &r);
	printf("%s ids=%zu status=%d details_bytes=%zu response_bytes=%zu ms=%.1f\n", what, n, (int) r.status,
	       r.details_len, r.resp_len, r.ms);
	if (strcmp(what, "allocate") == 0)
		return r.status == GRPC_STATUS_OK && r.resp_len > 0 ? 0 : 1;
	if (strcmp(what, "allocate-big-id") == 0)
		return r.status != GRPC_STATUS_OK && answered(r.status) ? 0 : 1;
	return answered(r.status) ? 0 : 1;
}

static const char usage[] =
	"usage: raw-client SOCKET garbage BYTES SEED | h2-cut preface|settings|headers | hold MS\n"
	"                         | allocate IDS | allocate-big-id BYTES | allocate-many N ID|unknown\n";

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fputs(usage, stderr);
		return 2;
	}
	const char *sock = argv[1], *cmd = argv[2];
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(cmd, "garbage") == 0 && argc == 5)
		return cmd_garbage(sock, atol(argv[3]), (unsigned) atol(argv[4]));
	if (strcmp(cmd, "h2-cut") == 0 && argc == 4)
		return cmd_h2_cut(sock, argv[3]);
	if (strcmp(cmd, "hold") == 0 && argc == 4)
		return cmd_hold(sock, atol(argv[3]));

	int rc = 2;
	grpc_init();
	if (strcmp(cmd, "allocate") == 0 && argc == 4) {
		char *dup = strdup(argv[3]), *save = NULL, *tok;
		char *ids[256];
		size_t n = 0;
		for (tok = strtok_r(dup, ",", &save); tok != NULL && n < 256; tok = strtok_r(NULL, ",", &save))
			ids[n++] = tok;
		rc = cmd_allocate(sock, cmd, ids, n);
		free(dup);
	} else if (strcmp(cmd, "allocate-big-id") == 0 && argc == 4) {
		size_t len = (size_t) atol(argv[3]);
		char *id = malloc(len + 1);
		memset(id, 'a', len);
		id[len] = '\0';
		rc = cmd_allocate(sock, cmd, &id, 1);
		free(id);
	} else if (strcmp(cmd, "allocate-many") == 0 && argc == 5) {
		size_t n = (size_t) atol(argv[3]);
		char **ids = calloc(n ? n : 1, sizeof *ids);
		bool unknown = strcmp(argv[4], "unknown") == 0;
		for (size_t i = 0; i < n; i++) {
			if (unknown) {
				ids[i] = malloc(16);
				snprintf(ids[i], 16, "0001:%02zx:%02zx.%zu", (i >> 11) & 0xff, (i >> 3) & 0xff, i & 7);
			} else {
				ids[i] = argv[4];
			}
		}
		rc = cmd_allocate(sock, cmd, ids, n);
		if (unknown)
			for (size_t i = 0; i < n; i++)
				free(ids[i]);
		free(ids);
	} else {
		fputs(usage, stderr);
	}
	grpc_shutdown();
	return rc;
}
