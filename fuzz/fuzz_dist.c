/* fuzz_dist.c -- libFuzzer target for the distributed checkpoint manifest
 * (docs/FORMAT.md §20.1): the input drives a manifest's four tables (each
 * word from one input byte, 254 = 2^40 and 255 = 2^64-1, so structures the
 * checks must refuse or accept are both reachable past the native file's
 * checksums), which is written to memory, parsed, and planned against
 * (whole tensors, halves, single elements); flag 32 adds a "rank_dir" of
 * 15 to 17 input bytes (16 lowercase hex digits are the only valid form).
 * The raw input is also parsed as a manifest file as it stands. */
#include "archive/dist.h"

#include <cairn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t word(uint8_t b)
{
    return b == 255 ? UINT64_MAX : b == 254 ? (UINT64_C(1) << 40) : b;
}

static void plan_all(const cairn__dist_manifest *m)
{
    for (uint64_t t = 0; t < m->ntensors && t < 64; t++) {
        const cairn__dist_tensor *d = &m->tensors[t];
        uint64_t off[CAIRN_MAX_RANK] = {0}, ext[CAIRN_MAX_RANK];
        cairn__dist_piece *p;
        size_t n;
        if (cairn__dist_plan(m, "fuzz", t, off, d->dims, &p, &n, NULL) == CAIRN_OK)
            free(p);
        for (uint32_t j = 0; j < d->rank; j++) {
            off[j] = d->dims[j] / 2;
            ext[j] = d->dims[j] - off[j];
        }
        if (cairn__dist_plan(m, "fuzz", t, off, ext, &p, &n, NULL) == CAIRN_OK)
            free(p);
        for (uint32_t j = 0; j < d->rank; j++)
            ext[j] = d->dims[j] ? 1 : 0;
        if (cairn__dist_plan(m, "fuzz", t, off, ext, &p, &n, NULL) == CAIRN_OK)
            free(p);
        cairn__dist_check_tensor(m, "fuzz", t, NULL);
        uint64_t index;
        cairn__dist_find(m, "fuzz", d->name, d->name_len, &index, NULL);
    }
}

static void parse_bytes(const void *bytes, size_t size)
{
    cairn_file *f;
    if (cairn_file_open_memory(bytes, size, NULL, &f, NULL) != CAIRN_OK)
        return;
    cairn__dist_manifest m;
    if (cairn__dist_manifest_parse(f, "fuzz", &m, NULL) == CAIRN_OK) {
        plan_all(&m);
        cairn__dist_manifest_free(&m);
    }
    cairn_file_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_bytes(data, size);
    if (size < 6)
        return 0;
    uint64_t ranks = data[0] % 9, ntensors = data[1] % 9, names_len = data[2],
             nwords = data[3], flags = data[4], nfiles = data[5] % 9;
    const uint8_t *p = data + 6, *end = data + size;
    uint8_t names[256];
    uint64_t tensors[8 * 11], boxes[256], files[16];
    for (uint64_t i = 0; i < names_len; i++)
        names[i] = p < end ? *p++ : 0;
    for (uint64_t i = 0; i < ntensors * 11; i++)
        tensors[i] = p < end ? word(*p++) : 0;
    for (uint64_t i = 0; i < nwords; i++)
        boxes[i] = p < end ? word(*p++) : 0;
    for (uint64_t i = 0; i < 2 * nfiles; i++)
        files[i] = p < end ? *p++ : 0;
    cairn_value *tree = cairn_value_map();
    if (!(flags & 1))
        cairn_value_set(tree, "cairn_dist", cairn_value_int(flags & 2 ? 2 : 1), NULL);
    cairn_value_set(tree, "ranks", cairn_value_int((int64_t)ranks), NULL);
    if (!(flags & 4))
        cairn_value_set(tree, "metadata", cairn_value_map(), NULL);
    if (flags & 32) {
        char dir[18] = {0};
        size_t len = 15 + (size_t)(flags >> 6) % 3;
        for (size_t i = 0; i < len; i++)
            dir[i] = p < end ? (char)*p++ : 'a';
        cairn_value_set(tree, "rank_dir", cairn_value_string_n(dir, len), NULL);
    }
    cairn_write_opts wo = {.struct_size = sizeof wo, .threads = 1};
    cairn_writer *w;
    if (cairn_writer_open_memory(&wo, &w, NULL) != CAIRN_OK) {
        cairn_value_free(tree);
        return 0;
    }
    uint64_t df[2] = {nfiles, 2}, dn = names_len, dt[2] = {ntensors, flags & 8 ? 10 : 11},
             db = nwords;
    if (flags & 8)
        dt[0] = ntensors * 11 / 10;
    cairn_writer_set_metadata(w, tree, NULL);
    cairn_writer_add(w, "dist.files", CAIRN_U64, 2, df, files, NULL);
    cairn_writer_add(w, "dist.names", CAIRN_U8, 1, &dn, names, NULL);
    cairn_writer_add(w, "dist.tensors", CAIRN_U64, 2, dt, tensors, NULL);
    if (!(flags & 16))
        cairn_writer_add(w, "dist.boxes", CAIRN_U64, 1, &db, boxes, NULL);
    void *out = NULL;
    size_t out_size = 0;
    if (cairn_writer_commit_memory(w, &out, &out_size, NULL) == CAIRN_OK)
        parse_bytes(out, out_size);
    cairn_free(out);
    cairn_value_free(tree);
    return 0;
}
