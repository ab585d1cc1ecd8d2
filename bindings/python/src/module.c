/* module.c -- cairn._cairn: exceptions, the metadata tree <-> Python
 * conversion, shapes, and the module's small functions. */
#include "pycairn.h"

#include <math.h>

PyObject *pycairn_Error, *pycairn_MismatchError;

/* One Python exception class per status; classes are created in the order of
 * this table, so a base comes before its subclasses. */
typedef struct error_class {
    const char *name;      /* attribute name in the module */
    const char *base;      /* a class of this table, or NULL for Error */
    PyObject **builtin;    /* a second base from the builtins, or NULL */
    const char *doc;
    PyObject *cls;
} error_class;

static error_class classes[] = {
    {"CorruptError", NULL, &PyExc_ValueError, "The input is malformed, truncated or hostile.", NULL},
    {"ChecksumError", "CorruptError", NULL, "Stored bytes do not match their checksum.", NULL},
    {"LimitError", "CorruptError", NULL, "The input exceeds a resource limit (a zip bomb, a huge count).", NULL},
    {"UnsupportedError", NULL, NULL, "Well-formed, but uses something cairn does not do.", NULL},
    {"FormatError", "UnsupportedError", NULL, "The input is not in any format cairn knows.", NULL},
    {"NotFoundError", NULL, &PyExc_KeyError, "No tensor, key or checkpoint of that name.", NULL},
    {"IOError", NULL, &PyExc_OSError, "The operating system refused a read, write, fsync or rename.", NULL},
    {"ArgumentError", NULL, &PyExc_ValueError, "A bad argument (name, rank, size, option).", NULL},
    {"DtypeError", NULL, &PyExc_TypeError, "A dtype conversion that is not allowed.", NULL},
    {"ExistsError", NULL, &PyExc_ValueError, "A name that is already present.", NULL},
    {"StateError", NULL, NULL, "The object is in the wrong state (writer committed or failed).", NULL},
    {"MismatchError", NULL, NULL, "A strict load found missing, unexpected or mismatched tensors; "
                                  "`.report` lists every problem.", NULL},
    {"SignatureError", NULL, NULL, "A signature is missing or does not verify.", NULL},
    {"NoMemoryError", NULL, &PyExc_MemoryError, "An allocation failed.", NULL},
    {"BusyError", NULL, NULL, "Another process writes this checkpoint directory (the message "
                              "names its PID).", NULL},
    {"AuthError", "IOError", &PyExc_PermissionError,
     "An object store refused the credentials or the access (a wrong key or secret, an "
     "expired session token, no permission); the message names the object, the HTTP status, "
     "S3's error code and the access key ID, never the secret.", NULL},
};
#define N_CLASSES (sizeof classes / sizeof classes[0])

static PyObject *class_named(const char *name)
{
    for (size_t i = 0; i < N_CLASSES; i++)
        if (strcmp(classes[i].name, name) == 0)
            return classes[i].cls;
    return pycairn_Error;
}

static PyObject *class_for(cairn_status st)
{
    switch (st) {
    case CAIRN_E_ARG: return class_named("ArgumentError");
    case CAIRN_E_NOMEM: return class_named("NoMemoryError");
    case CAIRN_E_IO: return class_named("IOError");
    case CAIRN_E_CORRUPT: return class_named("CorruptError");
    case CAIRN_E_UNSUPPORTED: return class_named("UnsupportedError");
    case CAIRN_E_NOT_FOUND: return class_named("NotFoundError");
    case CAIRN_E_LIMIT: return class_named("LimitError");
    case CAIRN_E_CHECKSUM: return class_named("ChecksumError");
    case CAIRN_E_DTYPE: return class_named("DtypeError");
    case CAIRN_E_EXISTS: return class_named("ExistsError");
    case CAIRN_E_STATE: return class_named("StateError");
    case CAIRN_E_FORMAT: return class_named("FormatError");
    case CAIRN_E_SIZE: return class_named("ArgumentError");
    case CAIRN_E_MISMATCH: return class_named("MismatchError");
    case CAIRN_E_SIGNATURE:
    case CAIRN_E_UNSIGNED: return class_named("SignatureError");
    case CAIRN_E_BUSY: return class_named("BusyError");
    case CAIRN_E_AUTH: return class_named("AuthError");
    default: return pycairn_Error;
    }
}

