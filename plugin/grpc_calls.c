/* grpc_calls.c — the per-call state machines of the DevicePlugin servers (grpc_server-internal.h): accepting
 * calls, reading requests, the unary replies (GetDevicePluginOptions, PreStartContainer; Allocate and
 * GetPreferredAllocation answered from the device table through one shared plumbing), and the ListAndWatch
 * streams (the whole list at once, again on every change, at most one send in flight). Everything here runs with
 * the server mutex held (the completion-queue thread, or set_health): it logs through srv_log.
 *
 * Every call is a struct call with one tag per kind of batch it starts; refs counts the batches in flight (plus
 * the pending request) and the call is freed when it drops to zero. */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_server-internal.h"
#include "metrics.h"
#include "util.h"

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
void
srv_request_call(struct listener *l, enum kind k)
{
	struct call *c;
	grpc_call_error e;

	if (l->shutting_down)
		return;
	c = call_new(l, k);
	if (c == NULL) {
		srv_log(l->srv, VGP_LOG_ERROR, "%s: out of memory accepting calls", l->srv->res[l->res].r.name);
		return;
	}
	c->refs = 1;
	e = grpc_server_request_registered_call(l->server, l->method[k], &c->call, &c->deadline, &c->md,
						k == K_LAW ? NULL : &c->payload, l->srv->cq, l->srv->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		srv_log(l->srv, VGP_LOG_ERROR, "%s: cannot accept %s calls (grpc error %d)", l->srv->res[l->res].r.name,
		     srv_method_path[k], e);
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
		srv_log(c->l->srv, VGP_LOG_ERROR, "reply on %s failed (grpc error %d)", srv_method_path[c->kind], e);
		c->refs--;
	}
}

static const char *
kind_name(enum kind k)
{
	return strrchr(srv_method_path[k], '/') + 1;
}

/* Allocate and GetPreferredAllocation answer from the resource's device table (allocate.h) and share their
 * plumbing: unpack the request, answer, log, reply (an error's kind picks the status), free. */
struct table_call {
	const char *name;                       /* "Allocate" */
	const ProtobufCMessageDescriptor *req;  /* its request message */
	int (*answer)(const struct vgp_served_resource *r, const ProtobufCMessage *in, ProtobufCMessage **out,
		      vgp_error_t *err);
	void (*report)(struct vgp_server *s, const struct sres *sr, const ProtobufCMessage *out); /* log it */
	void (*free_out)(ProtobufCMessage *out);
};

static int
allocate_answer(const struct vgp_served_resource *r, const ProtobufCMessage *in, ProtobufCMessage **out,
		vgp_error_t *err)
{
	V1beta1__AllocateResponse *o = NULL;
	if (vgp_alloc_allocate(r, (const V1beta1__AllocateRequest *) in, &o, err) < 0)
		return -1;
	*out = &o->base;
	return 0;
}

static void
allocate_report(struct vgp_server *s, const struct sres *sr, const ProtobufCMessage *out)
{
	const V1beta1__AllocateResponse *o = (const V1beta1__AllocateResponse *) out;
	char msg[256];
	for (size_t i = 0; i < o->n_container_responses; i++) {
		const V1beta1__ContainerAllocateResponse *cr = o->container_responses[i];
		snprintf(msg, sizeof msg, "%s", cr->n_envs > 0 ? cr->envs[0]->value : "");
		srv_log(s, VGP_LOG_INFO, "%s: allocated container %zu: %s (%zu device nodes)", sr->r.name, i, msg,
		     cr->n_devices);
	}
}

static void
allocate_free(ProtobufCMessage *out)
{
	vgp_alloc_allocate_free((V1beta1__AllocateResponse *) out);
}

static const struct table_call allocate_call = {
	"Allocate", &v1beta1__allocate_request__descriptor, allocate_answer, allocate_report, allocate_free,
};

static int
preferred_answer(const struct vgp_served_resource *r, const ProtobufCMessage *in, ProtobufCMessage **out,
		 vgp_error_t *err)
{
	V1beta1__PreferredAllocationResponse *o = NULL;
	if (vgp_alloc_preferred(r, (const V1beta1__PreferredAllocationRequest *) in, &o, err) < 0)
		return -1;
	*out = &o->base;
	return 0;
}

