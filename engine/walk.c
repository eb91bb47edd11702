/* walk.c - recursive scan for image files: hidden/junk folders skipped, exclude globs,
 * optional symlink following with loop protection, results sorted by path. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "gaze.h"

/* Folder names skipped unless include_hidden: dot-folders are skipped as a rule. */
static const char *const JUNK_DIRS[] = {
    "node_modules", "@eaDir", "lost+found", "$RECYCLE.BIN", "System Volume Information",
    "__pycache__"};

static const char *const IMAGE_EXTS[] = {"jpg",  "jpeg", "jpe",  "jfif", "png",
                                         "webp", "heic", "heif", "avif", "gif"};

int gz_walk_is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof IMAGE_EXTS / sizeof IMAGE_EXTS[0]; i++)
        if (strcasecmp(dot + 1, IMAGE_EXTS[i]) == 0) return 1;
    return 0;
}

/* (device, inode) of folders already entered: an open-addressing hash set. */
typedef struct {
    uint64_t *keys; /* 2 words per slot: dev, ino; dev = ~0 marks an empty slot */
    size_t cap, n;
} dirset;

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x7F4A7C159E3779B9ull + (a << 6) + (a >> 2));
    h ^= h >> 31;
    return h * 0xBF58476D1CE4E5B9ull;
}

/* Returns 1 if inserted (new), 0 if already present, -1 on allocation failure. */
static int dirset_add(dirset *s, uint64_t dev, uint64_t ino) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *k = malloc(cap * 2 * sizeof *k);
        if (!k) return -1;
        for (size_t i = 0; i < cap; i++)
            k[2 * i] = UINT64_MAX;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->keys[2 * i] == UINT64_MAX) continue;
            size_t j = mix(s->keys[2 * i], s->keys[2 * i + 1]) & (cap - 1);
            while (k[2 * j] != UINT64_MAX)
                j = (j + 1) & (cap - 1);
            k[2 * j] = s->keys[2 * i];
            k[2 * j + 1] = s->keys[2 * i + 1];
        }
        free(s->keys);
        s->keys = k;
        s->cap = cap;
    }
    size_t j = mix(dev, ino) & (s->cap - 1);
    while (s->keys[2 * j] != UINT64_MAX) {
        if (s->keys[2 * j] == dev && s->keys[2 * j + 1] == ino) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->keys[2 * j] = dev;
    s->keys[2 * j + 1] = ino;
    s->n++;
    return 1;
}

typedef struct {
    const gz_walk_opts *o;
    gz_walk_result *r;
    dirset seen;
    int oom;
} walker;

static int push_error(walker *w, const char *path, const char *reason) {
    char **e = realloc(w->r->errors, (w->r->n_errors + 1) * sizeof *e);
    if (!e) return w->oom = 1, -1;
    w->r->errors = e;
    size_t n = strlen(path) + strlen(reason) + 3;
    char *m = malloc(n);
    if (!m) return w->oom = 1, -1;
    snprintf(m, n, "%s: %s", path, reason);
    w->r->errors[w->r->n_errors++] = m;
    return 0;
}

static int push_file(walker *w, const char *path, const struct stat *sb) {
    gz_walk_result *r = w->r;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        gz_walk_file *f = realloc(r->files, cap * sizeof *f);
        if (!f) return w->oom = 1, -1;
        r->files = f;
        r->cap = cap;
    }
    char *p = strdup(path);
    if (!p) return w->oom = 1, -1;
    r->files[r->n].path = p;
    r->files[r->n].size = (int64_t)sb->st_size;
    r->files[r->n].mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec;
    r->n++;
    return 0;
}

static int excluded(const walker *w, const char *name, const char *path) {
    for (int i = 0; i < w->o->n_exclude; i++) {
        const char *g = w->o->exclude[i];
        if (fnmatch(g, name, 0) == 0 || fnmatch(g, path, 0) == 0) return 1;
    }
    return 0;
}

static int skip_dir_name(const walker *w, const char *name) {
    if (w->o->include_hidden) return 0;
    if (name[0] == '.') return 1;
    for (size_t i = 0; i < sizeof JUNK_DIRS / sizeof JUNK_DIRS[0]; i++)
        if (strcmp(name, JUNK_DIRS[i]) == 0) return 1;
    return 0;
}

static void walk_dir(walker *w, const char *dir, const struct stat *dsb) {
    int added = dirset_add(&w->seen, (uint64_t)dsb->st_dev, (uint64_t)dsb->st_ino);
    if (added < 0) {
        w->oom = 1;
        return;
    }
    if (added == 0) return; /* already walked: a symlink loop or a second link to it */
    DIR *d = opendir(dir);
    if (!d) {
        push_error(w, dir, strerror(errno));
        return;
    }
    size_t dlen = strlen(dir);
    struct dirent *de;
    while (!w->oom && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        size_t n = dlen + strlen(name) + 2;
        char *path = malloc(n);
        if (!path) {
            w->oom = 1;
            break;
        }
        if (dlen && dir[dlen - 1] == '/')
            snprintf(path, n, "%s%s", dir, name);
        else
            snprintf(path, n, "%s/%s", dir, name);
        struct stat sb;
        if (lstat(path, &sb) != 0) {
            push_error(w, path, strerror(errno));
            free(path);
            continue;
        }
        if (S_ISLNK(sb.st_mode)) {
            if (!w->o->follow_symlinks) {
                free(path);
                continue;
            }
            if (stat(path, &sb) != 0) {
                push_error(w, path, "broken symbolic link");
                free(path);
                continue;
            }
        }
        if (S_ISDIR(sb.st_mode)) {
            if (!skip_dir_name(w, name) && !excluded(w, name, path)) walk_dir(w, path, &sb);
        } else if (S_ISREG(sb.st_mode)) {
            if (name[0] != '.' || w->o->include_hidden)
                if (gz_walk_is_image_name(name) && !excluded(w, name, path))
                    push_file(w, path, &sb);
        }
        free(path);
    }
    closedir(d);
}

