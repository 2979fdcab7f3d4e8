/* cli.h — what the command line's files share (private to cmd/vfio-gpu-plugin): the parsed flags (flags.c), the
 * node state a command loads (commands.c), and one function per command (commands.c, serve_command.c). main.c
 * dispatches to them; each returns 0 or -1 with err filled, and only main prints the error and exits. */
#ifndef VGP_CLI_H
#define VGP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "error.h"
#include "instance.h"
#include "plan.h"
#include "vfio.h"

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

/* flags.c: flags and the command into o (o->command "help" for -h/--help); the --help text */
int cli_parse_args(int argc, char **argv, struct opts *o, vgp_error_t *err);
void cli_print_usage(FILE *out);
void cli_opts_free(struct opts *o);

/* Everything a command needs to know about the node and what to do with it. */
struct node_state {
	struct vgp_config cfg;
	struct vgp_engine_opts eo;
	struct vgp_inventory inv;
	struct vgp_plan plan;
	const char *node;        /* the name used for display and per-node entries */
};

/* commands.c: the node state, the journal's lock, and what bind and serve both say */
void node_state_free(struct node_state *s);
int load_config(const struct opts *o, struct node_state *s, vgp_error_t *err);
int lock_journal(const struct opts *o, struct vgp_instance_lock *l, vgp_error_t *err);
char *nvidia_plugin_warning(const struct opts *o, const struct vgp_engine_report *rep);

/* the commands */
int cmd_plan(const struct opts *o, vgp_error_t *err);
int cmd_kubevirt_config(const struct opts *o, vgp_error_t *err);
int cmd_machineconfig(const struct opts *o, vgp_error_t *err);
int cmd_bind(const struct opts *o, vgp_error_t *err);
int cmd_release(const struct opts *o, vgp_error_t *err);
int cmd_health(const struct opts *o, vgp_error_t *err);
int cmd_serve(const struct opts *o, const char *version, vgp_error_t *err);

#endif
