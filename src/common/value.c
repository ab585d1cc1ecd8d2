/* value.c -- the metadata tree: node construction, queries, ownership, free and clone. */
#include "common/value_internal.h"

#include <stdlib.h>

static int is_container(const cairn_value *v)
{
    return v->type == CAIRN_VALUE_LIST || v->type == CAIRN_VALUE_MAP;
}

/* A container whose children are nodes (every map, and lists not packed). */
static int has_kids(const cairn_value *v) { return is_container(v) && !v->pack; }

static cairn_value *clone_shallow(const cairn_value *v);
static cairn_value *clone_packed(const cairn_value *v);
static cairn_status unpack(cairn_value *v);
static void free_node(cairn_value *v);

static cairn_value *new_node(cairn_value_type type)
{
    cairn_value *v = calloc(1, sizeof *v);
    if (v)
        v->type = type;
    return v;
}

cairn_value *cairn__value_new_blob(cairn_value_type type, const void *data, size_t len)
{
    if (len == SIZE_MAX || (len > 0 && !data))
        return NULL;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    cairn_value *v = new_node(type);
    if (!v) {
        free(copy);
        return NULL;
    }
    v->u.blob.data = copy;
    v->u.blob.len = len;
    return v;
}

cairn_value *cairn_value_null(void) { return new_node(CAIRN_VALUE_NULL); }

cairn_value *cairn_value_bool(int b)
{
    cairn_value *v = new_node(CAIRN_VALUE_BOOL);
    if (v)
        v->u.b = b != 0;
    return v;
}

cairn_value *cairn_value_int(int64_t i)
{
    cairn_value *v = new_node(CAIRN_VALUE_INT);
    if (v)
        v->u.i = i;
    return v;
}

cairn_value *cairn_value_float(double d)
{
    cairn_value *v = new_node(CAIRN_VALUE_FLOAT);
    if (v)
        v->u.d = d;
    return v;
}

cairn_value *cairn_value_string(const char *s)
{
    if (!s)
        return NULL;
    return cairn_value_string_n(s, strlen(s));
}

cairn_value *cairn_value_string_n(const char *s, size_t len)
{
    if ((len > 0 && !s) || !cairn__utf8_valid(s, len))
        return NULL;
    return cairn__value_new_blob(CAIRN_VALUE_STRING, s, len);
}

cairn_value *cairn_value_bytes(const void *data, size_t len)
{
    return cairn__value_new_blob(CAIRN_VALUE_BYTES, data, len);
}

cairn_value *cairn_value_tensor_ref(const char *tensor_name)
{
    if (!tensor_name)
        return NULL;
    size_t len = strlen(tensor_name);
    if (cairn__name_check(tensor_name, len, "tensor reference", NULL) != CAIRN_OK)
        return NULL;
    return cairn__value_new_blob(CAIRN_VALUE_TENSOR, tensor_name, len);
}

cairn_value *cairn_value_list(void) { return new_node(CAIRN_VALUE_LIST); }

cairn_value *cairn_value_map(void) { return new_node(CAIRN_VALUE_MAP); }

/* Frees what a node owns directly, not its children (they are gone already). */
static void free_node(cairn_value *v)
{
    switch (v->type) {
    case CAIRN_VALUE_STRING:
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_TENSOR:
        free(v->u.blob.data);
        break;
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        if (v->pack) {
            free(v->u.packed.data);
            free(v->u.packed.text);
            break;
        }
        free(v->u.kids.items);
        free(v->u.kids.keys);
        break;
    default:
        break;
    }
    free(v);
}

/* Walks down through the last child of each container and back up through
 * the `up` links, so a tree of any depth is freed in constant stack space and
 * without allocating. */
void cairn_value_free(cairn_value *v)
{
    if (!v)
        return;
    if (has_kids(v))
        v->u.kids.spare.up = NULL;
    cairn_value *cur = v;
    while (cur) {
        if (has_kids(cur) && cur->u.kids.count > 0) {
            size_t i = --cur->u.kids.count;
            cairn_value *child = cur->u.kids.items[i];
            if (cur->u.kids.keys)
                free(cur->u.kids.keys[i]);
            if (has_kids(child)) {
                child->u.kids.spare.up = cur;
                cur = child;
            } else {
                free_node(child);
            }
            continue;
        }
        cairn_value *up = has_kids(cur) ? cur->u.kids.spare.up : NULL;
        free_node(cur);
        cur = up;
    }
}

