/* params.c -- parameter sets lent to the library for one call, whole-model
 * parts, and params_load (cairn_params_load into the caller's buffers). */
#include "pycairn.h"

void pycairn_lent_free(pycairn_lent *l)
{
    cairn_params_free(l->params);
    for (Py_ssize_t i = 0; i < l->count; i++)
        PyBuffer_Release(&l->views[i]);
    PyMem_Free(l->views);
    memset(l, 0, sizeof *l);
}

int pycairn_lent_from_py(PyObject *obj, int writable, pycairn_lent *out)
{
    memset(out, 0, sizeof *out);
    PyObject *seq = PySequence_Fast(obj, "expected a sequence of (name, dtype, shape, buffer)");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    out->params = cairn_params_new();
    out->views = PyMem_Calloc((size_t)n + 1, sizeof *out->views);
    if (!out->params || !out->views) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name;
        PyObject *dt, *shape, *data;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "sOOO", &name, &dt, &shape, &data))
            goto fail;
        cairn_dtype dtype = pycairn_parse_dtype(dt);
        uint64_t dims[CAIRN_MAX_RANK] = {0};
        int rank = dtype == CAIRN_DTYPE_INVALID ? -1 : pycairn_parse_shape(shape, dims);
        if (rank < 0)
            goto fail;
        int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(data, &out->views[i], flags) < 0)
            goto fail;
        out->count = i + 1;
        unsigned __int128 want = cairn_dtype_size(dtype);
        for (int d = 0; d < rank; d++)
            want *= dims[d];
        if (want != (unsigned __int128)(size_t)out->views[i].len) {
            PyErr_Format(PyExc_ValueError, "tensor '%s': buffer holds %zd bytes, shape and "
                         "dtype need %llu", name, out->views[i].len, (unsigned long long)want);
            goto fail;
        }
        cairn_error err;
        cairn_status st = cairn_params_add(out->params, name, dtype, (uint32_t)rank, dims,
                                           out->views[i].buf, &err);
        if (st != CAIRN_OK) {
            pycairn_raise(st, &err);
            goto fail;
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    pycairn_lent_free(out);
    return -1;
}

static const char *const value_keys[7] = {"config", "optimizer", "history", "attributes",
                                          "rng", "data_position", "extra"};
static const char *const set_keys[3] = {"params", "optimizer_tensors", "attribute_tensors"};

void pycairn_parts_free(pycairn_parts *p)
{
    for (int i = 0; i < 3; i++)
        pycairn_lent_free(&p->sets[i]);
    for (int i = 0; i < 7; i++)
        cairn_value_free(p->values[i]);
    Py_CLEAR(p->kind);
    memset(p, 0, sizeof *p);
}

/* A dict with any of: kind (str), schema_version (int), params,
 * optimizer_tensors, attribute_tensors (sequences of (name, dtype, shape,
 * buffer)), and the value parts config, optimizer, history, attributes,
 * rng, data_position, extra (metadata trees). Absent or None = no part. */
int pycairn_parts_from_py(PyObject *dict, int writable, pycairn_parts *out)
{
    memset(out, 0, sizeof *out);
    out->parts.struct_size = sizeof out->parts;
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "model parts must be a dict");
        return -1;
    }
    PyObject *o = PyDict_GetItemString(dict, "kind");
    if (o && o != Py_None) {
        out->kind = PyUnicode_AsUTF8String(o);
        if (!out->kind)
            goto fail;
        out->parts.kind = PyBytes_AS_STRING(out->kind);
    }
    o = PyDict_GetItemString(dict, "schema_version");
    if (o && o != Py_None) {
        out->parts.schema_version = PyLong_AsLongLong(o);
        if (out->parts.schema_version == -1 && PyErr_Occurred())
            goto fail;
    }
    cairn_params **sets[3] = {&out->parts.params, &out->parts.optimizer_tensors,
                              &out->parts.attribute_tensors};
    for (int i = 0; i < 3; i++) {
        o = PyDict_GetItemString(dict, set_keys[i]);
        if (!o || o == Py_None)
            continue;
        if (pycairn_lent_from_py(o, writable, &out->sets[i]) < 0)
            goto fail;
        *sets[i] = out->sets[i].params;
    }
    const cairn_value **vals[7] = {&out->parts.config, &out->parts.optimizer, &out->parts.history,
                                   &out->parts.attributes, &out->parts.rng,
                                   &out->parts.data_position, &out->parts.extra};
    for (int i = 0; i < 7; i++) {
        o = PyDict_GetItemString(dict, value_keys[i]);
        if (!o || o == Py_None)
            continue;
        out->values[i] = pycairn_value_from_py(o);
        if (!out->values[i])
            goto fail;
        *vals[i] = out->values[i];
    }
    return 0;
fail:
    pycairn_parts_free(out);
    return -1;
}

static PyObject *report_to_py(const cairn_load_report *r)
{
    static const char *kinds[] = {"?", "missing", "unexpected", "shape", "dtype"};
    size_t n = r ? cairn_load_report_count(r) : 0;
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < n; i++) {
        cairn_mismatch_kind kind;
        const char *name, *file_name, *text;
        if (cairn_load_report_at(r, i, &kind, &name, &file_name, &text, NULL) != CAIRN_OK)
            continue;
        PyObject *item = Py_BuildValue("(szzs)", kind >= 1 && kind <= 4 ? kinds[kind] : kinds[0],
                                       name, file_name, text);
        if (!item || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

PyObject *pycairn_params_load(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"file", "entries", "strict", "convert", "verify", "prefix",
                             "strip_prefix", "add_prefix", NULL};
    PyObject *file, *entries;
    int strict = 1, convert = 0, verify = 0;
    const char *prefix = NULL, *strip_prefix = NULL, *add_prefix = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|$pppzzz", kwlist, &file, &entries, &strict,
                                     &convert, &verify, &prefix, &strip_prefix, &add_prefix))
        return NULL;
    pycairn_lent lent;
    if (pycairn_lent_from_py(entries, 1, &lent) < 0)
        return NULL;
    const cairn_file *f = pycairn_file_begin(file);
    if (!f) {
        pycairn_lent_free(&lent);
        return NULL;
    }
    cairn_load_opts o = {.struct_size = sizeof o,
                         .flags = (strict ? CAIRN_LOAD_STRICT : 0) |
                                  (convert ? CAIRN_LOAD_CONVERT : 0) |
                                  (verify ? CAIRN_LOAD_VERIFY : 0),
                         .prefix = prefix, .strip_prefix = strip_prefix,
                         .add_prefix = add_prefix};
    cairn_load_report *report = NULL;
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_params_load(lent.params, f, &o, &report, &err);
    Py_END_ALLOW_THREADS
    pycairn_file_end(file);
    pycairn_lent_free(&lent);
    PyObject *problems = report_to_py(report);
    size_t loaded = report ? cairn_load_report_loaded(report) : 0;
    cairn_load_report_free(report);
    if (!problems)
        return NULL;
    if (st != CAIRN_OK) {
        pycairn_raise(st, &err);
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value)
            PyObject_SetAttrString(value, "report", problems);
        Py_DECREF(problems);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)loaded, problems);
}
