/* test_serve_status.c — the `health` check of serve's status file (vgp_status_check) and the warning about
 * another device plugin's socket for the same resource (vgp_warn_competing_sockets). */
#include <criterion/criterion.h>
#include <grpc/grpc.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "registration.h"
#include "scratch.h"
#include "serve_loop.h"

static char dir[64];

static void
setup(void)
{
	scratch_make(dir, sizeof dir, "status");
}

static void
teardown(void)
{
	scratch_remove(dir);
}

TestSuite(status, .init = setup, .fini = teardown);

static void
make_socket(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
	cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
	close(fd);
}

/* the status file with the given time fields (a JSON fragment, each field followed by a comma) */
static void
write_status_times(int pid, bool ready, bool registered, const char *sock, const char *times)
{
	char path[128];
	snprintf(path, sizeof path, "%s/status.json", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"pid\": %d, %s \"ready\": %s, \"reason\": \"%s\", \"resources\": "
		"[{\"name\": \"nvidia.com/AD102GL_L40S\", \"socket\": \"%s/%s\", \"registered\": %s, \"devices\": 4, "
		"\"healthy\": 4}]}\n",
		pid, times, ready ? "true" : "false", ready ? "" : "count 6 but only 4 GPUs match", dir, sock,
		registered ? "true" : "false");
	fclose(f);
}

static long long
now_ms(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "updated" (wall clock, UTC) age_s seconds ago */
static void
updated_ago(char *buf, size_t len, long long age_s)
{
	time_t t = time(NULL) - (time_t) age_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* what serve writes: updated, monotonic_ms and interval_ms, age_ms ago */
static void
write_status_aged(int pid, bool ready, bool registered, const char *sock, long long age_ms, int interval_ms)
{
	char ts[40], times[160];
	updated_ago(ts, sizeof ts, age_ms / 1000);
	snprintf(times, sizeof times, "\"updated\": \"%s\", \"monotonic_ms\": %lld, \"interval_ms\": %d,", ts,
		 now_ms(CLOCK_MONOTONIC) - age_ms, interval_ms);
	write_status_times(pid, ready, registered, sock, times);
}

/* a fresh status file as serve writes it (default interval) */
static void
write_status(int pid, bool ready, bool registered, const char *sock)
{
	write_status_aged(pid, ready, registered, sock, 0, 5000);
}

static int
check(bool ready, const char *kdir, char *msg, size_t len)
{
	char path[128];
	snprintf(path, sizeof path, "%s/status.json", dir);
	return vgp_status_check(path, kdir, ready, msg, len);
}

Test(status, alive_and_ready)
{
	char msg[256];
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	write_status(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock");
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "%s", msg);
	cr_expect_eq(check(true, NULL, msg, sizeof msg), 0, "%s", msg);
	cr_expect(strstr(msg, "ready") != NULL, "%s", msg);
	/* the socket looked up in another directory (the name is kept, the directory replaced) */
	cr_expect_eq(check(false, dir, msg, sizeof msg), 0, "%s", msg);
	cr_expect_eq(check(false, "/nonexistent", msg, sizeof msg), -1);
}

Test(status, not_ready_or_not_registered)
{
	char msg[256];
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	write_status(getpid(), false, true, "vfio-gpu-AD102GL_L40S.sock");
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "liveness ignores readiness: %s", msg);
	cr_expect_eq(check(true, NULL, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "only 4 GPUs") != NULL, "%s", msg);
	write_status(getpid(), true, false, "vfio-gpu-AD102GL_L40S.sock");
	cr_expect_eq(check(true, NULL, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "not registered") != NULL, "%s", msg);
}

Test(status, dead_pid_missing_socket_malformed)
{
	char msg[256], path[128];
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	write_status(999999999, true, true, "vfio-gpu-AD102GL_L40S.sock");
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "not running") != NULL, "%s", msg);
	write_status(getpid(), true, true, "vfio-gpu-OTHER.sock");
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "missing") != NULL, "%s", msg);
	snprintf(path, sizeof path, "%s/status.json", dir);
	FILE *f = fopen(path, "w");
	fputs("{\"pid\": \"x\"", f);
	fclose(f);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1);
	unlink(path);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "cannot read") != NULL, "%s", msg);
}

Test(status, stale_bound)
{
	cr_expect_eq(vgp_status_stale_ms(5000), 30000);
	cr_expect_eq(vgp_status_stale_ms(0), 30000, "no interval: the default's");
	cr_expect_eq(vgp_status_stale_ms(-1), 30000);
	cr_expect_eq(vgp_status_stale_ms(200), 30000, "the floor");
	cr_expect_eq(vgp_status_stale_ms(20000), 60000, "three intervals");
	cr_expect_eq(vgp_status_stale_ms(86400000), 3LL * 86400000, "no overflow at the largest interval");
}

