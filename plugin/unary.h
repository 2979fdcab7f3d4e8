/* unary.h — one client-side unary gRPC call on a unix socket with gRPC's C core: a fresh channel, a deadline,
 * cancellable within 100 ms, the answer as bytes. Shared by the kubelet clients (registration.c: Register,
 * podresources.c: List). */
#ifndef VGP_UNARY_H
#define VGP_UNARY_H

#include <grpc/grpc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* One unary call's six-op client batch (docs/architecture.md §11): where the answer lands. The test tools use it
 * on their own channels and queues (test/tools/tool_unary.h); vgp_unary below on a fresh channel. */
struct vgp_unary_batch {
	grpc_metadata_array imd, tmd;
	grpc_byte_buffer *resp;    /* the response message, NULL when none came back */
	grpc_status_code status;
	grpc_slice details;
};

/* Start the batch on call with the request req (kept by the caller), completing with tag. *b is initialised
 * (status UNKNOWN) either way; release it with vgp_unary_batch_free once the batch completed or could not start.
 * Returns 0, -1 when the batch could not start. */
int vgp_unary_batch_start(grpc_call *call, grpc_byte_buffer *req, struct vgp_unary_batch *b, void *tag);
void vgp_unary_batch_free(struct vgp_unary_batch *b);

struct vgp_unary_reply {
	uint8_t *buf; /* the response message (NULL when none came back); free() it */
	size_t len;
};

/* Call method ("/v1.PodResourcesLister/List") on the unix socket path with the packed request req/req_len,
 * waiting at most timeout_ms; gives up early (ECANCELED) when cancel (may be NULL) becomes true. The caller has
 * called grpc_init (vgp_serve_run does; a one-shot command around its call). Returns 0 with *reply filled, or -1
 * with *err: ECANCELED, ECONNREFUSED (status UNAVAILABLE: nobody listens), ETIMEDOUT (deadline), otherwise the
 * gRPC status and its details (err->status 0). what names the call in messages ("register nvidia.com/X with <socket>"). */
int vgp_unary(const char *socket_path, const char *method, const uint8_t *req, size_t req_len, int timeout_ms,
	      const atomic_bool *cancel, const char *what, struct vgp_unary_reply *reply, vgp_error_t *err);

#endif
