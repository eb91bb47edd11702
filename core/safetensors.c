/* safetensors.c - memory-mapped safetensors reader: header validation, lookup, F16/BF16 -> F32.
 *
 * Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
 * data_offsets: [start, end]}, "__metadata__": {...}}, then the data area; offsets are relative
 * to the start of the data area. A sharded checkpoint is an index JSON whose "weight_map" maps
 * tensor names to shard files in the same directory; one handle owns all of its shards. */
#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/contenthash.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "core/torchbin.h"

typedef struct {
    char *path;
    void *map;       /* whole file, read-only; NULL for an empty mapping */
    size_t size;     /* file size */
    size_t data_off; /* 8 + header length */
} st_shard;

typedef struct {
    gz_st_tensor t; /* t.name points into names owned by the entry */
    int shard;
    size_t start; /* offset in the shard's data area */
    float *f32;   /* converted or aligned copy, owned; NULL until requested */
} st_entry;

struct gz_st_file {
    st_shard *shards;
    int n_shards;
    st_entry *ents;
    size_t n_ents, cap_ents;
    size_t *by_name;      /* indices into ents sorted by name, for lookup */
    char dtypes[64];      /* "F16+F32" ... */
    pthread_mutex_t lock; /* guards lazy conversion */
};

static const struct {
    const char *name;
    gz_dtype dt;
    size_t size;
} dtype_table[] = {
    {"F32", GZ_DT_F32, 4}, {"F16", GZ_DT_F16, 2},   {"BF16", GZ_DT_BF16, 2}, {"F64", GZ_DT_F64, 8},
    {"I64", GZ_DT_I64, 8}, {"I32", GZ_DT_I32, 4},   {"I16", GZ_DT_I16, 2},   {"I8", GZ_DT_I8, 1},
    {"U8", GZ_DT_U8, 1},   {"BOOL", GZ_DT_BOOL, 1},
};
#define N_DTYPES (sizeof dtype_table / sizeof dtype_table[0])

const char *gz_dtype_name(gz_dtype t) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dt == t) return dtype_table[i].name;
    return "?";
}

size_t gz_dtype_size(gz_dtype t) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dt == t) return dtype_table[i].size;
    return 0;
}

static int dtype_parse(const char *s, gz_dtype *out) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dtype_table[i].name, s) == 0) {
            *out = dtype_table[i].dt;
            return 1;
        }
    return 0;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- opening one file ---- */

static gz_status map_file(const char *path, st_shard *sh) {
    int fd = gz_open_regular(path); /* regular files only: a FIFO does not hang */
    if (fd < 0) {
        int e = errno;
        return GZ_FAIL(e == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: cannot open: %s", path,
                       strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return GZ_FAIL(GZ_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return GZ_FAIL(GZ_EIO, "%s: not a regular file", path);
    }
    sh->size = (size_t)st.st_size;
    sh->map = NULL;
    if (sh->size > 0) {
        void *m = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return GZ_FAIL(GZ_EIO, "%s: mmap failed: %s", path, strerror(e));
        }
        sh->map = m;
    }
    close(fd);
    return GZ_OK;
}

static gz_status push_entry(gz_st_file *f, st_entry **out) {
    if (f->n_ents == f->cap_ents) {
        size_t nc = f->cap_ents ? f->cap_ents * 2 : 64;
        size_t bytes;
        if (!gz_mul_size(nc, sizeof *f->ents, &bytes))
            return GZ_FAIL(GZ_ENOMEM, "too many tensors");
        st_entry *ne = realloc(f->ents, bytes);
        if (!ne) return GZ_FAIL(GZ_ENOMEM, "out of memory for the tensor table");
        f->ents = ne;
        f->cap_ents = nc;
    }
    *out = &f->ents[f->n_ents];
    memset(*out, 0, sizeof **out);
    return GZ_OK;
}

/* Read a non-negative JSON integer that fits in uint64. */
static int json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    *out = (uint64_t)x;
    return 1;
}

