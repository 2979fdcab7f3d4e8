/* flags.c — the command line's flags: the --help text, the getopt table, and parse_args, which turns argv into a
 * struct opts (cli.h) and refuses flags that do not go with the command, bad values and paths that do not fit.
 * Reads nothing of the node except whether --pci-ids can be read. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hostfs.h"
#include "log.h"
#include "metrics_http.h"
#include "nfd_features.h"
#include "podresources.h"
#include "util.h"

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

/* Paths given on the command line, kept until the host root is known (their defaults are under it). */
struct path_flags {
	const char *state_file, *kubelet_dir, *pod_resources, *nfd_dir;
};

/* The command and its arguments after the flags (optind is past the last flag), the flags that belong to one
 * command only, and the checks between flags. */
static int
command_checks(int argc, char **argv, struct opts *o, vgp_error_t *err)
{
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
	return 0;
}

/* One path flag into out: as given, or its default under the host root. */
static int
path_flag(char *out, size_t len, const char *flag, const char *given, const char *host_root, const char *dflt,
	  vgp_error_t *err)
{
	if (given != NULL) {
		if (snprintf(out, len, "%s", given) >= (int) len)
			return vgp_make_usage_error(err, "%s: path too long", flag);
		return 0;
	}
	if (vgp_host_path(out, len, host_root, "%s", dflt) < 0)
		return vgp_make_usage_error(err, "--host-root '%s': path too long", host_root);
	return 0;
}

/* The paths: as given, or their defaults under the host root ("off" turns the NFD feature file off). */
static int
resolve_paths(struct opts *o, const struct path_flags *p, vgp_error_t *err)
{
	if (path_flag(o->state_file, sizeof o->state_file, "--state-file", p->state_file, o->host_root,
		      "/var/lib/vfio-gpu-plugin/state.json", err) < 0 ||
	    path_flag(o->kubelet_dir, sizeof o->kubelet_dir, "--kubelet-dir", p->kubelet_dir, o->host_root,
		      "/var/lib/kubelet/device-plugins", err) < 0 ||
	    path_flag(o->pod_resources_socket, sizeof o->pod_resources_socket, "--pod-resources-socket",
		      p->pod_resources, o->host_root, VGP_PODRESOURCES_SOCKET, err) < 0)
		return -1;
	if (p->nfd_dir != NULL && strcmp(p->nfd_dir, "off") == 0) {
		o->nfd_dir[0] = '\0';
		return 0;
	}
	return path_flag(o->nfd_dir, sizeof o->nfd_dir, "--nfd-features-dir", p->nfd_dir, o->host_root,
			 VGP_NFD_DEFAULT_DIR, err);
}

/* Flags and the command into o (cli.h): the getopt loop, then the checks between flags, then the paths.
 * Longer than a step for a reason: one getopt switch with a case per flag; split, the flag table would be spread
 * over several functions. */
int
cli_parse_args(int argc, char **argv, struct opts *o, vgp_error_t *err)
{
	struct path_flags p = { 0 };
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
		case OPT_STATE_FILE: p.state_file = optarg; break;
		case OPT_KUBELET_DIR: p.kubelet_dir = optarg; break;
		case OPT_POD_RESOURCES: p.pod_resources = optarg; break;
		case OPT_STATUS_FILE: o->status_file = optarg; break;
		case OPT_METRICS_ADDRESS:
			if (vgp_metrics_address_parse(optarg, host, sizeof host, &port, err) < 0) return -1;
			o->metrics_address = optarg;
			break;
		case OPT_NFD_DIR: p.nfd_dir = optarg; break;
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
	if (command_checks(argc, argv, o, err) < 0)
		return -1;
	if (o->node_name == NULL) {
		const char *env = getenv("NODE_NAME");
		if (env != NULL && env[0] != '\0')
			o->node_name = env;
	}
	if (gethostname(o->hostname, sizeof o->hostname) < 0)
		snprintf(o->hostname, sizeof o->hostname, "localhost");
	o->hostname[sizeof o->hostname - 1] = '\0';

	return resolve_paths(o, &p, err);
}

void
cli_print_usage(FILE *out)
{
	fputs(usage_text, out);
}

void
cli_opts_free(struct opts *o)
{
	free(o->devices);
	free(o->addresses);
	o->devices = o->addresses = NULL;
}
