/* pickle_flat.c -- turns the object graph of a pickle into cairn's view of
 * it: tensors named by their path, and the metadata tree with tensor
 * references. The one walker over a graph that may share nodes or hold
 * cycles: depth, cycles and expansion are all bounded. */
#include "container/pickle.h"
#include "common/value_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define TOP_TENSOR_NAME "tensor" /* a pickle that is one tensor */
#define TOP_OBJECT_KEY "object"  /* where a top level that is not a dict goes */
#define TOP_ARRAY_NAME "array"   /* an inert pickle that is one NumPy array */

typedef struct walk {
    cairn__pickle *vm;
    cairn__pk_flat *out;
    cairn_error *err;
    char path[CAIRN_NAME_MAX + 1];
    size_t path_len;
    int path_over;            /* the path is longer than a name may be */
    uint64_t spent, budget;   /* bytes of the results: nodes, packed items, names, keys,
                                 strings (CAIRN__PICKLE_TREE_BUDGET) */
    uint64_t stored;          /* bytes the file holds for the pickle, for messages */
    uint64_t pairs_left;      /* dict entries the walk may still look at (visit_pairs) */
    int no_refs;              /* a dict's tensor references are left out of the tree */
    cairn__pk_array_sink sink; /* where arrays go instead of out->arrays, or NULL */
    void *sink_ctx;
} walk;

static cairn_status convert(walk *w, uint32_t node, int depth, cairn_value **out);

static cairn_status fail_at(walk *w, uint32_t node, cairn_status st, const char *what)
{
    char shown[160];
    if (!w->path_len)
        return cairn__pk_fail(w->vm, w->err, w->vm->nodes[node].at, st, "%s (at the top level)",
                              what);
    cairn__printable(w->path, w->path_len, shown, sizeof shown);
    return cairn__pk_fail(w->vm, w->err, w->vm->nodes[node].at, st, "%s (at '%s%s')", what,
                          shown, w->path_over ? "..." : "");
}

static cairn_status nomem(walk *w, uint32_t node)
{
    return fail_at(w, node, CAIRN_E_NOMEM, "out of memory building the metadata tree");
}

/* Memo references make sharing cheap in the file (BINGET of a long string,
 * or of a list of a million numbers, is two bytes) but every reference is
 * its own copy in the tree: each is charged in full against a budget set
 * by the bytes the file holds for the pickle. */
static cairn_status spend(walk *w, uint32_t node, uint64_t n)
{
    if (n > w->budget || w->spent > w->budget - n) {
        char why[200];
        snprintf(why, sizeof why, "the metadata tree would take more than %llu bytes "
                 "(16 x the %llu bytes of pickle the file holds + 16 MiB): shared objects "
                 "expand too far", (unsigned long long)w->budget, (unsigned long long)w->stored);
        return fail_at(w, node, CAIRN_E_LIMIT, why);
    }
    w->spent += n;
    return CAIRN_OK;
}

/* What one value costs in the tree: a node and the slot that holds it. */
#define NODE_COST (sizeof(cairn_value) + sizeof(void *))
/* An item of a packed list, at the widest it can be (its text, if any, is
 * charged as copied): a list of a million ints referenced 40 times stops
 * early, and any pickle keeps its items (2 bytes or more each) in budget. */
#define PACKED_COST 8

/* ------------------------------------------------------------------ paths */

typedef struct path_mark {
    size_t len;
    int over;
} path_mark;

static path_mark path_push(walk *w, const char *seg, size_t len)
{
    path_mark m = {w->path_len, w->path_over};
    size_t need = len + (w->path_len ? 1 : 0);
    if (w->path_over || need > CAIRN_NAME_MAX - w->path_len) {
        w->path_over = 1;
        return m;
    }
    if (w->path_len)
        w->path[w->path_len++] = '.';
    memcpy(w->path + w->path_len, seg, len);
    w->path_len += len;
    w->path[w->path_len] = '\0';
    return m;
}

static void path_pop(walk *w, path_mark m)
{
    w->path_len = m.len;
    w->path_over = m.over;
    w->path[w->path_len] = '\0';
}

/* ---------------------------------------------------------------- tensors */

