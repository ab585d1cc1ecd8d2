/* torch_read.c -- reads PyTorch .pt files (docs/FORMAT.md "PyTorch .pt
 * (read)"): torch.save's ZIP archives and the legacy pre-1.6 stream of
 * pickles. Pickles go through the restricted machine of pickle.h; storages
 * are ZIP members (or byte ranges of a legacy file) checked against what the
 * pickle declares; tensors are named by their path in the unpickled object. */
#include "format/format.h"
#include "format/registry.h"
#include "common/nameset.h"
#include "container/pickle.h"
#include "container/zip.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define TORCH_ALIGN_CAP 4096   /* reported alignment stops at a page, as for .npz */
#define TORCH_KEY_MAX 1024     /* bytes of a storage key */
#define TORCH_RECORD_MAX 64    /* bytes of the version and byteorder records */
#define TORCH_WHERE_MAX 640
#define LEGACY_PROTOCOL 1001   /* torch.serialization.PROTOCOL_VERSION */
#define LEGACY_MAGIC_LEN 10    /* bytes of MAGIC_NUMBER 0x1950a86a20f9469cfc6c as LONG1 */

static const uint8_t legacy_magic[LEGACY_MAGIC_LEN] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                                       0x20, 0x6a, 0xa8, 0x50, 0x19};

/* One storage of a legacy file: a byte range after the pickles. In a ZIP
 * file a storage is a member <root>/data/<key>, and its index is the
 * member's: torch_state.numel_of and dtype_of keep what the pickle declared
 * (9 bytes a member), the member the rest. */
typedef struct torch_storage {
    uint64_t key;               /* the key, into torch_state.key_text */
    uint64_t numel;             /* as declared */
    uint64_t offset;            /* file offset of the first byte */
    uint64_t size;              /* bytes it holds */
    uint32_t key_len;           /* at most TORCH_KEY_MAX */
    uint8_t dtype;              /* a cairn_dtype, as declared */
    uint8_t placed;             /* its bytes were found after the key list */
} torch_storage;

#define TORCH_UNDECLARED UINT8_MAX /* dtype_of: no tensor uses the member */

/* One tensor, as the table's packed record and tail give it back (get). */
typedef struct torch_tensor {
    cairn__tensor t;
    uint32_t storage;
    uint64_t byte_offset;       /* of element 0 within the storage */
    uint64_t strides[CAIRN_MAX_RANK];
    uint64_t span;              /* bytes from byte_offset to the end of the last element */
    int contiguous;
} torch_tensor;

/* What a packed record keeps beside the cairn__tensor: the view's place in
 * its storage, and its strides when they are not the C order of its dims
 * (then they are in torch_state.strides, rank of them from strides_at). */
typedef struct torch_tail {
    uint64_t byte_offset;
    uint64_t span;
    uint32_t storage;
    uint32_t strides_at; /* UINT32_MAX: contiguous */
} torch_tail;

typedef struct torch_state {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    const cairn_file *f;
    int legacy;
    cairn__zip zip;
    char *root;                 /* the top folder with its '/', or "" */
    size_t root_len;
    const cairn__zip_member *pkl;
    uint64_t *numel_of;         /* zip: each member's element count, as declared */
    uint8_t *dtype_of;          /* zip: each member's cairn_dtype, or TORCH_UNDECLARED */
    torch_storage *storages;    /* legacy */
    uint32_t storage_count, storage_cap;
    cairn__nameset keys;        /* legacy: storages by key */
    char *key_text;             /* legacy: the keys, one after another */
    size_t key_text_len, key_text_cap;
    cairn__packed tensors;      /* in the order the walk met them; tails are torch_tail */
    uint64_t *strides;          /* of the views that are not contiguous */
    size_t nstrides, strides_cap;
    uint64_t count;
    cairn__pk_flat flat;        /* names; the tree only when full_tree */
    int full_tree;              /* the walk keeps the tree's tensor references (metadata) */
    uint64_t forget_from;       /* file offset of the pickle the run is in (forget_behind) */
    uint32_t version;
    int big_endian;
    uint64_t payload_bytes, alignment;
    char where[TORCH_WHERE_MAX]; /* "PATH: member 'x/data.pkl'" or "PATH" */
} torch_state;
CAIRN__TABLE_FIRST(torch_state);

static uint64_t offset_alignment(uint64_t off)
{
    uint64_t a = off & (~off + 1);
    return a == 0 || a > TORCH_ALIGN_CAP ? TORCH_ALIGN_CAP : a;
}

static cairn_status add_storage(torch_state *s, const torch_storage *st, uint32_t *index)
{
    if (s->storage_count == s->storage_cap) {
        uint32_t cap = s->storage_cap ? s->storage_cap * 2 : 16;
        torch_storage *p = realloc(s->storages, (size_t)cap * sizeof *p);
        if (!p)
            return CAIRN_E_NOMEM;
        s->storages = p;
        s->storage_cap = cap;
    }
    s->storages[s->storage_count] = *st;
    *index = s->storage_count++;
    return CAIRN_OK;
}

/* A storage key met again must declare the class (dtype) and element count
 * it was first declared with (docs/FORMAT.md §14.4, §14.6). */
static cairn_status same_declaration(const torch_state *s, uint8_t old_dtype,
                                     uint64_t old_numel, const char *shown, uint64_t at,
                                     cairn_dtype dtype, uint64_t numel, cairn_error *err)
{
    if (old_dtype == dtype && old_numel == numel)
        return CAIRN_OK;
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage '%s' declared again as "
                       "%llu x %s (first as %llu x %s)", s->where, (unsigned long long)at, shown,
                       (unsigned long long)numel, cairn_dtype_name(dtype),
                       (unsigned long long)old_numel, cairn_dtype_name((cairn_dtype)old_dtype));
}

