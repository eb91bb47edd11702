/* vindex.c - a FAISS index of one (model, kind) with its id table and its file (vindex.h). */
#include "store/vindex.h"

#include <assert.h>
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/fileio.h"

#define VX_MAGIC "GZVIDX01"
#define VX_VERSION 1u
#define VX_MIN_POINTS_PER_CENTROID 39 /* FAISS warns (on stderr) below this */
#define VX_PQ_CENTROIDS 256           /* 8-bit PQ codebooks */
#define VX_MAX_FETCH_ROUNDS 8
/* Bounds of factory parameters (gz_vindex_check_factory): beyond them FAISS would try to
 * allocate absurd graphs or codebooks (HNSW100000000) rather than fail cleanly. */
#define VX_MIN_HNSW_M 2
#define VX_MAX_HNSW_M 256
#define VX_MAX_NLIST 65536
#define VX_MAX_PQ_M 1024
#define VX_MAX_PQ_BITS 8 /* min_train assumes at most VX_PQ_CENTROIDS codes */

static const char *faiss_msg(void) {
    const char *m = faiss_get_last_error();
    return m ? m : "unknown FAISS error";
}

/* ---- item id -> position map ---- */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static gz_status map_grow(gz_vindex *v) {
    size_t ncap = v->map_cap ? v->map_cap * 2 : 1024;
    if (ncap > SIZE_MAX / sizeof(int64_t)) return GZ_FAIL(GZ_ENOMEM, "vindex: id map too large");
    int64_t *k = calloc(ncap, sizeof *k), *val = calloc(ncap, sizeof *val);
    if (!k || !val) {
        free(k);
        free(val);
        return GZ_FAIL(GZ_ENOMEM, "vindex: out of memory for the id map (%zu slots)", ncap);
    }
    for (size_t i = 0; i < v->map_cap; i++) {
        if (!v->map_keys[i]) continue;
        size_t j = mix64((uint64_t)v->map_keys[i]) & (ncap - 1);
        while (k[j])
            j = (j + 1) & (ncap - 1);
        k[j] = v->map_keys[i];
        val[j] = v->map_vals[i];
    }
    free(v->map_keys);
    free(v->map_vals);
    v->map_keys = k;
    v->map_vals = val;
    v->map_cap = ncap;
    return GZ_OK;
}

static size_t map_slot(const gz_vindex *v, int64_t id) { /* slot of id, or SIZE_MAX */
    if (!v->map_cap) return SIZE_MAX;
    size_t j = mix64((uint64_t)id) & (v->map_cap - 1);
    while (v->map_keys[j]) {
        if (v->map_keys[j] == id) return j;
        j = (j + 1) & (v->map_cap - 1);
    }
    return SIZE_MAX;
}

static gz_status map_put(gz_vindex *v, int64_t id, int64_t pos) {
    if ((v->map_n + 1) * 4 > v->map_cap * 3) { /* keep load <= 3/4 */
        gz_status st = map_grow(v);
        if (st != GZ_OK) return st;
    }
    size_t j = mix64((uint64_t)id) & (v->map_cap - 1);
    while (v->map_keys[j] && v->map_keys[j] != id)
        j = (j + 1) & (v->map_cap - 1);
    if (!v->map_keys[j]) v->map_n++;
    v->map_keys[j] = id;
    v->map_vals[j] = pos;
    return GZ_OK;
}

/* Remove slot j with backward-shift deletion (no tombstones). */
static void map_del_slot(gz_vindex *v, size_t j) {
    size_t mask = v->map_cap - 1;
    size_t i = j;
    for (;;) {
        v->map_keys[i] = 0;
        size_t k = i;
        for (;;) {
            k = (k + 1) & mask;
            if (!v->map_keys[k]) {
                v->map_n--;
                return;
            }
            size_t home = mix64((uint64_t)v->map_keys[k]) & mask;
            /* move k back to i unless its home lies cyclically in (i, k] */
            int stays = (i <= k) ? (home > i && home <= k) : (home > i || home <= k);
            if (!stays) break;
        }
        v->map_keys[i] = v->map_keys[k];
        v->map_vals[i] = v->map_vals[k];
        i = k;
    }
}

/* ---- factory strings ---- */

