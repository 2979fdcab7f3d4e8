/* plan.c — the pure decision (design §1 item 3, §5 preconditions, §7 NVSwitch): inventory + config (+ the
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
#include "plan.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_LEN sizeof(((struct vgp_plan_gpu *) 0)->reason)

enum tier { T_NONE, T_VFIO, T_STICKY, T_CMDLINE, T_IDLE, T_BUSY };

struct work {
	const struct vgp_pci_dev *d;
	bool vfio;
	bool eligible;
	bool sticky;
	bool cmdline;
	int first_entry;          /* first entry whose match selects this row, -1 = none */
	int claimed;              /* entry that selected it, -1 = none */
	char name[VGP_RESOURCE_LEN]; /* the NAME derived from the model */
	bool repaired;
};

struct ctx {
	const struct vgp_plan_input *in;
	const struct vgp_inventory *inv;
	const struct vgp_passthrough *pt;
	size_t n_pt;
	const char *prefix;
	enum vgp_numa_policy numa;
	enum vgp_busy_policy busy;
	struct vgp_plan *plan;
	struct work *w;           /* parallel to plan->gpus */
	char **paths;             /* json_path of each entry (owned) */
};

/* snprintf that truncates silently: every length that matters is checked before it is used. */
static void __attribute__((format(printf, 3, 4)))
setf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, len, fmt, ap) < 0 && len > 0)
		buf[0] = '\0';
	va_end(ap);
}

static int
oom(vgp_error_t *err)
{
	return vgp_make_error(err, ENOMEM, "plan");
}

static int __attribute__((format(printf, 3, 4)))
add_warning(struct vgp_plan *plan, vgp_error_t *err, const char *fmt, ...)
{
	char *msg = NULL, **nw;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return oom(err);
	nw = realloc(plan->warnings, (plan->n_warnings + 1) * sizeof(*nw));
	if (nw == NULL) {
		free(msg);
		return oom(err);
	}
	plan->warnings = nw;
	plan->warnings[plan->n_warnings++] = msg;
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

static bool
entry_match(const struct vgp_passthrough *e, const struct vgp_pci_dev *d)
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
static int
numa_cmp(int a, int b)
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
static void
sort_by_addr(const struct vgp_inventory *inv, size_t *idx, size_t n)
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
		return oom(err);
	g->members[0] = g->dev;
	if (d->iommu_group >= 0) {
		for (size_t j = 0; j < inv->n; j++) {
			if (j == g->dev || inv->devs[j].iommu_group != d->iommu_group || vgp_dev_is_bridge(&inv->devs[j]))
				continue;
			g->members[n++] = j;
		}
		sort_by_addr(inv, g->members + 1, n - 1);
	}
	g->n_members = n;
	return 0;
}

/* Sets w->eligible, or writes why it is not into g->reason. */
static void
check_eligible(struct ctx *c, struct vgp_plan_gpu *g, struct work *w)
{
	const struct vgp_inventory *inv = c->inv;
	const struct vgp_pci_dev *d = w->d;
	char held[160];
	size_t at;

	w->eligible = false;
	if (vgp_addr_domain(d->addr) > 0xffff) {
		setf(g->reason, REASON_LEN, "PCI domain %lx above ffff: KubeVirt parses only 4-digit PCI domains and "
			 "cannot give this GPU to a VM", vgp_addr_domain(d->addr));
		return;
	}
	if (!inv->iommu) {
		setf(g->reason, REASON_LEN, "IOMMU off: no IOMMU groups (enable intel_iommu=on / amd_iommu=on)");
		return;
	}
	if (d->iommu_group < 0) {
		setf(g->reason, REASON_LEN, "no IOMMU group");
		return;
	}
	for (size_t m = 1; m < g->n_members; m++) {
		const struct vgp_pci_dev *o = &inv->devs[g->members[m]];
		if (vgp_dev_is_nvswitch(o)) {
			setf(g->reason, REASON_LEN, "NVSwitch %s in IOMMU group %d", o->addr, d->iommu_group);
			return;
		}
	}
	for (size_t m = 1; m < g->n_members; m++) {
		const struct vgp_pci_dev *o = &inv->devs[g->members[m]];
		if (!vgp_same_card(d->addr, o->addr)) {
			setf(g->reason, REASON_LEN, "foreign device %s (%04x:%04x, %s) in IOMMU group %d", o->addr,
				 o->vendor, o->device, o->driver[0] ? o->driver : "no driver", d->iommu_group);
			return;
		}
	}
	if (d->sriov_numvfs > 0) {
		setf(g->reason, REASON_LEN, "SR-IOV: %d VF%s enabled", d->sriov_numvfs, d->sriov_numvfs == 1 ? "" : "s");
		return;
	}
	if (!w->vfio) {
		if (d->boot_vga) {
			setf(g->reason, REASON_LEN, "boot VGA (drives the console)");
			return;
		}
		if (addr_in(d->addr, c->in->exclude, c->in->n_exclude, &at)) {
			const char *why = c->in->exclude_why != NULL ? c->in->exclude_why[at] : NULL;
			setf(g->reason, REASON_LEN, "%s", why != NULL && why[0] ? why : "excluded: busy at bind time");
			return;
		}
		if (d->n_holders > 0 && c->busy == VGP_BUSY_SKIP) {
			vgp_holders_text(d->holders, d->n_holders, held, sizeof(held));
			setf(g->reason, REASON_LEN, "busy: held by %s", held);
			return;
		}
	}
	w->eligible = true;
}

