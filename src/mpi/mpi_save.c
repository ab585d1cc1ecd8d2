/* mpi_save.c -- the collective save of a distributed checkpoint and the
 * collective open (docs/DISTRIBUTED.md): plan (gather box descriptors to
 * rank 0, check the layout, assign replicated tensors), write (each rank
 * its own native file in the staging directory), finish (agree, manifest,
 * no-replace rename of the directory). On an object store the rank files
 * are objects under a random subprefix and the finish is mpi_s3_save.c's. */
#include "mpi_save.h"
#include "../archive/dist_boxes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double cairn__mpi_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- errors */

cairn_status cairn__mpi_fail(cairn_error *err, cairn_status st, const char *fmt, ...)
{
    if (err) {
        err->status = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

cairn_status cairn__mpi_bcast_status(MPI_Comm comm, int root, cairn_status st, cairn_error *err)
{
    struct {
        int st;
        char msg[CAIRN_ERROR_MESSAGE_MAX];
    } b;
    int me;
    MPI_Comm_rank(comm, &me);
    memset(&b, 0, sizeof b);
    if (me == root) {
        b.st = (int)st;
        if (st != CAIRN_OK && err)
            snprintf(b.msg, sizeof b.msg, "%s", err->message);
    }
    MPI_Bcast(&b, (int)sizeof b, MPI_BYTE, root, comm);
    if (b.st != CAIRN_OK && me != root && err) {
        err->status = (cairn_status)b.st;
        snprintf(err->message, sizeof err->message, "%s", b.msg);
    }
    return (cairn_status)b.st;
}

cairn_status cairn__mpi_agree(MPI_Comm comm, cairn_status st, cairn_error *err)
{
    int me, first, mine;
    MPI_Comm_rank(comm, &me);
    mine = st != CAIRN_OK ? me : INT32_MAX;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == INT32_MAX)
        return CAIRN_OK;
    if (me == first && err) {
        char tmp[CAIRN_ERROR_MESSAGE_MAX];
        snprintf(tmp, sizeof tmp, "%s", err->message);
        snprintf(err->message, sizeof err->message, "rank %d: %.490s", me, tmp);
    }
    return cairn__mpi_bcast_status(comm, first, st, err);
}

/* ------------------------------------------------------------ directories */

static int remove_order(const struct dirent *e)
{
    return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

void cairn__mpi_remove_dir(const char *dir)
{
    if (cairn_path_is_url(dir)) {
        cairn__mpi_remote_remove_dir(dir);
        return;
    }
    char p[PATH_MAX_LEN];
    snprintf(p, sizeof p, "%s/manifest.cairn", dir);
    unlink(p);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, remove_order, alphasort);
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, list[i]->d_name);
        unlink(p);
        free(list[i]);
    }
    free(list);
    rmdir(dir);
}

/* fsync of a file or directory by path (fsync makes the file durable, not
 * just what this descriptor wrote). */
static cairn_status sync_path(const char *path, int dir, cairn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return cairn__mpi_fail(err, CAIRN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return cairn__mpi_fail(err, CAIRN_E_IO, "%s: fsync: %s", path, strerror(e));
    return CAIRN_OK;
}

cairn_status cairn__mpi_sync_dir(const char *dir, cairn_error *err)
{
    return sync_path(dir, 1, err);
}

/* -------------------------------------------------------------- building */

cairn_status cairn_mpi_save_begin(MPI_Comm comm, const char *path, const cairn_write_opts *opts,
                                  cairn_mpi_save **out, cairn_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out || !*path || strlen(path) > PATH_MAX_LEN - 64)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_save_begin: a path (at most %d "
                               "bytes) and out are needed", PATH_MAX_LEN - 64);
    if (opts && opts->format != CAIRN_FORMAT_AUTO && opts->format != CAIRN_FORMAT_NATIVE)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: rank files are native cairn files", path);
    cairn_mpi_save *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    }
    size_t len = strlen(s->path);
    while (len > 1 && s->path[len - 1] == '/')
        s->path[--len] = '\0';
    s->comm = comm;
    s->remote = cairn_path_is_url(s->path);
    MPI_Comm_rank(comm, &s->me);
    MPI_Comm_size(comm, &s->size);
    s->wopts.struct_size = sizeof s->wopts;
    if (opts) {
        size_t n = opts->struct_size < sizeof s->wopts ? opts->struct_size : sizeof s->wopts;
        memcpy(&s->wopts, opts, n);
        s->wopts.struct_size = sizeof s->wopts;
    }
    s->wopts.format = CAIRN_FORMAT_NATIVE;
    *out = s;
    return CAIRN_OK;
}

