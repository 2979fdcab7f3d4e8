/* unary.h — one client-side unary gRPC call on a unix socket with gRPC's C core: a fresh channel, a deadline,
 * cancellable within 100 ms, the answer as bytes. Shared by the kubelet clients (registration.c: Register,
 * podresources.c: List). */
#ifndef VGP_UNARY_H
#define VGP_UNARY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

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
