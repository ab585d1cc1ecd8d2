/* model.c -- whole-model archives (docs/MODEL.md): every part of a training
 * run under fixed tensor prefixes and metadata keys, and the reading side of
 * several objects in one file. */
#include "archive/archive.h"
#include "model/model_internal.h"
#include "common/opts.h"

#include <stdlib.h>

/* The tensor parts and where they live in the archive. */
typedef struct tensor_part {
    const char *key, *prefix;
    cairn_params *set;
} tensor_part;

/* The value parts and their metadata keys. */
typedef struct value_part {
    const char *key;
    const cairn_value *value;
} value_part;

/* The caller's parts as far as its struct goes (common/opts.h); absent
 * fields are parts not set. */
static cairn_status read_parts(const cairn_model_parts *parts, cairn_model_parts *p,
                               cairn_error *err)
{
    if (!parts)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_model_parts");
    *p = (cairn_model_parts){.struct_size = sizeof *p};
    return CAIRN__OPTS_COPY(p, parts, cairn_model_parts, kind, err);
}

static void list_tensor_parts(const cairn_model_parts *p, tensor_part out[3])
{
    out[0] = (tensor_part){"params", "params/", p->params};
    out[1] = (tensor_part){"optimizer_tensors", "optimizer/", p->optimizer_tensors};
    out[2] = (tensor_part){"attribute_tensors", "attributes/", p->attribute_tensors};
}

static void list_value_parts(const cairn_model_parts *p, value_part out[7])
{
    out[0] = (value_part){"config", p->config};
    out[1] = (value_part){"optimizer", p->optimizer};
    out[2] = (value_part){"history", p->history};
    out[3] = (value_part){"attributes", p->attributes};
    out[4] = (value_part){"rng", p->rng};
    out[5] = (value_part){"data_position", p->data_position};
    out[6] = (value_part){"extra", p->extra};
}

/* Sets map[key] = value, freeing value on failure. */
static cairn_status put(cairn_value *map, const char *key, cairn_value *value, cairn_error *err)
{
    if (!value)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata '%s': out of memory", key);
    cairn_status st = cairn_value_set(map, key, value, err);
    if (st != CAIRN_OK)
        cairn_value_free(value);
    return st;
}

static cairn_status build_meta(const cairn_model_parts *p, cairn_value *meta, cairn_error *err)
{
    cairn_value *present = cairn_value_list();
    if (!present)
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory");
    cairn_status st = CAIRN_OK;
    tensor_part tp[3];
    value_part vp[7];
    list_tensor_parts(p, tp);
    list_value_parts(p, vp);
    for (int i = 0; i < 3 && st == CAIRN_OK; i++)
        if (tp[i].set)
            st = cairn_value_append(present, cairn_value_string(tp[i].key), err);
    for (int i = 0; i < 7 && st == CAIRN_OK; i++) {
        if (!vp[i].value)
            continue;
        st = put(meta, vp[i].key, cairn_value_clone(vp[i].value), err);
        if (st == CAIRN_OK)
            st = cairn_value_append(present, cairn_value_string(vp[i].key), err);
    }
    if (st == CAIRN_OK && p->kind) {
        cairn_value *tag = cairn_value_map();
        st = tag ? put(tag, "kind", cairn_value_string(p->kind), err)
                 : cairn__fail(err, CAIRN_E_NOMEM, "out of memory");
        if (st == CAIRN_OK)
            st = put(tag, "schema_version", cairn_value_int(p->schema_version), err);
        if (st == CAIRN_OK)
            st = put(meta, "type_tag", tag, err);
        else
            cairn_value_free(tag);
    }
    if (st == CAIRN_OK)
        return put(meta, "parts", present, err);
    cairn_value_free(present);
    return st;
}

cairn_status cairn_model_write(cairn_writer *w, const cairn_model_parts *parts, cairn_error *err)
{
    return cairn__model_write_tagged(w, parts, NULL, NULL, err);
}

cairn_status cairn__model_write_tagged(cairn_writer *w, const cairn_model_parts *parts,
                                       const char *key, const cairn_value *value, cairn_error *err)
{
    cairn_model_parts p;
    CAIRN_TRY(read_parts(parts, &p, err));
    tensor_part tp[3];
    list_tensor_parts(&p, tp);
    for (int i = 0; i < 3; i++)
        if (tp[i].set)
            CAIRN_TRY(cairn_params_write(tp[i].set, w, tp[i].prefix, err));
    cairn_value *meta = cairn_value_map();
    if (!meta)
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory");
    cairn_status st = build_meta(&p, meta, err);
    if (st == CAIRN_OK && key)
        st = put(meta, key, cairn_value_clone(value), err);
    if (st == CAIRN_OK)
        st = cairn_writer_set_metadata(w, meta, err);
    cairn_value_free(meta);
    return st;
}

cairn_status cairn_model_save(const char *path, const cairn_model_parts *parts, cairn_error *err)
{
    cairn_writer *w;
    cairn_model_parts p;
    CAIRN_TRY(read_parts(parts, &p, err));
    CAIRN_TRY(cairn_writer_open_path(path, NULL, &w, err));
    cairn_status st = cairn_model_write(w, &p, err);
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return cairn_writer_commit(w, err);
}

