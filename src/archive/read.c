/* read.c -- format-independent tensor access: zero-copy views, reads into
 * caller buffers (byte swap, Fortran-to-C reordering, dtype conversion) and
 * checksum verification. */
#include "archive/archive.h"

#include <stdlib.h>
#include "io/copy.h"
#include "common/hash.h"
#include "codec/codec.h"

/* Reads and hashes in pieces this large, so each piece is hashed while it is
 * still in cache right after it was copied. */
#define CHUNK (1u << 20)

static cairn_status tensor_get(const cairn_file *f, uint64_t index, cairn__tensor *t,
                               cairn_error *err)
{
    if (!f)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_file");
    CAIRN_TRY(cairn__tensor_get(f, index, t, err));
    /* A compressed tensor the format can decode is marked via_load. */
    if (t->info.codec != CAIRN_CODEC_NONE && !t->via_load) {
        char codecs[256];
        cairn__codec_list(codecs, sizeof codecs);
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': codec %u with filter %u is "
                           "not supported by this library (it knows codecs %s; filters none (0) "
                           "and shuffle (1))", f->path, t->info.name, t->info.codec,
                           t->info.filter, codecs);
    }
    return CAIRN_OK;
}

/* The file that holds tensor `index` (updated to its index there): f itself,
 * or for a sharded archive the shard (archive.h, ops->owner). An index out
 * of range stays with f, which reports it. */
static const cairn_file *owner_of(const cairn_file *f, uint64_t *index)
{
    if (f && f->ops->owner && *index < cairn__reader_count(f))
        return f->ops->owner(f, *index, index);
    return f;
}

cairn_status cairn_tensor_data(const cairn_file *f, uint64_t index, const void **data,
                               cairn_error *err)
{
    cairn__tensor t;
    f = owner_of(f, &index);
    if (data)
        *data = NULL;
    if (!data)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_tensor_data: data must not be NULL");
    CAIRN_TRY(tensor_get(f, index, &t, err));
    if (!t.info.zero_copy)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s' has no zero-copy view (%s); "
                           "use cairn_tensor_read", f->path, t.info.name,
                           !f->src.base ? "file not mapped"
                           : t.big_endian ? "stored big-endian"
                           : t.fortran_order ? "stored in Fortran order" : "stored encoded");
    *data = cairn__file_ptr(f, t.info.offset, t.info.stored_size);
    return CAIRN_OK;
}

static cairn_status checksum_mismatch(const cairn_file *f, const cairn__tensor *t, uint64_t got,
                                      cairn_error *err)
{
    return cairn__fail(err, CAIRN_E_CHECKSUM, "%s: tensor '%s': checksum mismatch (stored "
                       "%016llx, computed %016llx over %llu bytes at offset %llu)", f->path,
                       t->info.name, (unsigned long long)t->info.checksum,
                       (unsigned long long)got, (unsigned long long)t->info.stored_size,
                       (unsigned long long)t->info.offset);
}

/* Copies the stored bytes into dst (exactly stored_size bytes), hashing them
 * on the way when `hash` is set. */
static cairn_status copy_stored(const cairn_file *f, const cairn__tensor *t, uint8_t *dst,
                                int hash, cairn_error *err)
{
    uint64_t size = t->info.stored_size;
    if (!hash) /* small copies never ask how many CPUs there are */
        return cairn__copy_out(&f->src, size < CAIRN__COPY_PARALLEL_MIN ? 1 : cairn__file_threads(f),
                               t->info.offset, dst, size, err);
    cairn__hasher *state = cairn__hasher_new();
    if (!state)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = cairn__copy_out_hashed(&f->src, t->info.offset, dst, size, state, err);
    uint64_t got = cairn__hasher_digest(state);
    cairn__hasher_free(state);
    if (st == CAIRN_OK && got != t->info.checksum)
        st = checksum_mismatch(f, t, got, err);
    return st;
}

/* Reorders a column-major array into row-major order. `elem` is the element
 * size; dims are the logical (C-order) dims. Iterates destination elements in
 * C order with an odometer over the source's Fortran strides. */
