/* test_opts_compat.c -- every public call that takes an options struct reads
 * only what the caller's struct holds: a struct whose struct_size ends after
 * any of its fields (a caller built against an older header) works, with the
 * fields it holds honoured and the defaults for the rest, even though the
 * bytes past its struct_size are garbage here; a struct_size too small for
 * the mandatory first fields is refused with CAIRN_E_ARG. */
#include "testutil.h"

#include <cairn.h>
#include <stddef.h>

#define END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

static const char *dir;
static float data_a[256], data_b[4];
static const uint64_t dims_a[1] = {256}, dims_b[1] = {4};

/* A copy of `full` (`size` bytes) whose struct_size is `cut` and whose bytes
 * past `cut` are garbage (0xA5): a library that reads past struct_size sees
 * an unknown format, a huge level or a wild pointer. */
static void *cut_copy(const void *full, size_t size, size_t cut)
{
    unsigned char *p = malloc(size);
    if (!p)
        exit(1);
    memset(p, 0xA5, size);
    memcpy(p, full, cut < size ? cut : size);
    memcpy(p, &cut, sizeof cut);
    return p;
}

/* The struct_size values every call must refuse. */
static const size_t too_small[] = {0, sizeof(size_t)};

/* Writes a.bin (native, tensors "a" and "b") for the readers. */
static void write_input(const char *path)
{
    cairn_error err;
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 1, dims_a, data_a, &err));
    CHECK_OK(cairn_writer_add(w, "b", CAIRN_F32, 1, dims_b, data_b, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
}

static void check_input(cairn_file *f)
{
    cairn_error err;
    float b[4];
    CHECK(cairn_file_count(f) == 2);
    CHECK_OK(cairn_tensor_read(f, 1, CAIRN_F32, b, sizeof b, 0, &err));
    CHECK(memcmp(b, data_b, sizeof b) == 0);
}

static void test_open_opts(const char *path, const void *bytes, size_t n)
{
    const size_t cuts[] = {END(cairn_open_opts, flags), END(cairn_open_opts, format),
                           END(cairn_open_opts, max_inflate), END(cairn_open_opts, threads),
                           END(cairn_open_opts, public_key), sizeof(cairn_open_opts)};
    cairn_open_opts full = {.flags = CAIRN_OPEN_VERIFY, .format = CAIRN_FORMAT_NATIVE,
                            .threads = 1};
    cairn_error err;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        cairn_open_opts *o = cut_copy(&full, sizeof full, cuts[i]);
        cairn_file *f = NULL;
        CHECK_OK(cairn_file_open(path, o, &f, &err));
        if (f)
            check_input(f);
        cairn_file_close(f);
        f = NULL;
        CHECK_OK(cairn_file_open_memory(bytes, n, o, &f, &err));
        if (f)
            check_input(f);
        cairn_file_close(f);
        free(o);
    }
    for (size_t i = 0; i < 2; i++) {
        cairn_open_opts *o = cut_copy(&full, sizeof full, too_small[i]);
        cairn_file *f = NULL;
        CHECK_ST(cairn_file_open(path, o, &f, &err), CAIRN_E_ARG);
        CHECK(f == NULL);
        CHECK_ST(cairn_file_open_memory(bytes, n, o, &f, &err), CAIRN_E_ARG);
        CHECK(f == NULL);
        free(o);
    }
}

/* Writes with `o` and reports the format and the compressed tensor count of
 * what was written. */
static void write_with(const cairn_write_opts *o, int to_memory, cairn_format *format,
                       uint64_t *compressed)
{
    cairn_error err;
    cairn_writer *w = NULL;
    char *path = tu_path(dir, "w.cairn");
    *format = CAIRN_FORMAT_AUTO;
    *compressed = 99;
    if (to_memory)
        CHECK_OK(cairn_writer_open_memory(o, &w, &err));
    else
        CHECK_OK(cairn_writer_open_path(path, o, &w, &err));
    if (!w) {
        return;
    }
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 1, dims_a, data_a, &err));
    void *bytes = NULL;
    size_t n = 0;
    cairn_file *f = NULL;
    if (to_memory) {
        CHECK_OK(cairn_writer_commit_memory(w, &bytes, &n, &err));
        CHECK_OK(cairn_file_open_memory(bytes, n, NULL, &f, &err));
    } else {
        CHECK_OK(cairn_writer_commit(w, &err));
        CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    }
    cairn_file_info info;
    if (f && cairn_file_get_info(f, &info, &err) == CAIRN_OK) {
        *format = info.format;
        *compressed = info.compressed_tensors;
    }
    cairn_file_close(f);
    cairn_free(bytes);
}

