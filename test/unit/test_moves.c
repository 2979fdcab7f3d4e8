/* test_moves.c — the live re-split's pure diff (plugin/moves.c): served now + new plan -> bind / serve / return,
 * with the rules for which GPUs go back (never pre-bound ones, pods' GPUs last, the NUMA policy for what stays). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "moves.h"
#include "plan.h"
#include "plan_fixtures.h"

#define L40S 0x26b9
#define L40S_MODEL "AD102GL [L40S]"
#define RES "nvidia.com/AD102GL_L40S"

static struct vgp_inventory inv;
static struct vgp_config cfg;
static struct vgp_plan plan;
static struct vgp_moves mv;
static vgp_error_t err;

static void
setup(void)
{
	pf_inv_init(&inv, true);
	pf_cfg_init(&cfg);
	memset(&plan, 0, sizeof plan);
	memset(&mv, 0, sizeof mv);
	err = NULL;
}

static void
teardown(void)
{
	vgp_moves_free(&mv);
	vgp_plan_free(&plan);
	vgp_error_release(&err);
	pf_cfg_free(&cfg);
	pf_inv_free(&inv);
}

TestSuite(moves, .init = setup, .fini = teardown);

/* four L40S at 01..04, NUMA 0,0,1,1, on the given drivers */
static void
four(const char *d1, const char *d2, const char *d3, const char *d4)
{
	pf_gpu_audio(&inv, "0000:01:00.0", L40S, L40S_MODEL, d1, 1, 0);
	pf_gpu_audio(&inv, "0000:02:00.0", L40S, L40S_MODEL, d2, 2, 0);
	pf_gpu_audio(&inv, "0000:03:00.0", L40S, L40S_MODEL, d3, 3, 1);
	pf_gpu_audio(&inv, "0000:04:00.0", L40S, L40S_MODEL, d4, 4, 1);
}

static void
compute(const struct vgp_served_gpu *served, size_t n_served, const char *const *moved, size_t n_moved,
	const char *const *assigned, size_t n_assigned)
{
	int counts[8];
	const char *paths[8];
	struct vgp_plan_input pi = { .inv = &inv, .cfg = &cfg, .pt = cfg.pt, .n_pt = cfg.n_pt,
				     .sticky = moved, .n_sticky = n_moved };
	cr_assert_eq(vgp_plan_build(&pi, &plan, &err), 0, "%s", err ? vgp_error_text(err) : "");
	for (size_t e = 0; e < cfg.n_pt; e++) {
		counts[e] = cfg.pt[e].count;
		paths[e] = cfg.pt[e].json_path;
	}
	struct vgp_moves_input in = {
		.inv = &inv, .plan = &plan, .numa = cfg.numa_policy, .counts = counts, .n_counts = cfg.n_pt,
		.entry_paths = paths, .served = served, .n_served = n_served, .moved = moved, .n_moved = n_moved,
		.assigned = assigned, .n_assigned = n_assigned,
	};
	cr_assert_eq(vgp_moves_compute(&in, &mv, &err), 0);
}

/* "bind 0000:01:00.0, return 0000:03:00.0 (release)" */
static void
expect_moves(const char *want)
{
	char got[1024] = "";
	size_t off = 0;
	for (size_t i = 0; i < mv.n; i++)
		off += (size_t) snprintf(got + off, sizeof got - off, "%s%s %s%s", i ? ", " : "",
					 vgp_move_kind_name(mv.m[i].kind), mv.m[i].addr,
					 mv.m[i].kind == VGP_MOVE_RETURN && mv.m[i].release ? " (release)" : "");
	cr_assert_str_eq(got, want);
}

static const struct vgp_served_gpu served4[] = {
	{ "0000:01:00.0", RES }, { "0000:02:00.0", RES }, { "0000:03:00.0", RES }, { "0000:04:00.0", RES },
};
static const char *const moved4[] = { "0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0" };

Test(moves, raise_binds_the_new_ones_only)
{
	four("vfio-pci", "nvidia", "vfio-pci", "nvidia");
	pf_pt(&cfg, 0x10de, 4);
	compute(served4, 0, NULL, 0, NULL, 0);
	/* nothing served yet: the two on vfio-pci are to be served, the two others bound */
	expect_moves("serve 0000:01:00.0, bind 0000:02:00.0, serve 0000:03:00.0, bind 0000:04:00.0");
	vgp_moves_free(&mv);
	vgp_plan_free(&plan);
	const struct vgp_served_gpu served[] = { { "0000:01:00.0", RES }, { "0000:03:00.0", RES } };
	compute(served, 2, NULL, 0, NULL, 0);
	expect_moves("bind 0000:02:00.0, bind 0000:04:00.0");
	cr_assert_eq(mv.n_bind, 2);
	cr_assert_str_eq(mv.m[0].resource, RES);
}

Test(moves, same_config_no_moves)
{
	four("vfio-pci", "vfio-pci", "nvidia", "nvidia");
	pf_pt(&cfg, 0x10de, 2);
	compute(served4, 2, moved4, 2, NULL, 0);
	expect_moves("");
}

