/* test_torch_write.c -- the PyTorch .pt writer: its ZIP layout, the pickle
 * opcodes and globals it may use, its refusals, and real PyTorch
 * (tests/torch_check.py, via $CAIRN_PYTHON) loading every dtype, edge
 * shapes, aliases and metadata trees with weights_only=True. */
#include "archive/archive.h"
#include "testutil.h"
#include "container/zip.h"

#include <cairn.h>
#include <math.h>

static const char *tmp;
static int have_torch;

static const cairn_dtype torch_dtypes[] = {CAIRN_F64, CAIRN_F32, CAIRN_F16, CAIRN_BF16,
                                           CAIRN_I8,  CAIRN_U8,  CAIRN_I16, CAIRN_I32,
                                           CAIRN_I64, CAIRN_BOOL, CAIRN_C64, CAIRN_C128};
static const cairn_dtype refused_dtypes[] = {CAIRN_F8_E4M3, CAIRN_F8_E5M2, CAIRN_U16, CAIRN_U32,
                                             CAIRN_U64};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static cairn_write_opts torch_opts(void)
{
    return (cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                              .flags = CAIRN_WRITE_NO_SYNC, .format = CAIRN_FORMAT_TORCH};
}

/* -------------------------------------------------------- what was written */

/* The tensors of one file and the manifest torch_check.py compares against. */
typedef struct batch {
    cairn_writer *w;
    cairn_value *manifest, *tensors, *aliases;
    uint64_t seed;
    uint8_t **owned; /* every tensor's bytes, freed by batch_free */
    size_t n_owned;
} batch;

static void batch_start(batch *b, cairn_writer *w, const char *mode)
{
    *b = (batch){.w = w, .manifest = cairn_value_map(), .tensors = cairn_value_list(),
                 .aliases = cairn_value_map(), .seed = 42};
    CHECK_OK(cairn_value_set(b->manifest, "mode", cairn_value_string(mode), NULL));
}

static void batch_free(batch *b)
{
    cairn_value_free(b->manifest);
    cairn_value_free(b->tensors);
    cairn_value_free(b->aliases);
    for (size_t i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    free(b->owned);
}

static cairn_value *hex_value(const uint8_t *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", p[i]);
    s[2 * n] = '\0';
    cairn_value *v = cairn_value_string(s);
    free(s);
    return v;
}

static void manifest_tensor(batch *b, const char *name, cairn_dtype dtype, uint32_t rank,
                            const uint64_t *dims, const uint8_t *data, size_t size)
{
    cairn_value *t = cairn_value_map(), *shape = cairn_value_list();
    for (uint32_t d = 0; d < rank; d++)
        CHECK_OK(cairn_value_append(shape, cairn_value_int((int64_t)dims[d]), NULL));
    CHECK_OK(cairn_value_set(t, "name", cairn_value_string(name), NULL));
    CHECK_OK(cairn_value_set(t, "dtype", cairn_value_string(cairn_dtype_name(dtype)), NULL));
    CHECK_OK(cairn_value_set(t, "shape", shape, NULL));
    CHECK_OK(cairn_value_set(t, "hex", hex_value(data, size), NULL));
    CHECK_OK(cairn_value_append(b->tensors, t, NULL));
}

/* Adds a tensor of pseudo-random bytes (0/1 for BOOL) to the writer and the
 * manifest; returns its bytes (owned by the batch). */
static const uint8_t *add_tensor(batch *b, const char *name, cairn_dtype dtype, uint32_t rank,
                                 const uint64_t *dims)
{
    size_t size = cairn_dtype_size(dtype);
    for (uint32_t d = 0; d < rank; d++)
        size *= dims[d];
    uint8_t *data = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        uint8_t r = (uint8_t)tu_rand(&b->seed);
        data[i] = dtype == CAIRN_BOOL ? r & 1 : r;
    }
    b->owned = realloc(b->owned, (b->n_owned + 1) * sizeof *b->owned);
    b->owned[b->n_owned++] = data;
    cairn_error err = {0};
    CHECK_OK(cairn_writer_add(b->w, name, dtype, rank, dims, data, &err));
    if (err.status)
        fprintf(stderr, "  %s\n", err.message);
    manifest_tensor(b, name, dtype, rank, dims, data, size);
    return data;
}

