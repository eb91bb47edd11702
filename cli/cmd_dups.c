/* cmd_dups.c - `gaze dups`: list groups of duplicate images (byte-identical copies, and near
 * copies by the current model's vectors), largest reclaimable space first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "gaze.h"

/* Cosine at or above which two images are near duplicates by default: a cosine distance of
 * 0.01, immich's default for its duplicate detection (maxDistance). */
#define DUPS_DEFAULT_THRESHOLD 0.99

static const char DUPS_DETAILS[] =
    "Exact duplicates are images with the same content (hash of the bytes). Near duplicates\n"
    "are images whose vectors of the database's current model (the last one used) have a\n"
    "cosine of at least --threshold: re-encoded, resized or lightly edited copies. Links\n"
    "chain: if a is near b and b is near c, all three are one group. Each group lists its\n"
    "images largest first (the first is the one to keep) with sizes in bytes; groups come\n"
    "most reclaimable space first (what deleting all but the first would free). Images not\n"
    "embedded with the current model take part in exact matching only. Nothing is deleted:\n"
    "remove copies with your file manager or gaze rm. Missing and failed files are left out.\n"
    "--json prints one object per line per group: {\"group\":N,\"exact\":true|false,\n"
    "\"min_score\":S,\"total_bytes\":B,\"reclaimable_bytes\":R,\"items\":[{\"id\":..,\n"
    "\"path\":..,\"size\":..},...]}.";
static const char DUPS_EXAMPLES[] = "  gaze dups\n"
                                    "  gaze dups --threshold 0.95\n"
                                    "  gaze dups --exact\n"
                                    "  gaze dups --json | jq -r '.items[1:][].path'";

static void print_text(const gz_dup_groups *g) {
    for (int k = 0; k < g->n; k++) {
        const gz_dup_group *d = &g->v[k];
        char rec[32], tot[32];
        cli_human_bytes(rec, sizeof rec, (double)d->reclaimable_bytes);
        cli_human_bytes(tot, sizeof tot, (double)d->total_bytes);
        if (d->exact)
            printf("group %d: %d images, exact copies, %s reclaimable of %s\n", k + 1, d->n, rec,
                   tot);
        else
            /* rounded down, so that 0.99996 does not read as an identical 1.0000 */
            printf("group %d: %d images, near copies (cosine >= %.4f), %s reclaimable of %s\n",
                   k + 1, d->n, floor((double)d->min_score * 1e4) / 1e4, rec, tot);
        for (int i = 0; i < d->n; i++) {
            printf("  %12lld  ", (long long)d->members[i].size);
            out_term_puts(stdout, d->members[i].path);
            putchar('\n');
        }
    }
    int64_t reclaimable = 0;
    for (int k = 0; k < g->n; k++)
        reclaimable += g->v[k].reclaimable_bytes;
    char rec[32];
    cli_human_bytes(rec, sizeof rec, (double)reclaimable);
    if (g->n)
        printf("%d duplicate group%s among %lld image%s, %s (%lld bytes) reclaimable\n", g->n,
               cli_plural(g->n), (long long)g->n_images, cli_plural((long)g->n_images), rec,
               (long long)reclaimable);
    else
        printf("no duplicates among %lld image%s\n", (long long)g->n_images,
               cli_plural((long)g->n_images));
}

static void print_json(const gz_dup_groups *g) {
    for (int k = 0; k < g->n; k++) {
        const gz_dup_group *d = &g->v[k];
        printf("{\"group\":%d,\"exact\":%s,\"min_score\":", k + 1, d->exact ? "true" : "false");
        out_json_float(stdout, d->min_score);
        printf(",\"total_bytes\":%lld,\"reclaimable_bytes\":%lld,\"items\":[",
               (long long)d->total_bytes, (long long)d->reclaimable_bytes);
        for (int i = 0; i < d->n; i++) {
            printf("%s{\"id\":%lld,\"path\":", i ? "," : "", (long long)d->members[i].item_id);
            out_json_str(stdout, d->members[i].path);
            printf(",\"size\":%lld}", (long long)d->members[i].size);
        }
        printf("]}\n");
    }
}

int cmd_dups(int argc, char **argv) {
    const char *db = NULL;
    double threshold = DUPS_DEFAULT_THRESHOLD;
    int exact_only = 0, json = 0, quiet = 0;
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"threshold", 't', CLI_DOUBLE, &threshold, "T",
         "near duplicates: cosine at least T, in (0, 1] (default 0.99)"},
        {"exact", 0, CLI_FLAG, &exact_only, NULL, "only byte-identical copies"},
        {"json", 0, CLI_FLAG, &json, NULL, "one JSON object per group per line"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no notices"},
        {0},
    };
    const cli_command cmd = {"dups",
                             "[--threshold T] [--exact] [--json]",
                             "List groups of duplicate and near-duplicate images.",
                             DUPS_DETAILS,
                             DUPS_EXAMPLES,
                             opts,
                             0,
                             0};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    cli_list_free(&pos);
    /* a cosine <= 0 would call unrelated images duplicates: refused as a typo */
    if (!(threshold > 0.0 && threshold <= 1.0)) {
        cli_errorf("--threshold %g: expected a cosine in (0, 1], e.g. 0.95", threshold);
        return EXIT_USAGE;
    }
    gz_engine *e = NULL;
    gz_model_params mp = gz_model_default_params();
    rc = cli_open_engine(db, NULL, &mp, NULL, quiet, CLI_OPEN_READONLY, &e);
    if (rc) return rc;
    gz_dup_groups groups;
    gz_status st = gz_engine_dups(e, exact_only ? 2.0f : (float)threshold, &groups);
    int code = EXIT_OK;
    if (st != GZ_OK) {
        code = cli_report_engine(e, st);
    } else {
        if (json)
            print_json(&groups);
        else
            print_text(&groups);
        gz_dup_groups_free(&groups);
    }
    gz_status cst = gz_engine_close(e);
    if (cst != GZ_OK && code == EXIT_OK) code = cli_report(cst);
    return code;
}
