/* driver_ops.c — driver operations on one PCI function (engine-internal.h): driver and driver_override reads,
 * the override write, the unbind (written in a child process under a deadline: the nvidia driver's unbind blocks
 * while the GPU is used, and a child stuck in the kernel is abandoned, not waited for), drivers_probe, the bounded
 * waits for a driver link, and restore (back to a given driver). Every path goes through eng_path. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine-internal.h"
#include "hostfs.h"
#include "util.h"

int
eng_path(struct eng *e, char *buf, const char *fmt, ...)
{
	char rel[ENG_PATH_LEN];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof rel) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return vgp_host_path(buf, ENG_PATH_LEN, e->root, "%s", rel);
}

bool
fn_exists(struct eng *e, const char *addr)
{
	char p[ENG_PATH_LEN];
	return eng_path(e, p, "/sys/bus/pci/devices/%s", addr) == 0 && access(p, F_OK) == 0;
}

/* The current driver ("" when unbound). */
void
fn_driver(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN])
{
	char p[ENG_PATH_LEN];
	out[0] = '\0';
	if (eng_path(e, p, "/sys/bus/pci/devices/%s/driver", addr) == 0 && vgp_readlink_base(p, out, VGP_DRIVER_LEN) < 0)
		out[0] = '\0';
}

void
fn_override(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN])
{
	char p[ENG_PATH_LEN];
	_cleanup_error_ vgp_error_t err = NULL;
	out[0] = '\0';
	if (eng_path(e, p, "/sys/bus/pci/devices/%s/driver_override", addr) < 0 ||
	    vgp_read_file(p, out, VGP_DRIVER_LEN, &err) < 0) {
		out[0] = '\0';
		return;
	}
	out[strcspn(out, "\n")] = '\0'; /* the attribute is one line */
	if (strcmp(out, "(null)") == 0)
		out[0] = '\0';
}

static int
sysfs_write(struct eng *e, const char *path, const char *value, vgp_error_t *err)
{
	e->wrote = true;
	return vgp_write_file(path, value, err);
}

int
fn_write_override(struct eng *e, const char *addr, const char *value, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	if (eng_path(e, p, "/sys/bus/pci/devices/%s/driver_override", addr) < 0)
		return vgp_make_error(err, errno, "%s: driver_override", addr);
	if (sysfs_write(e, p, value, err) < 0)
		return vgp_error_wrap(err, "%s: step driver_override (%s)", addr,
				      value[0] == '\n' ? "clear" : value);
	return 0;
}

int
fn_probe(struct eng *e, const char *addr, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	if (eng_path(e, p, "/sys/bus/pci/drivers_probe") < 0)
		return vgp_make_error(err, errno, "%s: drivers_probe", addr);
	if (sysfs_write(e, p, addr, err) < 0)
		return vgp_error_wrap(err, "%s: step drivers_probe", addr);
	return 0;
}

/* Write `value` to `path` in a child process: the nvidia driver's unbind blocks for as long as the GPU is used,
 * so the parent waits at most timeout_ms. *timed_out: the child is still blocked (killed and abandoned: in the
 * real kernel it sits in the device lock until the kernel lets go). */