Test(moves, lower_keeps_numa_balance)
{
	four("vfio-pci", "vfio-pci", "vfio-pci", "vfio-pci");
	pf_pt(&cfg, 0x10de, 2);
	compute(served4, 4, moved4, 4, NULL, 0);
	/* balanced: one stays on each NUMA node, the lowest address of each */
	expect_moves("return 0000:02:00.0 (release), return 0000:04:00.0 (release)");
	cr_assert_eq(mv.n_return, 2);
	cr_assert_str_eq(mv.m[0].resource, RES);
	cr_assert_not_null(strstr(mv.m[0].reason, "beyond the count of passthrough[0] (2)"), "%s", mv.m[0].reason);
}

Test(moves, lower_packed_keeps_the_lowest_node)
{
	four("vfio-pci", "vfio-pci", "vfio-pci", "vfio-pci");
	cfg.numa_policy = VGP_NUMA_PACKED;
	pf_pt(&cfg, 0x10de, 2);
	compute(served4, 4, moved4, 4, NULL, 0);
	expect_moves("return 0000:03:00.0 (release), return 0000:04:00.0 (release)");
}

Test(moves, lower_never_returns_a_pods_gpu_when_another_can_go)
{
	four("vfio-pci", "vfio-pci", "vfio-pci", "vfio-pci");
	cfg.numa_policy = VGP_NUMA_NONE;
	pf_pt(&cfg, 0x10de, 3);
	const char *assigned[] = { "0000:04:00.0" };
	compute(served4, 4, moved4, 4, assigned, 1);
	/* address order would return 04; it is a pod's: 03 goes instead */
	expect_moves("return 0000:03:00.0 (release)");
}

Test(moves, lower_with_every_gpu_assigned_returns_one_anyway)
{
	four("vfio-pci", "vfio-pci", "vfio-pci", "vfio-pci");
	pf_pt(&cfg, 0x10de, 3);
	compute(served4, 4, moved4, 4, moved4, 4);
	/* chosen all the same (serve drains it until its pod ends) */
	cr_assert_eq(mv.n_return, 1);
}

Test(moves, prebound_never_returned_prefers_the_plugins)
{
	four("vfio-pci", "vfio-pci", "vfio-pci", "vfio-pci");
	pf_pt(&cfg, 0x10de, 2);
	/* 01 and 02 were on vfio-pci before the plugin (vfio-pci.ids=): 03 and 04 go back */
	compute(served4, 4, moved4 + 2, 2, NULL, 0);
	expect_moves("return 0000:03:00.0 (release), return 0000:04:00.0 (release)");
	vgp_moves_free(&mv);
	vgp_plan_free(&plan);
	cr_assert_eq(mv.n_beyond, 0);
	vgp_moves_free(&mv);
	vgp_plan_free(&plan);
	/* count 1 below the pre-bound ones: nothing to return (the others stay served, Unhealthy past the count) */
	cfg.pt[0].count = 1;
	compute(served4, 4, NULL, 0, NULL, 0);
	expect_moves("");
	cr_assert_eq(mv.n_beyond, 3);
	cr_assert_not(vgp_moves_beyond(&mv, "0000:01:00.0"));
	cr_assert(vgp_moves_beyond(&mv, "0000:04:00.0"));
	vgp_moves_free(&mv);
	vgp_plan_free(&plan);
	/* 01 moved by the plugin, 02 pre-bound, count 1: 02 stays (within the count, Healthy), 01 goes back */
	pf_inv_free(&inv);
	pf_inv_init(&inv, true);
	four("vfio-pci", "vfio-pci", "nvidia", "nvidia");
	compute(served4, 2, moved4, 1, NULL, 0);
	expect_moves("return 0000:01:00.0 (release)");
	cr_assert_eq(mv.n_beyond, 0);
}

Test(moves, removed_entry_returns_all_and_unserves_prebound)
{
	four("vfio-pci", "vfio-pci", "nvidia", "nvidia");
	struct vgp_passthrough *p = pf_pt(&cfg, 0x10de, 1);
	pf_pt_device(p, 0x1234); /* matches nothing on this node */
	compute(served4, 2, moved4 + 1, 1, NULL, 0);
	/* 01 was pre-bound: unserved only; 02 the plugin moved: released */
	expect_moves("return 0000:01:00.0, return 0000:02:00.0 (release)");
	cr_assert_not_null(strstr(mv.m[0].reason, "stays there"), "%s", mv.m[0].reason);
}

Test(moves, plan_view_without_served_state)
{
	four("vfio-pci", "vfio-pci", "vfio-pci", "nvidia");
	pf_pt(&cfg, 0x10de, 1);
	compute(NULL, 0, moved4 + 1, 2, NULL, 0);
	/* the `plan` command: every GPU on vfio counts as served; 01 was there before the plugin and stays */
	expect_moves("return 0000:02:00.0 (release), return 0000:03:00.0 (release)");
}

Test(moves, bound_but_never_served_beyond_the_count_is_returned)
{
	/* a run killed between the bind of 03 and serving it, then the count lowered back */
	four("vfio-pci", "vfio-pci", "vfio-pci", "nvidia");
	pf_pt(&cfg, 0x10de, 2);
	compute(served4, 2, moved4, 3, NULL, 0);
	expect_moves("return 0000:03:00.0 (release)");
	cr_assert_str_eq(mv.m[0].resource, RES);
}