static cairn_status keep_error(cairn_mpi_save *s, cairn_status st, cairn_error *err)
{
    if (st != CAIRN_OK && s->failed == CAIRN_OK) {
        s->failed = st;
        if (err)
            s->ferr = *err;
        else
            snprintf(s->ferr.message, sizeof s->ferr.message, "%s", cairn_strerror(st));
    }
    return st;
}

static cairn_status add_piece(cairn_mpi_save *s, const char *name, cairn_dtype dtype,
                              uint32_t rank, const uint64_t *dims, const uint64_t *off,
                              const uint64_t *ext, const void *data, int replicated,
                              cairn_error *err)
{
    size_t nlen = name ? strlen(name) : 0;
    if (!nlen || nlen > 4096)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: a tensor name of 1 to 4096 bytes is needed",
                               s->path);
    if (!cairn_dtype_size(dtype) || rank > MAX_RANK || (rank && (!dims || !off || !ext)))
        return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: tensor '%s': bad dtype, rank or NULL "
                               "dims/box", s->path, name);
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->pieces[i].name, name))
            return cairn__mpi_fail(err, CAIRN_E_EXISTS, "%s: tensor '%s' added twice on rank %d",
                                   s->path, name, s->me);
    piece p = {.dtype = dtype, .rank = rank, .replicated = replicated, .data = data, .count = 1};
    for (uint32_t j = 0; j < rank; j++) {
        p.dims[j] = dims[j];
        p.off[j] = off[j];
        p.ext[j] = ext[j];
        if (ext[j] > dims[j] || off[j] > dims[j] - ext[j])
            return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: tensor '%s': dimension %u: offset %llu "
                                   "+ extent %llu is outside %llu", s->path, name, j,
                                   (unsigned long long)off[j], (unsigned long long)ext[j],
                                   (unsigned long long)dims[j]);
        if (ext[j] && p.count > UINT64_MAX / ext[j])
            return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: tensor '%s': too large", s->path, name);
        p.count *= ext[j];
    }
    uint64_t total = cairn_dtype_size(dtype);
    for (uint32_t j = 0; j < rank; j++)
        if (dims[j] && total > UINT64_MAX / dims[j])
            return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: tensor '%s': its global size "
                                   "overflows", s->path, name);
        else
            total *= dims[j];
    if (p.count && !data)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL data", s->path, name);
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        piece *np = realloc(s->pieces, nc * sizeof *np);
        if (!np)
            return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->path);
        s->pieces = np;
        s->cap = nc;
    }
    if (!(p.name = strdup(name)))
        return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->path);
    s->pieces[s->n++] = p;
    return CAIRN_OK;
}

cairn_status cairn_mpi_save_add(cairn_mpi_save *s, const char *name, cairn_dtype dtype,
                                uint32_t rank, const uint64_t *dims, const uint64_t *offset,
                                const uint64_t *extent, const void *data, cairn_error *err)
{
    if (!s)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_save_add: NULL save");
    return keep_error(s, add_piece(s, name, dtype, rank, dims, offset, extent, data, 0, err),
                      err);
}

cairn_status cairn_mpi_save_add_replicated(cairn_mpi_save *s, const char *name,
                                           cairn_dtype dtype, uint32_t rank,
                                           const uint64_t *dims, const void *data,
                                           cairn_error *err)
{
    if (!s)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_save_add_replicated: NULL save");
    uint64_t zero[MAX_RANK] = {0};
    return keep_error(s, add_piece(s, name, dtype, rank, dims, zero, dims, data, 1, err), err);
}

cairn_status cairn_mpi_save_set_metadata(cairn_mpi_save *s, const cairn_value *tree,
                                         cairn_error *err)
{
    if (!s || !tree || cairn_value_get_type(tree) != CAIRN_VALUE_MAP)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_save_set_metadata: a map is needed");
    cairn_value *c = cairn_value_clone(tree);
    if (!c)
        return keep_error(s, cairn__mpi_fail(err, CAIRN_E_NOMEM, "out of memory"), err);
    cairn_value_free(s->meta);
    s->meta = c;
    return CAIRN_OK;
}

cairn_status cairn__mpi_save_set_record(cairn_mpi_save *s, cairn_value *record, cairn_error *err)
{
    cairn_value_free(s->record);
    s->record = record;
    return CAIRN_OK;
}

