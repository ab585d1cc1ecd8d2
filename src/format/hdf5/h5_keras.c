/* h5_keras.c -- Keras on HDF5 (docs/FORMAT.md 17.3, 17.3a): the legacy
 * weights order and Keras 3 .keras archives. */
#include "format/hdf5/h5_reader.h"

#include "format/registry.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define KERAS_WEIGHTS "model.weights.h5"
#define KERAS_JSON_MAX (64u << 20) /* config.json, metadata.json */
#define KERAS_JSON_DEPTH 200

/* ---------------------------------------------------------- Keras order */

/* The list attribute `key` of the tree as strings, or NULL. */
static const cairn_value *string_list(const cairn_value *tree, const char *key)
{
    const cairn_value *v = cairn_value_get(tree, key);
    return v && cairn_value_get_type(v) == CAIRN_VALUE_LIST ? v : NULL;
}

/* Moves the tensor at path `key` to position *next of the table's order
 * if it is at or after it. */
static void move_front(h5_reader *r, const char *key, uint64_t *next)
{
    size_t klen = strlen(key), len;
    for (uint64_t k = *next; k < r->tensors.count; k++) {
        const char *name = cairn__h5_name(r, k, &len);
        if (len != klen || memcmp(name, key, len) != 0)
            continue;
        size_t t = r->order[k];
        memmove(&r->order[*next + 1], &r->order[*next], (size_t)(k - *next) * sizeof t);
        r->order[(*next)++] = t;
        return;
    }
}

/* Entry j of a Keras string list as a path under `dir` ("" for the root)
 * into buf; 0 when the entry is not a name. */
static int list_path(const cairn_value *list, size_t j, const char *dir, char *buf, size_t size)
{
    const void *name;
    size_t len;
    if (cairn_value_get_data(cairn_value_at(list, j), &name, &len) != CAIRN_OK ||
        len > CAIRN_NAME_MAX)
        return 0;
    snprintf(buf, size, "%s%s%.*s", dir, dir[0] ? "/" : "", (int)len, (const char *)name);
    return 1;
}

/* Moves the datasets `weights` (a list of names under group `dir`) to the
 * front, in that order. */
static void weights_front(h5_reader *r, const cairn_value *weights, const char *dir,
                          uint64_t *next)
{
    char key[2 * CAIRN_NAME_MAX + 8];
    for (size_t j = 0; weights && j < cairn_value_count(weights); j++)
        if (list_path(weights, j, dir, key, sizeof key))
            move_front(r, key, next);
}

/* Keras' legacy order: the layers of `layer_names` (in model_weights, or at
 * the root for save_weights files), each layer's `weight_names` in order,
 * then optimizer_weights' `weight_names`; other datasets follow by path. */
cairn_status cairn__h5_keras_order(h5_reader *r, const cairn_value *tree)
{
    const char *base = cairn_value_get(tree, "model_weights@layer_names") ? "model_weights" : "";
    char key[2 * CAIRN_NAME_MAX + 64], dir[CAIRN_NAME_MAX + 64];
    snprintf(key, sizeof key, "%s@layer_names", base);
    const cairn_value *layers = string_list(tree, key);
    uint64_t next = 0;
    if (layers)
        CAIRN_TRY(cairn__h5_order(r));
    for (size_t i = 0; layers && i < cairn_value_count(layers); i++) {
        if (!list_path(layers, i, base, dir, sizeof dir))
            continue;
        snprintf(key, sizeof key, "%s@weight_names", dir);
        weights_front(r, string_list(tree, key), dir, &next);
    }
    if (layers)
        weights_front(r, string_list(tree, "optimizer_weights@weight_names"), "optimizer_weights",
                      &next);
    return CAIRN_OK;
}

/* ------------------------------------------------------ .keras archives */

static cairn_value *json_value(const json_t *j, int depth);

