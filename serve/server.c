/* server.c - the HTTP side of `gaze serve` on libmicrohttpd (Debian's libmicrohttpd-dev: a small,
 * well-kept C server with a thread pool, timeouts and multipart parsing): routing, bodies and
 * their limits, Bearer authentication, replies, metrics and the SIGTERM drain. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "serve/serve_internal.h"

#define POST_BUFFER 65536 /* multipart parser buffer */
#define POLL_NS 50000000L /* how often the main thread looks at the stop flag */

gz_serve_params gz_serve_default_params(void) {
    gz_serve_params p;
    memset(&p, 0, sizeof p);
    p.engine = gz_engine_default_params();
    p.host = "127.0.0.1";
    p.port = GZ_SERVE_DEFAULT_PORT;
    p.threads = 2;
    p.max_body = (size_t)GZ_SERVE_DEFAULT_MAX_BODY_MB << 20;
    p.timeout_s = GZ_SERVE_DEFAULT_TIMEOUT_S;
    p.warmup = 1;
    return p;
}

typedef struct {
    serve_ctx ctx;
    atomic_int in_flight; /* requests between their first byte and their reply's end */
    atomic_int draining;  /* SIGTERM seen: replies close their connection */
} server;

/* One request's state, from its headers to its reply. */
typedef struct {
    server *srv;
    serve_endpoint ep;
    double t0;
    char *body; /* (len) bytes, NUL-terminated */
    size_t len, cap;
    int too_big;
    struct MHD_PostProcessor *pp; /* multipart/form-data search */
    json_t *form;                 /* its text fields */
    unsigned char *upload;        /* its "image" file */
    size_t upload_len;
    int form_error; /* an unexpected file field */
} request;

static void logf_(const gz_serve_params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const gz_serve_params *p, const char *fmt, ...) {
    if (!p->log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->log(p->log_user, line);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const gz_serve_params *p = cls;
    if (!p->log) return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    p->log(p->log_user, line);
}

/* ---- authentication ---- */

/* Compare the presented token with the key in constant time: both are hashed first, so the
 * time depends on neither their contents nor which byte differs, nor on the key's length. */
static int token_ok(const char *key, const char *presented) {
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), a);
    SHA256((const unsigned char *)presented, strlen(presented), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

static int authorised(const gz_serve_params *p, struct MHD_Connection *conn) {
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0; /* the scheme is case-insensitive */
    return token_ok(p->api_key, h + 7);
}

/* ---- replies ---- */

static enum MHD_Result send_reply(request *rq, struct MHD_Connection *conn, serve_reply *r) {
    struct MHD_Response *resp;
    if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    if (r->content_type) MHD_add_response_header(resp, "Content-Type", r->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (rq->ep != EP_PAGE && rq->ep != EP_THUMBNAIL && rq->ep != EP_OPENAPI)
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    /* while draining, a kept-alive client must not send its next request here */
    if (atomic_load(&rq->srv->draining)) MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    serve_metrics_observe(&rq->srv->ctx.metrics, rq->ep, r->status, serve_now() - rq->t0);
    return ok;
}

static enum MHD_Result send_asset(request *rq, struct MHD_Connection *conn, const serve_asset *a) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", a->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    serve_metrics_observe(&rq->srv->ctx.metrics, rq->ep, 200, serve_now() - rq->t0);
    return ok;
}

static enum MHD_Result send_error(request *rq, struct MHD_Connection *conn, int status,
                                  const char *msg) {
    serve_reply r = {0};
    serve_error(&r, status, "%s", msg);
    return send_reply(rq, conn, &r);
}

/* ---- routing ---- */

static serve_endpoint classify(const char *url) {
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0 || strcmp(url, "/app.js") == 0)
        return EP_PAGE;
    if (strcmp(url, "/healthz") == 0) return EP_HEALTHZ;
    if (strcmp(url, "/metrics") == 0) return EP_METRICS;
    if (strcmp(url, "/v1/info") == 0) return EP_INFO;
    if (strcmp(url, "/v1/openapi.json") == 0) return EP_OPENAPI;
    if (strcmp(url, "/v1/search") == 0) return EP_SEARCH;
    if (strcmp(url, "/v1/embed") == 0) return EP_EMBED;
    if (strcmp(url, "/v1/match") == 0) return EP_MATCH;
    if (strncmp(url, "/v1/items/", 10) == 0) {
        size_t n = strlen(url);
        if (n > 10 + 10 && strcmp(url + n - 10, "/thumbnail") == 0) return EP_THUMBNAIL;
        return EP_ITEMS;
    }
    return EP_OTHER;
}

