/* group_bind.c — moving one IOMMU group to vfio-pci (engine-internal.h): the journal entries first, then per
 * function override, unbind, probe, verify; /dev/vfio/<group> verified; on a failed step every function this run
 * touched goes back to its original driver (rollback), a stuck unbind excludes the GPU. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"
#include "util.h"

struct member {
	char addr[VGP_ADDR_LEN];
	char orig[VGP_DRIVER_LEN];
	bool ours;      /* journaled: this run (or an earlier one) moves it; rolled back on failure */
};

/* The driver to record as original: the current one, unless there is none (a GPU seen at boot before its driver
 * loaded, or one a killed run left unbound) and the journal knows better. */
static void
pick_orig(struct eng *e, const struct vgp_pci_dev *d, char out[VGP_DRIVER_LEN])
{
	struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
	char cur[VGP_DRIVER_LEN];
	fn_driver(e, d->addr, cur);
	if (cur[0] && !vgp_driver_is_vfio(cur))
		snprintf(out, VGP_DRIVER_LEN, "%s", cur);
	else if (je)
		snprintf(out, VGP_DRIVER_LEN, "%s", je->orig_driver);
	else
		out[0] = '\0';
}

static void
rollback(struct eng *e, const char *gpu, struct member *m, size_t n, const char *stuck_addr, char *why, size_t why_len,
	 bool *all_ok)
{
	_cleanup_error_ vgp_error_t jerr = NULL;
	*all_ok = true;
	for (size_t i = n; i-- > 0;) {
		_cleanup_error_ vgp_error_t err = NULL;
		bool stuck = false;
		if (!m[i].ours)
			continue;
		if (stuck_addr && strcmp(m[i].addr, stuck_addr) == 0)
			continue;
		if (fn_restore(e, m[i].addr, m[i].orig, false, &stuck, &err) < 0) {
			size_t l = strlen(why);
			snprintf(why + l, why_len - l, "; rollback of %s failed: %s", m[i].addr, vgp_error_text(err));
			*all_ok = false;
			if (stuck) {
				eng_jstate(e, m[i].addr, VGP_J_STUCK);
				eng_exclude(e, gpu, "stuck: a reboot is needed (an unbind timed out)");
			}
			continue;
		}
		eng_lock(e);
		vgp_journal_remove(&e->j, m[i].addr);
		eng_unlock(e);
	}
	if (eng_jsave(e, &jerr) < 0) {
		size_t l = strlen(why);
		snprintf(why + l, why_len - l, "; %s", vgp_error_text(jerr));
		*all_ok = false;
	}
}

/* One group's move. */
struct move {
	const struct vgp_plan_gpu *g;
	const struct vgp_pci_dev *gpu;
	struct member *m;          /* the group's functions, the GPU first */
	size_t n;
	int group;
	long t0;
	char others[512];          /* the other functions, ", "-separated */
	const char *stuck_addr;    /* the function whose unbind got stuck */
	bool moved;                /* a function moved in this run */
};

/* Journal first: every function that moves (or that an earlier run journaled), state BINDING. Under e->mu: it
 * holds pointers into the journal, which another group's entry may move. */
static int
journal_members_locked(struct eng *e, struct move *mv, vgp_error_t *err)
{
	char cur[VGP_DRIVER_LEN];
	size_t off = 0;
	bool dirty = false;

	for (size_t i = 0; i < mv->n; i++) {
		const struct vgp_pci_dev *d = &e->inv.devs[mv->g->members[i]];
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
		struct member *m = &mv->m[i];
		snprintf(m->addr, sizeof m->addr, "%s", d->addr);
		fn_driver(e, d->addr, cur);
		if (i > 0)
			vgp_list_append(mv->others, sizeof mv->others, &off, d->addr);
		if (vgp_driver_is_vfio(cur) && je == NULL)
			continue; /* on vfio before us (vfio-pci.ids, an admin): not ours, never moved off */
		m->ours = true;
		pick_orig(e, d, m->orig);
		if (je != NULL && je->state == VGP_J_BINDING && strcmp(je->orig_driver, m->orig) == 0 &&
		    strcmp(je->gpu, mv->gpu->addr) == 0)
			continue; /* journaled as it is */
		if (vgp_driver_is_vfio(cur) && je != NULL && je->state == VGP_J_BOUND)
			continue;
		eng_jset(e, d->addr, mv->gpu->addr, mv->group, m->orig, VGP_J_BINDING);
		dirty = true;
	}
	return dirty ? eng_jsave(e, err) : 0;
}

static int
journal_members(struct eng *e, struct move *mv, vgp_error_t *err)
{
	eng_lock(e);
	int r = journal_members_locked(e, mv, err);
	eng_unlock(e);
	return r;
}

/* One function to vfio-pci: override, unbind from its driver (the unbind consumes the nvidia lock), probe,
 * verify. A function already on vfio-pci only gets the override, so that a reprobe keeps it there (a variant
 * driver keeps its own match). */
