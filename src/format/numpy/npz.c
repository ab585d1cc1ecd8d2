/* npz.c -- NumPy .npz files (docs/FORMAT.md §12): ZIP archives (zip.c) of
 * .npy members (npy_internal.h), one tensor each. */
#include "format/format.h"
#include "container/zip.h"
#include "format/numpy/npy_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define NPZ_SUFFIX ".npy"
#define NPZ_SUFFIX_LEN 4
#define NPZ_ALIGN_CAP 4096 /* reported alignment stops at a page, as for .npy */
#define NPZ_WHERE_MAX 640

/* ------------------------------------------------------------------ reader */

/* What the table keeps beside a tensor's record (the packed tail). */
typedef struct npz_tail {
    uint64_t data_at; /* first payload byte, counted from the member's start */
    uint64_t member;  /* into npz_state.zip.members */
} npz_tail;

typedef struct npz_state {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn__zip zip;
    cairn__packed tensors; /* member order; tails are npz_tail */
    size_t *by_name;       /* the table's order: position -> tensor */
    uint64_t count;
    uint64_t payload_bytes, alignment;
} npz_state;
CAIRN__TABLE_FIRST(npz_state);

static uint64_t offset_alignment(uint64_t off)
{
    uint64_t a = off & (~off + 1);
    return a == 0 || a > NPZ_ALIGN_CAP ? NPZ_ALIGN_CAP : a;
}

/* The tensor name of a member: its name without a final ".npy". */
static size_t tensor_name_len(const cairn__zip_member *m)
{
    size_t n = m->name_len;
    if (n >= NPZ_SUFFIX_LEN && memcmp(m->name + n - NPZ_SUFFIX_LEN, NPZ_SUFFIX, NPZ_SUFFIX_LEN) == 0)
        return n - NPZ_SUFFIX_LEN;
    return n;
}

static cairn_status check_name(const cairn_file *f, const cairn__zip_member *m, size_t len,
                               cairn_error *err)
{
    char where[NPZ_WHERE_MAX];
    cairn_error why;
    cairn__zip_where(&f->src, m, where, sizeof where);
    if (cairn__name_check(m->name, len, "tensor", &why) == CAIRN_OK)
        return CAIRN_OK;
    return cairn__fail(err, len > CAIRN_NAME_MAX ? CAIRN_E_LIMIT : CAIRN_E_UNSUPPORTED,
                       "%s (local header at offset %llu): not a cairn tensor name (%s)", where,
                       (unsigned long long)cairn__zip_header_offset(m), why.message);
}

/* Where messages about the member's npy bytes point: file offsets for
 * stored members, offsets into the inflated bytes for deflated ones. */
static void member_origin(const cairn_file *f, const cairn__zip_member *m, char *where,
                          size_t size, cairn__npy_origin *o)
{
    cairn__zip_where(&f->src, m, where, size);
    o->where = where;
    o->base = m->data_offset;
    if (m->method == CAIRN__ZIP_DEFLATED) {
        size_t n = strlen(where);
        snprintf(where + n, size - n, " (deflated at offset %llu; offsets count inflated bytes)",
                 (unsigned long long)m->data_offset);
        o->base = 0;
    }
}

/* Reads and parses the member's preamble and header dict into h. */
static cairn_status read_member_header(const cairn_file *f, const cairn__zip_member *m,
                                       const cairn__npy_origin *o, cairn__npy_header *h,
                                       cairn_error *err)
{
    uint8_t pre[CAIRN__NPY_PREAMBLE_MAX] = {0};
    size_t n = m->size < sizeof pre ? (size_t)m->size : sizeof pre;
    CAIRN_TRY(cairn__zip_read(&f->src, m, 0, pre, n, CAIRN__ZIP_PEEK, err));
    if (n < CAIRN__NPY_MAGIC_LEN || !cairn__npy_is_magic(pre))
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: offset %llu: not an .npy array (no "
                           "\\x93NUMPY magic); cairn reads only arrays from an .npz", o->where,
                           (unsigned long long)o->base);
    CAIRN_TRY(cairn__npy_preamble(pre, m->size, o, h, err));
    size_t end = (size_t)(h->header_at + h->header_len); /* at most 12 + 1 MiB */
    char *text = malloc(end ? end : 1);
    if (!text)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the npy header", o->where);
    cairn_status st = cairn__zip_read(&f->src, m, 0, text, end, CAIRN__ZIP_PEEK, err);
    if (st == CAIRN_OK)
        st = cairn__npy_parse_header(text + h->header_at, o, h, err);
    free(text);
    return st;
}

