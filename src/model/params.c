/* params.c -- parameter sets: a model's own buffers registered by name,
 * saved as an archive and loaded back in place with strict checks, renames
 * and schema migrations. */
#include "archive/archive.h"
#include "common/nameset.h"
#include "common/opts.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct param {
    char *name;
    size_t name_len;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t bytes;
    void *data; /* borrowed from the caller */
} param;

struct cairn_params {
    param *items;
    size_t count, cap;
    cairn__nameset names;
};

typedef struct problem {
    cairn_mismatch_kind kind;
    char *name, *file_name, *text;
} problem;

struct cairn_load_report {
    problem *items;
    size_t count, cap;
    size_t loaded;
    int64_t schema_version;
};

static const char *param_name(const void *ctx, uint32_t i, size_t *len)
{
    const param *p = &((const cairn_params *)ctx)->items[i];
    *len = p->name_len;
    return p->name;
}

cairn_params *cairn_params_new(void) { return calloc(1, sizeof(cairn_params)); }

void cairn_params_free(cairn_params *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->count; i++)
        free(p->items[i].name);
    free(p->items);
    cairn__nameset_free(&p->names);
    free(p);
}

size_t cairn_params_count(const cairn_params *p) { return p ? p->count : 0; }

cairn_status cairn_params_add(cairn_params *p, const char *name, cairn_dtype dtype, uint32_t rank,
                              const uint64_t *dims, void *data, cairn_error *err)
{
    if (!p || !name)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_params_add: NULL argument");
    size_t len = strlen(name);
    CAIRN_TRY(cairn__name_check(name, len, "parameter", err));
    if (cairn_dtype_size(dtype) == 0)
        return cairn__fail(err, CAIRN_E_ARG, "parameter '%s': invalid dtype %d", name, (int)dtype);
    if (rank > CAIRN_MAX_RANK || (rank && !dims))
        return cairn__fail(err, CAIRN_E_ARG, "parameter '%s': rank %u needs %s", name, rank,
                           rank > CAIRN_MAX_RANK ? "to be at most 8" : "dims");
    uint64_t bytes = cairn_dtype_size(dtype);
    for (uint32_t d = 0; d < rank; d++)
        if (cairn__mul_overflow(bytes, dims[d], &bytes) || bytes > SIZE_MAX)
            return cairn__fail(err, CAIRN_E_LIMIT, "parameter '%s': size overflows", name);
    if (!data && bytes)
        return cairn__fail(err, CAIRN_E_ARG, "parameter '%s': NULL data", name);
    if (cairn__nameset_find(&p->names, name, len, param_name, p) >= 0)
        return cairn__fail(err, CAIRN_E_EXISTS, "parameter '%s' is already registered", name);
    if (!CAIRN__GROW(p->items, p->cap, p->count, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "parameter '%s': out of memory", name);
    param *it = &p->items[p->count];
    memset(it, 0, sizeof *it);
    if (!(it->name = strdup(name)))
        return cairn__fail(err, CAIRN_E_NOMEM, "parameter '%s': out of memory", name);
    it->name_len = len;
    it->dtype = dtype;
    it->rank = rank;
    for (uint32_t d = 0; d < rank; d++)
        it->dims[d] = dims[d];
    it->bytes = bytes;
    it->data = data;
    cairn_status st = cairn__nameset_insert(&p->names, (uint32_t)p->count, param_name, p, err);
    if (st != CAIRN_OK) {
        free(it->name);
        return st;
    }
    p->count++;
    return CAIRN_OK;
}

cairn_status cairn_params_at(const cairn_params *p, size_t i, const char **name, cairn_dtype *dtype,
                             uint32_t *rank, const uint64_t **dims, void **data, cairn_error *err)
{
    if (!p || i >= p->count)
        return cairn__fail(err, p ? CAIRN_E_NOT_FOUND : CAIRN_E_ARG,
                           "parameter index %zu out of range (%zu registered)", i, p ? p->count : 0);
    const param *it = &p->items[i];
    if (name)
        *name = it->name;
    if (dtype)
        *dtype = it->dtype;
    if (rank)
        *rank = it->rank;
    if (dims)
        *dims = it->dims;
    if (data)
        *data = it->data;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------ save */

cairn_status cairn_params_write(const cairn_params *p, cairn_writer *w, const char *prefix,
                                cairn_error *err)
{
    if (!p || !w)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_params_write: NULL argument");
    size_t plen = prefix ? strlen(prefix) : 0;
    char *name = NULL;
    cairn_status st = CAIRN_OK;
    for (size_t i = 0; i < p->count && st == CAIRN_OK; i++) {
        const param *it = &p->items[i];
        char *grown = realloc(name, plen + it->name_len + 1);
        if (!grown) {
            st = cairn__fail(err, CAIRN_E_NOMEM, "parameter '%s': out of memory", it->name);
            break;
        }
        name = grown;
        if (plen)
            memcpy(name, prefix, plen);
        memcpy(name + plen, it->name, it->name_len + 1);
        st = cairn_writer_add(w, name, it->dtype, it->rank, it->dims, it->data, err);
    }
    free(name);
    return st;
}

/* Announces every parameter to a fresh writer (cairn_writer_declare). */
static cairn_status declare_all(const cairn_params *p, cairn_writer *w, cairn_error *err)
{
    cairn_tensor_decl *decls = calloc(p->count ? p->count : 1, sizeof *decls);
    if (!decls)
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory declaring %zu parameters",
                           p->count);
    for (size_t i = 0; i < p->count; i++)
        decls[i] = (cairn_tensor_decl){p->items[i].name, p->items[i].dtype, p->items[i].rank,
                                       p->items[i].dims};
    cairn_status st = cairn_writer_declare(w, decls, p->count, err);
    free(decls);
    return st;
}

/* A whole save: the metadata, then every parameter declared before it is
 * added, so the header-first formats (safetensors, GGUF) write each payload
 * once, in place, instead of spooling it. */
static cairn_status write_all(const cairn_params *p, cairn_writer *w, const cairn_value *meta,
                              cairn_error *err)
{
    if (meta)
        CAIRN_TRY(cairn_writer_set_metadata(w, meta, err));
    CAIRN_TRY(declare_all(p, w, err));
    return cairn_params_write(p, w, NULL, err);
}

cairn_status cairn_params_save(const cairn_params *p, const char *path, const cairn_value *meta,
                               cairn_error *err)
{
    cairn_writer *w;
    if (!p)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_params_save: NULL parameter set");
    CAIRN_TRY(cairn_writer_open_path(path, NULL, &w, err));
    cairn_status st = write_all(p, w, meta, err);
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return cairn_writer_commit(w, err);
}

cairn_status cairn_params_save_memory(const cairn_params *p, const cairn_value *meta, void **out,
                                      size_t *out_size, cairn_error *err)
{
    cairn_writer *w;
    if (out)
        *out = NULL;
    if (out_size)
        *out_size = 0;
    if (!p)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_params_save_memory: NULL parameter set");
    CAIRN_TRY(cairn_writer_open_memory(NULL, &w, err));
    cairn_status st = write_all(p, w, meta, err);
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return cairn_writer_commit_memory(w, out, out_size, err);
}

/* ---------------------------------------------------------------- report */

void cairn_load_report_free(cairn_load_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].name);
        free(r->items[i].file_name);
        free(r->items[i].text);
    }
    free(r->items);
    free(r);
}