static int
write_in_child(struct eng *e, const char *path, const char *value, int timeout_ms, bool *timed_out,
	       vgp_error_t *err)
{
	int p[2], status;
	size_t len = strlen(value);
	pid_t pid;
	long deadline;

	*timed_out = false;
	e->wrote = true;
	if (pipe2(p, O_CLOEXEC) < 0)
		return vgp_make_error(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		int ec = errno;
		close(p[0]);
		close(p[1]);
		return vgp_make_error(err, ec, "fork");
	}
	if (pid == 0) {
		/* only async-signal-safe calls here */
		int r = 0, fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			r = errno;
		else {
			ssize_t w = write(fd, value, len);
			if (w < 0)
				r = errno;
			else if ((size_t) w != len)
				r = EIO;
			if (close(fd) < 0 && r == 0)
				r = errno;
		}
		if (write(p[1], &r, sizeof r) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	deadline = eng_now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		long left = deadline - eng_now_ms();
		int n = poll(&pf, 1, left > 0 ? (int) left : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			int r = -1;
			ssize_t got = read(p[0], &r, sizeof r);
			close(p[0]);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			if (got != (ssize_t) sizeof r)
				return vgp_make_error(err, EIO, "write '%s' to %s: the writer died", value, path);
			if (r != 0)
				return vgp_make_error(err, r, "write '%s' to %s", value, path);
			return 0;
		}
		if (left <= 0)
			break;
	}
	close(p[0]);
	kill(pid, SIGKILL);
	for (int i = 0; i < 20; i++) { /* reap it if it can die; in a real D state it cannot: abandon it */
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		eng_sleep_ms(5);
	}
	*timed_out = true;
	return vgp_make_error(err, ETIMEDOUT, "write '%s' to %s: no answer within %d ms", value, path, timeout_ms);
}

/* Unbind addr from drv in a child under the unbind timeout; then wait until the driver link is gone. */
int
fn_unbind(struct eng *e, const char *addr, const char *drv, bool *stuck, vgp_error_t *err)
{
	char p[ENG_PATH_LEN], cur[VGP_DRIVER_LEN];
	long deadline;

	*stuck = false;
	if (eng_path(e, p, "/sys/bus/pci/drivers/%s/unbind", drv) < 0)
		return vgp_make_error(err, errno, "%s: unbind", addr);
	if (write_in_child(e, p, addr, e->unbind_ms, stuck, err) < 0) {
		if (*stuck)
			return vgp_error_wrap(err, "%s: step unbind from %s: stuck: a reboot is needed (the kernel holds "
					      "the device; nothing more is written to it)",
					      addr, drv);
		return vgp_error_wrap(err, "%s: step unbind from %s", addr, drv);
	}
	deadline = eng_now_ms() + e->wait_ms;
	for (;;) {
		if (!fn_exists(e, addr))
			return vgp_make_error(err, ENODEV, "%s: step unbind from %s: the device vanished", addr, drv);
		fn_driver(e, addr, cur);
		if (strcmp(cur, drv) != 0)
			return 0;
		if (eng_now_ms() >= deadline)
			return vgp_make_error(err, ETIMEDOUT, "%s: step unbind from %s: still bound after %d ms", addr,
					      drv, e->wait_ms);
		eng_sleep_ms(ENG_POLL_MS);
	}
}

/* Wait until addr's driver is `want` ("" = any driver); cur receives the last driver seen. */
int
fn_wait_driver(struct eng *e, const char *addr, const char *want, char cur[VGP_DRIVER_LEN])
{
	long deadline = eng_now_ms() + e->wait_ms;
	for (;;) {
		if (!fn_exists(e, addr)) {
			cur[0] = '\0';
			errno = ENODEV;
			return -1;
		}
		fn_driver(e, addr, cur);
		if (want[0] ? strcmp(cur, want) == 0 : cur[0] != '\0')
			return 0;
		if (eng_now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		eng_sleep_ms(ENG_POLL_MS);
	}
}

int
eng_wait_path(struct eng *e, const char *path)
{
	long deadline = eng_now_ms() + e->wait_ms;
	while (access(path, F_OK) < 0) {
		if (eng_now_ms() >= deadline)
			return -1;
		eng_sleep_ms(ENG_POLL_MS);
	}
	return 0;
}

bool
eng_driver_loaded(struct eng *e, const char *drv)
{
	char p[ENG_PATH_LEN];
	return drv[0] && eng_path(e, p, "/sys/bus/pci/drivers/%s", drv) == 0 && access(p, F_OK) == 0;
}

/* ---------------------------------------------------------------------------------------------------- restore */

/* Return one function to `orig` ("" = no driver; natural: accept whatever a plain probe gives that is not vfio):
 * clear driver_override, unbind from the current driver, probe, verify. */
int
fn_restore(struct eng *e, const char *addr, const char *orig, bool natural, bool *stuck, vgp_error_t *err)
{
	char ov[VGP_DRIVER_LEN], cur[VGP_DRIVER_LEN], p[ENG_PATH_LEN];

	*stuck = false;
	if (!fn_exists(e, addr))
		return vgp_make_error(err, ENODEV, "%s: restore: the device vanished", addr);
	fn_override(e, addr, ov);
	if (ov[0] && fn_write_override(e, addr, "\n", err) < 0)
		return -1;
	fn_driver(e, addr, cur);
	if (natural ? (cur[0] && !vgp_driver_is_vfio(cur)) : strcmp(cur, orig) == 0)
		return 0;
	if (cur[0] && fn_unbind(e, addr, cur, stuck, err) < 0)
		return -1;
	if (!natural && orig[0] == '\0')
		return 0;
	if (fn_probe(e, addr, err) < 0)
		return -1;
	if (fn_wait_driver(e, addr, natural ? "" : orig, cur) == 0) {
		if (!natural || !vgp_driver_is_vfio(cur))
			return 0;
	}
	if (!natural && cur[0] == '\0' && eng_driver_loaded(e, orig)) {
		/* the plain probe gave nothing: ask the original driver itself */
		if (eng_path(e, p, "/sys/bus/pci/drivers/%s/bind", orig) < 0)
			return vgp_make_error(err, errno, "bind path");
		if (sysfs_write(e, p, addr, err) < 0)
			return vgp_error_wrap(err, "%s: step bind to %s", addr, orig);
		if (fn_wait_driver(e, addr, orig, cur) == 0)
			return 0;
	}
	if (!fn_exists(e, addr))
		return vgp_make_error(err, ENODEV, "%s: restore: the device vanished", addr);
	if (natural) {
		if (cur[0] == '\0')
			return 0; /* no driver claims it: unbound, not on vfio */
		return vgp_make_error(err, 0, "%s: step verify: %s claimed it again after the probe", addr, cur);
	}
	if (!eng_driver_loaded(e, orig))
		return vgp_make_error(err, ENOENT, "%s: step verify: the original driver %s is not loaded", addr, orig);
	return vgp_make_error(err, 0, "%s: step verify: on %s after the probe, expected %s (within %d ms)", addr,
			      cur[0] ? cur : "no driver", orig, e->wait_ms);
}