static npz_tail tail_of(const npz_state *s, uint64_t i)
{
    npz_tail t;
    cairn__packed_tail(&s->tensors, i, &t);
    return t;
}

static const cairn__zip_member *member_of(const npz_state *s, uint64_t i)
{
    return &s->zip.members[tail_of(s, i).member];
}

/* One member -> one tensor record and its tail. */
static cairn_status parse_member(const cairn_file *f, const cairn__zip_member *m,
                                 cairn__tensor *t, npz_tail *tail, cairn_error *err)
{
    char where[NPZ_WHERE_MAX];
    cairn__npy_origin o;
    cairn__npy_header h;
    uint64_t count, bytes;
    member_origin(f, m, where, sizeof where, &o);
    CAIRN_TRY(read_member_header(f, m, &o, &h, err));
    CAIRN_TRY(cairn__npy_payload(&h, m->size, &o, &count, &bytes, err));
    cairn_tensor_info *in = &t->info;
    tail->data_at = h.header_at + h.header_len;
    in->dtype = h.dtype;
    in->rank = h.rank;
    memcpy(in->dims, h.dims, sizeof in->dims);
    in->count = count;
    in->raw_size = bytes;
    in->codec = CAIRN_CODEC_NONE;
    t->big_endian = h.big_endian;
    t->fortran_order = cairn__npy_fortran_matters(&h);
    if (m->method == CAIRN__ZIP_DEFLATED) {
        /* No byte range of the file holds the elements: read.c asks npz_load. */
        in->offset = m->data_offset;
        in->stored_size = m->comp_size;
        in->alignment = 1;
        t->via_load = 1;
        return CAIRN_OK;
    }
    in->offset = m->data_offset + tail->data_at;
    in->stored_size = bytes;
    in->alignment = offset_alignment(in->offset);
    in->zero_copy = !h.big_endian && !t->fortran_order &&
                    cairn__file_ptr(f, in->offset, bytes) != NULL;
    return CAIRN_OK;
}

/* qsort has no context: the names are sorted through an array of these
 * (an archive has at most 2^22 members, a name at most CAIRN_NAME_MAX bytes). */
typedef struct npz_key {
    const char *name;
    uint32_t len;
    uint32_t tensor;
} npz_key;

static int key_cmp(const void *a, const void *b)
{
    const npz_key *x = a, *y = b;
    int c = cairn__name_cmp(x->name, x->len, y->name, y->len);
    return c ? c : (x->tensor > y->tensor) - (x->tensor < y->tensor);
}

/* Puts the tensors in name order and refuses two members with one name
 * ("a" and "a.npy"). */
static cairn_status sort_tensors(const cairn_file *f, npz_state *s, cairn_error *err)
{
    npz_key *keys = malloc((size_t)(s->count ? s->count : 1) * sizeof *keys);
    if (!keys)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors", f->path,
                           (unsigned long long)s->count);
    for (uint64_t i = 0; i < s->count; i++) {
        size_t len;
        keys[i].name = cairn__packed_name(&s->tensors, i, &len);
        keys[i].len = (uint32_t)len;
        keys[i].tensor = (uint32_t)i;
    }
    qsort(keys, (size_t)s->count, sizeof *keys, key_cmp);
    for (uint64_t i = 1; i < s->count; i++) {
        if (cairn__name_cmp(keys[i - 1].name, keys[i - 1].len, keys[i].name, keys[i].len))
            continue;
        char a[NPZ_WHERE_MAX], shown[160];
        const cairn__zip_member *p = member_of(s, keys[i - 1].tensor);
        const cairn__zip_member *q = member_of(s, keys[i].tensor);
        cairn_status st = cairn__fail(err, CAIRN_E_CORRUPT, "%s (local header at offset %llu) "
                                      "and member '%s' (offset %llu) both hold tensor '%s'",
                                      cairn__zip_where(&f->src, p, a, sizeof a),
                                      (unsigned long long)cairn__zip_header_offset(p),
                                      cairn__printable(q->name, q->name_len, shown,
                                                       sizeof shown),
                                      (unsigned long long)cairn__zip_header_offset(q), keys[i].name);
        free(keys);
        return st;
    }
    /* The order, written over the keys as they are read (slot i is key
     * i's own 8 bytes or earlier ones). */
    size_t *order = (size_t *)(void *)keys;
    for (uint64_t i = 0; i < s->count; i++)
        order[i] = keys[i].tensor;
    size_t *shrunk = realloc(order, (size_t)(s->count ? s->count : 1) * sizeof *order);
    s->by_name = shrunk ? shrunk : order;
    return CAIRN_OK;
}

