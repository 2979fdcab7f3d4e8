/* test_health.c — the device-health watcher (plugin/health.c, health_events.c) on fixture trees: inotify on
 * dev/vfio, kernel uevents (sent inside a private network namespace only), reconcile, reasons. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "util.h"

#define WAIT_MS 5000

static char root[64];

static void
mkpath(const char *fmt, ...)
{
	char rel[512], path[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	snprintf(path, sizeof path, "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	}
	cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

static void
rootpath(char *buf, size_t len, const char *fmt, ...)
{
	char rel[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	snprintf(buf, len, "%s/%s", root, rel);
}

/* Point <addr>'s driver link at driver d (NULL: unbound), as the kernel would on bind/unbind. */
static void
set_driver(const char *addr, const char *d)
{
	char link[1024], target[256];

	rootpath(link, sizeof link, "sys/devices/pci0000:00/%s/driver", addr);
	unlink(link);
	if (d == NULL)
		return;
	mkpath("sys/bus/pci/drivers/%s", d);
	snprintf(target, sizeof target, "../../../bus/pci/drivers/%s", d);
	cr_assert(symlink(target, link) == 0, "symlink %s: %s", link, strerror(errno));
}

static void
add_dev(const char *addr, const char *d)
{
	char link[1024], target[256];

	mkpath("sys/devices/pci0000:00/%s", addr);
	mkpath("sys/bus/pci/devices");
	rootpath(link, sizeof link, "sys/bus/pci/devices/%s", addr);
	snprintf(target, sizeof target, "../../../devices/pci0000:00/%s", addr);
	cr_assert(symlink(target, link) == 0, "symlink %s: %s", link, strerror(errno));
	set_driver(addr, d);
}

static void
remove_dev(const char *addr)
{
	char p[1024];

	set_driver(addr, NULL);
	rootpath(p, sizeof p, "sys/bus/pci/devices/%s", addr);
	cr_assert(unlink(p) == 0);
	rootpath(p, sizeof p, "sys/devices/pci0000:00/%s", addr);
	cr_assert(rmdir(p) == 0, "rmdir %s: %s", p, strerror(errno));
}

static void
add_node(int g)
{
	char p[1024];
	int fd;

	mkpath("dev/vfio");
	rootpath(p, sizeof p, "dev/vfio/%d", g);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "create %s: %s", p, strerror(errno));
	close(fd);
}

static void
del_node(int g)
{
	char p[1024];

	rootpath(p, sizeof p, "dev/vfio/%d", g);
	cr_assert(unlink(p) == 0, "unlink %s: %s", p, strerror(errno));
}

/* The standard fixture: GPU A 0000:61:00.0 + audio 0000:61:00.1 in group 12, GPU B 0000:62:00.0 + audio in
 * group 13, all on vfio-pci, and an unrelated NIC 0000:99:00.0 on ixgbe. */
static char *members_a[] = { "0000:61:00.0", "0000:61:00.1" };
static char *members_b[] = { "0000:62:00.0", "0000:62:00.1" };
static const struct vgp_health_dev devs2[] = {
	{ "0000:61:00.0", 12, members_a, 2 },
	{ "0000:62:00.0", 13, members_b, 2 },
};

static void
setup(void)
{
	char tmpl[] = "/tmp/vgp-health.XXXXXX";

	vgp_log_level = VGP_LOG_ERROR;
	cr_assert(mkdtemp(tmpl) != NULL);
	snprintf(root, sizeof root, "%s", tmpl);
	mkpath("sys/bus/pci/drivers/vfio-pci");
	mkpath("dev/vfio");
	add_node(0); /* never a served group: just noise in the directory */
	add_dev("0000:61:00.0", "vfio-pci");
	add_dev("0000:61:00.1", "vfio-pci");
	add_dev("0000:62:00.0", "vfio-pci");
	add_dev("0000:62:00.1", "vfio-pci");
	add_dev("0000:99:00.0", "ixgbe");
	add_node(12);
	add_node(13);
}

static void
teardown(void)
{
	char cmd[256];

	if (root[0] != '\0') {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", root);
	}
}

/* valgrind puts its preload libraries into the client's environment */
static bool
under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p != NULL && strstr(p, "vgpreload") != NULL;
}

static void
enter_netns(void)
{
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
}

