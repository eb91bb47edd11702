/* test_hub_pull.c - gz_hub_* against tests/hub_standin.py, a loopback stand-in of the Hub that
 * serves tests/data/fixtures/clip: byte-exact pulls into the huggingface_hub cache layout,
 * nothing fetched twice, resume after a dropped connection, sha256 refusal, HTTP errors, tokens,
 * offline resolution, and a cache laid out by hand as huggingface_hub writes it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "gaze.h"
#include "testutil.h"

#define COMMIT "5d3a1f0e9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e" /* hub_standin.py's fixed commit */
#define CUT_AT 1000000                                    /* bytes sent before a drop */
#define PATHLEN 2048
#define FSIZE_LIMIT (2 << 20) /* above every small file, below model.safetensors */

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_STATUS(expr, want) CHECK_STATUS_COUNTED(checks, expr, want)
/* The last error message contains s. */
#define T_MSG(s)                                                                                   \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!strstr(gz_last_error(), (s))) {                                                       \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,            \
                    gz_last_error(), (s));                                                         \
            gz_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

static char root[PATHLEN];    /* this run's temp folder */
static char fixture[PATHLEN]; /* tests/data/fixtures/clip */
static char script[PATHLEN];  /* tests/hub_standin.py */

/* The files a pull of the clip fixture must bring, and some it must leave. */
static const char *const wanted[] = {"config.json",
                                     "model.safetensors",
                                     "merges.txt",
                                     "vocab.json",
                                     "tokenizer_config.json",
                                     "special_tokens_map.json",
                                     "preprocessor_config.json"};
#define N_WANTED (int)(sizeof wanted / sizeof *wanted)
static const char *const unwanted[] = {"model.bf16.safetensors", "model.f16.safetensors",
                                       "expected.safetensors", "config.full.json",
                                       "tokenizer_cases.json"};

/* ---- helpers ---- */

/* snprintf that ends the test when the text does not fit. */
static void spf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void spf(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "path too long: %s\n", buf);
        exit(3);
    }
}

static char *path_of(char *buf, const char *a, const char *b) {
    spf(buf, PATHLEN, "%s/%s", a, b);
    return buf;
}

/* Whole file into a new buffer (caller frees); NULL when unreadable. */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[len] = '\0';
    if (n) *n = (size_t)len;
    return b;
}

static int same_bytes(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int ok = x && y && na == nb && memcmp(x, y, na) == 0;
    if (!ok) fprintf(stderr, "  %s differs from %s (%zu vs %zu bytes)\n", a, b, na, nb);
    free(x);
    free(y);
    return ok;
}

static long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static int exists_l(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Number of lines of the log file containing s (0 when unreadable). */
static int log_count(const char *log, const char *s) {
    char *b = slurp(log, NULL);
    int n = 0;
    for (char *p = b; p && (p = strstr(p, s)) != NULL; p++)
        n++;
    free(b);
    return n;
}

static int log_lines(const char *log) { return log_count(log, "\n"); }

/* Files in folder dir whose name ends with suffix. */
static int count_suffix(const char *dir, const char *suffix) {
    char cmd[PATHLEN + 128], out[64] = "";
    spf(cmd, sizeof cmd, "ls -a '%s' 2>/dev/null | grep -c '%s$'", dir, suffix);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    if (!fgets(out, sizeof out, f)) out[0] = '\0';
    pclose(f);
    return atoi(out);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(3);
    }
}

static void mkdirs(const char *path) {
    char cmd[PATHLEN + 32];
    spf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    if (system(cmd) != 0) exit(3);
}

/* ---- the stand-in ---- */

typedef struct {
    pid_t pid;
    char endpoint[64];
    char log[PATHLEN];
} standin;

/* Start hub_standin.py with the clip fixture as org/clip plus extra arguments (NULL-ended);
 * its request log goes to <root>/<name>.log. Exits the test when it does not come up. */
