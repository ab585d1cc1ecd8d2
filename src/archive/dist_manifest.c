/* dist_manifest.c -- the manifest of a distributed checkpoint directory
 * (docs/FORMAT.md §20.1): reading its four tables, every structural check,
 * and the planner that maps a requested box onto the saved ones. */
#include "archive/dist.h"
#include "archive/dist_boxes.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- tables */

/* Tensor `name` of the manifest, checked for dtype and rank and against
 * its checksum: a view into the mapping when there is one (no copy of a
 * table that may be tens of MiB), else a copy kept in *own. */
static cairn_status read_table(const cairn_file *mf, const char *what, const char *name,
                               cairn_dtype dtype, uint32_t rank, const void **out, void **own,
                               uint64_t *rows, uint64_t *cols, cairn_error *err)
{
    uint64_t index;
    cairn_tensor_info info;
    *out = NULL;
    cairn_status st = cairn_tensor_find(mf, name, &index, &info, err);
    if (st == CAIRN_E_NOT_FOUND)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: no table '%s'", what, name);
    CAIRN_TRY(st);
    if (info.dtype != dtype || info.rank != rank)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: table '%s' is %s of rank %u, expected %s "
                           "of rank %u", what, name,
                           cairn_dtype_name(info.dtype) ? cairn_dtype_name(info.dtype) : "?",
                           info.rank, cairn_dtype_name(dtype), rank);
    *rows = info.dims[0];
    if (cols)
        *cols = rank > 1 ? info.dims[1] : 1;
    const void *view;
    if (info.zero_copy && info.alignment % 8 == 0 &&
        cairn_tensor_data(mf, index, &view, NULL) == CAIRN_OK) {
        CAIRN_TRY(cairn_tensor_verify(mf, index, err));
        *out = view;
        return CAIRN_OK;
    }
    /* The native reader bounded raw_size by the file's own bytes. */
    void *buf = malloc(info.raw_size ? (size_t)info.raw_size : 1);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: table '%s': out of memory for %llu bytes",
                           what, name, (unsigned long long)info.raw_size);
    st = cairn_tensor_read(mf, index, dtype, buf, (size_t)info.raw_size, CAIRN_READ_VERIFY, err);
    if (st != CAIRN_OK) {
        free(buf);
        return st;
    }
    *out = *own = buf;
    return CAIRN_OK;
}

static cairn_status tree_int(const cairn_value *tree, const char *what, const char *key,
                             int64_t lo, int64_t hi, int64_t *out, cairn_error *err)
{
    const cairn_value *v = cairn_value_get(tree, key);
    if (!v || cairn_value_get_int(v, out) != CAIRN_OK)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: metadata has no integer '%s'", what, key);
    if (*out < lo || *out > hi)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: '%s' is %lld, outside [%lld, %lld]", what,
                           key, (long long)*out, (long long)lo, (long long)hi);
    return CAIRN_OK;
}

/* The optional "rank_dir": exactly 16 lowercase hex digits, so a hostile
 * manifest can never point a reader outside the checkpoint. */
static cairn_status read_rank_dir(const cairn_value *tree, const char *what,
                                  cairn__dist_manifest *m, cairn_error *err)
{
    const cairn_value *v = cairn_value_get(tree, "rank_dir");
    const void *data;
    size_t len;
    if (!v)
        return CAIRN_OK;
    int ok = cairn_value_get_type(v) == CAIRN_VALUE_STRING &&
             cairn_value_get_data(v, &data, &len) == CAIRN_OK &&
             len == CAIRN__DIST_RANK_DIR_LEN;
    for (size_t i = 0; ok && i < len; i++) {
        char c = ((const char *)data)[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }
    if (!ok)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: 'rank_dir' is not a string of %d "
                           "lowercase hex digits", what, CAIRN__DIST_RANK_DIR_LEN);
    memcpy(m->rank_dir, data, len);
    m->rank_dir[len] = '\0';
    return CAIRN_OK;
}

