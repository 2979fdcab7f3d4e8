/* release.c — vgp_release (vfio.h): GPUs back to the drivers the journal recorded, each with its group; refused
 * while a VM holds its VFIO nodes (unless --force), the journal and the udev rule file updated. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine-internal.h"
#include "hostfs.h"
#include "log.h"
#include "stop.h"
#include "util.h"

struct rel_fn {
	char addr[VGP_ADDR_LEN];
	char orig[VGP_DRIVER_LEN];
	bool journaled;
};

/* Processes holding one of the group's VFIO nodes: /dev/vfio/<group>, and on an iommufd host the
 * /dev/vfio/devices/vfioN of each function (<host-root>/sys/bus/pci/devices/<addr>/vfio-dev/vfioN), matched by
 * device number. held gets "/dev/vfio/12 is open by pid 777 (qemu-kvm); ..." and *n the number of holders. */
static int
vfio_holders(struct eng *e, int group, const struct rel_fn *f, size_t nf, char *held, size_t len, size_t *n,
	     vgp_error_t *err)
{
	char node[ENG_PATH_LEN], dir[ENG_PATH_LEN], text[512];
	struct stat st;
	size_t off = 0;

	*n = 0;
	held[0] = '\0';
	for (size_t i = 0; i <= nf; i++) {
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		char rel[8][64]; /* host paths, without the host root */
		size_t nn = 0;

		if (i == nf) { /* the group node */
			if (group >= 0)
				snprintf(rel[nn++], sizeof rel[0], "/dev/vfio/%d", group);
		} else if (eng_host_root_path(e, dir, "/sys/bus/pci/devices/%s/vfio-dev", f[i].addr) == 0 &&
			   (d = opendir(dir)) != NULL) {
			while ((de = readdir(d)) != NULL && nn < 8)
				if (strncmp(de->d_name, "vfio", 4) == 0 && strlen(de->d_name) < 40)
					snprintf(rel[nn++], sizeof rel[0], "/dev/vfio/devices/%s", de->d_name);
		}
		for (size_t k = 0; k < nn; k++) {
			_cleanup_free_ struct vgp_holder *h = NULL;
			size_t nh = 0;
			if (eng_host_root_path(e, node, "%s", rel[k]) < 0 || stat(node, &st) < 0 || !S_ISCHR(st.st_mode))
				continue;
			if (vgp_rdev_holders(e->root, (unsigned long) st.st_rdev, &h, &nh, err) < 0)
				return -1;
			if (nh == 0)
				continue;
			vgp_holders_text(h, nh, text, sizeof text);
			off += (size_t) snprintf(held + off, off < len ? len - off : 0, "%s%s is open by %s",
						 off ? "; " : "", rel[k], text);
			if (off >= len)
				off = len - 1;
			*n += nh;
		}
	}
	return 0;
}

/* One GPU's release. */
struct rel {
	const char *gpu;
	struct rel_fn *f;       /* its functions: the journaled ones, then unjournaled ones of the card on vfio */
	size_t nf, cap;
	int group;
	long t0;
	char why[ENG_MSG_LEN * 2];
	bool ok, stuck_any;
};

static void
why_add(struct rel *r, const char *msg)
{
	size_t l = strlen(r->why);
	snprintf(r->why + l, sizeof r->why - l, "%s%s", l ? "; " : "", msg);
	r->ok = false;
}

/* A function whose unbind still waits in the kernel holds the device lock: any write (even the clearing of
 * driver_override) would hang this process too, --force or not. Records the result when so. */
static bool
still_stuck(struct eng *e, const char *gpu)
{
	for (size_t i = 0; i < e->j.n; i++) {
		const struct vgp_journal_entry *je = &e->j.e[i];
		char cur[VGP_DRIVER_LEN];
		if (strcmp(je->gpu, gpu) != 0 || je->state != VGP_J_STUCK)
			continue;
		fn_driver(e, je->addr, cur);
		if (!fn_exists(e, je->addr) || strcmp(cur, je->orig_driver) == 0) {
			eng_result(e, gpu, "", VGP_OUT_STUCK, 0, 0, "%s: stuck: a reboot is needed (the unbind of %s "
				   "never returned; nothing is written to it)", gpu, je->addr);
			return true;
		}
	}
	return false;
}

/* Functions of the same card on vfio-pci that the journal does not know (on vfio-pci before us, e.g.
 * vfio-pci.ids) leave too, to whatever driver a plain probe gives: no group stays half on vfio. */
static void
collect_unjournaled(struct eng *e, struct rel *r)
{
	char cur[VGP_DRIVER_LEN];
	for (size_t i = 0; i < e->inv.n && r->nf < r->cap; i++) {
		const struct vgp_pci_dev *o = &e->inv.devs[i];
		bool listed = false;
		if (strcmp(o->addr, r->gpu) != 0 &&
		    !(r->group >= 0 && o->iommu_group == r->group && vgp_same_card(r->gpu, o->addr)))
			continue;
		for (size_t k = 0; k < r->nf; k++)
			listed |= strcmp(r->f[k].addr, o->addr) == 0;
		fn_driver(e, o->addr, cur);
		if (listed || !vgp_driver_is_vfio(cur))
			continue;
		snprintf(r->f[r->nf].addr, VGP_ADDR_LEN, "%s", o->addr);
		r->nf++;
	}
}