cairn_status cairn__mpi_save_own(cairn_mpi_save *s, cairn_error *err)
{
    for (size_t i = 0; i < s->n; i++) {
        piece *p = &s->pieces[i];
        size_t bytes = (size_t)(p->count * cairn_dtype_size(p->dtype));
        if (!bytes || p->owned)
            continue;
        if (!(p->owned = malloc(bytes)))
            return keep_error(s, cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory for a "
                                                 "%zu-byte host copy of '%s'", s->path, bytes,
                                                 p->name), err);
        memcpy(p->owned, p->data, bytes);
        p->data = p->owned;
    }
    return CAIRN_OK;
}

void cairn_mpi_save_abort(cairn_mpi_save *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->pieces[i].name);
        free(s->pieces[i].owned);
    }
    free(s->pieces);
    cairn_value_free(s->meta);
    cairn_value_free(s->record);
    free(s->tensors);
    free(s->boxes);
    free(s->names);
    free(s->ids);
    free(s->path);
    free(s);
}

/* ------------------------------------------------------------------ plan */

/* One descriptor, packed: name_len u32, dtype u32, rank u32, replicated
 * u32, name, dims/off/ext (rank u64 each). */
static size_t desc_size(const piece *p)
{
    return 16 + strlen(p->name) + 24 * (size_t)p->rank;
}

static void put_bytes(uint8_t **w, const void *v, size_t n)
{
    memcpy(*w, v, n);
    *w += n;
}

typedef struct entry {
    const uint8_t *name;
    uint32_t len, dtype, rank, replicated;
    uint64_t dims[MAX_RANK], off[MAX_RANK], ext[MAX_RANK];
    int src;            /* the rank */
    size_t flag;        /* its skip flag in the scattered array */
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->src - y->src;
}

/* Rank 0: reads the gathered descriptors into entries. */
static cairn_status parse_descs(cairn_mpi_save *s, const uint8_t *buf, const int *counts,
                                const int *displs, entry **out, size_t *n, cairn_error *err)
{
    size_t total = 0, cap = 0, k = 0;
    entry *e = NULL;
    for (int r = 0; r < s->size; r++) {
        const uint8_t *p = buf + displs[r], *end = p + counts[r];
        while (p < end) {
            entry x;
            memset(&x, 0, sizeof x);
            uint32_t h[4];
            if ((size_t)(end - p) < 16)
                goto bad;
            memcpy(h, p, 16);
            p += 16;
            x.len = h[0], x.dtype = h[1], x.rank = h[2], x.replicated = h[3];
            if (x.rank > MAX_RANK || (size_t)(end - p) < x.len + 24 * (size_t)x.rank)
                goto bad;
            x.name = p;
            p += x.len;
            memcpy(x.dims, p, 8 * x.rank), p += 8 * x.rank;
            memcpy(x.off, p, 8 * x.rank), p += 8 * x.rank;
            memcpy(x.ext, p, 8 * x.rank), p += 8 * x.rank;
            x.src = r;
            x.flag = total++;
            if (k == cap) {
                cap = cap ? 2 * cap : 64;
                entry *ne = realloc(e, cap * sizeof *e);
                if (!ne) {
                    free(e);
                    return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: rank 0: out of memory for "
                                           "the plan", s->path);
                }
                e = ne;
            }
            e[k++] = x;
        }
    }
    *out = e;
    *n = k;
    return CAIRN_OK;
bad:
    free(e);
    return cairn__mpi_fail(err, CAIRN_E_CORRUPT, "%s: rank 0: a malformed box descriptor",
                           s->path);
}

static const char *shown(const entry *e, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s", (int)(e->len > 200 ? 200 : e->len), (const char *)e->name);
    return buf;
}

/* Rank 0: checks one tensor's entries [a, b) (same name) and appends its
 * row, name and boxes to the tables. */
