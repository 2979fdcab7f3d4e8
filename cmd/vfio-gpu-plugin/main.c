/* main.c — the program's entry: parse the flags (flags.c), run the command (commands.c, serve_command.c), and
 * the only place that prints an error and decides the exit status (0 ok, 1 runtime failure, 2 invalid input).
 * Everything else lives in plugin/. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "error.h"

#ifndef VGP_VERSION
#error "VGP_VERSION comes from the Makefile (VERSION)"
#endif

static int
run(const struct opts *o, vgp_error_t *err)
{
	if (strcmp(o->command, "help") == 0) {
		cli_print_usage(stdout);
		return 0;
	}
	if (strcmp(o->command, "version") == 0) {
		printf("vfio-gpu-plugin %s\n", VGP_VERSION);
		return 0;
	}
	if (strcmp(o->command, "plan") == 0)
		return cmd_plan(o, err);
	if (strcmp(o->command, "kubevirt-config") == 0)
		return cmd_kubevirt_config(o, err);
	if (strcmp(o->command, "machineconfig") == 0)
		return cmd_machineconfig(o, err);
	if (strcmp(o->command, "bind") == 0)
		return cmd_bind(o, err);
	if (strcmp(o->command, "release") == 0)
		return cmd_release(o, err);
	if (strcmp(o->command, "health") == 0)
		return cmd_health(o, err);
	return cmd_serve(o, VGP_VERSION, err);
}

int
main(int argc, char **argv)
{
	struct opts o = { 0 };
	_cleanup_error_ vgp_error_t err = NULL;
	int ret;

	ret = cli_parse_args(argc, argv, &o, &err);
	if (ret == 0)
		ret = run(&o, &err);
	cli_opts_free(&o);
	if (ret < 0) {
		fprintf(stderr, "vfio-gpu-plugin: %s\n", vgp_error_text(err)); /* the one place an error is shown */
		return vgp_error_exit_code(err);
	}
	return 0;
}
