/* cmd_snapshot.c - `gaze snapshot DEST`: a consistent copy of a database and its index files
 * while writers run (gz_db_snapshot). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "gaze.h"

static const char SNAPSHOT_DETAILS[] =
    "Copies one committed state of the database with SQLite's online backup (writers go on\n"
    "meanwhile), then the FAISS files of that state's generation (any other index is built\n"
    "from the copy). DEST must not exist (its folder is created if needed). To publish for `gaze "
    "serve --read-only` replicas,\n"
    "snapshot into a new folder and rename a symlink onto it: replicas follow the new file\n"
    "on their next request, without a restart.\n"
    "--json prints {\"dest\", \"indexes_copied\", \"indexes_built\", \"bytes\"}.";
static const char SNAPSHOT_EXAMPLES[] =
    "  gaze snapshot --db shop.db /srv/gaze/gen-42/shop.db\n"
    "  ln -sfn gen-42 /srv/gaze/next && mv -T /srv/gaze/next /srv/gaze/current";

/* mkdir -p of the folder that will hold path (a new generation's folder). 0 and a message on
 * failure. */
static int make_parent(const char *path) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        cli_errorf("%s: path too long", path);
        return 0;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 1;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
                cli_errorf("%s: %s", dir, strerror(errno));
                return 0;
            }
            *p = c;
            if (!c) break;
        }
    }
    return 1;
}

int cmd_snapshot(int argc, char **argv) {
    const char *db = NULL;
    int json = 0, quiet = 0;
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"json", 0, CLI_FLAG, &json, NULL, "print the result as JSON"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "print nothing on success"},
        {0},
    };
    const cli_command cmd = {"snapshot",
                             "DEST [options]",
                             "Copy a database and its index files while writers run.",
                             SNAPSHOT_DETAILS,
                             SNAPSHOT_EXAMPLES,
                             opts,
                             1,
                             1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    char *def = NULL;
    const char *src = cli_db_path(db, 0, &def);
    if (!src) {
        cli_list_free(&pos);
        return EXIT_FATAL;
    }
    gz_snapshot_stats st;
    gz_status s = GZ_EIO;
    if (!make_parent(pos.v[0])) {
        free(def);
        cli_list_free(&pos);
        return EXIT_FATAL;
    }
    s = gz_db_snapshot(src, pos.v[0], &st);
    if (s != GZ_OK) {
        rc = cli_report(s);
    } else if (json) {
        printf("{\"dest\":");
        out_json_str(stdout, pos.v[0]);
        printf(",\"indexes_copied\":%d,\"indexes_built\":%d,\"bytes\":%lld}\n", st.indexes_copied,
               st.indexes_built, (long long)st.bytes);
    } else if (!quiet) {
        char size[32];
        cli_human_bytes(size, sizeof size, (double)st.bytes);
        printf("snapshot %s: %s, %d index file(s) copied, %d built\n", pos.v[0], size,
               st.indexes_copied, st.indexes_built);
    }
    free(def);
    cli_list_free(&pos);
    return s == GZ_OK ? EXIT_OK : rc;
}