static void add_alias(batch *b, const char *alias, const char *target, cairn_dtype dtype,
                      uint32_t rank, const uint64_t *dims, const uint8_t *data)
{
    size_t size = cairn_dtype_size(dtype);
    for (uint32_t d = 0; d < rank; d++)
        size *= dims[d];
    CHECK_OK(cairn_writer_add_alias(b->w, alias, target, NULL));
    manifest_tensor(b, alias, dtype, rank, dims, data, size);
    CHECK_OK(cairn_value_set(b->aliases, alias, cairn_value_string(target), NULL));
}

/* Moves the tensor list and aliases into the manifest and writes it as JSON. */
static void write_manifest(batch *b, const char *path)
{
    CHECK_OK(cairn_value_set(b->manifest, "tensors", b->tensors, NULL));
    CHECK_OK(cairn_value_set(b->manifest, "aliases", b->aliases, NULL));
    b->tensors = b->aliases = NULL;
    char *json = NULL;
    CHECK_OK(cairn_value_to_json(b->manifest, 0, &json, NULL));
    FILE *f = fopen(path, "w");
    CHECK(f && json && fputs(json, f) >= 0);
    if (f)
        fclose(f);
    cairn_free(json);
}

/* Writes the manifest next to the .pt and lets torch load and compare. */
static void torch_loads(batch *b, const char *pt)
{
    char man[4200];
    snprintf(man, sizeof man, "%s.json", pt);
    write_manifest(b, man);
    if (have_torch)
        CHECK(tu_run_python(tu_tests_file("torch_check.py"), pt, man) == 0);
}

/* --------------------------------------------------------- the ZIP layout */

/* A source over bytes in memory, so the ZIP reader can look inside
 * whatever the format readers make of the archive. */
static cairn__source memory_file(const uint8_t *p, size_t n)
{
    cairn__source f;
    cairn__source_init_memory(&f, "<memory>", p, n);
    return f;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Every member sits under `prefix`, stored, CRC right, data 64-byte aligned;
 * the records torch.load reads are there; returns data.pkl (caller frees). */
static uint8_t *check_layout(const uint8_t *p, size_t n, const char *prefix, size_t storages,
                             size_t *pkl_len)
{
    cairn__source f = memory_file(p, n);
    cairn__zip z;
    cairn_error err = {0};
    uint8_t *pkl = NULL;
    CHECK_OK(cairn__zip_open(&f, UINT64_MAX, &z, &err));
    CHECK(z.count == storages + 3);
    char name[512];
    for (uint64_t i = 0; i < z.count; i++) {
        const cairn__zip_member *m = &z.members[i];
        CHECK(starts_with(m->name, prefix) && m->name[strlen(prefix)] == '/');
        CHECK(m->method == CAIRN__ZIP_STORED && m->data_offset % 64 == 0);
        CHECK_OK(cairn__zip_verify(&f, m, &err));
        if (i < storages) { /* storages first, in the order they arrived */
            snprintf(name, sizeof name, "%s/data/%u", prefix, (unsigned)i);
            CHECK(strcmp(m->name, name) == 0);
        }
    }
    static const char *const leaf[] = {"version", "byteorder"};
    static const char *const want[] = {"3\n", "little"};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s/%s", prefix, leaf[k]);
        const cairn__zip_member *m = cairn__zip_find(&z, name, strlen(name));
        CHECK(m && m->size == strlen(want[k]) && !memcmp(p + m->data_offset, want[k], m->size));
    }
    snprintf(name, sizeof name, "%s/data.pkl", prefix);
    const cairn__zip_member *m = cairn__zip_find(&z, name, strlen(name));
    CHECK(m != NULL);
    if (m && (pkl = malloc(m->size + 1))) {
        memcpy(pkl, p + m->data_offset, m->size);
        *pkl_len = m->size;
    }
    cairn__zip_close(&z);
    return pkl;
}

/* ------------------------------------------------------- the pickle opcodes */

/* Walks a pickle and checks that it uses only opcodes and globals that
 * torch 1.13's weights_only unpickler accepts (plus BINFLOAT, which torch
 * 2.0 added, and _codecs.encode for bytes, which 2.5 added, when allowed). */
