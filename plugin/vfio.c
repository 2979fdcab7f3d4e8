/* vfio.c — the bind engine (vfio.h; design §5, §7): preconditions, the busy check (holders by st_rdev, the nvidia
 * unbind lock), per-group binding with each step verified, the unbind in a child process under a timeout, rollback,
 * crash repair from the journal, the udev rule file, and release. Every path goes through vgp_host_path. */
#include "vfio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostfs.h"
#include "journal.h"
#include "log.h"
#include "report.h"
#include "util.h"

#define PATH_LEN 4096
#define POLL_MS 5
#define MSG_LEN 1024

struct excl {
	char addr[VGP_ADDR_LEN];
	char *why;
};

struct eng {
	const struct vgp_engine_opts *o;
	const char *root;
	char state[PATH_LEN];
	char boot_id[64];
	struct vgp_journal j;
	bool rebooted;
	int unbind_ms, wait_ms;
	bool wrote;                   /* a sysfs write happened in this run */
	int precond;                  /* 0 unchecked, 1 ok */
	struct vgp_engine_report *rep;
	struct excl *ex;              /* GPUs the plan must not select: busy at bind time, stuck */
	size_t n_ex;
	char (*done)[VGP_ADDR_LEN];   /* GPUs handled in this run */
	size_t n_done;
	char (*locked)[VGP_ADDR_LEN]; /* nvidia unbind locks taken and not yet consumed by an unbind */
	size_t n_locked;
	struct vgp_inventory inv;
	struct vgp_plan plan;
	bool have;
};

/* ---------------------------------------------------------------------------------------------------- small */

static long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *
vgp_outcome_name(enum vgp_outcome o)
{
	switch (o) {
	case VGP_OUT_PASSTHROUGH: return "passthrough";
	case VGP_OUT_BOUND: return "bound";
	case VGP_OUT_ROLLED_BACK: return "rolled-back";
	case VGP_OUT_STUCK: return "stuck";
	case VGP_OUT_SKIPPED_BUSY: return "skipped-busy";
	case VGP_OUT_FAILED: return "failed";
	case VGP_OUT_RELEASED: return "released";
	case VGP_OUT_REFUSED: return "refused";
	}
	return "unknown";
}

static bool
outcome_ok(enum vgp_outcome o)
{
	return o == VGP_OUT_PASSTHROUGH || o == VGP_OUT_BOUND || o == VGP_OUT_RELEASED || o == VGP_OUT_SKIPPED_BUSY;
}

static struct vgp_gpu_result *
result_add(struct eng *e, const char *addr, const char *resource, enum vgp_outcome out, long ms, size_t nf,
	   const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static struct vgp_gpu_result *
result_add(struct eng *e, const char *addr, const char *resource, enum vgp_outcome out, long ms, size_t nf,
	   const char *fmt, ...)
{
	struct vgp_engine_report *rep = e->rep;
	struct vgp_gpu_result *nr = realloc(rep->r, (rep->n + 1) * sizeof *nr);
	va_list ap;
	if (nr == NULL)
		return NULL;
	rep->r = nr;
	nr = &rep->r[rep->n++];
	memset(nr, 0, sizeof *nr);
	snprintf(nr->addr, sizeof nr->addr, "%s", addr);
	snprintf(nr->resource, sizeof nr->resource, "%s", resource ? resource : "");
	nr->outcome = out;
	nr->ms = ms;
	nr->n_functions = nf;
	va_start(ap, fmt);
	if (vasprintf(&nr->msg, fmt, ap) < 0)
		nr->msg = NULL;
	va_end(ap);
	if (!outcome_ok(out))
		rep->n_failed++;
	return nr;
}

static bool
in_list(char (*list)[VGP_ADDR_LEN], size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], addr) == 0)
			return true;
	return false;
}

static int
list_add(char (**list)[VGP_ADDR_LEN], size_t *n, const char *addr)
{
	if (in_list(*list, *n, addr))
		return 0;
	char (*nl)[VGP_ADDR_LEN] = realloc(*list, (*n + 1) * sizeof *nl);
	if (nl == NULL)
		return -1;
	*list = nl;
	snprintf(nl[*n], VGP_ADDR_LEN, "%s", addr);
	(*n)++;
	return 0;
}

static void
list_del(char (*list)[VGP_ADDR_LEN], size_t *n, const char *addr)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i], addr) == 0) {
			memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof *list);
			(*n)--;
			return;
		}
}

static int
exclude(struct eng *e, const char *addr, const char *why)
{
	for (size_t i = 0; i < e->n_ex; i++)
		if (strcmp(e->ex[i].addr, addr) == 0)
			return 0;
	struct excl *n = realloc(e->ex, (e->n_ex + 1) * sizeof *n);
	if (n == NULL)
		return -1;
	e->ex = n;
	snprintf(n[e->n_ex].addr, VGP_ADDR_LEN, "%s", addr);
	n[e->n_ex].why = strdup(why);
	e->n_ex++;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- sysfs */

static int
host_root_path(struct eng *e, char *buf, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
host_root_path(struct eng *e, char *buf, const char *fmt, ...)
{
	char rel[PATH_LEN];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof rel) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return vgp_host_path(buf, PATH_LEN, e->root, "%s", rel);
}

static bool
dev_exists(struct eng *e, const char *addr)
{
	char p[PATH_LEN];
	return host_root_path(e, p, "/sys/bus/pci/devices/%s", addr) == 0 && access(p, F_OK) == 0;
}

/* The current driver ("" when unbound). */
static void
dev_driver(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN])
{
	char p[PATH_LEN];
	out[0] = '\0';
	if (host_root_path(e, p, "/sys/bus/pci/devices/%s/driver", addr) == 0 && vgp_readlink_base(p, out, VGP_DRIVER_LEN) < 0)
		out[0] = '\0';
}

