/* serve_live.c — owns the live re-split inside serve (issue 13): the --config file followed (directory inotify,
 * SIGHUP), a new version validated fully (an invalid one changes nothing and is reported once), then the node
 * converged GPU group by GPU group: the engine binds the newly chosen GPUs (vgp_bind: journal, verify, rollback)
 * and they join the served list (a new resource gets its own socket and Register; other resources' streams are
 * untouched); GPUs to give back (moves.h decides which) are Unhealthy at once and released (vgp_release, never
 * forced) only when kubelet's PodResources lists no container with them and no process holds their group's
 * /dev/vfio nodes, re-checked every reconcile and on close events of those nodes. A resource with no GPUs left is
 * unregistered (its socket removed). NVIDIA's device plugin is told (SIGHUP) or warned about, as configured.
 * This file owns the config, the converge step and the table changes; serve_drain.c the GPUs being given back. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grpc_server.h"
#include "hostfs.h"
#include "log.h"
#include "metrics.h"
#include "metrics_report.h"
#include "moves.h"
#include "nfd_features.h"
#include "pci.h"
#include "podresources.h"
#include "resplit.h"
#include "serve-internal.h"
#include "served_table.h"
#include "util.h"

/* ---- the tables ---- */

/* c (allocated) into the strings freed at the end of serve; NULL (c freed) when c is NULL or out of memory */
static char *
adopt(struct serve *s, char *c)
{
	char **no;
	if (c == NULL || (no = vgp_array_push(&s->owned, &s->n_owned, sizeof *no)) == NULL) {
		free(c);
		return NULL;
	}
	*no = c;
	return c;
}

/* a copy of str owned by serve (adopt) */
static char *
own(struct serve *s, const char *str)
{
	return adopt(s, str != NULL ? strdup(str) : NULL);
}

static ssize_t
res_index(const struct serve *s, const char *name)
{
	for (size_t i = 0; i < s->n_res; i++)
		if (strcmp(s->res[i].name, name) == 0)
			return (ssize_t) i;
	return -1;
}

bool
live_served_at(const struct serve *s, const char *addr, size_t *ri, size_t *ki)
{
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t k = 0; k < s->res[i].n_devs; k++)
			if (strcmp(s->res[i].devs[k].addr, addr) == 0) {
				*ri = i;
				*ki = k;
				return true;
			}
	return false;
}

/* A resource that appears while serving: its own server (listening once its devices are in, open_resource) and
 * registration slot. Returns its index or -1. */
