/* serve_internal.h - the parts of the service shared inside serve/ only: the engine pool, the
 * metrics, the HTTP reply type and the endpoint handlers. */
#ifndef GZ_SERVE_SERVE_INTERNAL_H
#define GZ_SERVE_SERVE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gaze.h"
#include "serve/serve.h"

/* ---- engine pool (pool.c) ---- */

/* One engine per worker thread. Read-only pools follow a republished database: when the file
 * db_path names is another inode than the one opened (a snapshot swapped in by rename or by a
 * symlink to a new folder), an engine is reopened before its next use. */
typedef struct {
    gz_engine_params params;
    int follow; /* 1: reopen an engine whose db file was replaced (read-only replicas) */
    int n;
    gz_engine **engines; /* (n) */
    int *busy;           /* (n) */
    ino_t *inode;        /* (n) of the db file each engine opened */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} serve_pool;

/* n engines on ep, opened read-only whatever ep says (readers never write; the one writer has
 * its own engine). gaze serve gives them its one model (ep->shared_model). */
gz_status serve_pool_open(serve_pool *pool, const gz_engine_params *ep, int n, int follow);
void serve_pool_close(serve_pool *pool);
/* Take a free engine (waits for one); *slot identifies it for serve_pool_put. */
gz_status serve_pool_get(serve_pool *pool, gz_engine **e, int *slot);
void serve_pool_put(serve_pool *pool, int slot);

/* ---- metrics (metrics.c) ---- */

typedef enum {
    EP_PAGE,
    EP_HEALTHZ,
    EP_INFO,
    EP_OPENAPI,
    EP_SEARCH,
    EP_EMBED,
    EP_MATCH,
    EP_ITEMS,
    EP_THUMBNAIL,
    EP_METRICS,
    EP_OTHER,
    EP_COUNT
} serve_endpoint;

#define SERVE_N_BUCKETS 12

typedef struct {
    pthread_mutex_t mu;
    int64_t requests[EP_COUNT];
    int64_t errors[EP_COUNT];                  /* status >= 400 */
    int64_t bucket[EP_COUNT][SERVE_N_BUCKETS]; /* cumulative counts at each bound */
    double seconds_sum[EP_COUNT];
} serve_metrics;

const char *serve_endpoint_name(serve_endpoint ep);
void serve_metrics_init(serve_metrics *m);
void serve_metrics_free(serve_metrics *m);
void serve_metrics_observe(serve_metrics *m, serve_endpoint ep, int status, double seconds);
/* Append the Prometheus text of the counters to a malloc'd buffer; NULL on out of memory. */
char *serve_metrics_text(serve_metrics *m, const char *extra);

/* ---- the writer (items.c) ---- */

struct serve_job; /* one write request's operations, queued for the writer thread */

typedef struct {
    gz_engine *engine; /* writable, used by the writer thread only */
    pthread_t thread;
    int running, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* jobs queued, or stop */
    pthread_cond_t done_cv; /* a batch finished */
    struct serve_job *head, *tail;
    int64_t batches;       /* committed (or failed) groups, for metrics */
    char upload_dir[2048]; /* uploaded product images, named by SHA-256 */
    char image_root[2048]; /* "" = image_path refused; else an absolute, resolved root */
} serve_writer;

/* Open the writable engine (with warmup, load and register its model) and start the thread. */
gz_status serve_writer_start(serve_writer *w, const gz_engine_params *ep, const char *upload_dir,
                             const char *image_root, int warmup);
/* Finish the queued jobs, stop the thread, close the engine (FAISS files written). */
gz_status serve_writer_stop(serve_writer *w);

/* ---- replies and handlers (api.c) ---- */

typedef struct {
    int status;
    const char *content_type; /* static */
    char *body;               /* malloc'd */
    size_t len;
} serve_reply;

/* Everything a handler may use; owned by server.c. */
typedef struct {
    const gz_serve_params *params;
    serve_pool pool;
    serve_metrics metrics;
    gz_model *model;      /* shared by threads for embed and match; loaded at start */
    char model_dir[4096]; /* what it was loaded from */
    char tmp_dir[1024];   /* private folder for uploaded query images */
    int64_t tmp_counter;  /* names of uploaded images; under tmp_mu */
    pthread_mutex_t tmp_mu;
    double started;      /* monotonic seconds */
    serve_writer writer; /* not running with --read-only */
} serve_ctx;

/* A JSON error reply {"error": {"status": N, "message": "..."}}. */
void serve_error(serve_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A JSON reply of o (reference stolen). */
void serve_json(serve_reply *r, int status, json_t *o);
/* HTTP status for a library error of a request (400 bad input, 404 not found, ...). */
int serve_status_of(gz_status st);

/* Decode base64 (standard alphabet, padding optional, "data:...;base64," prefix allowed).
 * *out malloc'd. GZ_EINVAL for a malformed string. */
gz_status serve_base64_decode(const char *s, unsigned char **out, size_t *n);

double serve_now(void);

/* The handlers: body is the request body (NUL-terminated, len bytes), for POST. */
void serve_search_json(serve_ctx *c, const char *body, size_t len, serve_reply *r);
/* The same query from a multipart form: fields holds the text fields as strings, image the
 * uploaded file's bytes (NULL: none). */
void serve_search_form(serve_ctx *c, json_t *fields, const unsigned char *image, size_t image_len,
                       serve_reply *r);
void serve_embed(serve_ctx *c, const char *body, size_t len, serve_reply *r);
void serve_match(serve_ctx *c, const char *body, size_t len, serve_reply *r);
void serve_info(serve_ctx *c, serve_reply *r);
void serve_thumbnail(serve_ctx *c, const char *id_text, serve_reply *r);
void serve_metrics_reply(serve_ctx *c, serve_reply *r);
/* PUT / DELETE /v1/items/{catalog}/{id}, POST /v1/items/{catalog} (JSON lines). */
void serve_items(serve_ctx *c, const char *method, const char *url, const char *body, size_t len,
                 serve_reply *r);

/* ---- embedded files (generated assets.c) ---- */
typedef struct {
    const char *path;         /* "/", "/app.js", "/v1/openapi.json" */
    const char *content_type; /* static */
    const unsigned char *data;
    size_t len;
} serve_asset;
const serve_asset *serve_find_asset(const char *path);

#endif