/* Where storage `index` is: its ZIP member (NULL in legacy files) and the
 * file offset of its first byte. */
static const cairn__zip_member *storage_at(const torch_state *s, uint32_t index,
                                           uint64_t *offset)
{
    if (s->legacy) {
        *offset = s->storages[index].offset;
        return NULL;
    }
    *offset = s->zip.members[index].data_offset;
    return &s->zip.members[index];
}

/* ------------------------------------------------------- ZIP: the records */

/* The one data.pkl at the top or in the one top folder; torch names that
 * folder after the file it saved to, so no name is assumed. */
static cairn_status find_pickle(torch_state *s, cairn_error *err)
{
    const cairn_file *f = s->f;
    for (uint64_t i = 0; i < s->zip.count; i++) {
        const cairn__zip_member *m = &s->zip.members[i];
        const char *slash = memchr(m->name, '/', m->name_len);
        size_t root_len = slash ? (size_t)(slash - m->name) + 1 : 0;
        if (m->name_len - root_len != 8 || memcmp(m->name + root_len, "data.pkl", 8) != 0)
            continue;
        if (s->pkl) {
            char a[TORCH_WHERE_MAX];
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s (local header at offset %llu) and "
                               "member '%s' both hold a data.pkl: which one is the file?",
                               cairn__zip_where(&f->src, s->pkl, a, sizeof a),
                               (unsigned long long)cairn__zip_header_offset(s->pkl), m->name);
        }
        s->pkl = m;
        s->root_len = root_len;
    }
    if (!s->pkl)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: ZIP archive without a data.pkl member "
                           "(at the top or in one top folder): not a torch.save file", f->path);
    if (!(s->root = malloc(s->root_len + 1)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    memcpy(s->root, s->pkl->name, s->root_len);
    s->root[s->root_len] = '\0';
    cairn__zip_where(&f->src, s->pkl, s->where, sizeof s->where);
    return CAIRN_OK;
}

/* The member <root><leaf>, or NULL. */
static const cairn__zip_member *record(const torch_state *s, const char *leaf, size_t leaf_len)
{
    char name[TORCH_KEY_MAX + 64];
    if (s->root_len + leaf_len >= sizeof name)
        return NULL;
    memcpy(name, s->root, s->root_len);
    memcpy(name + s->root_len, leaf, leaf_len);
    return cairn__zip_find(&s->zip, name, s->root_len + leaf_len);
}

/* A small text record (version, byteorder), without its trailing newline. */
static cairn_status small_record(torch_state *s, const char *leaf, char *buf, size_t *len,
                                 int *found, cairn_error *err)
{
    const cairn__zip_member *m = record(s, leaf, strlen(leaf));
    *found = m != NULL;
    *len = 0;
    if (!m)
        return CAIRN_OK;
    if (m->size >= TORCH_RECORD_MAX) {
        char where[TORCH_WHERE_MAX];
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s (local header at offset %llu): %llu bytes "
                           "for a record of a few characters", cairn__zip_where(&s->f->src, m, where,
                                                                               sizeof where),
                           (unsigned long long)cairn__zip_header_offset(m), (unsigned long long)m->size);
    }
    CAIRN_TRY(cairn__zip_read(&s->f->src, m, 0, buf, (size_t)m->size, CAIRN__ZIP_CHECK, err));
    *len = (size_t)m->size;
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
        (*len)--;
    buf[*len] = '\0';
    return CAIRN_OK;
}

static cairn_status read_records(torch_state *s, cairn_error *err)
{
    char buf[TORCH_RECORD_MAX], where[TORCH_WHERE_MAX];
    size_t len;
    int found;
    if (record(s, "constants.pkl", 13))
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a TorchScript archive (it has "
                           "%sconstants.pkl): cairn reads torch.save files, not compiled "
                           "programs", s->f->path, s->root);
    CAIRN_TRY(small_record(s, "version", buf, &len, &found, err));
    if (!found)
        CAIRN_TRY(small_record(s, ".data/version", buf, &len, &found, err));
    if (found) {
        char *end;
        unsigned long v = strtoul(buf, &end, 10);
        if (len == 0 || *end || v > 1000000)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: record %sversion holds '%s', not a "
                               "version number", s->f->path, s->root,
                               cairn__printable(buf, len, where, sizeof where));
        s->version = (uint32_t)v;
    }
    CAIRN_TRY(small_record(s, "byteorder", buf, &len, &found, err));
    if (found && strcmp(buf, "little") != 0 && strcmp(buf, "big") != 0)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: record %sbyteorder holds '%s', not "
                           "'little' or 'big'", s->f->path, s->root,
                           cairn__printable(buf, len, where, sizeof where));
    s->big_endian = found && strcmp(buf, "big") == 0;
    return CAIRN_OK;
}

/* persistent_load for ZIP files: storage `key` is member <root>data/<key>,
 * and must hold the bytes the pickle declares. */
