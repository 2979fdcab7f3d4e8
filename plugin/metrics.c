/* metrics.c — owns the metrics registry (GPU table, counters, histograms), its one mutex and its updates. Every
 * update takes the mutex for a few instructions (no I/O, no allocation except when a new label set or GPU first
 * appears); metrics_snapshot copies the tables under the lock (fixed-size records: one memcpy each) and
 * metrics_render.c formats the copy with the lock released, so a scrape never holds up the serve loop, the gRPC
 * thread or the registration thread. */
#include "metrics-internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_buckets[N_BUCKETS] = { VGP_METRICS_BUCKETS };

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
			while (b < N_BUCKETS && s > metrics_buckets[b])
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

struct reg
metrics_snapshot(bool *oom)
{
	struct reg s;

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
		*oom = true;
	}
	pthread_mutex_unlock(&mu);
	return s;
}
