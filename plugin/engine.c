/* engine.c — the run of the bind engine (vfio.h; docs/architecture.md §4): its state (struct eng), the results
 * it reports, the GPUs it excludes, its cursor on the journal, and vgp_bind's one forward flow:
 *
 *   read journal -> inventory -> plan -> (IOMMU, shortfall) -> repair -> busy check -> move groups -> exclusions
 *   -> re-plan only if something was excluded (bind_rounds: the one bounded loop) -> udev -> final scan.
 *
 * The steps themselves live in the other engine files (engine-internal.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "identity.h"
#include "stop.h"
#include "log.h"
#include "util.h"

/* ---------------------------------------------------------------------------------------------------- small */

const char *
vgp_outcome_name(enum vgp_outcome o)
{
	switch (o) {
	case VGP_OUT_PASSTHROUGH: return "passthrough";
	case VGP_OUT_BOUND: return "bound";
	case VGP_OUT_ROLLED_BACK: return "rolled-back";
	case VGP_OUT_STUCK: return "stuck";
	case VGP_OUT_SKIPPED_BUSY: return "skipped-busy";
	case VGP_OUT_FAILED: return "failed";
	case VGP_OUT_RELEASED: return "released";
	case VGP_OUT_REFUSED: return "refused";
	}
	return "unknown";
}

static bool
outcome_ok(enum vgp_outcome o)
{
	return o == VGP_OUT_PASSTHROUGH || o == VGP_OUT_BOUND || o == VGP_OUT_RELEASED || o == VGP_OUT_SKIPPED_BUSY;
}

static _Thread_local struct vgp_engine_report *result_slot;

void
eng_result_slot(struct vgp_engine_report *slot)
{
	result_slot = slot;
}

void
eng_lock(struct eng *e)
{
	pthread_mutex_lock(&e->mu);
}

void
eng_unlock(struct eng *e)
{
	pthread_mutex_unlock(&e->mu);
}

struct vgp_gpu_result *
eng_result(struct eng *e, const char *addr, const char *resource, enum vgp_outcome out, long ms, size_t nf,
	   const char *fmt, ...)
{
	/* a group moving on a worker writes to its own slot (merged in the plan's order); else the report itself */
	struct vgp_engine_report *rep = result_slot ? result_slot : e->rep;
	struct vgp_gpu_result *nr;
	va_list ap;
	if (rep == e->rep)
		eng_lock(e);
	nr = vgp_array_push(&rep->r, &rep->n, sizeof *nr);
	if (nr == NULL) {
		if (rep == e->rep)
			eng_unlock(e);
		return NULL;
	}
	snprintf(nr->addr, sizeof nr->addr, "%s", addr);
	snprintf(nr->resource, sizeof nr->resource, "%s", resource ? resource : "");
	nr->outcome = out;
	nr->ms = ms;
	nr->n_functions = nf;
	va_start(ap, fmt);
	if (vasprintf(&nr->msg, fmt, ap) < 0)
		nr->msg = NULL;
	va_end(ap);
	if (!outcome_ok(out))
		rep->n_failed++;
	if (rep == e->rep)
		eng_unlock(e);
	return nr;
}

void
eng_not_started(struct eng *e, const char *addr, const char *resource, size_t nf, const char *verb, int sig)
{
	struct vgp_engine_report *rep = result_slot ? result_slot : e->rep;

	/* counted even when the result cannot be recorded (out of memory): the run still says it was cut */
	(void) eng_result(e, addr, resource, VGP_OUT_FAILED, 0, nf,
			  "not %s: %s arrived before its turn (nothing written to it)", verb, vgp_stop_name(sig));
	if (rep == e->rep)
		eng_lock(e);
	rep->n_stopped++;
	if (rep == e->rep)
		eng_unlock(e);
}

bool
eng_addr_in(char (*list)[VGP_ADDR_LEN], size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], addr) == 0)
			return true;
	return false;
}

int
eng_addr_add(char (**list)[VGP_ADDR_LEN], size_t *n, const char *addr)
{
	if (eng_addr_in(*list, *n, addr))
		return 0;
	char *na = vgp_array_push(list, n, VGP_ADDR_LEN);
	if (na == NULL)
		return -1;
	snprintf(na, VGP_ADDR_LEN, "%s", addr);
	return 0;
}

void
eng_addr_del(char (*list)[VGP_ADDR_LEN], size_t *n, const char *addr)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i], addr) == 0) {
			memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof *list);
			(*n)--;
			return;
		}
}

static int
exclude_locked(struct eng *e, const char *addr, const char *why)
{
	for (size_t i = 0; i < e->n_ex; i++)
		if (strcmp(e->ex[i].addr, addr) == 0)
			return 0;
	struct eng_excl *n = vgp_array_push(&e->ex, &e->n_ex, sizeof *n);
	if (n == NULL)
		return -1;
	snprintf(n->addr, VGP_ADDR_LEN, "%s", addr);
	n->why = strdup(why);
	return 0;
}