/* Makes room for `want` children; maps grow their key array alongside. */
static cairn_status reserve(cairn_value *c, size_t want)
{
    if (want <= c->u.kids.spare.cap)
        return CAIRN_OK;
    size_t cap = c->u.kids.spare.cap ? c->u.kids.spare.cap : 4;
    while (cap < want) {
        if (cap > SIZE_MAX / 2 / sizeof(void *))
            return CAIRN_E_NOMEM;
        cap *= 2;
    }
    cairn_value **items = realloc(c->u.kids.items, cap * sizeof *items);
    if (!items)
        return CAIRN_E_NOMEM;
    c->u.kids.items = items;
    if (c->type == CAIRN_VALUE_MAP) {
        /* A failure here leaves items larger than cap says: harmless. */
        char **keys = realloc(c->u.kids.keys, cap * sizeof *keys);
        if (!keys)
            return CAIRN_E_NOMEM;
        c->u.kids.keys = keys;
    }
    c->u.kids.spare.cap = cap;
    return CAIRN_OK;
}

/* ------------------------------------------------------------ packed lists */

static size_t pack_width(uint8_t pack)
{
    switch (pack) {
    case CAIRN__PACK_I8:
    case CAIRN__PACK_BOOL: return 1;
    case CAIRN__PACK_I16: return 2;
    case CAIRN__PACK_I32: return 4;
    default: return 8; /* I64, F64, and STR's offsets */
    }
}

/* Room a packed array of n elements (or n text bytes) has: the next power
 * of two, at least 4. Capacities are not stored: they follow from the
 * count, and growth reallocates exactly when the count passes one. */
static size_t room_for(size_t n)
{
    if (n <= 4)
        return 4;
    if (n > SIZE_MAX / 2 + 1)
        return 0;
    return (size_t)1 << (64 - __builtin_clzll((unsigned long long)(n - 1)));
}

/* Slots the data array of a packed list with `count` items needs. */
static size_t slots_for(uint8_t pack, size_t count)
{
    return pack == CAIRN__PACK_STR ? count + 1 : count;
}

static int64_t packed_int(const cairn_value *v, size_t i)
{
    const void *p = (const char *)v->u.packed.data + i * pack_width(v->pack);
    switch (v->pack) {
    case CAIRN__PACK_I8: return *(const int8_t *)p;
    case CAIRN__PACK_I16: { int16_t x; memcpy(&x, p, 2); return x; }
    case CAIRN__PACK_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    default: { int64_t x; memcpy(&x, p, 8); return x; }
    }
}

static uint64_t packed_off(const cairn_value *v, size_t i)
{
    uint64_t o;
    memcpy(&o, (const char *)v->u.packed.data + 8 * i, 8);
    return o;
}

const cairn_value *cairn__value_item(const cairn_value *v, size_t i, cairn_value *scratch)
{
    if (!v || !is_container(v) || i >= cairn_value_count(v))
        return NULL;
    if (!v->pack)
        return v->u.kids.items[i];
    memset(scratch, 0, sizeof *scratch);
    switch (v->pack) {
    case CAIRN__PACK_F64:
        scratch->type = CAIRN_VALUE_FLOAT;
        memcpy(&scratch->u.d, (const char *)v->u.packed.data + 8 * i, 8);
        break;
    case CAIRN__PACK_BOOL:
        scratch->type = CAIRN_VALUE_BOOL;
        scratch->u.b = ((const uint8_t *)v->u.packed.data)[i];
        break;
    case CAIRN__PACK_STR: {
        uint64_t at = packed_off(v, i);
        scratch->type = CAIRN_VALUE_STRING;
        scratch->u.blob.data = v->u.packed.text + at;
        scratch->u.blob.len = (size_t)(packed_off(v, i + 1) - at - 1);
        break;
    }
    default:
        scratch->type = CAIRN_VALUE_INT;
        scratch->u.i = packed_int(v, i);
        break;
    }
    return scratch;
}

/* Turns a packed list back into a list of nodes. On failure the list is
 * left as it was. */
