/* mxnet.c -- reads and writes MXNet's nd.save files (.params, docs/FORMAT.md
 * "MXNet .params"): list and dict forms, V1/V2/V3 array records, every dense
 * dtype; sparse arrays read as their component tensors. */
#include "format/format.h"
#include "common/nameset.h"

#include <stdio.h>
#include <stdlib.h>

#define MX_LIST_MAGIC UINT64_C(0x112)
#define MX_V1_MAGIC 0xF993FAC8u
#define MX_V2_MAGIC 0xF993FAC9u
#define MX_V3_MAGIC 0xF993FACAu
#define MX_HEADER 24         /* list magic, reserved, array count */
#define MX_MIN_RECORD 12     /* magic, stype, ndim: the smallest (none) record */
#define MX_MAX_SPARSE_AUX 2  /* csr: indptr, indices */

/* mshadow type_flag -> cairn dtype (index = flag). */
static const cairn_dtype mx_dtypes[] = {
    CAIRN_F32, CAIRN_F64, CAIRN_F16, CAIRN_U8,  CAIRN_I32, CAIRN_I8,  CAIRN_I64,
    CAIRN_BOOL, CAIRN_I16, CAIRN_U16, CAIRN_U32, CAIRN_U64, CAIRN_BF16,
};
#define MX_NTYPES (sizeof mx_dtypes / sizeof mx_dtypes[0])

static int mx_flag_for(cairn_dtype d)
{
    for (size_t i = 0; i < MX_NTYPES; i++)
        if (mx_dtypes[i] == d)
            return (int)i;
    return -1;
}

/* ================================================================ reading */

typedef struct mx_reader {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn__packed tensors;  /* file order; a sparse array gives 2 or 3 */
    uint64_t count;
    cairn__nameset index;
    uint32_t version;       /* highest record version seen (1, 2 or 3) */
    uint64_t payload;
} mx_reader;
CAIRN__TABLE_FIRST(mx_reader);

typedef struct mx_cur {
    const cairn_file *f;
    uint64_t pos;
    char ctx[96]; /* "array #3": what is being read, for messages */
    cairn_error *err;
} mx_cur;

/* cfail(c, status, fmt, ...): fails at c's position, in its context. */
#define cfail(c, st, ...) \
    cairn__fail_at((c)->err, (st), (c)->f->path, "mxnet", (c)->pos, (c)->ctx, __VA_ARGS__)

static cairn_status need(const mx_cur *c, uint64_t n, const char *field)
{
    if (n <= c->f->src.size - c->pos)
        return CAIRN_OK;
    return cfail(c, CAIRN_E_CORRUPT, "%s needs %llu bytes, but the file ends %llu bytes later",
                 field, (unsigned long long)n, (unsigned long long)(c->f->src.size - c->pos));
}

static cairn_status get(mx_cur *c, void *dst, size_t n, const char *field)
{
    CAIRN_TRY(need(c, n, field));
    CAIRN_TRY(cairn__file_read(c->f, c->pos, dst, n, c->err));
    c->pos += n;
    return CAIRN_OK;
}

static cairn_status get_u32(mx_cur *c, const char *field, uint32_t *out)
{
    uint8_t b[4];
    CAIRN_TRY(get(c, b, 4, field));
    *out = cairn__le32(b);
    return CAIRN_OK;
}

static cairn_status get_u64(mx_cur *c, const char *field, uint64_t *out)
{
    uint8_t b[8];
    CAIRN_TRY(get(c, b, 8, field));
    *out = cairn__le64(b);
    return CAIRN_OK;
}

/* A TShape: i32 ndim, ndim x i64 dims. *none is set for the "unknown shape"
 * encodings (ndim -1; in V1/V2 records, ndim 0 or any dim 0 or -1 also, as
 * MXNet's legacy shape semantics read them). */
typedef struct mx_shape {
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t count;
    int none;
} mx_shape;

