/* test_util.c — the small pure helpers of util.c: PCI address normalisation and the ", "-separated list. */
#include <criterion/criterion.h>
#include <string.h>

#include "util.h"

Test(util, addr_normalize)
{
	char out[VGP_ADDR_LEN];
	cr_assert_eq(vgp_addr_normalize("3B:00.0", out), 0);
	cr_assert_str_eq(out, "0000:3b:00.0");
	cr_assert_eq(vgp_addr_normalize("0001:61:00.1", out), 0);
	cr_assert_str_eq(out, "0001:61:00.1");
	cr_assert_eq(vgp_addr_normalize("61:00", out), -1);
	cr_assert_eq(vgp_addr_normalize("zz:00.0", out), -1);
}

Test(util, list_append)
{
	char buf[32] = "";
	size_t off = 0;
	vgp_list_append(buf, sizeof buf, &off, "0000:61:00.0");
	cr_assert_str_eq(buf, "0000:61:00.0");
	vgp_list_append(buf, sizeof buf, &off, "0000:62:00.0");
	cr_assert_str_eq(buf, "0000:61:00.0, 0000:62:00.0");
	cr_assert_eq(off, strlen(buf));
	/* full: cut, terminated, and later items change nothing */
	vgp_list_append(buf, sizeof buf, &off, "0000:63:00.0");
	cr_assert_eq(strlen(buf), sizeof buf - 1);
	cr_assert_eq(off, sizeof buf);
	vgp_list_append(buf, sizeof buf, &off, "x");
	cr_assert_eq(strlen(buf), sizeof buf - 1);
	cr_assert_eq(strncmp(buf, "0000:61:00.0, 0000:62:00.0, 000", sizeof buf - 1), 0);
	/* a zero-length buffer is left alone */
	size_t z = 0;
	vgp_list_append(buf, 0, &z, "y");
	cr_assert_eq(z, 0);
}
