/* driver_ops.c — driver operations on one PCI function (engine-internal.h): driver and driver_override reads,
 * the override write, the unbind (written in a child process under a deadline: the nvidia driver's unbind blocks
 * while the GPU is used, and a child stuck in the kernel is abandoned, not waited for), drivers_probe, the bounded
 * waits for a driver link, and restore (back to a given driver). Every path goes through eng_host_root_path. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "engine-internal.h"
#include "hostfs.h"
#include "util.h"

int
eng_host_root_path(struct eng *e, char *buf, const char *fmt, ...)
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
	return eng_host_root_path(e, p, "/sys/bus/pci/devices/%s", addr) == 0 && access(p, F_OK) == 0;
}

/* The current driver ("" when unbound). */
void
fn_driver(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN])
{
	char p[ENG_PATH_LEN];
	out[0] = '\0';
	if (eng_host_root_path(e, p, "/sys/bus/pci/devices/%s/driver", addr) == 0 && vgp_readlink_base(p, out, VGP_DRIVER_LEN) < 0)
		out[0] = '\0';
}

int
fn_override(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN], vgp_error_t *err)
{
	_cleanup_error_ vgp_error_t rerr = NULL;

	out[0] = '\0';
	/* the read takes the device lock: under the unbind timeout, in a child (someone's hung unbind holds it) */
	if (vgp_read_locked_attr(e->root, addr, "driver_override", e->unbind_ms, out, VGP_DRIVER_LEN, &rerr) < 0) {
		out[0] = '\0';
		if (rerr->status == ETIMEDOUT) {
			*err = steal_pointer(&rerr);
			return -1;
		}
		return 0; /* no such attribute (an old kernel): nothing set */
	}
	if (strcmp(out, "(null)") == 0)
		out[0] = '\0';
	return 0;
}

/* e->wrote: set from any worker, read from any (release's preconditions run on a worker) */
static void
mark_wrote(struct eng *e)
{
	__atomic_store_n(&e->wrote, true, __ATOMIC_RELAXED);
}

bool
eng_wrote(struct eng *e)
{
	return __atomic_load_n(&e->wrote, __ATOMIC_RELAXED);
}

static int
sysfs_write(struct eng *e, const char *path, const char *value, vgp_error_t *err)
{
	mark_wrote(e);
	return vgp_write_file(path, value, err);
}

int
fn_write_override(struct eng *e, const char *addr, const char *value, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	if (eng_host_root_path(e, p, "/sys/bus/pci/devices/%s/driver_override", addr) < 0)
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
	if (eng_host_root_path(e, p, "/sys/bus/pci/drivers_probe") < 0)
		return vgp_make_error(err, errno, "%s: drivers_probe", addr);
	if (sysfs_write(e, p, addr, err) < 0)
		return vgp_error_wrap(err, "%s: step drivers_probe", addr);
	return 0;
}

struct child_write {
	const char *path, *value;
	size_t len;
};

/* In the child: open, one write, close; the errno (0 = done) goes to the parent through fd. Only
 * async-signal-safe calls. */
static int
child_write(int fd, void *arg)
{
	const struct child_write *cw = arg;
	int r = 0, f = open(cw->path, O_WRONLY | O_CLOEXEC);
	if (f < 0) {
		r = errno;
	} else {
		ssize_t w = write(f, cw->value, cw->len);
		if (w < 0)
			r = errno;
		else if ((size_t) w != cw->len)
			r = EIO;
		if (close(f) < 0 && r == 0)
			r = errno;
	}
	return write(fd, &r, sizeof r) < 0 ? 2 : 0;
}

/* Write `value` to `path` in a child process: the nvidia driver's unbind blocks for as long as the GPU is used,
 * so the parent waits at most timeout_ms. *timed_out: the child is still blocked (killed and abandoned: in the
 * real kernel it sits in the device lock until the kernel lets go). */