/* The functions to give back. Returns 0 (go on) or 1 (nothing to do: the result is recorded). */
static int
collect(struct eng *e, struct rel *r)
{
	const struct vgp_pci_dev *d = vgp_inventory_find(&e->inv, r->gpu);
	char cur[VGP_DRIVER_LEN];

	for (size_t i = 0; i < e->j.n; i++)
		if (strcmp(e->j.e[i].gpu, r->gpu) == 0) {
			snprintf(r->f[r->nf].addr, VGP_ADDR_LEN, "%s", e->j.e[i].addr);
			snprintf(r->f[r->nf].orig, VGP_DRIVER_LEN, "%s", e->j.e[i].orig_driver);
			r->f[r->nf].journaled = true;
			r->group = e->j.e[i].group;
			r->nf++;
		}
	if (r->nf == 0 && (d == NULL || !fn_exists(e, r->gpu))) {
		eng_result(e, r->gpu, "", VGP_OUT_FAILED, 0, 0, "%s: no such PCI device", r->gpu);
		return 1;
	}
	if (d && r->group < 0)
		r->group = d->iommu_group;
	if (d)
		collect_unjournaled(e, r);
	if (r->nf == 0) {
		fn_driver(e, r->gpu, cur);
		eng_result(e, r->gpu, "", VGP_OUT_RELEASED, 0, 0, "%s: nothing to release: on %s, not passed through",
			   r->gpu, cur[0] ? cur : "no driver");
		return 1;
	}
	return 0;
}

/* A running VM holds /dev/vfio/<group>, or on an iommufd host /dev/vfio/devices/vfioN of a function: refused
 * unless force. Returns 0 (go on) or 1 (the result is recorded). */
static int
check_holders(struct eng *e, struct rel *r, bool force)
{
	_cleanup_error_ vgp_error_t err = NULL;
	char held[512];
	size_t nh = 0;

	if (vfio_holders(e, r->group, r->f, r->nf, held, sizeof held, &nh, &err) < 0) {
		eng_result(e, r->gpu, "", VGP_OUT_FAILED, 0, r->nf, "%s: holders of its VFIO nodes: %s", r->gpu, vgp_error_text(err));
		return 1;
	}
	if (nh == 0)
		return 0;
	if (!force) {
		eng_result(e, r->gpu, "", VGP_OUT_REFUSED, vgp_now_ms() - r->t0, r->nf,
			   "%s: %s (a running VM?): refused; stop it first or use --force", r->gpu, held);
		return 1;
	}
	log_warn("%s: %s; releasing anyway (--force)", r->gpu, held);
	return 0;
}

/* Journal RELEASING, restore each function, journal again, drop their udev lines. Returns 0, or 1 when it could
 * not start (the result is recorded). */
static int
restore_all(struct eng *e, struct rel *r)
{
	_cleanup_error_ vgp_error_t err = NULL;
	_cleanup_free_ char (*gone)[VGP_ADDR_LEN] = NULL;
	size_t ngone = 0;
	int pr;

	eng_lock(e); /* checked once for the run, by whichever group comes first */
	pr = eng_preconditions(e, false, &err);
	eng_unlock(e);
	if (pr < 0) {
		eng_result(e, r->gpu, "", VGP_OUT_FAILED, 0, r->nf, "%s", vgp_error_text(err));
		return 1;
	}
	eng_lock(e);
	for (size_t i = 0; i < r->nf; i++)
		if (r->f[i].journaled)
			eng_jstate(e, r->f[i].addr, VGP_J_RELEASING);
	pr = eng_jsave(e, &err);
	eng_unlock(e);
	if (pr < 0) {
		eng_result(e, r->gpu, "", VGP_OUT_FAILED, 0, r->nf, "%s: step journal: %s", r->gpu, vgp_error_text(err));
		return 1;
	}
	for (size_t i = 0; i < r->nf; i++) {
		_cleanup_error_ vgp_error_t ferr = NULL;
		bool stuck = false;
		if (fn_restore(e, r->f[i].addr, r->f[i].orig, !r->f[i].journaled, &stuck, &ferr) < 0) {
			why_add(r, vgp_error_text(ferr));
			if (stuck) {
				r->stuck_any = true;
				eng_jstate(e, r->f[i].addr, VGP_J_STUCK);
			}
			continue;
		}
		eng_lock(e);
		if (r->f[i].journaled)
			vgp_journal_remove(&e->j, r->f[i].addr);
		eng_unlock(e);
		eng_addr_add(&gone, &ngone, r->f[i].addr);
	}
	eng_lock(e); /* the journal and the rule file: one writer */
	if (eng_jsave(e, &err) < 0) {
		why_add(r, vgp_error_text(err));
		vgp_error_release(&err);
	}
	if (ngone && udev_drop(e, gone, ngone, &err) < 0)
		why_add(r, vgp_error_text(err));
	eng_unlock(e);
	return 0;
}

