/* serve_drain.c — owns the GPUs being given back during serve (the live re-split's second half, issue 13): each is
 * Unhealthy until it is idle — kubelet's PodResources API lists no container with it and no process holds its
 * group's /dev/vfio/<group> or /dev/vfio/devices/vfioN — then released to its original driver by the engine
 * (vgp_release, never forced) or, when it was on vfio-pci before the plugin, only unserved. Re-checked at every
 * reconcile and on close events of those device nodes; NVIDIA's device plugin is told after GPUs moved. */
#include <errno.h>
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
#include "nvidia_signal.h"
#include "pci.h"
#include "podresources.h"
#include "serve-internal.h"
#include "util.h"

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

struct drain *
live_drain_find(struct serve *s, const char *addr)
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
void
live_drain_watch(struct serve *s)
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
		if (!live_served_at(s, s->drain[j].addr, &i, &k))
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
			snprintf(buf, len, "holders of %.200s unknown: %.500s", path, vgp_error_text(err));
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
void
live_tell_nvidia(struct serve *s, size_t moved, const char *what)
{
	char msg[2048], socks[512];
	_cleanup_error_ vgp_error_t err = NULL;
	const struct vgp_config *cfg = s->eo.cfg;

	if (moved == 0)
		return;
	if (cfg != NULL && cfg->nvidia_on_change == VGP_NVIDIA_SIGNAL) {
		if (vgp_nvidia_signal(s->o->host_root, s->o->kubelet_dir, msg, sizeof msg, &err) < 0)
			log_warn("NVIDIA device plugin: cannot look for its process: %s", vgp_error_text(err));
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
int
live_pods_now(struct serve *s, struct vgp_pod_devices *p, char *why, size_t len)
{
	_cleanup_error_ vgp_error_t err = NULL;
	if (s->o->pod_resources_socket == NULL) {
		memset(p, 0, sizeof *p);
		snprintf(why, len, "no PodResources socket configured");
		return -1;
	}
	if (vgp_podresources_list(s->o->pod_resources_socket, 0, p, &err) < 0) {
		snprintf(why, len, "kubelet's PodResources API cannot be asked (%s): nothing is given back on a guess",
			 vgp_error_text(err));
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

	if (!live_served_at(s, dr->addr, &i, &k))
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
		if (rep.n > 0 && rep.r[0].resource[0] == '\0') /* release knows no resources: the one it drained from */
			snprintf(rep.r[0].resource, sizeof rep.r[0].resource, "%s", dr->resource);
		vgp_metrics_record_release(&rep); /* a released GPU leaves the metrics' GPU table */
		if (!ok) {
			snprintf(buf, sizeof buf, "%s: %s", rep.n > 0 ? vgp_outcome_name(rep.r[0].outcome) : "release failed",
				 rep.n > 0 && rep.r[0].msg ? rep.r[0].msg : err ? vgp_error_text(err) : "unknown");
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
		vgp_metrics_gpu_remove(dr->addr); /* no GPU of the plugin any more */
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
	if (live_pods_now(s, &pods, why, sizeof why) < 0) {
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
		live_commit_tables(s, touched, s->n_res);
		live_drain_watch(s);
		serve_write_status(s);
	}
	if (released > 0) {
		snprintf(why, sizeof why, "%zu GPU%s given back to the host's driver", released, released == 1 ? "" : "s");
		live_tell_nvidia(s, released, why);
	}
}