PyObject *pycairn_raise(cairn_status status, const cairn_error *err)
{
    const char *msg = err && err->message[0] ? err->message : cairn_strerror(status);
    PyObject *cls = class_for(status);
    PyObject *exc = PyObject_CallFunction(cls, "s", msg);
    if (!exc)
        return NULL;
    PyObject *code = PyLong_FromLong((long)status);
    if (!code || PyObject_SetAttrString(exc, "status", code) < 0) {
        Py_XDECREF(code);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(code);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

static int make_classes(PyObject *m)
{
    pycairn_Error = PyErr_NewExceptionWithDoc(
        "cairn.Error", "Base class of every error cairn raises. `.status` is the library's "
        "status code; the message names the file, object, field and offset.", NULL, NULL);
    if (!pycairn_Error || PyModule_AddObjectRef(m, "Error", pycairn_Error) < 0)
        return -1;
    for (size_t i = 0; i < N_CLASSES; i++) {
        error_class *c = &classes[i];
        PyObject *base = c->base ? class_named(c->base) : pycairn_Error;
        PyObject *bases = c->builtin ? PyTuple_Pack(2, base, *c->builtin) : PyTuple_Pack(1, base);
        if (!bases)
            return -1;
        char full[64];
        snprintf(full, sizeof full, "cairn.%s", c->name);
        c->cls = PyErr_NewExceptionWithDoc(full, c->doc, bases, NULL);
        Py_DECREF(bases);
        if (!c->cls || PyModule_AddObjectRef(m, c->name, c->cls) < 0)
            return -1;
    }
    pycairn_MismatchError = class_named("MismatchError");
    return 0;
}

/* ------------------------------------------------------------ values */

static PyObject *value_hook;      /* callable(obj) -> a convertible object */
static PyObject *tensor_ref_type; /* cairn.TensorRef, a str subclass */

#define MAX_DEPTH 512

static cairn_value *from_py(PyObject *obj, int depth);

static cairn_value *nomem_value(cairn_value *v)
{
    if (!v && !PyErr_Occurred())
        PyErr_NoMemory();
    return v;
}

static cairn_value *string_from_py(PyObject *obj, int ref)
{
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (!s)
        return NULL;
    if (ref)
        return nomem_value(cairn_value_tensor_ref(s));
    return nomem_value(cairn_value_string_n(s, (size_t)len));
}

static cairn_value *map_from_py(PyObject *obj, int depth)
{
    cairn_value *map = cairn_value_map();
    if (!map)
        return nomem_value(NULL);
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(obj, &pos, &key, &val)) {
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "metadata map keys must be str, not %.100s",
                         Py_TYPE(key)->tp_name);
            goto fail;
        }
        Py_ssize_t klen;
        const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
        if (!k)
            goto fail;
        if (memchr(k, 0, (size_t)klen)) {
            PyErr_SetString(PyExc_ValueError, "metadata map keys may not contain NUL");
            goto fail;
        }
        cairn_value *child = from_py(val, depth + 1);
        if (!child)
            goto fail;
        cairn_error err;
        cairn_status st = cairn_value_set(map, k, child, &err);
        if (st != CAIRN_OK) {
            cairn_value_free(child);
            pycairn_raise(st, &err);
            goto fail;
        }
    }
    return map;
fail:
    cairn_value_free(map);
    return NULL;
}

static cairn_value *list_from_py(PyObject *obj, int depth)
{
    PyObject *seq = PySequence_Fast(obj, "expected a sequence");
    if (!seq)
        return NULL;
    cairn_value *list = cairn_value_list();
    if (!list) {
        Py_DECREF(seq);
        return nomem_value(NULL);
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        cairn_value *child = from_py(PySequence_Fast_GET_ITEM(seq, i), depth + 1);
        if (!child)
            goto fail;
        cairn_error err;
        cairn_status st = cairn_value_append(list, child, &err);
        if (st != CAIRN_OK) {
            cairn_value_free(child);
            pycairn_raise(st, &err);
            goto fail;
        }
    }
    Py_DECREF(seq);
    return list;
fail:
    Py_DECREF(seq);
    cairn_value_free(list);
    return NULL;
}