static ssize_t
add_resource(struct serve *s, const char *name, bool iommufd, vgp_error_t *err)
{
	/* two arrays of n_res elements: each grown from a copy of the count, which is raised once both are in */
	size_t i = s->n_res, n_res = s->n_res, n_gone = s->n_res;

	if (vgp_array_push(&s->res, &n_res, sizeof *s->res) == NULL ||
	    vgp_array_push(&s->gone, &n_gone, sizeof *s->gone) == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	snprintf(s->res[i].name, sizeof s->res[i].name, "%s", name);
	s->res[i].iommufd = iommufd;
	s->gone[i] = false;
	if (vgp_server_add(s->srv, &s->res[i], err) != (int) i)
		return -1;
	if (vgp_registrar_add(s->reg, name, vgp_server_socket_name(s->srv, i), err) != (int) i)
		return -1;
	s->n_res++;
	return (ssize_t) i;
}

/* Serve and register a resource once its devices are in: kubelet's first list is the whole one. */
static void
open_resource(struct serve *s, size_t i)
{
	_cleanup_error_ vgp_error_t err = NULL;
	if (vgp_server_listen(s->srv, i, &err) < 0) {
		log_error("%s: %s", s->res[i].name, vgp_error_text(err)); /* retried by the reconcile: the socket is missing */
		return;
	}
	vgp_registrar_request(s->reg, i);
	log_info("%s: new resource (live re-split): %zu device%s, serving on %s and registering", s->res[i].name,
		 s->res[i].n_devs, s->res[i].n_devs == 1 ? "" : "s", vgp_server_socket_path(s->srv, i));
}

static int
add_dev(struct serve *s, size_t i, const struct vgp_served_dev *src, vgp_error_t *err)
{
	struct vgp_served_resource *r = &s->res[i];
	struct vgp_served_dev d = *src;

	/* the slot reserved first (nothing to undo when that fails), counted only once d is whole */
	if (vgp_array_push(&r->devs, &r->n_devs, sizeof *r->devs) == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	r->n_devs--;
	d.topo_path = src->topo_path ? own(s, src->topo_path) : NULL;
	d.members = NULL;
	d.n_members = 0;
	d.vfio_dev_nodes = NULL;
	d.n_vfio_dev_nodes = 0;
	d.beyond_count = false;
	d.healthy = false;
	if (src->n_members > 0) {
		char **m = calloc(src->n_members, sizeof *m);
		if (adopt(s, (char *) m) == NULL) /* the array is owned too */
			return vgp_make_error(err, ENOMEM, "serve");
		for (size_t k = 0; k < src->n_members; k++)
			if ((m[k] = own(s, src->members[k])) == NULL)
				return vgp_make_error(err, ENOMEM, "serve");
		d.members = m;
		d.n_members = src->n_members;
	}
	if (r->iommufd && serve_read_vfio_dev_nodes(s->o->host_root, &d, err) < 0)
		return -1;
	r->devs[r->n_devs++] = d;
	return 0;
}

/* After devices were added or removed: health re-opened, the changed resources' lists sent, emptied resources
 * unregistered. */
void
live_commit_tables(struct serve *s, const bool *touched, size_t n_touched)
{
	_cleanup_error_ vgp_error_t err = NULL;

	if (serve_health_rebuild(s, &err) < 0) {
		log_error("health watch: %s", vgp_error_text(err));
		vgp_error_release(&err);
	}
	for (size_t i = 0; i < s->n_res && i < n_touched; i++) {
		if (!touched[i] || s->gone[i])
			continue;
		if (vgp_server_set_devices(s->srv, i, &s->res[i], &err) < 0) {
			log_error("%s: %s", s->res[i].name, vgp_error_text(err));
			vgp_error_release(&err);
		}
		if (s->res[i].n_devs == 0) {
			vgp_server_stop_listener(s->srv, i);
			vgp_registrar_drop(s->reg, i);
			s->gone[i] = true;
			log_info("%s: no GPUs left: unregistered (socket %s removed)", s->res[i].name,
				 vgp_server_socket_path(s->srv, i));
		}
	}
	serve_push_health(s);
	/* the node labels follow the served GPUs (a resource given back whole has none: its label goes) */
	if (s->o->nfd_dir != NULL && s->o->nfd_dir[0] != '\0' &&
	    vgp_nfd_write(s->o->nfd_dir, s->res, s->n_res, &err) < 0)
		log_warn("node labels: %s", vgp_error_text(err));
}

/* ---- converge ---- */

/* The engine binds what the config in force wants; the GPUs it could not move are counted in to_bind. Returns the
 * number bound now. */
static size_t
bind_step(struct serve *s, struct vgp_engine_report *rep, vgp_error_t *err)
{
	size_t bound = 0;
	int r;

	s->to_bind = 0;
	s->bind_error[0] = '\0';
	r = vgp_bind(&s->eo, rep, err);
	for (size_t i = 0; i < rep->n; i++) {
		const struct vgp_gpu_result *g = &rep->r[i];
		if (g->outcome == VGP_OUT_BOUND) {
			bound++;
			continue;
		}
		if (g->outcome == VGP_OUT_PASSTHROUGH)
			continue;
		if (g->outcome == VGP_OUT_SKIPPED_BUSY) { /* busy policy skip: another GPU was chosen */
			log_info("%s %s: %s", g->addr, vgp_outcome_name(g->outcome), g->msg ? g->msg : "");
			continue;
		}
		s->to_bind++;
		log_warn("%s %s%s%s", g->addr, vgp_outcome_name(g->outcome), g->msg ? ": " : "", g->msg ? g->msg : "");
		if (s->bind_error[0] == '\0')
			snprintf(s->bind_error, sizeof s->bind_error, "%s %s: %s", g->addr, vgp_outcome_name(g->outcome),
				 g->msg ? g->msg : "");
	}
	if (r < 0 && s->bind_error[0] == '\0' && *err != NULL)
		snprintf(s->bind_error, sizeof s->bind_error, "%s", vgp_error_text(*err));
	return bound;
}

/* A return move: the GPU drains (Unhealthy from now on). */
static void
drain_move(struct serve *s, const struct vgp_move *x)
{
	struct drain *d = live_drain_find(s, x->addr);
	if (d == NULL) {
		d = vgp_array_push(&s->drain, &s->n_drain, sizeof *d);
		if (d == NULL)
			return;
		snprintf(d->addr, sizeof d->addr, "%s", x->addr);
		log_info("%s: %s to be given back (%s): Unhealthy now, %s when idle", x->resource, x->addr, x->reason,
			 x->release ? "released to its original driver" : "unserved (stays on vfio-pci)");
	}
	snprintf(d->resource, sizeof d->resource, "%s", x->resource);
	snprintf(d->why, sizeof d->why, "%s", x->reason);
	d->release = x->release;
	vgp_metrics_gpu_draining(x->addr, true);
}

/* A bind (done by bind_step, if it worked) or serve move: the GPU joins its resource (a new one is opened later:
 * fresh[i]). */
static void
serve_move(struct serve *s, const struct vgp_move *x, const struct vgp_served_table *table,
	   const struct vgp_engine_report *rep, bool *touched, bool *fresh, size_t n_before)
{
	_cleanup_error_ vgp_error_t err = NULL;
	const struct vgp_served_dev *src = NULL;
	size_t ri, ki;
	bool moved_now = false;

	for (size_t i = 0; i < table->n && src == NULL; i++)
		if (strcmp(table->res[i].name, x->resource) == 0)
			for (size_t k = 0; k < table->res[i].n_devs && src == NULL; k++)
				if (strcmp(table->res[i].devs[k].addr, x->addr) == 0)
					src = &table->res[i].devs[k];
	if (src == NULL)
		return; /* its bind did not succeed: counted in to_bind */
	ssize_t i = res_index(s, x->resource);
	if (live_served_at(s, x->addr, &ri, &ki) && i >= 0 && ri == (size_t) i)
		return;
	if (i < 0 && (i = add_resource(s, x->resource, table->res[0].iommufd, &err)) < 0) {
		log_error("%s: %s", x->resource, vgp_error_text(err));
		return;
	}
	if ((size_t) i >= n_before || s->gone[i]) { /* new, or given back whole earlier and wanted again */
		s->gone[i] = false;
		fresh[i] = true;
	}
	if (add_dev(s, (size_t) i, src, &err) < 0) {
		log_error("%s: %s: %s", x->resource, x->addr, vgp_error_text(err));
		return;
	}
	touched[i] = true;
	for (size_t g = 0; g < rep->n; g++)
		moved_now = moved_now || (rep->r[g].outcome == VGP_OUT_BOUND && strcmp(rep->r[g].addr, x->addr) == 0);
	log_info("%s: %s now served (%s)", x->resource, x->addr, moved_now ? "moved to vfio-pci" : "already on vfio-pci");
}

/* After the moves: drains the config no longer asks for end, past-the-count marks follow the moves. */
static void
settle(struct serve *s, const struct vgp_moves *mv, bool *touched)
{
	for (size_t j = s->n_drain; j-- > 0;) {
		const struct vgp_move *x = vgp_moves_find(mv, s->drain[j].addr);
		if (x != NULL && x->kind == VGP_MOVE_RETURN)
			continue;
		log_info("%s: wanted again: stays served (no longer draining)", s->drain[j].addr);
		vgp_metrics_gpu_draining(s->drain[j].addr, false);
		memmove(&s->drain[j], &s->drain[j + 1], (s->n_drain - j - 1) * sizeof *s->drain);
		s->n_drain--;
	}
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t k = 0; k < s->res[i].n_devs; k++) {
			bool b = vgp_moves_beyond(mv, s->res[i].devs[k].addr);
			touched[i] = touched[i] || b != s->res[i].devs[k].beyond_count;
			s->res[i].devs[k].beyond_count = b;
		}
}

/* The metrics of the served GPUs after the moves. The engine's report (a bind) records every GPU of the new plan
 * and each group's outcome (vgp_metrics_record_bind), which knows nothing of serve's own state: a GPU still served
 * while it drains is no passthrough GPU of the new plan, and a recorded GPU's health starts unknown. So each served
 * GPU is passthrough (recorded again when the plan says otherwise), with its health and its drain. */
static void
metrics_served(struct serve *s, const struct vgp_engine_report *rep, bool bound)
{
	if (bound && vgp_metrics_record_bind(rep) < 0)
		log_warn("metrics: out of memory recording the GPUs");
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t k = 0; !s->gone[i] && k < s->res[i].n_devs; k++) {
			const struct vgp_served_dev *sd = &s->res[i].devs[k];
			for (size_t g = 0; g < rep->plan.n; g++) {
				const struct vgp_plan_gpu *pg = &rep->plan.gpus[g];
				const struct vgp_pci_dev *d = &rep->inv.devs[pg->dev];
				if (strcmp(d->addr, sd->addr) != 0)
					continue;
				if ((pg->action != VGP_ACT_PASSTHROUGH || strcmp(pg->resource, s->res[i].name) != 0) &&
				    vgp_metrics_gpu_set(d->addr, s->res[i].name, d->model, d->numa_node, d->iommu_group,
							d->driver, VGP_GPU_PASSTHROUGH) < 0)
					log_warn("metrics: out of memory recording %s", d->addr);
				break;
			}
			vgp_metrics_gpu_health(sd->addr, sd->healthy);
			vgp_metrics_gpu_draining(sd->addr, live_draining(s, sd->addr) != NULL);
		}
}

