/* metrics_render.c — the metrics registry rendered in the Prometheus text format 0.0.4 (vgp_metrics_render): the
 * counter families' names and help texts, label values escaped, the GPU states and info, the histograms, the
 * counters. It formats a snapshot of the registry (metrics_snapshot, metrics.c) with the lock released. Also the
 * format's name rule (vgp_metrics_name_valid). No I/O. */
#include "metrics-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The counter families of enum fam (metrics-internal.h): name, help text, label names. */
static const struct {
	const char *name, *help, *l1, *l2; /* l2 NULL: one label; l1 NULL: none */
} fams[F_N] = {
	[F_BIND_FAIL] = { "vfio_gpu_plugin_bind_failures_total",
			  "GPU groups whose bind to vfio-pci did not succeed, by reason.", "resource", "reason" },
	[F_RELEASE_FAIL] = { "vfio_gpu_plugin_release_failures_total",
			     "GPU groups whose release to the original driver did not succeed, by reason.", "resource",
			     "reason" },
	[F_ALLOC] = { "vfio_gpu_plugin_allocations_total", "Allocate calls answered with devices.", "resource",
		      NULL },
	[F_ALLOC_ERR] = { "vfio_gpu_plugin_allocate_errors_total", "Allocate calls refused, by gRPC status code.",
			  "resource", "code" },
	[F_HEALTH] = { "vfio_gpu_plugin_health_transitions_total",
		       "Changes of a served GPU's health, by the state it changed to.", "resource", "to" },
	[F_REG] = { "vfio_gpu_plugin_registrations_total", "Register calls to kubelet, by result.", "resource",
		    "result" },
	[F_RELOAD] = { "vfio_gpu_plugin_config_reloads_total", "Configuration re-reads, by result.", "result",
		       NULL },
};

bool
vgp_metrics_name_valid(const char *s, bool label)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p; p++) {
		bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
		bool digit = *p >= '0' && *p <= '9';
		if (!alpha && !(*p == ':' && !label) && !(digit && p != s))
			return false;
	}
	return true;
}

/* ---- rendering ---- */

struct out {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3)))
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (o->oom)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = true;
			return;
		}
		if ((size_t) n < o->cap - o->len) {
			o->len += (size_t) n;
			return;
		}
		size_t nc = (o->cap + (size_t) n + 1) * 2;
		char *p = realloc(o->buf, nc);
		if (p == NULL) {
			o->oom = true;
			return;
		}
		o->buf = p;
		o->cap = nc;
	}
}

/* A label value escaped as the text format wants (\\, \", \n). */
static void
put_value(struct out *o, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\')
			put(o, "\\\\");
		else if (*p == '"')
			put(o, "\\\"");
		else if (*p == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *p);
	}
}

static void
put_label(struct out *o, bool first, const char *name, const char *value)
{
	put(o, "%s%s=\"", first ? "" : ",", name);
	put_value(o, value);
	put(o, "\"");
}

static void
header(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The resources to show GPU states for: every resource of a GPU, in first-seen order ("" for GPUs without one). */
static size_t
resources_of(const struct gpu *g, size_t n, const char **out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < k && !seen; j++)
			seen = strcmp(out[j], g[i].resource) == 0;
		if (!seen)
			out[k++] = g[i].resource;
	}
	return k;
}

static bool
in_state(const struct gpu *g, size_t state)
{
	switch (state) {
	case 0: return g->kind == VGP_GPU_PASSTHROUGH;
	case 1: return g->kind == VGP_GPU_PASSTHROUGH && g->health == 1;
	case 2: return g->kind == VGP_GPU_PASSTHROUGH && g->health == 0;
	case 3: return g->kind == VGP_GPU_PASSTHROUGH && g->draining;
	case 4: return g->kind == VGP_GPU_STUCK;
	case 5: return g->kind == VGP_GPU_INELIGIBLE;
	default: return g->kind == VGP_GPU_KEPT;
	}
}

static void
render_gpus(struct out *o, const struct gpu *g, size_t n)
{
	static const char *const states[] = { VGP_GPU_STATES };
	_cleanup_free_ const char **res = calloc(n ? n : 1, sizeof *res);
	size_t n_res;

	if (res == NULL) {
		o->oom = true;
		return;
	}
	n_res = resources_of(g, n, res);
	header(o, "vfio_gpu_plugin_gpus", "gauge",
	       "GPUs of the node by resource and state (healthy, unhealthy and draining are subsets of passthrough).");
	for (size_t r = 0; r < n_res; r++)
		for (size_t s = 0; s < ARRAY_SIZE(states); s++) {
			size_t c = 0;
			for (size_t i = 0; i < n; i++)
				c += strcmp(g[i].resource, res[r]) == 0 && in_state(&g[i], s);
			put(o, "vfio_gpu_plugin_gpus{");
			put_label(o, true, "resource", res[r]);
			put_label(o, false, "state", states[s]);
			put(o, "} %zu\n", c);
		}
	header(o, "vfio_gpu_plugin_gpu_info", "gauge", "One series per GPU of the node's plan, value 1.");
	for (size_t i = 0; i < n; i++) {
		char numa[16], group[16];
		snprintf(numa, sizeof numa, "%d", g[i].numa);
		snprintf(group, sizeof group, "%d", g[i].group);
		put(o, "vfio_gpu_plugin_gpu_info{");
		put_label(o, true, "address", g[i].addr);
		put_label(o, false, "resource", g[i].resource);
		put_label(o, false, "model", g[i].model);
		put_label(o, false, "numa", g[i].numa >= 0 ? numa : "");
		put_label(o, false, "iommu_group", g[i].group >= 0 ? group : "");
		put_label(o, false, "driver", g[i].driver);
		put(o, "} 1\n");
	}
}

