/* test_plan.c — the pure plan: rows, members, eligibility, selection order, NUMA policies, names, shortfall. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plan.h"
#include "plan_fixtures.h"

#define L40S 0x26b9
#define L40S_MODEL "AD102GL [L40S]"
#define L40S_RES "nvidia.com/AD102GL_L40S"

static struct vgp_inventory inv;
static struct vgp_config cfg;
static struct vgp_plan plan;
static vgp_error_t err;
static const char *sticky[8];
static size_t n_sticky;
static const char *exclude[8];
static const char *exclude_why[8];
static size_t n_exclude;

static void
setup(void)
{
	pf_inv_init(&inv, true);
	pf_cfg_init(&cfg);
	memset(&plan, 0, sizeof(plan));
	err = NULL;
	n_sticky = n_exclude = 0;
}

static void
teardown(void)
{
	vgp_plan_free(&plan);
	vgp_error_release(&err);
	pf_cfg_free(&cfg);
	pf_inv_free(&inv);
}

TestSuite(plan, .init = setup, .fini = teardown);

static int
build_into(struct vgp_plan *out)
{
	struct vgp_plan_input in = {
		.inv = &inv, .cfg = &cfg, .pt = cfg.pt, .n_pt = cfg.n_pt,
		.sticky = sticky, .n_sticky = n_sticky,
		.exclude = exclude, .exclude_why = exclude_why, .n_exclude = n_exclude,
	};
	return vgp_plan_build(&in, out, &err);
}

static void
build_ok(void)
{
	int r = build_into(&plan);
	cr_assert_eq(r, 0, "plan failed: %s", err ? vgp_error_text(err) : "?");
}

static const struct vgp_plan_gpu *
gpu(const char *addr)
{
	for (size_t i = 0; i < plan.n; i++)
		if (strcmp(inv.devs[plan.gpus[i].dev].addr, addr) == 0)
			return &plan.gpus[i];
	cr_assert_fail("%s is not a row of the plan", addr);
	return NULL;
}

static void
expect(const char *addr, enum vgp_action action, const char *reason, const char *resource)
{
	const struct vgp_plan_gpu *g = gpu(addr);
	cr_assert_str_eq(vgp_action_name(g->action), vgp_action_name(action), "%s action", addr);
	cr_assert_str_eq(g->reason, reason, "%s reason", addr);
	cr_assert_str_eq(g->resource, resource, "%s resource", addr);
	if (action != VGP_ACT_INELIGIBLE)
		cr_assert_eq(g->ineligible, VGP_INEL_NONE, "%s: not ineligible", addr);
	else
		cr_assert_neq(g->ineligible, VGP_INEL_NONE, "%s: ineligible for a typed reason", addr);
}

/* The typed reason of an ineligible GPU (the decisions use it, not the text). */
static void
expect_why(const char *addr, enum vgp_ineligible why)
{
	cr_assert_eq(gpu(addr)->ineligible, why, "%s: ineligible %d, want %d", addr, gpu(addr)->ineligible, why);
}

static const struct vgp_plan_resource *
res(const char *name)
{
	for (size_t r = 0; r < plan.n_res; r++)
		if (strcmp(plan.res[r].name, name) == 0)
			return &plan.res[r];
	cr_assert_fail("no resource %s", name);
	return NULL;
}

/* The resource's selected GPUs as "a,b,c". */
static const char *
res_list(const char *name)
{
	static char buf[512];
	const struct vgp_plan_resource *r = res(name);
	size_t off = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < r->n_gpus; k++)
		off += (size_t) snprintf(buf + off, sizeof(buf) - off, "%s%s", k ? "," : "",
					 inv.devs[plan.gpus[r->gpus[k]].dev].addr);
	return buf;
}

/* Addresses of every GPU with action a, in plan order. */
static const char *
with_action(enum vgp_action a)
{
	static char buf[512];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < plan.n; i++)
		if (plan.gpus[i].action == a)
			off += (size_t) snprintf(buf + off, sizeof(buf) - off, "%s%s", off ? "," : "",
						 inv.devs[plan.gpus[i].dev].addr);
	return buf;
}

static struct vgp_passthrough *
pf_pt_device_ret(struct vgp_passthrough *p, uint16_t device)
{
	pf_pt_device(p, device);
	return p;
}

static bool
has_warning(const char *text)
{
	for (size_t k = 0; k < plan.n_warnings; k++)
		if (strcmp(plan.warnings[k], text) == 0)
			return true;
	return false;
}

/* 8 L40S over two NUMA nodes, each with its audio function in its group, drivers mixed, one busy:
 *   NUMA 0: 17 nvidia, 31 vfio-pci, 4b nvidia, 65 (no driver)
 *   NUMA 1: 98 nvidia held by pid 4242 (dcgm), b1 nouveau, ca nvidia, e3 nvidia */
