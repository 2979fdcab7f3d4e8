/* server.c — owns the DevicePlugin gRPC servers (one per resource), their single completion queue and its
 * thread, the per-call state machines, and the served device tables with their current health.
 *
 * Every call is a struct call with one tag per kind of batch it starts; refs counts the batches in flight
 * (plus the pending request) and the call is freed when it drops to zero. A listener (one grpc_server) lives
 * until its shutdown tag came back and its last call was freed; vgp_server_listen() then destroys it, so a
 * kubelet restart replaces a resource's server without touching the others. All state is under one mutex; the
 * completion-queue thread takes it per event, vgp_server_set_health() from any thread. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "util.h"

enum kind { K_OPTIONS, K_LAW, K_PREFERRED, K_ALLOCATE, K_PRESTART, K_N };

static const char *const method_path[K_N] = {
	"/v1beta1.DevicePlugin/GetDevicePluginOptions",
	"/v1beta1.DevicePlugin/ListAndWatch",
	"/v1beta1.DevicePlugin/GetPreferredAllocation",
	"/v1beta1.DevicePlugin/Allocate",
	"/v1beta1.DevicePlugin/PreStartContainer",
};

enum what { W_NEW, W_UNARY, W_SEND, W_RECV, W_CLOSE, W_STATUS, W_SHUTDOWN };

struct tag {
	enum what what;
	void *obj; /* struct call *, or struct listener * for W_SHUTDOWN */
};

struct listener;

struct call {
	struct listener *l;
	enum kind kind;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;  /* unary request, or ListAndWatch's Empty (RECV_MESSAGE) */
	grpc_byte_buffer *send_bb;  /* in flight */
	grpc_slice details;         /* status details in flight */
	bool has_details;
	int cancelled;
	int refs;                   /* batches in flight, plus the pending request */
	bool stream;                /* ListAndWatch, in the listener's stream list */
	bool sending;
	bool done;                  /* ListAndWatch: closed, or failed: send nothing more */
	uint64_t sent_gen;
	struct call *prev, *next;   /* stream list */
	struct tag t_new, t_unary, t_send, t_recv, t_close, t_status;
};

struct listener {
	struct vgp_server *srv;
	size_t res;
	grpc_server *server;
	void *method[K_N];
	bool shutting_down, shutdown_done;
	size_t live_calls;          /* struct call objects of this listener */
	struct call *streams;
	size_t n_streams;
	struct tag t_shutdown;
};

struct sres {
	struct vgp_served_resource r; /* deep copy; health updated in place */
	char sock_name[VGP_RESOURCE_LEN + 16];
	char sock_path[PATH_MAX];
	char target[PATH_MAX + 8];    /* "unix:" + sock_path */
	struct listener *cur;
	grpc_slice list;              /* the packed ListAndWatchResponse of generation gen */
	uint64_t gen;
	unsigned long calls;
};

struct vgp_server {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	grpc_completion_queue *cq;
	pthread_t thread;
	bool thread_started;
	struct sres *res;
	int kdir_fd;                  /* O_PATH of the kubelet directory when its path is too long to bind in, else -1 */
	size_t n;
};

void
vgp_server_options(V1beta1__DevicePluginOptions *o)
{
	v1beta1__device_plugin_options__init(o);
	o->pre_start_required = false;
	o->get_preferred_allocation_available = true;
}

