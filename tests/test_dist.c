/* test_dist.c -- distributed checkpoint directories without MPI
 * (docs/FORMAT.md §20): cairn_tensor_read_box on plain files, a directory
 * built by hand read back whole, by box and by flat range, and every rule of
 * the manifest broken once (each refused, naming what is wrong). */
#include "testutil.h"

#include "archive/dist.h"

static char root[4096];
static int case_no;

/* -------------------------------------------------------- read_box, plain */

static void plain_boxes(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/plain.cairn", root);
    uint64_t dims[3] = {7, 6, 5};
    int32_t v[210];
    for (int i = 0; i < 210; i++)
        v[i] = i * 3 + 1;
    for (int codec = 0; codec < 2; codec++) {
        cairn_write_opts wo = {.struct_size = sizeof wo, .codec = codec ? CAIRN_CODEC_ZSTD : 0,
                               .threads = 1};
        cairn_writer *w;
        CHECK_OK(cairn_writer_open_path(path, &wo, &w, NULL));
        CHECK_OK(cairn_writer_add(w, "t", CAIRN_I32, 3, dims, v, NULL));
        CHECK_OK(cairn_writer_commit(w, NULL));
        cairn_file *f;
        CHECK_OK(cairn_file_open(path, NULL, &f, NULL));
        /* every box whose corner and size step through a few values */
        for (uint64_t a = 0; a < 7; a += 3)
            for (uint64_t b = 0; b < 6; b += 2)
                for (uint64_t c = 0; c < 5; c += 4)
                    for (uint64_t ea = 0; a + ea <= 7; ea += 2)
                        for (uint64_t eb = 1; b + eb <= 6; eb += 3) {
                            uint64_t off[3] = {a, b, c}, ext[3] = {ea, eb, 5 - c};
                            int64_t got[210];
                            size_t n = (size_t)(ea * eb * (5 - c));
                            CHECK_OK(cairn_tensor_read_box(f, 0, off, ext, CAIRN_I64, got,
                                                           n * 8, 0, NULL));
                            size_t k = 0;
                            int bad = 0;
                            for (uint64_t i = a; i < a + ea; i++)
                                for (uint64_t j = b; j < b + eb; j++)
                                    for (uint64_t l = c; l < 5; l++)
                                        bad += got[k++] != v[(i * 6 + j) * 5 + l];
                            CHECK(bad == 0);
                        }
        uint64_t off[3] = {6, 0, 0}, ext[3] = {2, 1, 1};
        int32_t one[2];
        CHECK_ST(cairn_tensor_read_box(f, 0, off, ext, CAIRN_I32, one, 8, 0, NULL), CAIRN_E_ARG);
        ext[0] = 1;
        CHECK_ST(cairn_tensor_read_box(f, 0, off, ext, CAIRN_I32, one, 8, 0, NULL),
                 CAIRN_E_SIZE);
        CHECK_OK(cairn_tensor_read_box(f, 0, off, ext, CAIRN_I32, one, 4, CAIRN_READ_VERIFY,
                                       NULL));
        CHECK(one[0] == v[6 * 30]);
        cairn_file_close(f);
    }
}

/* --------------------------------------------------- a hand-built directory */

/* The tables of a manifest, editable by each malformed case. */
typedef struct mtab {
    int64_t version, ranks;
    int with_version;
    uint64_t files[8];
    uint64_t nfiles_rows;
    char names[256];
    size_t names_len;
    uint64_t tensors[4 * 11];
    uint64_t ntensors;
    uint64_t boxes[64];
    uint64_t nwords;
    const char *rank_dir; /* a string "rank_dir", or NULL */
    int rank_dir_int;     /* an integer "rank_dir" instead */
} mtab;

static void write_rank(const char *dir, int r, const char *name, uint32_t rank,
                       const uint64_t *ext, const float *data)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/rank-%06d.cairn", dir, r);
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(p, NULL, &w, NULL));
    if (name)
        CHECK_OK(cairn_writer_add(w, name, CAIRN_F32, rank, ext, data, NULL));
    CHECK_OK(cairn_writer_commit(w, NULL));
}

