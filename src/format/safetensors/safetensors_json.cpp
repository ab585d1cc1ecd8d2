// safetensors_json.cpp -- simdjson's On-Demand parser behind a C interface
// (safetensors_json.h). Built without exceptions: every simdjson call goes
// through its error-code API, and every allocation here is malloc or
// nothrow new, so a failure is a status, never an abort.
#include "format/safetensors/safetensors_json.h"

#include <simdjson.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace od = simdjson::ondemand;
using simdjson::error_code;

static_assert(CAIRN__STJ_PADDING == simdjson::SIMDJSON_PADDING, "padding");

struct cairn__stj_doc {
    od::parser parser;
    od::document doc;
    char *copy = nullptr; // the padded text when it could not be read in place
    cairn__stj_node *nodes = nullptr;
    size_t count = 0, cap = 0;
};

namespace {

// Appends a zeroed node; its index, or SIZE_MAX when out of memory. Indexes,
// not pointers: a later append may move the array.
size_t push(cairn__stj_doc *d)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
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

// Whether children of a container at `depth` get nodes, given how many did.
bool wanted(const cairn__stj_limits *lim, size_t depth, size_t emitted)
{
    return depth < lim->depth && (depth < 2 || emitted < lim->items);
}

// The bytes of a string whose text starts just after its opening quote,
// when it holds no escape (then they are the string); false otherwise.
bool plain(const char *raw, std::string_view *out)
{
    const char *p = raw;
    while (*p != '"' && *p != '\\') // stage 1 found the closing quote
        p++;
    if (*p == '\\')
        return false;
    *out = std::string_view(raw, size_t(p - raw));
    return true;
}

error_code visit_value(cairn__stj_doc *d, const cairn__stj_limits *lim, od::value v, const char *key,
                       uint32_t key_len, size_t depth, bool emit);

// Records a container's member counts in its node once all of it was read.
error_code close_container(cairn__stj_doc *d, size_t at, bool emit, uint32_t members,
                           uint32_t emitted)
{
    if (emit) {
        d->nodes[at].len = members;
        d->nodes[at].emitted = emitted;
    }
    return simdjson::SUCCESS;
}

error_code visit_array(cairn__stj_doc *d, const cairn__stj_limits *lim, od::value v, size_t at,
                       size_t depth, bool emit)
{
    od::array a;
    error_code e = v.get_array().get(a);
    if (e)
        return e;
    uint32_t members = 0, emitted = 0; // fewer than the text's bytes
    for (auto child : a) {
        od::value cv;
        if ((e = child.get(cv)))
            return e;
        members++;
        bool keep = emit && wanted(lim, depth, emitted);
        if ((e = visit_value(d, lim, cv, nullptr, 0, depth + 1, keep)))
            return e;
        emitted += keep;
    }
    return close_container(d, at, emit, members, emitted);
}

error_code visit_object(cairn__stj_doc *d, const cairn__stj_limits *lim, od::value v, size_t at,
                        size_t depth, bool emit)
{
    od::object o;
    error_code e = v.get_object().get(o);
    if (e)
        return e;
    uint32_t members = 0, emitted = 0;
    for (auto member : o) {
        od::field f;
        if ((e = std::move(member).get(f)))
            return e;
        std::string_view k;
        if (!plain(f.key().raw(), &k) && (e = f.unescaped_key().get(k)))
            return e;
        members++;
        bool keep = emit && wanted(lim, depth, emitted);
        if ((e = visit_value(d, lim, f.value(), k.data(), uint32_t(k.size()), depth + 1, keep)))
            return e;
        emitted += keep;
    }
    return close_container(d, at, emit, members, emitted);
}

// Reads `v` whole, checking it, and appends it (when `emit`) and what the
// limits let through below it. MEMALLOC: out of memory.
error_code visit_value(cairn__stj_doc *d, const cairn__stj_limits *lim, od::value v, const char *key,
                       uint32_t key_len, size_t depth, bool emit)
{
    size_t at = SIZE_MAX;
    if (emit && (at = push(d)) == SIZE_MAX)
        return simdjson::MEMALLOC;
    cairn__stj_node n{};
    n.key = key;
    n.key_len = key_len;
    od::json_type type;
    error_code e = v.type().get(type);
    if (e)
        return e;
    switch (type) {
    case od::json_type::null: {
        bool is_null = false;
        e = v.is_null().get(is_null);
        if (!e && !is_null)
            e = simdjson::N_ATOM_ERROR;
        n.kind = CAIRN__STJ_NULL;
        break;
    }
    case od::json_type::boolean: {
        bool b = false;
        e = v.get_bool().get(b);
        n.kind = CAIRN__STJ_BOOL;
        n.i = b;
        break;
    }
    case od::json_type::number: {
        od::number_type nt;
        e = v.get_number_type().get(nt);
        if (e)
            break;
        if (nt == od::number_type::signed_integer) {
            n.kind = CAIRN__STJ_INT;
            e = v.get_int64().get(n.i);
        } else if (nt == od::number_type::unsigned_integer) {
            n.kind = CAIRN__STJ_UINT;
            e = v.get_uint64().get(n.u);
        } else {
            n.kind = CAIRN__STJ_REAL;
            e = v.get_double().get(n.d);
        }
        break;
    }
    case od::json_type::string: {
        std::string_view raw, s;
        raw = v.raw_json_token();
        if (plain(raw.data() + 1, &s)) {
            od::raw_json_string consumed;
            e = v.get_raw_json_string().get(consumed);
        } else {
            e = v.get_string().get(s);
        }
        n.kind = CAIRN__STJ_STRING;
        n.str = s.data();
        n.len = uint32_t(s.size());
        break;
    }
    case od::json_type::array:
        n.kind = CAIRN__STJ_ARRAY;
        if (emit)
            d->nodes[at] = n;
        e = visit_array(d, lim, v, at, depth, emit);
        if (emit) { // the children set len and emitted
            n.len = d->nodes[at].len;
            n.emitted = d->nodes[at].emitted;
        }
        break;
    case od::json_type::object:
        n.kind = CAIRN__STJ_OBJECT;
        if (emit)
            d->nodes[at] = n;
        e = visit_object(d, lim, v, at, depth, emit);
        if (emit) {
            n.len = d->nodes[at].len;
            n.emitted = d->nodes[at].emitted;
        }
        break;
    }
    if (e)
        return e;
    if (emit) {
        n.skip = uint32_t(d->count - at - 1);
        d->nodes[at] = n;
    }
    return simdjson::SUCCESS;
}

cairn__stj_status status_of(error_code e, const char **why)
{
    if (e == simdjson::MEMALLOC)
        return CAIRN__STJ_NOMEM;
    *why = simdjson::error_message(e);
    return CAIRN__STJ_INVALID;
}

// Only whitespace may follow the root value.
error_code at_end(od::document &doc)
{
    const char *where;
    error_code e = doc.current_location().get(where);
    if (e == simdjson::OUT_OF_BOUNDS)
        return simdjson::SUCCESS;
    return e ? e : simdjson::TRAILING_CONTENT;
}

} // namespace