/* Parse one tensor entry of a header into a new table entry. */
static gz_status parse_entry(gz_st_file *f, int shard, const char *path, const char *name,
                             const json_t *obj, size_t data_size) {
    if (!json_is_object(obj))
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': header entry is not an object", path, name);
    const json_t *jd = json_object_get(obj, "dtype");
    const json_t *js = json_object_get(obj, "shape");
    const json_t *jo = json_object_get(obj, "data_offsets");
    if (!json_is_string(jd))
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': missing or non-string dtype", path, name);
    gz_dtype dt;
    if (!dtype_parse(json_string_value(jd), &dt))
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': unknown dtype '%s'", path, name,
                       json_string_value(jd));
    if (!json_is_array(js))
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': missing or non-array shape", path, name);
    size_t nd = json_array_size(js);
    if (nd > GZ_ST_MAX_DIMS)
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': %zu dimensions (at most %d supported)", path,
                       name, nd, GZ_ST_MAX_DIMS);
    int64_t shape[GZ_ST_MAX_DIMS];
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        const json_t *e = json_array_get(js, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                           path, name, i);
        shape[i] = (int64_t)json_integer_value(e);
        if (!gz_mul_size(numel, (size_t)shape[i], &numel))
            return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': shape size overflows", path, name);
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': data_offsets is not [start, end]", path, name);
    uint64_t start, end;
    if (!json_u64(json_array_get(jo, 0), &start) || !json_u64(json_array_get(jo, 1), &end))
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': data_offsets are not non-negative integers",
                       path, name);
    if (end < start)
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': data_offsets end %llu < start %llu", path, name,
                       (unsigned long long)end, (unsigned long long)start);
    if (end > data_size)
        return GZ_FAIL(
            GZ_EINVAL,
            "%s: tensor '%s': data_offsets [%llu, %llu] beyond the data area (%zu bytes)", path,
            name, (unsigned long long)start, (unsigned long long)end, data_size);
    size_t nbytes;
    if (!gz_mul_size(numel, gz_dtype_size(dt), &nbytes) || nbytes != (size_t)(end - start))
        return GZ_FAIL(GZ_EINVAL,
                       "%s: tensor '%s': shape has %zu elements of %s (%zu bytes each) but "
                       "data_offsets span %llu bytes",
                       path, name, numel, json_string_value(jd), gz_dtype_size(dt),
                       (unsigned long long)(end - start));
    st_entry *en = NULL;
    gz_status s = push_entry(f, &en);
    if (s != GZ_OK) return s;
    char *nm = xstrdup(name);
    if (!nm) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    en->t.name = nm;
    en->t.dtype = dt;
    en->t.ndim = (int)nd;
    memcpy(en->t.shape, shape, nd * sizeof shape[0]);
    en->t.numel = numel;
    en->t.nbytes = nbytes;
    en->shard = shard;
    en->start = (size_t)start;
    f->n_ents++;
    return GZ_OK;
}

static int cmp_start(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->t.nbytes < y->t.nbytes ? -1 : x->t.nbytes > y->t.nbytes;
}

/* Check that the entries [first, n_ents) of one shard do not overlap. */
static gz_status check_overlap(gz_st_file *f, size_t first, const char *path) {
    size_t n = f->n_ents - first;
    if (n < 2) return GZ_OK;
    st_entry **v = malloc(n * sizeof *v);
    if (!v) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++)
        v[i] = &f->ents[first + i];
    qsort(v, n, sizeof *v, cmp_start);
    gz_status s = GZ_OK;
    size_t end = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->t.nbytes == 0) continue; /* empty tensors occupy no bytes */
        if (prev && v[i]->start < end) {
            s = GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' overlaps tensor '%s' in the data area", path,
                        v[i]->t.name, prev);
            break;
        }
        end = v[i]->start + v[i]->t.nbytes;
        prev = v[i]->t.name;
    }
    free(v);
    return s;
}

/* Add the tensors of a mapped torch.save ZIP checkpoint (core/torchbin.c) as shard `shard`.
 * Entries point straight into the mapping, like safetensors ones (data_off 0, start = file
 * offset). No overlap check: tied weights legitimately share one storage. */