/* ---- table copy ---- */

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static int
dup_strv(char **src, size_t n, char ***out)
{
	*out = NULL;
	if (src == NULL || n == 0)
		return 0;
	*out = calloc(n, sizeof **out);
	if (*out == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (src[i] != NULL && ((*out)[i] = strdup(src[i])) == NULL)
			return -1;
	return 0;
}

static void
free_table(struct vgp_served_resource *r)
{
	for (size_t i = 0; r->devs != NULL && i < r->n_devs; i++) {
		free(r->devs[i].topo_path);
		free_strv(r->devs[i].members, r->devs[i].n_members);
		free_strv(r->devs[i].vfio_dev_nodes, r->devs[i].n_vfio_dev_nodes);
	}
	free(r->devs);
	r->devs = NULL;
}

static int
copy_table(struct vgp_served_resource *dst, const struct vgp_served_resource *src)
{
	*dst = *src;
	dst->devs = NULL;
	if (src->n_devs == 0)
		return 0;
	dst->devs = calloc(src->n_devs, sizeof *dst->devs);
	if (dst->devs == NULL)
		return -1;
	for (size_t i = 0; i < src->n_devs; i++) {
		const struct vgp_served_dev *s = &src->devs[i];
		struct vgp_served_dev *d = &dst->devs[i];
		*d = *s;
		d->topo_path = NULL;
		d->members = d->vfio_dev_nodes = NULL;
		if (s->topo_path != NULL && (d->topo_path = strdup(s->topo_path)) == NULL)
			return -1;
		if (dup_strv(s->members, s->n_members, &d->members) < 0)
			return -1;
		if (dup_strv(s->vfio_dev_nodes, s->n_vfio_dev_nodes, &d->vfio_dev_nodes) < 0)
			return -1;
	}
	return 0;
}

/* Re-pack the ListAndWatch list of resource sr (under the mutex). Returns 0 or -1 (out of memory: the old
 * list stays). */
static int
repack_list(struct sres *sr)
{
	V1beta1__ListAndWatchResponse *m = vgp_alloc_list(&sr->r);
	size_t len;
	grpc_slice s;

	if (m == NULL)
		return -1;
	len = v1beta1__list_and_watch_response__get_packed_size(m);
	s = grpc_slice_malloc(len);
	v1beta1__list_and_watch_response__pack(m, GRPC_SLICE_START_PTR(s));
	vgp_alloc_list_free(m);
	grpc_slice_unref(sr->list);
	sr->list = s;
	sr->gen++;
	return 0;
}

/* ---- calls ---- */

static struct call *
call_new(struct listener *l, enum kind k)
{
	struct call *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->l = l;
	c->kind = k;
	grpc_metadata_array_init(&c->md);
	c->t_new = (struct tag) { W_NEW, c };
	c->t_unary = (struct tag) { W_UNARY, c };
	c->t_send = (struct tag) { W_SEND, c };
	c->t_recv = (struct tag) { W_RECV, c };
	c->t_close = (struct tag) { W_CLOSE, c };
	c->t_status = (struct tag) { W_STATUS, c };
	l->live_calls++;
	return c;
}

static void
stream_unlink(struct call *c)
{
	struct listener *l = c->l;
	if (!c->stream)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->streams = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->stream = false;
	l->n_streams--;
}

/* Called with the mutex held when refs dropped to zero. */
static void
call_free(struct call *c)
{
	struct listener *l = c->l;
	stream_unlink(c);
	if (c->call != NULL)
		grpc_call_unref(c->call);
	grpc_metadata_array_destroy(&c->md);
	if (c->payload != NULL)
		grpc_byte_buffer_destroy(c->payload);
	if (c->send_bb != NULL)
		grpc_byte_buffer_destroy(c->send_bb);
	if (c->has_details)
		grpc_slice_unref(c->details);
	free(c);
	l->live_calls--;
	pthread_cond_broadcast(&l->srv->cond);
}

static void
call_unref(struct call *c)
{
	if (--c->refs == 0)
		call_free(c);
}

/* Ask for the next call of kind k on listener l (mutex held). */
static void
request_call(struct listener *l, enum kind k)
{
	struct call *c;
	grpc_call_error e;

	if (l->shutting_down)
		return;
	c = call_new(l, k);
	if (c == NULL) {
		log_error("%s: out of memory accepting calls", l->srv->res[l->res].r.name);
		return;
	}
	c->refs = 1;
	e = grpc_server_request_registered_call(l->server, l->method[k], &c->call, &c->deadline, &c->md,
						k == K_LAW ? NULL : &c->payload, l->srv->cq, l->srv->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		log_error("%s: cannot accept %s calls (grpc error %d)", l->srv->res[l->res].r.name, method_path[k], e);
		c->refs = 0;
		call_free(c);
	}
}

/* Read a whole byte buffer into *buf (malloc'd, may be NULL for an empty buffer). Returns 0 or -1. */
static int
read_bb(grpc_byte_buffer *bb, uint8_t **buf, size_t *len)
{
	grpc_byte_buffer_reader rd;
	grpc_slice s;

	*buf = NULL;
	*len = 0;
	if (bb == NULL)
		return 0;
	if (!grpc_byte_buffer_reader_init(&rd, bb))
		return -1;
	s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	*len = GRPC_SLICE_LENGTH(s);
	if (*len > 0) {
		*buf = malloc(*len);
		if (*buf == NULL) {
			grpc_slice_unref(s);
			return -1;
		}
		memcpy(*buf, GRPC_SLICE_START_PTR(s), *len);
	}
	grpc_slice_unref(s);
	return 0;
}

/* Finish a unary call: the reply message (NULL for none) and a status, in one batch (mutex held). */
static void
unary_reply(struct call *c, const ProtobufCMessage *msg, grpc_status_code code, const char *details)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_call_error e;

	memset(ops, 0, sizeof ops);
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].data.send_initial_metadata.count = 0;
	n++;
	if (msg != NULL) {
		size_t len = protobuf_c_message_get_packed_size(msg);
		grpc_slice s = grpc_slice_malloc(len);
		protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
		c->send_bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->send_bb;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n].data.send_status_from_server.status = code;
	if (details != NULL) {
		c->details = grpc_slice_from_copied_string(details);
		c->has_details = true;
		ops[n].data.send_status_from_server.status_details = &c->details;
	}
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
	n++;
	c->refs++;
	e = grpc_call_start_batch(c->call, ops, n, &c->t_unary, NULL);
	if (e != GRPC_CALL_OK) {
		log_error("reply on %s failed (grpc error %d)", method_path[c->kind], e);
		c->refs--;
	}
}

