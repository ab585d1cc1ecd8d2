/* skorch.c -- a skorch checkpoint directory opened as one archive (docs/
 * FORMAT.md "PyTorch .pt (read)"): params.pt, optimizer.pt and criterion.pt
 * (torch files, read by torch_read.c) plus history.json, as skorch's
 * Checkpoint callback writes them, with an optional shared file name prefix
 * (TrainEndCheckpoint's "train_end_"). */
#include "archive/archive.h"
#include "common/value_internal.h"
#include "io/open_read.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SK_PARTS 3
#define SK_PREFIX_MAX 255
#define SK_HISTORY "history.json"
#define SK_HISTORY_MAX (UINT64_C(64) << 20)

static const char *const part_names[SK_PARTS] = {"params", "optimizer", "criterion"};

typedef struct sk_tensor {
    cairn__tensor t;  /* info.name owned here */
    uint32_t part;
    uint64_t index;   /* in the part's file */
} sk_tensor;

typedef struct sk_state {
    cairn__tensor_table table;   /* first: the generic ops read it (format.h) */
    cairn_file *parts[SK_PARTS]; /* NULL when the file is absent */
    sk_tensor *tensors;          /* params, optimizer, criterion, each in file order */
    uint64_t count;
    size_t *by_name;             /* tensor indexes in name order */
    cairn_value *tree;
    uint64_t file_size;
    char prefix[SK_PREFIX_MAX + 1];
} sk_state;
CAIRN__TABLE_FIRST(sk_state);

/* ---------------------------------------------------------------- layout */

static int is_file(const char *dir, const char *prefix, const char *leaf)
{
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s%s", dir, prefix, leaf) >= sizeof path)
        return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The checkpoint's file name prefix: "" when DIR/params.pt exists, else the
 * one P for which DIR/P + "params.pt" and DIR/P + "history.json" both exist.
 * Returns 1 when found, 0 when DIR is not a checkpoint, -1 when several
 * prefixes qualify (they are listed in `why`). */
static int find_prefix(const char *dir, char *prefix, char *why, size_t why_size)
{
    prefix[0] = '\0';
    if (is_file(dir, "", "params.pt"))
        return 1;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), suffix = strlen("params.pt");
        if (len <= suffix || len - suffix > SK_PREFIX_MAX ||
            strcmp(e->d_name + len - suffix, "params.pt") != 0)
            continue;
        char p[SK_PREFIX_MAX + 1];
        memcpy(p, e->d_name, len - suffix);
        p[len - suffix] = '\0';
        if (!is_file(dir, p, "params.pt") || !is_file(dir, p, SK_HISTORY))
            continue;
        if (found++ == 0)
            memcpy(prefix, p, len - suffix + 1);
        if (used < why_size)
            used += (size_t)snprintf(why + used, why_size - used, "%s'%s'", used ? ", " : "", p);
    }
    closedir(d);
    return found == 1 ? 1 : found > 1 ? -1 : 0;
}

int cairn__skorch_sniff(const char *dir)
{
    char prefix[SK_PREFIX_MAX + 1], why[8];
    return find_prefix(dir, prefix, why, sizeof why) != 0;
}

/* --------------------------------------------------------- history.json */

static cairn_status from_json(const json_t *j, int depth, const char *path, cairn_value **out,
                              cairn_error *err);

static cairn_status json_container(const json_t *j, int depth, const char *path,
                                   cairn_value **out, cairn_error *err)
{
    if (depth > CAIRN_META_MAX_DEPTH)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: JSON nests deeper than the metadata tree's "
                           "64 levels", path);
    int is_map = json_is_object(j);
    cairn_value *c = is_map ? cairn_value_map() : cairn_value_list();
    if (!c)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    cairn_status st = CAIRN_OK;
    if (is_map) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v) {
            cairn_value *child = NULL;
            if (!key[0])
                st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: an empty key", path);
            if (st == CAIRN_OK)
                st = from_json(v, depth + 1, path, &child, err);
            if (st == CAIRN_OK && cairn__value_map_push(c, key, strlen(key), child) != CAIRN_OK)
                st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
            if (st != CAIRN_OK) {
                cairn_value_free(child);
                break;
            }
        }
    } else {
        for (size_t i = 0; st == CAIRN_OK && i < json_array_size(j); i++) {
            cairn_value *child = NULL;
            st = from_json(json_array_get(j, i), depth + 1, path, &child, err);
            if (st == CAIRN_OK && cairn_value_append(c, child, err) != CAIRN_OK) {
                cairn_value_free(child);
                st = CAIRN_E_NOMEM;
            }
        }
    }
    if (st != CAIRN_OK) {
        cairn_value_free(c);
        return st;
    }
    *out = c;
    return CAIRN_OK;
}

