/* test_eval_captions.c - evaluation sets from strangers (issue #15): every caption of an image
 * is kept (1024 per image were kept and the rest dropped silently), in the JSONL and Karpathy
 * formats; image paths that leave the dataset's folder are refused unless allowed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gaze.h"
#include "tests/testutil.h"

static int checks = 0;

enum { N_CAPS = 1500 };

static void check_set(const char *path, const char *what) {
    gz_eval_load_opts o = gz_eval_default_load_opts();
    gz_eval_set *s = NULL;
    CHECK_OK(gz_eval_load(path, &o, &s));
    checks += 3;
    CHECK(s && s->n_images == 1 && s->n_texts == N_CAPS);
    CHECK(s && s->images[0].n_texts == N_CAPS);
    CHECK(s && s->n_texts == N_CAPS && strcmp(s->texts[N_CAPS - 1], "caption 1499") == 0);
    printf("%s: %d captions of one image kept: %d\n", what, N_CAPS, s ? s->n_texts : -1);
    gz_eval_set_free(s);
}

int main(void) {
    const char *dir = gz_test_tmpdir("eval_captions");
    char path[4096];
    snprintf(path, sizeof path, "%s/many.jsonl", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return gz_test_finish("eval_captions", checks);
    fputs("{\"image\": \"a.jpg\", \"captions\": [", f);
    for (int i = 0; i < N_CAPS; i++)
        fprintf(f, "%s\"caption %d\"", i ? ", " : "", i);
    fputs("]}\n", f);
    fclose(f);
    check_set(path, "jsonl");
    snprintf(path, sizeof path, "%s/dataset_many.json", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return gz_test_finish("eval_captions", checks);
    fputs("{\"images\": [{\"filepath\": \"v\", \"filename\": \"a.jpg\", \"split\": \"test\", "
          "\"sentences\": [",
          f);
    for (int i = 0; i < N_CAPS; i++)
        fprintf(f, "%s{\"raw\": \"caption %d\"}", i ? ", " : "", i);
    fputs("]}]}\n", f);
    fclose(f);
    check_set(path, "karpathy");

    static const char *const outside[] = {"/etc/passwd", "../secret.jpg", "a/../../b.jpg", "a/..",
                                          NULL};
    for (int i = 0; outside[i]; i++) {
        snprintf(path, sizeof path, "%s/outside.jsonl", dir);
        f = fopen(path, "w");
        CHECK(f != NULL);
        if (!f) break;
        fprintf(f,
                "{\"image\": \"ok/x..y.jpg\", \"captions\": \"fine\"}\n"
                "{\"image\": \"%s\", \"captions\": \"a caption\"}\n",
                outside[i]);
        fclose(f);
        gz_eval_load_opts o = gz_eval_default_load_opts();
        gz_eval_set *s = NULL;
        checks += 2;
        CHECK(gz_eval_load(path, &o, &s) == GZ_EINVAL && !s &&
              strstr(gz_last_error(), "outside.jsonl: entry 2") &&
              strstr(gz_last_error(), outside[i]));
        o.allow_outside_root = 1;
        CHECK_OK(gz_eval_load(path, &o, &s));
        CHECK(s && s->n_images == 2);
        gz_eval_set_free(s);
    }
    return gz_test_finish("eval_captions", checks);
}