size_t cairn_load_report_loaded(const cairn_load_report *r) { return r ? r->loaded : 0; }
size_t cairn_load_report_count(const cairn_load_report *r) { return r ? r->count : 0; }
int64_t cairn_load_report_schema_version(const cairn_load_report *r)
{
    return r ? r->schema_version : 0;
}

cairn_status cairn_load_report_at(const cairn_load_report *r, size_t i, cairn_mismatch_kind *kind,
                                  const char **name, const char **file_name, const char **text,
                                  cairn_error *err)
{
    if (!r || i >= r->count)
        return cairn__fail(err, r ? CAIRN_E_NOT_FOUND : CAIRN_E_ARG,
                           "report entry %zu out of range", i);
    const problem *pb = &r->items[i];
    if (kind)
        *kind = pb->kind;
    if (name)
        *name = pb->name;
    if (file_name)
        *file_name = pb->file_name;
    if (text)
        *text = pb->text;
    return CAIRN_OK;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void shape_text(char *buf, size_t size, uint32_t rank, const uint64_t *dims)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < rank && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, "%s%llu", d ? ", " : "",
                              (unsigned long long)dims[d]);
    if (o < size)
        snprintf(buf + o, size - o, "]");
}

static cairn_status add_problem(cairn_load_report *r, cairn_mismatch_kind kind, const char *name,
                                const char *file_name, const char *text, cairn_error *err)
{
    if (!CAIRN__GROW(r->items, r->cap, r->count, 8))
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory for the load report");
    problem *pb = &r->items[r->count];
    pb->kind = kind;
    pb->name = dup_or_null(name);
    pb->file_name = dup_or_null(file_name);
    pb->text = strdup(text);
    if ((name && !pb->name) || (file_name && !pb->file_name) || !pb->text) {
        free(pb->name);
        free(pb->file_name);
        free(pb->text);
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory for the load report");
    }
    r->count++;
    return CAIRN_OK;
}

static int problem_cmp(const void *a, const void *b)
{
    const problem *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    const char *nx = x->name ? x->name : x->file_name, *ny = y->name ? y->name : y->file_name;
    return strcmp(nx, ny);
}

