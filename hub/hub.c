/* hub.c - Hugging Face Hub client (the Hub section of gaze.h): parameters, repository ids, the
 * cache layout (resolve, locate, list, rm) and the HTTP pull over libcurl.
 *
 * The protocol follows huggingface_hub (hf_api.py repo_info, file_download.py
 * get_hf_file_metadata / http_get / _create_symlink): the revision API gives the commit and
 * file list; a HEAD on the resolve URL, not following redirects to other hosts, gives the
 * etag (X-Linked-Etag for LFS files, else ETag, quotes and W/ removed) and the size
 * (X-Linked-Size, else Content-Length); the GET follows redirects and drops the token when a
 * redirect leaves the endpoint's host. */
#include "gaze.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_ID_LEN_MAX 96           /* huggingface_hub's limit on repo ids */
#define HUB_ETAG_MAX 128            /* etags are 40 (git sha1) or 64 (sha256) hex digits */
#define HUB_SHA256_HEX 64           /* hex digits of a sha256 */
#define HUB_API_BODY_MAX (64 << 20) /* largest revision-API JSON we accept */
#define HUB_ERR_BODY_MAX 4096       /* bytes of an error reply kept for the message */
#define HUB_MAX_REDIRECTS 10        /* GET: redirects followed before giving up */
#define HUB_MAX_HEAD_REDIRECTS 5    /* HEAD: same-host (relative) redirects followed */
#define HUB_LOW_SPEED_BYTES 1024    /* bytes/s below which low_speed_time_s aborts */
#define HUB_FILES_MAX 4096          /* files one pull may select (shards included) */
#define HUB_WALK_DEPTH 16           /* deepest folder nesting walked in a cache */
#define HUB_COPY_CHUNK (1 << 16)    /* read size when hashing a file */
#define HUB_FOUND_LIST_MAX 400      /* characters of "found files ..." in messages */

/* ---- small helpers ---- */

/* Copy s into dst (cap bytes); 0 when it does not fit (dst then holds ""). */
static int copy_str(char *dst, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (cap == 0) return 0;
    if (n >= cap) {
        dst[0] = '\0';
        return 0;
    }
    memcpy(dst, s, n + 1);
    return 1;
}

/* snprintf into buf; 0 when truncated. */
static int fmt_ok(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fmt_ok(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

static int is_hex_n(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return s[n] == '\0';
}

static int is_commit(const char *s) { return strlen(s) == GZ_HUB_COMMIT_LEN && is_hex_n(s, 40); }

static int is_sha256(const char *s) { return strlen(s) == HUB_SHA256_HEX && is_hex_n(s, 64); }

/* A relative path safe to join under a folder: no leading '/', no "." / ".." / empty
 * components, no control characters or backslashes. */
static int safe_rel_path(const char *s) {
    if (!*s || *s == '/') return 0;
    const char *c = s;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f || c[i] == '\\') return 0;
        if (!e) break;
        c = e + 1;
    }
    return c[0] != '\0' || s[strlen(s) - 1] != '/';
}

/* mkdir -p for path (mode 0777 & ~umask). Returns GZ_OK or GZ_EIO with errno text. */
static gz_status mkdir_p(const char *path) {
    char tmp[GZ_HUB_PATH_MAX];
    if (!copy_str(tmp, sizeof tmp, path)) return GZ_FAIL(GZ_EINVAL, "%s: path too long", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return GZ_FAIL(GZ_EIO, "%s: cannot create folder: %s", tmp, strerror(errno));
        *s = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return GZ_FAIL(GZ_EIO, "%s: cannot create folder: %s", tmp, strerror(errno));
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return GZ_FAIL(GZ_EIO, "%s: not a folder", tmp);
    return GZ_OK;
}

/* Read a small regular file (a ref) into buf, trimmed of surrounding whitespace. Returns GZ_OK,
 * GZ_ENOTFOUND when absent, GZ_EIO otherwise. */
static gz_status read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return GZ_ENOTFOUND;
        return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return GZ_FAIL(GZ_EIO, "%s: not a regular file", path);
    }
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(err));
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    size_t lead = strspn(buf, " \t\r\n");
    memmove(buf, buf + lead, (size_t)n - lead + 1);
    return GZ_OK;
}

/* Write data to path atomically: a new temp file beside it (O_EXCL|O_NOFOLLOW), then rename. */
static gz_status write_atomic(const char *path, const char *data) {
    char tmp[GZ_HUB_PATH_MAX];
    static _Atomic unsigned seq; /* distinct names for threads of one process */
    if (!fmt_ok(tmp, sizeof tmp, "%s.tmp%ld.%u", path, (long)getpid(), seq++))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return GZ_FAIL(GZ_EIO, "%s: %s", tmp, strerror(errno));
    size_t n = strlen(data);
    ssize_t w = write(fd, data, n);
    int err = errno;
    if (w != (ssize_t)n || fsync(fd) != 0 || close(fd) != 0) {
        if (w == (ssize_t)n) err = errno;
        if (w != (ssize_t)n && w >= 0) err = ENOSPC;
        unlink(tmp);
        return GZ_FAIL(GZ_EIO, "%s: cannot write: %s", tmp, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return GZ_FAIL(GZ_EIO, "%s: cannot rename into place: %s", path, strerror(err));
    }
    return GZ_OK;
}

/* Remove path and everything below it (symlinks are removed, never followed). */
static gz_status rm_tree(const char *path, int depth) {
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return GZ_OK;
        return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return GZ_FAIL(GZ_EIO, "%s: cannot remove: %s", path, strerror(errno));
        return GZ_OK;
    }
    if (depth > HUB_WALK_DEPTH) return GZ_FAIL(GZ_EIO, "%s: folders nested too deep", path);
    DIR *d = opendir(path);
    if (!d) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    gz_status s = GZ_OK;
    struct dirent *e;
    while (s == GZ_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[GZ_HUB_PATH_MAX];
        if (!fmt_ok(sub, sizeof sub, "%s/%s", path, e->d_name))
            s = GZ_FAIL(GZ_EINVAL, "%s/%s: path too long", path, e->d_name);
        else
            s = rm_tree(sub, depth + 1);
    }
    closedir(d);
    if (s == GZ_OK && rmdir(path) != 0 && errno != ENOENT)
        s = GZ_FAIL(GZ_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return s;
}

/* ---- parameters ---- */

gz_hub_params gz_hub_default_params(void) {
    gz_hub_params p;
    memset(&p, 0, sizeof p);
    memcpy(p.endpoint, HUB_DEFAULT_ENDPOINT, sizeof HUB_DEFAULT_ENDPOINT);
    p.connect_timeout_s = 10;
    p.low_speed_time_s = 30;
    p.max_retries = 2;
    return p;
}

static int env_true(const char *v) {
    return v && (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
                 !strcasecmp(v, "on"));
}

gz_status gz_hub_params_from_env(gz_hub_params *p) {
    const char *v = getenv("HF_ENDPOINT");
    if (v && *v) {
        if (!copy_str(p->endpoint, sizeof p->endpoint, v))
            return GZ_FAIL(GZ_EINVAL, "HF_ENDPOINT: longer than %d bytes", GZ_HUB_URL_MAX - 1);
        size_t n = strlen(p->endpoint);
        while (n > 0 && p->endpoint[n - 1] == '/')
            p->endpoint[--n] = '\0';
    }
    char home[GZ_HUB_PATH_MAX];
    const char *hf_home = getenv("HF_HOME");
    int have_home = 1;
    if (hf_home && *hf_home) {
        have_home = copy_str(home, sizeof home, hf_home);
    } else if ((v = getenv("XDG_CACHE_HOME")) && *v) {
        have_home = fmt_ok(home, sizeof home, "%s/huggingface", v);
    } else if ((v = getenv("HOME")) && *v) {
        have_home = fmt_ok(home, sizeof home, "%s/.cache/huggingface", v);
    } else {
        have_home = 0;
        home[0] = '\0';
    }
    if (!have_home && hf_home) return GZ_FAIL(GZ_EINVAL, "HF_HOME: path too long");

    v = getenv("HF_TOKEN");
    if (v && *v) {
        if (!copy_str(p->token, sizeof p->token, v))
            return GZ_FAIL(GZ_EINVAL, "HF_TOKEN: longer than %d bytes", GZ_HUB_TOKEN_MAX - 1);
    } else {
        char path[GZ_HUB_PATH_MAX];
        const char *tp = getenv("HF_TOKEN_PATH");
        int ok = (tp && *tp) ? copy_str(path, sizeof path, tp)
                             : (have_home && fmt_ok(path, sizeof path, "%s/token", home));
        char tok[GZ_HUB_TOKEN_MAX];
        if (ok && read_small(path, tok, sizeof tok) == GZ_OK && tok[0]) {
            tok[strcspn(tok, "\r\n")] = '\0'; /* the first line */
            copy_str(p->token, sizeof p->token, tok);
        }
        gz_clear_error(); /* an unreadable token file means anonymous, as in huggingface_hub */
    }

    v = getenv("HF_HUB_CACHE");
    if (v && *v) {
        if (!copy_str(p->cache_dir, sizeof p->cache_dir, v))
            return GZ_FAIL(GZ_EINVAL, "HF_HUB_CACHE: path too long");
    } else {
        if (!have_home)
            return GZ_FAIL(GZ_EINVAL, "no cache folder: set HF_HUB_CACHE, HF_HOME or HOME");
        if (!fmt_ok(p->cache_dir, sizeof p->cache_dir, "%s/hub", home))
            return GZ_FAIL(GZ_EINVAL, "HF_HOME: path too long");
    }
    if (getenv("HF_HUB_OFFLINE")) p->offline = env_true(getenv("HF_HUB_OFFLINE"));
    return GZ_OK;
}

/* ---- repository ids ---- */

static int id_char(int c) { return isalnum(c) || c == '-' || c == '_' || c == '.'; }
static int word_char(int c) { return isalnum(c) || c == '_'; }

/* One part of an id (ORG or NAME), n characters at s. */
static int valid_part(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!id_char((unsigned char)s[i])) return 0;
    return word_char((unsigned char)s[0]) && word_char((unsigned char)s[n - 1]);
}