static void test_write_opts(void)
{
    /* Older callers end at flags, format, alignment (format 1.0) or any
     * field of 1.1. */
    const size_t cuts[] = {END(cairn_write_opts, flags), END(cairn_write_opts, format),
                           END(cairn_write_opts, alignment), END(cairn_write_opts, codec),
                           END(cairn_write_opts, level), END(cairn_write_opts, filter),
                           END(cairn_write_opts, chunk_size), END(cairn_write_opts, threads),
                           END(cairn_write_opts, shard_size), sizeof(cairn_write_opts)};
    cairn_write_opts full = {.flags = CAIRN_WRITE_NO_SYNC, .format = CAIRN_FORMAT_NATIVE,
                             .alignment = 128, .codec = CAIRN_CODEC_ZSTD, .level = 3,
                             .filter = CAIRN_FILTER_SHUFFLE, .chunk_size = 1u << 16,
                             .threads = 1};
    cairn_error err;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        cairn_write_opts *o = cut_copy(&full, sizeof full, cuts[i]);
        for (int mem = 0; mem < 2; mem++) {
            cairn_format format;
            uint64_t compressed;
            write_with(o, mem, &format, &compressed);
            CHECK(format == CAIRN_FORMAT_NATIVE);
            /* The codec is honoured when the struct holds it, else none. */
            CHECK(compressed == (cuts[i] >= END(cairn_write_opts, codec) ? 1u : 0u));
        }
        free(o);
    }
    for (size_t i = 0; i < 2; i++) {
        cairn_write_opts *o = cut_copy(&full, sizeof full, too_small[i]);
        cairn_writer *w = NULL;
        char *path = tu_path(dir, "small.cairn");
        CHECK_ST(cairn_writer_open_path(path, o, &w, &err), CAIRN_E_ARG);
        CHECK(w == NULL);
        CHECK_ST(cairn_writer_open_memory(o, &w, &err), CAIRN_E_ARG);
        CHECK(w == NULL);
        free(o);
    }
}

static void test_tensor_opts(void)
{
    const size_t cuts[] = {END(cairn_tensor_opts, codec), END(cairn_tensor_opts, level),
                           END(cairn_tensor_opts, filter), sizeof(cairn_tensor_opts)};
    cairn_tensor_opts full = {.codec = CAIRN_CODEC_ZSTD, .level = 3,
                              .filter = CAIRN_FILTER_SHUFFLE};
    cairn_write_opts wo = {.struct_size = sizeof wo, .flags = CAIRN_WRITE_NO_SYNC, .threads = 1};
    cairn_error err;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        cairn_tensor_opts *o = cut_copy(&full, sizeof full, cuts[i]);
        cairn_writer *w = NULL;
        CHECK_OK(cairn_writer_open_memory(&wo, &w, &err));
        if (!w) {
            free(o);
            continue;
        }
        CHECK_OK(cairn_writer_add_ex(w, "a", CAIRN_F32, 1, dims_a, data_a, o, &err));
        void *bytes = NULL;
        size_t n = 0;
        cairn_file *f = NULL;
        cairn_file_info info = {0};
        CHECK_OK(cairn_writer_commit_memory(w, &bytes, &n, &err));
        CHECK_OK(cairn_file_open_memory(bytes, n, NULL, &f, &err));
        CHECK_OK(cairn_file_get_info(f, &info, &err));
        CHECK(info.compressed_tensors == 1);
        cairn_file_close(f);
        cairn_free(bytes);
        free(o);
    }
    for (size_t i = 0; i < 2; i++) {
        cairn_tensor_opts *o = cut_copy(&full, sizeof full, too_small[i]);
        cairn_writer *w = NULL;
        CHECK_OK(cairn_writer_open_memory(&wo, &w, &err));
        CHECK_ST(cairn_writer_add_ex(w, "a", CAIRN_F32, 1, dims_a, data_a, o, &err), CAIRN_E_ARG);
        cairn_writer_abort(w);
        free(o);
    }
}

