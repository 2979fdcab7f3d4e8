/* metrics-internal.h — private to the metrics registry's files: metrics.c (the registry, its one mutex, its
 * updates and the snapshot taken under it) and metrics_render.c (the Prometheus text formatted from a snapshot).
 * Nothing else includes it; the public face is metrics.h. */
#ifndef VGP_METRICS_INTERNAL_H
#define VGP_METRICS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "metrics.h"
#include "names.h"
#include "pci.h"
#include "util.h"

#define MODEL_LEN 128
#define LABEL_LEN 64

/* The histograms' upper bounds (metrics.h), defined in metrics.c: it counts an observation into a bucket,
 * metrics_render.c writes the le labels. */
#define N_BUCKETS (sizeof((const double[]){ VGP_METRICS_BUCKETS }) / sizeof(double))
extern const double metrics_buckets[N_BUCKETS];

struct gpu {
	char addr[VGP_ADDR_LEN];
	char resource[VGP_RESOURCE_LEN];
	char model[MODEL_LEN];
	char driver[VGP_DRIVER_LEN];
	int numa, group;
	enum vgp_gpu_kind kind;
	int health;              /* -1 unknown, 0 unhealthy, 1 healthy */
	bool draining;
};

/* The labelled counter families, in rendering order. */
enum fam {
	F_BIND_FAIL, F_RELEASE_FAIL, F_ALLOC, F_ALLOC_ERR, F_HEALTH, F_REG, F_RELOAD, F_N,
};

struct ctr {
	enum fam fam;
	char l1[VGP_RESOURCE_LEN];
	char l2[LABEL_LEN];
	unsigned long long v;
};

struct hist {
	bool release;
	char resource[VGP_RESOURCE_LEN];
	unsigned long long bucket[N_BUCKETS]; /* not cumulative: the bucket an observation fell in */
	unsigned long long count;
	double sum;
};

struct reg {
	struct gpu *gpus;
	size_t n_gpus, cap_gpus;
	struct ctr *ctrs;
	size_t n_ctrs, cap_ctrs;
	struct hist *hists;
	size_t n_hists, cap_hists;
	unsigned long long kubelet_restarts;
	bool kubelet_seen;
	ino_t kubelet_ino;
	struct timespec kubelet_ctime;
	double last_reconcile; /* 0 = never */
	char version[LABEL_LEN];
};

/* metrics.c: a copy of the registry for rendering, taken under the lock: the scalars and the three tables
 * (fixed-size records, one memcpy each, in arrays of its own). *oom is set when a copy cannot be allocated; the
 * caller frees the arrays in either case. */
struct reg metrics_snapshot(bool *oom);

#endif
