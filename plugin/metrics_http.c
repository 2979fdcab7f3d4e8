/* metrics_http.c — owns the libmicrohttpd daemon of /metrics (see metrics_http.h). One internal polling thread
 * (epoll or poll, whatever libmicrohttpd picks) serves every connection without blocking on any one of them; the
 * limits below are libmicrohttpd's own: it refuses connections past the total or per-IP limit, closes a connection
 * idle for VGP_METRICS_TIMEOUT_S (a slowloris sender included), and answers 431 to headers larger than the
 * connection's memory. Rendering takes the registry's lock only to copy it (metrics.c). */
#include "metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

struct vgp_metrics_http {
	struct MHD_Daemon *d;
	int port;
};

int
vgp_metrics_address_parse(const char *s, char *host, size_t hostlen, int *port, vgp_error_t *err)
{
	const char *colon, *p;
	char *end = NULL;
	long v;
	size_t hl;

	if (strcmp(s, "off") == 0)
		return 1;
	colon = strrchr(s, ':');
	if (colon == NULL)
		return vgp_make_usage_error(err, "--metrics-address '%s': expected [HOST]:PORT or off", s);
	p = s;
	hl = (size_t) (colon - s);
	if (s[0] == '[') { /* [v6]:port */
		if (hl < 2 || s[hl - 1] != ']')
			return vgp_make_usage_error(err, "--metrics-address '%s': expected [ADDRESS]:PORT for IPv6", s);
		p = s + 1;
		hl -= 2;
	} else if (memchr(s, ':', hl) != NULL) {
		return vgp_make_usage_error(err, "--metrics-address '%s': an IPv6 address goes in brackets, "
						 "[ADDRESS]:PORT", s);
	}
	if (hl >= hostlen)
		return vgp_make_usage_error(err, "--metrics-address '%s': host too long", s);
	memcpy(host, p, hl);
	host[hl] = '\0';
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || v < 0 || v > 65535)
		return vgp_make_usage_error(err, "--metrics-address '%s': port must be 0-65535", s);
	*port = (int) v;
	return 0;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	(void) cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("metrics http: %s", buf);
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t len, bool owned)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (owned)
		r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
	else
		r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
       const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static char index_page[] = "<html><head><title>vfio-gpu-plugin</title></head><body>"
				   "<a href=\"/metrics\">/metrics</a></body></html>\n";
	static char not_found[] = "not found: try /metrics\n";
	static char not_allowed[] = "only GET and HEAD\n";
	static const char *const text = "text/plain; charset=utf-8";
	(void) cls, (void) version, (void) upload_data;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		/* answered before any body is read; libmicrohttpd then closes the connection */
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, not_allowed, sizeof not_allowed - 1, false);
	if (*con_cls == NULL) { /* the headers are in: answer on the next call, after any body */
		*con_cls = (void *) 1;
		return MHD_YES;
	}
	if (*upload_data_size != 0) { /* a GET with a body: discard it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") == 0) {
		size_t len = 0;
		char *body = vgp_metrics_render(&len);
		if (body == NULL)
			return MHD_NO;
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, true);
	}
	if (strcmp(url, "/") == 0)
		return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", index_page, sizeof index_page - 1, false);
	return reply(c, MHD_HTTP_NOT_FOUND, text, not_found, sizeof not_found - 1, false);
}

static struct MHD_Daemon *
start(unsigned flags, int port, const struct sockaddr *sa)
{
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_CONNECTION_LIMIT, VGP_METRICS_MAX_CONNECTIONS, NULL },
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, VGP_METRICS_MAX_PER_IP, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, VGP_METRICS_TIMEOUT_S, NULL },
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, VGP_METRICS_REQUEST_MEMORY, NULL },
		{ MHD_OPTION_LISTEN_BACKLOG_SIZE, 16, NULL },
		{ sa != NULL ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, 0, (void *) sa },
		{ MHD_OPTION_END, 0, NULL },
	};
	return MHD_start_daemon(flags | MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
				(uint16_t) port, NULL, NULL, handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

int
vgp_metrics_http_start(struct vgp_metrics_http **out, const char *address, vgp_error_t *err)
{
	char host[256];
	int port, r;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	sigset_t pipe_mask, old;
	struct vgp_metrics_http *h;

	*out = NULL;
	r = vgp_metrics_address_parse(address, host, sizeof host, &port, err);
	if (r != 0)
		return r > 0 ? 0 : -1;
	if (host[0] != '\0') {
		int e = getaddrinfo(host, NULL, &hints, &ai);
		if (e != 0)
			return vgp_make_usage_error(err, "--metrics-address '%s': %s", address, gai_strerror(e));
		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *) ai->ai_addr)->sin_port = htons((uint16_t) port);
		else
			((struct sockaddr_in6 *) ai->ai_addr)->sin6_port = htons((uint16_t) port);
	}
	h = calloc(1, sizeof *h);
	if (h == NULL) {
		freeaddrinfo(ai);
		return vgp_make_error(err, ENOMEM, "metrics");
	}
	/* the daemon's thread inherits this mask: a scraper that hangs up mid-answer must not kill the process */
	sigemptyset(&pipe_mask);
	sigaddset(&pipe_mask, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_mask, &old);
	errno = 0;
	if (ai != NULL) {
		h->d = start(ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0, port, ai->ai_addr);
	} else {
		h->d = start(MHD_USE_DUAL_STACK, port, NULL);
		if (h->d == NULL) /* no IPv6 on this host: IPv4 only */
			h->d = start(0, port, NULL);
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	freeaddrinfo(ai);
	if (h->d == NULL) {
		free(h);
		return vgp_make_error(err, e ? e : EADDRINUSE, "metrics endpoint on %s", address);
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info != NULL && info->port != 0 ? info->port : port;
	*out = h;
	return 0;
}

int
vgp_metrics_http_port(const struct vgp_metrics_http *h)
{
	return h != NULL ? h->port : -1;
}

void
vgp_metrics_http_stop(struct vgp_metrics_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