/* ---- step 3: names ------------------------------------------------------------------------------------------- */

static const char *
res_name_of(const struct ctx *c, size_t e, const struct work *w, char *buf, size_t len)
{
	const char *name = c->pt[e].resource_name != NULL ? c->pt[e].resource_name : w->name;
	setf(buf, len, "%s/%s", c->prefix, name);
	return buf;
}

static struct vgp_plan_resource *
find_res(struct vgp_plan *plan, int e, const char *name)
{
	for (size_t r = 0; r < plan->n_res; r++)
		if (plan->res[r].entry == e && strcmp(plan->res[r].name, name) == 0)
			return &plan->res[r];
	return NULL;
}

static int
add_res(struct ctx *c, size_t e, const char *name, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	struct vgp_plan_resource *nr;
	size_t at;

	if (find_res(plan, (int) e, name) != NULL)
		return 0;
	nr = realloc(plan->res, (plan->n_res + 1) * sizeof(*nr));
	if (nr == NULL)
		return oom(err);
	plan->res = nr;
	/* keep an entry's resources sorted by name, entries in order */
	at = plan->n_res;
	while (at > 0 && plan->res[at - 1].entry == (int) e && strcmp(plan->res[at - 1].name, name) > 0)
		at--;
	memmove(&plan->res[at + 1], &plan->res[at], (plan->n_res - at) * sizeof(*nr));
	memset(&plan->res[at], 0, sizeof(*nr));
	setf(plan->res[at].name, sizeof(plan->res[at].name), "%s", name);
	plan->res[at].entry = (int) e;
	plan->res[at].wanted = c->pt[e].count;
	plan->n_res++;
	return 0;
}