static struct vgp_health *
open_health(const struct vgp_health_dev *devs, size_t n)
{
	_cleanup_error_ vgp_error_t err = NULL;
	struct vgp_health *h = NULL;

	cr_assert(vgp_health_open(&h, root, devs, n, &err) == 0, "open: %s", err ? vgp_error_text(err) : "?");
	cr_assert_not_null(h);
	return h;
}

/* fd of the kind asked for: 0 = inotify, 1 = uevent socket. */
static int
health_fd(struct vgp_health *h, int which)
{
	int fds[4];
	int n = vgp_health_fds(h, fds, 4);

	cr_assert(n > which, "health has %d descriptors, wanted #%d", n, which);
	return fds[which];
}

/* Wait (generously) until fd is readable, then process it. */
static int
wait_process(struct vgp_health *h, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	cr_assert(poll(&p, 1, WAIT_MS) == 1, "no event within %d ms", WAIT_MS);
	return vgp_health_process(h, fd);
}

/* Process events until device i has the wanted health or the deadline passes; returns the total changes. */
static int
wait_health(struct vgp_health *h, int fd, size_t i, bool want)
{
	int total = 0;

	for (int k = 0; k < 50 && vgp_health_get(h, i, NULL, 0) != want; k++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, WAIT_MS / 10) == 1) {
			int r = vgp_health_process(h, fd);
			cr_assert(r >= 0);
			total += r;
		}
	}
	cr_assert(vgp_health_get(h, i, NULL, 0) == want, "device %zu did not turn %s", i,
		  want ? "Healthy" : "Unhealthy");
	return total;
}

/* Send one kernel-format PCI uevent to multicast group 1, claiming uid (SCM_CREDENTIALS) when uid >= 0. */
static void
send_uevent_full(const char *action, const char *subsystem, const char *slot, const char *driver, int uid)
{
	char msg[1024], cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct sockaddr_nl dst = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	struct sockaddr_nl src = { .nl_family = AF_NETLINK };
	size_t len = 0;
	int fd;

#define PUT(...) len += (size_t) snprintf(msg + len, sizeof msg - len, __VA_ARGS__) + 1
	PUT("%s@/devices/pci0000:00/%s", action, slot);
	PUT("ACTION=%s", action);
	PUT("DEVPATH=/devices/pci0000:00/%s", slot);
	PUT("SUBSYSTEM=%s", subsystem);
	if (driver)
		PUT("DRIVER=%s", driver);
	PUT("PCI_CLASS=30200");
	PUT("PCI_SLOT_NAME=%s", slot);
	PUT("SEQNUM=4242");
#undef PUT
	cr_assert(len < sizeof msg);

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	cr_assert(fd >= 0, "netlink socket: %s", strerror(errno));
	cr_assert(bind(fd, (struct sockaddr *) &src, sizeof src) == 0);
	struct iovec iov = { .iov_base = msg, .iov_len = len };
	struct msghdr mh = { .msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &iov, .msg_iovlen = 1 };
	if (uid >= 0) {
		struct ucred cr = { .pid = getpid(), .uid = (uid_t) uid, .gid = (gid_t) uid };
		memset(cbuf, 0, sizeof cbuf);
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof cbuf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof cr);
		memcpy(CMSG_DATA(c), &cr, sizeof cr);
	}
	cr_assert(sendmsg(fd, &mh, 0) == (ssize_t) len, "send uevent: %s", strerror(errno));
	close(fd);
}

static void
send_uevent(const char *action, const char *slot, const char *driver)
{
	send_uevent_full(action, "pci", slot, driver, -1);
}

static void
assert_state(struct vgp_health *h, size_t i, bool healthy, const char *why_want)
{
	char why[256];
	bool got = vgp_health_get(h, i, why, sizeof why);

	cr_assert(got == healthy, "device %zu: healthy=%d, want %d (why '%s')", i, got, healthy, why);
	cr_assert_str_eq(why, why_want);
}

TestSuite(health, .init = setup, .fini = teardown, .timeout = 60);

Test(health, initial_state_is_a_full_check)
{
	set_driver("0000:62:00.0", "nvidia");
	struct vgp_health *h = open_health(devs2, 2);
	assert_state(h, 0, true, "");
	assert_state(h, 1, false, "driver is nvidia, not vfio-pci");
	cr_assert_eq(vgp_health_reconcile(h), 0);
	char why[8];
	cr_assert_not(vgp_health_get(h, 7, why, sizeof why)); /* out of range: never healthy */
	vgp_health_close(h);
}

