/* files.c -- cairn._cairn.File (an open cairn_file) and TensorBuffer (a
 * read-only or copy-on-write window on one tensor's bytes).
 *
 * Lifetime rule: a TensorBuffer holds a reference to its File, and the
 * cairn_file (with its mapping) is closed only when the File was closed by
 * the caller AND no TensorBuffer and no read in flight (on another thread,
 * GIL released) still uses it. So a NumPy view made from a TensorBuffer
 * stays valid after `with cairn.open(...)` ends and after the File object
 * itself is gone: its .base chain keeps the bytes mapped. */
#include "pycairn.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct pycairn_file {
    PyObject_HEAD
    cairn_file *f;
    PyObject *source;    /* the bytes object a memory open reads, or NULL */
    PyObject *path;      /* str, or None */
    Py_ssize_t exports;  /* live TensorBuffers */
    Py_ssize_t busy;     /* reads running with the GIL released */
    int closed;          /* close() was called */
    /* A private (copy-on-write) mapping of the same file, for writable
     * zero-copy torch tensors; NULL when unavailable. */
    void *cow;
    size_t cow_len;
    cairn_format format;
};

typedef struct tensor_buffer {
    PyObject_HEAD
    pycairn_file *file;
    void *ptr;
    Py_ssize_t len;
    int readonly;
} tensor_buffer;

/* Frees the handle once nothing uses it any more. */
static void file_release(pycairn_file *self)
{
    if (!self->closed || self->exports > 0 || self->busy > 0)
        return;
    if (self->f) {
        cairn_file *f = self->f;
        self->f = NULL;
        Py_BEGIN_ALLOW_THREADS
        cairn_file_close(f);
        Py_END_ALLOW_THREADS
    }
    if (self->cow) {
        munmap(self->cow, self->cow_len);
        self->cow = NULL;
    }
    Py_CLEAR(self->source);
}

const cairn_file *pycairn_file_begin(PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, &pycairn_FileType)) {
        PyErr_SetString(PyExc_TypeError, "expected a cairn._cairn.File");
        return NULL;
    }
    pycairn_file *self = (pycairn_file *)obj;
    if (self->closed || !self->f) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on a closed cairn file");
        return NULL;
    }
    self->busy++;
    return self->f;
}

void pycairn_file_end(PyObject *obj)
{
    pycairn_file *self = (pycairn_file *)obj;
    self->busy--;
    file_release(self);
}