static int is_write(serve_endpoint ep, const char *method) {
    return ep == EP_ITEMS && strcmp(method, "GET") != 0;
}

/* The method each endpoint takes ("" = see the handler). */
static const char *endpoint_method(serve_endpoint ep) {
    switch (ep) {
    case EP_SEARCH:
    case EP_EMBED:
    case EP_MATCH: return "POST";
    case EP_ITEMS: return "";
    default: return "GET";
    }
}

static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding, (void)off;
    request *rq = cls;
    size_t max = rq->srv->ctx.params->max_body;
    if (strcmp(key, "image") == 0) {
        if (rq->upload_len + size > max) {
            rq->too_big = 1;
            return MHD_NO;
        }
        unsigned char *p = realloc(rq->upload, rq->upload_len + size + 1);
        if (!p) return MHD_NO;
        rq->upload = p;
        memcpy(p + rq->upload_len, data, size);
        rq->upload_len += size;
        return MHD_YES;
    }
    if (filename) {
        rq->form_error = 1; /* only "image" may be a file */
        return MHD_YES;
    }
    const char *old = json_string_value(json_object_get(rq->form, key));
    size_t ol = old ? strlen(old) : 0;
    if (ol + size > 65536) {
        rq->too_big = 1;
        return MHD_NO;
    }
    char *v = malloc(ol + size + 1);
    if (!v) return MHD_NO;
    if (old) memcpy(v, old, ol);
    memcpy(v + ol, data, size);
    v[ol + size] = 0;
    /* form fields are text; a field that is not UTF-8 stays out and is reported as missing */
    json_t *s = json_string(v);
    free(v);
    if (s) json_object_set_new(rq->form, key, s);
    return MHD_YES;
}