static cairn_status get_shape(mx_cur *c, int np_semantics, const char *field, mx_shape *s)
{
    uint32_t nd;
    memset(s, 0, sizeof *s);
    CAIRN_TRY(get_u32(c, field, &nd));
    int32_t ndim = (int32_t)nd;
    if (ndim == -1 || (!np_semantics && ndim == 0)) {
        s->none = 1;
        return CAIRN_OK;
    }
    if (ndim < 0)
        return cfail(c, CAIRN_E_CORRUPT, "%s: negative rank %d", field, ndim);
    if (ndim > CAIRN_MAX_RANK)
        return cfail(c, CAIRN_E_UNSUPPORTED, "%s: rank %d is more than cairn's %d", field, ndim,
                     CAIRN_MAX_RANK);
    s->rank = (uint32_t)ndim;
    s->count = 1;
    for (uint32_t k = 0; k < s->rank; k++) {
        uint64_t d;
        CAIRN_TRY(get_u64(c, field, &d));
        if ((int64_t)d == -1 || (!np_semantics && d == 0))
            s->none = 1;
        else if ((int64_t)d < 0)
            return cfail(c, CAIRN_E_CORRUPT, "%s: dimension %u is negative (%lld)", field, k,
                         (long long)d);
        s->dims[k] = d;
        if (!s->none && cairn__mul_overflow(s->count, d, &s->count))
            return cfail(c, CAIRN_E_CORRUPT, "%s: the element count overflows 64 bits", field);
    }
    return CAIRN_OK;
}

static cairn_status get_dtype(mx_cur *c, const char *field, cairn_dtype *out)
{
    uint32_t flag;
    CAIRN_TRY(get_u32(c, field, &flag));
    if (flag >= MX_NTYPES)
        return cfail(c, CAIRN_E_UNSUPPORTED, "%s: unknown type_flag %d (MXNet defines 0..%d)",
                     field, (int32_t)flag, (int)MX_NTYPES - 1);
    *out = mx_dtypes[flag];
    return CAIRN_OK;
}

static cairn_status nomem(const mx_cur *c)
{
    return cfail(c, CAIRN_E_NOMEM, "out of memory for the tensor table");
}

/* The tensors of one NDArray record: 1 dense, 2 row_sparse, 3 csr. */
typedef struct mx_parts {
    cairn__tensor t[1 + MX_MAX_SPARSE_AUX];
    uint32_t n;
} mx_parts;

/* Adds a part whose `count` elements of `dtype` start at c->pos and skips
 * them; its name is set later. */
static cairn_status add_tensor(mx_cur *c, mx_parts *r, cairn_dtype dtype, const mx_shape *s,
                               const char *field)
{
    uint64_t size;
    if (cairn__mul_overflow(s->count, cairn_dtype_size(dtype), &size))
        return cfail(c, CAIRN_E_CORRUPT, "%s: the byte size overflows 64 bits", field);
    CAIRN_TRY(need(c, size, field));
    cairn__tensor *t = &r->t[r->n++];
    memset(t, 0, sizeof *t);
    t->info.dtype = dtype;
    t->info.rank = s->rank;
    memcpy(t->info.dims, s->dims, sizeof t->info.dims);
    t->info.count = s->count;
    t->info.raw_size = size;
    t->info.stored_size = size;
    t->info.offset = c->pos;
    t->info.alignment = 1; /* records are packed */
    t->info.zero_copy = c->f->src.base != NULL;
    c->pos += size;
    return CAIRN_OK;
}

/* The aux arrays of a sparse record: types and shapes come before the data,
 * their bytes after it. */
typedef struct mx_aux {
    cairn_dtype dtype;
    mx_shape shape;
} mx_aux;

static cairn_status check_index_type(mx_cur *c, cairn_dtype d, const char *field)
{
    if (d == CAIRN_I64 || d == CAIRN_I32 || d == CAIRN_U8 || d == CAIRN_I8 || d == CAIRN_U32 ||
        d == CAIRN_U64 || d == CAIRN_I16 || d == CAIRN_U16)
        return CAIRN_OK;
    return cfail(c, CAIRN_E_CORRUPT, "%s: index arrays must be integers, not %s", field,
                 cairn_dtype_name(d));
}