/* Parse a decimal number of at most 9 digits at *p (advanced); -1 when there is none. */
static long parse_count(const char **p) {
    long v = 0;
    int digits = 0;
    while (**p >= '0' && **p <= '9') {
        if (++digits > 9) return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return digits ? v : -1;
}

/* "PQ<m>[x<bits>][np]" at *p (advanced past it); 0 and why on a bad stage. */
static int parse_pq(const char **p, int dim, char *why, size_t cap) {
    if (strncmp(*p, "PQ", 2) != 0) return snprintf(why, cap, "expected PQ<m>"), 0;
    *p += 2;
    long m = parse_count(p);
    if (m < 1 || m > VX_MAX_PQ_M)
        return snprintf(why, cap, "PQ<m> needs m from 1 to %d", VX_MAX_PQ_M), 0;
    if (dim > 0 && dim % m)
        return snprintf(why, cap, "PQ%ld: m must divide the embedding size %d", m, dim), 0;
    if (**p == 'x') {
        (*p)++;
        long bits = parse_count(p);
        if (bits < 1 || bits > VX_MAX_PQ_BITS)
            return snprintf(why, cap, "PQ bits must be 1 to %d", VX_MAX_PQ_BITS), 0;
    }
    if (strncmp(*p, "np", 2) == 0) *p += 2;
    return 1;
}

int gz_vindex_check_factory(const char *factory, int dim, char *why, size_t cap) {
    why[0] = '\0';
    if (!factory || !*factory || strlen(factory) >= GZ_VX_FACTORY_MAX)
        return snprintf(why, cap, "empty or longer than %d bytes", GZ_VX_FACTORY_MAX - 1), 0;
    const char *p = factory;
    if (strcmp(p, "Flat") == 0) return 1;
    if (strncmp(p, "HNSW", 4) == 0) {
        p += 4;
        long m = parse_count(&p);
        if (m < VX_MIN_HNSW_M || m > VX_MAX_HNSW_M)
            return snprintf(why, cap, "HNSW<M> needs M from %d to %d", VX_MIN_HNSW_M,
                            VX_MAX_HNSW_M),
                   0;
        if (*p == '\0' || strcmp(p, ",Flat") == 0) return 1;
        return snprintf(why, cap, "unexpected '%s' after HNSW%ld", p, m), 0;
    }
    if (strncmp(p, "IVF", 3) == 0) {
        p += 3;
        long nlist = parse_count(&p);
        if (nlist < 1 || nlist > VX_MAX_NLIST)
            return snprintf(why, cap, "IVF<nlist> needs nlist from 1 to %d", VX_MAX_NLIST), 0;
        if (strcmp(p, ",Flat") == 0) return 1;
        if (*p != ',')
            return snprintf(why, cap, "IVF%ld must be followed by ,Flat or ,PQ<m>", nlist), 0;
        p++;
        if (!parse_pq(&p, dim, why, cap)) return 0;
        if (*p) return snprintf(why, cap, "unexpected '%s'", p), 0;
        return 1;
    }
    if (strncmp(p, "PQ", 2) == 0) {
        if (!parse_pq(&p, dim, why, cap)) return 0;
        if (*p) return snprintf(why, cap, "unexpected '%s'", p), 0;
        return 1;
    }
    return snprintf(why, cap, "not a known index type"), 0;
}

size_t gz_vindex_min_train(const char *factory) {
    const char *ivf = strstr(factory, "IVF");
    if (!ivf) /* a PQ without IVF trains its codebooks alone */
        return strstr(factory, "PQ") ? (size_t)VX_MIN_POINTS_PER_CENTROID * VX_PQ_CENTROIDS : 0;
    long nlist = strtol(ivf + 3, NULL, 10);
    if (nlist < 1) nlist = 1;
    size_t cells = (size_t)nlist;
    if (strstr(factory, "PQ") && cells < VX_PQ_CENTROIDS) cells = VX_PQ_CENTROIDS;
    return VX_MIN_POINTS_PER_CENTROID * cells;
}

/* The string given to FAISS: each "PQ<m>[x<bits>]" stage gets the "np" suffix (no polysemous
 * training: it only serves Hamming-filtered search, which we do not use, and it takes minutes on
 * a small machine). out holds GZ_VX_FACTORY_MAX + 16 bytes. */
static void faiss_string(const char *factory, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = factory; *p && o + 3 < cap;) {
        if (p[0] == 'P' && p[1] == 'Q' && p[2] >= '0' && p[2] <= '9' &&
            (p == factory || p[-1] == ',' || p[-1] == '_')) {
            out[o++] = *p++;
            out[o++] = *p++;
            while (*p >= '0' && *p <= '9' && o + 3 < cap)
                out[o++] = *p++;
            if (*p == 'x')
                for (out[o++] = *p++; *p >= '0' && *p <= '9' && o + 3 < cap;)
                    out[o++] = *p++;
            if (strncmp(p, "np", 2) != 0 && o + 3 < cap) {
                out[o++] = 'n';
                out[o++] = 'p';
            }
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

gz_status gz_vindex_create(int64_t model_id, int kind, int dim, const char *factory,
                           const float *train, size_t n_train, int *fell_back, gz_vindex **out) {
    *out = NULL;
    if (fell_back) *fell_back = 0;
    if (!factory || !*factory || strlen(factory) >= GZ_VX_FACTORY_MAX)
        return GZ_FAIL(GZ_EINVAL, "index factory string '%s' is empty or too long",
                       factory ? factory : "(null)");
    if (dim <= 0) return GZ_FAIL(GZ_EINVAL, "vindex: dimension %d", dim);
    const char *build = factory;
    size_t min_train = gz_vindex_min_train(factory);
    char why[160];
    if (!gz_vindex_check_factory(factory, dim, why, sizeof why)) {
        build = "Flat"; /* e.g. PQ<m> whose m does not divide this model's dim */
        if (fell_back) *fell_back = 2;
    } else if (min_train && n_train < min_train) {
        build = "Flat";
        if (fell_back) *fell_back = 1;
    }
    gz_vindex *v = calloc(1, sizeof *v);
    if (!v) return GZ_FAIL(GZ_ENOMEM, "vindex: out of memory");
    v->model_id = model_id;
    v->kind = kind;
    v->dim = dim;
    snprintf(v->factory, sizeof v->factory, "%s", factory);
    snprintf(v->effective, sizeof v->effective, "%s", build);
    FaissIndex *idx = NULL;
    char fs[GZ_VX_FACTORY_MAX + 16];
    faiss_string(build, fs, sizeof fs);
    if (faiss_index_factory(&idx, dim, fs, METRIC_INNER_PRODUCT) != 0 || !idx) {
        gz_status st = GZ_FAIL(GZ_EINVAL, "index factory '%s' (dim %d) rejected by FAISS: %s",
                               build, dim, faiss_msg());
        free(v);
        return st;
    }
    v->index = idx;
    if (!faiss_Index_is_trained(idx)) {
        if (n_train > (size_t)INT64_MAX || faiss_Index_train(idx, (idx_t)n_train, train) != 0) {
            gz_status st = GZ_FAIL(GZ_EINVAL, "training index '%s' on %zu vectors failed: %s",
                                   build, n_train, faiss_msg());
            gz_vindex_free(v);
            return st;
        }
    }
    *out = v;
    return GZ_OK;
}

void gz_vindex_free(gz_vindex *v) {
    if (!v) return;
    if (v->index) faiss_Index_free((FaissIndex *)v->index);
    free(v->ids);
    free(v->map_keys);
    free(v->map_vals);
    free(v);
}

/* The invariant of the id table: every live position is in the map exactly once, dead ones
 * (ids[pos] == -1) are not, and FAISS holds one vector per position. */
static void check_map(const gz_vindex *v) {
    assert(v->n_dead <= v->n);
    assert(v->map_n == v->n - v->n_dead);
    assert(!v->index || faiss_Index_ntotal((const FaissIndex *)v->index) == (idx_t)v->n);
    (void)v;
}

size_t gz_vindex_live(const gz_vindex *v) {
    check_map(v);
    return v->n - v->n_dead;
}

/* gz_vindex_remove without the invariant check (gz_vindex_add calls it mid-update). */
static int remove_id(gz_vindex *v, int64_t id) {
    size_t j = map_slot(v, id);
    if (j == SIZE_MAX) return 0;
    int64_t pos = v->map_vals[j];
    map_del_slot(v, j);
    v->ids[pos] = -1;
    v->n_dead++;
    v->dirty = 1;
    return 1;
}

int gz_vindex_remove(gz_vindex *v, int64_t id) {
    int removed = remove_id(v, id);
    check_map(v);
    return removed;
}

gz_status gz_vindex_add(gz_vindex *v, const int64_t *ids, const float *vecs, size_t n) {
    if (!n) return GZ_OK;
    if (v->n + n > v->cap) {
        size_t ncap = v->cap ? v->cap : 1024;
        while (ncap < v->n + n)
            ncap *= 2;
        size_t bytes;
        if (!gz_mul_size(ncap, sizeof *v->ids, &bytes))
            return GZ_FAIL(GZ_ENOMEM, "vindex: id table too large");
        int64_t *p = realloc(v->ids, bytes);
        if (!p) return GZ_FAIL(GZ_ENOMEM, "vindex: out of memory for %zu ids", ncap);
        v->ids = p;
        v->cap = ncap;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] <= 0) return GZ_FAIL(GZ_EINVAL, "vindex: item id %lld", (long long)ids[i]);
    if (faiss_Index_add((FaissIndex *)v->index, (idx_t)n, vecs) != 0)
        return GZ_FAIL(GZ_EIO, "adding %zu vectors to index '%s' failed: %s", n, v->effective,
                       faiss_msg());
    v->dirty = 1;
    for (size_t i = 0; i < n; i++) {
        remove_id(v, ids[i]); /* a replaced vector: the old position dies */
        size_t pos = v->n++;
        v->ids[pos] = ids[i];
        gz_status st = map_put(v, ids[i], (int64_t)pos);
        if (st != GZ_OK) return st;
    }
    check_map(v);
    return GZ_OK;
}

static gz_status set_search_params(gz_vindex *v, int ef_search, int nprobe) {
    int hnsw = strstr(v->effective, "HNSW") != NULL, ivf = strstr(v->effective, "IVF") != NULL;
    if (!hnsw && !ivf) return GZ_OK;
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) != 0) return GZ_FAIL(GZ_ENOMEM, "FAISS: %s", faiss_msg());
    int rc = 0;
    if (hnsw && ef_search > 0)
        rc = faiss_ParameterSpace_set_index_parameter(ps, (FaissIndex *)v->index, "efSearch",
                                                      (double)ef_search);
    if (!rc && ivf && nprobe > 0)
        rc = faiss_ParameterSpace_set_index_parameter(ps, (FaissIndex *)v->index, "nprobe",
                                                      (double)nprobe);
    faiss_ParameterSpace_free(ps);
    if (rc)
        return GZ_FAIL(GZ_EINVAL, "setting search parameters on '%s': %s", v->effective,
                       faiss_msg());
    return GZ_OK;
}

