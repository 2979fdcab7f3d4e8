/* child.h — run a function in a child process under a deadline (the unbind writes of the bind engine, modprobe).
 * The parent collects what the child writes to a pipe, then its exit status. A child that misses the deadline is
 * killed; one that cannot die (blocked in the kernel, D state: an nvidia unbind waiting for its clients, a module
 * init that hangs) is abandoned after a short grace, never waited for. */
#ifndef VGP_CHILD_H
#define VGP_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct vgp_child_result {
	bool timed_out;   /* the deadline passed: killed, and abandoned when it could not die */
	int status;       /* the waitpid status when it finished in time, else -1 */
	char out[1024];   /* what it wrote to its pipe (NUL-terminated, cut at the size) */
	size_t n_out;
};

/* fn runs in the child after fork (async-signal-safe calls only, then returns the exit code or execs) with the
 * write end of the pipe as fd. Returns 0 when the child ran (check r->timed_out and r->status), -1 with *err when
 * it could not be started (pipe, fork). */
int vgp_child_run(int (*fn)(int fd, void *arg), void *arg, int timeout_ms, struct vgp_child_result *r,
		  vgp_error_t *err);

/* The same child, streaming: vgp_child_start forks it (fn as above) and gives the read end of its pipe (*fd, the
 * caller closes it); vgp_child_end reaps it when it exits before the deadline (true, its waitpid status in *status),
 * else kills it and, when it cannot die, abandons it (false, *status -1). The exit code's trailer (2 bytes) follows
 * whatever fn wrote. */
int vgp_child_start(int (*fn)(int fd, void *arg), void *arg, pid_t *pid, int *fd, vgp_error_t *err);
bool vgp_child_end(pid_t pid, long deadline, int *status);

/* Monotonic milliseconds; a sleep that resumes after signals. */
long vgp_now_ms(void);
void vgp_sleep_ms(long ms);

#endif