cairn_status cairn_model_save_memory(const cairn_model_parts *parts, void **out, size_t *out_size,
                                     cairn_error *err)
{
    cairn_writer *w;
    if (out)
        *out = NULL;
    if (out_size)
        *out_size = 0;
    cairn_model_parts p;
    CAIRN_TRY(read_parts(parts, &p, err));
    CAIRN_TRY(cairn_writer_open_memory(NULL, &w, err));
    cairn_status st = cairn_model_write(w, &p, err);
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return cairn_writer_commit_memory(w, out, out_size, err);
}

static int part_present(const cairn_value *meta, const char *key)
{
    const cairn_value *parts = cairn_value_get(meta, "parts");
    for (size_t i = 0; i < cairn_value_count(parts); i++) {
        const void *s;
        size_t n;
        if (cairn_value_get_data(cairn_value_at(parts, i), &s, &n) == CAIRN_OK &&
            n == strlen(key) && memcmp(s, key, n) == 0)
            return 1;
    }
    return 0;
}

static cairn_status check_kind(const cairn_file *f, const cairn_value *meta, const char *want,
                               cairn_error *err)
{
    const void *kind = NULL;
    size_t n = 0;
    const cairn_value *tag = cairn_value_get(meta, "type_tag");
    if (cairn_value_get_data(cairn_value_get(tag, "kind"), &kind, &n) != CAIRN_OK)
        return cairn__fail(err, CAIRN_E_MISMATCH, "%s: no type tag; expected a '%s' model",
                           cairn_file_path(f), want);
    if (n != strlen(want) || memcmp(kind, want, n) != 0)
        return cairn__fail(err, CAIRN_E_MISMATCH, "%s: holds a '%.*s' model, expected '%s'",
                           cairn_file_path(f), (int)(n > 200 ? 200 : n), (const char *)kind, want);
    return CAIRN_OK;
}

static cairn_status load_parts(const cairn_file *f, const cairn_model_parts *parts,
                               const cairn_load_opts *opts, const cairn_value *meta,
                               cairn_error *err)
{
    cairn_load_opts o = {.struct_size = sizeof o};
    CAIRN_TRY(CAIRN__OPTS_COPY(&o, opts, cairn_load_opts, flags, err));
    tensor_part tp[3];
    list_tensor_parts(parts, tp);
    for (int i = 0; i < 3; i++) {
        if (!tp[i].set)
            continue;
        if (!part_present(meta, tp[i].key)) {
            if (o.flags & CAIRN_LOAD_STRICT)
                return cairn__fail(err, CAIRN_E_MISMATCH, "%s: the archive has no %s part",
                                   cairn_file_path(f), tp[i].key);
            continue;
        }
        o.prefix = tp[i].prefix;
        CAIRN_TRY(cairn_params_load(tp[i].set, f, &o, NULL, err));
    }
    return CAIRN_OK;
}

cairn_status cairn_model_load(const cairn_file *f, const cairn_model_parts *parts,
                              const cairn_load_opts *opts, cairn_value **meta, cairn_error *err)
{
    if (meta)
        *meta = NULL;
    if (!f)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_model_load: NULL file");
    cairn_model_parts p;
    CAIRN_TRY(read_parts(parts, &p, err));
    cairn_value *tree;
    CAIRN_TRY(cairn_file_read_metadata(f, &tree, err));
    cairn_status st = p.kind ? check_kind(f, tree, p.kind, err) : CAIRN_OK;
    if (st == CAIRN_OK)
        st = load_parts(f, &p, opts, tree, err);
    if (st == CAIRN_OK && meta)
        *meta = tree;
    else
        cairn_value_free(tree);
    return st;
}

/* Checks that "objects" has the shape append_object gives it, so callers can
 * rely on it: a list of maps with a string kind and a string prefix. */
static cairn_status check_objects(const cairn_file *f, const cairn_value *list, cairn_error *err)
{
    if (cairn_value_get_type(list) != CAIRN_VALUE_LIST)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: metadata 'objects' is not a list",
                           cairn_file_path(f));
    for (size_t i = 0; i < cairn_value_count(list); i++) {
        const cairn_value *o = cairn_value_at(list, i);
        if (cairn_value_get_type(o) != CAIRN_VALUE_MAP ||
            cairn_value_get_type(cairn_value_get(o, "kind")) != CAIRN_VALUE_STRING ||
            cairn_value_get_type(cairn_value_get(o, "prefix")) != CAIRN_VALUE_STRING)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: metadata objects[%zu] lacks a string "
                               "'kind' or 'prefix'", cairn_file_path(f), i);
    }
    return CAIRN_OK;
}

cairn_status cairn_file_read_objects(const cairn_file *f, cairn_value **list, cairn_error *err)
{
    if (list)
        *list = NULL;
    if (!f || !list)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_read_objects: NULL argument");
    cairn_value *tree;
    CAIRN_TRY(cairn_file_read_metadata(f, &tree, err));
    const cairn_value *objects = cairn_value_get(tree, "objects");
    cairn_status st = objects ? check_objects(f, objects, err) : CAIRN_OK;
    if (st == CAIRN_OK) {
        *list = objects ? cairn_value_clone(objects) : cairn_value_list();
        if (!*list)
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", cairn_file_path(f));
    }
    cairn_value_free(tree);
    return st;
}
