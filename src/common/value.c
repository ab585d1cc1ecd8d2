/* value.c -- the metadata tree: node construction, queries, ownership, free and clone. */
#include "common/value_internal.h"

#include <stdlib.h>

struct cairn_value {
    cairn_value_type type;
    union {
        int b;
        int64_t i;
        double d;
        struct {
            char *data; /* len bytes plus a NUL, so strings and names are C strings too */
            size_t len;
        } blob; /* STRING, BYTES, TENSOR */
        struct {
            cairn_value **items;
            char **keys; /* MAP only: parallel to items, NUL-terminated, owned */
            size_t count;
            union {
                size_t cap;
                /* Once cairn_value_free reaches a container its capacity is
                 * dead, and the slot holds the container to return to, so
                 * freeing needs no stack and no allocation. */
                cairn_value *up;
            } spare;
        } kids; /* LIST, MAP */
    } u;
};

static int is_container(const cairn_value *v)
{
    return v->type == CAIRN_VALUE_LIST || v->type == CAIRN_VALUE_MAP;
}

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
    if (is_container(v))
        v->u.kids.spare.up = NULL;
    cairn_value *cur = v;
    while (cur) {
        if (is_container(cur) && cur->u.kids.count > 0) {
            size_t i = --cur->u.kids.count;
            cairn_value *child = cur->u.kids.items[i];
            if (cur->u.kids.keys)
                free(cur->u.kids.keys[i]);
            if (is_container(child)) {
                child->u.kids.spare.up = cur;
                cur = child;
            } else {
                free_node(child);
            }
            continue;
        }
        cairn_value *up = is_container(cur) ? cur->u.kids.spare.up : NULL;
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
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        clone_frame *frames = realloc(s->frames, cap * sizeof *frames);
        if (!frames)
            return 0;
        s->frames = frames;
        s->cap = cap;
    }
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
    if (is_container(child) && src->u.kids.items[i]->u.kids.count > 0)
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
    if (!root || !is_container(v) || v->u.kids.count == 0)
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
    return v && is_container(v) ? v->u.kids.count : 0;
}

const cairn_value *cairn_value_at(const cairn_value *v, size_t i)
{
    if (!v || !is_container(v) || i >= v->u.kids.count)
        return NULL;
    return v->u.kids.items[i];
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
    if (reserve(list, list->u.kids.count + 1) != CAIRN_OK)
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
