/* parallel.c — independent IOMMU groups move at once (engine-internal.h): a bounded pool of threads takes the
 * groups of a round in the plan's order, each group's results go to its own slot, and the slots are appended to the
 * report in the plan's order once every group finished. Groups share no device and the kernel's driver core locks
 * per device, so their sysfs writes do not wait for each other; what they share in the engine is behind e->mu.
 * A stuck unbind blocks only its own worker until its deadline (the child is abandoned, the worker goes on). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"

struct pool {
	struct eng *e;
	void (*fn)(struct eng *e, size_t i, void *arg);
	void *arg;
	struct vgp_engine_report *slots;
	size_t n;
	size_t next; /* the next item to take (under mu) */
	pthread_mutex_t mu;
};

size_t
eng_workers(const struct eng *e, size_t n)
{
	size_t w = e->o->parallel > 0 ? (size_t) e->o->parallel : n;
	return w < n ? w : n;
}

static void *
worker(void *p)
{
	struct pool *pl = p;
	for (;;) {
		size_t i;
		pthread_mutex_lock(&pl->mu);
		i = pl->next++;
		pthread_mutex_unlock(&pl->mu);
		if (i >= pl->n)
			break;
		eng_result_slot(&pl->slots[i]);
		pl->fn(pl->e, i, pl->arg);
		eng_result_slot(NULL);
	}
	return NULL;
}

/* Append every slot's results to the report, in index order. */
static void
merge(struct eng *e, struct vgp_engine_report *slots, size_t n)
{
	struct vgp_engine_report *rep = e->rep;
	size_t add = 0;

	for (size_t i = 0; i < n; i++)
		add += slots[i].n;
	struct vgp_gpu_result *nr = add ? realloc(rep->r, (rep->n + add) * sizeof *nr) : rep->r;
	for (size_t i = 0; i < n; i++) {
		/* the counts hold even when the results cannot be kept (out of memory): a failure or a stop is never lost */
		rep->n_failed += slots[i].n_failed;
		rep->n_stopped += slots[i].n_stopped;
		if (nr != NULL) {
			memcpy(&nr[rep->n], slots[i].r, slots[i].n * sizeof *nr);
			rep->n += slots[i].n;
		} else {
			for (size_t k = 0; k < slots[i].n; k++)
				free(slots[i].r[k].msg);
		}
		free(slots[i].r);
	}
	if (nr != NULL)
		rep->r = nr;
	else
		log_error("out of memory merging the results of %zu groups", n);
}

long
eng_run_parallel(struct eng *e, size_t n, void (*fn)(struct eng *e, size_t i, void *arg), void *arg)
{
	struct pool pl = { .e = e, .fn = fn, .arg = arg, .n = n };
	size_t nw = eng_workers(e, n), started = 0;
	pthread_t *th = NULL;
	long t0 = vgp_now_ms();

	if (nw <= 1 || (pl.slots = calloc(n, sizeof *pl.slots)) == NULL ||
	    (th = calloc(nw - 1, sizeof *th)) == NULL) {
		/* one at a time on this thread, in the plan's order: results straight into the report */
		free(pl.slots);
		for (size_t i = 0; i < n; i++)
			fn(e, i, arg);
		return vgp_now_ms() - t0;
	}
	pthread_mutex_init(&pl.mu, NULL);
	for (size_t k = 0; k + 1 < nw; k++) {
		int r = pthread_create(&th[k], NULL, worker, &pl);
		if (r != 0) {
			log_warn("cannot start a worker thread (%s): %zu group%s at a time", strerror(r), started + 1,
				 started ? "s" : "");
			break;
		}
		started++;
	}
	worker(&pl); /* this thread is a worker too */
	for (size_t k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	pthread_mutex_destroy(&pl.mu);
	merge(e, pl.slots, n);
	free(pl.slots);
	free(th);
	return vgp_now_ms() - t0;
}
