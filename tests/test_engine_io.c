/* test_engine_io.c - the engine's file-facing parts without a model: the directory walker
 * (image names, hidden/junk folders, --exclude, symlink loops, sorting, missing roots) and
 * the record readers (CSV quoting, TSV, JSONL, BOM, CRLF, malformed rows with line numbers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

static void write_file(const char *dir, const char *name, const char *content, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(1);
    }
    fwrite(content, 1, n, f);
    fclose(f);
}

static void mk(const char *dir, const char *sub) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    mkdir(p, 0755);
}

static int has_suffix(const gz_walk_result *r, const char *suffix) {
    size_t sl = strlen(suffix);
    for (size_t i = 0; i < r->n; i++) {
        size_t pl = strlen(r->files[i].path);
        if (pl >= sl && strcmp(r->files[i].path + pl - sl, suffix) == 0) return 1;
    }
    return 0;
}

static void test_names(void) {
    T(gz_walk_is_image_name("a.jpg"));
    T(gz_walk_is_image_name("A.JPEG"));
    T(gz_walk_is_image_name("x.y.HeIc"));
    T(gz_walk_is_image_name("p.webp"));
    T(gz_walk_is_image_name("g.gif"));
    T(!gz_walk_is_image_name("notes.txt"));
    T(!gz_walk_is_image_name("jpg"));
    T(!gz_walk_is_image_name(".jpg"));
    T(!gz_walk_is_image_name("a.jpg.bak"));
}

static void test_walk(void) {
    const char *d = gz_test_tmpdir("engine_walk");
    mk(d, "b");
    mk(d, "b/c");
    mk(d, ".hidden");
    mk(d, "node_modules");
    mk(d, "@eaDir");
    mk(d, "skipme");
    write_file(d, "z.jpg", "x", 1);
    write_file(d, "a.PNG", "xy", 2);
    write_file(d, "b/c/deep.webp", "x", 1);
    write_file(d, "b/notes.txt", "x", 1);
    write_file(d, ".hidden/h.jpg", "x", 1);
    write_file(d, "node_modules/n.jpg", "x", 1);
    write_file(d, "@eaDir/e.jpg", "x", 1);
    write_file(d, "skipme/s.jpg", "x", 1);
    write_file(d, "b/thumb.small.jpg", "x", 1);
    char loop[4096], ext[4096];
    snprintf(loop, sizeof loop, "%s/b/c/loop", d);
    T(symlink("../..", loop) == 0);
    snprintf(ext, sizeof ext, "%s/b/link.jpg", d);
    T(symlink("../z.jpg", ext) == 0);

    const char *roots[] = {d};
    gz_walk_result r;
    gz_walk_opts o = {0};
    CHECK_OK(gz_walk(roots, 1, &o, &r));
    checks++;
    T(r.n == 5); /* z.jpg a.PNG deep.webp thumb.small.jpg skipme/s.jpg; links not followed */
    T(has_suffix(&r, "/a.PNG") && has_suffix(&r, "/b/c/deep.webp"));
    T(!has_suffix(&r, "/h.jpg") && !has_suffix(&r, "/n.jpg") && !has_suffix(&r, "/e.jpg"));
    T(!has_suffix(&r, "notes.txt") && !has_suffix(&r, "link.jpg"));
    for (size_t i = 1; i < r.n; i++)
        T(strcmp(r.files[i - 1].path, r.files[i].path) < 0);
    for (size_t i = 0; i < r.n; i++)
        T(r.files[i].path[0] == '/' && r.files[i].mtime_ns > 0);
    T(has_suffix(&r, "/a.PNG") && r.files[0].size == 2); /* "a.PNG" sorts first */
    gz_walk_free(&r);

    /* exclude by base-name glob and by folder name; include hidden/junk with include_hidden */
    const char *ex[] = {"*.small.jpg", "skipme"};
    o.exclude = ex;
    o.n_exclude = 2;
    o.include_hidden = 1;
    CHECK_OK(gz_walk(roots, 1, &o, &r));
    checks++;
    T(r.n == 6); /* + h.jpg n.jpg e.jpg, - thumb.small.jpg, skipme excluded */
    T(!has_suffix(&r, "thumb.small.jpg") && !has_suffix(&r, "/s.jpg") && has_suffix(&r, "/h.jpg"));
    gz_walk_free(&r);

    /* follow symlinks: the loop back to the root is entered once only; the file link counts */
    gz_walk_opts f = {.follow_symlinks = 1};
    CHECK_OK(gz_walk(roots, 1, &f, &r));
    checks++;
    T(r.n == 6);
    T(has_suffix(&r, "/b/link.jpg"));
    gz_walk_free(&r);

    /* a file root is taken whatever its name; overlapping roots give each file once */
    char file_root[4096], rel_root[4096];
    snprintf(file_root, sizeof file_root, "%s/b/notes.txt", d);
    snprintf(rel_root, sizeof rel_root, "%s/b/../b/./c", d);
    const char *roots2[] = {file_root, d, rel_root};
    CHECK_OK(gz_walk(roots2, 3, &o, &r));
    checks++;
    T(r.n == 7);
    T(r.n_roots == 3 && strstr(r.roots[2], "..") == NULL && strstr(r.roots[2], "/./") == NULL);
    gz_walk_free(&r);

    char missing[4096];
    snprintf(missing, sizeof missing, "%s/nope", d);
    const char *roots3[] = {missing};
    T(gz_walk(roots3, 1, &o, &r) == GZ_ENOTFOUND);
    T(strstr(gz_last_error(), "nope") != NULL);
}

