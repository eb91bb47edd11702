/* test_store_vindex.c - the .faiss cache file as untrusted input and output (issue #15): the
 * temporary file of a save never follows a symlink planted at a guessable name, and the loader
 * refuses files whose FAISS part disagrees with gaze's header before FAISS allocates for it;
 * a Flat index's search against brute force. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <xxhash.h>

#include "core/error.h"
#include "store/vindex.h"
#include "tests/testutil.h"

static int checks = 0;

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int file_equals(const char *path, const char *text) {
    char buf[256] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static gz_vindex *small_index(void) {
    gz_vindex *v = NULL;
    CHECK_OK(gz_vindex_create(1, 0, 4, "Flat", NULL, 0, NULL, &v));
    if (!v) return NULL;
    float vecs[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    int64_t ids[2] = {7, 9};
    CHECK_OK(gz_vindex_add(v, ids, vecs, 2));
    return v;
}

/* Another user of a shared folder plants "<index>.tmp.<pid>" (the old predictable name) as a
 * symlink to a file of ours: the save must neither write through it nor replace the index
 * with it. Fails before the fix: the victim was truncated and overwritten. */
static void test_temp_symlink(void) {
    const char *dir = gz_test_tmpdir("vindex_symlink");
    char path[PATH_MAX], victim[PATH_MAX], planted[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/db.gaze.m1.faiss", dir);
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    snprintf(planted, sizeof planted, "%s.tmp.%ld", path, (long)getpid());
    CHECK(write_text(victim, "precious\n") == 0);
    CHECK(symlink(victim, planted) == 0);
    gz_vindex *v = small_index();
    if (!v) return;
    v->gen = 3;
    CHECK_OK(gz_vindex_save(v, path));
    CHECK(file_equals(victim, "precious\n"));
    struct stat sb;
    CHECK(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)); /* the index, not the symlink */
    CHECK(lstat(planted, &sb) == 0 && S_ISLNK(sb.st_mode));
    gz_vindex *back = NULL;
    CHECK_OK(gz_vindex_load(path, 1, 0, 4, "Flat", 3, &back));
    CHECK(back && back->n == 2);
    checks += 6;
    gz_vindex_free(back);
    gz_vindex_free(v);
    unlink(planted);
    unlink(victim);
    unlink(path);
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Rewrites the payload and header checksums of a saved index after an edit (they detect
 * accidents, not intent). */
static void rehash(unsigned char *b, size_t len) {
    uint64_t ph = XXH3_64bits(b + GZ_VX_HEADER_BYTES, len - GZ_VX_HEADER_BYTES);
    memcpy(b + GZ_VX_HEADER_BYTES - 16, &ph, 8);
    uint64_t hh = XXH3_64bits(b, GZ_VX_HEADER_BYTES - 8);
    memcpy(b + GZ_VX_HEADER_BYTES - 8, &hh, 8);
}

/* Loads path in a child; 1 when it was refused as corrupt naming the file, with the child's
 * peak RSS (KiB) in *rss. */
static int refused_in_child(const char *path, const char *factory, int dim, long *rss) {
    pid_t pid = fork();
    if (pid == 0) {
        gz_vindex *v = NULL;
        gz_status st = gz_vindex_load(path, 1, 0, dim, factory, 0, &v);
        fprintf(stderr, "%s: %s\n", factory, gz_last_error());
        _exit(st == GZ_ECORRUPT && strstr(gz_last_error(), path) ? 0 : 1);
    }
    int status = 0;
    if (pid <= 0 || waitpid(pid, &status, 0) != pid) return 0;
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    *rss = ru.ru_maxrss; /* the largest child so far: a claim met would dominate it */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A shared .faiss file whose FAISS part claims 2^28 floats (1 GiB) in 45 bytes, with gaze's
 * checksums made to match (they detect accidents, not intent). FAISS resized to the claim
 * before reading; the loader must refuse the file without allocating it. Run in a child so
 * that its peak memory is measured alone. Round trips of Flat and HNSW files still load. */
static void test_faiss_claims(void) {
    const char *dir = gz_test_tmpdir("vindex_claims");
    char path[PATH_MAX];
    for (int hnsw = 0; hnsw < 2; hnsw++) { /* valid files of both walked layouts load */
        snprintf(path, sizeof path, "%s/ok%d.faiss", dir, hnsw);
        gz_vindex *v = NULL;
        CHECK_OK(gz_vindex_create(1, 0, 4, hnsw ? "HNSW8" : "Flat", NULL, 0, NULL, &v));
        if (!v) return;
        float vecs[8] = {1, 0, 0, 0, 0, 1, 0, 0};
        int64_t ids[2] = {7, 9};
        CHECK_OK(gz_vindex_add(v, ids, vecs, 2));
        CHECK_OK(gz_vindex_save(v, path));
        gz_vindex_free(v);
        gz_vindex *back = NULL;
        CHECK_OK(gz_vindex_load(path, 1, 0, 4, hnsw ? "HNSW8" : "Flat", 0, &back));
        checks += 2;
        gz_vindex_free(back);
    }
    snprintf(path, sizeof path, "%s/ok0.faiss", dir);
    size_t len = 0;
    unsigned char *b = read_all(path, &len);
    CHECK(b && len > GZ_VX_HEADER_BYTES + 16 + 45);
    if (!b) return;
    size_t blob = GZ_VX_HEADER_BYTES + 2 * sizeof(int64_t);
    CHECK(memcmp(b + blob, "IxFI", 4) == 0);
    uint64_t claim = (uint64_t)1 << 28;
    memcpy(b + blob + 37, &claim, 8); /* the float count of the codes vector */
    rehash(b, len);
    snprintf(path, sizeof path, "%s/claims.faiss", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, len, f) == len && fclose(f) == 0);
    free(b);
    long rss = 0;
    checks += 2;
    CHECK(refused_in_child(path, "Flat", 4, &rss));
    CHECK(rss < 400 * 1024); /* KiB: far below the 1 GiB claimed */
    printf("claims.faiss refused; child peak RSS %ld KiB\n", rss);
}

/* Deterministic vectors in [-1, 1) for the quantized kinds' round trips. */
static void fill_vectors(float *v, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* The quantized kinds gaze builds, IVF<n>,Flat, IVF<n>,PQ<m> and PQ<m>, trained, saved and
 * loaded back (a trained PQ file was refused on load before its layout was walked); and an
 * IVF file whose first inverted list claims 2^28 entries (4 GiB of codes and ids), checksums
 * made to match, is refused before FAISS sizes the list. */
static void test_quantized_files(void) {
    enum { DIM = 16, N = 10000 };
    const char *dir = gz_test_tmpdir("vindex_quantized");
    static float vecs[(size_t)N * DIM];
    static int64_t ids[N];
    fill_vectors(vecs, (size_t)N * DIM, 7);
    for (int i = 0; i < N; i++)
        ids[i] = 1000 + i;
    const char *kinds[] = {"IVF4,Flat", "IVF4,PQ4", "PQ4"};
    char path[PATH_MAX];
    for (int t = 0; t < 3; t++) {
        snprintf(path, sizeof path, "%s/q%d.faiss", dir, t);
        gz_vindex *v = NULL;
        int fell_back = -1;
        CHECK_OK(gz_vindex_create(1, 0, DIM, kinds[t], vecs, N, &fell_back, &v));
        if (!v) return;
        CHECK(fell_back == 0 && strcmp(v->effective, kinds[t]) == 0);
        CHECK_OK(gz_vindex_add(v, ids, vecs, N));
        CHECK_OK(gz_vindex_save(v, path));
        gz_vindex_free(v);
        gz_vindex *back = NULL;
        gz_status st = gz_vindex_load(path, 1, 0, DIM, kinds[t], 0, &back);
        if (st != GZ_OK) fprintf(stderr, "%s: %s\n", kinds[t], gz_last_error());
        CHECK(st == GZ_OK && back && back->n == N);
        int64_t got[5];
        float sc[5];
        int n = 0;
        if (back) CHECK_OK(gz_vindex_search(back, vecs, 5, 0, 4, got, sc, &n));
        CHECK(n == 5);
        checks += 5;
        gz_vindex_free(back);
    }
    /* q0 is IVF4,Flat: walk to its list sizes */
    snprintf(path, sizeof path, "%s/q0.faiss", dir);
    size_t len = 0;
    unsigned char *b = read_all(path, &len);
    CHECK(b != NULL);
    if (!b) return;
    size_t at = GZ_VX_HEADER_BYTES + (size_t)N * sizeof(int64_t);
    CHECK(memcmp(b + at, "IwFl", 4) == 0);
    at += 37 + 16;              /* IVF header (inner product: no metric argument), nlist, nprobe */
    at += 37 + 8 + 4 * DIM * 4; /* the flat quantizer: 4 centroids */
    at += 1 + 8;                /* no direct map */
    CHECK(memcmp(b + at, "ilar", 4) == 0);
    at += 4 + 8 + 8; /* nlist, code_size */
    int full = memcmp(b + at, "full", 4) == 0;
    CHECK(full); /* 10000 vectors in 4 lists: every list used */
    at += 4 + 8;
    uint64_t claim = (uint64_t)1 << 28;
    if (full && at + 8 <= len) memcpy(b + at, &claim, 8);
    rehash(b, len);
    snprintf(path, sizeof path, "%s/ivf_claims.faiss", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, len, f) == len && fclose(f) == 0);
    free(b);
    long rss = 0;
    CHECK(refused_in_child(path, "IVF4,Flat", DIM, &rss));
    CHECK(rss < 400 * 1024); /* KiB: far below the 4 GiB claimed */
    printf("ivf_claims.faiss refused; children's peak RSS %ld KiB\n", rss);
    checks += 6;
}

typedef struct {
    long score;
    int64_t id;
} ref_hit;
static int ref_cmp(const void *a, const void *b) {
    const ref_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* A Flat index's search (scored by gaze, not FAISS's loop) against brute force. Integer
 * vectors make every score exact, so ties are many and must come by ascending id (ids are
 * added in descending order: position order is not id order); removed ids never come back;
 * a k beyond the live count returns every live item. */
static void test_flat_search(void) {
    enum { N = 300, DIM = 4 };
    gz_vindex *v = NULL;
    CHECK_OK(gz_vindex_create(1, 0, DIM, "Flat", NULL, 0, NULL, &v));
    checks++;
    if (!v) return;
    static float vecs[N * DIM];
    int64_t ids[N];
    int live[N], n_live = 0;
    uint64_t rs = 42;
    for (int i = 0; i < N; i++) {
        ids[i] = 1000 - i;
        for (int d = 0; d < DIM; d++)
            vecs[i * DIM + d] = (float)((int)(gz_test_splitmix64(&rs) % 7) - 3);
    }
    CHECK_OK(gz_vindex_add(v, ids, vecs, N));
    checks++;
    for (int i = 0; i < N; i++) {
        live[i] = i % 7 != 3;
        if (!live[i]) CHECK(gz_vindex_remove(v, ids[i]) == 1);
        n_live += live[i];
    }
    const float queries[3][DIM] = {{1, 0, 0, 0}, {2, -1, 3, 1}, {0, 0, 0, 1}};
    const int ks[] = {1, 5, 17, N, N + 100};
    static ref_hit want[N];
    static int64_t got_ids[N + 100];
    static float got_s[N + 100];
    for (int qi = 0; qi < 3; qi++) {
        int m = 0;
        for (int i = 0; i < N; i++) {
            if (!live[i]) continue;
            long sc = 0;
            for (int d = 0; d < DIM; d++)
                sc += (long)queries[qi][d] * (long)vecs[i * DIM + d];
            want[m++] = (ref_hit){sc, ids[i]};
        }
        qsort(want, (size_t)m, sizeof *want, ref_cmp);
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            int k = ks[ki], n = -1, ok = 1;
            CHECK_OK(gz_vindex_search(v, queries[qi], k, 0, 0, got_ids, got_s, &n));
            ok = n == (k < n_live ? k : n_live);
            for (int i = 0; ok && i < n; i++)
                ok = got_ids[i] == want[i].id && got_s[i] == (float)want[i].score;
            checks++;
            if (!ok)
                fprintf(stderr, "flat search: query %d, k %d: not the brute-force hits\n", qi, k);
            CHECK(ok);
        }
    }
    gz_vindex_free(v);
}

int main(void) {
    test_temp_symlink();
    test_faiss_claims();
    test_quantized_files();
    test_flat_search();
    return gz_test_finish("store_vindex", checks);
}
