/* unary.h — one synchronous unary gRPC call (the six-op client batch of docs/architecture.md §11) on a pluck
 * completion queue, shared by the test tools (fake-kubelet, bench-client, raw-client, null-dp). Header-only: each tool stays one
 * .c file. */
#ifndef VGP_TOOLS_UNARY_H
#define VGP_TOOLS_UNARY_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <string.h>

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
	grpc_metadata_array imd, tmd;
	grpc_op ops[6];
	grpc_call *call;
	int tag, ret = 0;

	memset(u, 0, sizeof *u);
	u->status = GRPC_STATUS_UNKNOWN;
	u->details = grpc_empty_slice();
	grpc_metadata_array_init(&imd);
	grpc_metadata_array_init(&tmd);
	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &u->resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
	ops[5].data.recv_status_on_client.status = &u->status;
	ops[5].data.recv_status_on_client.status_details = &u->details;
	if (grpc_call_start_batch(call, ops, 6, &tag, NULL) == GRPC_CALL_OK) {
		grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	} else {
		u->status = GRPC_STATUS_INTERNAL;
		ret = -1;
	}
	grpc_metadata_array_destroy(&imd);
	grpc_metadata_array_destroy(&tmd);
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