static cairn_status plan_tensor(cairn_mpi_save *s, entry *e, size_t a, size_t b, uint8_t *skip,
                                uint64_t *tensor_row, uint64_t **boxes, uint64_t *nwords,
                                uint64_t *cap, cairn_error *err)
{
    char nb[256];
    const entry *f = &e[a];
    for (size_t i = a + 1; i < b; i++) {
        int same = e[i].dtype == f->dtype && e[i].rank == f->rank &&
                   e[i].replicated == f->replicated &&
                   !memcmp(e[i].dims, f->dims, sizeof f->dims);
        if (!same)
            return cairn__mpi_fail(err, CAIRN_E_MISMATCH, "%s: tensor '%s': rank %d adds it as "
                                   "%s of rank %u%s, rank %d as %s of rank %u%s", s->path,
                                   shown(f, nb, sizeof nb), f->src,
                                   cairn_dtype_name((cairn_dtype)f->dtype), f->rank,
                                   f->replicated ? " (replicated)" : "", e[i].src,
                                   cairn_dtype_name((cairn_dtype)e[i].dtype), e[i].rank,
                                   e[i].replicated ? " (replicated)" : "");
    }
    uint64_t count = 1;
    for (uint32_t j = 0; j < f->rank; j++)
        count *= f->dims[j]; /* each rank checked its box's product; dims may still overflow */
    tensor_row[0] = f->dtype;
    tensor_row[1] = f->rank;
    for (uint32_t j = 0; j < MAX_RANK; j++)
        tensor_row[3 + j] = j < f->rank ? f->dims[j] : 0;
    size_t nbox = 0;
    cairn__box_ref *refs = malloc((b - a) * sizeof *refs);
    if (!refs)
        return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: rank 0: out of memory", s->path);
    uint64_t vol_sum = 0;
    for (size_t i = a; i < b; i++) {
        uint64_t vol = 1;
        for (uint32_t j = 0; j < f->rank; j++)
            vol *= e[i].ext[j];
        if (f->replicated && i > a)
            skip[e[i].flag] = 1; /* the lowest rank writes it */
        if (vol == 0 || (f->replicated && i > a))
            continue;
        refs[nbox++] = (cairn__box_ref){.off = e[i].off, .ext = e[i].ext, .id = i};
        vol_sum += vol;
        uint64_t words = 1 + 2 * (uint64_t)f->rank;
        if (*nwords + words > *cap) {
            uint64_t nc = *cap ? 2 * *cap : 1024;
            while (nc < *nwords + words)
                nc *= 2;
            uint64_t *nbx = realloc(*boxes, (size_t)nc * 8);
            if (!nbx) {
                free(refs);
                return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: rank 0: out of memory", s->path);
            }
            *boxes = nbx;
            *cap = nc;
        }
        uint64_t *w = *boxes + *nwords;
        w[0] = (uint64_t)e[i].src;
        memcpy(w + 1, e[i].off, 8 * f->rank);
        memcpy(w + 1 + f->rank, e[i].ext, 8 * f->rank);
        *nwords += words;
    }
    uint64_t x, y;
    cairn_status st = CAIRN_OK;
    if (f->rank > 0 && nbox > 1 && cairn__boxes_overlap(f->rank, refs, nbox, &x, &y))
        st = cairn__mpi_fail(err, CAIRN_E_MISMATCH, "%s: tensor '%s': the boxes of ranks %d and "
                             "%d overlap", s->path, shown(f, nb, sizeof nb), e[x].src, e[y].src);
    else if (vol_sum != count)
        st = cairn__mpi_fail(err, CAIRN_E_MISMATCH, "%s: tensor '%s': the ranks' boxes cover %llu "
                             "of its %llu elements", s->path, shown(f, nb, sizeof nb),
                             (unsigned long long)vol_sum, (unsigned long long)count);
    free(refs);
    tensor_row[2] = nbox;
    return st;
}

/* Rank 0: the whole plan from the gathered descriptors. */
static cairn_status plan_root(cairn_mpi_save *s, entry *e, size_t n, uint8_t *skip,
                              cairn_error *err)
{
    if (n > 1)
        qsort(e, n, sizeof *e, entry_cmp);
    size_t groups = 0;
    uint64_t names_len = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || e[i - 1].len != e[i].len || memcmp(e[i - 1].name, e[i].name, e[i].len)) {
            groups++;
            names_len += e[i].len + 1;
        }
    s->tensors = calloc(groups ? groups : 1, 8 * 11);
    s->names = malloc(names_len ? (size_t)names_len : 1);
    if (!s->tensors || !s->names)
        return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: rank 0: out of memory", s->path);
    uint64_t cap = 0, t = 0;
    s->names_len = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && e[b].len == e[a].len && !memcmp(e[b].name, e[a].name, e[a].len))
            b++;
        memcpy(s->names + s->names_len, e[a].name, e[a].len);
        s->names_len += e[a].len;
        s->names[s->names_len++] = 0;
        MPI_TRY(plan_tensor(s, e, a, b, skip, s->tensors + 11 * t, &s->boxes, &s->nwords,
                              &cap, err));
        t++;
        a = b;
    }
    s->ntensors = t;
    return CAIRN_OK;
}

