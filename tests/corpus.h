/*
 * corpus.h -- walking the public corpus of real files ($CAIRN_VECTORS, the
 * shared/vectors checkout), where each FILE comes with FILE.expect.json
 * saying what a reader must find in it (or why it must refuse it). For the
 * format tests that check it; the tests skip it when the corpus is absent.
 */
#ifndef CAIRN_TESTS_CORPUS_H
#define CAIRN_TESTS_CORPUS_H

#include "testutil.h"

#include <dirent.h>
#include <jansson.h>

/* Puts "$CAIRN_VECTORS/<sub>" in `out` and says whether that directory can be
 * opened: 0 when CAIRN_VECTORS is unset or lacks it. */
static inline int tu_vectors_dir(const char *sub, char *out, size_t cap)
{
    const char *vec = getenv("CAIRN_VECTORS");
    if (!vec || !*vec)
        return 0;
    snprintf(out, cap, "%s/%s", vec, sub);
    DIR *probe = opendir(out);
    if (!probe)
        return 0;
    closedir(probe);
    return 1;
}

/* For each <dir>/<prefix>...<suffix> (a suffix ending in ".expect.json"),
 * checks that the JSON parses and calls fn(ctx, path, root), where path names
 * the file it describes (the name without ".expect.json"); returns the sum of
 * what fn returned (1 for each file it counts), 0 when dir cannot be opened. */
static inline int tu_each_expect(const char *dir, const char *prefix, const char *suffix,
                                 int (*fn)(void *ctx, const char *path, json_t *root), void *ctx)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    int counted = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t len = strlen(de->d_name), sl = strlen(suffix);
        if (len < sl || strcmp(de->d_name + len - sl, suffix) != 0 ||
            strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char jpath[4600], path[4600];
        snprintf(jpath, sizeof jpath, "%s/%s", dir, de->d_name);
        snprintf(path, sizeof path, "%s/%.*s", dir, (int)(len - strlen(".expect.json")),
                 de->d_name);
        json_t *root = json_load_file(jpath, 0, NULL);
        CHECK(root != NULL);
        if (!root) {
            fprintf(stderr, "  %s does not parse\n", jpath);
            continue;
        }
        counted += fn(ctx, path, root);
        json_decref(root);
    }
    closedir(dp);
    return counted;
}

/* Checks a tensor read from a corpus file against its entry `t` in the
 * .expect.json ({"dtype", "shape", "sha256"}): the dtype's name, every
 * dimension, and the SHA-256 of its bytes `got` (hashed through the scratch
 * directory `scratch`). `label` names the tensor in a failure's message. */
static inline void tu_check_expected_tensor(const char *scratch, const char *label,
                                            const cairn_tensor_info *in, const uint8_t *got,
                                            json_t *t)
{
    int failures = tu_failures;
    CHECK(strcmp(cairn_dtype_name(in->dtype), json_string_value(json_object_get(t, "dtype"))) == 0);
    json_t *shape = json_object_get(t, "shape");
    CHECK(json_array_size(shape) == in->rank);
    for (size_t d = 0; d < json_array_size(shape); d++)
        CHECK((uint64_t)json_integer_value(json_array_get(shape, d)) == in->dims[d]);
    char hex[65] = {0};
    CHECK(tu_sha256_hex(scratch, got, (size_t)in->raw_size, hex) == 0);
    CHECK(strcmp(hex, json_string_value(json_object_get(t, "sha256"))) == 0);
    if (tu_failures != failures)
        fprintf(stderr, "  (the checks above were of %s)\n", label);
}

#endif
