/* pool.c - one engine per worker thread; read-only pools reopen a republished database. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serve/serve_internal.h"

static ino_t file_inode(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

gz_status serve_pool_open(serve_pool *pool, const gz_engine_params *ep, int n, int follow) {
    memset(pool, 0, sizeof *pool);
    pool->params = *ep;
    pool->params.db.readonly = 1;
    pool->follow = follow;
    pool->n = n;
    pool->engines = calloc((size_t)n, sizeof *pool->engines);
    pool->busy = calloc((size_t)n, sizeof *pool->busy);
    pool->inode = calloc((size_t)n, sizeof *pool->inode);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    if (!pool->engines || !pool->busy || !pool->inode) {
        serve_pool_close(pool);
        return GZ_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        pool->inode[i] = file_inode(ep->db_path);
        gz_status st = gz_engine_open(&pool->params, &pool->engines[i]);
        if (st != GZ_OK) {
            serve_pool_close(pool);
            return st;
        }
    }
    return GZ_OK;
}

void serve_pool_close(serve_pool *pool) {
    for (int i = 0; pool->engines && i < pool->n; i++)
        gz_engine_close(pool->engines[i]);
    free(pool->engines);
    free(pool->busy);
    free(pool->inode);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    memset(pool, 0, sizeof *pool);
}

gz_status serve_pool_get(serve_pool *pool, gz_engine **e, int *slot) {
    pthread_mutex_lock(&pool->mu);
    int i;
    for (;;) {
        for (i = 0; i < pool->n && pool->busy[i]; i++) {
        }
        if (i < pool->n) break;
        pthread_cond_wait(&pool->cv, &pool->mu);
    }
    pool->busy[i] = 1;
    pthread_mutex_unlock(&pool->mu);
    gz_status st = GZ_OK;
    /* A replica follows its snapshot: a new file under the same name is reopened here, by the
     * thread that owns this engine now, so no other request sees it half-switched. */
    if (pool->follow) {
        ino_t now = file_inode(pool->params.db_path);
        if (now && now != pool->inode[i]) {
            gz_engine *fresh = NULL;
            st = gz_engine_open(&pool->params, &fresh);
            if (st == GZ_OK) {
                gz_engine_close(pool->engines[i]);
                pool->engines[i] = fresh;
                pool->inode[i] = now;
            }
        }
    }
    if (st != GZ_OK) {
        serve_pool_put(pool, i);
        return st;
    }
    *e = pool->engines[i];
    *slot = i;
    return GZ_OK;
}

void serve_pool_put(serve_pool *pool, int slot) {
    pthread_mutex_lock(&pool->mu);
    pool->busy[slot] = 0;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}
