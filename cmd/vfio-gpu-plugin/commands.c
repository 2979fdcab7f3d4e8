/* commands.c — the one-shot commands (plan, kubevirt-config, machineconfig, bind, release, health) and what they
 * share with serve: loading the config and the node, the journal's lock, the results table and the warning about
 * NVIDIA's device plugin. Each command prints its result on stdout and returns an error value; main prints that. */
#include <errno.h>
#include <grpc/grpc.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nfd_features.h"
#include "podresources.h"
#include "registration.h"
#include "report.h"
#include "resplit.h"
#include "serve_loop.h"
#include "stop.h"
#include "util.h"

void
node_state_free(struct node_state *s)
{
	vgp_plan_free(&s->plan);
	vgp_inventory_free(&s->inv);
	vgp_config_free(&s->cfg);
}

/* Config (flags or file), node entry, engine options. Nothing is read from the node yet. */
int
load_config(const struct opts *o, struct node_state *s, vgp_error_t *err)
{
	int ret;
	if (o->config != NULL)
		ret = vgp_config_load_file(o->config, &s->cfg, err);
	else
		ret = vgp_config_from_flags(o->devices, o->n_devices, o->addresses, o->n_addresses, o->count, &s->cfg,
					    err);
	if (ret < 0)
		return -1;
	s->node = o->node_name != NULL ? o->node_name : o->hostname;
	/* per-node entries need the node's real name: inside a pod the host name is the pod's */
	if (vgp_config_effective(&s->cfg, o->node_name, &s->eo.pt, &s->eo.n_pt, NULL, err) < 0)
		return -1;
	s->eo.host_root = o->host_root;
	s->eo.state_file = o->state_file;
	s->eo.pci_ids = o->pci_ids;
	s->eo.cfg = &s->cfg;
	s->eo.unbind_timeout_ms = (int) (o->unbind_timeout * 1000);
	s->eo.vfio_wait_ms = (int) (o->vfio_wait * 1000);
	s->eo.parallel = o->parallel;
	return 0;
}

static int
load_node(const struct opts *o, struct node_state *s, vgp_error_t *err)
{
	if (load_config(o, s, err) < 0)
		return -1;
	return vgp_plan_node(&s->eo, &s->inv, &s->plan, err);
}

int
cmd_plan(const struct opts *o, vgp_error_t *err)
{
	struct node_state s = { 0 };
	struct vgp_moves moves = { 0 };
	int ret = load_node(o, &s, err);
	/* the live re-split's pending moves: GPUs on vfio-pci that the config no longer wants (chosen as serve would:
	 * with kubelet's pod assignments when its PodResources API answers; without them otherwise) */
	struct vgp_pod_devices pods = { 0 };
	_cleanup_free_ const char **assigned = NULL;
	size_t n_assigned = 0;
	_cleanup_error_ vgp_error_t perr = NULL;
	grpc_init(); /* the command's one gRPC call (serve's are under vgp_serve_run's) */
	if (ret == 0 && vgp_podresources_list(o->pod_resources_socket, 0, &pods, &perr) == 0 && pods.n > 0 &&
	    (assigned = calloc(pods.n, sizeof *assigned)) != NULL)
		for (size_t i = 0; i < pods.n; i++)
			assigned[n_assigned++] = pods.d[i].id;
	grpc_shutdown();
	if (ret == 0)
		ret = vgp_resplit_moves(&s.eo, &s.inv, &s.plan, NULL, 0, assigned, n_assigned, &moves, err);
	if (ret == 0) {
		if (o->json) {
			vgp_plan_read_overrides(&s.eo, &s.inv, &s.plan); /* the report's driverOverride */
			json_t *j = vgp_report_plan_json(&s.inv, &s.plan, s.node);
			json_object_set_new(j, "moves", vgp_report_moves_json(&moves));
			json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			fputc('\n', stdout);
			json_decref(j);
		} else {
			vgp_report_plan_table(stdout, &s.inv, &s.plan, s.node);
			vgp_report_moves_table(stdout, &moves);
		}
		if (s.plan.shortfall)
			ret = vgp_make_usage_error(err, "%s: %s", s.cfg.source, s.plan.shortfall_msg);
	}
	vgp_moves_free(&moves);
	vgp_pod_devices_free(&pods);
	node_state_free(&s);
	return ret;
}

