/* config_watch.h — following the --config file the way a ConfigMap volume changes it: kubelet writes the new
 * files into a fresh timestamped directory and swaps the `..data` symlink in the mounted directory (the file
 * itself, a symlink through ..data, never changes in place). So the directory is watched (inotify), not the file,
 * and the file's content decides whether anything changed. Plain files edited in place or renamed over work too. */
#ifndef VGP_CONFIG_WATCH_H
#define VGP_CONFIG_WATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct vgp_config_watch;

/* Watch the directory of path; the file's current content is the baseline (read now: a file that cannot be read
 * is an error). */
int vgp_config_watch_open(struct vgp_config_watch **out, const char *path, vgp_error_t *err);
/* The inotify descriptor to poll for POLLIN. */
int vgp_config_watch_fd(const struct vgp_config_watch *w);
/* Drain the events; true when one of them may concern the file (then call vgp_config_watch_read). */
bool vgp_config_watch_drain(struct vgp_config_watch *w);
/* Read the file now. Returns 1 with *text (NUL-terminated, owned by the watch, valid until the next read) when the
 * content differs from the last content read (which it becomes), 0 when it is the same, -1 with *err when it cannot
 * be read (a missing file in the middle of a swap is retried by the next event; the baseline stays). */
int vgp_config_watch_read(struct vgp_config_watch *w, const char **text, size_t *len, vgp_error_t *err);
const char *vgp_config_watch_path(const struct vgp_config_watch *w);
void vgp_config_watch_close(struct vgp_config_watch *w);

#endif
