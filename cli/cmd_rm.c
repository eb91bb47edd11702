/* cmd_rm.c - `gaze rm`: remove items (images by path, folder or glob; catalogues; items by
 * id) from the database, in one transaction. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gaze.h"

static const char RM_DETAILS[] =
    "Each PATH is a file or folder as it was indexed; it need not exist any more (a folder\n"
    "that was deleted or moved away is removed with everything indexed under it). A PATH\n"
    "with a wildcard (* ? [) is a glob over the indexed image paths: matched against the\n"
    "whole path, or against the file name when it has no '/' (quote it so the shell does\n"
    "not expand it). --catalog NAME removes a catalogue of texts (gaze add-texts --catalog),\n"
    "or with --id only those items of it. Texts linked to a removed image stay, unlinked.\n"
    "Everything is removed in one transaction, vectors included, and searches never return\n"
    "a removed item. A PATH, glob or id that matches nothing is reported (exit status 1)\n"
    "and the rest is still removed; --dry-run only counts.";
static const char RM_EXAMPLES[] = "  gaze rm ~/Pictures/old-phone\n"
                                  "  gaze rm '*.thumb.jpg' --dry-run\n"
                                  "  gaze rm --catalog shop --id sku-123 --id sku-456\n"
                                  "  gaze rm --catalog shop-2023";

static int is_glob(const char *s) { return strpbrk(s, "*?[") != NULL; }

static void push(gz_rm_spec **v, int *n, gz_rm_spec s) {
    gz_rm_spec *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) {
        cli_errorf("out of memory");
        exit(EXIT_FATAL);
    }
    nv[(*n)++] = s;
    *v = nv;
}

int cmd_rm(int argc, char **argv) {
    const char *db = NULL, *catalog = NULL;
    cli_list ids = {0}, items = {0};
    int dry = 0, json = 0, quiet = 0;
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"catalog", 'c', CLI_STR, &catalog, "NAME", "remove this catalogue (or its --id items)"},
        {"id", 0, CLI_LIST, &ids, "ID", "with --catalog: remove this item (repeatable)"},
        {"item", 0, CLI_LIST, &items, "N", "remove the item with this database id (repeatable)"},
        {"dry-run", 'n', CLI_FLAG, &dry, NULL, "count what would be removed, remove nothing"},
        {"json", 0, CLI_FLAG, &json, NULL, "print the summary as JSON"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no notices"},
        {0},
    };
    const cli_command cmd = {"rm",
                             "[PATH|GLOB...] [--catalog NAME [--id ID...]] [--item N...]",
                             "Remove images, folders or catalogues from the database.",
                             RM_DETAILS,
                             RM_EXAMPLES,
                             opts,
                             0,
                             -1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) {
        cli_list_free(&ids);
        cli_list_free(&items);
        return rc;
    }
    gz_rm_spec *specs = NULL;
    int n = 0, usage = 0;
    for (int i = 0; i < pos.n; i++)
        push(&specs, &n,
             (gz_rm_spec){.by = is_glob(pos.v[i]) ? GZ_RM_GLOB : GZ_RM_PATH, .target = pos.v[i]});
    if (ids.n && !catalog) {
        cli_errorf("--id needs --catalog NAME");
        usage = 1;
    }
    if (catalog && !*catalog) {
        cli_errorf("--catalog needs a name");
        usage = 1;
    }
    for (int i = 0; i < ids.n; i++)
        push(&specs, &n,
             (gz_rm_spec){.by = GZ_RM_CATALOG_ITEM, .target = catalog, .ext_id = ids.v[i]});
    if (catalog && !ids.n) push(&specs, &n, (gz_rm_spec){.by = GZ_RM_CATALOG, .target = catalog});
    for (int i = 0; i < items.n && !usage; i++) {
        char *end;
        long long id = strtoll(items.v[i], &end, 10);
        if (*end || id <= 0 || end == items.v[i]) {
            cli_errorf("--item: '%s' is not an item id (a positive number)", items.v[i]);
            usage = 1;
        }
        push(&specs, &n, (gz_rm_spec){.by = GZ_RM_ID, .target = items.v[i], .item_id = id});
    }
    if (!usage && n == 0) {
        cli_errorf("rm: nothing to remove: give a PATH, a glob, --catalog or --item");
        usage = 1;
    }
    gz_engine *e = NULL;
    if (!usage) {
        gz_model_params mp = gz_model_default_params();
        rc = cli_open_engine(db, NULL, &mp, NULL, quiet, 1, &e);
    }
    int code = usage ? EXIT_USAGE : rc;
    gz_rm_stats total = {0};
    int missing = 0;
    if (e && !code) {
        gz_status st = dry ? GZ_OK : gz_engine_begin(e);
        for (int i = 0; i < n && st == GZ_OK; i++) {
            gz_rm_stats s;
            gz_status r = gz_engine_remove(e, &specs[i], dry, &s);
            if (r == GZ_ENOTFOUND) { /* reported; the other targets are still removed */
                cli_errorf("%s", gz_last_error());
                missing++;
                continue;
            }
            st = r;
            total.images += s.images;
            total.texts += s.texts;
        }
        if (!dry) {
            if (st == GZ_OK)
                st = gz_engine_commit(e);
            else
                gz_engine_rollback(e);
        }
        if (st != GZ_OK) {
            code = cli_report_engine(e, st);
        } else {
            code = missing ? EXIT_PARTIAL : EXIT_OK;
            if (json)
                printf("{\"images\":%ld,\"texts\":%ld,\"not_found\":%d,\"dry_run\":%s}\n",
                       total.images, total.texts, missing, dry ? "true" : "false");
            else
                printf("%s %ld image%s and %ld text%s%s\n", dry ? "would remove" : "removed",
                       total.images, total.images == 1 ? "" : "s", total.texts,
                       total.texts == 1 ? "" : "s", dry ? " (dry run: nothing removed)" : "");
        }
    }
    if (e) {
        gz_status cst = gz_engine_close(e);
        if (cst != GZ_OK && code == EXIT_OK) code = cli_report(cst);
    }
    free(specs);
    cli_list_free(&pos);
    cli_list_free(&ids);
    cli_list_free(&items);
    return code;
}
