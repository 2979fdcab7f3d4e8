/* plan.c — the pure decision (docs/architecture.md §1, §5 eligibility, §7 NVSwitch): inventory + config (+ the
 * journal's sticky list and the bind engine's exclude list) -> for every GPU of the node an action, a reason and
 * the resource it is served under. No I/O. Deterministic: every order is by entry index or PCI address.
 *
 * Steps: (1) rows = GPU-like functions; (2) each row's IOMMU group members and eligibility; (3) resource names
 * per entry, with the duplicate check; (4) selection per entry in order: already on vfio (always, even beyond
 * the count), sticky, named by vfio-pci.ids, idle by NUMA policy, busy last; (5) keep/ineligible reasons for
 * the rest, the resource lists and the shortfall.
 *
 * Rows: non-bridge functions that are display class (0x03xx) of vendor 10de or of a vendor an entry names, or
 * whose vendor:device an entry names (so a function on vfio-pci with a named id is a row too). Audio, USB, UCSI
 * functions are members of their GPU's group, not rows.
 *
 * Reasons (exact):
 *   passthrough  "already on <driver>" | "already on <driver> (beyond count N)"
 *   bind         "selected: K of N on NUMA n" | "selected: K of N NUMA unknown" (N = count or "all")
 *                "selected: sticky (passed through before)"
 *                "selected: named by vfio-pci.ids on the kernel command line"
 *                "selected: K of N on NUMA n, busy: held by pid P (comm)[, ...] (busy policy fail|wait)"
 *   keep         "not needed: count N reached" | "no passthrough entry matches"
 *                | "no passthrough entry matches (stays on <vfio driver>, not served)"
 *   ineligible   (first that applies) "PCI domain D above ffff: KubeVirt parses only 4-digit PCI domains and
 *                cannot give this GPU to a VM" | "IOMMU off: no IOMMU groups (enable intel_iommu=on / amd_iommu=on)"
 *                | "no IOMMU group" | "NVSwitch <addr> in IOMMU group G"
 *                | "foreign device <addr> (vvvv:dddd, <driver>|no driver) in IOMMU group G"
 *                | "SR-IOV: N VFs enabled" ("1 VF") ; and for GPUs not on vfio: "boot VGA (drives the console)"
 *                | exclude_why / "excluded: busy at bind time" | "busy: held by pid P (comm)[, pid ...]" (skip)
 * Warnings: "NVSwitch on this node (N functions, first <addr>): NVIDIA Fabric Manager may not support splitting
 * the node's GPUs between the host and VMs"; "vvvv:dddd \"<model>\": derived resource name repaired to NAME";
 * "<resource>: device ids vvvv:dddd, vvvv:dddd share one resource"; "<path>: its GPUs have different names,
 * served as N resources (...); the count applies to them together"; every shortfall message:
 * "<path>: count N but only M GPUs match on this node[ (I more ineligible[, T taken by earlier entries])]".
 *
 * NUMA: balanced gives each pick to the node holding the fewest GPUs of the entry so far (counting those
 * already on vfio, sticky, named by vfio-pci.ids), ties to the lowest node; packed fills the lowest node first;
 * none is address order. Unknown NUMA (-1) is a node of its own, ordered after every known node. */
#include "plan-internal.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A usage error about the configuration's entries (the message starts with an entry's JSON path): it names the
 * file they came from (vgp_config_file), here where it is made. Returns -1. */
int
plan_config_error(const struct ctx *c, vgp_error_t *err, const char *fmt, ...)
{
	const char *file = vgp_config_file(c->in->cfg);
	va_list ap;

	va_start(ap, fmt);
	vgp_make_error_v(err, VGP_ERR_INPUT, 0, fmt, ap);
	va_end(ap);
	return file != NULL ? vgp_error_wrap(err, "%s", file) : -1;
}

/* snprintf that truncates silently: every length that matters is checked before it is used. */
void
plan_setf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, len, fmt, ap) < 0 && len > 0)
		buf[0] = '\0';
	va_end(ap);
}

int
plan_oom(vgp_error_t *err)
{
	return vgp_make_error(err, ENOMEM, "plan");
}

