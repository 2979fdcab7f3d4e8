/* stop.c — deferred stop signals (stop.h): the one set of stop signals, its mask and a look at what is pending.
 * Owns stop.h. */
#include "stop.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

static bool armed;

void
vgp_stop_between_groups(void)
{
	armed = true;
}

int
vgp_stop_requested(void)
{
	return armed ? vgp_stop_pending() : 0;
}

void
vgp_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

void
vgp_stop_defer(void)
{
	sigset_t mask;

	vgp_stop_signals(&mask);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
}

int
vgp_stop_pending(void)
{
	sigset_t p;

	if (sigpending(&p) < 0)
		return 0;
	if (sigismember(&p, SIGTERM))
		return SIGTERM;
	if (sigismember(&p, SIGINT))
		return SIGINT;
	return sigismember(&p, SIGHUP) ? SIGHUP : 0;
}

const char *
vgp_stop_name(int sig)
{
	return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "a signal";
}
