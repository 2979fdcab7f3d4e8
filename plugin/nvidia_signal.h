/* nvidia_signal.h — telling NVIDIA's k8s-device-plugin that GPUs moved (issue 13): it re-enumerates its GPUs on
 * SIGHUP. Its sockets are nvidia-<name>.sock in the device-plugins directory; the process that listens on one is
 * found through the socket's inode: <host-root>/proc/net/unix (and the net/unix of every other network namespace
 * seen under <host-root>/proc/<pid>/ns/net: NVIDIA's pod need not share the host's), then the process whose
 * <host-root>/proc/<pid>/fd holds socket:[inode]. The DaemonSet has hostPID, so those are the host's processes. */
#ifndef VGP_NVIDIA_SIGNAL_H
#define VGP_NVIDIA_SIGNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct vgp_nvidia_listener {
	pid_t pid;
	char comm[32];
	char socket[256];   /* the path it listens on, as /proc/net/unix shows it */
	unsigned long inode;
};

/* The processes listening on <kubelet_dir>/nvidia-*.sock (a path the listener may see without the host-root
 * prefix when kubelet_dir is under host_root). One entry per process, pid order. Returns the count (0: none). */
int vgp_nvidia_listeners(const char *host_root, const char *kubelet_dir, struct vgp_nvidia_listener **out,
			 vgp_error_t *err);
/* Send SIGHUP to each of them; msg gets what was signalled ("SIGHUP sent to pid 4242 (nvidia-device-p)
 * listening on /var/lib/kubelet/device-plugins/nvidia-gpu.sock") or why nothing was. Returns the number
 * signalled, or -1 with *err. */
int vgp_nvidia_signal(const char *host_root, const char *kubelet_dir, char *msg, size_t len, vgp_error_t *err);

#endif