static cairn_status zip_storage(void *ctx, const char *key, size_t key_len, cairn_dtype dtype,
                                uint64_t numel, uint64_t nbytes, uint64_t at, uint32_t *index,
                                cairn_error *err)
{
    torch_state *s = ctx;
    char leaf[TORCH_KEY_MAX + 8], shown[96];
    cairn__printable(key, key_len, shown, sizeof shown);
    if (key_len == 0 || key_len > TORCH_KEY_MAX || memchr(key, 0, key_len))
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage key '%s' is empty, "
                           "too long or holds NUL", s->where, (unsigned long long)at, shown);
    memcpy(leaf, "data/", 5);
    memcpy(leaf + 5, key, key_len);
    const cairn__zip_member *m = record(s, leaf, key_len + 5);
    if (!m)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage '%s' has no record: "
                           "no member '%sdata/%s'", s->where, (unsigned long long)at, shown,
                           s->root, shown);
    if (nbytes > m->size) {
        char where[TORCH_WHERE_MAX];
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage '%s' declares %llu "
                           "elements of %s (%llu bytes) but %s holds %llu bytes", s->where,
                           (unsigned long long)at, shown, (unsigned long long)numel,
                           cairn_dtype_name(dtype), (unsigned long long)nbytes,
                           cairn__zip_where(&s->f->src, m, where, sizeof where),
                           (unsigned long long)m->size);
    }
    uint32_t mi = (uint32_t)(m - s->zip.members); /* members are at most 2^22 */
    *index = mi;
    if (s->dtype_of[mi] != TORCH_UNDECLARED) {
        /* torch.load keeps the first declaration and ignores the rest: a
         * second one that disagrees would make cairn and torch read the
         * bytes differently, so it is refused, as in legacy files. */
        return same_declaration(s, s->dtype_of[mi], s->numel_of[mi], shown, at, dtype, numel,
                                err);
    }
    s->dtype_of[mi] = (uint8_t)dtype;
    s->numel_of[mi] = numel;
    s->payload_bytes += m->comp_size;
    return CAIRN_OK;
}

/* Runs the object's pickle; its strings are copied out of p, which the
 * caller may free before walk_object. */
static cairn_status run_object(torch_state *s, cairn__pickle *vm, const cairn__pickle_host *host,
                               const uint8_t *p, size_t len, uint64_t base, size_t *used,
                               cairn_error *err)
{
    cairn__pickle_init(vm, host, s->where, base);
    CAIRN_TRY(cairn__pickle_run(vm, p, len, used, err));
    return cairn__pickle_detach(vm, err);
}

/* Names the tensors (and makes the tree, when asked for it); then only the
 * tensor and storage records of the graph stay. `stored`: the bytes the
 * file holds for the pickle (a deflated member's compressed size, or the
 * bytes the legacy object pickle ran over). */
static cairn_status walk_object(torch_state *s, cairn__pickle *vm, uint64_t stored,
                                cairn_error *err)
{
    cairn_status st = s->full_tree ? cairn__pickle_flatten(vm, stored, &s->flat, err)
                                   : cairn__pickle_flatten_names(vm, stored, NULL, NULL, &s->flat, err);
    cairn__pickle_shed(vm);
    return st;
}

/* ------------------------------------------------------ tensors from the walk */

static int is_contiguous(const cairn__pk_tensor *t)
{
    uint64_t expect = 1;
    for (uint32_t d = t->rank; d-- > 0;) {
        if (t->sizes[d] == 0)
            return 1;
        if (t->sizes[d] != 1 && t->strides[d] != expect)
            return 0;
        expect *= t->sizes[d];
    }
    return 1;
}

/* The bytes from the view's first element to the end of its last (0 when
 * empty), or 0 with *over set when that overflows. The pickle machine
 * checked it against the storage; recomputed here for the load op. */
static uint64_t span_of(const cairn__pk_tensor *t, uint64_t count, uint64_t esize, int *over)
{
    if (count == 0)
        return 0;
    uint64_t last = 0, step, bytes;
    for (uint32_t d = 0; d < t->rank; d++) {
        *over |= cairn__mul_overflow(t->sizes[d] - 1, t->strides[d], &step);
        *over |= cairn__add_overflow(last, step, &last);
    }
    *over |= cairn__add_overflow(last, 1, &last);
    *over |= cairn__mul_overflow(last, esize, &bytes);
    return *over ? 0 : bytes;
}

static cairn_status describe(torch_state *s, torch_tensor *tt, const cairn__pk_tensor *pk,
                             const cairn__pk_named *named, cairn_error *err)
{
    uint64_t base;
    const cairn__zip_member *m = storage_at(s, tt->storage, &base);
    cairn_tensor_info *in = &tt->t.info;
    uint64_t esize = cairn_dtype_size(pk->dtype);
    int over = 0;
    in->name = named->name;
    in->name_len = named->len;
    in->dtype = pk->dtype;
    in->rank = pk->rank;
    in->count = 1;
    for (uint32_t d = 0; d < pk->rank; d++) {
        in->dims[d] = pk->sizes[d];
        over |= cairn__mul_overflow(in->count, pk->sizes[d], &in->count);
        tt->strides[d] = pk->strides[d];
    }
    over |= cairn__mul_overflow(in->count, esize, &in->raw_size);
    over |= cairn__mul_overflow(pk->offset, esize, &tt->byte_offset);
    tt->span = span_of(pk, in->count, esize, &over);
    over |= cairn__add_overflow(base, tt->byte_offset, &in->offset);
    char shown[96];
    if (over)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': its element count, byte size "
                           "or storage span overflows 64 bits", s->where,
                           cairn__printable(named->name, named->len, shown, sizeof shown));
    in->codec = CAIRN_CODEC_NONE;
    tt->contiguous = is_contiguous(pk);
    tt->t.big_endian = s->big_endian;
    int stored = !m || m->method == CAIRN__ZIP_STORED;
    in->stored_size = in->raw_size;
    if (!stored || !tt->contiguous) {
        /* No byte range of the file is the tensor: read.c asks torch_load. */
        tt->t.via_load = 1;
        in->alignment = 1;
        if (!stored)
            in->stored_size = m->comp_size;
        return CAIRN_OK;
    }
    in->alignment = offset_alignment(in->offset);
    in->zero_copy = !s->big_endian && in->offset % esize == 0 &&
                    cairn__file_ptr(s->f, in->offset, in->raw_size) != NULL;
    if (in->alignment > s->alignment)
        s->alignment = in->alignment;
    return CAIRN_OK;
}