static void file_id(const char *dir, int r, uint64_t *size, uint64_t *hash)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/rank-%06d.cairn", dir, r);
    size_t n;
    uint8_t *b = tu_read_whole(p, &n);
    *size = n;
    *hash = 0;
    for (int i = 7; i >= 0; i--)
        *hash = *hash << 8 | b[n - 128 + 80 + i];
    free(b);
}

static void write_manifest(const char *dir, const mtab *t)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, CAIRN__DIST_MANIFEST);
    cairn_value *tree = cairn_value_map();
    if (t->with_version)
        cairn_value_set(tree, "cairn_dist", cairn_value_int(t->version), NULL);
    cairn_value_set(tree, "ranks", cairn_value_int(t->ranks), NULL);
    cairn_value_set(tree, "metadata", cairn_value_map(), NULL);
    if (t->rank_dir)
        cairn_value_set(tree, "rank_dir", cairn_value_string(t->rank_dir), NULL);
    if (t->rank_dir_int)
        cairn_value_set(tree, "rank_dir", cairn_value_int(t->rank_dir_int), NULL);
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(p, NULL, &w, NULL));
    CHECK_OK(cairn_writer_set_metadata(w, tree, NULL));
    uint64_t d2[2] = {t->nfiles_rows, 2}, d1 = t->names_len, dt[2] = {t->ntensors, 11},
             db = t->nwords;
    CHECK_OK(cairn_writer_add(w, "dist.files", CAIRN_U64, 2, d2, t->files, NULL));
    CHECK_OK(cairn_writer_add(w, "dist.names", CAIRN_U8, 1, &d1, t->names, NULL));
    CHECK_OK(cairn_writer_add(w, "dist.tensors", CAIRN_U64, 2, dt, t->tensors, NULL));
    CHECK_OK(cairn_writer_add(w, "dist.boxes", CAIRN_U64, 1, &db, t->boxes, NULL));
    CHECK_OK(cairn_writer_commit(w, NULL));
    cairn_value_free(tree);
}

/* A good directory: "m" F32 [4, 6] split as rows 0-2 (rank 0) and rows 3
 * (rank 1), "s" F32 scalar on rank 1. */
static float mval(uint64_t i) { return (float)i * 0.5f - 3.0f; }

static void good_dir(const char *dir, mtab *t)
{
    mkdir(dir, 0777);
    float top[18], bottom[6], s = 42.0f;
    for (int i = 0; i < 18; i++)
        top[i] = mval((uint64_t)i);
    for (int i = 0; i < 6; i++)
        bottom[i] = mval((uint64_t)(18 + i));
    uint64_t e0[2] = {3, 6}, e1[2] = {1, 6};
    write_rank(dir, 0, "m", 2, e0, top);
    char p[4300];
    snprintf(p, sizeof p, "%s/rank-%06d.cairn", dir, 1);
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(p, NULL, &w, NULL));
    CHECK_OK(cairn_writer_add(w, "m", CAIRN_F32, 2, e1, bottom, NULL));
    CHECK_OK(cairn_writer_add(w, "s", CAIRN_F32, 0, NULL, &s, NULL));
    cairn_file_id id;
    CHECK_OK(cairn_writer_commit_id(w, &id, NULL));
    memset(t, 0, sizeof *t);
    t->with_version = 1;
    t->version = 1;
    t->ranks = 2;
    t->nfiles_rows = 2;
    file_id(dir, 0, &t->files[0], &t->files[1]);
    file_id(dir, 1, &t->files[2], &t->files[3]);
    /* the identity the writer reports and the one an open reads are the
     * trailer's, as read here byte by byte */
    CHECK(id.size == t->files[2] && id.index_hash == t->files[3]);
    cairn_file *f;
    cairn_file_id got;
    CHECK_OK(cairn_file_open(p, NULL, &f, NULL));
    CHECK_OK(cairn_file_get_id(f, &got, NULL));
    CHECK(got.size == id.size && got.index_hash == id.index_hash);
    cairn_file_close(f);
    memcpy(t->names, "m\0s\0", 4);
    t->names_len = 4;
    t->ntensors = 2;
    uint64_t m_row[11] = {CAIRN_F32, 2, 2, 4, 6}, s_row[11] = {CAIRN_F32, 0, 1};
    memcpy(t->tensors, m_row, sizeof m_row);
    memcpy(t->tensors + 11, s_row, sizeof s_row);
    uint64_t boxes[] = {0, 0, 0, 3, 6, /* */ 1, 3, 0, 1, 6, /* s */ 1};
    memcpy(t->boxes, boxes, sizeof boxes);
    t->nwords = 11;
    write_manifest(dir, t);
}

