/* fake-kubelet.c — a stand-in for kubelet's device-manager, on gRPC's C core, for tests, the demo and the
 * benchmarks. It serves /v1beta1.Registration/Register on <dir>/kubelet.sock; on each Register it dials the
 * plugin back synchronously and calls GetDevicePluginOptions (as kubelet does, 10 s), opens ListAndWatch, and
 * then runs a script of steps given as flags, in order, printing what it saw as JSON lines on stdout.
 * Run with --help for the steps. Exit 0 when every step passed, 1 when a wait timed out or a check failed,
 * 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "unary.h"
#include "util.h"

static const char usage[] =
	"usage: fake-kubelet --dir DIR [--timeout SEC] [STEP...]\n"
	"\n"
	"Serves /v1beta1.Registration/Register on DIR/kubelet.sock like kubelet: every Register is checked\n"
	"(version v1beta1), the plugin is dialed back at DIR/<endpoint> and GetDevicePluginOptions is called (10 s),\n"
	"then a ListAndWatch stream is opened (the \"primary\" stream). A second Register of a resource replaces the\n"
	"first (its streams are cancelled). Output: one JSON object per line on stdout, \"event\" says which.\n"
	"\n"
	"Options:\n"
	"  --dir DIR              device-plugins directory (required)\n"
	"  --timeout SEC          overall deadline for the whole script (default 60); a wait that runs out fails\n"
	"  --quiet-lists          do not print every ListAndWatch update of the primary streams\n"
	"\n"
	"Steps (run in command-line order; steps on a plugin first wait for its registration):\n"
	"  --resource NAME        target resource of the next steps (\"nvidia.com/X\" or \"X\"); default: the first\n"
	"                         one that registered\n"
	"  --wait-register N      wait until N Register calls succeeded since the start or the last --restart\n"
	"  --expect-devices N     wait for the first list of the primary stream; fail unless it has N devices\n"
	"  --options              call GetDevicePluginOptions and print the answer\n"
	"  --allocate IDS         Allocate: containers separated by '|', IDs by ','; \"\" = no containers\n"
	"                         (prints status, details, and per container envs, devices, mounts, annotations)\n"
	"  --preferred SPEC       GetPreferredAllocation: \"avail=ID,ID;must=ID;size=N\", containers separated by '|'\n"
	"  --prestart IDS         PreStartContainer with the IDs\n"
	"  --raw METHOD:HEX       send HEX bytes as the request of /v1beta1.DevicePlugin/METHOD, print the status\n"
	"  --bench-allocate N:IDS N sequential Allocate calls; prints p50/p99/max round trip in microseconds\n"
	"  --streams N            open N more ListAndWatch streams on the plugin, wait for each one's first list\n"
	"  --wait-health ID=H     wait until every open stream of the plugin lists ID with health H (Healthy or\n"
	"                         Unhealthy); prints the milliseconds waited since the step started\n"
	"  --wait-stream-end      wait until the primary stream ends (the plugin stopped); prints its status\n"
	"  --restart              like a kubelet restart: stop serving Registration, close every plugin connection,\n"
	"                         delete every socket in DIR, serve a new DIR/kubelet.sock\n"
	"  --exec CMD             run CMD with /bin/sh; prints its exit status (fails the script unless 0)\n"
	"  --sleep MS             sleep\n"
	"  --hold                 keep serving until SIGTERM/SIGINT or the --timeout (then exit 0)\n"
	"\n"
	"Events: listening, register, list, devices, options, allocate, preferred, prestart, raw, bench, streams,\n"
	"health, stream_end, restart, exec, error, done.\n";

enum step_kind {
	S_RESOURCE, S_WAIT_REGISTER, S_EXPECT_DEVICES, S_OPTIONS, S_ALLOCATE, S_PREFERRED, S_PRESTART, S_RAW,
	S_BENCH, S_STREAMS, S_WAIT_HEALTH, S_WAIT_END, S_RESTART, S_EXEC, S_SLEEP, S_HOLD,
};

struct step {
	enum step_kind kind;
	const char *arg;
};

struct plugin;
struct stream;

enum { T_START = 1, T_RECV, T_STATUS, T_REG_NEW, T_REG_DONE };

struct stag { /* a completion-queue tag: which batch of which stream */
	int what;
	struct stream *st;
};

struct stream {
	struct plugin *p;
	int idx;                 /* 0 = primary */
	grpc_call *call;
	grpc_metadata_array init_md, trail_md;
	grpc_byte_buffer *recv_bb;
	grpc_status_code status;
	grpc_slice details;
	int refs;
	bool ended, first;
	unsigned updates;
	V1beta1__ListAndWatchResponse *list; /* latest */
	grpc_byte_buffer *send_bb;           /* the Empty request */
	struct stag t_start, t_recv, t_status;
};

struct plugin {
	char resource[256];
	char endpoint[256];
	bool stale;
	grpc_channel *ch;
	struct stream **streams;
	size_t n_streams;
};

/* all shared state */
/* One more element at the end of *arr (vgp_array_push); out of memory ends this test tool. */
static void *
push(void *arr, size_t *n, size_t size)
{
	void *x = vgp_array_push(arr, n, size);
	if (x == NULL) {
		fprintf(stderr, "fake-kubelet: out of memory\n");
		exit(2);
	}
	return x;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *dir;
static char kubelet_sock[PATH_MAX];
static struct plugin **plugins;   /* every plugin ever registered, stale ones kept until exit */
static size_t n_plugins;
static unsigned registrations;   /* since start or the last --restart */
static bool quiet_lists;
static struct timespec deadline;  /* CLOCK_MONOTONIC */
static volatile sig_atomic_t got_signal;

/* the Registration server */
static grpc_completion_queue *rcq;
static grpc_server *rserver;
static void *rmethod;
static pthread_t rthread;
static bool rshutdown_done;

/* the ListAndWatch client streams */
static grpc_completion_queue *scq;
static pthread_t sthread;

struct reg_call;
struct rtag {
	int what;
	struct reg_call *rc;
};

struct reg_call {
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	grpc_byte_buffer *reply;
	grpc_slice details;
	int cancelled;
	struct rtag t_new, t_done;
};
static int t_rshutdown;

/* ---- output ---- */

static double
now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static void
emit(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	pthread_mutex_lock(&out_mu);
	if (s != NULL) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_mu);
	free(s);
	json_decref(o);
}

