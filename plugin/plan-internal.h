/* plan-internal.h — private to the planner's files: plan.c (rows, eligibility, the rest, the entry point),
 * plan_names.c (step 3: resource names) and plan_select.c (step 4: selection per entry). Pure, like them. */
#ifndef VGP_PLAN_INTERNAL_H
#define VGP_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "plan.h"

#define REASON_LEN sizeof(((struct vgp_plan_gpu *) 0)->reason)

enum tier { T_NONE, T_VFIO, T_STICKY, T_CMDLINE, T_IDLE, T_BUSY };

struct work {
	const struct vgp_pci_dev *d;
	bool vfio;
	bool eligible;
	bool sticky;
	bool cmdline;
	int first_entry;          /* first entry whose match selects this row, -1 = none */
	int claimed;              /* entry that selected it, -1 = none */
	char name[VGP_RESOURCE_LEN]; /* the NAME derived from the model */
	bool repaired;
};

struct ctx {
	const struct vgp_plan_input *in;
	const struct vgp_inventory *inv;
	const struct vgp_passthrough *pt;
	size_t n_pt;
	const char *prefix;
	enum vgp_numa_policy numa;
	enum vgp_busy_policy busy;
	struct vgp_plan *plan;
	struct work *w;           /* parallel to plan->gpus */
	char **paths;             /* json_path of each entry (owned) */
};

/* plan.c: helpers shared by the steps */
void plan_setf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int plan_oom(vgp_error_t *err);
int plan_add_warning(struct vgp_plan *plan, vgp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int plan_config_error(const struct ctx *c, vgp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool plan_entry_match(const struct vgp_passthrough *e, const struct vgp_pci_dev *d);
int plan_numa_cmp(int a, int b);
void plan_sort_by_addr(const struct vgp_inventory *inv, size_t *idx, size_t n);

/* plan_names.c: step 3 */
const char *plan_res_name(const struct ctx *c, size_t e, const struct work *w, char *buf, size_t len);
struct vgp_plan_resource *plan_find_res(struct vgp_plan *plan, int e, const char *name);
int plan_build_names(struct ctx *c, vgp_error_t *err);

/* plan_select.c: step 4 */
void plan_count_text(const struct ctx *c, size_t e, char *buf, size_t len);
int plan_select_entry(struct ctx *c, size_t e, vgp_error_t *err);

#endif
