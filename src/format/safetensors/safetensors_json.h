/*
 * safetensors_json.h -- the JSON parser behind the safetensors header
 * (docs/FORMAT.md §11.3), a C interface over simdjson's On-Demand parser
 * (safetensors_json.cpp).
 *
 * jansson builds a malloc'ed node per value and was 18x slower than a native
 * open on a 37 KB header; simdjson validates UTF-8 and finds the structure
 * of the whole text at GB/s. simdjson's DOM costs ~15 bytes per header byte;
 * On-Demand keeps only the structure index (4 bytes per JSON token) and the
 * text, and hands the root object's members out one at a time: a header of
 * 300,000 entries never exists as a tree. Each member is flattened into
 * plain C nodes so that safetensors_read.c keeps every rule and message on
 * its side: this layer says what the JSON holds and checks nothing about
 * safetensors -- duplicate keys included, which it hands out in document
 * order.
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
    int64_t i;        /* INT; BOOL: 0 or 1 */
    double d;         /* REAL */
    uint64_t u;
    /* 32 bits are enough: a text is at most CAIRN__STJ_MAX_TEXT bytes. */
    uint32_t key_len;
    uint32_t len;     /* STRING: bytes; ARRAY, OBJECT: members, all of them
                       * (emitted or not, see cairn__stj_limits) */
    uint32_t emitted; /* ARRAY, OBJECT: the children that follow */
    uint32_t skip;    /* nodes emitted below this one, at any depth */
    cairn__stj_kind kind;
} cairn__stj_node;

/* The longest text cairn__stj_open takes (safetensors headers stop at
 * 100,000,000 bytes). */
#define CAIRN__STJ_MAX_TEXT 0xFFFFFFF0u

/* Bytes simdjson may read past a text's end (SIMDJSON_PADDING). */
#define CAIRN__STJ_PADDING 64

/* How much of a member is flattened. The root is at depth 0, its members
 * at depth 1. Bounding what is emitted keeps the nodes proportional to what
 * the caller looks at, not to what a hostile header repeats (the counts
 * stay exact, and everything is still read and checked). */
typedef struct cairn__stj_limits {
    size_t depth; /* nodes deeper than this are not emitted */
    size_t items; /* a container at depth 2 or more emits at most this many
                   * children; the root's members emit them all */
} cairn__stj_limits;

typedef enum cairn__stj_status {
    CAIRN__STJ_OK,
    CAIRN__STJ_INVALID, /* not one valid JSON document: *why says how */
    CAIRN__STJ_NOMEM,
    CAIRN__STJ_STOPPED  /* the member callback asked to stop */
} cairn__stj_status;

/* An indexed text, read member by member. */
typedef struct cairn__stj_doc cairn__stj_doc;

/* Indexes text[0..len): checks its UTF-8 and finds its structure (one
 * valid JSON value with optional whitespace around it is checked as it is
 * read, by cairn__stj_root and cairn__stj_members). `readable` is how many
 * bytes from `text` may be read: at least len + CAIRN__STJ_PADDING and the
 * text is read in place (it must outlive the doc), else it is copied. A
 * longer text than CAIRN__STJ_MAX_TEXT is CAIRN__STJ_INVALID. On
 * CAIRN__STJ_INVALID, *why is a static English sentence without input bytes
 * in it (here and below). */
cairn__stj_status cairn__stj_open(const char *text, size_t len, size_t readable,
                                  cairn__stj_doc **out, const char **why);

/* The root's kind. A root that is not an object is read whole: INVALID when
 * it is not valid JSON. */
cairn__stj_status cairn__stj_root(cairn__stj_doc *doc, cairn__stj_kind *kind, const char **why);

/* Called with one member of the root object: nodes[0] is the member (its
 * key set), followed by what the limits emit below it (see
 * cairn__stj_node). The nodes are valid during the call; the strings they
 * point to until the next cairn__stj_members or cairn__stj_free. Nonzero
 * stops the walk. */
typedef int (*cairn__stj_member_fn)(void *ctx, const cairn__stj_node *nodes, size_t count);

/* Reads the root object (cairn__stj_root said OBJECT) from its start, every
 * member checked and handed to fn in document order, then checks that
 * nothing but whitespace follows it. May be called again to read it again.
 * CAIRN__STJ_STOPPED when fn stopped it. */
cairn__stj_status cairn__stj_members(cairn__stj_doc *doc, const cairn__stj_limits *lim,
                                     cairn__stj_member_fn fn, void *ctx, const char **why);

/* The same walk handing fn only the first member named `key` (NUL-free),
 * or, with _members_of, that member's own members when it is an object
 * (each flattened as a member is, at depth 2): a large object inside the
 * root is then read one member at a time too. Everything else is read and
 * checked all the same. */
cairn__stj_status cairn__stj_member(cairn__stj_doc *doc, const char *key,
                                    const cairn__stj_limits *lim, cairn__stj_member_fn fn,
                                    void *ctx, const char **why);
cairn__stj_status cairn__stj_members_of(cairn__stj_doc *doc, const char *key,
                                        const cairn__stj_limits *lim, cairn__stj_member_fn fn,
                                        void *ctx, const char **why);

void cairn__stj_free(cairn__stj_doc *doc);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_SAFETENSORS_JSON_H */