static const size_t load_cuts[] = {
    END(cairn_load_opts, flags),        END(cairn_load_opts, prefix),
    END(cairn_load_opts, strip_prefix), END(cairn_load_opts, rename_from),
    END(cairn_load_opts, rename_to),    END(cairn_load_opts, rename_count),
    END(cairn_load_opts, migrate),      END(cairn_load_opts, migrate_ctx),
    END(cairn_load_opts, add_prefix),   END(cairn_load_opts, schema_key),
    sizeof(cairn_load_opts)};
#define N_LOAD_CUTS (sizeof load_cuts / sizeof *load_cuts)
static const cairn_load_opts load_full = {.flags = CAIRN_LOAD_STRICT};

static void test_load_opts(const char *path)
{
    cairn_error err;
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f)
        return;
    for (size_t i = 0; i <= N_LOAD_CUTS + 1; i++) {
        size_t cut = i < N_LOAD_CUTS ? load_cuts[i] : too_small[i - N_LOAD_CUTS];
        cairn_load_opts *o = cut_copy(&load_full, sizeof load_full, cut);
        float a[256] = {0}, b[4] = {0};
        cairn_params *p = cairn_params_new();
        CHECK_OK(cairn_params_add(p, "a", CAIRN_F32, 1, dims_a, a, &err));
        CHECK_OK(cairn_params_add(p, "b", CAIRN_F32, 1, dims_b, b, &err));
        cairn_load_report *r = NULL;
        if (i < N_LOAD_CUTS) {
            CHECK_OK(cairn_params_load(p, f, o, &r, &err));
            CHECK(cairn_load_report_loaded(r) == 2);
            CHECK(memcmp(b, data_b, sizeof b) == 0);
        } else {
            CHECK_ST(cairn_params_load(p, f, o, &r, &err), CAIRN_E_ARG);
        }
        cairn_load_report_free(r);
        cairn_params_free(p);
        free(o);
    }
    cairn_file_close(f);
}

static const size_t parts_cuts[] = {
    END(cairn_model_parts, kind),           END(cairn_model_parts, schema_version),
    END(cairn_model_parts, params),         END(cairn_model_parts, optimizer_tensors),
    END(cairn_model_parts, attribute_tensors), END(cairn_model_parts, config),
    END(cairn_model_parts, optimizer),      END(cairn_model_parts, history),
    END(cairn_model_parts, attributes),     END(cairn_model_parts, rng),
    END(cairn_model_parts, data_position),  END(cairn_model_parts, extra),
    sizeof(cairn_model_parts)};
#define N_PARTS_CUTS (sizeof parts_cuts / sizeof *parts_cuts)

/* Parts with a kind and, when the struct holds it, a parameter set. */
static cairn_model_parts *parts_cut(cairn_params *p, size_t cut)
{
    cairn_model_parts full = {.kind = "toy", .schema_version = 1, .params = p};
    return cut_copy(&full, sizeof full, cut);
}

static int has_params(size_t cut) { return cut >= END(cairn_model_parts, params); }

/* Loads `bytes` back into a fresh set through short parts and load opts. */
static void check_model(const void *bytes, size_t n, size_t cut, int saved_params)
{
    cairn_error err;
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(bytes, n, NULL, &f, &err));
    if (!f)
        return;
    float a[256] = {0}, b[4] = {0};
    cairn_params *p = cairn_params_new();
    CHECK_OK(cairn_params_add(p, "a", CAIRN_F32, 1, dims_a, a, &err));
    CHECK_OK(cairn_params_add(p, "b", CAIRN_F32, 1, dims_b, b, &err));
    cairn_model_parts *parts = parts_cut(p, cut);
    cairn_load_opts *lo = cut_copy(&load_full, sizeof load_full, load_cuts[cut % N_LOAD_CUTS]);
    cairn_value *meta = NULL;
    /* Strict: a parameter set the file lacks is an error. */
    CHECK_ST(cairn_model_load(f, parts, lo, &meta, &err),
             has_params(cut) && !saved_params ? CAIRN_E_MISMATCH : CAIRN_OK);
    if (has_params(cut) && saved_params)
        CHECK(memcmp(b, data_b, sizeof b) == 0);
    cairn_value_free(meta);
    free(lo);
    free(parts);
    cairn_params_free(p);
    cairn_file_close(f);
}

