/* stop.h — stop signals deferred while devices move: bind and serve block SIGINT/SIGTERM/SIGHUP during their moves;
 * the bind engine asks between groups whether one is pending, finishes (or rolls back) the group in progress and
 * starts no other. */
#ifndef VGP_STOP_H
#define VGP_STOP_H

/* Block SIGINT, SIGTERM and SIGHUP in the calling thread (they stay pending until read or unblocked). */
void vgp_stop_defer(void);
/* The pending stop signal (SIGTERM first, then SIGINT, SIGHUP), 0 when none. Consumes nothing. */
int vgp_stop_pending(void);
/* "SIGTERM", "SIGINT", "SIGHUP". */
const char *vgp_stop_name(int sig);

#endif
