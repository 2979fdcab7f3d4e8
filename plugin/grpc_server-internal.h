/* grpc_server-internal.h — private to grpc_server.c (servers, listeners, the completion-queue thread, the device
 * tables, the public API) and grpc_calls.c (the per-call state machines: unary methods, Allocate and
 * GetPreferredAllocation on the table, ListAndWatch streams). */
#ifndef VGP_GRPC_SERVER_INTERNAL_H
#define VGP_GRPC_SERVER_INTERNAL_H

#include <grpc/grpc.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "grpc_server.h"
#include "log.h"

enum kind { K_OPTIONS, K_LAW, K_PREFERRED, K_ALLOCATE, K_PRESTART, K_N };

extern const char *const srv_method_path[K_N]; /* the DevicePlugin method paths, by kind */

enum what { W_NEW, W_UNARY, W_SEND, W_RECV, W_CLOSE, W_STATUS, W_SHUTDOWN };

struct tag {
	enum what what;
	void *obj; /* struct call *, or struct listener * for W_SHUTDOWN */
};

struct listener;

struct call {
	struct listener *l;
	enum kind kind;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;  /* unary request, or ListAndWatch's Empty (RECV_MESSAGE) */
	grpc_byte_buffer *send_bb;  /* in flight */
	grpc_slice details;         /* status details in flight */
	bool has_details;
	int cancelled;
	int refs;                   /* batches in flight, plus the pending request */
	bool stream;                /* ListAndWatch, in the listener's stream list */
	bool sending;
	bool done;                  /* ListAndWatch: closed, or failed: send nothing more */
	uint64_t sent_gen;
	struct call *prev, *next;   /* stream list */
	struct tag t_new, t_unary, t_send, t_recv, t_close, t_status;
};

struct listener {
	struct vgp_server *srv;
	size_t res;
	grpc_server *server;
	void *method[K_N];
	bool shutting_down, shutdown_done;
	size_t live_calls;          /* struct call objects of this listener */
	struct call *streams;
	size_t n_streams;
	struct tag t_shutdown;
};

struct sres {
	struct vgp_served_resource r; /* deep copy; health updated in place */
	char sock_name[VGP_RESOURCE_LEN + 16];
	char sock_path[PATH_MAX];
	char target[PATH_MAX + 8];    /* "unix:" + sock_path, or via /proc/self/fd/<kdir_fd> */
	struct listener *cur;
	grpc_slice list;              /* the packed ListAndWatchResponse of generation gen */
	uint64_t gen;
	unsigned long calls;
};

/* A log line said while mu was held, written once it is released. */
struct held_log {
	enum vgp_log_level lvl;
	char *line;
};

struct vgp_server {
	pthread_mutex_t mu;
	struct held_log *logs;        /* (mu) lines said under mu (srv_log): nothing logs while holding it, a slow
	                                 stderr would stall the completion queue and every set_health caller */
	size_t n_logs;
	pthread_cond_t cond;
	grpc_completion_queue *cq;
	pthread_t thread;
	bool thread_started;
	struct sres *res;
	int kdir_fd;                  /* O_PATH of the kubelet directory when its path is too long to bind in, else -1 */
	size_t n;
	char kubelet_dir[PATH_MAX];
};

/* grpc_server.c */
/* Log with s->mu held: the line is kept, and written by srv_unlock once mu is released. */
void srv_log(struct vgp_server *s, enum vgp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Release s->mu, then write the lines said while it was held. */
void srv_unlock(struct vgp_server *s);
/* Pack resource sr's current ListAndWatch list (a new generation). mu held. */
int srv_repack_list(struct sres *sr);

/* grpc_calls.c (mu held for all) */
/* Keep one call of kind k pending on listener l. */
void srv_request_call(struct listener *l, enum kind k);
/* One completion-queue event. */
void srv_handle_event(struct vgp_server *s, struct tag *t, bool ok);
/* Send the current list on stream c unless a send is in flight or it is current. */
void srv_stream_send(struct call *c);

#endif
