/* writer.c -- cairn._cairn.Writer: a cairn_writer to a path (atomic commit)
 * or to memory. Every add writes the caller's bytes straight from its
 * buffer with the GIL released; nothing is copied on the Python side. */
#include "pycairn.h"

typedef struct writer {
    PyObject_HEAD
    cairn_writer *w;
    int memory;
    int busy; /* a call is running with the GIL released */
} writer;

static int writer_init(writer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "format", "flags", "alignment", "codec", "level",
                             "filter", "chunk_size", "threads", "shard_size", NULL};
    PyObject *path = Py_None;
    int format = 0, level = 0;
    unsigned flags = 0, codec = 0, filter = 0, threads = 0;
    unsigned long long alignment = 0, chunk_size = 0, shard_size = 0;
    if (self->w) {
        PyErr_SetString(PyExc_RuntimeError, "Writer.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$iIKIiIKIK", kwlist, &path, &format, &flags,
                                     &alignment, &codec, &level, &filter, &chunk_size, &threads,
                                     &shard_size))
        return -1;
    cairn_write_opts o = {.struct_size = sizeof o, .flags = flags, .format = (cairn_format)format,
                          .alignment = alignment, .codec = codec, .level = level,
                          .filter = filter, .chunk_size = chunk_size, .threads = threads,
                          .shard_size = shard_size};
    cairn_error err;
    cairn_status st;
    cairn_writer *w = NULL;
    if (path == Py_None) {
        st = cairn_writer_open_memory(&o, &w, &err);
        self->memory = 1;
    } else {
        PyObject *enc;
        if (!PyUnicode_FSConverter(path, &enc))
            return -1;
        const char *p = PyBytes_AS_STRING(enc);
        Py_BEGIN_ALLOW_THREADS
        st = cairn_writer_open_path(p, &o, &w, &err);
        Py_END_ALLOW_THREADS
        Py_DECREF(enc);
    }
    if (st != CAIRN_OK) {
        pycairn_raise(st, &err);
        return -1;
    }
    self->w = w;
    return 0;
}

static void writer_dealloc(writer *self)
{
    if (self->w) {
        cairn_writer *w = self->w;
        self->w = NULL;
        cairn_writer_abort(w);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The writer, marked busy; NULL with an exception when it is finished or in
 * use by another thread. */
static cairn_writer *take(writer *self)
{
    if (!self->w) {
        PyErr_SetString(pycairn_Error, "the writer is already committed or aborted");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the writer is in use by another thread");
        return NULL;
    }
    self->busy = 1;
    return self->w;
}

static PyObject *writer_add(writer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "dtype", "shape", "data", "codec", "level", "filter", NULL};
    const char *name;
    PyObject *dtype_obj, *shape, *data;
    int codec = -1, level = 0;
    unsigned filter = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sOOO|iiI", kwlist, &name, &dtype_obj, &shape,
                                     &data, &codec, &level, &filter))
        return NULL;
    cairn_dtype dtype = pycairn_parse_dtype(dtype_obj);
    if (dtype == CAIRN_DTYPE_INVALID)
        return NULL;
    uint64_t dims[CAIRN_MAX_RANK] = {0};
    int rank = pycairn_parse_shape(shape, dims);
    if (rank < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    /* The library reads count * dtype size bytes: the buffer must hold
     * exactly that many. */
    unsigned __int128 want = cairn_dtype_size(dtype);
    for (int i = 0; i < rank; i++)
        want *= dims[i];
    if (want != (unsigned __int128)(size_t)view.len) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "tensor '%s': buffer holds %zd bytes, shape and dtype need "
                     "%llu", name, view.len, (unsigned long long)want);
        return NULL;
    }
    cairn_writer *w = take(self);
    if (!w) {
        PyBuffer_Release(&view);
        return NULL;
    }
    cairn_error err;
    cairn_status st;
    cairn_tensor_opts to = {.struct_size = sizeof to, .codec = codec < 0 ? 0 : (uint32_t)codec,
                            .level = level, .filter = filter};
    Py_BEGIN_ALLOW_THREADS
    st = cairn_writer_add_ex(w, name, dtype, (uint32_t)rank, dims, view.buf,
                             codec < 0 ? NULL : &to, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&view);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *writer_add_alias(writer *self, PyObject *args)
{
    const char *name, *existing;
    if (!PyArg_ParseTuple(args, "ss", &name, &existing))
        return NULL;
    cairn_writer *w = take(self);
    if (!w)
        return NULL;
    cairn_error err;
    cairn_status st = cairn_writer_add_alias(w, name, existing, &err);
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *writer_set_metadata(writer *self, PyObject *arg)
{
    cairn_value *tree;
    if (pycairn_map_from_py(arg, &tree) < 0)
        return NULL;
    if (!tree)
        tree = cairn_value_map();
    if (!tree)
        return PyErr_NoMemory();
    cairn_writer *w = take(self);
    if (!w) {
        cairn_value_free(tree);
        return NULL;
    }
    cairn_error err;
    cairn_status st = cairn_writer_set_metadata(w, tree, &err);
    self->busy = 0;
    cairn_value_free(tree);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *writer_declare(writer *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "declare() takes a sequence of (name, dtype, shape)");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    cairn_tensor_decl *decls = PyMem_Calloc((size_t)n + 1, sizeof *decls);
    uint64_t (*dims)[CAIRN_MAX_RANK] = PyMem_Calloc((size_t)n + 1, sizeof *dims);
    PyObject *out = NULL;
    if (!decls || !dims) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *shape, *dt;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "sOO", &decls[i].name, &dt, &shape))
            goto done;
        decls[i].dtype = pycairn_parse_dtype(dt);
        if (decls[i].dtype == CAIRN_DTYPE_INVALID)
            goto done;
        int rank = pycairn_parse_shape(shape, dims[i]);
        if (rank < 0)
            goto done;
        decls[i].rank = (uint32_t)rank;
        decls[i].dims = dims[i];
    }
    cairn_writer *w = take(self);
    if (!w)
        goto done;
    cairn_error err;
    cairn_status st = cairn_writer_declare(w, decls, (size_t)n, &err);
    self->busy = 0;
    if (st != CAIRN_OK)
        pycairn_raise(st, &err);
    else
        out = Py_NewRef(Py_None);
