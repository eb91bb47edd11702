/* cmd_info.c - `gaze info`: describe a model directory (config + weights) or a database. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "gaze.h"

typedef struct {
    int json;
    const char *db;
    const char *weights;
} info_opts;

static void human_bytes(char *buf, size_t n, double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void human_count(char *buf, size_t n, double v) {
    if (v >= 1e9)
        snprintf(buf, n, "%.2fB", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fK", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
}

static int model_info(const gz_hub_location *loc, const info_opts *o) {
    const char *dir = loc->dir;
    gz_model_info mi;
    gz_status st = gz_model_describe(dir, o->weights, &mi);
    if (st != GZ_OK) return cli_report(st);
    if (o->json) {
        FILE *f = stdout;
        fputs("{\"path\":", f);
        out_json_str(f, dir);
        if (loc->repo_id[0]) {
            fputs(",\"hub_id\":", f);
            out_json_str(f, loc->repo_id);
            fputs(",\"hub_revision\":", f);
            out_json_str(f, loc->revision);
            fputs(",\"hub_commit\":", f);
            out_json_str(f, loc->commit);
        }
        fputs(",\"family\":", f);
        out_json_str(f, mi.model_type);
        fputs(",\"architecture\":", f);
        out_json_str(f, mi.architecture);
        fprintf(f, ",\"projection_dim\":%d,\"has_itm\":%s", mi.projection_dim,
                mi.has_itm ? "true" : "false");
        fprintf(f,
                ",\"text\":{\"hidden_size\":%d,\"layers\":%d,\"heads\":%d,"
                "\"intermediate_size\":%d,\"vocab_size\":%d,\"max_positions\":%d,\"act\":",
                mi.text.hidden_size, mi.text.layers, mi.text.heads, mi.text.intermediate_size,
                mi.text.vocab_size, mi.text.max_positions);
        out_json_str(f, mi.text.act);
        fputs(",\"tokenizer\":", f);
        out_json_str(f, mi.text.tokenizer);
        fprintf(f, "}");
        fprintf(f,
                ",\"vision\":{\"hidden_size\":%d,\"layers\":%d,\"heads\":%d,"
                "\"intermediate_size\":%d,\"image_size\":%d,\"patch_size\":%d,\"patches\":%d,"
                "\"act\":",
                mi.vision.hidden_size, mi.vision.layers, mi.vision.heads,
                mi.vision.intermediate_size, mi.vision.image_size, mi.vision.patch_size,
                mi.vision.patches);
        out_json_str(f, mi.vision.act);
        fprintf(f, "},\"parameters\":%zu,\"tensors\":%zu,\"dtypes\":", mi.parameters, mi.tensors);
        out_json_str(f, mi.dtypes);
        fprintf(f, ",\"file_bytes\":%zu}\n", mi.file_bytes);
    } else {
        char pb[32], fb[32];
        human_count(pb, sizeof pb, (double)mi.parameters);
        human_bytes(fb, sizeof fb, (double)mi.file_bytes);
        printf("model         %s\n", dir);
        if (loc->repo_id[0])
            printf("hub           %s, revision %s, commit %s\n", loc->repo_id, loc->revision,
                   loc->commit);
        printf("family        %s (%s)%s\n", mi.model_type,
               mi.architecture[0] ? mi.architecture : "no architectures entry",
               mi.has_itm ? ", ITM fusion head" : "");
        printf("text tower    hidden %d, %d layers, %d heads, MLP %d, vocab %d, max positions %d,"
               " %s, %s\n",
               mi.text.hidden_size, mi.text.layers, mi.text.heads, mi.text.intermediate_size,
               mi.text.vocab_size, mi.text.max_positions, mi.text.act, mi.text.tokenizer);
        printf("vision tower  hidden %d, %d layers, %d heads, MLP %d, image %dx%d, patch %d"
               " (%d patches), %s\n",
               mi.vision.hidden_size, mi.vision.layers, mi.vision.heads,
               mi.vision.intermediate_size, mi.vision.image_size, mi.vision.image_size,
               mi.vision.patch_size, mi.vision.patches, mi.vision.act);
        printf("projection    %d\n", mi.projection_dim);
        printf("parameters    %zu (%s) in %zu tensors\n", mi.parameters, pb, mi.tensors);
        printf("dtypes        %s\n", mi.dtypes);
        printf("file size     %zu bytes (%s)\n", mi.file_bytes, fb);
    }
    return EXIT_OK;
}

/* Database statistics: items by kind and status, models, index state, sizes. */
static int db_info(const char *db_flag, int json);

