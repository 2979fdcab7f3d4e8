/* null-dp.c — the benchmarks' floor: a do-nothing device plugin on gRPC's C core. It serves the five
 * /v1beta1.DevicePlugin methods on DIR/ENDPOINT with empty answers (ListAndWatch: one empty list, then the stream
 * stays open until the client goes) and registers RESOURCE with DIR/kubelet.sock once, like the plugin (one
 * completion-queue thread, a registration thread). Whatever the real plugin costs above this is its own.
 *
 *   null-dp --dir DIR [--resource nvidia.com/NULL] [--endpoint null-dp.sock] [--no-register]
 * Runs until SIGTERM/SIGINT (exit 0). */
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "tool_unary.h"

enum kind { K_OPTIONS, K_LAW, K_PREFERRED, K_ALLOCATE, K_PRESTART, K_N };
static const char *const paths[K_N] = {
	"/v1beta1.DevicePlugin/GetDevicePluginOptions", "/v1beta1.DevicePlugin/ListAndWatch",
	"/v1beta1.DevicePlugin/GetPreferredAllocation", "/v1beta1.DevicePlugin/Allocate",
	"/v1beta1.DevicePlugin/PreStartContainer",
};

struct call {
	enum kind kind;
	int refs;
	bool accepted;
	grpc_call *call;
	grpc_metadata_array md;
	grpc_byte_buffer *payload, *send;
	int cancelled;
	gpr_timespec deadline;
};

static grpc_server *server;
static grpc_completion_queue *cq;
static void *methods[K_N];
static volatile sig_atomic_t stop;

static void
on_signal(int s)
{
	(void) s;
	stop = 1;
}

static void
request(enum kind k)
{
	struct call *c = calloc(1, sizeof *c);
	c->kind = k;
	c->refs = 1;
	grpc_metadata_array_init(&c->md);
	grpc_server_request_registered_call(server, methods[k], &c->call, &c->deadline, &c->md,
					    k == K_LAW ? NULL : &c->payload, cq, cq, c);
}

