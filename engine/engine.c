/* engine.c - the engine handle: one database and one lazily loaded, registered model. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "gaze.h"

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
    if (p->shared_model && !p->model_dir)
        return GZ_FAIL(GZ_EINVAL, "gz_engine_open: a shared model needs its directory's name");
    gz_engine *e = calloc(1, sizeof *e);
    if (!e) return GZ_FAIL(GZ_ENOMEM, "gz_engine_open: out of memory");
    e->params = p->model;
    e->shared = p->shared_model;
    e->db_path = strdup(p->db_path);
    if (p->model_dir) e->model_dir = strdup(p->model_dir);
    if (!e->db_path || (p->model_dir && !e->model_dir)) {
        free(e->db_path);
        free(e->model_dir);
        free(e);
        return GZ_FAIL(GZ_ENOMEM, "gz_engine_open: out of memory");
    }
    gz_status st = gz_db_open(p->db_path, &p->db, &e->db);
    if (st != GZ_OK) {
        free(e->db_path);
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
    if (e->model != e->shared) gz_model_free(e->model);
    free(e->model_dir);
    free(e->db_path);
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
            return GZ_FAIL(GZ_ENOTFOUND, "no model given and none registered in the database %s",
                           e->db_path);
        if (st != GZ_OK) return st;
        e->model_dir = strdup(dm.name);
        if (!e->model_dir) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    }
    if (!e->model) {
        if (e->shared)
            e->model = e->shared;
        else if ((st = gz_model_load(e->model_dir, &e->params, &e->model)) != GZ_OK)
            return st;
        st = gz_model_fingerprint(e->model, e->fingerprint);
        if (st != GZ_OK) return st;
    }
    char legacy[65];
    st = gz_model_legacy_fingerprint(e->model, legacy);
    if (st != GZ_OK) return st;
    if (do_register) {
        /* a database made before weights were hashed knows this model by its legacy id */
        st = gz_db_adopt_fingerprint(e->db, legacy, e->fingerprint, NULL);
        if (st != GZ_OK) return st;
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
    /* readers do not write: a legacy row (not adopted yet) is used under its legacy id */
    for (int i = 0; i < n && !e->model_id; i++)
        if (strcmp(ms[i].fingerprint, legacy) == 0) {
            e->model_id = ms[i].id;
            memcpy(e->fingerprint, legacy, sizeof legacy);
        }
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

/* ===== Recorded preprocessing ===== */

/* meta key of a model's preprocessing record */
static void preprocess_key(const char *fingerprint, char *key, size_t n) {
    snprintf(key, n, "preprocess.%s", fingerprint);
}

/* The integer (or boolean) member `name` of object o into *v; returns 0 when it is neither. */
static int json_int(const json_t *o, const char *name, long long *v) {
    const json_t *x = json_object_get(o, name);
    if (json_is_boolean(x))
        *v = json_is_true(x);
    else if (json_is_integer(x))
        *v = json_integer_value(x);
    return json_is_integer(x) || json_is_boolean(x);
}

gz_status gz_engine_get_preprocess(gz_db *db, const char *fingerprint, gz_index_preprocess *out) {
    memset(out, 0, sizeof *out);
    char key[128], *v = NULL;
    preprocess_key(fingerprint, key, sizeof key);
    gz_status st = gz_db_get_meta(db, key, &v);
    if (st != GZ_OK) return st;
    json_t *o = json_loads(v, 0, NULL);
    long long exif = 0, fast = 0, min_size = -1, max_pixels = 0;
    int ok = json_is_object(o) && json_int(o, "exif_orient", &exif) &&
             json_int(o, "fast_decode", &fast) && json_int(o, "min_size", &min_size) &&
             json_int(o, "max_pixels", &max_pixels) && min_size >= 0 && min_size <= INT_MAX &&
             max_pixels > 0 && (fast != 0) == (min_size > 0);
    json_decref(o);
    if (ok) {
        out->exif_orient = exif != 0;
        out->fast_decode = fast != 0;
        out->min_size = (int)min_size;
        out->max_pixels = max_pixels;
    } else {
        st = GZ_FAIL(GZ_ECORRUPT, "setting '%s' is not a preprocessing record: %s", key, v);
    }
    free(v);
    return st;
}

gz_status gz_engine_record_preprocess(gz_engine *e, const gz_image_params *ip) {
    char key[128], value[160];
    preprocess_key(e->fingerprint, key, sizeof key);
    snprintf(value, sizeof value,
             "{\"exif_orient\":%d,\"fast_decode\":%d,\"min_size\":%d,\"max_pixels\":%lld}",
             ip->exif_orient ? 1 : 0, ip->min_size > 0 ? 1 : 0, ip->min_size,
             (long long)ip->max_pixels);
    char *old = NULL;
    /* unchanged: no write (a reader may hold the db, and nothing would change) */
    if (gz_db_get_meta(e->db, key, &old) == GZ_OK && strcmp(old, value) == 0) {
        free(old);
        return GZ_OK;
    }
    free(old);
    return gz_db_set_meta(e->db, key, value);
}

gz_image_params gz_engine_query_image_params(gz_engine *e, gz_model *m) {
    gz_image_params ip = gz_model_image_params(m);
    gz_index_preprocess pp;
    if (gz_engine_get_preprocess(e->db, e->fingerprint, &pp) == GZ_OK) {
        ip.exif_orient = pp.exif_orient;
        ip.min_size = pp.min_size;
        ip.max_pixels = pp.max_pixels;
    }
    return ip;
}