int
plan_add_warning(struct vgp_plan *plan, vgp_error_t *err, const char *fmt, ...)
{
	char *msg = NULL, **nw;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return plan_oom(err);
	nw = vgp_array_push(&plan->warnings, &plan->n_warnings, sizeof(*nw));
	if (nw == NULL) {
		free(msg);
		return plan_oom(err);
	}
	*nw = msg;
	return 0;
}

/* ---- matching ---------------------------------------------------------------------------------------------- */

static bool
ids_match(const struct vgp_passthrough *e, const struct vgp_pci_dev *d)
{
	if (d->vendor != e->match.vendor)
		return false;
	if (e->match.n_devices == 0)
		return vgp_dev_is_display(d);
	for (size_t k = 0; k < e->match.n_devices; k++)
		if (e->match.devices[k] == d->device)
			return true;
	return false;
}

bool
plan_entry_match(const struct vgp_passthrough *e, const struct vgp_pci_dev *d)
{
	bool ok;

	if (!ids_match(e, d))
		return false;
	if (e->match.n_addresses > 0) {
		ok = false;
		for (size_t k = 0; k < e->match.n_addresses && !ok; k++)
			ok = strcmp(e->match.addresses[k], d->addr) == 0;
		if (!ok)
			return false;
	}
	if (e->match.n_numa_nodes > 0) {
		ok = false;
		for (size_t k = 0; k < e->match.n_numa_nodes && !ok; k++)
			ok = e->match.numa_nodes[k] == d->numa_node;
		if (!ok)
			return false;
	}
	return true;
}

static bool
addr_in(const char *addr, const char *const *list, size_t n, size_t *at)
{
	char norm[VGP_ADDR_LEN];

	for (size_t i = 0; i < n; i++) {
		if (list[i] == NULL)
			continue;
		if (strcmp(list[i], addr) == 0 || (vgp_addr_normalize(list[i], norm) == 0 && strcmp(norm, addr) == 0)) {
			if (at != NULL)
				*at = i;
			return true;
		}
	}
	return false;
}

/* NUMA nodes in order: known nodes ascending, unknown (-1) last. */
int
plan_numa_cmp(int a, int b)
{
	if (a == b)
		return 0;
	if (a < 0)
		return 1;
	if (b < 0)
		return -1;
	return a < b ? -1 : 1;
}

/* ---- step 1: rows -------------------------------------------------------------------------------------------- */

static bool
is_row(const struct ctx *c, const struct vgp_pci_dev *d)
{
	if (vgp_dev_is_bridge(d))
		return false;
	if (vgp_dev_is_display(d)) {
		if (d->vendor == VGP_DEFAULT_VENDOR)
			return true;
		for (size_t e = 0; e < c->n_pt; e++)
			if (c->pt[e].match.vendor == d->vendor)
				return true;
	}
	for (size_t e = 0; e < c->n_pt; e++)
		if (ids_match(&c->pt[e], d))
			return true;
	return false;
}

static int
cmp_dev_addr(const void *a, const void *b, void *arg)
{
	const struct vgp_inventory *inv = arg;
	return strcmp(inv->devs[*(const size_t *) a].addr, inv->devs[*(const size_t *) b].addr);
}

/* Indices of inv->devs sorted by address (the inventory is sorted already; this makes the plan independent of
 * that promise). */
void
plan_sort_by_addr(const struct vgp_inventory *inv, size_t *idx, size_t n)
{
	qsort_r(idx, n, sizeof(*idx), cmp_dev_addr, (void *) inv);
}

/* ---- step 2: members and eligibility ------------------------------------------------------------------------- */

static int
fill_members(struct ctx *c, struct vgp_plan_gpu *g, vgp_error_t *err)
{
	const struct vgp_inventory *inv = c->inv;
	const struct vgp_pci_dev *d = &inv->devs[g->dev];
	size_t n = 1;

	g->members = calloc(inv->n > 0 ? inv->n : 1, sizeof(size_t));
	if (g->members == NULL)
		return plan_oom(err);
	g->members[0] = g->dev;
	if (d->iommu_group >= 0) {
		for (size_t j = 0; j < inv->n; j++) {
			if (j == g->dev || inv->devs[j].iommu_group != d->iommu_group || vgp_dev_is_bridge(&inv->devs[j]))
				continue;
			g->members[n++] = j;
		}
		plan_sort_by_addr(inv, g->members + 1, n - 1);
	}
	g->n_members = n;
	return 0;
}

