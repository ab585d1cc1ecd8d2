/* fuzz_gguf.c -- libFuzzer target: opens arbitrary bytes in memory as GGUF,
 * reads everything a caller could ask for, and writes what opened back
 * through the GGUF writer, which must give the same tensors and metadata
 * and, written once more, the same bytes. */
#include <cairn.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define READ_LIMIT (64u << 20) /* skip tensors larger than this: the input is small */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads tensor i as stored (returned, caller frees) and once widened to F64
 * when that is allowed, so the conversion paths run too. */
static uint8_t *read_tensor(cairn_file *f, uint64_t i)
{
    cairn_tensor_info info;
    if (cairn_tensor_info_at(f, i, &info, NULL) != CAIRN_OK || info.raw_size > READ_LIMIT)
        return NULL;
    uint8_t *buf = malloc(info.raw_size ? (size_t)info.raw_size : 1);
    if (buf && cairn_tensor_read(f, i, info.dtype, buf, (size_t)info.raw_size, 0, NULL) !=
                   CAIRN_OK) {
        free(buf);
        buf = NULL;
    }
    if (cairn_dtype_can_convert(info.dtype, CAIRN_F64) && info.count <= READ_LIMIT / 8) {
        size_t n = (size_t)info.count * 8;
        void *w = malloc(n ? n : 1);
        if (w)
            cairn_tensor_read(f, i, CAIRN_F64, w, n, 0, NULL);
        free(w);
    }
    const void *view;
    if (cairn_tensor_data(f, i, &view, NULL) == CAIRN_OK && info.raw_size > 0) {
        volatile uint8_t sink = ((const uint8_t *)view)[info.raw_size - 1];
        (void)sink;
    }
    uint64_t idx;
    if (cairn_tensor_find(f, info.name, &idx, NULL, NULL) != CAIRN_OK || idx != i)
        __builtin_trap(); /* every listed name must be found at its index */
    return buf;
}

static cairn_status write_gguf(cairn_file *f, uint8_t **bytes, const cairn_value *meta,
                               void **out, size_t *out_len)
{
    cairn_write_opts wo = {.struct_size = sizeof wo, .format = CAIRN_FORMAT_GGUF};
    cairn_writer *w = NULL;
    cairn_status st = cairn_writer_open_memory(&wo, &w, NULL);
    for (uint64_t i = 0; st == CAIRN_OK && i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        cairn_tensor_info_at(f, i, &in, NULL);
        st = cairn_writer_add(w, in.name, in.dtype, in.rank, in.dims, bytes[i], NULL);
    }
    if (st == CAIRN_OK)
        st = cairn_writer_set_metadata(w, meta, NULL);
    if (st == CAIRN_OK)
        return cairn_writer_commit_memory(w, out, out_len, NULL);
    cairn_writer_abort(w);
    return st;
}

/* JSON of gguf.<member>, for comparing trees (the version may differ). */
static char *member_json(const cairn_value *meta, const char *member)
{
    char *json = NULL;
    const cairn_value *v = cairn_value_get(cairn_value_get(meta, "gguf"), member);
    if (!v || cairn_value_to_json(v, 0, &json, NULL) != CAIRN_OK)
        __builtin_trap();
    return json;
}

/* Every alignment the reader accepts the writer accepts, up to 64 KiB; an
 * array of arrays (its type record is a list) it reads but never writes,
 * since ggml refuses such files (docs/FORMAT.md §13.4). */
static int writable(const cairn_value *meta)
{
    const cairn_value *types = cairn_value_get(cairn_value_get(meta, "gguf"), "types");
    for (size_t i = 0; i < cairn_value_count(types); i++)
        if (cairn_value_get_type(cairn_value_at(types, i)) == CAIRN_VALUE_LIST)
            return 0;
    int64_t a = 32;
    const cairn_value *v = cairn_value_get(cairn_value_get(cairn_value_get(meta, "gguf"), "kv"),
                                           "general.alignment");
    return !v || (cairn_value_get_int(v, &a) == CAIRN_OK && a <= 65536);
}