static int
build_names(struct ctx *c, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	char full[VGP_RESOURCE_LEN + 8];
	uint32_t *warned = NULL;
	size_t n_warned = 0;
	int ret = -1;

	if (!vgp_prefix_valid(c->prefix)) {
		vgp_make_usage_error(err, "resourcePrefix \"%s\" is not a valid DNS subdomain", c->prefix);
		goto out;
	}
	warned = calloc(plan->n > 0 ? plan->n : 1, sizeof(*warned));
	if (warned == NULL) {
		oom(err);
		goto out;
	}
	for (size_t e = 0; e < c->n_pt; e++) {
		const struct vgp_passthrough *p = &c->pt[e];
		size_t first_res = plan->n_res;

		if (p->resource_name != NULL) {
			if (!vgp_name_valid(p->resource_name)) {
				vgp_make_usage_error(err, "%s.resourceName \"%s\" is not a valid resource name (1-63 of "
						     "A-Z a-z 0-9 . _ -, alphanumeric at both ends)",
						     c->paths[e], p->resource_name);
				goto out;
			}
			if (strlen(c->prefix) + 1 + strlen(p->resource_name) >= VGP_RESOURCE_LEN) {
				vgp_make_usage_error(err, "%s: resource name %s/%s is too long", c->paths[e], c->prefix,
						     p->resource_name);
				goto out;
			}
			setf(full, sizeof(full), "%s/%s", c->prefix, p->resource_name);
			if (add_res(c, e, full, err) < 0)
				goto out;
			continue;
		}
		for (size_t i = 0; i < plan->n; i++) {
			struct work *w = &c->w[i];
			if (!entry_match(p, w->d))
				continue;
			if (!vgp_name_valid(w->name) || strlen(c->prefix) + 1 + strlen(w->name) >= VGP_RESOURCE_LEN) {
				vgp_make_usage_error(err, "%s: the name \"%s\" derived for %s (%04x:%04x \"%s\") is not a valid "
						     "resource name: set resourceName",
						     c->paths[e], w->name, w->d->addr, w->d->vendor, w->d->device,
						     w->d->model ? w->d->model : "");
				goto out;
			}
			setf(full, sizeof(full), "%s/%s", c->prefix, w->name);
			if (add_res(c, e, full, err) < 0)
				goto out;
			if (w->repaired) {
				uint32_t id = (uint32_t) w->d->vendor << 16 | w->d->device;
				bool seen = false;
				for (size_t k = 0; k < n_warned && !seen; k++)
					seen = warned[k] == id;
				if (!seen) {
					warned[n_warned++] = id;
					if (add_warning(plan, err, "%04x:%04x \"%s\": derived resource name repaired to %s",
							w->d->vendor, w->d->device, w->d->model ? w->d->model : "", w->name) < 0)
						goto out;
				}
			}
		}
		/* one name from several device ids: one shared resource (warned) */
		for (size_t r = first_res; r < plan->n_res; r++) {
			char ids[160] = "";
			size_t off = 0, n_ids = 0;
			uint16_t seen_ids[16];
			for (size_t i = 0; i < plan->n; i++) {
				struct work *w = &c->w[i];
				bool dup = false;
				if (!entry_match(p, w->d) ||
				    strcmp(res_name_of(c, e, w, full, sizeof(full)), plan->res[r].name) != 0)
					continue;
				for (size_t k = 0; k < n_ids && k < ARRAY_SIZE(seen_ids) && !dup; k++)
					dup = seen_ids[k] == w->d->device;
				if (dup)
					continue;
				if (n_ids < ARRAY_SIZE(seen_ids))
					seen_ids[n_ids] = w->d->device;
				n_ids++;
				if (off < sizeof(ids)) {
					int k = snprintf(ids + off, sizeof(ids) - off, "%s%04x:%04x", off ? ", " : "",
							 w->d->vendor, w->d->device);
					if (k > 0)
						off += (size_t) k;
				}
			}
			if (n_ids > 1 &&
			    add_warning(plan, err, "%s: device ids %s share one resource", plan->res[r].name, ids) < 0)
				goto out;
		}
		/* different names from one entry: one resource per name, the count applies to them together */
		if (plan->n_res - first_res > 1) {
			char names[VGP_RESOURCE_LEN * 2] = "";
			size_t off = 0;
			for (size_t r = first_res; r < plan->n_res; r++)
				vgp_list_append(names, sizeof(names), &off, plan->res[r].name);
			if (add_warning(plan, err, "%s: its GPUs have different names, served as %zu resources (%s); the "
					"count applies to them together",
					c->paths[e], plan->n_res - first_res, names) < 0)
				goto out;
		}
	}
	/* two entries giving one resource name */
	for (size_t a = 0; a < plan->n_res; a++)
		for (size_t b = a + 1; b < plan->n_res; b++)
			if (plan->res[a].entry != plan->res[b].entry && strcmp(plan->res[a].name, plan->res[b].name) == 0) {
				vgp_make_usage_error(err, "%s and %s both give the resource %s: set a distinct resourceName",
						     c->paths[plan->res[a].entry], c->paths[plan->res[b].entry],
						     plan->res[a].name);
				goto out;
			}
	/* two resource names giving one KubeVirt variable (nvidia.com/L40S.VM, nvidia.com/l40s_vm): a VM asking for
	 * both would get the devices of one only */
	for (size_t a = 0; a < plan->n_res; a++)
		for (size_t b = a + 1; b < plan->n_res; b++) {
			char ea[VGP_RESOURCE_LEN + 64], eb[VGP_RESOURCE_LEN + 64];
			if (strcmp(plan->res[a].name, plan->res[b].name) == 0 ||
			    vgp_env_name(plan->res[a].name, ea, sizeof(ea)) < 0 ||
			    vgp_env_name(plan->res[b].name, eb, sizeof(eb)) < 0 || strcmp(ea, eb) != 0)
				continue;
			vgp_make_usage_error(err, "%s: resources %s and %s (%s) give the same KubeVirt variable %s: set "
					     "distinct resourceNames", c->paths[plan->res[b].entry], plan->res[b].name,
					     plan->res[a].name, c->paths[plan->res[a].entry], ea);
			goto out;
		}
	ret = 0;
out:
	free(warned);
	return ret;
}