/* One NDArray record (the magic already read) into its parts. */
static cairn_status read_record(mx_cur *c, mx_parts *r, uint32_t magic)
{
    int np = magic == MX_V3_MAGIC;
    int32_t stype = 0;
    mx_shape storage = {0}, shape;
    if (magic != MX_V1_MAGIC) {
        uint32_t u;
        CAIRN_TRY(get_u32(c, "storage type", &u));
        stype = (int32_t)u;
        if (stype < -1 || stype > 2)
            return cfail(c, CAIRN_E_CORRUPT, "unknown storage type %d (0 dense, 1 row_sparse, "
                         "2 csr)", stype);
        if (stype == -1)
            return cfail(c, CAIRN_E_UNSUPPORTED, "storage type -1 (undefined)");
        if (stype > 0)
            CAIRN_TRY(get_shape(c, 1, "storage shape", &storage));
    }
    CAIRN_TRY(get_shape(c, np, "shape", &shape));
    if (shape.none)
        return cfail(c, CAIRN_E_UNSUPPORTED, "a none (shapeless, empty) NDArray has no tensor "
                     "to read");
    uint8_t context[8]; /* dev_type, dev_id: where it lived, not needed to read it */
    CAIRN_TRY(get(c, context, sizeof context, "context"));
    cairn_dtype dtype = CAIRN_DTYPE_INVALID;
    CAIRN_TRY(get_dtype(c, "type_flag", &dtype));
    r->n = 0;
    if (stype == 0)
        return add_tensor(c, r, dtype, &shape, "data");
    if (storage.none)
        return cfail(c, CAIRN_E_CORRUPT, "sparse storage shape is unknown");
    uint32_t naux = stype == 1 ? 1 : 2;
    mx_aux aux[MX_MAX_SPARSE_AUX];
    for (uint32_t i = 0; i < naux; i++) {
        CAIRN_TRY(get_dtype(c, "aux type_flag", &aux[i].dtype));
        CAIRN_TRY(check_index_type(c, aux[i].dtype, "aux type_flag"));
        CAIRN_TRY(get_shape(c, 1, "aux shape", &aux[i].shape));
        if (aux[i].shape.none)
            return cfail(c, CAIRN_E_CORRUPT, "aux shape is unknown");
    }
    CAIRN_TRY(add_tensor(c, r, dtype, &storage, "sparse data"));
    for (uint32_t i = 0; i < naux; i++)
        CAIRN_TRY(add_tensor(c, r, aux[i].dtype, &aux[i].shape, "aux data"));
    return CAIRN_OK;
}

static const char *tensor_name_at(const void *ctx, uint32_t index, size_t *len)
{
    const mx_reader *r = ctx;
    return cairn__packed_name(&r->tensors, index, len);
}

/* Array i's name, in buf (CAIRN_NAME_MAX + 1 bytes): read from the name
 * list, or its position when the list is empty (n_names 0). */
static cairn_status read_name(mx_cur *c, uint64_t n_names, uint64_t i, char *buf, size_t *out)
{
    uint64_t len = 0;
    snprintf(c->ctx, sizeof c->ctx, "name of array #%llu", (unsigned long long)i);
    if (n_names == 0) { /* list form: the array's position */
        *out = (size_t)snprintf(buf, CAIRN_NAME_MAX, "%llu", (unsigned long long)i);
        return CAIRN_OK;
    }
    CAIRN_TRY(get_u64(c, "length", &len));
    if (len == 0 || len > CAIRN_NAME_MAX - 16)
        return cfail(c, CAIRN_E_CORRUPT, "name length %llu is not in 1..%d",
                     (unsigned long long)len, CAIRN_NAME_MAX - 16);
    *out = (size_t)len;
    return get(c, buf, (size_t)len, "name");
}

/* Names the parts of an array from its base name: "NAME" for a dense
 * array; "NAME.data" and "NAME.indices" (row_sparse) or "NAME.data",
 * "NAME.indptr", "NAME.indices" (csr, in MXNet's aux order). With `r`, adds
 * them to the table (refusing a name seen before); else only checks the
 * names. */