int gz_hub_valid_id(const char *s) {
    if (!s) return 0;
    size_t n = strlen(s);
    if (n == 0 || n > HUB_ID_LEN_MAX) return 0;
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/')) return 0;
    if (strstr(s, "--") || strstr(s, "..")) return 0;
    if (n >= 4 && !strcmp(s + n - 4, ".git")) return 0;
    return valid_part(s, (size_t)(slash - s)) && valid_part(slash + 1, strlen(slash + 1));
}

/* Why a string is not "ORG/NAME[@REV]" (split_id), without touching the error message, so
 * that gz_hub_looks_like_id can be asked while a caller's message is pending. */
typedef enum { ID_OK, ID_NULL, ID_LONG, ID_BAD, ID_BAD_REV, ID_REV_LONG } id_check;

static id_check split_id(const char *s, char *id, size_t id_cap, char *rev, size_t rev_cap) {
    if (id_cap) id[0] = '\0';
    if (rev_cap) rev[0] = '\0';
    if (!s) return ID_NULL;
    const char *at = strchr(s, '@');
    size_t n = at ? (size_t)(at - s) : strlen(s);
    char tmp[GZ_HUB_ID_MAX];
    if (n >= sizeof tmp || n >= id_cap) return ID_LONG;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!gz_hub_valid_id(tmp)) return ID_BAD;
    const char *r = at ? at + 1 : "main";
    if (!safe_rel_path(r) || strchr(r, '@')) return ID_BAD_REV;
    if (!copy_str(rev, rev_cap, r)) return ID_REV_LONG;
    memcpy(id, tmp, n + 1);
    return ID_OK;
}

gz_status gz_hub_parse_id(const char *s, char *id, size_t id_cap, char *rev, size_t rev_cap) {
    switch (split_id(s, id, id_cap, rev, rev_cap)) {
    case ID_OK: return GZ_OK;
    case ID_NULL: return GZ_FAIL(GZ_EINVAL, "no repository id");
    case ID_LONG:
        return GZ_FAIL(GZ_EINVAL, "%s: not a repository id (ORG/NAME, at most %d characters)", s,
                       HUB_ID_LEN_MAX);
    case ID_BAD:
        return GZ_FAIL(GZ_EINVAL,
                       "%s: not a repository id (ORG/NAME of letters, digits, '-', '_', '.')", s);
    case ID_BAD_REV: return GZ_FAIL(GZ_EINVAL, "%s: bad revision \"%s\"", s, strchr(s, '@') + 1);
    case ID_REV_LONG: return GZ_FAIL(GZ_EINVAL, "%s: revision too long", s);
    }
    return GZ_FAIL(GZ_EINVAL, "%s: not a repository id", s);
}

int gz_hub_looks_like_id(const char *s) {
    char id[GZ_HUB_ID_MAX], rev[GZ_HUB_REV_MAX];
    if (split_id(s, id, sizeof id, rev, sizeof rev) != ID_OK) return 0;
    struct stat sb;
    return lstat(s, &sb) != 0;
}

gz_status gz_hub_repo_dir(const char *cache_dir, const char *repo_id, char *buf, size_t cap) {
    if (cap) buf[0] = '\0';
    if (!gz_hub_valid_id(repo_id))
        return GZ_FAIL(GZ_EINVAL, "%s: not a repository id", repo_id ? repo_id : "(null)");
    if (!cache_dir || !*cache_dir) return GZ_FAIL(GZ_EINVAL, "no hub cache folder set");
    const char *slash = strchr(repo_id, '/');
    if (!fmt_ok(buf, cap, "%s/models--%.*s--%s", cache_dir, (int)(slash - repo_id), repo_id,
                slash + 1)) {
        if (cap) buf[0] = '\0';
        return GZ_FAIL(GZ_EINVAL, "%s: cache path too long", cache_dir);
    }
    return GZ_OK;
}

/* ---- offline resolution ---- */

/* Commit named by revision in repo folder rdir: the revision itself when it is a commit with a
 * snapshot, else the content of refs/<revision>. GZ_ENOTFOUND (no message) when absent. */
static gz_status ref_commit(const char *rdir, const char *revision, char commit[41]) {
    char path[GZ_HUB_PATH_MAX], buf[128];
    if (is_commit(revision)) {
        memcpy(commit, revision, 41);
        return GZ_OK;
    }
    if (!safe_rel_path(revision)) return GZ_FAIL(GZ_EINVAL, "bad revision \"%s\"", revision);
    if (!fmt_ok(path, sizeof path, "%s/refs/%s", rdir, revision))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", rdir);
    gz_status s = read_small(path, buf, sizeof buf);
    if (s != GZ_OK) return s;
    if (!is_commit(buf))
        return GZ_FAIL(GZ_ECORRUPT, "%s: does not hold a commit hash (\"%.60s\")", path, buf);
    memcpy(commit, buf, 41);
    return GZ_OK;
}