static cairn_status unpack(cairn_value *v)
{
    size_t n = v->u.packed.count;
    cairn_value **items = malloc((n ? n : 1) * sizeof *items);
    if (!items)
        return CAIRN_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        cairn_value scratch;
        items[i] = clone_shallow(cairn__value_item(v, i, &scratch));
        if (!items[i]) {
            while (i-- > 0)
                free_node(items[i]);
            free(items);
            return CAIRN_E_NOMEM;
        }
    }
    free(v->u.packed.data);
    free(v->u.packed.text);
    v->pack = CAIRN__PACK_NONE;
    v->u.kids.items = items;
    v->u.kids.keys = NULL;
    v->u.kids.count = n;
    v->u.kids.spare.cap = n ? n : 1;
    return CAIRN_OK;
}

/* Makes room for one more item (and, for strings, `text` more bytes). */
static cairn_status packed_grow(cairn_value *v, size_t text)
{
    size_t n = slots_for(v->pack, v->u.packed.count), w = pack_width(v->pack);
    if (!v->u.packed.data || room_for(n + 1) != room_for(n)) {
        size_t cap = room_for(n + 1);
        if (!cap || cap > SIZE_MAX / w)
            return CAIRN_E_NOMEM;
        void *p = realloc(v->u.packed.data, cap * w);
        if (!p)
            return CAIRN_E_NOMEM;
        v->u.packed.data = p;
    }
    if (v->pack != CAIRN__PACK_STR)
        return CAIRN_OK;
    size_t used = v->u.packed.count ? (size_t)packed_off(v, v->u.packed.count) : 0;
    if (text > SIZE_MAX - used - 1)
        return CAIRN_E_NOMEM;
    if (!v->u.packed.text || room_for(used + text) != room_for(used)) {
        size_t cap = room_for(used + text);
        if (!cap)
            return CAIRN_E_NOMEM;
        char *t = realloc(v->u.packed.text, cap);
        if (!t)
            return CAIRN_E_NOMEM;
        v->u.packed.text = t;
    }
    return CAIRN_OK;
}

static uint8_t int_pack(int64_t i)
{
    if (i >= INT8_MIN && i <= INT8_MAX)
        return CAIRN__PACK_I8;
    if (i >= INT16_MIN && i <= INT16_MAX)
        return CAIRN__PACK_I16;
    return i >= INT32_MIN && i <= INT32_MAX ? CAIRN__PACK_I32 : CAIRN__PACK_I64;
}

/* Re-encodes an int list at a wider width. */
static cairn_status widen(cairn_value *v, uint8_t pack)
{
    size_t n = v->u.packed.count, cap = room_for(n), w = pack_width(pack);
    if (cap > SIZE_MAX / w)
        return CAIRN_E_NOMEM;
    char *p = malloc(cap * w);
    if (!p)
        return CAIRN_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        int64_t x = packed_int(v, i);
        if (w == 2) { int16_t y = (int16_t)x; memcpy(p + 2 * i, &y, 2); }
        else if (w == 4) { int32_t y = (int32_t)x; memcpy(p + 4 * i, &y, 4); }
        else memcpy(p + 8 * i, &x, 8);
    }
    free(v->u.packed.data);
    v->u.packed.data = p;
    v->pack = pack;
    return CAIRN_OK;
}

/* Starts packing an empty list of nodes for items of `pack`. */
static void start_pack(cairn_value *v, uint8_t pack)
{
    free(v->u.kids.items);
    memset(&v->u, 0, sizeof v->u);
    v->pack = pack;
}

/* Appends `item` (a scalar, borrowed) to list v, packed when v is empty or
 * packed with items of its kind; 0 when v must hold nodes instead. */