/* Plain JSON (no cairn escapes): skorch writes it with json.dump. */
static cairn_status from_json(const json_t *j, int depth, const char *path, cairn_value **out,
                              cairn_error *err)
{
    *out = NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY: return json_container(j, depth, path, out, err);
    case JSON_STRING:
        *out = cairn_value_string_n(json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER: *out = cairn_value_int((int64_t)json_integer_value(j)); break;
    case JSON_REAL: *out = cairn_value_float(json_real_value(j)); break;
    case JSON_TRUE: *out = cairn_value_bool(1); break;
    case JSON_FALSE: *out = cairn_value_bool(0); break;
    case JSON_NULL: *out = cairn_value_null(); break;
    }
    return *out ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
}

static cairn_status read_history(const char *path, sk_state *s, cairn_value **out,
                                 cairn_error *err)
{
    int fd;
    struct stat sb;
    CAIRN_TRY(cairn__open_read(path, 0, 0, &fd, &sb, err));
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    char *text = NULL;
    cairn_status status = CAIRN_OK;
    if (fstat(fileno(fp), &st) != 0 || (uint64_t)st.st_size > SK_HISTORY_MAX)
        status = cairn__fail(err, CAIRN_E_LIMIT, "%s: larger than %llu bytes (or cannot stat)",
                             path, (unsigned long long)SK_HISTORY_MAX);
    else if (!(text = malloc((size_t)st.st_size + 1)))
        status = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    else if (fread(text, 1, (size_t)st.st_size, fp) != (size_t)st.st_size)
        status = cairn__fail(err, CAIRN_E_IO, "%s: short read", path);
    fclose(fp);
    if (status == CAIRN_OK) {
        json_error_t jerr;
        s->file_size += (uint64_t)st.st_size;
        json_t *root = json_loadb(text, (size_t)st.st_size, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
            status = cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %d: not JSON: %s", path,
                                 jerr.position, jerr.text);
        else
            status = from_json(root, 2, path, out, err);
        json_decref(root);
    }
    free(text);
    return status;
}

/* ------------------------------------------------------------ the parts */

/* A copy of `v` with every tensor reference prefixed "PART.". */
static cairn_status retag(const cairn_value *v, const char *part, int depth, cairn_value **out)
{
    *out = NULL;
    cairn_value_type type = cairn_value_get_type(v);
    if (type == CAIRN_VALUE_TENSOR) {
        const void *name;
        size_t len, plen = strlen(part);
        cairn_value_get_data(v, &name, &len);
        char *full = malloc(plen + 1 + len + 1);
        if (!full)
            return CAIRN_E_NOMEM;
        snprintf(full, plen + len + 2, "%s.%s", part, (const char *)name);
        *out = cairn__value_new_blob(CAIRN_VALUE_TENSOR, full, plen + 1 + len);
        free(full);
        return *out ? CAIRN_OK : CAIRN_E_NOMEM;
    }
    if (type != CAIRN_VALUE_MAP && type != CAIRN_VALUE_LIST) {
        *out = cairn_value_clone(v);
        return *out ? CAIRN_OK : CAIRN_E_NOMEM;
    }
    if (depth > CAIRN_META_MAX_DEPTH)
        return CAIRN_E_LIMIT;
    cairn_value *c = type == CAIRN_VALUE_MAP ? cairn_value_map() : cairn_value_list();
    cairn_status st = c ? CAIRN_OK : CAIRN_E_NOMEM;
    for (size_t i = 0; st == CAIRN_OK && i < cairn_value_count(v); i++) {
        cairn_value *child = NULL;
        st = retag(cairn_value_at(v, i), part, depth + 1, &child);
        if (st == CAIRN_OK && type == CAIRN_VALUE_MAP) {
            const char *key = cairn_value_key_at(v, i);
            st = cairn__value_map_push(c, key, strlen(key), child);
        } else if (st == CAIRN_OK) {
            st = cairn_value_append(c, child, NULL);
        }
        if (st != CAIRN_OK)
            cairn_value_free(child);
    }
    if (st != CAIRN_OK) {
        cairn_value_free(c);
        return st;
    }
    *out = c;
    return CAIRN_OK;
}