gz_status gz_hub_resolve_cached(const char *repo_id, const char *revision, const char *cache_dir,
                                char *dir, size_t cap) {
    if (cap) dir[0] = '\0';
    if (!revision) revision = "main";
    char rdir[GZ_HUB_PATH_MAX], commit[41], snap[GZ_HUB_PATH_MAX];
    gz_status s = gz_hub_repo_dir(cache_dir, repo_id, rdir, sizeof rdir);
    if (s != GZ_OK) return s;
    /* Named as a user would type it, so the message reads as the id that was asked for. */
    const char *at = strcmp(revision, "main") ? "@" : "", *rv = *at ? revision : "";
    s = ref_commit(rdir, revision, commit);
    if (s == GZ_ENOTFOUND)
        return GZ_FAIL(GZ_ENOTFOUND, "%s%s%s is not in the Hugging Face cache (%s)", repo_id, at,
                       rv, cache_dir);
    if (s != GZ_OK) return s;
    if (!fmt_ok(snap, sizeof snap, "%s/snapshots/%s", rdir, commit))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", rdir);
    struct stat sb;
    if (stat(snap, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return GZ_FAIL(GZ_ENOTFOUND,
                       "%s%s%s is not in the Hugging Face cache (%s): no snapshot of commit %s",
                       repo_id, at, rv, cache_dir, commit);
    if (!copy_str(dir, cap, snap)) return GZ_FAIL(GZ_EINVAL, "%s: path too long", snap);
    return GZ_OK;
}

gz_status gz_hub_locate(const char *dir_or_id, gz_hub_location *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!out || !dir_or_id || !*dir_or_id)
        return GZ_FAIL(GZ_EINVAL, "gz_hub_locate: no model folder or Hub id given");
    if (!gz_hub_looks_like_id(dir_or_id)) { /* an existing path, or no id: a folder */
        if (!copy_str(out->dir, sizeof out->dir, dir_or_id))
            return GZ_FAIL(GZ_EINVAL, "%.80s...: path too long", dir_or_id);
        return GZ_OK;
    }
    gz_hub_location loc;
    memset(&loc, 0, sizeof loc);
    gz_hub_params p = gz_hub_default_params();
    gz_status s = gz_hub_parse_id(dir_or_id, loc.repo_id, sizeof loc.repo_id, loc.revision,
                                  sizeof loc.revision);
    if (s == GZ_OK) s = gz_hub_params_from_env(&p);
    if (s == GZ_OK)
        s = gz_hub_resolve_cached(loc.repo_id, loc.revision, p.cache_dir, loc.dir, sizeof loc.dir);
    if (s == GZ_ENOTFOUND) /* the id as typed: the command's hint repeats it */
        return GZ_FAIL(GZ_ENOTFOUND, "%s is not in the Hugging Face cache (%s), nor a folder",
                       dir_or_id, p.cache_dir);
    if (s != GZ_OK) return s;
    const char *slash = strrchr(loc.dir, '/');
    copy_str(loc.commit, sizeof loc.commit, slash + 1);
    *out = loc;
    return GZ_OK;
}

/* ---- listing ---- */

typedef struct {
    gz_hub_ref *v;
    int n, cap;
} ref_list;

/* Add every file under refs folder dir (prefix = the revision path so far) to l. */
static gz_status collect_refs(const char *dir, const char *prefix, int depth, ref_list *l) {
    if (depth > HUB_WALK_DEPTH) return GZ_OK;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? GZ_OK : GZ_FAIL(GZ_EIO, "%s: %s", dir, strerror(errno));
    gz_status s = GZ_OK;
    struct dirent *e;
    while (s == GZ_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[GZ_HUB_PATH_MAX], rev[GZ_HUB_REV_MAX];
        if (!fmt_ok(path, sizeof path, "%s/%s", dir, e->d_name) ||
            !fmt_ok(rev, sizeof rev, "%s%s%s", prefix, *prefix ? "/" : "", e->d_name))
            continue;
        struct stat sb;
        if (lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            s = collect_refs(path, rev, depth + 1, l);
            continue;
        }
        char buf[128];
        if (!S_ISREG(sb.st_mode) || read_small(path, buf, sizeof buf) != GZ_OK || !is_commit(buf))
            continue;
        if (l->n == l->cap) {
            int nc = l->cap ? 2 * l->cap : 8;
            gz_hub_ref *nv = realloc(l->v, (size_t)nc * sizeof *nv);
            if (!nv) {
                s = GZ_FAIL(GZ_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            l->v = nv;
            l->cap = nc;
        }
        memcpy(l->v[l->n].revision, rev, sizeof rev);
        memcpy(l->v[l->n].commit, buf, 41);
        l->n++;
    }
    closedir(d);
    if (s == GZ_OK) gz_clear_error(); /* unreadable refs are skipped, not errors */
    return s;
}

static int cmp_ref(const void *a, const void *b) {
    return strcmp(((const gz_hub_ref *)a)->revision, ((const gz_hub_ref *)b)->revision);
}
static int cmp_commit(const void *a, const void *b) { return strcmp(a, b); }
static int cmp_model(const void *a, const void *b) {
    return strcmp(((const gz_hub_cached_model *)a)->repo_id,
                  ((const gz_hub_cached_model *)b)->repo_id);
}

/* Fill m (repo_id already set) from its folder m->dir. */
static gz_status describe_repo(gz_hub_cached_model *m) {
    char path[GZ_HUB_PATH_MAX];
    ref_list l = {0};
    if (!fmt_ok(path, sizeof path, "%s/refs", m->dir))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", m->dir);
    gz_status s = collect_refs(path, "", 0, &l);
    if (s != GZ_OK) {
        free(l.v);
        return s;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_ref); /* l.v is NULL when empty */
    m->refs = l.v;
    m->n_refs = l.n;

    int cap = 0;
    if (fmt_ok(path, sizeof path, "%s/snapshots", m->dir)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (!is_commit(e->d_name)) continue;
            if (m->n_snapshots == cap) {
                int nc = cap ? 2 * cap : 4;
                char(*nv)[GZ_HUB_COMMIT_LEN + 1] = realloc(m->snapshots, (size_t)nc * sizeof *nv);
                if (!nv) {
                    closedir(d);
                    return GZ_FAIL(GZ_ENOMEM, "out of memory listing %s", path);
                }
                m->snapshots = nv;
                cap = nc;
            }
            memcpy(m->snapshots[m->n_snapshots++], e->d_name, 41);
        }
        if (d) closedir(d);
        if (m->n_snapshots)
            qsort(m->snapshots, (size_t)m->n_snapshots, sizeof *m->snapshots, cmp_commit);
    }

    if (fmt_ok(path, sizeof path, "%s/blobs", m->dir)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char bp[GZ_HUB_PATH_MAX];
            struct stat sb;
            size_t n = strlen(e->d_name);
            if (e->d_name[0] == '.' || (n > 11 && !strcmp(e->d_name + n - 11, ".incomplete")))
                continue;
            if (fmt_ok(bp, sizeof bp, "%s/%s", path, e->d_name) && lstat(bp, &sb) == 0 &&
                S_ISREG(sb.st_mode))
                m->size_bytes += (int64_t)sb.st_size;
        }
        if (d) closedir(d);
    }
    return GZ_OK;
}

void gz_hub_list_free(gz_hub_cached_model *models, int n) {
    if (!models) return;
    for (int i = 0; i < n; i++) {
        free(models[i].refs);
        free(models[i].snapshots);
    }
    free(models);
}

gz_status gz_hub_list(const char *cache_dir, gz_hub_cached_model **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!cache_dir || !*cache_dir) return GZ_FAIL(GZ_EINVAL, "no hub cache folder set");
    DIR *d = opendir(cache_dir);
    if (!d) {
        if (errno == ENOENT) return GZ_OK;
        return GZ_FAIL(GZ_EIO, "%s: %s", cache_dir, strerror(errno));
    }
    gz_hub_cached_model *v = NULL;
    int cnt = 0, cap = 0;
    gz_status s = GZ_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "models--", 8) != 0) continue;
        const char *rest = e->d_name + 8, *sep = strstr(rest, "--");
        char id[GZ_HUB_ID_MAX];
        if (!sep || !fmt_ok(id, sizeof id, "%.*s/%s", (int)(sep - rest), rest, sep + 2) ||
            !gz_hub_valid_id(id))
            continue;
        if (cnt == cap) {
            int nc = cap ? 2 * cap : 8;
            gz_hub_cached_model *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) {
                s = GZ_FAIL(GZ_ENOMEM, "out of memory listing %s", cache_dir);
                break;
            }
            v = nv;
            cap = nc;
        }
        gz_hub_cached_model *m = &v[cnt];
        memset(m, 0, sizeof *m);
        memcpy(m->repo_id, id, sizeof id);
        cnt++;
        if (!fmt_ok(m->dir, sizeof m->dir, "%s/%s", cache_dir, e->d_name)) {
            s = GZ_FAIL(GZ_EINVAL, "%s: path too long", cache_dir);
            break;
        }
        if ((s = describe_repo(m)) != GZ_OK) break;
    }
    closedir(d);
    if (s != GZ_OK) {
        gz_hub_list_free(v, cnt);
        return s;
    }
    if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_model);
    *out = v;
    *n = cnt;
    return GZ_OK;
}