static cairn_status name_parts(mx_cur *c, mx_reader *r, mx_parts *parts, const char *base,
                               size_t len)
{
    static const char *const rsp[] = {".data", ".indices"};
    static const char *const csr[] = {".data", ".indptr", ".indices"};
    char buf[CAIRN_NAME_MAX + 16];
    for (uint32_t p = 0; p < parts->n; p++) {
        const char *suffix = parts->n == 1 ? "" : parts->n == 2 ? rsp[p] : csr[p];
        size_t n = len + strlen(suffix);
        memcpy(buf, base, len);
        memcpy(buf + len, suffix, strlen(suffix));
        cairn_error e;
        if (cairn__name_check(buf, n, "tensor name", &e) != CAIRN_OK)
            return cfail(c, CAIRN_E_CORRUPT, "%s", e.message);
        if (!r)
            continue;
        if (cairn__nameset_find(&r->index, buf, n, tensor_name_at, r) >= 0) {
            char shown[96];
            return cfail(c, CAIRN_E_CORRUPT, "tensor name '%s' appears twice",
                         cairn__printable(buf, n, shown, sizeof shown));
        }
        if (r->count > UINT32_MAX - 1)
            return cfail(c, CAIRN_E_LIMIT, "too many tensors");
        cairn__tensor *t = &parts->t[p];
        t->info.name = buf;
        t->info.name_len = n;
        CAIRN_TRY(cairn__packed_add(&r->tensors, t, NULL, c->f->path, c->err));
        CAIRN_TRY(cairn__nameset_insert(&r->index, (uint32_t)r->count, tensor_name_at, r,
                                        c->err));
        r->count++;
        r->payload += t->info.raw_size;
    }
    return CAIRN_OK;
}

static void reader_free(void *state)
{
    mx_reader *r = state;
    if (!r)
        return;
    cairn__packed_free(&r->tensors);
    cairn__nameset_free(&r->index);
    free(r);
}

static cairn_status read_header(mx_cur *c, uint64_t *n_arrays)
{
    uint64_t magic, reserved;
    CAIRN_TRY(get_u64(c, "list magic", &magic));
    if (magic != MX_LIST_MAGIC)
        return cfail(c, CAIRN_E_FORMAT, "not an MXNet nd.save file (magic 0x%llx, want 0x112)",
                     (unsigned long long)magic);
    CAIRN_TRY(get_u64(c, "reserved", &reserved));
    CAIRN_TRY(get_u64(c, "array count", n_arrays));
    /* Every array takes at least MX_MIN_RECORD bytes, and then 8 for the name count. */
    if (*n_arrays > (c->f->src.size - c->pos) / MX_MIN_RECORD)
        return cfail(c, CAIRN_E_CORRUPT, "array count %llu cannot fit in the %llu bytes left",
                     (unsigned long long)*n_arrays,
                     (unsigned long long)(c->f->src.size - c->pos));
    return CAIRN_OK;
}

/* Record i (c at its magic) into parts. */
static cairn_status read_array(mx_cur *c, mx_reader *r, uint64_t i, mx_parts *parts)
{
    uint32_t magic;
    snprintf(c->ctx, sizeof c->ctx, "array #%llu", (unsigned long long)i);
    CAIRN_TRY(get_u32(c, "record magic", &magic));
    if (magic != MX_V1_MAGIC && magic != MX_V2_MAGIC && magic != MX_V3_MAGIC)
        return cfail(c, CAIRN_E_UNSUPPORTED, "record magic 0x%08x is not V1 (0xf993fac8), "
                     "V2 (0xf993fac9) or V3 (0xf993faca); pre-V1 records are not read", magic);
    uint32_t v = magic - MX_V1_MAGIC + 1;
    if (v > r->version)
        r->version = v;
    return read_record(c, parts, magic);
}

/* The file is read twice: once to check every record, the name list and
 * the end, keeping only each array's part count; then records and names
 * side by side into the table, refusing repeated names. Nothing else is
 * kept per tensor. */