extern "C" cairn__stj_status cairn__stj_open(const char *text, size_t len, size_t readable,
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
    if (readable < len + CAIRN__STJ_PADDING) {
        d->copy = static_cast<char *>(std::malloc(len + CAIRN__STJ_PADDING));
        if (!d->copy) {
            delete d;
            return CAIRN__STJ_NOMEM;
        }
        std::memcpy(d->copy, text, len);
        std::memset(d->copy + len, 0, CAIRN__STJ_PADDING);
        text = d->copy;
    }
    error_code e = d->parser.iterate(text, len, len + CAIRN__STJ_PADDING).get(d->doc);
    if (e) {
        cairn__stj_free(d);
        return status_of(e, why);
    }
    *out = d;
    return CAIRN__STJ_OK;
}

extern "C" cairn__stj_status cairn__stj_root(cairn__stj_doc *d, cairn__stj_kind *kind,
                                             const char **why)
{
    od::json_type type;
    d->doc.rewind();
    error_code e = d->doc.type().get(type);
    if (e)
        return status_of(e, why);
    if (type == od::json_type::object) {
        *kind = CAIRN__STJ_OBJECT;
        return CAIRN__STJ_OK;
    }
    // Anything else is read whole, so that invalid JSON is said first.
    d->count = 0;
    od::value v;
    static const cairn__stj_limits none = {0, 0};
    switch (type) {
    case od::json_type::array: {
        od::array a;
        e = d->doc.get_array().get(a);
        if (!e)
            for (auto child : a)
                if ((e = child.get(v)) || (e = visit_value(d, &none, v, nullptr, 0, 1, false)))
                    break;
        *kind = CAIRN__STJ_ARRAY;
        break;
    }
    case od::json_type::string: {
        std::string_view s;
        e = d->doc.get_string().get(s);
        *kind = CAIRN__STJ_STRING;
        break;
    }
    case od::json_type::boolean: {
        bool b;
        e = d->doc.get_bool().get(b);
        *kind = CAIRN__STJ_BOOL;
        break;
    }
    case od::json_type::null: {
        bool is_null = false;
        e = d->doc.is_null().get(is_null);
        if (!e && !is_null)
            e = simdjson::N_ATOM_ERROR;
        *kind = CAIRN__STJ_NULL;
        break;
    }
    default: {
        double x;
        e = d->doc.get_double().get(x);
        *kind = CAIRN__STJ_REAL;
        break;
    }
    }
    if (!e)
        e = at_end(d->doc);
    return e ? status_of(e, why) : CAIRN__STJ_OK;
}