/* ---- removal ---- */

typedef struct {
    char (*name)[HUB_ETAG_MAX];
    size_t n, cap;
} name_set;

/* Add the blob names the symlinks under dir point to. */
static gz_status collect_links(const char *dir, int depth, name_set *ns) {
    if (depth > HUB_WALK_DEPTH) return GZ_OK;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? GZ_OK : GZ_FAIL(GZ_EIO, "%s: %s", dir, strerror(errno));
    gz_status s = GZ_OK;
    struct dirent *e;
    while (s == GZ_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[GZ_HUB_PATH_MAX], target[GZ_HUB_PATH_MAX];
        struct stat sb;
        if (!fmt_ok(path, sizeof path, "%s/%s", dir, e->d_name) || lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            s = collect_links(path, depth + 1, ns);
            continue;
        }
        if (!S_ISLNK(sb.st_mode)) continue;
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strlen(base) >= HUB_ETAG_MAX) continue;
        if (ns->n == ns->cap) {
            size_t nc = ns->cap ? 2 * ns->cap : 16;
            size_t bytes;
            if (!gz_mul_size(nc, sizeof *ns->name, &bytes)) {
                s = GZ_FAIL(GZ_ENOMEM, "too many links under %s", dir);
                break;
            }
            char(*nv)[HUB_ETAG_MAX] = realloc(ns->name, bytes);
            if (!nv) {
                s = GZ_FAIL(GZ_ENOMEM, "out of memory walking %s", dir);
                break;
            }
            ns->name = nv;
            ns->cap = nc;
        }
        memcpy(ns->name[ns->n++], base, strlen(base) + 1);
    }
    closedir(d);
    return s;
}

/* Delete the blobs of repo folder rdir that no snapshot links to (partial downloads stay). */
static gz_status gc_blobs(const char *rdir) {
    char path[GZ_HUB_PATH_MAX], blobs[GZ_HUB_PATH_MAX];
    name_set ns = {0};
    if (!fmt_ok(path, sizeof path, "%s/snapshots", rdir) ||
        !fmt_ok(blobs, sizeof blobs, "%s/blobs", rdir))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", rdir);
    gz_status s = collect_links(path, 0, &ns);
    DIR *d = s == GZ_OK ? opendir(blobs) : NULL;
    struct dirent *e;
    while (d && s == GZ_OK && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n > 11 && !strcmp(e->d_name + n - 11, ".incomplete"))) continue;
        int used = 0;
        for (size_t i = 0; i < ns.n && !used; i++)
            used = !strcmp(ns.name[i], e->d_name);
        char bp[GZ_HUB_PATH_MAX];
        if (used || !fmt_ok(bp, sizeof bp, "%s/%s", blobs, e->d_name)) continue;
        if (unlink(bp) != 0 && errno != ENOENT)
            s = GZ_FAIL(GZ_EIO, "%s: cannot remove: %s", bp, strerror(errno));
    }
    if (d) closedir(d);
    free(ns.name);
    return s;
}

gz_status gz_hub_rm(const char *cache_dir, const char *repo_id, const char *revision) {
    char rdir[GZ_HUB_PATH_MAX], path[GZ_HUB_PATH_MAX];
    gz_status s = gz_hub_repo_dir(cache_dir, repo_id, rdir, sizeof rdir);
    if (s != GZ_OK) return s;
    struct stat sb;
    if (lstat(rdir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return GZ_FAIL(GZ_ENOTFOUND, "%s is not in the cache %s", repo_id, cache_dir);
    if (!revision) {
        const char *base = strrchr(rdir, '/') + 1;
        if (fmt_ok(path, sizeof path, "%s/.locks/%s", cache_dir, base)) rm_tree(path, 0);
        gz_clear_error();
        return rm_tree(rdir, 0);
    }

    gz_hub_cached_model m;
    memset(&m, 0, sizeof m);
    memcpy(m.dir, rdir, sizeof rdir);
    char commit[41];
    s = ref_commit(rdir, revision, commit);
    if (s == GZ_OK) s = describe_repo(&m);
    if (s == GZ_ENOTFOUND)
        s = GZ_FAIL(GZ_ENOTFOUND, "%s (revision %s) is not in the cache %s", repo_id, revision,
                    cache_dir);
    int found = 0;
    /* Drop the refs that name the revision (or, for a commit, that point to it). */
    for (int i = 0; s == GZ_OK && i < m.n_refs; i++) {
        int match = is_commit(revision) ? !strcmp(m.refs[i].commit, commit)
                                        : !strcmp(m.refs[i].revision, revision);
        if (!match) continue;
        found = 1;
        if (!fmt_ok(path, sizeof path, "%s/refs/%s", rdir, m.refs[i].revision) ||
            (unlink(path) != 0 && errno != ENOENT))
            s = GZ_FAIL(GZ_EIO, "%s: cannot remove: %s", path, strerror(errno));
        m.refs[i].commit[0] = '\0'; /* gone */
    }
    int still_named = 0;
    for (int i = 0; i < m.n_refs; i++)
        still_named |= !strcmp(m.refs[i].commit, commit);
    if (s == GZ_OK && !still_named && fmt_ok(path, sizeof path, "%s/snapshots/%s", rdir, commit) &&
        lstat(path, &sb) == 0) {
        found = 1;
        s = rm_tree(path, 0);
    }
    int snapshots_left = 0;
    for (int i = 0; i < m.n_snapshots; i++)
        snapshots_left += strcmp(m.snapshots[i], commit) != 0 || still_named;
    free(m.refs);
    free(m.snapshots);
    if (s != GZ_OK) return s;
    if (!found)
        return GZ_FAIL(GZ_ENOTFOUND, "%s (revision %s) is not in the cache %s", repo_id, revision,
                       cache_dir);
    if (snapshots_left == 0) return gz_hub_rm(cache_dir, repo_id, NULL);
    return gc_blobs(rdir);
}

/* ---- HTTP ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static void curl_init_once(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* One HTTP exchange: the headers we read and where the body goes. */
typedef struct {
    CURL *curl;
    long code;                   /* status of the last response */
    char etag[HUB_ETAG_MAX + 8]; /* raw ETag */
    char linked_etag[HUB_ETAG_MAX + 8];
    char commit[64];                     /* X-Repo-Commit */
    char location[2048];                 /* Location */
    char error_code[64];                 /* X-Error-Code */
    char error_message[256];             /* X-Error-Message */
    int64_t content_length, linked_size; /* -1 = absent */
    int64_t range_start;                 /* start of Content-Range, -1 = absent */
    int header_overflow;                 /* a header we need did not fit */
    /* body: to fd for 200/206 when fd >= 0, else into mem (at most mem_max bytes) */
    int fd;
    int64_t on_disk;  /* bytes already in fd's file before this exchange */
    int64_t received; /* body bytes written to fd in this exchange */
    int started;      /* first body byte of a 2xx seen */
    int write_errno;  /* write failed with this errno */
    int range_bad;    /* 206 starting elsewhere than on_disk */
    char *mem;
    size_t mem_len, mem_cap, mem_max;
    int mem_overflow;
    /* progress */
    const gz_hub_params *p;
    const char *file;
    int64_t total;
} http_x;

static void hdr_copy(http_x *x, char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap) {
        x->header_overflow = 1;
        n = cap - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int64_t parse_i64(const char *v, size_t n) {
    if (n == 0 || n > 18) return -1;
    int64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i])) return -1;
        r = r * 10 + (v[i] - '0');
    }
    return r;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    http_x *x = ud;
    size_t len = size * nitems;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response: forget the previous one */
        x->etag[0] = x->linked_etag[0] = x->commit[0] = x->location[0] = '\0';
        x->error_code[0] = x->error_message[0] = '\0';
        x->content_length = x->linked_size = x->range_start = -1;
        x->header_overflow = 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vlen = (size_t)(end - v);