static cairn_status parse_file(const cairn_file *f, mx_reader **out, cairn_error *err)
{
    mx_cur c = {.f = f, .err = err};
    mx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn__packed_init(&r->tensors, 0);
    uint64_t n_arrays = 0, n_names = 0, arrays_at, names_at = 0;
    uint8_t *nparts = NULL;
    char *buf = malloc(CAIRN_NAME_MAX + 1);
    mx_parts parts;
    size_t len;
    cairn_status st = buf ? read_header(&c, &n_arrays) : nomem(&c);
    arrays_at = c.pos;
    if (st == CAIRN_OK) {
        nparts = malloc(n_arrays ? n_arrays : 1);
        st = nparts ? CAIRN_OK : nomem(&c);
    }
    for (uint64_t i = 0; st == CAIRN_OK && i < n_arrays; i++) {
        st = read_array(&c, r, i, &parts);
        nparts[i] = (uint8_t)parts.n;
    }
    if (st == CAIRN_OK) {
        snprintf(c.ctx, sizeof c.ctx, "name list");
        st = get_u64(&c, "name count", &n_names);
    }
    if (st == CAIRN_OK && n_names != 0 && n_names != n_arrays)
        st = cfail(&c, CAIRN_E_CORRUPT, "%llu names for %llu arrays (must be 0 or equal)",
                   (unsigned long long)n_names, (unsigned long long)n_arrays);
    names_at = c.pos;
    for (uint64_t i = 0; st == CAIRN_OK && i < n_arrays; i++) {
        st = read_name(&c, n_names, i, buf, &len);
        parts.n = nparts[i];
        if (st == CAIRN_OK)
            st = name_parts(&c, NULL, &parts, buf, len);
    }
    c.ctx[0] = '\0';
    if (st == CAIRN_OK && c.pos != f->src.size)
        st = cfail(&c, CAIRN_E_CORRUPT, "%llu bytes of trailing garbage after the name list",
                   (unsigned long long)(f->src.size - c.pos));
    mx_cur names = c;
    c.pos = arrays_at;
    names.pos = names_at;
    for (uint64_t i = 0; st == CAIRN_OK && i < n_arrays; i++) {
        st = read_array(&c, r, i, &parts);
        if (st == CAIRN_OK)
            st = read_name(&names, n_names, i, buf, &len);
        if (st == CAIRN_OK)
            st = name_parts(&names, r, &parts, buf, len);
    }
    free(nparts);
    free(buf);
    if (st != CAIRN_OK) {
        reader_free(r);
        return st;
    }
    *out = r;
    return CAIRN_OK;
}

static cairn_status mx_open(cairn_file *f, cairn_error *err)
{
    mx_reader *r;
    CAIRN_TRY(parse_file(f, &r, err));
    cairn__table_init_packed(&r->table, &r->tensors, NULL, reader_free);
    cairn__table_index(&r->table, &r->index, tensor_name_at, r);
    cairn__table_info(&r->table, CAIRN_FORMAT_MXNET, r->version ? r->version : 2, r->payload,
                      r->payload, 1, 0);
    f->state = r;
    return CAIRN_OK;
}

/* Parses the file again (a pread input may have changed since open) and
 * insists it says the same thing. */
static cairn_status mx_verify_structure(const cairn_file *f, cairn_error *err)
{
    const mx_reader *r = f->state;
    mx_reader *again;
    CAIRN_TRY(parse_file(f, &again, err));
    int same = again->count == r->count;
    for (uint64_t i = 0; same && i < r->count; i++) {
        cairn__tensor x, y;
        cairn__packed_get(&r->tensors, i, &x);
        cairn__packed_get(&again->tensors, i, &y);
        const cairn_tensor_info *a = &x.info, *b = &y.info;
        same = a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0 &&
               a->dtype == b->dtype && a->offset == b->offset && a->count == b->count;
    }
    reader_free(again);
    if (!same)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: mxnet at offset 0: the file changed since "
                           "it was opened", f->path);
    return CAIRN_OK;
}

/* nd.save stores names only (read_metadata NULL: an empty map). */
const cairn__reader_ops cairn__mxnet_reader =
    CAIRN__READER_OPS(mx, CAIRN_FORMAT_MXNET, .verify_structure = mx_verify_structure);

/* ================================================================ writing */

/* Records are written as they arrive (V2, or V3 when a tensor needs it);
 * the array count, the record magics and the names are settled at finish. */
typedef struct mx_wentry {
    char *name;
    size_t name_len;
    uint64_t magic_at; /* sink offset of the record's magic */
} mx_wentry;

typedef struct mx_writer {
    mx_wentry *entries;
    size_t count, cap;
    int need_v3; /* a scalar or a zero-sized dimension: V2 cannot say it */
} mx_writer;

static cairn_status mw_begin(cairn_writer *w, cairn_error *err)
{
    mx_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    w->state = s;
    uint8_t head[MX_HEADER] = {0};
    cairn__put64(head, MX_LIST_MAGIC);
    return cairn__sink_write(&w->sink, head, sizeof head, err); /* the count is patched at finish */
}

