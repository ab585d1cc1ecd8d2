/* dist_read.c -- a distributed checkpoint directory (docs/FORMAT.md §20)
 * opened as one archive of its global tensors. The manifest is read at open;
 * rank files are opened through the public open when a read first needs
 * one, and each global tensor is assembled from the pieces that meet what
 * is asked for (cairn__dist_plan, cairn__box_copy). */
#include "archive/archive.h"
#include "archive/dist.h"
#include "io/remote.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


typedef struct dist_state {
    cairn__dist_manifest m; /* its tables may point into `mf` */
    cairn_file *mf;
    char *what;             /* "DIR/manifest.cairn", for messages */
    uint64_t manifest_size;
    cairn_file **parts;     /* per rank file, opened on first use */
    pthread_mutex_t lock;   /* guards parts[] */
} dist_state;

int cairn__dist_sniff(const char *dir)
{
    char path[4096];
    struct stat st;
    uint64_t size;
    size_t len = strlen(dir);
    int slash = len && dir[len - 1] == '/';
    if ((size_t)snprintf(path, sizeof path, "%s%s%s", dir, slash ? "" : "/",
                         CAIRN__DIST_MANIFEST) >= sizeof path)
        return 0;
    if (cairn__remote_is_url(dir)) /* a key prefix holding a manifest object */
        return cairn__remote_size(path, &size, NULL) == CAIRN_OK;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static cairn_open_opts part_opts(const cairn_file *f)
{
    cairn_open_opts o = {.struct_size = sizeof o, .format = CAIRN_FORMAT_NATIVE,
                         .flags = f->flags & CAIRN_OPEN_NO_MMAP, .threads = f->threads,
                         .max_inflate = f->max_inflate};
    return o;
}

static cairn_status dist_open(cairn_file *f, cairn_error *err)
{
    dist_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    f->state = s;
    pthread_mutex_init(&s->lock, NULL);
    size_t len = strlen(f->path) + sizeof CAIRN__DIST_MANIFEST + 1;
    if (!(s->what = malloc(len)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    snprintf(s->what, len, "%s/%s", f->path, CAIRN__DIST_MANIFEST);
    cairn_open_opts o = part_opts(f);
    CAIRN_TRY(cairn_file_open(s->what, &o, &s->mf, err));
    cairn_file_info fi;
    CAIRN_TRY(cairn_file_get_info(s->mf, &fi, err));
    s->manifest_size = fi.file_size;
    CAIRN_TRY(cairn__dist_manifest_parse(s->mf, s->what, &s->m, err));
    s->parts = calloc((size_t)s->m.nfiles, sizeof *s->parts);
    if (!s->parts)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    return CAIRN_OK;
}

static void dist_close(cairn_file *f)
{
    dist_state *s = f->state;
    if (!s)
        return;
    for (uint64_t i = 0; s->parts && i < s->m.nfiles; i++)
        cairn_file_close(s->parts[i]);
    free(s->parts);
    cairn__dist_manifest_free(&s->m);
    cairn_file_close(s->mf);
    free(s->what);
    pthread_mutex_destroy(&s->lock);
    free(s);
    f->state = NULL;
}

/* Opens rank file i and checks it against dist.files. */
static cairn_status part_open(const cairn_file *f, dist_state *s, uint64_t i, cairn_file **out,
                              cairn_error *err)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s%srank-%06llu.cairn", f->path, s->m.rank_dir,
                         s->m.rank_dir[0] ? "/" : "", (unsigned long long)i) >= sizeof path)
        return cairn__fail(err, CAIRN_E_ARG, "%s: path too long", f->path);
    cairn_open_opts o = part_opts(f);
    cairn_file *p = NULL;
    cairn_error why;
    cairn_status st = cairn_file_open(path, &o, &p, &why);
    if (st == CAIRN_E_IO || st == CAIRN_E_NOT_FOUND)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: rank file %llu of the manifest is missing "
                           "or unreadable: %s", f->path, (unsigned long long)i, why.message);
    if (st != CAIRN_OK) {
        if (err)
            *err = why;
        return st;
    }
    cairn_file_id id;
    uint64_t want = s->m.files[2 * i], want_hash = s->m.files[2 * i + 1];
    st = cairn_file_get_id(p, &id, err);
    if (st == CAIRN_OK && id.size != want)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: %llu bytes, the manifest says %llu (a "
                         "truncated file, or one from another save)", path,
                         (unsigned long long)id.size, (unsigned long long)want);
    if (st == CAIRN_OK && id.index_hash != want_hash)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: index hash %016llx, the manifest says "
                         "%016llx (a file from another save)", path,
                         (unsigned long long)id.index_hash, (unsigned long long)want_hash);
    if (st != CAIRN_OK) {
        cairn_file_close(p);
        return st;
    }
    *out = p;
    return CAIRN_OK;
}