static const char *
kind_name(enum kind k)
{
	return strrchr(method_path[k], '/') + 1;
}

static void
handle_unary(struct call *c)
{
	struct sres *sr = &c->l->srv->res[c->l->res];
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_error_ vgp_error_t err = NULL;
	size_t len;
	char msg[256];

	sr->calls++;
	log_debug("%s: %s call", sr->r.name, kind_name(c->kind));
	if (read_bb(c->payload, &buf, &len) < 0) {
		unary_reply(c, NULL, GRPC_STATUS_INTERNAL, "cannot read the request");
		return;
	}
	switch (c->kind) {
	case K_OPTIONS: {
		V1beta1__Empty *in = v1beta1__empty__unpack(NULL, len, buf);
		V1beta1__DevicePluginOptions o;
		if (in == NULL) {
			unary_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, "malformed Empty");
			return;
		}
		v1beta1__empty__free_unpacked(in, NULL);
		vgp_server_options(&o);
		unary_reply(c, &o.base, GRPC_STATUS_OK, NULL);
		return;
	}
	case K_PRESTART: {
		V1beta1__PreStartContainerRequest *in = v1beta1__pre_start_container_request__unpack(NULL, len, buf);
		V1beta1__PreStartContainerResponse o = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
		if (in == NULL) {
			unary_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, "malformed PreStartContainerRequest");
			return;
		}
		v1beta1__pre_start_container_request__free_unpacked(in, NULL);
		unary_reply(c, &o.base, GRPC_STATUS_OK, NULL);
		return;
	}
	case K_ALLOCATE: {
		V1beta1__AllocateRequest *in = v1beta1__allocate_request__unpack(NULL, len, buf);
		V1beta1__AllocateResponse *o = NULL;
		if (in == NULL) {
			log_warn("%s: Allocate: malformed request (%zu bytes)", sr->r.name, len);
			unary_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, "malformed AllocateRequest");
			return;
		}
		if (vgp_alloc_allocate(&sr->r, in, &o, &err) < 0) {
			log_warn("%s: Allocate refused: %s", sr->r.name, err->msg);
			unary_reply(c, NULL,
				    err->exit_code == 2 ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_RESOURCE_EXHAUSTED,
				    err->msg);
			v1beta1__allocate_request__free_unpacked(in, NULL);
			return;
		}
		for (size_t i = 0; i < o->n_container_responses; i++) {
			const V1beta1__ContainerAllocateResponse *cr = o->container_responses[i];
			snprintf(msg, sizeof msg, "%s", cr->n_envs > 0 ? cr->envs[0]->value : "");
			log_info("%s: allocated container %zu: %s (%zu device nodes)", sr->r.name, i, msg,
				 cr->n_devices);
		}
		unary_reply(c, &o->base, GRPC_STATUS_OK, NULL);
		vgp_alloc_allocate_free(o);
		v1beta1__allocate_request__free_unpacked(in, NULL);
		return;
	}
	case K_PREFERRED: {
		V1beta1__PreferredAllocationRequest *in = v1beta1__preferred_allocation_request__unpack(NULL, len, buf);
		V1beta1__PreferredAllocationResponse *o = NULL;
		if (in == NULL) {
			log_warn("%s: GetPreferredAllocation: malformed request (%zu bytes)", sr->r.name, len);
			unary_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, "malformed PreferredAllocationRequest");
			return;
		}
		if (vgp_alloc_preferred(&sr->r, in, &o, &err) < 0) {
			log_warn("%s: GetPreferredAllocation refused: %s", sr->r.name, err->msg);
			unary_reply(c, NULL,
				    err->exit_code == 2 ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_RESOURCE_EXHAUSTED,
				    err->msg);
			v1beta1__preferred_allocation_request__free_unpacked(in, NULL);
			return;
		}
		log_debug("%s: preferred allocation for %zu containers", sr->r.name, o->n_container_responses);
		unary_reply(c, &o->base, GRPC_STATUS_OK, NULL);
		vgp_alloc_preferred_free(o);
		v1beta1__preferred_allocation_request__free_unpacked(in, NULL);
		return;
	}
	case K_LAW:
	case K_N:
		break;
	}
}