Test(health, reasons_for_each_failure)
{
	static char *m_c[] = { "0000:63:00.0" };
	const struct vgp_health_dev devs[] = {
		{ "0000:61:00.0", 12, members_a, 2 },
		{ "0000:62:00.0", 13, members_b, 2 },
		{ "63:00.0", 14, m_c, 1 },          /* short form is normalised */
		{ "0000:64:00.0", 15, NULL, 0 },    /* no members given: the GPU itself still counts */
	};
	add_dev("0000:63:00.0", "vfio-pci");
	add_dev("0000:64:00.0", NULL);
	add_node(15);
	remove_dev("0000:62:00.0");
	struct vgp_health *h = open_health(devs, 4);
	assert_state(h, 0, true, "");
	assert_state(h, 1, false, "device 0000:62:00.0 is gone");
	assert_state(h, 2, false, "/dev/vfio/14 is missing");
	assert_state(h, 3, false, "no driver bound, not vfio-pci");
	vgp_health_close(h);
}

Test(health, invalid_address_is_refused)
{
	const struct vgp_health_dev bad[] = { { "not-an-addr", 1, NULL, 0 } };
	_cleanup_error_ vgp_error_t err = NULL;
	struct vgp_health *h = (struct vgp_health *) 1;

	cr_assert_eq(vgp_health_open(&h, root, bad, 1, &err), -1);
	cr_assert_null(h);
	cr_assert_not_null(err);
	cr_assert_eq(vgp_error_exit_code(err), 2);
}

Test(health, inotify_remove_and_recreate_node)
{
	struct vgp_health *h = open_health(devs2, 2);
	int ifd = health_fd(h, 0);

	del_node(12);
	cr_assert_eq(wait_process(h, ifd), 1);
	assert_state(h, 0, false, "/dev/vfio/12 is missing");
	assert_state(h, 1, true, "");

	add_node(12);
	cr_assert_eq(wait_process(h, ifd), 1);
	assert_state(h, 0, true, "");
	assert_state(h, 1, true, "");

	/* an event for a group nobody serves changes nothing */
	del_node(0);
	cr_assert_eq(wait_process(h, ifd), 0);
	cr_assert_eq(vgp_health_process(h, ifd), 0); /* nothing pending: drains nothing, no error */
	vgp_health_close(h);
}

Test(health, inotify_rename_into_place)
{
	char tmp[1024], dst[1024];
	struct vgp_health *h = open_health(devs2, 2);
	int ifd = health_fd(h, 0);

	del_node(13);
	cr_assert_eq(wait_process(h, ifd), 1);
	assert_state(h, 1, false, "/dev/vfio/13 is missing");
	rootpath(tmp, sizeof tmp, "dev/vfio/.tmp13");
	rootpath(dst, sizeof dst, "dev/vfio/13");
	int fd = open(tmp, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert(rename(tmp, dst) == 0);
	wait_health(h, ifd, 1, true);
	assert_state(h, 1, true, "");
	vgp_health_close(h);
}

Test(health, two_gpus_in_one_group_both_rechecked)
{
	static char *m[] = { "0000:61:00.0", "0000:61:00.1", "0000:62:00.0", "0000:62:00.1" };
	const struct vgp_health_dev devs[] = {
		{ "0000:61:00.0", 12, m, 4 },
		{ "0000:62:00.0", 12, m, 4 },
	};
	struct vgp_health *h = open_health(devs, 2);
	int ifd = health_fd(h, 0);

	del_node(12);
	cr_assert_eq(wait_process(h, ifd), 2);
	assert_state(h, 0, false, "/dev/vfio/12 is missing");
	assert_state(h, 1, false, "/dev/vfio/12 is missing");
	add_node(12);
	cr_assert_eq(wait_process(h, ifd), 2);
	vgp_health_close(h);
}

Test(health, vfio_directory_removed_and_recreated)
{
	char p[1024];
	struct vgp_health *h = open_health(devs2, 2);
	int ifd = health_fd(h, 0);

	del_node(0);
	del_node(12);
	del_node(13);
	rootpath(p, sizeof p, "dev/vfio");
	cr_assert(rmdir(p) == 0);
	wait_health(h, ifd, 1, false);
	assert_state(h, 0, false, "/dev/vfio/12 is missing");
	assert_state(h, 1, false, "/dev/vfio/13 is missing");

	/* the directory comes back (vfio reloaded): the watch follows it */
	mkpath("dev/vfio");
	add_node(12);
	wait_health(h, ifd, 0, true);
	add_node(13);
	wait_health(h, ifd, 1, true);
	vgp_health_close(h);
}

Test(health, vfio_directory_absent_at_open)
{
	char p[1024];

	del_node(0);
	del_node(12);
	del_node(13);
	rootpath(p, sizeof p, "dev/vfio");
	cr_assert(rmdir(p) == 0);
	struct vgp_health *h = open_health(devs2, 2);
	int ifd = health_fd(h, 0);
	assert_state(h, 0, false, "/dev/vfio/12 is missing");

	mkpath("dev/vfio");
	add_node(12);
	wait_health(h, ifd, 0, true);
	vgp_health_close(h);
}

Test(health, reconcile_catches_silent_driver_change)
{
	struct vgp_health *h = open_health(devs2, 2);

	set_driver("0000:61:00.0", "nvidia");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, false, "driver is nvidia, not vfio-pci");
	assert_state(h, 1, true, "");
	cr_assert_eq(vgp_health_reconcile(h), 0);
	set_driver("0000:61:00.0", "vfio-pci");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, true, "");
	vgp_health_close(h);
}