static int try_pack(cairn_value *v, const cairn_value *item, cairn_status *st)
{
    *st = CAIRN_OK;
    uint8_t want;
    switch (item->type) {
    case CAIRN_VALUE_INT: want = int_pack(item->u.i); break;
    case CAIRN_VALUE_FLOAT: want = CAIRN__PACK_F64; break;
    case CAIRN_VALUE_BOOL: want = CAIRN__PACK_BOOL; break;
    case CAIRN_VALUE_STRING: want = CAIRN__PACK_STR; break;
    default: return 0;
    }
    int is_int = want <= CAIRN__PACK_I64, was_int = v->pack && v->pack <= CAIRN__PACK_I64;
    if (!v->pack && v->u.kids.count == 0)
        start_pack(v, want);
    else if (!(v->pack == want || (is_int && was_int)))
        return 0;
    if (is_int && want > v->pack && (*st = widen(v, want)) != CAIRN_OK)
        return 1;
    if ((*st = packed_grow(v, item->type == CAIRN_VALUE_STRING ? item->u.blob.len + 1 : 0)) !=
        CAIRN_OK)
        return 1;
    size_t n = v->u.packed.count;
    char *slot = (char *)v->u.packed.data + n * pack_width(v->pack);
    switch (v->pack) {
    case CAIRN__PACK_F64: memcpy(slot, &item->u.d, 8); break;
    case CAIRN__PACK_BOOL: *slot = (char)(item->u.b != 0); break;
    case CAIRN__PACK_STR: {
        uint64_t at = n ? packed_off(v, n) : 0, end = at + item->u.blob.len + 1;
        if (item->u.blob.len)
            memcpy(v->u.packed.text + at, item->u.blob.data, item->u.blob.len);
        v->u.packed.text[at + item->u.blob.len] = '\0';
        memcpy(slot, &at, 8);
        memcpy(slot + 8, &end, 8);
        break;
    }
    case CAIRN__PACK_I8: { int8_t y = (int8_t)item->u.i; memcpy(slot, &y, 1); break; }
    case CAIRN__PACK_I16: { int16_t y = (int16_t)item->u.i; memcpy(slot, &y, 2); break; }
    case CAIRN__PACK_I32: { int32_t y = (int32_t)item->u.i; memcpy(slot, &y, 4); break; }
    default: memcpy(slot, &item->u.i, 8); break;
    }
    v->u.packed.count = n + 1;
    return 1;
}

cairn_status cairn__value_list_add(cairn_value *list, cairn_value *child)
{
    cairn_status st = CAIRN_OK;
    if (!child)
        return CAIRN_E_NOMEM;
    if (try_pack(list, child, &st)) {
        free_node(child); /* a scalar: nothing below it */
        return st;
    }
    if (cairn_value_append(list, child, NULL) != CAIRN_OK) {
        cairn_value_free(child);
        return CAIRN_E_NOMEM;
    }
    return CAIRN_OK;
}

cairn_status cairn__value_list_add_copy(cairn_value *list, const cairn_value *item)
{
    cairn_status st;
    if (try_pack(list, item, &st))
        return st;
    return cairn__value_list_add(list, clone_shallow(item));
}

cairn_status cairn__value_list_add_int(cairn_value *list, int64_t i)
{
    cairn_value item = {.type = CAIRN_VALUE_INT, .u.i = i};
    cairn_status st;
    if (try_pack(list, &item, &st))
        return st;
    return cairn__value_list_add(list, cairn_value_int(i));
}

cairn_status cairn__value_list_add_string(cairn_value *list, const char *s, size_t len)
{
    cairn_value item = {.type = CAIRN_VALUE_STRING};
    cairn_status st;
    item.u.blob.data = (char *)s;
    item.u.blob.len = len;
    if (try_pack(list, &item, &st))
        return st;
    return cairn__value_list_add(list, cairn__value_new_blob(CAIRN_VALUE_STRING, s, len));
}

/* A copy of a packed list, with the room its count implies. */
static cairn_value *clone_packed(const cairn_value *v)
{
    cairn_value *c = new_node(v->type);
    if (!c)
        return NULL;
    size_t n = slots_for(v->pack, v->u.packed.count), w = pack_width(v->pack);
    size_t text = v->pack == CAIRN__PACK_STR && v->u.packed.count
                      ? (size_t)packed_off(v, v->u.packed.count) : 0;
    c->pack = v->pack;
    c->u.packed.count = v->u.packed.count;
    c->u.packed.data = malloc(room_for(n) * w);
    c->u.packed.text = text ? malloc(room_for(text)) : NULL;
    if (!c->u.packed.data || (text && !c->u.packed.text)) {
        free_node(c);
        return NULL;
    }
    memcpy(c->u.packed.data, v->u.packed.data, n * w);
    if (text)
        memcpy(c->u.packed.text, v->u.packed.text, text);
    return c;
}