static void dispatch(server *srv, request *rq, struct MHD_Connection *conn, const char *url,
                     const char *method, serve_reply *r) {
    serve_ctx *c = &srv->ctx;
    switch (rq->ep) {
    case EP_HEALTHZ:
        r->status = 200;
        r->content_type = "text/plain";
        r->body = strdup("ok\n");
        r->len = r->body ? 3 : 0;
        return;
    case EP_INFO: serve_info(c, r); return;
    case EP_METRICS: serve_metrics_reply(c, r); return;
    case EP_SEARCH:
        if (rq->pp) {
            if (rq->form_error)
                serve_error(r, 400, "multipart: only the field 'image' may be a file");
            else
                serve_search_form(c, rq->form, rq->upload, rq->upload_len, r);
        } else {
            serve_search_json(c, rq->body ? rq->body : "", rq->len, r);
        }
        return;
    case EP_EMBED: serve_embed(c, rq->body ? rq->body : "", rq->len, r); return;
    case EP_MATCH: serve_match(c, rq->body ? rq->body : "", rq->len, r); return;
    case EP_THUMBNAIL: {
        char id[64];
        size_t n = strlen(url) - 10 - 10; /* "/v1/items/" ... "/thumbnail" */
        snprintf(id, sizeof id, "%.*s", (int)(n < sizeof id ? n : sizeof id - 1), url + 10);
        serve_thumbnail(c, id, r);
        return;
    }
    case EP_ITEMS:
        if (!c->writer.running)
            serve_error(r, 403, "this server is read-only (--read-only)");
        else
            serve_items(c, method, url, rq->body ? rq->body : "", rq->len, r);
        return;
    default: serve_error(r, 404, "no such endpoint: %s %s", method, url); return;
    }
    (void)conn;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    server *srv = cls;
    const gz_serve_params *p = srv->ctx.params;
    request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->srv = srv;
        rq->t0 = serve_now();
        rq->ep = classify(url);
        *con_cls = rq;
        atomic_fetch_add(&srv->in_flight, 1);
        /* Everything decided from the headers is answered before reading the body. */
        const char *want = endpoint_method(rq->ep);
        const serve_asset *asset = NULL;
        if (rq->ep == EP_PAGE || rq->ep == EP_OPENAPI) asset = serve_find_asset(url);
        if (rq->ep == EP_OTHER) {
            char msg[600];
            snprintf(msg, sizeof msg, "no such endpoint: %s %.512s", method, url);
            return send_error(rq, conn, 404, msg);
        }
        if (*want && strcmp(method, want) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(want, "GET") == 0)) {
            char msg[600];
            snprintf(msg, sizeof msg, "%.512s takes %s, not %s", url, want, method);
            return send_error(rq, conn, 405, msg);
        }
        int needs_key =
            p->api_key && (is_write(rq->ep, method) || (p->auth_reads && rq->ep != EP_HEALTHZ &&
                                                        rq->ep != EP_PAGE && rq->ep != EP_OPENAPI));
        if (needs_key && !authorised(p, conn))
            return send_error(rq, conn, 401, "missing or wrong API key (Authorization: Bearer)");
        if (is_write(rq->ep, method) && p->read_only)
            return send_error(rq, conn, 403, "this server is read-only (--read-only)");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > p->max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body over the limit of %zu bytes (--max-body)",
                     p->max_body);
            return send_error(rq, conn, 413, msg);
        }
        if (asset) return send_asset(rq, conn, asset);
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (rq->ep == EP_SEARCH && ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
            rq->form = json_object();
            rq->pp = MHD_create_post_processor(conn, POST_BUFFER, form_field, rq);
            if (!rq->pp || !rq->form)
                return send_error(rq, conn, 400, "malformed multipart/form-data request");
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->too_big) {
            *upload_size = 0;
            return MHD_YES;
        }
        if (rq->pp) {
            rq->len += *upload_size; /* the whole form counts against --max-body */
            if (rq->len > p->max_body)
                rq->too_big = 1;
            else if (MHD_post_process(rq->pp, upload, *upload_size) != MHD_YES && !rq->too_big)
                rq->form_error = 1;
        } else if (rq->len + *upload_size > p->max_body) {
            rq->too_big = 1; /* read and drop the rest: the client then reads our 413 */
        } else {
            if (rq->len + *upload_size + 1 > rq->cap) {
                size_t cap = (rq->len + *upload_size + 1) * 2;
                if (cap > p->max_body + 1) cap = p->max_body + 1;
                char *b = realloc(rq->body, cap);
                if (!b) return MHD_NO;
                rq->body = b;
                rq->cap = cap;
            }
            memcpy(rq->body + rq->len, upload, *upload_size);
            rq->len += *upload_size;
            rq->body[rq->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes (--max-body)",
                 p->max_body);
        return send_error(rq, conn, 413, msg);
    }
    serve_reply r = {0};
    dispatch(srv, rq, conn, url, method, &r);
    if (r.status >= 500) logf_(p, "%s %s: %d %.*s", method, url, r.status, (int)r.len, r.body);
    return send_reply(rq, conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn, (void)toe;
    server *srv = cls;
    request *rq = *con_cls;
    if (!rq) return;
    if (rq->pp) MHD_destroy_post_processor(rq->pp);
    json_decref(rq->form);
    free(rq->upload);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* ---- start, serve, drain ---- */

/* Put the reason of a failure of gz_serve_run into why and return st. */
static gz_status fail(char *why, size_t why_cap, gz_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static gz_status fail(char *why, size_t why_cap, gz_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_cap, fmt, ap);
    va_end(ap);
    return st;
}

static gz_status parse_address(const char *host, int port, struct sockaddr_storage *ss, char *why,
                               size_t why_cap) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return GZ_OK;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return GZ_OK;
    }
    return fail(why, why_cap, GZ_EINVAL, "'%s' is not a numeric IPv4 or IPv6 address", host);
}

/* The server's one model: the one given, else the database's registered one. Every engine
 * (gz_engine_params.shared_model), embed and match use it, so the process holds one copy of the
 * weights and of their packed form, made once. */