static cairn_value *from_py(PyObject *obj, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_RecursionError, "metadata nested too deeply");
        return NULL;
    }
    if (obj == Py_None)
        return nomem_value(cairn_value_null());
    if (PyBool_Check(obj))
        return nomem_value(cairn_value_bool(obj == Py_True));
    if (PyLong_Check(obj)) {
        int overflow;
        long long i = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "metadata integers must fit in int64");
            return NULL;
        }
        if (i == -1 && PyErr_Occurred())
            return NULL;
        return nomem_value(cairn_value_int((int64_t)i));
    }
    if (PyFloat_Check(obj))
        return nomem_value(cairn_value_float(PyFloat_AS_DOUBLE(obj)));
    if (tensor_ref_type && PyObject_TypeCheck(obj, (PyTypeObject *)tensor_ref_type))
        return string_from_py(obj, 1);
    if (PyUnicode_Check(obj))
        return string_from_py(obj, 0);
    if (PyBytes_Check(obj))
        return nomem_value(cairn_value_bytes(PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj)));
    if (PyByteArray_Check(obj) || PyMemoryView_Check(obj)) {
        Py_buffer view;
        if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0)
            return NULL;
        cairn_value *v = nomem_value(cairn_value_bytes(view.buf, (size_t)view.len));
        PyBuffer_Release(&view);
        return v;
    }
    if (PyDict_Check(obj))
        return map_from_py(obj, depth);
    if (PyList_Check(obj) || PyTuple_Check(obj))
        return list_from_py(obj, depth);
    if (value_hook) {
        PyObject *conv = PyObject_CallOneArg(value_hook, obj);
        if (!conv)
            return NULL;
        cairn_value *v = NULL;
        if (conv == obj)
            PyErr_Format(PyExc_TypeError, "cannot store a %.100s in cairn metadata",
                         Py_TYPE(obj)->tp_name);
        else
            v = from_py(conv, depth + 1);
        Py_DECREF(conv);
        return v;
    }
    PyErr_Format(PyExc_TypeError, "cannot store a %.100s in cairn metadata", Py_TYPE(obj)->tp_name);
    return NULL;
}

cairn_value *pycairn_value_from_py(PyObject *obj)
{
    return from_py(obj, 0);
}

int pycairn_map_from_py(PyObject *obj, cairn_value **out)
{
    *out = NULL;
    if (obj == NULL || obj == Py_None)
        return 0;
    if (!PyDict_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "metadata must be a dict, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = from_py(obj, 0);
    return *out ? 0 : -1;
}

static PyObject *to_py(const cairn_value *v, int depth);

/* Child i of a list or map. cairn_value_at gives the items of a compact
 * list read from a file their nodes on first use, which may run out of
 * memory (NULL): that is a MemoryError, not a None. */
static PyObject *child_to_py(const cairn_value *v, size_t i, int depth)
{
    const cairn_value *c = cairn_value_at(v, i);
    if (!c)
        return PyErr_NoMemory();
    return to_py(c, depth + 1);
}

static PyObject *to_py(const cairn_value *v, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_RecursionError, "metadata nested too deeply");
        return NULL;
    }
    const void *data;
    size_t len;
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_NULL:
        Py_RETURN_NONE;
    case CAIRN_VALUE_BOOL: {
        int b = 0;
        cairn_value_get_bool(v, &b);
        return PyBool_FromLong(b);
    }
    case CAIRN_VALUE_INT: {
        int64_t i = 0;
        cairn_value_get_int(v, &i);
        return PyLong_FromLongLong((long long)i);
    }
    case CAIRN_VALUE_FLOAT: {
        double d = 0;
        cairn_value_get_float(v, &d);
        return PyFloat_FromDouble(d);
    }
    case CAIRN_VALUE_STRING:
        cairn_value_get_data(v, &data, &len);
        return PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "surrogateescape");
    case CAIRN_VALUE_BYTES:
        cairn_value_get_data(v, &data, &len);
        return PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(v, &data, &len);
        if (tensor_ref_type)
            return PyObject_CallFunction(tensor_ref_type, "s#", (const char *)data, (Py_ssize_t)len);
        return PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "surrogateescape");
    case CAIRN_VALUE_LIST: {
        size_t n = cairn_value_count(v);
        PyObject *list = PyList_New((Py_ssize_t)n);
        if (!list)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *child = child_to_py(v, i, depth);
            if (!child) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, child);
        }
        return list;
    }
    case CAIRN_VALUE_MAP: {
        size_t n = cairn_value_count(v);
        PyObject *dict = PyDict_New();
        if (!dict)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *child = child_to_py(v, i, depth);
            if (!child || PyDict_SetItemString(dict, cairn_value_key_at(v, i), child) < 0) {
                Py_XDECREF(child);
                Py_DECREF(dict);
                return NULL;
            }
            Py_DECREF(child);
        }
        return dict;
    }
    }
    PyErr_SetString(pycairn_Error, "unknown metadata node type");
    return NULL;
}

