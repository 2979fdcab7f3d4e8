/* test_nvidia_signal.c — finding NVIDIA's device plugin by its listening socket and sending it SIGHUP
 * (plugin/nvidia_signal.c), with real processes: one listening on <dir>/nvidia-gpu.sock (must get SIGHUP) and
 * decoys that must not (a listener on another socket of the directory, a listener on nvidia-gpu.sock of another
 * directory, a client connected to the real one). Real /proc; and a fixture proc tree (host-root prefix) that points
 * at a real process. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nvidia_signal.h"

struct kid {
	pid_t pid;
	int rd; /* 'R' when ready, 'H' when it got SIGHUP */
};

enum role { LISTEN, CONNECT, PLAIN };

static char dir[64];

static int
unix_sock(const char *path, enum role r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (r == LISTEN)
		return bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0 && listen(fd, 4) == 0 ? fd : -1;
	return connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0 ? fd : -1;
}

/* A child that holds a socket (r) on path and reports SIGHUP on its pipe; lives at most 20 s. */
static struct kid
spawn(const char *path, enum role r)
{
	int p[2];
	struct kid k;
	cr_assert_eq(pipe(p), 0);
	k.pid = fork();
	cr_assert_geq(k.pid, 0);
	if (k.pid == 0) {
		sigset_t m;
		siginfo_t si;
		struct timespec ts = { 20, 0 };
		sigemptyset(&m);
		sigaddset(&m, SIGHUP);
		sigprocmask(SIG_BLOCK, &m, NULL);
		close(p[0]);
		if (r != PLAIN && unix_sock(path, r) < 0)
			_exit(3);
		if (write(p[1], "R", 1) != 1)
			_exit(4);
		if (sigtimedwait(&m, &si, &ts) == SIGHUP && write(p[1], "H", 1) != 1)
			_exit(5);
		_exit(0);
	}
	close(p[1]);
	k.rd = p[0];
	char c = 0;
	cr_assert_eq(read(k.rd, &c, 1), 1, "child for %s did not start", path);
	cr_assert_eq(c, 'R');
	return k;
}

static bool
got_hup(struct kid *k, int wait_ms)
{
	struct pollfd pf = { .fd = k->rd, .events = POLLIN };
	char c = 0;
	return poll(&pf, 1, wait_ms) == 1 && read(k->rd, &c, 1) == 1 && c == 'H';
}

static void
reap(struct kid *k)
{
	kill(k->pid, SIGKILL);
	waitpid(k->pid, NULL, 0);
	close(k->rd);
}

static void
mk(const char *sub)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", dir, sub);
	cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s: %s", p, strerror(errno));
}

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/vgp-nv.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	mk("kubelet");
	mk("other");
}

static void
teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

Test(nvidia_signal, only_the_listener_of_our_nvidia_socket, .init = setup, .fini = teardown)
{
	char kdir[96], p_nv[128], p_ours[128], p_other[128], msg[1024];
	vgp_error_t err = NULL;
	struct vgp_nvidia_listener *l = NULL;

	snprintf(kdir, sizeof kdir, "%s/kubelet", dir);
	snprintf(p_nv, sizeof p_nv, "%s/nvidia-gpu.sock", kdir);
	snprintf(p_ours, sizeof p_ours, "%s/vfio-gpu-AD102GL_L40S.sock", kdir);
	snprintf(p_other, sizeof p_other, "%s/other/nvidia-gpu.sock", dir);
	struct kid nv = spawn(p_nv, LISTEN);
	struct kid ours = spawn(p_ours, LISTEN);
	struct kid other = spawn(p_other, LISTEN);
	struct kid client = spawn(p_nv, CONNECT);

	int n = vgp_nvidia_listeners("/", kdir, &l, &err);
	cr_assert_eq(n, 1, "%d listeners: %s", n, err ? vgp_error_text(err) : "");
	cr_assert_eq(l[0].pid, nv.pid);
	cr_assert_str_eq(l[0].socket, p_nv);
	free(l);

	cr_assert_eq(vgp_nvidia_signal("/", kdir, msg, sizeof msg, &err), 1, "%s", msg);
	char want[256];
	snprintf(want, sizeof want, "SIGHUP sent to pid %d (", (int) nv.pid);
	cr_assert_not_null(strstr(msg, want), "%s", msg);
	cr_assert_not_null(strstr(msg, p_nv), "%s", msg);
	cr_assert(got_hup(&nv, 5000), "the NVIDIA plugin's listener got no SIGHUP");
	cr_assert_not(got_hup(&ours, 300), "our own plugin's socket holder got SIGHUP");
	cr_assert_not(got_hup(&other, 10), "a listener of another directory got SIGHUP");
	cr_assert_not(got_hup(&client, 10), "a client of the socket got SIGHUP");
	reap(&nv);
	reap(&ours);
	reap(&other);
	reap(&client);

	/* nobody listens any more: nothing is signalled, and it says so */
	cr_assert_eq(vgp_nvidia_signal("/", kdir, msg, sizeof msg, &err), 0);
	cr_assert_not_null(strstr(msg, "nothing signalled"), "%s", msg);
}

/* A fixture proc tree under a host root: the listener sees the path without the prefix. */
Test(nvidia_signal, fixture_proc_tree_under_a_host_root, .init = setup, .fini = teardown)
{
	char path[256], kdir[160], msg[1024];
	vgp_error_t err = NULL;
	FILE *f;

	struct kid real = spawn("", PLAIN);
	struct kid decoy = spawn("", PLAIN);
	mk("proc");
	mk("proc/net");
	snprintf(path, sizeof path, "%s/proc/net/unix", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "Num       RefCount Protocol Flags    Type St Inode Path\n"
		   "0000000000000000: 00000002 00000000 00010000 0001 01 424242 /var/lib/kubelet/device-plugins/nvidia-gpu.sock\n"
		   "0000000000000000: 00000003 00000000 00000000 0001 03 434343 /var/lib/kubelet/device-plugins/nvidia-gpu.sock\n"
		   "0000000000000000: 00000002 00000000 00010000 0001 01 454545 /var/lib/kubelet/device-plugins/kubelet.sock\n");
	fclose(f);
	/* real: the listener's inode; decoy: the connected (non-listening) one and kubelet.sock */
	snprintf(path, sizeof path, "proc/%d", (int) real.pid);
	mk(path);
	snprintf(path, sizeof path, "proc/%d/fd", (int) real.pid);
	mk(path);
	snprintf(path, sizeof path, "%s/proc/%d/fd/7", dir, (int) real.pid);
	cr_assert_eq(symlink("socket:[424242]", path), 0);
	snprintf(path, sizeof path, "proc/%d", (int) decoy.pid);
	mk(path);
	snprintf(path, sizeof path, "proc/%d/fd", (int) decoy.pid);
	mk(path);
	snprintf(path, sizeof path, "%s/proc/%d/fd/3", dir, (int) decoy.pid);
	cr_assert_eq(symlink("socket:[434343]", path), 0);
	snprintf(path, sizeof path, "%s/proc/%d/fd/4", dir, (int) decoy.pid);
	cr_assert_eq(symlink("socket:[454545]", path), 0);

	snprintf(kdir, sizeof kdir, "%s/var/lib/kubelet/device-plugins", dir);
	cr_assert_eq(vgp_nvidia_signal(dir, kdir, msg, sizeof msg, &err), 1, "%s", msg);
	cr_assert(got_hup(&real, 5000), "no SIGHUP: %s", msg);
	cr_assert_not(got_hup(&decoy, 300), "the decoy got SIGHUP");
	reap(&real);
	reap(&decoy);
}