static cairn_status remember(cairn_writer *w, mx_writer *s, const char *name, uint64_t at,
                             cairn_error *err)
{
    size_t len = strlen(name);
    if (s->count >= UINT32_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': too many tensors", w->path, name);
    if (!CAIRN__GROW(s->entries, s->cap, s->count, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    mx_wentry *e = &s->entries[s->count];
    e->name = strdup(name);
    e->name_len = len;
    e->magic_at = at;
    if (!e->name)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    s->count++;
    return CAIRN_OK;
}

static cairn_status mw_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    mx_writer *s = w->state;
    int flag = mx_flag_for(dtype);
    if (flag < 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': MXNet has no dtype for %s "
                           "(it stores F32 F64 F16 BF16 U8 I8 I16 I32 I64 U16 U32 U64 BOOL)",
                           w->path, name, cairn_dtype_name(dtype));
    uint64_t at = w->sink.pos;
    CAIRN_TRY(remember(w, s, name, at, err));
    /* magic, stype 0 (dense), ndim, dims, context (cpu 1, id 0), type_flag */
    uint8_t rec[12 + 8 * CAIRN_MAX_RANK + 12];
    size_t n = 0;
    uint64_t size = cairn_dtype_size(dtype);
    cairn__put32(rec, MX_V2_MAGIC);
    cairn__put32(rec + 4, 0);
    cairn__put32(rec + 8, rank);
    n = 12;
    if (rank == 0)
        s->need_v3 = 1;
    for (uint32_t k = 0; k < rank; k++, n += 8) {
        cairn__put64(rec + n, dims[k]);
        size *= dims[k]; /* overflow was ruled out by cairn_writer_add */
        if (dims[k] == 0)
            s->need_v3 = 1;
    }
    cairn__put32(rec + n, 1);
    cairn__put32(rec + n + 4, 0);
    cairn__put32(rec + n + 8, (uint32_t)flag);
    n += 12;
    CAIRN_TRY(cairn__sink_write(&w->sink, rec, n, err));
    if (size > SIZE_MAX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': %llu bytes do not fit in memory",
                           w->path, name, (unsigned long long)size);
    return cairn__sink_write(&w->sink, data, (size_t)size, err);
}

/* List form when the names are exactly "0", "1", ... in order: what this
 * reader names a list's arrays, so list files convert back to lists. */
static int list_form(const mx_writer *s)
{
    char num[32];
    for (size_t i = 0; i < s->count; i++) {
        int n = snprintf(num, sizeof num, "%zu", i);
        if ((size_t)n != s->entries[i].name_len || memcmp(num, s->entries[i].name, (size_t)n))
            return 0;
    }
    return s->count > 0;
}

static cairn_status mw_finish(cairn_writer *w, cairn_error *err)
{
    mx_writer *s = w->state;
    uint8_t b[8];
    if (s->need_v3) { /* nd.load insists every record of a file has one semantics */
        cairn__put32(b, MX_V3_MAGIC);
        for (size_t i = 0; i < s->count; i++)
            CAIRN_TRY(cairn__sink_patch(&w->sink, s->entries[i].magic_at, b, 4, err));
    }
    cairn__put64(b, s->count);
    CAIRN_TRY(cairn__sink_patch(&w->sink, 16, b, 8, err));
    int list = list_form(s);
    cairn__put64(b, list ? 0 : s->count);
    CAIRN_TRY(cairn__sink_write(&w->sink, b, 8, err));
    for (size_t i = 0; !list && i < s->count; i++) {
        cairn__put64(b, s->entries[i].name_len);
        CAIRN_TRY(cairn__sink_write(&w->sink, b, 8, err));
        CAIRN_TRY(cairn__sink_write(&w->sink, s->entries[i].name, s->entries[i].name_len, err));
    }
    return CAIRN_OK;
}

static void mw_destroy(cairn_writer *w)
{
    mx_writer *s = w->state;
    for (size_t i = 0; i < s->count; i++)
        free(s->entries[i].name);
    free(s->entries);
    free(s);
}

const cairn__writer_ops cairn__mxnet_writer = CAIRN__WRITER_OPS(
    mw, CAIRN_FORMAT_MXNET, .no_alias = "MXNet .params files store every array separately",
    .no_metadata = "MXNet .params files store only names and arrays, not metadata");
