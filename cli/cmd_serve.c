/* cmd_serve.c - `gaze serve`: parse the options, read the API key, install the SIGTERM/SIGINT
 * handlers and run the HTTP service (serve/serve.h) until one arrives. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gaze.h"
#include "serve/serve.h"

static const char SERVE_DETAILS[] =
    "JSON over HTTP under /v1 (the OpenAPI document is at /v1/openapi.json), a search page at /,\n"
    "/healthz and /metrics (Prometheus). Binds to 127.0.0.1:8080 by default; another address\n"
    "without --api-key-file prints a warning. With a key file (its first line is the key),\n"
    "writes need 'Authorization: Bearer KEY', and reads too with --auth-reads. --read-only\n"
    "opens the database read-only (replicas over `gaze snapshot` copies) and follows a new\n"
    "snapshot published under the same name. SIGTERM or SIGINT stops accepting, finishes the\n"
    "requests in flight and exits 0.";
static const char SERVE_EXAMPLES[] =
    "  gaze serve --db shop.db\n"
    "  gaze serve --db shop.db --listen 0.0.0.0:8080 --api-key-file /etc/gaze/key\n"
    "  curl -s localhost:8080/v1/search -d '{\"text\": \"red leather jacket\", \"k\": 5}'";

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void log_line(void *user, const char *line) {
    (void)user;
    fprintf(stderr, "gaze serve: %s\n", line);
}

static void print_notice(void *user, const char *msg) {
    (void)user;
    fprintf(stderr, "gaze: %s\n", msg);
}

/* "HOST:PORT", "[V6]:PORT", "HOST" (port 8080) or ":PORT" (loopback) into host and port. */
static int parse_listen(const char *s, char *host, size_t cap, int *port) {
    const char *colon = NULL, *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || (end[1] && end[1] != ':')) return 0;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end[1] ? end + 1 : NULL;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon) return 0; /* bare IPv6 needs brackets */
        hl = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (hl >= cap) return 0;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (!host[0]) snprintf(host, cap, "127.0.0.1");
    *port = GZ_SERVE_DEFAULT_PORT;
    if (colon) {
        char *end = NULL;
        long p = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || p < 0 || p > 65535) return 0;
        *port = (int)p;
    }
    return 1;
}

static int is_loopback(const char *host) {
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

/* The key: the first line of the file, surrounding whitespace removed. NULL (printed) on error. */
static char *read_key(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_errorf("%s: %s", path, strerror(errno));
        return NULL;
    }
    char line[4096];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    size_t n = got ? strlen(line) : 0;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                 line[n - 1] == '\t'))
        line[--n] = 0;
    char *start = line;
    while (*start == ' ' || *start == '\t')
        start++;
    if (!*start) {
        cli_errorf("%s: the API key file is empty", path);
        return NULL;
    }
    return strdup(start);
}

