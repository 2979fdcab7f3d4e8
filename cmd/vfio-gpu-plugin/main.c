/* main.c — the command line: flags, sub-commands, signals. The only place that prints an error and decides the
 * exit status (0 ok, 1 runtime failure, 2 invalid input). Everything else lives in plugin/. */
#include <errno.h>
#include <grpc/grpc.h>
#include <getopt.h>
#include <signal.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "hostfs.h"
#include "instance.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "metrics_report.h"
#include "nfd_features.h"
#include "nvidia_signal.h"
#include "pci.h"
#include "plan.h"
#include "podresources.h"
#include "registration.h"
#include "report.h"
#include "resplit.h"
#include "serve_loop.h"
#include "served_table.h"
#include "stop.h"
#include "vfio.h"

#ifndef VGP_VERSION
#error "VGP_VERSION comes from the Makefile (VERSION)"
#endif

struct opts {
	const char *command;
	const char *config;
	char **devices;
	size_t n_devices;
	char **addresses;
	size_t n_addresses;
	const char *count;
	const char *host_root;
	const char *pci_ids;
	const char *node_name;      /* --node-name or $NODE_NAME: explicit */
	char hostname[256];         /* fallback for display and configs without nodes entries */
	char state_file[4096];
	char kubelet_dir[4096];
	char pod_resources_socket[4096];
	const char *status_file;
	const char *metrics_address;
	char nfd_dir[4096];         /* "" = off */
	double unbind_timeout, vfio_wait, reconcile_interval, lock_wait;
	int parallel;               /* --parallel: IOMMU groups moved at once, 0 = all */
	bool json, force, hco, ready;
	const char *role;
	const char *hco_api;         /* --hco-api: "v1" (default) or "v1beta1" */
	char **args;                /* positional arguments after the command (release ADDR...) */
	size_t n_args;
};