/* ---- step 4: selection --------------------------------------------------------------------------------------- */

struct sel {
	struct ctx *c;
	size_t e;
	size_t want;      /* SIZE_MAX for all */
	size_t taken;     /* selected by this entry so far (its rank counter) */
};

static void
count_text(const struct sel *s, char *buf, size_t len)
{
	if (s->c->pt[s->e].count == VGP_COUNT_ALL)
		setf(buf, len, "all");
	else
		setf(buf, len, "%d", s->c->pt[s->e].count);
}

static void
numa_text(const struct vgp_pci_dev *d, char *buf, size_t len)
{
	if (d->numa_node >= 0)
		setf(buf, len, "on NUMA %d", d->numa_node);
	else
		setf(buf, len, "NUMA unknown");
}

static void
select_row(struct sel *s, size_t i, enum tier t)
{
	struct ctx *c = s->c;
	struct vgp_plan_gpu *g = &c->plan->gpus[i];
	struct work *w = &c->w[i];
	char cnt[16], numa[32], held[128];

	w->claimed = (int) s->e;
	g->entry = (int) s->e;
	s->taken++;
	count_text(s, cnt, sizeof(cnt));
	numa_text(w->d, numa, sizeof(numa));
	switch (t) {
	case T_VFIO:
		g->action = VGP_ACT_PASSTHROUGH;
		g->beyond_count = s->taken > s->want;
		if (g->beyond_count)
			setf(g->reason, REASON_LEN, "already on %s (beyond count %s)", w->d->driver, cnt);
		else
			setf(g->reason, REASON_LEN, "already on %s", w->d->driver);
		break;
	case T_STICKY:
		g->action = VGP_ACT_BIND;
		setf(g->reason, REASON_LEN, "selected: sticky (passed through before)");
		break;
	case T_CMDLINE:
		g->action = VGP_ACT_BIND;
		setf(g->reason, REASON_LEN, "selected: named by vfio-pci.ids on the kernel command line");
		break;
	case T_BUSY:
		g->action = VGP_ACT_BIND;
		vgp_holders_text(w->d->holders, w->d->n_holders, held, sizeof(held));
		setf(g->reason, REASON_LEN, "selected: %zu of %s %s, busy: held by %s (busy policy %s)", s->taken,
			 cnt, numa, held, c->busy == VGP_BUSY_WAIT ? "wait" : "fail");
		break;
	default:
		g->action = VGP_ACT_BIND;
		setf(g->reason, REASON_LEN, "selected: %zu of %s %s", s->taken, cnt, numa);
		break;
	}
}

static bool
sel_full(const struct sel *s)
{
	return s->taken >= s->want;
}

