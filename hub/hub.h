/* hub.h - Hugging Face Hub client: pull a model repository into the huggingface_hub cache.
 *
 * Basic usage:
 *   gz_hub_params p = gz_hub_default_params();
 *   if (gz_hub_params_from_env(&p) != GZ_OK) { ... }          // HF_ENDPOINT, HF_TOKEN, ...
 *   char id[GZ_HUB_ID_MAX], rev[GZ_HUB_REV_MAX], dir[GZ_HUB_PATH_MAX];
 *   if (gz_hub_parse_id("openai/clip-vit-base-patch32@main", id, sizeof id, rev, sizeof rev) !=
 * GZ_OK
 *       || gz_hub_pull(id, rev, &p, dir, sizeof dir, NULL) != GZ_OK)
 *       fputs(gz_last_error(), stderr);
 *   // dir = <cache>/models--openai--clip-vit-base-patch32/snapshots/<commit>: a model folder
 *
 * The cache is the one huggingface_hub and transformers use, byte for byte:
 *   <cache>/models--ORG--NAME/blobs/<etag>                 file contents (etag: LFS sha256, or
 *                                                          the git blob sha1 for small files)
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<file>    relative symlink ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/refs/<revision>              the commit a branch or tag named
 *   <cache>/.locks/models--ORG--NAME/<etag>.lock           flock(2) held while a blob downloads
 * so either tool reuses what the other downloaded.
 *
 * Only the files gaze reads are pulled: config.json; model.safetensors or its sharded index
 * and shards (pytorch_model.bin or its index and shards only when the repository has no
 * safetensors weights); tokenizer and preprocessor files. Never Flax, TF, ONNX or msgpack files.
 *
 * Thread safety: functions keep no global state except libcurl's, which gz_hub_pull initialises
 * once (curl_global_init under a pthread_once). Distinct calls may run in parallel; two pulls of
 * the same blob serialise on its lock file.
 * Errors: every function returning gz_status sets a one-line message (gz_last_error()). Nothing
 * here prints or exits. */
#ifndef GZ_HUB_HUB_H
#define GZ_HUB_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "gaze.h" /* gz_status */

#define GZ_HUB_ID_MAX 97     /* huggingface_hub allows repo ids of at most 96 characters */
#define GZ_HUB_REV_MAX 256   /* branch, tag or commit name */
#define GZ_HUB_COMMIT_LEN 40 /* hex digits of a git commit */
#define GZ_HUB_PATH_MAX 4096 /* every path this module builds fits in this many bytes */
#define GZ_HUB_URL_MAX 1024  /* endpoint URL */
#define GZ_HUB_TOKEN_MAX 512 /* access token */

/* Called during each download with the bytes of `file` on disk so far (including a resumed
 * prefix) and its total size (-1 when unknown). Runs on the calling thread. */
typedef void (*gz_hub_progress_fn)(void *user, const char *file, int64_t done, int64_t total);

/* Where and how to pull. All strings live in the struct's own arrays (copy it freely). */
typedef struct {
    char endpoint[GZ_HUB_URL_MAX];   /* default https://huggingface.co, no trailing slash */
    char token[GZ_HUB_TOKEN_MAX];    /* "" = anonymous; sent as "Authorization: Bearer ..." */
    char cache_dir[GZ_HUB_PATH_MAX]; /* the hub cache (…/huggingface/hub); must be set to pull */
    int offline;                     /* 1 = never touch the network: resolve from the cache */
    long connect_timeout_s;          /* default 10: give up connecting after this long */
    long low_speed_time_s;           /* default 30: abort a transfer below 1 KiB/s this long */
    int max_retries;                 /* default 2: resume an interrupted download this often */
    gz_hub_progress_fn progress;     /* optional, NULL = none */
    void *progress_user;             /* passed back to progress */
} gz_hub_params;

/* What one gz_hub_pull did. */
typedef struct {
    char commit[GZ_HUB_COMMIT_LEN + 1]; /* the commit the snapshot holds */
    int files;                          /* files in the snapshot gaze needs */
    int files_downloaded;               /* of those, fetched over the network this time */
    int64_t bytes_downloaded;           /* body bytes received this time (resumed ranges only) */
    int64_t bytes_total;                /* size of the snapshot's files */
} gz_hub_pull_stats;

/*
** Defaults without reading the environment: endpoint https://huggingface.co, no token, empty
** cache_dir (gz_hub_params_from_env fills it), online, timeouts and retries as documented above.
*/
gz_hub_params gz_hub_default_params(void);

/*
** Fill *p from the environment as huggingface_hub does:
**   endpoint   HF_ENDPOINT (trailing slashes removed), else left as is;
**   token      HF_TOKEN, else the first line of the token file: $HF_TOKEN_PATH, else
**              $HF_HOME/token (HF_HOME defaults to $XDG_CACHE_HOME/huggingface, then
**              ~/.cache/huggingface); left as is when none is set or readable;
**   cache_dir  HF_HUB_CACHE, else $HF_HOME/hub;
**   offline    HF_HUB_OFFLINE = 1, true, yes or on (any case).
** Returns GZ_OK, or GZ_EINVAL when a value does not fit its array or no home directory is known
** for the default cache (message names the variable).
*/
gz_status gz_hub_params_from_env(gz_hub_params *p);

/*
** 1 when s is a valid repository id "ORG/NAME": exactly one slash, each part made of letters,
** digits, '-', '_' and '.', starting and ending with a letter, digit or '_' (huggingface_hub's
** rule), no "--" or "..", not ending in ".git", at most 96 characters. 0 otherwise.
*/
int gz_hub_valid_id(const char *s);