#define IS(name) (nlen == sizeof(name) - 1 && !strncasecmp(buf, name, nlen))
    if (IS("ETag"))
        hdr_copy(x, x->etag, sizeof x->etag, v, vlen);
    else if (IS("X-Linked-Etag"))
        hdr_copy(x, x->linked_etag, sizeof x->linked_etag, v, vlen);
    else if (IS("X-Repo-Commit"))
        hdr_copy(x, x->commit, sizeof x->commit, v, vlen);
    else if (IS("Location"))
        hdr_copy(x, x->location, sizeof x->location, v, vlen);
    else if (IS("X-Error-Code"))
        hdr_copy(x, x->error_code, sizeof x->error_code, v, vlen);
    else if (IS("X-Error-Message"))
        hdr_copy(x, x->error_message, sizeof x->error_message, v, vlen);
    else if (IS("Content-Length"))
        x->content_length = parse_i64(v, vlen);
    else if (IS("X-Linked-Size"))
        x->linked_size = parse_i64(v, vlen);
    else if (IS("Content-Range") && vlen > 6 && !strncasecmp(v, "bytes ", 6)) {
        const char *dash = memchr(v + 6, '-', vlen - 6);
        if (dash) x->range_start = parse_i64(v + 6, (size_t)(dash - v - 6));
    }
#undef IS
    return len;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    http_x *x = ud;
    size_t len = size * nmemb;
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (x->fd >= 0 && (code == 200 || code == 206)) {
        if (!x->started) {
            x->started = 1;
            if (code == 200 && x->on_disk > 0) { /* the server ignored our Range: start over */
                if (ftruncate(x->fd, 0) != 0) {
                    x->write_errno = errno;
                    return 0;
                }
                x->on_disk = 0;
            } else if (code == 206 && x->range_start != x->on_disk) {
                x->range_bad = 1;
                return 0;
            }
        }
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(x->fd, ptr + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                x->write_errno = w < 0 ? errno : ENOSPC;
                return 0;
            }
            off += (size_t)w;
        }
        x->received += (int64_t)len;
        if (x->p && x->p->progress)
            x->p->progress(x->p->progress_user, x->file, x->on_disk + x->received, x->total);
        return len;
    }
    if (x->mem_len + len > x->mem_max) { /* keep what fits: enough for an error message */
        x->mem_overflow = 1;
        len = x->mem_max - x->mem_len;
        if (len == 0) return size * nmemb;
    }
    if (x->mem_len + len + 1 > x->mem_cap) {
        size_t nc = x->mem_cap ? x->mem_cap : 4096;
        while (nc < x->mem_len + len + 1)
            nc *= 2;
        char *nm = realloc(x->mem, nc);
        if (!nm) return 0;
        x->mem = nm;
        x->mem_cap = nc;
    }
    memcpy(x->mem + x->mem_len, ptr, len);
    x->mem_len += len;
    x->mem[x->mem_len] = '\0';
    return size * nmemb;
}

/* Per-pull state. */
typedef struct {
    const gz_hub_params *p;
    const char *repo_id;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    char auth[GZ_HUB_TOKEN_MAX + 32]; /* "Authorization: Bearer ..." or "" */
    char commit[41];
    char rdir[GZ_HUB_PATH_MAX];  /* <cache>/models--ORG--NAME */
    char snap[GZ_HUB_PATH_MAX];  /* rdir/snapshots/<commit> */
    char locks[GZ_HUB_PATH_MAX]; /* <cache>/.locks/models--ORG--NAME */
    gz_hub_pull_stats st;
} pull_ctx;

/* Host part of url into host (empty when unparsable). */
static void url_host(const char *url, char *host, size_t cap) {
    host[0] = '\0';
    CURLU *u = curl_url();
    char *h = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK)
        copy_str(host, cap, h);
    curl_free(h);
    curl_url_cleanup(u);
}

/* Perform one request (no redirects followed). with_auth: send the token. range_from >= 0:
 * ask for bytes from there on. Returns the curl code; x holds the response. */
static CURLcode http_once(pull_ctx *c, const char *url, int head, int with_auth, int64_t range_from,
                          http_x *x) {
    CURL *h = c->curl;
    curl_easy_reset(h);
    x->curl = h;
    x->code = 0;
    x->started = 0;
    x->received = 0;
    x->mem_len = 0;
    x->content_length = x->linked_size = x->range_start = -1;
    c->errbuf[0] = '\0';
    struct curl_slist *hl = NULL, *t;
    if (with_auth && c->auth[0]) {
        if (!(t = curl_slist_append(hl, c->auth))) goto oom;
        hl = t;
    }
    /* Sizes must be the stored ones, not those of a compressed transfer. */
    if (!(t = curl_slist_append(hl, "Accept-Encoding: identity"))) goto oom;
    hl = t;
    char range[48];
    snprintf(range, sizeof range, "%lld-", (long long)range_from);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->p->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)HUB_LOW_SPEED_BYTES);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->p->low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "gaze/" GAZE_VERSION " (libcurl)");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (head) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (range_from > 0) curl_easy_setopt(h, CURLOPT_RANGE, range);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->code);
    curl_slist_free_all(hl);
    return rc;
oom:
    curl_slist_free_all(hl);
    return CURLE_OUT_OF_MEMORY;
}

/* GZ_EIO naming the endpoint (or the other host url went to) for a transport failure. */
static gz_status transport_error(pull_ctx *c, const char *url, const char *what, CURLcode rc) {
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    const char *ep = c->p->endpoint;
    size_t n = strlen(ep);
    if (rc == CURLE_OUT_OF_MEMORY) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    if (!strncmp(url, ep, n)) {
        if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT ||
            rc == CURLE_OPERATION_TIMEDOUT)
            return GZ_FAIL(GZ_EIO, "cannot reach %s (%s): %s", ep, what, detail);
        return GZ_FAIL(GZ_EIO, "%s: transfer from %s failed: %s", what, ep, detail);
    }
    char host[256];
    url_host(url, host, sizeof host);
    return GZ_FAIL(GZ_EIO, "%s: transfer from %s (redirected from %s) failed: %s", what, host, ep,
                   detail);
}

/* The status for an HTTP error reply to a request about what (a file, or NULL for the repo). */
static gz_status http_error(pull_ctx *c, const http_x *x, const char *revision, const char *what) {
    const char *ep = c->p->endpoint, *id = c->repo_id;
    const char *em = x->error_message[0] ? x->error_message : "";
    if (!strcmp(x->error_code, "RevisionNotFound"))
        return GZ_FAIL(GZ_ENOTFOUND, "revision %s not found in repository %s on %s", revision, id,
                       ep);
    if (!strcmp(x->error_code, "EntryNotFound") || (x->code == 404 && what))
        return GZ_FAIL(GZ_ENOTFOUND, "%s: not found in repository %s at %s on %s", what, id,
                       revision, ep);
    if (!strcmp(x->error_code, "RepoNotFound") || x->code == 404) {
        if (x->code == 401 && !c->auth[0])
            return GZ_FAIL(GZ_ENOTFOUND,
                           "repository %s not found on %s (or revision %s); if it is private or "
                           "gated, set HF_TOKEN to a token that can read it",
                           id, ep, revision);
        return GZ_FAIL(GZ_ENOTFOUND, "repository %s not found on %s (or revision %s)", id, ep,
                       revision);
    }
    if (x->code == 401 || x->code == 403)
        return GZ_FAIL(GZ_EIO,
                       "repository %s on %s is gated or private (HTTP %ld%s%s): %s; accept its "
                       "terms on the Hub if gated",
                       id, ep, x->code, em[0] ? ": " : "", em,
                       c->auth[0] ? "the token given was refused" : "set HF_TOKEN to a token");
    return GZ_FAIL(GZ_EIO, "%s%s%s on %s: HTTP %ld%s%s", what ? what : id, what ? " in " : "",
                   what ? id : "", ep, x->code, em[0] ? ": " : "", em);
}

