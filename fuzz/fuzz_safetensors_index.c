/* fuzz_safetensors_index.c -- libFuzzer target: arbitrary bytes as a sharded
 * safetensors index whose shards are a fixed set of small in-memory
 * safetensors files (a.safetensors ... e.safetensors), then everything a
 * caller could ask of the archive. The same bytes also go through format
 * detection as an in-memory input. */
#include "archive/safetensors_index.h"

#include <cairn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The shards: made once with the safetensors writer. */
typedef struct shard {
    const char *name;
    void *bytes;
    size_t size;
} shard;

static shard shards[5] = {
    {"a.safetensors", NULL, 0}, {"b.safetensors", NULL, 0}, {"c.safetensors", NULL, 0},
    {"d.safetensors", NULL, 0}, {"e.safetensors", NULL, 0},
};

static void *make_shard(int which, size_t *size)
{
    cairn_write_opts wo = {.struct_size = sizeof wo, .format = CAIRN_FORMAT_SAFETENSORS};
    cairn_writer *w = NULL;
    void *out = NULL;
    float f[4] = {1, 2, 3, 4};
    int8_t i8[3] = {-1, 0, 1};
    uint16_t bf[4] = {0x3f80, 0x4000, 0x7fc0, 0xff80};
    uint64_t two = 2, three = 3, dims22[2] = {2, 2};
    cairn_value *meta = cairn_value_map();
    cairn_writer_open_memory(&wo, &w, NULL);
    switch (which) {
    case 0: /* a: x, y; metadata "format": "pt" */
        cairn_writer_add(w, "x", CAIRN_F32, 1, &two, f, NULL);
        cairn_writer_add(w, "y", CAIRN_I8, 1, &three, i8, NULL);
        cairn_value_set(meta, "format", cairn_value_string("pt"), NULL);
        break;
    case 1: /* b: z; a typed tree with a tensor reference */
        cairn_writer_add(w, "z", CAIRN_BF16, 2, dims22, bf, NULL);
        cairn_value_set(meta, "format", cairn_value_string("pt"), NULL);
        cairn_value_set(meta, "ref", cairn_value_tensor_ref("z"), NULL);
        break;
    case 2: /* c: empty */
        break;
    case 3: /* d: a second x (a duplicate across shards), conflicting metadata */
        cairn_writer_add(w, "x", CAIRN_F32, 1, &two, f + 2, NULL);
        cairn_value_set(meta, "format", cairn_value_string("np"), NULL);
        break;
    default: /* e: a scalar and a zero-size tensor */
        cairn_writer_add(w, "s", CAIRN_F32, 0, NULL, f, NULL);
        cairn_writer_add(w, "zero", CAIRN_F32, 1, (uint64_t[]){0}, NULL, NULL);
        break;
    }
    if (cairn_value_count(meta))
        cairn_writer_set_metadata(w, meta, NULL);
    cairn_value_free(meta);
    if (cairn_writer_commit_memory(w, &out, size, NULL) != CAIRN_OK)
        __builtin_trap();
    return out;
}

static cairn_status open_memory_shard(void *ctx, const cairn_file *index, const char *name,
                                      cairn_file **out, cairn_error *err)
{
    (void)ctx;
    (void)index;
    cairn_open_opts o = {.struct_size = sizeof o, .format = CAIRN_FORMAT_SAFETENSORS};
    for (size_t i = 0; i < sizeof shards / sizeof shards[0]; i++)
        if (strcmp(shards[i].name, name) == 0)
            return cairn_file_open_memory(shards[i].bytes, shards[i].size, &o, out, err);
    if (err) {
        err->status = CAIRN_E_IO;
        strcpy(err->message, "no such shard");
    }
    return CAIRN_E_IO;
}

static void exercise(cairn_file *f)
{
    uint64_t n = cairn_file_count(f);
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info in;
        if (cairn_tensor_info_at(f, i, &in, NULL) != CAIRN_OK)
            __builtin_trap(); /* every listed tensor has info */
        uint64_t idx;
        if (cairn_tensor_find(f, in.name, &idx, NULL, NULL) != CAIRN_OK || idx != i)
            __builtin_trap(); /* every listed name is found at its index */
        uint8_t buf[64];
        double wide[16];
        const void *view;
        if (in.raw_size > sizeof buf)
            __builtin_trap(); /* the shards hold nothing larger */
        if (cairn_tensor_read(f, i, in.dtype, buf, (size_t)in.raw_size, CAIRN_READ_VERIFY,
                              NULL) != CAIRN_OK)
            __builtin_trap();
        if (cairn_tensor_data(f, i, &view, NULL) != CAIRN_OK ||
            (in.raw_size && memcmp(view, buf, (size_t)in.raw_size) != 0))
            __builtin_trap(); /* in-memory shards always give views, equal to reads */
        if (cairn_dtype_can_convert(in.dtype, CAIRN_F64) && in.count <= 16)
            cairn_tensor_read(f, i, CAIRN_F64, wide, (size_t)in.count * 8, 0, NULL);
        cairn_tensor_verify(f, i, NULL);
    }
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, NULL);
    cairn_value *meta = NULL;
    if (cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK) {
        char *json = NULL;
        cairn_value_to_json(meta, 0, &json, NULL);
        cairn_free(json);
    }
    cairn_value_free(meta);
    cairn_file_verify(f, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!shards[0].bytes)
        for (int i = 0; i < 5; i++)
            shards[i].bytes = make_shard(i, &shards[i].size);

    /* The index reader itself, with the in-memory shards. */
    cairn_file *f = calloc(1, sizeof *f);
    f->path = malloc(sizeof "<fuzz>"); /* freed by cairn_file_close (no strdup in C11) */
    memcpy(f->path, "<fuzz>", sizeof "<fuzz>");
    cairn__source_init_memory(&f->src, f->path, data, size);
    f->ops = &cairn__safetensors_index_reader;
    cairn_error err;
    if (cairn__stindex_open(f, open_memory_shard, NULL, &err) == CAIRN_OK)
        exercise(f);
    cairn_file_close(f);

    /* Detection, as cairn_file_open_memory sees these bytes (only for text
     * that may be JSON: the other formats have fuzzers of their own). */
    cairn_file *g = NULL;
    if (size > 0 && strchr("{ \t\r\n", data[0]) &&
        cairn_file_open_memory(data, size, NULL, &g, NULL) == CAIRN_OK)
        exercise(g);
    cairn_file_close(g);
    return 0;
}
