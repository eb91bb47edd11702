/* vindex.h - one FAISS index of (model, kind) in memory, and its file (internal to store/).
 *
 * Vectors are appended to the FAISS structure at consecutive positions; ids[pos] maps a
 * position to its item id (-1 once removed). Removal only marks the position dead (HNSW
 * cannot remove, and one rule for every factory keeps the code plain): searches over-fetch
 * and drop dead positions, and the owner rebuilds once the dead share grows.
 *
 * File layout (host byte order; the file is a cache, rebuilt when anything is off):
 *   header (GZ_VX_HEADER_BYTES): magic "GZVIDX01", u32 version, u32 kind, i64 model_id,
 *     i64 generation, i64 n (positions), i64 n_dead, i64 dim, char factory[64],
 *     char effective[64], u64 payload_bytes, u64 xxh3(payload), u64 xxh3(header so far)
 *   payload: i64 ids[n], then the FAISS index as faiss_write_index writes it. */
#ifndef GZ_STORE_VINDEX_H
#define GZ_STORE_VINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "gaze.h"

#define GZ_VX_FACTORY_MAX 64
#define GZ_VX_HEADER_BYTES 208

typedef struct gz_vindex gz_vindex;

struct gz_vindex {
    int64_t model_id;
    int kind;
    int dim;
    char factory[GZ_VX_FACTORY_MAX];   /* requested */
    char effective[GZ_VX_FACTORY_MAX]; /* built */
    int64_t gen;                       /* generation the contents correspond to */
    int txn;      /* 1: contents include changes of the open (uncommitted) transaction */
    int dirty;    /* 1: changed since loaded from / saved to its file */
    void *index;  /* FaissIndex* */
    int64_t *ids; /* (n) position -> item id, -1 = dead */
    size_t n, cap, n_dead;
    /* item id -> position, open addressing with linear probing; key 0 = empty slot */
    int64_t *map_keys, *map_vals;
    size_t map_cap, map_n;
};

/* Header fields as read by gz_vindex_peek. */
typedef struct {
    int64_t model_id, generation, n, n_dead, dim;
    int kind;
    char factory[GZ_VX_FACTORY_MAX], effective[GZ_VX_FACTORY_MAX];
    int64_t file_bytes;
} gz_vx_header;

/* The index types gaze builds, as the usage message lists them. */
#define GZ_VX_FACTORY_FORMS                                                                        \
    "Flat, HNSW<M> (M 2-256), IVF<nlist>,Flat (nlist 1-65536), IVF<nlist>,PQ<m>[x<bits>] or "      \
    "PQ<m>[x<bits>] (m divides the embedding size, bits 1-8)"

/* 1 if factory is one of GZ_VX_FACTORY_FORMS with parameters in bounds (dim > 0: also that
 * PQ's m divides it); else 0 and why (cap bytes) says what is wrong. No FAISS call. */
int gz_vindex_check_factory(const char *factory, int dim, char *why, size_t cap);

/* Training minimum of a factory string: 0 if it needs no training (Flat, HNSW), else
 * 39 * max(nlist, 256 when it has a PQ stage) (FAISS warns below 39 points per centroid);
 * a PQ without IVF needs 39 * 256. */
size_t gz_vindex_min_train(const char *factory);

/* Create an empty index. If factory needs training and n_train >= its minimum, it is trained
 * on train (n_train, dim); if n_train is below the minimum, "Flat" is built instead and
 * *fell_back is set to 1 (2: the factory does not suit dim, see gz_vindex_check_factory).
 * GZ_EINVAL with FAISS's message for a factory it rejects. */
gz_status gz_vindex_create(int64_t model_id, int kind, int dim, const char *factory,
                           const float *train, size_t n_train, int *fell_back, gz_vindex **out);
void gz_vindex_free(gz_vindex *v);

/* Append vecs (n, dim) for items ids[n]; an id already present is first marked dead. */
gz_status gz_vindex_add(gz_vindex *v, const int64_t *ids, const float *vecs, size_t n);
/* Mark the item's vector dead if present; returns 1 if it was present. */
int gz_vindex_remove(gz_vindex *v, int64_t id);
/* Live vectors. */
size_t gz_vindex_live(const gz_vindex *v);

/* Top k live items for one query (dim floats): ids and inner-product scores, best first as
 * FAISS ranks them (a Flat index: scored here, ties by ascending id), *n_out <= k.
 * ef_search / nprobe are applied where the index has them. */
gz_status gz_vindex_search(gz_vindex *v, const float *query, int k, int ef_search, int nprobe,
                           int64_t *out_ids, float *out_scores, int *n_out);

/* Write the index to path atomically (temp file, fsync, rename, fsync of the directory). */
gz_status gz_vindex_save(const gz_vindex *v, const char *path);
/* Read the header only. GZ_ENOTFOUND if the file is absent, GZ_ECORRUPT if the header is
 * malformed. */
gz_status gz_vindex_peek(const char *path, gz_vx_header *out);
/* Load a file and check it all: header, payload hash, that it belongs to (model_id, kind, dim,
 * factory) at generation gen, and that FAISS agrees with the id table. GZ_ENOTFOUND if absent,
 * GZ_ECORRUPT if anything is off (the message says what: "stale: generation 3, want 5", ...). */
gz_status gz_vindex_load(const char *path, int64_t model_id, int kind, int dim, const char *factory,
                         int64_t gen, gz_vindex **out);

#endif
