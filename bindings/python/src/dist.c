/* dist.c -- cairn._dist: the collective save of a distributed checkpoint
 * (include/cairn_mpi.h) for cairn.dist, over an mpi4py communicator. A
 * separate extension so that `import cairn` never needs MPI; built by
 * setup.py when mpi4py and libcairn_mpi are there. Loads need no MPI in C:
 * cairn.dist.load opens the directory with the core extension. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cairn_mpi.h>
#include <mpi4py/mpi4py.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dimensions packed by cairn.dist as little-endian uint64 bytes (so this
 * module parses no Python sequences); their count, or -1. */
static int dims_of(PyObject *packed, uint64_t *dims)
{
    char *bytes;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(packed, &bytes, &len) < 0)
        return -1;
    if (len % 8 || len / 8 > CAIRN_MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "%zd bytes of dimensions (at most %d dimensions of 8 "
                     "bytes)", len, CAIRN_MAX_RANK);
        return -1;
    }
    memcpy(dims, bytes, (size_t)len);
    return (int)(len / 8);
}

/* Makes the save fail on every rank with `why` (this rank's own problem):
 * an add that cannot succeed, whose message carries the reason. */
static void fail_save(cairn_mpi_save *s, const char *why)
{
    char name[256];
    snprintf(name, sizeof name, "(a Python error on this rank: %.200s)", why ? why : "?");
    cairn_error ignored; /* the save keeps the message for its commit */
    cairn_mpi_save_add(s, name, CAIRN_DTYPE_INVALID, 0, NULL, NULL, NULL, NULL, &ignored);
}

/* save(comm, path, pieces, meta, codec, level, filter, sync, failure=None)
 *   -> (status, message)
 *   pieces: [(name, buffer, dtype code, global shape, offset or None,
 *   local shape)], shapes and offsets as dims_of packs them, a None offset
 *   meaning replicated; meta: bytes of a native archive whose
 *   metadata tree is the checkpoint's (made by cairn.save_bytes), or None;
 *   failure: this rank's Python-side error, if preparing the pieces failed
 *   (the save still runs its collectives, and fails on every rank).
 * Collective. Every add error is kept by the save and reported by its
 * commit on every rank, so no rank leaves the others waiting. */
static PyObject *dist_save(PyObject *mod, PyObject *args)
{
    PyObject *comm_obj, *pieces, *meta;
    const char *path, *prepared = NULL;
    unsigned codec, filter;
    int level, sync;
    if (!PyArg_ParseTuple(args, "OsOOIiIp|z", &comm_obj, &path, &pieces, &meta, &codec, &level,
                          &filter, &sync, &prepared))
        return NULL;
    MPI_Comm *comm = PyMPIComm_Get(comm_obj);
    if (!comm)
        return NULL;
    PyObject *fast = PySequence_Fast(pieces, "pieces is a sequence");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    Py_buffer *views = calloc((size_t)n + 1, sizeof *views);
    if (!views) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    cairn_write_opts wo = {.struct_size = sizeof wo, .codec = codec, .level = level,
                           .filter = filter, .flags = sync ? 0 : CAIRN_WRITE_NO_SYNC};
    cairn_mpi_save *s = NULL;
    cairn_error err;
    memset(&err, 0, sizeof err);
    cairn_status st = cairn_mpi_save_begin(*comm, path, &wo, &s, &err);
    Py_ssize_t got = 0;
    PyObject *failure = NULL; /* a Python error met while adding: raised after commit */
    for (Py_ssize_t i = 0; st == CAIRN_OK && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *buf, *shape, *offset, *local;
        const char *name;
        int code;
        uint64_t dims[CAIRN_MAX_RANK], off[CAIRN_MAX_RANK], ext[CAIRN_MAX_RANK];
        if (!PyArg_ParseTuple(item, "sOiOOO", &name, &buf, &code, &shape, &offset, &local) ||
            PyObject_GetBuffer(buf, &views[i], PyBUF_C_CONTIGUOUS) < 0)
            break;
        got = i + 1;
        int rank = dims_of(shape, dims);
        if (rank < 0)
            break;
        if (offset == Py_None) {
            cairn_mpi_save_add_replicated(s, name, (cairn_dtype)code, (uint32_t)rank, dims,
                                          views[i].buf, &err); /* kept for the commit */
            continue;
        }
        /* the local array's shape is the box's extent */
        if (dims_of(offset, off) != rank || dims_of(local, ext) != rank) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "'%s': the offset and the local array need one "
                             "entry per dimension of the global shape", name);
            break;
        }
        cairn_mpi_save_add(s, name, (cairn_dtype)code, (uint32_t)rank, dims, off, ext,
                           views[i].buf, &err); /* kept for the commit */
    }
    if (PyErr_Occurred()) {
        /* this rank cannot describe its pieces: it still takes part in the
         * commit, with a failed add, so every rank returns an error */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        failure = v ? v : t;
        Py_XINCREF(failure);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        PyObject *text = failure ? PyObject_Str(failure) : NULL;
        const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
        PyErr_Clear();
        fail_save(s, msg);
        Py_XDECREF(text);
    }
    if (s && prepared)
        fail_save(s, prepared);
    if (st == CAIRN_OK && meta != Py_None) {
        Py_buffer mb;
        if (PyObject_GetBuffer(meta, &mb, PyBUF_SIMPLE) == 0) {
            cairn_file *mf = NULL;
            cairn_value *tree = NULL;
            if (cairn_file_open_memory(mb.buf, (size_t)mb.len, NULL, &mf, &err) == CAIRN_OK &&
                cairn_file_read_metadata(mf, &tree, &err) == CAIRN_OK)
                cairn_mpi_save_set_metadata(s, tree, NULL);
            cairn_value_free(tree);
            cairn_file_close(mf);
            PyBuffer_Release(&mb);
        } else {
            PyErr_Clear();
        }
    }
    if (s) {
        Py_BEGIN_ALLOW_THREADS
        st = cairn_mpi_save_commit(s, &err);
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    free(views);
    Py_DECREF(fast);
    if (failure) {
        PyErr_SetObject((PyObject *)Py_TYPE(failure), failure);
        Py_DECREF(failure);
        return NULL;
    }
    return Py_BuildValue("(is)", (int)st, st == CAIRN_OK ? "" : err.message);
}

static PyMethodDef dist_methods[] = {
    {"save", dist_save, METH_VARARGS,
     "save(comm, path, pieces, meta, codec, level, filter, sync, failure=None) -> "
     "(status, message)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef dist_module = {
    PyModuleDef_HEAD_INIT, "cairn._dist",
    "Collective saves of distributed checkpoints (libcairn_mpi) for cairn.dist.", -1,
    dist_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__dist(void)
{
    if (import_mpi4py() < 0)
        return NULL;
    return PyModule_Create(&dist_module);
}
