/* grpc_server.h — the kubelet DevicePlugin v1beta1 service (docs/architecture.md §3, §9, §11) with gRPC's C
 * core: one grpc_server per resource on <kubelet-dir>/vfio-gpu-<NAME>.sock, all on ONE completion queue served by ONE thread; each call a
 * small state machine. ListAndWatch streams (any number) get the whole list at once and again on every health
 * change (at most one send in flight per stream, the latest list pending); Allocate and GetPreferredAllocation
 * answer from the in-memory table (allocate.h), never from sysfs or disk.
 *
 * Threading: vgp_server_set_health() may be called from any thread. vgp_server_listen(),
 * vgp_server_stop_listener() and vgp_server_free() are called from one controlling thread (serve_loop.c's loop). */
#ifndef VGP_SERVER_H
#define VGP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "allocate.h"
#include "api.pb-c.h"
#include "error.h"

struct vgp_server;

/* The options served by GetDevicePluginOptions and sent in RegisterRequest (identical by construction):
 * pre_start_required false, get_preferred_allocation_available true. */
void vgp_server_options(V1beta1__DevicePluginOptions *o);

/* Copy the tables (deeply: the caller keeps its own), create the completion queue and its thread (gRPC is
 * initialised by the caller: vgp_serve_run owns grpc_init/grpc_shutdown).
 * Nothing listens yet. Errors: a socket path too long for a unix socket, out of memory, thread creation. */
int vgp_server_new(struct vgp_server **out, const char *kubelet_dir, const struct vgp_served_resource *res,
		   size_t n, vgp_error_t *err);
/* (Re)start serving resource i: stop its current server fully (calls cancelled, streams closed), remove a stale
 * socket of ours (only a socket: anything else at the path is an error), listen and accept calls. */
int vgp_server_listen(struct vgp_server *s, size_t i, vgp_error_t *err);
/* Stop serving resource i and remove its socket. No-op when it is not listening. */
void vgp_server_stop_listener(struct vgp_server *s, size_t i);
/* Set the health of device addr of resource i. Returns 1 when it changed (every open ListAndWatch stream of the
 * resource is sent the new list), 0 when unchanged, -1 when addr is not served by resource i. Thread-safe. */
int vgp_server_set_health(struct vgp_server *s, size_t i, const char *addr, bool healthy);
/* Replace the iommufd device nodes of device addr of resource i (copied; thread-safe like set_health). Called
 * before a device turns Healthy again: a re-bound function may have been given another /dev/vfio/devices/vfioN.
 * Returns 0, or -1 (unknown device, out of memory: the old nodes stay). */
int vgp_server_set_dev_nodes(struct vgp_server *s, size_t i, const char *addr, char **nodes, size_t n);
/* Stop every listener (sockets removed), the completion queue and its thread; free. NULL ok. */
void vgp_server_free(struct vgp_server *s);

size_t vgp_server_count(const struct vgp_server *s);
const char *vgp_server_resource(const struct vgp_server *s, size_t i); /* "nvidia.com/AD102GL_L40S" */
const char *vgp_server_socket_name(const struct vgp_server *s, size_t i); /* "vfio-gpu-AD102GL_L40S.sock" */
const char *vgp_server_socket_path(const struct vgp_server *s, size_t i); /* <kubelet-dir>/<name> */
bool vgp_server_listening(struct vgp_server *s, size_t i);
/* Open ListAndWatch streams of resource i (for logs, status and tests). */
size_t vgp_server_streams(struct vgp_server *s, size_t i);
/* Calls answered so far on resource i (every method), for logs and benchmarks. */
unsigned long vgp_server_calls(struct vgp_server *s, size_t i);

#endif