static int pickle_is_weights_only(const uint8_t *p, size_t n, int floats_ok, int bytes_ok)
{
    static const char storage_globals[] =
        " DoubleStorage FloatStorage HalfStorage BFloat16Storage CharStorage ByteStorage "
        "ShortStorage IntStorage LongStorage BoolStorage ComplexFloatStorage "
        "ComplexDoubleStorage ";
    size_t i = 0;
    if (n < 3 || p[0] != 0x80 || p[1] != 2)
        return 0;
    for (i = 2; i < n;) {
        uint8_t op = p[i++];
        size_t arg = 0;
        switch (op) {
        case '(': case 't': case 0x85: case 0x86: case 0x87: case ')': case ']': case '}':
        case 'e': case 'u': case 'N': case 0x88: case 0x89: case 'R': case 'Q':
            break;
        case 'K': arg = 1; break;
        case 'M': arg = 2; break;
        case 'J': arg = 4; break;
        case 'G':
            if (!floats_ok)
                return 0;
            arg = 8;
            break;
        case 0x8a: arg = i < n ? 1u + p[i] : 1; break;
        case 'X': arg = i + 4 <= n ? 4 + (size_t)cairn__le32(p + i) : 4; break;
        case 'c': {
            const char *s = (const char *)p + i;
            const char *nl1 = memchr(s, '\n', n - i);
            const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', n - i - (size_t)(nl1 + 1 - s)) : NULL;
            if (!nl2)
                return 0;
            char g[256], word[128];
            snprintf(g, sizeof g, "%.*s.%.*s", (int)(nl1 - s), s, (int)(nl2 - nl1 - 1), nl1 + 1);
            snprintf(word, sizeof word, " %.*s ", (int)(nl2 - nl1 - 1), nl1 + 1);
            int ok = !strcmp(g, "collections.OrderedDict") ||
                     !strcmp(g, "torch._utils._rebuild_tensor_v2") ||
                     (bytes_ok && !strcmp(g, "_codecs.encode")) ||
                     (starts_with(g, "torch.") && strchr(g + 6, '.') == NULL &&
                      strstr(storage_globals, word));
            if (!ok) {
                fprintf(stderr, "  global %s is not allowed\n", g);
                return 0;
            }
            arg = (size_t)(nl2 + 1 - s);
            break;
        }
        case '.': return i == n;
        default:
            fprintf(stderr, "  opcode 0x%02x at %zu is not allowed\n", op, i - 1);
            return 0;
        }
        if (arg > n - i)
            return 0;
        i += arg;
    }
    return 0;
}

/* ------------------------------------------------- reading it back (reader) */

/* Once the .pt reader exists: cairn reads back every tensor it wrote, with
 * the same dtype, shape and bytes. Returns 0 when there is no reader yet. */
/* The .pt file at path has the ZIP layout check_layout expects (folder
 * `prefix`, `storages` storages) and a pickle that weights_only loads (with
 * floats and bytes allowed or not). */
static void check_pt_file(const char *path, const char *prefix, size_t storages, int floats_ok,
                          int bytes_ok)
{
    size_t n = 0, pkl_len = 0;
    uint8_t *p = tu_read_whole(path, &n);
    uint8_t *pkl = p ? check_layout(p, n, prefix, storages, &pkl_len) : NULL;
    CHECK(pkl && pickle_is_weights_only(pkl, pkl_len, floats_ok, bytes_ok));
    if (!pkl)
        fprintf(stderr, "  %s: no weights-only pickle\n", path);
    free(pkl);
    free(p);
}

static int reads_back(const uint8_t *p, size_t n, const char *const *names, size_t count,
                      const uint8_t *const *datas)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open_memory(p, n, NULL, &f, &err);
    if (st == CAIRN_E_FORMAT || st == CAIRN_E_UNSUPPORTED)
        return 0;
    CHECK_OK(st);
    if (!f) {
        fprintf(stderr, "  reading back: %s\n", err.message);
        return 1;
    }
    cairn_file_info fi;
    CHECK(cairn_file_get_info(f, &fi, &err) == CAIRN_OK && fi.format == CAIRN_FORMAT_TORCH);
    CHECK(cairn_file_count(f) == count);
    for (size_t i = 0; i < count; i++) {
        uint64_t idx;
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_find(f, names[i], &idx, &ti, &err));
        if (err.status) {
            fprintf(stderr, "  %s\n", err.message);
            continue;
        }
        uint8_t *buf = malloc(ti.raw_size ? ti.raw_size : 1);
        CHECK_OK(cairn_tensor_read(f, idx, ti.dtype, buf, ti.raw_size, 0, &err));
        CHECK(memcmp(buf, datas[i], ti.raw_size) == 0);
        free(buf);
    }
    cairn_file_close(f);
    return 1;
}