static cairn_status read_tree(const cairn_file *mf, const char *what, cairn__dist_manifest *m,
                              cairn_error *err)
{
    cairn_value *tree = NULL;
    CAIRN_TRY(cairn_file_read_metadata(mf, &tree, err));
    int64_t version, ranks;
    cairn_status st = CAIRN_OK;
    const cairn_value *v = cairn_value_get(tree, "cairn_dist");
    if (v && cairn_value_get_int(v, &version) == CAIRN_OK && version > CAIRN__DIST_VERSION)
        st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: distributed checkpoint layout %lld; this "
                         "library reads layout %d", what, (long long)version,
                         CAIRN__DIST_VERSION);
    if (st == CAIRN_OK)
        st = tree_int(tree, what, "cairn_dist", CAIRN__DIST_VERSION, CAIRN__DIST_VERSION,
                      &version, err);
    if (st == CAIRN_OK)
        st = tree_int(tree, what, "ranks", 1, (int64_t)CAIRN__DIST_MAX_FILES, &ranks, err);
    if (st == CAIRN_OK)
        st = read_rank_dir(tree, what, m, err);
    const cairn_value *meta = cairn_value_get(tree, "metadata");
    if (st == CAIRN_OK && (!meta || cairn_value_get_type(meta) != CAIRN_VALUE_MAP))
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: metadata has no map 'metadata'", what);
    if (st == CAIRN_OK) {
        m->nfiles = (uint64_t)ranks;
        m->meta = cairn_value_clone(meta);
        if (!m->meta)
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", what);
    }
    cairn_value_free(tree);
    return st;
}

/* Splits the names table into T names, checking each and their order. */
static cairn_status split_names(const char *what, cairn__dist_manifest *m, uint64_t size,
                                cairn_error *err)
{
    uint64_t pos = 0, t = 0;
    while (pos < size) {
        const char *s = m->names + pos;
        const char *nul = memchr(s, '\0', (size_t)(size - pos));
        if (!nul)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.names: name at byte %llu has no "
                               "NUL terminator", what, (unsigned long long)pos);
        size_t len = (size_t)(nul - s);
        if (t >= m->ntensors)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.names holds more than the %llu "
                               "names of dist.tensors", what, (unsigned long long)m->ntensors);
        cairn_error why;
        if (cairn__name_check(s, len, "dist.names", &why) != CAIRN_OK)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: %s", what, why.message);
        if (t > 0) {
            const cairn__dist_tensor *p = &m->tensors[t - 1];
            if (cairn__name_cmp(p->name, p->name_len, s, len) >= 0)
                return cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.names: name %llu is not "
                                   "after name %llu (names must be unique and sorted)", what,
                                   (unsigned long long)t, (unsigned long long)(t - 1));
        }
        m->tensors[t].name = s;
        m->tensors[t].name_len = len;
        t++;
        pos += len + 1;
    }
    if (t != m->ntensors)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.names holds %llu names, dist.tensors "
                           "%llu tensors", what, (unsigned long long)t,
                           (unsigned long long)m->ntensors);
    return CAIRN_OK;
}

/* Fills tensor t's header from its dist.tensors row. */
static cairn_status tensor_row(const char *what, cairn__dist_tensor *d, const uint64_t *row,
                               cairn_error *err)
{
    char pn[96];
    const char *n = cairn__printable(d->name, d->name_len, pn, sizeof pn);
    if (row[0] == 0 || row[0] >= CAIRN_DTYPE_COUNT)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': dtype code %llu", what, n,
                           (unsigned long long)row[0]);
    if (row[1] > CAIRN_MAX_RANK)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': rank %llu (at most %d)", what,
                           n, (unsigned long long)row[1], CAIRN_MAX_RANK);
    d->dtype = (cairn_dtype)row[0];
    d->rank = (uint32_t)row[1];
    d->nbox = row[2];
    d->count = 1;
    for (uint32_t j = 0; j < CAIRN_MAX_RANK; j++) {
        d->dims[j] = row[3 + j];
        if (j >= d->rank && d->dims[j] != 0)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': dims[%u] is %llu beyond "
                               "its rank %u", what, n, j, (unsigned long long)d->dims[j], d->rank);
        if (j < d->rank && cairn__mul_overflow(d->count, d->dims[j], &d->count))
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': element count overflows",
                               what, n);
    }
    uint64_t bytes;
    if (cairn__mul_overflow(d->count, cairn_dtype_size(d->dtype), &bytes))
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': byte size overflows", what, n);
    return CAIRN_OK;
}

