/* metrics.c — owns the metrics registry (GPU table, counters, histograms) and its rendering in the Prometheus text
 * format 0.0.4. Every update takes the one mutex for a few instructions (no I/O, no allocation except when a new
 * label set or GPU first appears); rendering copies the tables under the lock (fixed-size records: one memcpy
 * each) and formats the copy with the lock released, so a scrape never holds up the serve loop, the gRPC thread
 * or the registration thread. */
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "pci.h"
#include "util.h"

#define MODEL_LEN 128
#define LABEL_LEN 64

static const double buckets[] = { VGP_METRICS_BUCKETS };
#define N_BUCKETS ARRAY_SIZE(buckets)

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

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg R = { .version = "unknown" };

static void
copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

/* Grow *arr (elements of size sz) to hold one more; mutex held. Returns 0 or -1. */
static int
grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, nc * sz);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = nc;
	return 0;
}

void
vgp_metrics_reset(void)
{
	pthread_mutex_lock(&mu);
	free(R.gpus);
	free(R.ctrs);
	free(R.hists);
	char v[LABEL_LEN];
	memcpy(v, R.version, sizeof v);
	memset(&R, 0, sizeof R);
	memcpy(R.version, v, sizeof v);
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_set_version(const char *version)
{
	pthread_mutex_lock(&mu);
	copy(R.version, sizeof R.version, version);
	pthread_mutex_unlock(&mu);
}

static struct gpu *
find_gpu(const char *addr)
{
	for (size_t i = 0; i < R.n_gpus; i++)
		if (strcmp(R.gpus[i].addr, addr) == 0)
			return &R.gpus[i];
	return NULL;
}

int
vgp_metrics_gpu_set(const char *addr, const char *resource, const char *model, int numa, int group,
		    const char *driver, enum vgp_gpu_kind kind)
{
	int ret = 0;
	pthread_mutex_lock(&mu);
	struct gpu *g = find_gpu(addr);
	if (g == NULL) {
		if (grow((void **) &R.gpus, &R.cap_gpus, R.n_gpus, sizeof *R.gpus) < 0) {
			ret = -1;
			goto out;
		}
		g = &R.gpus[R.n_gpus++];
	}
	memset(g, 0, sizeof *g);
	copy(g->addr, sizeof g->addr, addr);
	copy(g->resource, sizeof g->resource, resource);
	copy(g->model, sizeof g->model, model);
	copy(g->driver, sizeof g->driver, driver);
	g->numa = numa;
	g->group = group;
	g->kind = kind;
	g->health = -1;
out:
	pthread_mutex_unlock(&mu);
	return ret;
}

/* The counter of family f with labels (l1, l2), created at 0 when new; mutex held. NULL when out of memory. */
static struct ctr *
counter(enum fam f, const char *l1, const char *l2)
{
	for (size_t i = 0; i < R.n_ctrs; i++) {
		struct ctr *c = &R.ctrs[i];
		if (c->fam == f && strcmp(c->l1, l1 ? l1 : "") == 0 && strcmp(c->l2, l2 ? l2 : "") == 0)
			return c;
	}
	if (grow((void **) &R.ctrs, &R.cap_ctrs, R.n_ctrs, sizeof *R.ctrs) < 0)
		return NULL;
	struct ctr *c = &R.ctrs[R.n_ctrs++];
	memset(c, 0, sizeof *c);
	c->fam = f;
	copy(c->l1, sizeof c->l1, l1);
	copy(c->l2, sizeof c->l2, l2);
	return c;
}

static void
count(enum fam f, const char *l1, const char *l2)
{
	pthread_mutex_lock(&mu);
	struct ctr *c = counter(f, l1, l2);
	if (c != NULL)
		c->v++;
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_gpu_health(const char *addr, bool healthy)
{
	pthread_mutex_lock(&mu);
	struct gpu *g = find_gpu(addr);
	if (g != NULL) {
		if (g->health >= 0 && g->health != (int) healthy) {
			struct ctr *c = counter(F_HEALTH, g->resource, healthy ? "healthy" : "unhealthy");
			if (c != NULL)
				c->v++;
		}
		g->health = healthy;
	}
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_gpu_draining(const char *addr, bool draining)
{
	pthread_mutex_lock(&mu);
	struct gpu *g = find_gpu(addr);
	if (g != NULL)
		g->draining = draining;
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_gpu_remove(const char *addr)
{
	pthread_mutex_lock(&mu);
	struct gpu *g = find_gpu(addr);
	if (g != NULL) {
		size_t i = (size_t) (g - R.gpus);
		memmove(g, g + 1, (R.n_gpus - i - 1) * sizeof *g);
		R.n_gpus--;
	}
	pthread_mutex_unlock(&mu);
}

/* "rolled-back" -> "rolled_back": label values in the style of the metric names. */
static void
reason_of(const char *outcome, char *buf, size_t len)
{
	copy(buf, len, outcome);
	for (char *p = buf; *p; p++)
		if (*p == '-')
			*p = '_';
}

void
vgp_metrics_engine_result(bool release, const char *resource, const char *outcome, long ms)
{
	char reason[LABEL_LEN];
	bool ok = strcmp(outcome, release ? "released" : "bound") == 0;
	/* what moved nothing is not a bind or release duration (already on vfio-pci, skipped while busy, refused) */
	bool observe = ok || strcmp(outcome, "rolled-back") == 0 || strcmp(outcome, "stuck") == 0 ||
		       strcmp(outcome, "failed") == 0;

	if (strcmp(outcome, "passthrough") == 0)
		return;
	reason_of(outcome, reason, sizeof reason);
	pthread_mutex_lock(&mu);
	if (!ok) {
		struct ctr *c = counter(release ? F_RELEASE_FAIL : F_BIND_FAIL, resource, reason);
		if (c != NULL)
			c->v++;
	}
	if (observe) {
		struct hist *h = NULL;
		for (size_t i = 0; i < R.n_hists && h == NULL; i++)
			if (R.hists[i].release == release && strcmp(R.hists[i].resource, resource ? resource : "") == 0)
				h = &R.hists[i];
		if (h == NULL && grow((void **) &R.hists, &R.cap_hists, R.n_hists, sizeof *R.hists) == 0) {
			h = &R.hists[R.n_hists++];
			memset(h, 0, sizeof *h);
			h->release = release;
			copy(h->resource, sizeof h->resource, resource);
		}
		if (h != NULL) {
			double s = ms > 0 ? (double) ms / 1000.0 : 0.0;
			size_t b = 0;
			while (b < N_BUCKETS && s > buckets[b])
				b++;
			if (b < N_BUCKETS)
				h->bucket[b]++;
			h->count++;
			h->sum += s;
		}
	}
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_resource(const char *resource)
{
	pthread_mutex_lock(&mu);
	counter(F_ALLOC, resource, NULL);
	counter(F_HEALTH, resource, "healthy");
	counter(F_HEALTH, resource, "unhealthy");
	counter(F_REG, resource, "success");
	counter(F_REG, resource, "failure");
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_allocation(const char *resource)
{
	count(F_ALLOC, resource, NULL);
}

void
vgp_metrics_allocate_error(const char *resource, const char *code)
{
	count(F_ALLOC_ERR, resource, code);
}

void
vgp_metrics_registration(const char *resource, bool ok)
{
	count(F_REG, resource, ok ? "success" : "failure");
}

void
vgp_metrics_kubelet_sock(ino_t ino, const struct timespec *ctime)
{
	if (ino == 0)
		return;
	pthread_mutex_lock(&mu);
	bool same = R.kubelet_seen && R.kubelet_ino == ino && R.kubelet_ctime.tv_sec == ctime->tv_sec &&
		    R.kubelet_ctime.tv_nsec == ctime->tv_nsec;
	if (R.kubelet_seen && !same)
		R.kubelet_restarts++;
	R.kubelet_seen = true;
	R.kubelet_ino = ino;
	R.kubelet_ctime = *ctime;
	pthread_mutex_unlock(&mu);
}

void
vgp_metrics_config_reload(bool ok)
{
	count(F_RELOAD, ok ? "success" : "failure", NULL);
}

void
vgp_metrics_reconciled(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&mu);
	R.last_reconcile = (double) now.tv_sec + (double) now.tv_nsec / 1e9;
	pthread_mutex_unlock(&mu);
}

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
			put(o, ",le=\"%g\"} %llu\n", buckets[b], cum);
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

	/* the snapshot: fixed-size records, copied whole under the lock */
	pthread_mutex_lock(&mu);
	s = R;
	s.gpus = malloc((R.n_gpus ? R.n_gpus : 1) * sizeof *R.gpus);
	s.ctrs = malloc((R.n_ctrs ? R.n_ctrs : 1) * sizeof *R.ctrs);
	s.hists = malloc((R.n_hists ? R.n_hists : 1) * sizeof *R.hists);
	if (s.gpus != NULL && s.ctrs != NULL && s.hists != NULL) {
		if (R.n_gpus > 0) /* the arrays are NULL until their first element */
			memcpy(s.gpus, R.gpus, R.n_gpus * sizeof *R.gpus);
		if (R.n_ctrs > 0)
			memcpy(s.ctrs, R.ctrs, R.n_ctrs * sizeof *R.ctrs);
		if (R.n_hists > 0)
			memcpy(s.hists, R.hists, R.n_hists * sizeof *R.hists);
	} else {
		o.oom = true;
	}
	pthread_mutex_unlock(&mu);

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
