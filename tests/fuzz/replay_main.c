/* replay_main.c - replays saved inputs through a fuzz target's entry point
 * (LLVMFuzzerTestOneInput) without libFuzzer, so that every build (gcc or clang, with or
 * without sanitizers) runs what fuzzing found: tests/CMakeLists.txt links this file with each
 * tests/fuzz/fuzz_*.c as fuzz_replay_<target> and ctest replays
 * tests/fuzz/regressions/<target>/ (the crashes, hangs and leaks found, and a few seeds).
 *
 * Usage: fuzz_replay_<target> [-rss_limit_mb=N] [-timeout=S] FILE|DIR...
 * Each FILE, and each regular file of each DIR (sorted by name, dot files skipped), is read
 * into a buffer of exactly its size (so ASan sees a read past it) and run once. As libFuzzer
 * would, the run fails when the entry point returns nonzero, crashes or trips a sanitizer (the
 * process dies), runs longer than -timeout seconds on one input (default 60: a hang bound,
 * not a speed check) or the process's peak RSS passes -rss_limit_mb (default 1024; libFuzzer's
 * is 2048, but every input here is small, so a bound that grows by a claim of 1 GiB is caught).
 * It also fails when a folder holds no input, or no input was given: a replay of nothing tests
 * nothing. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT ((size_t)16 << 20) /* a regression input is small; refuse the rest */

/* The input being run, for the SIGALRM handler's message (a signal handler reaches only
 * static storage). */
static const char *volatile current_input;

static void on_timeout(int sig) {
    (void)sig;
    static const char head[] = "fuzz replay: TIMEOUT (hang) on ";
    const char *name = current_input ? current_input : "?";
    /* async-signal-safe output only */
    if (write(2, head, sizeof head - 1) < 0 || write(2, name, strlen(name)) < 0 ||
        write(2, "\n", 1) < 0)
        _exit(1);
    _exit(1);
}

typedef struct {
    long rss_limit_mb, timeout_s;
    int inputs, failed;
} replay;

static long peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss / 1024; /* KiB on Linux */
}

/* Run one file; returns 0, or 1 after printing why it failed. */
static int run_file(replay *r, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (size_t)sb.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "fuzz replay: %s: not a regular file of at most %zu bytes\n", path,
                REPLAY_MAX_INPUT);
        fclose(f);
        return 1;
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *data = malloc(size ? size : 1); /* exact size: ASan sees a read past the end */
    if (!data || (size && fread(data, 1, size, f) != size)) {
        fprintf(stderr, "fuzz replay: %s: cannot read\n", path);
        free(data);
        fclose(f);
        return 1;
    }
    fclose(f);
    current_input = path;
    alarm((unsigned)r->timeout_s);
    int rc = LLVMFuzzerTestOneInput(data, size); /* never NULL, as from libFuzzer */
    alarm(0);
    current_input = NULL;
    free(data);
    r->inputs++;
    if (rc != 0) {
        fprintf(stderr, "fuzz replay: %s: the entry point returned %d\n", path, rc);
        return 1;
    }
    long rss = peak_rss_mb();
    if (rss > r->rss_limit_mb) {
        fprintf(stderr, "fuzz replay: %s: peak RSS %ld MB passes the limit of %ld MB\n", path, rss,
                r->rss_limit_mb);
        return 1;
    }
    return 0;
}

static int skip_entry(const struct dirent *d) { return d->d_name[0] != '.'; }

/* Run a file, or every file of a folder in name order. */
static void run_path(replay *r, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        perror(path);
        r->failed++;
        return;
    }
    if (!S_ISDIR(sb.st_mode)) {
        r->failed += run_file(r, path);
        return;
    }
    struct dirent **names = NULL;
    int n = scandir(path, &names, skip_entry, alphasort);
    if (n < 0) {
        perror(path);
        r->failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
        char *full = malloc(len);
        if (!full) {
            r->failed++;
        } else {
            snprintf(full, len, "%s/%s", path, names[i]->d_name);
            r->failed += run_file(r, full);
            free(full);
        }
        free(names[i]);
    }
    free(names);
    if (n == 0) {
        fprintf(stderr, "fuzz replay: %s: an empty folder (a replay of nothing tests nothing)\n",
                path);
        r->failed++;
    }
}

int main(int argc, char **argv) {
    replay r = {.rss_limit_mb = 1024, .timeout_s = 60};
    signal(SIGALRM, on_timeout);
    int paths = 0;
    for (int i = 1; i < argc; i++) {
        if (sscanf(argv[i], "-rss_limit_mb=%ld", &r.rss_limit_mb) == 1 ||
            sscanf(argv[i], "-timeout=%ld", &r.timeout_s) == 1)
            continue;
        if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [-rss_limit_mb=N] [-timeout=S] FILE|DIR...\n", argv[0]);
            return 2;
        }
        paths++;
        run_path(&r, argv[i]);
    }
    if (paths == 0 || r.inputs == 0) {
        fprintf(stderr, "fuzz replay: no inputs found: a replay of nothing tests nothing\n");
        return 1;
    }
    printf("fuzz replay: %d inputs, %d failed, peak RSS %ld MB\n", r.inputs, r.failed,
           peak_rss_mb());
    return r.failed ? 1 : 0;
}
