/* hostfs.h — every path on the host (sysfs, /dev, /proc, /etc, /var, /lib/modules) goes through here, joined
 * to the one host-root prefix (--host-root, default "/"), plus small read/write helpers for sysfs files. */
#ifndef VGP_HOSTFS_H
#define VGP_HOSTFS_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* buf = host_root + (printf fmt ...), where the formatted part is an absolute host path ("/sys/...").
 * Returns 0, or -1 when it does not fit (errno ENAMETOOLONG). */
int vgp_host_path(char *buf, size_t len, const char *host_root, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Read a small file whole into buf (NUL-terminated, trailing newlines stripped).
 * Returns the length, or -1 with *err filled (the path and errno text). */
ssize_t vgp_read_file(const char *path, char *buf, size_t len, vgp_error_t *err);
/* Write s to an existing file (sysfs attribute semantics: open O_WRONLY, one write). Returns 0 or -1. */
int vgp_write_file(const char *path, const char *s, vgp_error_t *err);
/* The last component of a symlink's target ("../../../bus/pci/drivers/nvidia" -> "nvidia").
 * Returns 0; -1 when the link does not exist or cannot be read (errno set, *err untouched). */
int vgp_readlink_base(const char *path, char *buf, size_t len);
/* Atomic replace: write to a unique path.tmp.XXXXXX created with O_EXCL in the target's directory (never through a
 * planted link), fsync, rename, fsync the directory. mkdir -p of the parent. A target that is a symbolic link (or
 * not a regular file) is refused. */
int vgp_write_atomic(const char *path, const char *data, size_t len, vgp_error_t *err);
/* The same with a hidden temporary file, <dir>/.<name>.tmp.XXXXXX, for readers that skip hidden names (NFD ignores
 * them in features.d, so a half-written file is never read). */
int vgp_write_atomic_hidden(const char *path, const char *data, size_t len, vgp_error_t *err);
/* The same atomic replace (a reader sees the old or the new content, never a mix) without the two fsyncs: for
 * files that describe the running process (serve's status file), which mean nothing after a crash or a reboot,
 * and which the event loop rewrites on every health change, where an fsync would stall the next event by
 * milliseconds to tens of milliseconds on a busy disk. */
int vgp_write_replace(const char *path, const char *data, size_t len, vgp_error_t *err);
/* mkdir -p with mode 0755. */
int vgp_mkdir_p(const char *path, vgp_error_t *err);

#endif