/* Why row g cannot be passed through (VGP_INEL_NONE: it can); *other: the member the reason names. */
static enum vgp_ineligible
ineligible(const struct ctx *c, const struct vgp_plan_gpu *g, const struct work *w, const struct vgp_pci_dev **other)
{
	const struct vgp_inventory *inv = c->inv;
	const struct vgp_pci_dev *d = w->d;

	*other = NULL;
	if (vgp_addr_domain(d->addr) > 0xffff)
		return VGP_INEL_DOMAIN;
	if (!inv->iommu)
		return VGP_INEL_IOMMU_OFF;
	if (d->iommu_group < 0)
		return VGP_INEL_NO_GROUP;
	for (size_t m = 1; m < g->n_members; m++)
		if (vgp_dev_is_nvswitch(*other = &inv->devs[g->members[m]]))
			return VGP_INEL_NVSWITCH;
	for (size_t m = 1; m < g->n_members; m++)
		if (!vgp_same_card(d->addr, (*other = &inv->devs[g->members[m]])->addr))
			return VGP_INEL_FOREIGN;
	*other = NULL;
	if (d->sriov_numvfs > 0)
		return VGP_INEL_SRIOV;
	if (w->vfio)
		return VGP_INEL_NONE; /* already passed through: what follows concerns a move */
	if (d->boot_vga)
		return VGP_INEL_BOOT_VGA;
	if (addr_in(d->addr, c->in->exclude, c->in->n_exclude, NULL))
		return VGP_INEL_EXCLUDED;
	if (d->n_holders > 0 && c->busy == VGP_BUSY_SKIP)
		return VGP_INEL_BUSY;
	return VGP_INEL_NONE;
}

/* The reason shown for an ineligible row, made from why (o: the member it names). */
static void
ineligible_text(const struct ctx *c, struct vgp_plan_gpu *g, const struct vgp_pci_dev *d, enum vgp_ineligible why,
		const struct vgp_pci_dev *o)
{
	char held[160];
	const char *ex = NULL;
	size_t at;

	switch (why) {
	case VGP_INEL_NONE:
		break;
	case VGP_INEL_DOMAIN:
		plan_setf(g->reason, REASON_LEN, "PCI domain %lx above ffff: KubeVirt parses only 4-digit PCI domains "
			  "and cannot give this GPU to a VM", vgp_addr_domain(d->addr));
		break;
	case VGP_INEL_IOMMU_OFF:
		plan_setf(g->reason, REASON_LEN, "IOMMU off: no IOMMU groups (enable intel_iommu=on / amd_iommu=on)");
		break;
	case VGP_INEL_NO_GROUP:
		plan_setf(g->reason, REASON_LEN, "no IOMMU group");
		break;
	case VGP_INEL_NVSWITCH:
		plan_setf(g->reason, REASON_LEN, "NVSwitch %s in IOMMU group %d", o->addr, d->iommu_group);
		break;
	case VGP_INEL_FOREIGN:
		plan_setf(g->reason, REASON_LEN, "foreign device %s (%04x:%04x, %s) in IOMMU group %d", o->addr, o->vendor,
		     o->device, o->driver[0] ? o->driver : "no driver", d->iommu_group);
		break;
	case VGP_INEL_SRIOV:
		plan_setf(g->reason, REASON_LEN, "SR-IOV: %d VF%s enabled", d->sriov_numvfs, d->sriov_numvfs == 1 ? "" : "s");
		break;
	case VGP_INEL_BOOT_VGA:
		plan_setf(g->reason, REASON_LEN, "boot VGA (drives the console)");
		break;
	case VGP_INEL_EXCLUDED:
		if (addr_in(d->addr, c->in->exclude, c->in->n_exclude, &at) && c->in->exclude_why != NULL)
			ex = c->in->exclude_why[at];
		plan_setf(g->reason, REASON_LEN, "%s", ex != NULL && ex[0] ? ex : "excluded: busy at bind time");
		break;
	case VGP_INEL_BUSY:
		vgp_holders_text(d->holders, d->n_holders, held, sizeof(held));
		plan_setf(g->reason, REASON_LEN, "busy: held by %s", held);
		break;
	}
}

