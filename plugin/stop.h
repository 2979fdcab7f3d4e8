/* stop.h — stop signals deferred while devices move: bind, release and serve block SIGINT/SIGTERM/SIGHUP during
 * their moves. For `bind` and `release` the engine asks before each group whether one is pending: the groups in
 * progress finish (or roll back) and no other starts. `serve` finishes its whole bind, then its loop reads the
 * signal. */
#ifndef VGP_STOP_H
#define VGP_STOP_H

#include <signal.h>

/* The stop signals: SIGTERM, SIGINT, SIGHUP (serve's signalfd reads the same set). */
void vgp_stop_signals(sigset_t *set);
/* Block the stop signals in the calling thread and the threads it starts after (they stay pending until read or
 * unblocked). Idempotent. */
void vgp_stop_defer(void);
/* The pending stop signal (SIGTERM first, then SIGINT, SIGHUP), 0 when none. Consumes nothing. */
int vgp_stop_pending(void);
/* bind and release arm the engine's stop between groups (serve does not: its bind finishes, then the serve loop
 * stops). */
void vgp_stop_between_groups(void);
/* The pending stop signal when armed, else 0: the engine asks before each group. */
int vgp_stop_requested(void);
/* "SIGTERM", "SIGINT", "SIGHUP". */
const char *vgp_stop_name(int sig);

#endif