/* the serve loop rewrites the file every interval: one older than the bound means the loop is stuck */
Test(status, fresh_or_stale)
{
	char msg[256];
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	write_status_aged(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", 1000, 5000);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "%s", msg);
	cr_expect_eq(check(true, NULL, msg, sizeof msg), 0, "%s", msg);
	write_status_aged(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", 29000, 5000);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "within the 30 s floor: %s", msg);
	write_status_aged(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", 45000, 5000);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "stale passes liveness: %s", msg);
	cr_expect(strstr(msg, "status not updated for 45 s (serve loop stuck?)") != NULL, "%s", msg);
	cr_expect(strstr(msg, "limit 30 s") != NULL, "%s", msg);
	cr_expect_eq(check(true, NULL, msg, sizeof msg), -1, "stale passes readiness: %s", msg);
	cr_expect(strstr(msg, "serve loop stuck") != NULL, "%s", msg);
	/* a long interval stretches the bound: 3 x 20 s */
	write_status_aged(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", 45000, 20000);
	cr_expect_eq(check(true, NULL, msg, sizeof msg), 0, "%s", msg);
	write_status_aged(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", 61000, 20000);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "%s", msg);
	cr_expect(strstr(msg, "limit 60 s") != NULL, "%s", msg);
	/* a dead process stays "not running", the more precise reason */
	write_status_aged(999999999, true, true, "vfio-gpu-AD102GL_L40S.sock", 45000, 5000);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "not running") != NULL, "%s", msg);
}

/* the monotonic time decides, not the wall clock (which may have been stepped since) */
Test(status, monotonic_over_wall_clock)
{
	char msg[256], ts[40], times[200];
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	/* wall clock says an hour ago (stepped forward since), monotonic says now: fresh */
	updated_ago(ts, sizeof ts, 3600);
	snprintf(times, sizeof times, "\"updated\": \"%s\", \"monotonic_ms\": %lld, \"interval_ms\": 5000,", ts,
		 now_ms(CLOCK_MONOTONIC));
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "%s", msg);
	/* wall clock says now (stepped back), monotonic says a minute ago: stale */
	updated_ago(ts, sizeof ts, 0);
	snprintf(times, sizeof times, "\"updated\": \"%s\", \"monotonic_ms\": %lld, \"interval_ms\": 5000,", ts,
		 now_ms(CLOCK_MONOTONIC) - 60000);
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "%s", msg);
	cr_expect(strstr(msg, "not updated for 60 s") != NULL, "%s", msg);
	/* monotonic from the future (another boot): the wall clock decides */
	updated_ago(ts, sizeof ts, 3600);
	snprintf(times, sizeof times, "\"updated\": \"%s\", \"monotonic_ms\": %lld, \"interval_ms\": 5000,", ts,
		 now_ms(CLOCK_MONOTONIC) + 86400000LL);
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "%s", msg);
	cr_expect(strstr(msg, "not updated for 360") != NULL, "%s", msg);
}

/* a status file of an older serve: no monotonic_ms, no interval_ms: the wall clock and the default interval */
Test(status, old_format)
{
	char msg[256], ts[40], times[120];
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	updated_ago(ts, sizeof ts, 2);
	snprintf(times, sizeof times, "\"updated\": \"%s\",", ts);
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(true, NULL, msg, sizeof msg), 0, "%s", msg);
	updated_ago(ts, sizeof ts, 45);
	snprintf(times, sizeof times, "\"updated\": \"%s\",", ts);
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "%s", msg);
	cr_expect(strstr(msg, "limit 30 s") != NULL, "the default interval's bound: %s", msg);
	/* interval_ms but no monotonic_ms: the interval still counts */
	snprintf(times, sizeof times, "\"updated\": \"%s\", \"interval_ms\": 20000,", ts);
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "%s", msg);
	/* a wall clock stepped back past "updated": cannot judge, not stale */
	snprintf(times, sizeof times, "\"updated\": \"2099-01-01T00:00:00Z\",");
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", times);
	cr_expect_eq(check(false, NULL, msg, sizeof msg), 0, "%s", msg);
	/* no time at all, or garbage: malformed */
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", "");
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "%s", msg);
	cr_expect(strstr(msg, "malformed") != NULL, "%s", msg);
	write_status_times(getpid(), true, true, "vfio-gpu-AD102GL_L40S.sock", "\"updated\": \"yesterday\",");
	cr_expect_eq(check(false, NULL, msg, sizeof msg), -1, "%s", msg);
	cr_expect(strstr(msg, "malformed") != NULL, "%s", msg);
}