static int
move_member(struct eng *e, struct move *mv, struct member *m, vgp_error_t *err)
{
	char cur[VGP_DRIVER_LEN], ov[VGP_DRIVER_LEN];
	bool stuck = false;

	fn_driver(e, m->addr, cur);
	if (fn_override(e, m->addr, ov, err) < 0)
		return -1;
	if (vgp_driver_is_vfio(cur)) {
		if (strcmp(cur, "vfio-pci") == 0 && strcmp(ov, "vfio-pci") != 0)
			return fn_write_override(e, m->addr, "vfio-pci", err);
		return 0;
	}
	if (!fn_exists(e, m->addr))
		return vgp_make_error(err, ENODEV, "%s: the device vanished", m->addr);
	if (strcmp(ov, "vfio-pci") != 0 && fn_write_override(e, m->addr, "vfio-pci", err) < 0)
		return -1;
	if (cur[0]) {
		if (fn_unbind(e, m->addr, cur, &stuck, err) < 0) {
			if (stuck) {
				mv->stuck_addr = m->addr;
				eng_jstate(e, m->addr, VGP_J_STUCK);
				eng_exclude(e, mv->gpu->addr, "stuck: a reboot is needed (its unbind timed out)");
			}
			return -1;
		}
		eng_lock(e);
		eng_addr_del(e->locked, &e->n_locked, m->addr); /* the unbind consumed the lock */
		eng_unlock(e);
	}
	if (fn_probe(e, m->addr, err) < 0)
		return -1;
	if (fn_wait_driver(e, m->addr, "vfio-pci", cur) < 0) {
		if (errno == ENODEV)
			return vgp_make_error(err, ENODEV, "%s: step verify: the device vanished after the probe", m->addr);
		return vgp_make_error(err, 0, "%s: step verify: %s after drivers_probe, not vfio-pci, within %d ms "
				      "(vfio-pci's probe failed?)", m->addr, cur[0] ? cur : "no driver", e->wait_ms);
	}
	mv->moved = true;
	return 0;
}

/* Every function, then the group's /dev/vfio node. */
static int
move_group(struct eng *e, struct move *mv, vgp_error_t *err)
{
	char node[ENG_PATH_LEN];

	for (size_t i = 0; i < mv->n; i++)
		if (move_member(e, mv, &mv->m[i], err) < 0)
			return -1;
	if (mv->group >= 0 && (eng_host_root_path(e, node, "/dev/vfio/%d", mv->group) < 0 || eng_wait_path(e, node) < 0))
		return vgp_make_error(err, ENOENT, "%s: step verify: /dev/vfio/%d did not appear within %d ms",
				      mv->gpu->addr, mv->group, e->wait_ms);
	return 0;
}

/* The group is on vfio-pci: journal BOUND, record the result. */
static void
finish_bound(struct eng *e, struct move *mv)
{
	_cleanup_error_ vgp_error_t err = NULL;
	const char *addr = mv->gpu->addr, *others = mv->others;
	bool dirty = false;
	long ms;

	eng_lock(e);
	for (size_t i = 0; i < mv->n; i++) {
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, mv->m[i].addr);
		if (mv->m[i].ours && je && je->state != VGP_J_BOUND) {
			je->state = VGP_J_BOUND;
			dirty = true;
		}
	}
	if (dirty && eng_jsave(e, &err) < 0) /* the node is right, the journal still says binding: the next start
						 finds it complete */
		log_warn("%s: bound, but %s", addr, vgp_error_text(err));
	eng_unlock(e);
	ms = vgp_now_ms() - mv->t0;
	if (!mv->moved) {
		eng_result(e, addr, mv->g->resource, VGP_OUT_PASSTHROUGH, ms, mv->n, "%s", mv->g->reason);
		return;
	}
	log_info("bound %s%s%s%s to vfio-pci in %ld ms", addr, others[0] ? " (+" : "", others, others[0] ? ")" : "", ms);
	eng_result(e, addr, mv->g->resource, VGP_OUT_BOUND, ms, mv->n, "bound to vfio-pci%s%s in %ld ms",
		   others[0] ? " with " : "", others, ms);
}

/* A step failed (why): give the lock back, roll the group back, record stuck / rolled-back / failed. */
static void
finish_failed(struct eng *e, struct move *mv, char *why, size_t why_len)
{
	const char *addr = mv->gpu->addr;
	bool all_ok;
	long ms;

	if (mv->stuck_addr && strcmp(mv->stuck_addr, addr) == 0) {
		eng_lock(e);
		eng_addr_del(e->locked, &e->n_locked, addr); /* no write to a stuck device, not even its lock */
		eng_unlock(e);
	} else {
		busy_release_lock(e, addr);
	}
	rollback(e, addr, mv->m, mv->n, mv->stuck_addr, why, why_len, &all_ok);
	ms = vgp_now_ms() - mv->t0;
	if (mv->stuck_addr) {
		log_error("%s: stuck: a reboot is needed", addr);
		eng_result(e, addr, mv->g->resource, VGP_OUT_STUCK, ms, mv->n, "%s", why);
	} else if (all_ok) {
		log_warn("%s: rolled back: %s", addr, why);
		eng_result(e, addr, mv->g->resource, VGP_OUT_ROLLED_BACK, ms, mv->n, "%s (rolled back: every function is "
			   "on its original driver)", why);
	} else {
		log_error("%s: failed: %s", addr, why);
		eng_result(e, addr, mv->g->resource, VGP_OUT_FAILED, ms, mv->n, "%s", why);
	}
}

