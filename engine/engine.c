/* engine_core.c - the engine handle: one database and one lazily loaded, registered model. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gaze.h"
#include "engine/engine_internal.h"

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

/* Load the model (given, else the db's default) and find or register it. */
static gz_status resolve_model(gz_engine *e, int do_register) {
    if (e->model && (e->model_id > 0 || !do_register)) return GZ_OK;
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
    if (!e->model) {
        st = gz_model_load(e->model_dir, &e->params, &e->model);
        if (st != GZ_OK) return st;
        st = gz_model_fingerprint(e->model, e->fingerprint);
        if (st != GZ_OK) return st;
    }
    if (do_register) {
        /* Register under the absolute directory so later runs from elsewhere find it; a model
         * loaded by Hub id under its id (ORG/NAME[@REV]), so later runs resolve it from the
         * cache again rather than through a snapshot path that a new revision replaces. */
        char abs[PATH_MAX];
        const char *hub = gz_model_hub_id(e->model), *rev = gz_model_hub_revision(e->model);
        const char *name = realpath(e->model_dir, abs) ? abs : e->model_dir;
        if (hub && snprintf(abs, sizeof abs, "%s%s%s", hub, strcmp(rev, "main") ? "@" : "",
                            strcmp(rev, "main") ? rev : "") < (int)sizeof abs)
            name = abs;
        return gz_db_register_model_hub(e->db, name, gz_family_name(gz_model_family(e->model)),
                                        gz_model_dim(e->model), e->fingerprint, hub, rev,
                                        gz_model_hub_commit(e->model), &e->model_id);
    }
    /* Readers look the model up without touching the registry (last_used stays). */
    gz_db_model *ms = NULL;
    int n = 0;
    st = gz_db_models(e->db, &ms, &n);
    if (st != GZ_OK) return st;
    e->model_id = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(ms[i].fingerprint, e->fingerprint) == 0) e->model_id = ms[i].id;
    if (!e->model_id) {
        st = GZ_FAIL(GZ_ENOTFOUND,
                     "%s: the database has no vectors made with this model; index with it "
                     "first, or search with the model it was indexed with%s%s",
                     e->model_dir, n ? ": " : "", n ? ms[0].name : "");
    }
    free(ms);
    return st;
}

gz_status gz_engine_model(gz_engine *e, gz_model **m, int64_t *model_id) {
    gz_status st = resolve_model(e, 1);
    if (st != GZ_OK) return st;
    if (m) *m = e->model;
    if (model_id) *model_id = e->model_id;
    return GZ_OK;
}

gz_status gz_engine_model_lookup(gz_engine *e, gz_model **m, int64_t *model_id) {
    gz_status st = resolve_model(e, 0);
    if (st != GZ_OK) return st;
    if (m) *m = e->model;
    if (model_id) *model_id = e->model_id;
    return GZ_OK;
}