/* Percent-encode s into out; '/' kept when keep_slash (hf_hub_url quotes file names so, and
 * revisions with no safe characters). */
static int url_quote(const char *s, int keep_slash, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = isalnum(*p) || strchr("-_.~", *p) || (keep_slash && *p == '/');
        if (o + (plain ? 1 : 3) >= cap) return 0;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return 1;
}

/* ---- file selection ---- */

typedef struct {
    char **name;
    int n, cap;
} str_list;

static void str_list_free(str_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->name[i]);
    free(l->name);
    memset(l, 0, sizeof *l);
}

static int str_list_has(const str_list *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->name[i], s)) return 1;
    return 0;
}

static gz_status str_list_add(str_list *l, const char *s) {
    if (str_list_has(l, s)) return GZ_OK;
    if (l->n >= HUB_FILES_MAX) return GZ_FAIL(GZ_EUNSUPPORTED, "more than %d files", HUB_FILES_MAX);
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        char **nv = realloc(l->name, (size_t)nc * sizeof *nv);
        if (!nv) return GZ_FAIL(GZ_ENOMEM, "out of memory");
        l->name = nv;
        l->cap = nc;
    }
    if (!(l->name[l->n] = strdup(s))) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    l->n++;
    return GZ_OK;
}

/* Small files gaze reads when present. */
static const char *const hub_aux_files[] = {
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
};

/* "holds no model gaze can run" with the first files of the repository. */
static gz_status no_model(const char *id, const str_list *all, const char *missing) {
    char found[HUB_FOUND_LIST_MAX + 8];
    size_t o = 0;
    found[0] = '\0';
    for (int i = 0; i < all->n; i++) {
        int w = snprintf(found + o, sizeof found - o, "%s%s", i ? ", " : "", all->name[i]);
        if (w < 0 || (size_t)w >= sizeof found - o) {
            memcpy(found + (o < HUB_FOUND_LIST_MAX ? o : HUB_FOUND_LIST_MAX), ", ...", 6);
            break;
        }
        o += (size_t)w;
    }
    return GZ_FAIL(GZ_EUNSUPPORTED,
                   "repository %s holds no model gaze can run (%s); found files: %s", id, missing,
                   all->n ? found : "none");
}

/* ---- one file ---- */

/* Lowercase hex sha256 of the file at path into hex (65 bytes). */
static gz_status sha256_file(const char *path, char hex[65]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(HUB_COPY_CHUNK);
    gz_status s = GZ_OK;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        s = GZ_FAIL(GZ_ENOMEM, "sha256 of %s: cannot start", path);
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf, HUB_COPY_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            s = GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    unsigned char dig[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, dig, &dl);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
done:
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return s;
}

/* huggingface_hub's normalisation: drop a weak "W/" prefix and surrounding quotes. */
static void normalize_etag(char *e) {
    if (!strncmp(e, "W/", 2)) memmove(e, e + 2, strlen(e + 2) + 1);
    size_t n = strlen(e);
    if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
        memmove(e, e + 1, n - 2);
        e[n - 2] = '\0';
    }
}

/* Metadata of one file: HEAD on its resolve URL, following only relative redirects (a renamed
 * repository), as get_hf_file_metadata does. */
static gz_status file_metadata(pull_ctx *c, const char *file, const char *url, http_x *x,
                               char etag[HUB_ETAG_MAX], int64_t *size) {
    char cur[GZ_HUB_URL_MAX + GZ_HUB_PATH_MAX];
    copy_str(cur, sizeof cur, url);
    for (int hop = 0;; hop++) {
        CURLcode rc = http_once(c, cur, 1, 1, -1, x);
        if (rc != CURLE_OK) return transport_error(c, cur, file, rc);
        if (x->code >= 300 && x->code < 400 && x->location[0] == '/' && x->location[1] != '/') {
            char *next = NULL;
            if (hop >= HUB_MAX_HEAD_REDIRECTS ||
                curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next ||
                !copy_str(cur, sizeof cur, next))
                return GZ_FAIL(GZ_EIO, "%s: too many redirects from %s", file, c->p->endpoint);
            continue;
        }
        break;
    }
    if (x->code >= 400 || x->code < 200) return http_error(c, x, c->commit, file);
    if (x->commit[0] && strcasecmp(x->commit, c->commit) != 0)
        return GZ_FAIL(GZ_EINVAL, "%s: %s answered for commit %.40s, not %s", file, c->p->endpoint,
                       x->commit, c->commit);
    const char *e = x->linked_etag[0] ? x->linked_etag : x->etag;
    char tmp[sizeof x->etag];
    copy_str(tmp, sizeof tmp, e);
    normalize_etag(tmp);
    size_t n = strlen(tmp);
    if (n == 0 || n >= HUB_ETAG_MAX || x->header_overflow)
        return GZ_FAIL(GZ_EINVAL, "%s: %s sent no usable ETag", file, c->p->endpoint);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)tmp[i]) && tmp[i] != '-' && tmp[i] != '_')
            return GZ_FAIL(GZ_EINVAL, "%s: unexpected ETag \"%s\" from %s", file, tmp,
                           c->p->endpoint);
    memcpy(etag, tmp, n + 1);
    *size = x->linked_size >= 0 ? x->linked_size : x->content_length;
    return GZ_OK;
}

/* Relative symlink snapshots/<commit>/<file> -> ../../blobs/<etag> (one more ../ per folder). */
static gz_status link_snapshot(pull_ctx *c, const char *file, const char *etag) {
    char link[GZ_HUB_PATH_MAX], target[GZ_HUB_PATH_MAX];
    if (!fmt_ok(link, sizeof link, "%s/%s", c->snap, file))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", file);
    size_t o = 0;
    target[0] = '\0';
    for (const char *s = file; *s; s++)
        if (*s == '/') {
            if (o + 3 >= sizeof target) return GZ_FAIL(GZ_EINVAL, "%s: path too deep", file);
            memcpy(target + o, "../", 4);
            o += 3;
        }
    if (!fmt_ok(target + o, sizeof target - o, "../../blobs/%s", etag))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", file);
    char *slash = strrchr(link, '/');
    *slash = '\0';
    gz_status s = mkdir_p(link);
    *slash = '/';
    if (s != GZ_OK) return s;
    if (unlink(link) != 0 && errno != ENOENT)
        return GZ_FAIL(GZ_EIO, "%s: cannot replace: %s", link, strerror(errno));
    if (symlink(target, link) != 0)
        return GZ_FAIL(GZ_EIO, "%s: cannot link to %s: %s", link, target, strerror(errno));
    return GZ_OK;
}

static int transient(CURLcode rc) {
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING;
}

/* Download url (following redirects, token only to the endpoint's host) onto the end of the
 * open file fd which holds *on_disk bytes. */
