/* testutil.c - shared test helpers (see testutil.h). */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gaze.h"

int gz_test_failures = 0;

int gz_check_close(const char *what, const float *got, const float *want, size_t n, float atol,
                   float rtol) {
    size_t first_bad = (size_t)-1;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= atol + rtol * fabs((double)want[i])) && first_bad == (size_t)-1) first_bad = i;
        if (d > max_diff || d != d) max_diff = d;
    }
    if (first_bad != (size_t)-1) {
        fprintf(stderr,
                "%s: element %zu of %zu: got %.8g want %.8g (atol %.1g rtol %.1g); max diff %.3g\n",
                what, first_bad, n, got[first_bad], want[first_bad], atol, rtol, max_diff);
        gz_test_failures++;
        return 0;
    }
    return 1;
}

void gz_test_close_report(const char *ctx, int ctx_w, const char *what, int what_w,
                          const float *got, const float *want, size_t n, float atol, float rtol) {
    char label[256];
    snprintf(label, sizeof label, "%s%s%s", ctx ? ctx : "", ctx ? " " : "", what);
    if (want) gz_check_close(label, got, want, n, atol, rtol);
    double d = want ? gz_max_abs_diff(got, want, n) : -1.0;
    if (ctx)
        printf("  %-*s %-*s max diff %.3g\n", ctx_w, ctx, what_w, what, d);
    else
        printf("  %-*s max diff %.3g\n", what_w, what, d);
}

double gz_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

float *gz_test_alloc_f(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

const float *gz_test_expected_f32(gz_st_file *ex, const char *ctx, const char *name, size_t *n) {
    const float *p = NULL;
    if (gz_st_f32(ex, name, 0, NULL, &p) != GZ_OK) {
        fprintf(stderr, "%s%sexpected tensor %s: %s\n", ctx ? ctx : "", ctx ? ": " : "", name,
                gz_last_error());
        gz_test_failures++;
        return NULL;
    }
    if (n) *n = gz_st_find(ex, name)->numel;
    return p;
}

int32_t *gz_test_expected_ids(gz_st_file *ex, const char *name, int *B, int *T) {
    int64_t *v = NULL;
    size_t n = 0;
    if (gz_st_i64_copy(ex, name, &v, &n) != GZ_OK) {
        fprintf(stderr, "%s: %s\n", name, gz_last_error());
        gz_test_failures++;
        return NULL;
    }
    const gz_st_tensor *t = gz_st_find(ex, name);
    *B = (int)t->shape[0];
    *T = (int)t->shape[1];
    int32_t *out = malloc(n * sizeof *out);
    if (!out) exit(2);
    for (size_t i = 0; i < n; i++)
        out[i] = (int32_t)v[i];
    free(v);
    return out;
}

uint64_t gz_test_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void gz_test_xorshift_unit(uint64_t seed, float *v, int d) {
    uint64_t s = seed;
    double norm = 0;
    for (int j = 0; j < d; j++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v[j] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        norm += (double)v[j] * v[j];
    }
    for (int j = 0; j < d; j++)
        v[j] = (float)(v[j] / sqrt(norm));
}

int gz_test_self_exe(char *buf, size_t cap) {
    ssize_t n = cap > 1 ? readlink("/proc/self/exe", buf, cap - 1) : -1;
    if (n <= 0) return -1;
    buf[n] = '\0';
    return 0;
}

const char *gz_test_path(const char *fmt, ...) {
    static char slots[8][2048];
    static int next = 0;
    char rel[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    char *out = slots[next];
    next = (next + 1) % 8;
    snprintf(out, 2048, "%s/%s", GZ_TEST_DATA, rel);
    return out;
}

const char *gz_test_tmpdir(const char *name) {
    static char dir[1024];
    const char *base = getenv("TMPDIR");
    if (!base) base = "/tmp";
    snprintf(dir, sizeof dir, "%s/gaze-test-%s-%d", base, name, (int)getpid());
    char cmd[2 * sizeof dir + 64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", dir);
        exit(3);
    }
    return dir;
}

int gz_test_finish(const char *suite, int checks_run) {
    if (gz_test_failures) {
        fprintf(stderr, "%s: %d check(s) FAILED (%d counted)\n", suite, gz_test_failures,
                checks_run);
        return 1;
    }
    /* A suite that ran nothing (setup bailed out early, a loop over zero fixtures, a main that
     * forgot to call its tests) would otherwise pass silently. */
    if (checks_run <= 0) {
        fprintf(stderr, "%s: FAILED: no check ran (%d counted)\n", suite, checks_run);
        return 1;
    }
    printf("%s: all %d checks passed\n", suite, checks_run);
    return 0;
}