/* Send the current list on stream c unless a send is in flight or it is current (mutex held). */
static void
stream_send(struct call *c)
{
	struct sres *sr = &c->l->srv->res[c->l->res];
	grpc_op ops[2];
	size_t n = 0;
	grpc_call_error e;

	if (c->done || c->sending || c->sent_gen == sr->gen)
		return;
	memset(ops, 0, sizeof ops);
	if (c->sent_gen == 0) { /* first message: the initial metadata goes with it */
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[n].data.send_initial_metadata.count = 0;
		n++;
	}
	c->send_bb = grpc_raw_byte_buffer_create(&sr->list, 1);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = c->send_bb;
	n++;
	c->refs++;
	c->sending = true;
	c->sent_gen = sr->gen;
	e = grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL);
	if (e != GRPC_CALL_OK) {
		log_warn("%s: ListAndWatch send failed (grpc error %d)", sr->r.name, e);
		grpc_byte_buffer_destroy(c->send_bb);
		c->send_bb = NULL;
		c->sending = false;
		c->done = true;
		c->refs--;
	}
}

static void
handle_law_start(struct call *c)
{
	struct listener *l = c->l;
	struct sres *sr = &l->srv->res[l->res];
	grpc_op op;

	sr->calls++;
	/* the client going away (or the call being cancelled) completes this at once */
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	c->refs++;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
		c->refs--;
		return; /* nothing else started: freed by the caller's unref */
	}
	/* read the Empty request (content ignored unless malformed) */
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->payload;
	c->refs++;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
		c->refs--;
	c->stream = true;
	c->next = l->streams;
	if (l->streams != NULL)
		l->streams->prev = c;
	l->streams = c;
	l->n_streams++;
	log_info("%s: ListAndWatch stream opened (%zu open)", sr->r.name, l->n_streams);
	stream_send(c);
}

static void
handle_law_recv(struct call *c, bool ok)
{
	struct sres *sr = &c->l->srv->res[c->l->res];
	_cleanup_free_ uint8_t *buf = NULL;
	V1beta1__Empty *in;
	size_t len = 0;
	grpc_op op;

	if (!ok || c->payload == NULL)
		return;
	if (read_bb(c->payload, &buf, &len) == 0 && (in = v1beta1__empty__unpack(NULL, len, buf)) != NULL) {
		v1beta1__empty__free_unpacked(in, NULL);
		return;
	}
	/* malformed: end the stream with INVALID_ARGUMENT */
	log_warn("%s: ListAndWatch: malformed request (%zu bytes)", sr->r.name, len);
	c->done = true;
	c->details = grpc_slice_from_static_string("malformed Empty");
	c->has_details = true;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op.data.send_status_from_server.status = GRPC_STATUS_INVALID_ARGUMENT;
	op.data.send_status_from_server.status_details = &c->details;
	c->refs++;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_status, NULL) != GRPC_CALL_OK)
		c->refs--;
}

