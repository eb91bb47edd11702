/* cmd_tokenize.c - `gaze tokenize`: print the token ids and tokens a model's tokenizer gives. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gaze.h"

static const char TOK_DETAILS[] =
    "Texts are tokenised exactly as the model's text tower sees them: special tokens added,\n"
    "truncated to the model's maximum length (--no-truncate keeps everything).\n"
    "JSON lines fields: text, ids (array of ints), tokens (array of strings), truncated.";
static const char TOK_EXAMPLES[] =
    "  gaze tokenize --model models/blip-itm-base-coco \"a dog on a beach\"\n"
    "  gaze tokenize --model models/clip-vit-base-patch32 --json \"Café crème\" \"don't\"";

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL;
    int json = 0, no_trunc = 0, fast = 0;
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &model, "DIR", "model directory (default $GAZE_MODEL)"},
        {"json", 0, CLI_FLAG, &json, NULL, "JSON lines output"},
        {"no-truncate", 0, CLI_FLAG, &no_trunc, NULL, "do not truncate to the model's length"},
        {"fast", 0, CLI_FLAG, &fast, NULL,
         "CLIP: HF fast-tokenizer clean-up (NFC + lower-case) instead of ftfy"},
        {0},
    };
    const cli_command cmd = {"tokenize",
                             "--model DIR TEXT... [--json]",
                             "Print token ids and tokens of each TEXT.",
                             TOK_DETAILS,
                             TOK_EXAMPLES,
                             opts,
                             1,
                             -1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    const char *dir = cli_model_dir(model);
    if (!dir) {
        cli_list_free(&pos);
        cli_errorf("no model: give --model DIR or set $GAZE_MODEL");
        return EXIT_USAGE;
    }
    /* The whole model is loaded (its weights are mapped, not read): the tokenizer is the one
     * the model's text tower uses, with its length limit. */
    gz_model_params mp = gz_model_default_params();
    mp.clip_fast_tokenizer = fast;
    gz_model *m = NULL;
    gz_status st = gz_model_load(dir, &mp, &m);
    int max_len = st == GZ_OK ? gz_model_max_length(m) : 0;
    if (st == GZ_OK && max_len < 0) st = GZ_EINVAL; /* the tokenizer did not load: message set */
    if (st != GZ_OK) {
        gz_model_free(m);
        cli_list_free(&pos);
        return cli_report_model(st, dir);
    }
    if (no_trunc) max_len = 0;
    for (int i = 0; i < pos.n && st == GZ_OK; i++) {
        int32_t *ids = NULL, *full = NULL;
        int n = 0, n_full = 0;
        st = gz_model_tokenize(m, pos.v[i], max_len, &ids, &n);
        if (st == GZ_OK && max_len > 0) st = gz_model_tokenize(m, pos.v[i], 0, &full, &n_full);
        if (st != GZ_OK) {
            free(ids);
            free(full);
            break;
        }
        int truncated = max_len > 0 && n_full > n;
        if (json) {
            fputs("{\"text\":", stdout);
            out_json_str(stdout, pos.v[i]);
            fputs(",\"ids\":[", stdout);
            for (int j = 0; j < n; j++)
                printf(j ? ",%d" : "%d", (int)ids[j]);
            fputs("],\"tokens\":[", stdout);
            for (int j = 0; j < n; j++) {
                if (j) fputc(',', stdout);
                const char *tok = gz_model_token_text(m, ids[j]);
                out_json_str(stdout, tok ? tok : "");
            }
            printf("],\"truncated\":%s}\n", truncated ? "true" : "false");
        } else {
            out_term_puts(stdout, pos.v[i]);
            printf("\n  %d token%s%s:", n, cli_plural(n), truncated ? " (truncated)" : "");
            for (int j = 0; j < n; j++) {
                const char *tok = gz_model_token_text(m, ids[j]);
                fputc(' ', stdout);
                out_term_puts(stdout, tok ? tok : "?"); /* a vocabulary is a downloaded file */
                printf("(%d)", (int)ids[j]);
            }
            fputc('\n', stdout);
        }
        free(ids);
        free(full);
    }
    gz_model_free(m);
    cli_list_free(&pos);
    return st == GZ_OK ? EXIT_OK : cli_report(st);
}