/* Checks tensor t's boxes (bounds, files, one box per file, volumes) and
 * advances *word past them. `last` holds, per file, the last tensor that
 * had a box there (+1; 0 = none). */
static cairn_status tensor_boxes(const char *what, cairn__dist_manifest *m, uint64_t t,
                                 uint64_t *word, uint64_t *last, cairn_error *err)
{
    cairn__dist_tensor *d = &m->tensors[t];
    char pn[96];
    const char *n = cairn__printable(d->name, d->name_len, pn, sizeof pn);
    uint64_t per = 1 + 2 * (uint64_t)d->rank, words, end;
    if (cairn__mul_overflow(per, d->nbox, &words) || cairn__add_overflow(*word, words, &end) ||
        end > m->nwords)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': %llu boxes run past the %llu "
                           "words of dist.boxes", what, n, (unsigned long long)d->nbox,
                           (unsigned long long)m->nwords);
    d->box = m->boxes + *word;
    uint64_t total = 0;
    for (uint64_t b = 0; b < d->nbox; b++) {
        const uint64_t *rec = d->box + b * per, *off = rec + 1, *ext = rec + 1 + d->rank;
        if (rec[0] >= m->nfiles)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s' box %llu: file %llu, but "
                               "there are %llu rank files", what, n, (unsigned long long)b,
                               (unsigned long long)rec[0], (unsigned long long)m->nfiles);
        if (last[rec[0]] == t + 1)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s' box %llu: rank file %llu "
                               "holds a second box of it", what, n, (unsigned long long)b,
                               (unsigned long long)rec[0]);
        last[rec[0]] = t + 1;
        uint64_t vol = 1, e;
        for (uint32_t j = 0; j < d->rank; j++) {
            if (ext[j] == 0 || cairn__add_overflow(off[j], ext[j], &e) || e > d->dims[j])
                return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s' box %llu: dimension "
                                   "%u: offset %llu + extent %llu is empty or outside %llu", what,
                                   n, (unsigned long long)b, j, (unsigned long long)off[j],
                                   (unsigned long long)ext[j], (unsigned long long)d->dims[j]);
            vol *= ext[j]; /* <= count, which did not overflow */
        }
        if (cairn__add_overflow(total, vol, &total) || total > d->count)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': its boxes hold more than "
                               "its %llu elements", what, n, (unsigned long long)d->count);
    }
    if (total != d->count)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': its boxes hold %llu of its "
                           "%llu elements", what, n, (unsigned long long)total,
                           (unsigned long long)d->count);
    *word = end;
    return CAIRN_OK;
}