static int
write_in_child(struct eng *e, const char *path, const char *value, int timeout_ms, bool *timed_out,
	       vgp_error_t *err)
{
	struct child_write cw = { .path = path, .value = value, .len = strlen(value) };
	struct vgp_child_result r;
	int ec;

	*timed_out = false;
	mark_wrote(e);
	if (vgp_child_run(child_write, &cw, timeout_ms, &r, err) < 0)
		return -1;
	if (r.timed_out) {
		*timed_out = true;
		return vgp_make_error(err, ETIMEDOUT, "write '%s' to %s: no answer within %d ms", value, path,
				      timeout_ms);
	}
	if (r.n_out != sizeof ec)
		return vgp_make_error(err, EIO, "write '%s' to %s: the writer died", value, path);
	memcpy(&ec, r.out, sizeof ec);
	if (ec != 0)
		return vgp_make_error(err, ec, "write '%s' to %s", value, path);
	return 0;
}

/* Unbind addr from drv in a child under the unbind timeout; then wait until the driver link is gone. */
int
fn_unbind(struct eng *e, const char *addr, const char *drv, bool *stuck, vgp_error_t *err)
{
	char p[ENG_PATH_LEN], cur[VGP_DRIVER_LEN];
	long deadline;

	*stuck = false;
	if (eng_host_root_path(e, p, "/sys/bus/pci/drivers/%s/unbind", drv) < 0)
		return vgp_make_error(err, errno, "%s: unbind", addr);
	if (write_in_child(e, p, addr, e->unbind_ms, stuck, err) < 0) {
		if (*stuck)
			return vgp_error_wrap(err, "%s: step unbind from %s: stuck: a reboot is needed (the kernel holds "
					      "the device; nothing more is written to it)",
					      addr, drv);
		return vgp_error_wrap(err, "%s: step unbind from %s", addr, drv);
	}
	deadline = vgp_now_ms() + e->wait_ms;
	for (;;) {
		if (!fn_exists(e, addr))
			return vgp_make_error(err, ENODEV, "%s: step unbind from %s: the device vanished", addr, drv);
		fn_driver(e, addr, cur);
		if (strcmp(cur, drv) != 0)
			return 0;
		if (vgp_now_ms() >= deadline)
			return vgp_make_error(err, ETIMEDOUT, "%s: step unbind from %s: still bound after %d ms", addr,
					      drv, e->wait_ms);
		vgp_sleep_ms(ENG_POLL_MS);
	}
}

/* Wait until addr's driver is `want` ("" = any driver); cur receives the last driver seen. */
int
fn_wait_driver(struct eng *e, const char *addr, const char *want, char cur[VGP_DRIVER_LEN])
{
	long deadline = vgp_now_ms() + e->wait_ms;
	for (;;) {
		if (!fn_exists(e, addr)) {
			cur[0] = '\0';
			errno = ENODEV;
			return -1;
		}
		fn_driver(e, addr, cur);
		if (want[0] ? strcmp(cur, want) == 0 : cur[0] != '\0')
			return 0;
		if (vgp_now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		vgp_sleep_ms(ENG_POLL_MS);
	}
}

int
eng_wait_path(struct eng *e, const char *path)
{
	long deadline = vgp_now_ms() + e->wait_ms;
	while (access(path, F_OK) < 0) {
		if (vgp_now_ms() >= deadline)
			return -1;
		vgp_sleep_ms(ENG_POLL_MS);
	}
	return 0;
}

bool
eng_driver_loaded(struct eng *e, const char *drv)
{
	char p[ENG_PATH_LEN];
	return drv[0] && eng_host_root_path(e, p, "/sys/bus/pci/drivers/%s", drv) == 0 && access(p, F_OK) == 0;
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
	if (fn_override(e, addr, ov, err) < 0)
		return vgp_error_wrap(err, "%s: restore", addr);
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
		if (eng_host_root_path(e, p, "/sys/bus/pci/drivers/%s/bind", orig) < 0)
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
