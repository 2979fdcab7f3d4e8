/* serve_command.c — the serve command (the default): take the serve lock of the kubelet directory, bind the plan
 * under the journal's lock (or set a corrupt journal aside and bind nothing), say what happened, then run the serve
 * loop (plugin/serve_loop.c) with the metrics endpoint and the NFD feature file around it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "metrics_report.h"
#include "nfd_features.h"
#include "nvidia_signal.h"
#include "serve_loop.h"
#include "served_table.h"
#include "util.h"

/* One serve per kubelet directory (one socket path, one status file), for its whole life. */
static int
take_serve_lock(const struct opts *o, struct vgp_instance_lock *l, vgp_error_t *err)
{
	char path[4096 + 64];

	if (vgp_serve_lock_path(o->state_file, o->kubelet_dir, path, sizeof path) < 0)
		return vgp_make_error(err, ENAMETOOLONG, "serve lock path");
	if (vgp_instance_lock(path, 0, "serve of this kubelet directory", l, err) < 0) {
		vgp_error_wrap(err, "serve %s: refusing to start", o->kubelet_dir);
		return -1;
	}
	return 0;
}

/* The bind, under the journal's lock. serve binds what exists: a GPU that fell off the bus must not stop the GPUs
 * already in VMs from being served (docs/architecture.md §6). A failure is left in bind_err (rep still holds the plan
 * when one could be made); a corrupt journal is moved aside (kept, with a timestamp), nothing is moved and the GPUs
 * already on vfio-pci are served. Returns -1 with err filled only when the lock cannot be had. */
static int
bind_locked(const struct opts *o, struct node_state *s, struct vgp_engine_report *rep, vgp_error_t *bind_err,
	    vgp_error_t *err)
{
	struct vgp_instance_lock lk = { .fd = -1 };
	_cleanup_error_ vgp_error_t corrupt = NULL;

	if (lock_journal(o, &lk, err) < 0)
		return -1;
	s->eo.shortfall_ok = true;
	if (vgp_journal_set_aside_if_corrupt(o->state_file, &corrupt) < 0) {
		if (vgp_plan_node(&s->eo, &rep->inv, &rep->plan, bind_err) == 0)
			rep->have_plan = true;
		if (*bind_err == NULL)
			*bind_err = steal_pointer(&corrupt);
		else
			vgp_error_wrap(bind_err, "%s; and", vgp_error_text(corrupt));
		log_error("%s", vgp_error_text(*bind_err));
	} else if (vgp_bind(&s->eo, rep, bind_err) < 0 && *bind_err == NULL) {
		vgp_make_error(bind_err, 0, "bind failed");
	}
	vgp_instance_unlock(&lk);
	return 0;
}

/* Each GPU the bind did not move now (the engine logs each move as it happens): also when the bind ended without
 * a plan to serve, so that the log says why before serve exits. */
static void
log_results(const struct vgp_engine_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct vgp_gpu_result *r = &rep->r[i];
		if (r->outcome != VGP_OUT_BOUND)
			log_info("%s %s%s%s", r->addr, vgp_outcome_name(r->outcome), r->msg ? ": " : "",
				 r->msg ? r->msg : "");
	}
}

/* The log lines after a bind that left a plan: the plan's warnings, and NVIDIA's device plugin told
 * (nvidiaDevicePlugin.onChange signal) or warned about. */
static void
log_bind(const struct opts *o, const struct node_state *s, const struct vgp_engine_report *rep)
{
	size_t n_bound = 0;

	for (size_t i = 0; i < rep->n; i++)
		n_bound += rep->r[i].outcome == VGP_OUT_BOUND;
	for (size_t w = 0; w < rep->plan.n_warnings; w++)
		log_warn("%s", rep->plan.warnings[w]);
	if (n_bound > 0 && s->cfg.nvidia_on_change == VGP_NVIDIA_SIGNAL) {
		char sent[2048];
		_cleanup_error_ vgp_error_t nerr = NULL;
		if (vgp_nvidia_signal(o->host_root, o->kubelet_dir, sent, sizeof sent, &nerr) < 0)
			log_warn("NVIDIA device plugin: cannot look for its process: %s", vgp_error_text(nerr));
		else
			log_info("NVIDIA device plugin (nvidiaDevicePlugin.onChange signal, after %zu GPU%s moved to "
				 "vfio-pci): %s", n_bound, n_bound == 1 ? "" : "s", sent);
	} else {
		_cleanup_free_ char *msg = nvidia_plugin_warning(o, rep);
		if (msg != NULL)
			log_warn("%s", msg);
	}
}