cairn_status cairn__mpi_random_hex(const char *what, char out[17], cairn_error *err)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return cairn__mpi_fail(err, CAIRN_E_IO, "%s: getrandom: %s", what, strerror(errno));
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    return CAIRN_OK;
}

static cairn_status make_staging(cairn_mpi_save *s, cairn_error *err)
{
    if (s->remote) { /* rank objects under PATH/<random>/: no job's keys meet another's */
        int committed; /* refused before any upload; the create-only manifest decides races */
        MPI_TRY(cairn__mpi_remote_committed(s->path, &committed, err));
        if (committed)
            return cairn__mpi_fail(err, CAIRN_E_EXISTS, "%s: already exists (a checkpoint is "
                                   "never replaced)", s->path);
        MPI_TRY(cairn__mpi_random_hex(s->path, s->rank_dir, err));
        snprintf(s->staging, sizeof s->staging, "%s/%s", s->path, s->rank_dir);
        return CAIRN_OK;
    }
    struct stat st;
    if (stat(s->path, &st) == 0)
        return cairn__mpi_fail(err, CAIRN_E_EXISTS, "%s: already exists (a checkpoint is never "
                               "replaced)", s->path);
    const char *slash = strrchr(s->path, '/');
    const char *leaf = slash ? slash + 1 : s->path;
    int plen = slash ? (int)(slash - s->path) : 1;
    const char *parent = slash ? s->path : ".";
    if (slash == s->path)
        plen = 1;
    char hex[RANK_DIR_LEN + 1];
    MPI_TRY(cairn__mpi_random_hex(s->path, hex, err));
    snprintf(s->staging, sizeof s->staging, "%.*s/.%s.cairn-tmp-%s", plen, parent, leaf, hex);
    if (mkdir(s->staging, 0777) != 0)
        return cairn__mpi_fail(err, CAIRN_E_IO, "%s: cannot create the staging directory: %s",
                               s->staging, strerror(errno));
    return CAIRN_OK;
}

cairn_status cairn__mpi_save_plan(cairn_mpi_save *s, cairn_error *err)
{
    /* Errors of any rank's adds first: every rank returns the first one. */
    cairn_error tmp = s->ferr;
    if (cairn__mpi_agree(s->comm, s->failed, &tmp) != CAIRN_OK) {
        if (err)
            *err = tmp;
        return tmp.status;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < s->n; i++)
        bytes += desc_size(&s->pieces[i]);
    cairn_status st = bytes > INT32_MAX ? cairn__mpi_fail(err, CAIRN_E_LIMIT, "%s: rank %d: "
                                                          "descriptors exceed 2 GiB", s->path,
                                                          s->me)
                                        : CAIRN_OK;
    uint8_t *mine = malloc(bytes ? bytes : 1), *w = mine;
    uint8_t *flags = malloc(s->n ? s->n : 1);
    if (s->me == 0)
        s->ids = malloc((size_t)s->size * 3 * sizeof *s->ids); /* finish's gather */
    if (st == CAIRN_OK && (!mine || !flags || (s->me == 0 && !s->ids)))
        st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->path);
    st = cairn__mpi_agree(s->comm, st, err);
    if (st != CAIRN_OK) {
        free(mine);
        free(flags);
        return st;
    }
    for (size_t i = 0; i < s->n; i++) {
        const piece *p = &s->pieces[i];
        uint32_t h[4] = {(uint32_t)strlen(p->name), (uint32_t)p->dtype, p->rank,
                         (uint32_t)p->replicated};
        put_bytes(&w, h, 16);
        put_bytes(&w, p->name, h[0]);
        put_bytes(&w, p->dims, 8 * p->rank);
        put_bytes(&w, p->off, 8 * p->rank);
        put_bytes(&w, p->ext, 8 * p->rank);
    }
    int len = (int)bytes, np = (int)s->n;
    int *counts = NULL, *displs = NULL, *ncounts = NULL, *ndispls = NULL;
    uint8_t *all = NULL, *skip = NULL;
    entry *e = NULL;
    size_t ne = 0;
    st = CAIRN_OK;
    if (s->me == 0) {
        counts = calloc((size_t)s->size, sizeof *counts);
        displs = calloc((size_t)s->size, sizeof *displs);
        ncounts = calloc((size_t)s->size, sizeof *ncounts);
        ndispls = calloc((size_t)s->size, sizeof *ndispls);
        if (!counts || !displs || !ncounts || !ndispls)
            st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: rank 0: out of memory", s->path);
    }
    /* A rank 0 without memory still takes part, so no rank waits forever. */
    int dummy[2];
    MPI_Gather(&len, 1, MPI_INT, counts ? counts : dummy, 1, MPI_INT, 0, s->comm);
    MPI_Gather(&np, 1, MPI_INT, ncounts ? ncounts : dummy, 1, MPI_INT, 0, s->comm);
    long long total = 0, ntotal = 0;
    if (s->me == 0 && st == CAIRN_OK) {
        for (int r = 0; r < s->size; r++) {
            displs[r] = (int)total;
            ndispls[r] = (int)ntotal;
            total += counts[r];
            ntotal += ncounts[r];
        }
        if (total > INT32_MAX || ntotal > INT32_MAX)
            st = cairn__mpi_fail(err, CAIRN_E_LIMIT, "%s: rank 0: descriptors of all ranks "
                                 "exceed 2 GiB", s->path);
        else if (!(all = malloc(total ? (size_t)total : 1)) ||
                 !(skip = calloc(ntotal ? (size_t)ntotal : 1, 1)))
            st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: rank 0: out of memory", s->path);
    }
    /* On a rank-0 failure above every rank still sends; rank 0 receives
     * into nothing by giving zero counts. */
    if (s->me == 0 && st != CAIRN_OK && counts)
        memset(counts, 0, (size_t)s->size * sizeof *counts);
    uint8_t one;
    MPI_Gatherv(mine, s->me == 0 && st != CAIRN_OK ? 0 : len, MPI_BYTE, all ? all : &one,
                counts, displs, MPI_BYTE, 0, s->comm);
    free(mine);
    if (s->me == 0 && st == CAIRN_OK)
        st = parse_descs(s, all, counts, displs, &e, &ne, err);
    if (s->me == 0 && st == CAIRN_OK)
        st = plan_root(s, e, ne, skip, err);
    if (s->me == 0 && st == CAIRN_OK)
        st = make_staging(s, err);
    free(e);
    free(all);
    st = cairn__mpi_bcast_status(s->comm, 0, st, err);
    if (st == CAIRN_OK) {
        MPI_Bcast(s->staging, (int)sizeof s->staging, MPI_CHAR, 0, s->comm);
        MPI_Scatterv(skip, ncounts, ndispls, MPI_BYTE, flags, np, MPI_BYTE, 0, s->comm);
        for (size_t i = 0; i < s->n; i++)
            s->pieces[i].skip = flags[i];
    }
    free(flags);
    free(skip);
    free(counts);
    free(displs);
    free(ncounts);
    free(ndispls);
    return st;
}