static const char usage_text[] =
	"Usage: vfio-gpu-plugin [FLAGS] [COMMAND] [ARGS]\n"
	"\n"
	"Binds a chosen subset of a node's GPUs (each with its whole IOMMU group) to vfio-pci and serves them to\n"
	"kubelet as nvidia.com/<MODEL> resources for KubeVirt VMs; the other GPUs stay on their driver for pods.\n"
	"\n"
	"Commands:\n"
	"  serve                 plan, bind, then serve the kubelet device-plugin API (the default)\n"
	"  plan [--json]         show what the node has and what would be done; changes nothing\n"
	"  bind                  carry out the plan and exit (init container, boot-time systemd unit)\n"
	"  release [--force] [ADDRESS...]\n"
	"                        return GPUs (all the plugin moved, when none is named) to their original driver\n"
	"  kubevirt-config [--hco [--hco-api v1|v1beta1]]\n"
	"                        print the KubeVirt permittedHostDevices entries for this node's resources\n"
	"                        (--hco: the HyperConverged CR patch, hco.kubevirt.io/v1 for HCO 1.18 and later;\n"
	"                        --hco-api v1beta1 for older HCOs)\n"
	"  machineconfig [--role ROLE]\n"
	"                        print an OpenShift MachineConfig with the udev rule file and IOMMU kernel args\n"
	"  health [--ready]      exit 0 when the running serve is alive (with --ready: registered and ready)\n"
	"  version               print the version\n"
	"\n"
	"Selection (the simple case; or use --config):\n"
	"  --device VENDOR:DEVICE   pass through GPUs with this PCI id, e.g. 10de:26b9 (repeatable)\n"
	"  --count N|all            how many GPUs to pass through (default 1, or the number of --address)\n"
	"  --address BDF            pass through this GPU, e.g. 0000:3b:00.0 (repeatable)\n"
	"  --config FILE            JSON configuration (passthrough entries, NUMA policy, busy policy, per-node\n"
	"                           entries); conflicts with --device/--count/--address\n"
	"\n"
	"Node:\n"
	"  --host-root DIR          prefix of every host path (/sys, /dev, /proc, /etc, /var) (default /)\n"
	"  --pci-ids FILE           pci.ids database for model names (default libpci's)\n"
	"  --node-name NAME         node name for per-node config entries (default $NODE_NAME, then the host name)\n"
	"  --state-file FILE        journal of moved functions (default <host-root>/var/lib/vfio-gpu-plugin/state.json)\n"
	"\n"
	"Serving:\n"
	"  --kubelet-dir DIR        kubelet device-plugins directory\n"
	"                           (default <host-root>/var/lib/kubelet/device-plugins)\n"
	"  --status-file FILE       status written by serve, read by health (default /run/vfio-gpu-plugin/status.json)\n"
	"  --reconcile-interval SEC periodic re-check of every served GPU (default 5)\n"
	"  --pod-resources-socket PATH\n"
	"                           kubelet's PodResources API: a GPU leaves vfio-pci only when no container has it\n"
	"                           (default <host-root>/var/lib/kubelet/pod-resources/kubelet.sock)\n"
	"  --metrics-address ADDR   Prometheus /metrics on [HOST]:PORT, or off (default " VGP_METRICS_DEFAULT_ADDRESS ")\n"
	"  --nfd-features-dir DIR   node-feature-discovery's features.d: serve writes the node labels there, release\n"
	"                           of every GPU removes them; off disables\n"
	"                           (default <host-root>" VGP_NFD_DEFAULT_DIR ")\n"
	"\n"
	"Binding:\n"
	"  --unbind-timeout SEC     give up on a driver unbind after SEC; the GPU is then stuck (default 10)\n"
	"  --vfio-wait SEC          wait for /dev/vfio/<group> after binding (default 5)\n"
	"  --parallel N             bind, release, serve: move at most N IOMMU groups at once (default: all of\n"
	"                           them; 1 = one after another, in the plan's order)\n"
	"  --lock-wait SEC          bind, release, serve: wait this long for another instance holding the journal's\n"
	"                           lock (<state-file>.lock), then exit 1 naming its pid (default 60)\n"
	"\n"
	"Other:\n"
	"  --log-level LEVEL        error, warn, info or debug (default info)\n"
	"  --json                   plan: machine-readable output\n"
	"  --force                  release: even when a process (a running VM) holds the group\n"
	"  --hco                    kubevirt-config: HyperConverged CR patch\n"
	"  --hco-api VERSION        kubevirt-config --hco: v1 (HCO 1.18+, default) or v1beta1 (older HCOs)\n"
	"  --role ROLE              machineconfig: MachineConfigPool role (default worker)\n"
	"  --ready                  health: readiness rather than liveness\n"
	"  -h, --help               this text\n"
	"\n"
	"Exit status: 0 success, 1 runtime failure, 2 invalid input (configuration, flags, count beyond the GPUs).\n";

enum {
	OPT_CONFIG = 256, OPT_DEVICE, OPT_COUNT, OPT_ADDRESS, OPT_HOST_ROOT, OPT_PCI_IDS, OPT_NODE_NAME,
	OPT_STATE_FILE, OPT_KUBELET_DIR, OPT_STATUS_FILE, OPT_UNBIND_TIMEOUT, OPT_VFIO_WAIT,
	OPT_RECONCILE, OPT_POD_RESOURCES, OPT_LOCK_WAIT, OPT_METRICS_ADDRESS, OPT_NFD_DIR, OPT_LOG_LEVEL, OPT_JSON,
	OPT_FORCE, OPT_HCO, OPT_HCO_API, OPT_ROLE, OPT_READY, OPT_PARALLEL,
};

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "host-root", required_argument, NULL, OPT_HOST_ROOT },
	{ "pci-ids", required_argument, NULL, OPT_PCI_IDS },
	{ "node-name", required_argument, NULL, OPT_NODE_NAME },
	{ "state-file", required_argument, NULL, OPT_STATE_FILE },
	{ "kubelet-dir", required_argument, NULL, OPT_KUBELET_DIR },
	{ "status-file", required_argument, NULL, OPT_STATUS_FILE },
	{ "unbind-timeout", required_argument, NULL, OPT_UNBIND_TIMEOUT },
	{ "vfio-wait", required_argument, NULL, OPT_VFIO_WAIT },
	{ "parallel", required_argument, NULL, OPT_PARALLEL },
	{ "reconcile-interval", required_argument, NULL, OPT_RECONCILE },
	{ "pod-resources-socket", required_argument, NULL, OPT_POD_RESOURCES },
	{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
	{ "metrics-address", required_argument, NULL, OPT_METRICS_ADDRESS },
	{ "nfd-features-dir", required_argument, NULL, OPT_NFD_DIR },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "hco", no_argument, NULL, OPT_HCO },
	{ "hco-api", required_argument, NULL, OPT_HCO_API },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "ready", no_argument, NULL, OPT_READY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char *const commands[] = { "serve", "plan", "bind", "release", "kubevirt-config", "machineconfig",
					"health", "version" };