/* Keeps tensor tt as a packed record (its strides apart when they matter). */
static cairn_status keep_tensor(torch_state *s, const torch_tensor *tt, cairn_error *err)
{
    torch_tail tail = {tt->byte_offset, tt->span, tt->storage, UINT32_MAX};
    uint32_t rank = tt->t.info.rank;
    if (!tt->contiguous) {
        if (s->nstrides > UINT32_MAX - CAIRN_MAX_RANK)
            return cairn__fail(err, CAIRN_E_LIMIT, "%s: too many strided views", s->where);
        if (s->strides_cap - s->nstrides < rank) {
            size_t cap = s->strides_cap ? s->strides_cap * 2 : 64;
            uint64_t *grown = realloc(s->strides, cap * sizeof *grown);
            if (!grown)
                return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->where);
            s->strides = grown;
            s->strides_cap = cap;
        }
        tail.strides_at = (uint32_t)s->nstrides;
        memcpy(s->strides + s->nstrides, tt->strides, rank * sizeof *s->strides);
        s->nstrides += rank;
    }
    return cairn__packed_add(&s->tensors, &tt->t, &tail, s->where, err);
}

/* Tensor i as describe made it. A contiguous view's strides are the C
 * order of its dims (those of dims of size 1 never move the gather). */
static void get_tensor(const torch_state *s, uint64_t i, torch_tensor *tt)
{
    torch_tail tail;
    memset(tt, 0, sizeof *tt);
    cairn__packed_get(&s->tensors, i, &tt->t);
    cairn__packed_tail(&s->tensors, i, &tail);
    tt->storage = tail.storage;
    tt->byte_offset = tail.byte_offset;
    tt->span = tail.span;
    tt->contiguous = tail.strides_at == UINT32_MAX;
    const cairn_tensor_info *in = &tt->t.info;
    if (!tt->contiguous) {
        memcpy(tt->strides, s->strides + tail.strides_at, in->rank * sizeof *tt->strides);
        return;
    }
    uint64_t step = 1;
    for (uint32_t d = in->rank; d-- > 0;) {
        tt->strides[d] = step;
        step *= in->dims[d] ? in->dims[d] : 1; /* bounded: count x esize did not overflow */
    }
}

/* Views that repeat elements (an expand, stride 0) read as more bytes than
 * the storage holds: together they may make at most max(max_inflate,
 * CAIRN__ZIP_RATIO_LIMIT x the storage bytes the file holds) bytes
 * (docs/FORMAT.md §14.4), so a small file cannot make a reader allocate or
 * a converter write gigabytes. */
static cairn_status check_expansion(torch_state *s, cairn_error *err)
{
    uint64_t made = 0, cap, ratio_cap;
    if (cairn__mul_overflow(s->payload_bytes, CAIRN__ZIP_RATIO_LIMIT, &ratio_cap))
        ratio_cap = UINT64_MAX;
    cap = s->f->max_inflate > ratio_cap ? s->f->max_inflate : ratio_cap;
    for (uint64_t i = 0; i < s->count; i++) {
        torch_tensor got;
        const torch_tensor *tt = &got;
        get_tensor(s, i, &got);
        if (tt->t.info.raw_size <= tt->span)
            continue;
        char shown[96];
        if (cairn__add_overflow(made, tt->t.info.raw_size, &made) || made > cap)
            return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s' repeats the elements of its "
                               "storage (a stride-0 expand) up to %llu bytes; the file's "
                               "expanded views may make at most %llu (max(max_inflate, %d x "
                               "the %llu storage bytes it holds)): raise "
                               "cairn_open_opts.max_inflate to read it", s->where,
                               cairn__printable(tt->t.info.name, tt->t.info.name_len, shown,
                                                sizeof shown),
                               (unsigned long long)tt->t.info.raw_size,
                               (unsigned long long)cap, CAIRN__ZIP_RATIO_LIMIT,
                               (unsigned long long)s->payload_bytes);
    }
    return CAIRN_OK;
}

static cairn_status build_tensors(torch_state *s, const cairn__pickle *vm, cairn_error *err)
{
    s->count = s->flat.count;
    s->alignment = 1;
    for (uint64_t i = 0; i < s->count; i++) {
        const cairn__pk_named *named = &s->flat.tensors[i];
        cairn__pk_tensor pk;
        cairn__pk_tensor_get(vm, named->tensor, &pk);
        torch_tensor tt;
        memset(&tt, 0, sizeof tt);
        tt.storage = pk.storage; /* the run was detached: the host's index (storage_at) */
        CAIRN_TRY(describe(s, &tt, &pk, named, err));
        CAIRN_TRY(keep_tensor(s, &tt, err));
        /* The packed record has the name now; by_name stays. */
        free(s->flat.tensors[i].name);
        s->flat.tensors[i].name = NULL;
    }
    free(s->flat.tensors);
    s->flat.tensors = NULL;
    s->flat.count = s->flat.cap = 0;
    return check_expansion(s, err);
}

/* ------------------------------------------------------------ ZIP: open */

/* The host's consumed hook: the pages of the pickle the run is past. */
static void forget_behind(void *ctx, size_t pos)
{
    torch_state *s = ctx;
    cairn__source_forget(&s->f->src, s->forget_from, pos);
}