/* ----------------------------------------------------------------- write */

static int durable(const cairn_mpi_save *s)
{
    return !(s->wopts.flags & CAIRN_WRITE_NO_SYNC);
}

/* This rank's file made durable (once). */
static void sync_file(cairn_mpi_save *s)
{
    if (s->wst == CAIRN_OK && durable(s) && !s->synced && !s->remote) {
        s->wst = sync_path(s->file, 0, &s->werr);
        s->synced = s->wst == CAIRN_OK;
    }
    s->times.file_synced = cairn__mpi_now();
}

void cairn__mpi_save_write(cairn_mpi_save *s, int sync)
{
    char *path = s->file;
    snprintf(path, sizeof s->file, "%s/rank-%06d.cairn", s->staging, s->me);
    cairn_writer *w = NULL;
    cairn_error *err = &s->werr;
    /* Not fsynced by the writer: the staging directory is never read, and
     * the file is fsynced once, by sync_file, then its directory entry by
     * rank 0's one fsync of the staging directory (docs/DISTRIBUTED.md). */
    cairn_write_opts o = s->wopts;
    o.flags |= CAIRN_WRITE_NO_SYNC;
    cairn_status st = cairn_writer_open_path(path, &o, &w, err);
    cairn_value *meta = cairn_value_map();
    if (st == CAIRN_OK && !meta)
        st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    if (st == CAIRN_OK)
        st = cairn_value_set(meta, "cairn_dist_rank", cairn_value_int(s->me), err);
    if (st == CAIRN_OK)
        st = cairn_writer_set_metadata(w, meta, err);
    cairn_value_free(meta);
    for (size_t i = 0; st == CAIRN_OK && i < s->n; i++) {
        const piece *p = &s->pieces[i];
        if (p->skip || p->count == 0)
            continue;
        st = cairn_writer_add(w, p->name, p->dtype, p->rank, p->ext, p->data, err);
    }
    cairn_file_id id = {0};
    if (st == CAIRN_OK) {
        st = cairn_writer_commit_id(w, &id, err); /* nothing is read back */
        w = NULL;
    }
    cairn_writer_abort(w);
    s->fsize = id.size;
    s->fhash = id.index_hash;
    s->written = st == CAIRN_OK;
    s->wst = st;
    s->times.written = cairn__mpi_now();
    if (sync)
        sync_file(s);
}

