/* bench-client.c — the benchmarks' client (test/bench/run.sh). It talks to a device plugin's socket directly
 * (the same way against the real plugin and against the null-dp floor) and prints one JSON object.
 *
 *   bench-client alloc SOCKET N IDS PID     N sequential Allocate calls with IDS (','-separated, one container)
 *                                           after 200 unmeasured ones: round trip p50/p99/max in µs, and the
 *                                           server's CPU time (utime+stime of /proc/PID/stat) per call in µs
 *   bench-client health SOCKET ROOT GROUP ID N   open ListAndWatch; N times: unlink ROOT/dev/vfio/GROUP and time
 *                                           until the stream lists ID Unhealthy, re-create the node (mknod, same
 *                                           device number) and time until Healthy: p50/max in ms each way
 *   bench-client stamp FILE CMD [ARG...]   write CLOCK_MONOTONIC (ms) to FILE, then execve CMD: the moment a
 *                                           process starts, on the clock fake-kubelet stamps events with
 *   bench-client now                        print CLOCK_MONOTONIC in ms */
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "tool_unary.h"

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return x < y ? -1 : x > y;
}

static double
pct(double *v, size_t n, double p)
{
	size_t i = (size_t) (p * (double) n);
	return v[i < n ? i : n - 1];
}

/* utime+stime of PID in µs */
static double
cpu_us(int pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof buf, f) == NULL) {
		fprintf(stderr, "bench-client: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
		fprintf(stderr, "bench-client: cannot parse %s\n", path);
		exit(1);
	}
	return (double) (ut + st) * 1e6 / (double) sysconf(_SC_CLK_TCK);
}

static grpc_channel *
dial(const char *sock)
{
	char target[4200];
	snprintf(target, sizeof target, "unix:%s", sock);
	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, cr, NULL);
	grpc_channel_credentials_release(cr);
	return ch;
}

static grpc_byte_buffer *
packed(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(len);
	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* One unary call; returns the status. */
static grpc_status_code
unary(grpc_channel *ch, grpc_completion_queue *cq, grpc_slice method, grpc_byte_buffer *req)
{
	struct unary_call u;
	grpc_status_code st;
	unary_call(ch, cq, method, req,
		   gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(30, GPR_TIMESPAN)), &u);
	st = u.status;
	unary_call_free(&u);
	return st;
}

static int
cmd_alloc(const char *sock, long n, const char *ids, int pid)
{
	char *dup = strdup(ids), *save = NULL, *tok, *idv[256];
	size_t nid = 0;
	for (tok = strtok_r(dup, ",", &save); tok && nid < 256; tok = strtok_r(NULL, ",", &save))
		idv[nid++] = tok;
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	V1beta1__ContainerAllocateRequest c = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT, *cp = &c;
	c.devices_ids = idv;
	c.n_devices_ids = nid;
	req.container_requests = &cp;
	req.n_container_requests = 1;
	grpc_byte_buffer *bb = packed(&req.base);
	grpc_channel *ch = dial(sock);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice m = grpc_slice_from_static_string("/v1beta1.DevicePlugin/Allocate");
	double *us = calloc((size_t) n, sizeof *us);

	for (int i = 0; i < 200; i++) /* connection up, server pools warm */
		if (unary(ch, cq, m, bb) != GRPC_STATUS_OK) {
			fprintf(stderr, "bench-client: Allocate %s failed\n", ids);
			return 1;
		}
	double cpu0 = cpu_us(pid), wall0 = now_ms();
	for (long i = 0; i < n; i++) {
		double t0 = now_ms();
		grpc_status_code st = unary(ch, cq, m, bb);
		us[i] = (now_ms() - t0) * 1e3;
		if (st != GRPC_STATUS_OK) {
			fprintf(stderr, "bench-client: Allocate failed: status %d\n", st);
			return 1;
		}
	}
	double cpu1 = cpu_us(pid), wall = now_ms() - wall0;
	qsort(us, (size_t) n, sizeof *us, cmp);
	printf("{\"n\": %ld, \"ids\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
	       "\"server_cpu_us_per_call\": %.2f, \"calls_per_s\": %.0f}\n",
	       n, nid, pct(us, (size_t) n, 0.5), pct(us, (size_t) n, 0.99), us[n - 1], (cpu1 - cpu0) / (double) n,
	       (double) n / wall * 1e3);
	free(us);
	grpc_byte_buffer_destroy(bb);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	free(dup);
	return 0;
}

/* ---- health ---- */

struct stream {
	grpc_call *call;
	grpc_completion_queue *cq;
	grpc_byte_buffer *recv;
};

