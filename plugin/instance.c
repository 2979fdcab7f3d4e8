/* instance.c — the single-instance locks of instance.h: flock(2) on a file, bounded wait, the holder's pid written
 * into the file for the refusal message. A crashed holder's lock goes with its descriptor (the kernel drops it),
 * so nothing is ever "left over". Owns instance.h. */
#include "instance.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hostfs.h"
#include "log.h"
#include "stop.h"
#include "util.h"

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The pid the holder wrote, or 0. */
static long
holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	long pid;
	char *end;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	return errno == 0 && end != buf && pid > 0 ? pid : 0;
}

int
vgp_instance_lock(const char *path, int wait_ms, const char *what, struct vgp_instance_lock *l, vgp_error_t *err)
{
	char dir[4096], pid[32];
	_cleanup_close_ int fd = -1;
	long deadline = mono_ms() + (wait_ms > 0 ? wait_ms : 0);
	bool said = false;
	int n;

	l->fd = -1;
	if (snprintf(l->path, sizeof l->path, "%s", path) >= (int) sizeof l->path ||
	    snprintf(dir, sizeof dir, "%s", path) >= (int) sizeof dir)
		return vgp_make_error(err, ENAMETOOLONG, "lock %s", path);
	if (vgp_mkdir_p(dirname(dir), err) < 0)
		return vgp_error_wrap(err, "lock %s", path);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return vgp_make_error(err, errno, "lock %s (%s)", path, what);
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return vgp_make_error(err, errno, "lock %s (%s)", path, what);
		if (vgp_stop_pending() != 0)
			return vgp_make_error(err, EINTR, "stopped while waiting for %s (lock %s)", what, path);
		if (mono_ms() >= deadline) {
			long h = holder_pid(fd);

			if (h > 0)
				return vgp_make_error(err, 0, "another instance (pid %ld) holds %s (lock %s)%s", h, what,
						      path, wait_ms > 0 ? "; gave up waiting" : "");
			return vgp_make_error(err, 0, "another instance holds %s (lock %s)%s", what, path,
					      wait_ms > 0 ? "; gave up waiting" : "");
		}
		if (!said) {
			long h = holder_pid(fd);

			log_info("waiting for %s: held by pid %ld (lock %s)", what, h, path);
			said = true;
		}
		usleep(50 * 1000);
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long) getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t) n, 0) != n)
		log_warn("lock %s: cannot record pid: %s", path, strerror(errno));
	l->fd = steal_fd(&fd);
	return 0;
}

void
vgp_instance_unlock(struct vgp_instance_lock *l)
{
	if (l == NULL || l->fd < 0)
		return;
	/* the pid goes first, so a waiter that reads it after our close never names a process gone */
	if (ftruncate(l->fd, 0) < 0)
		log_debug("lock %s: truncate: %s", l->path, strerror(errno));
	close(l->fd);
	l->fd = -1;
}

int
vgp_serve_lock_path(const char *state_file, const char *kubelet_dir, char *out, size_t len)
{
	char dir[4096];
	_cleanup_free_ char *real = realpath(kubelet_dir, NULL);
	unsigned long long h = vgp_hash64(real ? real : kubelet_dir);

	if (snprintf(dir, sizeof dir, "%s", state_file) >= (int) sizeof dir)
		return -1;
	if (snprintf(out, len, "%s/serve-%016llx.lock", dirname(dir), h) >= (int) len)
		return -1;
	return 0;
}