static void standin_start(standin *s, const char *name, const char *const *extra) {
    const char *argv[32];
    int a = 0;
    char repo[PATHLEN + 16];
    spf(repo, sizeof repo, "org/clip=%s", fixture);
    spf(s->log, sizeof s->log, "%s/%s.log", root, name);
    argv[a++] = "python3";
    argv[a++] = script;
    argv[a++] = "--repo";
    argv[a++] = repo;
    argv[a++] = "--log";
    argv[a++] = s->log;
    for (; extra && *extra && a < 30; extra++)
        argv[a++] = *extra;
    argv[a] = NULL;
    int fds[2];
    if (pipe(fds) != 0) exit(3);
    s->pid = fork();
    if (s->pid < 0) exit(3);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char line[32] = "";
    size_t n = 0;
    struct pollfd pf = {.fd = fds[0], .events = POLLIN};
    while (n < sizeof line - 1 && !strchr(line, '\n') && poll(&pf, 1, 20000) > 0) {
        ssize_t r = read(fds[0], line + n, sizeof line - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        line[n] = '\0';
    }
    close(fds[0]);
    int port = atoi(line);
    if (port <= 0) {
        fprintf(stderr, "hub_standin.py did not start (got \"%s\")\n", line);
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        exit(3);
    }
    spf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%d", port);
}

static void standin_stop(standin *s) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

static gz_hub_params params_for(const standin *s, const char *cache) {
    gz_hub_params p = gz_hub_default_params();
    spf(p.endpoint, sizeof p.endpoint, "%s", s ? s->endpoint : "http://127.0.0.1:1");
    spf(p.cache_dir, sizeof p.cache_dir, "%s/%s", root, cache);
    return p;
}

/* ---- checks on a pulled snapshot ---- */

static int64_t progress_last_done, progress_last_total;
static int progress_calls;
static void on_progress(void *user, const char *file, int64_t done, int64_t total) {
    (void)user;
    if (strcmp(file, "model.safetensors") != 0) return;
    progress_calls++;
    progress_last_done = done;
    progress_last_total = total;
}

/* The snapshot holds every wanted file byte-exact as a relative link into blobs, nothing else. */
static void check_snapshot(const char *cache_dir, const char *snap) {
    char want[PATHLEN], got[PATHLEN], src[PATHLEN], target[PATHLEN];
    spf(want, sizeof want, "%s/models--org--clip/snapshots/" COMMIT, cache_dir);
    T(!strcmp(snap, want));
    for (int i = 0; i < N_WANTED; i++) {
        path_of(got, snap, wanted[i]);
        T(same_bytes(got, path_of(src, fixture, wanted[i])));
        ssize_t n = readlink(got, target, sizeof target - 1);
        T(n > 0);
        if (n <= 0) continue;
        target[n] = '\0';
        T(!strncmp(target, "../../blobs/", 12)); /* relative, into this repo's blobs */
        if (!strcmp(wanted[i], "model.safetensors"))
            T(strlen(target + 12) == 64); /* LFS file: blob named by its sha256 */
        else
            T(strlen(target + 12) == 40); /* small file: blob named by its git sha1 */
    }
    for (size_t i = 0; i < sizeof unwanted / sizeof *unwanted; i++)
        T(!exists_l(path_of(got, snap, unwanted[i])));
    char blobs[PATHLEN];
    spf(blobs, sizeof blobs, "%s/models--org--clip/blobs", cache_dir);
    T(count_suffix(blobs, ".incomplete") == 0);
}

static long long wanted_bytes(void) {
    char src[PATHLEN];
    long long sum = 0;
    for (int i = 0; i < N_WANTED; i++)
        sum += file_size(path_of(src, fixture, wanted[i]));
    return sum;
}

/* ---- tests ---- */

static void test_ids(void) {
    char id[GZ_HUB_ID_MAX], rev[GZ_HUB_REV_MAX], dir[PATHLEN];
    T(gz_hub_valid_id("openai/clip-vit-base-patch32"));
    T(gz_hub_valid_id("Salesforce/blip-itm-base-coco"));
    T(gz_hub_valid_id("a_b/c.d"));
    T(!gz_hub_valid_id("gpt2"));          /* gaze needs ORG/NAME */
    T(!gz_hub_valid_id("a/b/c"));         /* one slash */
    T(!gz_hub_valid_id("org/na--me"));    /* "--" separates parts in the cache */
    T(!gz_hub_valid_id("org/na..me"));    /* ".." */
    T(!gz_hub_valid_id("-org/name"));     /* must start with a word character */
    T(!gz_hub_valid_id("org/name."));     /* and end with one */
    T(!gz_hub_valid_id("org/name.git"));  /* ".git" suffix */
    T(!gz_hub_valid_id("org/na me"));     /* no spaces */
    T(!gz_hub_valid_id("./models/clip")); /* a path */
    T(!gz_hub_valid_id("/models/clip"));
    T_STATUS(gz_hub_parse_id("org/name", id, sizeof id, rev, sizeof rev), GZ_OK);
    T(!strcmp(id, "org/name") && !strcmp(rev, "main"));
    T_STATUS(gz_hub_parse_id("org/name@v1.0", id, sizeof id, rev, sizeof rev), GZ_OK);
    T(!strcmp(id, "org/name") && !strcmp(rev, "v1.0"));
    T_STATUS(gz_hub_parse_id("org/name@refs/pr/1", id, sizeof id, rev, sizeof rev), GZ_OK);
    T(!strcmp(rev, "refs/pr/1"));
    T_STATUS(gz_hub_parse_id("org/name@", id, sizeof id, rev, sizeof rev), GZ_EINVAL);
    T_STATUS(gz_hub_parse_id("org/name@../x", id, sizeof id, rev, sizeof rev), GZ_EINVAL);
    T_STATUS(gz_hub_parse_id("org/na--me@main", id, sizeof id, rev, sizeof rev), GZ_EINVAL);
    T(id[0] == '\0');
    T_MSG("org/na--me");

    /* An existing folder named like an id is a path, not an id. */
    char cwd[PATHLEN];
    T(getcwd(cwd, sizeof cwd) != NULL);
    mkdirs(path_of(dir, root, "ids/org/name"));
    T(chdir(path_of(dir, root, "ids")) == 0);
    T(!gz_hub_looks_like_id("org/name"));
    T(gz_hub_looks_like_id("org/other"));
    T(gz_hub_looks_like_id("org/other@main"));
    T(!gz_hub_looks_like_id("org"));
    /* Asking leaves a pending message alone (the CLI asks while reporting another error). */
    T_STATUS(gz_hub_parse_id("org/na--me", id, sizeof id, rev, sizeof rev), GZ_EINVAL);
    T(!gz_hub_looks_like_id("not an id") && gz_hub_looks_like_id("org/other"));
    T_MSG("org/na--me");
    T(chdir(cwd) == 0);

    T_STATUS(gz_hub_repo_dir("/c", "org/name", dir, sizeof dir), GZ_OK);
    T(!strcmp(dir, "/c/models--org--name"));
    T_STATUS(gz_hub_repo_dir("/c", "org/name", dir, 10), GZ_EINVAL);
}

static void test_env(void) {
    static const char *const vars[] = {"HF_ENDPOINT",  "HF_TOKEN",       "HF_TOKEN_PATH", "HF_HOME",
                                       "HF_HUB_CACHE", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    char home[PATHLEN], tok[PATHLEN], want[PATHLEN];
    mkdirs(path_of(home, root, "hfhome"));
    write_text(path_of(tok, home, "token"), "hf_fromfile\n");
    setenv("HF_HOME", home, 1);
    gz_hub_params p = gz_hub_default_params();
    T(!strcmp(p.endpoint, "https://huggingface.co") && !p.token[0] && !p.cache_dir[0]);
    T(!p.offline && p.connect_timeout_s == 10 && p.max_retries == 2 && !p.progress);
    T_STATUS(gz_hub_params_from_env(&p), GZ_OK);
    T(!strcmp(p.token, "hf_fromfile"));
    T(!strcmp(p.cache_dir, path_of(want, home, "hub")));
    T(!strcmp(p.endpoint, "https://huggingface.co") && !p.offline);

    setenv("HF_ENDPOINT", "http://mirror.example//", 1);
    setenv("HF_TOKEN", "hf_fromenv", 1);
    setenv("HF_HUB_CACHE", "/somewhere/hub", 1);
    setenv("HF_HUB_OFFLINE", "TRUE", 1);
    p = gz_hub_default_params();
    T_STATUS(gz_hub_params_from_env(&p), GZ_OK);
    T(!strcmp(p.endpoint, "http://mirror.example"));
    T(!strcmp(p.token, "hf_fromenv"));
    T(!strcmp(p.cache_dir, "/somewhere/hub"));
    T(p.offline == 1);

    unsetenv("HF_TOKEN");
    write_text(path_of(tok, root, "other-token"), "hf_frompath");
    setenv("HF_TOKEN_PATH", tok, 1);
    setenv("HF_HUB_OFFLINE", "0", 1);
    p = gz_hub_default_params();
    T_STATUS(gz_hub_params_from_env(&p), GZ_OK);
    T(!strcmp(p.token, "hf_frompath") && p.offline == 0);
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
}

static void test_pull(void) {
    standin s;
    char snap[PATHLEN], path[PATHLEN], buf[128];
    gz_hub_pull_stats st;
    standin_start(&s, "pull", NULL);
    gz_hub_params p = params_for(&s, "cache1");
    p.progress = on_progress;
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, &st), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    T(!strcmp(st.commit, COMMIT));
    T(st.files == N_WANTED && st.files_downloaded == N_WANTED);
    T(st.bytes_downloaded == wanted_bytes() && st.bytes_total == wanted_bytes());
    T(progress_calls > 0 && progress_last_done == progress_last_total);
    T(progress_last_total == file_size(path_of(path, fixture, "model.safetensors")));
    spf(path, sizeof path, "%s/models--org--clip/refs/main", p.cache_dir);
    char *ref = slurp(path, NULL);
    T(ref && !strcmp(ref, COMMIT)); /* the commit, no newline, as huggingface_hub writes */
    free(ref);
    T(log_count(s.log, "/org/clip/resolve/" COMMIT "/model.safetensors") == 2); /* HEAD+GET */
    T(log_count(s.log, "bad-sha") == 0);

    /* Pulling again asks for the file list only and downloads nothing. */
    int lines = log_lines(s.log);
    T_STATUS(gz_hub_pull("org/clip", "main", &p, snap, sizeof snap, &st), GZ_OK);
    T(st.files == N_WANTED && st.files_downloaded == 0 && st.bytes_downloaded == 0);
    T(st.bytes_total == wanted_bytes());
    T(log_lines(s.log) == lines + 1);
    /* By commit: the same snapshot, and no ref named after the commit. */
    T_STATUS(gz_hub_pull("org/clip", COMMIT, &p, snap, sizeof snap, &st), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    spf(path, sizeof path, "%s/models--org--clip/refs/" COMMIT, p.cache_dir);
    T(!exists_l(path));

    /* Unknown repository and revision. */
    T_STATUS(gz_hub_pull("org/nope", NULL, &p, snap, sizeof snap, NULL), GZ_ENOTFOUND);
    T_MSG("org/nope");
    T_MSG(s.endpoint);
    T(snap[0] == '\0');
    T_STATUS(gz_hub_pull("org/clip", "v9", &p, snap, sizeof snap, NULL), GZ_ENOTFOUND);
    T_MSG("v9");

    /* Offline: the cache only, not one request. */
    lines = log_lines(s.log);
    p.offline = 1;
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, &st), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    T(!strcmp(st.commit, COMMIT));
    T_STATUS(gz_hub_pull("org/nope", NULL, &p, snap, sizeof snap, NULL), GZ_ENOTFOUND);
    T_MSG("org/nope");
    T(log_lines(s.log) == lines);
    T_STATUS(gz_hub_resolve_cached("org/clip", "main", p.cache_dir, buf, 16), GZ_EINVAL);

    /* A file larger than the process may write: a write error naming the file; the next pull
     * resumes from what was written. */
    gz_hub_params q = params_for(&s, "cache-fsize");
    struct rlimit old, lim;
    T(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = FSIZE_LIMIT;
    signal(SIGXFSZ, SIG_IGN);
    T(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    gz_status fs = gz_hub_pull("org/clip", NULL, &q, snap, sizeof snap, NULL);
    T(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);
    T(fs == GZ_EIO);
    T_MSG("model.safetensors");
    T_MSG(strerror(EFBIG));
    spf(path, sizeof path, "%s/models--org--clip/snapshots/" COMMIT "/model.safetensors",
        q.cache_dir);
    T(!exists_l(path));
    lines = log_count(s.log, "range=bytes=2097152-");
    T_STATUS(gz_hub_pull("org/clip", NULL, &q, snap, sizeof snap, &st), GZ_OK);
    check_snapshot(q.cache_dir, snap);
    T(log_count(s.log, "range=bytes=2097152-") == lines + 2); /* resolve + lfs-blobs */
    standin_stop(&s);
}

/* Write folder <root>/<name> holding the files given as name, content pairs (NULL-ended). */
static void make_repo(char *dir, const char *name, ...) {
    char path[PATHLEN];
    path_of(dir, root, name);
    mkdirs(dir);
    va_list ap;
    va_start(ap, name);
    for (const char *f; (f = va_arg(ap, const char *)) != NULL;) {
        const char *text = va_arg(ap, const char *);
        path_of(path, dir, f);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        mkdirs(path);
        *slash = '/';
        write_text(path, text);
    }
    va_end(ap);
}

/* Which files a pull picks: one weights format (safetensors, sharded or not, before
 * pytorch_model.bin), never TF/Flax/ONNX; and repositories gaze cannot run are refused with
 * the list of what is there. */
static void test_pick_files(void) {
    standin s;
    char snap[PATHLEN], path[PATHLEN], d1[PATHLEN], d2[PATHLEN], d3[PATHLEN], d4[PATHLEN];
    const char *cfg = "{\"model_type\": \"clip\"}";
    const char *index = "{\"metadata\": {}, \"weight_map\": {\"a\": "
                        "\"model-00001-of-00002.safetensors\", \"b\": "
                        "\"model-00002-of-00002.safetensors\", \"c\": "
                        "\"model-00001-of-00002.safetensors\"}}";
    make_repo(d1, "repo-sharded", "config.json", cfg, "model.safetensors.index.json", index,
              "model-00001-of-00002.safetensors", "shard one", "model-00002-of-00002.safetensors",
              "shard two", "pytorch_model.bin", "torch", "tf_model.h5", "tf", "flax_model.msgpack",
              "flax", "onnx/model.onnx", "onnx", "vocab.txt", "[PAD]\n", "README.md", "readme",
              NULL);
    make_repo(d2, "repo-torch", "config.json", cfg, "pytorch_model.bin", "torch weights",
              "tf_model.h5", "tf", NULL);
    make_repo(d3, "repo-noweights", "config.json", cfg, "flax_model.msgpack", "x", NULL);
    make_repo(d4, "repo-noconfig", "model.safetensors", "x", NULL);
    char d5[PATHLEN], r5[PATHLEN + 32];
    make_repo(d5, "repo-bert", "config.json",
              "{\"model_type\": \"bert\", \"architectures\": [\"BertModel\"]}", "model.safetensors",
              "bert weights", "vocab.txt", "[PAD]\n", NULL);
    spf(r5, sizeof r5, "org/bert=%s", d5);
    char r1[PATHLEN + 32], r2[PATHLEN + 32], r3[PATHLEN + 32], r4[PATHLEN + 32];
    spf(r1, sizeof r1, "org/sharded=%s", d1);
    spf(r2, sizeof r2, "org/torch=%s", d2);
    spf(r3, sizeof r3, "org/noweights=%s", d3);
    spf(r4, sizeof r4, "org/noconfig=%s", d4);
    const char *const extra[] = {"--repo", r1, "--repo", r2, "--repo", r3,
                                 "--repo", r4, "--repo", r5, NULL};
    standin_start(&s, "pick", extra);
    gz_hub_params p = params_for(&s, "cache-pick");
    gz_hub_pull_stats st;

    T_STATUS(gz_hub_pull("org/sharded", NULL, &p, snap, sizeof snap, &st), GZ_OK);
    static const char *const sharded_in[] = {"config.json", "model.safetensors.index.json",
                                             "model-00001-of-00002.safetensors",
                                             "model-00002-of-00002.safetensors", "vocab.txt"};
    static const char *const sharded_out[] = {"pytorch_model.bin", "tf_model.h5",
                                              "flax_model.msgpack", "onnx", "README.md"};
    for (size_t i = 0; i < sizeof sharded_in / sizeof *sharded_in; i++)
        T(same_bytes(path_of(path, snap, sharded_in[i]), path_of(d4, d1, sharded_in[i])));
    for (size_t i = 0; i < sizeof sharded_out / sizeof *sharded_out; i++)
        T(!exists_l(path_of(path, snap, sharded_out[i])));
    T(st.files == 5 && st.files_downloaded == 5);

    T_STATUS(gz_hub_pull("org/torch", NULL, &p, snap, sizeof snap, &st), GZ_OK);
    T(same_bytes(path_of(path, snap, "pytorch_model.bin"), path_of(d4, d2, "pytorch_model.bin")));
    T(!exists_l(path_of(path, snap, "tf_model.h5")));
    T(st.files == 2);

    int lines = log_count(s.log, "/resolve/");
    T_STATUS(gz_hub_pull("org/noweights", NULL, &p, snap, sizeof snap, NULL), GZ_EUNSUPPORTED);
    T_MSG("holds no model gaze can run");
    T_MSG("flax_model.msgpack");
    T_STATUS(gz_hub_pull("org/noconfig", NULL, &p, snap, sizeof snap, NULL), GZ_EUNSUPPORTED);
    T_MSG("no config.json");
    T(log_count(s.log, "/resolve/") == lines); /* refused before downloading anything */

    /* A family gaze cannot run: refused after config.json, before the weights. */
    T_STATUS(gz_hub_pull("org/bert", NULL, &p, snap, sizeof snap, NULL), GZ_EUNSUPPORTED);
    T_MSG("org/bert holds no model gaze can run");
    T_MSG("'bert'");
    T(log_count(s.log, "/org/bert/resolve/" COMMIT "/config.json") == 2);
    T(log_count(s.log, "/org/bert/resolve/" COMMIT "/model.safetensors") == 0);
    standin_stop(&s);
}

static void test_resume(void) {
    standin s;
    char snap[PATHLEN], path[PATHLEN], cut[64];
    gz_hub_pull_stats st;
    spf(cut, sizeof cut, "model.safetensors:%d", CUT_AT);
    const char *const extra[] = {"--cut", cut, NULL};

    /* Within one pull: the dropped transfer is resumed at the cut, no byte is sent twice. */
    standin_start(&s, "resume1", extra);
    gz_hub_params p = params_for(&s, "cache-resume1");
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, &st), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    T(log_count(s.log, "range=bytes=1000000- auth=no") == 2);
    T(log_count(s.log, "GET /lfs-blobs/") == 2);
    T(st.bytes_downloaded == wanted_bytes());
    standin_stop(&s);

    /* Across pulls: no retries, so the first pull fails and leaves the partial blob; the next
     * one asks for the rest only. */
    standin_start(&s, "resume2", extra);
    p = params_for(&s, "cache-resume2");
    p.max_retries = 0;
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, &st), GZ_EIO);
    T_MSG("model.safetensors");
    T(snap[0] == '\0');
    spf(path, sizeof path, "%s/models--org--clip/blobs", p.cache_dir);
    T(count_suffix(path, ".incomplete") == 1);
    spf(path, sizeof path, "%s/models--org--clip/refs/main", p.cache_dir);
    T(!exists_l(path)); /* the ref is written once the snapshot is complete */
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, &st), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    T(log_count(s.log, "range=bytes=1000000-") == 2);
    T(st.files_downloaded >= 1 && st.bytes_downloaded < wanted_bytes());
    standin_stop(&s);
}

