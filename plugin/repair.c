/* repair.c — the journal repair at the start of a bind (engine-internal.h): entries of this boot a killed run
 * left in flight, unbind locks it left taken, functions left on vfio-pci while their GPU is not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"
#include "util.h"

struct repair {
	bool changed; /* a function was written to */
	bool dirty;   /* the journal changed */
};

/* STUCK entries whose unbind has since gone through become BINDING again; the rest stay out of service. */
static void
repair_stuck(struct eng *e, struct repair *r)
{
	for (size_t i = 0; i < e->j.n; i++) {
		struct vgp_journal_entry *je = &e->j.e[i];
		char cur[VGP_DRIVER_LEN];
		if (je->state != VGP_J_STUCK)
			continue;
		fn_driver(e, je->addr, cur);
		if (fn_exists(e, je->addr) && strcmp(cur, je->orig_driver) != 0) {
			log_info("%s: the unbind that was stuck has gone through; completing", je->addr);
			je->state = VGP_J_BINDING;
			r->dirty = true;
		} else {
			eng_exclude(e, je->gpu, "stuck: a reboot is needed (its unbind timed out earlier in this boot)");
		}
	}
}

/* Every journaled function of gpu still in flight goes back to its original driver. */
static void
restore_gpu(struct eng *e, const char *gpu, struct repair *r)
{
	for (size_t k = 0; k < e->j.n;) {
		struct vgp_journal_entry *x = &e->j.e[k];
		_cleanup_error_ vgp_error_t rerr = NULL;
		bool stuck = false;
		if (strcmp(x->gpu, gpu) != 0 || (x->state != VGP_J_BINDING && x->state != VGP_J_RELEASING)) {
			k++;
			continue;
		}
		r->dirty = true;
		if (!fn_exists(e, x->addr)) {
			log_warn("repair: %s is gone; forgetting it", x->addr);
			vgp_journal_remove(&e->j, x->addr);
			continue;
		}
		r->changed = true;
		if (fn_restore(e, x->addr, x->orig_driver, false, &stuck, &rerr) < 0) {
			log_error("repair: %s", vgp_error_text(rerr));
			x->state = stuck ? VGP_J_STUCK : VGP_J_BINDING;
			if (stuck)
				eng_exclude(e, gpu, "stuck: a reboot is needed (its unbind timed out)");
			k++;
			continue;
		}
		vgp_journal_remove(&e->j, x->addr);
	}
}

/* Entries of this boot left in flight: a BINDING group the plan still wants is completed by the bind pass;
 * otherwise (and for RELEASING) the group goes back to its original drivers. */
static int
repair_in_flight(struct eng *e, struct repair *r, vgp_error_t *err)
{
	_cleanup_free_ char (*todo)[VGP_ADDR_LEN] = NULL;
	size_t ntodo = 0;

	for (size_t i = 0; i < e->j.n; i++) {
		struct vgp_journal_entry *je = &e->j.e[i];
		const struct vgp_plan_gpu *g;
		if (je->state != VGP_J_BINDING && je->state != VGP_J_RELEASING)
			continue;
		g = eng_plan_gpu(e, je->gpu);
		if (je->state == VGP_J_BINDING && g && (g->action == VGP_ACT_BIND || g->action == VGP_ACT_PASSTHROUGH))
			continue; /* the bind pass completes it */
		if (eng_addr_add(&todo, &ntodo, je->gpu) < 0)
			return vgp_make_error(err, ENOMEM, "repair");
	}
	for (size_t t = 0; t < ntodo; t++) {
		if (eng_preconditions(e, false, err) < 0)
			return -1;
		log_info("repair: %s was left in flight by an earlier run; restoring its original drivers", todo[t]);
		restore_gpu(e, todo[t], r);
	}
	return 0;
}

/* A function of a card on vfio-pci while its GPU is not (and not planned): back to its driver. */
static int
repair_strays(struct eng *e, const struct vgp_plan_gpu *g, struct repair *r, vgp_error_t *err)
{
	const struct vgp_pci_dev *gpu = &e->inv.devs[g->dev];

	for (size_t k = 1; k < g->n_members; k++) {
		const struct vgp_pci_dev *d = &e->inv.devs[g->members[k]];
		struct vgp_journal_entry *je = vgp_journal_find(&e->j, d->addr);
		_cleanup_error_ vgp_error_t rerr = NULL;
		bool stuck = false;
		if (strcmp(d->driver, "vfio-pci") != 0 || !vgp_same_card(gpu->addr, d->addr))
			continue;
		if (je && je->state == VGP_J_STUCK)
			continue;
		if (eng_preconditions(e, false, err) < 0)
			return -1;
		log_info("repair: %s is on vfio-pci but its GPU %s is not (%s); giving it back", d->addr, gpu->addr,
			 g->reason);
		r->changed = true;
		if (fn_restore(e, d->addr, je ? je->orig_driver : "", je == NULL, &stuck, &rerr) < 0) {
			log_error("repair: %s", vgp_error_text(rerr));
			continue;
		}
		if (je) {
			vgp_journal_remove(&e->j, d->addr);
			r->dirty = true;
		}
	}
	return 0;
}

int
eng_repair(struct eng *e, bool *changed, vgp_error_t *err)
{
	struct repair r = { 0 };

	repair_stuck(e, &r);
	if (repair_in_flight(e, &r, err) < 0)
		return -1;
	/* an unbind lock a killed run left taken keeps every new client off that GPU: give it back */
	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		if (g->action != VGP_ACT_BIND)
			busy_release_stale_lock(e, e->inv.devs[g->dev].addr);
	}
	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		if (g->action != VGP_ACT_KEEP && g->action != VGP_ACT_INELIGIBLE)
			continue;
		if (vgp_driver_is_vfio(e->inv.devs[g->dev].driver))
			continue;
		if (repair_strays(e, g, &r, err) < 0)
			return -1;
	}
	if (r.dirty && eng_jsave(e, err) < 0)
		return -1;
	*changed = r.changed;
	return 0;
}
