/* metrics.h — the process's Prometheus metrics: one registry (a singleton, so every thread can report an event with
 * one call and no handle), updated under one short mutex and rendered from a snapshot in the text exposition format
 * 0.0.4. No I/O: metrics_http.c serves the text, the unit tests read it directly.
 *
 * Families (names follow the Prometheus naming conventions; units in the name, counters end in _total):
 *   vfio_gpu_plugin_gpus{resource,state}                       gauge, GPUs per state (see enum vgp_gpu_kind)
 *   vfio_gpu_plugin_gpu_info{address,resource,model,numa,iommu_group,driver}   gauge, 1 per GPU of the plan
 *   vfio_gpu_plugin_bind_seconds{resource}                     histogram, one observation per IOMMU group bound
 *   vfio_gpu_plugin_release_seconds{resource}                  histogram, one observation per group released
 *   vfio_gpu_plugin_bind_failures_total{resource,reason}       counter (rolled_back, stuck, skipped_busy, failed)
 *   vfio_gpu_plugin_release_failures_total{resource,reason}    counter (refused, failed)
 *   vfio_gpu_plugin_allocations_total{resource}                counter, Allocate calls answered OK
 *   vfio_gpu_plugin_allocate_errors_total{resource,code}       counter, by gRPC status (INVALID_ARGUMENT, ...)
 *   vfio_gpu_plugin_health_transitions_total{resource,to}      counter, to = healthy | unhealthy
 *   vfio_gpu_plugin_registrations_total{resource,result}       counter, result = success | failure
 *   vfio_gpu_plugin_kubelet_restarts_total                     counter, a new kubelet.sock after the first
 *   vfio_gpu_plugin_config_reloads_total{result}               counter, result = success | failure
 *   vfio_gpu_plugin_last_reconcile_timestamp_seconds           gauge, wall clock of the last reconcile pass
 *   vfio_gpu_plugin_build_info{version}                        gauge, 1 */
#ifndef VGP_METRICS_H
#define VGP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* What a GPU of the plan is, for vfio_gpu_plugin_gpus{state}. A passthrough GPU is also counted as healthy or
 * unhealthy (once serve's health watcher has judged it) and as draining while it is being drained. */
enum vgp_gpu_kind {
	VGP_GPU_PASSTHROUGH, /* on vfio-pci and served */
	VGP_GPU_STUCK,       /* its unbind timed out: a reboot is needed */
	VGP_GPU_INELIGIBLE,  /* cannot be passed through (plan's reason) */
	VGP_GPU_KEPT,        /* stays on its driver for containers */
};

/* The values of the state label, in rendering order. */
#define VGP_GPU_STATES "passthrough", "healthy", "unhealthy", "draining", "stuck", "ineligible", "kept"

/* Histogram buckets (seconds) of bind_seconds and release_seconds: a bind takes ~0.1 s when the driver lets go at
 * once, up to --unbind-timeout (10 s) and a busy wait beyond. */
#define VGP_METRICS_BUCKETS 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120

/* Forget everything (tests; serve starts with an empty registry). build_info's version stays. */
void vgp_metrics_reset(void);
void vgp_metrics_set_version(const char *version);

/* Add or replace the GPU at addr (strings copied; NULL = ""); numa/group -1 = unknown. Its health is unknown until
 * vgp_metrics_gpu_health(). Returns 0, -1 when out of memory. */
int vgp_metrics_gpu_set(const char *addr, const char *resource, const char *model, int numa, int group,
			const char *driver, enum vgp_gpu_kind kind);
/* The health of a GPU: counts health_transitions_total{resource,to} when it had a known health before and it
 * changed. Unknown addresses are ignored. */
void vgp_metrics_gpu_health(const char *addr, bool healthy);
/* Live re-split: the GPU is being drained (no new allocations) / no longer. */
void vgp_metrics_gpu_draining(const char *addr, bool draining);
/* Drop a GPU (a live re-split gave it back). */
void vgp_metrics_gpu_remove(const char *addr);

/* A bind or release of one GPU's IOMMU group: what the engine report says (outcome name as vgp_outcome_name()
 * gives it: "bound", "rolled-back", ... and milliseconds). Outcomes that moved nothing ("passthrough") are not
 * observed. */
void vgp_metrics_engine_result(bool release, const char *resource, const char *outcome, long ms);

/* A served resource: its allocations, health transitions and registrations exist from now on at 0. */
void vgp_metrics_resource(const char *resource);
void vgp_metrics_allocation(const char *resource);
void vgp_metrics_allocate_error(const char *resource, const char *code);
void vgp_metrics_registration(const char *resource, bool ok);
/* kubelet.sock as serve sees it now (ino 0 = absent): a socket that differs from the last one seen counts as a
 * kubelet restart, except the first one. */
void vgp_metrics_kubelet_sock(ino_t ino, const struct timespec *ctime);
/* The live re-split's config re-read (or a SIGHUP re-read). */
void vgp_metrics_config_reload(bool ok);
/* A reconcile pass finished now. */
void vgp_metrics_reconciled(void);

/* The exposition text (malloc'ed, NUL-terminated, *len its length), rendered from a snapshot taken under the lock.
 * NULL when out of memory. */
char *vgp_metrics_render(size_t *len);

/* Is s a valid metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]*, no ':' for labels)? Pure. */
bool vgp_metrics_name_valid(const char *s, bool label);

#endif
