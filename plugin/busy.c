/* busy.c — is a GPU free to move (engine-internal.h)? Holders of /dev/nvidia<minor> found by st_rdev, the nvidia
 * driver's unbind lock (taken before the unbind, given back when the move does not happen, released when a killed
 * run left it taken), and the busy policy (skip, fail, wait) before the first write and at each GPU's turn. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "hostfs.h"
#include "log.h"
#include "util.h"

static bool
lock_path(struct eng *e, const char *addr, char p[ENG_PATH_LEN])
{
	return eng_host_root_path(e, p, "/proc/driver/nvidia/gpus/%s/unbindLock", addr) == 0 && access(p, F_OK) == 0;
}

void
busy_release_lock(struct eng *e, const char *addr)
{
	char p[ENG_PATH_LEN];
	_cleanup_error_ vgp_error_t err = NULL;
	bool held;
	eng_lock(e);
	held = eng_addr_in(e->locked, e->n_locked, addr);
	eng_addr_del(e->locked, &e->n_locked, addr);
	eng_unlock(e);
	if (!held)
		return;
	if (lock_path(e, addr, p) && vgp_write_file(p, "0", &err) < 0)
		log_warn("%s: releasing the nvidia unbind lock: %s", addr, vgp_error_text(err));
}

void
busy_release_locks(struct eng *e)
{
	while (e->n_locked > 0) {
		char a[VGP_ADDR_LEN];
		memcpy(a, e->locked[0], sizeof a);
		busy_release_lock(e, a);
	}
}

/* A GPU on nvidia whose unbind lock reads 1 while this run does not hold it: a killed run took it. */
void
busy_release_stale_lock(struct eng *e, const char *addr)
{
	char p[ENG_PATH_LEN], val[16], drv[VGP_DRIVER_LEN];
	_cleanup_error_ vgp_error_t err = NULL;
	struct vgp_journal_entry *je = vgp_journal_find(&e->j, addr);
	fn_driver(e, addr, drv);
	if (strcmp(drv, "nvidia") != 0 || eng_addr_in(e->locked, e->n_locked, addr) || !lock_path(e, addr, p))
		return;
	if (je && je->state == VGP_J_STUCK)
		return; /* its unbind still waits in the kernel: leave it be */
	if (vgp_read_file(p, val, sizeof val, &err) < 0 || strcmp(val + strspn(val, " \t"), "1") != 0)
		return;
	log_info("%s stays on nvidia but its unbind lock is taken (by a killed run?): releasing it", addr);
	if (vgp_write_file(p, "0", &err) < 0)
		log_warn("%s", vgp_error_text(err));
}

/* Is the GPU (on nvidia) free to unbind? Holders by st_rdev, then (take_lock) the unbind lock (write 1, read back 1).
 * Returns 0 free (lock held when the driver has one), 1 busy (msg says why, naming PIDs), -1 error. */