/* Why serve starts not ready (free it), or NULL when every planned GPU is served. */
static char *
not_ready_reason(const struct vgp_engine_report *rep, const vgp_error_t bind_err)
{
	char *why = NULL;

	if (bind_err == NULL && !rep->plan.shortfall)
		return NULL;
	const char *text = bind_err != NULL ? vgp_error_text(bind_err) : rep->plan.shortfall_msg;
	if (asprintf(&why, "%s", text ? text : "not every planned GPU is served") < 0)
		why = NULL;
	log_warn("not ready: %s", why ? why : "");
	return why;
}

/* The metrics endpoint and the NFD feature file around the serve loop. The endpoint starts after the bind (its
 * numbers are known) and stops after the loop; it failing to start (port taken) is logged, never fatal: the GPUs
 * are served all the same. */
static int
serve_with_metrics(const struct opts *o, const char *version, const struct vgp_engine_report *rep,
		   const struct vgp_served_table *t, const struct vgp_serve_opts *so, vgp_error_t *err)
{
	struct vgp_metrics_http *http = NULL;
	_cleanup_error_ vgp_error_t merr = NULL, nerr = NULL;
	int ret;

	vgp_metrics_set_version(version);
	if (vgp_metrics_record_bind(rep) < 0)
		log_warn("metrics: out of memory recording the GPUs");
	if (vgp_metrics_http_start(&http, o->metrics_address, &merr) < 0)
		log_error("metrics: %s (serving the GPUs without /metrics)", vgp_error_text(merr));
	else if (http != NULL)
		log_info("metrics: serving /metrics on %s (port %d)", o->metrics_address, vgp_metrics_http_port(http));
	if (o->nfd_dir[0] != '\0') {
		if (vgp_nfd_write(o->nfd_dir, t->res, t->n, &nerr) < 0)
			log_warn("node labels: %s", vgp_error_text(nerr));
		else
			log_info("node labels: %s/%s", o->nfd_dir, VGP_NFD_FILE);
	}
	ret = vgp_serve_run(so, err);
	vgp_metrics_http_stop(http);
	return ret;
}

/* Serve the plan's resources until SIGTERM. */
static int
serve_table(const struct opts *o, const char *version, struct node_state *s, const struct vgp_engine_report *rep,
	    const char *not_ready, vgp_error_t *err)
{
	struct vgp_served_table table = { 0 };

	if (vgp_served_from_plan(&rep->inv, &rep->plan, &table, err) < 0)
		return -1;
	struct vgp_serve_opts so = {
		.host_root = o->host_root, .kubelet_dir = o->kubelet_dir, .status_file = o->status_file,
		.reconcile_interval_ms = (int) (o->reconcile_interval * 1000),
		.resources = table.res, .n_resources = table.n,
		.ready = not_ready == NULL, .not_ready_reason = not_ready,
		.engine = &s->eo, .config_path = o->config, .node_name = o->node_name,
		.pod_resources_socket = o->pod_resources_socket, .nfd_dir = o->nfd_dir,
	};
	if (table.n == 0)
		log_warn("no passthrough resource on this node: nothing to serve (waiting for SIGTERM)");
	int ret = serve_with_metrics(o, version, rep, &table, &so, err);
	vgp_served_free(&table);
	return ret;
}

int
cmd_serve(const struct opts *o, const char *version, vgp_error_t *err)
{
	struct node_state s = { 0 };
	struct vgp_engine_report rep = { 0 };
	struct vgp_instance_lock serve_lock = { .fd = -1 };
	_cleanup_error_ vgp_error_t bind_err = NULL;
	_cleanup_free_ char *not_ready = NULL;
	int ret = -1;

	if (load_config(o, &s, err) < 0)
		goto out;
	/* A SIGTERM during the bind must not cut a group's move in half: hold SIGTERM/SIGINT/SIGHUP until the
	 * serve loop reads them from its signalfd (a pending SIGTERM then stops it at once, exit 0). */
	vgp_serve_hold_signals();
	if (take_serve_lock(o, &serve_lock, err) < 0 || bind_locked(o, &s, &rep, &bind_err, err) < 0)
		goto out;
	log_results(&rep);
	if (!rep.have_plan) {
		*err = steal_pointer(&bind_err);
		goto out;
	}
	log_bind(o, &s, &rep);
	not_ready = not_ready_reason(&rep, bind_err);
	ret = serve_table(o, version, &s, &rep, not_ready, err);
out:
	vgp_instance_unlock(&serve_lock);
	vgp_engine_report_free(&rep);
	node_state_free(&s);
	return ret;
}
