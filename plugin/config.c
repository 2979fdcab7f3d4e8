/* config.c — the configuration's life (config.h): defaults, freeing, the config file read (at most 1 MiB) and
 * handed to vgp_config_parse, and the choice of the per-node passthrough list (vgp_config_effective). The JSON
 * walk and the rules each field follows are in config_parse.c, its messages in config_errors.c, the simple flags
 * (--device/--address/--count) in config_cli.c. Pure apart from vgp_config_load_file, which reads the file it is
 * given. */
#include "config-internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VGP_CONFIG_FILE_MAX (1024 * 1024)

static void
match_free(struct vgp_match *m)
{
	free(m->devices);
	free(m->addresses);
	free(m->numa_nodes);
	memset(m, 0, sizeof(*m));
}

static void
pt_list_free(struct vgp_passthrough *pt, size_t n)
{
	if (pt == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		match_free(&pt[i].match);
		free(pt[i].resource_name);
		free(pt[i].json_path);
	}
	free(pt);
}

void
vgp_config_free(struct vgp_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->source);
	free(cfg->resource_prefix);
	pt_list_free(cfg->pt, cfg->n_pt);
	if (cfg->nodes != NULL) {
		for (size_t i = 0; i < cfg->n_nodes; i++) {
			struct vgp_node_entry *ne = &cfg->nodes[i];
			for (size_t j = 0; j < ne->n_names; j++)
				free(ne->names[j]);
			free(ne->names);
			pt_list_free(ne->pt, ne->n_pt);
		}
		free(cfg->nodes);
	}
	memset(cfg, 0, sizeof(*cfg));
}

void
vgp_config_defaults(struct vgp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->numa_policy = VGP_NUMA_BALANCED;
	cfg->busy_policy = VGP_BUSY_SKIP;
	cfg->busy_timeout_s = 60;
	cfg->persist = VGP_PERSIST_NONE;
}

int
vgp_config_load_file(const char *path, struct vgp_config *cfg, vgp_error_t *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;

	if (cfg != NULL)
		memset(cfg, 0, sizeof(*cfg));
	if (path == NULL || *path == '\0')
		return vgp_make_usage_error(err, "config file: no path given");
	f = fopen(path, "re");
	if (f == NULL || fstat(fileno(f), &st) < 0) {
		return vgp_make_input_error(err, errno, "%s: cannot read the config file", path);
	}
	if (S_ISDIR(st.st_mode))
		return vgp_make_usage_error(err, "%s: cannot read the config file: it is a directory", path);
	for (;;) {
		size_t got;
		if (len == cap) {
			char *nb;
			if (cap >= VGP_CONFIG_FILE_MAX)
				return vgp_make_usage_error(err, "%s: the config file is larger than %d bytes", path,
							    VGP_CONFIG_FILE_MAX);
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap + 1);
			if (nb == NULL)
				return cfg_oom(err);
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				return vgp_make_input_error(err, errno ? errno : EIO, "%s: cannot read the config file",
							    path);
			}
			break;
		}
	}
	return vgp_config_parse(buf, len, path, cfg, err);
}

int
vgp_config_effective(const struct vgp_config *cfg, const char *node_name, const struct vgp_passthrough **pt,
		     size_t *n_pt, int *node_index, vgp_error_t *err)
{
	if (node_index != NULL)
		*node_index = -1;
	if (cfg == NULL || pt == NULL || n_pt == NULL)
		return vgp_make_usage_error(err, "no configuration");
	if (cfg->n_nodes > 0 && (node_name == NULL || *node_name == '\0'))
		return vgp_make_usage_error(err,
					    "%s: config has per-node entries (nodes) but no node name: pass --node-name "
					    "or set NODE_NAME",
					    cfg->source ? cfg->source : "config");
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const struct vgp_node_entry *ne = &cfg->nodes[i];
		for (size_t j = 0; j < ne->n_names; j++) {
			if (fnmatch(ne->names[j], node_name, 0) == 0) {
				*pt = ne->pt;
				*n_pt = ne->n_pt;
				if (node_index != NULL)
					*node_index = (int) i;
				return 0;
			}
		}
	}
	*pt = cfg->pt;
	*n_pt = cfg->n_pt;
	return 0;
}

const char *
vgp_config_file(const struct vgp_config *cfg)
{
	return cfg != NULL && cfg->file ? cfg->source : NULL;
}