static gz_status load_torch_shard(gz_st_file *f, int shard, const char *path) {
    st_shard *sh = &f->shards[shard];
    gz_tb_tensor *t = NULL;
    size_t n = 0;
    gz_status s = gz_tb_parse(sh->map, sh->size, path, &t, &n);
    if (s != GZ_OK) return s;
    sh->data_off = 0;
    for (size_t i = 0; i < n && s == GZ_OK; i++) {
        st_entry *en = NULL;
        s = push_entry(f, &en);
        if (s != GZ_OK) break;
        en->t.name = t[i].name; /* ownership moves to the entry */
        t[i].name = NULL;
        en->t.dtype = t[i].dtype;
        en->t.ndim = t[i].ndim;
        memcpy(en->t.shape, t[i].shape, sizeof en->t.shape);
        en->t.numel = t[i].numel;
        en->t.nbytes = t[i].nbytes;
        en->t.data = (const unsigned char *)sh->map + t[i].offset;
        en->shard = shard;
        en->start = t[i].offset;
        f->n_ents++;
    }
    gz_tb_free(t, n);
    return s;
}

/* Map one safetensors file (or torch.save ZIP checkpoint) as shard number `shard` of f and
 * add its tensors. */
static gz_status load_shard(gz_st_file *f, int shard, const char *path) {
    st_shard *sh = &f->shards[shard];
    sh->path = xstrdup(path);
    if (!sh->path) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    gz_status s = map_file(path, sh);
    if (s != GZ_OK) return s;
    /* A safetensors file starts with its header length; "PK\3\4" (or torch's legacy pickle
     * magic) as a length would claim a 64 MiB+ header that is not JSON. */
    if (gz_tb_is_zip(sh->map, sh->size) || gz_tb_is_legacy(sh->map, sh->size))
        return load_torch_shard(f, shard, path);
    if (sh->size < 8)
        return GZ_FAIL(GZ_EINVAL, "%s: file too small for a safetensors header (%zu bytes)", path,
                       sh->size);
    const unsigned char *p = sh->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > GZ_ST_MAX_HEADER)
        return GZ_FAIL(GZ_EINVAL, "%s: header length %llu exceeds the limit of %u bytes", path,
                       (unsigned long long)hlen, GZ_ST_MAX_HEADER);
    if (hlen > sh->size - 8)
        return GZ_FAIL(GZ_EINVAL, "%s: header length %llu exceeds file size %zu", path,
                       (unsigned long long)hlen, sh->size);
    if (hlen < 2)
        return GZ_FAIL(GZ_EINVAL, "%s: header length %llu is too small", path,
                       (unsigned long long)hlen);
    sh->data_off = 8 + (size_t)hlen;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return GZ_FAIL(GZ_EINVAL, "%s: invalid JSON header: %s (at byte %d)", path, jerr.text,
                       jerr.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return GZ_FAIL(GZ_EINVAL, "%s: JSON header is not an object", path);
    }
    size_t data_size = sh->size - sh->data_off;
    size_t first = f->n_ents;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        s = parse_entry(f, shard, path, key, val, data_size);
        if (s != GZ_OK) break;
    }
    json_decref(root);
    if (s != GZ_OK) return s;
    s = check_overlap(f, first, path);
    if (s != GZ_OK) return s;
    for (size_t i = first; i < f->n_ents; i++)
        f->ents[i].t.data = (const unsigned char *)sh->map + sh->data_off + f->ents[i].start;
    return GZ_OK;
}

static int cmp_name_ctx_sort(const void *a, const void *b, void *ctx) {
    const st_entry *e = ctx;
    return strcmp(e[*(const size_t *)a].t.name, e[*(const size_t *)b].t.name);
}