/* data.pkl's bytes: in the mapping when it is stored and mapped (its CRC
 * checked first, its pages dropped as the run passes them), else a copy in
 * *copy (inflated, or read with pread so that no pages stay resident
 * beside it) that the caller frees. */
static cairn_status pickle_bytes(torch_state *s, const uint8_t **p, uint8_t **copy,
                                 cairn_error *err)
{
    const cairn__source *src = &s->f->src;
    const cairn__zip_member *m = s->pkl;
    *copy = NULL;
    *p = m->method == CAIRN__ZIP_STORED ? cairn__source_ptr(src, m->data_offset, m->size) : NULL;
    if (*p) {
        CAIRN_TRY(cairn__zip_verify(src, m, err));
        cairn__source_forget(src, m->data_offset, m->size);
        return CAIRN_OK;
    }
    if (!(*copy = malloc(m->size ? (size_t)m->size : 1)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->where);
    *p = *copy;
    return cairn__zip_read(src, m, 0, *copy, (size_t)m->size, CAIRN__ZIP_CHECK | CAIRN__ZIP_PEEK,
                           err);
}

static cairn_status read_zip(torch_state *s, cairn_error *err)
{
    const cairn_file *f = s->f;
    CAIRN_TRY(cairn__zip_open(&f->src, f->max_inflate, &s->zip, err));
    /* The index has the directory now (a file of many tensors has a large one). */
    cairn__source_forget(&f->src, s->zip.cd_offset, s->zip.cd_size);
    CAIRN_TRY(find_pickle(s, err));
    CAIRN_TRY(read_records(s, err));
    if (s->pkl->size > CAIRN__PICKLE_MAX_BYTES)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: %llu bytes of pickle; cairn reads at most "
                           "%llu", s->where, (unsigned long long)s->pkl->size,
                           (unsigned long long)CAIRN__PICKLE_MAX_BYTES);
    size_t n = s->zip.count ? (size_t)s->zip.count : 1;
    s->numel_of = malloc(n * sizeof *s->numel_of);
    s->dtype_of = malloc(n);
    cairn_status st = s->numel_of && s->dtype_of
                      ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->where);
    if (st == CAIRN_OK)
        memset(s->dtype_of, TORCH_UNDECLARED, n);
    const uint8_t *pkl = NULL;
    uint8_t *copy = NULL;
    if (st == CAIRN_OK)
        st = pickle_bytes(s, &pkl, &copy, err);
    cairn__pickle_host host = {s, cairn__pickle_torch_global, zip_storage, 0,
                               copy ? NULL : forget_behind, 0, 0};
    s->forget_from = s->pkl->data_offset;
    cairn__pickle vm;
    cairn__pickle_init(&vm, &host, s->where, 0);
    size_t ran = 0;
    if (st == CAIRN_OK)
        st = run_object(s, &vm, &host, pkl, (size_t)s->pkl->size, 0, &ran, err);
    free(copy); /* the graph has its strings */
    /* The run has found and checked every storage: what it declared and
     * the members' name index go before the walk. */
    free(s->numel_of);
    free(s->dtype_of);
    s->numel_of = NULL;
    s->dtype_of = NULL;
    cairn__zip_drop_index(&s->zip);
    if (!copy)
        cairn__source_forget(&f->src, s->pkl->data_offset, s->pkl->size);
    uint64_t stored = s->pkl->comp_size ? s->pkl->comp_size : ran;
    if (st == CAIRN_OK)
        st = walk_object(s, &vm, stored, err);
    if (st == CAIRN_OK)
        st = build_tensors(s, &vm, err);
    cairn__pickle_free(&vm);
    return st;
}

/* ------------------------------------------------------------- legacy */

/* Bytes of the magic-number pickle at p (PROTO 2..5, an optional FRAME,
 * LONG1 of the 10 magic bytes, STOP), or 0 when p does not start with it. */
static size_t legacy_magic_len(const uint8_t *p, size_t n)
{
    size_t at = 2;
    if (n < 2 || p[0] != 0x80 || p[1] < 2 || p[1] > 5)
        return 0;
    if (n > at && p[at] == 0x95) /* FRAME: u64 length */
        at += 9;
    if (n < at + 2 + LEGACY_MAGIC_LEN + 1 || p[at] != 0x8a || p[at + 1] != LEGACY_MAGIC_LEN ||
        memcmp(p + at + 2, legacy_magic, LEGACY_MAGIC_LEN) != 0 ||
        p[at + 2 + LEGACY_MAGIC_LEN] != '.')
        return 0;
    return at + 2 + LEGACY_MAGIC_LEN + 1;
}

int cairn__torch_legacy_sniff(const cairn_file *f)
{
    uint8_t head[32];
    size_t n = f->src.size < sizeof head ? (size_t)f->src.size : sizeof head;
    if (cairn__file_read(f, 0, head, n, NULL) != CAIRN_OK)
        return 0;
    return legacy_magic_len(head, n) != 0;
}

static const char *key_at(const void *ctx, uint32_t index, size_t *len)
{
    const torch_state *s = ctx;
    *len = s->storages[index].key_len;
    return s->key_text + s->storages[index].key;
}

/* Room for n more bytes of keys (each at most TORCH_KEY_MAX; a storage
 * costs bytes of the pickle, so they stay far below SIZE_MAX). */
static int key_room(torch_state *s, size_t n)
{
    if (s->key_text_cap - s->key_text_len >= n)
        return 1;
    size_t cap = s->key_text_cap ? s->key_text_cap : 1024;
    while (cap - s->key_text_len < n)
        cap *= 2;
    char *p = realloc(s->key_text, cap);
    if (!p)
        return 0;
    s->key_text = p;
    s->key_text_cap = cap;
    return 1;
}