static int
fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int
fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	emit(json_pack("{s:s, s:s}", "event", "error", "msg", msg));
	return -1;
}

static json_t *
list_json(const V1beta1__ListAndWatchResponse *l)
{
	json_t *a = json_array();
	for (size_t i = 0; l != NULL && i < l->n_devices; i++) {
		const V1beta1__Device *d = l->devices[i];
		json_t *o = json_pack("{s:s, s:s}", "id", d->id, "health", d->health);
		if (d->topology != NULL) {
			json_t *nodes = json_array();
			for (size_t k = 0; k < d->topology->n_nodes; k++)
				json_array_append_new(nodes, json_integer(d->topology->nodes[k]->id));
			json_object_set_new(o, "numa", nodes);
		}
		json_array_append_new(a, o);
	}
	return a;
}

/* ---- gRPC helpers ---- */

static gpr_timespec
ms_from_now(long ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_byte_buffer *
bb_from(const uint8_t *buf, size_t len)
{
	grpc_slice s = grpc_slice_from_copied_buffer((const char *) buf, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

static grpc_byte_buffer *
bb_from_msg(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	protobuf_c_message_pack(m, buf);
	grpc_byte_buffer *bb = bb_from(buf, len);
	free(buf);
	return bb;
}

static uint8_t *
bb_read(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader rd;
	grpc_slice s;
	uint8_t *buf;

	*len = 0;
	if (bb == NULL || !grpc_byte_buffer_reader_init(&rd, bb))
		return NULL;
	s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	*len = GRPC_SLICE_LENGTH(s);
	buf = malloc(*len ? *len : 1);
	memcpy(buf, GRPC_SLICE_START_PTR(s), *len);
	grpc_slice_unref(s);
	return buf;
}

struct unary_result {
	grpc_status_code status;
	char *details;
	uint8_t *resp;   /* NULL when no message came back */
	size_t len;
};

static void
unary_result_free(struct unary_result *r)
{
	free(r->details);
	free(r->resp);
}

/* One synchronous unary call on ch. req is the request payload (consumed). */
static void
unary(grpc_channel *ch, const char *method, grpc_byte_buffer *req, long timeout_ms, struct unary_result *r)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice m = grpc_slice_from_copied_string(method);
	struct unary_call u;

	memset(r, 0, sizeof *r);
	if (unary_call(ch, cq, m, req, ms_from_now(timeout_ms), &u) < 0) {
		r->status = GRPC_STATUS_INTERNAL;
		r->details = strdup("start_batch failed");
	} else {
		char *d = grpc_slice_to_c_string(u.details);
		r->status = u.status;
		r->details = strdup(d);
		gpr_free(d);
		if (u.resp != NULL)
			r->resp = bb_read(u.resp, &r->len);
	}
	unary_call_free(&u);
	grpc_slice_unref(m);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	grpc_byte_buffer_destroy(req);
}

static grpc_channel *
dial(const char *endpoint)
{
	char target[PATH_MAX + 8];
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	snprintf(target, sizeof target, "unix:%s/%s", dir, endpoint);
	grpc_channel *ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	return ch;
}

/* ---- ListAndWatch streams (mutex held by callers unless said otherwise) ---- */

static void
stream_recv(struct stream *st, bool with_md)
{
	grpc_op ops[2];
	size_t n = 0;
	memset(ops, 0, sizeof ops);
	if (with_md) {
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n].data.recv_initial_metadata.recv_initial_metadata = &st->init_md;
		n++;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &st->recv_bb;
	n++;
	st->refs++;
	if (grpc_call_start_batch(st->call, ops, n, &st->t_recv, NULL) != GRPC_CALL_OK)
		st->refs--;
}

static struct stream *
stream_open(struct plugin *p)
{
	struct stream *st = calloc(1, sizeof *st);
	V1beta1__Empty e = V1BETA1__EMPTY__INIT;
	grpc_slice m = grpc_slice_from_static_string("/v1beta1.DevicePlugin/ListAndWatch");
	grpc_op ops[3];

	st->p = p;
	st->idx = (int) p->n_streams;
	st->t_start = (struct stag) { T_START, st };
	st->t_recv = (struct stag) { T_RECV, st };
	st->t_status = (struct stag) { T_STATUS, st };
	st->details = grpc_empty_slice();
	grpc_metadata_array_init(&st->init_md);
	grpc_metadata_array_init(&st->trail_md);
	st->call = grpc_channel_create_call(p->ch, NULL, GRPC_PROPAGATE_DEFAULTS, scq, m, NULL,
					    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	*(struct stream **) push(&p->streams, &p->n_streams, sizeof *p->streams) = st;

	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	st->send_bb = bb_from_msg(&e.base);
	ops[1].data.send_message.send_message = st->send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	st->refs++;
	if (grpc_call_start_batch(st->call, ops, 3, &st->t_start, NULL) != GRPC_CALL_OK)
		st->refs--;
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &st->trail_md;
	ops[0].data.recv_status_on_client.status = &st->status;
	ops[0].data.recv_status_on_client.status_details = &st->details;
	st->refs++;
	if (grpc_call_start_batch(st->call, ops, 1, &st->t_status, NULL) != GRPC_CALL_OK) {
		st->refs--;
		st->ended = true;
	}
	stream_recv(st, true);
	return st;
}

static void *
stream_thread(void *arg)
{
	(void) arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		pthread_mutex_lock(&mu);
		struct stag *t = ev.tag;
		struct stream *st = t->st;
		st->refs--;
		if (t->what == T_START) {
			/* the request payload is destroyed at exit */
		} else if (t->what == T_RECV) {
			if (ev.success && st->recv_bb != NULL) {
				size_t len;
				uint8_t *buf = bb_read(st->recv_bb, &len);
				grpc_byte_buffer_destroy(st->recv_bb);
				st->recv_bb = NULL;
				V1beta1__ListAndWatchResponse *l = v1beta1__list_and_watch_response__unpack(NULL, len, buf);
				free(buf);
				if (l == NULL) {
					fail("%s: stream %d: malformed ListAndWatchResponse", st->p->resource, st->idx);
				} else {
					if (st->list != NULL)
						v1beta1__list_and_watch_response__free_unpacked(st->list, NULL);
					st->list = l;
					st->updates++;
					if (st->idx == 0 && !quiet_lists && !st->p->stale)
						emit(json_pack("{s:s, s:s, s:i, s:i, s:o}", "event", "list", "resource",
							       st->p->resource, "stream", st->idx, "update", st->updates,
							       "devices", list_json(l)));
				}
				stream_recv(st, false);
			}
		} else if (t->what == T_STATUS) {
			st->ended = true;
			if (st->idx == 0 && !st->p->stale) {
				char *d = grpc_slice_to_c_string(st->details);
				emit(json_pack("{s:s, s:s, s:i, s:i, s:s}", "event", "stream_end", "resource", st->p->resource,
					       "stream", st->idx, "status", (int) st->status, "details", d));
				gpr_free(d);
			}
		}
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

/* ---- Registration server ---- */

static void reg_request(void);

static void
reg_reply(struct reg_call *rc, grpc_status_code code, const char *details)
{
	V1beta1__Empty e = V1BETA1__EMPTY__INIT;
	grpc_op ops[4];
	size_t n = 0;

	memset(ops, 0, sizeof ops);
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (code == GRPC_STATUS_OK) {
		rc->reply = bb_from_msg(&e.base);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = rc->reply;
	}
	rc->details = grpc_slice_from_copied_string(details ? details : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n++].data.send_status_from_server.status_details = &rc->details;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &rc->cancelled;
	grpc_call_start_batch(rc->call, ops, n, &rc->t_done, NULL);
}

static json_t *
options_json(const V1beta1__DevicePluginOptions *o)
{
	if (o == NULL)
		return json_null();
	return json_pack("{s:b, s:b}", "pre_start_required", o->pre_start_required,
			 "get_preferred_allocation_available", o->get_preferred_allocation_available);
}

static void
reg_handle(struct reg_call *rc)
{
	size_t len;
	uint8_t *buf = bb_read(rc->payload, &len);
	V1beta1__RegisterRequest *rq = v1beta1__register_request__unpack(NULL, len, buf);
	V1beta1__Empty e = V1BETA1__EMPTY__INIT;
	struct unary_result ur;
	V1beta1__DevicePluginOptions *dopt = NULL;
	double t0 = now_ms();
	json_t *ev;

	free(buf);
	if (rq == NULL) {
		fail("Register: malformed RegisterRequest (%zu bytes)", len);
		reg_reply(rc, GRPC_STATUS_INVALID_ARGUMENT, "malformed RegisterRequest");
		return;
	}
	ev = json_pack("{s:s, s:s, s:s, s:s, s:o}", "event", "register", "resource", rq->resource_name, "endpoint",
		       rq->endpoint, "version", rq->version, "options", options_json(rq->options));
	json_object_set_new(ev, "t_mono_ms", json_real(t0)); /* arrival, CLOCK_MONOTONIC (for the benchmarks) */
	if (strcmp(rq->version, "v1beta1") != 0 || strchr(rq->endpoint, '/') != NULL || rq->endpoint[0] == '\0' ||
	    strchr(rq->resource_name, '/') == NULL) {
		json_object_set_new(ev, "ok", json_false());
		json_object_set_new(ev, "error", json_string("invalid version, endpoint or resource name"));
		emit(ev);
		reg_reply(rc, GRPC_STATUS_INVALID_ARGUMENT, "invalid version, endpoint or resource name");
		v1beta1__register_request__free_unpacked(rq, NULL);
		return;
	}
	/* dial back synchronously, as kubelet does before it answers */
	grpc_channel *ch = dial(rq->endpoint);
	unary(ch, "/v1beta1.DevicePlugin/GetDevicePluginOptions", bb_from_msg(&e.base), 10000, &ur);
	if (ur.status == GRPC_STATUS_OK && ur.resp != NULL)
		dopt = v1beta1__device_plugin_options__unpack(NULL, ur.len, ur.resp);
	json_object_set_new(ev, "dial_options", options_json(dopt));
	json_object_set_new(ev, "dial_ms", json_real(now_ms() - t0));
	if (dopt == NULL) {
		json_object_set_new(ev, "ok", json_false());
		json_object_set_new(ev, "error", json_string(ur.details ? ur.details : "dial failed"));
		emit(ev);
		reg_reply(rc, GRPC_STATUS_UNKNOWN, "cannot dial the plugin back");
		grpc_channel_destroy(ch);
	} else {
		bool same = rq->options != NULL &&
			    rq->options->pre_start_required == dopt->pre_start_required &&
			    rq->options->get_preferred_allocation_available == dopt->get_preferred_allocation_available;
		pthread_mutex_lock(&mu);
		for (size_t i = 0; i < n_plugins; i++)
			if (!plugins[i]->stale && strcmp(plugins[i]->resource, rq->resource_name) == 0) {
				plugins[i]->stale = true;
				for (size_t k = 0; k < plugins[i]->n_streams; k++)
					grpc_call_cancel(plugins[i]->streams[k]->call, NULL);
			}
		struct plugin *p = calloc(1, sizeof *p);
		snprintf(p->resource, sizeof p->resource, "%s", rq->resource_name);
		snprintf(p->endpoint, sizeof p->endpoint, "%s", rq->endpoint);
		p->ch = ch;
		*(struct plugin **) push(&plugins, &n_plugins, sizeof *plugins) = p;
		stream_open(p);
		registrations++;
		json_object_set_new(ev, "ok", json_true());
		json_object_set_new(ev, "options_match", json_boolean(same));
		json_object_set_new(ev, "n", json_integer(registrations));
		emit(ev);
		reg_reply(rc, GRPC_STATUS_OK, NULL);
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		v1beta1__device_plugin_options__free_unpacked(dopt, NULL);
	}
	unary_result_free(&ur);
	v1beta1__register_request__free_unpacked(rq, NULL);
}

static void
reg_free(struct reg_call *rc)
{
	if (rc->call)
		grpc_call_unref(rc->call);
	grpc_metadata_array_destroy(&rc->md);
	if (rc->payload)
		grpc_byte_buffer_destroy(rc->payload);
	if (rc->reply)
		grpc_byte_buffer_destroy(rc->reply);
	grpc_slice_unref(rc->details);
	free(rc);
}

static void *
reg_thread(void *arg)
{
	(void) arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(rcq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &t_rshutdown) {
			pthread_mutex_lock(&mu);
			rshutdown_done = true;
			pthread_cond_broadcast(&cv);
			pthread_mutex_unlock(&mu);
			continue;
		}
		struct rtag *t = ev.tag;
		struct reg_call *rc = t->rc;
		if (t->what == T_REG_DONE || !ev.success) {
			reg_free(rc);
			continue;
		}
		reg_request();
		reg_handle(rc);
	}
	return NULL;
}

static void
reg_request(void)
{
	struct reg_call *rc = calloc(1, sizeof *rc);
	grpc_metadata_array_init(&rc->md);
	rc->details = grpc_empty_slice();
	rc->t_new = (struct rtag) { T_REG_NEW, rc };
	rc->t_done = (struct rtag) { T_REG_DONE, rc };
	if (grpc_server_request_registered_call(rserver, rmethod, &rc->call, &rc->deadline, &rc->md, &rc->payload, rcq,
						rcq, &rc->t_new) != GRPC_CALL_OK)
		reg_free(rc);
}

static int
reg_start(void)
{
	char target[PATH_MAX + 8];
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();

	snprintf(target, sizeof target, "unix:%s", kubelet_sock);
	rserver = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(rserver, rcq, NULL);
	rmethod = grpc_server_register_method(rserver, "/v1beta1.Registration/Register", NULL,
					      GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	int port = grpc_server_add_http2_port(rserver, target, creds);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		grpc_server_destroy(rserver);
		rserver = NULL;
		return fail("cannot listen on %s", kubelet_sock);
	}
	grpc_server_start(rserver);
	pthread_mutex_lock(&mu);
	rshutdown_done = false;
	pthread_mutex_unlock(&mu);
	reg_request();
	emit(json_pack("{s:s, s:s, s:f}", "event", "listening", "socket", kubelet_sock, "t_mono_ms", now_ms()));
	return 0;
}

static void
reg_stop(void)
{
	if (rserver == NULL)
		return;
	grpc_server_shutdown_and_notify(rserver, rcq, &t_rshutdown);
	grpc_server_cancel_all_calls(rserver);
	pthread_mutex_lock(&mu);
	while (!rshutdown_done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	grpc_server_destroy(rserver);
	rserver = NULL;
}

/* ---- waiting ---- */

/* Wait on cv until pred() holds or the deadline passes (mutex held). Returns 0 or -1 (timeout). */
static int
wait_until(bool (*pred)(const void *), const void *arg)
{
	struct timespec rt;
	while (!pred(arg)) {
		struct timespec nowm;
		clock_gettime(CLOCK_MONOTONIC, &nowm);
		if (got_signal || nowm.tv_sec > deadline.tv_sec ||
		    (nowm.tv_sec == deadline.tv_sec && nowm.tv_nsec >= deadline.tv_nsec))
			return -1;
		clock_gettime(CLOCK_REALTIME, &rt);
		rt.tv_nsec += 50 * 1000000L;
		if (rt.tv_nsec >= 1000000000L) {
			rt.tv_sec++;
			rt.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cv, &mu, &rt);
	}
	return 0;
}

static const char *target_resource; /* NULL = the first live one */

static struct plugin *
find_plugin(void)
{
	for (size_t i = 0; i < n_plugins; i++) {
		struct plugin *p = plugins[i];
		if (p->stale)
			continue;
		if (target_resource == NULL)
			return p;
		const char *slash = strrchr(p->resource, '/');
		if (strcmp(p->resource, target_resource) == 0 || (slash && strcmp(slash + 1, target_resource) == 0))
			return p;
	}
	return NULL;
}

static bool
pred_plugin(const void *a)
{
	(void) a;
	return find_plugin() != NULL;
}

/* Wait for the target plugin (mutex held). */
static struct plugin *
get_plugin(void)
{
	if (wait_until(pred_plugin, NULL) < 0) {
		fail("timeout waiting for the registration of %s", target_resource ? target_resource : "a plugin");
		return NULL;
	}
	return find_plugin();
}

static bool
pred_registrations(const void *a)
{
	return registrations >= *(const unsigned *) a;
}

static bool
pred_first_list(const void *a)
{
	const struct plugin *p = a;
	return p->stale || p->streams[0]->list != NULL || p->streams[0]->ended;
}

struct health_want {
	struct plugin *p;
	const char *id, *health;
	size_t ok_streams;
};

static bool
pred_health(const void *a)
{
	struct health_want *w = (struct health_want *) a;
	size_t ok = 0, live = 0;
	if (w->p->stale)
		return true; /* replaced by a newer Register: the caller asks the new one */
	for (size_t k = 0; k < w->p->n_streams; k++) {
		struct stream *st = w->p->streams[k];
		if (st->ended)
			continue;
		live++;
		for (size_t i = 0; st->list != NULL && i < st->list->n_devices; i++)
			if (strcmp(st->list->devices[i]->id, w->id) == 0 && strcmp(st->list->devices[i]->health, w->health) == 0)
				ok++;
	}
	w->ok_streams = ok;
	return live > 0 && ok == live;
}

struct streams_want {
	struct plugin *p;
	size_t from;
};

static bool
pred_streams(const void *a)
{
	const struct streams_want *w = a;
	for (size_t k = w->from; k < w->p->n_streams; k++)
		if (w->p->streams[k]->list == NULL && !w->p->streams[k]->ended)
			return false;
	return true;
}

static bool
pred_end(const void *a)
{
	const struct plugin *p = a;
	return p->streams[0]->ended;
}

/* ---- steps ---- */

static char **
split(const char *s, const char *sep, size_t *n)
{
	char *copy = strdup(s), *save = NULL, **v = NULL;
	*n = 0;
	for (char *t = strtok_r(copy, sep, &save); t; t = strtok_r(NULL, sep, &save)) {
		*(char **) push(&v, n, sizeof *v) = strdup(t);
	}
	free(copy);
	return v;
}

static void
free_split(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Split containers on '|' keeping empty ones ("a|" = two containers, "" = none). */
static char **
split_containers(const char *s, size_t *n)
{
	char **v = NULL;
	*n = 0;
	if (*s == '\0')
		return NULL;
	for (const char *p = s;;) {
		const char *e = strchr(p, '|');
		size_t len = e ? (size_t) (e - p) : strlen(p);
		*(char **) push(&v, n, sizeof *v) = strndup(p, len);
		if (e == NULL)
			break;
		p = e + 1;
	}
	return v;
}

static json_t *
status_json(const char *event, const char *resource, const struct unary_result *r, double ms)
{
	return json_pack("{s:s, s:s, s:i, s:s, s:f}", "event", event, "resource", resource, "status", (int) r->status,
			 "details", r->details ? r->details : "", "ms", ms);
}

static grpc_byte_buffer *
allocate_request(const char *arg)
{
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	size_t nc;
	char **cs = split_containers(arg, &nc);
	V1beta1__ContainerAllocateRequest *creq = calloc(nc ? nc : 1, sizeof *creq);
	V1beta1__ContainerAllocateRequest **cp = calloc(nc ? nc : 1, sizeof *cp);
	size_t *nids = calloc(nc ? nc : 1, sizeof *nids);
	for (size_t i = 0; i < nc; i++) {
		v1beta1__container_allocate_request__init(&creq[i]);
		creq[i].devices_ids = split(cs[i], ",", &nids[i]);
		creq[i].n_devices_ids = nids[i];
		cp[i] = &creq[i];
	}
	req.n_container_requests = nc;
	req.container_requests = cp;
	grpc_byte_buffer *bb = bb_from_msg(&req.base);
	for (size_t i = 0; i < nc; i++)
		free_split(creq[i].devices_ids, nids[i]);
	free(creq);
	free(cp);
	free(nids);
	free_split(cs, nc);
	return bb;
}

static int
do_allocate(struct plugin *p, grpc_channel *ch, const char *arg)
{
	struct unary_result r;
	double t0 = now_ms();
	unary(ch, "/v1beta1.DevicePlugin/Allocate", allocate_request(arg), 30000, &r);
	json_t *ev = status_json("allocate", p->resource, &r, now_ms() - t0);
	json_object_set_new(ev, "request", json_string(arg));
	if (r.status == GRPC_STATUS_OK) {
		V1beta1__AllocateResponse *m = v1beta1__allocate_response__unpack(NULL, r.len, r.resp);
		if (m == NULL) {
			json_decref(ev);
			unary_result_free(&r);
			return fail("Allocate: malformed response");
		}
		json_t *cs = json_array();
		for (size_t i = 0; i < m->n_container_responses; i++) {
			const V1beta1__ContainerAllocateResponse *c = m->container_responses[i];
			json_t *envs = json_object(), *devs = json_array(), *ann = json_object(), *mounts = json_array();
			for (size_t k = 0; k < c->n_envs; k++)
				json_object_set_new(envs, c->envs[k]->key, json_string(c->envs[k]->value));
			for (size_t k = 0; k < c->n_devices; k++)
				json_array_append_new(devs, json_pack("{s:s, s:s, s:s}", "container_path",
								      c->devices[k]->container_path, "host_path",
								      c->devices[k]->host_path, "permissions",
								      c->devices[k]->permissions));
			for (size_t k = 0; k < c->n_annotations; k++)
				json_object_set_new(ann, c->annotations[k]->key, json_string(c->annotations[k]->value));
			for (size_t k = 0; k < c->n_mounts; k++)
				json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "container_path",
									c->mounts[k]->container_path, "host_path",
									c->mounts[k]->host_path, "read_only",
									c->mounts[k]->read_only));
			json_array_append_new(cs, json_pack("{s:o, s:o, s:o, s:o, s:i}", "envs", envs, "devices", devs,
							    "mounts", mounts, "annotations", ann, "cdi_devices",
							    (int) c->n_cdi_devices));
		}
		json_object_set_new(ev, "containers", cs);
		v1beta1__allocate_response__free_unpacked(m, NULL);
	}
	emit(ev);
	unary_result_free(&r);
	return 0;
}

static int
do_preferred(struct plugin *p, grpc_channel *ch, const char *arg)
{
	V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
	struct unary_result r;
	size_t nc;
	char **cs = split_containers(arg, &nc);
	V1beta1__ContainerPreferredAllocationRequest *creq = calloc(nc ? nc : 1, sizeof *creq);
	V1beta1__ContainerPreferredAllocationRequest **cp = calloc(nc ? nc : 1, sizeof *cp);
	size_t *na = calloc(nc ? nc : 1, sizeof *na), *nm = calloc(nc ? nc : 1, sizeof *nm);
	int rc = 0;

	for (size_t i = 0; i < nc; i++) {
		size_t nf;
		char **fields = split(cs[i], ";", &nf);
		v1beta1__container_preferred_allocation_request__init(&creq[i]);
		cp[i] = &creq[i];
		for (size_t f = 0; f < nf; f++) {
			if (strncmp(fields[f], "avail=", 6) == 0) {
				creq[i].available_deviceids = split(fields[f] + 6, ",", &na[i]);
				creq[i].n_available_deviceids = na[i];
			} else if (strncmp(fields[f], "must=", 5) == 0) {
				creq[i].must_include_deviceids = split(fields[f] + 5, ",", &nm[i]);
				creq[i].n_must_include_deviceids = nm[i];
			} else if (strncmp(fields[f], "size=", 5) == 0) {
				creq[i].allocation_size = atoi(fields[f] + 5);
			} else {
				rc = fail("--preferred: unknown field \"%s\"", fields[f]);
			}
		}
		free_split(fields, nf);
	}
	req.n_container_requests = nc;
	req.container_requests = cp;
	double t0 = now_ms();
	if (rc == 0) {
		unary(ch, "/v1beta1.DevicePlugin/GetPreferredAllocation", bb_from_msg(&req.base), 30000, &r);
		json_t *ev = status_json("preferred", p->resource, &r, now_ms() - t0);
		json_object_set_new(ev, "request", json_string(arg));
		if (r.status == GRPC_STATUS_OK) {
			V1beta1__PreferredAllocationResponse *m =
				v1beta1__preferred_allocation_response__unpack(NULL, r.len, r.resp);
			json_t *out = json_array();
			for (size_t i = 0; m != NULL && i < m->n_container_responses; i++) {
				json_t *ids = json_array();
				for (size_t k = 0; k < m->container_responses[i]->n_deviceids; k++)
					json_array_append_new(ids, json_string(m->container_responses[i]->deviceids[k]));
				json_array_append_new(out, ids);
			}
			json_object_set_new(ev, "containers", out);
			if (m != NULL)
				v1beta1__preferred_allocation_response__free_unpacked(m, NULL);
			else
				rc = fail("GetPreferredAllocation: malformed response");
		}
		emit(ev);
		unary_result_free(&r);
	}
	for (size_t i = 0; i < nc; i++) {
		free_split(creq[i].available_deviceids, na[i]);
		free_split(creq[i].must_include_deviceids, nm[i]);
	}
	free(creq);
	free(cp);
	free(na);
	free(nm);
	free_split(cs, nc);
	return rc;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return x < y ? -1 : x > y;
}

static int
do_bench(struct plugin *p, grpc_channel *ch, const char *arg)
{
	char *colon;
	long n = strtol(arg, &colon, 10);
	if (n <= 0 || *colon != ':')
		return fail("--bench-allocate: want N:IDS, got \"%s\"", arg);
	double *us = calloc((size_t) n, sizeof *us);
	for (long i = 0; i < n; i++) {
		struct unary_result r;
		double t0 = now_ms();
		unary(ch, "/v1beta1.DevicePlugin/Allocate", allocate_request(colon + 1), 30000, &r);
		us[i] = (now_ms() - t0) * 1e3;
		if (r.status != GRPC_STATUS_OK) {
			int rc = fail("--bench-allocate: Allocate failed: %d %s", r.status, r.details ? r.details : "");
			unary_result_free(&r);
			free(us);
			return rc;
		}
		unary_result_free(&r);
	}
	qsort(us, (size_t) n, sizeof *us, cmp_double);
	emit(json_pack("{s:s, s:s, s:i, s:f, s:f, s:f}", "event", "bench", "resource", p->resource, "n", (int) n,
		       "p50_us", us[n / 2], "p99_us", us[(size_t) ((double) n * 0.99) < (size_t) n ? (size_t) ((double) n * 0.99) : (size_t) n - 1],
		       "max_us", us[n - 1]));
	free(us);
	return 0;
}

static int
do_raw(struct plugin *p, grpc_channel *ch, const char *arg)
{
	const char *colon = strchr(arg, ':');
	char method[128];
	uint8_t buf[4096];
	size_t len = 0;
	struct unary_result r;

	if (colon == NULL || (size_t) (colon - arg) >= 64)
		return fail("--raw: want METHOD:HEX, got \"%s\"", arg);
	snprintf(method, sizeof method, "/v1beta1.DevicePlugin/%.*s", (int) (colon - arg), arg);
	for (const char *h = colon + 1; h[0] && h[1] && len < sizeof buf; h += 2) {
		unsigned v;
		if (sscanf(h, "%2x", &v) != 1)
			return fail("--raw: bad hex \"%s\"", colon + 1);
		buf[len++] = (uint8_t) v;
	}
	double t0 = now_ms();
	unary(ch, method, bb_from(buf, len), 30000, &r);
	json_t *ev = status_json("raw", p->resource, &r, now_ms() - t0);
	json_object_set_new(ev, "method", json_string(method));
	json_object_set_new(ev, "response_bytes", json_integer((json_int_t) r.len));
	emit(ev);
	unary_result_free(&r);
	return 0;
}

static int
do_restart(void)
{
	DIR *d;
	struct dirent *de;
	int removed = 0;

	reg_stop();
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n_plugins; i++) {
		if (plugins[i]->stale)
			continue;
		plugins[i]->stale = true;
		for (size_t k = 0; k < plugins[i]->n_streams; k++)
			grpc_call_cancel(plugins[i]->streams[k]->call, NULL);
	}
	registrations = 0;
	pthread_mutex_unlock(&mu);
	d = opendir(dir);
	if (d == NULL)
		return fail("opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && unlink(path) == 0)
			removed++;
	}
	closedir(d);
	emit(json_pack("{s:s, s:i}", "event", "restart", "sockets_removed", removed));
	return reg_start();
}

static int
run_step(const struct step *s)
{
	struct plugin *p;
	grpc_channel *ch;
	double t0 = now_ms();
	int rc = 0;

	switch (s->kind) {
	case S_RESOURCE:
		target_resource = s->arg;
		return 0;
	case S_WAIT_REGISTER: {
		unsigned n = (unsigned) atoi(s->arg);
		pthread_mutex_lock(&mu);
		if (wait_until(pred_registrations, &n) < 0)
			rc = fail("timeout waiting for %u registrations (%u so far)", n, registrations);
		pthread_mutex_unlock(&mu);
		return rc;
	}
	case S_RESTART:
		return do_restart();
	case S_EXEC: {
		int st = system(s->arg);
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		emit(json_pack("{s:s, s:s, s:i}", "event", "exec", "cmd", s->arg, "rc", code));
		return code == 0 ? 0 : fail("--exec %s: exit %d", s->arg, code);
	}
	case S_SLEEP:
		usleep((useconds_t) atoi(s->arg) * 1000);
		return 0;
	case S_HOLD:
		while (!got_signal) {
			struct timespec nowm;
			clock_gettime(CLOCK_MONOTONIC, &nowm);
			if (nowm.tv_sec >= deadline.tv_sec)
				break;
			usleep(100000);
		}
		return 0;
	default:
		break;
	}

	/* steps on a plugin */
	int replaced = 0;
again:
	pthread_mutex_lock(&mu);
	p = get_plugin();
	if (p == NULL) {
		pthread_mutex_unlock(&mu);
		return -1;
	}
	ch = p->ch; /* channels live until exit */
	switch (s->kind) {
	case S_EXPECT_DEVICES:
		if (wait_until(pred_first_list, p) == 0 && p->streams[0]->list == NULL && p->stale && replaced++ < 5) {
			/* a newer Register of the resource replaced this one meanwhile (a plugin may register twice
			 * when it cannot know whether an attempt cut by a kubelet restart arrived): ask the new one */
			pthread_mutex_unlock(&mu);
			goto again;
		}
		if (p->streams[0]->list == NULL) {
			rc = fail("%s: no device list", p->resource);
		} else if (p->streams[0]->list->n_devices != (size_t) atoi(s->arg)) {
			rc = fail("%s: %zu devices listed, expected %s", p->resource, p->streams[0]->list->n_devices, s->arg);
		} else {
			emit(json_pack("{s:s, s:s, s:i, s:o}", "event", "devices", "resource", p->resource, "n",
				       (int) p->streams[0]->list->n_devices, "devices", list_json(p->streams[0]->list)));
		}
		pthread_mutex_unlock(&mu);
		return rc;
	case S_STREAMS: {
		struct streams_want w = { p, p->n_streams };
		int n = atoi(s->arg);
		for (int i = 0; i < n; i++)
			stream_open(p);
		if (wait_until(pred_streams, &w) < 0) {
			rc = fail("%s: timeout waiting for the first list on %d streams", p->resource, n);
		} else {
			size_t ok = 0;
			for (size_t k = w.from; k < p->n_streams; k++)
				ok += p->streams[k]->list != NULL;
			if (ok != (size_t) n && p->stale && replaced++ < 5) { /* replaced meanwhile: as above */
				pthread_mutex_unlock(&mu);
				goto again;
			}
			emit(json_pack("{s:s, s:s, s:i, s:i, s:f}", "event", "streams", "resource", p->resource, "opened",
				       n, "with_list", (int) ok, "ms", now_ms() - t0));
			if (ok != (size_t) n)
				rc = fail("%s: %zu of %d streams got a list", p->resource, ok, n);
		}
		pthread_mutex_unlock(&mu);
		return rc;
	}
	case S_WAIT_HEALTH: {
		const char *eq = strchr(s->arg, '=');
		char id[128];
		if (eq == NULL || (size_t) (eq - s->arg) >= sizeof id) {
			pthread_mutex_unlock(&mu);
			return fail("--wait-health: want ID=Healthy|Unhealthy, got \"%s\"", s->arg);
		}
		snprintf(id, sizeof id, "%.*s", (int) (eq - s->arg), s->arg);
		struct health_want w = { p, id, eq + 1, 0 };
		int waited = wait_until(pred_health, &w);
		if (waited == 0 && p->stale && replaced++ < 5) { /* replaced meanwhile: as above */
			pthread_mutex_unlock(&mu);
			goto again;
		}
		if (waited < 0 || p->stale)
			rc = fail("%s: timeout waiting for %s (%zu streams agree)", p->resource, s->arg, w.ok_streams);
		else
			emit(json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "event", "health", "resource", p->resource, "id",
				       id, "health", eq + 1, "streams", (int) w.ok_streams, "ms", now_ms() - t0));
		pthread_mutex_unlock(&mu);
		return rc;
	}
	case S_WAIT_END:
		if (wait_until(pred_end, p) < 0)
			rc = fail("%s: timeout waiting for the stream to end", p->resource);
		else
			emit(json_pack("{s:s, s:s, s:f}", "event", "stream_ended", "resource", p->resource, "ms",
				       now_ms() - t0));
		pthread_mutex_unlock(&mu);
		return rc;
	default:
		break;
	}
	pthread_mutex_unlock(&mu);

	switch (s->kind) {
	case S_OPTIONS: {
		V1beta1__Empty e = V1BETA1__EMPTY__INIT;
		struct unary_result r;
		unary(ch, "/v1beta1.DevicePlugin/GetDevicePluginOptions", bb_from_msg(&e.base), 10000, &r);
		json_t *ev = status_json("options", p->resource, &r, now_ms() - t0);
		V1beta1__DevicePluginOptions *o =
			r.resp ? v1beta1__device_plugin_options__unpack(NULL, r.len, r.resp) : NULL;
		json_object_set_new(ev, "options", options_json(o));
		if (o)
			v1beta1__device_plugin_options__free_unpacked(o, NULL);
		emit(ev);
		unary_result_free(&r);
		return 0;
	}
	case S_ALLOCATE:
		return do_allocate(p, ch, s->arg);
	case S_PREFERRED:
		return do_preferred(p, ch, s->arg);
	case S_PRESTART: {
		V1beta1__PreStartContainerRequest req = V1BETA1__PRE_START_CONTAINER_REQUEST__INIT;
		struct unary_result r;
		size_t n;
		req.devices_ids = split(s->arg, ",", &n);
		req.n_devices_ids = n;
		unary(ch, "/v1beta1.DevicePlugin/PreStartContainer", bb_from_msg(&req.base), 10000, &r);
		free_split(req.devices_ids, n);
		emit(status_json("prestart", p->resource, &r, now_ms() - t0));
		unary_result_free(&r);
		return 0;
	}
	case S_RAW:
		return do_raw(p, ch, s->arg);
	case S_BENCH:
		return do_bench(p, ch, s->arg);
	default:
		return fail("internal: unhandled step");
	}
}

static void
on_signal(int sig)
{
	(void) sig;
	got_signal = 1;
}

/* ---- cleanup ---- */

static bool
pred_streams_idle(const void *a)
{
	(void) a;
	for (size_t i = 0; i < n_plugins; i++)
		for (size_t k = 0; k < plugins[i]->n_streams; k++)
			if (plugins[i]->streams[k]->refs > 0)
				return false;
	return true;
}

static void
cleanup(void)
{
	reg_stop();
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n_plugins; i++)
		for (size_t k = 0; k < plugins[i]->n_streams; k++)
			grpc_call_cancel(plugins[i]->streams[k]->call, NULL);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 5;
	got_signal = 0;
	wait_until(pred_streams_idle, NULL);
	pthread_mutex_unlock(&mu);
	grpc_completion_queue_shutdown(scq);
	pthread_join(sthread, NULL);
	grpc_completion_queue_shutdown(rcq);
	pthread_join(rthread, NULL);
	for (size_t i = 0; i < n_plugins; i++) {
		struct plugin *p = plugins[i];
		for (size_t k = 0; k < p->n_streams; k++) {
			struct stream *st = p->streams[k];
			grpc_call_unref(st->call);
			grpc_metadata_array_destroy(&st->init_md);
			grpc_metadata_array_destroy(&st->trail_md);
			grpc_slice_unref(st->details);
			if (st->recv_bb)
				grpc_byte_buffer_destroy(st->recv_bb);
			if (st->send_bb)
				grpc_byte_buffer_destroy(st->send_bb);
			if (st->list)
				v1beta1__list_and_watch_response__free_unpacked(st->list, NULL);
			free(st);
		}
		free(p->streams);
		grpc_channel_destroy(p->ch);
		free(p);
	}
	free(plugins);
	grpc_completion_queue_destroy(scq);
	grpc_completion_queue_destroy(rcq);
	grpc_shutdown();
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet-lists", no_argument, NULL, 'q' },
		{ "resource", required_argument, NULL, S_RESOURCE + 256 },
		{ "wait-register", required_argument, NULL, S_WAIT_REGISTER + 256 },
		{ "expect-devices", required_argument, NULL, S_EXPECT_DEVICES + 256 },
		{ "options", no_argument, NULL, S_OPTIONS + 256 },
		{ "allocate", required_argument, NULL, S_ALLOCATE + 256 },
		{ "preferred", required_argument, NULL, S_PREFERRED + 256 },
		{ "prestart", required_argument, NULL, S_PRESTART + 256 },
		{ "raw", required_argument, NULL, S_RAW + 256 },
		{ "bench-allocate", required_argument, NULL, S_BENCH + 256 },
		{ "streams", required_argument, NULL, S_STREAMS + 256 },
		{ "wait-health", required_argument, NULL, S_WAIT_HEALTH + 256 },
		{ "wait-stream-end", no_argument, NULL, S_WAIT_END + 256 },
		{ "restart", no_argument, NULL, S_RESTART + 256 },
		{ "exec", required_argument, NULL, S_EXEC + 256 },
		{ "sleep", required_argument, NULL, S_SLEEP + 256 },
		{ "hold", no_argument, NULL, S_HOLD + 256 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct step *steps = calloc((size_t) argc + 1, sizeof *steps);
	size_t n_steps = 0;
	long timeout = 60;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 't':
			timeout = atol(optarg);
			break;
		case 'q':
			quiet_lists = true;
			break;
		case 'h':
			fputs(usage, stdout);
			free(steps);
			return 0;
		default:
			if (c >= 256 && c <= S_HOLD + 256) {
				steps[n_steps].kind = (enum step_kind) (c - 256);
				steps[n_steps++].arg = optarg;
				break;
			}
			fputs(usage, stderr);
			free(steps);
			return 2;
		}
	}
	if (dir == NULL || optind != argc || timeout <= 0) {
		fputs(usage, stderr);
		free(steps);
		return 2;
	}
	if ((size_t) snprintf(kubelet_sock, sizeof kubelet_sock, "%s/kubelet.sock", dir) >= 100) {
		fprintf(stderr, "fake-kubelet: %s is too long for a unix socket\n", kubelet_sock);
		free(steps);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout;

	grpc_init();
	rcq = grpc_completion_queue_create_for_next(NULL);
	scq = grpc_completion_queue_create_for_next(NULL);
	pthread_create(&rthread, NULL, reg_thread, NULL);
	pthread_create(&sthread, NULL, stream_thread, NULL);
	/* a kubelet starts by cleaning the directory: only a stale kubelet.sock here */
	unlink(kubelet_sock);
	if (reg_start() < 0)
		rc = 1;
	for (size_t i = 0; rc == 0 && i < n_steps; i++)
		if (run_step(&steps[i]) < 0)
			rc = 1;
	if (rc == 0)
		emit(json_pack("{s:s}", "event", "done"));
	cleanup();
	unlink(kubelet_sock);
	free(steps);
	return rc;
}