static cairn_status add_tree(cairn_file *f, sk_state *s, const char *key, cairn_value *child,
                             cairn_error *err)
{
    if (cairn__value_map_push(s->tree, key, strlen(key), child) != CAIRN_OK) {
        cairn_value_free(child);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    }
    return CAIRN_OK;
}

static cairn_status part_tensors(cairn_file *f, sk_state *s, uint32_t p, cairn_error *err)
{
    cairn_file *sub = s->parts[p];
    uint64_t n = cairn_file_count(sub);
    size_t plen = strlen(part_names[p]);
    for (uint64_t i = 0; i < n; i++) {
        sk_tensor *t = &s->tensors[s->count];
        CAIRN_TRY(cairn__reader_tensor_at(sub, i, &t->t, err));
        const char *name = t->t.info.name;
        size_t len = t->t.info.name_len;
        if (len > CAIRN_NAME_MAX - plen - 1)
            return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s.%.64s...' has a name longer "
                               "than 4096 bytes", f->path, part_names[p], name);
        char *full = malloc(plen + 1 + len + 1);
        if (!full)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        snprintf(full, plen + len + 2, "%s.%s", part_names[p], name);
        cairn_tensor_info *in = &t->t.info;
        in->name = full;
        in->name_len = plen + 1 + len;
        in->zero_copy = 0;   /* the bytes are in another file: read through load */
        in->has_checksum = 0;
        t->t.via_load = 1;
        t->t.big_endian = 0; /* load hands over normalised elements */
        t->t.fortran_order = 0;
        t->part = p;
        t->index = i;
        s->count++;
    }
    return CAIRN_OK;
}

static cairn_status open_part(cairn_file *f, sk_state *s, uint32_t p, cairn_error *err)
{
    char leaf[64], path[4096];
    snprintf(leaf, sizeof leaf, "%s.pt", part_names[p]);
    if (!is_file(f->path, s->prefix, leaf))
        return CAIRN_OK;
    snprintf(path, sizeof path, "%s/%s%s", f->path, s->prefix, leaf);
    cairn_open_opts o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = f->flags & ~(unsigned)CAIRN_OPEN_VERIFY;
    o.format = CAIRN_FORMAT_TORCH;
    o.max_inflate = f->max_inflate;
    CAIRN_TRY(cairn_file_open(path, &o, &s->parts[p], err));
    s->file_size += s->parts[p]->src.size;
    cairn_value *meta = NULL, *tagged = NULL;
    CAIRN_TRY(cairn_file_read_metadata(s->parts[p], &meta, err));
    cairn_status st = retag(meta, part_names[p], 2, &tagged);
    cairn_value_free(meta);
    if (st != CAIRN_OK)
        return cairn__fail(err, st, "%s: %s", path, st == CAIRN_E_LIMIT ? "metadata nests too "
                           "deep" : "out of memory");
    return add_tree(f, s, part_names[p], tagged, err);
}

/* --------------------------------------------------------------- open */

static int cmp_name(const sk_tensor *x, const sk_tensor *y)
{
    const cairn_tensor_info *a = &x->t.info, *b = &y->t.info;
    return cairn__name_cmp(a->name, a->name_len, b->name, b->name_len);
}

typedef struct sk_ref {
    const sk_tensor *t;
    uint64_t index;
} sk_ref;

static int ref_cmp(const void *a, const void *b)
{
    return cmp_name(((const sk_ref *)a)->t, ((const sk_ref *)b)->t);
}

static cairn_status sort_names(cairn_file *f, sk_state *s, cairn_error *err)
{
    sk_ref *refs = malloc((s->count ? (size_t)s->count : 1) * sizeof *refs);
    s->by_name = malloc((s->count ? (size_t)s->count : 1) * sizeof *s->by_name);
    if (!refs || !s->by_name) {
        free(refs);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    }
    for (uint64_t i = 0; i < s->count; i++) {
        refs[i].t = &s->tensors[i];
        refs[i].index = i;
    }
    qsort(refs, (size_t)s->count, sizeof *refs, ref_cmp);
    for (uint64_t i = 0; i < s->count; i++)
        s->by_name[i] = (size_t)refs[i].index;
    free(refs);
    return CAIRN_OK;
}