static cairn_status part_get(const cairn_file *f, uint64_t i, const cairn_file **out,
                             cairn_error *err)
{
    dist_state *s = f->state;
    cairn_status st = CAIRN_OK;
    pthread_mutex_lock(&s->lock);
    if (!s->parts[i])
        st = part_open(f, s, i, &s->parts[i], err);
    *out = s->parts[i];
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* The piece of tensor t in rank file `file`: its index there, checked. */
static cairn_status piece_find(const cairn_file *f, const cairn__dist_tensor *d, uint64_t file,
                               const uint64_t *ext, const cairn_file **part, uint64_t *index,
                               cairn_error *err)
{
    CAIRN_TRY(part_get(f, file, part, err));
    cairn_tensor_info info;
    char pn[96];
    const char *n = cairn__printable(d->name, d->name_len, pn, sizeof pn);
    if (memchr(d->name, '\0', d->name_len)) /* cannot be: names were checked */
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: bad name", f->path);
    cairn_status st = cairn_tensor_find(*part, d->name, index, &info, err);
    if (st == CAIRN_E_NOT_FOUND)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: rank file %llu has no piece of tensor '%s'",
                           f->path, (unsigned long long)file, n);
    CAIRN_TRY(st);
    int ok = info.dtype == d->dtype && info.rank == d->rank;
    for (uint32_t j = 0; ok && j < d->rank; j++)
        ok = info.dims[j] == ext[j];
    if (!ok)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: rank file %llu: tensor '%s' is %s of rank "
                           "%u, not the manifest's box (%s, rank %u)", f->path,
                           (unsigned long long)file, n, cairn_dtype_name(info.dtype), info.rank,
                           cairn_dtype_name(d->dtype), d->rank);
    return CAIRN_OK;
}

static cairn_status dist_read_box(const cairn_file *f, uint64_t index, const uint64_t *offset,
                                  const uint64_t *extent, cairn_dtype dtype, void *dst,
                                  unsigned flags, cairn_error *err)
{
    dist_state *s = f->state;
    const cairn__dist_tensor *d = &s->m.tensors[index];
    uint64_t zero[CAIRN_MAX_RANK] = {0};
    if (d->rank == 0)
        offset = extent = zero;
    cairn__dist_piece *p = NULL;
    size_t n = 0;
    CAIRN_TRY(cairn__dist_plan(&s->m, s->what, index, offset, extent, &p, &n, err));
    cairn_status st = CAIRN_OK;
    for (size_t i = 0; i < n && st == CAIRN_OK; i++) {
        const cairn_file *part;
        uint64_t pi;
        st = piece_find(f, d, p[i].file, p[i].ext, &part, &pi, err);
        if (st == CAIRN_OK && (flags & CAIRN_READ_VERIFY))
            st = cairn_tensor_verify(part, pi, err);
        if (st == CAIRN_OK)
            st = cairn__box_copy(part, pi, d->rank, p[i].off, p[i].ext, offset, extent,
                                 p[i].ioff, p[i].iext, dtype, dst, err);
    }
    free(p);
    return st;
}

/* Raw bytes [lo, hi) of the global tensor in C order: the flat element
 * range split into at most 2 x rank boxes, each contiguous in C order. */