static void fortran_to_c(const uint8_t *src, uint8_t *dst, uint32_t rank, const uint64_t *dims,
                         size_t elem, uint64_t count)
{
    uint64_t stride[CAIRN_MAX_RANK], idx[CAIRN_MAX_RANK] = {0};
    uint64_t s = 1;
    for (uint32_t d = 0; d < rank; d++) {
        stride[d] = s;
        s *= dims[d];
    }
    uint64_t off = 0;
    for (uint64_t i = 0; i < count; i++) {
        memcpy(dst + i * elem, src + off * elem, elem);
        for (int d = (int)rank - 1; d >= 0; d--) {
            if (++idx[d] < dims[d]) {
                off += stride[d];
                break;
            }
            off -= stride[d] * (dims[d] - 1);
            idx[d] = 0;
        }
    }
}

/* Turns stored bytes in `raw` (stored_size bytes, possibly big-endian or
 * Fortran-ordered) into C-ordered little-endian elements of the stored dtype,
 * in place or into `scratch` (same size). Returns the buffer that holds them. */
static uint8_t *normalize(const cairn__tensor *t, uint8_t *raw, uint8_t *scratch)
{
    size_t esize = cairn_dtype_size(t->info.dtype);
    if (t->big_endian && esize > 1) {
        int complex = t->info.dtype == CAIRN_C64 || t->info.dtype == CAIRN_C128;
        size_t unit = complex ? esize / 2 : esize;
        cairn__byteswap(raw, (size_t)t->info.raw_size / unit, unit);
    }
    if (t->fortran_order && t->info.rank > 1 && t->info.count > 1) {
        fortran_to_c(raw, scratch, t->info.rank, t->info.dims, esize, t->info.count);
        return scratch;
    }
    return raw;
}

/* The general path: stage the whole stored tensor (from the input, or from
 * the format's load op), normalise it, convert. */
static cairn_status read_staged(const cairn_file *f, uint64_t index, const cairn__tensor *t,
                                cairn_dtype dtype, void *dst, int verify, cairn_error *err)
{
    size_t size = (size_t)t->info.raw_size; /* == stored_size unless via_load */
    int need_scratch = t->fortran_order && t->info.rank > 1 && t->info.count > 1;
    int direct = dtype == t->info.dtype; /* stage straight into dst */
    uint8_t none[1]; /* an empty tensor may come with a NULL dst */
    uint8_t *raw = direct ? (dst ? (uint8_t *)dst : none) : malloc(size ? size : 1);
    uint8_t *scratch = need_scratch ? malloc(size ? size : 1) : NULL;
    cairn_status st = CAIRN_OK;
    if (!raw || (need_scratch && !scratch)) {
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': cannot allocate %zu bytes to "
                         "convert it", f->path, t->info.name, size);
        goto done;
    }
    st = t->via_load ? f->ops->load(f, index, raw, err)
                     : copy_stored(f, t, raw, verify && t->info.has_checksum, err);
    if (st != CAIRN_OK)
        goto done;
    uint8_t *elems = normalize(t, raw, scratch);
    if (direct) {
        if (elems != dst && size > 0)
            memcpy(dst, elems, size);
    } else {
        st = cairn_convert(t->info.dtype, elems, dtype, dst, (size_t)t->info.count, err);
    }
done:
    if (!direct)
        free(raw);
    free(scratch);
    return st;
}

/* Conversion of a contiguous little-endian C-order tensor, a chunk at a time:
 * memory stays bounded by CHUNK beyond the caller's buffer. */
static cairn_status read_converting(const cairn_file *f, const cairn__tensor *t, cairn_dtype dtype,
                                    uint8_t *dst, int verify, cairn_error *err)
{
    size_t in_size = cairn_dtype_size(t->info.dtype), out_size = cairn_dtype_size(dtype);
    size_t per_chunk = CHUNK / in_size;
    uint8_t *buf = malloc(per_chunk * in_size);
    cairn__hasher *state = verify ? cairn__hasher_new() : NULL;
    cairn_status st = CAIRN_OK;
    if (!buf || (verify && !state)) {
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        goto done;
    }
    for (uint64_t i = 0; i < t->info.count && st == CAIRN_OK;) {
        uint64_t left = t->info.count - i;
        size_t n = left < per_chunk ? (size_t)left : per_chunk;
        const uint8_t *src = cairn__file_ptr(f, t->info.offset + i * in_size, n * in_size);
        if (!src) {
            st = cairn__file_read(f, t->info.offset + i * in_size, buf, n * in_size, err);
            src = buf;
        }
        if (st == CAIRN_OK && state)
            cairn__hasher_update(state, src, n * in_size);
        if (st == CAIRN_OK)
            st = cairn_convert(t->info.dtype, src, dtype, dst + i * out_size, n, err);
        i += n;
    }
    if (st == CAIRN_OK && state) {
        uint64_t got = cairn__hasher_digest(state);
        if (got != t->info.checksum)
            st = checksum_mismatch(f, t, got, err);
    }
done:
    free(buf);
    cairn__hasher_free(state);
    return st;
}

