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

/* Issue 11: the domain is part of the identity, never truncated (Intel VMD's 10000:, up to 8 digits). */
Test(util, addr_normalize_wide_domain)
{
	char out[VGP_ADDR_LEN];
	cr_assert_eq(vgp_addr_normalize("10000:B0:00.0", out), 0);
	cr_assert_str_eq(out, "10000:b0:00.0");
	cr_assert_eq(vgp_addr_domain(out), 0x10000);
	cr_assert_eq(vgp_addr_normalize("ffffffff:ff:1f.7", out), 0);
	cr_assert_str_eq(out, "ffffffff:ff:1f.7");
	cr_assert_eq(vgp_addr_normalize("100000000:b0:00.0", out), -1);
	cr_assert_eq(vgp_addr_normalize("000:b0:00.0", out), -1);
	cr_assert_eq(vgp_addr_normalize("10000:b0:00.0:", out), -1);
}

/* Issue 11: strings from the node never reach a terminal as control sequences. */
Test(util, escape)
{
	char out[64];
	cr_assert_str_eq(vgp_escape("dcgm-exporter", out, sizeof out), "dcgm-exporter");
	cr_assert_str_eq(vgp_escape("a\x1b[2Jb", out, sizeof out), "a\\x1b[2Jb");
	cr_assert_str_eq(vgp_escape("x\ny\x7f\\", out, sizeof out), "x\\x0ay\\x7f\\x5c");
	cr_assert_str_eq(vgp_escape("caf\xc3\xa9", out, sizeof out), "caf\xc3\xa9");       /* valid UTF-8 kept */
	cr_assert_str_eq(vgp_escape("\xc2\x9b" "1m", out, sizeof out), "\\xc2\\x9b1m");   /* C1 CSI escaped */
	cr_assert_str_eq(vgp_escape("\xff", out, sizeof out), "\\xff");
	char small[6];
	cr_assert_str_eq(vgp_escape("ab\x1b", small, sizeof small), "ab"); /* an escape that does not fit is cut */
}
