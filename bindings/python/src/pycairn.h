/* pycairn.h -- declarations shared by the files of the cairn._cairn extension.
 *
 * The extension is a client of include/cairn.h only (docs/PYTHON.md). It
 * needs no NumPy headers: arrays cross as buffer-protocol objects (the pure
 * Python layer makes them with np.frombuffer / np.empty), so it builds
 * against any NumPy and works without one for bytes-level use. */
#ifndef PYCAIRN_H
#define PYCAIRN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cairn.h"

/* ------------------------------------------------------------ errors */

/* Raises the exception class for `status` with err's message (or the
 * status description when the message is empty); returns NULL. */
PyObject *pycairn_raise(cairn_status status, const cairn_error *err);
/* Exception classes, created at module init. */
extern PyObject *pycairn_Error, *pycairn_MismatchError;

/* ---------------------------------------------------------- values */

/* Python tree -> cairn_value (NULL with an exception set). Objects of an
 * unknown type go through the hook set by _set_value_hook (the Python layer
 * turns NumPy scalars into Python numbers there). */
cairn_value *pycairn_value_from_py(PyObject *obj);
/* cairn_value -> Python tree (NULL with an exception set). */
PyObject *pycairn_value_to_py(const cairn_value *v);
/* A Python map (dict) -> a cairn map; None -> NULL without an exception. */
int pycairn_map_from_py(PyObject *obj, cairn_value **out);

/* ------------------------------------------------------------ shapes */

/* Parses a shape sequence into dims[CAIRN_MAX_RANK]; returns rank or -1. */
int pycairn_parse_shape(PyObject *shape, uint64_t dims[CAIRN_MAX_RANK]);
PyObject *pycairn_shape_to_py(uint32_t rank, const uint64_t *dims);
/* Parses a dtype code (int) and checks it; CAIRN_DTYPE_INVALID with an
 * exception set otherwise. */
cairn_dtype pycairn_parse_dtype(PyObject *obj);

/* --------------------------------------------------------- parameter sets */

/* Tensors lent to the library for one call: a cairn_params whose buffers
 * are held Py_buffers, released by pycairn_lent_free. */
typedef struct pycairn_lent {
    cairn_params *params;
    Py_buffer *views;
    Py_ssize_t count;
} pycairn_lent;

/* Builds a set from a sequence of (name, dtype, shape, buffer) tuples;
 * `writable` asks for writable buffers (loading into them). 0 or -1. */
int pycairn_lent_from_py(PyObject *seq, int writable, pycairn_lent *out);
void pycairn_lent_free(pycairn_lent *l);

/* Whole-model parts from a dict (see pycairn_parts_from_py in params.c). */
typedef struct pycairn_parts {
    cairn_model_parts parts;
    pycairn_lent sets[3];
    cairn_value *values[7];
    PyObject *kind; /* a UTF-8 bytes object holding parts.kind, or NULL */
} pycairn_parts;

int pycairn_parts_from_py(PyObject *dict, int writable, pycairn_parts *out);
void pycairn_parts_free(pycairn_parts *p);

/* ------------------------------------------------------------- types */

extern PyTypeObject pycairn_FileType, pycairn_TensorBufferType, pycairn_WriterType,
    pycairn_CkptType;

/* An open file (files.c); exposed for params_load. */
typedef struct pycairn_file pycairn_file;
/* Marks a read in flight and returns the handle (NULL with ValueError when
 * the file is closed); pair with pycairn_file_end. GIL held for both. */
const cairn_file *pycairn_file_begin(PyObject *obj);
void pycairn_file_end(PyObject *obj);

PyObject *pycairn_params_load(PyObject *self, PyObject *args, PyObject *kwds);

#endif