/* 1 when hit (sa, ia) ranks below (sb, ib): lower score, or the same score and a larger id
 * (gz_db_search's order: best first, ties by ascending id). */
static int ranks_below(float sa, int64_t ia, float sb, int64_t ib) {
    return sa < sb || (sa == sb && ia > ib);
}

/* Restore the min-heap (worst hit at the root) of n hits below position i. */
static void sift_down(float *s, int64_t *id, int n, int i) {
    for (;;) {
        int w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_below(s[l], id[l], s[w], id[w])) w = l;
        if (r < n && ranks_below(s[r], id[r], s[w], id[w])) w = r;
        if (w == i) return;
        float ts = s[i];
        int64_t ti = id[i];
        s[i] = s[w], id[i] = id[w];
        s[w] = ts, id[w] = ti;
        i = w;
    }
}

/* A Flat index: every vector scored with one matrix-vector product on OpenBLAS, and the k
 * best live hits kept in a heap. FAISS scores fewer than 20 queries with its own loop, which
 * Debian's generic build compiles without SIMD (fvec_inner_product_ref: 11 ms for one query
 * over 100k x 256 on the machine here, as long as the text tower itself); its BLAS path packs
 * the whole matrix for one query and was no faster. Dead positions are skipped here, so no
 * over-fetch is needed, and ties are decided by id as gz_db_search orders them. */
