/* test_locked_attr.c — reads of device-lock attributes in a child under a deadline (plugin/locked_attr.c), on a
 * scratch tree. A FIFO stands for an attribute whose read hangs behind a held device lock: its open blocks until a
 * writer comes, which none does. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "locked_attr.h"
#include "scratch.h"

static char root[256];

static void
attr(const char *addr, const char *value)
{
	char p[512];
	snprintf(p, sizeof p, "%s/sys/bus/pci/devices/%s", root, addr);
	cr_assert_eq(mkdir(p, 0755), 0, "%s: %s", p, strerror(errno));
	if (value == NULL)
		return; /* no attribute */
	strcat(p, "/driver_override");
	if (strcmp(value, "HANG") == 0) {
		cr_assert_eq(mkfifo(p, 0600), 0);
		return;
	}
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(value, f);
	fclose(f);
}

static void
setup(void)
{
	char p[512];
	scratch_make(root, sizeof root, "locked");
	snprintf(p, sizeof p, "%s/sys", root);
	cr_assert_eq(mkdir(p, 0755), 0);
	strcat(p, "/bus");
	cr_assert_eq(mkdir(p, 0755), 0);
	strcat(p, "/pci");
	cr_assert_eq(mkdir(p, 0755), 0);
	strcat(p, "/devices");
	cr_assert_eq(mkdir(p, 0755), 0);
}

static void
teardown(void)
{
	scratch_remove(root);
}

TestSuite(locked_attr, .init = setup, .fini = teardown);

static struct vgp_locked_read
item(const char *addr)
{
	struct vgp_locked_read r = { 0 };
	snprintf(r.addr, sizeof r.addr, "%s", addr);
	return r;
}

Test(locked_attr, many_in_one_pass_each_with_its_outcome)
{
	struct vgp_locked_read it[6] = { item("0000:01:00.0"), item("0000:01:00.1"), item("0000:02:00.0"),
					 item("0000:03:00.0"), item("0000:04:00.0"), item("0000:05:00.0") };
	vgp_error_t err = NULL;

	attr("0000:01:00.0", "vfio-pci\n");
	attr("0000:01:00.1", "(null)\n");
	attr("0000:02:00.0", "HANG");         /* the device lock held: no answer */
	attr("0000:03:00.0", "nvidia\nmore\n"); /* the first line only */
	attr("0000:04:00.0", NULL);           /* no such attribute */
	attr("0000:05:00.0", "evil\x1b[2J\n");  /* escaped */
	cr_assert_eq(vgp_read_locked_attrs(root, "driver_override", 300, it, 6, &err), 0);
	cr_assert_null(err);
	cr_assert_eq(it[0].status, 0);
	cr_assert_str_eq(it[0].value, "vfio-pci");
	cr_assert_eq(it[1].status, 0);
	cr_assert_str_eq(it[1].value, "(null)");
	cr_assert_eq(it[2].status, ETIMEDOUT, "status %d", it[2].status);
	cr_assert_str_eq(it[2].value, "");
	/* after the stuck read, a new child went on with the rest */
	cr_assert_eq(it[3].status, 0);
	cr_assert_str_eq(it[3].value, "nvidia");
	cr_assert_eq(it[4].status, ENOENT, "status %d", it[4].status);
	cr_assert_str_eq(it[4].value, "");
	cr_assert_eq(it[5].status, 0);
	cr_assert_str_eq(it[5].value, "evil\\x1b[2J");
}

Test(locked_attr, two_stuck_in_a_row_and_stuck_last)
{
	struct vgp_locked_read it[4] = { item("0000:01:00.0"), item("0000:02:00.0"), item("0000:03:00.0"),
					 item("0000:04:00.0") };
	vgp_error_t err = NULL;

	attr("0000:01:00.0", "HANG");
	attr("0000:02:00.0", "HANG");
	attr("0000:03:00.0", "vfio-pci\n");
	attr("0000:04:00.0", "HANG");
	cr_assert_eq(vgp_read_locked_attrs(root, "driver_override", 100, it, 4, &err), 0);
	cr_assert_eq(it[0].status, ETIMEDOUT);
	cr_assert_eq(it[1].status, ETIMEDOUT);
	cr_assert_eq(it[2].status, 0);
	cr_assert_str_eq(it[2].value, "vfio-pci");
	cr_assert_eq(it[3].status, ETIMEDOUT);
}

