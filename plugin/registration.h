/* registration.h — registering our resources with kubelet (/v1beta1.Registration/Register on
 * <kubelet-dir>/kubelet.sock) from a thread of its own, so the serve loop never blocks: deadline 15 s, retry with
 * backoff 1 s doubling to 30 s while kubelet.sock is missing or refuses. Design §3. */
#ifndef VGP_REGISTRATION_H
#define VGP_REGISTRATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"

/* gRPC is initialised by the caller (vgp_serve_run owns grpc_init/grpc_shutdown; a test calls them itself). */

#define VGP_REGISTER_TIMEOUT_MS 15000
#define VGP_REGISTER_BACKOFF_MIN_MS 1000
#define VGP_REGISTER_BACKOFF_MAX_MS 30000

struct vgp_registrar;

/* What vgp_registrar_follow() did about a kubelet.sock it was shown. */
enum vgp_follow { VGP_FOLLOW_NOTHING, VGP_FOLLOW_TRY_NOW, VGP_FOLLOW_REGISTER_AGAIN };

/* The identity of a kubelet.sock: a re-created socket may reuse the inode, never the ctime too. ino 0 = absent. */
struct vgp_sock_id {
	ino_t ino;
	struct timespec ctime;
};
struct vgp_sock_id vgp_kubelet_sock_id(const char *kubelet_dir);
bool vgp_sock_id_eq(const struct vgp_sock_id *a, const struct vgp_sock_id *b);

/* One synchronous Register call: version "v1beta1", endpoint, resource, the options of vgp_server_options().
 * Gives up early (ECANCELED) when *cancel becomes true. With expect non-NULL, only a kubelet.sock with that
 * identity is dialled (ESTALE otherwise: the caller's view of the socket is out of date). Returns 0, or -1 with
 * *err filled (ENOENT when kubelet.sock is missing, ECONNREFUSED when it refuses, the gRPC status text
 * otherwise). */
int vgp_register_once(const char *kubelet_dir, const char *resource, const char *endpoint, int timeout_ms,
		      const struct vgp_sock_id *expect, const atomic_bool *cancel, vgp_error_t *err);

/* Warn (log) about other sockets in the directory that look like they serve the same resource NAME, e.g.
 * NVIDIA's sandbox plugin's kubevirt-<NAME>.sock: the last one to register wins and the two flap. Returns how
 * many were found. */
int vgp_warn_competing_sockets(const char *kubelet_dir, const char *resource, const char *our_socket);

/* NVIDIA's k8s-device-plugin in the directory: its sockets are nvidia-<name>.sock (nvidia-gpu.sock serves
 * nvidia.com/gpu). Their names, ", "-separated, into buf (cut at len). Returns how many. */
int vgp_nvidia_plugin_sockets(const char *kubelet_dir, char *buf, size_t len);

/* Start the registration thread for n resources (resource names and socket file names, copied). Nothing is
 * registered until vgp_registrar_request(). */
int vgp_registrar_start(struct vgp_registrar **out, const char *kubelet_dir, const char *const *resources,
			const char *const *endpoints, size_t n, vgp_error_t *err);
/* (Re-)register resource i as soon as possible (backoff reset; it counts as unregistered until kubelet
 * answers). */
void vgp_registrar_request(struct vgp_registrar *r, size_t i);
/* kubelet.sock is now *now (a kubelet started or restarted): register resource i with it unless the last
 * successful Register, or the attempt in flight, already went to that very socket; a pending resource that waits
 * out a backoff tries at once. So a kubelet that appears while an attempt races it gets exactly one Register. */
enum vgp_follow vgp_registrar_follow(struct vgp_registrar *r, size_t i, const struct vgp_sock_id *now);
/* The decision of vgp_registrar_follow() for one resource (pure, for the tests): its state, the socket its last
 * success and its attempt in flight went to, the kubelet.sock now. */
enum vgp_follow vgp_follow_decide(bool registered, bool pending, bool in_flight,
				  const struct vgp_sock_id *registered_with, const struct vgp_sock_id *trying,
				  const struct vgp_sock_id *now);
bool vgp_registrar_registered(struct vgp_registrar *r, size_t i);
/* An eventfd that becomes readable after every change of a registered state (read it to clear). */
int vgp_registrar_fd(struct vgp_registrar *r);
/* Stop the thread (an attempt in flight is cancelled at once) and free. NULL ok. */
void vgp_registrar_stop(struct vgp_registrar *r);

#endif