static void
call_unref(struct call *c)
{
	if (--c->refs > 0)
		return;
	if (c->call)
		grpc_call_unref(c->call);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	grpc_metadata_array_destroy(&c->md);
	free(c);
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

static void
accept_call(struct call *c)
{
	grpc_op ops[4];
	size_t n = 0;
	memset(ops, 0, sizeof ops);
	c->accepted = true;
	request(c->kind); /* the next one */
	switch (c->kind) {
	case K_OPTIONS: {
		V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
		c->send = packed(&o.base);
		break;
	}
	case K_LAW: {
		V1beta1__ListAndWatchResponse o = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
		c->send = packed(&o.base);
		break;
	}
	case K_PREFERRED: {
		V1beta1__PreferredAllocationResponse o = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
		c->send = packed(&o.base);
		break;
	}
	case K_ALLOCATE: {
		V1beta1__AllocateResponse o = V1BETA1__ALLOCATE_RESPONSE__INIT;
		c->send = packed(&o.base);
		break;
	}
	default: {
		V1beta1__PreStartContainerResponse o = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
		c->send = packed(&o.base);
		break;
	}
	}
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = c->send;
	if (c->kind != K_LAW) {
		ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[n++].data.send_status_from_server.status = GRPC_STATUS_OK;
	}
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	if (c->kind == K_LAW) {
		/* the list now; the stream stays open until the client cancels it (RECV_CLOSE on its own) */
		c->refs++;
		grpc_call_start_batch(c->call, ops, 2, c, NULL);
		grpc_call_start_batch(c->call, ops + 2, 1, c, NULL);
	} else {
		grpc_call_start_batch(c->call, ops, n, c, NULL);
	}
}

/* ---- registration (a thread, as the plugin does: kubelet dials back inside Register) ---- */

static char kdir[PATH_MAX - 32], resource[256] = "nvidia.com/NULL", endpoint[128] = "null-dp.sock";

static void *
register_thread(void *arg)
{
	(void) arg;
	char target[PATH_MAX];
	snprintf(target, sizeof target, "unix:%s/kubelet.sock", kdir);
	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, cr, NULL);
	grpc_channel_credentials_release(cr);
	grpc_completion_queue *rcq = grpc_completion_queue_create_for_pluck(NULL);
	V1beta1__RegisterRequest rq = V1BETA1__REGISTER_REQUEST__INIT;
	V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
	rq.version = (char *) "v1beta1";
	rq.endpoint = endpoint;
	rq.resource_name = resource;
	rq.options = &o;
	grpc_byte_buffer *bb = packed(&rq.base);
	struct unary_call u;
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(15, GPR_TIMESPAN));
	unary_call(ch, rcq, grpc_slice_from_static_string("/v1beta1.Registration/Register"), bb, dl, &u);
	if (u.status != GRPC_STATUS_OK)
		fprintf(stderr, "null-dp: Register failed: status %d\n", u.status);
	else
		fprintf(stderr, "null-dp: registered %s\n", resource);
	unary_call_free(&u);
	grpc_byte_buffer_destroy(bb);
	grpc_completion_queue_shutdown(rcq);
	while (grpc_completion_queue_pluck(rcq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(rcq);
	grpc_channel_destroy(ch);
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },     { "resource", required_argument, NULL, 'r' },
		{ "endpoint", required_argument, NULL, 'e' }, { "no-register", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	bool reg = true;
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd': snprintf(kdir, sizeof kdir, "%s", optarg); break;
		case 'r': snprintf(resource, sizeof resource, "%s", optarg); break;
		case 'e': snprintf(endpoint, sizeof endpoint, "%s", optarg); break;
		case 'n': reg = false; break;
		default:
			fprintf(stderr, "usage: null-dp --dir DIR [--resource R] [--endpoint SOCK] [--no-register]\n");
			return 2;
		}
	}
	if (kdir[0] == '\0') {
		fprintf(stderr, "null-dp: --dir is required\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	char path[PATH_MAX + 256], addr[PATH_MAX + 264];
	snprintf(path, sizeof path, "%s/%s", kdir, endpoint);
	snprintf(addr, sizeof addr, "unix:%s", path);
	unlink(path);
	grpc_init();
	cq = grpc_completion_queue_create_for_next(NULL);
	server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	for (int k = 0; k < K_N; k++)
		methods[k] = grpc_server_register_method(server, paths[k], NULL,
							 k == K_LAW ? GRPC_SRM_PAYLOAD_NONE
								    : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	grpc_server_credentials *sc = grpc_insecure_server_credentials_create();
	if (!grpc_server_add_http2_port(server, addr, sc)) {
		fprintf(stderr, "null-dp: cannot listen on %s\n", addr);
		return 1;
	}
	grpc_server_credentials_release(sc);
	grpc_server_start(server);
	for (int k = 0; k < K_N; k++)
		request((enum kind) k);
	pthread_t rt;
	if (reg)
		pthread_create(&rt, NULL, register_thread, NULL);

	while (!stop) {
		gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(500, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_next(cq, dl, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		struct call *c = ev.tag;
		if (!c->accepted) {
			if (ev.success)
				accept_call(c);
			else
				call_unref(c);
		} else {
			call_unref(c);
		}
	}
	if (reg)
		pthread_join(rt, NULL);
	grpc_server_shutdown_and_notify(server, cq, NULL);
	grpc_server_cancel_all_calls(server);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_OP_COMPLETE && ev.tag == NULL)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			call_unref(ev.tag);
	}
	grpc_server_destroy(server);
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE && ev.tag != NULL)
			call_unref(ev.tag);
	}
	grpc_completion_queue_destroy(cq);
	unlink(path);
	grpc_shutdown();
	return 0;
}