/* persistent_load for legacy files: the bytes come after the pickles, so
 * this only records what each key declares; place_storages checks it. */
static cairn_status legacy_storage(void *ctx, const char *key, size_t key_len, cairn_dtype dtype,
                                   uint64_t numel, uint64_t nbytes, uint64_t at, uint32_t *index,
                                   cairn_error *err)
{
    torch_state *s = ctx;
    char shown[96];
    cairn__printable(key, key_len, shown, sizeof shown);
    if (key_len == 0 || key_len > TORCH_KEY_MAX)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage key '%s' is empty or "
                           "too long", s->where, (unsigned long long)at, shown);
    int64_t found = cairn__nameset_find(&s->keys, key, key_len, key_at, s);
    if (found >= 0) {
        CAIRN_TRY(same_declaration(s, s->storages[found].dtype, s->storages[found].numel, shown,
                                   at, dtype, numel, err));
        *index = (uint32_t)found;
        return CAIRN_OK;
    }
    torch_storage st = {.key = s->key_text_len, .numel = numel, .size = nbytes,
                        .key_len = (uint32_t)key_len, .dtype = (uint8_t)dtype};
    if (!key_room(s, key_len) || add_storage(s, &st, index) != CAIRN_OK)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->where);
    memcpy(s->key_text + s->key_text_len, key, key_len);
    s->key_text_len += key_len;
    return cairn__nameset_insert(&s->keys, *index, key_at, s, err);
}

typedef struct legacy_cur {
    const uint8_t *p; /* the file's first n bytes */
    size_t n, pos;
} legacy_cur;

/* One plain pickle (no globals but the allow-list, no storages) at pos. */
static cairn_status legacy_pickle(torch_state *s, legacy_cur *c, cairn__pickle *vm,
                                  const char *what, cairn_error *err)
{
    static const cairn__pickle_host plain = {NULL, cairn__pickle_torch_global, NULL, 0, NULL, 0, 0};
    size_t used;
    cairn__pickle_init(vm, &plain, s->where, c->pos);
    cairn_status st = cairn__pickle_run(vm, c->p + c->pos, c->n - c->pos, &used, err);
    if (st != CAIRN_OK) {
        cairn__pickle_free(vm);
        size_t n = strlen(err ? err->message : "");
        if (err && n + strlen(what) + 8 < sizeof err->message)
            snprintf(err->message + n, sizeof err->message - n, " (in the %s)", what);
        return st;
    }
    c->pos += used;
    return CAIRN_OK;
}

/* The protocol-version and sys_info pickles after the magic number. */
static cairn_status legacy_header(torch_state *s, legacy_cur *c, cairn_error *err)
{
    cairn__pickle vm;
    cairn_status st = legacy_pickle(s, c, &vm, "protocol version pickle", err);
    if (st == CAIRN_OK) {
        const cairn__pk_node *v = &vm.nodes[vm.root];
        if (v->type != CAIRN__PK_INT || v->u.i != LEGACY_PROTOCOL)
            st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: legacy protocol version is not %d",
                             s->f->path, LEGACY_PROTOCOL);
    }
    cairn__pickle_free(&vm);
    CAIRN_TRY(st);
    st = legacy_pickle(s, c, &vm, "sys_info pickle", err);
    if (st == CAIRN_OK && vm.nodes[vm.root].type != CAIRN__PK_DICT)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: the legacy sys_info pickle is not a dict",
                         s->f->path);
    cairn__pickle_free(&vm);
    return st;
}

/* Key list entry i (node k): its int64 element count and bytes at *at. */
static cairn_status place_one(torch_state *s, const cairn__pickle *vm, uint32_t k, uint32_t i,
                              uint64_t *at, cairn_error *err)
{
    const cairn__pk_blob *b = vm->nodes[k].type == CAIRN__PK_STR ? cairn__pk_blob_of(vm, k) : NULL;
    int64_t idx = b ? cairn__nameset_find(&s->keys, (const char *)b->p, b->len, key_at, s) : -1;
    char shown[96] = "?";
    if (b)
        cairn__printable((const char *)b->p, b->len, shown, sizeof shown);
    if (idx < 0 || s->storages[idx].placed)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage key list entry %u "
                           "('%s') is %s", s->f->path, (unsigned long long)*at, (unsigned)i,
                           shown, idx < 0 ? "not a storage of the object" : "listed twice");
    torch_storage *sto = &s->storages[idx];
    uint8_t count[8];
    uint64_t end;
    CAIRN_TRY(cairn__file_read(s->f, *at, count, 8, err));
    if (cairn__le64(count) != sto->numel)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage '%s' holds %llu "
                           "elements, its id declared %llu", s->f->path, (unsigned long long)*at,
                           shown, (unsigned long long)cairn__le64(count),
                           (unsigned long long)sto->numel);
    if (cairn__add_overflow(*at + 8, sto->size, &end) || end > s->f->src.size)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: storage '%s' of %llu bytes "
                           "runs past the end of the file (%llu bytes)", s->f->path,
                           (unsigned long long)(*at + 8), shown, (unsigned long long)sto->size,
                           (unsigned long long)s->f->src.size);
    sto->offset = *at + 8;
    sto->placed = 1;
    s->payload_bytes += sto->size;
    *at = end;
    return CAIRN_OK;
}

/* The key list, then per key an int64 element count and the bytes (always
 * little-endian: torch converts on big-endian hosts). */