static void
preferred_report(struct vgp_server *s, const struct sres *sr, const ProtobufCMessage *out)
{
	const V1beta1__PreferredAllocationResponse *o = (const V1beta1__PreferredAllocationResponse *) out;
	srv_log(s, VGP_LOG_DEBUG, "%s: preferred allocation for %zu containers", sr->r.name, o->n_container_responses);
}

static void
preferred_free(ProtobufCMessage *out)
{
	vgp_alloc_preferred_free((V1beta1__PreferredAllocationResponse *) out);
}

static const struct table_call preferred_call = {
	"GetPreferredAllocation", &v1beta1__preferred_allocation_request__descriptor, preferred_answer,
	preferred_report, preferred_free,
};

static void
table_unary(struct call *c, struct sres *sr, const struct table_call *t, const uint8_t *buf, size_t len)
{
	_cleanup_error_ vgp_error_t err = NULL;
	ProtobufCMessage *in = protobuf_c_message_unpack(t->req, NULL, len, buf), *out = NULL;
	char malformed[96];
	bool counted = t == &allocate_call; /* Allocate is counted in the metrics (allocations, errors by code) */

	if (in == NULL) {
		srv_log(c->l->srv, VGP_LOG_WARN, "%s: %s: malformed request (%zu bytes)", sr->r.name, t->name, len);
		snprintf(malformed, sizeof malformed, "malformed %s", t->req->short_name);
		if (counted)
			vgp_metrics_allocate_error(sr->r.name, "INVALID_ARGUMENT");
		unary_reply(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, malformed);
		return;
	}
	if (t->answer(&sr->r, in, &out, &err) < 0) {
		bool input = err != NULL && err->kind == VGP_ERR_INPUT;
		srv_log(c->l->srv, VGP_LOG_WARN, "%s: %s refused: %s", sr->r.name, t->name, vgp_error_text(err));
		if (counted)
			vgp_metrics_allocate_error(sr->r.name, input ? "INVALID_ARGUMENT" : "RESOURCE_EXHAUSTED");
		unary_reply(c, NULL, input ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_RESOURCE_EXHAUSTED,
			    vgp_error_text(err));
	} else {
		if (counted)
			vgp_metrics_allocation(sr->r.name);
		t->report(c->l->srv, sr, out);
		unary_reply(c, out, GRPC_STATUS_OK, NULL);
		t->free_out(out);
	}
	protobuf_c_message_free_unpacked(in, NULL);
}

static void
handle_unary(struct call *c)
{
	struct sres *sr = &c->l->srv->res[c->l->res];
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;

	sr->calls++;
	srv_log(c->l->srv, VGP_LOG_DEBUG, "%s: %s call", sr->r.name, kind_name(c->kind));
	if (read_bb(c->payload, &buf, &len) < 0) {
		if (c->kind == K_ALLOCATE)
			vgp_metrics_allocate_error(sr->r.name, "INTERNAL");
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
	case K_ALLOCATE:
		table_unary(c, sr, &allocate_call, buf, len);
		return;
	case K_PREFERRED:
		table_unary(c, sr, &preferred_call, buf, len);
		return;
	case K_LAW:
	case K_N:
		break;
	}
}

/* Send the current list on stream c unless a send is in flight or it is current (mutex held). */
void
srv_stream_send(struct call *c)
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
		srv_log(c->l->srv, VGP_LOG_WARN, "%s: ListAndWatch send failed (grpc error %d)", sr->r.name, e);
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
	srv_log(l->srv, VGP_LOG_INFO, "%s: ListAndWatch stream opened (%zu open)", sr->r.name, l->n_streams);
	srv_stream_send(c);
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
	srv_log(c->l->srv, VGP_LOG_WARN, "%s: ListAndWatch: malformed request (%zu bytes)", sr->r.name, len);
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

void
srv_handle_event(struct vgp_server *s, struct tag *t, bool ok)
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
		srv_request_call(c->l, c->kind); /* keep one request pending per method */
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
			srv_stream_send(c); /* the list changed while this one was in flight */
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
			srv_log(s, VGP_LOG_INFO, "%s: ListAndWatch stream closed (%zu open)", s->res[c->l->res].r.name,
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

