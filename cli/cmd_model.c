/* cmd_model.c - `gaze model pull|list|rm`: models from the Hugging Face Hub, kept in the
 * huggingface_hub cache that transformers shares. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gaze.h"

#define COMMIT_SHORT 12 /* hex digits of a commit shown in tables */

static const char MODEL_ENV[] =
    "environment (as huggingface_hub reads it):\n"
    "  HF_ENDPOINT     the Hub to talk to (default https://huggingface.co)\n"
    "  HF_TOKEN        access token for gated or private repositories (else the token file\n"
    "                  $HF_TOKEN_PATH or $HF_HOME/token that huggingface-cli login writes)\n"
    "  HF_HUB_CACHE    the cache folder (default $HF_HOME/hub, ~/.cache/huggingface/hub)\n"
    "  HF_HUB_OFFLINE  1: never use the network; pull only checks the cache";

static void model_usage(FILE *out) {
    fprintf(out,
            "usage: gaze model COMMAND [options]   (gaze model COMMAND --help for details)\n\n"
            "Models from the Hugging Face Hub, in the huggingface_hub cache (shared with\n"
            "transformers). Every --model elsewhere takes a folder or a pulled id\n"
            "ORG/NAME[@REVISION], resolved from the cache without network.\n\n"
            "commands:\n"
            "  pull REPO_ID[@REVISION]   download what gaze needs of a model repository\n"
            "  list                      the cached models gaze can run\n"
            "  rm REPO_ID[@REVISION]     remove a cached model (or one revision of it)\n\n"
            "%s\n\n"
            "examples:\n"
            "  gaze model pull openai/clip-vit-base-patch32\n"
            "  gaze model pull Salesforce/blip-itm-base-coco@main\n"
            "  gaze model list\n"
            "  gaze index ~/Pictures --model openai/clip-vit-base-patch32\n"
            "  gaze model rm openai/clip-vit-base-patch32\n\n"
            "%s\n",
            MODEL_ENV, CLI_EXIT_STATUS_HELP);
}

/* Hub parameters from the environment, or the error printed (returns the exit code). */
static int hub_params(gz_hub_params *p) {
    *p = gz_hub_default_params();
    gz_status st = gz_hub_params_from_env(p);
    return st == GZ_OK ? EXIT_OK : cli_report(st);
}

/* "ORG/NAME" for main, else "ORG/NAME@REV": the id as a user types it. */
static void id_text(char *buf, size_t n, const char *id, const char *rev) {
    if (!rev || !strcmp(rev, "main"))
        snprintf(buf, n, "%s", id);
    else
        snprintf(buf, n, "%s@%s", id, rev);
}

/* ---- pull ---- */

static void on_progress(void *user, const char *file, int64_t done, int64_t total) {
    xfer_update(user, file, done, total);
}

/* What the command adds to the library's message of a failed pull: how to fix it. */
static const char *pull_hint(gz_status st, const char *msg, int offline) {
    if (strstr(msg, "gated or private") || strstr(msg, "HF_TOKEN"))
        return "; or log in with huggingface-cli login (gaze reads the token it saves)";
    if (strstr(msg, "cannot reach"))
        return "; check the network or HF_ENDPOINT (HF_HUB_OFFLINE=1 uses the cache only)";
    if (offline && st == GZ_ENOTFOUND) return "; HF_HUB_OFFLINE is set: unset it to download";
    if (st == GZ_ECORRUPT) return "; pull again to download the file afresh";
    return NULL;
}

static const char PULL_DETAILS[] =
    "Downloads config.json, the weights (model.safetensors or its shards; pytorch_model.bin\n"
    "only when the repository has no safetensors), the tokenizer files and\n"
    "preprocessor_config.json into the huggingface_hub cache: blobs named by their hash,\n"
    "snapshots/<commit>/ linking to them, refs/<revision>. Files already there are not\n"
    "downloaded again; a broken download resumes where it stopped; LFS files are checked\n"
    "against their sha256. REVISION is a branch, tag or commit (default main).\n"
    "Prints the snapshot folder (alone with --quiet, for scripts).";