static cairn_status flat_range(const cairn_file *f, const cairn__dist_tensor *d, uint64_t index,
                               uint32_t k, uint64_t *pre, uint64_t lo, uint64_t hi, uint8_t *dst,
                               cairn_error *err)
{
    size_t es = cairn_dtype_size(d->dtype);
    uint64_t stride = 1;
    for (uint32_t j = k + 1; j < d->rank; j++)
        stride *= d->dims[j];
    uint64_t off[CAIRN_MAX_RANK], ext[CAIRN_MAX_RANK];
    if (d->rank == 0 || lo >= hi)
        return lo >= hi ? CAIRN_OK
                        : dist_read_box(f, index, NULL, NULL, d->dtype, dst, 0, err);
    uint64_t a = lo / stride, b = hi / stride;
    if (a == b) { /* within one slab of dimension k */
        pre[k] = a;
        return flat_range(f, d, index, k + 1, pre, lo - a * stride, hi - a * stride, dst, err);
    }
    if (lo % stride) {
        pre[k] = a;
        uint64_t n = stride - lo % stride;
        CAIRN_TRY(flat_range(f, d, index, k + 1, pre, lo % stride, stride, dst, err));
        dst += n * es;
        a++;
    }
    if (b > a) {
        for (uint32_t j = 0; j < d->rank; j++) {
            off[j] = j < k ? pre[j] : j == k ? a : 0;
            ext[j] = j < k ? 1 : j == k ? b - a : d->dims[j];
        }
        CAIRN_TRY(dist_read_box(f, index, off, ext, d->dtype, dst, 0, err));
        dst += (b - a) * stride * es;
    }
    if (hi % stride) {
        pre[k] = b;
        CAIRN_TRY(flat_range(f, d, index, k + 1, pre, 0, hi % stride, dst, err));
    }
    return CAIRN_OK;
}

static cairn_status dist_load_range(const cairn_file *f, uint64_t index, uint64_t lo,
                                    uint64_t hi, void *dst, cairn_error *err)
{
    dist_state *s = f->state;
    const cairn__dist_tensor *d = &s->m.tensors[index];
    size_t es = cairn_dtype_size(d->dtype);
    uint64_t pre[CAIRN_MAX_RANK] = {0};
    if (lo % es || hi % es)
        return cairn__fail(err, CAIRN_E_ARG, "%s: byte range not on element bounds", f->path);
    return flat_range(f, d, index, 0, pre, lo / es, hi / es, dst, err);
}

static cairn_status dist_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    dist_state *s = f->state;
    const cairn__dist_tensor *d = &s->m.tensors[index];
    return dist_load_range(f, index, 0, d->count * cairn_dtype_size(d->dtype), dst, err);
}

static uint64_t dist_count(const cairn_file *f)
{
    const dist_state *s = f->state;
    return s->m.ntensors;
}

static cairn_status dist_tensor_at(const cairn_file *f, uint64_t index, cairn__tensor *out,
                                   cairn_error *err)
{
    const dist_state *s = f->state;
    const cairn__dist_tensor *d = &s->m.tensors[index];
    memset(out, 0, sizeof *out);
    out->info.name = d->name;
    out->info.name_len = d->name_len;
    out->info.dtype = d->dtype;
    out->info.rank = d->rank;
    memcpy(out->info.dims, d->dims, sizeof d->dims);
    out->info.count = d->count;
    out->info.raw_size = d->count * cairn_dtype_size(d->dtype);
    out->info.stored_size = out->info.raw_size;
    out->info.alignment = 1;
    out->via_load = 1;
    return CAIRN_OK;
}

static cairn_status dist_find(const cairn_file *f, const char *name, size_t len,
                              uint64_t *index, cairn_error *err)
{
    const dist_state *s = f->state;
    return cairn__dist_find(&s->m, f->path, name, len, index, err);
}