static cairn_status emit_tensor(walk *w, uint32_t node, cairn_value **out)
{
    const char *name = w->path_len ? w->path : TOP_TENSOR_NAME;
    size_t len = w->path_len ? w->path_len : strlen(TOP_TENSOR_NAME);
    cairn_error why;
    if (w->path_over)
        return fail_at(w, node, CAIRN_E_LIMIT, "a tensor name longer than 4096 bytes");
    if (cairn__name_check(name, len, "tensor", &why) != CAIRN_OK)
        return fail_at(w, node, CAIRN_E_UNSUPPORTED, why.message);
    CAIRN_TRY(spend(w, node, 2 * len)); /* the name and its reference */
    cairn__pk_flat *f = w->out;
    if (!CAIRN__GROW(f->tensors, f->cap, f->count, 64))
        return nomem(w, node);
    char *copy = malloc(len + 1);
    *out = cairn__value_new_blob(CAIRN_VALUE_TENSOR, name, len);
    if (!copy || !*out) {
        free(copy);
        cairn_value_free(*out);
        *out = NULL;
        return nomem(w, node);
    }
    memcpy(copy, name, len + 1);
    f->tensors[f->count].name = copy;
    f->tensors[f->count].len = len;
    f->tensors[f->count].tensor = w->vm->nodes[node].u.ref;
    f->tensors[f->count].at = w->vm->nodes[node].at;
    f->count++;
    return CAIRN_OK;
}

/* A compact array (pickle_compact.c) the walk would have turned into a value
 * from its dict, or a ghost it reaches: this run cannot say what a plain
 * run would; the host runs the pickle again without compacting. */
static cairn_status compact_broken(walk *w, uint32_t node)
{
    return fail_at(w, node, CAIRN_E_UNSUPPORTED, "an object compact mode no longer keeps whole "
                                                 "is needed whole");
}

/* The array the walk names `name` goes to the sink, and a tensor reference
 * to *out. */
static cairn_status sink_array(walk *w, uint32_t node, const cairn__np_array *a,
                               const char *name, size_t len, cairn_value **out, int *done)
{
    cairn__pk_blob *b = a->owner != UINT32_MAX ? &w->vm->blobs[w->vm->nodes[a->owner].u.ref]
                                               : NULL;
    cairn__pk_array e;
    memset(&e, 0, sizeof e);
    e.name = (char *)name;
    e.len = (uint32_t)len; /* a name is at most CAIRN_NAME_MAX bytes */
    e.dtype = (uint8_t)a->dtype;
    e.rank = (uint8_t)a->rank;
    e.big_endian = a->big_endian;
    e.fortran = a->fortran;
    e.bytes = a->data;
    e.nbytes = a->nbytes;
    e.owned = b && b->owned ? (uint8_t *)b->p : NULL;
    if (!(*out = cairn__value_new_blob(CAIRN_VALUE_TENSOR, name, len)))
        return nomem(w, node);
    CAIRN_TRY(w->sink(w->sink_ctx, &e, a->dims, w->err));
    if (b)
        b->owned = 0; /* the sink has the bytes the graph made */
    *done = 1;
    return CAIRN_OK;
}

/* An inert NumPy array (cairn__np_array_of): an entry of out->arrays and a
 * tensor reference in the tree; its dtype, shape and bytes are read from
 * the graph, not copied into the tree. *done is cleared when the node is
 * not such an array, or its path cannot name a tensor (it stays a value). */