/* The moves from what is served now to the plan in rep (kubelet's assignments when it can be asked). */
static int
moves_now(struct serve *s, const struct vgp_engine_report *rep, struct vgp_moves *mv, vgp_error_t *err)
{
	struct vgp_pod_devices pods = { 0 };
	_cleanup_free_ struct vgp_served_gpu *served = calloc(s->n_h ? s->n_h : 1, sizeof *served);
	_cleanup_free_ const char **assigned = NULL;
	size_t n_served = 0, n_assigned = 0;
	char why[1024];
	int r;

	if (served == NULL)
		return vgp_make_error(err, ENOMEM, "moves");
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t k = 0; k < s->res[i].n_devs && n_served < s->n_h; k++)
			served[n_served++] = (struct vgp_served_gpu) { s->res[i].devs[k].addr, s->res[i].name };
	if (live_pods_now(s, &pods, why, sizeof why) == 0 && pods.n > 0) {
		assigned = calloc(pods.n, sizeof *assigned);
		for (size_t p = 0; assigned != NULL && p < pods.n; p++)
			assigned[n_assigned++] = pods.d[p].id;
	}
	r = vgp_resplit_moves(&s->eo, &rep->inv, &rep->plan, served, n_served, assigned, n_assigned, mv, err);
	vgp_pod_devices_free(&pods);
	return r;
}