/* Maps `fd` privately (copy-on-write) if it is still the file at `path`. */
static void map_private(pycairn_file *self, int fd, const struct stat *before, const char *path)
{
    struct stat after;
    if (stat(path, &after) != 0 || after.st_dev != before->st_dev ||
        after.st_ino != before->st_ino || !S_ISREG(before->st_mode) || before->st_size <= 0)
        return;
    void *m = mmap(NULL, (size_t)before->st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return;
    self->cow = m;
    self->cow_len = (size_t)before->st_size;
}

static int file_init(pycairn_file *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "buffer", "flags", "format", "max_inflate", "threads",
                             "public_key", NULL};
    PyObject *path = Py_None, *buffer = Py_None;
    unsigned flags = 0;
    int format = 0;
    unsigned long long max_inflate = 0;
    unsigned threads = 0;
    Py_buffer key = {0};
    if (self->f || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "File.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO$IiKIz*", kwlist, &path, &buffer, &flags,
                                     &format, &max_inflate, &threads, &key))
        return -1;
    cairn_open_opts o = {.struct_size = sizeof o, .flags = flags, .format = (cairn_format)format,
                         .max_inflate = max_inflate, .threads = threads};
    if (key.buf) {
        if (key.len != CAIRN_PUBLIC_KEY_BYTES) {
            PyBuffer_Release(&key);
            PyErr_Format(PyExc_ValueError, "public_key must be %d bytes", CAIRN_PUBLIC_KEY_BYTES);
            return -1;
        }
        o.public_key = key.buf;
    }
    cairn_error err;
    cairn_status st;
    cairn_file *f = NULL;
    if (path != Py_None) {
        PyObject *enc;
        if (!PyUnicode_FSConverter(path, &enc)) {
            PyBuffer_Release(&key);
            return -1;
        }
        const char *p = PyBytes_AS_STRING(enc);
        int fd = -1;
        struct stat before;
        Py_BEGIN_ALLOW_THREADS
        if (!(flags & CAIRN_OPEN_NO_MMAP)) {
            /* O_NONBLOCK: a FIFO must not block here (the library then
             * refuses it); it changes nothing for a regular file. */
            fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
            if (fd >= 0 && fstat(fd, &before) != 0) {
                close(fd);
                fd = -1;
            }
        }
        st = cairn_file_open(p, &o, &f, &err);
        if (st == CAIRN_OK && fd >= 0)
            map_private(self, fd, &before, p);
        if (fd >= 0)
            close(fd);
        Py_END_ALLOW_THREADS
        Py_DECREF(enc);
        self->path = PyOS_FSPath(path);
        if (!self->path)
            PyErr_Clear();
    } else if (buffer != Py_None) {
        /* The library borrows the bytes until close: hold an immutable copy
         * so nobody can change them under the reader. */
        PyObject *bytes = PyBytes_Check(buffer) ? Py_NewRef(buffer) : PyBytes_FromObject(buffer);
        if (!bytes) {
            PyBuffer_Release(&key);
            return -1;
        }
        const void *data = PyBytes_AS_STRING(bytes);
        size_t size = (size_t)PyBytes_GET_SIZE(bytes);
        Py_BEGIN_ALLOW_THREADS
        st = cairn_file_open_memory(data, size, &o, &f, &err);
        Py_END_ALLOW_THREADS
        if (st == CAIRN_OK)
            self->source = bytes;
        else
            Py_DECREF(bytes);
        self->path = Py_NewRef(Py_None);
    } else {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_TypeError, "File needs a path or a buffer");
        return -1;
    }
    PyBuffer_Release(&key);
    if (st != CAIRN_OK) {
        if (self->cow) {
            munmap(self->cow, self->cow_len);
            self->cow = NULL;
        }
        pycairn_raise(st, &err);
        return -1;
    }
    self->f = f;
    cairn_file_info fi;
    if (cairn_file_get_info(f, &fi, NULL) == CAIRN_OK)
        self->format = fi.format;
    if (self->cow && (fi.file_size != self->cow_len ||
                      (self->format != CAIRN_FORMAT_NATIVE && self->format != CAIRN_FORMAT_SAFETENSORS &&
                       self->format != CAIRN_FORMAT_GGUF && self->format != CAIRN_FORMAT_NPY))) {
        munmap(self->cow, self->cow_len);
        self->cow = NULL;
    }
    return 0;
}

