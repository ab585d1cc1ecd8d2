/* ckpt.c -- cairn._cairn.Ckpt: the C checkpoint manager (docs/CHECKPOINTS.md). */
#include "pycairn.h"

typedef struct ckpt {
    PyObject_HEAD
    cairn_ckpt *m;
    int busy;
} ckpt;

static int ckpt_init(ckpt *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dirname", "fn_prefix", "monitor", "flags", "every_epochs",
                             "every_steps", "every_seconds", "keep_best", "keep_last",
                             "keep_every", NULL};
    PyObject *dir;
    const char *prefix = NULL, *monitor = NULL;
    unsigned flags = 0, every_epochs = 0, keep_best = 0, keep_last = 0, keep_every = 0;
    unsigned long long every_steps = 0;
    double every_seconds = 0;
    if (self->m) {
        PyErr_SetString(PyExc_RuntimeError, "Ckpt.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|$zzIIKdIII", kwlist, PyUnicode_FSConverter,
                                     &dir, &prefix, &monitor, &flags, &every_epochs, &every_steps,
                                     &every_seconds, &keep_best, &keep_last, &keep_every))
        return -1;
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = PyBytes_AS_STRING(dir),
                         .fn_prefix = prefix, .monitor = monitor, .flags = flags,
                         .every_epochs = every_epochs, .every_steps = every_steps,
                         .every_seconds = every_seconds, .keep_best = keep_best,
                         .keep_last = keep_last, .keep_every = keep_every};
    cairn_error err;
    cairn_status st;
    cairn_ckpt *m = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_ckpt_open(&o, &m, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(dir);
    if (st != CAIRN_OK) {
        pycairn_raise(st, &err);
        return -1;
    }
    self->m = m;
    return 0;
}

static void ckpt_dealloc(ckpt *self)
{
    if (self->m) {
        cairn_ckpt *m = self->m;
        self->m = NULL;
        Py_BEGIN_ALLOW_THREADS
        cairn_ckpt_close(m, NULL);
        Py_END_ALLOW_THREADS
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static cairn_ckpt *take(ckpt *self)
{
    if (!self->m) {
        PyErr_SetString(PyExc_ValueError, "the checkpoint manager is closed");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the checkpoint manager is in use by another thread");
        return NULL;
    }
    self->busy = 1;
    return self->m;
}

static PyObject *ckpt_step(ckpt *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"epoch", "step", "metrics", "parts", "force", NULL};
    unsigned long long epoch, step;
    PyObject *metrics, *parts_obj;
    int force = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKOO|p", kwlist, &epoch, &step, &metrics,
                                     &parts_obj, &force))
        return NULL;
    cairn_value *mv;
    if (pycairn_map_from_py(metrics, &mv) < 0)
        return NULL;
    pycairn_parts parts;
    if (pycairn_parts_from_py(parts_obj, 0, &parts) < 0) {
        cairn_value_free(mv);
        return NULL;
    }
    cairn_ckpt *m = take(self);
    PyObject *out = NULL;
    if (m) {
        cairn_error err;
        cairn_status st;
        int saved = 0;
        Py_BEGIN_ALLOW_THREADS
        st = cairn_ckpt_step(m, epoch, step, mv, &parts.parts, force ? CAIRN_STEP_FORCE : 0,
                             &saved, &err);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        out = st == CAIRN_OK ? PyLong_FromLong(saved) : pycairn_raise(st, &err);
    }
    pycairn_parts_free(&parts);
    cairn_value_free(mv);
    return out;
}