/* Bind what the config in force wants (or, at the start, only plan: main has bound already), then turn the diff
 * into served devices and drains. */
static void
converge(struct serve *s, bool bind)
{
	struct vgp_engine_report rep = { 0 };
	struct vgp_moves mv = { 0 };
	struct vgp_served_table table = { 0 };
	_cleanup_error_ vgp_error_t err = NULL;
	_cleanup_free_ bool *touched = NULL, *fresh = NULL;
	size_t bound = 0, n_before = s->n_res;
	char why[128];

	if (bind) {
		bound = bind_step(s, &rep, &err);
	} else {
		rep.have_plan = vgp_plan_node(&s->eo, &rep.inv, &rep.plan, &err) == 0;
	}
	if (!rep.have_plan) {
		log_error("live re-split: the node cannot be planned: %s (the running split stays)",
			  err ? vgp_error_text(err) : "unknown");
		goto out;
	}
	for (size_t w = 0; bind && w < rep.plan.n_warnings; w++)
		log_warn("%s", rep.plan.warnings[w]);
	vgp_error_release(&err);
	touched = calloc(s->n_res + rep.plan.n_res + 1, sizeof *touched);
	fresh = calloc(s->n_res + rep.plan.n_res + 1, sizeof *fresh);
	if (touched == NULL || fresh == NULL || moves_now(s, &rep, &mv, &err) < 0 ||
	    vgp_served_from_plan(&rep.inv, &rep.plan, &table, &err) < 0) {
		log_error("live re-split: %s", err ? vgp_error_text(err) : "out of memory");
		goto out;
	}
	for (size_t m = 0; m < mv.n; m++) {
		if (mv.m[m].kind == VGP_MOVE_RETURN)
			drain_move(s, &mv.m[m]);
		else
			serve_move(s, &mv.m[m], &table, &rep, touched, fresh, n_before);
	}
	settle(s, &mv, touched);
	metrics_served(s, &rep, bind);
	live_commit_tables(s, touched, s->n_res);
	for (size_t i = 0; i < s->n_res; i++)
		if (fresh[i])
			open_resource(s, i);
	live_drain_watch(s);
	if (bound > 0) {
		snprintf(why, sizeof why, "%zu GPU%s moved to vfio-pci", bound, bound == 1 ? "" : "s");
		live_tell_nvidia(s, bound, why);
	}
	live_tick(s);
out:
	vgp_served_free(&table);
	vgp_moves_free(&mv);
	vgp_engine_report_free(&rep);
	serve_write_status(s);
}