PyObject *pycairn_value_to_py(const cairn_value *v)
{
    return to_py(v, 0);
}

/* ------------------------------------------------------------ shapes */

int pycairn_parse_shape(PyObject *shape, uint64_t dims[CAIRN_MAX_RANK])
{
    PyObject *seq = PySequence_Fast(shape, "shape must be a sequence of ints");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > CAIRN_MAX_RANK) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "rank %zd exceeds cairn's maximum of %d", n, CAIRN_MAX_RANK);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long d = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (d == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        dims[i] = d;
    }
    Py_DECREF(seq);
    return (int)n;
}

PyObject *pycairn_shape_to_py(uint32_t rank, const uint64_t *dims)
{
    PyObject *t = PyTuple_New(rank);
    if (!t)
        return NULL;
    for (uint32_t i = 0; i < rank; i++) {
        PyObject *d = PyLong_FromUnsignedLongLong(dims[i]);
        if (!d) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

cairn_dtype pycairn_parse_dtype(PyObject *obj)
{
    long code = PyLong_AsLong(obj);
    if (code == -1 && PyErr_Occurred())
        return CAIRN_DTYPE_INVALID;
    if (code <= 0 || code >= CAIRN_DTYPE_COUNT) {
        PyErr_Format(PyExc_ValueError, "invalid cairn dtype code %ld", code);
        return CAIRN_DTYPE_INVALID;
    }
    return (cairn_dtype)code;
}

/* ------------------------------------------------------ module functions */

static PyObject *set_value_hook(PyObject *self, PyObject *args)
{
    PyObject *hook, *ref;
    if (!PyArg_ParseTuple(args, "OO", &hook, &ref))
        return NULL;
    Py_XSETREF(value_hook, Py_NewRef(hook));
    Py_XSETREF(tensor_ref_type, Py_NewRef(ref));
    Py_RETURN_NONE;
}

static PyObject *dtype_name(PyObject *self, PyObject *arg)
{
    cairn_dtype d = pycairn_parse_dtype(arg);
    if (d == CAIRN_DTYPE_INVALID)
        return NULL;
    return PyUnicode_FromString(cairn_dtype_name(d));
}

static PyObject *dtype_size(PyObject *self, PyObject *arg)
{
    cairn_dtype d = pycairn_parse_dtype(arg);
    if (d == CAIRN_DTYPE_INVALID)
        return NULL;
    return PyLong_FromSize_t(cairn_dtype_size(d));
}

static PyObject *dtype_from_name(PyObject *self, PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s)
        return NULL;
    return PyLong_FromLong((long)cairn_dtype_from_name(s));
}

static PyObject *can_convert(PyObject *self, PyObject *args)
{
    int from, to;
    if (!PyArg_ParseTuple(args, "ii", &from, &to))
        return NULL;
    return PyBool_FromLong(cairn_dtype_can_convert((cairn_dtype)from, (cairn_dtype)to));
}

static PyObject *codec_parse(PyObject *self, PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s)
        return NULL;
    uint32_t codec;
    int32_t level;
    cairn_error err;
    cairn_status st = cairn_codec_parse(s, &codec, &level, &err);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    return Py_BuildValue("(Ii)", codec, level);
}