static gz_status flat_search(gz_vindex *v, FaissIndexFlat *flat, const float *query, int k,
                             int64_t *out_ids, float *out_scores, int *n_out) {
    float *xb = NULL;
    size_t size = 0;
    faiss_IndexFlat_xb(flat, &xb, &size);
    if (!xb || size != v->n * (size_t)v->dim)
        return GZ_FAIL(GZ_ECORRUPT, "Flat index holds %zu floats, expected %zu x %d", size, v->n,
                       v->dim);
    float *scores = malloc((v->n ? v->n : 1) * sizeof *scores);
    if (!scores) return GZ_FAIL(GZ_ENOMEM, "vindex: out of memory for %zu scores", v->n);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)v->n, v->dim, 1.0f, xb, v->dim, query, 1, 0.0f,
                scores, 1);
    int n = 0; /* heap of the best n hits so far in out_scores / out_ids */
    for (size_t p = 0; p < v->n; p++) {
        int64_t id = v->ids[p];
        if (id <= 0) continue;
        if (n < k) {
            out_scores[n] = scores[p], out_ids[n] = id;
            for (int i = ++n / 2 - 1; i >= 0 && n == k; i--) /* heapify once full */
                sift_down(out_scores, out_ids, n, i);
        } else if (ranks_below(out_scores[0], out_ids[0], scores[p], id)) {
            out_scores[0] = scores[p], out_ids[0] = id;
            sift_down(out_scores, out_ids, n, 0);
        }
    }
    free(scores);
    /* best first: pop the worst to the end */
    if (n < k)
        for (int i = n / 2 - 1; i >= 0; i--)
            sift_down(out_scores, out_ids, n, i);
    for (int end = n - 1; end > 0; end--) {
        float ts = out_scores[0];
        int64_t ti = out_ids[0];
        out_scores[0] = out_scores[end], out_ids[0] = out_ids[end];
        out_scores[end] = ts, out_ids[end] = ti;
        sift_down(out_scores, out_ids, end, 0);
    }
    *n_out = n;
    return GZ_OK;
}

gz_status gz_vindex_search(gz_vindex *v, const float *query, int k, int ef_search, int nprobe,
                           int64_t *out_ids, float *out_scores, int *n_out) {
    *n_out = 0;
    size_t live = gz_vindex_live(v);
    if (k <= 0 || live == 0) return GZ_OK;
    FaissIndexFlat *flat = faiss_IndexFlat_cast((FaissIndex *)v->index);
    if (flat && v->n <= INT_MAX && v->dim > 0)
        return flat_search(v, flat, query, k, out_ids, out_scores, n_out);
    gz_status st = set_search_params(v, ef_search, nprobe);
    if (st != GZ_OK) return st;
    /* Over-fetch by the number of dead positions (exact for Flat); when that is large, start
     * at 2k and double until k live results come back or everything was asked for. */
    size_t want = (size_t)k + (v->n_dead <= 1024 ? v->n_dead : (size_t)k);
    for (int round = 0; round < VX_MAX_FETCH_ROUNDS; round++) {
        if (want > v->n) want = v->n;
        size_t nd, nl;
        if (!gz_mul_size(want, sizeof(float), &nd) || !gz_mul_size(want, sizeof(idx_t), &nl))
            return GZ_FAIL(GZ_ENOMEM, "vindex: search size");
        float *dist = malloc(nd);
        idx_t *lab = malloc(nl);
        if (!dist || !lab) {
            free(dist);
            free(lab);
            return GZ_FAIL(GZ_ENOMEM, "vindex: out of memory for %zu results", want);
        }
        if (faiss_Index_search((FaissIndex *)v->index, 1, query, (idx_t)want, dist, lab) != 0) {
            free(dist);
            free(lab);
            return GZ_FAIL(GZ_EIO, "searching index '%s': %s", v->effective, faiss_msg());
        }
        int got = 0;
        for (size_t i = 0; i < want && got < k; i++) {
            if (lab[i] < 0 || (size_t)lab[i] >= v->n) continue;
            int64_t id = v->ids[lab[i]];
            if (id <= 0) continue;
            out_ids[got] = id;
            out_scores[got] = dist[i];
            got++;
        }
        free(dist);
        free(lab);
        *n_out = got;
        if (got >= k || (size_t)got >= live || want >= v->n) break;
        want *= 2;
    }
    return GZ_OK;
}

/* ---- file ---- */

typedef struct {
    uint8_t b[GZ_VX_HEADER_BYTES];
    size_t at;
} hdr_buf;

static void put(hdr_buf *h, const void *p, size_t n) {
    memcpy(h->b + h->at, p, n);
    h->at += n;
}
static void get(hdr_buf *h, void *p, size_t n) {
    memcpy(p, h->b + h->at, n);
    h->at += n;
}

static gz_status write_all(int fd, const void *p, size_t n, const char *path) {
    const uint8_t *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return GZ_FAIL(GZ_EIO, "%s: write: %s", path, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
    }
    return GZ_OK;
}