/* cairn's reader gives back the values of the tree under `keys` exactly
 * (tensor references aside: the reader names tensors by their path). */
static void tree_reads_back(const char *path, const cairn_value *tree, const char *const *keys,
                            size_t n)
{
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    cairn_error err = {0};
    if (cairn_file_open(path, NULL, &f, &err) != CAIRN_OK) {
        fprintf(stderr, "no .pt reader in this build (%s): metadata read-back skipped\n",
                err.message);
        return;
    }
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    for (size_t i = 0; meta && i < n; i++) {
        char *want = NULL, *got = NULL;
        const cairn_value *g = cairn_value_get(meta, keys[i]);
        CHECK(g != NULL);
        CHECK_OK(cairn_value_to_json(cairn_value_get(tree, keys[i]), 0, &want, NULL));
        if (g)
            CHECK_OK(cairn_value_to_json(g, 0, &got, NULL));
        CHECK(want && got && strcmp(want, got) == 0);
        if (want && got && strcmp(want, got) != 0)
            fprintf(stderr, "  %s: key '%s' reads back as %.200s\n", path, keys[i], got);
        cairn_free(want);
        cairn_free(got);
    }
    cairn_value_free(meta);
    cairn_file_close(f);
}

/* ------------------------------------------------------------------ tests */

/* Every dtype torch has, in edge shapes: 0-d, empty, a 0 between others,
 * rank 8, and plain ones; to memory (layout, opcodes) and to a path (torch). */
static void test_dtypes(void)
{
    static const uint32_t ranks[] = {0, 1, 3, 8, 2};
    static const uint64_t shapes[][CAIRN_MAX_RANK] = {
        {0}, {0}, {2, 0, 3}, {1, 2, 1, 3, 1, 2, 1, 2}, {3, 5}};
    char path[4200];
    snprintf(path, sizeof path, "%s/dtypes.pt", tmp);
    for (int to_path = 0; to_path < 2; to_path++) {
        cairn_writer *w = NULL;
        cairn_write_opts o = torch_opts();
        CHECK_OK(to_path ? cairn_writer_open_path(path, &o, &w, NULL)
                         : cairn_writer_open_memory(&o, &w, NULL));
        batch b;
        batch_start(&b, w, "state_dict");
        const char *names[COUNT(torch_dtypes) * COUNT(ranks)];
        const uint8_t *datas[COUNT(names)];
        char name_buf[COUNT(names)][32];
        size_t k = 0;
        for (size_t d = 0; d < COUNT(torch_dtypes); d++) {
            for (size_t s = 0; s < COUNT(ranks); s++, k++) {
                snprintf(name_buf[k], sizeof name_buf[k], "%s.r%u.%zu",
                         cairn_dtype_name(torch_dtypes[d]), ranks[s], s);
                names[k] = name_buf[k];
                datas[k] = add_tensor(&b, names[k], torch_dtypes[d], ranks[s], shapes[s]);
            }
        }
        if (!to_path) {
            void *out = NULL;
            size_t n = 0, pkl_len = 0;
            CHECK_OK(cairn_writer_commit_memory(w, &out, &n, NULL));
            uint8_t *pkl = check_layout(out, n, "archive", k, &pkl_len);
            CHECK(pkl && pickle_is_weights_only(pkl, pkl_len, 0, 0));
            free(pkl);
            if (reads_back(out, n, names, k, datas))
                fprintf(stderr, "cairn read back the %zu tensors it wrote\n", k);
            else
                fprintf(stderr, "no .pt reader in this build: read-back skipped\n");
            cairn_free(out);
        } else {
            CHECK_OK(cairn_writer_commit(w, NULL));
            torch_loads(&b, path);
        }
        batch_free(&b);
    }
}

/* FP8 and unsigned types wider than a byte have no torch 1.13 storage:
 * refused, naming the tensor and the dtype. */
static void test_refused(void)
{
    for (size_t d = 0; d < COUNT(refused_dtypes); d++) {
        cairn_writer *w = NULL;
        cairn_write_opts o = torch_opts();
        cairn_error err = {0};
        uint64_t dims[1] = {4};
        uint8_t data[32] = {0};
        CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
        CHECK_ST(cairn_writer_add(w, "layer.weight", refused_dtypes[d], 1, dims, data, &err),
                 CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, "layer.weight") &&
              strstr(err.message, cairn_dtype_name(refused_dtypes[d])));
        cairn_writer_abort(w);
    }
}