static void test_bad_sha(void) {
    standin s;
    char snap[PATHLEN], path[PATHLEN], blobs[PATHLEN];
    const char *const extra[] = {"--bad-sha", "model.safetensors", NULL};
    standin_start(&s, "badsha", extra);
    gz_hub_params p = params_for(&s, "cache-badsha");
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, NULL), GZ_ECORRUPT);
    T_MSG("model.safetensors");
    T_MSG("sha256 mismatch");
    /* both hashes: what arrived (true sha256 of the fixture) and what was announced */
    T_MSG("f88dbed4441cb1914aec07788af702d2c79d75edf036bc0cd84b7986a070307f");
    spf(path, sizeof path, "%s/models--org--clip/snapshots/" COMMIT "/model.safetensors",
        p.cache_dir);
    T(!exists_l(path));
    spf(blobs, sizeof blobs, "%s/models--org--clip/blobs", p.cache_dir);
    T(count_suffix(blobs, ".incomplete") == 0);
    T(count_suffix(blobs, "f88dbed4441cb1914aec07788af702d2c79d75edf036bc0cd84b7986a070307f") == 0);
    standin_stop(&s);
}

static void test_token(void) {
    standin s;
    char snap[PATHLEN];
    const char *const extra[] = {"--token", "hf_secret", "--lfs-host", "localhost", NULL};
    standin_start(&s, "token", extra);
    gz_hub_params p = params_for(&s, "cache-token1");
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, NULL), GZ_EIO);
    T_MSG("gated or private");
    T_MSG("HF_TOKEN");
    spf(p.token, sizeof p.token, "hf_wrong");
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, NULL), GZ_EIO);
    T_MSG("refused");
    spf(p.token, sizeof p.token, "hf_secret");
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, NULL), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    /* The token went to the endpoint, never to the other host of the LFS redirect. */
    T(log_count(s.log, "GET /lfs-blobs/") == 1);
    T(log_count(s.log, "auth=yes") >= 1 + 2 * N_WANTED); /* API, HEAD and GET of each file */
    char *log = slurp(s.log, NULL);
    int leaked = 0;
    for (char *l = log; l && *l;) {
        char *e = strchr(l, '\n');
        if (e) *e = '\0';
        if (strstr(l, "/lfs-blobs/") && strstr(l, "auth=yes")) leaked = 1;
        l = e ? e + 1 : l + strlen(l);
    }
    free(log);
    T(!leaked);

    /* The token from HF_TOKEN, through gz_hub_params_from_env. */
    char cache[PATHLEN];
    setenv("HF_TOKEN", "hf_secret", 1);
    setenv("HF_ENDPOINT", s.endpoint, 1);
    setenv("HF_HUB_CACHE", path_of(cache, root, "cache-token2"), 1);
    p = gz_hub_default_params();
    T_STATUS(gz_hub_params_from_env(&p), GZ_OK);
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, NULL), GZ_OK);
    check_snapshot(p.cache_dir, snap);
    unsetenv("HF_TOKEN");
    unsetenv("HF_ENDPOINT");
    unsetenv("HF_HUB_CACHE");
    standin_stop(&s);
}