static gz_status fsync_dir_of(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return GZ_FAIL(GZ_EIO, "%s: open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return GZ_FAIL(GZ_EIO, "%s: fsync: %s", dir, strerror(e));
    return GZ_OK;
}

/* Create a new temporary file next to path, "<path>.tmp.<random>.<pid>" (db.c removes those of
 * dead pids: the pid stays last), with O_EXCL | O_NOFOLLOW: a name guessed in advance and planted
 * as a symlink by another user of a shared folder is never followed (the old predictable
 * "<path>.tmp.<pid>" opened with O_TRUNC was). mkstemp would do the same but creates mode 0600
 * regardless of the umask; the index file keeps the mode the umask gives, as the database does.
 * Sets *fd and fills tmp, or returns the error. */
static gz_status create_temp(const char *path, char *tmp, size_t cap, int *fd) {
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char r[8];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            return GZ_FAIL(GZ_EIO, "%s: getrandom: %s", path, strerror(errno));
        char suffix[sizeof r + 1];
        for (size_t i = 0; i < sizeof r; i++)
            suffix[i] = alnum[r[i] % (sizeof alnum - 1)];
        suffix[sizeof r] = '\0';
        if (snprintf(tmp, cap, "%s.tmp.%s.%ld", path, suffix, (long)getpid()) >= (int)cap)
            return GZ_FAIL(GZ_EINVAL, "%s: path too long", path);
        *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (*fd >= 0) return GZ_OK;
        if (errno != EEXIST) break;
    }
    return GZ_FAIL(GZ_EIO, "%s: create: %s", tmp, strerror(errno));
}

gz_status gz_vindex_save(const gz_vindex *v, const char *path) {
    char *blob = NULL;
    size_t blob_len = 0;
    FILE *ms = open_memstream(&blob, &blob_len);
    if (!ms) return GZ_FAIL(GZ_ENOMEM, "%s: open_memstream: %s", path, strerror(errno));
    int rc = faiss_write_index((const FaissIndex *)v->index, ms);
    if (fclose(ms) != 0 || rc != 0) {
        free(blob);
        return GZ_FAIL(GZ_EIO, "%s: serialising index: %s", path, rc ? faiss_msg() : "fclose");
    }
    size_t ids_bytes = v->n * sizeof(int64_t);
    uint64_t payload_bytes = (uint64_t)ids_bytes + blob_len;
    XXH3_state_t *xs = XXH3_createState();
    if (!xs) {
        free(blob);
        return GZ_FAIL(GZ_ENOMEM, "%s: xxhash state", path);
    }
    XXH3_64bits_reset(xs);
    if (ids_bytes) XXH3_64bits_update(xs, v->ids, ids_bytes);
    XXH3_64bits_update(xs, blob, blob_len);
    uint64_t payload_hash = XXH3_64bits_digest(xs);
    XXH3_freeState(xs);

    hdr_buf h = {{0}, 0};
    uint32_t version = VX_VERSION, kind = (uint32_t)v->kind;
    int64_t n = (int64_t)v->n, n_dead = (int64_t)v->n_dead, dim = v->dim;
    char fac[GZ_VX_FACTORY_MAX] = {0}, eff[GZ_VX_FACTORY_MAX] = {0};
    snprintf(fac, sizeof fac, "%s", v->factory);
    snprintf(eff, sizeof eff, "%s", v->effective);
    put(&h, VX_MAGIC, 8);
    put(&h, &version, 4);
    put(&h, &kind, 4);
    put(&h, &v->model_id, 8);
    put(&h, &v->gen, 8);
    put(&h, &n, 8);
    put(&h, &n_dead, 8);
    put(&h, &dim, 8);
    put(&h, fac, sizeof fac);
    put(&h, eff, sizeof eff);
    put(&h, &payload_bytes, 8);
    put(&h, &payload_hash, 8);
    uint64_t header_hash = XXH3_64bits(h.b, h.at);
    put(&h, &header_hash, 8);

    char tmp[PATH_MAX];
    int fd = -1;
    gz_status st = create_temp(path, tmp, sizeof tmp, &fd);
    if (st != GZ_OK) {
        free(blob);
        return st;
    }
    st = write_all(fd, h.b, h.at, tmp);
    if (st == GZ_OK && ids_bytes) st = write_all(fd, v->ids, ids_bytes, tmp);
    if (st == GZ_OK) st = write_all(fd, blob, blob_len, tmp);
    free(blob);
    if (st == GZ_OK && fsync(fd) != 0) st = GZ_FAIL(GZ_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == GZ_OK) st = GZ_FAIL(GZ_EIO, "%s: close: %s", tmp, strerror(errno));
    if (st == GZ_OK && rename(tmp, path) != 0)
        st = GZ_FAIL(GZ_EIO, "rename %s -> %s: %s", tmp, path, strerror(errno));
    if (st != GZ_OK) {
        unlink(tmp);
        return st;
    }
    return fsync_dir_of(path);
}

