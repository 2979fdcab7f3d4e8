/* locked_attr.c — reads of sysfs attributes that take the device lock (driver_override, sriov_numvfs), each under a
 * deadline in a child process: the read blocks in D state while anyone's unbind of the device hangs (our own or
 * another tool's), and a child stuck there is abandoned, never waited for. Many attributes are read by one child in
 * turn (a fork costs about a millisecond with the gRPC libraries mapped: one per function made start-up scale at
 * 2 ms a GPU); a child that misses an attribute's deadline is killed and a new one goes on from the next. Owns
 * locked_attr.h. */
#include "locked_attr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "hostfs.h"
#include "util.h"

#define LOCKED_EXIT_GRACE_MS 100 /* for a child that sent every answer to exit before it is killed */

/* One answer down the pipe: smaller than PIPE_BUF, so each write arrives whole. */
struct rec {
	uint32_t idx;
	int32_t err;                    /* 0, or the errno of the open or read */
	char value[VGP_LOCKED_VALUE_LEN]; /* the first line, NUL-terminated, not yet escaped */
};

struct paths {
	char **v; /* one per item, NULL where the path did not fit */
	size_t n;
};

struct batch {
	const struct paths *p;
	size_t from; /* the first item this child reads */
};

static void
free_paths(struct paths *p)
{
	for (size_t i = 0; p->v != NULL && i < p->n; i++)
		free(p->v[i]);
	free(p->v);
}
#define _cleanup_paths_ __attribute__((cleanup(free_paths)))

/* In the child (async-signal-safe calls only): each attribute from b->from on, one record each. */
static int
batch_child(int fd, void *arg)
{
	const struct batch *b = arg;
	char *const *path = b->p->v;

	for (size_t i = b->from; i < b->p->n; i++) {
		struct rec r = { .idx = (uint32_t) i };
		char buf[256];
		ssize_t got = -1;
		int in = path[i] ? open(path[i], O_RDONLY | O_CLOEXEC) : -1;

		if (path[i] == NULL)
			r.err = ENAMETOOLONG;
		else if (in < 0)
			r.err = errno;
		else if ((got = read(in, buf, sizeof buf)) < 0)
			r.err = errno;
		if (in >= 0)
			close(in);
		for (ssize_t k = 0; k < got && k < (ssize_t) sizeof r.value - 1 && buf[k] != '\n'; k++)
			r.value[k] = buf[k];
		if (write(fd, &r, sizeof r) != (ssize_t) sizeof r)
			return 1;
	}
	return 0;
}

/* The child's answers into items until all from `from` on are in (returns n), the pipe ends early (the child died:
 * returns the index it did not answer) or an answer takes longer than timeout_ms (the same, *stuck set). */
static size_t
collect(int fd, int timeout_ms, struct vgp_locked_read *items, size_t n, size_t from, bool *stuck)
{
	size_t next = from;
	long deadline = vgp_now_ms() + timeout_ms; /* of the answer awaited: a signal does not extend it */

	*stuck = false;
	while (next < n) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		struct rec r;
		ssize_t got;
		long left = deadline - vgp_now_ms();
		int k = poll(&pf, 1, left > 0 ? (int) left : 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0) {
			*stuck = true;
			return next;
		}
		got = k < 0 ? -1 : read(fd, &r, sizeof r);
		if (got < 0 && errno == EINTR)
			continue;
		if (got != (ssize_t) sizeof r || r.idx < next || r.idx >= n)
			return next; /* EOF, the exit code's trailer, or nonsense: the child is gone */
		r.value[sizeof r.value - 1] = '\0';
		items[r.idx].status = r.err;
		vgp_escape(r.value, items[r.idx].value, sizeof items[r.idx].value);
		next = r.idx + 1;
		deadline = vgp_now_ms() + timeout_ms;
	}
	return next;
}

int
vgp_read_locked_attrs(const char *host_root, const char *attr, int timeout_ms, struct vgp_locked_read *items,
		      size_t n, vgp_error_t *err)
{
	_cleanup_paths_ struct paths paths = { calloc(n ? n : 1, sizeof(char *)), n };
	size_t next = 0;

	if (paths.v == NULL)
		return vgp_make_error(err, ENOMEM, "reading %s", attr);
	if (timeout_ms <= 0)
		timeout_ms = 1;
	for (size_t i = 0; i < n; i++) {
		char p[PATH_MAX];
		items[i].status = EIO;
		items[i].value[0] = '\0';
		if (vgp_host_path(p, sizeof p, host_root, "/sys/bus/pci/devices/%s/%s", items[i].addr, attr) == 0 &&
		    (paths.v[i] = strdup(p)) == NULL)
			return vgp_make_error(err, ENOMEM, "reading %s", attr);
	}
	while (next < n) {
		struct batch b = { .p = &paths, .from = next };
		bool stuck;
		pid_t pid;
		int fd, status;

		if (vgp_child_start(batch_child, &b, &pid, &fd, err) < 0)
			return vgp_error_wrap(err, "%s: read %s", items[next].addr, attr);
		next = collect(fd, timeout_ms, items, n, next, &stuck);
		close(fd);
		/* answered (or gone): it exits at once, else it is killed after a short grace (valgrind's leak check at
		 * a child's exit takes ~70 ms, more under load: nothing we need) */
		(void) vgp_child_end(pid, stuck ? 0 : vgp_now_ms() + LOCKED_EXIT_GRACE_MS, &status);
		if (next < n) /* the one it did not answer: stuck behind the device lock, or the child died */
			items[next++].status = stuck ? ETIMEDOUT : EIO;
	}
	return 0;
}

int
vgp_locked_read_error(const struct vgp_locked_read *it, const char *attr, int timeout_ms, vgp_error_t *err)
{
	if (it->status == ETIMEDOUT)
		return vgp_make_error(err, ETIMEDOUT, "%s: reading %s did not return within %d ms: another task holds "
				      "the device lock (an unbind that hangs); nothing is written to it", it->addr, attr,
				      timeout_ms);
	return vgp_make_error(err, it->status, "%s: cannot read %s", it->addr, attr);
}

int
vgp_read_locked_attr(const char *host_root, const char *addr, const char *attr, int timeout_ms, char *buf,
		     size_t len, vgp_error_t *err)
{
	struct vgp_locked_read it = { 0 };

	snprintf(it.addr, sizeof it.addr, "%s", addr);
	if (vgp_read_locked_attrs(host_root, attr, timeout_ms, &it, 1, err) < 0)
		return -1;
	if (it.status != 0)
		return vgp_locked_read_error(&it, attr, timeout_ms, err);
	snprintf(buf, len, "%s", it.value);
	return 0;
}