/* ------------------------------------------------------------------ load */

/* One file tensor on its way to a registered buffer. */
typedef struct match {
    uint64_t file_index;
    int64_t param; /* index into the set, or -1 */
    int ok;        /* shape and dtype agree (or converting is allowed) */
} match;

static int starts_with(const char *s, const char *prefix)
{
    return prefix && *prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Applies opts to a file tensor name. Returns a new heap string, or NULL
 * with *skip set when the tensor does not take part (outside `prefix`, or
 * dropped by the migration hook). */
static cairn_status map_name(const char *file_name, const cairn_load_opts *o, int64_t schema,
                             char **out, int *skip, cairn_error *err)
{
    char buf[CAIRN_NAME_MAX + 1];
    const char *name = file_name;
    *out = NULL;
    *skip = 0;
    if (o->prefix && *o->prefix) {
        if (!starts_with(name, o->prefix)) {
            *skip = 1;
            return CAIRN_OK;
        }
        name += strlen(o->prefix);
    }
    if (starts_with(name, o->strip_prefix))
        name += strlen(o->strip_prefix);
    for (size_t i = 0; i < o->rename_count; i++) {
        if (o->rename_from[i] && o->rename_to[i] && strcmp(name, o->rename_from[i]) == 0) {
            name = o->rename_to[i];
            break;
        }
    }
    if (o->migrate) {
        buf[0] = '\0';
        name = o->migrate(o->migrate_ctx, schema, name, buf, sizeof buf);
        if (!name) {
            *skip = 1;
            return CAIRN_OK;
        }
    }
    size_t add = o->add_prefix ? strlen(o->add_prefix) : 0, len = strlen(name);
    char *s = malloc(add + len + 1);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory mapping tensor names");
    if (add)
        memcpy(s, o->add_prefix, add);
    memcpy(s + add, name, len + 1);
    *out = s;
    return CAIRN_OK;
}

/* Follows a dotted path of map keys to an integer; 0 when absent. */
static cairn_status read_schema(const cairn_file *f, const char *key, int64_t *out,
                                cairn_error *err)
{
    *out = 0;
    cairn_value *tree;
    CAIRN_TRY(cairn_file_read_metadata(f, &tree, err));
    char *path = strdup(key);
    const cairn_value *v = tree;
    for (char *save = NULL, *part = path ? strtok_r(path, ".", &save) : NULL; part && v;
         part = strtok_r(NULL, ".", &save))
        v = cairn_value_get(v, part);
    if (v && v != tree)
        cairn_value_get_int(v, out);
    free(path);
    cairn_value_free(tree);
    return CAIRN_OK;
}

static int same_shape(const param *p, const cairn_tensor_info *t)
{
    if (p->rank != t->rank)
        return 0;
    for (uint32_t d = 0; d < p->rank; d++)
        if (p->dims[d] != t->dims[d])
            return 0;
    return 1;
}

/* Compares one matched pair and records a problem when it does not fit. */
static cairn_status check_pair(const cairn_file *f, const param *p, match *m, unsigned flags,
                               cairn_load_report *r, cairn_error *err)
{
    cairn_tensor_info t;
    CAIRN_TRY(cairn_tensor_info_at(f, m->file_index, &t, err));
    char text[600], a[200], b[200];
    if (!same_shape(p, &t)) {
        shape_text(a, sizeof a, t.rank, t.dims);
        shape_text(b, sizeof b, p->rank, p->dims);
        snprintf(text, sizeof text, "shape of '%s': file has %s, model has %s", p->name, a, b);
        return add_problem(r, CAIRN_MISMATCH_SHAPE, p->name, t.name, text, err);
    }
    if (t.dtype != p->dtype &&
        !((flags & CAIRN_LOAD_CONVERT) && cairn_dtype_can_convert(t.dtype, p->dtype))) {
        snprintf(text, sizeof text, "dtype of '%s': file has %s, model has %s%s", p->name,
                 cairn_dtype_name(t.dtype), cairn_dtype_name(p->dtype),
                 cairn_dtype_can_convert(t.dtype, p->dtype) ? " (allow with CAIRN_LOAD_CONVERT)"
                                                            : " (no lossless conversion)");
        return add_problem(r, CAIRN_MISMATCH_DTYPE, p->name, t.name, text, err);
    }
    m->ok = 1;
    return CAIRN_OK;
}

/* Matches every file tensor to a registered buffer and fills the report. */
static cairn_status plan_load(cairn_params *p, const cairn_file *f, const cairn_load_opts *o,
                              match *m, uint64_t *n_match, unsigned char *used,
                              cairn_load_report *r, cairn_error *err)
{
    uint64_t n = cairn_file_count(f);
    *n_match = 0;
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info t;
        char *name;
        int skip;
        CAIRN_TRY(cairn_tensor_info_at(f, i, &t, err));
        CAIRN_TRY(map_name(t.name, o, r->schema_version, &name, &skip, err));
        if (skip)
            continue;
        int64_t pi = cairn__nameset_find(&p->names, name, strlen(name), param_name, p);
        cairn_status st = CAIRN_OK;
        if (pi < 0) {
            char text[600];
            snprintf(text, sizeof text, "unexpected tensor '%s' in %s (mapped to '%s')", t.name,
                     cairn_file_path(f), name);
            st = add_problem(r, CAIRN_MISMATCH_UNEXPECTED, NULL, t.name, text, err);
        } else if (used[pi]) {
            st = cairn__fail(err, CAIRN_E_EXISTS, "%s: two tensors map to parameter '%s' (the "
                             "second is '%s')", cairn_file_path(f), name, t.name);
        } else {
            used[pi] = 1;
            m[*n_match] = (match){i, pi, 0};
            st = check_pair(f, &p->items[pi], &m[*n_match], o->flags, r, err);
            (*n_match)++;
        }
        free(name);
        CAIRN_TRY(st);
    }
    for (size_t k = 0; k < p->count; k++) {
        if (used[k])
            continue;
        char text[600];
        snprintf(text, sizeof text, "missing tensor '%s' (not in %s)", p->items[k].name,
                 cairn_file_path(f));
        CAIRN_TRY(add_problem(r, CAIRN_MISMATCH_MISSING, p->items[k].name, NULL, text, err));
    }
    if (r->count > 1)
        qsort(r->items, r->count, sizeof *r->items, problem_cmp);
    return CAIRN_OK;
}