static void expect_commit_fails(cairn_writer *w, cairn_status want, const char *needle)
{
    void *out = NULL;
    size_t n = 0;
    cairn_error err = {0};
    CHECK_ST(cairn_writer_commit_memory(w, &out, &n, &err), want);
    CHECK(strstr(err.message, needle) != NULL);
    if (!strstr(err.message, needle))
        fprintf(stderr, "  message: %s\n", err.message);
    cairn_free(out);
}

/* Names, aliases and tree references that cannot work. */
static void test_errors(void)
{
    cairn_write_opts o = torch_opts();
    uint64_t dims[1] = {2};
    float data[2] = {1, 2};
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 1, dims, data, NULL));
    CHECK_ST(cairn_writer_add(w, "a", CAIRN_F32, 1, dims, data, NULL), CAIRN_E_EXISTS);
    cairn_writer_abort(w);

    CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
    CHECK_ST(cairn_writer_add_alias(w, "b", "missing", NULL), CAIRN_E_NOT_FOUND);
    cairn_writer_abort(w);

    /* A reference to a tensor that never came. */
    cairn_value *tree = cairn_value_map();
    CHECK_OK(cairn_value_set(tree, "w", cairn_value_tensor_ref("ghost"), NULL));
    CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
    CHECK_OK(cairn_writer_set_metadata(w, tree, NULL));
    expect_commit_fails(w, CAIRN_E_NOT_FOUND, "ghost");
    cairn_value_free(tree);

    /* Unreferenced tensors need the key "tensors", which the tree took. */
    tree = cairn_value_map();
    CHECK_OK(cairn_value_set(tree, "tensors", cairn_value_int(1), NULL));
    CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 1, dims, data, NULL));
    CHECK_OK(cairn_writer_set_metadata(w, tree, NULL));
    expect_commit_fails(w, CAIRN_E_EXISTS, "tensors");
    cairn_value_free(tree);

    /* Deeper than the metadata's limit. */
    tree = cairn_value_map();
    cairn_value *at = tree;
    for (int d = 0; d < 70; d++) {
        cairn_value *child = cairn_value_map();
        CHECK_OK(cairn_value_set(at, "d", child, NULL));
        at = child;
    }
    CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
    if (cairn_writer_set_metadata(w, tree, NULL) == CAIRN_OK)
        expect_commit_fails(w, CAIRN_E_LIMIT, "deeper");
    else
        cairn_writer_abort(w);
    cairn_value_free(tree);

    /* A dimension beside a 0 that torch's int64 sizes cannot hold. */
    uint64_t huge[2] = {0, UINT64_C(1) << 63};
    CHECK_OK(cairn_writer_open_memory(&o, &w, NULL));
    CHECK_ST(cairn_writer_add(w, "h", CAIRN_F32, 2, huge, NULL, NULL), CAIRN_E_LIMIT);
    cairn_writer_abort(w);
}

/* Tied weights: an alias shares its target's storage in torch too. */
static void test_aliases(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tied.pt", tmp);
    cairn_writer *w = NULL;
    cairn_write_opts o = torch_opts();
    CHECK_OK(cairn_writer_open_path(path, &o, &w, NULL));
    batch b;
    batch_start(&b, w, "state_dict");
    uint64_t emb[2] = {7, 4}, bias[1] = {7};
    const uint8_t *e = add_tensor(&b, "embed.weight", CAIRN_F32, 2, emb);
    const uint8_t *hb = add_tensor(&b, "head.bias", CAIRN_F32, 1, bias);
    add_alias(&b, "head.weight", "embed.weight", CAIRN_F32, 2, emb, e);
    add_alias(&b, "head2.weight", "head.weight", CAIRN_F32, 2, emb, e); /* alias of an alias */
    CHECK_OK(cairn_writer_commit(w, NULL));
    size_t n = 0, pkl_len = 0;
    uint8_t *p = tu_read_whole(path, &n);
    uint8_t *pkl = p ? check_layout(p, n, "tied", 2, &pkl_len) : NULL;
    CHECK(pkl && pickle_is_weights_only(pkl, pkl_len, 0, 0));
    static const char *const names[] = {"embed.weight", "head.bias", "head.weight",
                                        "head2.weight"};
    const uint8_t *datas[] = {e, hb, e, e};
    if (p)
        reads_back(p, n, names, COUNT(names), datas);
    free(pkl);
    free(p);
    torch_loads(&b, path);
    batch_free(&b);
}