done:
    PyMem_Free(decls);
    PyMem_Free(dims);
    Py_DECREF(seq);
    return out;
}

/* add_model(parts): cairn_model_write of a parts dict (see params.c). */
static PyObject *writer_add_model(writer *self, PyObject *arg)
{
    pycairn_parts parts;
    if (pycairn_parts_from_py(arg, 0, &parts) < 0)
        return NULL;
    cairn_writer *w = take(self);
    if (!w) {
        pycairn_parts_free(&parts);
        return NULL;
    }
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_model_write(w, &parts.parts, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    pycairn_parts_free(&parts);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *writer_commit(writer *self, PyObject *unused)
{
    cairn_writer *w = take(self);
    if (!w)
        return NULL;
    self->w = NULL; /* freed by either commit, whatever happens */
    cairn_error err;
    cairn_status st;
    void *data = NULL;
    size_t size = 0;
    Py_BEGIN_ALLOW_THREADS
    if (self->memory)
        st = cairn_writer_commit_memory(w, &data, &size, &err);
    else
        st = cairn_writer_commit(w, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    if (!self->memory)
        Py_RETURN_NONE;
    PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)size);
    cairn_free(data);
    return bytes;
}

static PyObject *writer_abort(writer *self, PyObject *unused)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the writer is in use by another thread");
        return NULL;
    }
    cairn_writer *w = self->w;
    self->w = NULL;
    if (w) {
        Py_BEGIN_ALLOW_THREADS
        cairn_writer_abort(w);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *writer_get_open(writer *self, void *unused)
{
    return PyBool_FromLong(self->w != NULL);
}

static PyMethodDef writer_methods[] = {
    {"add", (PyCFunction)(void (*)(void))writer_add, METH_VARARGS | METH_KEYWORDS,
     "add(name, dtype, shape, data, codec=-1, level=0, filter=0): writes one tensor from a "
     "C-contiguous little-endian buffer."},
    {"add_alias", (PyCFunction)writer_add_alias, METH_VARARGS,
     "add_alias(name, existing): a second name for a tensor already added."},
    {"set_metadata", (PyCFunction)writer_set_metadata, METH_O, "set_metadata(dict)."},
    {"declare", (PyCFunction)writer_declare, METH_O,
     "declare([(name, dtype, shape), ...]): announces every tensor before the first add."},
    {"add_model", (PyCFunction)writer_add_model, METH_O,
     "add_model(parts): writes a whole-model archive's parts (docs/MODEL.md)."},
    {"commit", (PyCFunction)writer_commit, METH_NOARGS,
     "commit() -> None (path: atomic rename) or bytes (memory)."},
    {"abort", (PyCFunction)writer_abort, METH_NOARGS, "abort(): discards everything."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"open", (getter)writer_get_open, NULL, "Neither committed nor aborted yet.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pycairn_WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cairn._cairn.Writer",
    .tp_basicsize = sizeof(writer),
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Writer(path=None, *, format=0, flags=0, alignment=0, codec=0, level=0, filter=0, "
              "chunk_size=0, threads=0, shard_size=0): a cairn_writer (use cairn.Writer).",
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
    .tp_init = (initproc)writer_init,
    .tp_new = PyType_GenericNew,
};