int
cmd_kubevirt_config(const struct opts *o, vgp_error_t *err)
{
	struct node_state s = { 0 };
	int ret = load_node(o, &s, err);
	if (ret == 0)
		vgp_report_kubevirt_layout(stdout, &s.inv, &s.plan,
					   !o->hco ? VGP_KV_KUBEVIRT
					   : o->hco_api && strcmp(o->hco_api, "v1beta1") == 0 ? VGP_KV_HCO_V1BETA1
											 : VGP_KV_HCO_V1);
	node_state_free(&s);
	return ret;
}

int
cmd_machineconfig(const struct opts *o, vgp_error_t *err)
{
	struct node_state s = { 0 };
	_cleanup_free_ const char **fns = NULL;
	_cleanup_free_ char *rules = NULL;
	size_t n = 0;
	int ret = load_node(o, &s, err);
	if (ret == 0) {
		fns = vgp_plan_vfio_functions(&s.inv, &s.plan, &n);
		rules = fns ? vgp_udev_rules_text(fns, n) : NULL;
		if (rules == NULL)
			ret = vgp_make_error(err, ENOMEM, "machineconfig");
		else
			vgp_report_machineconfig(stdout, o->role, rules);
	}
	node_state_free(&s);
	return ret;
}

static void
print_results(FILE *out, const struct vgp_engine_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct vgp_gpu_result *r = &rep->r[i];
		fprintf(out, "%-12s  %-12s  %6ld ms  %-28s  %s\n", r->addr, vgp_outcome_name(r->outcome), r->ms,
			r->resource[0] ? r->resource : "-", r->msg ? r->msg : "");
	}
}

static void
print_warnings(FILE *out, const struct vgp_plan *plan)
{
	for (size_t w = 0; w < plan->n_warnings; w++)
		fprintf(out, "warning: %s\n", plan->warnings[w]);
}

/* GPUs this run moved off their driver while NVIDIA's device plugin serves the node: it keeps counting them in
 * nvidia.com/gpu until it restarts. The warning (free it), or NULL when there is nothing to say. */
char *
nvidia_plugin_warning(const struct opts *o, const struct vgp_engine_report *rep)
{
	char socks[512], moved[1024] = "";
	size_t off = 0, n = 0;

	for (size_t i = 0; i < rep->n; i++) {
		if (rep->r[i].outcome != VGP_OUT_BOUND)
			continue;
		vgp_list_append(moved, sizeof moved, &off, rep->r[i].addr);
		n++;
	}
	char *msg = NULL;
	if (n == 0 || vgp_nvidia_plugin_sockets(o->kubelet_dir, socks, sizeof socks) == 0)
		return NULL;
	if (asprintf(&msg, "%zu GPU%s moved to vfio-pci (%s) while NVIDIA's device plugin serves this node (%s in %s): "
		 "it counts them in nvidia.com/gpu until it restarts; restart its pod on this node", n, n == 1 ? "" : "s",
		 moved, socks, o->kubelet_dir) < 0)
		return NULL;
	return msg;
}

/* The journal's lock (<state-file>.lock): bind, release and serve's moves hold it; plan does not. */
int
lock_journal(const struct opts *o, struct vgp_instance_lock *l, vgp_error_t *err)
{
	char path[4096 + 8], what[4096 + 16];

	snprintf(path, sizeof path, "%s.lock", o->state_file);
	snprintf(what, sizeof what, "the journal %s", o->state_file);
	return vgp_instance_lock(path, (int) (o->lock_wait * 1000), what, l, err);
}