/* May run on a worker thread beside other groups' releases (parallel.c), like group_bind. */
static void
release_group(struct eng *e, const char *gpu, bool force)
{
	struct rel r = { .gpu = gpu, .group = -1, .t0 = vgp_now_ms(), .ok = true };
	_cleanup_free_ struct rel_fn *f = NULL;

	eng_lock(e);
	r.cap = e->j.n + 16; /* the journal only shrinks during a release */
	eng_unlock(e);
	f = calloc(r.cap, sizeof *f);
	long ms;

	if (f == NULL) {
		eng_result(e, gpu, "", VGP_OUT_FAILED, 0, 0, "out of memory");
		return;
	}
	r.f = f;
	eng_lock(e); /* both read the journal, which other groups' releases change */
	bool stop = still_stuck(e, gpu) || collect(e, &r) != 0;
	eng_unlock(e);
	if (stop || check_holders(e, &r, force) != 0 || restore_all(e, &r) != 0)
		return;
	ms = vgp_now_ms() - r.t0;
	if (r.ok) {
		char drv[VGP_DRIVER_LEN];
		fn_driver(e, gpu, drv);
		log_info("released %s (%zu function%s) to %s in %ld ms", gpu, r.nf, r.nf == 1 ? "" : "s",
			 drv[0] ? drv : "no driver", ms);
		eng_result(e, gpu, "", VGP_OUT_RELEASED, ms, r.nf, "back on %s", drv[0] ? drv : "no driver");
	} else {
		eng_result(e, gpu, "", r.stuck_any ? VGP_OUT_STUCK : VGP_OUT_FAILED, ms, r.nf, "%s", r.why);
	}
}

struct rel_job {
	char (*gpus)[VGP_ADDR_LEN];
	bool force;
};

static void
release_one(struct eng *e, size_t i, void *arg)
{
	struct rel_job *job = arg;
	int sig = vgp_stop_requested();

	if (sig != 0) {
		/* a deferred SIGINT/SIGTERM/SIGHUP: the groups already returning finish; no other group starts */
		eng_not_started(e, job->gpus[i], "", 0, "released", sig);
		return;
	}
	release_group(e, job->gpus[i], job->force);
}

/* The GPUs to release: those named (a function address stands for its GPU, through the journal), or every GPU
 * in the journal. */
static int
release_targets(struct eng *e, const char *const *addrs, size_t n, char (**gpus)[VGP_ADDR_LEN], size_t *ng,
		vgp_error_t *err)
{
	if (n == 0) {
		for (size_t i = 0; i < e->j.n; i++)
			if (eng_addr_add(gpus, ng, e->j.e[i].gpu) < 0)
				return vgp_make_error(err, ENOMEM, "release");
		if (*ng == 0)
			log_info("release: the journal %s lists no GPU", e->state);
	}
	for (size_t i = 0; i < n; i++) {
		char a[VGP_ADDR_LEN];
		struct vgp_journal_entry *je;
		if (vgp_addr_normalize(addrs[i], a) < 0)
			return vgp_make_usage_error(err, "release: '%s' is not a PCI address (DDDD:BB:DD.F)", addrs[i]);
		je = vgp_journal_find(&e->j, a);
		if (eng_addr_add(gpus, ng, je ? je->gpu : a) < 0)
			return vgp_make_error(err, ENOMEM, "release");
	}
	return 0;
}

int
vgp_release(const struct vgp_engine_opts *o, const char *const *addrs, size_t n, bool force,
	    struct vgp_engine_report *rep, vgp_error_t *err)
{
	struct eng e;
	_cleanup_free_ char (*gpus)[VGP_ADDR_LEN] = NULL;
	size_t ng = 0;
	bool dropped = false;
	int r = -1;

	if (eng_init(&e, o, rep, err) < 0)
		goto out;
	if (vgp_inventory_scan(e.root, o->pci_ids, &e.inv, err) < 0)
		goto out;
	/* an entry whose address now holds another function (buses renumbered, a card added): dropped, never
	 * released onto that function */
	if (eng_vet_journal(&e, &dropped, err) < 0)
		goto out;
	if (release_targets(&e, addrs, n, &gpus, &ng, err) < 0)
		goto out;
	{
		struct rel_job job = { .gpus = gpus, .force = force };
		long ms = eng_run_parallel(&e, ng, release_one, &job);
		if (ng > 1)
			log_info("released %zu groups in %ld ms (%zu at a time)", ng, ms, eng_workers(&e, ng));
	}
	for (size_t i = 0; i < e.inv.n; i++)
		if (vgp_dev_is_display(&e.inv.devs[i]))
			busy_release_stale_lock(&e, e.inv.devs[i].addr);
	if (rep->n_failed > 0) {
		vgp_make_error(err, 0, "%zu GPU%s not released", rep->n_failed, rep->n_failed == 1 ? "" : "s");
		goto out;
	}
	r = 0;
out:
	vgp_inventory_free(&e.inv); /* the inventory only (e.have stays false) */
	memset(&e.inv, 0, sizeof e.inv);
	eng_free(&e);
	return r;
}