static void state_free(void *state)
{
    sk_state *s = state;
    if (!s)
        return;
    for (uint32_t p = 0; p < SK_PARTS; p++)
        cairn_file_close(s->parts[p]);
    for (uint64_t i = 0; i < s->count; i++)
        free((char *)s->tensors[i].t.info.name);
    free(s->tensors);
    free(s->by_name);
    cairn_value_free(s->tree);
    free(s);
}

static cairn_status parse(cairn_file *f, sk_state *s, cairn_error *err)
{
    char why[256] = "";
    int found = find_prefix(f->path, s->prefix, why, sizeof why);
    if (found <= 0)
        return cairn__fail(err, found < 0 ? CAIRN_E_UNSUPPORTED : CAIRN_E_FORMAT,
                           "%s: %s%s", f->path, found < 0 ? "several skorch checkpoints (file "
                           "name prefixes " : "not a skorch checkpoint directory (no params.pt)",
                           found < 0 ? why : "");
    if (!(s->tree = cairn_value_map()))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    uint64_t total = 0;
    for (uint32_t p = 0; p < SK_PARTS; p++) {
        CAIRN_TRY(open_part(f, s, p, err));
        total += s->parts[p] ? cairn_file_count(s->parts[p]) : 0;
    }
    s->tensors = calloc(total ? (size_t)total : 1, sizeof *s->tensors);
    if (!s->tensors)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    for (uint32_t p = 0; p < SK_PARTS; p++)
        if (s->parts[p])
            CAIRN_TRY(part_tensors(f, s, p, err));
    if (is_file(f->path, s->prefix, SK_HISTORY)) {
        char path[4096];
        cairn_value *history = NULL;
        snprintf(path, sizeof path, "%s/%s%s", f->path, s->prefix, SK_HISTORY);
        CAIRN_TRY(read_history(path, s, &history, err));
        CAIRN_TRY(add_tree(f, s, "history", history, err));
    }
    return sort_names(f, s, err);
}

static cairn_status sk_open(cairn_file *f, cairn_error *err)
{
    sk_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = parse(f, s, err);
    if (st != CAIRN_OK) {
        state_free(s);
        return st;
    }
    cairn__table_init(&s->table, s->tensors, sizeof *s->tensors, s->count, state_free);
    cairn__table_sorted(&s->table, NULL, s->by_name, NULL);
    s->table.hint = "names start with params., optimizer. or criterion.";
    f->state = s;
    return CAIRN_OK;
}

static cairn_status sk_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    const sk_state *s = f->state;
    out->format = CAIRN_FORMAT_TORCH;
    out->tensor_count = s->count;
    out->file_size = s->file_size;
    out->alignment = 1;
    out->has_metadata = cairn_value_count(s->tree) > 0;
    for (uint32_t p = 0; p < SK_PARTS; p++) {
        cairn_file_info sub;
        if (!s->parts[p])
            continue;
        CAIRN_TRY(cairn_file_get_info(s->parts[p], &sub, err));
        out->payload_bytes += sub.payload_bytes;
        if (!out->version_major)
            out->version_major = sub.version_major;
    }
    return CAIRN_OK;
}

static cairn_status sk_verify_structure(const cairn_file *f, cairn_error *err)
{
    const sk_state *s = f->state;
    for (uint32_t p = 0; p < SK_PARTS; p++) {
        const cairn_file *sub = s->parts[p];
        if (sub && sub->ops->verify_structure)
            CAIRN_TRY(sub->ops->verify_structure(sub, err));
    }
    return CAIRN_OK;
}

static cairn_status sk_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const sk_state *s = f->state;
    return cairn__metadata_copy(f, s->tree, out, err);
}

/* Reads through the part's own reader, its checksum checked. */
static cairn_status sk_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const sk_state *s = f->state;
    const sk_tensor *t = &s->tensors[index];
    return cairn_tensor_read(s->parts[t->part], t->index, t->t.info.dtype, dst,
                             (size_t)t->t.info.raw_size, CAIRN_READ_VERIFY, err);
}

static cairn_status sk_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    const sk_state *s = f->state;
    const sk_tensor *t = &s->tensors[index];
    return cairn_tensor_verify(s->parts[t->part], t->index, err);
}

const cairn__reader_ops cairn__skorch_reader = CAIRN__READER_OPS(
    sk, CAIRN_FORMAT_TORCH, .file_info = sk_file_info, .verify_structure = sk_verify_structure,
    .read_metadata = sk_read_metadata, .load = sk_load, .verify_tensor = sk_verify_tensor);