static cairn_value *json_container(const json_t *j, int depth)
{
    int is_map = json_is_object(j);
    cairn_value *v = is_map ? cairn_value_map() : cairn_value_list();
    const char *key;
    json_t *child;
    size_t i;
    if (!v)
        return NULL;
    if (is_map) {
        json_object_foreach((json_t *)j, key, child) {
            cairn_value *c = json_value(child, depth + 1);
            if (!c || cairn_value_set(v, key, c, NULL) != CAIRN_OK) {
                cairn_value_free(c);
                cairn_value_free(v);
                return NULL;
            }
        }
        return v;
    }
    json_array_foreach(j, i, child) {
        cairn_value *c = json_value(child, depth + 1);
        if (!c || cairn_value_append(v, c, NULL) != CAIRN_OK) {
            cairn_value_free(c);
            cairn_value_free(v);
            return NULL;
        }
    }
    return v;
}

/* JSON as a tree (NULL on failure or nesting deeper than KERAS_JSON_DEPTH). */
static cairn_value *json_value(const json_t *j, int depth)
{
    if (depth > KERAS_JSON_DEPTH)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY: return json_container(j, depth);
    case JSON_STRING: return cairn_value_string_n(json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return cairn_value_int((int64_t)json_integer_value(j));
    case JSON_REAL: return cairn_value_float(json_real_value(j));
    case JSON_TRUE: return cairn_value_bool(1);
    case JSON_FALSE: return cairn_value_bool(0);
    case JSON_NULL: return cairn_value_null();
    }
    return NULL;
}

/* Member `name` of the archive, inflated and checked (CRC-32), in a new
 * buffer; *m is NULL when the member is absent. */
static cairn_status member_bytes(const cairn_file *f, const cairn__zip *z, const char *name,
                                 uint64_t max, uint8_t **out, size_t *len, cairn_error *err)
{
    const cairn__zip_member *m = cairn__zip_find(z, name, strlen(name));
    *out = NULL;
    *len = 0;
    if (!m)
        return CAIRN_OK;
    if (m->size > max || m->size > SIZE_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: .keras member '%s' is %llu bytes, more than "
                           "the %llu cairn reads", f->path, name, (unsigned long long)m->size,
                           (unsigned long long)max);
    uint8_t *b = malloc((size_t)m->size + 1);
    if (!b)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: .keras member '%s': out of memory", f->path,
                           name);
    cairn_status st = cairn__zip_read(&f->src, m, 0, b, (size_t)m->size, CAIRN__ZIP_CHECK, err);
    if (st != CAIRN_OK) {
        free(b);
        return st;
    }
    b[m->size] = 0;
    *out = b;
    *len = (size_t)m->size;
    return CAIRN_OK;
}

static cairn_status keras_json(h5_reader *r, const cairn__zip *z, const char *member,
                               const char *key)
{
    uint8_t *text;
    size_t len;
    CAIRN_TRY(member_bytes(r->f, z, member, KERAS_JSON_MAX, &text, &len, r->err));
    if (!text)
        return CAIRN_OK;
    json_error_t je;
    json_t *j = json_loadb((const char *)text, len, JSON_DECODE_ANY, &je);
    free(text);
    if (!j)
        return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: .keras member '%s': invalid JSON at "
                           "byte %d: %s", r->f->path, member, je.position, je.text);
    cairn_value *v = json_value(j, 0);
    json_decref(j);
    if (!v || cairn_value_set(r->keras, key, v, NULL) != CAIRN_OK) {
        cairn_value_free(v);
        return cairn__fail(r->err, CAIRN_E_LIMIT, "%s: .keras member '%s': out of memory, "
                           "nesting deeper than %d, or text that is not UTF-8", r->f->path,
                           member, KERAS_JSON_DEPTH);
    }
    return CAIRN_OK;
}

typedef struct weights_spool {
    cairn__spool *spool;
    const char *what;
} weights_spool;

static cairn_status spool_put(void *ctx, const void *data, size_t len, cairn_error *err)
{
    weights_spool *w = ctx;
    return cairn__spool_append(w->spool, w->what, data, len, err);
}

/* The weights member, inflated and checked (CRC-32) into an unnamed
 * temporary file (r->weights) that libhdf5 opens through /proc/self/fd, or,
 * without /proc, maps: the member costs disk, not memory, and nothing of it
 * outlives the reader or the process. */