static int cmp_files(const void *a, const void *b) {
    return strcmp(((const gz_walk_file *)a)->path, ((const gz_walk_file *)b)->path);
}

/* Absolute, lexically normalised path ("a/./b/../c" -> "/cwd/a/c"); symlinks kept. */
static char *lexical_path(const char *p) {
    char cwd[PATH_MAX];
    size_t n;
    char *buf;
    if (p[0] == '/') {
        buf = strdup(p);
    } else {
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        n = strlen(cwd) + strlen(p) + 2;
        buf = malloc(n);
        if (buf) snprintf(buf, n, "%s/%s", cwd, p);
    }
    if (!buf) return NULL;
    /* normalise in place: components joined by single '/', "." dropped, ".." pops */
    char *out = buf;
    size_t o = 0;
    const char *s = buf;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s) break;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 1 && s[0] == '.') {
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0) o--;
        } else {
            out[o++] = '/';
            memmove(out + o, s, len);
            o += len;
        }
        s += len;
    }
    if (o == 0) out[o++] = '/';
    out[o] = '\0';
    return buf;
}

char *gz_engine_resolve_path(const char *p) {
    /* physically: "link/.." is the link target's parent, as the kernel sees it */
    char *real = realpath(p, NULL);
    if (real) return real;
    if (errno != ENOENT && errno != ENOTDIR) return NULL;
    char *lex = lexical_path(p);
    if (!lex) return NULL;
    /* a path that no longer exists: resolve the longest existing parent physically */
    char *slash = strrchr(lex, '/');
    while (slash && slash != lex) {
        *slash = '\0';
        char *parent = realpath(lex, NULL);
        *slash = '/';
        if (parent) {
            size_t n = strlen(parent) + strlen(slash) + 1;
            char *out = malloc(n);
            if (out) snprintf(out, n, "%s%s", strcmp(parent, "/") ? parent : "", slash);
            free(parent);
            free(lex);
            return out;
        }
        char *prev = slash;
        *prev = '\0';
        slash = strrchr(lex, '/');
        *prev = '/';
    }
    return lex;
}

gz_status gz_walk(const char *const *roots, int n_roots, const gz_walk_opts *o,
                  gz_walk_result *out) {
    memset(out, 0, sizeof *out);
    gz_walk_opts defaults = {0};
    if (!o) o = &defaults;
    walker w = {.o = o, .r = out};
    out->roots = calloc((size_t)(n_roots > 0 ? n_roots : 1), sizeof *out->roots);
    if (!out->roots) return GZ_FAIL(GZ_ENOMEM, "scan: out of memory");
    for (int i = 0; i < n_roots && !w.oom; i++) {
        char *root = gz_engine_resolve_path(roots[i]);
        if (!root) {
            gz_walk_free(out);
            free(w.seen.keys);
            return GZ_FAIL(GZ_EIO, "%s: cannot make an absolute path: %s", roots[i],
                           strerror(errno));
        }
        out->roots[out->n_roots++] = root;
        struct stat sb;
        if (stat(root, &sb) != 0) {
            gz_status st = GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", roots[i],
                                   strerror(errno));
            gz_walk_free(out);
            free(w.seen.keys);
            return st;
        }
        if (S_ISDIR(sb.st_mode))
            walk_dir(&w, root, &sb);
        else if (S_ISREG(sb.st_mode))
            push_file(&w, root, &sb);
        else
            push_error(&w, root, "not a regular file or folder");
    }
    free(w.seen.keys);
    if (w.oom) {
        gz_walk_free(out);
        return GZ_FAIL(GZ_ENOMEM, "scan: out of memory");
    }
    if (out->n) qsort(out->files, out->n, sizeof *out->files, cmp_files);
    /* The same file reached twice (overlapping roots, links): keep one. */
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (k && strcmp(out->files[k - 1].path, out->files[i].path) == 0) {
            free(out->files[i].path);
            continue;
        }
        out->files[k++] = out->files[i];
    }
    out->n = k;
    return GZ_OK;
}

void gz_walk_free(gz_walk_result *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->files[i].path);
    free(r->files);
    for (size_t i = 0; i < r->n_errors; i++)
        free(r->errors[i]);
    free(r->errors);
    for (size_t i = 0; i < r->n_roots; i++)
        free(r->roots[i]);
    free(r->roots);
    memset(r, 0, sizeof *r);
}