static gz_status download_into(pull_ctx *c, const char *file, const char *url, int fd, int64_t size,
                               http_x *x) {
    char ep_host[256], cur[GZ_HUB_URL_MAX + GZ_HUB_PATH_MAX];
    url_host(c->p->endpoint, ep_host, sizeof ep_host);
    for (int attempt = 0;; attempt++) {
        struct stat sb;
        if (fstat(fd, &sb) != 0) return GZ_FAIL(GZ_EIO, "%s: %s", file, strerror(errno));
        int64_t have = (int64_t)sb.st_size;
        if (size >= 0 && have > size) { /* longer than the file: not ours to resume */
            if (ftruncate(fd, 0) != 0)
                return GZ_FAIL(GZ_EIO, "%s: cannot truncate: %s", file, strerror(errno));
            have = 0;
        }
        if (size >= 0 && have == size) return GZ_OK;
        copy_str(cur, sizeof cur, url);
        int auth = 1;
        CURLcode rc = CURLE_OK;
        x->fd = fd;
        x->on_disk = have;
        x->total = size;
        x->write_errno = x->range_bad = 0;
        for (int hop = 0;; hop++) {
            rc = http_once(c, cur, 0, auth, have, x);
            if (rc != CURLE_OK || x->code < 300 || x->code >= 400) break;
            char *next = NULL, host[256];
            if (hop >= HUB_MAX_REDIRECTS ||
                curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next ||
                !copy_str(cur, sizeof cur, next))
                return GZ_FAIL(GZ_EIO, "%s: too many redirects from %s", file, c->p->endpoint);
            url_host(cur, host, sizeof host);
            if (strcasecmp(host, ep_host) != 0) auth = 0; /* never hand the token to a CDN */
        }
        c->st.bytes_downloaded += x->received;
        if (x->write_errno)
            return GZ_FAIL(GZ_EIO, "%s: cannot write into the cache: %s", file,
                           strerror(x->write_errno));
        if (x->range_bad)
            return GZ_FAIL(GZ_EIO, "%s: server resumed at byte %lld, not %lld", file,
                           (long long)x->range_start, (long long)have);
        if (rc == CURLE_OK && (x->code == 200 || x->code == 206)) return GZ_OK;
        if (rc == CURLE_OK && x->code == 416 && size < 0) return GZ_OK; /* nothing left */
        if (rc == CURLE_OK) return http_error(c, x, c->commit, file);
        if (!transient(rc) || attempt >= c->p->max_retries)
            return transport_error(c, cur, file, rc);
    }
}

/* Bring one file of the snapshot into the cache. */
static gz_status pull_file(pull_ctx *c, const char *file) {
    char link[GZ_HUB_PATH_MAX], url[GZ_HUB_URL_MAX + GZ_HUB_PATH_MAX], q[GZ_HUB_PATH_MAX * 3];
    struct stat sb;
    if (!safe_rel_path(file)) return GZ_FAIL(GZ_EINVAL, "%s: unsafe file name from the Hub", file);
    if (!fmt_ok(link, sizeof link, "%s/%s", c->snap, file))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", file);
    c->st.files++;
    if (stat(link, &sb) == 0 && S_ISREG(sb.st_mode)) { /* already in this snapshot */
        c->st.bytes_total += (int64_t)sb.st_size;
        return GZ_OK;
    }
    if (!url_quote(file, 1, q, sizeof q) ||
        !fmt_ok(url, sizeof url, "%s/%s/resolve/%s/%s", c->p->endpoint, c->repo_id, c->commit, q))
        return GZ_FAIL(GZ_EINVAL, "%s: URL too long", file);

    http_x x = {.fd = -1, .mem_max = HUB_ERR_BODY_MAX, .p = c->p, .file = file};
    char etag[HUB_ETAG_MAX], blob[GZ_HUB_PATH_MAX], part[GZ_HUB_PATH_MAX], lock[GZ_HUB_PATH_MAX];
    int64_t size = -1;
    int lfd = -1, fd = -1;
    gz_status s = file_metadata(c, file, url, &x, etag, &size);
    if (s != GZ_OK) goto done;
    if (!fmt_ok(blob, sizeof blob, "%s/blobs/%s", c->rdir, etag) ||
        !fmt_ok(part, sizeof part, "%s.incomplete", blob) ||
        !fmt_ok(lock, sizeof lock, "%s/%s.lock", c->locks, etag)) {
        s = GZ_FAIL(GZ_EINVAL, "%s: path too long", c->rdir);
        goto done;
    }
    if ((s = mkdir_p(c->locks)) != GZ_OK) goto done;
    lfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        s = GZ_FAIL(GZ_EIO, "%s: cannot lock: %s", lock, strerror(errno));
        goto done;
    }
    if (lstat(blob, &sb) == 0 && S_ISREG(sb.st_mode) && (size < 0 || sb.st_size == size)) {
        c->st.bytes_total += (int64_t)sb.st_size; /* another snapshot or tool has it */
        s = link_snapshot(c, file, etag);
        goto done;
    }
    fd = open(part, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST) /* resume what an earlier run left */
        fd = open(part, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = GZ_FAIL(GZ_EIO, "%s: cannot open: %s", part, fd < 0 ? strerror(errno) : "not a file");
        goto done;
    }
    if ((s = download_into(c, file, url, fd, size, &x)) != GZ_OK) goto done;
    if (fsync(fd) != 0 || fstat(fd, &sb) != 0) {
        s = GZ_FAIL(GZ_EIO, "%s: cannot write into the cache: %s", part, strerror(errno));
        goto done;
    }
    close(fd);
    fd = -1;
    if (size >= 0 && (int64_t)sb.st_size != size) {
        unlink(part);
        s = GZ_FAIL(GZ_ECORRUPT, "%s: downloaded %lld bytes, the Hub announced %lld", file,
                    (long long)sb.st_size, (long long)size);
        goto done;
    }
    if (is_sha256(etag)) {
        char got[65];
        if ((s = sha256_file(part, got)) != GZ_OK) goto done;
        if (strcasecmp(got, etag) != 0) {
            unlink(part);
            s = GZ_FAIL(GZ_ECORRUPT, "%s: sha256 mismatch: downloaded %s, the Hub announced %s",
                        file, got, etag);
            goto done;
        }
    }
    if (rename(part, blob) != 0) {
        s = GZ_FAIL(GZ_EIO, "%s: cannot rename into place: %s", blob, strerror(errno));
        goto done;
    }
    c->st.files_downloaded++;
    c->st.bytes_total += (int64_t)sb.st_size;
    s = link_snapshot(c, file, etag);
done:
    if (fd >= 0) close(fd);
    if (lfd >= 0) close(lfd); /* releases the flock */
    free(x.mem);
    return s;
}

/* Refuse, before any weights come, a repository whose config.json names a model family gaze
 * cannot run (the config reader's message says which model_type it found). Other config
 * problems are left for the loader to report with the file at hand. */
static gz_status check_family(pull_ctx *c) {
    char path[GZ_HUB_PATH_MAX];
    if (!fmt_ok(path, sizeof path, "%s/config.json", c->snap))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", c->snap);
    gz_model_config cfg;
    gz_status s = gz_config_load(path, &cfg);
    if (s == GZ_EUNSUPPORTED)
        return gz_error_prefix(s, "repository %s holds no model gaze can run", c->repo_id);
    gz_clear_error();
    return GZ_OK;
}

/* ---- the revision API and the pull ---- */