/* A copy of v without its children; containers get room for all of them. */
static cairn_value *clone_shallow(const cairn_value *v)
{
    switch (v->type) {
    case CAIRN_VALUE_STRING:
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_TENSOR:
        return cairn__value_new_blob(v->type, v->u.blob.data, v->u.blob.len);
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP: {
        if (v->pack)
            return clone_packed(v);
        cairn_value *c = new_node(v->type);
        if (c && reserve(c, v->u.kids.count) != CAIRN_OK) {
            cairn_value_free(c);
            return NULL;
        }
        return c;
    }
    default: {
        cairn_value *c = new_node(v->type);
        if (c)
            c->u = v->u;
        return c;
    }
    }
}

typedef struct clone_frame {
    const cairn_value *src;
    cairn_value *dst;
} clone_frame;

typedef struct clone_stack {
    clone_frame *frames;
    size_t count, cap;
} clone_stack;

static int clone_push(clone_stack *s, const cairn_value *src, cairn_value *dst)
{
    if (!CAIRN__GROW(s->frames, s->cap, s->count, 16))
        return 0;
    s->frames[s->count].src = src;
    s->frames[s->count].dst = dst;
    s->count++;
    return 1;
}

/* Copies the next child of the innermost unfinished container. The copy is
 * attached before anything else can fail, so the partial tree stays freeable. */
static int clone_step(clone_stack *s)
{
    clone_frame *top = &s->frames[s->count - 1];
    const cairn_value *src = top->src;
    cairn_value *dst = top->dst;
    size_t i = dst->u.kids.count;
    if (i == src->u.kids.count) {
        s->count--;
        return 1;
    }
    char *key = NULL;
    if (src->type == CAIRN_VALUE_MAP) {
        size_t len = strlen(src->u.kids.keys[i]);
        key = malloc(len + 1);
        if (!key)
            return 0;
        memcpy(key, src->u.kids.keys[i], len + 1);
    }
    cairn_value *child = clone_shallow(src->u.kids.items[i]);
    if (!child) {
        free(key);
        return 0;
    }
    dst->u.kids.items[i] = child;
    if (key)
        dst->u.kids.keys[i] = key;
    dst->u.kids.count++;
    if (has_kids(child) && src->u.kids.items[i]->u.kids.count > 0)
        return clone_push(s, src->u.kids.items[i], child);
    return 1;
}

/* Iterative, with a heap stack of one frame per open container, so it copies
 * trees of any depth the API can build. */
cairn_value *cairn_value_clone(const cairn_value *v)
{
    if (!v)
        return NULL;
    cairn_value *root = clone_shallow(v);
    if (!root || !has_kids(v) || v->u.kids.count == 0)
        return root;
    clone_stack s = {NULL, 0, 0};
    int ok = clone_push(&s, v, root);
    while (ok && s.count > 0)
        ok = clone_step(&s);
    free(s.frames);
    if (!ok) {
        cairn_value_free(root);
        return NULL;
    }
    return root;
}

/* NULL reads as a null node, so type checks on a missing child stay simple. */
cairn_value_type cairn_value_get_type(const cairn_value *v)
{
    return v ? v->type : CAIRN_VALUE_NULL;
}

cairn_status cairn_value_get_bool(const cairn_value *v, int *out)
{
    if (out)
        *out = 0;
    if (!v || !out || v->type != CAIRN_VALUE_BOOL)
        return CAIRN_E_ARG;
    *out = v->u.b;
    return CAIRN_OK;
}

cairn_status cairn_value_get_int(const cairn_value *v, int64_t *out)
{
    if (out)
        *out = 0;
    if (!v || !out || v->type != CAIRN_VALUE_INT)
        return CAIRN_E_ARG;
    *out = v->u.i;
    return CAIRN_OK;
}

cairn_status cairn_value_get_float(const cairn_value *v, double *out)
{
    if (out)
        *out = 0;
    if (!v || !out || v->type != CAIRN_VALUE_FLOAT)
        return CAIRN_E_ARG;
    *out = v->u.d;
    return CAIRN_OK;
}