static void
dev_override(struct eng *e, const char *addr, char out[VGP_DRIVER_LEN])
{
	char p[PATH_LEN];
	_cleanup_error_ vgp_error_t err = NULL;
	out[0] = '\0';
	if (host_root_path(e, p, "/sys/bus/pci/devices/%s/driver_override", addr) < 0 ||
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

static int
write_override(struct eng *e, const char *addr, const char *value, vgp_error_t *err)
{
	char p[PATH_LEN];
	if (host_root_path(e, p, "/sys/bus/pci/devices/%s/driver_override", addr) < 0)
		return vgp_make_error(err, errno, "%s: driver_override", addr);
	if (sysfs_write(e, p, value, err) < 0)
		return vgp_error_wrap(err, "%s: step driver_override (%s)", addr,
				      value[0] == '\n' ? "clear" : value);
	return 0;
}

static int
write_probe(struct eng *e, const char *addr, vgp_error_t *err)
{
	char p[PATH_LEN];
	if (host_root_path(e, p, "/sys/bus/pci/drivers_probe") < 0)
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
	deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		long left = deadline - now_ms();
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
		sleep_ms(5);
	}
	*timed_out = true;
	return vgp_make_error(err, ETIMEDOUT, "write '%s' to %s: no answer within %d ms", value, path, timeout_ms);
}

/* Unbind addr from drv in a child under the unbind timeout; then wait until the driver link is gone. */
static int
unbind(struct eng *e, const char *addr, const char *drv, bool *stuck, vgp_error_t *err)
{
	char p[PATH_LEN], cur[VGP_DRIVER_LEN];
	long deadline;

	*stuck = false;
	if (host_root_path(e, p, "/sys/bus/pci/drivers/%s/unbind", drv) < 0)
		return vgp_make_error(err, errno, "%s: unbind", addr);
	if (write_in_child(e, p, addr, e->unbind_ms, stuck, err) < 0) {
		if (*stuck)
			return vgp_error_wrap(err, "%s: step unbind from %s: stuck: a reboot is needed (the kernel holds "
					      "the device; nothing more is written to it)",
					      addr, drv);
		return vgp_error_wrap(err, "%s: step unbind from %s", addr, drv);
	}
	deadline = now_ms() + e->wait_ms;
	for (;;) {
		if (!dev_exists(e, addr))
			return vgp_make_error(err, ENODEV, "%s: step unbind from %s: the device vanished", addr, drv);
		dev_driver(e, addr, cur);
		if (strcmp(cur, drv) != 0)
			return 0;
		if (now_ms() >= deadline)
			return vgp_make_error(err, ETIMEDOUT, "%s: step unbind from %s: still bound after %d ms", addr,
					      drv, e->wait_ms);
		sleep_ms(POLL_MS);
	}
}

/* Wait until addr's driver is `want` ("" = any driver); cur receives the last driver seen. */
static int
wait_driver(struct eng *e, const char *addr, const char *want, char cur[VGP_DRIVER_LEN])
{
	long deadline = now_ms() + e->wait_ms;
	for (;;) {
		if (!dev_exists(e, addr)) {
			cur[0] = '\0';
			errno = ENODEV;
			return -1;
		}
		dev_driver(e, addr, cur);
		if (want[0] ? strcmp(cur, want) == 0 : cur[0] != '\0')
			return 0;
		if (now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		sleep_ms(POLL_MS);
	}
}

static int
wait_path(struct eng *e, const char *path)
{
	long deadline = now_ms() + e->wait_ms;
	while (access(path, F_OK) < 0) {
		if (now_ms() >= deadline)
			return -1;
		sleep_ms(POLL_MS);
	}
	return 0;
}

static bool
driver_loaded(struct eng *e, const char *drv)
{
	char p[PATH_LEN];
	return drv[0] && host_root_path(e, p, "/sys/bus/pci/drivers/%s", drv) == 0 && access(p, F_OK) == 0;
}

/* ---------------------------------------------------------------------------------------------------- nvidia */

static void
holders_text(const struct vgp_holder *h, size_t n, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%spid %d (%s)", i ? ", " : "", h[i].pid, h[i].comm);
		if (w < 0)
			break;
		off += (size_t) w;
	}
}

static bool
lock_path(struct eng *e, const char *addr, char p[PATH_LEN])
{
	return host_root_path(e, p, "/proc/driver/nvidia/gpus/%s/unbindLock", addr) == 0 && access(p, F_OK) == 0;
}

static void
release_lock(struct eng *e, const char *addr)
{
	char p[PATH_LEN];
	_cleanup_error_ vgp_error_t err = NULL;
	if (!in_list(e->locked, e->n_locked, addr))
		return;
	list_del(e->locked, &e->n_locked, addr);
	if (lock_path(e, addr, p) && vgp_write_file(p, "0", &err) < 0)
		log_warn("%s: releasing the nvidia unbind lock: %s", addr, err->msg);
}

static void
release_locks(struct eng *e)
{
	while (e->n_locked > 0) {
		char a[VGP_ADDR_LEN];
		memcpy(a, e->locked[0], sizeof a);
		release_lock(e, a);
	}
}

/* A GPU on nvidia whose unbind lock reads 1 while this run does not hold it: a killed run took it. */
static void
release_stale_lock(struct eng *e, const char *addr)
{
	char p[PATH_LEN], val[16], drv[VGP_DRIVER_LEN];
	_cleanup_error_ vgp_error_t err = NULL;
	struct vgp_journal_entry *je = vgp_journal_find(&e->j, addr);
	dev_driver(e, addr, drv);
	if (strcmp(drv, "nvidia") != 0 || in_list(e->locked, e->n_locked, addr) || !lock_path(e, addr, p))
		return;
	if (je && je->state == VGP_J_STUCK)
		return; /* its unbind still waits in the kernel: leave it be */
	if (vgp_read_file(p, val, sizeof val, &err) < 0 || strcmp(val + strspn(val, " \t"), "1") != 0)
		return;
	log_info("%s stays on nvidia but its unbind lock is taken (by a killed run?): releasing it", addr);
	if (vgp_write_file(p, "0", &err) < 0)
		log_warn("%s", err->msg);
}

/* Is the GPU (on nvidia) free to unbind? Holders by st_rdev, then (take_lock) the unbind lock (write 1, read back 1).
 * Returns 0 free (lock held when the driver has one), 1 busy (msg says why, naming PIDs), -1 error. */
static int
gpu_busy(struct eng *e, const struct vgp_pci_dev *d, bool take_lock, char *msg, size_t len, vgp_error_t *err)
{
	char p[PATH_LEN], val[16], held[512];
	_cleanup_free_ struct vgp_holder *h = NULL;
	size_t nh = 0;

	if (strcmp(d->driver, "nvidia") != 0)
		return 0;
	if (in_list(e->locked, e->n_locked, d->addr))
		return 0;
	if (d->nvidia_minor >= 0) {
		if (vgp_nvidia_holders(e->root, d->nvidia_minor, &h, &nh, err) < 0)
			return vgp_error_wrap(err, "%s: holders of /dev/nvidia%d", d->addr, d->nvidia_minor);
		if (nh > 0) {
			holders_text(h, nh, held, sizeof held);
			snprintf(msg, len, "%s is busy: /dev/nvidia%d is held by %s", d->addr, d->nvidia_minor, held);
			return 1;
		}
	}
	if (!take_lock || !lock_path(e, d->addr, p))
		return 0;
	if (vgp_write_file(p, "1", err) < 0)
		return vgp_error_wrap(err, "%s: step unbind lock", d->addr);
	if (list_add(&e->locked, &e->n_locked, d->addr) < 0)
		return vgp_make_error(err, ENOMEM, "unbind lock");
	/* the kernel answers synchronously ("1\n" or "0\n"); anything else is not an answer yet (a simulated kernel
	 * works asynchronously): read again within the bounded wait */
	for (long deadline = now_ms() + e->wait_ms;;) {
		const char *v = val;
		if (vgp_read_file(p, val, sizeof val, err) < 0)
			return vgp_error_wrap(err, "%s: step unbind lock", d->addr);
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcmp(v, "1") == 0 || strcmp(v, "0") == 0) {
			memmove(val, v, strlen(v) + 1);
			break;
		}
		if (now_ms() >= deadline)
			break;
		sleep_ms(POLL_MS);
	}
	if (strcmp(val, "1") != 0) {
		list_del(e->locked, &e->n_locked, d->addr);
		snprintf(msg, len, "%s is busy: the nvidia driver refused its unbind lock (a client still holds the "
			 "GPU; no holder is visible in /proc: a process in another PID namespace?)", d->addr);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- journal */

static int
jsave(struct eng *e, vgp_error_t *err)
{
	return vgp_journal_save(e->state, &e->j, err);
}

static void
jset(struct eng *e, const char *addr, const char *gpu, int group, const char *orig, enum vgp_jstate st)
{
	struct vgp_journal_entry n = { .group = group, .state = st };
	_cleanup_error_ vgp_error_t err = NULL;
	snprintf(n.addr, sizeof n.addr, "%s", addr);
	snprintf(n.gpu, sizeof n.gpu, "%s", gpu);
	snprintf(n.orig_driver, sizeof n.orig_driver, "%s", orig);
	if (vgp_journal_set(&e->j, &n, &err) < 0)
		log_error("%s", err->msg);
}

static void
jstate(struct eng *e, const char *addr, enum vgp_jstate st)
{
	struct vgp_journal_entry *je = vgp_journal_find(&e->j, addr);
	if (je)
		je->state = st;
}

/* ---------------------------------------------------------------------------------------------------- udev */

static int
udev_path(struct eng *e, char p[PATH_LEN])
{
	return host_root_path(e, p, "%s", VGP_UDEV_RULES_PATH);
}

static int
write_if_changed(const char *path, const char *text, vgp_error_t *err)
{
	char *cur = NULL;
	size_t cl = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		ssize_t r = getdelim(&cur, &cl, '\0', f);
		fclose(f);
		bool same = r >= 0 && strcmp(cur, text) == 0;
		free(cur);
		if (same)
			return 0;
	}
	return vgp_write_atomic(path, text, strlen(text), err);
}

/* The rule file = one line per function the journal has on vfio-pci (state bound). Empty: the file goes. */
static int
udev_sync(struct eng *e, vgp_error_t *err)
{
	char p[PATH_LEN];
	_cleanup_free_ const char **addrs = calloc(e->j.n ? e->j.n : 1, sizeof *addrs);
	_cleanup_free_ char *text = NULL;
	size_t n = 0;

	if (addrs == NULL)
		return vgp_make_error(err, ENOMEM, "udev rules");
	if (udev_path(e, p) < 0)
		return vgp_make_error(err, errno, "udev rules path");
	for (size_t i = 0; i < e->j.n; i++) {
		char drv[VGP_DRIVER_LEN];
		if (e->j.e[i].state != VGP_J_BOUND)
			continue;
		dev_driver(e, e->j.e[i].addr, drv);
		if (strcmp(drv, "vfio-pci") == 0)
			addrs[n++] = e->j.e[i].addr;
	}
	if (n == 0) {
		if (unlink(p) < 0 && errno != ENOENT)
			return vgp_make_error(err, errno, "remove %s", p);
		return 0;
	}
	text = vgp_udev_rules_text(addrs, n);
	if (text == NULL)
		return vgp_make_error(err, ENOMEM, "udev rules");
	if (write_if_changed(p, text, err) < 0)
		return vgp_error_wrap(err, "persist udev");
	return 0;
}

/* release: drop the lines of the given functions from an existing rule file (removed when no rule is left). */
static int
udev_drop(struct eng *e, char (*addrs)[VGP_ADDR_LEN], size_t n, vgp_error_t *err)
{
	char p[PATH_LEN];
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL, *out = NULL;
	size_t cap = 0, outlen = 0;
	bool rules = false, changed = false;
	FILE *m;

	if (udev_path(e, p) < 0)
		return vgp_make_error(err, errno, "udev rules path");
	f = fopen(p, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : vgp_make_error(err, errno, "open %s", p);
	m = open_memstream(&out, &outlen);
	if (m == NULL)
		return vgp_make_error(err, errno, "udev rules");
	while (getline(&line, &cap, f) >= 0) {
		bool drop = false;
		for (size_t i = 0; i < n && !drop; i++) {
			char k[64];
			snprintf(k, sizeof k, "KERNEL==\"%s\"", addrs[i]);
			drop = strstr(line, k) != NULL;
		}
		if (drop) {
			changed = true;
			continue;
		}
		if (line[0] != '#' && line[0] != '\n')
			rules = true;
		fputs(line, m);
	}
	fclose(m);
	if (!changed)
		return 0;
	if (!rules) {
		if (unlink(p) < 0 && errno != ENOENT)
			return vgp_make_error(err, errno, "remove %s", p);
		return 0;
	}
	return vgp_write_atomic(p, out, outlen, err);
}

/* ---------------------------------------------------------------------------------------------------- preconditions */

static int
run_modprobe(struct eng *e, const char *module, vgp_error_t *err)
{
	int p[2], status = -1; /* -1: not an exit status (a failure) */
	char out[1024];
	size_t off = 0;
	bool plain = strcmp(e->root, "/") == 0 || e->root[0] == '\0';
	pid_t pid;
	long deadline;

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
		/* serve blocks SIGTERM/SIGINT/SIGHUP while it binds, and a blocked mask and ignored signals survive
		 * exec: give modprobe the defaults, so it can be stopped like any process (async-signal-safe calls) */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		dup2(p[1], 2);
		if (plain)
			execlp("modprobe", "modprobe", module, (char *) NULL);
		else
			execlp("modprobe", "modprobe", "-d", e->root, module, (char *) NULL);
		dprintf(2, "cannot run modprobe: %s", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	/* bounded like the unbind: a module whose init hangs must not hang the bind (or serve's start) */
	deadline = now_ms() + e->unbind_ms;
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		long left = deadline - now_ms();
		int n = poll(&pf, 1, left > 0 ? (int) left : 0);
		ssize_t r;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r = read(p[0], out + off, sizeof out - 1 - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t) r;
		if (off >= sizeof out - 1)
			break;
	}
	out[off] = '\0';
	close(p[0]);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (w == 0 && now_ms() >= deadline) {
			kill(pid, SIGKILL);
			for (int i = 0; i < 20 && waitpid(pid, &status, WNOHANG) != pid; i++)
				sleep_ms(5); /* in D state it cannot die: abandon it */
			return vgp_make_error(err, ETIMEDOUT, "precondition: the %s kernel module cannot be loaded "
					      "(modprobe%s%s %s did not finish within %d ms; killed)", module,
					      plain ? "" : " -d ", plain ? "" : e->root, module, e->unbind_ms);
		}
		if (w == 0)
			sleep_ms(POLL_MS);
	}
	while (off > 0 && (out[off - 1] == '\n' || out[off - 1] == ' '))
		out[--off] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return vgp_make_error(err, 0, "precondition: the %s kernel module cannot be loaded (modprobe%s%s %s: %s)",
				      module, plain ? "" : " -d ", plain ? "" : e->root, module,
				      off ? out : "failed");
	return 0;
}

/* The IOMMU precondition failing. When the plan is known, the GPUs the configuration matches (each ineligible
 * for this reason alone) are named: they are what the IOMMU keeps from being passed through. */
static int
iommu_off_error(struct eng *e, vgp_error_t *err)
{
	const char *root = strcmp(e->root, "/") ? e->root : "";
	char gpus[256] = "";
	size_t n = 0, off = 0;

	for (size_t i = 0; e->have && i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		if (g->entry < 0)
			continue;
		if (n++ < 4)
			vgp_list_append(gpus, sizeof gpus, &off, e->inv.devs[g->dev].addr);
	}
	if (n == 0)
		return vgp_make_error(err, 0, "precondition: the IOMMU is off (%s/sys/kernel/iommu_groups is empty): "
				      "enable it with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command "
				      "line and reboot", root);
	return vgp_make_error(err, 0, "precondition: the IOMMU is off (%s/sys/kernel/iommu_groups is empty): enable it "
			      "with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command line and reboot; "
			      "until then no GPU can be passed through (%zu match%s the configuration: %s%s)%s", root, n,
			      n == 1 ? "es" : "", gpus, n > 4 ? ", ..." : "", e->wrote ? "" : "; nothing was changed");
}

/* Checked once, before the first write of a run. */
static int
preconditions(struct eng *e, bool need_vfio, vgp_error_t *err)
{
	char p[PATH_LEN];
	struct statvfs sv;

	if (e->precond == 1 || (e->precond == 2 && !need_vfio))
		return 0;
	if (need_vfio && !e->inv.iommu)
		return iommu_off_error(e, err);
	if (host_root_path(e, p, "/sys/bus/pci/drivers_probe") < 0)
		return vgp_make_error(err, errno, "drivers_probe path");
	if (statvfs(p, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		return vgp_make_error(err, EROFS, "precondition: /sys is read-only (%s): mount it read-write (a "
				      "privileged container)", p);
	if (access(p, W_OK) < 0)
		return vgp_make_error(err, errno, "precondition: /sys is not writable (%s)", p);
	if (need_vfio && !driver_loaded(e, "vfio-pci")) {
		if (run_modprobe(e, "vfio_iommu_type1", err) < 0 || run_modprobe(e, "vfio-pci", err) < 0)
			return -1;
		if (host_root_path(e, p, "/sys/bus/pci/drivers/vfio-pci") < 0 || wait_path(e, p) < 0)
			return vgp_make_error(err, ENOENT, "precondition: modprobe vfio-pci succeeded but %s did not "
					      "appear", p);
	}
	e->precond = need_vfio ? 1 : 2;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- snapshot */

static void
snap_free(struct eng *e)
{
	if (!e->have)
		return;
	vgp_plan_free(&e->plan);
	vgp_inventory_free(&e->inv);
	memset(&e->plan, 0, sizeof e->plan);
	memset(&e->inv, 0, sizeof e->inv);
	e->have = false;
}

/* The inventory, without the reads that take the device lock of a function whose unbind never returned (journal
 * state stuck): on a real kernel that lock stays held until a reboot, and the read would hang this process. */
static int
scan_node(struct eng *e, struct vgp_inventory *inv, vgp_error_t *err)
{
	_cleanup_free_ const char **locked = calloc(e->j.n ? e->j.n : 1, sizeof *locked);
	size_t nl = 0;

	if (locked == NULL)
		return vgp_make_error(err, ENOMEM, "inventory");
	for (size_t i = 0; i < e->j.n; i++)
		if (e->j.e[i].state == VGP_J_STUCK)
			locked[nl++] = e->j.e[i].addr;
	return vgp_inventory_scan_ex(e->root, e->o->pci_ids, locked, nl, inv, err);
}

static bool
sticky_state(enum vgp_jstate s)
{
	return s != VGP_J_RELEASING;
}

static int
snap(struct eng *e, vgp_error_t *err)
{
	_cleanup_free_ const char **sticky = calloc(e->j.n ? e->j.n : 1, sizeof *sticky);
	_cleanup_free_ const char **ex = calloc(e->n_ex ? e->n_ex : 1, sizeof *ex);
	_cleanup_free_ const char **why = calloc(e->n_ex ? e->n_ex : 1, sizeof *why);
	struct vgp_plan_input in = { 0 };
	size_t ns = 0;

	snap_free(e);
	if (sticky == NULL || ex == NULL || why == NULL)
		return vgp_make_error(err, ENOMEM, "plan");
	if (scan_node(e, &e->inv, err) < 0)
		return -1;
	for (size_t i = 0; i < e->j.n; i++)
		if (strcmp(e->j.e[i].addr, e->j.e[i].gpu) == 0 && sticky_state(e->j.e[i].state))
			sticky[ns++] = e->j.e[i].addr;
	for (size_t i = 0; i < e->n_ex; i++) {
		ex[i] = e->ex[i].addr;
		why[i] = e->ex[i].why;
	}
	in.inv = &e->inv;
	in.cfg = e->o->cfg;
	in.pt = e->o->pt;
	in.n_pt = e->o->n_pt;
	in.sticky = sticky;
	in.n_sticky = ns;
	in.exclude = ex;
	in.exclude_why = why;
	in.n_exclude = e->n_ex;
	if (vgp_plan_build(&in, &e->plan, err) < 0) {
		vgp_inventory_free(&e->inv);
		memset(&e->inv, 0, sizeof e->inv);
		return -1;
	}
	e->have = true;
	return 0;
}

static const struct vgp_plan_gpu *
plan_gpu(struct eng *e, const char *addr)
{
	for (size_t i = 0; i < e->plan.n; i++)
		if (strcmp(e->inv.devs[e->plan.gpus[i].dev].addr, addr) == 0)
			return &e->plan.gpus[i];
	return NULL;
}

/* ---------------------------------------------------------------------------------------------------- restore */

/* Return one function to `orig` ("" = no driver; natural: accept whatever a plain probe gives that is not vfio):
 * clear driver_override, unbind from the current driver, probe, verify. */
static int
restore_fn(struct eng *e, const char *addr, const char *orig, bool natural, bool *stuck, vgp_error_t *err)
{
	char ov[VGP_DRIVER_LEN], cur[VGP_DRIVER_LEN], p[PATH_LEN];

	*stuck = false;
	if (!dev_exists(e, addr))
		return vgp_make_error(err, ENODEV, "%s: restore: the device vanished", addr);
	dev_override(e, addr, ov);
	if (ov[0] && write_override(e, addr, "\n", err) < 0)
		return -1;
	dev_driver(e, addr, cur);
	if (natural ? (cur[0] && !vgp_driver_is_vfio(cur)) : strcmp(cur, orig) == 0)
		return 0;
	if (cur[0] && unbind(e, addr, cur, stuck, err) < 0)
		return -1;
	if (!natural && orig[0] == '\0')
		return 0;
	if (write_probe(e, addr, err) < 0)
		return -1;
	if (wait_driver(e, addr, natural ? "" : orig, cur) == 0) {
		if (!natural || !vgp_driver_is_vfio(cur))
			return 0;
	}
	if (!natural && cur[0] == '\0' && driver_loaded(e, orig)) {
		/* the plain probe gave nothing: ask the original driver itself */
		if (host_root_path(e, p, "/sys/bus/pci/drivers/%s/bind", orig) < 0)
			return vgp_make_error(err, errno, "bind path");
		if (sysfs_write(e, p, addr, err) < 0)
			return vgp_error_wrap(err, "%s: step bind to %s", addr, orig);
		if (wait_driver(e, addr, orig, cur) == 0)
			return 0;
	}
	if (!dev_exists(e, addr))
		return vgp_make_error(err, ENODEV, "%s: restore: the device vanished", addr);
	if (natural) {
		if (cur[0] == '\0')
			return 0; /* no driver claims it: unbound, not on vfio */
		return vgp_make_error(err, 0, "%s: step verify: %s claimed it again after the probe", addr, cur);
	}
	if (!driver_loaded(e, orig))
		return vgp_make_error(err, ENOENT, "%s: step verify: the original driver %s is not loaded", addr, orig);
	return vgp_make_error(err, 0, "%s: step verify: on %s after the probe, expected %s (within %d ms)", addr,
			      cur[0] ? cur : "no driver", orig, e->wait_ms);
}

/* ---------------------------------------------------------------------------------------------------- bind one group */

struct member {
	char addr[VGP_ADDR_LEN];
	char orig[VGP_DRIVER_LEN];
	bool ours;      /* journaled: this run (or an earlier one) moves it; rolled back on failure */
	bool touched;   /* written to in this run */
};

/* The driver to record as original: the current one, unless there is none (a GPU seen at boot before its driver
 * loaded, or one a killed run left unbound) and the journal knows better. */
static void
pick_orig(struct eng *e, const struct vgp_pci_dev *d, char out[VGP_DRIVER_LEN])
{
	struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
	char cur[VGP_DRIVER_LEN];
	dev_driver(e, d->addr, cur);
	if (cur[0] && !vgp_driver_is_vfio(cur))
		snprintf(out, VGP_DRIVER_LEN, "%s", cur);
	else if (je)
		snprintf(out, VGP_DRIVER_LEN, "%s", je->orig_driver);
	else
		out[0] = '\0';
}

static void
rollback(struct eng *e, const char *gpu, struct member *m, size_t n, const char *stuck_addr, char *why, size_t why_len,
	 bool *all_ok)
{
	_cleanup_error_ vgp_error_t jerr = NULL;
	*all_ok = true;
	for (size_t i = n; i-- > 0;) {
		_cleanup_error_ vgp_error_t err = NULL;
		bool stuck = false;
		if (!m[i].ours)
			continue;
		if (stuck_addr && strcmp(m[i].addr, stuck_addr) == 0)
			continue;
		if (restore_fn(e, m[i].addr, m[i].orig, false, &stuck, &err) < 0) {
			size_t l = strlen(why);
			snprintf(why + l, why_len - l, "; rollback of %s failed: %s", m[i].addr, err->msg);
			*all_ok = false;
			if (stuck) {
				jstate(e, m[i].addr, VGP_J_STUCK);
				exclude(e, gpu, "stuck: a reboot is needed (an unbind timed out)");
			}
			continue;
		}
		vgp_journal_remove(&e->j, m[i].addr);
	}
	if (jsave(e, &jerr) < 0) {
		size_t l = strlen(why);
		snprintf(why + l, why_len - l, "; %s", jerr->msg);
		*all_ok = false;
	}
}

/* The busy policy at the GPU's own turn, right before its first write: holders again, then the unbind lock
 * (policy skip: taken here, just before its unbind, so that new opens are refused for as short a time as possible;
 * fail and wait took every lock up front in busy_phase, before the first write, and only a GPU without an unbind
 * lock file is checked again here).
 * Returns 0 (go on), 1 (skipped: result recorded, excluded), -1 (failed: result recorded). */
static int
lock_gpu(struct eng *e, const struct vgp_plan_gpu *g)
{
	const struct vgp_pci_dev *d = &e->inv.devs[g->dev];
	enum vgp_busy_policy pol = e->o->cfg ? e->o->cfg->busy_policy : VGP_BUSY_SKIP;
	int timeout_s = e->o->cfg ? e->o->cfg->busy_timeout_s : 60;
	long deadline = now_ms() + (long) timeout_s * 1000, t0 = now_ms();
	bool waited = false;
	char msg[MSG_LEN];

	for (;;) {
		_cleanup_error_ vgp_error_t err = NULL;
		int r = gpu_busy(e, d, true, msg, sizeof msg, &err);
		if (r < 0) {
			result_add(e, d->addr, g->resource, VGP_OUT_FAILED, now_ms() - t0, g->n_members, "%s", err->msg);
			return -1;
		}
		if (r == 0)
			return 0;
		if (pol == VGP_BUSY_SKIP) {
			log_warn("%s: skipped (busy policy skip)", msg);
			result_add(e, d->addr, g->resource, VGP_OUT_SKIPPED_BUSY, now_ms() - t0, g->n_members,
				   "%s: skipped (busy policy skip)", msg);
			exclude(e, d->addr, msg);
			return 1;
		}
		if (pol == VGP_BUSY_WAIT && now_ms() < deadline) {
			if (!waited)
				log_info("%s: waiting up to %d s (busy policy wait)", msg, timeout_s);
			waited = true;
			sleep_ms(VGP_BUSY_RECHECK_MS);
			continue;
		}
		if (pol == VGP_BUSY_WAIT)
			result_add(e, d->addr, g->resource, VGP_OUT_FAILED, now_ms() - t0, g->n_members,
				   "%s (still busy after waiting %d s, busy policy wait)", msg, timeout_s);
		else
			result_add(e, d->addr, g->resource, VGP_OUT_FAILED, now_ms() - t0, g->n_members,
				   "%s (busy policy fail)", msg);
		return -1;
	}
}

/* Bind the group of plan GPU g. Records one result. */
static void
bind_group(struct eng *e, const struct vgp_plan_gpu *g)
{
	const struct vgp_pci_dev *gpu = &e->inv.devs[g->dev];
	_cleanup_free_ struct member *m = calloc(g->n_members ? g->n_members : 1, sizeof *m);
	_cleanup_error_ vgp_error_t err = NULL;
	char why[MSG_LEN * 2] = "", cur[VGP_DRIVER_LEN], ov[VGP_DRIVER_LEN], node[PATH_LEN], others[512] = "";
	const char *stuck_addr = NULL;
	long t0 = now_ms();
	size_t n = g->n_members;
	bool moved = false, journal_dirty = false, all_ok;
	int group = gpu->iommu_group;

	if (m == NULL) {
		result_add(e, gpu->addr, g->resource, VGP_OUT_FAILED, 0, 0, "out of memory");
		return;
	}
	list_add(&e->done, &e->n_done, gpu->addr);
	if (lock_gpu(e, g) != 0)
		return;
	/* journal first: every function that moves (or that an earlier run journaled) */
	for (size_t i = 0; i < n; i++) {
		const struct vgp_pci_dev *d = &e->inv.devs[g->members[i]];
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
		snprintf(m[i].addr, sizeof m[i].addr, "%s", d->addr);
		dev_driver(e, d->addr, cur);
		if (i > 0) {
			size_t l = strlen(others);
			snprintf(others + l, sizeof others - l, "%s%s", l ? ", " : "", d->addr);
		}
		if (vgp_driver_is_vfio(cur) && je == NULL)
			continue; /* on vfio before us (vfio-pci.ids, an admin): not ours, never moved off */
		m[i].ours = true;
		pick_orig(e, d, m[i].orig);
		if (je == NULL || je->state != VGP_J_BINDING || strcmp(je->orig_driver, m[i].orig) != 0 ||
		    strcmp(je->gpu, gpu->addr) != 0) {
			if (!vgp_driver_is_vfio(cur) || je == NULL || je->state != VGP_J_BOUND) {
				jset(e, d->addr, gpu->addr, group, m[i].orig, VGP_J_BINDING);
				journal_dirty = true;
			}
		}
	}
	if (journal_dirty && jsave(e, &err) < 0) {
		snprintf(why, sizeof why, "%s: step journal: %s", gpu->addr, err->msg);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		bool stuck = false;
		dev_driver(e, m[i].addr, cur);
		dev_override(e, m[i].addr, ov);
		if (vgp_driver_is_vfio(cur)) {
			/* already there: make a reprobe keep it there (a variant driver keeps its own match) */
			if (strcmp(cur, "vfio-pci") == 0 && strcmp(ov, "vfio-pci") != 0) {
				if (write_override(e, m[i].addr, "vfio-pci", &err) < 0)
					goto step_failed;
				m[i].touched = true;
			}
			continue;
		}
		if (!dev_exists(e, m[i].addr)) {
			vgp_make_error(&err, ENODEV, "%s: the device vanished", m[i].addr);
			goto step_failed;
		}
		if (strcmp(ov, "vfio-pci") != 0) {
			m[i].touched = true;
			if (write_override(e, m[i].addr, "vfio-pci", &err) < 0)
				goto step_failed;
		}
		m[i].touched = true;
		if (cur[0]) {
			if (unbind(e, m[i].addr, cur, &stuck, &err) < 0) {
				if (stuck) {
					stuck_addr = m[i].addr;
					jstate(e, m[i].addr, VGP_J_STUCK);
					exclude(e, gpu->addr, "stuck: a reboot is needed (its unbind timed out)");
				}
				goto step_failed;
			}
			list_del(e->locked, &e->n_locked, m[i].addr); /* the unbind consumed the lock */
		}
		if (write_probe(e, m[i].addr, &err) < 0)
			goto step_failed;
		if (wait_driver(e, m[i].addr, "vfio-pci", cur) < 0) {
			if (errno == ENODEV)
				vgp_make_error(&err, ENODEV, "%s: step verify: the device vanished after the probe",
					       m[i].addr);
			else
				vgp_make_error(&err, 0, "%s: step verify: %s after drivers_probe, not vfio-pci, within "
					       "%d ms (vfio-pci's probe failed?)",
					       m[i].addr, cur[0] ? cur : "no driver", e->wait_ms);
			goto step_failed;
		}
		moved = true;
	}
	if (group >= 0) {
		if (host_root_path(e, node, "/dev/vfio/%d", group) < 0 || wait_path(e, node) < 0) {
			vgp_make_error(&err, ENOENT, "%s: step verify: /dev/vfio/%d did not appear within %d ms",
				       gpu->addr, group, e->wait_ms);
			goto step_failed;
		}
	}
	journal_dirty = false;
	for (size_t i = 0; i < n; i++) {
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, m[i].addr);
		if (m[i].ours && je && je->state != VGP_J_BOUND) {
			je->state = VGP_J_BOUND;
			journal_dirty = true;
		}
	}
	if (journal_dirty && jsave(e, &err) < 0) {
		/* the node is right, the journal still says binding: the next start finds it complete */
		log_warn("%s: bound, but %s", gpu->addr, err->msg);
		vgp_error_release(&err);
	}
	{
		long ms = now_ms() - t0;
		if (moved) {
			log_info("bound %s%s%s%s to vfio-pci in %ld ms", gpu->addr, others[0] ? " (+" : "", others,
				 others[0] ? ")" : "", ms);
			result_add(e, gpu->addr, g->resource, VGP_OUT_BOUND, ms, n, "bound to vfio-pci%s%s%s in %ld ms",
				   others[0] ? " with " : "", others, "", ms);
		} else {
			result_add(e, gpu->addr, g->resource, VGP_OUT_PASSTHROUGH, ms, n, "%s", g->reason);
		}
	}
	return;

step_failed:
	snprintf(why, sizeof why, "%s", err ? err->msg : "failed");
	vgp_error_release(&err);
fail:
	if (stuck_addr && strcmp(stuck_addr, gpu->addr) == 0)
		list_del(e->locked, &e->n_locked, gpu->addr); /* no write to a stuck device, not even its lock */
	else
		release_lock(e, gpu->addr);
	rollback(e, gpu->addr, m, n, stuck_addr, why, sizeof why, &all_ok);
	{
		long ms = now_ms() - t0;
		if (stuck_addr) {
			log_error("%s: stuck: a reboot is needed", gpu->addr);
			result_add(e, gpu->addr, g->resource, VGP_OUT_STUCK, ms, n, "%s", why);
		} else if (all_ok) {
			log_warn("%s: rolled back: %s", gpu->addr, why);
			result_add(e, gpu->addr, g->resource, VGP_OUT_ROLLED_BACK, ms, n, "%s (rolled back: every "
				   "function is on its original driver)", why);
		} else {
			log_error("%s: failed: %s", gpu->addr, why);
			result_add(e, gpu->addr, g->resource, VGP_OUT_FAILED, ms, n, "%s", why);
		}
	}
}

/* Does a planned group need anything (a member off vfio, an override to set, a journal entry to finish)? */
static bool
group_needs_work(struct eng *e, const struct vgp_plan_gpu *g)
{
	for (size_t i = 0; i < g->n_members; i++) {
		const struct vgp_pci_dev *d = &e->inv.devs[g->members[i]];
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
		char cur[VGP_DRIVER_LEN], ov[VGP_DRIVER_LEN];
		dev_driver(e, d->addr, cur);
		if (!vgp_driver_is_vfio(cur))
			return true;
		if (strcmp(cur, "vfio-pci") == 0) {
			dev_override(e, d->addr, ov);
			if (strcmp(ov, "vfio-pci") != 0)
				return true;
		}
		if (je && je->state != VGP_J_BOUND)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------------------------------------- repair */

/* Entries of this boot left in flight: a BINDING group the plan still wants is completed by the bind pass;
 * otherwise (and for RELEASING) every journaled function of the group goes back to its original driver. STUCK
 * entries whose unbind has since gone through become BINDING again; the rest stay out of service. Then groups
 * whose GPU stays on its driver but another function of the card is on vfio-pci get that function back. */
static int
repair(struct eng *e, vgp_error_t *err)
{
	bool changed = false, dirty = false;

	for (size_t i = 0; i < e->j.n; i++) {
		struct vgp_journal_entry *je = &e->j.e[i];
		char cur[VGP_DRIVER_LEN];
		if (je->state != VGP_J_STUCK)
			continue;
		dev_driver(e, je->addr, cur);
		if (dev_exists(e, je->addr) && strcmp(cur, je->orig_driver) != 0) {
			log_info("%s: the unbind that was stuck has gone through; completing", je->addr);
			je->state = VGP_J_BINDING;
			dirty = true;
		} else {
			exclude(e, je->gpu, "stuck: a reboot is needed (its unbind timed out earlier in this boot)");
		}
	}
	_cleanup_free_ char (*todo)[VGP_ADDR_LEN] = NULL;
	size_t ntodo = 0;
	for (size_t i = 0; i < e->j.n; i++) {
		struct vgp_journal_entry *je = &e->j.e[i];
		const struct vgp_plan_gpu *g;
		if (je->state != VGP_J_BINDING && je->state != VGP_J_RELEASING)
			continue;
		g = plan_gpu(e, je->gpu);
		if (je->state == VGP_J_BINDING && g && (g->action == VGP_ACT_BIND || g->action == VGP_ACT_PASSTHROUGH))
			continue; /* the bind pass completes it */
		if (list_add(&todo, &ntodo, je->gpu) < 0)
			return vgp_make_error(err, ENOMEM, "repair");
	}
	for (size_t t = 0; t < ntodo; t++) {
		const char *gpu = todo[t];
		if (preconditions(e, false, err) < 0)
			return -1;
		log_info("repair: %s was left in flight by an earlier run; restoring its original drivers", gpu);
		for (size_t k = 0; k < e->j.n;) {
			struct vgp_journal_entry *x = &e->j.e[k];
			_cleanup_error_ vgp_error_t rerr = NULL;
			bool stuck = false;
			if (strcmp(x->gpu, gpu) != 0 || (x->state != VGP_J_BINDING && x->state != VGP_J_RELEASING)) {
				k++;
				continue;
			}
			dirty = true;
			if (!dev_exists(e, x->addr)) {
				log_warn("repair: %s is gone; forgetting it", x->addr);
				vgp_journal_remove(&e->j, x->addr);
				continue;
			}
			changed = true;
			if (restore_fn(e, x->addr, x->orig_driver, false, &stuck, &rerr) < 0) {
				log_error("repair: %s", rerr->msg);
				x->state = stuck ? VGP_J_STUCK : VGP_J_BINDING;
				if (stuck)
					exclude(e, gpu, "stuck: a reboot is needed (its unbind timed out)");
				k++;
				continue;
			}
			vgp_journal_remove(&e->j, x->addr);
		}
	}
	/* an unbind lock a killed run left taken keeps every new client off that GPU: give it back */
	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		if (g->action != VGP_ACT_BIND)
			release_stale_lock(e, e->inv.devs[g->dev].addr);
	}
	/* a function of a card on vfio-pci while its GPU is not (and not planned): back to its driver */
	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		const struct vgp_pci_dev *gpu = &e->inv.devs[g->dev];
		if (g->action != VGP_ACT_KEEP && g->action != VGP_ACT_INELIGIBLE)
			continue;
		if (vgp_driver_is_vfio(gpu->driver))
			continue;
		for (size_t k = 1; k < g->n_members; k++) {
			const struct vgp_pci_dev *d = &e->inv.devs[g->members[k]];
			struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
			_cleanup_error_ vgp_error_t rerr = NULL;
			bool stuck = false;
			if (strcmp(d->driver, "vfio-pci") != 0 || !vgp_same_card(gpu->addr, d->addr))
				continue;
			if (je && je->state == VGP_J_STUCK)
				continue;
			if (preconditions(e, false, err) < 0)
				return -1;
			log_info("repair: %s is on vfio-pci but its GPU %s is not (%s); giving it back", d->addr,
				 gpu->addr, g->reason);
			changed = true;
			if (restore_fn(e, d->addr, je ? je->orig_driver : "", je == NULL, &stuck, &rerr) < 0) {
				log_error("repair: %s", rerr->msg);
				continue;
			}
			if (je) {
				vgp_journal_remove(&e->j, d->addr);
				dirty = true;
			}
		}
	}
	if (dirty && jsave(e, err) < 0)
		return -1;
	if ((changed || e->n_ex > 0) && snap(e, err) < 0)
		return -1;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- bind */

static int
eng_init(struct eng *e, const struct vgp_engine_opts *o, struct vgp_engine_report *rep, vgp_error_t *err)
{
	char p[PATH_LEN];
	_cleanup_error_ vgp_error_t berr = NULL;

	memset(e, 0, sizeof *e);
	memset(rep, 0, sizeof *rep);
	e->o = o;
	e->rep = rep;
	e->root = o->host_root && o->host_root[0] ? o->host_root : "/";
	e->unbind_ms = o->unbind_timeout_ms > 0 ? o->unbind_timeout_ms : VGP_UNBIND_TIMEOUT_MS_DEFAULT;
	e->wait_ms = o->vfio_wait_ms > 0 ? o->vfio_wait_ms : VGP_VFIO_WAIT_MS_DEFAULT;
	if (o->state_file)
		snprintf(e->state, sizeof e->state, "%s", o->state_file);
	else if (host_root_path(e, e->state, "%s", VGP_STATE_PATH) < 0)
		return vgp_make_error(err, errno, "state file path");
	if (host_root_path(e, p, "/proc/sys/kernel/random/boot_id") < 0 || vgp_read_file(p, e->boot_id, sizeof e->boot_id,
										&berr) < 0) {
		log_warn("cannot read the boot id (%s): the journal cannot tell a reboot",
			 berr ? berr->msg : "path too long");
		e->boot_id[0] = '\0';
	}
	if (vgp_journal_load(e->state, e->boot_id, &e->j, &e->rebooted, err) < 0)
		return -1;
	rep->rebooted = e->rebooted;
	if (e->rebooted)
		log_info("journal %s is from an earlier boot: keeping its addresses and original drivers", e->state);
	return 0;
}

static void
eng_free(struct eng *e)
{
	release_locks(e);
	for (size_t i = 0; i < e->n_ex; i++)
		free(e->ex[i].why);
	free(e->ex);
	free(e->done);
	free(e->locked);
	vgp_journal_free(&e->j);
	snap_free(e);
}

/* Hand the current inventory and plan to the report. */
static void
eng_handover(struct eng *e)
{
	if (!e->have)
		return;
	e->rep->inv = e->inv;
	e->rep->plan = e->plan;
	e->rep->have_plan = true;
	memset(&e->inv, 0, sizeof e->inv);
	memset(&e->plan, 0, sizeof e->plan);
	e->have = false;
}

/* One pass over the GPUs about to move: their holders (lock false) or their unbind locks, taken (lock true). Each
 * busy GPU is counted in *busy and named in m ("; "-separated); under policy skip it is excluded at once. Returns 0,
 * or -1 with *err filled. */
static int
busy_scan(struct eng *e, const struct vgp_plan_gpu **work, size_t nw, bool lock, enum vgp_busy_policy pol, FILE *m,
	  size_t *busy, bool *excluded, vgp_error_t *err)
{
	char msg[MSG_LEN];

	for (size_t i = 0; i < nw; i++) {
		const struct vgp_plan_gpu *g = work[i];
		const struct vgp_pci_dev *d;
		int r;
		if (g == NULL || g->action != VGP_ACT_BIND)
			continue;
		d = &e->inv.devs[g->dev];
		r = gpu_busy(e, d, lock, msg, sizeof msg, err);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		(*busy)++; /* and go on: every busy GPU is named */
		fprintf(m, "%s%s", *busy > 1 ? "; " : "", msg);
		if (pol == VGP_BUSY_SKIP) {
			log_warn("%s: skipped (busy policy skip)", msg);
			result_add(e, d->addr, g->resource, VGP_OUT_SKIPPED_BUSY, 0, g->n_members,
				   "%s: skipped (busy policy skip)", msg);
			exclude(e, d->addr, msg);
			*excluded = true;
			work[i] = NULL;
		}
	}
	return 0;
}

/* The busy phase for the GPUs about to move. Returns 0 (go on), 1 (exclusions added: re-plan), -1 (stop). */
static int
busy_phase(struct eng *e, const struct vgp_plan_gpu **work, size_t nw, vgp_error_t *err)
{
	enum vgp_busy_policy pol = e->o->cfg ? e->o->cfg->busy_policy : VGP_BUSY_SKIP;
	int timeout_s = e->o->cfg ? e->o->cfg->busy_timeout_s : 60;
	long deadline = now_ms() + (long) timeout_s * 1000;
	bool excluded = false, waited = false;

	for (;;) {
		_cleanup_free_ char *all = NULL;
		size_t busy = 0, alen = 0;
		FILE *m = open_memstream(&all, &alen);
		if (m == NULL)
			return vgp_make_error(err, errno, "busy check");
		/* holders first; then, for fail and wait once no holder is left, the unbind lock of every GPU about to
		 * move, before the first write: a lock refused at a GPU's own turn would come after earlier groups had
		 * moved (skip takes each at its GPU's turn, in lock_gpu, and passes over a refused one) */
		if (busy_scan(e, work, nw, false, pol, m, &busy, &excluded, err) < 0 ||
		    (busy == 0 && pol != VGP_BUSY_SKIP && busy_scan(e, work, nw, true, pol, m, &busy, &excluded, err) < 0)) {
			fclose(m);
			release_locks(e);
			return -1;
		}
		fclose(m);
		if (pol == VGP_BUSY_SKIP)
			return excluded ? 1 : 0;
		if (busy == 0) {
			if (waited)
				log_info("busy GPUs are free now");
			return 0; /* the locks taken stay held until each unbind consumes its own (or release_locks) */
		}
		release_locks(e); /* refused somewhere: give back the ones taken, nothing is moved with them held */
		if (pol == VGP_BUSY_WAIT && now_ms() < deadline) {
			if (!waited)
				log_info("waiting up to %d s for busy GPUs (busy policy wait): %s", timeout_s, all);
			waited = true;
			sleep_ms(VGP_BUSY_RECHECK_MS);
			continue;
		}
		if (pol == VGP_BUSY_WAIT)
			return vgp_make_error(err, EBUSY, "%s (still busy after waiting %d s, busy policy wait)%s", all,
					      timeout_s, e->wrote ? "" : "; nothing was changed");
		return vgp_make_error(err, EBUSY, "%s (busy policy fail)%s", all, e->wrote ? "" : "; nothing was changed");
	}
}

int
vgp_plan_node(const struct vgp_engine_opts *o, struct vgp_inventory *inv, struct vgp_plan *plan, vgp_error_t *err)
{
	struct vgp_engine_report rep;
	struct eng e;
	int r = -1;

	if (eng_init(&e, o, &rep, err) < 0)
		goto out;
	if (snap(&e, err) < 0)
		goto out;
	*inv = e.inv;
	*plan = e.plan;
	memset(&e.inv, 0, sizeof e.inv);
	memset(&e.plan, 0, sizeof e.plan);
	e.have = false;
	r = 0;
out:
	eng_free(&e);
	vgp_engine_report_free(&rep);
	return r;
}

int
vgp_bind(const struct vgp_engine_opts *o, struct vgp_engine_report *rep, vgp_error_t *err)
{
	struct eng e;
	int r = -1;
	const struct vgp_plan_gpu **work = NULL;

	if (eng_init(&e, o, rep, err) < 0)
		goto out;
	if (snap(&e, err) < 0)
		goto out;
	/* IOMMU off: the plan marks every GPU ineligible for it, so nothing is selected and a shortfall (or an empty
	 * run that succeeds) would hide the cause. When the configuration matches a GPU of the node, that is the
	 * IOMMU precondition failing: said here, before any write (serve: reported not-ready). */
	if (!e.inv.iommu) {
		for (size_t i = 0; i < e.plan.n; i++)
			if (e.plan.gpus[i].entry >= 0 && e.plan.gpus[i].action == VGP_ACT_INELIGIBLE) {
				iommu_off_error(&e, err);
				goto out;
			}
	}
	if (e.plan.shortfall && !o->shortfall_ok) {
		vgp_make_usage_error(err, "%s", e.plan.shortfall_msg ? e.plan.shortfall_msg
								      : "more GPUs wanted than the node has eligible");
		goto out;
	}
	if (repair(&e, err) < 0)
		goto out;
	/* GPUs the plan skipped as busy (policy skip) */
	for (size_t i = 0; i < e.plan.n; i++) {
		const struct vgp_plan_gpu *g = &e.plan.gpus[i];
		if (g->action == VGP_ACT_INELIGIBLE && g->entry >= 0 && strncmp(g->reason, "busy:", 5) == 0)
			result_add(&e, e.inv.devs[g->dev].addr, "", VGP_OUT_SKIPPED_BUSY, 0, g->n_members,
				   "%s: skipped (busy policy skip)", g->reason);
	}
	/* devices whose unbind hung earlier in this boot */
	{
		_cleanup_free_ char (*stuck)[VGP_ADDR_LEN] = NULL;
		size_t ns = 0;
		for (size_t i = 0; i < e.j.n; i++)
			if (e.j.e[i].state == VGP_J_STUCK && !in_list(stuck, ns, e.j.e[i].gpu)) {
				list_add(&stuck, &ns, e.j.e[i].gpu);
				list_add(&e.done, &e.n_done, e.j.e[i].gpu);
				result_add(&e, e.j.e[i].gpu, "", VGP_OUT_STUCK, 0, 0,
					   "%s: stuck since an earlier run in this boot (the unbind of %s never returned): "
					   "a reboot is needed; nothing is written to it",
					   e.j.e[i].gpu, e.j.e[i].addr);
			}
	}
	for (int round = 0; round < 64; round++) {
		size_t nw = 0;
		bool need_vfio = false;
		int br;
		free(work);
		work = calloc(e.plan.n ? e.plan.n : 1, sizeof *work);
		if (work == NULL) {
			vgp_make_error(err, ENOMEM, "bind");
			goto out;
		}
		for (size_t i = 0; i < e.plan.n; i++) {
			const struct vgp_plan_gpu *g = &e.plan.gpus[i];
			const char *addr = e.inv.devs[g->dev].addr;
			if (g->action != VGP_ACT_BIND && g->action != VGP_ACT_PASSTHROUGH)
				continue;
			if (in_list(e.done, e.n_done, addr))
				continue;
			if (g->action == VGP_ACT_PASSTHROUGH && !group_needs_work(&e, g)) {
				list_add(&e.done, &e.n_done, addr);
				result_add(&e, addr, g->resource, VGP_OUT_PASSTHROUGH, 0, g->n_members, "%s", g->reason);
				continue;
			}
			work[nw++] = g;
			need_vfio = true;
		}
		if (nw == 0)
			break;
		if (need_vfio && preconditions(&e, true, err) < 0)
			goto out;
		br = busy_phase(&e, work, nw, err);
		if (br < 0)
			goto out;
		if (br == 1) { /* skipped GPUs: let the plan pick others */
			release_locks(&e);
			if (snap(&e, err) < 0)
				goto out;
			continue;
		}
		size_t ex_before = e.n_ex;
		for (size_t i = 0; i < nw; i++)
			if (work[i])
				bind_group(&e, work[i]);
		release_locks(&e);
		if (e.n_ex == ex_before) /* nothing stuck: no replacement to look for */
			break;
		if (snap(&e, err) < 0)
			goto out;
	}
	if (o->cfg && o->cfg->persist == VGP_PERSIST_UDEV) {
		_cleanup_error_ vgp_error_t uerr = NULL;
		if (udev_sync(&e, &uerr) < 0) {
			vgp_make_error(err, uerr->status, "%s", uerr->msg);
			goto out;
		}
	}
	if (e.wrote || !e.have) {
		if (snap(&e, err) < 0)
			goto out;
	}
	if (rep->n_failed > 0) {
		vgp_make_error(err, 0, "%zu GPU%s did not make it to vfio-pci", rep->n_failed,
			       rep->n_failed == 1 ? "" : "s");
		goto out;
	}
	if (e.plan.shortfall) {
		vgp_make_error(err, 0, "%s", e.plan.shortfall_msg ? e.plan.shortfall_msg : "fewer GPUs than wanted");
		goto out;
	}
	r = 0;
out:
	free(work);
	eng_handover(&e);
	eng_free(&e);
	return r;
}

/* ---------------------------------------------------------------------------------------------------- release */

struct rel_fn {
	char addr[VGP_ADDR_LEN];
	char orig[VGP_DRIVER_LEN];
	bool journaled;
};

/* Processes holding one of the group's VFIO nodes: /dev/vfio/<group>, and on an iommufd host the
 * /dev/vfio/devices/vfioN of each function (<host-root>/sys/bus/pci/devices/<addr>/vfio-dev/vfioN), matched by
 * device number. held gets "/dev/vfio/12 is open by pid 777 (qemu-kvm); ..." and *n the number of holders. */
static int
vfio_holders(struct eng *e, int group, const struct rel_fn *f, size_t nf, char *held, size_t len, size_t *n,
	     vgp_error_t *err)
{
	char node[PATH_LEN], dir[PATH_LEN], text[512];
	struct stat st;
	size_t off = 0;

	*n = 0;
	held[0] = '\0';
	for (size_t i = 0; i <= nf; i++) {
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		char rel[8][64]; /* host paths, without the host root */
		size_t nn = 0;

		if (i == nf) { /* the group node */
			if (group >= 0)
				snprintf(rel[nn++], sizeof rel[0], "/dev/vfio/%d", group);
		} else if (host_root_path(e, dir, "/sys/bus/pci/devices/%s/vfio-dev", f[i].addr) == 0 &&
			   (d = opendir(dir)) != NULL) {
			while ((de = readdir(d)) != NULL && nn < 8)
				if (strncmp(de->d_name, "vfio", 4) == 0 && strlen(de->d_name) < 40)
					snprintf(rel[nn++], sizeof rel[0], "/dev/vfio/devices/%s", de->d_name);
		}
		for (size_t k = 0; k < nn; k++) {
			_cleanup_free_ struct vgp_holder *h = NULL;
			size_t nh = 0;
			if (host_root_path(e, node, "%s", rel[k]) < 0 || stat(node, &st) < 0 || !S_ISCHR(st.st_mode))
				continue;
			if (vgp_rdev_holders(e->root, (unsigned long) st.st_rdev, &h, &nh, err) < 0)
				return -1;
			if (nh == 0)
				continue;
			holders_text(h, nh, text, sizeof text);
			off += (size_t) snprintf(held + off, off < len ? len - off : 0, "%s%s is open by %s",
						 off ? "; " : "", rel[k], text);
			if (off >= len)
				off = len - 1;
			*n += nh;
		}
	}
	return 0;
}

static void
release_group(struct eng *e, const char *gpu, bool force)
{
	_cleanup_free_ struct rel_fn *f = calloc(e->j.n + 16, sizeof *f);
	_cleanup_error_ vgp_error_t err = NULL;
	char why[MSG_LEN * 2] = "", held[512];
	_cleanup_free_ char (*gone)[VGP_ADDR_LEN] = NULL;
	size_t nf = 0, ngone = 0;
	int group = -1;
	long t0 = now_ms();
	bool stuck_any = false, ok = true;

	if (f == NULL) {
		result_add(e, gpu, "", VGP_OUT_FAILED, 0, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < e->j.n; i++) {
		const struct vgp_journal_entry *je = &e->j.e[i];
		char cur[VGP_DRIVER_LEN];
		if (strcmp(je->gpu, gpu) != 0 || je->state != VGP_J_STUCK)
			continue;
		dev_driver(e, je->addr, cur);
		if (!dev_exists(e, je->addr) || strcmp(cur, je->orig_driver) == 0) {
			/* its unbind still waits in the kernel, holding the device lock: any write (even the clearing of
			 * driver_override) would hang this process too, --force or not */
			result_add(e, gpu, "", VGP_OUT_STUCK, 0, 0, "%s: stuck: a reboot is needed (the unbind of %s never "
				   "returned; nothing is written to it)", gpu, je->addr);
			return;
		}
	}
	for (size_t i = 0; i < e->j.n; i++)
		if (strcmp(e->j.e[i].gpu, gpu) == 0) {
			snprintf(f[nf].addr, VGP_ADDR_LEN, "%s", e->j.e[i].addr);
			snprintf(f[nf].orig, VGP_DRIVER_LEN, "%s", e->j.e[i].orig_driver);
			f[nf].journaled = true;
			group = e->j.e[i].group;
			nf++;
		}
	{
		/* functions of the same card on vfio-pci that the journal does not know (on vfio-pci before us, e.g.
		 * vfio-pci.ids) leave too, to whatever driver a plain probe gives: no group stays half on vfio */
		const struct vgp_pci_dev *d = vgp_inventory_find(&e->inv, gpu);
		char cur[VGP_DRIVER_LEN];
		if (nf == 0 && (d == NULL || !dev_exists(e, gpu))) {
			result_add(e, gpu, "", VGP_OUT_FAILED, 0, 0, "%s: no such PCI device", gpu);
			return;
		}
		if (d && group < 0)
			group = d->iommu_group;
		for (size_t i = 0; d && i < e->inv.n && nf < e->j.n + 16; i++) {
			const struct vgp_pci_dev *o = &e->inv.devs[i];
			bool listed = false;
			if (strcmp(o->addr, gpu) != 0 && !(group >= 0 && o->iommu_group == group &&
							   vgp_same_card(gpu, o->addr)))
				continue;
			for (size_t k = 0; k < nf; k++)
				listed |= strcmp(f[k].addr, o->addr) == 0;
			dev_driver(e, o->addr, cur);
			if (listed || !vgp_driver_is_vfio(cur))
				continue;
			snprintf(f[nf].addr, VGP_ADDR_LEN, "%s", o->addr);
			nf++;
		}
		if (nf == 0) {
			dev_driver(e, gpu, cur);
			result_add(e, gpu, "", VGP_OUT_RELEASED, 0, 0, "%s: nothing to release: on %s, not passed through",
				   gpu, cur[0] ? cur : "no driver");
			return;
		}
	}
	/* a running VM holds /dev/vfio/<group>, or on an iommufd host /dev/vfio/devices/vfioN of a function */
	{
		size_t nh = 0;
		if (vfio_holders(e, group, f, nf, held, sizeof held, &nh, &err) < 0) {
			result_add(e, gpu, "", VGP_OUT_FAILED, 0, nf, "%s: holders of its VFIO nodes: %s", gpu, err->msg);
			return;
		}
		if (nh > 0) {
			if (!force) {
				result_add(e, gpu, "", VGP_OUT_REFUSED, now_ms() - t0, nf,
					   "%s: %s (a running VM?): refused; stop it first or use --force", gpu, held);
				return;
			}
			log_warn("%s: %s; releasing anyway (--force)", gpu, held);
		}
	}
	if (preconditions(e, false, &err) < 0) {
		result_add(e, gpu, "", VGP_OUT_FAILED, 0, nf, "%s", err->msg);
		return;
	}
	for (size_t i = 0; i < nf; i++)
		if (f[i].journaled)
			jstate(e, f[i].addr, VGP_J_RELEASING);
	if (jsave(e, &err) < 0) {
		result_add(e, gpu, "", VGP_OUT_FAILED, 0, nf, "%s: step journal: %s", gpu, err->msg);
		return;
	}
	for (size_t i = 0; i < nf; i++) {
		bool stuck = false;
		vgp_error_release(&err);
		if (restore_fn(e, f[i].addr, f[i].orig, !f[i].journaled, &stuck, &err) < 0) {
			size_t l = strlen(why);
			snprintf(why + l, sizeof why - l, "%s%s", l ? "; " : "", err->msg);
			ok = false;
			if (stuck) {
				stuck_any = true;
				jstate(e, f[i].addr, VGP_J_STUCK);
			}
			continue;
		}
		if (f[i].journaled)
			vgp_journal_remove(&e->j, f[i].addr);
		list_add(&gone, &ngone, f[i].addr);
	}
	vgp_error_release(&err);
	if (jsave(e, &err) < 0) {
		size_t l = strlen(why);
		snprintf(why + l, sizeof why - l, "%s%s", l ? "; " : "", err->msg);
		ok = false;
		vgp_error_release(&err);
	}
	if (ngone && udev_drop(e, gone, ngone, &err) < 0) {
		size_t l = strlen(why);
		snprintf(why + l, sizeof why - l, "%s%s", l ? "; " : "", err->msg);
		ok = false;
	}
	long ms = now_ms() - t0;
	if (ok) {
		char drv[VGP_DRIVER_LEN];
		dev_driver(e, gpu, drv);
		log_info("released %s (%zu function%s) to %s in %ld ms", gpu, nf, nf == 1 ? "" : "s",
			 drv[0] ? drv : "no driver", ms);
		result_add(e, gpu, "", VGP_OUT_RELEASED, ms, nf, "back on %s", drv[0] ? drv : "no driver");
	} else {
		result_add(e, gpu, "", stuck_any ? VGP_OUT_STUCK : VGP_OUT_FAILED, ms, nf, "%s", why);
	}
}

int
vgp_release(const struct vgp_engine_opts *o, const char *const *addrs, size_t n, bool force,
	    struct vgp_engine_report *rep, vgp_error_t *err)
{
	struct eng e;
	_cleanup_free_ char (*gpus)[VGP_ADDR_LEN] = NULL;
	size_t ng = 0;
	int r = -1;

	if (eng_init(&e, o, rep, err) < 0)
		goto out;
	if (scan_node(&e, &e.inv, err) < 0)
		goto out;
	memset(&e.plan, 0, sizeof e.plan);
	e.have = false; /* the inventory only: freed below */
	if (n == 0) {
		for (size_t i = 0; i < e.j.n; i++)
			if (list_add(&gpus, &ng, e.j.e[i].gpu) < 0) {
				vgp_make_error(err, ENOMEM, "release");
				goto out;
			}
		if (ng == 0)
			log_info("release: the journal %s lists no GPU", e.state);
	}
	for (size_t i = 0; i < n; i++) {
		char a[VGP_ADDR_LEN];
		struct vgp_journal_entry *je;
		if (vgp_addr_normalize(addrs[i], a) < 0) {
			vgp_make_usage_error(err, "release: '%s' is not a PCI address (DDDD:BB:DD.F)", addrs[i]);
			goto out;
		}
		je = vgp_journal_find(&e.j, a);
		if (list_add(&gpus, &ng, je ? je->gpu : a) < 0) {
			vgp_make_error(err, ENOMEM, "release");
			goto out;
		}
	}
	for (size_t i = 0; i < ng; i++)
		release_group(&e, gpus[i], force);
	for (size_t i = 0; i < e.inv.n; i++)
		if (vgp_dev_is_display(&e.inv.devs[i]))
			release_stale_lock(&e, e.inv.devs[i].addr);
	if (rep->n_failed > 0) {
		vgp_make_error(err, 0, "%zu GPU%s not released", rep->n_failed, rep->n_failed == 1 ? "" : "s");
		goto out;
	}
	r = 0;
out:
	vgp_inventory_free(&e.inv);
	memset(&e.inv, 0, sizeof e.inv);
	eng_free(&e);
	return r;
}

void
vgp_engine_report_free(struct vgp_engine_report *rep)
{
	if (rep == NULL)
		return;
	for (size_t i = 0; i < rep->n; i++)
		free(rep->r[i].msg);
	free(rep->r);
	if (rep->have_plan) {
		vgp_plan_free(&rep->plan);
		vgp_inventory_free(&rep->inv);
	}
	memset(rep, 0, sizeof *rep);
}