static void rewrite(cairn_file *f, uint8_t **bytes, const cairn_value *meta)
{
    void *out = NULL, *again = NULL;
    size_t out_len = 0, again_len = 0;
    uint64_t n = cairn_file_count(f);
    for (uint64_t i = 0; i < n; i++)
        if (!bytes[i])
            return;
    cairn_status st = write_gguf(f, bytes, meta, &out, &out_len);
    if (st != CAIRN_OK) {
        /* Whatever the reader accepts must write back, but for what ggml's
         * reader refuses (an array of arrays: CAIRN_E_UNSUPPORTED naming the
         * key, docs/FORMAT.md §13.4). */
        if (writable(meta) && st != CAIRN_E_UNSUPPORTED)
            __builtin_trap();
        return;
    }
    cairn_file *g = NULL;
    cairn_value *meta2 = NULL;
    if (cairn_file_open_memory(out, out_len, NULL, &g, NULL) != CAIRN_OK ||
        cairn_file_count(g) != n || cairn_file_read_metadata(g, &meta2, NULL) != CAIRN_OK)
        __builtin_trap();
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info a, b;
        const void *view = NULL;
        cairn_tensor_info_at(f, i, &a, NULL);
        cairn_tensor_info_at(g, i, &b, NULL);
        if (strcmp(a.name, b.name) != 0 || a.dtype != b.dtype || a.rank != b.rank ||
            memcmp(a.dims, b.dims, sizeof a.dims) != 0 ||
            cairn_tensor_data(g, i, &view, NULL) != CAIRN_OK ||
            (a.raw_size && memcmp(view, bytes[i], (size_t)a.raw_size) != 0))
            __builtin_trap();
    }
    static const char *const members[] = {"kv", "types", "tensor_types"};
    for (int k = 0; k < 3; k++) {
        char *x = member_json(meta, members[k]), *y = member_json(meta2, members[k]);
        if (strcmp(x, y) != 0)
            __builtin_trap(); /* the typed metadata must come back as it was */
        cairn_free(x);
        cairn_free(y);
    }
    /* A file cairn wrote is a fixed point. */
    if (write_gguf(g, bytes, meta2, &again, &again_len) != CAIRN_OK || again_len != out_len ||
        memcmp(again, out, out_len) != 0)
        __builtin_trap();
    cairn_free(again);
    cairn_value_free(meta2);
    cairn_file_close(g);
    cairn_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Odd sizes name the format; even ones go through detection. */
    cairn_open_opts opts = {.struct_size = sizeof opts,
                            .format = size % 2 ? CAIRN_FORMAT_GGUF : CAIRN_FORMAT_AUTO};
    cairn_file *f = NULL;
    if (cairn_file_open_memory(data, size, &opts, &f, NULL) != CAIRN_OK)
        return 0;
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, NULL);
    uint64_t n = cairn_file_count(f);
    uint8_t **bytes = calloc(n ? (size_t)n : 1, sizeof *bytes);
    for (uint64_t i = 0; bytes && i < n; i++)
        bytes[i] = read_tensor(f, i);
    cairn_tensor_find(f, "token_embd.weight", NULL, NULL, NULL);
    cairn_value *meta = NULL;
    if (cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK) {
        char *json = NULL;
        cairn_value_to_json(meta, 0, &json, NULL);
        cairn_free(json);
    }
    cairn_file_verify(f, NULL);
    if (bytes && meta && fi.format == CAIRN_FORMAT_GGUF)
        rewrite(f, bytes, meta);
    cairn_value_free(meta);
    for (uint64_t i = 0; bytes && i < n; i++)
        free(bytes[i]);
    free(bytes);
    cairn_file_close(f);
    return 0;
}
