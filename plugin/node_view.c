/* node_view.c — the read-only view of the node (engine-internal.h): the journal (path, boot id, load), the
 * inventory (no read that takes a device lock: pci.h), and the plan with the journal's sticky GPUs and the
 * engine's exclusions. `plan` (vgp_plan_node) stops here; the bind engine starts from the same three steps.
 * Writes nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "hostfs.h"
#include "locked_attr.h"
#include "log.h"
#include "util.h"

int
node_journal_load(const struct vgp_engine_opts *o, struct node_journal *nj, vgp_error_t *err)
{
	char p[ENG_PATH_LEN];
	_cleanup_error_ vgp_error_t berr = NULL;

	memset(nj, 0, sizeof *nj);
	nj->root = o->host_root && o->host_root[0] ? o->host_root : "/";
	if (o->state_file)
		snprintf(nj->state, sizeof nj->state, "%s", o->state_file);
	else if (vgp_host_path(nj->state, sizeof nj->state, nj->root, "%s", VGP_STATE_PATH) < 0)
		return vgp_make_error(err, errno, "state file path");
	if (vgp_host_path(p, sizeof p, nj->root, "/proc/sys/kernel/random/boot_id") < 0 ||
	    vgp_read_file(p, nj->boot_id, sizeof nj->boot_id, &berr) < 0) {
		log_warn("cannot read the boot id (%s): the journal cannot tell a reboot",
			 berr ? vgp_error_text(berr) : "path too long");
		nj->boot_id[0] = '\0';
	}
	if (vgp_journal_load(nj->state, nj->boot_id, &nj->j, &nj->rebooted, err) < 0)
		return -1;
	if (nj->rebooted)
		log_info("journal %s is from an earlier boot: keeping its addresses and original drivers", nj->state);
	return 0;
}

/* A GPU the journal records stays selected (sticky), unless the operator was giving it back. */
static bool
sticky_state(enum vgp_jstate s)
{
	return s != VGP_J_RELEASING;
}

int
node_plan(const char *root, const struct vgp_engine_opts *o, const struct vgp_journal *j,
	  const struct eng_excl *ex, size_t n_ex, struct vgp_inventory *inv, struct vgp_plan *plan, vgp_error_t *err)
{
	_cleanup_free_ const char **sticky = calloc(j->n ? j->n : 1, sizeof *sticky);
	_cleanup_free_ const char **exa = calloc(n_ex ? n_ex : 1, sizeof *exa);
	_cleanup_free_ const char **why = calloc(n_ex ? n_ex : 1, sizeof *why);
	struct vgp_plan_input in = { 0 };
	size_t ns = 0;

	memset(inv, 0, sizeof *inv);
	memset(plan, 0, sizeof *plan);
	if (sticky == NULL || exa == NULL || why == NULL)
		return vgp_make_error(err, ENOMEM, "plan");
	if (vgp_inventory_scan(root, o->pci_ids, inv, err) < 0)
		return -1;
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->e[i].addr, j->e[i].gpu) == 0 && sticky_state(j->e[i].state))
			sticky[ns++] = j->e[i].addr;
	for (size_t i = 0; i < n_ex; i++) {
		exa[i] = ex[i].addr;
		why[i] = ex[i].why;
	}
	in.inv = inv;
	in.cfg = o->cfg;
	in.pt = o->pt;
	in.n_pt = o->n_pt;
	in.sticky = sticky;
	in.n_sticky = ns;
	in.exclude = exa;
	in.exclude_why = why;
	in.n_exclude = n_ex;
	if (vgp_plan_build(&in, plan, err) < 0) {
		vgp_inventory_free(inv);
		memset(inv, 0, sizeof *inv);
		return -1;
	}
	return 0;
}

void
vgp_plan_read_overrides(const struct vgp_engine_opts *o, struct vgp_inventory *inv, const struct vgp_plan *plan)
{
	const char *root = o->host_root && o->host_root[0] ? o->host_root : "/";
	int ms = o->unbind_timeout_ms > 0 ? o->unbind_timeout_ms : VGP_UNBIND_TIMEOUT_MS_DEFAULT;
	_cleanup_free_ struct vgp_locked_read *ov = NULL;
	_cleanup_free_ size_t *dev = NULL;
	_cleanup_error_ vgp_error_t e = NULL;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < plan->n; i++)
		if (plan->gpus[i].action == VGP_ACT_BIND || plan->gpus[i].action == VGP_ACT_PASSTHROUGH)
			n += plan->gpus[i].n_members;
	if (n == 0)
		return;
	ov = calloc(n, sizeof *ov);
	dev = calloc(n, sizeof *dev);
	if (ov == NULL || dev == NULL) {
		log_warn("driver_override not read: out of memory");
		return;
	}
	for (size_t i = 0; i < plan->n; i++) {
		const struct vgp_plan_gpu *g = &plan->gpus[i];

		if (g->action != VGP_ACT_BIND && g->action != VGP_ACT_PASSTHROUGH)
			continue;
		for (size_t m = 0; m < g->n_members; m++, k++) {
			dev[k] = g->members[m];
			snprintf(ov[k].addr, sizeof ov[k].addr, "%s", inv->devs[dev[k]].addr);
		}
	}
	if (vgp_read_locked_attrs(root, "driver_override", ms, ov, n, &e) < 0) {
		log_warn("driver_override not read: %s", vgp_error_text(e));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (ov[i].status == ETIMEDOUT) {
			_cleanup_error_ vgp_error_t terr = NULL;
			vgp_locked_read_error(&ov[i], "driver_override", ms, &terr);
			log_warn("%s", vgp_error_text(terr));
		} else if (ov[i].status == 0 && strcmp(ov[i].value, "(null)") != 0)
			snprintf(inv->devs[dev[i]].driver_override, sizeof inv->devs[dev[i]].driver_override, "%s",
				 ov[i].value);
	}
}

int
vgp_plan_node(const struct vgp_engine_opts *o, struct vgp_inventory *inv, struct vgp_plan *plan, vgp_error_t *err)
{
	struct node_journal nj;
	int r = -1;

	if (node_journal_load(o, &nj, err) == 0)
		r = node_plan(nj.root, o, &nj.j, NULL, 0, inv, plan, err);
	vgp_journal_free(&nj.j);
	return r;
}