/* ---------------------------------------------------------------- finish */

static cairn_status add_table(cairn_writer *w, const char *name, cairn_dtype dtype,
                              uint32_t rank, uint64_t d0, uint64_t d1, const void *data,
                              cairn_error *err)
{
    uint64_t dims[2] = {d0, d1};
    return cairn_writer_add(w, name, dtype, rank, dims, data, err);
}

/* Writes the manifest at `path` with `flags` (CAIRN_WRITE_NO_SYNC locally,
 * CAIRN_WRITE_NO_REPLACE on an object store: its creation is the commit). */
cairn_status cairn__mpi_put_manifest(cairn_mpi_save *s, const uint64_t *files, const char *path,
                                     unsigned flags, cairn_error *err)
{
    cairn_value *tree = cairn_value_map();
    cairn_value *user = s->meta ? cairn_value_clone(s->meta) : cairn_value_map();
    cairn_status st = tree && user ? CAIRN_OK
                                   : cairn__mpi_fail(err, CAIRN_E_NOMEM, "out of memory");
    if (st == CAIRN_OK && s->record) {
        st = cairn_value_set(user, "checkpoint", s->record, err);
        if (st == CAIRN_OK)
            s->record = NULL;
    }
    if (st == CAIRN_OK)
        st = cairn_value_set(tree, "cairn_dist", cairn_value_int(1), err);
    if (st == CAIRN_OK)
        st = cairn_value_set(tree, "ranks", cairn_value_int(s->size), err);
    if (st == CAIRN_OK) {
        st = cairn_value_set(tree, "metadata", user, err);
        user = NULL;
    }
    if (st == CAIRN_OK && s->rank_dir[0])
        st = cairn_value_set(tree, "rank_dir", cairn_value_string(s->rank_dir), err);
    cairn_writer *w = NULL;
    cairn_write_opts o = {.struct_size = sizeof o, .format = CAIRN_FORMAT_NATIVE,
                          .flags = flags, .threads = 1};
    if (st == CAIRN_OK)
        st = cairn_writer_open_path(path, &o, &w, err);
    if (st == CAIRN_OK)
        st = cairn_writer_set_metadata(w, tree, err);
    if (st == CAIRN_OK)
        st = add_table(w, "dist.boxes", CAIRN_U64, 1, s->nwords, 0, s->boxes, err);
    if (st == CAIRN_OK)
        st = add_table(w, "dist.files", CAIRN_U64, 2, (uint64_t)s->size, 2, files, err);
    if (st == CAIRN_OK)
        st = add_table(w, "dist.names", CAIRN_U8, 1, s->names_len, 0, s->names, err);
    if (st == CAIRN_OK)
        st = add_table(w, "dist.tensors", CAIRN_U64, 2, s->ntensors, 11, s->tensors, err);
    if (st == CAIRN_OK) {
        st = cairn_writer_commit(w, err);
        w = NULL;
    }
    cairn_writer_abort(w);
    cairn_value_free(user);
    cairn_value_free(tree);
    s->times.manifest_written = cairn__mpi_now();
    return st;
}

static cairn_status write_manifest(cairn_mpi_save *s, const uint64_t *files, cairn_error *err)
{
    char path[PATH_MAX_LEN + 32];
    snprintf(path, sizeof path, "%s/manifest.cairn", s->staging);
    /* fsynced below with the staging directory, not by the writer */
    cairn_status st = cairn__mpi_put_manifest(s, files, path, CAIRN_WRITE_NO_SYNC, err);
    if (st == CAIRN_OK && durable(s))
        st = sync_path(path, 0, err);
    s->times.manifest_synced = cairn__mpi_now();
    /* One fsync of the staging directory for every entry in it: the rank
     * files (all renamed into place before the gather that got us here)
     * and the manifest. */
    if (st == CAIRN_OK && durable(s))
        st = sync_path(s->staging, 1, err);
    s->times.staging_synced = cairn__mpi_now();
    return st;
}