static const char PULL_EXAMPLES[] = "  gaze model pull openai/clip-vit-base-patch32\n"
                                    "  gaze model pull Salesforce/blip-itm-base-coco@main\n"
                                    "  dir=$(gaze model pull OFA-Sys/chinese-clip-vit-base-patch16 "
                                    "--quiet)";

/* Parse a `gaze model pull|rm` command line whose one argument is REPO_ID[@REVISION]: sets *arg
 * (a string of argv) and splits it into id and rev. Returns 0 with *rc the exit code to return
 * (help shown, or a usage error reported). */
static int parse_repo_arg(const cli_command *cmd, int argc, char **argv, const char **arg, char *id,
                          size_t id_cap, char *rev, size_t rev_cap, int *rc) {
    cli_list pos = {0};
    if (!cli_parse_command(cmd, argc, argv, &pos, rc)) return 0;
    *arg = pos.v[0]; /* points into argv: it outlives the list */
    cli_list_free(&pos);
    if (gz_hub_parse_id(*arg, id, id_cap, rev, rev_cap) != GZ_OK) {
        cli_errorf("%s", gz_last_error());
        fprintf(stderr, "try 'gaze %s --help'\n", cmd->name);
        *rc = EXIT_USAGE;
        return 0;
    }
    return 1;
}

static int model_pull(int argc, char **argv) {
    int quiet = 0;
    const cli_opt opts[] = {
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no progress; print only the snapshot folder"},
        {0},
    };
    const cli_command cmd = {"model pull",
                             "REPO_ID[@REVISION] [--quiet]",
                             "Download a model from the Hugging Face Hub into its cache.",
                             PULL_DETAILS,
                             PULL_EXAMPLES,
                             opts,
                             1,
                             1};
    const char *arg;
    char id[GZ_HUB_ID_MAX], rev[GZ_HUB_REV_MAX], shown[GZ_HUB_ID_MAX + GZ_HUB_REV_MAX];
    int rc;
    if (!parse_repo_arg(&cmd, argc, argv, &arg, id, sizeof id, rev, sizeof rev, &rc)) return rc;
    id_text(shown, sizeof shown, id, rev);
    gz_hub_params p;
    if ((rc = hub_params(&p)) != EXIT_OK) return rc;
    xfer_progress xp;
    xfer_start(&xp, quiet);
    p.progress = on_progress;
    p.progress_user = &xp;
    if (!quiet)
        fprintf(stderr, "%s %s %s %s into %s\n", p.offline ? "looking up" : "pulling", shown,
                p.offline ? "(HF_HUB_OFFLINE: cache only) in" : "from",
                p.offline ? "the cache" : p.endpoint, p.cache_dir);
    char snap[GZ_HUB_PATH_MAX];
    gz_hub_pull_stats st;
    double t0 = cli_now();
    gz_status s = gz_hub_pull(id, rev, &p, snap, sizeof snap, &st);
    double secs = cli_now() - t0;
    xfer_finish(&xp);
    if (s != GZ_OK) return cli_report_hint(s, NULL, pull_hint(s, gz_last_error(), p.offline));
    if (quiet) {
        printf("%s\n", snap);
        return EXIT_OK;
    }
    char total[32], got[32];
    cli_human_bytes(total, sizeof total, (double)st.bytes_total);
    cli_human_bytes(got, sizeof got, (double)st.bytes_downloaded);
    printf("pulled %s (commit %.*s): %d file%s, %s\n", shown, COMMIT_SHORT, st.commit, st.files,
           cli_plural(st.files), total);
    if (st.files_downloaded)
        printf("downloaded %d file%s, %s in %.1f s\n", st.files_downloaded,
               st.files_downloaded == 1 ? "" : "s", got, secs);
    else
        printf("downloaded nothing: every file was in the cache\n");
    gz_model_info mi;
    if (gz_model_describe(snap, NULL, &mi) == GZ_OK)
        printf("model %s (%s), embedding size %d, %zu parameters\n", mi.model_type,
               mi.architecture[0] ? mi.architecture : "no architectures entry", mi.projection_dim,
               mi.parameters);
    else
        cli_warnf("gaze cannot read the pulled model: %s", gz_last_error());
    printf("snapshot %s\n", snap);
    printf("use it with: gaze index FOLDER --model %s\n", shown);
    return EXIT_OK;
}