static int
push(char ***v, size_t *n, char *s, vgp_error_t *err)
{
	char **nv = vgp_array_push(v, n, sizeof **v);
	if (nv == NULL)
		return vgp_make_error(err, ENOMEM, "flags");
	*nv = s;
	return 0;
}

static int
parse_seconds(const char *flag, const char *s, double *out, vgp_error_t *err)
{
	char *end = NULL;
	double v;
	errno = 0;
	v = strtod(s, &end);
	/* written so that NaN (which compares false with everything) is refused too */
	if (errno != 0 || end == s || *end != '\0' || !(v > 0 && v <= 86400))
		return vgp_make_usage_error(err, "%s '%s': expected a number of seconds greater than 0", flag, s);
	*out = v;
	return 0;
}

static int
parse_parallel(const char *s, int *out, vgp_error_t *err)
{
	char *end = NULL;
	long v;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 4096)
		return vgp_make_usage_error(err, "--parallel '%s': expected a number of IOMMU groups from 1 to 4096", s);
	*out = (int) v;
	return 0;
}

static bool
role_valid(const char *r)
{
	size_t n = strlen(r);
	if (n == 0 || n > 63 || r[0] == '-' || r[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
			return false;
	return true;
}

/* Flags and the command into o. Longer than a step for a reason: one getopt switch with a case per flag, then the
 * checks between flags; split, the flag table would be spread over several functions. */
static int
parse_args(int argc, char **argv, struct opts *o, vgp_error_t *err)
{
	const char *state_file = NULL, *kubelet_dir = NULL, *pod_resources = NULL, *nfd_dir = NULL;
	char host[256];
	int c, lvl, port;

	o->host_root = "/";
	o->status_file = "/run/vfio-gpu-plugin/status.json";
	o->metrics_address = VGP_METRICS_DEFAULT_ADDRESS;
	o->unbind_timeout = 10;
	o->vfio_wait = 5;
	o->reconcile_interval = 5;
	o->lock_wait = VGP_LOCK_WAIT_MS_DEFAULT / 1000.0;
	o->role = "worker";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG: o->config = optarg; break;
		case OPT_DEVICE: if (push(&o->devices, &o->n_devices, optarg, err) < 0) return -1; break;
		case OPT_COUNT: o->count = optarg; break;
		case OPT_ADDRESS: if (push(&o->addresses, &o->n_addresses, optarg, err) < 0) return -1; break;
		case OPT_HOST_ROOT: o->host_root = optarg; break;
		case OPT_PCI_IDS: o->pci_ids = optarg; break;
		case OPT_NODE_NAME: o->node_name = optarg; break;
		case OPT_STATE_FILE: state_file = optarg; break;
		case OPT_KUBELET_DIR: kubelet_dir = optarg; break;
		case OPT_POD_RESOURCES: pod_resources = optarg; break;
		case OPT_STATUS_FILE: o->status_file = optarg; break;
		case OPT_METRICS_ADDRESS:
			if (vgp_metrics_address_parse(optarg, host, sizeof host, &port, err) < 0) return -1;
			o->metrics_address = optarg;
			break;
		case OPT_NFD_DIR: nfd_dir = optarg; break;
		case OPT_UNBIND_TIMEOUT:
			if (parse_seconds("--unbind-timeout", optarg, &o->unbind_timeout, err) < 0) return -1;
			break;
		case OPT_VFIO_WAIT:
			if (parse_seconds("--vfio-wait", optarg, &o->vfio_wait, err) < 0) return -1;
			break;
		case OPT_PARALLEL:
			if (parse_parallel(optarg, &o->parallel, err) < 0) return -1;
			break;
		case OPT_RECONCILE:
			if (parse_seconds("--reconcile-interval", optarg, &o->reconcile_interval, err) < 0) return -1;
			break;
		case OPT_LOCK_WAIT:
			if (parse_seconds("--lock-wait", optarg, &o->lock_wait, err) < 0) return -1;
			break;
		case OPT_LOG_LEVEL:
			lvl = vgp_log_parse_level(optarg);
			if (lvl < 0)
				return vgp_make_usage_error(err, "--log-level '%s': expected error, warn, info or debug",
							    optarg);
			vgp_log_level = (enum vgp_log_level) lvl;
			break;
		case OPT_JSON: o->json = true; break;
		case OPT_FORCE: o->force = true; break;
		case OPT_HCO: o->hco = true; break;
		case OPT_HCO_API:
			if (strcmp(optarg, "v1") != 0 && strcmp(optarg, "v1beta1") != 0)
				return vgp_make_usage_error(err, "--hco-api '%s': expected v1 or v1beta1", optarg);
			o->hco_api = optarg;
			break;
		case OPT_ROLE: o->role = optarg; break;
		case OPT_READY: o->ready = true; break;
		case 'h': o->command = "help"; return 0;
		case ':': return vgp_make_usage_error(err, "%s needs a value (see --help)", argv[optind - 1]);
		default: return vgp_make_usage_error(err, "unknown flag '%s' (see --help)", argv[optind - 1]);
		}
	}
	o->command = optind < argc ? argv[optind++] : "serve";
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		known |= strcmp(o->command, commands[i]) == 0;
	if (!known)
		return vgp_make_usage_error(err, "unknown command '%s' (see --help)", o->command);
	o->args = argv + optind;
	o->n_args = (size_t) (argc - optind);
	if (o->n_args > 0 && strcmp(o->command, "release") != 0)
		return vgp_make_usage_error(err, "%s takes no arguments (got '%s')", o->command, o->args[0]);

	/* flags that belong to one command only */
	if (o->json && strcmp(o->command, "plan") != 0)
		return vgp_make_usage_error(err, "--json goes with plan");
	if (o->force && strcmp(o->command, "release") != 0)
		return vgp_make_usage_error(err, "--force goes with release");
	if (o->hco && strcmp(o->command, "kubevirt-config") != 0)
		return vgp_make_usage_error(err, "--hco goes with kubevirt-config");
	if (o->hco_api && !o->hco)
		return vgp_make_usage_error(err, "--hco-api goes with kubevirt-config --hco");
	if (o->ready && strcmp(o->command, "health") != 0)
		return vgp_make_usage_error(err, "--ready goes with health");
	if (o->config && (o->n_devices || o->n_addresses || o->count))
		return vgp_make_usage_error(err, "--config conflicts with --device, --count and --address: put the "
						 "selection in the file");
	/* a pci.ids file that is not there is a mistake on the command line, like a missing --config file */
	if (o->pci_ids != NULL && access(o->pci_ids, R_OK) < 0)
		return vgp_make_input_error(err, errno, "--pci-ids '%s'", o->pci_ids);
	/* the role goes into a resource name and a label of the MachineConfig: a DNS label */
	if (!role_valid(o->role))
		return vgp_make_usage_error(err, "--role '%s': expected a MachineConfigPool role (lower-case letters, "
						 "digits and '-', at most 63, e.g. worker)", o->role);

	if (o->node_name == NULL) {
		const char *env = getenv("NODE_NAME");
		if (env != NULL && env[0] != '\0')
			o->node_name = env;
	}
	if (gethostname(o->hostname, sizeof o->hostname) < 0)
		snprintf(o->hostname, sizeof o->hostname, "localhost");
	o->hostname[sizeof o->hostname - 1] = '\0';

	if (state_file != NULL) {
		if (snprintf(o->state_file, sizeof o->state_file, "%s", state_file) >= (int) sizeof o->state_file)
			return vgp_make_usage_error(err, "--state-file: path too long");
	} else if (vgp_host_path(o->state_file, sizeof o->state_file, o->host_root,
			       "/var/lib/vfio-gpu-plugin/state.json") < 0)
		return vgp_make_usage_error(err, "--host-root '%s': path too long", o->host_root);
	if (nfd_dir != NULL) {
		if (strcmp(nfd_dir, "off") != 0 &&
		    snprintf(o->nfd_dir, sizeof o->nfd_dir, "%s", nfd_dir) >= (int) sizeof o->nfd_dir)
			return vgp_make_usage_error(err, "--nfd-features-dir: path too long");
	} else if (vgp_host_path(o->nfd_dir, sizeof o->nfd_dir, o->host_root, VGP_NFD_DEFAULT_DIR) < 0)
		return vgp_make_usage_error(err, "--host-root '%s': path too long", o->host_root);
	if (kubelet_dir != NULL) {
		if (snprintf(o->kubelet_dir, sizeof o->kubelet_dir, "%s", kubelet_dir) >= (int) sizeof o->kubelet_dir)
			return vgp_make_usage_error(err, "--kubelet-dir: path too long");
	} else if (vgp_host_path(o->kubelet_dir, sizeof o->kubelet_dir, o->host_root,
			       "/var/lib/kubelet/device-plugins") < 0)
		return vgp_make_usage_error(err, "--host-root '%s': path too long", o->host_root);
	if (pod_resources != NULL) {
		if (snprintf(o->pod_resources_socket, sizeof o->pod_resources_socket, "%s", pod_resources) >=
		    (int) sizeof o->pod_resources_socket)
			return vgp_make_usage_error(err, "--pod-resources-socket: path too long");
	} else if (vgp_host_path(o->pod_resources_socket, sizeof o->pod_resources_socket, o->host_root,
				 VGP_PODRESOURCES_SOCKET) < 0)
		return vgp_make_usage_error(err, "--host-root '%s': path too long", o->host_root);
	return 0;
}