int
eng_exclude(struct eng *e, const char *addr, const char *why)
{
	eng_lock(e);
	int r = exclude_locked(e, addr, why);
	eng_unlock(e);
	return r;
}

/* ---------------------------------------------------------------------------------------------------- journal */

/* The one writer: every change to e->j and every save happen under mu, so a save carries every entry changed
 * before it (no group's entry is lost to another's save), and two saves never share the temp file. */
int
eng_jsave(struct eng *e, vgp_error_t *err)
{
	eng_lock(e);
	int r = vgp_journal_save(e->state, &e->j, err);
	eng_unlock(e);
	return r;
}

void
eng_jset(struct eng *e, const char *addr, const char *gpu, int group, const char *orig, enum vgp_jstate st)
{
	struct vgp_journal_entry n = { .group = group, .state = st };
	const struct vgp_journal_entry *old;
	const struct vgp_pci_dev *d = vgp_inventory_find(&e->inv, addr);
	_cleanup_error_ vgp_error_t err = NULL;

	eng_lock(e); /* the journal's entries move when another worker adds one: look and set under the lock */
	old = vgp_journal_find(&e->j, addr);
	snprintf(n.addr, sizeof n.addr, "%s", addr);
	snprintf(n.gpu, sizeof n.gpu, "%s", gpu);
	snprintf(n.orig_driver, sizeof n.orig_driver, "%s", orig);
	/* the identity checked in this run (the inventory the move works from) goes with the entry */
	if (d != NULL)
		vgp_identity_set(&n, d);
	else if (old != NULL && old->has_id)
		vgp_identity_set(&n, &(struct vgp_pci_dev) { .vendor = old->vendor, .device = old->device,
			.subsys_vendor = old->subsys_vendor, .subsys_device = old->subsys_device,
			.class_code = old->class_code });
	if (vgp_journal_set(&e->j, &n, &err) < 0)
		log_error("%s", vgp_error_text(err));
	eng_unlock(e);
}

void
eng_jstate(struct eng *e, const char *addr, enum vgp_jstate st)
{
	eng_lock(e);
	struct vgp_journal_entry *je = vgp_journal_find(&e->j, addr);
	if (je)
		je->state = st;
	eng_unlock(e);
}

/* ---------------------------------------------------------------------------------------------------- snapshot */

static void
snap_free(struct eng *e)
{
	if (!e->have)
		return;
	vgp_plan_free(&e->plan);
	vgp_inventory_free(&e->inv);
	memset(&e->plan, 0, sizeof e->plan);
	memset(&e->inv, 0, sizeof e->inv);
	e->have = false;
}

int
eng_snap(struct eng *e, vgp_error_t *err)
{
	snap_free(e);
	if (node_plan(e->root, e->o, &e->j, e->ex, e->n_ex, &e->inv, &e->plan, err) < 0)
		return -1;
	e->have = true;
	return 0;
}

const struct vgp_plan_gpu *
eng_plan_gpu(struct eng *e, const char *addr)
{
	for (size_t i = 0; i < e->plan.n; i++)
		if (strcmp(e->inv.devs[e->plan.gpus[i].dev].addr, addr) == 0)
			return &e->plan.gpus[i];
	return NULL;
}

/* ---------------------------------------------------------------------------------------------------- the run */

int
eng_init(struct eng *e, const struct vgp_engine_opts *o, struct vgp_engine_report *rep, vgp_error_t *err)
{
	struct node_journal nj;
	pthread_mutexattr_t ma;

	memset(e, 0, sizeof *e);
	memset(rep, 0, sizeof *rep);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&e->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	e->o = o;
	e->rep = rep;
	e->unbind_ms = o->unbind_timeout_ms > 0 ? o->unbind_timeout_ms : VGP_UNBIND_TIMEOUT_MS_DEFAULT;
	e->wait_ms = o->vfio_wait_ms > 0 ? o->vfio_wait_ms : VGP_VFIO_WAIT_MS_DEFAULT;
	if (node_journal_load(o, &nj, err) < 0) {
		vgp_journal_free(&nj.j);
		e->root = nj.root;
		return -1;
	}
	e->root = nj.root;
	memcpy(e->state, nj.state, sizeof e->state);
	memcpy(e->boot_id, nj.boot_id, sizeof e->boot_id);
	e->j = nj.j;
	e->rebooted = nj.rebooted;
	rep->rebooted = e->rebooted;
	return 0;
}

