/* unary.c — owns the one client-side unary gRPC call (see unary.h): channel, a `next` completion queue polled
 * every 100 ms for a cancel, the status; and the six-op batch itself (vgp_unary_batch_start), shared with the test
 * tools. */
#include "unary.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *
read_bb(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader rd;
	grpc_slice s;
	uint8_t *buf;

	*len = 0;
	if (!grpc_byte_buffer_reader_init(&rd, bb))
		return NULL;
	s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	*len = GRPC_SLICE_LENGTH(s);
	buf = malloc(*len ? *len : 1);
	if (buf != NULL)
		memcpy(buf, GRPC_SLICE_START_PTR(s), *len);
	grpc_slice_unref(s);
	return buf;
}

static int
status_error(grpc_status_code status, grpc_slice details, const char *what, vgp_error_t *err)
{
	char *d = grpc_slice_to_c_string(details);
	int e = status == GRPC_STATUS_UNAVAILABLE ? ECONNREFUSED : status == GRPC_STATUS_DEADLINE_EXCEEDED ? ETIMEDOUT
											     : 0;
	int ret = vgp_make_error(err, e, "%s: status %d: %s", what, (int) status, d);
	gpr_free(d);
	return ret;
}

int
vgp_unary_batch_start(grpc_call *call, grpc_byte_buffer *req, struct vgp_unary_batch *b, void *tag)
{
	grpc_op ops[6];

	b->resp = NULL;
	b->status = GRPC_STATUS_UNKNOWN;
	b->details = grpc_empty_slice();
	grpc_metadata_array_init(&b->imd);
	grpc_metadata_array_init(&b->tmd);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &b->imd;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &b->resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &b->tmd;
	ops[5].data.recv_status_on_client.status = &b->status;
	ops[5].data.recv_status_on_client.status_details = &b->details;
	return grpc_call_start_batch(call, ops, 6, tag, NULL) == GRPC_CALL_OK ? 0 : -1;
}

void
vgp_unary_batch_free(struct vgp_unary_batch *b)
{
	grpc_metadata_array_destroy(&b->imd);
	grpc_metadata_array_destroy(&b->tmd);
	grpc_slice_unref(b->details);
	b->details = grpc_empty_slice();
	if (b->resp != NULL)
		grpc_byte_buffer_destroy(b->resp);
	b->resp = NULL;
}

int
vgp_unary(const char *socket_path, const char *method, const uint8_t *req, size_t req_len, int timeout_ms,
	  const atomic_bool *cancel, const char *what, struct vgp_unary_reply *reply, vgp_error_t *err)
{
	char target[PATH_MAX + 8];
	grpc_channel_credentials *creds;
	grpc_channel *ch;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *send_bb;
	struct vgp_unary_batch b;
	grpc_slice payload;
	int tag, ret = 0;
	bool cancelled = false;

	reply->buf = NULL;
	reply->len = 0;
	payload = grpc_slice_from_copied_buffer((const char *) req, req_len);
	send_bb = grpc_raw_byte_buffer_create(&payload, 1);
	grpc_slice_unref(payload);
	snprintf(target, sizeof target, "unix:%s", socket_path);
	creds = grpc_insecure_credentials_create();
	ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_next(NULL);
	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, grpc_slice_from_static_string(method),
					NULL,
					gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
						     gpr_time_from_millis(timeout_ms, GPR_TIMESPAN)),
					NULL);
	if (vgp_unary_batch_start(call, send_bb, &b, &tag) < 0) {
		ret = vgp_make_error(err, 0, "%s: cannot start the call", what);
	} else {
		for (;;) {
			grpc_event ev = grpc_completion_queue_next(
				cq, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(100, GPR_TIMESPAN)),
				NULL);
			if (ev.type == GRPC_OP_COMPLETE)
				break;
			if (!cancelled && cancel != NULL && atomic_load(cancel)) {
				grpc_call_cancel(call, NULL);
				cancelled = true;
			}
		}
		if (cancelled)
			ret = vgp_make_error(err, ECANCELED, "%s", what);
		else if (b.status != GRPC_STATUS_OK)
			ret = status_error(b.status, b.details, what, err);
		else if (b.resp != NULL && (reply->buf = read_bb(b.resp, &reply->len)) == NULL)
			ret = vgp_make_error(err, ENOMEM, "%s", what);
	}
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	vgp_unary_batch_free(&b);
	grpc_byte_buffer_destroy(send_bb);
	return ret;
}
