/* metrics_http.h — the /metrics endpoint: libmicrohttpd serving vgp_metrics_render() from its own thread, with a
 * connection limit, a per-IP limit, a per-connection timeout and a request memory limit, so a slow or hostile
 * scraper cannot hold up serve's loop, the gRPC thread or the registration thread. */
#ifndef VGP_METRICS_HTTP_H
#define VGP_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The default --metrics-address: every address, port 10140 (see README "Monitoring": chosen outside the Prometheus
 * project's default port allocations list). */
#define VGP_METRICS_DEFAULT_ADDRESS ":10140"
#define VGP_METRICS_MAX_CONNECTIONS 16    /* all scrapers together */
#define VGP_METRICS_MAX_PER_IP 4          /* one address */
#define VGP_METRICS_TIMEOUT_S 10          /* an idle or slow connection is closed after this */
#define VGP_METRICS_REQUEST_MEMORY 16384  /* bytes for one connection's request (headers): larger ones get 431 */

struct vgp_metrics_http;

/* Parse --metrics-address: "off" (returns 1: disabled), ":PORT" (every address), "HOST:PORT", "[V6]:PORT". host
 * gets "" for every address. Returns 0, or -1 with a usage error naming the value. Pure. */
int vgp_metrics_address_parse(const char *s, char *host, size_t hostlen, int *port, vgp_error_t *err);

/* Start serving on address (as parsed above; "off": *out = NULL, returns 0). Errors: a bad address, the port in use,
 * libmicrohttpd failing to start. */
int vgp_metrics_http_start(struct vgp_metrics_http **out, const char *address, vgp_error_t *err);
/* The port actually bound (":0" picks a free one). */
int vgp_metrics_http_port(const struct vgp_metrics_http *h);
/* Stop the thread, close every connection, free. NULL ok. */
void vgp_metrics_http_stop(struct vgp_metrics_http *h);

#endif