/* Decoded reads (compressed native tensors, ops->load_range) convert in
 * windows this large, aligned to multiples of it: every chunk size divides
 * it, so each chunk is decoded once, and memory stays bounded. */
#define DECODE_WINDOW (UINT64_C(16) << 20)

/* Elements [first, first + count) of a tensor whose format decodes byte
 * ranges (ops->load_range), into dst as `dtype`. */
static cairn_status read_decoded(const cairn_file *f, uint64_t index, const cairn__tensor *t,
                                 uint64_t first, uint64_t count, cairn_dtype dtype, uint8_t *dst,
                                 cairn_error *err)
{
    size_t in = cairn_dtype_size(t->info.dtype), out = cairn_dtype_size(dtype);
    uint64_t lo = first * in, hi = (first + count) * in;
    if (dtype == t->info.dtype)
        return f->ops->load_range(f, index, lo, hi, dst, err);
    uint8_t *buf = malloc((size_t)(hi - lo < DECODE_WINDOW ? hi - lo : DECODE_WINDOW));
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': out of memory", f->path,
                           t->info.name);
    cairn_status st = CAIRN_OK;
    for (uint64_t pos = lo; pos < hi && st == CAIRN_OK;) {
        uint64_t end = (pos / DECODE_WINDOW + 1) * DECODE_WINDOW;
        if (end > hi)
            end = hi;
        st = f->ops->load_range(f, index, pos, end, buf, err);
        if (st == CAIRN_OK)
            st = cairn_convert(t->info.dtype, buf, dtype, dst + (pos - lo) / in * out,
                               (size_t)((end - pos) / in), err);
        pos = end;
    }
    free(buf);
    return st;
}

/* The dtype a read asks for must exist and be reachable from the stored one;
 * *out_elem is its element size. */
static cairn_status target_check(const cairn_file *f, const cairn__tensor *t, cairn_dtype dtype,
                                 size_t *out_elem, cairn_error *err)
{
    *out_elem = cairn_dtype_size(dtype);
    if (*out_elem == 0)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': invalid target dtype %d", f->path,
                           t->info.name, (int)dtype);
    if (!cairn_dtype_can_convert(t->info.dtype, dtype))
        return cairn__fail(err, CAIRN_E_DTYPE, "%s: tensor '%s': cannot convert %s to %s", f->path,
                           t->info.name, cairn_dtype_name(t->info.dtype), cairn_dtype_name(dtype));
    return CAIRN_OK;
}

cairn_status cairn_tensor_read(const cairn_file *f, uint64_t index, cairn_dtype dtype, void *dst,
                               size_t dst_size, unsigned flags, cairn_error *err)
{
    cairn__tensor t;
    f = owner_of(f, &index);
    CAIRN_TRY(tensor_get(f, index, &t, err));
    size_t out_elem;
    CAIRN_TRY(target_check(f, &t, dtype, &out_elem, err));
    uint64_t need;
    if (cairn__mul_overflow(t.info.count, out_elem, &need) || need != dst_size)
        return cairn__fail(err, CAIRN_E_SIZE, "%s: tensor '%s': buffer of %zu bytes, need %llu "
                           "(%llu x %s)", f->path, t.info.name, dst_size,
                           (unsigned long long)need, (unsigned long long)t.info.count,
                           cairn_dtype_name(dtype));
    if (!dst && dst_size > 0)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL destination", f->path,
                           t.info.name);
    int verify = (flags & CAIRN_READ_VERIFY) && t.info.has_checksum;
    if (t.via_load && f->ops->load_range) /* checks each chunk's checksum itself */
        return read_decoded(f, index, &t, 0, t.info.count, dtype, dst, err);
    if (t.via_load) /* the load op checks the format's checksum itself */
        return read_staged(f, index, &t, dtype, dst, 0, err);
    if ((flags & CAIRN_READ_VERIFY) && f->ops->verify_tensor)
        CAIRN_TRY(f->ops->verify_tensor(f, index, err));
    int plain = !t.big_endian && !t.fortran_order;
    if (plain && dtype == t.info.dtype)
        return copy_stored(f, &t, dst, verify, err);
    if (plain)
        return read_converting(f, &t, dtype, dst, verify, err);
    return read_staged(f, index, &t, dtype, dst, verify, err);
}