/* Build the sorted name index and the dtype summary; reject duplicate names across shards. */
static gz_status finish(gz_st_file *f, const char *path) {
    if (f->n_ents) {
        f->by_name = malloc(f->n_ents * sizeof *f->by_name);
        if (!f->by_name) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
        for (size_t i = 0; i < f->n_ents; i++)
            f->by_name[i] = i;
        qsort_r(f->by_name, f->n_ents, sizeof *f->by_name, cmp_name_ctx_sort, f->ents);
        for (size_t i = 1; i < f->n_ents; i++) {
            const st_entry *a = &f->ents[f->by_name[i - 1]], *b = &f->ents[f->by_name[i]];
            if (strcmp(a->t.name, b->t.name) == 0)
                return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' appears in both %s and %s", path,
                               a->t.name, f->shards[a->shard].path, f->shards[b->shard].path);
        }
    }
    /* dtype mix, in the fixed order of dtype_table sorted by name */
    int seen[N_DTYPES] = {0};
    for (size_t i = 0; i < f->n_ents; i++)
        for (size_t j = 0; j < N_DTYPES; j++)
            if (dtype_table[j].dt == f->ents[i].t.dtype) seen[j] = 1;
    static const char *order[] = {"BF16", "BOOL", "F16", "F32", "F64",
                                  "I16",  "I32",  "I64", "I8",  "U8"};
    f->dtypes[0] = 0;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (size_t j = 0; j < N_DTYPES; j++)
            if (seen[j] && strcmp(dtype_table[j].name, order[k]) == 0) {
                if (f->dtypes[0]) strcat(f->dtypes, "+");
                strcat(f->dtypes, order[k]);
            }
    return GZ_OK;
}

static gz_st_file *file_new(int n_shards) {
    gz_st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->shards = calloc((size_t)n_shards, sizeof *f->shards);
    if (!f->shards) {
        free(f);
        return NULL;
    }
    f->n_shards = n_shards;
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

void gz_st_close(gz_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_ents; i++) {
        free((char *)f->ents[i].t.name);
        free(f->ents[i].f32);
    }
    free(f->ents);
    free(f->by_name);
    for (int i = 0; i < f->n_shards; i++) {
        if (f->shards[i].map) munmap(f->shards[i].map, f->shards[i].size);
        free(f->shards[i].path);
    }
    free(f->shards);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Read a whole small file into a NUL-terminated buffer (caller frees). */
static gz_status read_small(const char *path, char **out, size_t *len) {
    st_shard tmp = {0};
    gz_status s = map_file(path, &tmp);
    if (s != GZ_OK) return s;
    if (tmp.size > GZ_ST_MAX_HEADER) {
        if (tmp.map) munmap(tmp.map, tmp.size);
        return GZ_FAIL(GZ_EINVAL, "%s: index file too large (%zu bytes)", path, tmp.size);
    }
    char *b = malloc(tmp.size + 1);
    if (!b) {
        if (tmp.map) munmap(tmp.map, tmp.size);
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    }
    if (tmp.size) memcpy(b, tmp.map, tmp.size);
    b[tmp.size] = 0;
    if (tmp.map) munmap(tmp.map, tmp.size);
    *out = b;
    *len = tmp.size;
    return GZ_OK;
}

/* A shard name of weight_map and where it first appeared. */
typedef struct {
    const char *name;
    size_t order;
} shard_ref;

static int shard_ref_by_name(const void *a, const void *b) {
    const shard_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int shard_ref_by_order(const void *a, const void *b) {
    const shard_ref *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static gz_status open_index(const char *path, gz_st_file **out) {
    char *buf = NULL;
    size_t len = 0;
    gz_status s = read_small(path, &buf, &len);
    if (s != GZ_OK) return s;
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!root)
        return GZ_FAIL(GZ_EINVAL, "%s: invalid JSON: %s (line %d)", path, jerr.text, jerr.line);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        return GZ_FAIL(GZ_EINVAL, "%s: missing or empty \"weight_map\" object", path);
    }
    /* Directory of the index, to resolve shard names. */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    /* Distinct shard names, in first-seen order: sorted by (name, first position) so repeats
     * are neighbours, then the first of each run back in position order. O(n log n): a
     * weight_map of 80k entries took 8 s with a linear search per entry. */
    size_t nmax = json_object_size(wm);
    shard_ref *refs = gz_calloc_n(nmax, sizeof *refs, "weight_map");
    const char **names = gz_calloc_n(nmax, sizeof *names, "weight_map");
    if (!refs || !names) {
        free(refs);
        free(names);
        json_decref(root);
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    }
    size_t nn = 0, nrefs = 0;
    const char *key;
    json_t *val;
    s = GZ_OK;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val)) {
            s = GZ_FAIL(GZ_EINVAL, "%s: weight_map entry '%s' is not a file name", path, key);
            break;
        }
        const char *fn = json_string_value(val);
        if (fn[0] == 0 || strchr(fn, '/') || strcmp(fn, "..") == 0) {
            s = GZ_FAIL(GZ_EINVAL, "%s: weight_map entry '%s' names a bad shard file '%s'", path,
                        key, fn);
            break;
        }
        refs[nrefs] = (shard_ref){fn, nrefs};
        nrefs++;
    }
    if (s == GZ_OK) {
        qsort(refs, nrefs, sizeof *refs, shard_ref_by_name);
        size_t k = 0;
        for (size_t j = 0; j < nrefs; j++)
            if (j == 0 || strcmp(refs[j].name, refs[j - 1].name) != 0) refs[k++] = refs[j];
        qsort(refs, k, sizeof *refs, shard_ref_by_order);
        for (size_t j = 0; j < k; j++)
            names[nn++] = refs[j].name;
    }
    free(refs);
    gz_st_file *f = NULL;
    if (s == GZ_OK) {
        f = file_new((int)nn);
        if (!f) s = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    }
    for (size_t j = 0; s == GZ_OK && j < nn; j++) {
        size_t fl = strlen(names[j]);
        char *sp = malloc(dirlen + fl + 1);
        if (!sp) {
            s = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
            break;
        }
        memcpy(sp, path, dirlen);
        memcpy(sp + dirlen, names[j], fl + 1);
        s = load_shard(f, (int)j, sp);
        free(sp);
        if (s != GZ_OK) gz_error_prefix(s, "%s", path);
    }
    if (s == GZ_OK) s = finish(f, path);
    /* Every tensor of the weight map must be in the shard it names. */
    if (s == GZ_OK) json_object_foreach(wm, key, val) {
            const gz_st_tensor *t = gz_st_find(f, key);
            if (!t) {
                s = GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' is listed in weight_map but not in %s",
                            path, key, json_string_value(val));
                break;
            }
            const st_entry *e = (const st_entry *)t;
            const char *sp = f->shards[e->shard].path;
            if (!ends_with(sp, json_string_value(val))) {
                s = GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' is in %s, but weight_map says %s", path,
                            key, sp, json_string_value(val));
                break;
            }
        }
    free(names);
    json_decref(root);
    if (s != GZ_OK) {
        gz_st_close(f);
        return s;
    }
    *out = f;
    return GZ_OK;
}