/* bind or release cut short by a deferred stop signal (rep->n_stopped: groups it kept from starting): the groups in
 * progress finished, no other started. A signal that came after every group had started cuts nothing: the run's own
 * result stands. The error replaces whatever the run returned; `done` counts the GPUs with that outcome (bind: also
 * those already there). */
static int
interrupted(const struct vgp_engine_report *rep, enum vgp_outcome done_outcome, const char *where, vgp_error_t *err)
{
	size_t done = 0;

	for (size_t i = 0; i < rep->n; i++)
		done += rep->r[i].outcome == done_outcome ||
			(done_outcome == VGP_OUT_BOUND && rep->r[i].outcome == VGP_OUT_PASSTHROUGH);
	vgp_error_release(err);
	return vgp_make_error(err, 0, "interrupted by %s: stopped after the groups in progress; %zu of %zu GPUs %s, the "
			      "rest untouched (results above)", vgp_stop_name(vgp_stop_pending()), done, rep->n, where);
}

int
cmd_bind(const struct opts *o, vgp_error_t *err)
{
	struct node_state s = { 0 };
	struct vgp_engine_report rep = { 0 };
	struct vgp_instance_lock lk = { .fd = -1 };
	int ret;

	/* a stop signal finishes (or rolls back) the group in progress, then bind exits non-zero with what was done */
	vgp_stop_defer();
	vgp_stop_between_groups();
	ret = load_config(o, &s, err);
	if (ret == 0)
		ret = lock_journal(o, &lk, err);
	if (ret == 0) {
		ret = vgp_bind(&s.eo, &rep, err);
		print_results(stdout, &rep);
		if (rep.have_plan)
			print_warnings(stderr, &rep.plan);
		_cleanup_free_ char *msg = nvidia_plugin_warning(o, &rep);
		if (msg != NULL)
			fprintf(stderr, "warning: %s\n", msg);
		if (vgp_stop_pending() != 0 && rep.n_stopped > 0)
			ret = interrupted(&rep, VGP_OUT_BOUND, "on vfio-pci", err);
	}
	vgp_engine_report_free(&rep);
	node_state_free(&s);
	return ret;
}

int
cmd_release(const struct opts *o, vgp_error_t *err)
{
	struct vgp_engine_report rep = { 0 };
	struct vgp_instance_lock lk = { .fd = -1 };
	struct vgp_engine_opts eo = {
		.host_root = o->host_root, .state_file = o->state_file, .pci_ids = o->pci_ids,
		.unbind_timeout_ms = (int) (o->unbind_timeout * 1000), .vfio_wait_ms = (int) (o->vfio_wait * 1000),
		.parallel = o->parallel,
	};
	/* like bind: a stop signal lets the groups being given back finish; no other group starts */
	vgp_stop_defer();
	vgp_stop_between_groups();
	if (lock_journal(o, &lk, err) < 0)
		return -1;
	int ret = vgp_release(&eo, (const char *const *) o->args, o->n_args, o->force, &rep, err);
	vgp_instance_unlock(&lk);
	print_results(stdout, &rep);
	if (vgp_stop_pending() != 0 && rep.n_stopped > 0)
		ret = interrupted(&rep, VGP_OUT_RELEASED, "given back", err);
	/* everything given back: the node serves no GPU any more, its NFD labels go */
	_cleanup_error_ vgp_error_t nfd_err = NULL;
	if (ret == 0 && o->n_args == 0 && o->nfd_dir[0] != '\0' && vgp_nfd_remove(o->nfd_dir, &nfd_err) < 0)
		fprintf(stderr, "warning: node labels: %s\n", vgp_error_text(nfd_err));
	vgp_engine_report_free(&rep);
	return ret;
}

int
cmd_health(const struct opts *o, vgp_error_t *err)
{
	char msg[1024];
	int ret = vgp_status_check(o->status_file, NULL, o->ready, msg, sizeof msg);
	if (ret < 0)
		return vgp_make_error(err, 0, "%s", msg);
	printf("%s\n", msg);
	return 0;
}