static cairn_status place_storages(torch_state *s, legacy_cur *c, cairn_error *err)
{
    cairn__pickle vm;
    CAIRN_TRY(legacy_pickle(s, c, &vm, "storage key list", err));
    cairn_status st = CAIRN_OK;
    const cairn__pk_node *root = &vm.nodes[vm.root];
    if (root->type != CAIRN__PK_LIST && root->type != CAIRN__PK_TUPLE)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: the legacy storage key list is %s",
                         s->f->path, cairn__pk_type_name(root->type));
    uint64_t at = c->pos;
    const cairn__pk_seq *keys = st == CAIRN_OK ? cairn__pk_seq_of(&vm, vm.root) : NULL;
    for (uint32_t i = 0; st == CAIRN_OK && i < keys->count; i++)
        st = place_one(s, &vm, keys->items[i], i, &at, err);
    for (uint32_t i = 0; st == CAIRN_OK && i < s->storage_count; i++) {
        char shown[96];
        if (!s->storages[i].placed)
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: storage '%s' is used by a tensor but its "
                             "bytes are not in the file (not in the key list)", s->f->path,
                             cairn__printable(s->key_text + s->storages[i].key,
                                              s->storages[i].key_len, shown,
                                              sizeof shown));
    }
    cairn__pickle_free(&vm);
    return st;
}

static cairn_status read_legacy(torch_state *s, cairn_error *err)
{
    const cairn_file *f = s->f;
    s->legacy = 1;
    s->version = LEGACY_PROTOCOL;
    snprintf(s->where, sizeof s->where, "%s", f->path);
    /* The pickles come first (the object's at most its limit, the others a
     * few bytes each); the storages after them are read in place. */
    uint64_t window = 2 * CAIRN__PICKLE_MAX_BYTES;
    uint64_t want = f->src.size < window ? f->src.size : window;
    legacy_cur c = {cairn__file_ptr(f, 0, want), (size_t)want, 0};
    uint8_t *heap = NULL;
    if (!c.p) {
        if (!(heap = malloc(want ? (size_t)want : 1)))
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        cairn_status st = cairn__file_read(f, 0, heap, (size_t)want, err);
        if (st != CAIRN_OK) {
            free(heap);
            return st;
        }
        c.p = heap;
    }
    cairn_status st = CAIRN_OK;
    if (!(c.pos = legacy_magic_len(c.p, c.n)))
        st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: offset 0: not a PyTorch file (neither a "
                         "ZIP archive nor the legacy magic number pickle)", f->path);
    if (st == CAIRN_OK)
        st = legacy_header(s, &c, err);
    cairn__pickle_host host = {s, cairn__pickle_torch_global, legacy_storage, 0,
                               heap ? NULL : forget_behind, 0, 0};
    s->forget_from = c.pos;
    cairn__pickle vm;
    cairn__pickle_init(&vm, &host, s->where, c.pos);
    size_t used = 0;
    if (st == CAIRN_OK)
        st = run_object(s, &vm, &host, c.p + c.pos, c.n - c.pos, c.pos, &used, err);
    if (st == CAIRN_OK) /* the graph has its strings: the pickle's pages may go */
        cairn__source_forget(&f->src, c.pos, used);
    if (st == CAIRN_OK)
        st = walk_object(s, &vm, used, err);
    c.pos += used;
    if (st == CAIRN_OK)
        st = place_storages(s, &c, err);
    if (st == CAIRN_OK)
        st = build_tensors(s, &vm, err);
    cairn__pickle_free(&vm);
    free(heap);
    return st;
}

/* ---------------------------------------------------------------- ops */

static void state_free(void *state)
{
    torch_state *s = state;
    if (!s)
        return;
    cairn__zip_close(&s->zip);
    free(s->root);
    free(s->numel_of);
    free(s->dtype_of);
    free(s->key_text);
    free(s->storages);
    cairn__nameset_free(&s->keys);
    cairn__packed_free(&s->tensors);
    free(s->strides);
    cairn__pk_flat_free(&s->flat);
    free(s);
}

/* full_tree: keep the metadata tree whole (read_metadata); an open keeps
 * only the names and what has_metadata says. */
static cairn_status parse(const cairn_file *f, int full_tree, torch_state **out,
                          cairn_error *err)
{
    *out = NULL;
    torch_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    s->f = f;
    s->full_tree = full_tree;
    cairn__packed_init(&s->tensors, sizeof(torch_tail));
    uint8_t head[4] = {0};
    size_t n = f->src.size < sizeof head ? (size_t)f->src.size : sizeof head;
    cairn_status st = cairn__file_read(f, 0, head, n, err);
    if (st == CAIRN_OK)
        st = cairn__zip_magic(head, n) ? read_zip(s, err) : read_legacy(s, err);
    if (st != CAIRN_OK) {
        state_free(s);
        return st;
    }
    *out = s;
    return CAIRN_OK;
}

static cairn_status torch_open(cairn_file *f, cairn_error *err)
{
    torch_state *s;
    CAIRN_TRY(parse(f, 0, &s, err));
    /* version: the version record; 1001 for legacy files */
    cairn__table_init_packed(&s->table, &s->tensors, NULL, state_free);
    cairn__table_sorted(&s->table, NULL, s->flat.by_name, NULL);
    s->table.hint = "names are dotted paths in the saved object, e.g. 'model.fc1.weight'";
    cairn__table_info(&s->table, CAIRN_FORMAT_TORCH, s->version, s->payload_bytes, 0,
                      s->alignment, cairn__pk_flat_has_tree(&s->flat));
    f->state = s;
    return CAIRN_OK;
}