static void test_model(cairn_params *p)
{
    cairn_error err;
    char *path = tu_path(dir, "model.cairn");
    for (size_t i = 0; i < N_PARTS_CUTS; i++) {
        cairn_model_parts *parts = parts_cut(p, parts_cuts[i]);
        void *bytes = NULL;
        size_t n = 0;
        CHECK_OK(cairn_model_save_memory(parts, &bytes, &n, &err));
        if (bytes)
            check_model(bytes, n, parts_cuts[i], has_params(parts_cuts[i]));
        cairn_free(bytes);
        bytes = NULL;
        CHECK_OK(cairn_model_save(path, parts, &err));
        uint8_t *file = tu_read_whole(path, &n);
        if (file)
            check_model(file, n, parts_cuts[i], has_params(parts_cuts[i]));
        free(file);
        cairn_writer *w = NULL;
        CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
        CHECK_OK(cairn_model_write(w, parts, &err));
        CHECK_OK(cairn_writer_commit_memory(w, &bytes, &n, &err));
        if (bytes)
            check_model(bytes, n, parts_cuts[i], has_params(parts_cuts[i]));
        cairn_free(bytes);
        free(parts);
    }
    for (size_t i = 0; i < 2; i++) {
        cairn_model_parts *parts = parts_cut(p, too_small[i]);
        void *bytes = NULL;
        size_t n = 0;
        CHECK_ST(cairn_model_save_memory(parts, &bytes, &n, &err), CAIRN_E_ARG);
        CHECK_ST(cairn_model_save(path, parts, &err), CAIRN_E_ARG);
        cairn_writer *w = NULL;
        CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
        CHECK_ST(cairn_model_write(w, parts, &err), CAIRN_E_ARG);
        cairn_writer_abort(w);
        cairn_model_parts good = {.struct_size = sizeof good, .params = p};
        CHECK_OK(cairn_model_save_memory(&good, &bytes, &n, &err));
        cairn_file *f = NULL;
        CHECK_OK(cairn_file_open_memory(bytes, n, NULL, &f, &err));
        CHECK_ST(cairn_model_load(f, parts, NULL, NULL, &err), CAIRN_E_ARG);
        cairn_load_opts *lo = cut_copy(&load_full, sizeof load_full, too_small[i]);
        CHECK_ST(cairn_model_load(f, &good, lo, NULL, &err), CAIRN_E_ARG);
        free(lo);
        cairn_file_close(f);
        cairn_free(bytes);
        free(parts);
    }
}

static const size_t ckpt_cuts[] = {
    END(cairn_ckpt_opts, dirname),      END(cairn_ckpt_opts, fn_prefix),
    END(cairn_ckpt_opts, monitor),      END(cairn_ckpt_opts, flags),
    END(cairn_ckpt_opts, every_epochs), END(cairn_ckpt_opts, every_steps),
    END(cairn_ckpt_opts, every_seconds), END(cairn_ckpt_opts, keep_best),
    END(cairn_ckpt_opts, keep_last),    END(cairn_ckpt_opts, keep_every),
    sizeof(cairn_ckpt_opts)};