/* ---- the config ---- */

/* Validate text fully (JSON, per-node entry, the plan on this node); on success it is in force. */
static void
reload(struct serve *s, bool forced)
{
	const char *text;
	size_t len;
	_cleanup_error_ vgp_error_t err = NULL;
	struct vgp_config nc;
	struct vgp_engine_opts eo = s->eo;
	struct vgp_inventory inv = { 0 };
	struct vgp_plan plan = { 0 };
	const char *path = vgp_config_watch_path(s->cw);
	int r = vgp_config_watch_read(s->cw, &text, &len, &err);

	if (r < 0) {
		/* in the middle of a ..data swap the file can be missing for a moment: the next event retries */
		if (forced) {
			log_warn("config %s cannot be read: %s (the running split stays)", path, vgp_error_text(err));
			vgp_metrics_config_reload(false);
		}
		return;
	}
	if (r == 0 && !forced)
		return;
	if (vgp_config_parse(text, len, path, &nc, &err) < 0 ||
	    vgp_config_effective(&nc, s->o->node_name, &eo.pt, &eo.n_pt, NULL, &err) < 0)
		goto rejected;
	eo.cfg = &nc;
	if (vgp_plan_node(&eo, &inv, &plan, &err) < 0)
		goto rejected; /* a message about an entry names the file itself */
	vgp_plan_free(&plan);
	vgp_inventory_free(&inv);
	if (s->have_cfg)
		vgp_config_free(&s->cfg);
	s->cfg = nc;
	s->have_cfg = true;
	s->eo = eo;
	s->eo.cfg = &s->cfg;
	s->config_error[0] = '\0';
	s->applied++;
	vgp_metrics_config_reload(true);
	log_info("config %s: %s version applied (#%u): re-planning the split", path, r ? "new" : "unchanged (SIGHUP)",
		 s->applied);
	converge(s, true);
	return;
rejected:
	vgp_config_free(&nc);
	vgp_metrics_config_reload(false);
	if (r == 1 || forced || strcmp(s->config_error, vgp_error_text(err)) != 0)
		log_error("config rejected, nothing changes (the running split stays): %s", vgp_error_text(err));
	snprintf(s->config_error, sizeof s->config_error, "%s", vgp_error_text(err));
	serve_write_status(s);
}