/* Sets w->eligible, or g->ineligible and the reason shown for it. */
static void
check_eligible(struct ctx *c, struct vgp_plan_gpu *g, struct work *w)
{
	const struct vgp_pci_dev *o;

	g->ineligible = ineligible(c, g, w, &o);
	w->eligible = g->ineligible == VGP_INEL_NONE;
	ineligible_text(c, g, w->d, g->ineligible, o);
}

/* ---- step 5: the rest ---------------------------------------------------------------------------------------- */

static int
finish(struct ctx *c, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	char full_name[VGP_RESOURCE_LEN + 8];

	for (size_t i = 0; i < plan->n; i++) {
		struct vgp_plan_gpu *g = &plan->gpus[i];
		struct work *w = &c->w[i];

		if (w->claimed >= 0) {
			g->ineligible = VGP_INEL_NONE; /* selected after all (already on vfio) */
			plan_res_name(c, (size_t) w->claimed, w, full_name, sizeof(full_name));
			plan_setf(g->resource, sizeof(g->resource), "%s", full_name);
			continue;
		}
		g->entry = w->first_entry;
		if (!w->eligible) {
			g->action = VGP_ACT_INELIGIBLE; /* reason written by check_eligible */
		} else if (w->first_entry >= 0) {
			char cnt[16];
			plan_count_text(c, (size_t) w->first_entry, cnt, sizeof(cnt));
			g->action = VGP_ACT_KEEP;
			plan_setf(g->reason, REASON_LEN, "not needed: count %s reached", cnt);
		} else {
			g->action = VGP_ACT_KEEP;
			if (w->vfio)
				plan_setf(g->reason, REASON_LEN, "no passthrough entry matches (stays on %s, not served)",
					 w->d->driver);
			else
				plan_setf(g->reason, REASON_LEN, "no passthrough entry matches");
		}
	}
	for (size_t r = 0; r < plan->n_res; r++) {
		struct vgp_plan_resource *res = &plan->res[r];
		res->gpus = calloc(plan->n > 0 ? plan->n : 1, sizeof(size_t));
		if (res->gpus == NULL)
			return plan_oom(err);
		for (size_t i = 0; i < plan->n; i++)
			if (c->w[i].claimed == res->entry && strcmp(plan->gpus[i].resource, res->name) == 0)
				res->gpus[res->n_gpus++] = i;
	}
	return 0;
}

/* ---- entry point ---------------------------------------------------------------------------------------------- */