/* Idle GPUs of no earlier tier, by NUMA policy. pool: row indices in address order. */
static void
select_idle(struct sel *s, size_t *pool, size_t n_pool, const size_t *cand, size_t n_cand)
{
	struct ctx *c = s->c;

	if (c->numa == VGP_NUMA_NONE) {
		for (size_t k = 0; k < n_pool && !sel_full(s); k++)
			select_row(s, pool[k], T_IDLE);
		return;
	}
	if (c->numa == VGP_NUMA_PACKED) {
		/* the lowest NUMA node first (unknown last), lowest address within a node */
		while (!sel_full(s)) {
			size_t best = SIZE_MAX;
			for (size_t k = 0; k < n_pool; k++) {
				if (c->w[pool[k]].claimed >= 0)
					continue;
				if (best == SIZE_MAX || numa_cmp(c->w[pool[k]].d->numa_node, c->w[pool[best]].d->numa_node) < 0)
					best = k;
			}
			if (best == SIZE_MAX)
				break;
			select_row(s, pool[best], T_IDLE);
		}
		return;
	}
	/* balanced: each pick goes to the NUMA node (among those with idle candidates left) that holds the fewest
	 * GPUs of this entry so far, counting the ones already selected (on vfio, sticky, vfio-pci.ids); ties go to
	 * the lowest node (unknown last); the lowest address within the node. With nothing selected before, this
	 * is a round-robin over the nodes from the lowest. */
	while (!sel_full(s)) {
		size_t best = SIZE_MAX, best_load = 0;
		for (size_t k = 0; k < n_pool; k++) {
			int node;
			size_t load = 0;
			if (c->w[pool[k]].claimed >= 0)
				continue;
			node = c->w[pool[k]].d->numa_node;
			if (best != SIZE_MAX && c->w[pool[best]].d->numa_node == node)
				continue; /* the lowest address of this node is already the contender */
			for (size_t j = 0; j < n_cand; j++)
				if (c->w[cand[j]].claimed == (int) s->e && c->w[cand[j]].d->numa_node == node)
					load++;
			if (best == SIZE_MAX || load < best_load ||
			    (load == best_load && numa_cmp(node, c->w[pool[best]].d->numa_node) < 0)) {
				best = k;
				best_load = load;
			}
		}
		if (best == SIZE_MAX)
			break;
		select_row(s, pool[best], T_IDLE);
	}
}