/* ---- the loop's entry points ---- */

int
live_start(struct serve *s, vgp_error_t *err)
{
	if (s->o->engine == NULL)
		return 0;
	s->eo = *s->o->engine;
	s->eo.shortfall_ok = true;
	if (s->o->config_path != NULL && vgp_config_watch_open(&s->cw, s->o->config_path, err) < 0)
		return -1;
	if (s->cw != NULL)
		log_info("following %s (its directory under inotify; SIGHUP re-reads it)", s->o->config_path);
	converge(s, false); /* GPUs a killed re-split left beyond the count: given back too */
	return 0;
}

void
live_stop(struct serve *s)
{
	vgp_config_watch_close(s->cw);
	s->cw = NULL;
	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
	if (s->have_cfg)
		vgp_config_free(&s->cfg);
	s->have_cfg = false;
	free(s->drain);
	s->drain = NULL;
	s->n_drain = 0;
}

int
live_fds(struct serve *s, int *fds, size_t max)
{
	int n = 0;
	if (s->cw != NULL && (size_t) n < max)
		fds[n++] = vgp_config_watch_fd(s->cw);
	if (s->dfd >= 0 && (size_t) n < max)
		fds[n++] = s->dfd;
	return n;
}

void
live_process(struct serve *s, int fd)
{
	if (s->cw != NULL && fd == vgp_config_watch_fd(s->cw)) {
		if (vgp_config_watch_drain(s->cw))
			reload(s, false);
		return;
	}
	if (fd == s->dfd) {
		char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		while (read(s->dfd, buf, sizeof buf) > 0)
			;
		live_tick(s);
	}
}

void
live_sighup(struct serve *s)
{
	if (s->o->engine == NULL) {
		log_info("SIGHUP ignored");
		return;
	}
	if (s->cw != NULL) {
		log_info("SIGHUP: re-reading %s", vgp_config_watch_path(s->cw));
		reload(s, true);
	} else {
		log_info("SIGHUP: re-checking the node (the selection comes from flags)");
		converge(s, true);
	}
}

bool
live_converging(const struct serve *s, char *buf, size_t len)
{
	size_t off;
	if (s->to_bind == 0 && s->n_drain == 0)
		return false;
	off = (size_t) snprintf(buf, len, "converging: %zu to bind, %zu draining", s->to_bind, s->n_drain);
	for (size_t j = 0; j < s->n_drain && off < len; j++)
		off += (size_t) snprintf(buf + off, len - off, "%s%s: %s", j == 0 ? " (" : "; ", s->drain[j].addr,
					 live_draining(s, s->drain[j].addr));
	if (s->n_drain > 0 && off < len)
		snprintf(buf + off, len - off, ")");
	return true;
}

json_t *
live_status_json(const struct serve *s)
{
	json_t *d = json_array();
	for (size_t j = 0; j < s->n_drain; j++)
		json_array_append_new(d, json_pack("{s:s, s:s, s:b, s:s, s:s}", "address", s->drain[j].addr, "resource",
						   s->drain[j].resource, "release", s->drain[j].release, "reason",
						   s->drain[j].why, "waiting", s->drain[j].now));
	return json_pack("{s:s?, s:s?, s:i, s:i, s:s?, s:o}", "config", s->o->config_path, "config_error",
			 s->config_error[0] ? s->config_error : NULL, "applied", (int) s->applied, "to_bind",
			 (int) s->to_bind, "bind_error", s->bind_error[0] ? s->bind_error : NULL, "draining", d);
}