static void good_reads(void)
{
    char dir[4200];
    mtab t;
    snprintf(dir, sizeof dir, "%s/good", root);
    good_dir(dir, &t);
    cairn_file *f;
    cairn_error err;
    CHECK_OK(cairn_file_open(dir, NULL, &f, &err));
    if (!f)
        return;
    CHECK(cairn_file_count(f) == 2);
    CHECK_OK(cairn_file_verify(f, NULL));
    uint64_t idx;
    cairn_tensor_info info;
    CHECK_OK(cairn_tensor_find(f, "m", &idx, &info, NULL));
    CHECK(info.rank == 2 && info.dims[0] == 4 && info.dims[1] == 6);
    float whole[24];
    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F32, whole, sizeof whole, 0, NULL));
    int bad = 0;
    for (int i = 0; i < 24; i++)
        bad += whole[i] != mval((uint64_t)i);
    CHECK(bad == 0);
    /* a box across both pieces, as F64 */
    uint64_t off[2] = {2, 1}, ext[2] = {2, 3};
    double box[6];
    CHECK_OK(cairn_tensor_read_box(f, idx, off, ext, CAIRN_F64, box, sizeof box, 0, NULL));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            bad += box[i * 3 + j] != mval((uint64_t)((2 + i) * 6 + 1 + j));
    CHECK(bad == 0);
    /* flat ranges: every [a, b) */
    for (uint64_t a = 0; a < 24; a++)
        for (uint64_t b = a; b <= 24; b += 5) {
            float r[24];
            CHECK_OK(cairn_tensor_read_range(f, idx, a, b - a, CAIRN_F32, r,
                                             (size_t)(b - a) * 4, 0, NULL));
            for (uint64_t i = a; i < b; i++)
                bad += r[i - a] != mval(i);
        }
    CHECK(bad == 0);
    float s = 0;
    CHECK_OK(cairn_tensor_find(f, "s", &idx, NULL, NULL));
    CHECK_OK(cairn_tensor_read_box(f, idx, NULL, NULL, CAIRN_F32, &s, 4, 0, NULL));
    CHECK(s == 42.0f);
    cairn_file_close(f);
}

/* Rank files under the manifest's "rank_dir" (as a save on an object store
 * lays them out): read from there, and not from beside the manifest. */