gz_status gz_st_open(const char *path, gz_st_file **out) {
    *out = NULL;
    if (!path) return GZ_FAIL(GZ_EINVAL, "gz_st_open: NULL path");
    if (ends_with(path, ".index.json")) return open_index(path, out);
    gz_st_file *f = file_new(1);
    if (!f) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    gz_status s = load_shard(f, 0, path);
    if (s == GZ_OK) s = finish(f, path);
    if (s != GZ_OK) {
        gz_st_close(f);
        return s;
    }
    *out = f;
    return GZ_OK;
}

gz_status gz_st_open_dir(const char *dir, gz_st_file **out) {
    *out = NULL;
    if (!dir) return GZ_FAIL(GZ_EINVAL, "gz_st_open_dir: NULL directory");
    size_t n = strlen(dir) + 64;
    char *p = malloc(n);
    if (!p) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", dir);
    snprintf(p, n, "%s/model.safetensors", dir);
    gz_status s;
    if (access(p, F_OK) == 0) {
        s = gz_st_open(p, out);
    } else {
        /* Then PyTorch checkpoints, in the order transformers' from_pretrained tries them. */
        static const char *const more[] = {"model.safetensors.index.json", "pytorch_model.bin",
                                           "pytorch_model.bin.index.json"};
        size_t k;
        for (k = 0; k < sizeof more / sizeof more[0]; k++) {
            snprintf(p, n, "%s/%s", dir, more[k]);
            if (access(p, F_OK) == 0) break;
        }
        if (k < sizeof more / sizeof more[0])
            s = gz_st_open(p, out);
        else
            s = GZ_FAIL(GZ_ENOTFOUND,
                        "%s: no model.safetensors or model.safetensors.index.json in the directory "
                        "(nor pytorch_model.bin or pytorch_model.bin.index.json)",
                        dir);
    }
    free(p);
    return s;
}

size_t gz_st_count(const gz_st_file *f) { return f ? f->n_ents : 0; }

