/* fuzz_safetensors.c -- libFuzzer target: opens arbitrary bytes in memory as
 * safetensors, reads everything a caller could ask for, and writes what
 * opened back through the safetensors writer, which must reproduce it.
 * Inputs starting with 'J' are instead the text of a "cairn.meta" entry,
 * wrapped into a file, so the tagged-JSON parser sees structured input. */
#include <cairn.h>

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define READ_LIMIT (64u << 20) /* skip tensors larger than this: the input is small */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads tensor i as stored, and once more widened when a wider type exists,
 * so the conversion paths run too. Returns the stored bytes (caller frees). */
static uint8_t *read_tensor(cairn_file *f, uint64_t i, cairn_tensor_info *info)
{
    if (cairn_tensor_info_at(f, i, info, NULL) != CAIRN_OK || info->raw_size > READ_LIMIT)
        return NULL;
    uint8_t *buf = malloc(info->raw_size ? (size_t)info->raw_size : 1);
    if (buf && cairn_tensor_read(f, i, info->dtype, buf, (size_t)info->raw_size,
                                 CAIRN_READ_VERIFY, NULL) != CAIRN_OK) {
        free(buf);
        buf = NULL;
    }
    cairn_dtype wide = info->dtype == CAIRN_C64 ? CAIRN_C128 : CAIRN_F64;
    if (cairn_dtype_can_convert(info->dtype, wide) && info->count <= READ_LIMIT / 16) {
        size_t n = (size_t)info->count * cairn_dtype_size(wide);
        void *w = malloc(n ? n : 1);
        if (w)
            cairn_tensor_read(f, i, wide, w, n, 0, NULL);
        free(w);
    }
    const void *view;
    if (cairn_tensor_data(f, i, &view, NULL) == CAIRN_OK && info->raw_size > 0) {
        volatile uint8_t sink = ((const uint8_t *)view)[info->raw_size - 1];
        (void)sink;
    }
    uint64_t idx;
    if (strlen(info->name) != info->name_len || info->name_len == 0)
        __builtin_trap(); /* names are non-empty C strings: "\u0000" in a key is refused */
    if (cairn_tensor_find(f, info->name, &idx, NULL, NULL) != CAIRN_OK || idx != i)
        __builtin_trap(); /* every listed name must be found at its index */
    return buf;
}

/* What opened must survive a save and a reopen with the same tensors. */
static void rewrite(cairn_file *f, uint8_t **bytes, const cairn_value *meta)
{
    cairn_write_opts wo = {.struct_size = sizeof wo, .format = CAIRN_FORMAT_SAFETENSORS};
    cairn_writer *w = NULL;
    void *out = NULL;
    size_t out_len = 0;
    uint64_t n = cairn_file_count(f);
    if (cairn_writer_open_memory(&wo, &w, NULL) != CAIRN_OK)
        return;
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info in;
        cairn_tensor_info_at(f, i, &in, NULL);
        if (!bytes[i] || cairn_writer_add(w, in.name, in.dtype, in.rank, in.dims, bytes[i],
                                          NULL) != CAIRN_OK) {
            cairn_writer_abort(w);
            return;
        }
    }
    if (meta)
        cairn_writer_set_metadata(w, meta, NULL);
    if (cairn_writer_commit_memory(w, &out, &out_len, NULL) != CAIRN_OK)
        return; /* e.g. metadata the JSON view cannot carry back */
    cairn_open_opts oo = {.struct_size = sizeof oo};
    cairn_file *g = NULL;
    if (cairn_file_open_memory(out, out_len, &oo, &g, NULL) != CAIRN_OK || cairn_file_count(g) != n)
        __builtin_trap();
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info a, b;
        cairn_tensor_info_at(f, i, &a, NULL);
        cairn_tensor_info_at(g, i, &b, NULL);
        const void *view = NULL;
        if (strcmp(a.name, b.name) != 0 || a.dtype != b.dtype || a.rank != b.rank ||
            memcmp(a.dims, b.dims, sizeof a.dims) != 0 ||
            cairn_tensor_data(g, i, &view, NULL) != CAIRN_OK ||
            memcmp(view, bytes[i], (size_t)a.raw_size) != 0)
            __builtin_trap();
    }
    cairn_value *again = NULL;
    if (meta && cairn_file_read_metadata(g, &again, NULL) == CAIRN_OK) {
        char *a = NULL, *b = NULL;
        cairn_value_to_json(meta, 0, &a, NULL);
        cairn_value_to_json(again, 0, &b, NULL);
        if (a && b && strcmp(a, b) != 0)
            __builtin_trap(); /* the metadata tree must come back as it was */
        cairn_free(a);
        cairn_free(b);
    } else if (meta)
        __builtin_trap();
    cairn_value_free(again);
    cairn_file_close(g);
    cairn_free(out);
}

static void fuzz_file(const uint8_t *data, size_t size);

/* {"__metadata__":{"cairn.meta":"<text>"},"w":{...one byte...}} around `text`. */
static void fuzz_tree_text(const uint8_t *text, size_t len)
{
    json_t *root = json_object(), *meta = json_object(), *w = json_object();
    json_t *str = json_stringn((const char *)text, len);
    if (!str) /* not UTF-8: nothing a JSON header could hold */
        goto done;
    json_object_set_new(meta, "cairn.meta", str);
    json_object_set_new(root, "__metadata__", meta);
    meta = NULL;
    json_object_set_new(w, "dtype", json_string("U8"));
    json_object_set_new(w, "shape", json_pack("[i]", 1));
    json_object_set_new(w, "data_offsets", json_pack("[i,i]", 0, 1));
    json_object_set_new(root, "w", w);
    w = NULL;
    char *header = json_dumps(root, JSON_COMPACT);
    size_t n = header ? strlen(header) : 0;
    uint8_t *file = header ? malloc(8 + n + 1) : NULL;
    if (file) {
        for (int i = 0; i < 8; i++)
            file[i] = (uint8_t)((uint64_t)n >> (8 * i));
        memcpy(file + 8, header, n);
        file[8 + n] = 7;
        fuzz_file(file, 8 + n + 1);
    }
    free(file);
    free(header);
done:
    json_decref(root);
    json_decref(meta);
    json_decref(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 'J')
        fuzz_tree_text(data + 1, size - 1);
    else
        fuzz_file(data, size);
    return 0;
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    /* Odd sizes name the format; even ones go through detection. */
    cairn_format format = size % 2 ? CAIRN_FORMAT_SAFETENSORS : CAIRN_FORMAT_AUTO;
    cairn_open_opts opts = {.struct_size = sizeof opts, .format = format};
    cairn_file *f = NULL;
    if (cairn_file_open_memory(data, size, &opts, &f, NULL) != CAIRN_OK)
        return;
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, NULL);
    uint64_t n = cairn_file_count(f);
    uint8_t **bytes = calloc(n ? (size_t)n : 1, sizeof *bytes);
    for (uint64_t i = 0; bytes && i < n; i++) {
        cairn_tensor_info info;
        bytes[i] = read_tensor(f, i, &info);
    }
    cairn_tensor_find(f, "weight", NULL, NULL, NULL);
    cairn_value *meta = NULL;
    if (cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK) {
        char *json = NULL;
        cairn_value_to_json(meta, 0, &json, NULL);
        cairn_free(json);
    }
    cairn_file_verify(f, NULL);
    if (bytes && fi.format == CAIRN_FORMAT_SAFETENSORS)
        rewrite(f, bytes, meta);
    cairn_value_free(meta);
    for (uint64_t i = 0; bytes && i < n; i++)
        free(bytes[i]);
    free(bytes);
    cairn_file_close(f);
}