static cairn_status dist_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    const dist_state *s = f->state;
    memset(out, 0, sizeof *out);
    out->format = CAIRN_FORMAT_NATIVE;
    out->version_major = CAIRN_FORMAT_MAJOR;
    out->version_minor = CAIRN_FORMAT_MINOR;
    out->tensor_count = s->m.ntensors;
    /* sums of hostile numbers: saturated, never wrapped */
    out->file_size = s->manifest_size;
    for (uint64_t i = 0; i < s->m.nfiles; i++)
        if (cairn__add_overflow(out->file_size, s->m.files[2 * i], &out->file_size))
            out->file_size = UINT64_MAX;
    for (uint64_t t = 0; t < s->m.ntensors; t++) {
        uint64_t bytes = s->m.tensors[t].count * cairn_dtype_size(s->m.tensors[t].dtype);
        if (cairn__add_overflow(out->raw_bytes, bytes, &out->raw_bytes))
            out->raw_bytes = UINT64_MAX;
    }
    out->payload_bytes = out->raw_bytes;
    out->alignment = 1;
    out->has_metadata = cairn_value_count(s->m.meta) > 0;
    return CAIRN_OK;
}

/* Every rank file opens and matches dist.files, holds exactly its boxes'
 * pieces, and no two boxes of a tensor overlap. Payloads: verify_tensor. */
static cairn_status dist_verify_structure(const cairn_file *f, cairn_error *err)
{
    dist_state *s = f->state;
    uint64_t *held = calloc((size_t)s->m.nfiles, sizeof *held);
    if (!held)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    /* The manifest itself, every byte (its tables were checked at open). */
    cairn_status st = cairn_file_verify(s->mf, err);
    for (uint64_t t = 0; st == CAIRN_OK && t < s->m.ntensors; t++) {
        const cairn__dist_tensor *d = &s->m.tensors[t];
        for (uint64_t b = 0; b < d->nbox; b++)
            held[d->box[b * (1 + 2 * (uint64_t)d->rank)]]++;
        st = cairn__dist_check_tensor(&s->m, s->what, t, err);
    }
    for (uint64_t i = 0; st == CAIRN_OK && i < s->m.nfiles; i++) {
        const cairn_file *p;
        st = part_get(f, i, &p, err);
        if (st == CAIRN_OK && cairn_file_count(p) != held[i])
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: %llu tensors, the manifest gives it %llu "
                             "boxes", cairn_file_path(p), (unsigned long long)cairn_file_count(p),
                             (unsigned long long)held[i]);
    }
    free(held);
    return st;
}

static cairn_status dist_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    dist_state *s = f->state;
    const cairn__dist_tensor *d = &s->m.tensors[index];
    uint64_t per = 1 + 2 * (uint64_t)d->rank;
    for (uint64_t b = 0; b < d->nbox; b++) {
        const uint64_t *rec = d->box + b * per;
        const cairn_file *part;
        uint64_t pi;
        CAIRN_TRY(piece_find(f, d, rec[0], rec + 1 + d->rank, &part, &pi, err));
        CAIRN_TRY(cairn_tensor_verify(part, pi, err));
    }
    return CAIRN_OK;
}

static cairn_status dist_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const dist_state *s = f->state;
    return cairn__metadata_copy(f, s->m.meta, out, err);
}

int cairn__dist_is(const cairn_file *f) { return f->ops == &cairn__dist_reader; }

cairn_status cairn__dist_check_parts(const cairn_file *f, cairn_error *err)
{
    if (!cairn__dist_is(f))
        return CAIRN_OK;
    const dist_state *s = f->state;
    for (uint64_t i = 0; i < s->m.nfiles; i++) {
        const cairn_file *p;
        CAIRN_TRY(part_get(f, i, &p, err));
    }
    return CAIRN_OK;
}

const cairn__reader_ops cairn__dist_reader = CAIRN__READER_OPS(
    dist, CAIRN_FORMAT_NATIVE, .close = dist_close, .count = dist_count,
    .tensor_at = dist_tensor_at, .find = dist_find, .file_info = dist_file_info,
    .verify_structure = dist_verify_structure, .read_metadata = dist_read_metadata,
    .load = dist_load, .load_range = dist_load_range, .verify_tensor = dist_verify_tensor,
    .read_box = dist_read_box);