static void rank_dir_layout(void)
{
    char dir[4200], sub[4300], from[4400], to[4400];
    mtab t;
    snprintf(dir, sizeof dir, "%s/sub", root);
    good_dir(dir, &t);
    snprintf(sub, sizeof sub, "%s/0123456789abcdef", dir);
    mkdir(sub, 0777);
    for (int r = 0; r < 2; r++) {
        snprintf(from, sizeof from, "%s/rank-%06d.cairn", dir, r);
        snprintf(to, sizeof to, "%s/rank-%06d.cairn", sub, r);
        CHECK(rename(from, to) == 0);
    }
    t.rank_dir = "0123456789abcdef";
    write_manifest(dir, &t);
    cairn_file *f;
    CHECK_OK(cairn_file_open(dir, NULL, &f, NULL));
    CHECK_OK(cairn_file_verify(f, NULL));
    cairn_file_close(f);
    /* other writes: not opened as files (identities, object-store calls) */
    cairn_writer *w;
    cairn_file_id id;
    cairn_error err;
    snprintf(to, sizeof to, "%s/x.safetensors", root);
    CHECK_OK(cairn_writer_open_path(to, NULL, &w, NULL));
    CHECK(cairn_writer_commit_id(w, &id, &err) == CAIRN_E_UNSUPPORTED);
    CHECK(cairn_file_open(to, NULL, &f, NULL) == CAIRN_E_IO); /* nothing was committed */
    CHECK(cairn_file_open(dir, NULL, &f, NULL) == CAIRN_OK);
    CHECK(cairn_file_get_id(f, &id, &err) == CAIRN_E_UNSUPPORTED); /* a directory */
    cairn_file_close(f);
    CHECK(!cairn_path_is_url(dir) && cairn_path_is_url("s3://bucket/key"));
    CHECK(cairn_store_remove(to, &err) == CAIRN_E_ARG && strstr(err.message, "not an object"));
}

/* ------------------------------------------------------ malformed manifests */

typedef void (*breaker)(mtab *t);

/* Builds a good directory, breaks its manifest, and expects `status` with
 * `needle` in the message from open (or, when at_read, from verify). */
static void broken(const char *what, breaker fn, cairn_status status, const char *needle,
                   int at_read)
{
    char dir[4200];
    mtab t;
    snprintf(dir, sizeof dir, "%s/bad%d", root, case_no++);
    good_dir(dir, &t);
    fn(&t);
    write_manifest(dir, &t);
    cairn_file *f = NULL;
    cairn_error err;
    memset(&err, 0, sizeof err);
    cairn_status st = cairn_file_open(dir, NULL, &f, &err);
    if (at_read && st == CAIRN_OK)
        st = cairn_file_verify(f, &err);
    cairn_file_close(f);
    int ok = st == status && strstr(err.message, needle) != NULL;
    if (!ok)
        fprintf(stderr, "case '%s': status %d (want %d), message: %s\n", what, (int)st,
                (int)status, err.message);
    CHECK(ok);
}

static void b_no_version(mtab *t) { t->with_version = 0; }
static void b_version(mtab *t) { t->version = 2; }
static void b_ranks(mtab *t) { t->ranks = 3; }
static void b_ranks0(mtab *t) { t->ranks = 0; }
static void b_unsorted(mtab *t) { memcpy(t->names, "s\0m\0", 4); }
static void b_dup(mtab *t) { memcpy(t->names, "m\0m\0", 4); }
static void b_nonul(mtab *t) { t->names_len = 3; }
static void b_fewer(mtab *t) { t->names_len = 2; }
static void b_utf8(mtab *t) { t->names[0] = (char)0xff; }
static void b_dtype0(mtab *t) { t->tensors[0] = 0; }
static void b_dtype99(mtab *t) { t->tensors[0] = 99; }
static void b_rank9(mtab *t) { t->tensors[1] = 9; }
static void b_dims(mtab *t) { t->tensors[3 + 5] = 1; }
static void b_dim_huge(mtab *t) { t->tensors[3] = UINT64_MAX / 2; }
static void b_file(mtab *t) { t->boxes[5] = 7; }
static void b_extent0(mtab *t) { t->boxes[9] = 0; }
static void b_outside(mtab *t) { t->boxes[6] = 4; }
static void b_wrap(mtab *t) { t->boxes[6] = UINT64_MAX; }
static void b_same_file(mtab *t) { t->boxes[5] = 0; }
static void b_gap(mtab *t) { t->boxes[3] = 2; }
static void b_more(mtab *t) { t->tensors[2] = 3; }
static void b_extra_words(mtab *t) { t->nwords = 12; }
static void b_files_rows(mtab *t) { t->nfiles_rows = 1; }
static void b_size(mtab *t) { t->files[2]++; }
static void b_hash(mtab *t) { t->files[1] ^= 1; }
/* rows 0-2 on rank 0 and rows 2-2 on rank 1 overlap at row 2, and the
 * volume still adds up because row 3 is missing */