/* May run on a worker thread beside other groups' (parallel.c): every step writes only this group's functions;
 * what it shares with them (journal, exclusions, lock list, results) goes through e->mu and its result slot. */
void
group_bind(struct eng *e, const struct vgp_plan_gpu *g)
{
	_cleanup_free_ struct member *m = calloc(g->n_members ? g->n_members : 1, sizeof *m);
	_cleanup_error_ vgp_error_t err = NULL;
	struct move mv = { .g = g, .gpu = &e->inv.devs[g->dev], .m = m, .n = g->n_members, .t0 = vgp_now_ms() };
	char why[ENG_MSG_LEN * 2] = "";

	mv.group = mv.gpu->iommu_group;
	if (m == NULL) {
		eng_result(e, mv.gpu->addr, g->resource, VGP_OUT_FAILED, 0, 0, "out of memory");
		return;
	}
	if (busy_lock_gpu(e, g) != 0)
		return;
	if (journal_members(e, &mv, &err) < 0) {
		snprintf(why, sizeof why, "%s: step journal: %s", mv.gpu->addr, vgp_error_text(err));
	} else if (move_group(e, &mv, &err) < 0) {
		snprintf(why, sizeof why, "%s", err ? vgp_error_text(err) : "failed");
	} else {
		finish_bound(e, &mv);
		return;
	}
	finish_failed(e, &mv, why, sizeof why);
}

static int
cmp_read(const void *a, const void *b)
{
	return strcmp(((const struct vgp_locked_read *) a)->addr, ((const struct vgp_locked_read *) b)->addr);
}

void
group_read_overrides(struct eng *e, struct vgp_locked_read **ov, size_t *n)
{
	_cleanup_error_ vgp_error_t err = NULL;
	size_t k = 0;

	*ov = NULL;
	*n = 0;
	for (size_t i = 0; i < e->plan.n; i++)
		if (e->plan.gpus[i].action == VGP_ACT_PASSTHROUGH)
			k += e->plan.gpus[i].n_members;
	if (k == 0 || (*ov = calloc(k, sizeof **ov)) == NULL)
		return; /* out of memory: every group looks as if it needs work, and the bind step reads each */
	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];

		if (g->action != VGP_ACT_PASSTHROUGH || eng_addr_in(e->done, e->n_done, e->inv.devs[g->dev].addr))
			continue;
		for (size_t m = 0; m < g->n_members; m++) {
			const char *addr = e->inv.devs[g->members[m]].addr;
			char cur[VGP_DRIVER_LEN];
			fn_driver(e, addr, cur);
			if (strcmp(cur, "vfio-pci") == 0)
				snprintf((*ov)[(*n)++].addr, VGP_ADDR_LEN, "%s", addr);
		}
	}
	if (*n > 0 && vgp_read_locked_attrs(e->root, "driver_override", e->unbind_ms, *ov, *n, &err) < 0) {
		*n = 0; /* no child: the bind step reads each again and says why */
		return;
	}
	qsort(*ov, *n, sizeof **ov, cmp_read);
}

/* Does a planned group need anything (a member off vfio, an override to set, a journal entry to finish)? */
bool
group_needs_work(struct eng *e, const struct vgp_plan_gpu *g, const struct vgp_locked_read *ov, size_t n_ov)
{
	for (size_t i = 0; i < g->n_members; i++) {
		const struct vgp_pci_dev *d = &e->inv.devs[g->members[i]];
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
		char cur[VGP_DRIVER_LEN];
		fn_driver(e, d->addr, cur);
		if (!vgp_driver_is_vfio(cur))
			return true;
		if (strcmp(cur, "vfio-pci") == 0) {
			struct vgp_locked_read key = { 0 };
			const struct vgp_locked_read *r;

			snprintf(key.addr, sizeof key.addr, "%s", d->addr);
			r = n_ov ? bsearch(&key, ov, n_ov, sizeof *ov, cmp_read) : NULL;
			if (r == NULL || r->status != 0 || strcmp(r->value, "vfio-pci") != 0)
				return true; /* not read (a lock held elsewhere: the bind step says so), or not set */
		}
		if (je && je->state != VGP_J_BOUND)
			return true;
	}
	return false;
}
