/* main.c - the gaze command: dispatch to the sub-commands, --version and top-level help. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"index", cmd_index, "index photos under folders (incremental)"},
    {"search", cmd_search, "search the index by text, image or a composed query"},
    {"add-texts", cmd_add_texts, "import captions / product records (JSONL, CSV, TSV)"},
    {"rm", cmd_rm, "remove images, folders or catalogues from the database"},
    {"dups", cmd_dups, "list duplicate and near-duplicate images, largest first"},
    {"match", cmd_match, "score image-caption pairs (ITC, and ITM on BLIP)"},
    {"embed", cmd_embed, "print normalised embeddings of texts, images or pixel tensors"},
    {"tokenize", cmd_tokenize, "print the token ids and tokens of texts"},
    {"info", cmd_info, "describe a model directory or a database"},
    {"eval", cmd_eval, "image-text retrieval Recall@K on a caption set (LAVIS protocol)"},
    {"model", cmd_model, "pull, list and remove models of the Hugging Face Hub (its cache)"},
    {"serve", cmd_serve, "serve search over HTTP: JSON API, web page, metrics"},
    {"snapshot", cmd_snapshot, "copy a database and its index files while writers run"},
};

static void top_help(FILE *out) {
    fprintf(out,
            "gaze %s - multimodal image-text retrieval\n\n"
            "usage: gaze COMMAND [options]   (gaze COMMAND --help for details)\n\n"
            "commands:\n",
            GAZE_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\nenvironment:\n"
          "  GAZE_MODEL      model when --model is not given: a folder (Hugging Face layout)\n"
          "                  or a pulled Hub id ORG/NAME[@REVISION]\n"
          "  HF_HUB_CACHE    the Hugging Face cache Hub ids resolve from (default\n"
          "                  $HF_HOME/hub, ~/.cache/huggingface/hub); see gaze model --help\n"
          "  XDG_DATA_HOME   the default database is $XDG_DATA_HOME/gaze/gaze.db\n"
          "                  (~/.local/share/gaze/gaze.db when unset)\n"
          "\nexamples:\n"
          "  gaze model pull Salesforce/blip-itm-base-coco\n"
          "  gaze index ~/Pictures --model Salesforce/blip-itm-base-coco\n"
          "  gaze search \"kids on a red sled\" -k 20\n"
          "  gaze search --image beach.jpg --html similar.html\n"
          "  gaze info models/blip-itm-base-coco\n",
          out);
    fprintf(out, "\n%s\n", CLI_EXIT_STATUS_HELP);
}

/* "gaze: unknown command 'serach'; did you mean 'search'?" and the command list. */
static int unknown_command(const char *name) {
    enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++)
        names[i] = COMMANDS[i].name;
    const char *hit = cli_did_you_mean(name, names, N_COMMANDS);
    if (hit)
        cli_errorf("unknown command '%s'; did you mean '%s'?", name, hit);
    else
        cli_errorf("unknown command '%s'", name);
    fputc('\n', stderr);
    top_help(stderr);
    return EXIT_USAGE;
}

/* Model weights are memory-mapped: if the file is truncated (or its storage fails) while gaze
 * runs, the next read of a vanished page raises SIGBUS. The mapped tensors cannot be recovered,
 * so say what happened and stop as a runtime error instead of dying unexplained; an open SQLite
 * transaction is rolled back by the next open, so the database keeps its last commit. Only
 * async-signal-safe calls here. */
static void on_sigbus(int sig) {
    (void)sig;
    static const char msg[] = "gaze: a memory-mapped file (the model's weights) was truncated or "
                              "became unreadable while in use; stopping (the database keeps its "
                              "last commit)\n";
    ssize_t written = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)written;
    _exit(EXIT_FATAL);
}

int main(int argc, char **argv) {
    struct sigaction bus = {0};
    bus.sa_handler = on_sigbus;
    sigemptyset(&bus.sa_mask);
    sigaction(SIGBUS, &bus, NULL);
    if (argc < 2) {
        top_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0 || strcmp(name, "version") == 0) {
        printf("gaze %s\n", GAZE_VERSION);
        return EXIT_OK;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        top_help(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(name, COMMANDS[i].name) == 0) {
            int rc = COMMANDS[i].fn(argc - 1, argv + 1);
            if (fflush(stdout) != 0 && rc == EXIT_OK) {
                perror("gaze: stdout");
                rc = EXIT_FATAL;
            }
            return rc;
        }
    return unknown_command(name);
}