/* Everything a command needs to know about the node and what to do with it. */
struct node_state {
	struct vgp_config cfg;
	struct vgp_engine_opts eo;
	struct vgp_inventory inv;
	struct vgp_plan plan;
	const char *node;        /* the name used for display and per-node entries */
};

static void
node_state_free(struct node_state *s)
{
	vgp_plan_free(&s->plan);
	vgp_inventory_free(&s->inv);
	vgp_config_free(&s->cfg);
}

/* Config (flags or file), node entry, engine options. Nothing is read from the node yet. */
static int
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

static int
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

static int
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

static int
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
static char *
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
static int
lock_journal(const struct opts *o, struct vgp_instance_lock *l, vgp_error_t *err)
{
	char path[4096 + 8], what[4096 + 16];

	snprintf(path, sizeof path, "%s.lock", o->state_file);
	snprintf(what, sizeof what, "the journal %s", o->state_file);
	return vgp_instance_lock(path, (int) (o->lock_wait * 1000), what, l, err);
}

static int
cmd_bind(const struct opts *o, vgp_error_t *err)
{
	struct node_state s = { 0 };
	struct vgp_engine_report rep = { 0 };
	struct vgp_instance_lock lk = { .fd = -1 };
	int ret, sig;

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
		if ((sig = vgp_stop_pending()) != 0) {
			size_t done = 0;

			for (size_t i = 0; i < rep.n; i++)
				done += rep.r[i].outcome == VGP_OUT_BOUND || rep.r[i].outcome == VGP_OUT_PASSTHROUGH;
			vgp_error_release(err);
			ret = vgp_make_error(err, 0, "interrupted by %s: stopped after the group in progress; %zu of %zu "
					     "GPUs on vfio-pci, the rest untouched (results above)", vgp_stop_name(sig), done,
					     rep.n);
		}
	}
	vgp_engine_report_free(&rep);
	node_state_free(&s);
	return ret;
}