cairn_status cairn_value_get_data(const cairn_value *v, const void **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!v || !data || !len ||
        (v->type != CAIRN_VALUE_STRING && v->type != CAIRN_VALUE_BYTES &&
         v->type != CAIRN_VALUE_TENSOR))
        return CAIRN_E_ARG;
    *data = v->u.blob.data;
    *len = v->u.blob.len;
    return CAIRN_OK;
}

size_t cairn_value_count(const cairn_value *v)
{
    if (!v || !is_container(v))
        return 0;
    return v->pack ? v->u.packed.count : v->u.kids.count;
}

/* A packed list's items become nodes before a caller may hold a pointer to
 * one (the tree belongs to one thread at a time, so this is safe through
 * the const pointer). NULL when that runs out of memory. */
const cairn_value *cairn_value_at(const cairn_value *v, size_t i)
{
    if (!v || !is_container(v) || i >= cairn_value_count(v))
        return NULL;
    if (v->pack && unpack((cairn_value *)v) != CAIRN_OK)
        return NULL;
    return v->u.kids.items[i];
}

cairn_value *cairn_value_scalar_at(const cairn_value *v, size_t i)
{
    cairn_value scratch;
    const cairn_value *item = cairn__value_item(v, i, &scratch);
    if (!item || is_container(item))
        return NULL;
    return clone_shallow(item);
}

const char *cairn_value_key_at(const cairn_value *v, size_t i)
{
    if (!v || v->type != CAIRN_VALUE_MAP || i >= v->u.kids.count)
        return NULL;
    return v->u.kids.keys[i];
}

/* Index of `key` in map v, or SIZE_MAX. */
static size_t find_key(const cairn_value *v, const char *key)
{
    for (size_t i = 0; i < v->u.kids.count; i++)
        if (strcmp(v->u.kids.keys[i], key) == 0)
            return i;
    return SIZE_MAX;
}

const cairn_value *cairn_value_get(const cairn_value *v, const char *key)
{
    if (!v || !key || v->type != CAIRN_VALUE_MAP)
        return NULL;
    size_t i = find_key(v, key);
    return i == SIZE_MAX ? NULL : v->u.kids.items[i];
}

cairn_status cairn_value_append(cairn_value *list, cairn_value *child, cairn_error *err)
{
    if (!list || !child)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: append: NULL list or child");
    if (list->type != CAIRN_VALUE_LIST)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: append: the target is not a list");
    if (child == list)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: append: a list cannot contain itself");
    if ((list->pack && unpack(list) != CAIRN_OK) ||
        reserve(list, list->u.kids.count + 1) != CAIRN_OK)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: append: out of memory");
    list->u.kids.items[list->u.kids.count++] = child;
    return CAIRN_OK;
}

cairn_status cairn__value_map_push(cairn_value *map, const char *key, size_t key_len,
                                   cairn_value *child)
{
    if (key_len == SIZE_MAX || reserve(map, map->u.kids.count + 1) != CAIRN_OK)
        return CAIRN_E_NOMEM;
    char *copy = malloc(key_len + 1);
    if (!copy)
        return CAIRN_E_NOMEM;
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    map->u.kids.keys[map->u.kids.count] = copy;
    map->u.kids.items[map->u.kids.count++] = child;
    return CAIRN_OK;
}

cairn_status cairn_value_set(cairn_value *map, const char *key, cairn_value *child,
                             cairn_error *err)
{
    if (!map || !key || !child)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: set: NULL map, key or child");
    if (map->type != CAIRN_VALUE_MAP)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: set: the target is not a map");
    if (child == map)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: set: a map cannot contain itself");
    size_t len = strlen(key);
    if (len == 0)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: set: empty key");
    if (!cairn__utf8_valid(key, len)) {
        char shown[96];
        return cairn__fail(err, CAIRN_E_ARG, "metadata: set: key '%s' is not valid UTF-8",
                           cairn__printable(key, len, shown, sizeof shown));
    }
    size_t i = find_key(map, key);
    if (i != SIZE_MAX) {
        /* Setting the node that is already there must not free it. */
        if (map->u.kids.items[i] != child) {
            cairn_value_free(map->u.kids.items[i]);
            map->u.kids.items[i] = child;
        }
        return CAIRN_OK;
    }
    if (cairn__value_map_push(map, key, len, child) != CAIRN_OK)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: set: out of memory");
    return CAIRN_OK;
}