static cairn_status verify_tensor(const cairn_file *f, const cairn__tensor *t, cairn_error *err)
{
    if (!t->info.has_checksum)
        return CAIRN_OK;
    const uint8_t *p = cairn__file_ptr(f, t->info.offset, t->info.stored_size);
    uint64_t got;
    if (p) {
        got = cairn__hash(p, (size_t)t->info.stored_size);
    } else {
        uint8_t *buf = malloc(CHUNK);
        cairn__hasher *state = cairn__hasher_new();
        cairn_status st = CAIRN_OK;
        if (!buf || !state)
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        for (uint64_t done = 0; st == CAIRN_OK && done < t->info.stored_size;) {
            uint64_t left = t->info.stored_size - done;
            size_t n = left < CHUNK ? (size_t)left : CHUNK;
            st = cairn__file_read(f, t->info.offset + done, buf, n, err);
            if (st == CAIRN_OK)
                cairn__hasher_update(state, buf, n);
            done += n;
        }
        got = st == CAIRN_OK ? cairn__hasher_digest(state) : 0;
        free(buf);
        cairn__hasher_free(state);
        CAIRN_TRY(st);
    }
    return got == t->info.checksum ? CAIRN_OK : checksum_mismatch(f, t, got, err);
}

cairn_status cairn_tensor_verify(const cairn_file *f, uint64_t index, cairn_error *err)
{
    cairn__tensor t;
    f = owner_of(f, &index);
    if (!f)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_file");
    CAIRN_TRY(cairn__tensor_get(f, index, &t, err));
    if (f->ops->verify_tensor)
        return f->ops->verify_tensor(f, index, err);
    return verify_tensor(f, &t, err);
}

cairn_status cairn_file_verify(const cairn_file *f, cairn_error *err)
{
    if (!f)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_file");
    if (f->ops->verify_structure)
        CAIRN_TRY(f->ops->verify_structure(f, err));
    uint64_t n = cairn__reader_count(f);
    for (uint64_t i = 0; i < n; i++) {
        cairn__tensor t;
        CAIRN_TRY(cairn__tensor_get(f, i, &t, err)); /* every tensor keeps the invariant */
        if (f->ops->verify_tensor)
            CAIRN_TRY(f->ops->verify_tensor(f, i, err));
        else
            CAIRN_TRY(verify_tensor(f, &t, err));
    }
    return CAIRN_OK;
}

int cairn_tensor_ranged(const cairn_file *f, uint64_t index)
{
    cairn__tensor t;
    f = owner_of(f, &index);
    if (!f || tensor_get(f, index, &t, NULL) != CAIRN_OK)
        return 0;
    if (t.via_load)
        return f->ops->load_range != NULL; /* as cairn_tensor_read_range decides */
    return !(t.fortran_order && t.info.rank > 1 && t.info.count > 1);
}

/* A range of a tensor that has no C-order byte range (Fortran order, or
 * bytes only its format's load op can produce): stage it whole. */