static gz_status parse_header(const uint8_t *b, size_t file_bytes, const char *path,
                              gz_vx_header *out, uint64_t *payload_bytes, uint64_t *payload_hash) {
    if (file_bytes < GZ_VX_HEADER_BYTES)
        return GZ_FAIL(GZ_ECORRUPT, "%s: truncated (%zu bytes)", path, file_bytes);
    hdr_buf h;
    memcpy(h.b, b, GZ_VX_HEADER_BYTES);
    h.at = 0;
    char magic[8];
    uint32_t version, kind;
    get(&h, magic, 8);
    if (memcmp(magic, VX_MAGIC, 8) != 0)
        return GZ_FAIL(GZ_ECORRUPT, "%s: not a gaze index file", path);
    get(&h, &version, 4);
    get(&h, &kind, 4);
    get(&h, &out->model_id, 8);
    get(&h, &out->generation, 8);
    get(&h, &out->n, 8);
    get(&h, &out->n_dead, 8);
    get(&h, &out->dim, 8);
    get(&h, out->factory, GZ_VX_FACTORY_MAX);
    get(&h, out->effective, GZ_VX_FACTORY_MAX);
    get(&h, payload_bytes, 8);
    get(&h, payload_hash, 8);
    size_t hashed = h.at;
    uint64_t header_hash;
    get(&h, &header_hash, 8);
    if (XXH3_64bits(h.b, hashed) != header_hash)
        return GZ_FAIL(GZ_ECORRUPT, "%s: header checksum mismatch", path);
    if (version != VX_VERSION)
        return GZ_FAIL(GZ_ECORRUPT, "%s: index file version %u, want %u", path, version,
                       VX_VERSION);
    out->factory[GZ_VX_FACTORY_MAX - 1] = out->effective[GZ_VX_FACTORY_MAX - 1] = '\0';
    out->kind = (int)kind;
    out->file_bytes = (int64_t)file_bytes;
    if (out->n < 0 || out->n_dead < 0 || out->n_dead > out->n || out->dim <= 0 ||
        (uint64_t)out->n > *payload_bytes / sizeof(int64_t) ||
        *payload_bytes != file_bytes - GZ_VX_HEADER_BYTES)
        return GZ_FAIL(GZ_ECORRUPT, "%s: inconsistent header (n %lld, payload %llu, file %zu)",
                       path, (long long)out->n, (unsigned long long)*payload_bytes, file_bytes);
    return GZ_OK;
}

gz_status gz_vindex_peek(const char *path, gz_vx_header *out) {
    memset(out, 0, sizeof *out);
    int fd = gz_open_regular(path); /* a FIFO does not hang */
    if (fd < 0) {
        if (errno == ENOENT) return GZ_FAIL(GZ_ENOTFOUND, "%s: missing", path);
        return GZ_FAIL(GZ_EIO, "%s: open: %s", path, strerror(errno));
    }
    struct stat sb;
    uint8_t b[GZ_VX_HEADER_BYTES];
    gz_status st = GZ_OK;
    if (fstat(fd, &sb) != 0)
        st = GZ_FAIL(GZ_EIO, "%s: stat: %s", path, strerror(errno));
    else if (sb.st_size < GZ_VX_HEADER_BYTES)
        st = GZ_FAIL(GZ_ECORRUPT, "%s: truncated (%lld bytes)", path, (long long)sb.st_size);
    else if (pread(fd, b, sizeof b, 0) != (ssize_t)sizeof b)
        st = GZ_FAIL(GZ_EIO, "%s: read header failed", path);
    close(fd);
    if (st != GZ_OK) return st;
    uint64_t pb, ph;
    return parse_header(b, (size_t)sb.st_size, path, out, &pb, &ph);
}

/* ---- the FAISS part of a file, checked before FAISS reads it ----
 * A .faiss file can be shared, so it is input. FAISS's reader trusts the length before each
 * array (it resizes, then reads: a 45-byte blob can claim 2^40 floats), so the layouts gaze
 * writes are walked here first and every array length checked against the bytes that remain:
 * flat ("IxFI"/"IxF2"), HNSW over flat ("IHNf"), product quantizer ("IxPq"), and IVF over a flat
 * quantizer with flat or PQ codes ("IwFl", "IwPQ"), as faiss/impl/index_read.cpp (1.7) reads
 * them, each only where gaze's header says that kind was built (fourcc_fits). Written by hand:
 * FAISS has no checked reader, and its format has no other parser. */

typedef struct {
    const uint8_t *p;
    size_t left;
} blob_cursor;