static void
handle_event(struct vgp_server *s, struct tag *t, bool ok)
{
	struct call *c = t->obj;

	if (t->what == W_SHUTDOWN) {
		struct listener *l = t->obj;
		l->shutdown_done = true;
		pthread_cond_broadcast(&s->cond);
		return;
	}
	switch (t->what) {
	case W_NEW:
		if (!ok) { /* the listener is shutting down: the pending request was cancelled */
			call_unref(c);
			return;
		}
		request_call(c->l, c->kind); /* keep one request pending per method */
		if (c->kind == K_LAW)
			handle_law_start(c);
		else
			handle_unary(c);
		call_unref(c);
		return;
	case W_UNARY:
		call_unref(c);
		return;
	case W_SEND:
		c->sending = false;
		if (c->send_bb != NULL) {
			grpc_byte_buffer_destroy(c->send_bb);
			c->send_bb = NULL;
		}
		if (!ok)
			c->done = true;
		else
			stream_send(c); /* the list changed while this one was in flight */
		call_unref(c);
		return;
	case W_RECV:
		handle_law_recv(c, ok);
		call_unref(c);
		return;
	case W_CLOSE:
		c->done = true;
		if (c->stream) {
			stream_unlink(c);
			log_info("%s: ListAndWatch stream closed (%zu open)", s->res[c->l->res].r.name,
				 c->l->n_streams);
		}
		call_unref(c);
		return;
	case W_STATUS:
		call_unref(c);
		return;
	case W_SHUTDOWN:
		break;
	}
}