Test(locked_attr, one_attribute_errors_name_the_function)
{
	vgp_error_t err = NULL;
	char buf[64];

	attr("0000:01:00.0", "HANG");
	attr("0000:02:00.0", NULL);
	attr("0000:03:00.0", "vfio-pci\n");
	cr_assert_eq(vgp_read_locked_attr(root, "0000:03:00.0", "driver_override", 200, buf, sizeof buf, &err), 0);
	cr_assert_str_eq(buf, "vfio-pci");
	cr_assert_eq(vgp_read_locked_attr(root, "0000:01:00.0", "driver_override", 100, buf, sizeof buf, &err), -1);
	cr_assert_eq(err->status, ETIMEDOUT);
	cr_assert(strstr(vgp_error_text(err), "0000:01:00.0: reading driver_override did not return within 100 ms") !=
		  NULL, "%s", vgp_error_text(err));
	vgp_error_release(&err);
	cr_assert_eq(vgp_read_locked_attr(root, "0000:02:00.0", "driver_override", 100, buf, sizeof buf, &err), -1);
	cr_assert_eq(err->status, ENOENT);
	cr_assert(strstr(vgp_error_text(err), "0000:02:00.0: cannot read driver_override") != NULL, "%s",
		  vgp_error_text(err));
	vgp_error_release(&err);
}

Test(locked_attr, nothing_to_read)
{
	vgp_error_t err = NULL;
	cr_assert_eq(vgp_read_locked_attrs(root, "driver_override", 100, NULL, 0, &err), 0);
	cr_assert_null(err);
}

static void
on_signal(int sig)
{
	(void) sig;
}

#define PELT_MS 20
#define PELT_BUDGET_MS 10000 /* 50x the read timeout below: the signals outlast any honest read */

struct pelter {
	pthread_t target;
	atomic_bool stop, spent;
};

/* SIGUSR1 to the target thread every PELT_MS until told to stop or until its budget is spent. */
static void *
pelt(void *arg)
{
	struct pelter *p = arg;
	for (int i = 0; i < PELT_BUDGET_MS / PELT_MS && !atomic_load(&p->stop); i++) {
		pthread_kill(p->target, SIGUSR1);
		usleep(PELT_MS * 1000);
	}
	atomic_store(&p->spent, !atomic_load(&p->stop));
	return NULL;
}

/* Signals more often than the timeout (each interrupts the wait): the read still times out, its deadline is not
 * restarted by each one. A deadline restarted by every signal would wait until the signals stop (the pelter's
 * budget spent) and fail the last assertion. */
Test(locked_attr, signals_do_not_extend_the_deadline)
{
	struct vgp_locked_read it[2] = { item("0000:01:00.0"), item("0000:02:00.0") };
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: poll returns EINTR */
	struct pelter p = { .target = pthread_self() };
	pthread_t th;
	vgp_error_t err = NULL;

	attr("0000:01:00.0", "HANG");
	attr("0000:02:00.0", "vfio-pci\n");
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	cr_assert_eq(pthread_create(&th, NULL, pelt, &p), 0);
	int r = vgp_read_locked_attrs(root, "driver_override", 200, it, 2, &err);
	atomic_store(&p.stop, true);
	pthread_join(th, NULL);
	cr_assert_not(atomic_load(&p.spent), "the read returned only after the signals stopped");
	cr_assert_eq(r, 0);
	cr_assert_eq(it[0].status, ETIMEDOUT);
	cr_assert_eq(it[1].status, 0);
	cr_assert_str_eq(it[1].value, "vfio-pci");
}