const gz_st_tensor *gz_st_at(const gz_st_file *f, size_t i) {
    return f && i < f->n_ents ? &f->ents[i].t : NULL;
}

static const gz_st_tensor *find_exact(const gz_st_file *f, const char *name) {
    size_t lo = 0, hi = f->n_ents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_entry *e = &f->ents[f->by_name[mid]];
        int c = strcmp(name, e->t.name);
        if (c == 0) return &e->t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const gz_st_tensor *gz_st_find(const gz_st_file *f, const char *name) {
    if (!f || !name || !f->by_name) return NULL;
    const gz_st_tensor *t = find_exact(f, name);
    if (t) return t;
    /* Older checkpoints name LayerNorm parameters "gamma"/"beta"; transformers renames them to
     * "weight"/"bias" on load. Serve "<x>.weight" from "<x>.gamma" (and bias from beta) when
     * the normal name is absent. */
    static const struct {
        const char *norm, *old;
    } ren[] = {{".weight", ".gamma"}, {".bias", ".beta"}};
    size_t n = strlen(name);
    for (size_t r = 0; r < sizeof ren / sizeof ren[0]; r++) {
        size_t a = strlen(ren[r].norm), b = strlen(ren[r].old);
        char alt[512];
        if (n < a || n - a + b >= sizeof alt || strcmp(name + n - a, ren[r].norm) != 0) continue;
        memcpy(alt, name, n - a);
        memcpy(alt + n - a, ren[r].old, b + 1);
        if ((t = find_exact(f, alt)) != NULL) return t;
    }
    return NULL;
}

size_t gz_st_file_bytes(const gz_st_file *f) {
    size_t n = 0;
    for (int i = 0; f && i < f->n_shards; i++)
        n += f->shards[i].size;
    return n;
}

size_t gz_st_total_params(const gz_st_file *f) {
    size_t n = 0;
    for (size_t i = 0; f && i < f->n_ents; i++)
        n += f->ents[i].t.numel;
    return n;
}

const char *gz_st_dtypes(const gz_st_file *f) { return f ? f->dtypes : ""; }

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static const char *file_label(const gz_st_file *f) {
    return f->n_shards == 1 ? f->shards[0].path : "sharded checkpoint";
}

gz_status gz_st_f32(gz_st_file *f, const char *name, int ndim, const int64_t *shape,
                    const float **out) {
    *out = NULL;
    if (!f || !name) return GZ_FAIL(GZ_EINVAL, "gz_st_f32: NULL argument");
    const gz_st_tensor *t = gz_st_find(f, name);
    if (!t) return GZ_FAIL(GZ_ENOTFOUND, "%s: tensor '%s' not found", file_label(f), name);
    st_entry *e = (st_entry *)t; /* t is the first member of its entry */
    const char *file = f->shards[e->shard].path;
    if (shape) {
        int ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++)
            ok = t->shape[i] == shape[i];
        if (!ok) {
            char a[160], b[160];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, ndim, shape);
            return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' has shape %s, expected %s", file, name, a,
                           b);
        }
    }
    if (t->dtype != GZ_DT_F32 && t->dtype != GZ_DT_F16 && t->dtype != GZ_DT_BF16 &&
        t->dtype != GZ_DT_F64)
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' has dtype %s, expected a float type", file, name,
                       gz_dtype_name(t->dtype));
    if (t->dtype == GZ_DT_F32 && ((uintptr_t)t->data % _Alignof(float)) == 0) {
        *out = t->data;
        return GZ_OK;
    }
    gz_status s = GZ_OK;
    pthread_mutex_lock(&f->lock);
    if (!e->f32) {
        size_t bytes;
        float *d = NULL;
        if (!gz_mul_size(t->numel ? t->numel : 1, sizeof(float), &bytes) || !(d = malloc(bytes))) {
            s = GZ_FAIL(GZ_ENOMEM, "%s: out of memory converting tensor '%s'", file, name);
        } else {
            const unsigned char *src = t->data;
            for (size_t i = 0; i < t->numel; i++) {
                switch (t->dtype) {
                case GZ_DT_F16:
                case GZ_DT_BF16: {
                    uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
                    d[i] = t->dtype == GZ_DT_F16 ? gz_f16_to_f32(h) : gz_bf16_to_f32(h);
                    break;
                }
                case GZ_DT_F64: {
                    double v;
                    memcpy(&v, src + 8 * i, sizeof v);
                    d[i] = (float)v;
                    break;
                }
                default: memcpy(&d[i], src + 4 * i, sizeof(float)); break;
                }
            }
            e->f32 = d;
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (s == GZ_OK) *out = e->f32;
    return s;
}

gz_status gz_st_f32_fmt(gz_st_file *f, const float **out, int ndim, const int64_t *shape,
                        const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) {
        *out = NULL;
        return GZ_FAIL(GZ_EINVAL, "tensor name too long (%d bytes)", n);
    }
    return gz_st_f32(f, name, ndim, shape, out);
}