/* Read all records of a file; returns a compact description "ok:<field>|bad:<line>|...". */
static void describe(const char *path, gz_rec_format fmt, const char *field, char *out, size_t n) {
    gz_records *r = NULL;
    out[0] = '\0';
    if (gz_records_open(path, fmt, &r) != GZ_OK) {
        snprintf(out, n, "open failed: %s", gz_last_error());
        return;
    }
    for (;;) {
        long line = 0;
        int rc = gz_records_next(r, &line);
        if (rc == 0) break;
        size_t l = strlen(out);
        if (rc < 0)
            snprintf(out + l, n - l, "bad:%ld|", line);
        else {
            const char *v = gz_records_get(r, field);
            snprintf(out + l, n - l, "%ld:%s|", line, v ? v : "(null)");
        }
    }
    gz_records_close(r);
}

/* Write data (len bytes) to d/name (its path in path), read its records as fmt and check that
 * describe() gives want for the "text" field; on a mismatch print what it gave, after label. */
static void expect_records(const char *d, const char *name, const char *data, size_t len,
                           gz_rec_format fmt, const char *want, const char *label, char *path,
                           size_t path_cap) {
    char got[4096];
    write_file(d, name, data, len);
    snprintf(path, path_cap, "%s/%s", d, name);
    describe(path, fmt, "text", got, sizeof got);
    T(strcmp(got, want) == 0);
    if (strcmp(got, want)) fprintf(stderr, "%s got: %s\n", label, got);
}

static void test_records(void) {
    const char *d = gz_test_tmpdir("engine_records");
    char path[4096], got[4096];

    const char csv[] = "\xEF\xBB\xBFid, text ,extra\r\n"
                       "1,plain,x\r\n"
                       "2,\"with, comma\",x\n"
                       "3,\"say \"\"hi\"\"\",x\n"
                       "4,\"two\nlines\",x\n"
                       "\n"
                       "5,short\n"
                       "6,\"bad\"quote,x\n"
                       "7,last,x";
    expect_records(d, "a.csv", csv, sizeof csv - 1, GZ_REC_AUTO,
                   "2:plain|3:with, comma|4:say \"hi\"|5:two\nlines|bad:8|bad:9|10:last|", "csv",
                   path, sizeof path);

    const char csv2[] = "id,text\n1,\"never closed\n2,ok\n";
    expect_records(d, "b.csv", csv2, sizeof csv2 - 1, GZ_REC_CSV, "bad:2|3:ok|", "csv2", path,
                   sizeof path);

    const char tsv[] = "id\ttext\n1\ta \"quoted\" word\n2\n3\tbad \xff byte\n4\tfine\n";
    /* no extension: sniffed as TSV */
    expect_records(d, "c.data", tsv, sizeof tsv - 1, GZ_REC_AUTO,
                   "2:a \"quoted\" word|bad:3|bad:4|5:fine|", "tsv", path, sizeof path);

    const char jl[] = "{\"id\": 1, \"text\": \"caf\\u00e9\"}\n"
                      "\n"
                      "{\"id\": 2.5, \"text\": null}\n"
                      "[1]\n"
                      "{broken\n"
                      "{\"id\": 3, \"text\": \"x\", \"text\": \"dup\"}\n"
                      "{\"id\": 4, \"nested\": {\"a\": [1, 2]}}";
    expect_records(d, "d.jsonl", jl, sizeof jl - 1, GZ_REC_AUTO,
                   "1:caf\xC3\xA9|3:(null)|bad:4|bad:5|bad:6|7:(null)|", "jsonl", path,
                   sizeof path);
    describe(path, GZ_REC_AUTO, "id", got, sizeof got);
    T(strncmp(got, "1:1|3:2.5|", 10) == 0);
    describe(path, GZ_REC_AUTO, "nested", got, sizeof got);
    T(strstr(got, "7:{\"a\":[1,2]}|") != NULL);

    /* the error message names the file and the line */
    gz_records *r = NULL;
    CHECK_OK(gz_records_open(path, GZ_REC_AUTO, &r));
    checks++;
    long line = 0;
    int rc;
    while ((rc = gz_records_next(r, &line)) > 0) {
    }
    T(rc < 0 && line == 4 && strstr(gz_last_error(), "d.jsonl:4:") != NULL);
    gz_records_close(r);

    snprintf(path, sizeof path, "%s/missing.csv", d);
    T(gz_records_open(path, GZ_REC_AUTO, &r) == GZ_ENOTFOUND && r == NULL);
}

int main(void) {
    test_names();
    test_walk();
    test_records();
    return gz_test_finish("engine_io", checks);
}
