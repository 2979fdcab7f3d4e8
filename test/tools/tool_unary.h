/* tool_unary.h — one synchronous unary gRPC call on a pluck completion queue, shared by the test tools
 * (fake-kubelet, bench-client, raw-client, null-dp) on their own channels. The six-op client batch itself is the
 * plugin's (vgp_unary_batch_start, plugin/unary.h; docs/architecture.md §11). Header-only: each tool stays one .c
 * file. */
#ifndef VGP_TOOLS_UNARY_H
#define VGP_TOOLS_UNARY_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <string.h>

#include "unary.h"

struct unary_call {
	grpc_status_code status;
	grpc_byte_buffer *resp; /* NULL when no message came back */
	grpc_slice details;
};

/* Call method on ch with the request req (kept by the caller) and wait for the answer on cq, which must be a
 * pluck queue. Returns 0 when the call ran (u->status says how it ended), -1 when the batch could not start
 * (u->status is GRPC_STATUS_INTERNAL). Release u with unary_call_free. */
static inline int
unary_call(grpc_channel *ch, grpc_completion_queue *cq, grpc_slice method, grpc_byte_buffer *req,
	   gpr_timespec deadline, struct unary_call *u)
{
	struct vgp_unary_batch b;
	grpc_call *call;
	int tag, ret = 0;

	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
	if (vgp_unary_batch_start(call, req, &b, &tag) == 0) {
		grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	} else {
		b.status = GRPC_STATUS_INTERNAL;
		ret = -1;
	}
	u->status = b.status;
	u->resp = b.resp;
	u->details = b.details;
	b.resp = NULL; /* handed over to u */
	b.details = grpc_empty_slice();
	vgp_unary_batch_free(&b);
	grpc_call_unref(call);
	return ret;
}

static inline void
unary_call_free(struct unary_call *u)
{
	if (u->resp != NULL)
		grpc_byte_buffer_destroy(u->resp);
	u->resp = NULL;
	grpc_slice_unref(u->details);
	u->details = grpc_empty_slice();
}

#endif