static cairn_status emit_array(walk *w, uint32_t node, cairn_value **out, int *done)
{
    cairn__np_array a;
    char why[160];
    *done = 0;
    int compact = w->vm->nodes[node].type == CAIRN__PK_ARRAY;
    int got = compact ? cairn__np_compact_of(w->vm, node, &a, why, sizeof why)
                      : cairn__np_array_of(w->vm, node, &a, why, sizeof why);
    if (got < 0)
        return fail_at(w, node, CAIRN_E_CORRUPT, why);
    const char *name = w->path_len ? w->path : TOP_ARRAY_NAME;
    size_t len = w->path_len ? w->path_len : strlen(TOP_ARRAY_NAME);
    cairn_error ignored;
    if (got == 0 || w->path_over || cairn__name_check(name, len, "tensor", &ignored) != CAIRN_OK)
        return compact ? compact_broken(w, node) : CAIRN_OK;
    CAIRN_TRY(spend(w, node, sizeof(cairn__pk_array) + NODE_COST + 2 * len));
    if (w->sink)
        return sink_array(w, node, &a, name, len, out, done);
    cairn__pk_flat *f = w->out;
    if (!CAIRN__GROW(f->arrays, f->array_cap, f->array_count, 64))
        return nomem(w, node);
    while (f->dims_cap - f->dims_count < a.rank)
        if (!CAIRN__GROW(f->dims, f->dims_cap, f->dims_cap, 64))
            return nomem(w, node);
    cairn__pk_array *e = &f->arrays[f->array_count];
    memset(e, 0, sizeof *e);
    e->name = malloc(len + 1);
    *out = cairn__value_new_blob(CAIRN_VALUE_TENSOR, name, len);
    if (!e->name || !*out) {
        free(e->name);
        cairn_value_free(*out);
        *out = NULL;
        return nomem(w, node);
    }
    memcpy(e->name, name, len + 1);
    e->len = (uint32_t)len; /* a name is at most CAIRN_NAME_MAX bytes */
    e->dtype = (uint8_t)a.dtype;
    e->rank = (uint8_t)a.rank;
    e->big_endian = a.big_endian;
    e->fortran = a.fortran;
    e->dims = (uint32_t)f->dims_count; /* below 2^32: each array costs bytes of the pickle */
    if (a.rank) { /* a scalar has none (and dims may still be NULL) */
        memcpy(f->dims + f->dims_count, a.dims, a.rank * sizeof *f->dims);
        f->dims_count += a.rank;
    }
    /* The bytes stay where they are; bytes the graph made (protocol 2's
     * _codecs.encode) move here, for the graph is freed before the file. */
    cairn__pk_blob *b = a.owner != UINT32_MAX ? &w->vm->blobs[w->vm->nodes[a.owner].u.ref]
                                              : NULL;
    e->bytes = a.data;
    e->nbytes = a.nbytes;
    if (b && b->owned) {
        e->owned = (uint8_t *)b->p;
        b->owned = 0;
    }
    f->array_count++;
    *done = 1;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------- dicts */

/* One per key of a dict being walked: 24 bytes, for a state dict has one
 * per tensor (a pickle is at most 64 MiB: lengths fit in 32 bits). */
typedef struct key_ent { /* 16 bytes: a dict of N tensors has N of them while it is walked */
    const char *s;  /* the key's text: the str's bytes, or an int's decimal in `nums` */
    uint32_t value; /* the node it maps to (the last one set, as in Python) */
    uint32_t len : 30;   /* below 2^28: a string is at most 2 x 64 MiB + 64 KiB */
    uint32_t is_int : 1; /* the key node is an int (else a str) */
    uint32_t dead : 1;   /* a later SETITEM of the same key: merged into the first */
} key_ent;

#define INT_KEY_TEXT 24 /* bytes of an int64's decimal form with its NUL */

/* Orders indexes into the key_ent array ctx. */
static int key_cmp(const void *a, const void *b, void *ctx)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    const key_ent *x = (const key_ent *)ctx + i, *y = (const key_ent *)ctx + j;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return i < j ? -1 : i > j; /* stable: insertion order within a key */
}

/* The text of one key: a str (UTF-8, not empty, no NUL) or an int (its
 * decimal form written to `num`, INT_KEY_TEXT bytes). */
static cairn_status key_text(walk *w, uint32_t knode, key_ent *e, char *num)
{
    const cairn__pk_node *k = &w->vm->nodes[knode];
    e->is_int = k->type == CAIRN__PK_INT;
    if (k->type == CAIRN__PK_INT) {
        e->len = (uint32_t)snprintf(num, INT_KEY_TEXT, "%" PRId64, k->u.i);
        e->s = num;
        return CAIRN_OK;
    }
    if (k->type != CAIRN__PK_STR) {
        char why[120];
        snprintf(why, sizeof why, "a dict key is %s; only str and int keys can name things",
                 cairn__pk_type_name(k->type));
        return fail_at(w, knode, CAIRN_E_UNSUPPORTED, why);
    }
    const cairn__pk_blob *b = cairn__pk_blob_of(w->vm, knode);
    e->s = (const char *)b->p;
    e->len = (uint32_t)b->len;
    if (b->len == 0)
        return fail_at(w, knode, CAIRN_E_UNSUPPORTED, "an empty dict key cannot name anything");
    if (memchr(b->p, 0, b->len) || !cairn__utf8_valid(e->s, e->len))
        return fail_at(w, knode, CAIRN_E_UNSUPPORTED, "a dict key holds a NUL byte or is not "
                                                      "valid UTF-8");
    return CAIRN_OK;
}

