/* plan_names.c — step 3 of the plan (plan-internal.h): the resource names of each entry (its resourceName, or the
 * NAME derived from each matching GPU's model), the warnings about repaired and shared names, and the checks that no
 * two entries give one resource and no two resources one KubeVirt variable. Pure. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan-internal.h"
#include "util.h"

/* ---- step 3: names ------------------------------------------------------------------------------------------- */

const char *
plan_res_name(const struct ctx *c, size_t e, const struct work *w, char *buf, size_t len)
{
	const char *name = c->pt[e].resource_name != NULL ? c->pt[e].resource_name : w->name;
	plan_setf(buf, len, "%s/%s", c->prefix, name);
	return buf;
}

struct vgp_plan_resource *
plan_find_res(struct vgp_plan *plan, int e, const char *name)
{
	for (size_t r = 0; r < plan->n_res; r++)
		if (plan->res[r].entry == e && strcmp(plan->res[r].name, name) == 0)
			return &plan->res[r];
	return NULL;
}

static int
add_res(struct ctx *c, size_t e, const char *name, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	struct vgp_plan_resource *nr;
	size_t at;

	if (plan_find_res(plan, (int) e, name) != NULL)
		return 0;
	nr = vgp_array_push(&plan->res, &plan->n_res, sizeof(*nr));
	if (nr == NULL)
		return plan_oom(err);
	/* keep an entry's resources sorted by name, entries in order */
	at = plan->n_res - 1;
	while (at > 0 && plan->res[at - 1].entry == (int) e && strcmp(plan->res[at - 1].name, name) > 0)
		at--;
	memmove(&plan->res[at + 1], &plan->res[at], (plan->n_res - 1 - at) * sizeof(*nr));
	memset(&plan->res[at], 0, sizeof(*nr));
	plan_setf(plan->res[at].name, sizeof(plan->res[at].name), "%s", name);
	plan->res[at].entry = (int) e;
	plan->res[at].wanted = c->pt[e].count;
	return 0;
}

/* The resources of entry e: its resourceName, or the NAME derived for each GPU it matches (a repaired derived name
 * is warned about once per vendor:device, in warned). */
static int
entry_names(struct ctx *c, size_t e, uint32_t *warned, size_t *n_warned, vgp_error_t *err)
{
	const struct vgp_passthrough *p = &c->pt[e];
	char full[VGP_RESOURCE_LEN + 8];

	if (p->resource_name != NULL) {
		if (!vgp_name_valid(p->resource_name))
			return plan_config_error(c, err, "%s.resourceName \"%s\" is not a valid resource name (1-63 of "
						 "A-Z a-z 0-9 . _ -, alphanumeric at both ends)", c->paths[e],
						 p->resource_name);
		if (strlen(c->prefix) + 1 + strlen(p->resource_name) >= VGP_RESOURCE_LEN)
			return plan_config_error(c, err, "%s: resource name %s/%s is too long", c->paths[e], c->prefix,
						 p->resource_name);
		plan_setf(full, sizeof(full), "%s/%s", c->prefix, p->resource_name);
		return add_res(c, e, full, err);
	}
	for (size_t i = 0; i < c->plan->n; i++) {
		struct work *w = &c->w[i];
		uint32_t id = (uint32_t) w->d->vendor << 16 | w->d->device;
		bool seen = false;
		if (!plan_entry_match(p, w->d))
			continue;
		if (!vgp_name_valid(w->name) || strlen(c->prefix) + 1 + strlen(w->name) >= VGP_RESOURCE_LEN)
			return plan_config_error(c, err, "%s: the name \"%s\" derived for %s (%04x:%04x \"%s\") is not a "
						 "valid resource name: set resourceName", c->paths[e], w->name, w->d->addr,
						 w->d->vendor, w->d->device, w->d->model ? w->d->model : "");
		plan_setf(full, sizeof(full), "%s/%s", c->prefix, w->name);
		if (add_res(c, e, full, err) < 0)
			return -1;
		if (!w->repaired)
			continue;
		for (size_t k = 0; k < *n_warned && !seen; k++)
			seen = warned[k] == id;
		if (seen)
			continue;
		warned[(*n_warned)++] = id;
		if (plan_add_warning(c->plan, err, "%04x:%04x \"%s\": derived resource name repaired to %s", w->d->vendor,
				     w->d->device, w->d->model ? w->d->model : "", w->name) < 0)
			return -1;
	}
	return 0;
}

