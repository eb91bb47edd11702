/* serve.h - `gaze serve`: the HTTP service over the engine (libmicrohttpd, JSON via jansson).
 *
 * Basic usage (what cli/cmd_serve.c does):
 *   gz_serve_params sp = gz_serve_default_params();
 *   sp.engine.db_path = "shop.db";
 *   sp.stop = &stop_flag;                  // set by the SIGTERM handler
 *   char why[1024];
 *   if (gz_serve_run(&sp, why, sizeof why) != GZ_OK) fprintf(stderr, "%s\n", why);
 *
 * Endpoints (the OpenAPI file serve/openapi.json is the reference, served at /v1/openapi.json):
 *   GET  /  /app.js          the page (embedded at build time, no CDN)
 *   GET  /healthz            "ok" once the engines are open
 *   GET  /v1/info            version, model, item counts, index generations
 *   POST /v1/search          text / image (base64 JSON or multipart) / composed query
 *   POST /v1/embed           texts and images to vectors
 *   POST /v1/match           ITC (and ITM on BLIP) of (image, text) pairs
 *   GET  /v1/items/{id}/thumbnail   JPEG of an indexed image (or a text's linked image)
 *   PUT, DELETE /v1/items/{catalog}/{id}, POST /v1/items/{catalog} (JSON lines): catalogue
 *                            writes, through one writer thread, committed in batches
 *   GET  /metrics            Prometheus text
 *
 * Threads: threads worker threads of libmicrohttpd each take one engine of a pool of as many
 * (an engine is used by one thread at a time); embed and match share one model. The library
 * layers below print nothing; this module writes its log lines through params.log only. */
#ifndef GZ_SERVE_SERVE_H
#define GZ_SERVE_SERVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "gaze.h"

#define GZ_SERVE_DEFAULT_PORT 8080
#define GZ_SERVE_DEFAULT_MAX_BODY_MB 16 /* request bodies above this are refused (413) */
#define GZ_SERVE_DEFAULT_TIMEOUT_S 30   /* an idle or slow client is dropped after this */
#define GZ_SERVE_MAX_K 1000             /* k above this is a 400 */
#define GZ_SERVE_MAX_RERANK                                                                        \
    256                     /* rerank above this is a 400: it bounds a request's work              \
                               (one ITM pass per candidate; LAVIS uses 128-256) */
#define GZ_SERVE_DRAIN_S 30 /* SIGTERM: wait this long for in-flight requests */

typedef void (*gz_serve_log_fn)(void *user, const char *line);

typedef struct {
    gz_engine_params engine;     /* db_path (required), model_dir, model and db params */
    const char *host;            /* numeric IPv4 or IPv6 address to bind; default "127.0.0.1" */
    int port;                    /* default GZ_SERVE_DEFAULT_PORT; 0 = any free port */
    const char *port_file;       /* optional: the bound port is written here once listening */
    const char *api_key;         /* NULL: no authentication; else required as a Bearer token */
    int auth_reads;              /* 1: reads need the key too (default: only writes) */
    int read_only;               /* 1: open the database read-only, refuse writes (replicas) */
    int threads;                 /* worker threads = engines (default 2) */
    size_t max_body;             /* bytes (default GZ_SERVE_DEFAULT_MAX_BODY_MB MiB) */
    int timeout_s;               /* connection idle timeout (default GZ_SERVE_DEFAULT_TIMEOUT_S) */
    int warmup;                  /* 1 (default): load the models and indexes before listening */
    const char *upload_dir;      /* product images uploaded through PUT; NULL: "<db>.uploads" */
    const char *image_root;      /* NULL: image_path refused; else items may link files under it */
    volatile sig_atomic_t *stop; /* required: the server drains and returns once it is set */
    gz_serve_log_fn log;         /* optional: one line per event (start, errors, shutdown) */
    void *log_user;
} gz_serve_params;

gz_serve_params gz_serve_default_params(void);

/*
** Open the engines, listen and serve until *p->stop becomes non-zero; then stop accepting,
** let in-flight requests finish (at most GZ_SERVE_DRAIN_S seconds), close the engines (which
** writes changed FAISS files) and return GZ_OK. GZ_EINVAL for bad params (message says which),
** GZ_EIO when the address cannot be bound, the engine's error when the database cannot be
** opened. On error why (why_cap bytes) holds the reason, naming the file or address.
*/
gz_status gz_serve_run(const gz_serve_params *p, char *why, size_t why_cap);

#endif
