/* child.c — a function in a child process under a deadline (child.h). */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_POLL_MS 5
#define CHILD_REAP_TRIES 20 /* x CHILD_POLL_MS: the grace a killed child gets to die before it is abandoned */
#define CHILD_RC_MARK 0xff   /* before the exit code the child also writes to its pipe */

long
vgp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void
vgp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* In the child: close every fd above 2 but keep (async-signal-safe: close_range, or close one by one). */
static void
close_others(int keep)
{
	if ((keep <= 3 || close_range(3, (unsigned) keep - 1, 0) == 0) && close_range((unsigned) keep + 1, ~0U, 0) == 0)
		return;
	for (int fd = 3; fd < 4096; fd++) /* a kernel before 5.9 */
		if (fd != keep)
			(void) close(fd);
}

/* What the child writes, until it closes the pipe (exits), the buffer is full or the deadline passes. */
static void
read_until(int fd, long deadline, struct vgp_child_result *r)
{
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		long left = deadline - vgp_now_ms();
		int n = poll(&pf, 1, left > 0 ? (int) left : 0);
		ssize_t got;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got = read(fd, r->out + r->n_out, sizeof r->out - 1 - r->n_out);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		r->n_out += (size_t) got;
		if (r->n_out >= sizeof r->out - 1)
			break;
	}
	r->out[r->n_out] = '\0';
}

/* Reap the child before the deadline. Returns 0 (status in *status), -1 when it is still running. */
static int
reap_until(pid_t pid, long deadline, int *status)
{
	/* a child that closed its pipe is exiting: look again within microseconds first (many short children, e.g.
	 * one driver_override read per planned function, must not cost CHILD_POLL_MS each) */
	for (int i = 0; i < 50; i++) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			break;
		struct timespec ts = { 0, 100 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR) {
			*status = -1;
			return 0; /* not our child any more: nothing to wait for */
		}
		if (w == 0 && vgp_now_ms() >= deadline)
			return -1;
		if (w == 0)
			vgp_sleep_ms(CHILD_POLL_MS);
	}
}

int
vgp_child_start(int (*fn)(int fd, void *arg), void *arg, pid_t *pid, int *fd, vgp_error_t *err)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return vgp_make_error(err, errno, "pipe");
	*pid = fork();
	if (*pid < 0) {
		int ec = errno;
		close(p[0]);
		close(p[1]);
		return vgp_make_error(err, ec, "fork");
	}
	if (*pid == 0) {
		/* Only async-signal-safe calls from here (the parent may have other threads, in the middle of a malloc).
		 * Close every descriptor but the standard ones and our pipe: without an exec, O_CLOEXEC does not act,
		 * and a child that inherited another worker's pipe would keep that pipe open, so that worker would
		 * wait for its own child's EOF until its deadline, and for ever behind an unbind stuck in the kernel. */
		close_others(p[1]);
		int rc = fn(p[1], arg);
		/* The exit code also goes down the pipe, last, after a 0xff marker: a tool that wraps this process (valgrind
		 * counting the other threads' memory, unreachable in the child, as leaked) may change the exit status of a
		 * child that does not exec; the parent believes the pipe. */
		unsigned char trailer[2] = { CHILD_RC_MARK, (unsigned char) rc };
		(void) !write(p[1], trailer, sizeof trailer);
		_exit(rc);
	}
	close(p[1]);
	*fd = p[0];
	return 0;
}

bool
vgp_child_end(pid_t pid, long deadline, int *status)
{
	int st;

	if (reap_until(pid, deadline, status) == 0)
		return true;
	kill(pid, SIGKILL);
	for (int i = 0; i < CHILD_REAP_TRIES; i++) { /* reap it if it can die; in a real D state it cannot */
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		vgp_sleep_ms(CHILD_POLL_MS);
	}
	*status = -1;
	return false;
}

int
vgp_child_run(int (*fn)(int fd, void *arg), void *arg, int timeout_ms, struct vgp_child_result *r,
	      vgp_error_t *err)
{
	pid_t pid;
	int fd;
	long deadline;

	memset(r, 0, sizeof *r);
	r->status = -1;
	if (vgp_child_start(fn, arg, &pid, &fd, err) < 0)
		return -1;
	deadline = vgp_now_ms() + timeout_ms;
	read_until(fd, deadline, r);
	close(fd);
	if (!vgp_child_end(pid, deadline, &r->status)) {
		r->timed_out = true;
		return 0;
	}
	if (r->n_out >= 2 && (unsigned char) r->out[r->n_out - 2] == CHILD_RC_MARK && WIFEXITED(r->status)) {
		r->status = W_EXITCODE((unsigned char) r->out[r->n_out - 1], 0);
		r->n_out -= 2;
		r->out[r->n_out] = '\0';
	}
	return 0;
}
