/* test_names.c — resource names, env variable names, socket names (docs/architecture.md §4). */
#include <criterion/criterion.h>
#include <string.h>

#include "names.h"

static void
expect_name(const char *model, uint16_t device, const char *want, bool want_repaired)
{
	char out[VGP_RESOURCE_LEN];
	bool repaired = !want_repaired;

	cr_assert_eq(vgp_name_derive(model, device, out, sizeof(out), &repaired), 0, "derive \"%s\"", model);
	cr_assert_str_eq(out, want, "derive \"%s\"", model);
	cr_assert_eq(repaired, want_repaired, "repaired flag for \"%s\"", model);
	cr_assert(vgp_name_valid(out), "\"%s\" must be a valid name", out);
}

Test(names, a10) { expect_name("GA102GL [A10]", 0x2236, "GA102GL_A10", false); }
Test(names, l40s) { expect_name("AD102GL [L40S]", 0x26b9, "AD102GL_L40S", false); }
Test(names, h100_sxm5) { expect_name("GH100 [H100 SXM5 80GB]", 0x2330, "GH100_H100_SXM5_80GB", false); }
Test(names, a2_a16_slash) { expect_name("GA107GL [A2 / A16]", 0x25b6, "GA107GL_A2___A16", false); }
Test(names, t4_upper_cased) { expect_name("TU104GL [Tesla T4]", 0x1eb8, "TU104GL_TESLA_T4", false); }

Test(names, bracket_ends_in_space_is_repaired)
{
	expect_name("GA104 [RTX A4500 Embedded GPU ]", 0x24ba, "GA104_RTX_A4500_EMBEDDED_GPU", true);
}

Test(names, missing_model_gives_hex_id)
{
	expect_name(NULL, 0x26b5, "26b5", false);
	expect_name("", 0x26b5, "26b5", false);
	expect_name("   \t ", 0x00ab, "00ab", false);
}

Test(names, nothing_left_gives_hex_id_and_repaired)
{
	expect_name("[ ]", 0x1db6, "1db6", true);
	expect_name("()", 0x1db6, "1db6", false); /* every character deleted by the rules, no repair needed */
}

Test(names, trim_and_whitespace_runs)
{
	/* leading/trailing blanks are trimmed, each inner run (tabs too) becomes one '_' */
	expect_name("  GV100GL \t [Tesla  V100 SXM2 32GB]  ", 0x1db5, "GV100GL_TESLA_V100_SXM2_32GB", false);
}

Test(names, dots_and_punctuation)
{
	/* '.' -> '_'; '-', '+', ',' and brackets are deleted */
	expect_name("GP102 [TITAN Xp] v1.0", 0x1b02, "GP102_TITAN_XP_V1_0", false);
	expect_name("GA100 [A100-PCIe+, 40GB]", 0x20f1, "GA100_A100PCIE_40GB", false);
	expect_name("-GK210GL [Tesla K80]-", 0x102d, "GK210GL_TESLA_K80", false); /* '-' deleted, nothing to repair */
	expect_name("_X_", 0x0001, "X", true);
	expect_name("A_B", 0x0001, "A_B", false); /* '_' is kept */
}

Test(names, non_ascii_bytes_are_deleted)
{
	expect_name("Caf\xc3\xa9 GPU", 0x0002, "CAF_GPU", false);
}

Test(names, small_buffer)
{
	char out[8];
	bool repaired;

	cr_assert_eq(vgp_name_derive("AD102GL [L40S]", 0x26b9, out, sizeof(out), &repaired), -1);
	cr_assert_eq(vgp_name_derive(NULL, 0x26b9, out, 4, NULL), -1);
	cr_assert_eq(vgp_name_derive(NULL, 0x26b9, out, 5, NULL), 0);
	cr_assert_str_eq(out, "26b9");
	cr_assert_eq(vgp_name_derive("A", 0x26b9, out, 2, NULL), 0);
	cr_assert_str_eq(out, "A");
}

Test(names, name_valid)
{
	char long64[65];

	cr_assert(vgp_name_valid("AD102GL_L40S"));
	cr_assert(vgp_name_valid("a"));
	cr_assert(vgp_name_valid("l40s-vm.v2"));
	cr_assert(vgp_name_valid("26b5"));
	cr_assert_not(vgp_name_valid(""));
	cr_assert_not(vgp_name_valid(NULL));
	cr_assert_not(vgp_name_valid("GPU_"));
	cr_assert_not(vgp_name_valid("_GPU"));
	cr_assert_not(vgp_name_valid("-GPU"));
	cr_assert_not(vgp_name_valid("A10 G"));
	cr_assert_not(vgp_name_valid("nvidia.com/A10"));
	memset(long64, 'A', 64);
	long64[64] = '\0';
	cr_assert_not(vgp_name_valid(long64));
	long64[63] = '\0';
	cr_assert(vgp_name_valid(long64));
}