/* The tree with ints, strings, booleans, None, lists and maps, which every
 * torch's weights_only loads; tensors referenced (twice, through an alias)
 * and not referenced (into "tensors"); batches of more than 1000 items. */
static cairn_value *basic_tree(void)
{
    cairn_value *t = cairn_value_map(), *ints = cairn_value_map(), *model = cairn_value_map();
    static const int64_t edge[] = {0, 1, -1, 255, 256, 65535, 65536, INT32_MAX,
                                   (int64_t)INT32_MAX + 1, INT32_MIN, (int64_t)INT32_MIN - 1,
                                   INT64_MAX, INT64_MIN, 128, -128, 32768, -32769};
    for (size_t i = 0; i < COUNT(edge); i++) {
        char key[32];
        snprintf(key, sizeof key, "i%zu", i);
        CHECK_OK(cairn_value_set(ints, key, cairn_value_int(edge[i]), NULL));
    }
    CHECK_OK(cairn_value_set(t, "ints", ints, NULL));
    CHECK_OK(cairn_value_set(t, "text", cairn_value_string_n("h\xc3\xa9llo \xe2\x98\x83 \0 nul",
                                                               16), NULL));
    CHECK_OK(cairn_value_set(t, "empty", cairn_value_string(""), NULL));
    cairn_value *flags = cairn_value_list();
    CHECK_OK(cairn_value_append(flags, cairn_value_bool(1), NULL));
    CHECK_OK(cairn_value_append(flags, cairn_value_bool(0), NULL));
    CHECK_OK(cairn_value_append(flags, cairn_value_null(), NULL));
    CHECK_OK(cairn_value_set(t, "flags", flags, NULL));
    CHECK_OK(cairn_value_set(model, "fc.weight", cairn_value_tensor_ref("fc.weight"), NULL));
    CHECK_OK(cairn_value_set(model, "fc.bias", cairn_value_tensor_ref("fc.bias"), NULL));
    CHECK_OK(cairn_value_set(t, "model", model, NULL));
    cairn_value *tied = cairn_value_list();
    CHECK_OK(cairn_value_append(tied, cairn_value_tensor_ref("fc.weight"), NULL));
    CHECK_OK(cairn_value_append(tied, cairn_value_tensor_ref("tied.weight"), NULL));
    CHECK_OK(cairn_value_set(t, "tied", tied, NULL));
    cairn_value *deep = cairn_value_list(), *at = deep;
    for (int d = 0; d < 20; d++) {
        cairn_value *child = d % 2 ? cairn_value_list() : cairn_value_map();
        if (cairn_value_get_type(at) == CAIRN_VALUE_LIST)
            CHECK_OK(cairn_value_append(at, child, NULL));
        else
            CHECK_OK(cairn_value_set(at, "x", child, NULL));
        at = child;
    }
    CHECK_OK(cairn_value_set(t, "deep", deep, NULL));
    cairn_value *long_list = cairn_value_list(), *big_map = cairn_value_map();
    for (int i = 0; i < 2500; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        CHECK_OK(cairn_value_append(long_list, cairn_value_int(i * 7919), NULL));
        CHECK_OK(cairn_value_set(big_map, key, cairn_value_int(i), NULL));
    }
    CHECK_OK(cairn_value_set(t, "long_list", long_list, NULL));
    CHECK_OK(cairn_value_set(t, "big_map", big_map, NULL));
    CHECK_OK(cairn_value_set(t, "empty_list", cairn_value_list(), NULL));
    CHECK_OK(cairn_value_set(t, "empty_map", cairn_value_map(), NULL));
    return t;
}

/* Floats (NaN with a payload, infinities, -0, subnormals) and bytes, which
 * torch's weights_only learned in 2.0 and 2.5. */