static cairn_status parse(const cairn_file *mf, const char *what, cairn__dist_manifest *m,
                          cairn_error *err)
{
    CAIRN_TRY(read_tree(mf, what, m, err));
    uint64_t rows, cols, name_bytes, trows;
    const uint64_t *rowsbuf = NULL;
    void *rows_own = NULL;
    CAIRN_TRY(read_table(mf, what, "dist.files", CAIRN_U64, 2, (const void **)&m->files,
                         &m->own[0], &rows, &cols, err));
    if (rows != m->nfiles || cols != 2)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.files is [%llu, %llu], expected "
                           "[%llu, 2]", what, (unsigned long long)rows, (unsigned long long)cols,
                           (unsigned long long)m->nfiles);
    CAIRN_TRY(read_table(mf, what, "dist.tensors", CAIRN_U64, 2, (const void **)&rowsbuf,
                         &rows_own, &trows, &cols, err));
    cairn_status st = CAIRN_OK;
    if (cols != CAIRN__DIST_TENSOR_WORDS)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.tensors has %llu columns, expected %d",
                         what, (unsigned long long)cols, CAIRN__DIST_TENSOR_WORDS);
    else if (trows > CAIRN__DIST_MAX_TENSORS)
        st = cairn__fail(err, CAIRN_E_LIMIT, "%s: %llu tensors (at most %llu)", what,
                         (unsigned long long)trows, (unsigned long long)CAIRN__DIST_MAX_TENSORS);
    if (st == CAIRN_OK) {
        m->ntensors = trows;
        m->tensors = calloc(trows ? (size_t)trows : 1, sizeof *m->tensors);
        if (!m->tensors)
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", what);
    }
    if (st == CAIRN_OK)
        st = read_table(mf, what, "dist.names", CAIRN_U8, 1, (const void **)&m->names,
                        &m->own[1], &name_bytes, NULL, err);
    if (st == CAIRN_OK)
        st = split_names(what, m, name_bytes, err);
    for (uint64_t t = 0; st == CAIRN_OK && t < trows; t++)
        st = tensor_row(what, &m->tensors[t], rowsbuf + t * CAIRN__DIST_TENSOR_WORDS, err);
    free(rows_own);
    CAIRN_TRY(st);
    CAIRN_TRY(read_table(mf, what, "dist.boxes", CAIRN_U64, 1, (const void **)&m->boxes,
                         &m->own[2], &m->nwords, NULL, err));
    if (m->nwords > CAIRN__DIST_MAX_WORDS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: dist.boxes has %llu words (at most %llu)",
                           what, (unsigned long long)m->nwords,
                           (unsigned long long)CAIRN__DIST_MAX_WORDS);
    uint64_t *last = calloc((size_t)m->nfiles, sizeof *last);
    if (!last)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", what);
    uint64_t word = 0;
    for (uint64_t t = 0; st == CAIRN_OK && t < trows; t++)
        st = tensor_boxes(what, m, t, &word, last, err);
    free(last);
    CAIRN_TRY(st);
    if (word != m->nwords)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: dist.boxes has %llu words, its boxes use "
                           "%llu", what, (unsigned long long)m->nwords, (unsigned long long)word);
    return CAIRN_OK;
}

cairn_status cairn__dist_manifest_parse(const cairn_file *mf, const char *what,
                                        cairn__dist_manifest *m, cairn_error *err)
{
    memset(m, 0, sizeof *m);
    cairn_status st = parse(mf, what, m, err);
    if (st != CAIRN_OK)
        cairn__dist_manifest_free(m);
    return st;
}

void cairn__dist_manifest_free(cairn__dist_manifest *m)
{
    if (!m)
        return;
    for (int i = 0; i < 4; i++)
        free(m->own[i]);
    free(m->tensors);
    cairn_value_free(m->meta);
    memset(m, 0, sizeof *m);
}

static const char *name_at(const void *ctx, uint64_t pos, size_t *len)
{
    const cairn__dist_tensor *t = (const cairn__dist_tensor *)ctx + pos;
    *len = t->name_len;
    return t->name;
}

cairn_status cairn__dist_find(const cairn__dist_manifest *m, const char *what, const char *name,
                              size_t len, uint64_t *index, cairn_error *err)
{
    if (cairn__name_search(m->ntensors, name_at, m->tensors, name, len, index))
        return CAIRN_OK;
    char pn[96];
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s'", what,
                       cairn__printable(name, len, pn, sizeof pn));
}

/* ------------------------------------------------------------- planning */

/* No two of the pieces overlap (cairn__boxes_overlap's sweep). Leaves the
 * pieces sorted by their first coordinate. */
static cairn_status check_disjoint(const cairn__dist_tensor *d, const char *what,
                                   cairn__dist_piece *p, size_t n, cairn_error *err)
{
    if (n < 2 || d->rank == 0)
        return CAIRN_OK; /* a scalar's single box was checked by its volume */
    cairn__box_ref *r = malloc(n * sizeof *r);
    cairn__dist_piece *sorted = malloc(n * sizeof *sorted);
    if (!r || !sorted) {
        free(r);
        free(sorted);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", what);
    }
    for (size_t i = 0; i < n; i++)
        r[i] = (cairn__box_ref){.off = p[i].ioff, .ext = p[i].iext, .id = i};
    uint64_t a = 0, b = 0;
    int bad = cairn__boxes_overlap(d->rank, r, n, &a, &b);
    cairn__dist_piece pa = p[a], pb = p[b];
    for (size_t i = 0; i < n; i++)
        sorted[i] = p[r[i].id];
    memcpy(p, sorted, n * sizeof *p);
    free(r);
    free(sorted);
    if (!bad)
        return CAIRN_OK;
    char pn[96];
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': boxes %llu (file %llu) and %llu "
                       "(file %llu) overlap", what,
                       cairn__printable(d->name, d->name_len, pn, sizeof pn),
                       (unsigned long long)pa.box, (unsigned long long)pa.file,
                       (unsigned long long)pb.box, (unsigned long long)pb.file);
}