static void state_free(void *state)
{
    npz_state *s = state;
    if (!s)
        return;
    cairn__zip_close(&s->zip);
    cairn__packed_free(&s->tensors);
    free(s->by_name);
    free(s);
}

static cairn_status parse_archive(const cairn_file *f, npz_state *s, cairn_error *err)
{
    CAIRN_TRY(cairn__zip_open(&f->src, f->max_inflate, &s->zip, err));
    s->count = s->zip.count;
    cairn__packed_init(&s->tensors, sizeof(npz_tail));
    s->alignment = 1;
    for (uint64_t i = 0; i < s->count; i++) {
        const cairn__zip_member *m = &s->zip.members[i];
        cairn__tensor t;
        npz_tail tail = {0, i};
        memset(&t, 0, sizeof t);
        CAIRN_TRY(parse_member(f, m, &t, &tail, err));
        t.info.name = m->name;
        t.info.name_len = tensor_name_len(m);
        CAIRN_TRY(check_name(f, m, t.info.name_len, err));
        CAIRN_TRY(cairn__packed_add(&s->tensors, &t, &tail, f->path, err));
        s->payload_bytes += t.info.stored_size;
        if (!t.via_load && t.info.alignment > s->alignment)
            s->alignment = t.info.alignment;
    }
    return sort_tensors(f, s, err);
}

static cairn_status npz_open(cairn_file *f, cairn_error *err)
{
    npz_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = parse_archive(f, s, err);
    if (st != CAIRN_OK) {
        state_free(s);
        return st;
    }
    /* a ZIP archive has no format version of its own; tensors in name order */
    cairn__table_init_packed(&s->table, &s->tensors, s->by_name, state_free);
    cairn__table_info(&s->table, CAIRN_FORMAT_NPZ, 0, s->payload_bytes, 0, s->alignment, 0);
    f->state = s;
    return CAIRN_OK;
}

static cairn_status npz_find(const cairn_file *f, const char *name, size_t name_len,
                             uint64_t *index, cairn_error *err)
{
    const npz_state *s = f->state;
    if (cairn__table_lookup(&s->table, name, name_len, index))
        return CAIRN_OK;
    char shown[96];
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s' (no member '%s.npy')", f->path,
                       cairn__printable(name, name_len, shown, sizeof shown), shown);
}

static int same_tensor(const npz_state *s, const npz_state *again, uint64_t i)
{
    cairn__tensor a, b;
    size_t k = s->by_name ? s->by_name[i] : i, l = again->by_name ? again->by_name[i] : i;
    cairn__packed_get(&s->tensors, k, &a);
    cairn__packed_get(&again->tensors, l, &b);
    const cairn_tensor_info *x = &a.info, *y = &b.info;
    return x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0 &&
           x->dtype == y->dtype && x->rank == y->rank && !memcmp(x->dims, y->dims, sizeof x->dims) &&
           x->offset == y->offset && x->stored_size == y->stored_size &&
           a.big_endian == b.big_endian && a.fortran_order == b.fortran_order &&
           a.via_load == b.via_load && member_of(s, k)->crc == member_of(again, l)->crc &&
           tail_of(s, k).data_at == tail_of(again, l).data_at;
}

static cairn_status npz_verify_structure(const cairn_file *f, cairn_error *err)
{
    const npz_state *s = f->state;
    npz_state *again = calloc(1, sizeof *again);
    if (!again)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = parse_archive(f, again, err);
    if (st == CAIRN_OK && again->count != s->count)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory at offset %llu changed "
                         "since the file was opened", f->path,
                         (unsigned long long)s->zip.cd_offset);
    for (uint64_t i = 0; st == CAIRN_OK && i < s->count; i++)
        if (!same_tensor(s, again, i)) {
            size_t k = s->by_name ? s->by_name[i] : i, len;
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s' (member at offset %llu) "
                             "changed since the file was opened", f->path,
                             cairn__packed_name(&s->tensors, k, &len),
                             (unsigned long long)cairn__zip_header_offset(member_of(s, k)));
        }
    state_free(again);
    return st;
}