static int
build(struct ctx *c, vgp_error_t *err)
{
	const struct vgp_inventory *inv = c->inv;
	struct vgp_plan *plan = c->plan;
	_cleanup_free_ size_t *rows = NULL;
	size_t n_rows = 0, n_nvswitch = 0;
	const char *first_nvswitch = NULL;

	c->paths = calloc(c->n_pt > 0 ? c->n_pt : 1, sizeof(char *));
	if (c->paths == NULL)
		return plan_oom(err);
	for (size_t e = 0; e < c->n_pt; e++) {
		int r = c->pt[e].json_path != NULL ? asprintf(&c->paths[e], "%s", c->pt[e].json_path)
						   : asprintf(&c->paths[e], "passthrough[%zu]", e);
		if (r < 0) {
			c->paths[e] = NULL;
			return plan_oom(err);
		}
	}

	/* (1) rows, in address order */
	rows = calloc(inv->n > 0 ? inv->n : 1, sizeof(*rows));
	if (rows == NULL)
		return plan_oom(err);
	for (size_t j = 0; j < inv->n; j++) {
		if (vgp_dev_is_nvswitch(&inv->devs[j])) {
			if (first_nvswitch == NULL || strcmp(inv->devs[j].addr, first_nvswitch) < 0)
				first_nvswitch = inv->devs[j].addr;
			n_nvswitch++;
		}
		if (is_row(c, &inv->devs[j]))
			rows[n_rows++] = j;
	}
	plan_sort_by_addr(inv, rows, n_rows);
	plan->gpus = calloc(n_rows > 0 ? n_rows : 1, sizeof(*plan->gpus));
	c->w = calloc(n_rows > 0 ? n_rows : 1, sizeof(*c->w));
	if (plan->gpus == NULL || c->w == NULL)
		return plan_oom(err);
	plan->n = n_rows;
	plan->iommu = inv->iommu;

	if (n_nvswitch > 0 &&
	    plan_add_warning(plan, err, "NVSwitch on this node (%zu function%s, first %s): NVIDIA Fabric Manager may not "
			"support splitting the node's GPUs between the host and VMs",
			n_nvswitch, n_nvswitch == 1 ? "" : "s", first_nvswitch) < 0)
		return -1;

	/* (2) members, eligibility, derived names */
	for (size_t i = 0; i < n_rows; i++) {
		struct vgp_plan_gpu *g = &plan->gpus[i];
		struct work *w = &c->w[i];

		g->dev = rows[i];
		g->entry = -1;
		w->d = &inv->devs[rows[i]];
		w->first_entry = -1;
		w->claimed = -1;
		w->vfio = vgp_driver_is_vfio(w->d->driver);
		w->sticky = addr_in(w->d->addr, c->in->sticky, c->in->n_sticky, NULL);
		w->cmdline = vgp_inventory_cmdline_claims(inv, w->d);
		g->busy = w->d->n_holders > 0;
		if (fill_members(c, g, err) < 0)
			return -1;
		check_eligible(c, g, w);
		if (vgp_name_derive(w->d->model, w->d->device, w->name, sizeof(w->name), &w->repaired) < 0)
			return vgp_make_usage_error(err, "%s: the model name \"%s\" is too long for a resource name",
						    w->d->addr, w->d->model ? w->d->model : "");
	}

	/* (3) names; (4) selection per entry; (5) the rest */
	if (plan_build_names(c, err) < 0)
		return -1;
	for (size_t e = 0; e < c->n_pt; e++)
		if (plan_select_entry(c, e, err) < 0)
			return -1;
	return finish(c, err);
}

int
vgp_plan_build(const struct vgp_plan_input *in, struct vgp_plan *plan, vgp_error_t *err)
{
	struct ctx c = { 0 };
	int ret;

	if (plan == NULL)
		return vgp_make_error(err, EINVAL, "plan: no output");
	memset(plan, 0, sizeof(*plan));
	if (in == NULL || in->inv == NULL)
		return vgp_make_error(err, EINVAL, "plan: no inventory");
	c.in = in;
	c.inv = in->inv;
	c.pt = in->pt;
	c.n_pt = in->n_pt;
	if (c.pt == NULL && in->cfg != NULL) {
		c.pt = in->cfg->pt;
		c.n_pt = in->cfg->n_pt;
	}
	if (c.pt == NULL)
		c.n_pt = 0;
	c.prefix = in->cfg != NULL && in->cfg->resource_prefix != NULL ? in->cfg->resource_prefix : VGP_DEFAULT_PREFIX;
	c.numa = in->cfg != NULL ? in->cfg->numa_policy : VGP_NUMA_BALANCED;
	c.busy = in->cfg != NULL ? in->cfg->busy_policy : VGP_BUSY_SKIP;
	c.plan = plan;

	ret = build(&c, err);
	if (c.paths != NULL)
		for (size_t e = 0; e < c.n_pt; e++)
			free(c.paths[e]);
	free(c.paths);
	free(c.w);
	if (ret < 0)
		vgp_plan_free(plan);
	return ret;
}

void
vgp_plan_free(struct vgp_plan *plan)
{
	if (plan == NULL)
		return;
	for (size_t i = 0; i < plan->n; i++)
		free(plan->gpus[i].members);
	free(plan->gpus);
	for (size_t r = 0; r < plan->n_res; r++)
		free(plan->res[r].gpus);
	free(plan->res);
	for (size_t k = 0; k < plan->n_warnings; k++)
		free(plan->warnings[k]);
	free(plan->warnings);
	free(plan->shortfall_msg);
	memset(plan, 0, sizeof(*plan));
}

const char *
vgp_action_name(enum vgp_action a)
{
	switch (a) {
	case VGP_ACT_KEEP:
		return "keep";
	case VGP_ACT_BIND:
		return "bind";
	case VGP_ACT_PASSTHROUGH:
		return "passthrough";
	case VGP_ACT_INELIGIBLE:
		return "ineligible";
	}
	return "unknown";
}