/* Clips the saved boxes of d to (roff, rext); *n pieces, their volume in *vol. */
static cairn_status clip(const cairn__dist_tensor *d, const char *what, const uint64_t *roff,
                         const uint64_t *rext, cairn__dist_piece **out, size_t *n, uint64_t *vol,
                         cairn_error *err)
{
    uint64_t per = 1 + 2 * (uint64_t)d->rank;
    size_t cap = 0, used = 0;
    cairn__dist_piece *p = NULL;
    *vol = 0;
    for (uint64_t b = 0; b < d->nbox; b++) {
        const uint64_t *rec = d->box + b * per;
        cairn__dist_piece q;
        q.file = rec[0];
        q.box = b;
        q.off = rec + 1;
        q.ext = rec + 1 + d->rank;
        uint64_t v = 1;
        uint32_t j = 0;
        for (; j < d->rank; j++) {
            uint64_t lo = q.off[j] > roff[j] ? q.off[j] : roff[j];
            uint64_t a = q.off[j] + q.ext[j], c = roff[j] + rext[j];
            uint64_t hi = a < c ? a : c;
            if (hi <= lo)
                break;
            q.ioff[j] = lo;
            q.iext[j] = hi - lo;
            v *= hi - lo;
        }
        if (j < d->rank)
            continue;
        if (used == cap) {
            size_t nc = cap ? 2 * cap : 8;
            cairn__dist_piece *np = realloc(p, nc * sizeof *p);
            if (!np) {
                free(p);
                return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", what);
            }
            p = np;
            cap = nc;
        }
        p[used++] = q;
        *vol += v; /* each v <= the request's volume; boxes <= 2^28 words */
    }
    *out = p;
    *n = used;
    return CAIRN_OK;
}

cairn_status cairn__dist_plan(const cairn__dist_manifest *m, const char *what, uint64_t t,
                              const uint64_t *roff, const uint64_t *rext,
                              cairn__dist_piece **pieces, size_t *count, cairn_error *err)
{
    const cairn__dist_tensor *d = &m->tensors[t];
    uint64_t want = 1, vol;
    for (uint32_t j = 0; j < d->rank; j++)
        want *= rext[j];
    *pieces = NULL;
    *count = 0;
    if (want == 0)
        return CAIRN_OK;
    cairn__dist_piece *p = NULL;
    size_t n = 0;
    CAIRN_TRY(clip(d, what, roff, rext, &p, &n, &vol, err));
    cairn_status st = check_disjoint(d, what, p, n, err);
    if (st == CAIRN_OK && vol != want) {
        char pn[96];
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': its boxes hold %llu of the %llu "
                         "elements asked for (a gap)", what,
                         cairn__printable(d->name, d->name_len, pn, sizeof pn),
                         (unsigned long long)vol, (unsigned long long)want);
    }
    if (st != CAIRN_OK) {
        free(p);
        return st;
    }
    *pieces = p;
    *count = n;
    return CAIRN_OK;
}

cairn_status cairn__dist_check_tensor(const cairn__dist_manifest *m, const char *what,
                                      uint64_t t, cairn_error *err)
{
    const cairn__dist_tensor *d = &m->tensors[t];
    uint64_t zero[CAIRN_MAX_RANK] = {0};
    cairn__dist_piece *p = NULL;
    size_t n = 0;
    CAIRN_TRY(cairn__dist_plan(m, what, t, zero, d->dims, &p, &n, err));
    free(p);
    return CAIRN_OK;
}