static void b_overlap(mtab *t) { t->boxes[6] = 2; }
static void b_rank_dir(mtab *t) { t->rank_dir = "../../etc/passwd"; }
static void b_rank_dir_upper(mtab *t) { t->rank_dir = "0123456789ABCDEF"; }
static void b_rank_dir_int(mtab *t) { t->rank_dir_int = 7; }
static void b_extent(mtab *t) { t->boxes[3] = 2, t->boxes[6] = 2, t->boxes[8] = 2; }

static void malformed(void)
{
    broken("no version", b_no_version, CAIRN_E_CORRUPT, "cairn_dist", 0);
    broken("newer version", b_version, CAIRN_E_UNSUPPORTED, "layout 2", 0);
    broken("ranks disagree with dist.files", b_ranks, CAIRN_E_CORRUPT, "dist.files", 0);
    broken("zero ranks", b_ranks0, CAIRN_E_CORRUPT, "'ranks'", 0);
    broken("names unsorted", b_unsorted, CAIRN_E_CORRUPT, "sorted", 0);
    broken("names twice", b_dup, CAIRN_E_CORRUPT, "unique", 0);
    broken("name without NUL", b_nonul, CAIRN_E_CORRUPT, "NUL", 0);
    broken("fewer names", b_fewer, CAIRN_E_CORRUPT, "1 names", 0);
    broken("bad UTF-8", b_utf8, CAIRN_E_CORRUPT, "UTF-8", 0);
    broken("dtype 0", b_dtype0, CAIRN_E_CORRUPT, "dtype code 0", 0);
    broken("dtype 99", b_dtype99, CAIRN_E_CORRUPT, "dtype code 99", 0);
    broken("rank 9", b_rank9, CAIRN_E_CORRUPT, "rank 9", 0);
    broken("dims beyond rank", b_dims, CAIRN_E_CORRUPT, "beyond its rank", 0);
    broken("element count overflows", b_dim_huge, CAIRN_E_CORRUPT, "overflows", 0);
    broken("file index", b_file, CAIRN_E_CORRUPT, "file 7", 0);
    broken("extent 0", b_extent0, CAIRN_E_CORRUPT, "empty or outside", 0);
    broken("box outside", b_outside, CAIRN_E_CORRUPT, "empty or outside", 0);
    broken("offset wraps", b_wrap, CAIRN_E_CORRUPT, "empty or outside", 0);
    broken("two boxes in one file", b_same_file, CAIRN_E_CORRUPT, "second box", 0);
    broken("a gap", b_gap, CAIRN_E_CORRUPT, "hold 18 of its 24", 0);
    broken("box count past the table", b_more, CAIRN_E_CORRUPT, "run past", 0);
    broken("words left over", b_extra_words, CAIRN_E_CORRUPT, "its boxes use", 0);
    broken("dist.files rows", b_files_rows, CAIRN_E_CORRUPT, "dist.files is [1, 2]", 0);
    broken("rank file size", b_size, CAIRN_E_CORRUPT, "rank-000001.cairn", 1);
    broken("rank file hash", b_hash, CAIRN_E_CORRUPT, "another save", 1);
    broken("overlap", b_overlap, CAIRN_E_CORRUPT, "overlap", 1);
    broken("piece shape", b_extent, CAIRN_E_CORRUPT, "box", 1);
    broken("rank_dir leaving the directory", b_rank_dir, CAIRN_E_CORRUPT, "'rank_dir'", 0);
    broken("rank_dir in capitals", b_rank_dir_upper, CAIRN_E_CORRUPT, "'rank_dir'", 0);
    broken("rank_dir not a string", b_rank_dir_int, CAIRN_E_CORRUPT, "'rank_dir'", 0);
}

int main(void)
{
    snprintf(root, sizeof root, "%s", tu_tmpdir("test_dist"));
    plain_boxes();
    good_reads();
    rank_dir_layout();
    malformed();
    TEST_MAIN_END();
}
