/* testutil.h - small helpers shared by the C test suites (not part of the library). */
#ifndef GZ_TESTUTIL_H
#define GZ_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/safetensors.h"

/* A failed CHECK prints file:line and the condition, counts the failure, and continues. */
extern int gz_test_failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            gz_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int st_ = (expr);                                                                          \
        if (st_ != 0) {                                                                            \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, st_,         \
                    gz_last_error());                                                              \
            gz_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

/* The same, also adding one to `counter` (a suite's own check count), so a suite can say
 * `#define T(c) CHECK_COUNTED(checks, c)`. */
#define CHECK_COUNTED(counter, cond)                                                               \
    do {                                                                                           \
        (counter)++;                                                                               \
        CHECK(cond);                                                                               \
    } while (0)
#define CHECK_OK_COUNTED(counter, expr)                                                            \
    do {                                                                                           \
        (counter)++;                                                                               \
        CHECK_OK(expr);                                                                            \
    } while (0)
/* expr must return exactly the status want; counts one check into counter. */
#define CHECK_STATUS_COUNTED(counter, expr, want)                                                  \
    do {                                                                                           \
        int got_ = (expr);                                                                         \
        (counter)++;                                                                               \
        if (got_ != (want)) {                                                                      \
            fprintf(stderr, "%s:%d: %s returned %d, want %d (%s)\n", __FILE__, __LINE__, #expr,    \
                    got_, (int)(want), gz_last_error());                                           \
            gz_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

/* Compare got with want element by element; on the first element outside
 * |got - want| <= atol + rtol*|want| (NaN fails) print what, index, both values and the
 * max difference over the whole array. Returns 1 if all close. Counts a failure. */
int gz_check_close(const char *what, const float *got, const float *want, size_t n, float atol,
                   float rtol);
/* gz_check_close(got, want) under the label "<ctx> <what>" (just what when ctx is NULL), then
 * print "  <ctx> <what> max diff D" to stdout, ctx and what left-aligned in ctx_w and what_w
 * columns (D = -1 when want is NULL: nothing to compare, its absence already counted by
 * gz_test_expected_f32). */
void gz_test_close_report(const char *ctx, int ctx_w, const char *what, int what_w,
                          const float *got, const float *want, size_t n, float atol, float rtol);
/* Max |a - b| over n elements. */
double gz_max_abs_diff(const float *a, const float *b, size_t n);

/* calloc of n floats (one when n is 0), zeroed; prints "out of memory" and exits 2 on failure. */
float *gz_test_alloc_f(size_t n);

/* Expected f32 tensor `name` of ex (borrowed from ex), its element count in *n when n is not
 * NULL. When absent or not readable as f32: prints "<ctx>: expected tensor <name>: <error>"
 * ("expected tensor ..." when ctx is NULL), counts a failure and returns NULL. */
const float *gz_test_expected_f32(gz_st_file *ex, const char *ctx, const char *name, size_t *n);

/* Integer tensor `name` of ex, shape (B, T), as a new int32 array (caller frees); shape in *B,
 * *T. When unreadable: prints "<name>: <error>", counts a failure and returns NULL. Exits 2
 * when out of memory. */
int32_t *gz_test_expected_ids(gz_st_file *ex, const char *name, int *B, int *T);

/* Next value of the splitmix64 generator whose state is *state (advanced). */
uint64_t gz_test_splitmix64(uint64_t *state);

/* v[0..d) = a deterministic unit vector drawn from xorshift64 started at seed. */
void gz_test_xorshift_unit(uint64_t seed, float *v, int d);

/* Path of this test executable (read from /proc/self/exe) into buf of cap bytes, for tests
 * that run themselves again as a child process. Returns 0, or -1 when it cannot be read. */
int gz_test_self_exe(char *buf, size_t cap);

/* Path under tests/data: returns a static buffer (one per call slot, 8 slots rotating). */
const char *gz_test_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Make a fresh empty temporary directory for this test; returns its path (static). */
const char *gz_test_tmpdir(const char *name);

/* The end of a suite's main: print a summary and return the process exit code, 1 when a check
 * failed (gz_test_failures) and also 1 when checks_run, the suite's own count, is zero or less:
 * a suite that checked nothing fails loudly instead of passing. 0 otherwise. */
int gz_test_finish(const char *suite, int checks_run);

#endif