static int take(blob_cursor *c, void *out, size_t n) {
    if (c->left < n) return -1;
    if (out) memcpy(out, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

/* A FAISS vector: u64 count, then count elements of elem bytes. */
static int take_vector(blob_cursor *c, size_t elem, uint64_t *count) {
    uint64_t n;
    if (take(c, &n, 8) || n > c->left / elem) return -1;
    if (count) *count = n;
    return take(c, NULL, (size_t)n * elem);
}

/* fourcc and the header every FAISS index starts with; checks d and ntotal. */
static int take_index_header(blob_cursor *c, char fourcc[5], int dim, int64_t n) {
    int32_t d, metric;
    int64_t ntotal, dummy[2];
    uint8_t trained;
    if (take(c, fourcc, 4) || take(c, &d, 4) || take(c, &ntotal, 8) || take(c, dummy, 16) ||
        take(c, &trained, 1) || take(c, &metric, 4))
        return -1;
    fourcc[4] = '\0';
    if (metric > 1 && take(c, NULL, 4)) return -1; /* metric_arg */
    return d == dim && ntotal == n ? 0 : -1;
}

static int take_flat(blob_cursor *c, int dim, int64_t n) {
    char fourcc[5];
    uint64_t count;
    if (take_index_header(c, fourcc, dim, n)) return -1;
    if (strcmp(fourcc, "IxFI") != 0 && strcmp(fourcc, "IxF2") != 0) return -1;
    return take_vector(c, sizeof(float), &count) || count != (uint64_t)n * (uint64_t)dim ? -1 : 0;
}

/* A product quantizer: d, M, nbits (size_t each) and d << nbits float centroids; its codes take
 * *code_size bytes. gaze builds M dividing d and at most VX_MAX_PQ_BITS bits. */
static int take_pq(blob_cursor *c, int dim, uint64_t *code_size) {
    uint64_t d, m, nbits, count;
    if (take(c, &d, 8) || take(c, &m, 8) || take(c, &nbits, 8)) return -1;
    if (d != (uint64_t)dim || m < 1 || m > d || d % m != 0 || nbits < 1 || nbits > VX_MAX_PQ_BITS)
        return -1;
    if (take_vector(c, sizeof(float), &count) || count != d << nbits) return -1;
    *code_size = (m * nbits + 7) / 8;
    return 0;
}

/* An IVF's part after the common header: nlist and nprobe (size_t), the coarse quantizer (a
 * flat index of nlist centroids) and the direct map (a type byte, an id array, and for a hash
 * table its pairs). nlist must be the one gaze's header names. */
static int take_ivf_header(blob_cursor *c, int dim, uint64_t want_nlist) {
    uint64_t nlist, nprobe;
    uint8_t map_type;
    if (take(c, &nlist, 8) || take(c, &nprobe, 8) || nlist != want_nlist) return -1;
    if (take_flat(c, dim, (int64_t)nlist) || take(c, &map_type, 1) || map_type > 2 ||
        take_vector(c, sizeof(int64_t), NULL))
        return -1;
    return map_type == 2 ? take_vector(c, 2 * sizeof(int64_t), NULL) : 0;
}

/* Array inverted lists ("ilar"): nlist and code_size (size_t), the list sizes ("full": all
 * nlist; "sprs": (list, size) pairs), then each list's codes and ids. FAISS sizes every list
 * before it reads one, so each size is checked against the bytes left; the sizes must add up
 * to the n vectors of the header. */
static int take_invlists(blob_cursor *c, uint64_t nlist, uint64_t code_size, int64_t n) {
    char tag[4], kind[4];
    uint64_t lists, cs, count;
    if (take(c, tag, 4) || memcmp(tag, "ilar", 4) != 0 || take(c, &lists, 8) || lists != nlist ||
        take(c, &cs, 8) || cs != code_size || take(c, kind, 4) || take(c, &count, 8))
        return -1;
    uint64_t *sizes = calloc(nlist ? nlist : 1, sizeof *sizes);
    if (!sizes) return -1;
    int bad = 0;
    if (memcmp(kind, "full", 4) == 0) {
        bad = count != nlist || take(c, sizes, nlist * sizeof *sizes);
    } else if (memcmp(kind, "sprs", 4) == 0) {
        bad = count % 2 != 0 || count > c->left / sizeof(uint64_t);
        for (uint64_t j = 0; !bad && j < count; j += 2) {
            uint64_t pair[2];
            bad = take(c, pair, sizeof pair) || pair[0] >= nlist;
            if (!bad) sizes[pair[0]] = pair[1];
        }
    } else {
        bad = 1;
    }
    uint64_t total = 0;
    const uint64_t entry = code_size + sizeof(int64_t);
    for (uint64_t i = 0; !bad && i < nlist; i++) {
        bad = sizes[i] > c->left / entry || take(c, NULL, (size_t)(sizes[i] * entry));
        total += sizes[i];
    }
    free(sizes);
    return bad || total != (uint64_t)n ? -1 : 0;
}

/* Whether fourcc is the kind of index gaze builds for effective (the header's record of what
 * was built): a file whose header says Flat but whose FAISS part is an IVF reached FAISS's IVF
 * reader, which leaks the index it was building when it throws on a malformed one (found by
 * fuzz_vindex_load). */
static int fourcc_fits(const char *fourcc, const char *effective) {
    if (strncmp(effective, "HNSW", 4) == 0) return strcmp(fourcc, "IHNf") == 0;
    if (strncmp(effective, "IVF", 3) == 0)
        return strcmp(fourcc, strstr(effective, ",PQ") ? "IwPQ" : "IwFl") == 0;
    if (strncmp(effective, "PQ", 2) == 0) return strcmp(fourcc, "IxPq") == 0;
    return strcmp(fourcc, "IxFI") == 0 || strcmp(fourcc, "IxF2") == 0;
}

static gz_status check_faiss_blob(const uint8_t *b, size_t len, int dim, int64_t n,
                                  const char *effective, const char *path) {
    blob_cursor c = {b, len};
    char fourcc[5];
    int bad;
    if (take_index_header(&c, fourcc, dim, n) || !fourcc_fits(fourcc, effective)) {
        bad = 1;
    } else if (strcmp(fourcc, "IxFI") == 0 || strcmp(fourcc, "IxF2") == 0) {
        c = (blob_cursor){b, len};
        bad = take_flat(&c, dim, n) || c.left != 0;
    } else if (strcmp(fourcc, "IHNf") == 0) {
        /* HNSW: assign_probas (double), cum_nneighbor_per_level, levels (int), offsets
         * (size_t), neighbors (int), five ints, then the flat storage of all vectors */
        bad = take_vector(&c, 8, NULL) || take_vector(&c, 4, NULL) || take_vector(&c, 4, NULL) ||
              take_vector(&c, 8, NULL) || take_vector(&c, 4, NULL) || take(&c, NULL, 20) ||
              take_flat(&c, dim, n) || c.left != 0;
    } else if (strcmp(fourcc, "IxPq") == 0) {
        /* the quantizer, the codes (bytes), then search_type, encode_signs, polysemous_ht */
        uint64_t code_size, count;
        bad = take_pq(&c, dim, &code_size) || take_vector(&c, 1, &count) ||
              count != (uint64_t)n * code_size || take(&c, NULL, 9) || c.left != 0;
    } else { /* "IwFl" or "IwPQ" (fourcc_fits): IVF<nlist> as the header says */
        uint64_t nlist = strtoull(effective + 3, NULL, 10), code_size = (uint64_t)dim * 4;
        bad = nlist < 1 || nlist > VX_MAX_NLIST || take_ivf_header(&c, dim, nlist);
        if (!bad && strcmp(fourcc, "IwPQ") == 0) { /* by_residual, code_size, the quantizer */
            uint64_t stored;
            bad = take(&c, NULL, 1) || take(&c, &stored, 8) || take_pq(&c, dim, &code_size) ||
                  stored != code_size;
        }
        bad = bad || take_invlists(&c, nlist, code_size, n) || c.left != 0;
    }
    if (bad)
        return GZ_FAIL(GZ_ECORRUPT,
                       "%s: the FAISS index inside does not match its header (%lld vectors of "
                       "dim %d) or claims more bytes than the file holds",
                       path, (long long)n, dim);
    return GZ_OK;
}

gz_status gz_vindex_load(const char *path, int64_t model_id, int kind, int dim, const char *factory,
                         int64_t gen, gz_vindex **out) {
    *out = NULL;
    int fd = gz_open_regular(path); /* a FIFO does not hang */
    if (fd < 0) {
        if (errno == ENOENT) return GZ_FAIL(GZ_ENOTFOUND, "%s: missing", path);
        return GZ_FAIL(GZ_EIO, "%s: open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < GZ_VX_HEADER_BYTES) {
        close(fd);
        return GZ_FAIL(GZ_ECORRUPT, "%s: truncated or unreadable", path);
    }
    size_t bytes = (size_t)sb.st_size;
    uint8_t *map = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return GZ_FAIL(GZ_EIO, "%s: mmap: %s", path, strerror(errno));
    gz_vx_header h;
    uint64_t payload_bytes, payload_hash;
    gz_vindex *v = NULL;
    gz_status st = parse_header(map, bytes, path, &h, &payload_bytes, &payload_hash);
    if (st != GZ_OK) goto done;
    if (h.model_id != model_id || h.kind != kind || h.dim != dim) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: belongs to model %lld kind %d dim %lld", path,
                     (long long)h.model_id, h.kind, (long long)h.dim);
        goto done;
    }
    if (h.generation != gen) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: stale (generation %lld, database has %lld)", path,
                     (long long)h.generation, (long long)gen);
        goto done;
    }
    if (strcmp(h.factory, factory) != 0) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: built with '%s', '%s' requested", path, h.factory, factory);
        goto done;
    }
    const uint8_t *payload = map + GZ_VX_HEADER_BYTES;
    if (XXH3_64bits(payload, payload_bytes) != payload_hash) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: payload checksum mismatch", path);
        goto done;
    }
    size_t ids_bytes = (size_t)h.n * sizeof(int64_t);
    st = check_faiss_blob(payload + ids_bytes, payload_bytes - ids_bytes, dim, h.n, h.effective,
                          path);
    if (st != GZ_OK) goto done;
    FILE *mf = fmemopen((void *)(payload + ids_bytes), payload_bytes - ids_bytes, "r");
    if (!mf) {
        st = GZ_FAIL(GZ_EIO, "%s: fmemopen: %s", path, strerror(errno));
        goto done;
    }
    FaissIndex *idx = NULL;
    int rc = faiss_read_index(mf, 0, &idx);
    fclose(mf);
    if (rc != 0 || !idx) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: FAISS could not read it: %s", path, faiss_msg());
        goto done;
    }
    v = calloc(1, sizeof *v);
    if (!v) {
        faiss_Index_free(idx);
        st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    v->index = idx;
    v->model_id = model_id;
    v->kind = kind;
    v->dim = dim;
    v->gen = gen;
    snprintf(v->factory, sizeof v->factory, "%s", h.factory);
    snprintf(v->effective, sizeof v->effective, "%s", h.effective);
    if (faiss_Index_ntotal(idx) != h.n || faiss_Index_d(idx) != dim) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: FAISS holds %lld vectors of dim %d, header says %lld of %d",
                     path, (long long)faiss_Index_ntotal(idx), faiss_Index_d(idx), (long long)h.n,
                     dim);
        goto done;
    }
    size_t cap = h.n > 0 ? (size_t)h.n : 1;
    v->ids = malloc(cap * sizeof *v->ids);
    if (!v->ids) {
        st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    memcpy(v->ids, payload, ids_bytes);
    v->cap = cap;
    v->n = (size_t)h.n;
    for (size_t i = 0; i < v->n; i++) {
        if (v->ids[i] <= 0) {
            v->n_dead++;
            continue;
        }
        if (map_slot(v, v->ids[i]) != SIZE_MAX) {
            st = GZ_FAIL(GZ_ECORRUPT, "%s: item %lld appears twice", path, (long long)v->ids[i]);
            goto done;
        }
        if ((st = map_put(v, v->ids[i], (int64_t)i)) != GZ_OK) goto done;
    }
    if ((int64_t)v->n_dead != h.n_dead) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: %zu dead positions, header says %lld", path, v->n_dead,
                     (long long)h.n_dead);
        goto done;
    }
    check_map(v);
done:
    munmap(map, bytes);
    if (st != GZ_OK) {
        gz_vindex_free(v);
        return st;
    }
    *out = v;
    return GZ_OK;
}