/* Python keeps one entry per key: the first position, the last value.
 * Keys of different types with one text (1 and "1") would give one name
 * to two things, so they are refused. */
static cairn_status merge_keys(walk *w, uint32_t node, key_ent *ents, uint32_t *order,
                               uint32_t n)
{
    qsort_r(order, n, sizeof *order, key_cmp, ents);
    for (uint32_t i = 0; i < n;) {
        key_ent *first = &ents[order[i]];
        uint32_t j = i + 1;
        for (; j < n && ents[order[j]].len == first->len &&
               memcmp(ents[order[j]].s, first->s, first->len) == 0; j++) {
            if (ents[order[j]].is_int != first->is_int) {
                char why[200], shown[80];
                snprintf(why, sizeof why, "an int key and a str key both read '%s'",
                         cairn__printable(first->s, first->len, shown, sizeof shown));
                return fail_at(w, node, CAIRN_E_UNSUPPORTED, why);
            }
            ents[order[j]].dead = 1;
        }
        first->value = ents[order[j - 1]].value;
        i = j;
    }
    return CAIRN_OK;
}

static cairn_status dict_children(walk *w, uint32_t node, int depth, key_ent *ents,
                                  uint32_t n, cairn_value *map)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ents[i].dead)
            continue;
        CAIRN_TRY(spend(w, node, ents[i].len + 1 + NODE_COST + sizeof(char *)));
        path_mark m = path_push(w, ents[i].s, ents[i].len);
        cairn_value *child = NULL;
        cairn_status st = convert(w, ents[i].value, depth + 1, &child);
        path_pop(w, m);
        CAIRN_TRY(st);
        if (w->no_refs && cairn_value_get_type(child) == CAIRN_VALUE_TENSOR) {
            cairn_value_free(child); /* charged all the same: the walk is the same */
            w->out->refs_left += depth == 1;
            continue;
        }
        if (cairn__value_map_push(map, ents[i].s, ents[i].len, child) != CAIRN_OK) {
            cairn_value_free(child);
            return nomem(w, node);
        }
    }
    return CAIRN_OK;
}

/* Each visit of a dict sorts all its entries, but only the last of a
 * repeated key costs the tree anything: a dict of N entries SETITEM made
 * with one key, shared M times, would cost N x M work for a tree of M
 * entries. So the entries looked at are bounded too, by one per 8 bytes of
 * the tree's budget: a tree of distinct keys (each costs the tree more than
 * 8 bytes) never reaches it first. */
static cairn_status visit_pairs(walk *w, uint32_t node, uint32_t n)
{
    if (n <= w->pairs_left) {
        w->pairs_left -= n;
        return CAIRN_OK;
    }
    char why[320];
    snprintf(why, sizeof why, "the metadata tree's dicts would have more than %llu entries to "
             "look at (one per 8 bytes of its budget: 16 x the %llu bytes of pickle the file "
             "holds + 16 MiB): shared dicts with repeated keys",
             (unsigned long long)(w->budget / 8), (unsigned long long)w->stored);
    return fail_at(w, node, CAIRN_E_LIMIT, why);
}

static cairn_status convert_dict(walk *w, uint32_t node, int depth, cairn_value *map)
{
    const cairn__pk_seq *s = cairn__pk_seq_of(w->vm, node);
    uint32_t n = s->count / 2;
    CAIRN_TRY(visit_pairs(w, node, n));
    uint32_t ints = 0;
    for (uint32_t i = 0; i < n; i++)
        ints += w->vm->nodes[s->items[2 * i]].type == CAIRN__PK_INT;
    key_ent *ents = calloc(n ? n : 1, sizeof *ents);
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    char *nums = malloc(ints ? (size_t)ints * INT_KEY_TEXT : 1);
    cairn_status st = ents && order && nums ? CAIRN_OK : nomem(w, node);
    char *num = nums;
    for (uint32_t i = 0; st == CAIRN_OK && i < n; i++) {
        ents[i].value = s->items[2 * i + 1];
        order[i] = i;
        st = key_text(w, s->items[2 * i], &ents[i], num);
        num += ents[i].is_int ? INT_KEY_TEXT : 0;
    }
    if (st == CAIRN_OK)
        st = merge_keys(w, node, ents, order, n);
    if (st == CAIRN_OK)
        st = dict_children(w, node, depth, ents, n, map);
    free(ents);
    free(order);
    free(nums);
    return st;
}