/* Wait (at most 20 s) for the next list; returns the health of id in it ("" when absent), NULL on error. */
static const char *
next_health(struct stream *s, const char *id, char *out, size_t outlen)
{
	grpc_op op;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &s->recv;
	s->recv = NULL;
	if (grpc_call_start_batch(s->call, &op, 1, s, NULL) != GRPC_CALL_OK)
		return NULL;
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(20, GPR_TIMESPAN));
	grpc_event ev = grpc_completion_queue_pluck(s->cq, s, dl, NULL);
	if (ev.type != GRPC_OP_COMPLETE || !ev.success || s->recv == NULL)
		return NULL;
	grpc_byte_buffer_reader rd;
	grpc_byte_buffer_reader_init(&rd, s->recv);
	grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	grpc_byte_buffer_destroy(s->recv);
	V1beta1__ListAndWatchResponse *l =
		v1beta1__list_and_watch_response__unpack(NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
	grpc_slice_unref(sl);
	if (l == NULL)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < l->n_devices; i++)
		if (strcmp(l->devices[i]->id, id) == 0)
			snprintf(out, outlen, "%s", l->devices[i]->health);
	v1beta1__list_and_watch_response__free_unpacked(l, NULL);
	return out;
}

/* Receive lists until id has health want; returns 0, or -1 on a stream error / timeout. */
static int
wait_health(struct stream *s, const char *id, const char *want)
{
	char h[32];
	for (;;) {
		const char *got = next_health(s, id, h, sizeof h);
		if (got == NULL)
			return -1;
		if (strcmp(got, want) == 0)
			return 0;
	}
}

static int
cmd_health(const char *sock, const char *root, const char *group, const char *id, long n)
{
	char node[4096];
	struct stat st;
	snprintf(node, sizeof node, "%s/dev/vfio/%s", root, group);
	if (stat(node, &st) < 0) {
		fprintf(stderr, "bench-client: %s: %s\n", node, strerror(errno));
		return 1;
	}
	grpc_channel *ch = dial(sock);
	struct stream s = { 0 };
	s.cq = grpc_completion_queue_create_for_pluck(NULL);
	gpr_timespec dl = gpr_inf_future(GPR_CLOCK_REALTIME);
	s.call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, s.cq,
					  grpc_slice_from_static_string("/v1beta1.DevicePlugin/ListAndWatch"), NULL, dl,
					  NULL);
	V1beta1__Empty e = V1BETA1__EMPTY__INIT;
	grpc_byte_buffer *bb = packed(&e.base);
	grpc_metadata_array imd;
	grpc_metadata_array_init(&imd);
	grpc_op ops[4];
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
	grpc_call_start_batch(s.call, ops, 4, ops, NULL);
	grpc_completion_queue_pluck(s.cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (wait_health(&s, id, "Healthy") < 0) {
		fprintf(stderr, "bench-client: no list with %s Healthy\n", id);
		return 1;
	}
	double *down = calloc((size_t) n, sizeof *down), *up = calloc((size_t) n, sizeof *up);
	for (long i = 0; i < n; i++) {
		double t0 = now_ms();
		if (unlink(node) < 0) {
			perror("unlink");
			return 1;
		}
		if (wait_health(&s, id, "Unhealthy") < 0) {
			fprintf(stderr, "bench-client: %s not Unhealthy within 20 s of the unlink\n", id);
			return 1;
		}
		down[i] = now_ms() - t0;
		usleep(20000);
		t0 = now_ms();
		if (mknod(node, st.st_mode, st.st_rdev) < 0) {
			perror("mknod");
			return 1;
		}
		if (wait_health(&s, id, "Healthy") < 0) {
			fprintf(stderr, "bench-client: %s not Healthy within 20 s of the mknod\n", id);
			return 1;
		}
		up[i] = now_ms() - t0;
		usleep(20000);
	}
	qsort(down, (size_t) n, sizeof *down, cmp);
	qsort(up, (size_t) n, sizeof *up, cmp);
	printf("{\"n\": %ld, \"down_p50_ms\": %.3f, \"down_max_ms\": %.3f, \"up_p50_ms\": %.3f, \"up_max_ms\": %.3f}\n", n,
	       pct(down, (size_t) n, 0.5), down[n - 1], pct(up, (size_t) n, 0.5), up[n - 1]);
	free(down);
	free(up);
	grpc_call_cancel(s.call, NULL);
	grpc_call_unref(s.call);
	grpc_metadata_array_destroy(&imd);
	grpc_byte_buffer_destroy(bb);
	grpc_completion_queue_shutdown(s.cq);
	while (grpc_completion_queue_pluck(s.cq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(s.cq);
	grpc_channel_destroy(ch);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "now") == 0) {
		printf("%.3f\n", now_ms());
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "stamp") == 0) {
		FILE *f = fopen(argv[2], "w");
		if (f == NULL)
			return 127;
		fprintf(f, "%.3f\n", now_ms());
		fclose(f);
		execv(argv[3], argv + 3);
		perror("execv");
		return 127;
	}
	int rc = 2;
	grpc_init();
	if (argc == 6 && strcmp(argv[1], "alloc") == 0)
		rc = cmd_alloc(argv[2], atol(argv[3]), argv[4], atoi(argv[5]));
	else if (argc == 7 && strcmp(argv[1], "health") == 0)
		rc = cmd_health(argv[2], argv[3], argv[4], argv[5], atol(argv[6]));
	else
		fprintf(stderr, "usage: bench-client alloc SOCKET N IDS PID | health SOCKET ROOT GROUP ID N | "
				"stamp FILE CMD [ARG...] | now\n");
	grpc_shutdown();
	return rc;
}
