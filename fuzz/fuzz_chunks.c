/* fuzz_chunks.c -- libFuzzer target for the chunked decoder of compressed
 * native tensors (src/chunks.c, src/codec.c). The input is not a file but a
 * recipe for one, so that the fuzzer's bytes reach the codecs and the chunk
 * table checks instead of failing checksums: tests/chunkfile.h builds a
 * valid 1.1 file around fuzzer-chosen chunk streams (every checksum right),
 * optionally damages one table or record field and re-seals the checksums,
 * then the file is opened, read whole, converted, read in ranges and
 * verified, mapped and through pread.
 *
 * Recipe:
 *   byte 0  codec (1 + b % 4; b >= 0xF0: b itself, an unknown codec)
 *   byte 1  filter (b & 1; b >= 0xF0: b itself)
 *   byte 2  dtype (1 + b % 17)
 *   byte 3  bits 0-1: chunk size 2^(16 + bits); bit 2: damage a field;
 *           bit 3: read through pread; bit 4: 1 thread
 *   byte 4  bits 0-3: chunk count - 1
 *   byte 5-6  the last chunk's raw size (clamped to whole elements)
 *   byte 7-14 damage: table entry, field offset, xor mask, range seeds
 *   then per chunk: u16 length, that many stream bytes; a length of 0xFFFF
 *   stores the chunk raw (filler bytes of its raw size). */
#include "../tests/chunkfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CHUNKS 16

static void exercise(const uint8_t *file, size_t size, unsigned flags, unsigned threads,
                     uint64_t seed)
{
    cairn_file *f;
    cairn_error err;
    cairn_open_opts o = {.struct_size = sizeof o, .flags = flags, .format = CAIRN_FORMAT_NATIVE,
                         .threads = threads};
    if (cairn_file_open_memory(file, size, &o, &f, &err) != CAIRN_OK) {
        if (!err.message[0])
            __builtin_trap(); /* every failure explains itself */
        return;
    }
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        if (cairn_tensor_info_at(f, i, &t, &err) != CAIRN_OK || t.raw_size > (16u << 20))
            continue;
        uint8_t *buf = malloc(t.raw_size ? (size_t)t.raw_size : 1);
        cairn_status st = cairn_tensor_read(f, i, t.dtype, buf, (size_t)t.raw_size, 0, &err);
        if (st != CAIRN_OK && !err.message[0])
            __builtin_trap();
        size_t es = cairn_dtype_size(t.dtype);
        if (t.count > 0) {
            uint64_t first = seed % t.count, n = (seed >> 20) % (t.count - first + 1);
            uint8_t *part = malloc(n ? (size_t)n * es : 1);
            cairn_status rs = cairn_tensor_read_range(f, i, first, n, t.dtype, part,
                                                      (size_t)n * es, 0, &err);
            /* a range of a tensor that reads whole reads the same bytes */
            if (st == CAIRN_OK && rs == CAIRN_OK && memcmp(part, buf + first * es, (size_t)n * es))
                __builtin_trap();
            if (cairn_dtype_can_convert(t.dtype, CAIRN_F64) && n <= (1u << 20)) {
                uint8_t *d = malloc(n ? (size_t)n * 16 : 1);
                cairn_dtype to = t.dtype == CAIRN_C64 || t.dtype == CAIRN_C128 ? CAIRN_C128
                                                                                : CAIRN_F64;
                cairn_tensor_read_range(f, i, first, n, to, d, (size_t)n * cairn_dtype_size(to),
                                        0, &err);
                free(d);
            }
            free(part);
        }
        free(buf);
    }
    cairn_file_verify(f, &err);
    cairn_file_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 15)
        return 0;
    uint8_t codec = data[0] >= 0xF0 ? data[0] : (uint8_t)(1 + data[0] % 4);
    uint8_t filter = data[1] >= 0xF0 ? data[1] : (uint8_t)(data[1] & 1);
    cairn_dtype dtype = (cairn_dtype)(1 + data[2] % 17);
    size_t es = cairn_dtype_size(dtype);
    uint64_t chunk = UINT64_C(1) << (16 + (data[3] & 3));
    size_t n = 1 + (data[4] & 15);
    uint64_t last = 1 + (((uint64_t)data[5] | (uint64_t)data[6] << 8) << (data[3] & 3));
    last = last > chunk ? chunk : last;
    last = (last + es - 1) / es * es;
    const uint8_t *damage = data + 7;
    size_t at = 15;
    cf_chunk ch[MAX_CHUNKS];
    uint8_t *filler[MAX_CHUNKS] = {0};
    size_t used = 0;
    for (; used < n && at + 2 <= size; used++) {
        uint32_t len = (uint32_t)data[at] | (uint32_t)data[at + 1] << 8;
        uint32_t raw = (uint32_t)(used + 1 < n ? chunk : last);
        at += 2;
        if (len == 0xFFFF) { /* stored raw */
            filler[used] = malloc(raw);
            for (uint32_t k = 0; k < raw; k++)
                filler[used][k] = (uint8_t)(k * 31 + used);
            ch[used] = (cf_chunk){filler[used], raw, raw};
            continue;
        }
        if (len > size - at)
            len = (uint32_t)(size - at);
        ch[used] = (cf_chunk){data + at, len, raw};
        at += len;
    }
    if (used == 0)
        return 0;
    /* the count follows the chunks actually there */
    uint64_t raw_total = (used - 1) * chunk + ch[used - 1].raw;
    size_t fsize;
    uint8_t *file = cf_build(codec, filter, dtype, raw_total / es, chunk, ch, used, &fsize);
    if (data[3] & 4) {
        /* one field of the table or the record, damaged, checksums re-sealed */
        size_t rec = cf_record_at(file, fsize), tab = cf_table_at(file, fsize);
        size_t entry = damage[0] % (used + 1);
        size_t target = damage[1] & 1 ? rec + damage[2] % NATIVE_RECORD_SIZE
                        : entry == used ? tab + damage[2] % CT_HEADER_SIZE
                                        : tab + CT_HEADER_SIZE + (entry * CE_SIZE) +
                                              damage[2] % CE_SIZE;
        if (target < fsize)
            file[target] ^= damage[3] ? damage[3] : 1;
        cf_fix_sums(file, fsize);
    }
    uint64_t seed;
    memcpy(&seed, damage + 4, 4);
    seed |= (uint64_t)damage[0] << 40;
    exercise(file, fsize, data[3] & 8 ? CAIRN_OPEN_NO_MMAP : 0, data[3] & 16 ? 1 : 2, seed);
    free(file);
    for (size_t i = 0; i < used; i++)
        free(filler[i]);
    return 0;
}