gz_status gz_st_i64_copy(gz_st_file *f, const char *name, int64_t **out, size_t *n) {
    *out = NULL;
    if (n) *n = 0;
    const gz_st_tensor *t = gz_st_find(f, name);
    if (!t)
        return GZ_FAIL(GZ_ENOTFOUND, "%s: tensor '%s' not found", f ? file_label(f) : "?",
                       name ? name : "(null)");
    const char *file = f->shards[((const st_entry *)t)->shard].path;
    size_t es = gz_dtype_size(t->dtype);
    if (t->dtype == GZ_DT_F32 || t->dtype == GZ_DT_F16 || t->dtype == GZ_DT_BF16 ||
        t->dtype == GZ_DT_F64)
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' has dtype %s, expected an integer type", file,
                       name, gz_dtype_name(t->dtype));
    size_t bytes;
    if (!gz_mul_size(t->numel ? t->numel : 1, sizeof(int64_t), &bytes))
        return GZ_FAIL(GZ_ENOMEM, "%s: tensor '%s' too large", file, name);
    int64_t *d = malloc(bytes);
    if (!d) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory copying tensor '%s'", file, name);
    const unsigned char *src = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        const unsigned char *p = src + i * es;
        uint64_t u = 0;
        for (size_t b = es; b-- > 0;)
            u = (u << 8) | p[b];
        int64_t v;
        switch (t->dtype) {
        case GZ_DT_I32: v = (int32_t)(uint32_t)u; break;
        case GZ_DT_I16: v = (int16_t)(uint16_t)u; break;
        case GZ_DT_I8: v = (int8_t)(uint8_t)u; break;
        case GZ_DT_U8:
        case GZ_DT_BOOL: v = (int64_t)u; break;
        default: v = (int64_t)u; break; /* I64 */
        }
        d[i] = v;
    }
    *out = d;
    if (n) *n = t->numel;
    return GZ_OK;
}

/* ===== fingerprints ===== */

/* Bytes of the little-endian u64 that starts a safetensors file. */
#define ST_LEN_BYTES 8

/* Feed one weight file: size, length prefix and JSON header (safetensors) or, for a
 * torch.save ZIP, its size and data.pkl. */
