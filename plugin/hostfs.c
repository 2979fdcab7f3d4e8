/* hostfs.c — host-root path joining and the small file helpers behind hostfs.h. Every host path of the
 * plugin is built by vgp_host_path, so --host-root moves all of them at once. */
#include "hostfs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int
vgp_host_path(char *buf, size_t len, const char *host_root, const char *fmt, ...)
{
	char rel[4096];
	va_list ap;
	size_t rl;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof rel) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (host_root == NULL || host_root[0] == '\0')
		host_root = "/";
	rl = strlen(host_root);
	while (rl > 1 && host_root[rl - 1] == '/')
		rl--;
	if (rl == 1 && host_root[0] == '/')
		rl = 0; /* "/" + "/sys" = "/sys" */
	n = snprintf(buf, len, "%.*s%s%s", (int) rl, host_root, rel[0] == '/' ? "" : "/", rel);
	if (n < 0 || (size_t) n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

ssize_t
vgp_read_file(const char *path, char *buf, size_t len, vgp_error_t *err)
{
	_cleanup_close_ int fd = -1;
	size_t off = 0;

	if (len == 0)
		return vgp_make_error(err, EINVAL, "read %s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vgp_make_error(err, errno, "open %s", path);
	while (off < len - 1) {
		ssize_t r = read(fd, buf + off, len - 1 - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return vgp_make_error(err, errno, "read %s", path);
		}
		if (r == 0)
			break;
		off += (size_t) r;
	}
	buf[off] = '\0';
	while (off > 0 && (buf[off - 1] == '\n' || buf[off - 1] == '\r'))
		buf[--off] = '\0';
	return (ssize_t) off;
}

int
vgp_write_file(const char *path, const char *s, vgp_error_t *err)
{
	_cleanup_close_ int fd = -1;
	size_t len = strlen(s);
	ssize_t w;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return vgp_make_error(err, errno, "open %s for writing", path);
	do
		w = write(fd, s, len);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return vgp_make_error(err, errno, "write '%s' to %s", s, path);
	if ((size_t) w != len)
		return vgp_make_error(err, EIO, "short write of '%s' to %s", s, path);
	if (close(steal_fd(&fd)) < 0)
		return vgp_make_error(err, errno, "close %s", path);
	return 0;
}

int
vgp_readlink_base(const char *path, char *buf, size_t len)
{
	char target[4096];
	ssize_t n = readlink(path, target, sizeof target - 1);
	const char *slash;

	if (n < 0)
		return -1;
	target[n] = '\0';
	while (n > 1 && target[n - 1] == '/')
		target[--n] = '\0';
	slash = strrchr(target, '/');
	if (snprintf(buf, len, "%s", slash ? slash + 1 : target) >= (int) len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
vgp_mkdir_p(const char *path, vgp_error_t *err)
{
	char tmp[4096];
	size_t len;

	if (snprintf(tmp, sizeof tmp, "%s", path) >= (int) sizeof tmp)
		return vgp_make_error(err, ENAMETOOLONG, "mkdir %s", path);
	len = strlen(tmp);
	for (size_t i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		char c = tmp[i];
		tmp[i] = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return vgp_make_error(err, errno, "mkdir %s", tmp);
		tmp[i] = c;
	}
	return 0;
}

/* The one atomic replace behind vgp_write_atomic, vgp_write_atomic_hidden and vgp_write_replace. durable: fsync
 * the file before the rename and the directory after, so the new content survives a crash. */
static int
write_atomic(const char *path, bool hidden, bool durable, const char *data, size_t len, vgp_error_t *err)
{
	char dir[4096], tmp[4096];
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int dfd = -1;
	const char *base = strrchr(path, '/');
	struct stat st;
	size_t off = 0;
	int n, e;

	base = base ? base + 1 : path;
	if (hidden)
		n = snprintf(tmp, sizeof tmp, "%.*s.%s.tmp.XXXXXX", (int) (base - path), path, base);
	else
		n = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
	if (n < 0 || n >= (int) sizeof tmp || snprintf(dir, sizeof dir, "%s", path) >= (int) sizeof dir)
		return vgp_make_error(err, ENAMETOOLONG, "write %s", path);
	if (vgp_mkdir_p(dirname(dir), err) < 0)
		return -1;
	/* A planted link at the target would make a later reader (or an operator's editor) follow it: refuse it. */
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return vgp_make_error(err, S_ISLNK(st.st_mode) ? ELOOP : EEXIST, "write %s: %s", path,
				      S_ISLNK(st.st_mode) ? "the target is a symbolic link; refusing to replace it"
							  : "the target is not a regular file");
	/* A unique name, created with O_EXCL (never follows a planted link, never shared with another writer). */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return vgp_make_error(err, errno, "create %s", tmp);
	if (fchmod(fd, 0644) < 0)
		goto fail_errno;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail_errno;
		}
		off += (size_t) w;
	}
	if ((durable && fsync(fd) < 0) || close(steal_fd(&fd)) < 0)
		goto fail_errno;
	if (rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		return vgp_make_error(err, e, "rename %s to %s", tmp, path);
	}
	if (!durable)
		return 0;
	/* dirname() modified dir in place: it now names the parent */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void) fsync(dfd);
	return 0;
fail_errno:
	e = errno;
	unlink(tmp);
	return vgp_make_error(err, e, "write %s", tmp);
}

int
vgp_write_atomic(const char *path, const char *data, size_t len, vgp_error_t *err)
{
	return write_atomic(path, false, true, data, len, err);
}

int
vgp_write_atomic_hidden(const char *path, const char *data, size_t len, vgp_error_t *err)
{
	return write_atomic(path, true, true, data, len, err);
}

int
vgp_write_replace(const char *path, const char *data, size_t len, vgp_error_t *err)
{
	return write_atomic(path, false, false, data, len, err);
}
