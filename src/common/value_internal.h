/*
 * value_internal.h -- the metadata tree's binary encoding (docs/FORMAT.md §6)
 * for the format readers and writers.
 */
#ifndef CAIRN_VALUE_INTERNAL_H
#define CAIRN_VALUE_INTERNAL_H

#include "common/internal.h"

#define CAIRN_META_MAX_DEPTH 64

/* A node of the tree. Lists built by readers (cairn__value_list_add) are
 * packed while every item is a scalar of one kind: the items are then one
 * array of ints (of the narrowest width that holds them all: 1, 2, 4 or 8
 * bytes), doubles, bools, or strings (one text of NUL-terminated strings and
 * count + 1 offsets), not one node each. A packed list is a list for every
 * public accessor: cairn_value_at, cairn_value_append or
 * cairn_value_free of an item turns it back into nodes ("unpacks") first,
 * so pointers to its items behave as they always did; the JSON view, the
 * binary codec and the format writers read the items in place through
 * cairn__value_item and never unpack. */
enum {
    CAIRN__PACK_NONE = 0,
    CAIRN__PACK_I8, CAIRN__PACK_I16, CAIRN__PACK_I32, CAIRN__PACK_I64, /* INT items */
    CAIRN__PACK_F64,  /* FLOAT items */
    CAIRN__PACK_BOOL, /* BOOL items, one byte each */
    CAIRN__PACK_STR   /* STRING items */
};

struct cairn_value {
    cairn_value_type type;
    uint8_t pack; /* LIST only: CAIRN__PACK_*, 0 when the items are nodes */
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
        struct {
            void *data;   /* count items of the pack's width; PACK_STR: count + 1 offsets
                             (uint64_t) into text */
            char *text;   /* PACK_STR only */
            size_t count;
        } packed; /* a packed LIST */
    } u;
};

/* Item i of list v without unpacking it: a node of v, or for a packed list
 * *scratch filled as that item (a string item points into the list and is
 * NUL-terminated). The result is borrowed: valid until v changes, never to
 * be freed, and (for scratch) only until scratch is reused. NULL when i is
 * out of range or v is no list or map. */
const cairn_value *cairn__value_item(const cairn_value *v, size_t i, cairn_value *scratch);

/* Appends child to list (taking it, as cairn_value_append does), packing
 * while the list holds only scalars of one kind (INT, FLOAT, BOOL, STRING).
 * CAIRN_E_NOMEM (child freed) on failure. */
cairn_status cairn__value_list_add(cairn_value *list, cairn_value *child);
/* The same with a copy of `item` (a scalar, borrowed: a stack node set up by
 * the caller), so items that get packed never cost a node. */
cairn_status cairn__value_list_add_copy(cairn_value *list, const cairn_value *item);
/* The same for an item that has no node yet. */
cairn_status cairn__value_list_add_int(cairn_value *list, int64_t i);
cairn_status cairn__value_list_add_string(cairn_value *list, const char *s, size_t len);

#define CAIRN_META_MAX_SIZE (256ull << 20)

/* Answers whether a tensor of that name exists in the archive being read or
 * written (used to check tensor references). */
typedef int (*cairn__tensor_exists_fn)(void *ctx, const char *name, size_t len);

/* Encodes `tree` per docs/FORMAT.md §6.1 into a new buffer (*out, freed with
 * free()). Fails with CAIRN_E_LIMIT past CAIRN_META_MAX_SIZE or depth 64,
 * and with CAIRN_E_NOT_FOUND if `exists` (may be NULL) rejects a tensor
 * reference. The root must be a map (CAIRN_E_ARG otherwise). */
cairn_status cairn__meta_encode(const cairn_value *tree, cairn__tensor_exists_fn exists, void *ctx,
                                uint8_t **out, size_t *out_len, cairn_error *err);

/* For writers whose format stores the tree its own way: the checks of
 * cairn__meta_encode (limits, tensor references through `exists`) with the
 * encoding dropped. A NULL or empty tree passes. */
cairn_status cairn__meta_check(const cairn_value *tree, cairn__tensor_exists_fn exists, void *ctx,
                               cairn_error *err);

/* Decodes [p, p+len) (hostile input). `file` and `base_offset` (the file
 * offset of p[0]) are for messages: "model.cairn: metadata at offset 1234:
 * string length 99999 runs past the end of the section". `exists` may be NULL. */
cairn_status cairn__meta_decode(const uint8_t *p, size_t len, const char *file,
                                uint64_t base_offset, cairn__tensor_exists_fn exists, void *ctx,
                                cairn_value **out, cairn_error *err);

/* For the decoder, which validates text itself and checks duplicate keys in
 * O(n log n) afterwards: a STRING, BYTES or TENSOR node from unchecked bytes,
 * and a map append without the O(n) key search of cairn_value_set. Both
 * defined in value.c. */
cairn_value *cairn__value_new_blob(cairn_value_type type, const void *data, size_t len);
cairn_status cairn__value_map_push(cairn_value *map, const char *key, size_t key_len,
                                   cairn_value *child);

/* The inverse of cairn_value_to_json (docs/FORMAT.md §6.3) on a parsed
 * jansson value: one-key objects {"$float"|"$bytes"|"$tensor": string} become
 * the tagged values (tensor names checked, and with `exists` looked up).
 * NULL when `j` is not such a view (a bad escape, an empty key, nesting past
 * CAIRN_META_MAX_DEPTH) or memory ran out (*oom set). */
struct json_t;
cairn_value *cairn__value_from_json_view(const struct json_t *j, cairn__tensor_exists_fn exists,
                                         void *ctx, int *oom);
/* The same from JSON text out of a file (hostile): an object, parsed
 * strictly by jansson (no duplicate keys, nothing after it). */
cairn_status cairn__value_from_json(const char *text, size_t len, cairn_value **out,
                                    cairn_error *err);

#endif