Test(health, variant_driver_is_healthy)
{
	set_driver("0000:61:00.0", "nvgrace_gpu_vfio_pci");
	set_driver("0000:62:00.0", "mlx5_vfio_pci");
	struct vgp_health *h = open_health(devs2, 2);
	assert_state(h, 0, true, "");
	assert_state(h, 1, true, "");
	set_driver("0000:62:00.0", "vfio");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 1, false, "driver is vfio, not vfio-pci");
	vgp_health_close(h);
}

Test(health, uevent_unbind_and_bind_while_node_stays)
{
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	cr_assert_eq(vgp_health_fds(h, (int[4]){ 0 }, 4), 2);
	int nfd = health_fd(h, 1);

	/* the GPU function alone leaves vfio-pci: its audio keeps dev/vfio/12 alive */
	set_driver("0000:61:00.0", NULL);
	send_uevent("unbind", "0000:61:00.0", NULL);
	set_driver("0000:61:00.0", "nvidia");
	send_uevent("bind", "0000:61:00.0", "nvidia");
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 0, false, "driver is nvidia, not vfio-pci");
	assert_state(h, 1, true, "");

	set_driver("0000:61:00.0", "vfio-pci");
	send_uevent("bind", "0000:61:00.0", "vfio-pci");
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 0, true, "");
	vgp_health_close(h);
}

Test(health, uevent_for_member_rechecks_its_gpu)
{
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	int nfd = health_fd(h, 1);

	set_driver("0000:62:00.0", "nvidia"); /* silently */
	send_uevent("unbind", "0000:62:00.1", NULL);
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 1, false, "driver is nvidia, not vfio-pci");
	assert_state(h, 0, true, "");
	vgp_health_close(h);
}

Test(health, uevent_unrelated_or_foreign_changes_nothing)
{
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	int nfd = health_fd(h, 1);

	set_driver("0000:61:00.0", "nvidia"); /* silently: only a matching uevent or the reconcile sees it */
	send_uevent("unbind", "0000:99:00.0", NULL);                     /* another device */
	send_uevent_full("bind", "usb", "0000:61:00.0", "nvidia", -1);    /* not pci */
	send_uevent("change", "0000:61:00.0", NULL);                     /* not an action we follow */
	cr_assert_eq(wait_process(h, nfd), 0);
	assert_state(h, 0, true, "");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, false, "driver is nvidia, not vfio-pci");
	vgp_health_close(h);
}

Test(health, uevent_remove_and_add)
{
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	int nfd = health_fd(h, 1);

	remove_dev("0000:62:00.0");
	send_uevent("remove", "0000:62:00.0", NULL);
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 1, false, "device 0000:62:00.0 is gone");

	add_dev("0000:62:00.0", "vfio-pci");
	send_uevent("add", "0000:62:00.0", NULL);
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 1, true, "");
	vgp_health_close(h);
}

