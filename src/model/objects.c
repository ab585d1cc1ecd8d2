/* objects.c -- cairn_writer_append_object: an ordered sequence of objects
 * (a value tree and a parameter set each, Theano's pickling loop) in one
 * archive. The writer keeps the list (cairn_writer.objects) and merges it
 * into the metadata at commit; the tensors go in under "objects/N/". */
#include "archive/archive.h"

#include <stdio.h>

cairn_status cairn_writer_append_object(cairn_writer *w, const char *kind,
                                        const cairn_value *value, const cairn_params *tensors,
                                        cairn_error *err)
{
    CAIRN_TRY(cairn__writer_usable(w, err));
    if (!kind || !cairn__utf8_valid(kind, strlen(kind)))
        return cairn__fail(err, CAIRN_E_ARG, "%s: an object needs a UTF-8 kind", w->path);
    if (w->plan) /* it adds tensors and metadata the declaration could not know */
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_STATE, "%s: cairn_writer_append_object "
                                            "cannot follow cairn_writer_declare; declare its "
                                            "tensors and set its metadata instead", w->path), err);
    if (!w->objects && !(w->objects = cairn_value_list()))
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path), err);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "objects/%zu/", cairn_value_count(w->objects));
    cairn_value *obj = cairn_value_map(), *names = cairn_value_list();
    cairn_value *val = value ? cairn_value_clone(value) : cairn_value_null();
    cairn_status st = obj && names && val ? CAIRN_OK
                      : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; st == CAIRN_OK && tensors && i < cairn_params_count(tensors); i++) {
        const char *name;
        cairn_params_at(tensors, i, &name, NULL, NULL, NULL, NULL, NULL);
        cairn_value *v = cairn_value_string(name);
        st = v ? cairn_value_append(names, v, err)
               : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
        if (st != CAIRN_OK)
            cairn_value_free(v);
    }
    if (st == CAIRN_OK && tensors)
        st = cairn_params_write(tensors, w, prefix, err);
    if (st == CAIRN_OK)
        st = cairn_value_set(obj, "kind", cairn_value_string(kind), err);
    if (st == CAIRN_OK && (st = cairn_value_set(obj, "value", val, err)) == CAIRN_OK)
        val = NULL;
    if (st == CAIRN_OK)
        st = cairn_value_set(obj, "prefix", cairn_value_string(prefix), err);
    if (st == CAIRN_OK && (st = cairn_value_set(obj, "tensors", names, err)) == CAIRN_OK)
        names = NULL;
    if (st == CAIRN_OK && (st = cairn_value_append(w->objects, obj, err)) == CAIRN_OK)
        obj = NULL;
    cairn_value_free(obj);
    cairn_value_free(names);
    cairn_value_free(val);
    return st == CAIRN_OK ? st : cairn__writer_failed(w, st, err);
}