void
eng_free(struct eng *e)
{
	busy_release_locks(e);
	for (size_t i = 0; i < e->n_ex; i++)
		free(e->ex[i].why);
	free(e->ex);
	free(e->done);
	free(e->locked);
	vgp_journal_free(&e->j);
	snap_free(e);
	pthread_mutex_destroy(&e->mu);
}

/* Hand the current inventory and plan to the report. */
static void
eng_handover(struct eng *e)
{
	if (!e->have)
		return;
	e->rep->inv = e->inv;
	e->rep->plan = e->plan;
	e->rep->have_plan = true;
	memset(&e->inv, 0, sizeof e->inv);
	memset(&e->plan, 0, sizeof e->plan);
	e->have = false;
}

/* ---------------------------------------------------------------------------------------------------- bind */

/* Before any write. IOMMU off: the plan marks every GPU ineligible for it, so nothing is selected and a shortfall
 * (or an empty run that succeeds) would hide the cause. When the configuration matches a GPU of the node, that is
 * the IOMMU precondition failing (serve: reported not-ready). Then a shortfall, unless the caller serves what
 * exists. */
static int
check_plan(struct eng *e, vgp_error_t *err)
{
	if (!e->inv.iommu) {
		for (size_t i = 0; i < e->plan.n; i++)
			if (e->plan.gpus[i].entry >= 0 && e->plan.gpus[i].action == VGP_ACT_INELIGIBLE)
				return eng_iommu_off_error(e, err);
	}
	if (e->plan.shortfall && !e->o->shortfall_ok) {
		const char *file = vgp_config_file(e->o->cfg); /* the message names an entry of that file */
		return vgp_make_usage_error(err, "%s%s%s", file ? file : "", file ? ": " : "",
					    e->plan.shortfall_msg ? e->plan.shortfall_msg
								  : "more GPUs wanted than the node has eligible");
	}
	return 0;
}

/* Results known before any move: GPUs the plan skipped as busy (policy skip), devices whose unbind hung earlier
 * in this boot. */
static void
report_known(struct eng *e)
{
	_cleanup_free_ char (*stuck)[VGP_ADDR_LEN] = NULL;
	size_t ns = 0;

	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		if (g->action == VGP_ACT_INELIGIBLE && g->entry >= 0 && g->ineligible == VGP_INEL_BUSY)
			eng_result(e, e->inv.devs[g->dev].addr, "", VGP_OUT_SKIPPED_BUSY, 0, g->n_members,
				   "%s: skipped (busy policy skip)", g->reason);
	}
	for (size_t i = 0; i < e->j.n; i++) {
		const struct vgp_journal_entry *je = &e->j.e[i];
		if (je->state != VGP_J_STUCK || eng_addr_in(stuck, ns, je->gpu))
			continue;
		eng_addr_add(&stuck, &ns, je->gpu);
		eng_addr_add(&e->done, &e->n_done, je->gpu);
		eng_result(e, je->gpu, "", VGP_OUT_STUCK, 0, 0,
			   "%s: stuck since an earlier run in this boot (the unbind of %s never returned): a reboot is "
			   "needed; nothing is written to it", je->gpu, je->addr);
	}
}

/* The planned groups of this round that still need a move; a passthrough group with nothing to do is recorded at
 * once. Returns how many went into work (room for e->plan.n). */
static size_t
pick_work(struct eng *e, const struct vgp_plan_gpu **work)
{
	_cleanup_free_ struct vgp_locked_read *ov = NULL;
	size_t nw = 0, n_ov;

	group_read_overrides(e, &ov, &n_ov);
	for (size_t i = 0; i < e->plan.n; i++) {
		const struct vgp_plan_gpu *g = &e->plan.gpus[i];
		const char *addr = e->inv.devs[g->dev].addr;
		if (g->action != VGP_ACT_BIND && g->action != VGP_ACT_PASSTHROUGH)
			continue;
		if (eng_addr_in(e->done, e->n_done, addr))
			continue;
		if (g->action == VGP_ACT_PASSTHROUGH && !group_needs_work(e, g, ov, n_ov)) {
			eng_addr_add(&e->done, &e->n_done, addr);
			eng_result(e, addr, g->resource, VGP_OUT_PASSTHROUGH, 0, g->n_members, "%s", g->reason);
			continue;
		}
		work[nw++] = g;
	}
	return nw;
}

static void
bind_one(struct eng *e, size_t i, void *arg)
{
	const struct vgp_plan_gpu **work = arg;
	int sig = vgp_stop_requested();

	if (sig != 0) {
		/* a deferred SIGINT/SIGTERM/SIGHUP: the groups already moving finish (or roll back); no other group
		 * starts. Its unbind lock, if taken, is given back after the round. */
		eng_not_started(e, e->inv.devs[work[i]->dev].addr, work[i]->resource, work[i]->n_members, "moved", sig);
		return;
	}
	group_bind(e, work[i]);
}