static void
eight_l40s(void)
{
	static const struct { const char *addr; const char *drv; int numa; } g[] = {
		{ "0000:17:00.0", "nvidia", 0 }, { "0000:31:00.0", "vfio-pci", 0 }, { "0000:4b:00.0", "nvidia", 0 },
		{ "0000:65:00.0", NULL, 0 },     { "0000:98:00.0", "nvidia", 1 },   { "0000:b1:00.0", "nouveau", 1 },
		{ "0000:ca:00.0", "nvidia", 1 }, { "0000:e3:00.0", "nvidia", 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(g); i++)
		pf_gpu_audio(&inv, g[i].addr, L40S, L40S_MODEL, g[i].drv, (int) (10 + i), g[i].numa);
	pf_holder((struct vgp_pci_dev *) vgp_inventory_find(&inv, "0000:98:00.0"), 4242, "dcgm");
}

/* ---- 8 L40S, mixed drivers, busy policies ---------------------------------------------------------------------- */

Test(plan, eight_l40s_balanced_busy_skip)
{
	eight_l40s();
	pf_pt_device(pf_pt(&cfg, 0x10de, 4), L40S);
	build_ok();

	cr_assert_eq(plan.n, 8, "audio functions are members, not rows");
	cr_assert(plan.iommu);
	cr_assert_not(plan.shortfall);
	cr_assert_eq(plan.n_warnings, 0);
	/* vfio first (NUMA 0 has 1), then balanced: NUMA 1, NUMA 0 (tie -> lowest), NUMA 1 */
	expect("0000:31:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci", L40S_RES);
	expect("0000:b1:00.0", VGP_ACT_BIND, "selected: 2 of 4 on NUMA 1", L40S_RES);
	expect("0000:17:00.0", VGP_ACT_BIND, "selected: 3 of 4 on NUMA 0", L40S_RES);
	expect("0000:ca:00.0", VGP_ACT_BIND, "selected: 4 of 4 on NUMA 1", L40S_RES);
	expect("0000:4b:00.0", VGP_ACT_KEEP, "not needed: count 4 reached", "");
	expect("0000:65:00.0", VGP_ACT_KEEP, "not needed: count 4 reached", "");
	expect("0000:e3:00.0", VGP_ACT_KEEP, "not needed: count 4 reached", "");
	expect("0000:98:00.0", VGP_ACT_INELIGIBLE, "busy: held by pid 4242 (dcgm)", "");
	expect_why("0000:98:00.0", VGP_INEL_BUSY);
	cr_assert(gpu("0000:98:00.0")->busy);
	cr_assert_not(gpu("0000:17:00.0")->busy);
	cr_assert_eq(gpu("0000:4b:00.0")->entry, 0);
	cr_assert_eq(gpu("0000:98:00.0")->entry, 0);

	cr_assert_eq(plan.n_res, 1);
	cr_assert_str_eq(plan.res[0].name, L40S_RES);
	cr_assert_eq(plan.res[0].entry, 0);
	cr_assert_eq(plan.res[0].wanted, 4);
	cr_assert_eq(plan.res[0].matched, 7);
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0,0000:b1:00.0,0000:ca:00.0");
}

Test(plan, eight_l40s_busy_skip_shortfall_counts_ineligible)
{
	eight_l40s();
	pf_pt_device(pf_pt(&cfg, 0x10de, 8), L40S);
	build_ok();

	cr_assert(plan.shortfall);
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 8 but only 7 GPUs match on this node (1 more ineligible)");
	cr_assert(has_warning(plan.shortfall_msg));
	cr_assert_str_eq(with_action(VGP_ACT_INELIGIBLE), "0000:98:00.0");
	cr_assert_eq(plan.res[0].n_gpus, 7);
}

Test(plan, eight_l40s_busy_fail_selected_last)
{
	eight_l40s();
	cfg.busy_policy = VGP_BUSY_FAIL;
	pf_pt_device(pf_pt(&cfg, 0x10de, 8), L40S);
	build_ok();

	cr_assert_not(plan.shortfall);
	cr_assert_eq(plan.res[0].matched, 8);
	cr_assert_eq(plan.res[0].n_gpus, 8);
	expect("0000:98:00.0", VGP_ACT_BIND,
	       "selected: 8 of 8 on NUMA 1, busy: held by pid 4242 (dcgm) (busy policy fail)", L40S_RES);
	cr_assert(gpu("0000:98:00.0")->busy);
	/* idle ones before it, balanced from the vfio one on NUMA 0 */
	expect("0000:b1:00.0", VGP_ACT_BIND, "selected: 2 of 8 on NUMA 1", L40S_RES);
	expect("0000:e3:00.0", VGP_ACT_BIND, "selected: 6 of 8 on NUMA 1", L40S_RES);
	expect("0000:65:00.0", VGP_ACT_BIND, "selected: 7 of 8 on NUMA 0", L40S_RES);
}

Test(plan, eight_l40s_busy_wait_not_needed)
{
	eight_l40s();
	cfg.busy_policy = VGP_BUSY_WAIT;
	pf_pt_device(pf_pt(&cfg, 0x10de, 7), L40S);
	build_ok();

	cr_assert_not(plan.shortfall);
	expect("0000:98:00.0", VGP_ACT_KEEP, "not needed: count 7 reached", "");
	cr_assert(gpu("0000:98:00.0")->busy);
	cr_assert_str_eq(with_action(VGP_ACT_BIND),
			 "0000:17:00.0,0000:4b:00.0,0000:65:00.0,0000:b1:00.0,0000:ca:00.0,0000:e3:00.0");
}

Test(plan, busy_wait_takes_busy_when_needed)
{
	eight_l40s();
	cfg.busy_policy = VGP_BUSY_WAIT;
	pf_pt_device(pf_pt(&cfg, 0x10de, VGP_COUNT_ALL), L40S);
	build_ok();

	expect("0000:98:00.0", VGP_ACT_BIND,
	       "selected: 8 of all on NUMA 1, busy: held by pid 4242 (dcgm) (busy policy wait)", L40S_RES);
	cr_assert_eq(plan.res[0].wanted, VGP_COUNT_ALL);
	cr_assert_not(plan.shortfall);
}

Test(plan, several_holders_named)
{
	struct vgp_pci_dev *d = pf_gpu_audio(&inv, "0000:17:00.0", L40S, L40S_MODEL, "nvidia", 3, 0);
	pf_holder(d, 4242, "dcgm");
	pf_holder(d, 901, "nvidia-persiste");
	pf_pt_device(pf_pt(&cfg, 0x10de, 1), L40S);
	build_ok();
	expect("0000:17:00.0", VGP_ACT_INELIGIBLE, "busy: held by pid 4242 (dcgm), pid 901 (nvidia-persiste)", "");
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 1 but only 0 GPUs match on this node (1 more ineligible)");
}

/* ---- members ------------------------------------------------------------------------------------------------- */

Test(plan, audio_usb_ucsi_are_members_bridges_excluded)
{
	/* a Turing card: GPU, audio, USB, UCSI in one group, behind a bridge that is in the group too */
	pf_dev(&inv, "0000:3a:00.0", 0x8086, 0x2030, PF_CLASS_BRIDGE, "Sky Lake-E PCI Express Root Port A", "pcieport", 5, 0);
	pf_dev(&inv, "0000:3b:00.3", 0x10de, 0x1ad7, PF_CLASS_UCSI, "TU104 USB Type-C UCSI Controller", "nvidia-gpu", 5, 0);
	pf_dev(&inv, "0000:3b:00.2", 0x10de, 0x1ad6, PF_CLASS_USB, "TU104 USB 3.1 Host Controller", "xhci_hcd", 5, 0);
	pf_dev(&inv, "0000:3b:00.1", 0x10de, 0x10f8, PF_CLASS_AUDIO, "TU104 HD Audio Controller", "snd_hda_intel", 5, 0);
	pf_dev(&inv, "0000:3b:00.0", 0x10de, 0x1e87, PF_CLASS_VGA, "TU104 [GeForce RTX 2080 Rev. A]", "nouveau", 5, 0);
	pf_pt(&cfg, 0x10de, 1);
	build_ok();

	cr_assert_eq(plan.n, 1);
	const struct vgp_plan_gpu *g = gpu("0000:3b:00.0");
	cr_assert_eq(g->n_members, 4);
	const char *want[] = { "0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3" };
	for (size_t k = 0; k < 4; k++)
		cr_assert_str_eq(inv.devs[g->members[k]].addr, want[k]);
	expect("0000:3b:00.0", VGP_ACT_BIND, "selected: 1 of 1 on NUMA 0", "nvidia.com/TU104_GEFORCE_RTX_2080_REV__A");
}

Test(plan, gpu_listed_first_in_members)
{
	/* the GPU is not the lowest address of its group: it is still listed first */
	pf_dev(&inv, "0000:21:00.0", 0x10de, 0x22ba, PF_CLASS_AUDIO, NULL, "snd_hda_intel", 9, 0);
	pf_dev(&inv, "0000:21:00.1", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 9, 0);
	pf_pt(&cfg, 0x10de, 1);
	build_ok();
	const struct vgp_plan_gpu *g = gpu("0000:21:00.1");
	cr_assert_eq(g->n_members, 2);
	cr_assert_str_eq(inv.devs[g->members[0]].addr, "0000:21:00.1");
	cr_assert_str_eq(inv.devs[g->members[1]].addr, "0000:21:00.0");
	cr_assert_eq(g->action, VGP_ACT_BIND);
}

/* ---- eligibility ----------------------------------------------------------------------------------------------- */

Test(plan, foreign_device_in_group)
{
	pf_dev(&inv, "0000:01:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 7, 0);
	pf_dev(&inv, "0000:02:00.0", 0x8086, 0x10d3, PF_CLASS_ETH, "82574L Gigabit Network Connection", "e1000e", 7, 0);
	pf_dev(&inv, "0000:05:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 8, 0);
	pf_dev(&inv, "0000:06:00.0", 0x8086, 0x10d3, PF_CLASS_ETH, NULL, NULL, 8, 0);
	pf_dev(&inv, "0000:09:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 9, 0);
	pf_pt_device(pf_pt(&cfg, 0x10de, VGP_COUNT_ALL), L40S);
	build_ok();

	expect("0000:01:00.0", VGP_ACT_INELIGIBLE, "foreign device 0000:02:00.0 (8086:10d3, e1000e) in IOMMU group 7", "");
	expect("0000:05:00.0", VGP_ACT_INELIGIBLE, "foreign device 0000:06:00.0 (8086:10d3, no driver) in IOMMU group 8", "");
	expect("0000:09:00.0", VGP_ACT_BIND, "selected: 1 of all on NUMA 0", L40S_RES);
	cr_assert_eq(gpu("0000:01:00.0")->n_members, 2, "the foreign device is still listed as a member");
	cr_assert_not(plan.shortfall);
}

Test(plan, two_gpus_in_one_group_are_foreign_to_each_other)
{
	pf_dev(&inv, "0000:41:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 4, 0);
	pf_dev(&inv, "0000:42:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 4, 0);
	pf_pt_device(pf_pt(&cfg, 0x10de, 1), L40S);
	build_ok();
	expect("0000:41:00.0", VGP_ACT_INELIGIBLE, "foreign device 0000:42:00.0 (10de:26b9, nvidia) in IOMMU group 4", "");
	expect("0000:42:00.0", VGP_ACT_INELIGIBLE, "foreign device 0000:41:00.0 (10de:26b9, nvidia) in IOMMU group 4", "");
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 1 but only 0 GPUs match on this node (2 more ineligible)");
}

Test(plan, nvswitch_in_group_and_on_node)
{
	pf_dev(&inv, "0000:07:00.0", 0x10de, 0x22a3, PF_CLASS_NVSWITCH, "GH100 [H100 NVSwitch]", "nvidia", 7, 0);
	pf_dev(&inv, "0000:08:00.0", 0x10de, 0x2330, PF_CLASS_3D, "GH100 [H100 SXM5 80GB]", "nvidia", 7, 0);
	pf_dev(&inv, "0000:18:00.0", 0x10de, 0x2330, PF_CLASS_3D, "GH100 [H100 SXM5 80GB]", "nvidia", 18, 0);
	pf_dev(&inv, "0000:c5:00.0", 0x10de, 0x22a3, PF_CLASS_NVSWITCH, "GH100 [H100 NVSwitch]", "nvidia", 40, 1);
	pf_pt_device(pf_pt(&cfg, 0x10de, 1), 0x2330);
	build_ok();

	cr_assert_eq(plan.n, 2, "NVSwitches are not rows");
	expect("0000:08:00.0", VGP_ACT_INELIGIBLE, "NVSwitch 0000:07:00.0 in IOMMU group 7", "");
	expect_why("0000:08:00.0", VGP_INEL_NVSWITCH);
	expect("0000:18:00.0", VGP_ACT_BIND, "selected: 1 of 1 on NUMA 0", "nvidia.com/GH100_H100_SXM5_80GB");
	cr_assert_eq(plan.n_warnings, 1);
	cr_assert_str_eq(plan.warnings[0], "NVSwitch on this node (2 functions, first 0000:07:00.0): NVIDIA Fabric "
					   "Manager may not support splitting the node's GPUs between the host and VMs");
}

Test(plan, nvswitch_elsewhere_only_warns)
{
	pf_dev(&inv, "0000:18:00.0", 0x10de, 0x2330, PF_CLASS_3D, "GH100 [H100 SXM5 80GB]", "nvidia", 18, 0);
	pf_dev(&inv, "0000:c5:00.0", 0x10de, 0x22a3, PF_CLASS_NVSWITCH, NULL, "nvidia", 40, 1);
	pf_pt(&cfg, 0x10de, 1);
	build_ok();
	expect("0000:18:00.0", VGP_ACT_BIND, "selected: 1 of 1 on NUMA 0", "nvidia.com/GH100_H100_SXM5_80GB");
	cr_assert_eq(plan.n_warnings, 1);
	cr_assert_str_eq(plan.warnings[0], "NVSwitch on this node (1 function, first 0000:c5:00.0): NVIDIA Fabric "
					   "Manager may not support splitting the node's GPUs between the host and VMs");
}

Test(plan, iommu_off_everything_ineligible)
{
	eight_l40s();
	inv.iommu = false;
	pf_pt_device(pf_pt(&cfg, 0x10de, 2), L40S);
	build_ok();

	cr_assert_not(plan.iommu);
	cr_assert_eq(plan.n, 8);
	for (size_t i = 0; i < plan.n; i++) {
		cr_assert_eq(plan.gpus[i].action, VGP_ACT_INELIGIBLE);
		cr_assert_str_eq(plan.gpus[i].reason, "IOMMU off: no IOMMU groups (enable intel_iommu=on / amd_iommu=on)");
	}
	cr_assert(plan.shortfall);
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 2 but only 0 GPUs match on this node (8 more ineligible)");
	cr_assert_eq(res(L40S_RES)->n_gpus, 0);
}

Test(plan, no_iommu_group)
{
	pf_dev(&inv, "0000:17:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", -1, 0);
	pf_dev(&inv, "0000:17:00.1", 0x10de, 0x22ba, PF_CLASS_AUDIO, NULL, "snd_hda_intel", -1, 0);
	pf_dev(&inv, "0000:31:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "vfio-pci", -1, 0);
	pf_pt_device(pf_pt(&cfg, 0x10de, VGP_COUNT_ALL), L40S);
	build_ok();
	expect("0000:17:00.0", VGP_ACT_INELIGIBLE, "no IOMMU group", "");
	expect("0000:31:00.0", VGP_ACT_INELIGIBLE, "no IOMMU group", "");
	cr_assert_eq(gpu("0000:17:00.0")->n_members, 1);
}

Test(plan, sriov_vfs_enabled)
{
	struct vgp_pci_dev *d = pf_dev(&inv, "0000:17:00.0", 0x10de, 0x2236, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 3, 0);
	d->sriov_numvfs = 4;
	d = pf_dev(&inv, "0000:31:00.0", 0x10de, 0x2236, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 4, 0);
	d->sriov_numvfs = 1;
	pf_dev(&inv, "0000:4b:00.0", 0x10de, 0x2236, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 5, 0);
	pf_pt(&cfg, 0x10de, 1);
	build_ok();
	expect("0000:17:00.0", VGP_ACT_INELIGIBLE, "SR-IOV: 4 VFs enabled", "");
	expect_why("0000:17:00.0", VGP_INEL_SRIOV);
	expect("0000:31:00.0", VGP_ACT_INELIGIBLE, "SR-IOV: 1 VF enabled", "");
	expect("0000:4b:00.0", VGP_ACT_BIND, "selected: 1 of 1 on NUMA 0", "nvidia.com/GA102GL_A10");
}

Test(plan, boot_vga_ineligible)
{
	struct vgp_pci_dev *d = pf_dev(&inv, "0000:01:00.0", 0x10de, 0x1eb8, PF_CLASS_VGA, "TU104GL [Tesla T4]", "nvidia", 1, 0);
	d->boot_vga = true;
	pf_dev(&inv, "0000:02:00.0", 0x10de, 0x1eb8, PF_CLASS_3D, "TU104GL [Tesla T4]", "nvidia", 2, 0);
	pf_pt_device(pf_pt(&cfg, 0x10de, 2), 0x1eb8);
	build_ok();
	expect("0000:01:00.0", VGP_ACT_INELIGIBLE, "boot VGA (drives the console)", "");
	expect_why("0000:01:00.0", VGP_INEL_BOOT_VGA);
	expect("0000:02:00.0", VGP_ACT_BIND, "selected: 1 of 2 on NUMA 0", "nvidia.com/TU104GL_TESLA_T4");
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 2 but only 1 GPU match on this node (1 more ineligible)");
}

/* ---- selection order ------------------------------------------------------------------------------------------ */

Test(plan, vfio_beyond_count_stays_passthrough)
{
	pf_gpu_audio(&inv, "0000:17:00.0", L40S, L40S_MODEL, "nvidia", 1, 0);
	pf_gpu_audio(&inv, "0000:31:00.0", L40S, L40S_MODEL, "vfio-pci", 2, 0);
	pf_gpu_audio(&inv, "0000:4b:00.0", L40S, L40S_MODEL, "vfio-pci", 3, 0);
	pf_gpu_audio(&inv, "0000:65:00.0", L40S, L40S_MODEL, "vfio-pci", 4, 1);
	pf_pt_device(pf_pt(&cfg, 0x10de, 2), L40S);
	build_ok();
	expect("0000:31:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci", L40S_RES);
	expect("0000:4b:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci", L40S_RES);
	expect("0000:65:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci (beyond count 2)", L40S_RES);
	expect("0000:17:00.0", VGP_ACT_KEEP, "not needed: count 2 reached", "");
	cr_assert_str_eq(res_list(L40S_RES), "0000:31:00.0,0000:4b:00.0,0000:65:00.0");
	/* served, but never Healthy (serve_loop.c): kubelet hands out at most the count */
	cr_assert_not(gpu("0000:31:00.0")->beyond_count);
	cr_assert_not(gpu("0000:4b:00.0")->beyond_count);
	cr_assert(gpu("0000:65:00.0")->beyond_count);
	cr_assert_not(gpu("0000:17:00.0")->beyond_count);
	cr_assert_not(plan.shortfall);
}

Test(plan, variant_driver_counts_as_passthrough)
{
	pf_dev(&inv, "0008:01:00.0", 0x10de, 0x2941, PF_CLASS_3D, "GB100 [GB200]", "nvgrace_gpu_vfio_pci", 8, 0);
	pf_dev(&inv, "0009:01:00.0", 0x10de, 0x2941, PF_CLASS_3D, "GB100 [GB200]", "nvidia", 9, 1);
	pf_pt(&cfg, 0x10de, 1);
	build_ok();
	expect("0008:01:00.0", VGP_ACT_PASSTHROUGH, "already on nvgrace_gpu_vfio_pci", "nvidia.com/GB100_GB200");
	expect("0009:01:00.0", VGP_ACT_KEEP, "not needed: count 1 reached", "");
}

Test(plan, sticky_before_idle)
{
	eight_l40s();
	sticky[n_sticky++] = "0000:e3:00.0";
	sticky[n_sticky++] = "ca:00.0"; /* short form is normalised */
	sticky[n_sticky++] = "0000:99:00.0"; /* gone from the node: ignored */
	pf_pt_device(pf_pt(&cfg, 0x10de, 3), L40S);
	build_ok();
	expect("0000:31:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci", L40S_RES);
	expect("0000:ca:00.0", VGP_ACT_BIND, "selected: sticky (passed through before)", L40S_RES);
	expect("0000:e3:00.0", VGP_ACT_BIND, "selected: sticky (passed through before)", L40S_RES);
	cr_assert_str_eq(with_action(VGP_ACT_BIND), "0000:ca:00.0,0000:e3:00.0");
}

Test(plan, sticky_limited_by_count)
{
	eight_l40s();
	sticky[n_sticky++] = "0000:e3:00.0";
	sticky[n_sticky++] = "0000:ca:00.0";
	pf_pt_device(pf_pt(&cfg, 0x10de, 2), L40S);
	build_ok();
	/* vfio first, then one sticky in address order */
	cr_assert_str_eq(res_list(L40S_RES), "0000:31:00.0,0000:ca:00.0");
	expect("0000:e3:00.0", VGP_ACT_KEEP, "not needed: count 2 reached", "");
}

Test(plan, cmdline_ids_before_idle)
{
	pf_gpu_audio(&inv, "0000:17:00.0", L40S, L40S_MODEL, "nvidia", 1, 0);
	pf_dev(&inv, "0000:b1:00.0", 0x10de, 0x2236, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 2, 1);
	pf_cmdline_id(&inv, 0x10de, 0x2236);
	pf_pt(&cfg, 0x10de, 1); /* any NVIDIA display function */
	build_ok();
	expect("0000:b1:00.0", VGP_ACT_BIND, "selected: named by vfio-pci.ids on the kernel command line",
	       "nvidia.com/GA102GL_A10");
	expect("0000:17:00.0", VGP_ACT_KEEP, "not needed: count 1 reached", "");
	/* the entry's GPUs derive two names: two resources, one count */
	cr_assert_eq(plan.n_res, 2);
	cr_assert_str_eq(plan.res[0].name, L40S_RES);
	cr_assert_str_eq(plan.res[1].name, "nvidia.com/GA102GL_A10");
	cr_assert_eq(res(L40S_RES)->n_gpus, 0);
	cr_assert_str_eq(res_list("nvidia.com/GA102GL_A10"), "0000:b1:00.0");
	cr_assert(has_warning("passthrough[0]: its GPUs have different names, served as 2 resources "
			      "(nvidia.com/AD102GL_L40S, nvidia.com/GA102GL_A10); the count applies to them together"));
}

Test(plan, sticky_beats_cmdline)
{
	pf_dev(&inv, "0000:17:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 1, 0);
	pf_dev(&inv, "0000:31:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 2, 0);
	pf_dev(&inv, "0000:4b:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 3, 0);
	sticky[n_sticky++] = "0000:4b:00.0";
	pf_cmdline_id(&inv, 0x10de, L40S);
	pf_pt(&cfg, 0x10de, 2);
	build_ok();
	expect("0000:4b:00.0", VGP_ACT_BIND, "selected: sticky (passed through before)", L40S_RES);
	expect("0000:17:00.0", VGP_ACT_BIND, "selected: named by vfio-pci.ids on the kernel command line", L40S_RES);
	expect("0000:31:00.0", VGP_ACT_KEEP, "not needed: count 2 reached", "");
}

Test(plan, exclude_list)
{
	eight_l40s();
	exclude[n_exclude] = "0000:b1:00.0";
	exclude_why[n_exclude++] = "busy: unbind lock refused";
	exclude[n_exclude] = "0000:17:00.0";
	exclude_why[n_exclude++] = NULL;
	pf_pt_device(pf_pt(&cfg, 0x10de, 4), L40S);
	build_ok();
	expect("0000:b1:00.0", VGP_ACT_INELIGIBLE, "busy: unbind lock refused", "");
	expect("0000:17:00.0", VGP_ACT_INELIGIBLE, "excluded: busy at bind time", "");
	/* an exclusion reads "busy: ..." but is not the busy policy's skip: the type tells them apart */
	expect_why("0000:b1:00.0", VGP_INEL_EXCLUDED);
	expect_why("0000:17:00.0", VGP_INEL_EXCLUDED);
	/* 31 (vfio, NUMA 0); then NUMA 1 ca; tie -> NUMA 0 4b; NUMA 1 e3 */
	cr_assert_str_eq(res_list(L40S_RES), "0000:31:00.0,0000:4b:00.0,0000:ca:00.0,0000:e3:00.0");
	cr_assert_eq(res(L40S_RES)->matched, 5);
}

/* ---- NUMA policies -------------------------------------------------------------------------------------------- */

/* NUMA 0: 17, 65, b1, e3; NUMA 1: 31, 4b, 98, ca (interleaved addresses) */
static void
interleaved(void)
{
	static const char *n0[] = { "0000:17:00.0", "0000:65:00.0", "0000:b1:00.0", "0000:e3:00.0" };
	static const char *n1[] = { "0000:31:00.0", "0000:4b:00.0", "0000:98:00.0", "0000:ca:00.0" };
	for (int i = 0; i < 4; i++) {
		pf_gpu_audio(&inv, n0[i], L40S, L40S_MODEL, "nvidia", 10 + i, 0);
		pf_gpu_audio(&inv, n1[i], L40S, L40S_MODEL, "nvidia", 20 + i, 1);
	}
}

Test(plan, numa_balanced)
{
	interleaved();
	pf_pt_device(pf_pt(&cfg, 0x10de, 3), L40S);
	build_ok();
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0,0000:65:00.0");
	expect("0000:17:00.0", VGP_ACT_BIND, "selected: 1 of 3 on NUMA 0", L40S_RES);
	expect("0000:31:00.0", VGP_ACT_BIND, "selected: 2 of 3 on NUMA 1", L40S_RES);
	expect("0000:65:00.0", VGP_ACT_BIND, "selected: 3 of 3 on NUMA 0", L40S_RES);
}

Test(plan, numa_packed)
{
	interleaved();
	cfg.numa_policy = VGP_NUMA_PACKED;
	pf_pt_device(pf_pt(&cfg, 0x10de, 5), L40S);
	build_ok();
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0,0000:65:00.0,0000:b1:00.0,0000:e3:00.0");
	expect("0000:31:00.0", VGP_ACT_BIND, "selected: 5 of 5 on NUMA 1", L40S_RES);
	expect("0000:e3:00.0", VGP_ACT_BIND, "selected: 4 of 5 on NUMA 0", L40S_RES);
}

Test(plan, numa_none)
{
	interleaved();
	cfg.numa_policy = VGP_NUMA_NONE;
	pf_pt_device(pf_pt(&cfg, 0x10de, 3), L40S);
	build_ok();
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0,0000:4b:00.0");
}

Test(plan, numa_balanced_counts_earlier_tiers)
{
	interleaved();
	sticky[n_sticky++] = "0000:17:00.0";
	sticky[n_sticky++] = "0000:65:00.0";
	pf_pt_device(pf_pt(&cfg, 0x10de, 4), L40S);
	build_ok();
	/* two sticky on NUMA 0: the remaining two go to NUMA 1 */
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0,0000:4b:00.0,0000:65:00.0");
}

Test(plan, numa_unknown_balanced)
{
	pf_dev(&inv, "0000:17:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 1, -1);
	pf_dev(&inv, "0000:31:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 2, 0);
	pf_dev(&inv, "0000:4b:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 3, -1);
	pf_dev(&inv, "0000:65:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 4, 0);
	pf_pt(&cfg, 0x10de, 3);
	build_ok();
	/* known node first, unknown (-1) as its own group after it */
	expect("0000:31:00.0", VGP_ACT_BIND, "selected: 1 of 3 on NUMA 0", L40S_RES);
	expect("0000:17:00.0", VGP_ACT_BIND, "selected: 2 of 3 NUMA unknown", L40S_RES);
	expect("0000:65:00.0", VGP_ACT_BIND, "selected: 3 of 3 on NUMA 0", L40S_RES);
	expect("0000:4b:00.0", VGP_ACT_KEEP, "not needed: count 3 reached", "");
}

Test(plan, numa_all_unknown_is_address_order)
{
	pf_dev(&inv, "0000:65:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 4, -1);
	pf_dev(&inv, "0000:17:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 1, -1);
	pf_dev(&inv, "0000:31:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 2, -1);
	pf_pt(&cfg, 0x10de, 2);
	build_ok();
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0");
	cr_assert_str_eq(gpu("0000:31:00.0")->reason, "selected: 2 of 2 NUMA unknown");
}

/* ---- match fields, several entries ------------------------------------------------------------------------------ */

Test(plan, addresses_and_numa_filters)
{
	interleaved();
	struct vgp_passthrough *p = pf_pt(&cfg, 0x10de, 2);
	pf_pt_address(p, "0000:ca:00.0");
	pf_pt_address(p, "0000:e3:00.0");
	pf_pt_name(p, "L40S_PINNED");
	p = pf_pt(&cfg, 0x10de, VGP_COUNT_ALL);
	pf_pt_numa(p, 1);
	pf_pt_name(p, "L40S_NUMA1");
	build_ok();
	cr_assert_str_eq(res_list("nvidia.com/L40S_PINNED"), "0000:ca:00.0,0000:e3:00.0");
	cr_assert_str_eq(res_list("nvidia.com/L40S_NUMA1"), "0000:31:00.0,0000:4b:00.0,0000:98:00.0");
	cr_assert_eq(res("nvidia.com/L40S_NUMA1")->matched, 3, "ca was taken by passthrough[0]");
	cr_assert_eq(gpu("0000:ca:00.0")->entry, 0);
	cr_assert_eq(gpu("0000:98:00.0")->entry, 1);
	expect("0000:17:00.0", VGP_ACT_KEEP, "no passthrough entry matches", "");
	cr_assert_eq(gpu("0000:17:00.0")->entry, -1);
}

Test(plan, later_entry_takes_what_earlier_left)
{
	interleaved();
	pf_pt_name(pf_pt(&cfg, 0x10de, 2), "L40S_A");
	pf_pt_name(pf_pt(&cfg, 0x10de, 7), "L40S_B");
	build_ok();
	cr_assert_str_eq(res_list("nvidia.com/L40S_A"), "0000:17:00.0,0000:31:00.0");
	cr_assert_eq(res("nvidia.com/L40S_B")->n_gpus, 6);
	cr_assert(plan.shortfall);
	cr_assert_str_eq(plan.shortfall_msg,
			 "passthrough[1]: count 7 but only 6 GPUs match on this node (2 more taken by earlier entries)");
}

Test(plan, count_all_never_short)
{
	pf_pt_device(pf_pt(&cfg, 0x10de, VGP_COUNT_ALL), L40S);
	build_ok();
	cr_assert_eq(plan.n, 0);
	cr_assert_not(plan.shortfall);
	cr_assert_null(plan.shortfall_msg);
	cr_assert_eq(plan.n_res, 0, "no GPU to derive a name from and no resourceName");
}

Test(plan, shortfall_numbers)
{
	for (int i = 0; i < 3; i++) {
		char a[16];
		snprintf(a, sizeof(a), "0000:%02x:00.0", 0x17 + i);
		pf_dev(&inv, a, 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", i, 0);
	}
	pf_pt_device(pf_pt(&cfg, 0x10de, 4), L40S);
	build_ok();
	cr_assert(plan.shortfall);
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 4 but only 3 GPUs match on this node");
	cr_assert_eq(res(L40S_RES)->wanted, 4);
	cr_assert_eq(res(L40S_RES)->matched, 3);
	cr_assert_eq(res(L40S_RES)->n_gpus, 3);
}

Test(plan, no_entry_keeps_everything)
{
	pf_dev(&inv, "0000:03:00.0", 0x102b, 0x0536, PF_CLASS_VGA, "Integrated Matrox G200eW3", "mgag200", 3, 0);
	pf_dev(&inv, "0000:17:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 1, 0);
	pf_dev(&inv, "0000:31:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "vfio-pci", 2, 0);
	build_ok();
	cr_assert_eq(plan.n, 2, "other vendors' display functions are rows only when an entry names the vendor");
	expect("0000:17:00.0", VGP_ACT_KEEP, "no passthrough entry matches", "");
	expect("0000:31:00.0", VGP_ACT_KEEP, "no passthrough entry matches (stays on vfio-pci, not served)", "");
	cr_assert_eq(plan.n_res, 0);
}

Test(plan, other_vendor_by_device_id)
{
	/* emulated devices in the qemu e2e: not display class, chosen by id */
	pf_dev(&inv, "0000:00:02.0", 0x1234, 0x1111, PF_CLASS_VGA, NULL, "bochs-drm", 1, -1);
	pf_dev(&inv, "0000:01:00.0", 0x1b36, 0x0010, 0x010802, "QEMU NVM Express Controller", "nvme", 2, -1);
	pf_dev(&inv, "0000:02:00.0", 0x1b36, 0x0010, 0x010802, "QEMU NVM Express Controller", "vfio-pci", 3, -1);
	pf_dev(&inv, "0000:03:00.0", 0x1b36, 0x0011, 0x00ff00, NULL, NULL, 4, -1);
	struct vgp_passthrough *p = pf_pt(&cfg, 0x1b36, 2);
	pf_pt_device(p, 0x0011);
	pf_pt_name(p, "QEMU_TEST");
	build_ok();
	/* 1234:1111 is display class but its vendor is not named; 1b36:0010 on vfio is not named by device id */
	cr_assert_eq(plan.n, 1);
	expect("0000:03:00.0", VGP_ACT_BIND, "selected: 1 of 2 NUMA unknown", "nvidia.com/QEMU_TEST");
	cr_assert_str_eq(plan.shortfall_msg, "passthrough[0]: count 2 but only 1 GPU match on this node");
}

Test(plan, vfio_function_named_by_entry_is_row)
{
	pf_dev(&inv, "0000:01:00.0", 0x1b36, 0x0010, 0x010802, "QEMU NVM Express Controller", "nvme", 2, -1);
	pf_dev(&inv, "0000:02:00.0", 0x1b36, 0x0010, 0x010802, "QEMU NVM Express Controller", "vfio-pci", 3, -1);
	pf_pt_device(pf_pt(&cfg, 0x1b36, 1), 0x0010);
	build_ok();
	cr_assert_eq(plan.n, 2);
	expect("0000:02:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci", "nvidia.com/QEMU_NVM_EXPRESS_CONTROLLER");
	expect("0000:01:00.0", VGP_ACT_KEEP, "not needed: count 1 reached", "");
}

/* ---- names ----------------------------------------------------------------------------------------------------- */

Test(plan, duplicate_resource_name_is_usage_error)
{
	interleaved();
	pf_pt_numa(pf_pt(&cfg, 0x10de, 1), 0);
	pf_pt_numa(pf_pt(&cfg, 0x10de, 1), 1);
	cr_assert_eq(build_into(&plan), -1);
	cr_assert_not_null(err);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	cr_assert_str_eq(vgp_error_text(err),
			 "passthrough[0] and passthrough[1] both give the resource nvidia.com/AD102GL_L40S: set a distinct resourceName");
	cr_assert_eq(plan.n, 0, "plan is empty after an error");
	cr_assert_null(plan.gpus);
}

Test(plan, duplicate_explicit_names_is_usage_error)
{
	interleaved();
	struct vgp_passthrough *p = pf_pt(&cfg, 0x10de, 1);
	pf_pt_numa(p, 0);
	pf_pt_name(p, "L40S");
	free(p->json_path);
	p->json_path = strdup("nodes[1].passthrough[0]");
	p = pf_pt(&cfg, 0x10de, 1);
	pf_pt_numa(p, 1);
	pf_pt_name(p, "L40S");
	free(p->json_path);
	p->json_path = strdup("nodes[1].passthrough[1]");
	cr_assert_eq(build_into(&plan), -1);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	cr_assert_str_eq(vgp_error_text(err), "nodes[1].passthrough[0] and nodes[1].passthrough[1] both give the resource "
				   "nvidia.com/L40S: set a distinct resourceName");
}

/* Issue 11: a derived name and a resourceName that give one KubeVirt variable (AD102GL_L40S, ad102gl.l40s) are an
 * input error naming both and the variable: the configuration alone cannot see a derived name. */
Test(plan, derived_and_pinned_names_one_kubevirt_variable)
{
	interleaved();
	pf_pt_numa(pf_pt(&cfg, 0x10de, 1), 0);
	struct vgp_passthrough *p = pf_pt(&cfg, 0x10de, 1);
	pf_pt_numa(p, 1);
	pf_pt_name(p, "ad102gl.l40s");
	cr_assert_eq(build_into(&plan), -1);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	cr_assert_str_eq(vgp_error_text(err), "passthrough[1]: resources nvidia.com/ad102gl.l40s and nvidia.com/AD102GL_L40S "
				   "(passthrough[0]) give the same KubeVirt variable PCI_RESOURCE_NVIDIA_COM_AD102GL_L40S: "
				   "set distinct resourceNames");
}

/* Issue 11: a GPU in a PCI domain above ffff keeps its full address and is ineligible for a typed reason. */
Test(plan, domain_above_ffff_ineligible)
{
	eight_l40s();
	pf_dev(&inv, "10000:b0:00.0", 0x10de, L40S, PF_CLASS_3D, L40S_MODEL, "nvidia", 40, 0);
	pf_pt_device(pf_pt(&cfg, 0x10de, 1), L40S);
	build_ok();
	expect("10000:b0:00.0", VGP_ACT_INELIGIBLE, "PCI domain 10000 above ffff: KubeVirt parses only 4-digit PCI "
	       "domains and cannot give this GPU to a VM", "");
	expect_why("10000:b0:00.0", VGP_INEL_DOMAIN);
}

Test(plan, resource_name_and_prefix_override)
{
	eight_l40s();
	pf_cfg_prefix(&cfg, "gpu.example.org");
	pf_pt_name(pf_pt_device_ret(pf_pt(&cfg, 0x10de, 1), L40S), "l40s-vm");
	build_ok();
	cr_assert_eq(plan.n_res, 1);
	cr_assert_str_eq(plan.res[0].name, "gpu.example.org/l40s-vm");
	expect("0000:31:00.0", VGP_ACT_PASSTHROUGH, "already on vfio-pci", "gpu.example.org/l40s-vm");
	cr_assert_eq(plan.n_warnings, 0);
}

Test(plan, invalid_prefix_is_usage_error)
{
	eight_l40s();
	pf_cfg_prefix(&cfg, "Example.org");
	pf_pt(&cfg, 0x10de, 1);
	cr_assert_eq(build_into(&plan), -1);
	cr_assert_eq(vgp_error_exit_code(err), 2);
	cr_assert_str_eq(vgp_error_text(err), "resourcePrefix \"Example.org\" is not a valid DNS subdomain");
}

Test(plan, repaired_name_warned)
{
	pf_dev(&inv, "0000:17:00.0", 0x10de, 0x24ba, PF_CLASS_3D, "GA104 [RTX A4500 Embedded GPU ]", "nvidia", 1, 0);
	pf_dev(&inv, "0000:31:00.0", 0x10de, 0x24ba, PF_CLASS_3D, "GA104 [RTX A4500 Embedded GPU ]", "nvidia", 2, 0);
	pf_pt(&cfg, 0x10de, 2);
	build_ok();
	cr_assert_str_eq(res_list("nvidia.com/GA104_RTX_A4500_EMBEDDED_GPU"), "0000:17:00.0,0000:31:00.0");
	cr_assert_eq(plan.n_warnings, 1, "warned once per device id");
	cr_assert_str_eq(plan.warnings[0],
			 "10de:24ba \"GA104 [RTX A4500 Embedded GPU ]\": derived resource name repaired to GA104_RTX_A4500_EMBEDDED_GPU");
}

Test(plan, two_ids_one_name_share_resource)
{
	pf_dev(&inv, "0000:17:00.0", 0x10de, 0x2236, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 1, 0);
	pf_dev(&inv, "0000:31:00.0", 0x10de, 0x2237, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 2, 0);
	pf_dev(&inv, "0000:4b:00.0", 0x10de, 0x2236, PF_CLASS_3D, "GA102GL [A10]", "nvidia", 3, 0);
	struct vgp_passthrough *p = pf_pt(&cfg, 0x10de, 3);
	pf_pt_device(p, 0x2236);
	pf_pt_device(p, 0x2237);
	build_ok();
	cr_assert_eq(plan.n_res, 1);
	cr_assert_str_eq(res_list("nvidia.com/GA102GL_A10"), "0000:17:00.0,0000:31:00.0,0000:4b:00.0");
	cr_assert_eq(plan.n_warnings, 1);
	cr_assert_str_eq(plan.warnings[0], "nvidia.com/GA102GL_A10: device ids 10de:2236, 10de:2237 share one resource");
}

Test(plan, missing_model_uses_hex_id)
{
	pf_dev(&inv, "0000:17:00.0", 0x10de, 0x26b5, PF_CLASS_3D, NULL, "nvidia", 1, 0);
	pf_pt_device(pf_pt(&cfg, 0x10de, 1), 0x26b5);
	build_ok();
	expect("0000:17:00.0", VGP_ACT_BIND, "selected: 1 of 1 on NUMA 0", "nvidia.com/26b5");
}

/* ---- determinism, names of actions ------------------------------------------------------------------------------ */

static void
assert_same(const struct vgp_plan *a, const struct vgp_plan *b)
{
	cr_assert_eq(a->n, b->n);
	cr_assert_eq(a->n_res, b->n_res);
	cr_assert_eq(a->n_warnings, b->n_warnings);
	cr_assert_eq(a->shortfall, b->shortfall);
	for (size_t i = 0; i < a->n; i++) {
		cr_assert_eq(a->gpus[i].dev, b->gpus[i].dev);
		cr_assert_eq(a->gpus[i].action, b->gpus[i].action);
		cr_assert_eq(a->gpus[i].entry, b->gpus[i].entry);
		cr_assert_eq(a->gpus[i].busy, b->gpus[i].busy);
		cr_assert_str_eq(a->gpus[i].reason, b->gpus[i].reason);
		cr_assert_str_eq(a->gpus[i].resource, b->gpus[i].resource);
		cr_assert_eq(a->gpus[i].n_members, b->gpus[i].n_members);
		cr_assert_arr_eq(a->gpus[i].members, b->gpus[i].members, a->gpus[i].n_members * sizeof(size_t));
	}
	for (size_t r = 0; r < a->n_res; r++) {
		cr_assert_str_eq(a->res[r].name, b->res[r].name);
		cr_assert_eq(a->res[r].matched, b->res[r].matched);
		cr_assert_eq(a->res[r].n_gpus, b->res[r].n_gpus);
		cr_assert_arr_eq(a->res[r].gpus, b->res[r].gpus, a->res[r].n_gpus * sizeof(size_t));
	}
	for (size_t k = 0; k < a->n_warnings; k++)
		cr_assert_str_eq(a->warnings[k], b->warnings[k]);
}

Test(plan, deterministic)
{
	struct vgp_plan again = { 0 };

	eight_l40s();
	pf_dev(&inv, "0000:c5:00.0", 0x10de, 0x22a3, PF_CLASS_NVSWITCH, NULL, "nvidia", 40, 1);
	sticky[n_sticky++] = "0000:e3:00.0";
	pf_pt_device(pf_pt(&cfg, 0x10de, 5), L40S);
	build_ok();
	cr_assert_eq(build_into(&again), 0);
	assert_same(&plan, &again);
	/* vfio 31 (NUMA 0) and sticky e3 (NUMA 1), then balanced: 17 (0), b1 (1), 4b (0) */
	cr_assert_str_eq(res_list(L40S_RES), "0000:17:00.0,0000:31:00.0,0000:4b:00.0,0000:b1:00.0,0000:e3:00.0");
	vgp_plan_free(&again);
	cr_assert_null(again.gpus);
	cr_assert_eq(again.n, 0);
}

Test(plan, deterministic_whatever_the_inventory_order)
{
	struct vgp_plan sorted = { 0 };

	interleaved();
	pf_pt_device(pf_pt(&cfg, 0x10de, 5), L40S);
	build_ok();
	/* reverse the inventory: the plan must pick the same addresses */
	for (size_t i = 0; i < inv.n / 2; i++) {
		struct vgp_pci_dev t = inv.devs[i];
		inv.devs[i] = inv.devs[inv.n - 1 - i];
		inv.devs[inv.n - 1 - i] = t;
	}
	cr_assert_eq(build_into(&sorted), 0);
	char first[512];
	snprintf(first, sizeof(first), "%s", "0000:17:00.0,0000:31:00.0,0000:4b:00.0,0000:65:00.0,0000:b1:00.0");
	struct vgp_plan keep = plan;
	plan = sorted;
	cr_assert_str_eq(res_list(L40S_RES), first);
	plan = keep;
	vgp_plan_free(&sorted);
}

Test(plan, action_names)
{
	cr_assert_str_eq(vgp_action_name(VGP_ACT_KEEP), "keep");
	cr_assert_str_eq(vgp_action_name(VGP_ACT_BIND), "bind");
	cr_assert_str_eq(vgp_action_name(VGP_ACT_PASSTHROUGH), "passthrough");
	cr_assert_str_eq(vgp_action_name(VGP_ACT_INELIGIBLE), "ineligible");
}