static cairn_status range_staged(const cairn_file *f, uint64_t index, const cairn__tensor *t,
                                 uint64_t first, uint64_t count, cairn_dtype dtype, uint8_t *dst,
                                 int verify, cairn_error *err)
{
    size_t in = cairn_dtype_size(t->info.dtype);
    uint8_t *all = malloc(t->info.raw_size ? (size_t)t->info.raw_size : 1);
    if (!all)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': cannot allocate %llu bytes to "
                           "stage it", f->path, t->info.name, (unsigned long long)t->info.raw_size);
    cairn_status st = read_staged(f, index, t, t->info.dtype, all, verify, err);
    if (st == CAIRN_OK && dtype == t->info.dtype)
        memcpy(dst, all + first * in, (size_t)(count * in));
    else if (st == CAIRN_OK)
        st = cairn_convert(t->info.dtype, all + first * in, dtype, dst, (size_t)count, err);
    free(all);
    return st;
}

/* A range of contiguous C-order elements, possibly big-endian, read and
 * converted a piece at a time. */
static cairn_status range_direct(const cairn_file *f, const cairn__tensor *t, uint64_t first,
                                 uint64_t count, cairn_dtype dtype, uint8_t *dst, cairn_error *err)
{
    size_t in = cairn_dtype_size(t->info.dtype), out = cairn_dtype_size(dtype);
    uint64_t at = t->info.offset + first * in;
    if (!t->big_endian && dtype == t->info.dtype)
        return cairn__file_read(f, at, dst, (size_t)(count * in), err);
    size_t per = CHUNK / in;
    uint8_t *buf = malloc(per * in);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': out of memory", f->path,
                           t->info.name);
    int complex = t->info.dtype == CAIRN_C64 || t->info.dtype == CAIRN_C128;
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; i < count && st == CAIRN_OK;) {
        size_t n = count - i < per ? (size_t)(count - i) : per;
        st = cairn__file_read(f, at + i * in, buf, n * in, err);
        if (st == CAIRN_OK && t->big_endian && in > 1)
            cairn__byteswap(buf, complex ? 2 * n : n, complex ? in / 2 : in);
        if (st == CAIRN_OK && dtype == t->info.dtype)
            memcpy(dst + i * out, buf, n * in);
        else if (st == CAIRN_OK)
            st = cairn_convert(t->info.dtype, buf, dtype, dst + i * out, n, err);
        i += n;
    }
    free(buf);
    return st;
}

cairn_status cairn_tensor_read_range(const cairn_file *f, uint64_t index, uint64_t first,
                                     uint64_t count, cairn_dtype dtype, void *dst, size_t dst_size,
                                     unsigned flags, cairn_error *err)
{
    cairn__tensor t;
    f = owner_of(f, &index);
    CAIRN_TRY(tensor_get(f, index, &t, err));
    size_t out_elem;
    CAIRN_TRY(target_check(f, &t, dtype, &out_elem, err));
    uint64_t end, need;
    if (cairn__add_overflow(first, count, &end) || end > t.info.count)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': elements [%llu, %llu + %llu) are "
                           "outside its %llu elements", f->path, t.info.name,
                           (unsigned long long)first, (unsigned long long)first,
                           (unsigned long long)count, (unsigned long long)t.info.count);
    if (cairn__mul_overflow(count, out_elem, &need) || need != dst_size)
        return cairn__fail(err, CAIRN_E_SIZE, "%s: tensor '%s': buffer of %zu bytes, need %llu "
                           "(%llu x %s)", f->path, t.info.name, dst_size,
                           (unsigned long long)need, (unsigned long long)count,
                           cairn_dtype_name(dtype));
    if (!dst && dst_size > 0)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL destination", f->path,
                           t.info.name);
    if (count == 0)
        return CAIRN_OK;
    if (t.via_load && f->ops->load_range)
        return read_decoded(f, index, &t, first, count, dtype, dst, err);
    if (t.via_load) /* the load op checks the format's checksum itself */
        return range_staged(f, index, &t, first, count, dtype, dst, 0, err);
    int verify = (flags & CAIRN_READ_VERIFY) && t.info.has_checksum && !f->ops->verify_tensor;
    if ((flags & CAIRN_READ_VERIFY) && f->ops->verify_tensor)
        CAIRN_TRY(f->ops->verify_tensor(f, index, err));
    if (t.fortran_order && t.info.rank > 1 && t.info.count > 1)
        return range_staged(f, index, &t, first, count, dtype, dst, verify, err);
    if (verify)
        CAIRN_TRY(verify_tensor(f, &t, err));
    return range_direct(f, &t, first, count, dtype, dst, err);
}