/* "3 problems loading model.cairn: missing 'b'; unexpected 'c'; ..." */
static cairn_status mismatch_error(const cairn_file *f, const cairn_load_report *r,
                                   cairn_error *err)
{
    char msg[CAIRN_ERROR_MESSAGE_MAX];
    size_t o = (size_t)snprintf(msg, sizeof msg, "%s: %zu problem%s:", cairn_file_path(f),
                                r->count, r->count == 1 ? "" : "s");
    for (size_t i = 0; i < r->count && o < sizeof msg; i++)
        o += (size_t)snprintf(msg + o, sizeof msg - o, "%s %s", i ? ";" : "", r->items[i].text);
    return cairn__fail(err, CAIRN_E_MISMATCH, "%s", msg);
}

static cairn_status execute_load(cairn_params *p, const cairn_file *f, const match *m,
                                 uint64_t n_match, unsigned flags, cairn_load_report *r,
                                 cairn_error *err)
{
    if (flags & CAIRN_LOAD_VERIFY)
        for (uint64_t k = 0; k < n_match; k++)
            if (m[k].ok)
                CAIRN_TRY(cairn_tensor_verify(f, m[k].file_index, err));
    for (uint64_t k = 0; k < n_match; k++) {
        if (!m[k].ok)
            continue;
        param *it = &p->items[m[k].param];
        CAIRN_TRY(cairn_tensor_read(f, m[k].file_index, it->dtype, it->data, (size_t)it->bytes, 0,
                                    err));
        r->loaded++;
    }
    return CAIRN_OK;
}

cairn_status cairn_params_load(cairn_params *p, const cairn_file *f, const cairn_load_opts *opts,
                               cairn_load_report **report, cairn_error *err)
{
    if (report)
        *report = NULL;
    if (!p || !f)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_params_load: NULL argument");
    cairn_load_opts o = {.struct_size = sizeof o};
    CAIRN_TRY(CAIRN__OPTS_COPY(&o, opts, cairn_load_opts, flags, err));
    if (o.rename_count && (!o.rename_from || !o.rename_to))
        return cairn__fail(err, CAIRN_E_ARG, "cairn_load_opts: rename_count without the maps");
    cairn_load_report *r = calloc(1, sizeof *r);
    uint64_t n = cairn_file_count(f), n_match = 0;
    match *m = malloc((n ? n : 1) * sizeof *m);
    unsigned char *used = calloc(p->count ? p->count : 1, 1);
    cairn_status st = CAIRN_OK;
    if (!r || !m || !used)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", cairn_file_path(f));
    if (st == CAIRN_OK)
        st = read_schema(f, o.schema_key ? o.schema_key : "type_tag.schema_version",
                         &r->schema_version, err);
    if (st == CAIRN_OK)
        st = plan_load(p, f, &o, m, &n_match, used, r, err);
    if (st == CAIRN_OK && (o.flags & CAIRN_LOAD_STRICT) && r->count)
        st = mismatch_error(f, r, err);
    if (st == CAIRN_OK)
        st = execute_load(p, f, m, n_match, o.flags, r, err);
    free(m);
    free(used);
    if (report)
        *report = r;
    else
        cairn_load_report_free(r);
    return st;
}