static cairn_value *float_tree(void)
{
    cairn_value *t = cairn_value_map(), *fl = cairn_value_list();
    uint64_t payload_bits = UINT64_C(0x7ff8000000000123);
    uint64_t neg_nan_bits = UINT64_C(0xfff8000000000000);
    double payload, neg_nan;
    memcpy(&payload, &payload_bits, sizeof payload);
    memcpy(&neg_nan, &neg_nan_bits, sizeof neg_nan);
    const double values[] = {0.1, 1.0, -0.0, 0.0, NAN, payload, neg_nan, INFINITY, -INFINITY,
                             5e-324, 1.7976931348623157e308, -2.5};
    for (size_t i = 0; i < COUNT(values); i++)
        CHECK_OK(cairn_value_append(fl, cairn_value_float(values[i]), NULL));
    CHECK_OK(cairn_value_set(t, "floats", fl, NULL));
    CHECK_OK(cairn_value_set(t, "lr", cairn_value_float(0.001), NULL));
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    cairn_value *bl = cairn_value_list();
    CHECK_OK(cairn_value_append(bl, cairn_value_bytes(all, sizeof all), NULL));
    CHECK_OK(cairn_value_append(bl, cairn_value_bytes("", 0), NULL));
    CHECK_OK(cairn_value_append(bl, cairn_value_bytes("plain", 5), NULL));
    CHECK_OK(cairn_value_set(t, "bytes", bl, NULL));
    CHECK_OK(cairn_value_set(t, "weight", cairn_value_tensor_ref("w"), NULL));
    return t;
}

static void test_trees(void)
{
    char path[4200];
    cairn_write_opts o = torch_opts();
    uint64_t wd[2] = {3, 4}, bd[1] = {3}, xd[1] = {5};

    /* 1. The basic tree, with two tensors left out of it. */
    snprintf(path, sizeof path, "%s/tree.pt", tmp);
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_path(path, &o, &w, NULL));
    batch b;
    batch_start(&b, w, "tree");
    const uint8_t *wdata = add_tensor(&b, "fc.weight", CAIRN_F32, 2, wd);
    add_tensor(&b, "fc.bias", CAIRN_F32, 1, bd);
    const uint8_t *x = add_tensor(&b, "step", CAIRN_I64, 1, xd);
    add_alias(&b, "tied.weight", "fc.weight", CAIRN_F32, 2, wd, wdata);
    add_alias(&b, "step.copy", "step", CAIRN_I64, 1, xd, x);
    cairn_value *tree = basic_tree();
    CHECK_OK(cairn_writer_set_metadata(w, tree, NULL));
    CHECK_OK(cairn_writer_commit(w, NULL));
    CHECK_OK(cairn_value_set(b.manifest, "tree", tree, NULL));
    cairn_value *rest = cairn_value_list();
    CHECK_OK(cairn_value_append(rest, cairn_value_string("step"), NULL));
    CHECK_OK(cairn_value_append(rest, cairn_value_string("step.copy"), NULL));
    CHECK_OK(cairn_value_set(b.manifest, "unreferenced", rest, NULL));
    check_pt_file(path, "tree", 3, 0, 0);
    static const char *const basic_keys[] = {"ints", "text", "empty", "flags", "deep",
                                             "long_list", "big_map", "empty_list", "empty_map"};
    tree_reads_back(path, tree, basic_keys, COUNT(basic_keys));
    torch_loads(&b, path);
    batch_free(&b);

    /* 2. Floats and bytes; every tensor referenced: no "tensors" key. */
    snprintf(path, sizeof path, "%s/floats.pt", tmp);
    CHECK_OK(cairn_writer_open_path(path, &o, &w, NULL));
    batch_start(&b, w, "tree");
    add_tensor(&b, "w", CAIRN_BF16, 2, wd);
    tree = float_tree();
    CHECK_OK(cairn_writer_set_metadata(w, tree, NULL));
    CHECK_OK(cairn_writer_commit(w, NULL));
    CHECK_OK(cairn_value_set(b.manifest, "tree", tree, NULL));
    cairn_value *needs = cairn_value_list();
    CHECK_OK(cairn_value_append(needs, cairn_value_string("floats"), NULL));
    CHECK_OK(cairn_value_append(needs, cairn_value_string("bytes"), NULL));
    CHECK_OK(cairn_value_set(b.manifest, "needs", needs, NULL));
    check_pt_file(path, "floats", 1, 1, 1);
    static const char *const float_keys[] = {"floats", "lr", "bytes"};
    tree_reads_back(path, tree, float_keys, COUNT(float_keys));
    torch_loads(&b, path);
    batch_free(&b);

    /* 3. An empty tree is no tree: the flat state dict. */
    snprintf(path, sizeof path, "%s/empty_tree.pt", tmp);
    CHECK_OK(cairn_writer_open_path(path, &o, &w, NULL));
    batch_start(&b, w, "state_dict");
    add_tensor(&b, "w", CAIRN_F16, 2, wd);
    tree = cairn_value_map();
    CHECK_OK(cairn_writer_set_metadata(w, tree, NULL));
    cairn_value_free(tree);
    CHECK_OK(cairn_writer_commit(w, NULL));
    torch_loads(&b, path);
    batch_free(&b);
}

