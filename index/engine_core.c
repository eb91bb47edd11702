/* engine_core.c - the engine handle: one database and one lazily loaded, registered model. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "index/engine.h"
#include "index/engine_internal.h"

gz_engine_params gz_engine_default_params(void) {
    gz_engine_params p;
    memset(&p, 0, sizeof p);
    p.model = gz_model_default_params();
    p.db = gz_db_default_params();
    return p;
}

gz_status gz_engine_open(const gz_engine_params *p, gz_engine **out) {
    *out = NULL;
    if (!p || !p->db_path || !p->db_path[0])
        return GZ_FAIL(GZ_EINVAL, "gz_engine_open: no database path");
    gz_engine *e = calloc(1, sizeof *e);
    if (!e) return GZ_FAIL(GZ_ENOMEM, "gz_engine_open: out of memory");
    e->params = p->model;
    if (p->model_dir) {
        e->model_dir = strdup(p->model_dir);
        if (!e->model_dir) {
            free(e);
            return GZ_FAIL(GZ_ENOMEM, "gz_engine_open: out of memory");
        }
    }
    gz_status st = gz_db_open(p->db_path, &p->db, &e->db);
    if (st != GZ_OK) {
        free(e->model_dir);
        free(e);
        return st;
    }
    *out = e;
    return GZ_OK;
}

gz_status gz_engine_close(gz_engine *e) {
    if (!e) return GZ_OK;
    gz_status st = gz_db_close(e->db);
    gz_model_free(e->model);
    free(e->model_dir);
    free(e);
    return st;
}

gz_db *gz_engine_db(gz_engine *e) { return e->db; }

const char *gz_engine_model_dir(const gz_engine *e) { return e->model_dir; }

gz_status gz_engine_model(gz_engine *e, gz_model **m, int64_t *model_id) {
    if (!e->model) {
        gz_status st;
        if (!e->model_dir) {
            gz_db_model dm;
            st = gz_db_default_model(e->db, &dm);
            if (st == GZ_ENOTFOUND)
                return GZ_FAIL(GZ_ENOTFOUND,
                               "no model: give --model DIR (or set $GAZE_MODEL); the database "
                               "has no registered model yet");
            if (st != GZ_OK) return st;
            e->model_dir = strdup(dm.name);
            if (!e->model_dir) return GZ_FAIL(GZ_ENOMEM, "out of memory");
        }
        gz_model *model = NULL;
        st = gz_model_load(e->model_dir, &e->params, &model);
        if (st != GZ_OK) return st;
        char fp[65];
        st = gz_model_fingerprint(model, fp);
        if (st == GZ_OK) {
            /* Register under the absolute directory so later runs from elsewhere find it. */
            char abs[PATH_MAX];
            const char *name = realpath(e->model_dir, abs) ? abs : e->model_dir;
            st = gz_db_register_model(e->db, name, gz_family_name(gz_model_family(model)),
                                      gz_model_dim(model), fp, &e->model_id);
        }
        if (st != GZ_OK) {
            gz_model_free(model);
            return st;
        }
        e->model = model;
    }
    if (m) *m = e->model;
    if (model_id) *model_id = e->model_id;
    return GZ_OK;
}
