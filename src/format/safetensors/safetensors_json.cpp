// safetensors_json.cpp -- simdjson's DOM parser behind a C interface
// (safetensors_json.h). Built without exceptions: every simdjson call goes
// through its error-code API, and every allocation here is malloc or
// nothrow new, so a failure is a status, never an abort.
#include "format/safetensors/safetensors_json.h"

#include <simdjson.h>

#include <cstdlib>
#include <new>

using simdjson::dom::element;
using simdjson::dom::element_type;

struct cairn__stj_doc {
    simdjson::dom::parser parser; // owns the strings the nodes point to
    cairn__stj_node *nodes = nullptr;
    size_t count = 0, cap = 0;
};

namespace {

// Appends a zeroed node; its index, or SIZE_MAX when out of memory. Indexes,
// not pointers: a later append may move the array.
size_t push(cairn__stj_doc *d)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        if (cap > SIZE_MAX / sizeof *d->nodes)
            return SIZE_MAX;
        void *p = std::realloc(d->nodes, cap * sizeof *d->nodes);
        if (!p)
            return SIZE_MAX;
        d->nodes = static_cast<cairn__stj_node *>(p);
        d->cap = cap;
    }
    d->nodes[d->count] = cairn__stj_node{};
    return d->count++;
}

bool emit(cairn__stj_doc *d, const cairn__stj_limits *lim, element el, const char *key,
          uint32_t key_len, size_t depth);

// Whether children of a container at `depth` get nodes, given how many did.
bool wanted(const cairn__stj_limits *lim, size_t depth, size_t emitted)
{
    return depth < lim->depth && (depth < 2 || emitted < lim->items);
}

// Counts every member of a container and emits those the limits allow.
// The DOM hands out elements only through its iterators, so arrays and
// objects need a loop each.
bool emit_array(cairn__stj_doc *d, const cairn__stj_limits *lim, element el, size_t at,
                size_t depth)
{
    simdjson::dom::array a;
    if (el.get_array().get(a))
        return false; // cannot happen: the type said array
    uint32_t members = 0, emitted = 0; // fewer than the text's bytes
    for (element child : a) {
        members++;
        if (wanted(lim, depth, emitted)) {
            if (!emit(d, lim, child, nullptr, 0, depth + 1))
                return false;
            emitted++;
        }
    }
    d->nodes[at].len = members;
    d->nodes[at].emitted = emitted;
    return true;
}

bool emit_object(cairn__stj_doc *d, const cairn__stj_limits *lim, element el, size_t at,
                 size_t depth)
{
    simdjson::dom::object o;
    if (el.get_object().get(o))
        return false;
    uint32_t members = 0, emitted = 0;
    for (simdjson::dom::key_value_pair kv : o) {
        members++;
        if (wanted(lim, depth, emitted)) {
            if (!emit(d, lim, kv.value, kv.key.data(), uint32_t(kv.key.size()), depth + 1))
                return false;
            emitted++;
        }
    }
    d->nodes[at].len = members;
    d->nodes[at].emitted = emitted;
    return true;
}

// Appends `el` and what the limits let through below it. false: out of memory.
bool emit(cairn__stj_doc *d, const cairn__stj_limits *lim, element el, const char *key,
          uint32_t key_len, size_t depth)
{
    size_t at = push(d);
    if (at == SIZE_MAX)
        return false;
    cairn__stj_node *n = &d->nodes[at];
    n->key = key;
    n->key_len = key_len;
    bool ok = true;
    switch (el.type()) {
    case element_type::NULL_VALUE: n->kind = CAIRN__STJ_NULL; break;
    case element_type::BOOL: n->kind = CAIRN__STJ_BOOL; break;
    case element_type::INT64:
        n->kind = CAIRN__STJ_INT;
        ok = !el.get_int64().get(n->i);
        break;
    case element_type::UINT64:
        n->kind = CAIRN__STJ_UINT;
        ok = !el.get_uint64().get(n->u);
        break;
    case element_type::DOUBLE: n->kind = CAIRN__STJ_REAL; break;
    case element_type::STRING: {
        std::string_view s;
        ok = !el.get_string().get(s);
        n->kind = CAIRN__STJ_STRING;
        n->str = s.data();
        n->len = uint32_t(s.size());
        break;
    }
    case element_type::ARRAY:
        n->kind = CAIRN__STJ_ARRAY;
        ok = emit_array(d, lim, el, at, depth);
        break;
    case element_type::OBJECT:
        n->kind = CAIRN__STJ_OBJECT;
        ok = emit_object(d, lim, el, at, depth);
        break;
    }
    if (ok)
        d->nodes[at].skip = uint32_t(d->count - at - 1); // `n` may have moved
    return ok;
}

} // namespace

extern "C" cairn__stj_status cairn__stj_parse(const char *text, size_t len,
                                              const cairn__stj_limits *lim,
                                              cairn__stj_doc **out, const char **why)
{
    *out = nullptr;
    *why = nullptr;
    if (len > CAIRN__STJ_MAX_TEXT) {
        *why = "the text is longer than 4 GiB";
        return CAIRN__STJ_INVALID;
    }
    cairn__stj_doc *d = new (std::nothrow) cairn__stj_doc;
    if (!d)
        return CAIRN__STJ_NOMEM;
    element root;
    // realloc_if_needed: simdjson reads up to SIMDJSON_PADDING bytes past the
    // end, so the text (often a view into the file's mapping) is copied into
    // a padded buffer first.
    simdjson::error_code e = d->parser.parse(text, len, true).get(root);
    if (e) {
        delete d;
        if (e == simdjson::MEMALLOC)
            return CAIRN__STJ_NOMEM;
        *why = simdjson::error_message(e);
        return CAIRN__STJ_INVALID;
    }
    if (!emit(d, lim, root, nullptr, 0, 0)) {
        cairn__stj_free(d);
        return CAIRN__STJ_NOMEM;
    }
    *out = d;
    return CAIRN__STJ_OK;
}

extern "C" const cairn__stj_node *cairn__stj_nodes(const cairn__stj_doc *doc, size_t *count)
{
    *count = doc->count;
    return doc->nodes;
}

extern "C" void cairn__stj_free(cairn__stj_doc *doc)
{
    if (!doc)
        return;
    std::free(doc->nodes);
    delete doc;
}