static void file_dealloc(pycairn_file *self)
{
    self->closed = 1;
    self->exports = 0;
    self->busy = 0;
    file_release(self);
    Py_CLEAR(self->path);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *file_close(pycairn_file *self, PyObject *unused)
{
    self->closed = 1;
    file_release(self);
    Py_RETURN_NONE;
}

static PyObject *file_get_closed(pycairn_file *self, void *unused)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *file_get_released(pycairn_file *self, void *unused)
{
    return PyBool_FromLong(self->f == NULL);
}

static PyObject *file_get_exports(pycairn_file *self, void *unused)
{
    return PyLong_FromSsize_t(self->exports);
}

static PyObject *file_get_path(pycairn_file *self, void *unused)
{
    return Py_NewRef(self->path ? self->path : Py_None);
}

#define BEGIN(self, f)                                                  \
    const cairn_file *f = pycairn_file_begin((PyObject *)(self));       \
    if (!f)                                                             \
        return NULL
#define END(self) pycairn_file_end((PyObject *)(self))

static PyObject *file_count(pycairn_file *self, PyObject *unused)
{
    BEGIN(self, f);
    uint64_t n = cairn_file_count(f);
    END(self);
    return PyLong_FromUnsignedLongLong(n);
}

static PyObject *file_info(pycairn_file *self, PyObject *unused)
{
    BEGIN(self, f);
    cairn_file_info fi;
    cairn_error err;
    cairn_status st = cairn_file_get_info(f, &fi, &err);
    END(self);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    const char *fmt = cairn_format_name(fi.format);
    return Py_BuildValue(
        "{s:s,s:i,s:(II),s:K,s:K,s:K,s:K,s:O,s:K,s:K,s:O,s:y#}", "format", fmt ? fmt : "?",
        "format_code", (int)fi.format, "version", fi.version_major, fi.version_minor,
        "tensor_count", (unsigned long long)fi.tensor_count, "file_size",
        (unsigned long long)fi.file_size, "payload_bytes", (unsigned long long)fi.payload_bytes,
        "alignment", (unsigned long long)fi.alignment, "has_metadata",
        fi.has_metadata ? Py_True : Py_False, "raw_bytes", (unsigned long long)fi.raw_bytes,
        "compressed_tensors", (unsigned long long)fi.compressed_tensors, "is_signed",
        fi.is_signed ? Py_True : Py_False, "key_id", (const char *)fi.key_id,
        (Py_ssize_t)(fi.is_signed ? CAIRN_KEY_ID_BYTES : 0));
}

static PyObject *info_tuple(const cairn_tensor_info *ti)
{
    PyObject *shape = pycairn_shape_to_py(ti->rank, ti->dims);
    if (!shape)
        return NULL;
    return Py_BuildValue("(s#iNKKKKIOKOIiKK)", ti->name, (Py_ssize_t)ti->name_len, (int)ti->dtype,
                         shape, (unsigned long long)ti->raw_size,
                         (unsigned long long)ti->stored_size, (unsigned long long)ti->offset,
                         (unsigned long long)ti->alignment, (unsigned)ti->codec,
                         ti->has_checksum ? Py_True : Py_False,
                         (unsigned long long)ti->checksum, ti->zero_copy ? Py_True : Py_False,
                         (unsigned)ti->filter, (int)ti->level,
                         (unsigned long long)ti->chunk_size, (unsigned long long)ti->chunk_count);
}

static int parse_index(PyObject *arg, uint64_t *index)
{
    unsigned long long i = PyLong_AsUnsignedLongLong(arg);
    if (i == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *index = i;
    return 0;
}

static PyObject *file_tensor_info(pycairn_file *self, PyObject *arg)
{
    uint64_t index;
    if (parse_index(arg, &index) < 0)
        return NULL;
    BEGIN(self, f);
    cairn_tensor_info ti;
    cairn_error err;
    cairn_status st = cairn_tensor_info_at(f, index, &ti, &err);
    PyObject *out = st == CAIRN_OK ? info_tuple(&ti) : pycairn_raise(st, &err);
    END(self);
    return out;
}

/* infos() -> the info tuple of every tensor, in file order: one call for
 * what a load needs to plan, instead of one per tensor. */
static PyObject *file_infos(pycairn_file *self, PyObject *unused)
{
    BEGIN(self, f);
    uint64_t n = cairn_file_count(f);
    PyObject *list = n <= PY_SSIZE_T_MAX ? PyList_New((Py_ssize_t)n) : PyErr_NoMemory();
    for (uint64_t i = 0; list && i < n; i++) {
        cairn_tensor_info ti;
        cairn_error err;
        cairn_status st = cairn_tensor_info_at(f, i, &ti, &err);
        PyObject *item = st == CAIRN_OK ? info_tuple(&ti) : pycairn_raise(st, &err);
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    END(self);
    return list;
}

static PyObject *file_names(pycairn_file *self, PyObject *unused)
{
    BEGIN(self, f);
    uint64_t n = cairn_file_count(f);
    PyObject *list = PyList_New(0);
    for (uint64_t i = 0; list && i < n; i++) {
        cairn_tensor_info ti;
        cairn_error err;
        cairn_status st = cairn_tensor_info_at(f, i, &ti, &err);
        PyObject *name = st == CAIRN_OK ? PyUnicode_DecodeUTF8(ti.name, (Py_ssize_t)ti.name_len,
                                                               "surrogateescape")
                                        : pycairn_raise(st, &err);
        if (!name || PyList_Append(list, name) < 0)
            Py_CLEAR(list);
        Py_XDECREF(name);
    }
    END(self);
    return list;
}

static PyObject *file_find(pycairn_file *self, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    BEGIN(self, f);
    uint64_t index;
    cairn_tensor_info ti;
    cairn_error err;
    cairn_status st = cairn_tensor_find(f, name, &index, &ti, &err);
    PyObject *out = NULL;
    if (st == CAIRN_OK) {
        PyObject *info = info_tuple(&ti);
        out = info ? Py_BuildValue("(KN)", (unsigned long long)index, info) : NULL;
    } else {
        pycairn_raise(st, &err);
    }
    END(self);
    return out;
}

static PyObject *make_buffer(pycairn_file *self, void *ptr, size_t len, int readonly)
{
    static char empty;
    tensor_buffer *tb = PyObject_New(tensor_buffer, &pycairn_TensorBufferType);
    if (!tb)
        return NULL;
    tb->file = (pycairn_file *)Py_NewRef(self);
    tb->ptr = len ? ptr : &empty;
    tb->len = (Py_ssize_t)len;
    tb->readonly = readonly || len == 0;
    self->exports++;
    return (PyObject *)tb;
}

/* The TensorBuffer of tensor `index`: on the library's read-only bytes
 * (cow = 0), or on the private copy-on-write mapping (cow = 1); None when
 * the tensor has no such view (compressed, big-endian, pread-only, ...). */
static PyObject *tensor_view(pycairn_file *self, PyObject *arg, int cow)
{
    uint64_t index;
    if (parse_index(arg, &index) < 0)
        return NULL;
    BEGIN(self, f);
    cairn_tensor_info ti;
    cairn_error err;
    cairn_status st = cairn_tensor_info_at(f, index, &ti, &err);
    PyObject *out = NULL;
    const void *data = NULL;
    if (st == CAIRN_OK && ti.zero_copy)
        st = cairn_tensor_data(f, index, &data, &err);
    if (st != CAIRN_OK && st != CAIRN_E_UNSUPPORTED) {
        pycairn_raise(st, &err);
    } else if (!data) {
        out = Py_NewRef(Py_None);
    } else if (!cow) {
        out = make_buffer(self, (void *)data, (size_t)ti.raw_size, 1);
    } else if (!self->cow || ti.raw_size != ti.stored_size || ti.offset > self->cow_len ||
               ti.raw_size > self->cow_len - ti.offset) {
        out = Py_NewRef(Py_None);
    } else {
        /* The library's bytes and the private mapping's must be the same
         * bytes of the same file: check the ends (cheap; a mismatch means
         * the offset is not a plain file offset, so no view). */
        const unsigned char *p = (const unsigned char *)self->cow + ti.offset;
        size_t n = ti.raw_size < 64 ? (size_t)ti.raw_size : 64;
        if (n && (memcmp(p, data, n) != 0 ||
                  memcmp(p + ti.raw_size - n, (const char *)data + ti.raw_size - n, n) != 0))
            out = Py_NewRef(Py_None);
        else
            out = make_buffer(self, (void *)p, (size_t)ti.raw_size, 0);
    }
    END(self);
    return out;
}

static PyObject *file_view(pycairn_file *self, PyObject *arg)
{
    return tensor_view(self, arg, 0);
}

/* Writes to a copy-on-write view stay in this process, never reach the file. */
static PyObject *file_cow_view(pycairn_file *self, PyObject *arg)
{
    return tensor_view(self, arg, 1);
}

/* read_into(index, out, dtype, first=0, count=-1, verify=False, offset=None,
 * extent=None): copies (elements first..first+count of, or with offset and
 * extent the box of: cairn_tensor_read_box, global coordinates) a tensor
 * into the writable buffer `out` as `dtype`, with the GIL released. */
static PyObject *file_read_into(pycairn_file *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"index", "out", "dtype", "first", "count", "verify", "offset",
                             "extent", NULL};
    unsigned long long index, first = 0;
    long long count = -1;
    PyObject *out, *dtype_obj, *off_obj = Py_None, *ext_obj = Py_None;
    int verify = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KOO|KLpOO", kwlist, &index, &out, &dtype_obj,
                                     &first, &count, &verify, &off_obj, &ext_obj))
        return NULL;
    cairn_dtype dtype = pycairn_parse_dtype(dtype_obj);
    if (dtype == CAIRN_DTYPE_INVALID)
        return NULL;
    uint64_t off[CAIRN_MAX_RANK], ext[CAIRN_MAX_RANK];
    int box = off_obj != Py_None || ext_obj != Py_None, no = 0;
    if (box) {
        no = pycairn_parse_shape(off_obj, off);
        int ne = no < 0 ? -1 : pycairn_parse_shape(ext_obj, ext);
        if (no < 0 || ne < 0)
            return NULL;
        if (no != ne) {
            PyErr_Format(PyExc_ValueError, "offset has %d entries, extent %d", no, ne);
            return NULL;
        }
    }
    Py_buffer view;
    if (PyObject_GetBuffer(out, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const cairn_file *f = pycairn_file_begin((PyObject *)self);
    if (!f) {
        PyBuffer_Release(&view);
        return NULL;
    }
    cairn_error err;
    cairn_status st;
    unsigned flags = verify ? CAIRN_READ_VERIFY : 0;
    Py_BEGIN_ALLOW_THREADS
    if (box)
        st = cairn_tensor_read_box(f, index, no ? off : NULL, no ? ext : NULL, dtype, view.buf,
                                   (size_t)view.len, flags, &err);
    else if (count < 0 && first == 0)
        st = cairn_tensor_read(f, index, dtype, view.buf, (size_t)view.len, flags, &err);
    else
        st = cairn_tensor_read_range(f, index, first, count < 0 ? 0 : (uint64_t)count, dtype,
                                     view.buf, (size_t)view.len, flags, &err);
    Py_END_ALLOW_THREADS
    END(self);
    PyBuffer_Release(&view);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

/* read_many(out, plan): reads several whole tensors into one writable
 * buffer, with the GIL released once. plan is a C-contiguous buffer of
 * uint64 quadruples (index, dtype, offset in out, bytes); every slot must
 * lie inside out (checked before anything is read). */
static PyObject *file_read_many(pycairn_file *self, PyObject *args)
{
    PyObject *out, *plan_obj;
    if (!PyArg_ParseTuple(args, "OO", &out, &plan_obj))
        return NULL;
    Py_buffer view, plan;
    if (PyObject_GetBuffer(plan_obj, &plan, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(out, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&plan);
        return NULL;
    }
    size_t n = (size_t)plan.len / (4 * sizeof(uint64_t));
    const uint64_t *q = plan.buf;
    int bad = (size_t)plan.len % (4 * sizeof(uint64_t)) != 0 || ((uintptr_t)q & 7) != 0;
    for (size_t i = 0; !bad && i < n; i++) {
        uint64_t at = q[4 * i + 2], len = q[4 * i + 3];
        bad = at > (uint64_t)view.len || len > (uint64_t)view.len - at ||
              q[4 * i + 1] > INT32_MAX;
    }
    const cairn_file *f = bad ? NULL : pycairn_file_begin((PyObject *)self);
    if (!f) {
        if (bad)
            PyErr_SetString(PyExc_ValueError, "read_many: the plan is not (index, dtype, offset, "
                            "bytes) uint64 quadruples inside the output buffer");
        PyBuffer_Release(&view);
        PyBuffer_Release(&plan);
        return NULL;
    }
    cairn_error err;
    cairn_status st = CAIRN_OK;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; st == CAIRN_OK && i < n; i++)
        st = cairn_tensor_read(f, q[4 * i], (cairn_dtype)q[4 * i + 1],
                               (char *)view.buf + q[4 * i + 2], (size_t)q[4 * i + 3], 0, &err);
    Py_END_ALLOW_THREADS
    END(self);
    PyBuffer_Release(&view);
    PyBuffer_Release(&plan);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *file_metadata(pycairn_file *self, PyObject *unused)
{
    BEGIN(self, f);
    cairn_value *tree = NULL;
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_file_read_metadata(f, &tree, &err);
    Py_END_ALLOW_THREADS
    END(self);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    PyObject *out = pycairn_value_to_py(tree);
    cairn_value_free(tree);
    return out;
}

static PyObject *file_verify(pycairn_file *self, PyObject *args)
{
    long long index = -1;
    if (!PyArg_ParseTuple(args, "|L", &index))
        return NULL;
    BEGIN(self, f);
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = index < 0 ? cairn_file_verify(f, &err) : cairn_tensor_verify(f, (uint64_t)index, &err);
    Py_END_ALLOW_THREADS
    END(self);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *file_verify_signature(pycairn_file *self, PyObject *arg)
{
    Py_buffer key;
    if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0)
        return NULL;
    if (key.len != CAIRN_PUBLIC_KEY_BYTES) {
        PyBuffer_Release(&key);
        PyErr_Format(PyExc_ValueError, "public key must be %d bytes", CAIRN_PUBLIC_KEY_BYTES);
        return NULL;
    }
    const cairn_file *f = pycairn_file_begin((PyObject *)self);
    if (!f) {
        PyBuffer_Release(&key);
        return NULL;
    }
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_file_verify_signature(f, key.buf, &err);
    Py_END_ALLOW_THREADS
    END(self);
    PyBuffer_Release(&key);
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyMethodDef file_methods[] = {
    {"close", (PyCFunction)file_close, METH_NOARGS,
     "close(): no more reads; the handle is freed when the last view is gone."},
    {"count", (PyCFunction)file_count, METH_NOARGS, "count() -> number of tensors."},
    {"info", (PyCFunction)file_info, METH_NOARGS, "info() -> dict describing the file."},
    {"tensor_info", (PyCFunction)file_tensor_info, METH_O, "tensor_info(index) -> tuple."},
    {"infos", (PyCFunction)file_infos, METH_NOARGS,
     "infos() -> the tensor_info tuple of every tensor, in file order."},
    {"names", (PyCFunction)file_names, METH_NOARGS, "names() -> tensor names, in file order."},
    {"find", (PyCFunction)file_find, METH_O, "find(name) -> (index, info tuple)."},
    {"view", (PyCFunction)file_view, METH_O, "view(index) -> read-only TensorBuffer or None."},
    {"cow_view", (PyCFunction)file_cow_view, METH_O,
     "cow_view(index) -> writable copy-on-write TensorBuffer or None."},
    {"read_into", (PyCFunction)(void (*)(void))file_read_into, METH_VARARGS | METH_KEYWORDS,
     "read_into(index, out, dtype, first=0, count=-1, verify=False, offset=None, "
     "extent=None)."},
    {"read_many", (PyCFunction)file_read_many, METH_VARARGS,
     "read_many(out, plan): whole tensors into one buffer; plan: uint64 (index, dtype, "
     "offset, bytes) rows."},
    {"metadata", (PyCFunction)file_metadata, METH_NOARGS, "metadata() -> the tree."},
    {"verify", (PyCFunction)file_verify, METH_VARARGS,
     "verify(index=-1): checks one tensor's checksum, or (-1) every byte of the file."},
    {"verify_signature", (PyCFunction)file_verify_signature, METH_O,
     "verify_signature(public_key): checks the file's ed25519 signature."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef file_getset[] = {
    {"closed", (getter)file_get_closed, NULL, "close() was called.", NULL},
    {"released", (getter)file_get_released, NULL, "The C handle and mapping are freed.", NULL},
    {"exports", (getter)file_get_exports, NULL, "Live TensorBuffers using this file.", NULL},
    {"path", (getter)file_get_path, NULL, "The path opened, or None for memory.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pycairn_FileType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cairn._cairn.File",
    .tp_basicsize = sizeof(pycairn_file),
    .tp_dealloc = (destructor)file_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "File(path=None, buffer=None, *, flags=0, format=0, max_inflate=0, threads=0, "
              "public_key=None): an open cairn_file (use cairn.open).",
    .tp_methods = file_methods,
    .tp_getset = file_getset,
    .tp_init = (initproc)file_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------ TensorBuffer */

static void tb_dealloc(tensor_buffer *self)
{
    pycairn_file *file = self->file;
    file->exports--;
    file_release(file);
    Py_DECREF(file);
    PyObject_Free(self);
}

static int tb_getbuffer(tensor_buffer *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->ptr, self->len, self->readonly, flags);
}

static PyBufferProcs tb_as_buffer = {
    .bf_getbuffer = (getbufferproc)tb_getbuffer,
};

static PyObject *tb_repr(tensor_buffer *self)
{
    return PyUnicode_FromFormat("<cairn TensorBuffer %zd bytes %s>", self->len,
                                self->readonly ? "read-only" : "copy-on-write");
}

static PyObject *tb_get_address(tensor_buffer *self, void *unused)
{
    return PyLong_FromVoidPtr(self->ptr);
}

static PyGetSetDef tb_getset[] = {
    {"address", (getter)tb_get_address, NULL, "The address of the first byte.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pycairn_TensorBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cairn._cairn.TensorBuffer",
    .tp_basicsize = sizeof(tensor_buffer),
    .tp_dealloc = (destructor)tb_dealloc,
    .tp_repr = (reprfunc)tb_repr,
    .tp_as_buffer = &tb_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The bytes of one tensor, exported through the buffer protocol; keeps its file "
              "mapped while it lives.",
    .tp_getset = tb_getset,
};