static int
cmd_release(const struct opts *o, vgp_error_t *err)
{
	struct vgp_engine_report rep = { 0 };
	struct vgp_instance_lock lk = { .fd = -1 };
	struct vgp_engine_opts eo = {
		.host_root = o->host_root, .state_file = o->state_file, .pci_ids = o->pci_ids,
		.unbind_timeout_ms = (int) (o->unbind_timeout * 1000), .vfio_wait_ms = (int) (o->vfio_wait * 1000),
		.parallel = o->parallel,
	};
	if (lock_journal(o, &lk, err) < 0)
		return -1;
	int ret = vgp_release(&eo, (const char *const *) o->args, o->n_args, o->force, &rep, err);
	vgp_instance_unlock(&lk);
	print_results(stdout, &rep);
	/* everything given back: the node serves no GPU any more, its NFD labels go */
	_cleanup_error_ vgp_error_t nfd_err = NULL;
	if (ret == 0 && o->n_args == 0 && o->nfd_dir[0] != '\0' && vgp_nfd_remove(o->nfd_dir, &nfd_err) < 0)
		fprintf(stderr, "warning: node labels: %s\n", vgp_error_text(nfd_err));
	vgp_engine_report_free(&rep);
	return ret;
}

/* The metrics endpoint and the NFD feature file around the serve loop. The endpoint starts after the bind (its
 * numbers are known) and stops after the loop; it failing to start (port taken) is logged, never fatal: the GPUs
 * are served all the same. */