static gz_status fingerprint_file(const char *path, XXH3_state_t *h) {
    FILE *f = gz_fopen_regular(path);
    if (!f) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    unsigned char len8[ST_LEN_BYTES];
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || fread(len8, 1, ST_LEN_BYTES, f) != ST_LEN_BYTES) {
        fclose(f);
        return GZ_FAIL(GZ_EIO, "%s: cannot read the safetensors header", path);
    }
    if (gz_tb_is_zip(len8, ST_LEN_BYTES)) { /* pytorch_model.bin: its data.pkl is the header */
        fclose(f);
        return gz_tb_fingerprint(path, h);
    }
    uint64_t hlen = 0;
    for (int i = ST_LEN_BYTES - 1; i >= 0; i--)
        hlen = (hlen << 8) | len8[i];
    if (hlen > GZ_ST_MAX_HEADER || hlen > (uint64_t)st.st_size - ST_LEN_BYTES) {
        fclose(f);
        return GZ_FAIL(GZ_EINVAL, "%s: bad safetensors header length", path);
    }
    unsigned char *buf = malloc(hlen ? (size_t)hlen : 1);
    if (!buf) {
        fclose(f);
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    }
    if (fread(buf, 1, (size_t)hlen, f) != hlen) {
        free(buf);
        fclose(f);
        return GZ_FAIL(GZ_EIO, "%s: short read of the safetensors header", path);
    }
    fclose(f);
    uint64_t size = (uint64_t)st.st_size;
    XXH3_128bits_update(h, &size, sizeof size);
    XXH3_128bits_update(h, len8, ST_LEN_BYTES);
    XXH3_128bits_update(h, buf, (size_t)hlen);
    free(buf);
    return GZ_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Feed the content hash of one file (the weights' identity, see gz_st_fingerprint_content). */
static gz_status fingerprint_content(const char *path, XXH3_state_t *h) {
    uint8_t digest[16];
    gz_status st = gz_content_hash(path, digest);
    if (st == GZ_OK) XXH3_128bits_update(h, digest, sizeof digest);
    return st;
}

/* Feed every shard named in an index's weight_map (sorted, each once), by header
 * (fingerprint_file) or by content (fingerprint_content). */
static gz_status fingerprint_shards(const char *index_path, XXH3_state_t *h,
                                    gz_status (*feed)(const char *, XXH3_state_t *)) {
    json_error_t jerr;
    json_t *root = json_load_file(index_path, 0, &jerr);
    if (!root) return GZ_FAIL(GZ_EINVAL, "%s: %s (line %d)", index_path, jerr.text, jerr.line);
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        json_decref(root);
        return GZ_FAIL(GZ_EINVAL, "%s: no weight_map object", index_path);
    }
    size_t n = json_object_size(map), k = 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names) {
        json_decref(root);
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", index_path);
    }
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        if (json_is_string(val)) names[k++] = json_string_value(val);
    }
    qsort(names, k, sizeof *names, cmp_str);
    char *dir = strdup(index_path);
    gz_status st = dir ? GZ_OK : GZ_FAIL(GZ_ENOMEM, "out of memory");
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            strcpy(dir, ".");
    }
    for (size_t i = 0; st == GZ_OK && i < k; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) continue;
        char *p = gz_path_join(dir, names[i]);
        if (!p)
            st = GZ_FAIL(GZ_ENOMEM, "out of memory");
        else
            st = feed(p, h);
        free(p);
    }
    free(dir);
    free(names);
    json_decref(root);
    return st;
}

gz_status gz_st_fingerprint(const char *path, struct XXH3_state_s *h) {
    if (!path || !h) return GZ_FAIL(GZ_EINVAL, "gz_st_fingerprint: NULL argument");
    return ends_with(path, ".index.json") ? fingerprint_shards(path, h, fingerprint_file)
                                          : fingerprint_file(path, h);
}

gz_status gz_st_fingerprint_content(const char *path, struct XXH3_state_s *h) {
    if (!path || !h) return GZ_FAIL(GZ_EINVAL, "gz_st_fingerprint_content: NULL argument");
    return ends_with(path, ".index.json") ? fingerprint_shards(path, h, fingerprint_content)
                                          : fingerprint_content(path, h);
}

size_t gz_st_release(const gz_st_file *f, const void *p, size_t bytes) {
    if (!f || !p || bytes == 0) return 0;
    uintptr_t a = (uintptr_t)p, b = a + bytes;
    if (b < a) return 0;
    for (int i = 0; i < f->n_shards; i++) {
        const st_shard *sh = &f->shards[i];
        uintptr_t m = (uintptr_t)sh->map;
        if (!sh->map || a < m || b > m + sh->size) continue;
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = (a + page - 1) & ~(page - 1), hi = b & ~(page - 1);
        if (hi <= lo) return 0;
        /* MADV_DONTNEED, not MADV_PAGEOUT: it drops this process's view of every page, while
         * PAGEOUT skips the pages another process also maps (a second gaze, a server: measured,
         * a bf16 embed kept all 344 MB of fp32 ViT pages) and reclaims the others from the page
         * cache (madvise(2)), so a later process reads them from disk again. Safe on a
         * read-only private file mapping: its pages never differ from the file. */
        return madvise((void *)lo, (size_t)(hi - lo), MADV_DONTNEED) == 0 ? (size_t)(hi - lo) : 0;
    }
    return 0;
}