static const char INFO_DETAILS[] =
    "With MODEL (a folder, or a Hub id ORG/NAME[@REVISION] pulled into the Hugging Face\n"
    "cache): the model's family, tower sizes, image and patch size, projection size,\n"
    "parameter count, weight dtypes and file size. Without it: statistics of the database\n"
    "(--db, default $XDG_DATA_HOME/gaze/gaze.db), with each model's Hub id, revision and\n"
    "commit when it was indexed by id.\n"
    "JSON fields (model): path, hub_id, hub_revision, hub_commit (Hub ids only), family,\n"
    "architecture, projection_dim, has_itm,\n"
    "text{hidden_size,layers,heads,intermediate_size,vocab_size,max_positions,act,tokenizer},\n"
    "vision{hidden_size,layers,heads,intermediate_size,image_size,patch_size,patches,act},\n"
    "parameters, tensors, dtypes, file_bytes.";

static const char INFO_EXAMPLES[] = "  gaze info models/blip-itm-base-coco\n"
                                    "  gaze info openai/clip-vit-base-patch32\n"
                                    "  gaze info models/clip-vit-base-patch32 --json\n"
                                    "  gaze info --db photos.db";

int cmd_info(int argc, char **argv) {
    info_opts o = {0};
    const cli_opt opts[] = {
        {"json", 0, CLI_FLAG, &o.json, NULL, "print JSON instead of text"},
        {"db", 0, CLI_STR, &o.db, "FILE", "database to describe (when no MODEL is given)"},
        {"weights", 0, CLI_STR, &o.weights, "FILE",
         "weights file inside MODEL (default model.safetensors)"},
        {0},
    };
    const cli_command cmd = {"info",
                             "[MODEL] [--json] [--db FILE]",
                             "Describe a model directory or a database.",
                             INFO_DETAILS,
                             INFO_EXAMPLES,
                             opts,
                             0,
                             1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    if (pos.n == 1) {
        if (o.db) {
            cli_list_free(&pos);
            cli_errorf("give either MODEL or --db, not both");
            return EXIT_USAGE;
        }
        gz_hub_location *loc = malloc(sizeof *loc); /* 9 KiB of paths: not on the stack */
        if (!loc) {
            cli_list_free(&pos);
            cli_errorf("out of memory");
            return EXIT_FATAL;
        }
        gz_status st = gz_hub_locate(pos.v[0], loc);
        struct stat sb;
        if (st != GZ_OK)
            rc = cli_report_model(st, pos.v[0]);
        else if (stat(loc->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            /* a model named on the command line that is not there is a usage error (#12.11) */
            cli_errorf("%s: %s", pos.v[0],
                       stat(loc->dir, &sb) != 0 ? "no such model directory"
                                                : "not a model directory");
            rc = EXIT_USAGE;
        } else
            rc = model_info(loc, &o);
        free(loc);
        cli_list_free(&pos);
        return rc;
    }
    cli_list_free(&pos);
    return db_info(o.db, o.json);
}

/* Failed files listed by `gaze info` (the rest are counted). */
#define INFO_MAX_FAILED 20

static int db_info(const char *db_flag, int json) {
    char *def;
    const char *path = cli_db_path(db_flag, 0, &def);
    if (!path) return EXIT_FATAL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        cli_errorf("%s: no database here (run 'gaze index' first, or give --db FILE)", path);
        free(def);
        return EXIT_FATAL;
    }
    gz_db_params dp = gz_db_default_params();
    dp.readonly = 1;
    gz_db *db = NULL;
    gz_status st = gz_db_open(path, &dp, &db);
    if (st != GZ_OK) {
        free(def);
        return cli_report(st);
    }
    gz_db_stats s;
    gz_db_model *models = NULL;
    int nm = 0;
    int64_t *failed = NULL;
    size_t nf = 0;
    st = gz_db_get_stats(db, &s);
    if (st == GZ_OK) st = gz_db_models(db, &models, &nm);
    if (st == GZ_OK) st = gz_db_list_items(db, 0, NULL, 0, GZ_ITEM_FAILED, &failed, &nf);
    if (st != GZ_OK) {
        free(models);
        free(failed);
        gz_db_close(db);
        free(def);
        return cli_report(st);
    }
    FILE *f = stdout;
    if (json) {
        fputs("{\"db\":", f);
        out_json_str(f, path);
        fprintf(f,
                ",\"schema_version\":%d,\"items\":%lld,\"images\":%lld,\"texts\":%lld,"
                "\"ok\":%lld,\"failed\":%lld,\"missing\":%lld,\"embeddings\":%lld,"
                "\"tokens\":%lld,\"token_bytes\":%lld,\"db_bytes\":%lld,\"index_bytes\":%lld,"
                "\"models\":[",
                s.schema_version, (long long)s.n_items[0], (long long)s.n_items[GZ_ITEM_IMAGE],
                (long long)s.n_items[GZ_ITEM_TEXT], (long long)s.n_status[GZ_ITEM_OK],
                (long long)s.n_status[GZ_ITEM_FAILED], (long long)s.n_status[GZ_ITEM_MISSING],
                (long long)s.n_embeddings, (long long)s.n_tokens, (long long)s.token_bytes,
                (long long)s.db_bytes, (long long)s.index_bytes);
    } else {
        printf("database      %s (schema %d)\n", path, s.schema_version);
        printf("items         %lld: %lld images, %lld texts\n", (long long)s.n_items[0],
               (long long)s.n_items[GZ_ITEM_IMAGE], (long long)s.n_items[GZ_ITEM_TEXT]);
        printf("status        %lld ok, %lld failed, %lld missing\n",
               (long long)s.n_status[GZ_ITEM_OK], (long long)s.n_status[GZ_ITEM_FAILED],
               (long long)s.n_status[GZ_ITEM_MISSING]);
        printf("embeddings    %lld\n", (long long)s.n_embeddings);
        if (s.n_tokens)
            printf("tokens        %lld images with stored token states (%lld bytes, %.1f MB)\n",
                   (long long)s.n_tokens, (long long)s.token_bytes, (double)s.token_bytes / 1e6);
        else
            printf("tokens        none (gaze index --keep-tokens stores them for fast --rerank)\n");
        printf("size          %lld bytes database, %lld bytes indexes\n", (long long)s.db_bytes,
               (long long)s.index_bytes);
    }
    for (int i = 0; i < nm; i++) {
        const gz_db_model *m = &models[i];
        gz_index_preprocess pp; /* how its images were decoded (gz_engine_get_preprocess) */
        int has_pp = gz_engine_get_preprocess(db, m->fingerprint, &pp) == GZ_OK;
        if (json) {
            fputs(i ? ",{\"id\":" : "{\"id\":", f);
            fprintf(f, "%lld,\"name\":", (long long)m->id);
            out_json_str(f, m->name);
            fputs(",\"family\":", f);
            out_json_str(f, m->family);
            if (m->hub_id[0]) {
                fputs(",\"hub_id\":", f);
                out_json_str(f, m->hub_id);
                fputs(",\"hub_revision\":", f);
                out_json_str(f, m->hub_revision);
                fputs(",\"hub_commit\":", f);
                out_json_str(f, m->hub_commit);
            }
            fprintf(f, ",\"dim\":%d,\"embeddings\":%lld,", m->dim, (long long)m->n_embeddings);
            if (has_pp)
                fprintf(f,
                        "\"preprocess\":{\"exif_orient\":%s,\"fast_decode\":%s,"
                        "\"min_size\":%d,\"max_pixels\":%lld},",
                        pp.exif_orient ? "true" : "false", pp.fast_decode ? "true" : "false",
                        pp.min_size, (long long)pp.max_pixels);
            fputs("\"indexes\":[", f);
        } else {
            printf("model %lld     %s (%s, dim %d, %lld vectors)%s\n", (long long)m->id, m->name,
                   m->family, m->dim, (long long)m->n_embeddings, i == 0 ? " [default]" : "");
            if (m->hub_id[0])
                printf("  hub         %s, revision %s, commit %s\n", m->hub_id, m->hub_revision,
                       m->hub_commit);
            if (has_pp)
                printf("  preprocess   EXIF orientation %s, %s decode, max %.0f MP\n",
                       pp.exif_orient ? "on" : "off",
                       pp.fast_decode ? "fast (JPEG DCT-scaled)" : "exact", pp.max_pixels / 1e6);
        }
        int first = 1;
        for (int k = GZ_ITEM_IMAGE; k <= GZ_ITEM_TEXT; k++) {
            gz_db_index_state is;
            if (gz_db_index_info(db, m->id, (gz_item_kind)k, &is) != GZ_OK) continue;
            const char *kn = k == GZ_ITEM_IMAGE ? "image" : "text";
            int64_t covered = 0, total = 0;
            if (gz_db_coverage(db, m->id, (gz_item_kind)k, &covered, &total) != GZ_OK)
                covered = total = 0; /* shown as 0 of 0: the index line matters more */
            if (json) {
                fprintf(f, "%s{\"kind\":\"%s\",\"factory\":", first ? "" : ",", kn);
                out_json_str(f, is.factory);
                fputs(",\"effective\":", f);
                out_json_str(f, is.effective);
                fprintf(f,
                        ",\"vectors\":%lld,\"covered\":%lld,\"items\":%lld,\"file_bytes\":%lld,"
                        "\"current\":%s}",
                        (long long)is.n_vectors, (long long)covered, (long long)total,
                        (long long)is.file_bytes, is.file_current ? "true" : "false");
            } else {
                int other = strcmp(is.factory, is.effective) != 0;
                printf("  %-5s index  %s%s%s%s, %lld vectors, covers %lld of %lld %ss%s, file "
                       "%lld bytes%s\n",
                       kn, is.factory, other ? " (built as " : "", other ? is.effective : "",
                       other ? ")" : "", (long long)is.n_vectors, (long long)covered,
                       (long long)total, kn, covered < total ? " (the rest not searched)" : "",
                       (long long)is.file_bytes,
                       is.file_current ? "" : " (stale: rebuilt on next write)");
            }
            first = 0;
        }
        if (json) fputs("]}", f);
    }
    if (json)
        fputs("],\"failed_files\":[", f);
    else if (nf)
        printf("failed files  %zu\n", nf);
    for (size_t i = 0; i < nf && i < INFO_MAX_FAILED; i++) {
        gz_item it;
        memset(&it, 0, sizeof it);
        if (gz_db_get_item(db, failed[i], &it) != GZ_OK) continue;
        if (json) {
            fputs(i ? ",{\"path\":" : "{\"path\":", f);
            out_json_str(f, it.path);
            fputs(",\"error\":", f);
            out_json_str(f, it.error ? it.error : "");
            fputc('}', f);
        } else {
            const char *err = it.error ? it.error : "";
            size_t pl = it.path ? strlen(it.path) : 0;
            if (pl && strncmp(err, it.path, pl) == 0 && strncmp(err + pl, ": ", 2) == 0)
                printf("  %s\n", err); /* the message already names the file */
            else
                printf("  %s: %s\n", it.path ? it.path : "?", err);
        }
        gz_item_clear(&it);
    }
    if (json)
        fputs("]}\n", f);
    else if (nf > INFO_MAX_FAILED)
        printf("  ... and %zu more\n", nf - INFO_MAX_FAILED);
    free(models);
    free(failed);
    gz_db_close(db);
    free(def);
    return EXIT_OK;
}