static int
serve_with_metrics(const struct opts *o, const struct vgp_engine_report *rep, const struct vgp_served_table *t,
		   const struct vgp_serve_opts *so, vgp_error_t *err)
{
	struct vgp_metrics_http *http = NULL;
	_cleanup_error_ vgp_error_t merr = NULL, nerr = NULL;
	int ret;

	vgp_metrics_set_version(VGP_VERSION);
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

static int
cmd_serve(const struct opts *o, vgp_error_t *err)
{
	struct node_state s = { 0 };
	struct vgp_engine_report rep = { 0 };
	struct vgp_served_table table = { 0 };
	_cleanup_error_ vgp_error_t bind_err = NULL;
	_cleanup_error_ vgp_error_t corrupt = NULL;
	_cleanup_free_ char *not_ready = NULL;
	struct vgp_instance_lock lk = { .fd = -1 }, serve_lock = { .fd = -1 };
	int ret;

	if (load_config(o, &s, err) < 0) {
		node_state_free(&s);
		return -1;
	}
	/* A SIGTERM during the bind must not cut a group's move in half: hold SIGTERM/SIGINT/SIGHUP until the
	 * serve loop reads them from its signalfd (a pending SIGTERM then stops it at once, exit 0). */
	vgp_serve_hold_signals();

	/* One serve per kubelet directory (one socket path, one status file), for its whole life. */
	char slock[4096 + 64];
	if (vgp_serve_lock_path(o->state_file, o->kubelet_dir, slock, sizeof slock) < 0 ||
	    vgp_instance_lock(slock, 0, "serve of this kubelet directory", &serve_lock, err) < 0) {
		if (*err == NULL)
			vgp_make_error(err, ENAMETOOLONG, "serve lock path");
		else
			vgp_error_wrap(err, "serve %s: refusing to start", o->kubelet_dir);
		node_state_free(&s);
		return -1;
	}
	if (lock_journal(o, &lk, err) < 0) {
		vgp_instance_unlock(&serve_lock);
		node_state_free(&s);
		return -1;
	}
	/* serve binds what exists: a GPU that fell off the bus must not stop the GPUs already in VMs from being
	 * served (docs/architecture.md §6). A failure here is logged and reported not-ready, unless nothing could be
	 * planned. A corrupt journal: moved aside (kept, with a timestamp), nothing moved, GPUs already on vfio-pci
	 * served. */
	s.eo.shortfall_ok = true;
	if (vgp_journal_set_aside_if_corrupt(o->state_file, &corrupt) < 0) {
		ret = -1;
		if (vgp_plan_node(&s.eo, &rep.inv, &rep.plan, &bind_err) == 0)
			rep.have_plan = true;
		if (bind_err == NULL)
			bind_err = steal_pointer(&corrupt);
		else
			vgp_error_wrap(&bind_err, "%s; and", vgp_error_text(corrupt));
		log_error("%s", vgp_error_text(bind_err));
	} else {
		ret = vgp_bind(&s.eo, &rep, &bind_err);
	}
	vgp_instance_unlock(&lk);
	for (size_t i = 0; i < rep.n; i++) {
		const struct vgp_gpu_result *r = &rep.r[i];
		/* the engine logs each move as it happens; the rest is said here */
		if (r->outcome != VGP_OUT_BOUND)
			log_info("%s %s%s%s", r->addr, vgp_outcome_name(r->outcome), r->msg ? ": " : "",
				 r->msg ? r->msg : "");
	}
	if (!rep.have_plan) {
		vgp_engine_report_free(&rep);
		node_state_free(&s);
		vgp_instance_unlock(&serve_lock);
		*err = steal_pointer(&bind_err);
		return -1;
	}
	for (size_t w = 0; w < rep.plan.n_warnings; w++)
		log_warn("%s", rep.plan.warnings[w]);
	size_t n_bound = 0;
	for (size_t i = 0; i < rep.n; i++)
		n_bound += rep.r[i].outcome == VGP_OUT_BOUND;
	if (n_bound > 0 && s.cfg.nvidia_on_change == VGP_NVIDIA_SIGNAL) {
		char sent[2048];
		_cleanup_error_ vgp_error_t nerr = NULL;
		if (vgp_nvidia_signal(o->host_root, o->kubelet_dir, sent, sizeof sent, &nerr) < 0)
			log_warn("NVIDIA device plugin: cannot look for its process: %s", vgp_error_text(nerr));
		else
			log_info("NVIDIA device plugin (nvidiaDevicePlugin.onChange signal, after %zu GPU%s moved to "
				 "vfio-pci): %s", n_bound, n_bound == 1 ? "" : "s", sent);
	} else {
		_cleanup_free_ char *msg = nvidia_plugin_warning(o, &rep);
		if (msg != NULL)
			log_warn("%s", msg);
	}
	if (ret < 0 || rep.plan.shortfall) {
		const char *why = ret < 0 && bind_err ? vgp_error_text(bind_err) : rep.plan.shortfall_msg;
		if (asprintf(&not_ready, "%s", why ? why : "not every planned GPU is served") < 0)
			not_ready = NULL;
		log_warn("not ready: %s", not_ready ? not_ready : "");
	}
	ret = vgp_served_from_plan(&rep.inv, &rep.plan, &table, err);
	if (ret == 0) {
		struct vgp_serve_opts so = {
			.host_root = o->host_root, .kubelet_dir = o->kubelet_dir, .status_file = o->status_file,
			.reconcile_interval_ms = (int) (o->reconcile_interval * 1000),
			.resources = table.res, .n_resources = table.n,
			.ready = not_ready == NULL, .not_ready_reason = not_ready,
			.engine = &s.eo, .config_path = o->config, .node_name = o->node_name,
			.pod_resources_socket = o->pod_resources_socket, .nfd_dir = o->nfd_dir,
		};
		if (table.n == 0)
			log_warn("no passthrough resource on this node: nothing to serve (waiting for SIGTERM)");
		ret = serve_with_metrics(o, &rep, &table, &so, err);
	}
	vgp_instance_unlock(&serve_lock);
	vgp_served_free(&table);
	vgp_engine_report_free(&rep);
	node_state_free(&s);
	return ret;
}

static int
cmd_health(const struct opts *o, vgp_error_t *err)
{
	char msg[1024];
	int ret = vgp_status_check(o->status_file, NULL, o->ready, msg, sizeof msg);
	if (ret < 0)
		return vgp_make_error(err, 0, "%s", msg);
	printf("%s\n", msg);
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o = { 0 };
	_cleanup_error_ vgp_error_t err = NULL;
	int ret;

	ret = parse_args(argc, argv, &o, &err);
	if (ret == 0) {
		if (strcmp(o.command, "help") == 0) {
			fputs(usage_text, stdout);
		} else if (strcmp(o.command, "version") == 0) {
			printf("vfio-gpu-plugin %s\n", VGP_VERSION);
		} else if (strcmp(o.command, "plan") == 0) {
			ret = cmd_plan(&o, &err);
		} else if (strcmp(o.command, "kubevirt-config") == 0) {
			ret = cmd_kubevirt_config(&o, &err);
		} else if (strcmp(o.command, "machineconfig") == 0) {
			ret = cmd_machineconfig(&o, &err);
		} else if (strcmp(o.command, "bind") == 0) {
			ret = cmd_bind(&o, &err);
		} else if (strcmp(o.command, "release") == 0) {
			ret = cmd_release(&o, &err);
		} else if (strcmp(o.command, "health") == 0) {
			ret = cmd_health(&o, &err);
		} else {
			ret = cmd_serve(&o, &err);
		}
	}
	free(o.devices);
	free(o.addresses);
	if (ret < 0) {
		fprintf(stderr, "vfio-gpu-plugin: %s\n", vgp_error_text(err)); /* the one place an error is shown */
		return vgp_error_exit_code(err);
	}
	return 0;
}