static int
gpu_busy(struct eng *e, const struct vgp_pci_dev *d, bool take_lock, char *msg, size_t len, vgp_error_t *err)
{
	char p[ENG_PATH_LEN], val[16], held[512];
	_cleanup_free_ struct vgp_holder *h = NULL;
	size_t nh = 0;

	bool ours, added;

	if (strcmp(d->driver, "nvidia") != 0)
		return 0;
	eng_lock(e);
	ours = eng_addr_in(e->locked, e->n_locked, d->addr);
	eng_unlock(e);
	if (ours)
		return 0;
	if (d->nvidia_minor >= 0) {
		if (vgp_nvidia_holders(e->root, d->nvidia_minor, &h, &nh, err) < 0)
			return vgp_error_wrap(err, "%s: holders of /dev/nvidia%d", d->addr, d->nvidia_minor);
		if (nh > 0) {
			vgp_holders_text(h, nh, held, sizeof held);
			snprintf(msg, len, "%s is busy: /dev/nvidia%d is held by %s", d->addr, d->nvidia_minor, held);
			return 1;
		}
	}
	if (!take_lock || !lock_path(e, d->addr, p))
		return 0;
	if (vgp_write_file(p, "1", err) < 0)
		return vgp_error_wrap(err, "%s: step unbind lock", d->addr);
	eng_lock(e);
	added = eng_addr_add(&e->locked, &e->n_locked, d->addr) == 0;
	eng_unlock(e);
	if (!added)
		return vgp_make_error(err, ENOMEM, "unbind lock");
	/* the kernel answers synchronously ("1\n" or "0\n"); anything else is not an answer yet (a simulated kernel
	 * works asynchronously): read again within the bounded wait */
	for (long deadline = vgp_now_ms() + e->wait_ms;;) {
		const char *v = val;
		if (vgp_read_file(p, val, sizeof val, err) < 0)
			return vgp_error_wrap(err, "%s: step unbind lock", d->addr);
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcmp(v, "1") == 0 || strcmp(v, "0") == 0) {
			memmove(val, v, strlen(v) + 1);
			break;
		}
		if (vgp_now_ms() >= deadline)
			break;
		vgp_sleep_ms(ENG_POLL_MS);
	}
	if (strcmp(val, "1") != 0) {
		eng_lock(e);
		eng_addr_del(e->locked, &e->n_locked, d->addr);
		eng_unlock(e);
		snprintf(msg, len, "%s is busy: the nvidia driver refused its unbind lock (a client still holds the "
			 "GPU; no holder is visible in /proc: a process in another PID namespace?)", d->addr);
		return 1;
	}
	return 0;
}

/* Busy policy skip: the GPU is recorded skipped and excluded (the plan picks another in its place). */
static void
skip_busy(struct eng *e, const struct vgp_plan_gpu *g, const char *msg, long ms)
{
	log_warn("%s: skipped (busy policy skip)", msg);
	eng_result(e, e->inv.devs[g->dev].addr, g->resource, VGP_OUT_SKIPPED_BUSY, ms, g->n_members,
		   "%s: skipped (busy policy skip)", msg);
	eng_exclude(e, e->inv.devs[g->dev].addr, msg);
}

/* The busy policy at the GPU's own turn, right before its first write: holders again, then the unbind lock
 * (policy skip: taken here, just before its unbind, so that new opens are refused for as short a time as possible;
 * fail and wait took every lock up front in busy_phase, before the first write, and only a GPU without an unbind
 * lock file is checked again here).
 * Returns 0 (go on), 1 (skipped: result recorded, excluded), -1 (failed: result recorded). */
int
busy_lock_gpu(struct eng *e, const struct vgp_plan_gpu *g)
{
	const struct vgp_pci_dev *d = &e->inv.devs[g->dev];
	enum vgp_busy_policy pol = e->o->cfg ? e->o->cfg->busy_policy : VGP_BUSY_SKIP;
	int timeout_s = e->o->cfg ? e->o->cfg->busy_timeout_s : 60;
	long deadline = vgp_now_ms() + (long) timeout_s * 1000, t0 = vgp_now_ms();
	bool waited = false;
	char msg[ENG_MSG_LEN];

	for (;;) {
		_cleanup_error_ vgp_error_t err = NULL;
		int r = gpu_busy(e, d, true, msg, sizeof msg, &err);
		if (r < 0) {
			eng_result(e, d->addr, g->resource, VGP_OUT_FAILED, vgp_now_ms() - t0, g->n_members, "%s", vgp_error_text(err));
			return -1;
		}
		if (r == 0)
			return 0;
		if (pol == VGP_BUSY_SKIP) {
			skip_busy(e, g, msg, vgp_now_ms() - t0);
			return 1;
		}
		if (pol == VGP_BUSY_WAIT && vgp_now_ms() < deadline) {
			if (!waited)
				log_info("%s: waiting up to %d s (busy policy wait)", msg, timeout_s);
			waited = true;
			vgp_sleep_ms(VGP_BUSY_RECHECK_MS);
			continue;
		}
		if (pol == VGP_BUSY_WAIT)
			eng_result(e, d->addr, g->resource, VGP_OUT_FAILED, vgp_now_ms() - t0, g->n_members,
				   "%s (still busy after waiting %d s, busy policy wait)", msg, timeout_s);
		else
			eng_result(e, d->addr, g->resource, VGP_OUT_FAILED, vgp_now_ms() - t0, g->n_members,
				   "%s (busy policy fail)", msg);
		return -1;
	}
}