int cmd_serve(int argc, char **argv) {
    const char *db = NULL, *model = NULL, *weights = NULL, *listen = NULL, *key_file = NULL;
    const char *port_file = NULL, *upload_dir = NULL, *image_root = NULL, *precision = NULL;
    int threads = 2, compute = 0, max_body = GZ_SERVE_DEFAULT_MAX_BODY_MB;
    int timeout = GZ_SERVE_DEFAULT_TIMEOUT_S, read_only = 0, auth_reads = 0, no_warmup = 0;
    int quiet = 0;
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"model", 'm', CLI_STR, &model, "DIR", "model (default $GAZE_MODEL, else the db's)"},
        {"listen", 'l', CLI_STR, &listen, "HOST:PORT", "address (default 127.0.0.1:8080)"},
        {"api-key-file", 0, CLI_STR, &key_file, "FILE", "require this Bearer key for writes"},
        {"auth-reads", 0, CLI_FLAG, &auth_reads, NULL, "require the key for reads too"},
        {"read-only", 0, CLI_FLAG, &read_only, NULL, "open the db read-only, refuse writes"},
        {"threads", 0, CLI_INT, &threads, "N", "request threads, one engine each (default 2)"},
        {"compute-threads", 0, CLI_INT, &compute, "N",
         "threads per request's model (default cores / threads)"},
        {"max-body", 0, CLI_INT, &max_body, "MB", "largest request body (default 16)"},
        {"timeout", 0, CLI_INT, &timeout, "S", "drop idle or slow clients after S s (30)"},
        {"port-file", 0, CLI_STR, &port_file, "FILE", "write the bound port here (port 0)"},
        {"upload-dir", 0, CLI_STR, &upload_dir, "DIR", "uploaded item images (default DB.uploads)"},
        {"image-root", 0, CLI_STR, &image_root, "DIR", "items may link image files under DIR"},
        {"no-warmup", 0, CLI_FLAG, &no_warmup, NULL, "do not load the models before listening"},
        {"weights", 0, CLI_STR, &weights, "FILE", "weights file inside the model directory"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16 (see gaze index --help)"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no notices"},
        {0},
    };
    const cli_command cmd = {"serve",
                             "[options]",
                             "Serve search over HTTP: JSON API, page, metrics.",
                             SERVE_DETAILS,
                             SERVE_EXAMPLES,
                             opts,
                             0,
                             0};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    cli_list_free(&pos);
    char host[256];
    int port;
    const char *bad = NULL;
    if (!parse_listen(listen ? listen : "127.0.0.1:8080", host, sizeof host, &port))
        bad = "--listen wants HOST:PORT, [IPV6]:PORT or :PORT";
    else if (threads < 1 || threads > 256)
        bad = "--threads must be in [1, 256]";
    else if (compute < 0)
        bad = "--compute-threads must be positive";
    else if (max_body < 1 || max_body > 4096)
        bad = "--max-body must be in [1, 4096] MB";
    else if (timeout < 1)
        bad = "--timeout must be at least 1 second";
    else if (auth_reads && !key_file)
        bad = "--auth-reads needs --api-key-file";
    if (bad) {
        cli_errorf("%s", bad);
        return EXIT_USAGE;
    }
    gz_model_params precision_check = cli_model_params(NULL, 1, 0);
    if ((rc = cli_set_precision(&precision_check, precision, quiet)) != EXIT_OK) return rc;
    char *key = NULL;
    if (key_file && !(key = read_key(key_file))) return EXIT_FATAL;
    if (!is_loopback(host) && !key)
        cli_warnf("serving on %s without --api-key-file: anyone who can reach it can %s", host,
                  read_only ? "search" : "change the index");

    char *def = NULL;
    const char *db_path = cli_db_path(db, 0, &def);
    struct stat sb;
    if (!db_path || stat(db_path, &sb) != 0) {
        if (db_path)
            cli_errorf("%s: no database here yet: run 'gaze index FOLDER' first, or give --db "
                       "FILE",
                       db_path);
        free(def);
        free(key);
        return EXIT_FATAL;
    }
    if (!compute) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        compute = cores > threads ? (int)(cores / threads) : 1;
    }
    gz_serve_params sp = gz_serve_default_params();
    sp.engine.db_path = db_path;
    sp.engine.model_dir = cli_model_dir(model);
    sp.engine.model = cli_model_params(weights, compute, 0);
    sp.engine.model.precision = precision_check.precision;
    /* readers of other processes (and the replicas' snapshots) load the FAISS file rather
     * than rebuilding it after each batch written here */
    sp.engine.db.save_every_commit = 1;
    if (!quiet) sp.engine.db.notice = print_notice;
    sp.host = host;
    sp.port = port;
    sp.port_file = port_file;
    sp.upload_dir = upload_dir;
    sp.image_root = image_root;
    sp.api_key = key;
    sp.auth_reads = auth_reads;
    sp.read_only = read_only;
    sp.threads = threads;
    sp.max_body = (size_t)max_body << 20;
    sp.timeout_s = timeout;
    sp.warmup = !no_warmup;
    sp.stop = &stop_flag;
    sp.log = log_line;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is not a reason to exit */

    char why[1024];
    gz_status st = gz_serve_run(&sp, why, sizeof why);
    if (st != GZ_OK) cli_errorf("%s", why);
    free(def);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    return st == GZ_OK ? EXIT_OK : st == GZ_EINVAL ? EXIT_USAGE : EXIT_FATAL;
}