/* The folder torch.save would pick: the file's stem; "archive" otherwise. */
static void test_prefix(void)
{
    static const char *const files[] = {"model.v2.pt", ".pt", "weights.pth", "noext"};
    static const char *const prefixes[] = {"model.v2", "archive", "weights", "noext"};
    for (size_t i = 0; i < COUNT(files); i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", tmp, files[i]);
        cairn_writer *w = NULL;
        cairn_write_opts o = torch_opts();
        uint64_t dims[1] = {3};
        int32_t data[3] = {1, 2, 3};
        CHECK_OK(cairn_writer_open_path(path, &o, &w, NULL));
        CHECK_OK(cairn_writer_add(w, "x", CAIRN_I32, 1, dims, data, NULL));
        CHECK_OK(cairn_writer_commit(w, NULL));
        size_t n = 0, pkl_len = 0;
        uint8_t *p = tu_read_whole(path, &n);
        free(p ? check_layout(p, n, prefixes[i], 1, &pkl_len) : NULL);
        free(p);
    }
    /* A memory save is a file save to archive.pt, byte for byte. */
    uint8_t *bytes[2] = {NULL, NULL};
    size_t sizes[2] = {0, 0};
    for (int to_path = 0; to_path < 2; to_path++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/archive.pt", tmp);
        cairn_writer *w = NULL;
        cairn_write_opts o = torch_opts();
        uint64_t dims[2] = {2, 3};
        double data[6] = {1, 2, 3, 4, 5, 6};
        CHECK_OK(to_path ? cairn_writer_open_path(path, &o, &w, NULL)
                         : cairn_writer_open_memory(&o, &w, NULL));
        CHECK_OK(cairn_writer_add(w, "x", CAIRN_F64, 2, dims, data, NULL));
        CHECK_OK(cairn_writer_add_alias(w, "y", "x", NULL));
        if (to_path) {
            CHECK_OK(cairn_writer_commit(w, NULL));
            bytes[1] = tu_read_whole(path, &sizes[1]);
        } else {
            CHECK_OK(cairn_writer_commit_memory(w, (void **)&bytes[0], &sizes[0], NULL));
        }
    }
    CHECK(bytes[0] && bytes[1] && sizes[0] == sizes[1] && !memcmp(bytes[0], bytes[1], sizes[0]));
    cairn_free(bytes[0]);
    free(bytes[1]);
    /* By extension, without a format. */
    char path[4200];
    snprintf(path, sizeof path, "%s/auto.PTH", tmp);
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, NULL));
    CHECK(w && w->ops->format == CAIRN_FORMAT_TORCH);
    cairn_writer_abort(w);
}

/* Storages go out as they arrive: the file holds a tensor's bytes before
 * commit, so a save needs no memory for payloads. */
static void test_streaming(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/stream.pt", tmp);
    cairn_writer *w = NULL;
    cairn_write_opts o = torch_opts();
    size_t count = (size_t)1 << 20;
    float *big = calloc(count, sizeof *big);
    uint64_t dims[1] = {count};
    CHECK_OK(cairn_writer_open_path(path, &o, &w, NULL));
    CHECK_OK(cairn_writer_add(w, "big", CAIRN_F32, 1, dims, big, NULL));
    struct stat st;
    CHECK(w && fstat(cairn__sink_fd(&w->sink), &st) == 0 &&
          (uint64_t)st.st_size >= count * sizeof *big);
    CHECK_OK(cairn_writer_commit(w, NULL));
    free(big);
}

int main(void)
{
    tmp = tu_tmpdir("test_torch_write");
    have_torch = tu_python_imports("torch", "PyTorch cross-checks");
    test_refused();
    test_errors();
    test_prefix();
    test_streaming();
    test_dtypes();
    test_aliases();
    test_trees();
    TEST_MAIN_END();
}