/* ------------------------------------------------------------------ lists */

/* A list item that is a number, a bool or a str, as a borrowed stack node
 * (*scalar set), checked and charged as convert would; anything else is
 * left to convert. */
static cairn_status scalar_item(walk *w, uint32_t node, cairn_value *item, int *scalar)
{
    const cairn__pk_node *n = &w->vm->nodes[node];
    memset(item, 0, sizeof *item);
    *scalar = 1;
    switch ((cairn__pk_type)n->type) {
    case CAIRN__PK_BOOL: item->type = CAIRN_VALUE_BOOL, item->u.b = n->u.b; return CAIRN_OK;
    case CAIRN__PK_INT: item->type = CAIRN_VALUE_INT, item->u.i = n->u.i; return CAIRN_OK;
    case CAIRN__PK_FLOAT: item->type = CAIRN_VALUE_FLOAT, item->u.d = n->u.d; return CAIRN_OK;
    case CAIRN__PK_STR: {
        const cairn__pk_blob *b = cairn__pk_blob_of(w->vm, node);
        CAIRN_TRY(spend(w, node, b->len));
        if (!cairn__utf8_valid((const char *)b->p, b->len))
            return fail_at(w, node, CAIRN_E_CORRUPT, "a str that is not valid UTF-8");
        item->type = CAIRN_VALUE_STRING;
        item->u.blob.data = (char *)b->p;
        item->u.blob.len = b->len;
        return CAIRN_OK;
    }
    default:
        *scalar = 0;
        return CAIRN_OK;
    }
}

static cairn_status convert_seq(walk *w, uint32_t node, int depth, cairn_value *list)
{
    const cairn__pk_seq *s = cairn__pk_seq_of(w->vm, node);
    for (uint32_t i = 0; i < s->count; i++) {
        char idx[16];
        int len = snprintf(idx, sizeof idx, "%u", (unsigned)i);
        path_mark m = path_push(w, idx, (size_t)len);
        cairn_value *child = NULL, item;
        int scalar = 0;
        cairn_status st = scalar_item(w, s->items[i], &item, &scalar);
        if (st == CAIRN_OK && !scalar)
            st = convert(w, s->items[i], depth + 1, &child);
        path_pop(w, m);
        CAIRN_TRY(st);
        uint64_t before = cairn_value_count(list);
        int was_packed = list->pack != CAIRN__PACK_NONE || before == 0;
        /* Lists of numbers or strings are packed; their items never get a node. */
        if ((scalar ? cairn__value_list_add_copy(list, &item)
                    : cairn__value_list_add(list, child)) != CAIRN_OK)
            return nomem(w, node);
        if (list->pack)
            CAIRN_TRY(spend(w, node, PACKED_COST));
        else if (was_packed) /* its items became nodes */
            CAIRN_TRY(spend(w, node, (before + 1) * NODE_COST));
        else
            CAIRN_TRY(spend(w, node, NODE_COST));
    }
    return CAIRN_OK;
}

