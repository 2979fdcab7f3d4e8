/* serve_live.c — owns the live re-split inside serve (issue 13): the --config file followed (directory inotify,
 * SIGHUP), a new version validated fully (an invalid one changes nothing and is reported once), then the node
 * converged GPU group by GPU group: the engine binds the newly chosen GPUs (vgp_bind: journal, verify, rollback)
 * and they join the served list (a new resource gets its own socket and Register; other resources' streams are
 * untouched); GPUs to give back (moves.h decides which) are Unhealthy at once and released (vgp_release, never
 * forced) only when kubelet's PodResources lists no container with them and no process holds their group's
 * /dev/vfio nodes, re-checked every reconcile and on close events of those nodes. A resource with no GPUs left is
 * unregistered (its socket removed). NVIDIA's device plugin is told (SIGHUP) or warned about, as configured. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostfs.h"
#include "log.h"
#include "moves.h"
#include "nvidia_signal.h"
#include "pci.h"
#include "podresources.h"
#include "resplit.h"
#include "serve-internal.h"
#include "served.h"
#include "server.h"
#include "util.h"

/* ---- the tables ---- */

static char *
own(struct serve *s, const char *str)
{
	char **no;
	char *c = str != NULL ? strdup(str) : NULL;
	if (c == NULL || (no = realloc(s->owned, (s->n_owned + 1) * sizeof *no)) == NULL) {
		free(c);
		return NULL;
	}
	s->owned = no;
	s->owned[s->n_owned++] = c;
	return c;
}

static ssize_t
res_index(const struct serve *s, const char *name)
{
	for (size_t i = 0; i < s->n_res; i++)
		if (strcmp(s->res[i].name, name) == 0)
			return (ssize_t) i;
	return -1;
}