/* GET the revision API: commit into c->commit, file names into all. */
static gz_status repo_info(pull_ctx *c, const char *revision, str_list *all) {
    char url[GZ_HUB_URL_MAX + 512], q[GZ_HUB_REV_MAX * 3];
    if (!url_quote(revision, 0, q, sizeof q) ||
        !fmt_ok(url, sizeof url, "%s/api/models/%s/revision/%s", c->p->endpoint, c->repo_id, q))
        return GZ_FAIL(GZ_EINVAL, "%s: URL too long", c->p->endpoint);
    http_x x = {.fd = -1, .mem_max = HUB_API_BODY_MAX};
    gz_status s = GZ_OK;
    CURLcode rc = http_once(c, url, 0, 1, -1, &x);
    if (rc != CURLE_OK) {
        s = transport_error(c, url, c->repo_id, rc);
        goto done;
    }
    if (x.code != 200) {
        s = http_error(c, &x, revision, NULL);
        goto done;
    }
    if (x.mem_overflow || !x.mem) {
        s = GZ_FAIL(GZ_EINVAL, "%s: %s sent %s repository information", c->repo_id, c->p->endpoint,
                    x.mem ? "oversized" : "no");
        goto done;
    }
    json_error_t je;
    json_t *root = json_loadb(x.mem, x.mem_len, 0, &je);
    const char *sha = root ? json_string_value(json_object_get(root, "sha")) : NULL;
    json_t *sib = root ? json_object_get(root, "siblings") : NULL;
    if (!sha || !is_commit(sha) || !json_is_array(sib)) {
        s = GZ_FAIL(GZ_EINVAL, "%s: malformed repository information from %s (%s)", c->repo_id,
                    c->p->endpoint, root ? "no sha or siblings" : je.text);
        json_decref(root);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(sib) && i < HUB_FILES_MAX * 16; i++) {
        const char *f = json_string_value(json_object_get(json_array_get(sib, i), "rfilename"));
        if (f && (s = str_list_add(all, f)) != GZ_OK) break;
    }
    memcpy(c->commit, sha, 41);
    for (char *p = c->commit; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    json_decref(root);
done:
    free(x.mem);
    return s;
}

/* Add the shards a weights index (already pulled) lists to want. */
static gz_status add_shards(pull_ctx *c, const char *index, const str_list *all, str_list *want) {
    char path[GZ_HUB_PATH_MAX];
    if (!fmt_ok(path, sizeof path, "%s/%s", c->snap, index))
        return GZ_FAIL(GZ_EINVAL, "%s: path too long", index);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    json_t *map = root ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map)) {
        json_decref(root);
        return GZ_FAIL(GZ_EUNSUPPORTED, "%s: %s: no weight_map (%s)", c->repo_id, index,
                       root ? "missing" : je.text);
    }
    gz_status s = GZ_OK;
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const char *shard = json_string_value(v);
        if (!shard || !safe_rel_path(shard) || !str_list_has(all, shard)) {
            s = GZ_FAIL(GZ_EUNSUPPORTED, "%s: %s names shard \"%s\", which the repository lacks",
                        c->repo_id, index, shard ? shard : "(not a string)");
            break;
        }
        if ((s = str_list_add(want, shard)) != GZ_OK) break;
    }
    json_decref(root);
    return s;
}

gz_status gz_hub_pull(const char *repo_id, const char *revision, const gz_hub_params *p,
                      char *snapshot_dir, size_t cap, gz_hub_pull_stats *st) {
    if (cap) snapshot_dir[0] = '\0';
    if (st) memset(st, 0, sizeof *st);
    if (!revision) revision = "main";
    if (!p) return GZ_FAIL(GZ_EINVAL, "gz_hub_pull: no parameters");
    if (p->offline) {
        gz_status s = gz_hub_resolve_cached(repo_id, revision, p->cache_dir, snapshot_dir, cap);
        if (s == GZ_OK && st) {
            const char *slash = strrchr(snapshot_dir, '/');
            copy_str(st->commit, sizeof st->commit, slash ? slash + 1 : "");
        }
        return s;
    }
    if (!safe_rel_path(revision) || strlen(revision) >= GZ_HUB_REV_MAX)
        return GZ_FAIL(GZ_EINVAL, "%s: bad revision \"%s\"", repo_id, revision);
    pull_ctx *c = calloc(1, sizeof *c);
    if (!c) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    c->p = p;
    c->repo_id = repo_id;
    str_list all = {0}, want = {0};
    gz_status s = gz_hub_repo_dir(p->cache_dir, repo_id, c->rdir, sizeof c->rdir);
    if (s != GZ_OK) goto done;
    const char *base = strrchr(c->rdir, '/') + 1;
    if (!fmt_ok(c->locks, sizeof c->locks, "%s/.locks/%s", p->cache_dir, base)) {
        s = GZ_FAIL(GZ_EINVAL, "%s: path too long", p->cache_dir);
        goto done;
    }
    if (p->token[0] && !fmt_ok(c->auth, sizeof c->auth, "Authorization: Bearer %s", p->token)) {
        s = GZ_FAIL(GZ_EINVAL, "token too long");
        goto done;
    }
    if (strpbrk(p->token, "\r\n")) {
        s = GZ_FAIL(GZ_EINVAL, "the token holds a line break");
        goto done;
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK || !(c->curl = curl_easy_init())) {
        s = GZ_FAIL(GZ_EIO, "cannot start libcurl");
        goto done;
    }
    if ((s = repo_info(c, revision, &all)) != GZ_OK) goto done;
    char blobs[GZ_HUB_PATH_MAX];
    if (!fmt_ok(c->snap, sizeof c->snap, "%s/snapshots/%s", c->rdir, c->commit) ||
        !fmt_ok(blobs, sizeof blobs, "%s/blobs", c->rdir)) {
        s = GZ_FAIL(GZ_EINVAL, "%s: path too long", c->rdir);
        goto done;
    }

    /* Choose the files: config, one weights format, tokenizer and preprocessor files. */
    if (!str_list_has(&all, "config.json")) {
        s = no_model(repo_id, &all, "no config.json");
        goto done;
    }
    const char *weights = NULL, *index = NULL;
    if (str_list_has(&all, "model.safetensors"))
        weights = "model.safetensors";
    else if (str_list_has(&all, "model.safetensors.index.json"))
        index = "model.safetensors.index.json";
    else if (str_list_has(&all, "pytorch_model.bin"))
        weights = "pytorch_model.bin";
    else if (str_list_has(&all, "pytorch_model.bin.index.json"))
        index = "pytorch_model.bin.index.json";
    else {
        s = no_model(repo_id, &all, "no model.safetensors or pytorch_model.bin");
        goto done;
    }
    if ((s = str_list_add(&want, "config.json")) != GZ_OK) goto done;
    for (size_t i = 0; i < sizeof hub_aux_files / sizeof *hub_aux_files; i++)
        if (str_list_has(&all, hub_aux_files[i]) &&
            (s = str_list_add(&want, hub_aux_files[i])) != GZ_OK)
            goto done;
    if ((s = str_list_add(&want, weights ? weights : index)) != GZ_OK) goto done;
    if ((s = mkdir_p(blobs)) != GZ_OK) goto done;
    for (int i = 0; i < want.n; i++) {
        if ((s = pull_file(c, want.name[i])) != GZ_OK) goto done;
        if (i == 0 && (s = check_family(c)) != GZ_OK) goto done; /* want[0] is config.json */
        if (index && !strcmp(want.name[i], index) &&
            (s = add_shards(c, index, &all, &want)) != GZ_OK)
            goto done;
    }
    if (strcmp(revision, c->commit) != 0) {
        char ref[GZ_HUB_PATH_MAX], cur[128];
        if (!fmt_ok(ref, sizeof ref, "%s/refs/%s", c->rdir, revision)) {
            s = GZ_FAIL(GZ_EINVAL, "%s: path too long", c->rdir);
            goto done;
        }
        char *slash = strrchr(ref, '/');
        *slash = '\0';
        s = mkdir_p(ref);
        *slash = '/';
        if (s != GZ_OK) goto done;
        if (read_small(ref, cur, sizeof cur) != GZ_OK || strcmp(cur, c->commit) != 0)
            if ((s = write_atomic(ref, c->commit)) != GZ_OK) goto done;
        gz_clear_error();
    }
    if (!copy_str(snapshot_dir, cap, c->snap)) s = GZ_FAIL(GZ_EINVAL, "%s: path too long", c->snap);
done:
    memcpy(c->st.commit, c->commit, sizeof c->commit);
    if (st) *st = c->st;
    if (c->curl) curl_easy_cleanup(c->curl);
    str_list_free(&all);
    str_list_free(&want);
    free(c);
    return s;
}