/* The elements of a deflated member: inflated straight into dst, the rest
 * of the member inflated too so its size and CRC-32 are checked. */
static cairn_status npz_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const npz_state *s = f->state;
    size_t k = s->by_name ? s->by_name[index] : (size_t)index;
    cairn__tensor t;
    cairn__packed_get(&s->tensors, k, &t);
    return cairn__zip_read(&f->src, member_of(s, k), tail_of(s, k).data_at, dst,
                           (size_t)t.info.raw_size, CAIRN__ZIP_CHECK, err);
}

/* The member's CRC-32 covers its npy header too. */
static cairn_status npz_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    const npz_state *s = f->state;
    return cairn__zip_verify(&f->src, member_of(s, s->by_name ? s->by_name[index] : index),
                             err);
}

/* npz has no metadata (read_metadata NULL: an empty map). */
const cairn__reader_ops cairn__npz_reader =
    CAIRN__READER_OPS(npz, CAIRN_FORMAT_NPZ, .find = npz_find,
                      .verify_structure = npz_verify_structure, .load = npz_load,
                      .verify_tensor = npz_verify_tensor);

/* ------------------------------------------------------------------ writer */

typedef struct npz_writer {
    cairn__zip_writer zw;
    size_t count; /* members added so far */
} npz_writer;

static cairn_status npz_begin(cairn_writer *w, cairn_error *err)
{
    npz_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    cairn__zipw_init(&s->zw, &w->sink);
    w->state = s;
    return CAIRN_OK;
}

static cairn_status count_member(cairn_writer *w, npz_writer *s, const char *name,
                                  cairn_error *err)
{
    if (s->count == UINT32_MAX || s->count >= CAIRN__ZIP_MAX_MEMBERS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': an .npz holds at most %llu "
                           "members", w->path, name, (unsigned long long)CAIRN__ZIP_MAX_MEMBERS);
    s->count++;
    return CAIRN_OK;
}

static cairn_status npz_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                            const uint64_t *dims, const void *data, cairn_error *err)
{
    npz_writer *s = w->state;
    const char *dname = cairn_dtype_name(dtype);
    if (!cairn__npy_has_descr(dtype))
        return cairn__fail(err, dname ? CAIRN_E_UNSUPPORTED : CAIRN_E_ARG, "%s: tensor '%s': "
                           "NumPy has no descr for %s", w->path, name, dname ? dname : "?");
    CAIRN_TRY(count_member(w, s, name, err));
    uint64_t bytes = cairn_dtype_size(dtype); /* writer.c checked the product */
    for (uint32_t d = 0; d < rank; d++)
        bytes *= dims[d];
    size_t len = strlen(name);
    char *member = malloc(len + NPZ_SUFFIX_LEN + 1);
    if (!member)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    memcpy(member, name, len);
    memcpy(member + len, NPZ_SUFFIX, NPZ_SUFFIX_LEN + 1);
    uint8_t header[CAIRN__NPY_HEADER_BUF];
    size_t hlen = cairn__npy_header_write(header, dtype, rank, dims);
    cairn__zip_piece pieces[2] = {{header, hlen}, {data, bytes}};
    uint64_t align = w->alignment < NPZ_ALIGN_CAP ? w->alignment : NPZ_ALIGN_CAP;
    cairn_status st = cairn__zipw_add(&s->zw, member, len + NPZ_SUFFIX_LEN, pieces, 2,
                                      (w->flags & CAIRN_WRITE_COMPRESS) != 0, align, hlen, err);
    free(member);
    return st;
}

static cairn_status npz_finish(cairn_writer *w, cairn_error *err)
{
    npz_writer *s = w->state;
    return cairn__zipw_finish(&s->zw, err);
}

static void npz_destroy(cairn_writer *w)
{
    npz_writer *s = w->state;
    cairn__zipw_free(&s->zw);
    free(s);
}

const cairn__writer_ops cairn__npz_writer =
    CAIRN__WRITER_OPS(npz, CAIRN_FORMAT_NPZ, .no_alias = "an .npz stores every array separately",
                      .no_metadata = ".npz files cannot store metadata");