static int same_tensor(const torch_tensor *a, const torch_tensor *b)
{
    const cairn_tensor_info *x = &a->t.info, *y = &b->t.info;
    return cairn__name_cmp(x->name, x->name_len, y->name, y->name_len) == 0 &&
           x->dtype == y->dtype && x->rank == y->rank && !memcmp(x->dims, y->dims, sizeof x->dims) &&
           x->offset == y->offset && x->stored_size == y->stored_size &&
           a->t.via_load == b->t.via_load && a->t.big_endian == b->t.big_endian &&
           !memcmp(a->strides, b->strides, sizeof a->strides) && a->span == b->span;
}

/* A second parse of the file must find what the open found (pread inputs
 * may change under us). */
static cairn_status same_file(const torch_state *s, const torch_state *again, const char *path,
                              cairn_error *err)
{
    if (again->count != s->count)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: the file changed since it was opened",
                           path);
    for (uint64_t i = 0; i < s->count; i++) {
        torch_tensor a, b;
        get_tensor(s, i, &a);
        get_tensor(again, i, &b);
        if (!same_tensor(&a, &b))
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s' changed since the file "
                               "was opened", path, a.t.info.name);
    }
    return CAIRN_OK;
}

/* Parses the file again and insists it still says the same thing; CRCs
 * follow through torch_verify_tensor. */
static cairn_status torch_verify_structure(const cairn_file *f, cairn_error *err)
{
    torch_state *again;
    CAIRN_TRY(parse(f, 0, &again, err));
    cairn_status st = same_file(f->state, again, f->path, err);
    state_free(again);
    return st;
}

static cairn_status torch_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    /* The open kept the names only: the file is read again for the tree,
     * and must still say what it said. */
    torch_state *again;
    CAIRN_TRY(parse(f, 1, &again, err));
    cairn_status st = same_file(f->state, again, f->path, err);
    *out = again->flat.tree;
    again->flat.tree = NULL;
    state_free(again);
    if (st != CAIRN_OK) {
        cairn_value_free(*out);
        *out = NULL;
    }
    return st;
}

static cairn_status torch_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    const torch_state *s = f->state;
    torch_tail tail;
    cairn__packed_tail(&s->tensors, index, &tail);
    uint64_t base;
    const cairn__zip_member *m = storage_at(s, tail.storage, &base);
    return m ? cairn__zip_verify(&f->src, m, err) : CAIRN_OK; /* legacy files have no CRC */
}

/* Copies the elements of a strided view, in C order, from `src` (the
 * storage from the view's first element on) into dst. */
static void gather(const uint8_t *src, uint8_t *dst, const torch_tensor *tt, size_t esize)
{
    const cairn_tensor_info *in = &tt->t.info;
    uint64_t idx[CAIRN_MAX_RANK] = {0}, off = 0;
    for (uint64_t i = 0; i < in->count; i++) {
        memcpy(dst + i * esize, src + off * esize, esize);
        for (uint32_t d = in->rank; d-- > 0;) {
            if (++idx[d] < in->dims[d]) {
                off += tt->strides[d];
                break;
            }
            off -= tt->strides[d] * (in->dims[d] - 1);
            idx[d] = 0;
        }
    }
}

/* The bytes [byte_offset, +span) of the tensor's storage: in place when
 * the input is mapped and the member stored, else copied into *heap. ZIP
 * members have their CRC-32 checked on the way. */
static cairn_status storage_span(const cairn_file *f, const torch_tensor *tt,
                                 const uint8_t **out, uint8_t **heap, cairn_error *err)
{
    const torch_state *s = f->state;
    uint64_t base;
    const cairn__zip_member *m = storage_at(s, tt->storage, &base);
    *heap = NULL;
    int stored = !m || m->method == CAIRN__ZIP_STORED;
    if (stored && (*out = cairn__file_ptr(f, base + tt->byte_offset, tt->span)))
        return m ? cairn__zip_verify(&f->src, m, err) : CAIRN_OK;
    if (tt->span > SIZE_MAX || !(*heap = malloc(tt->span ? (size_t)tt->span : 1)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': out of memory for %llu bytes "
                           "of its storage", f->path, tt->t.info.name,
                           (unsigned long long)tt->span);
    *out = *heap;
    if (m)
        return cairn__zip_read(&f->src, m, tt->byte_offset, *heap, (size_t)tt->span,
                               CAIRN__ZIP_CHECK, err);
    return cairn__file_read(f, base + tt->byte_offset, *heap, (size_t)tt->span, err);
}

/* Tensors marked via_load: strided views and deflated members. */
static cairn_status torch_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const torch_state *s = f->state;
    torch_tensor got;
    const torch_tensor *tt = &got;
    get_tensor(s, index, &got);
    uint64_t base;
    const cairn__zip_member *m = storage_at(s, tt->storage, &base);
    if (tt->t.info.count == 0)
        return CAIRN_OK;
    if (tt->contiguous && m) /* a deflated member: inflate straight into dst */
        return cairn__zip_read(&f->src, m, tt->byte_offset, dst, (size_t)tt->t.info.raw_size,
                               CAIRN__ZIP_CHECK, err);
    const uint8_t *src;
    uint8_t *heap;
    cairn_status status = storage_span(f, tt, &src, &heap, err);
    if (status == CAIRN_OK)
        gather(src, dst, tt, cairn_dtype_size(tt->t.info.dtype));
    free(heap);
    return status;
}

const cairn__reader_ops cairn__torch_reader =
    CAIRN__READER_OPS(torch, CAIRN_FORMAT_TORCH, .verify_structure = torch_verify_structure,
                      .read_metadata = torch_read_metadata, .load = torch_load,
                      .verify_tensor = torch_verify_tensor);