static cairn_status open_weights(const cairn_file *f, h5_reader *r, const cairn__zip_member *m)
{
    char what[512], self[64];
    snprintf(what, sizeof what, "%s: .keras member " KERAS_WEIGHTS, f->path);
    weights_spool w = {&r->weights, what};
    CAIRN_TRY(cairn__spool_open_tmp(&r->weights, what, r->err));
    CAIRN_TRY(cairn__zip_stream(&f->src, m, spool_put, &w, r->err));
    const char *path = cairn__h5_fd_path(r->weights.fd, self, sizeof self);
    if (path) {
        r->file = cairn__h5_open_file(f, r, path, 1, NULL, 0);
    } else if (m->size > 0 && m->size <= SIZE_MAX) {
        void *map = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, r->weights.fd, 0);
        if (map != MAP_FAILED) {
            r->mapped = map;
            r->mapped_size = (size_t)m->size;
            r->file = cairn__h5_open_file(f, r, NULL, 0, map, (size_t)m->size);
        }
    }
    if (r->file < 0)
        return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: libhdf5 cannot open it as an HDF5 "
                           "file", what);
    return CAIRN_OK;
}

/* A Keras 3 .keras archive (a ZIP of config.json, metadata.json and
 * model.weights.h5): the weights file through a temporary file, the JSON
 * members into the tree under "config" and "metadata". */
cairn_status cairn__h5_open_keras(const cairn_file *f, h5_reader *r)
{
    cairn__zip z;
    memset(&z, 0, sizeof z);
    const cairn__zip_member *m = NULL;
    cairn_status st = cairn__zip_open(&f->src, f->max_inflate, &z, r->err);
    if (st == CAIRN_OK && !(m = cairn__zip_find(&z, KERAS_WEIGHTS, strlen(KERAS_WEIGHTS))))
        st = cairn__fail(r->err, CAIRN_E_FORMAT, "%s: ZIP archive without " KERAS_WEIGHTS
                         " (not a .keras file)", f->path);
    if (st == CAIRN_OK && !(r->keras = cairn_value_map()))
        st = cairn__h5_nomem(r);
    if (st == CAIRN_OK)
        st = keras_json(r, &z, "config.json", "config");
    if (st == CAIRN_OK)
        st = keras_json(r, &z, "metadata.json", "metadata");
    if (st == CAIRN_OK)
        st = open_weights(f, r, m);
    cairn__zip_close(&z);
    return st;
}

int cairn__keras_sniff(const cairn_file *f)
{
    cairn__zip z;
    memset(&z, 0, sizeof z);
    int yes = cairn__zip_open(&f->src, UINT64_MAX, &z, NULL) == CAIRN_OK &&
              cairn__zip_find(&z, KERAS_WEIGHTS, strlen(KERAS_WEIGHTS)) != NULL;
    cairn__zip_close(&z);
    return yes;
}

/* Compares paths with runs of digits as numbers, so Keras 3's vars/2
 * comes before vars/10. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            const char *x = a, *y = b;
            while (*x == '0' && x[1] >= '0' && x[1] <= '9')
                x++;
            while (*y == '0' && y[1] >= '0' && y[1] <= '9')
                y++;
            size_t nx = strspn(x, "0123456789"), ny = strspn(y, "0123456789");
            if (nx != ny)
                return nx < ny ? -1 : 1;
            int c = memcmp(x, y, nx);
            if (c)
                return c;
            a = x + nx;
            b = y + ny;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int record_natural_cmp(const void *x, const void *y, void *ctx)
{
    const cairn__packed *p = ctx;
    size_t len;
    return natural_cmp(cairn__packed_name(p, *(const size_t *)x, &len),
                       cairn__packed_name(p, *(const size_t *)y, &len));
}

cairn_status cairn__h5_natural_order(h5_reader *r)
{
    CAIRN_TRY(cairn__h5_order(r));
    qsort_r(r->order, (size_t)r->tensors.count, sizeof *r->order, record_natural_cmp,
            &r->tensors);
    return CAIRN_OK;
}