static void
render_hists(struct out *o, const struct hist *h, size_t n, bool release)
{
	const char *name = release ? "vfio_gpu_plugin_release_seconds" : "vfio_gpu_plugin_bind_seconds";
	header(o, name, "histogram",
	       release ? "Time to give one GPU's IOMMU group back to its original driver."
		       : "Time to move one GPU's IOMMU group to vfio-pci (including rolled-back and stuck attempts).");
	for (size_t i = 0; i < n; i++) {
		unsigned long long cum = 0;
		if (h[i].release != release)
			continue;
		for (size_t b = 0; b < N_BUCKETS; b++) {
			cum += h[i].bucket[b];
			put(o, "%s_bucket{", name);
			put_label(o, true, "resource", h[i].resource);
			put(o, ",le=\"%g\"} %llu\n", metrics_buckets[b], cum);
		}
		put(o, "%s_bucket{", name);
		put_label(o, true, "resource", h[i].resource);
		put(o, ",le=\"+Inf\"} %llu\n", h[i].count);
		put(o, "%s_sum{", name);
		put_label(o, true, "resource", h[i].resource);
		put(o, "} %.17g\n", h[i].sum);
		put(o, "%s_count{", name);
		put_label(o, true, "resource", h[i].resource);
		put(o, "} %llu\n", h[i].count);
	}
}

static void
render_counters(struct out *o, const struct ctr *c, size_t n)
{
	for (int f = 0; f < F_N; f++) {
		header(o, fams[f].name, "counter", fams[f].help);
		if (f == F_RELOAD) { /* both results always exist, so rate() and increase() see the first one */
			static const char *const results[] = { "success", "failure" };
			for (size_t r = 0; r < ARRAY_SIZE(results); r++) {
				unsigned long long v = 0;
				for (size_t i = 0; i < n; i++)
					if (c[i].fam == F_RELOAD && strcmp(c[i].l1, results[r]) == 0)
						v = c[i].v;
				put(o, "%s{result=\"%s\"} %llu\n", fams[f].name, results[r], v);
			}
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			if (c[i].fam != (enum fam) f)
				continue;
			put(o, "%s{", fams[f].name);
			put_label(o, true, fams[f].l1, c[i].l1);
			if (fams[f].l2 != NULL)
				put_label(o, false, fams[f].l2, c[i].l2);
			put(o, "} %llu\n", c[i].v);
		}
	}
}

char *
vgp_metrics_render(size_t *len)
{
	struct reg s;
	struct out o = { 0 };

	/* the snapshot, copied under the lock (metrics.c) */
	s = metrics_snapshot(&o.oom);

	if (!o.oom) {
		render_gpus(&o, s.gpus, s.n_gpus);
		render_hists(&o, s.hists, s.n_hists, false);
		render_hists(&o, s.hists, s.n_hists, true);
		render_counters(&o, s.ctrs, s.n_ctrs);
		header(&o, "vfio_gpu_plugin_kubelet_restarts_total", "counter",
		       "kubelet restarts seen (a new kubelet.sock after the first).");
		put(&o, "vfio_gpu_plugin_kubelet_restarts_total %llu\n", s.kubelet_restarts);
		header(&o, "vfio_gpu_plugin_last_reconcile_timestamp_seconds", "gauge",
		       "Unix time of the last periodic re-check of every served GPU (0 before the first).");
		put(&o, "vfio_gpu_plugin_last_reconcile_timestamp_seconds %.3f\n", s.last_reconcile);
		header(&o, "vfio_gpu_plugin_build_info", "gauge", "The plugin's version, value 1.");
		put(&o, "vfio_gpu_plugin_build_info{");
		put_label(&o, true, "version", s.version);
		put(&o, "} 1\n");
	}
	free(s.gpus);
	free(s.ctrs);
	free(s.hists);
	if (o.oom) {
		free(o.buf);
		errno = ENOMEM;
		return NULL;
	}
	*len = o.len;
	return o.buf;
}