static bool
served_at(const struct serve *s, const char *addr, size_t *ri, size_t *ki)
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
	struct vgp_served_resource *nr = realloc(s->res, (s->n_res + 1) * sizeof *nr);
	bool *ng;
	size_t i = s->n_res;

	if (nr == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	s->res = nr;
	if ((ng = realloc(s->gone, (s->n_res + 1) * sizeof *ng)) == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	s->gone = ng;
	memset(&s->res[i], 0, sizeof s->res[i]);
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
		log_error("%s: %s", s->res[i].name, err->msg); /* retried by the reconcile: the socket is missing */
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
	struct vgp_served_dev *nd = realloc(r->devs, (r->n_devs + 1) * sizeof *nd), d = *src;

	if (nd == NULL)
		return vgp_make_error(err, ENOMEM, "serve");
	r->devs = nd;
	d.topo_path = src->topo_path ? own(s, src->topo_path) : NULL;
	d.members = NULL;
	d.n_members = 0;
	d.vfio_dev_nodes = NULL;
	d.n_vfio_dev_nodes = 0;
	d.beyond_count = false;
	d.healthy = false;
	if (src->n_members > 0) {
		char **m = calloc(src->n_members, sizeof *m), **no;
		if (m == NULL || (no = realloc(s->owned, (s->n_owned + 1) * sizeof *no)) == NULL) {
			free(m);
			return vgp_make_error(err, ENOMEM, "serve");
		}
		s->owned = no;
		s->owned[s->n_owned++] = (char *) m; /* the array is owned too */
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

static void
remove_dev(struct serve *s, size_t i, size_t k)
{
	struct vgp_served_resource *r = &s->res[i];
	for (size_t v = 0; v < r->devs[k].n_vfio_dev_nodes; v++)
		free(r->devs[k].vfio_dev_nodes[v]);
	free(r->devs[k].vfio_dev_nodes);
	memmove(&r->devs[k], &r->devs[k + 1], (r->n_devs - k - 1) * sizeof *r->devs);
	r->n_devs--;
}

/* After devices were added or removed: health re-opened, the changed resources' lists sent, emptied resources
 * unregistered. */
static void
commit_tables(struct serve *s, const bool *touched, size_t n_touched)
{
	_cleanup_error_ vgp_error_t err = NULL;

	if (serve_health_rebuild(s, &err) < 0) {
		log_error("health watch: %s", err->msg);
		vgp_error_release(&err);
	}
	for (size_t i = 0; i < s->n_res && i < n_touched; i++) {
		if (!touched[i] || s->gone[i])
			continue;
		if (vgp_server_set_devices(s->srv, i, &s->res[i], &err) < 0) {
			log_error("%s: %s", s->res[i].name, err->msg);
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
}

/* ---- draining ---- */

static struct drain *
drain_find(struct serve *s, const char *addr)
{
	for (size_t i = 0; i < s->n_drain; i++)
		if (strcmp(s->drain[i].addr, addr) == 0)
			return &s->drain[i];
	return NULL;
}

const char *
live_draining(const struct serve *s, const char *addr)
{
	for (size_t i = 0; i < s->n_drain; i++)
		if (strcmp(s->drain[i].addr, addr) == 0)
			return s->drain[i].now[0] ? s->drain[i].now : s->drain[i].why;
	return NULL;
}

static void
drain_set_now(struct drain *d, const char *now)
{
	if (strcmp(d->now, now) == 0)
		return;
	snprintf(d->now, sizeof d->now, "%.*s", (int) sizeof d->now - 1, now);
	log_info("%s: draining (%s): waiting: %s", d->addr, d->why, now);
}

/* Close events of the draining groups' device nodes wake the loop (a VM that ends closes them). */
static void
drain_watch(struct serve *s)
{
	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
	if (s->n_drain == 0)
		return;
	s->dfd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->dfd < 0)
		return;
	for (size_t j = 0; j < s->n_drain; j++) {
		size_t i, k;
		char path[PATH_MAX];
		if (!served_at(s, s->drain[j].addr, &i, &k))
			continue;
		const struct vgp_served_dev *d = &s->res[i].devs[k];
		if (vgp_host_path(path, sizeof path, s->o->host_root, "/dev/vfio/%d", d->group) == 0)
			inotify_add_watch(s->dfd, path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
		for (size_t v = 0; v < d->n_vfio_dev_nodes; v++)
			if (vgp_host_path(path, sizeof path, s->o->host_root, "%s", d->vfio_dev_nodes[v]) == 0)
				inotify_add_watch(s->dfd, path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
	}
}

/* Processes holding the group's /dev/vfio/<group> or one of its /dev/vfio/devices/vfioN: text into buf, count. */
static size_t
group_holders(const struct serve *s, const struct vgp_served_dev *d, char *buf, size_t len)
{
	char path[PATH_MAX];
	size_t total = 0, off = 0;

	buf[0] = '\0';
	for (size_t v = 0; v <= d->n_vfio_dev_nodes; v++) {
		struct stat st;
		struct vgp_holder *h = NULL;
		size_t n = 0;
		_cleanup_error_ vgp_error_t err = NULL;
		char who[256], item[PATH_MAX + 300];
		int r = v == 0 ? vgp_host_path(path, sizeof path, s->o->host_root, "/dev/vfio/%d", d->group)
			       : vgp_host_path(path, sizeof path, s->o->host_root, "%s", d->vfio_dev_nodes[v - 1]);
		if (r < 0 || stat(path, &st) < 0 || !S_ISCHR(st.st_mode))
			continue;
		if (vgp_rdev_holders(s->o->host_root, (unsigned long) st.st_rdev, &h, &n, &err) < 0) {
			snprintf(buf, len, "holders of %.200s unknown: %.500s", path, err->msg);
			return 1; /* never give a GPU back on a guess */
		}
		if (n > 0) {
			vgp_holders_text(h, n, who, sizeof who);
			snprintf(item, sizeof item, "%s is open by %s",
				 v == 0 ? (snprintf(path, sizeof path, "/dev/vfio/%d", d->group), path)
					: d->vfio_dev_nodes[v - 1],
				 who);
			vgp_list_append(buf, len, &off, item);
		}
		total += n;
		free(h);
	}
	return total;
}

/* NVIDIA's device plugin after GPUs moved either way: SIGHUP when configured, else today's warning. */
static void
tell_nvidia(struct serve *s, size_t moved, const char *what)
{
	char msg[2048], socks[512];
	_cleanup_error_ vgp_error_t err = NULL;
	const struct vgp_config *cfg = s->eo.cfg;

	if (moved == 0)
		return;
	if (cfg != NULL && cfg->nvidia_on_change == VGP_NVIDIA_SIGNAL) {
		if (vgp_nvidia_signal(s->o->host_root, s->o->kubelet_dir, msg, sizeof msg, &err) < 0)
			log_warn("NVIDIA device plugin: cannot look for its process: %s", err->msg);
		else
			log_info("NVIDIA device plugin (nvidiaDevicePlugin.onChange signal, after %s): %s", what, msg);
		return;
	}
	if (vgp_nvidia_plugin_sockets(s->o->kubelet_dir, socks, sizeof socks) > 0)
		log_warn("%s while NVIDIA's device plugin serves this node (%s in %s): its nvidia.com/gpu count is stale "
			 "until it restarts; restart its pod on this node, or set \"nvidiaDevicePlugin\": {\"onChange\": "
			 "\"signal\"} to have it re-count (SIGHUP)",
			 what, socks, s->o->kubelet_dir);
}

/* The GPU addresses kubelet says a container has (NULL with *why when PodResources cannot be asked). */
static int
pods_now(struct serve *s, struct vgp_pod_devices *p, char *why, size_t len)
{
	_cleanup_error_ vgp_error_t err = NULL;
	if (s->o->pod_resources_socket == NULL) {
		memset(p, 0, sizeof *p);
		snprintf(why, len, "no PodResources socket configured");
		return -1;
	}
	if (vgp_podresources_list(s->o->pod_resources_socket, 0, p, &err) < 0) {
		snprintf(why, len, "kubelet's PodResources API cannot be asked (%s): nothing is given back on a guess",
			 err->msg);
		return -1;
	}
	return 0;
}

/* One draining GPU: 1 when it is gone from the served list now (released or unserved), 0 when it waits. */
static int
drain_one(struct serve *s, struct drain *dr, const struct vgp_pod_devices *pods, bool *touched)
{
	size_t i, k;
	char buf[1024];
	const struct vgp_pod_device *pd;

	if (!served_at(s, dr->addr, &i, &k))
		return 1; /* not served any more (cannot happen: kept for safety) */
	if ((pd = vgp_podresources_find(pods, dr->resource, dr->addr)) != NULL) {
		snprintf(buf, sizeof buf, "assigned to pod %s/%s (container %s) according to kubelet", pd->ns, pd->pod,
			 pd->container);
		drain_set_now(dr, buf);
		return 0;
	}
	if (group_holders(s, &s->res[i].devs[k], buf, sizeof buf) > 0) {
		drain_set_now(dr, buf);
		return 0;
	}
	if (dr->release) {
		struct vgp_engine_report rep = { 0 };
		_cleanup_error_ vgp_error_t err = NULL;
		const char *a[] = { dr->addr };
		int r = vgp_release(&s->eo, a, 1, false, &rep, &err);
		bool ok = r == 0 && rep.n > 0 && rep.r[0].outcome == VGP_OUT_RELEASED;
		if (!ok) {
			snprintf(buf, sizeof buf, "%s: %s", rep.n > 0 ? vgp_outcome_name(rep.r[0].outcome) : "release failed",
				 rep.n > 0 && rep.r[0].msg ? rep.r[0].msg : err ? err->msg : "unknown");
			drain_set_now(dr, buf);
		} else {
			log_info("%s: %s given back to its original driver (%s; %ld ms)", s->res[i].name, dr->addr, dr->why,
				 rep.r[0].ms);
		}
		vgp_engine_report_free(&rep);
		if (!ok)
			return 0;
	} else {
		log_info("%s: %s no longer served (%s); it stays on vfio-pci", s->res[i].name, dr->addr, dr->why);
	}
	remove_dev(s, i, k);
	touched[i] = true;
	return 1;
}

void
live_tick(struct serve *s)
{
	struct vgp_pod_devices pods;
	char why[1024];
	size_t released = 0;
	_cleanup_free_ bool *touched = NULL;

	if (s->n_drain == 0)
		return;
	if (pods_now(s, &pods, why, sizeof why) < 0) {
		for (size_t j = 0; j < s->n_drain; j++)
			drain_set_now(&s->drain[j], why);
		return;
	}
	touched = calloc(s->n_res ? s->n_res : 1, sizeof *touched);
	if (touched == NULL) {
		vgp_pod_devices_free(&pods);
		return;
	}
	for (size_t j = s->n_drain; j-- > 0;) {
		bool release = s->drain[j].release;
		if (drain_one(s, &s->drain[j], &pods, touched) == 0)
			continue;
		released += release;
		memmove(&s->drain[j], &s->drain[j + 1], (s->n_drain - j - 1) * sizeof *s->drain);
		s->n_drain--;
	}
	vgp_pod_devices_free(&pods);
	bool any = false;
	for (size_t i = 0; i < s->n_res; i++)
		any = any || touched[i];
	if (any) {
		commit_tables(s, touched, s->n_res);
		drain_watch(s);
		serve_write_status(s);
	}
	if (released > 0) {
		snprintf(why, sizeof why, "%zu GPU%s given back to the host's driver", released, released == 1 ? "" : "s");
		tell_nvidia(s, released, why);
	}
}

/* ---- converge ---- */

/* Bind what the config in force wants (or, at the start, only plan: main has bound already), then turn the diff
 * into served devices and drains. */
static void
converge(struct serve *s, bool bind)
{
	struct vgp_engine_report rep = { 0 };
	struct vgp_moves mv = { 0 };
	struct vgp_served_table table = { 0 };
	struct vgp_pod_devices pods = { 0 };
	_cleanup_error_ vgp_error_t err = NULL;
	_cleanup_free_ struct vgp_served_gpu *served = NULL;
	_cleanup_free_ const char **assigned = NULL;
	_cleanup_free_ bool *touched = NULL, *fresh = NULL;
	size_t n_served = 0, n_assigned = 0, bound = 0;
	char why[1024];
	int r;

	if (bind) {
		s->to_bind = 0;
		s->bind_error[0] = '\0';
		r = vgp_bind(&s->eo, &rep, &err);
		for (size_t i = 0; i < rep.n; i++) {
			const struct vgp_gpu_result *g = &rep.r[i];
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
				snprintf(s->bind_error, sizeof s->bind_error, "%s %s: %s", g->addr,
					 vgp_outcome_name(g->outcome), g->msg ? g->msg : "");
		}
		if (r < 0 && s->bind_error[0] == '\0' && err != NULL)
			snprintf(s->bind_error, sizeof s->bind_error, "%s", err->msg);
	} else {
		r = vgp_plan_node(&s->eo, &rep.inv, &rep.plan, &err);
		rep.have_plan = r == 0;
	}
	if (!rep.have_plan) {
		log_error("live re-split: the node cannot be planned: %s (the running split stays)",
			  err ? err->msg : "unknown");
		goto out;
	}
	for (size_t w = 0; bind && w < rep.plan.n_warnings; w++)
		log_warn("%s", rep.plan.warnings[w]);

	served = calloc(s->n_h ? s->n_h : 1, sizeof *served);
	touched = calloc(s->n_res + rep.plan.n_res + 1, sizeof *touched);
	fresh = calloc(s->n_res + rep.plan.n_res + 1, sizeof *fresh);
	if (served == NULL || touched == NULL || fresh == NULL)
		goto out;
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t k = 0; k < s->res[i].n_devs && n_served < s->n_h; k++)
			served[n_served++] = (struct vgp_served_gpu) { s->res[i].devs[k].addr, s->res[i].name };
	if (pods_now(s, &pods, why, sizeof why) == 0 && pods.n > 0) {
		assigned = calloc(pods.n, sizeof *assigned);
		for (size_t p = 0; assigned != NULL && p < pods.n; p++)
			assigned[n_assigned++] = pods.d[p].id;
	}
	vgp_error_release(&err);
	if (vgp_resplit_moves(&s->eo, &rep.inv, &rep.plan, served, n_served, assigned, n_assigned, &mv, &err) < 0 ||
	    vgp_served_from_plan(&rep.inv, &rep.plan, &table, &err) < 0) {
		log_error("live re-split: %s", err ? err->msg : "out of memory");
		goto out;
	}
	size_t n_before = s->n_res;
	for (size_t m = 0; m < mv.n; m++) {
		const struct vgp_move *x = &mv.m[m];
		if (x->kind == VGP_MOVE_RETURN) {
			struct drain *d = drain_find(s, x->addr);
			if (d == NULL) {
				struct drain *nd = realloc(s->drain, (s->n_drain + 1) * sizeof *nd);
				if (nd == NULL)
					continue;
				s->drain = nd;
				d = &nd[s->n_drain++];
				memset(d, 0, sizeof *d);
				snprintf(d->addr, sizeof d->addr, "%s", x->addr);
				log_info("%s: %s to be given back (%s): Unhealthy now, %s when idle", x->resource, x->addr,
					 x->reason, x->release ? "released to its original driver" : "unserved (stays on vfio-pci)");
			}
			snprintf(d->resource, sizeof d->resource, "%s", x->resource);
			snprintf(d->why, sizeof d->why, "%s", x->reason);
			d->release = x->release;
			continue;
		}
		/* bind (done above, if it worked) or serve: the GPU joins its resource */
		const struct vgp_served_dev *src = NULL;
		size_t ri, ki;
		for (size_t i = 0; i < table.n && src == NULL; i++)
			if (strcmp(table.res[i].name, x->resource) == 0)
				for (size_t k = 0; k < table.res[i].n_devs && src == NULL; k++)
					if (strcmp(table.res[i].devs[k].addr, x->addr) == 0)
						src = &table.res[i].devs[k];
		if (src == NULL)
			continue; /* its bind did not succeed: counted in to_bind */
		ssize_t i = res_index(s, x->resource);
		if (served_at(s, x->addr, &ri, &ki) && i >= 0 && ri == (size_t) i)
			continue;
		if (i < 0 && (i = add_resource(s, x->resource, table.res[0].iommufd, &err)) < 0) {
			log_error("%s: %s", x->resource, err->msg);
			vgp_error_release(&err);
			continue;
		}
		if ((size_t) i >= n_before || s->gone[i]) { /* new, or given back whole earlier and wanted again */
			s->gone[i] = false;
			fresh[i] = true;
		}
		if (add_dev(s, (size_t) i, src, &err) < 0) {
			log_error("%s: %s: %s", x->resource, x->addr, err->msg);
			vgp_error_release(&err);
			continue;
		}
		touched[i] = true;
		bool moved_now = false;
		for (size_t g = 0; g < rep.n; g++)
			moved_now = moved_now || (rep.r[g].outcome == VGP_OUT_BOUND && strcmp(rep.r[g].addr, x->addr) == 0);
		log_info("%s: %s now served (%s)", x->resource, x->addr,
			 moved_now ? "moved to vfio-pci" : "already on vfio-pci");
	}
	/* a GPU to give back that the config wants again stays */
	for (size_t j = s->n_drain; j-- > 0;) {
		const struct vgp_move *x = vgp_moves_find(&mv, s->drain[j].addr);
		if (x != NULL && x->kind == VGP_MOVE_RETURN)
			continue;
		log_info("%s: wanted again: stays served (no longer draining)", s->drain[j].addr);
		memmove(&s->drain[j], &s->drain[j + 1], (s->n_drain - j - 1) * sizeof *s->drain);
		s->n_drain--;
	}
	for (size_t i = 0; i < s->n_res; i++)
		for (size_t k = 0; k < s->res[i].n_devs; k++) {
			bool b = vgp_moves_beyond(&mv, s->res[i].devs[k].addr);
			touched[i] = touched[i] || b != s->res[i].devs[k].beyond_count;
			s->res[i].devs[k].beyond_count = b;
		}
	commit_tables(s, touched, s->n_res);
	for (size_t i = 0; i < s->n_res; i++)
		if (fresh[i])
			open_resource(s, i);
	drain_watch(s);
	if (bound > 0) {
		snprintf(why, sizeof why, "%zu GPU%s moved to vfio-pci", bound, bound == 1 ? "" : "s");
		tell_nvidia(s, bound, why);
	}
	live_tick(s);
out:
	vgp_pod_devices_free(&pods);
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
		if (forced)
			log_warn("config %s cannot be read: %s (the running split stays)", path, err->msg);
		return;
	}
	if (r == 0 && !forced)
		return;
	if (vgp_config_parse(text, len, path, &nc, &err) < 0 ||
	    vgp_config_effective(&nc, s->o->node_name, &eo.pt, &eo.n_pt, NULL, &err) < 0)
		goto rejected;
	eo.cfg = &nc;
	if (vgp_plan_node(&eo, &inv, &plan, &err) < 0) {
		if ((strncmp(err->msg, "passthrough[", 12) == 0 || strncmp(err->msg, "nodes[", 6) == 0))
			vgp_error_wrap(&err, "%s", path);
		goto rejected;
	}
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
	log_info("config %s: %s version applied (#%u): re-planning the split", path, r ? "new" : "unchanged (SIGHUP)",
		 s->applied);
	converge(s, true);
	return;
rejected:
	vgp_config_free(&nc);
	if (r == 1 || forced || strcmp(s->config_error, err->msg) != 0)
		log_error("config rejected, nothing changes (the running split stays): %s", err->msg);
	snprintf(s->config_error, sizeof s->config_error, "%s", err->msg);
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