/* One pass over the GPUs about to move: their holders (lock false) or their unbind locks, taken (lock true). Each
 * busy GPU is counted in *busy and named in m ("; "-separated); under policy skip it is excluded at once. Returns 0,
 * or -1 with *err filled. */
static int
busy_scan(struct eng *e, const struct vgp_plan_gpu **work, size_t nw, bool lock, enum vgp_busy_policy pol, FILE *m,
	  size_t *busy, bool *excluded, vgp_error_t *err)
{
	char msg[ENG_MSG_LEN];

	for (size_t i = 0; i < nw; i++) {
		const struct vgp_plan_gpu *g = work[i];
		const struct vgp_pci_dev *d;
		int r;
		if (g == NULL || g->action != VGP_ACT_BIND)
			continue;
		d = &e->inv.devs[g->dev];
		r = gpu_busy(e, d, lock, msg, sizeof msg, err);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		(*busy)++; /* and go on: every busy GPU is named */
		fprintf(m, "%s%s", *busy > 1 ? "; " : "", msg);
		if (pol == VGP_BUSY_SKIP) {
			skip_busy(e, g, msg, 0);
			*excluded = true;
			work[i] = NULL;
		}
	}
	return 0;
}

/* The busy phase for the GPUs about to move. Returns 0 (go on), 1 (exclusions added: re-plan), -1 (stop). */
int
busy_phase(struct eng *e, const struct vgp_plan_gpu **work, size_t nw, vgp_error_t *err)
{
	enum vgp_busy_policy pol = e->o->cfg ? e->o->cfg->busy_policy : VGP_BUSY_SKIP;
	int timeout_s = e->o->cfg ? e->o->cfg->busy_timeout_s : 60;
	long deadline = vgp_now_ms() + (long) timeout_s * 1000;
	bool excluded = false, waited = false;

	for (;;) {
		_cleanup_free_ char *all = NULL;
		size_t busy = 0, alen = 0;
		FILE *m = open_memstream(&all, &alen);
		if (m == NULL)
			return vgp_make_error(err, errno, "busy check");
		/* holders first; then, for fail and wait once no holder is left, the unbind lock of every GPU about to
		 * move, before the first write: a lock refused at a GPU's own turn would come after earlier groups had
		 * moved (skip takes each at its GPU's turn, in lock_gpu, and passes over a refused one) */
		if (busy_scan(e, work, nw, false, pol, m, &busy, &excluded, err) < 0 ||
		    (busy == 0 && pol != VGP_BUSY_SKIP && busy_scan(e, work, nw, true, pol, m, &busy, &excluded, err) < 0)) {
			fclose(m);
			busy_release_locks(e);
			return -1;
		}
		fclose(m);
		if (pol == VGP_BUSY_SKIP)
			return excluded ? 1 : 0;
		if (busy == 0) {
			if (waited)
				log_info("busy GPUs are free now");
			return 0; /* the locks taken stay held until each unbind consumes its own (or release_locks) */
		}
		busy_release_locks(e); /* refused somewhere: give back the ones taken, nothing is moved with them held */
		if (pol == VGP_BUSY_WAIT && vgp_now_ms() < deadline) {
			if (!waited)
				log_info("waiting up to %d s for busy GPUs (busy policy wait): %s", timeout_s, all);
			waited = true;
			vgp_sleep_ms(VGP_BUSY_RECHECK_MS);
			continue;
		}
		if (pol == VGP_BUSY_WAIT)
			return vgp_make_error(err, EBUSY, "%s (still busy after waiting %d s, busy policy wait)%s", all,
					      timeout_s, eng_wrote(e) ? "" : "; nothing was changed");
		return vgp_make_error(err, EBUSY, "%s (busy policy fail)%s", all, eng_wrote(e) ? "" : "; nothing was changed");
	}
}