static void test_ckpt(cairn_params *p)
{
    cairn_error err;
    for (size_t i = 0; i < sizeof ckpt_cuts / sizeof *ckpt_cuts; i++) {
        char name[32];
        snprintf(name, sizeof name, "ckpt%zu", i);
        char sub[4400];
        snprintf(sub, sizeof sub, "%s", tu_path(dir, name));
        /* Asynchronous saves from the flags on, so the staging copy of the
         * parts is exercised too. */
        cairn_ckpt_opts full = {.dirname = sub, .fn_prefix = "m-",
                                .flags = CAIRN_CKPT_NO_SYNC | (i % 2 ? CAIRN_CKPT_ASYNC : 0)};
        cairn_ckpt_opts *o = cut_copy(&full, sizeof full, ckpt_cuts[i]);
        cairn_ckpt *m = NULL;
        CHECK_OK(cairn_ckpt_open(o, &m, &err));
        free(o);
        if (!m) {
            continue;
        }
        size_t cut = parts_cuts[i % N_PARTS_CUTS];
        cairn_model_parts *parts = parts_cut(p, cut);
        int saved = 0;
        /* No trigger set: every step saves. */
        CHECK_OK(cairn_ckpt_step(m, 0, 1, NULL, parts, 0, &saved, &err));
        CHECK(saved);
        CHECK_OK(cairn_ckpt_wait(m, &err));
        CHECK(cairn_ckpt_count(m) == 1);
        cairn_load_opts *lo = cut_copy(&load_full, sizeof load_full, load_cuts[i % N_LOAD_CUTS]);
        CHECK_OK(cairn_ckpt_load(m, 0, parts, lo, NULL, &err));
        cairn_ckpt_resume_info info;
        CHECK_OK(cairn_ckpt_resume(m, parts, lo, NULL, &info, &err));
        free(lo);
        for (size_t k = 0; k < 2; k++) {
            cairn_model_parts *bad = parts_cut(p, too_small[k]);
            CHECK_ST(cairn_ckpt_step(m, 0, 2, NULL, bad, CAIRN_STEP_FORCE, &saved, &err),
                     CAIRN_E_ARG);
            CHECK_ST(cairn_ckpt_load(m, 0, bad, NULL, NULL, &err), CAIRN_E_ARG);
            CHECK_ST(cairn_ckpt_resume(m, bad, NULL, NULL, &info, &err), CAIRN_E_ARG);
            lo = cut_copy(&load_full, sizeof load_full, too_small[k]);
            CHECK_ST(cairn_ckpt_load(m, 0, parts, lo, NULL, &err), CAIRN_E_ARG);
            free(lo);
            free(bad);
        }
        free(parts);
        CHECK_OK(cairn_ckpt_close(m, &err));
    }
    for (size_t k = 0; k < 2; k++) {
        char *sub = tu_path(dir, "ckpt-small");
        cairn_ckpt_opts full = {.dirname = sub};
        cairn_ckpt_opts *o = cut_copy(&full, sizeof full, too_small[k]);
        cairn_ckpt *m = NULL;
        CHECK_ST(cairn_ckpt_open(o, &m, &err), CAIRN_E_ARG);
        CHECK(m == NULL);
        free(o);
    }
}

int main(void)
{
    dir = tu_tmpdir("test_opts_compat");
    for (size_t i = 0; i < 256; i++)
        data_a[i] = (float)(i % 4);
    for (size_t i = 0; i < 4; i++)
        data_b[i] = (float)i + 0.5f;
    char path[4400];
    snprintf(path, sizeof path, "%s", tu_path(dir, "a.cairn"));
    write_input(path);
    size_t n = 0;
    uint8_t *bytes = tu_read_whole(path, &n);
    CHECK(bytes != NULL);

    test_open_opts(path, bytes, n);
    test_write_opts();
    test_tensor_opts();
    test_load_opts(path);

    float a[256], b[4];
    memcpy(a, data_a, sizeof a);
    memcpy(b, data_b, sizeof b);
    cairn_params *p = cairn_params_new();
    cairn_error err;
    CHECK_OK(cairn_params_add(p, "a", CAIRN_F32, 1, dims_a, a, &err));
    CHECK_OK(cairn_params_add(p, "b", CAIRN_F32, 1, dims_b, b, &err));
    test_model(p);
    test_ckpt(p);
    cairn_params_free(p);

    free(bytes);
    if (!tu_failures)
        tu_remove_tmpdir_if_passed(dir);
    TEST_MAIN_END();
}
