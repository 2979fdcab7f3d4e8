/* instance.h — one instance at a time: an exclusive flock on a lock file next to the journal (<state-file>.lock),
 * held by bind, release and serve's moves (plan needs none), and one per kubelet directory held by serve for its
 * whole life. The holder writes its pid into the file, so a refused instance can name it. */
#ifndef VGP_INSTANCE_H
#define VGP_INSTANCE_H

#include <stddef.h>

#include "error.h"

#define VGP_LOCK_WAIT_MS_DEFAULT 60000

struct vgp_instance_lock {
	int fd; /* -1 when not held */
	char path[4096];
};

/* Take the exclusive lock on path (created 0644, never through a symbolic link, mkdir -p of its directory),
 * waiting up to wait_ms (0: not at all). what names the lock in the error ("the journal <state file>"). Returns 0;
 * -1 (exit 1) naming the holder's pid when it is still held at the bound. */
int vgp_instance_lock(const char *path, int wait_ms, const char *what, struct vgp_instance_lock *l,
		      vgp_error_t *err);
/* Give it up (no-op when not held). */
void vgp_instance_unlock(struct vgp_instance_lock *l);
/* <dir>/serve-<16 hex digits>.lock: the serve lock of one kubelet directory (a hash of its absolute path), in the
 * directory of the state file. Returns 0, or -1 when it does not fit. Pure but for realpath(). */
int vgp_serve_lock_path(const char *state_file, const char *kubelet_dir, char *out, size_t len);

#endif