/* Waits for a background save; with `close`, then frees the manager. */
static PyObject *finish(ckpt *self, int close)
{
    if (close && !self->m)
        Py_RETURN_NONE;
    cairn_ckpt *m = take(self);
    if (!m)
        return NULL;
    if (close)
        self->m = NULL;
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = close ? cairn_ckpt_close(m, &err) : cairn_ckpt_wait(m, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    Py_RETURN_NONE;
}

static PyObject *ckpt_wait(ckpt *self, PyObject *unused)
{
    return finish(self, 0);
}

static PyObject *ckpt_close(ckpt *self, PyObject *unused)
{
    return finish(self, 1);
}

static PyObject *ckpt_count(ckpt *self, PyObject *unused)
{
    if (!self->m)
        return PyLong_FromLong(0);
    return PyLong_FromSize_t(cairn_ckpt_count(self->m));
}

static PyObject *ckpt_info(ckpt *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    cairn_ckpt *m = take(self);
    if (!m)
        return NULL;
    cairn_ckpt_info ci;
    cairn_error err;
    cairn_status st = cairn_ckpt_info_at(m, (size_t)i, &ci, &err);
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    PyObject *metric = ci.has_metric ? PyFloat_FromDouble(ci.metric) : Py_NewRef(Py_None);
    if (!metric)
        return NULL;
    return Py_BuildValue("{s:n,s:K,s:K,s:K,s:d,s:N,s:K,s:O,s:s,s:s}", "index", i, "seq",
                         (unsigned long long)ci.seq, "epoch", (unsigned long long)ci.epoch,
                         "step", (unsigned long long)ci.step, "time", ci.time, "metric", metric,
                         "bytes", (unsigned long long)ci.bytes, "valid",
                         ci.valid ? Py_True : Py_False, "path", ci.path, "reasons",
                         ci.reasons ? ci.reasons : "");
}

static PyObject *pick(ckpt *self, int best)
{
    cairn_ckpt *m = take(self);
    if (!m)
        return NULL;
    size_t index;
    cairn_error err;
    cairn_status st = best ? cairn_ckpt_best(m, &index, &err) : cairn_ckpt_latest(m, &index, &err);
    self->busy = 0;
    if (st == CAIRN_E_NOT_FOUND)
        Py_RETURN_NONE;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    return PyLong_FromSize_t(index);
}

static PyObject *ckpt_best(ckpt *self, PyObject *unused)
{
    return pick(self, 1);
}

static PyObject *ckpt_latest(ckpt *self, PyObject *unused)
{
    return pick(self, 0);
}

static PyObject *meta_or_none(cairn_value *meta)
{
    PyObject *out = meta ? pycairn_value_to_py(meta) : Py_NewRef(Py_None);
    cairn_value_free(meta);
    return out;
}

/* resume() -> dict(index, next_epoch, step, skipped, why, metadata): finds
 * the newest checkpoint that verifies (falling back past damaged ones). */
static PyObject *ckpt_resume(ckpt *self, PyObject *unused)
{
    cairn_ckpt *m = take(self);
    if (!m)
        return NULL;
    cairn_model_parts parts = {.struct_size = sizeof parts};
    cairn_ckpt_resume_info ri;
    cairn_value *meta = NULL;
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_ckpt_resume(m, &parts, NULL, &meta, &ri, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    PyObject *md = meta_or_none(meta);
    if (!md)
        return NULL;
    return Py_BuildValue("{s:n,s:K,s:K,s:n,s:s,s:N}", "index", (Py_ssize_t)ri.index,
                         "next_epoch", (unsigned long long)ri.next_epoch, "step",
                         (unsigned long long)ri.step, "skipped", (Py_ssize_t)ri.skipped, "why",
                         ri.why, "metadata", md);
}

/* load(index) -> metadata: verifies checkpoint `index` completely. */
static PyObject *ckpt_load(ckpt *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    cairn_ckpt *m = take(self);
    if (!m)
        return NULL;
    cairn_model_parts parts = {.struct_size = sizeof parts};
    cairn_value *meta = NULL;
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_ckpt_load(m, (size_t)i, &parts, NULL, &meta, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    return meta_or_none(meta);
}

static PyObject *ckpt_prune(ckpt *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"keep_best", "keep_last", "keep_every", "dry_run", NULL};
    unsigned kb = 0, kl = 0, ke = 0;
    int dry = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|IIIp", kwlist, &kb, &kl, &ke, &dry))
        return NULL;
    cairn_ckpt *m = take(self);
    if (!m)
        return NULL;
    size_t removed = 0;
    cairn_error err;
    cairn_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cairn_ckpt_prune(m, kb, kl, ke, dry, &removed, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != CAIRN_OK)
        return pycairn_raise(st, &err);
    return PyLong_FromSize_t(removed);
}

static PyMethodDef ckpt_methods[] = {
    {"step", (PyCFunction)(void (*)(void))ckpt_step, METH_VARARGS | METH_KEYWORDS,
     "step(epoch, step, metrics, parts, force=False) -> 0 (not saved), 1 (saved), 2 (signal)."},
    {"wait", (PyCFunction)ckpt_wait, METH_NOARGS, "wait(): until no background save runs."},
    {"close", (PyCFunction)ckpt_close, METH_NOARGS, "close(): waits, then frees the manager."},
    {"count", (PyCFunction)ckpt_count, METH_NOARGS, "count() -> number of checkpoints listed."},
    {"info", (PyCFunction)ckpt_info, METH_O, "info(index) -> dict."},
    {"best", (PyCFunction)ckpt_best, METH_NOARGS, "best() -> index or None."},
    {"latest", (PyCFunction)ckpt_latest, METH_NOARGS, "latest() -> index or None."},
    {"resume", (PyCFunction)ckpt_resume, METH_NOARGS, "resume() -> dict."},
    {"load", (PyCFunction)ckpt_load, METH_O, "load(index) -> metadata (after verifying)."},
    {"prune", (PyCFunction)(void (*)(void))ckpt_prune, METH_VARARGS | METH_KEYWORDS,
     "prune(keep_best=0, keep_last=0, keep_every=0, dry_run=False) -> removed count."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pycairn_CkptType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cairn._cairn.Ckpt",
    .tp_basicsize = sizeof(ckpt),
    .tp_dealloc = (destructor)ckpt_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ckpt(dirname, *, fn_prefix=None, monitor=None, flags=0, every_epochs=0, "
              "every_steps=0, every_seconds=0.0, keep_best=0, keep_last=0, keep_every=0): a "
              "cairn_ckpt (use cairn.CheckpointManager).",
    .tp_methods = ckpt_methods,
    .tp_init = (initproc)ckpt_init,
    .tp_new = PyType_GenericNew,
};