Test(health, uevent_from_non_root_sender_is_ignored)
{
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	int nfd = health_fd(h, 1);

	set_driver("0000:61:00.0", "nvidia");
	/* a process claiming uid 65534 (as any unprivileged process in the namespace would be) */
	send_uevent_full("unbind", "pci", "0000:61:00.0", NULL, 65534);
	cr_assert_eq(wait_process(h, nfd), 0);
	assert_state(h, 0, true, "");

	/* the same from an unprivileged child that really dropped its uid, when it may still send (not under
	 * valgrind: a setuid child cannot clean up valgrind's files) */
	pid_t pid = under_valgrind() ? -2 : fork();
	if (pid == -2)
		goto root_event;
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		int fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT);
		struct sockaddr_nl dst = { .nl_family = AF_NETLINK, .nl_groups = 1 };
		char msg[] = "bind@/devices/pci0000:00/0000:61:00.0\0ACTION=bind\0SUBSYSTEM=pci\0"
			     "PCI_SLOT_NAME=0000:61:00.0";
		if (fd < 0 || sendto(fd, msg, sizeof msg, 0, (struct sockaddr *) &dst, sizeof dst) < 0)
			_exit(4); /* the kernel refuses unprivileged multicast sends: fine too */
		_exit(0);
	}
	int st;
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 3);
	if (WEXITSTATUS(st) == 0)
		cr_assert_eq(wait_process(h, nfd), 0);
	assert_state(h, 0, true, "");

root_event:
	/* the kernel's (root) event is taken */
	send_uevent("unbind", "0000:61:00.0", NULL);
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 0, false, "driver is nvidia, not vfio-pci");
	vgp_health_close(h);
}

Test(health, uevent_py_helper_drives_health)
{
	const char *py = "test/sim/uevent.py";
	char cmd[512];

	if (under_valgrind()) /* --trace-children would run python under valgrind: slow, and not our code */
		cr_skip_test("python helper not run under valgrind");
	if (access(py, R_OK) != 0)
		cr_skip_test("%s not found from %s (run from the repository root)", py, getcwd(cmd, sizeof cmd));
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	int nfd = health_fd(h, 1);

	set_driver("0000:61:00.0", NULL);
	snprintf(cmd, sizeof cmd, "python3 %s unbind /devices/pci0000:00/0000:61:00.0 0000:61:00.0", py);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 0, false, "no driver bound, not vfio-pci");

	/* a non-root claim through the helper is ignored */
	set_driver("0000:61:00.0", "vfio-pci");
	snprintf(cmd, sizeof cmd, "python3 %s --uid 65534 bind /devices/pci0000:00/0000:61:00.0 0000:61:00.0 vfio-pci",
		 py);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(wait_process(h, nfd), 0);
	assert_state(h, 0, false, "no driver bound, not vfio-pci");

	snprintf(cmd, sizeof cmd, "python3 %s bind /devices/pci0000:00/0000:61:00.0 0000:61:00.0 vfio-pci", py);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(wait_process(h, nfd), 1);
	assert_state(h, 0, true, "");
	vgp_health_close(h);
}

Test(health, process_rejects_foreign_fd)
{
	struct vgp_health *h = open_health(devs2, 2);
	int p[2];

	cr_assert(pipe(p) == 0);
	cr_assert_eq(vgp_health_process(h, p[0]), -1);
	cr_assert_eq(vgp_health_process(h, -1), -1);
	close(p[0]);
	close(p[1]);
	vgp_health_close(h);
	vgp_health_close(NULL);
}

Test(health, many_devices_only_affected_rechecked)
{
	enum { N = 64 };
	struct vgp_health_dev devs[N];
	char addrs[N][2][16];
	char *mem[N][2];

	for (int i = 0; i < N; i++) {
		snprintf(addrs[i][0], 16, "0000:%02x:00.0", 0xa0 + i);
		snprintf(addrs[i][1], 16, "0000:%02x:00.1", 0xa0 + i);
		add_dev(addrs[i][0], "vfio-pci");
		add_dev(addrs[i][1], "vfio-pci");
		add_node(100 + i);
		mem[i][0] = addrs[i][0];
		mem[i][1] = addrs[i][1];
		memcpy(devs[i].addr, addrs[i][0], sizeof devs[i].addr);
		devs[i].group = 100 + i;
		devs[i].members = mem[i];
		devs[i].n_members = 2;
	}
	struct vgp_health *h = open_health(devs, N);
	for (int i = 0; i < N; i++)
		cr_assert(vgp_health_get(h, (size_t) i, NULL, 0));
	/* silently break every GPU; an event for group 140 must re-check only GPU 40 */
	for (int i = 0; i < N; i++)
		set_driver(addrs[i][0], "nvidia");
	del_node(140);
	cr_assert_eq(wait_process(h, health_fd(h, 0)), 1);
	for (int i = 0; i < N; i++)
		cr_assert_eq(vgp_health_get(h, (size_t) i, NULL, 0), i != 40, "device %d", i);
	cr_assert_eq(vgp_health_reconcile(h), N - 1);
	vgp_health_close(h);
}