/*
** Split "ORG/NAME" or "ORG/NAME@REV" into id (cap id_cap) and revision (cap rev_cap; "main" when
** absent). Returns GZ_OK, or GZ_EINVAL when the id is not valid (see gz_hub_valid_id), the
** revision is empty or unsafe as a path (absolute, "..", empty components, control characters),
** or a part does not fit. On error the outputs are empty strings.
*/
gz_status gz_hub_parse_id(const char *s, char *id, size_t id_cap, char *rev, size_t rev_cap);

/*
** 1 when s parses with gz_hub_parse_id and no file or directory named s exists (so a local
** folder "models/clip" is taken as a path, not as a Hub id). 0 otherwise.
*/
int gz_hub_looks_like_id(const char *s);

/*
** The cache folder of a repository: <cache_dir>/models--ORG--NAME, into buf (cap bytes).
** Returns GZ_OK, GZ_EINVAL for an invalid id or a path that does not fit.
*/
gz_status gz_hub_repo_dir(const char *cache_dir, const char *repo_id, char *buf, size_t cap);

/*
** Download what gaze needs of repository repo_id at revision (NULL = "main"; a branch, tag or
** 40-hex commit) into p->cache_dir and write the snapshot folder into snapshot_dir (cap bytes).
** Steps: GET {endpoint}/api/models/{id}/revision/{rev} for the commit and file list; pick the
** files (see the top of this header); for each file not already in snapshots/<commit>/, HEAD
** {endpoint}/{id}/resolve/{commit}/{file} for its etag and size (following only same-host
** redirects), then GET it (following redirects; the Authorization header is not sent to another
** host) into blobs/<etag>.incomplete, resuming with a Range request when that file exists and
** after a dropped connection (p->max_retries times); verify the sha256 (LFS files, whose etag is
** a sha256) or the size; rename it to blobs/<etag> and symlink it into the snapshot. refs/<rev>
** is written last, when rev is not the commit itself. A file already in the snapshot is not
** fetched again, so a second pull downloads nothing. With p->offline set this is
** gz_hub_resolve_cached and no connection is made. st (optional) receives the counts.
**
** Errors (snapshot_dir is "" then; blobs already completed stay in the cache):
**   GZ_ENOTFOUND  repository or revision unknown to the endpoint (or private; see the message)
**   GZ_EIO        401/403 (gated or private: the message says to set HF_TOKEN), connection or
**                 DNS failure (names the endpoint), HTTP errors, write failures (errno text)
**   GZ_ECORRUPT   sha256 or size mismatch (names the file and both values; the partial
**                 download is deleted and the file is absent from the snapshot)
**   GZ_EUNSUPPORTED  the repository has no config.json or no weights gaze can read (lists files)
**   GZ_EINVAL     invalid id/revision, empty cache_dir, malformed server reply
**   GZ_ENOMEM     allocation failed
*/
gz_status gz_hub_pull(const char *repo_id, const char *revision, const gz_hub_params *p,
                      char *snapshot_dir, size_t cap, gz_hub_pull_stats *st);

/*
** Offline resolution: the snapshot folder of repo_id at revision (NULL = "main") in cache_dir,
** into dir (cap bytes). A 40-hex revision names snapshots/<revision> directly; another name is
** looked up in refs/<revision>. Works on caches written by huggingface_hub or transformers.
** Returns GZ_OK, GZ_ENOTFOUND (message names the repository and revision) when not cached,
** GZ_ECORRUPT when the ref does not hold a commit hash, GZ_EINVAL for bad arguments.
*/
gz_status gz_hub_resolve_cached(const char *repo_id, const char *revision, const char *cache_dir,
                                char *dir, size_t cap);

/* One ref of a cached repository: a branch or tag name and the commit it points to. */
typedef struct {
    char revision[GZ_HUB_REV_MAX];
    char commit[GZ_HUB_COMMIT_LEN + 1];
} gz_hub_ref;

/* One cached repository, as gz_hub_list reports it. */
typedef struct {
    char repo_id[GZ_HUB_ID_MAX];
    char dir[GZ_HUB_PATH_MAX]; /* <cache>/models--ORG--NAME */
    int64_t size_bytes;        /* sum of the sizes of its blobs */
    int n_refs;
    gz_hub_ref *refs; /* n_refs, sorted by revision */
    int n_snapshots;
    char (*snapshots)[GZ_HUB_COMMIT_LEN + 1]; /* commits with a snapshots/<commit> folder */
} gz_hub_cached_model;

/*
** Every models--ORG--NAME folder of cache_dir (other entries are ignored), sorted by repo id,
** into a new array *out of *n entries; free it with gz_hub_list_free. A missing cache_dir is an
** empty list. Returns GZ_OK, GZ_EIO (unreadable folder, errno text), GZ_ENOMEM.
*/
gz_status gz_hub_list(const char *cache_dir, gz_hub_cached_model **out, int *n);

/* Free what gz_hub_list returned (NULL is fine). */
void gz_hub_list_free(gz_hub_cached_model *models, int n);

/*
** Remove a cached repository. revision NULL removes the whole models--ORG--NAME folder (and its
** lock folder). Otherwise removes refs/<revision> (or, for a commit, every ref pointing to it) and
** the snapshot it named unless another ref still names it, then deletes the blobs no remaining
** snapshot links to; when no snapshot remains the whole folder goes. Returns GZ_OK,
** GZ_ENOTFOUND when the repository or revision is not cached, GZ_EIO (errno text), GZ_EINVAL.
*/
gz_status gz_hub_rm(const char *cache_dir, const char *repo_id, const char *revision);

#endif