/* One round: preconditions, the busy check, then the groups' moves, independent groups at once (eng_workers at a
 * time; each its own journal-first, deadline, verify, rollback). Returns 0 (done), 1 (GPUs were excluded: busy
 * under policy skip, or stuck: re-plan so that others replace them), -1 (stop, *err). */
static int
bind_round(struct eng *e, const struct vgp_plan_gpu **work, size_t nw, vgp_error_t *err)
{
	size_t ex_before = e->n_ex, n = 0;
	long ms;
	int br;

	if (eng_preconditions(e, true, err) < 0)
		return -1;
	br = busy_phase(e, work, nw, err);
	if (br < 0)
		return -1;
	if (br == 1) { /* skipped GPUs: let the plan pick others */
		busy_release_locks(e);
		return 1;
	}
	for (size_t i = 0; i < nw; i++) /* the busy phase may have taken some out: keep the plan's order */
		if (work[i]) {
			work[n++] = work[i];
			eng_addr_add(&e->done, &e->n_done, e->inv.devs[work[i]->dev].addr);
		}
	ms = eng_run_parallel(e, n, bind_one, work);
	if (n > 1)
		log_info("moved %zu groups in %ld ms (%zu at a time)", n, ms, eng_workers(e, n));
	busy_release_locks(e);
	if (vgp_stop_requested() != 0) {
		if (e->n_ex != ex_before)
			e->rep->n_stopped++; /* the excluded GPUs' replacements are not looked for */
		return 0; /* stopping: no re-plan */
	}
	return e->n_ex != ex_before ? 1 : 0; /* nothing stuck: no replacement to look for */
}

/* The one re-plan loop: bind what the plan selects; when a round excluded GPUs, plan again (the excluded ones
 * shown ineligible, others selected in their place) and bind the newcomers. Bounded by ENG_MAX_ROUNDS. */
static int
bind_rounds(struct eng *e, vgp_error_t *err)
{
	for (int round = 0; round < ENG_MAX_ROUNDS; round++) {
		_cleanup_free_ const struct vgp_plan_gpu **work = calloc(e->plan.n ? e->plan.n : 1, sizeof *work);
		size_t nw;
		int r;

		if (work == NULL)
			return vgp_make_error(err, ENOMEM, "bind");
		nw = pick_work(e, work);
		if (nw == 0)
			return 0;
		r = bind_round(e, work, nw, err);
		if (r <= 0)
			return r;
		if (eng_snap(e, err) < 0)
			return -1;
	}
	return 0;
}

static int
persist(struct eng *e, vgp_error_t *err)
{
	if (e->o->cfg == NULL || e->o->cfg->persist != VGP_PERSIST_UDEV)
		return 0;
	return udev_sync(e, err);
}

static int
summarize(struct eng *e, vgp_error_t *err)
{
	size_t nf = e->rep->n_failed;
	if (nf > 0)
		return vgp_make_error(err, 0, "%zu GPU%s did not make it to vfio-pci", nf, nf == 1 ? "" : "s");
	if (e->plan.shortfall)
		return vgp_make_error(err, 0, "%s", e->plan.shortfall_msg ? e->plan.shortfall_msg : "fewer GPUs than wanted");
	return 0;
}

int
vgp_bind(const struct vgp_engine_opts *o, struct vgp_engine_report *rep, vgp_error_t *err)
{
	struct eng e;
	bool changed = false;
	int r = -1;

	if (eng_init(&e, o, rep, err) < 0 || eng_snap(&e, err) < 0)
		goto out;
	/* journal entries whose address now holds another function: dropped before repair can write to it */
	if (eng_vet_journal(&e, &changed, err) < 0 || (changed && eng_snap(&e, err) < 0))
		goto out;
	changed = false;
	if (check_plan(&e, err) < 0)
		goto out;
	if (eng_repair(&e, &changed, err) < 0)
		goto out;
	if ((changed || e.n_ex > 0) && eng_snap(&e, err) < 0) /* the node as repair left it */
		goto out;
	report_known(&e);
	if (bind_rounds(&e, err) < 0 || persist(&e, err) < 0)
		goto out;
	if ((e.wrote || !e.have) && eng_snap(&e, err) < 0) /* the node after binding: what serve serves */
		goto out;
	r = summarize(&e, err);
out:
	eng_handover(&e);
	eng_free(&e);
	return r;
}

void
vgp_engine_report_free(struct vgp_engine_report *rep)
{
	if (rep == NULL)
		return;
	for (size_t i = 0; i < rep->n; i++)
		free(rep->r[i].msg);
	free(rep->r);
	if (rep->have_plan) {
		vgp_plan_free(&rep->plan);
		vgp_inventory_free(&rep->inv);
	}
	memset(rep, 0, sizeof *rep);
}