static void test_unreachable(void) {
    char snap[PATHLEN];
    gz_hub_params p = params_for(NULL, "cache-unreachable");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    T_STATUS(gz_hub_pull("org/clip", NULL, &p, snap, sizeof snap, NULL), GZ_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    T_MSG("http://127.0.0.1:1");
    T_MSG("cannot reach");
    T((t1.tv_sec - t0.tv_sec) < 5);
}

/* A cache as huggingface_hub lays it out, written by hand. */
static void test_hand_cache(void) {
    const char *c1 = "1111111111111111111111111111111111111111";
    const char *c2 = "2222222222222222222222222222222222222222";
    char cache[PATHLEN], r[PATHLEN], path[PATHLEN], dir[PATHLEN];
    path_of(cache, root, "hand");
    path_of(r, cache, "models--acme--tiny");
    spf(path, sizeof path, "%s/snapshots/%s/sub", r, c1);
    mkdirs(path);
    spf(path, sizeof path, "%s/snapshots/%s", r, c2);
    mkdirs(path);
    mkdirs(path_of(path, r, "blobs"));
    mkdirs(path_of(path, r, "refs/pr"));
    mkdirs(path_of(path, cache, "datasets--acme--data/blobs")); /* not a model: ignored */
    mkdirs(path_of(path, cache, ".locks/models--acme--tiny"));
    write_text(path_of(path, r, "blobs/aaaa"), "{\"model_type\": \"clip\"}"); /* 22 bytes */
    write_text(path_of(path, r, "blobs/bbbb"), "0123456789");                 /* 10 */
    write_text(path_of(path, r, "blobs/cccc"), "only in the pr");             /* 14 */
    write_text(path_of(path, r, "blobs/dddd.incomplete"), "partial");         /* not counted */
    spf(path, sizeof path, "%s/snapshots/%s/config.json", r, c1);
    T(symlink("../../blobs/aaaa", path) == 0);
    spf(path, sizeof path, "%s/snapshots/%s/sub/extra.txt", r, c1);
    T(symlink("../../../blobs/bbbb", path) == 0);
    spf(path, sizeof path, "%s/snapshots/%s/config.json", r, c2);
    T(symlink("../../blobs/aaaa", path) == 0);
    spf(path, sizeof path, "%s/snapshots/%s/pr.txt", r, c2);
    T(symlink("../../blobs/cccc", path) == 0);
    write_text(path_of(path, r, "refs/main"), c1);
    write_text(path_of(path, r, "refs/v1.0"), c1);
    write_text(path_of(path, r, "refs/pr/1"), c2);

    char want[PATHLEN];
    spf(want, sizeof want, "%s/snapshots/%s", r, c1);
    T_STATUS(gz_hub_resolve_cached("acme/tiny", NULL, cache, dir, sizeof dir), GZ_OK);
    T(!strcmp(dir, want));
    char *cfg = slurp(path_of(path, dir, "config.json"), NULL);
    T(cfg && !strcmp(cfg, "{\"model_type\": \"clip\"}"));
    free(cfg);
    T_STATUS(gz_hub_resolve_cached("acme/tiny", "v1.0", cache, dir, sizeof dir), GZ_OK);
    T(!strcmp(dir, want));
    T_STATUS(gz_hub_resolve_cached("acme/tiny", c1, cache, dir, sizeof dir), GZ_OK);
    T(!strcmp(dir, want));
    spf(want, sizeof want, "%s/snapshots/%s", r, c2);
    T_STATUS(gz_hub_resolve_cached("acme/tiny", "pr/1", cache, dir, sizeof dir), GZ_OK);
    T(!strcmp(dir, want));
    T_STATUS(gz_hub_resolve_cached("acme/tiny", "v2", cache, dir, sizeof dir), GZ_ENOTFOUND);
    T_MSG("acme/tiny");
    T(dir[0] == '\0');
    T_STATUS(gz_hub_resolve_cached("acme/tiny", "3333333333333333333333333333333333333333", cache,
                                   dir, sizeof dir),
             GZ_ENOTFOUND);
    T_STATUS(gz_hub_resolve_cached("acme/other", NULL, cache, dir, sizeof dir), GZ_ENOTFOUND);
    T_MSG("acme/other");
    T_STATUS(gz_hub_resolve_cached("acme/tiny", "../x", cache, dir, sizeof dir), GZ_EINVAL);

    gz_hub_cached_model *m = NULL;
    int n = -1;
    T_STATUS(gz_hub_list(cache, &m, &n), GZ_OK);
    T(n == 1);
    if (n == 1) {
        T(!strcmp(m[0].repo_id, "acme/tiny") && !strcmp(m[0].dir, r));
        T(m[0].size_bytes == 22 + 10 + 14);
        T(m[0].n_refs == 3);
        if (m[0].n_refs == 3) {
            T(!strcmp(m[0].refs[0].revision, "main") && !strcmp(m[0].refs[0].commit, c1));
            T(!strcmp(m[0].refs[1].revision, "pr/1") && !strcmp(m[0].refs[1].commit, c2));
            T(!strcmp(m[0].refs[2].revision, "v1.0") && !strcmp(m[0].refs[2].commit, c1));
        }
        T(m[0].n_snapshots == 2);
        if (m[0].n_snapshots == 2)
            T(!strcmp(m[0].snapshots[0], c1) && !strcmp(m[0].snapshots[1], c2));
    }
    gz_hub_list_free(m, n);
    T_STATUS(gz_hub_list(path_of(path, root, "no-such-cache"), &m, &n), GZ_OK);
    T(n == 0 && m == NULL);

    /* Removing the pr ref drops its snapshot and the blob only it used. */
    T_STATUS(gz_hub_rm(cache, "acme/tiny", "pr/1"), GZ_OK);
    T(!exists_l(path_of(path, r, "refs/pr/1")));
    T(!exists_l(path_of(path, r, "blobs/cccc")));
    T(exists_l(path_of(path, r, "blobs/aaaa")) && exists_l(path_of(path, r, "blobs/bbbb")));
    T(exists_l(path_of(path, r, "blobs/dddd.incomplete")));
    spf(path, sizeof path, "%s/snapshots/%s", r, c2);
    T(!exists_l(path));
    /* v1.0 still names c1: its snapshot stays. */
    T_STATUS(gz_hub_rm(cache, "acme/tiny", "v1.0"), GZ_OK);
    T_STATUS(gz_hub_resolve_cached("acme/tiny", "main", cache, dir, sizeof dir), GZ_OK);
    T(exists_l(path_of(path, r, "blobs/aaaa")));
    T_STATUS(gz_hub_rm(cache, "acme/tiny", "v1.0"), GZ_ENOTFOUND);
    /* The last snapshot gone: the whole folder goes. */
    T_STATUS(gz_hub_rm(cache, "acme/tiny", "main"), GZ_OK);
    T(!exists_l(r));
    T_STATUS(gz_hub_rm(cache, "acme/tiny", NULL), GZ_ENOTFOUND);
    T_MSG("acme/tiny");

    /* A pulled repository removed whole, with its lock folder. */
    char c1dir[PATHLEN];
    path_of(c1dir, root, "cache1");
    T_STATUS(gz_hub_list(c1dir, &m, &n), GZ_OK);
    T(n == 1 && m && !strcmp(m[0].repo_id, "org/clip") && m[0].size_bytes == wanted_bytes());
    gz_hub_list_free(m, n);
    T_STATUS(gz_hub_rm(c1dir, "org/clip", NULL), GZ_OK);
    T(!exists_l(path_of(path, c1dir, "models--org--clip")));
    T(!exists_l(path_of(path, c1dir, ".locks/models--org--clip")));
}

int main(void) {
    spf(fixture, sizeof fixture, "%s/fixtures/clip", GZ_TEST_DATA);
    spf(script, sizeof script, "%s/../hub_standin.py", GZ_TEST_DATA);
    const char *base = getenv("TMPDIR");
    spf(root, sizeof root, "%s/gaze-test-hub-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp %s: %s\n", root, strerror(errno));
        return 3;
    }
    test_ids();
    test_env();
    test_pull();
    test_pick_files();
    test_resume();
    test_bad_sha();
    test_token();
    test_unreachable();
    test_hand_cache();
    char cmd[PATHLEN + 16];
    spf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (getenv("GZ_TEST_KEEP"))
        fprintf(stderr, "kept %s (GZ_TEST_KEEP)\n", root);
    else if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return gz_test_finish("test_hub_pull", checks);
}