static gz_status load_shared_model(serve_ctx *c, char *why, size_t why_cap) {
    const gz_serve_params *p = c->params;
    if (p->engine.model_dir) {
        snprintf(c->model_dir, sizeof c->model_dir, "%s", p->engine.model_dir);
    } else {
        gz_db_params dp = p->engine.db;
        dp.readonly = 1;
        gz_db *db = NULL;
        gz_status st = gz_db_open(p->engine.db_path, &dp, &db);
        if (st != GZ_OK) return st;
        gz_db_model dm;
        st = gz_db_default_model(db, &dm);
        gz_db_close(db);
        if (st == GZ_ENOTFOUND)
            return fail(why, why_cap, GZ_ENOTFOUND,
                        "%s: no model registered in the database (index first, "
                        "or give a model)",
                        p->engine.db_path);
        if (st != GZ_OK) return st;
        snprintf(c->model_dir, sizeof c->model_dir, "%s", dm.name);
    }
    gz_model_params mp = p->engine.model;
    mp.concurrency = p->threads + (p->read_only ? 0 : 1); /* the request threads, the writer */
    return gz_model_load(c->model_dir, &mp, &c->model);
}

/* Load each engine's model and index now, so the first requests do not pay for it. */
static void warm_up(serve_ctx *c) {
    for (int i = 0; i < c->pool.n; i++) {
        gz_query_term t = {.text = "warm up", .weight = 1};
        gz_query q = gz_query_default();
        q.terms = &t;
        q.n_terms = 1;
        q.k = 1;
        gz_results r = {0};
        if (gz_engine_search(c->pool.engines[i], &q, &r) != GZ_OK)
            logf_(c->params, "warm-up search: %s", gz_last_error());
        gz_results_free(&r);
    }
}

static gz_status write_port_file(const char *path, int port, char *why, size_t why_cap) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fail(why, why_cap, GZ_EIO, "%s: %s", tmp, strerror(errno));
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return fail(why, why_cap, GZ_EIO, "%s: %s", path, strerror(errno));
    return GZ_OK;
}