namespace {

// Reads the root object, handing fn what the walk asks for: every member
// (only NULL), the first member named `only` (nested false), or that
// member's own members when it is an object (nested true). Everything else
// is read and checked without being handed out.
cairn__stj_status walk_header(cairn__stj_doc *d, const cairn__stj_limits *lim, const char *only,
                            bool nested, cairn__stj_member_fn fn, void *ctx, const char **why)
{
    d->doc.rewind();
    od::object o;
    error_code e = d->doc.get_object().get(o);
    if (e)
        return status_of(e, why);
    size_t only_len = only ? std::strlen(only) : 0;
    bool done = false;
    for (auto member : o) {
        od::field f;
        if ((e = std::move(member).get(f)))
            break;
        std::string_view k;
        if (!plain(f.key().raw(), &k) && (e = f.unescaped_key().get(k)))
            break;
        bool hit = !only || (!done && k.size() == only_len && std::memcmp(k.data(), only,
                                                                          only_len) == 0);
        od::value v = f.value();
        if (!hit) {
            if ((e = visit_value(d, lim, v, nullptr, 0, 1, false)))
                break;
            continue;
        }
        done = true;
        od::json_type type;
        if (nested && ((e = v.type().get(type)) || type != od::json_type::object)) {
            if (e || (e = visit_value(d, lim, v, nullptr, 0, 1, false)))
                break;
            continue;
        }
        if (!nested) {
            d->count = 0;
            if ((e = visit_value(d, lim, v, k.data(), uint32_t(k.size()), 1, true)))
                break;
            if (fn(ctx, d->nodes, d->count))
                return CAIRN__STJ_STOPPED;
            continue;
        }
        od::object inner;
        if ((e = v.get_object().get(inner)))
            break;
        for (auto item : inner) {
            od::field g;
            std::string_view ik;
            if ((e = std::move(item).get(g)) ||
                (!plain(g.key().raw(), &ik) && (e = g.unescaped_key().get(ik))))
                break;
            d->count = 0;
            if ((e = visit_value(d, lim, g.value(), ik.data(), uint32_t(ik.size()), 2, true)))
                break;
            if (fn(ctx, d->nodes, d->count))
                return CAIRN__STJ_STOPPED;
        }
        if (e)
            break;
    }
    if (!e)
        e = at_end(d->doc);
    return e ? status_of(e, why) : CAIRN__STJ_OK;
}

} // namespace

extern "C" cairn__stj_status cairn__stj_members(cairn__stj_doc *d, const cairn__stj_limits *lim,
                                                cairn__stj_member_fn fn, void *ctx,
                                                const char **why)
{
    return walk_header(d, lim, nullptr, false, fn, ctx, why);
}

extern "C" cairn__stj_status cairn__stj_member(cairn__stj_doc *d, const char *key,
                                               const cairn__stj_limits *lim,
                                               cairn__stj_member_fn fn, void *ctx,
                                               const char **why)
{
    return walk_header(d, lim, key, false, fn, ctx, why);
}

extern "C" cairn__stj_status cairn__stj_members_of(cairn__stj_doc *d, const char *key,
                                                   const cairn__stj_limits *lim,
                                                   cairn__stj_member_fn fn, void *ctx,
                                                   const char **why)
{
    return walk_header(d, lim, key, true, fn, ctx, why);
}

extern "C" void cairn__stj_free(cairn__stj_doc *doc)
{
    if (!doc)
        return;
    std::free(doc->nodes);
    std::free(doc->copy);
    delete doc;
}