static PyObject *codec_name(PyObject *self, PyObject *arg)
{
    unsigned long c = PyLong_AsUnsignedLong(arg);
    if (c == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    const char *n = cairn_codec_name((uint32_t)c);
    if (!n)
        return PyUnicode_FromFormat("codec-%lu", c);
    return PyUnicode_FromString(n);
}

static PyObject *format_name(PyObject *self, PyObject *arg)
{
    long c = PyLong_AsLong(arg);
    if (c == -1 && PyErr_Occurred())
        return NULL;
    const char *n = cairn_format_name((cairn_format)c);
    if (!n)
        Py_RETURN_NONE;
    return PyUnicode_FromString(n);
}

/* The address of an object's contiguous buffer (what a save would write
 * from): cheaper than NumPy's __array_interface__ per tensor. */
static PyObject *buffer_address(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    PyObject *out = PyLong_FromVoidPtr(view.buf);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *format_from_name(PyObject *self, PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s)
        return NULL;
    return PyLong_FromLong((long)cairn_format_from_name(s));
}

static PyObject *format_extensions(PyObject *self, PyObject *arg)
{
    long c = PyLong_AsLong(arg);
    if (c == -1 && PyErr_Occurred())
        return NULL;
    const char *e = cairn_format_extensions((cairn_format)c);
    if (!e)
        Py_RETURN_NONE;
    return PyUnicode_FromString(e);
}

static PyObject *meta_roundtrip(PyObject *self, PyObject *arg)
{
    cairn_value *v = pycairn_value_from_py(arg);
    if (!v)
        return NULL;
    PyObject *out = pycairn_value_to_py(v);
    cairn_value_free(v);
    return out;
}

static PyObject *key_load_public(PyObject *self, PyObject *arg)
{
    PyObject *enc;
    if (!PyUnicode_FSConverter(arg, &enc))
        return NULL;
    uint8_t key[CAIRN_PUBLIC_KEY_BYTES];
    cairn_error err;
    cairn_status st = cairn_key_load_public(PyBytes_AS_STRING(enc), key, &err);
    Py_DECREF(enc);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    return PyBytes_FromStringAndSize((const char *)key, sizeof key);
}

static PyMethodDef methods[] = {
    {"key_load_public", key_load_public, METH_O,
     "key_load_public(path) -> the 32-byte ed25519 public key of a cairn key file."},
    {"_set_value_hook", set_value_hook, METH_VARARGS,
     "_set_value_hook(hook, TensorRef): the converter of unknown metadata objects and the "
     "tensor reference class."},
    {"dtype_name", dtype_name, METH_O, "dtype_name(code) -> canonical name ('F32', 'BF16')."},
    {"dtype_size", dtype_size, METH_O, "dtype_size(code) -> bytes per element."},
    {"dtype_from_name", dtype_from_name, METH_O, "dtype_from_name(name) -> code (0 if unknown)."},
    {"can_convert", can_convert, METH_VARARGS,
     "can_convert(from_code, to_code) -> whether cairn converts between the dtypes on read."},
    {"codec_parse", codec_parse, METH_O, "codec_parse('zstd:3') -> (codec, level)."},
    {"codec_name", codec_name, METH_O, "codec_name(code) -> 'zstd', 'lz4', ..."},
    {"format_name", format_name, METH_O, "format_name(code) -> 'cairn', 'safetensors', ..."},
    {"buffer_address", buffer_address, METH_O,
     "buffer_address(obj) -> the address of obj's C-contiguous buffer."},
    {"format_from_name", format_from_name, METH_O,
     "format_from_name('safetensors') -> code (0 if no format has that name)."},
    {"format_extensions", format_extensions, METH_O,
     "format_extensions(code) -> '.pt .pth' (the extensions a save picks it by) or None."},
    {"_meta_roundtrip", meta_roundtrip, METH_O,
     "_meta_roundtrip(tree) -> the tree after conversion to cairn's metadata tree and back."},
    {"params_load", (PyCFunction)(void (*)(void))pycairn_params_load, METH_VARARGS | METH_KEYWORDS,
     "params_load(file, entries, *, strict, convert, verify, prefix, strip_prefix, add_prefix) "
     "-> (loaded, report): loads tensors of an open file into writable buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "cairn._cairn",
    "The C core of the cairn package, a client of libcairn's public API (include/cairn.h). "
    "Use the `cairn` package; this module's names may change.",
    -1, methods, NULL, NULL, NULL, NULL,
};

static int add_type(PyObject *m, PyTypeObject *t, const char *name)
{
    if (PyType_Ready(t) < 0)
        return -1;
    return PyModule_AddObjectRef(m, name, (PyObject *)t);
}

PyMODINIT_FUNC PyInit__cairn(void)
{
    PyObject *m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
    if (make_classes(m) < 0 || add_type(m, &pycairn_FileType, "File") < 0 ||
        add_type(m, &pycairn_TensorBufferType, "TensorBuffer") < 0 ||
        add_type(m, &pycairn_WriterType, "Writer") < 0 ||
        add_type(m, &pycairn_CkptType, "Ckpt") < 0 ||
        PyModule_AddStringConstant(m, "library_version", cairn_version()) < 0 ||
        PyModule_AddStringConstant(m, "header_version", CAIRN_VERSION_STRING) < 0 ||
        PyModule_AddIntConstant(m, "FORMAT_MAJOR", CAIRN_FORMAT_MAJOR) < 0 ||
        PyModule_AddIntConstant(m, "FORMAT_MINOR", CAIRN_FORMAT_MINOR) < 0 ||
        PyModule_AddIntConstant(m, "MAX_RANK", CAIRN_MAX_RANK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
