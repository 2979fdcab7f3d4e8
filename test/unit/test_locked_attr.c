/* test_locked_attr.c — reads of device-lock attributes in a child under a deadline (plugin/locked_attr.c), on a
 * scratch tree. A FIFO stands for an attribute whose read hangs behind a held device lock: its open blocks until a
 * writer comes, which none does. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