Test(status, competing_sockets)
{
	make_socket("kubelet.sock");
	make_socket("vfio-gpu-AD102GL_L40S.sock");
	make_socket("vfio-gpu-GA102GL_A10.sock");
	make_socket("nvidia-gpu.sock");
	cr_expect_eq(vgp_warn_competing_sockets(dir, "nvidia.com/AD102GL_L40S", "vfio-gpu-AD102GL_L40S.sock"), 0);
	make_socket("kubevirt-AD102GL_L40S.sock");
	make_socket("kubevirt-XAD102GL_L40S.sock"); /* another name that merely ends the same */
	cr_expect_eq(vgp_warn_competing_sockets(dir, "nvidia.com/AD102GL_L40S", "vfio-gpu-AD102GL_L40S.sock"), 1);
	/* a regular file with the name is not a plugin */
	char path[128];
	snprintf(path, sizeof path, "%s/other-GA102GL_A10.sock", dir);
	fclose(fopen(path, "w"));
	cr_expect_eq(vgp_warn_competing_sockets(dir, "nvidia.com/GA102GL_A10", "vfio-gpu-GA102GL_A10.sock"), 0);
}

Test(status, register_without_kubelet)
{
	vgp_error_t err = NULL;
	grpc_init(); /* vgp_serve_run's job in the plugin */
	/* no kubelet.sock: fails at once, ENOENT */
	cr_expect_eq(vgp_register_once(dir, "nvidia.com/X", "vfio-gpu-X.sock", 15000, NULL, NULL, &err), -1);
	cr_assert_not_null(err);
	cr_expect_eq(err->status, ENOENT, "%s", vgp_error_text(err));
	vgp_error_release(&err);
	/* a kubelet.sock nobody listens on: refused (UNAVAILABLE), well before the 15 s deadline */
	make_socket("kubelet.sock");
	cr_expect_eq(vgp_register_once(dir, "nvidia.com/X", "vfio-gpu-X.sock", 15000, NULL, NULL, &err), -1);
	cr_assert_not_null(err);
	cr_expect_eq(err->status, ECONNREFUSED, "%s", vgp_error_text(err));
	vgp_error_release(&err);
	/* expecting another kubelet.sock than the one there (here: none): ESTALE, nothing dialled */
	struct vgp_sock_id none = { 0, { 0, 0 } }, now = vgp_kubelet_sock_id(dir);
	cr_expect_neq(now.ino, 0);
	cr_expect_eq(vgp_register_once(dir, "nvidia.com/X", "vfio-gpu-X.sock", 15000, &none, NULL, &err), -1);
	cr_assert_not_null(err);
	cr_expect_eq(err->status, ESTALE, "%s", vgp_error_text(err));
	vgp_error_release(&err);
	cr_expect_eq(vgp_register_once(dir, "nvidia.com/X", "vfio-gpu-X.sock", 15000, &now, NULL, &err), -1);
	cr_assert_not_null(err);
	cr_expect_eq(err->status, ECONNREFUSED, "%s", vgp_error_text(err));
	vgp_error_release(&err);
	grpc_shutdown();
}

/* a kubelet.sock seen by the serve loop: register with it exactly once, whatever the registrar is doing */
Test(status, follow_kubelet_sock)
{
	struct vgp_sock_id none = { 0, { 0, 0 } }, a = { 11, { 100, 5 } }, b = { 11, { 100, 6 } }, c = { 12, { 100, 5 } };
	/* registered with this very socket (the race of the retry that beat the inotify event): nothing */
	cr_expect_eq(vgp_follow_decide(true, false, false, &a, &none, &a), VGP_FOLLOW_NOTHING);
	/* registered with an older one (same inode re-used, or another inode): again */
	cr_expect_eq(vgp_follow_decide(true, false, false, &a, &none, &b), VGP_FOLLOW_REGISTER_AGAIN);
	cr_expect_eq(vgp_follow_decide(true, false, false, &a, &none, &c), VGP_FOLLOW_REGISTER_AGAIN);
	/* an attempt in flight to this socket: nothing; to another: again (its answer came from the old kubelet) */
	cr_expect_eq(vgp_follow_decide(false, true, true, &none, &a, &a), VGP_FOLLOW_NOTHING);
	cr_expect_eq(vgp_follow_decide(false, true, true, &none, &none, &a), VGP_FOLLOW_REGISTER_AGAIN);
	cr_expect_eq(vgp_follow_decide(false, true, true, &none, &a, &b), VGP_FOLLOW_REGISTER_AGAIN);
	/* pending in a backoff (kubelet.sock was missing): try now, no second request */
	cr_expect_eq(vgp_follow_decide(false, true, false, &none, &none, &a), VGP_FOLLOW_TRY_NOW);
	/* a re-request after an older success: the registered_with of the past does not count */
	cr_expect_eq(vgp_follow_decide(false, true, false, &a, &none, &a), VGP_FOLLOW_TRY_NOW);
	/* never asked to register (not pending, not registered): register */
	cr_expect_eq(vgp_follow_decide(false, false, false, &none, &none, &a), VGP_FOLLOW_REGISTER_AGAIN);
}