Test(names, prefix_valid)
{
	char label64[80];

	cr_assert(vgp_prefix_valid("nvidia.com"));
	cr_assert(vgp_prefix_valid("example.org"));
	cr_assert(vgp_prefix_valid("gpu"));
	cr_assert(vgp_prefix_valid("a-b.c-d.e1"));
	cr_assert_not(vgp_prefix_valid(""));
	cr_assert_not(vgp_prefix_valid(NULL));
	cr_assert_not(vgp_prefix_valid("NVIDIA.com"));
	cr_assert_not(vgp_prefix_valid("nvidia..com"));
	cr_assert_not(vgp_prefix_valid(".nvidia.com"));
	cr_assert_not(vgp_prefix_valid("nvidia.com."));
	cr_assert_not(vgp_prefix_valid("-nvidia.com"));
	cr_assert_not(vgp_prefix_valid("nvidia-.com"));
	cr_assert_not(vgp_prefix_valid("nvidia.com/x"));
	cr_assert_not(vgp_prefix_valid("nvidia_com"));
	cr_assert_not(vgp_prefix_valid("kubernetes.io"));
	cr_assert_not(vgp_prefix_valid("gpu.kubernetes.io"));
	cr_assert(vgp_prefix_valid("notkubernetes.io"));
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".com");
	cr_assert_not(vgp_prefix_valid(label64));
	strcpy(label64 + 63, ".com");
	cr_assert(vgp_prefix_valid(label64));
}

Test(names, env_name)
{
	char out[VGP_RESOURCE_LEN];

	cr_assert_eq(vgp_env_name("nvidia.com/GA102GL_A10", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "PCI_RESOURCE_NVIDIA_COM_GA102GL_A10");
	cr_assert_eq(vgp_env_name("nvidia.com/AD102GL_L40S", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S");
	/* as KubeVirt: upper-case, '/' and '.' -> '_', '-' kept */
	cr_assert_eq(vgp_env_name("gpu.example.org/l40s-vm.v2", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "PCI_RESOURCE_GPU_EXAMPLE_ORG_L40S-VM_V2");
	cr_assert_eq(vgp_env_name("nvidia.com/GA102GL_A10", out, 35), -1); /* needs 36 */
	cr_assert_eq(vgp_env_name("nvidia.com/GA102GL_A10", out, 36), 0);
	cr_assert_str_eq(out, "PCI_RESOURCE_NVIDIA_COM_GA102GL_A10");
}

Test(names, socket_name)
{
	char out[64];

	cr_assert_eq(vgp_socket_name("nvidia.com/AD102GL_L40S", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "vfio-gpu-AD102GL_L40S.sock");
	cr_assert_eq(vgp_socket_name("nvidia.com/26b5", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "vfio-gpu-26b5.sock");
	cr_assert_eq(vgp_socket_name("nvidia.com/", out, sizeof(out)), -1);
	cr_assert_eq(vgp_socket_name("nvidia.com/AD102GL_L40S", out, 26), -1); /* needs 27 */
}

/* Issue 11: the short socket name is stable (one resource, one name), distinct per resource and fits anywhere. */
Test(names, socket_name_short)
{
	char a[64], b[64], c[64];

	cr_assert_eq(vgp_socket_name_short("nvidia.com/L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_ABC", a,
					   sizeof(a)), 0);
	cr_assert_eq(vgp_socket_name_short("nvidia.com/L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_ABC", b,
					   sizeof(b)), 0);
	cr_assert_str_eq(a, b);
	cr_assert_eq(strlen(a), 30);
	cr_assert_eq(strncmp(a, "vfio-gpu-", 9), 0);
	cr_assert_eq(vgp_socket_name_short("nvidia.com/L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_L40S_ABD", c,
					   sizeof(c)), 0);
	cr_assert_str_neq(a, c);
	cr_assert_eq(vgp_socket_name_short("", a, sizeof(a)), -1);
	cr_assert_eq(vgp_socket_name_short("x", a, 30), -1); /* needs 31 */
}