gz_status gz_serve_run(const gz_serve_params *p, char *why, size_t why_cap) {
    why[0] = 0;
    if (!p || !p->stop || !p->engine.db_path)
        return fail(why, why_cap, GZ_EINVAL, "gz_serve_run: no database or stop flag");
    if (p->threads < 1 || p->threads > 256)
        return fail(why, why_cap, GZ_EINVAL, "threads must be in [1, 256], not %d", p->threads);
    if (p->port < 0 || p->port > 65535)
        return fail(why, why_cap, GZ_EINVAL, "port must be in [0, 65535], not %d", p->port);
    if (p->max_body < 1024) return fail(why, why_cap, GZ_EINVAL, "max body must be at least 1 KiB");
    if (p->api_key && !p->api_key[0]) return fail(why, why_cap, GZ_EINVAL, "the API key is empty");
    struct sockaddr_storage addr;
    gz_status st = parse_address(p->host, p->port, &addr, why, why_cap);
    if (st != GZ_OK) return st;

    server *srv = calloc(1, sizeof *srv);
    if (!srv) return fail(why, why_cap, GZ_ENOMEM, "out of memory");
    serve_ctx *c = &srv->ctx;
    c->params = p;
    c->started = serve_now();
    serve_metrics_init(&c->metrics);
    pthread_mutex_init(&c->tmp_mu, NULL);
    const char *tmpdir = getenv("TMPDIR");
    int tl = snprintf(c->tmp_dir, sizeof c->tmp_dir, "%s/gaze-serve-XXXXXX",
                      tmpdir && *tmpdir ? tmpdir : "/tmp");
    struct MHD_Daemon *d = NULL;
    int pool_open = 0;
    if (tl >= (int)sizeof c->tmp_dir || !mkdtemp(c->tmp_dir)) {
        st = fail(why, why_cap, GZ_EIO, "%s: %s", c->tmp_dir, strerror(errno));
        c->tmp_dir[0] = 0;
        goto done;
    }
    if ((st = load_shared_model(c, why, why_cap)) != GZ_OK) goto done;
    gz_engine_params ep = p->engine;
    ep.model_dir = c->model_dir;
    ep.shared_model = c->model;
    if ((st = serve_pool_open(&c->pool, &ep, p->threads, p->read_only)) != GZ_OK) goto done;
    pool_open = 1;
    if (!p->read_only) {
        char upload[2048], root[PATH_MAX], cwd[1024] = "";
        /* the engine takes image paths from the current directory: make the folder absolute */
        const char *dir = p->upload_dir;
        int n = dir ? snprintf(upload, sizeof upload, "%s%s%s",
                               dir[0] == '/'             ? ""
                               : getcwd(cwd, sizeof cwd) ? cwd
                                                         : ".",
                               dir[0] == '/' ? "" : "/", dir)
                    : snprintf(upload, sizeof upload, "%s%s%s.uploads",
                               p->engine.db_path[0] == '/' ? ""
                               : getcwd(cwd, sizeof cwd)   ? cwd
                                                           : ".",
                               p->engine.db_path[0] == '/' ? "" : "/", p->engine.db_path);
        if (n >= (int)sizeof upload) {
            st = fail(why, why_cap, GZ_EINVAL, "the upload folder's name is too long");
            goto done;
        }
        if (p->image_root && !realpath(p->image_root, root)) {
            st = fail(why, why_cap, GZ_EINVAL, "image root %s: %s", p->image_root, strerror(errno));
            goto done;
        }
        if ((st = serve_writer_start(&c->writer, &ep, upload, p->image_root ? root : NULL,
                                     p->warmup)) != GZ_OK)
            goto done;
    }
    if (p->warmup) warm_up(c);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    d = MHD_start_daemon(
        flags, (uint16_t)p->port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        (void *)p, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)p->threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!d) {
        st = fail(why, why_cap, GZ_EIO,
                  "cannot listen on %s port %d (in use, or not an address of this "
                  "machine)",
                  p->host, p->port);
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : p->port;
    if (p->port_file && (st = write_port_file(p->port_file, port, why, why_cap)) != GZ_OK)
        goto done;
    logf_(p, "listening on http://%s%s%s:%d/ (%d threads%s%s)",
          addr.ss_family == AF_INET6 ? "[" : "", p->host, addr.ss_family == AF_INET6 ? "]" : "",
          port, p->threads, p->read_only ? ", read-only" : "", p->api_key ? ", API key" : "");

    struct timespec tick = {0, POLL_NS};
    while (!*p->stop)
        nanosleep(&tick, NULL);

    /* Drain: stop accepting, let the requests already started finish, then stop. */
    logf_(p, "stopping: %d request(s) in flight", atomic_load(&srv->in_flight));
    atomic_store(&srv->draining, 1);
    MHD_socket listener = MHD_quiesce_daemon(d);
    double deadline = serve_now() + GZ_SERVE_DRAIN_S;
    while (atomic_load(&srv->in_flight) > 0 && serve_now() < deadline)
        nanosleep(&tick, NULL);
    st = GZ_OK;
    MHD_stop_daemon(d);
    d = NULL;
    if (listener != MHD_INVALID_SOCKET) close(listener);
done:
    if (d) MHD_stop_daemon(d);
    /* a library call's failure: its message is the reason */
    if (st != GZ_OK && !why[0]) snprintf(why, why_cap, "%s", gz_last_error());
    if (c->writer.running || c->writer.engine) {
        /* after the drain: the jobs of answered requests are committed; this commits the rest
         * and writes the FAISS files */
        gz_status wst = serve_writer_stop(&c->writer);
        if (wst != GZ_OK && st == GZ_OK) {
            st = wst;
            snprintf(why, why_cap, "%s", gz_last_error());
        }
    }
    if (pool_open) serve_pool_close(&c->pool);
    gz_model_free(c->model);
    if (c->tmp_dir[0]) rmdir(c->tmp_dir);
    pthread_mutex_destroy(&c->tmp_mu);
    serve_metrics_free(&c->metrics);
    if (st == GZ_OK) logf_(p, "stopped");
    free(srv);
    return st;
}