/* The commit point: the staging directory becomes `path`, never replacing. */
static cairn_status commit_dir(cairn_mpi_save *s, cairn_error *err)
{
    int rc = renameat2(AT_FDCWD, s->staging, AT_FDCWD, s->path, RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
        /* No RENAME_NOREPLACE here: rename refuses a non-empty target, and
         * a committed checkpoint is never empty; an empty directory is not
         * a checkpoint. */
        rc = rename(s->staging, s->path);
    }
    s->times.renamed = cairn__mpi_now();
    if (rc != 0) {
        int e = errno;
        return cairn__mpi_fail(err, e == EEXIST || e == ENOTEMPTY ? CAIRN_E_EXISTS : CAIRN_E_IO,
                               "%s: cannot commit %s: %s%s", s->path, s->staging, strerror(e),
                               e == EEXIST || e == ENOTEMPTY ? " (a checkpoint is never "
                                                               "replaced)" : "");
    }
    if (s->wopts.flags & CAIRN_WRITE_NO_SYNC) {
        s->times.parent_synced = s->times.renamed;
        return CAIRN_OK;
    }
    char parent[PATH_MAX_LEN];
    const char *slash = strrchr(s->path, '/');
    snprintf(parent, sizeof parent, "%.*s", slash ? (slash == s->path ? 1 : (int)(slash - s->path)) : 1,
             slash ? s->path : ".");
    cairn_status st = sync_path(parent, 1, err);
    s->times.parent_synced = cairn__mpi_now();
    return st;
}

cairn_status cairn__mpi_save_finish(cairn_mpi_save *s, cairn__mpi_times *times,
                                    cairn_error *err)
{
    if (s->remote)
        return cairn__mpi_save_finish_remote(s, times, err);
    /* Every rank's (status, size, hash) to rank 0 before the rank files
     * are durable, so the manifest is written and fsynced while the other
     * ranks fsync their files (a rank that sent returns at once). */
    uint64_t id[3] = {(uint64_t)s->wst, s->fsize, s->fhash};
    MPI_Gather(id, 3, MPI_UINT64_T, s->ids, 3, MPI_UINT64_T, 0, s->comm);
    s->times.gathered = cairn__mpi_now();
    cairn_status mst = CAIRN_OK;
    cairn_error merr;
    if (s->me == 0 && s->wst == CAIRN_OK) {
        int all = 1;
        for (int r = 0; r < s->size; r++) {
            all &= s->ids[3 * r] == CAIRN_OK;
            s->ids[2 * r] = s->ids[3 * r + 1]; /* (size, hash) rows, in place */
            s->ids[2 * r + 1] = s->ids[3 * r + 2];
        }
        if (all) /* else the failing rank's error wins the agreement */
            mst = write_manifest(s, s->ids, &merr);
    }
    /* Rank 0's own file after its small manifest fsyncs, so those finish
     * while every rank file's data is still being flushed. */
    sync_file(s);
    cairn_error tmp = s->werr;
    cairn_status st = s->wst;
    if (st == CAIRN_OK && mst != CAIRN_OK) {
        st = mst;
        tmp = merr;
    }
    /* The commit point's condition: every rank file durable, and on rank 0
     * the manifest and the staging directory too. */
    st = cairn__mpi_agree(s->comm, st, &tmp);
    s->times.agreed = cairn__mpi_now();
    if (st == CAIRN_OK) {
        if (s->me == 0)
            st = commit_dir(s, &tmp);
        st = cairn__mpi_bcast_status(s->comm, 0, st, &tmp);
    }
    s->times.result = cairn__mpi_now();
    if (st != CAIRN_OK && s->me == 0)
        cairn__mpi_remove_dir(s->staging);
    if (st != CAIRN_OK && err)
        *err = tmp;
    if (times)
        *times = s->times;
    cairn_mpi_save_abort(s);
    return st;
}

cairn_status cairn_mpi_save_commit(cairn_mpi_save *s, cairn_error *err)
{
    if (!s)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_save_commit: NULL save");
    cairn_status st = cairn__mpi_save_plan(s, err);
    if (st != CAIRN_OK) {
        cairn_mpi_save_abort(s);
        return st;
    }
    /* every rank fsyncs its file in finish, after the gather */
    cairn__mpi_save_write(s, 0);
    return cairn__mpi_save_finish(s, NULL, err);
}

/* ------------------------------------------------------------------ open */

cairn_status cairn_mpi_open(MPI_Comm comm, const char *path, const cairn_open_opts *opts,
                            cairn_file **out, cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open(path, opts, &f, err);
    st = cairn__mpi_agree(comm, st, err);
    if (st != CAIRN_OK) {
        cairn_file_close(f);
        if (out)
            *out = NULL;
        return st;
    }
    *out = f;
    return CAIRN_OK;
}