static int
select_entry(struct ctx *c, size_t e, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	const struct vgp_passthrough *p = &c->pt[e];
	struct sel s = { .c = c, .e = e, .want = p->count == VGP_COUNT_ALL ? SIZE_MAX : (size_t) p->count };
	_cleanup_free_ size_t *cand = NULL;
	_cleanup_free_ size_t *pool = NULL;
	size_t n_cand = 0, n_pool = 0, n_inel = 0, n_taken_before = 0;
	char full_name[VGP_RESOURCE_LEN + 8];

	cand = calloc(plan->n > 0 ? plan->n : 1, sizeof(*cand));
	pool = calloc(plan->n > 0 ? plan->n : 1, sizeof(*pool));
	if (cand == NULL || pool == NULL)
		return oom(err);
	for (size_t i = 0; i < plan->n; i++) {
		struct work *w = &c->w[i];
		if (!entry_match(p, w->d))
			continue;
		if (w->first_entry < 0)
			w->first_entry = (int) e;
		if (!w->eligible)
			n_inel++;
		else if (w->claimed >= 0)
			n_taken_before++;
		else {
			struct vgp_plan_resource *r = find_res(plan, (int) e, res_name_of(c, e, w, full_name, sizeof(full_name)));
			cand[n_cand++] = i;
			if (r != NULL)
				r->matched++;
		}
	}

	/* (1) already on a vfio driver: always, even beyond the count */
	for (size_t k = 0; k < n_cand; k++)
		if (c->w[cand[k]].vfio)
			select_row(&s, cand[k], T_VFIO);
	/* (2) sticky: the journal says they were passed through before */
	for (size_t k = 0; k < n_cand && !sel_full(&s); k++) {
		struct work *w = &c->w[cand[k]];
		if (w->claimed < 0 && w->sticky && w->d->n_holders == 0)
			select_row(&s, cand[k], T_STICKY);
	}
	/* (3) named by vfio-pci.ids: the admin's intent */
	for (size_t k = 0; k < n_cand && !sel_full(&s); k++) {
		struct work *w = &c->w[cand[k]];
		if (w->claimed < 0 && w->cmdline && w->d->n_holders == 0)
			select_row(&s, cand[k], T_CMDLINE);
	}
	/* (4) idle GPUs by NUMA policy */
	for (size_t k = 0; k < n_cand; k++) {
		struct work *w = &c->w[cand[k]];
		if (w->claimed < 0 && w->d->n_holders == 0)
			pool[n_pool++] = cand[k];
	}
	select_idle(&s, pool, n_pool, cand, n_cand);
	/* (5) busy GPUs last (busy policy fail or wait; skip made them ineligible): sticky, vfio-pci.ids, address */
	for (int pass = 0; pass < 3; pass++)
		for (size_t k = 0; k < n_cand && !sel_full(&s); k++) {
			struct work *w = &c->w[cand[k]];
			if (w->claimed >= 0 || w->d->n_holders == 0)
				continue;
			if ((pass == 0 && w->sticky) || (pass == 1 && !w->sticky && w->cmdline) ||
			    (pass == 2 && !w->sticky && !w->cmdline))
				select_row(&s, cand[k], T_BUSY);
		}

	if (p->count != VGP_COUNT_ALL && s.taken < (size_t) p->count) {
		char extra[96] = "";
		char *msg = NULL;
		if (n_inel > 0 && n_taken_before > 0)
			setf(extra, sizeof(extra), " (%zu more ineligible, %zu taken by earlier entries)", n_inel,
				 n_taken_before);
		else if (n_inel > 0)
			setf(extra, sizeof(extra), " (%zu more ineligible)", n_inel);
		else if (n_taken_before > 0)
			setf(extra, sizeof(extra), " (%zu more taken by earlier entries)", n_taken_before);
		if (asprintf(&msg, "%s: count %d but only %zu GPU%s match on this node%s", c->paths[e], p->count, s.taken,
			     s.taken == 1 ? "" : "s", extra) < 0)
			return oom(err);
		if (add_warning(plan, err, "%s", msg) < 0) {
			free(msg);
			return -1;
		}
		plan->shortfall = true;
		if (plan->shortfall_msg == NULL)
			plan->shortfall_msg = msg;
		else
			free(msg);
	}
	return 0;
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
			res_name_of(c, (size_t) w->claimed, w, full_name, sizeof(full_name));
			setf(g->resource, sizeof(g->resource), "%s", full_name);
			continue;
		}
		g->entry = w->first_entry;
		if (!w->eligible) {
			g->action = VGP_ACT_INELIGIBLE; /* reason written by check_eligible */
		} else if (w->first_entry >= 0) {
			char cnt[16];
			struct sel s = { .c = c, .e = (size_t) w->first_entry };
			count_text(&s, cnt, sizeof(cnt));
			g->action = VGP_ACT_KEEP;
			setf(g->reason, REASON_LEN, "not needed: count %s reached", cnt);
		} else {
			g->action = VGP_ACT_KEEP;
			if (w->vfio)
				setf(g->reason, REASON_LEN, "no passthrough entry matches (stays on %s, not served)",
					 w->d->driver);
			else
				setf(g->reason, REASON_LEN, "no passthrough entry matches");
		}
	}
	for (size_t r = 0; r < plan->n_res; r++) {
		struct vgp_plan_resource *res = &plan->res[r];
		res->gpus = calloc(plan->n > 0 ? plan->n : 1, sizeof(size_t));
		if (res->gpus == NULL)
			return oom(err);
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
		return oom(err);
	for (size_t e = 0; e < c->n_pt; e++) {
		int r = c->pt[e].json_path != NULL ? asprintf(&c->paths[e], "%s", c->pt[e].json_path)
						   : asprintf(&c->paths[e], "passthrough[%zu]", e);
		if (r < 0) {
			c->paths[e] = NULL;
			return oom(err);
		}
	}

	/* (1) rows, in address order */
	rows = calloc(inv->n > 0 ? inv->n : 1, sizeof(*rows));
	if (rows == NULL)
		return oom(err);
	for (size_t j = 0; j < inv->n; j++) {
		if (vgp_dev_is_nvswitch(&inv->devs[j])) {
			if (first_nvswitch == NULL || strcmp(inv->devs[j].addr, first_nvswitch) < 0)
				first_nvswitch = inv->devs[j].addr;
			n_nvswitch++;
		}
		if (is_row(c, &inv->devs[j]))
			rows[n_rows++] = j;
	}
	sort_by_addr(inv, rows, n_rows);
	plan->gpus = calloc(n_rows > 0 ? n_rows : 1, sizeof(*plan->gpus));
	c->w = calloc(n_rows > 0 ? n_rows : 1, sizeof(*c->w));
	if (plan->gpus == NULL || c->w == NULL)
		return oom(err);
	plan->n = n_rows;
	plan->iommu = inv->iommu;

	if (n_nvswitch > 0 &&
	    add_warning(plan, err, "NVSwitch on this node (%zu function%s, first %s): NVIDIA Fabric Manager may not "
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
	if (build_names(c, err) < 0)
		return -1;
	for (size_t e = 0; e < c->n_pt; e++)
		if (select_entry(c, e, err) < 0)
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