/* The group must stay viable for VFIO as the kernel judges it: every other member on a vfio driver, pci-stub,
 * pcieport or no driver at all. */
Test(health, member_on_host_driver_makes_group_not_viable)
{
	struct vgp_health *h = open_health(devs2, 2);

	/* the audio function re-bound to its host driver: dev/vfio/12 stays (the GPU is still on vfio-pci) */
	set_driver("0000:61:00.1", "snd_hda_intel");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, false, "group 12 is not viable: 0000:61:00.1 is on snd_hda_intel");
	assert_state(h, 1, true, "");

	/* unbound: no driver claims the group's DMA, the group is viable again */
	set_driver("0000:61:00.1", NULL);
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, true, "");

	/* pci-stub and pcieport are allowed in a viable group */
	set_driver("0000:61:00.1", "pci-stub");
	cr_assert_eq(vgp_health_reconcile(h), 0);
	assert_state(h, 0, true, "");
	set_driver("0000:61:00.1", "pcieport");
	cr_assert_eq(vgp_health_reconcile(h), 0);
	assert_state(h, 0, true, "");

	set_driver("0000:61:00.1", "snd_hda_intel");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	set_driver("0000:61:00.1", "vfio-pci");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, true, "");
	set_driver("0000:61:00.1", "nvgrace_gpu_vfio_pci"); /* a variant counts as vfio */
	cr_assert_eq(vgp_health_reconcile(h), 0);
	assert_state(h, 0, true, "");
	vgp_health_close(h);
}

Test(health, group_viability_checks_every_member)
{
	/* a bridge on pcieport, an unbound function, and another GPU of the same group (the short form of its
	 * address is normalised); the GPU's own address among its members is not a second check of it */
	static char *m[] = { "0000:60:01.0", "0000:61:00.0", "0000:61:00.1", "0000:61:00.2", "62:00.0" };
	const struct vgp_health_dev devs[] = { { "0000:61:00.0", 12, m, 5 } };
	add_dev("0000:60:01.0", "pcieport");
	add_dev("0000:61:00.2", NULL);
	struct vgp_health *h = open_health(devs, 1);
	assert_state(h, 0, true, "");

	set_driver("0000:62:00.0", "nvidia");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, false, "group 12 is not viable: 0000:62:00.0 is on nvidia");
	set_driver("0000:62:00.0", "vfio-pci");
	set_driver("0000:61:00.2", "xhci_hcd");
	cr_assert_eq(vgp_health_reconcile(h), 0); /* still Unhealthy, for another member */
	assert_state(h, 0, false, "group 12 is not viable: 0000:61:00.2 is on xhci_hcd");
	/* the GPU's own driver comes first in the reasons */
	set_driver("0000:61:00.0", "nvidia");
	cr_assert_eq(vgp_health_reconcile(h), 0);
	assert_state(h, 0, false, "driver is nvidia, not vfio-pci");
	set_driver("0000:61:00.0", "vfio-pci");

	/* a member that fell off the bus is no longer in the group (the kernel drops it): viable */
	remove_dev("0000:61:00.2");
	cr_assert_eq(vgp_health_reconcile(h), 1);
	assert_state(h, 0, true, "");
	vgp_health_close(h);
}

Test(health, uevent_member_rebound_turns_gpu_unhealthy)
{
	enter_netns();
	struct vgp_health *h = open_health(devs2, 2);
	int nfd = health_fd(h, 1);

	/* only the audio function moves: the GPU's driver link and dev/vfio/13 stay, the uevent alone tells */
	set_driver("0000:62:00.1", NULL);
	send_uevent("unbind", "0000:62:00.1", NULL);
	set_driver("0000:62:00.1", "snd_hda_intel");
	send_uevent("bind", "0000:62:00.1", "snd_hda_intel");
	wait_health(h, nfd, 1, false);
	assert_state(h, 1, false, "group 13 is not viable: 0000:62:00.1 is on snd_hda_intel");
	assert_state(h, 0, true, "");

	set_driver("0000:62:00.1", NULL);
	send_uevent("unbind", "0000:62:00.1", NULL);
	set_driver("0000:62:00.1", "vfio-pci");
	send_uevent("bind", "0000:62:00.1", "vfio-pci");
	wait_health(h, nfd, 1, true);
	assert_state(h, 1, true, "");
	vgp_health_close(h);
}
