/*
 * safetensors_json.h -- the JSON parser behind the safetensors header
 * (docs/FORMAT.md §11.3), a C interface over simdjson's DOM parser
 * (safetensors_json.cpp).
 *
 * jansson builds a malloc'ed node per value and was 18x slower than a native
 * open on a 37 KB header; simdjson validates the whole document (syntax and
 * UTF-8) at GB/s. The parse is flattened into one array of plain C nodes so
 * that safetensors_read.c keeps every rule and message on its side: this
 * layer says what the JSON holds and checks nothing about safetensors --
 * duplicate keys included, which the DOM keeps in document order.
 *
 * Nothing here throws, aborts or keeps state between calls.
 */
#ifndef CAIRN_SAFETENSORS_JSON_H
#define CAIRN_SAFETENSORS_JSON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cairn__stj_kind {
    CAIRN__STJ_NULL,
    CAIRN__STJ_BOOL,
    CAIRN__STJ_INT,    /* an integer that fits int64_t: `i` */
    CAIRN__STJ_UINT,   /* an integer past INT64_MAX that fits uint64_t: `u` */
    CAIRN__STJ_REAL,   /* any number written with '.' or an exponent, and -0 */
    CAIRN__STJ_STRING, /* `str`, `len` bytes of UTF-8 that may hold NULs */
    CAIRN__STJ_ARRAY,
    CAIRN__STJ_OBJECT
} cairn__stj_kind;

/* One JSON value. Containers are followed by their emitted children, in
 * document order, each followed by its own: the next sibling of node k is
 * at k + 1 + nodes[k].skip. */
typedef struct cairn__stj_node {
    const char *key;  /* the member's key when the parent is an object (may
                       * hold NULs), else NULL */
    const char *str;  /* STRING: the decoded bytes, else NULL */
    int64_t i;
    uint64_t u;
    /* 32 bits are enough: a text is at most CAIRN__STJ_MAX_TEXT bytes. */
    uint32_t key_len;
    uint32_t len;     /* STRING: bytes; ARRAY, OBJECT: members, all of them
                       * (emitted or not, see cairn__stj_limits) */
    uint32_t emitted; /* ARRAY, OBJECT: the children that follow */
    uint32_t skip;    /* nodes emitted below this one, at any depth */
    cairn__stj_kind kind;
} cairn__stj_node;

/* The longest text cairn__stj_parse takes (safetensors headers stop at
 * 100,000,000 bytes). */
#define CAIRN__STJ_MAX_TEXT 0xFFFFFFF0u

/* How much of the document is flattened. The root is at depth 0. Bounding
 * what is emitted keeps the node array proportional to what the caller
 * looks at, not to what a hostile header repeats (the counts stay exact). */
typedef struct cairn__stj_limits {
    size_t depth; /* nodes deeper than this are not emitted */
    size_t items; /* a container at depth 2 or more emits at most this many
                   * children; the root and its members emit them all */
} cairn__stj_limits;

typedef enum cairn__stj_status {
    CAIRN__STJ_OK,
    CAIRN__STJ_INVALID, /* not one valid JSON document: *why says how */
    CAIRN__STJ_NOMEM
} cairn__stj_status;

/* The parse: owns the nodes and the strings they point to. */
typedef struct cairn__stj_doc cairn__stj_doc;

/* Parses text[0..len) (no padding needed: it is copied) as one JSON value
 * with optional whitespace around it; a longer text than
 * CAIRN__STJ_MAX_TEXT is CAIRN__STJ_INVALID. On CAIRN__STJ_OK, *out holds the
 * document; on CAIRN__STJ_INVALID, *why is a static English sentence
 * without input bytes in it. */
cairn__stj_status cairn__stj_parse(const char *text, size_t len, const cairn__stj_limits *lim,
                                   cairn__stj_doc **out, const char **why);

/* The flattened document: nodes[0] is the root. */
const cairn__stj_node *cairn__stj_nodes(const cairn__stj_doc *doc, size_t *count);

void cairn__stj_free(cairn__stj_doc *doc);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_SAFETENSORS_JSON_H */