static cairn_status convert_container(walk *w, uint32_t node, int depth, cairn_value **out)
{
    cairn__pk_node *n = &w->vm->nodes[node];
    if (depth > CAIRN_META_MAX_DEPTH)
        return fail_at(w, node, CAIRN_E_LIMIT, "containers nest deeper than the metadata "
                                               "tree's 64 levels");
    if (n->flags & CAIRN__PKF_ONPATH)
        return fail_at(w, node, CAIRN_E_UNSUPPORTED, "a container holds itself (a reference "
                                                     "cycle)");
    int is_dict = n->type == CAIRN__PK_DICT;
    CAIRN_TRY(spend(w, node, NODE_COST));
    *out = is_dict ? cairn_value_map() : cairn_value_list();
    if (!*out)
        return nomem(w, node);
    n->flags |= CAIRN__PKF_ONPATH;
    cairn_status st = is_dict ? convert_dict(w, node, depth, *out)
                              : convert_seq(w, node, depth, *out);
    w->vm->nodes[node].flags &= (uint8_t)~CAIRN__PKF_ONPATH;
    if (st != CAIRN_OK) {
        cairn_value_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------------------------------------------------------- scalars */

static cairn_status convert_text(walk *w, uint32_t node, cairn_value **out)
{
    const cairn__pk_node *n = &w->vm->nodes[node];
    if (n->type == CAIRN__PK_GLOBAL) {
        char text[2 * CAIRN__PICKLE_MAX_GLOBAL + 2];
        int len = snprintf(text, sizeof text, "%s.%s", n->u.g->module, n->u.g->name);
        *out = cairn__value_new_blob(CAIRN_VALUE_STRING, text, (size_t)len);
        return *out ? CAIRN_OK : nomem(w, node);
    }
    const cairn__pk_blob *b = cairn__pk_blob_of(w->vm, node);
    CAIRN_TRY(spend(w, node, b->len));
    if (n->type == CAIRN__PK_STR && !cairn__utf8_valid((const char *)b->p, b->len))
        return fail_at(w, node, CAIRN_E_CORRUPT, "a str that is not valid UTF-8");
    *out = cairn__value_new_blob(n->type == CAIRN__PK_STR ? CAIRN_VALUE_STRING : CAIRN_VALUE_BYTES,
                                 b->p, b->len);
    return *out ? CAIRN_OK : nomem(w, node);
}

static cairn_status convert(walk *w, uint32_t node, int depth, cairn_value **out)
{
    *out = NULL;
    const cairn__pk_node *n = &w->vm->nodes[node];
    switch ((cairn__pk_type)n->type) {
    case CAIRN__PK_NONE: *out = cairn_value_null(); break;
    case CAIRN__PK_BOOL: *out = cairn_value_bool(n->u.b); break;
    case CAIRN__PK_INT: *out = cairn_value_int(n->u.i); break;
    case CAIRN__PK_FLOAT: *out = cairn_value_float(n->u.d); break;
    case CAIRN__PK_STR:
    case CAIRN__PK_BYTES:
    case CAIRN__PK_GLOBAL: return convert_text(w, node, out);
    case CAIRN__PK_TUPLE:
    case CAIRN__PK_LIST:
    case CAIRN__PK_SET:
    case CAIRN__PK_FROZENSET: return convert_container(w, node, depth, out);
    case CAIRN__PK_DICT: {
        int done = 0;
        if (w->vm->host->inert && (n->flags & CAIRN__PKF_INERT))
            CAIRN_TRY(emit_array(w, node, out, &done));
        return done ? CAIRN_OK : convert_container(w, node, depth, out);
    }
    case CAIRN__PK_ARRAY: {
        int done = 0;
        CAIRN_TRY(emit_array(w, node, out, &done));
        return CAIRN_OK; /* emit_array fails unless done */
    }
    case CAIRN__PK_GHOST: return compact_broken(w, node);
    case CAIRN__PK_TENSOR: return emit_tensor(w, node, out);
    case CAIRN__PK_STORAGE:
        return fail_at(w, node, CAIRN_E_UNSUPPORTED, "a storage outside any tensor");
    }
    return *out ? CAIRN_OK : nomem(w, node);
}

/* ------------------------------------------------------------------- names */

static int name_cmp_flat(const cairn__pk_named *x, const cairn__pk_named *y)
{
    return cairn__name_cmp(x->name, x->len, y->name, y->len);
}

/* Name order, ties (refused below) in the order the walk met them. */
static int by_name_cmp(const void *a, const void *b, void *ctx)
{
    const cairn__pk_flat *f = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = name_cmp_flat(&f->tensors[x], &f->tensors[y]);
    return c ? c : (x > y) - (x < y);
}

/* Sorts the names and refuses two tensors of one name ({"a.b": t, "a": {"b": u}}). */
static cairn_status index_names(walk *w)
{
    cairn__pk_flat *f = w->out;
    size_t n = f->count;
    f->by_name = malloc((n ? n : 1) * sizeof *f->by_name);
    if (!f->by_name)
        return cairn__fail(w->err, CAIRN_E_NOMEM, "%s: out of memory for %zu tensor names",
                           w->vm->where, n);
    for (size_t i = 0; i < n; i++)
        f->by_name[i] = i;
    qsort_r(f->by_name, n, sizeof *f->by_name, by_name_cmp, f);
    for (size_t i = 1; i < n; i++) {
        const cairn__pk_named *a = &f->tensors[f->by_name[i - 1]], *b = &f->tensors[f->by_name[i]];
        if (name_cmp_flat(a, b) == 0) {
            char shown[160];
            return cairn__pk_fail(w->vm, w->err, b->at, CAIRN_E_UNSUPPORTED, "two tensors are "
                                  "both named '%s' (a dotted key and nested dicts that spell "
                                  "the same path)",
                                  cairn__printable(b->name, b->len, shown, sizeof shown));
        }
    }
    return CAIRN_OK;
}

/* ------------------------------------------------------------------- entry */

static cairn_status walk_root(walk *w, cairn__pk_flat *out)
{
    uint32_t root = w->vm->root;
    uint8_t type = w->vm->nodes[root].type;
    if (type == CAIRN__PK_DICT || type == CAIRN__PK_ARRAY) { /* an ARRAY was a dict */
        CAIRN_TRY(convert(w, root, 1, &out->tree));
        if (cairn_value_get_type(out->tree) == CAIRN_VALUE_MAP)
            return CAIRN_OK;
        cairn_value *array = out->tree; /* one NumPy array */
        if (!(out->tree = cairn_value_map()) ||
            cairn__value_map_push(out->tree, TOP_OBJECT_KEY, strlen(TOP_OBJECT_KEY), array) !=
                CAIRN_OK) {
            cairn_value_free(array);
            return nomem(w, root);
        }
        return CAIRN_OK;
    }
    if (!(out->tree = cairn_value_map()))
        return nomem(w, root);
    cairn_value *child = NULL;
    CAIRN_TRY(convert(w, root, 2, &child));
    if (cairn__value_map_push(out->tree, TOP_OBJECT_KEY, strlen(TOP_OBJECT_KEY), child) !=
        CAIRN_OK) {
        cairn_value_free(child);
        return nomem(w, root);
    }
    return CAIRN_OK;
}

static cairn_status flatten(cairn__pickle *vm, uint64_t stored, int no_refs,
                            cairn__pk_array_sink sink, void *sink_ctx, cairn__pk_flat *out,
                            cairn_error *err)
{
    memset(out, 0, sizeof *out);
    walk *w = calloc(1, sizeof *w); /* the path buffer is 4 KiB: off the stack */
    if (!w)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", vm->where);
    w->vm = vm;
    w->no_refs = no_refs;
    w->sink = sink;
    w->sink_ctx = sink_ctx;
    w->out = out;
    w->err = err;
    /* Sharing is legitimate (tied weights, a memoized string used twice) but
     * a chain of lists that each hold the previous one twice doubles at
     * every level, and a list of a million zeros deflates to a few KB. */
    w->stored = stored;
    w->budget = CAIRN__PICKLE_TREE_BUDGET(stored);
    w->pairs_left = w->budget / 8;
    /* Most files name each tensor once: room for that many names, not a
     * doubling array's up to twice as many. */
    cairn_status st = CAIRN_OK;
    if (vm->tensor_count > 0 && !(out->tensors = malloc(vm->tensor_count * sizeof *out->tensors)))
        st = nomem(w, vm->root);
    out->cap = out->tensors ? vm->tensor_count : 0;
    if (st == CAIRN_OK)
        st = walk_root(w, out);
    if (no_refs) /* the names are out: the graph may go before they are sorted */
        cairn__pickle_shed(vm);
    if (st == CAIRN_OK)
        st = index_names(w);
    free(w);
    if (st != CAIRN_OK)
        cairn__pk_flat_free(out);
    return st;
}

cairn_status cairn__pickle_flatten(cairn__pickle *vm, uint64_t stored, cairn__pk_flat *out,
                                   cairn_error *err)
{
    return flatten(vm, stored, 0, NULL, NULL, out, err);
}

cairn_status cairn__pickle_flatten_names(cairn__pickle *vm, uint64_t stored,
                                         cairn__pk_array_sink sink, void *sink_ctx,
                                         cairn__pk_flat *out, cairn_error *err)
{
    return flatten(vm, stored, 1, sink, sink_ctx, out, err);
}

int cairn__pk_flat_has_tree(const cairn__pk_flat *flat)
{
    return cairn_value_count(flat->tree) > 0 || flat->refs_left > 0;
}

void cairn__pk_flat_free(cairn__pk_flat *flat)
{
    if (!flat)
        return;
    for (size_t i = 0; i < flat->count; i++)
        free(flat->tensors[i].name);
    free(flat->tensors);
    for (size_t i = 0; i < flat->array_count; i++) {
        free(flat->arrays[i].name);
        free(flat->arrays[i].owned);
    }
    free(flat->arrays);
    free(flat->dims);
    free(flat->by_name);
    cairn_value_free(flat->tree);
    memset(flat, 0, sizeof *flat);
}