static void *
cq_thread(void *arg)
{
	struct vgp_server *s = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		pthread_mutex_lock(&s->mu);
		handle_event(s, ev.tag, ev.success != 0);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- listeners ---- */

static void
listener_stop(struct vgp_server *s, struct listener *l)
{
	pthread_mutex_lock(&s->mu);
	l->shutting_down = true;
	pthread_mutex_unlock(&s->mu);
	grpc_server_shutdown_and_notify(l->server, s->cq, &l->t_shutdown);
	grpc_server_cancel_all_calls(l->server);
	pthread_mutex_lock(&s->mu);
	while (!l->shutdown_done || l->live_calls > 0)
		pthread_cond_wait(&s->cond, &s->mu);
	pthread_mutex_unlock(&s->mu);
	grpc_server_destroy(l->server);
	free(l);
}

static int
remove_stale_socket(const char *path, vgp_error_t *err)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return vgp_make_error(err, errno, "stat %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return vgp_make_error(err, EEXIST, "%s exists and is not a socket", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vgp_make_error(err, errno, "remove stale socket %s", path);
	log_debug("removed stale socket %s", path);
	return 0;
}

void
vgp_server_stop_listener(struct vgp_server *s, size_t i)
{
	struct listener *l;

	if (s == NULL || i >= s->n)
		return;
	pthread_mutex_lock(&s->mu);
	l = s->res[i].cur;
	s->res[i].cur = NULL;
	pthread_mutex_unlock(&s->mu);
	if (l == NULL)
		return;
	listener_stop(s, l);
	/* only our own socket: a new kubelet may have cleaned the directory already */
	struct stat st;
	if (lstat(s->res[i].sock_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(s->res[i].sock_path);
}

int
vgp_server_listen(struct vgp_server *s, size_t i, vgp_error_t *err)
{
	struct sres *sr = &s->res[i];
	grpc_server_credentials *creds;
	struct listener *l;
	int port;

	vgp_server_stop_listener(s, i);
	if (remove_stale_socket(sr->sock_path, err) < 0)
		return -1;
	l = calloc(1, sizeof *l);
	if (l == NULL)
		return vgp_make_error(err, ENOMEM, "listen on %s", sr->sock_path);
	l->srv = s;
	l->res = i;
	l->t_shutdown = (struct tag) { W_SHUTDOWN, l };
	l->server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(l->server, s->cq, NULL);
	for (int k = 0; k < K_N; k++) {
		l->method[k] = grpc_server_register_method(l->server, method_path[k], NULL,
							   k == K_LAW ? GRPC_SRM_PAYLOAD_NONE
								      : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
							   0);
		if (l->method[k] == NULL) {
			grpc_server_destroy(l->server);
			free(l);
			return vgp_make_error(err, 0, "cannot register %s", method_path[k]);
		}
	}
	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(l->server, sr->target, creds);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		grpc_server_destroy(l->server);
		free(l);
		return vgp_make_error(err, 0, "cannot listen on %s", sr->sock_path);
	}
	grpc_server_start(l->server);
	pthread_mutex_lock(&s->mu);
	sr->cur = l;
	for (int k = 0; k < K_N; k++)
		request_call(l, (enum kind) k);
	pthread_mutex_unlock(&s->mu);
	log_info("%s: serving on %s", sr->r.name, sr->sock_path);
	return 0;
}

/* ---- public ---- */

/* The socket of resource `name` in kubelet_dir, within the unix socket limit (sun_max - 1 bytes): the readable
 * vfio-gpu-<NAME>.sock when <dir>/<that> fits, else the short stable vfio-gpu-<hash>.sock; when even that does not
 * fit (a long --kubelet-dir), the socket is bound through /proc/self/fd/<O_PATH fd of the directory>/<name> (the
 * readable name again when it fits there).
 * sock_name (the endpoint sent to kubelet) is the basename either way; sock_path the full path (for lstat, unlink
 * and messages). */
static int
socket_address(struct vgp_server *s, const char *kubelet_dir, const char *name, struct sres *sr, size_t sun_max,
	       vgp_error_t *err)
{
	char readable[sizeof sr->sock_name];
	size_t dl = strlen(kubelet_dir), fdl = sizeof "/proc/self/fd/2147483647/" - 1;
	bool have = vgp_socket_name(name, readable, sizeof readable) == 0;
	bool direct = dl + 1 + sizeof "vfio-gpu-0123456789abcdef.sock" - 1 < sun_max;

	if (have && (direct ? dl + 1 : fdl) + strlen(readable) < sun_max)
		snprintf(sr->sock_name, sizeof sr->sock_name, "%s", readable);
	else if (vgp_socket_name_short(name, sr->sock_name, sizeof sr->sock_name) < 0)
		return vgp_make_usage_error(err, "resource %s: no socket name", name);
	if ((size_t) snprintf(sr->sock_path, sizeof sr->sock_path, "%s/%s", kubelet_dir, sr->sock_name) >=
	    sizeof sr->sock_path)
		return vgp_make_usage_error(err, "socket path %s/%s is too long", kubelet_dir, sr->sock_name);
	if (strlen(sr->sock_path) < sun_max) {
		snprintf(sr->target, sizeof sr->target, "unix:%s", sr->sock_path);
		return 0;
	}
	if (s->kdir_fd < 0) {
		s->kdir_fd = open(kubelet_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (s->kdir_fd < 0)
			return vgp_make_error(err, errno, "open kubelet directory %s", kubelet_dir);
	}
	snprintf(sr->target, sizeof sr->target, "unix:/proc/self/fd/%d/%s", s->kdir_fd, sr->sock_name);
	log_info("%s: kubelet directory path too long for a unix socket: binding %s through %s", name, sr->sock_path,
		 sr->target + 5);
	return 0;
}

int
vgp_server_new(struct vgp_server **out, const char *kubelet_dir, const struct vgp_served_resource *res,
	       size_t n, vgp_error_t *err)
{
	struct vgp_server *s;
	int e;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return vgp_make_error(err, ENOMEM, "server");
	s->kdir_fd = -1;
	grpc_init();
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->res = calloc(n ? n : 1, sizeof *s->res);
	if (s->res == NULL) {
		vgp_server_free(s);
		return vgp_make_error(err, ENOMEM, "server");
	}
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		struct sres *sr = &s->res[i];
		struct sockaddr_un sun;
		sr->list = grpc_empty_slice();
		if (copy_table(&sr->r, &res[i]) < 0) {
			vgp_server_free(s);
			return vgp_make_error(err, ENOMEM, "server");
		}
		if (socket_address(s, kubelet_dir, res[i].name, sr, sizeof sun.sun_path, err) < 0) {
			vgp_server_free(s);
			return -1;
		}
		if (repack_list(sr) < 0) {
			vgp_server_free(s);
			return vgp_make_error(err, ENOMEM, "server");
		}
	}
	s->cq = grpc_completion_queue_create_for_next(NULL);
	e = pthread_create(&s->thread, NULL, cq_thread, s);
	if (e != 0) {
		vgp_server_free(s);
		return vgp_make_error(err, e, "start the gRPC thread");
	}
	s->thread_started = true;
	*out = s;
	return 0;
}

void
vgp_server_free(struct vgp_server *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		vgp_server_stop_listener(s, i);
	if (s->cq != NULL) {
		grpc_completion_queue_shutdown(s->cq);
		if (s->thread_started) {
			pthread_join(s->thread, NULL);
		} else {
			while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
			       GRPC_QUEUE_SHUTDOWN)
				;
		}
		grpc_completion_queue_destroy(s->cq);
	}
	for (size_t i = 0; s->res != NULL && i < s->n; i++) {
		free_table(&s->res[i].r);
		grpc_slice_unref(s->res[i].list);
	}
	free(s->res);
	if (s->kdir_fd >= 0)
		close(s->kdir_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
	grpc_shutdown();
}

int
vgp_server_set_health(struct vgp_server *s, size_t i, const char *addr, bool healthy)
{
	struct sres *sr;
	ssize_t k;
	int ret = 0;

	if (s == NULL || i >= s->n)
		return -1;
	sr = &s->res[i];
	pthread_mutex_lock(&s->mu);
	k = vgp_alloc_find(&sr->r, addr);
	if (k < 0) {
		ret = -1;
	} else if (sr->r.devs[k].healthy != healthy) {
		sr->r.devs[k].healthy = healthy;
		if (repack_list(sr) < 0) {
			log_error("%s: out of memory building the device list", sr->r.name);
		} else if (sr->cur != NULL) {
			for (struct call *c = sr->cur->streams; c != NULL; c = c->next)
				stream_send(c);
		}
		ret = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return ret;
}

int
vgp_server_set_dev_nodes(struct vgp_server *s, size_t i, const char *addr, char **nodes, size_t n)
{
	char **copy = NULL;
	ssize_t k;
	int ret = -1;

	if (s == NULL || i >= s->n || dup_strv(nodes, n, &copy) < 0) {
		free_strv(copy, n);
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	k = vgp_alloc_find(&s->res[i].r, addr);
	if (k >= 0) {
		struct vgp_served_dev *d = &s->res[i].r.devs[k];
		free_strv(d->vfio_dev_nodes, d->n_vfio_dev_nodes);
		d->vfio_dev_nodes = copy;
		d->n_vfio_dev_nodes = copy != NULL ? n : 0;
		copy = NULL;
		ret = 0;
	}
	pthread_mutex_unlock(&s->mu);
	free_strv(copy, n);
	return ret;
}

size_t
vgp_server_count(const struct vgp_server *s)
{
	return s->n;
}

const char *
vgp_server_resource(const struct vgp_server *s, size_t i)
{
	return s->res[i].r.name;
}

const char *
vgp_server_socket_name(const struct vgp_server *s, size_t i)
{
	return s->res[i].sock_name;
}

const char *
vgp_server_socket_path(const struct vgp_server *s, size_t i)
{
	return s->res[i].sock_path;
}

bool
vgp_server_listening(struct vgp_server *s, size_t i)
{
	bool b;
	pthread_mutex_lock(&s->mu);
	b = s->res[i].cur != NULL;
	pthread_mutex_unlock(&s->mu);
	return b;
}

size_t
vgp_server_streams(struct vgp_server *s, size_t i)
{
	size_t n;
	pthread_mutex_lock(&s->mu);
	n = s->res[i].cur != NULL ? s->res[i].cur->n_streams : 0;
	pthread_mutex_unlock(&s->mu);
	return n;
}

unsigned long
vgp_server_calls(struct vgp_server *s, size_t i)
{
	unsigned long n;
	pthread_mutex_lock(&s->mu);
	n = s->res[i].calls;
	pthread_mutex_unlock(&s->mu);
	return n;
}