/* ---- list ---- */

/* Revisions (refs) of model m that name commit, joined by ',' into buf; the short commit when
 * no ref names it (a snapshot pulled by commit). */
static void revisions_of(const gz_hub_cached_model *m, const char *commit, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (int r = 0; r < m->n_refs && o < n; r++) {
        if (strcmp(m->refs[r].commit, commit) != 0) continue;
        int w = snprintf(buf + o, n - o, "%s%s", o ? "," : "", m->refs[r].revision);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (!buf[0]) snprintf(buf, n, "%.*s", COMMIT_SHORT, commit);
}

static const char LIST_DETAILS[] =
    "One row per cached snapshot that gaze can run: the repository id, the revisions (refs)\n"
    "that name it, its commit, family, embedding size, parameters and the repository's size\n"
    "on disk. Repositories gaze cannot run (other families, datasets of files) are counted\n"
    "on stderr; --all lists them too, with the reason.\n"
    "JSON fields: repo_id, revisions[], commit, path, runnable, family, architecture, dim,\n"
    "parameters, size_bytes, error (when not runnable).";

static int model_list(int argc, char **argv) {
    int json = 0, all = 0;
    const cli_opt opts[] = {
        {"json", 0, CLI_FLAG, &json, NULL, "print JSON instead of a table"},
        {"all", 'a', CLI_FLAG, &all, NULL, "also list repositories gaze cannot run"},
        {0},
    };
    const cli_command cmd = {"model list",
                             "[--json] [--all]",
                             "List the models in the Hugging Face cache that gaze can run.",
                             LIST_DETAILS,
                             "  gaze model list\n  gaze model list --json",
                             opts,
                             0,
                             0};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    cli_list_free(&pos);
    gz_hub_params p;
    if ((rc = hub_params(&p)) != EXIT_OK) return rc;
    gz_hub_cached_model *ms = NULL;
    int n = 0;
    gz_status s = gz_hub_list(p.cache_dir, &ms, &n);
    if (s != GZ_OK) return cli_report(s);
    static const char *const header[] = {"MODEL", "REVISION", "COMMIT", "FAMILY",
                                         "DIM",   "PARAMS",   "SIZE"};
    static const int right[] = {0, 0, 0, 0, 1, 1, 1};
    out_table t;
    out_table_init(&t, 7, header, right);
    int shown = 0, hidden = 0;
    if (json) fputc('[', stdout);
    for (int i = 0; i < n; i++) {
        const gz_hub_cached_model *m = &ms[i];
        for (int k = 0; k < m->n_snapshots; k++) {
            char path[GZ_HUB_PATH_MAX + 64], revs[512], dim[16], params[32], size[32];
            snprintf(path, sizeof path, "%s/snapshots/%s", m->dir, m->snapshots[k]);
            revisions_of(m, m->snapshots[k], revs, sizeof revs);
            gz_model_info mi;
            int ok = gz_model_describe(path, NULL, &mi) == GZ_OK;
            if (!ok && !all) {
                hidden++;
                continue;
            }
            if (json) {
                fputs(shown ? ",{\"repo_id\":" : "{\"repo_id\":", stdout);
                out_json_str(stdout, m->repo_id);
                fputs(",\"revisions\":[", stdout);
                int first = 1;
                for (int r = 0; r < m->n_refs; r++) {
                    if (strcmp(m->refs[r].commit, m->snapshots[k]) != 0) continue;
                    if (!first) fputc(',', stdout);
                    out_json_str(stdout, m->refs[r].revision);
                    first = 0;
                }
                fputs("],\"commit\":", stdout);
                out_json_str(stdout, m->snapshots[k]);
                fputs(",\"path\":", stdout);
                out_json_str(stdout, path);
                fprintf(stdout, ",\"runnable\":%s", ok ? "true" : "false");
                if (ok) {
                    fputs(",\"family\":", stdout);
                    out_json_str(stdout, mi.model_type);
                    fputs(",\"architecture\":", stdout);
                    out_json_str(stdout, mi.architecture);
                    fprintf(stdout, ",\"dim\":%d,\"parameters\":%zu", mi.projection_dim,
                            mi.parameters);
                } else {
                    fputs(",\"error\":", stdout);
                    out_json_str(stdout, gz_last_error());
                }
                fprintf(stdout, ",\"size_bytes\":%lld}", (long long)m->size_bytes);
            } else {
                char commit[COMMIT_SHORT + 1];
                snprintf(commit, sizeof commit, "%s", m->snapshots[k]);
                snprintf(dim, sizeof dim, "%d", ok ? mi.projection_dim : 0);
                if (ok) snprintf(params, sizeof params, "%.1fM", (double)mi.parameters / 1e6);
                cli_human_bytes(size, sizeof size, (double)m->size_bytes);
                const char *family = ok ? mi.model_type : "(cannot run)";
                const char *row[] = {m->repo_id,        revs, commit, family, ok ? dim : "-",
                                     ok ? params : "-", size};
                out_table_row(&t, row);
                if (!ok) cli_warnf("%s (%s): %s", m->repo_id, revs, gz_last_error());
            }
            shown++;
        }
    }
    if (json)
        fputs("]\n", stdout);
    else if (shown)
        out_table_print(&t, stdout);
    out_table_free(&t);
    gz_hub_list_free(ms, n);
    if (!json && !shown)
        fprintf(stderr,
                "no model gaze can run in %s; pull one with: gaze model pull "
                "openai/clip-vit-base-patch32\n",
                p.cache_dir);
    if (hidden)
        fprintf(stderr, "%d cached snapshot%s gaze cannot run not shown (--all lists them)\n",
                hidden, hidden == 1 ? "" : "s");
    return EXIT_OK;
}

/* ---- rm ---- */

static int model_rm(int argc, char **argv) {
    const cli_opt opts[] = {{0}};
    const cli_command cmd = {"model rm",
                             "REPO_ID[@REVISION]",
                             "Remove a model from the Hugging Face cache.",
                             "Without @REVISION the whole repository goes. With it, that ref and\n"
                             "its snapshot (unless another ref names it), then every blob no\n"
                             "snapshot links to any more.",
                             "  gaze model rm openai/clip-vit-base-patch32\n"
                             "  gaze model rm Salesforce/blip-itm-base-coco@v1.0",
                             opts,
                             1,
                             1};
    const char *arg;
    char id[GZ_HUB_ID_MAX], rev[GZ_HUB_REV_MAX], shown[GZ_HUB_ID_MAX + GZ_HUB_REV_MAX];
    int rc;
    if (!parse_repo_arg(&cmd, argc, argv, &arg, id, sizeof id, rev, sizeof rev, &rc)) return rc;
    const char *revision = strchr(arg, '@') ? rev : NULL; /* no @: the whole repository */
    id_text(shown, sizeof shown, id, revision);
    gz_hub_params p;
    if ((rc = hub_params(&p)) != EXIT_OK) return rc;
    gz_status s = gz_hub_rm(p.cache_dir, id, revision);
    if (s != GZ_OK)
        return cli_report_hint(s, NULL, s == GZ_ENOTFOUND ? "; see gaze model list" : NULL);
    printf("removed %s%s from %s\n", shown, revision ? "" : " (all revisions)", p.cache_dir);
    return EXIT_OK;
}

int cmd_model(int argc, char **argv) {
    if (argc < 2) {
        model_usage(stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        model_usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(sub, "pull")) return model_pull(argc - 1, argv + 1);
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) return model_list(argc - 1, argv + 1);
    if (!strcmp(sub, "rm") || !strcmp(sub, "remove")) return model_rm(argc - 1, argv + 1);
    static const char *const subs[] = {"pull", "list", "rm"};
    const char *hit = cli_did_you_mean(sub, subs, 3);
    char *safe = out_term_escape(sub);
    if (hit)
        fprintf(stderr, "gaze model: unknown command '%s'; did you mean '%s'?\n\n", safe, hit);
    else
        fprintf(stderr, "gaze model: unknown command '%s'\n\n", safe);
    free(safe);
    model_usage(stderr);
    return EXIT_USAGE;
}