/* One name from several device ids of entry e: one shared resource r (warned). */
static int
shared_name_warning(struct ctx *c, size_t e, size_t r, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	char ids[160] = "", full[VGP_RESOURCE_LEN + 8], id[16];
	size_t off = 0, n_ids = 0;
	uint16_t seen_ids[16];

	for (size_t i = 0; i < plan->n; i++) {
		struct work *w = &c->w[i];
		bool dup = false;
		if (!plan_entry_match(&c->pt[e], w->d) ||
		    strcmp(plan_res_name(c, e, w, full, sizeof(full)), plan->res[r].name) != 0)
			continue;
		for (size_t k = 0; k < n_ids && k < ARRAY_SIZE(seen_ids) && !dup; k++)
			dup = seen_ids[k] == w->d->device;
		if (dup)
			continue;
		if (n_ids < ARRAY_SIZE(seen_ids))
			seen_ids[n_ids] = w->d->device;
		n_ids++;
		snprintf(id, sizeof(id), "%04x:%04x", w->d->vendor, w->d->device);
		vgp_list_append(ids, sizeof(ids), &off, id);
	}
	if (n_ids > 1)
		return plan_add_warning(plan, err, "%s: device ids %s share one resource", plan->res[r].name, ids);
	return 0;
}

/* Different names from entry e (its resources first_res..): one resource per name, the count applies to them
 * together (warned). */
static int
split_names_warning(struct ctx *c, size_t e, size_t first_res, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	char names[VGP_RESOURCE_LEN * 2] = "";
	size_t off = 0;

	if (plan->n_res - first_res <= 1)
		return 0;
	for (size_t r = first_res; r < plan->n_res; r++)
		vgp_list_append(names, sizeof(names), &off, plan->res[r].name);
	return plan_add_warning(plan, err, "%s: its GPUs have different names, served as %zu resources (%s); the count "
				"applies to them together", c->paths[e], plan->n_res - first_res, names);
}

/* Two resource names that give one KubeVirt variable (nvidia.com/L40S.VM, nvidia.com/l40s_vm): a VM asking for
 * both would get the devices of one only. */
static int
variable_clash(const struct ctx *c, vgp_error_t *err)
{
	const struct vgp_plan *plan = c->plan;

	for (size_t a = 0; a < plan->n_res; a++)
		for (size_t b = a + 1; b < plan->n_res; b++) {
			char ea[VGP_RESOURCE_LEN + 64], eb[VGP_RESOURCE_LEN + 64];
			if (strcmp(plan->res[a].name, plan->res[b].name) == 0 ||
			    vgp_env_name(plan->res[a].name, ea, sizeof(ea)) < 0 ||
			    vgp_env_name(plan->res[b].name, eb, sizeof(eb)) < 0 || strcmp(ea, eb) != 0)
				continue;
			return plan_config_error(c, err, "%s: resources %s and %s (%s) give the same KubeVirt variable "
						 "%s: set distinct resourceNames", c->paths[plan->res[b].entry],
						 plan->res[b].name, plan->res[a].name, c->paths[plan->res[a].entry], ea);
		}
	return 0;
}

int
plan_build_names(struct ctx *c, vgp_error_t *err)
{
	struct vgp_plan *plan = c->plan;
	_cleanup_free_ uint32_t *warned = NULL;
	size_t n_warned = 0;

	if (!vgp_prefix_valid(c->prefix))
		return vgp_make_usage_error(err, "resourcePrefix \"%s\" is not a valid DNS subdomain", c->prefix);
	warned = calloc(plan->n > 0 ? plan->n : 1, sizeof(*warned));
	if (warned == NULL)
		return plan_oom(err);
	for (size_t e = 0; e < c->n_pt; e++) {
		size_t first_res = plan->n_res;
		if (entry_names(c, e, warned, &n_warned, err) < 0)
			return -1;
		if (c->pt[e].resource_name == NULL)
			for (size_t r = first_res; r < plan->n_res; r++)
				if (shared_name_warning(c, e, r, err) < 0)
					return -1;
		if (split_names_warning(c, e, first_res, err) < 0)
			return -1;
	}
	/* two entries giving one resource name */
	for (size_t a = 0; a < plan->n_res; a++)
		for (size_t b = a + 1; b < plan->n_res; b++)
			if (plan->res[a].entry != plan->res[b].entry && strcmp(plan->res[a].name, plan->res[b].name) == 0)
				return plan_config_error(c, err, "%s and %s both give the resource %s: set a distinct "
							 "resourceName", c->paths[plan->res[a].entry],
							 c->paths[plan->res[b].entry], plan->res[a].name);
	return variable_clash(c, err);
}
