/* test_zip.c -- the ZIP module (src/zip.c) on its own: writer and reader
 * round trips, Python's zipfile both ways, and hand-damaged archives. */
#include "testutil.h"

#include "container/zip.h"

#include <cairn.h>
#include <fcntl.h>

static const char *tmp;

#define DEF CAIRN_MAX_INFLATE_DEFAULT

/* ------------------------------------------------------------- helpers */

/* Member contents both C and the Python script can generate. */
static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t j = 0; j < n; j++)
        p[j] = (uint8_t)((j * 131u + seed * 7u + (j >> 8)) & 0xFFu);
}

static uint8_t *pattern_new(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    pattern(p, n, seed);
    return p;
}

/* A writer whose sink is memory, without any format on top. */
typedef struct mem_zip {
    cairn__sink sink;
    cairn__zip_writer zw;
} mem_zip;

static void mz_start(mem_zip *m)
{
    memset(m, 0, sizeof *m);
    cairn__sink_init_memory(&m->sink, "<memory>");
    cairn__zipw_init(&m->zw, &m->sink);
}

static cairn_status mz_add(mem_zip *m, const char *name, const void *data, size_t n, int deflate,
                           uint64_t align, uint64_t align_at)
{
    cairn__zip_piece pieces[2] = {{data, n / 3}, {(const uint8_t *)data + n / 3, n - n / 3}};
    cairn_error err = {0};
    cairn_status st = cairn__zipw_add(&m->zw, name, strlen(name), pieces, 2, deflate, align,
                                      align_at, &err);
    if (st != CAIRN_OK)
        fprintf(stderr, "  add %s: %s\n", name, err.message);
    return st;
}

/* Finishes the archive; the caller frees *out. */
static uint8_t *mz_finish(mem_zip *m, size_t *n)
{
    cairn_error err = {0};
    CHECK_OK(cairn__zipw_finish(&m->zw, &err));
    cairn__zipw_free(&m->zw);
    *n = m->sink.mem_len;
    return m->sink.mem;
}

/* An input over memory (no format attached): what the readers see. */
static void mem_input(cairn__source *f, const uint8_t *b, size_t n)
{
    static const uint8_t empty[1];
    memset(f, 0, sizeof *f);
    f->path = "<memory>";
    f->fd = -1;
    f->base = n ? b : empty;
    f->size = n;
}

/* The same bytes through a file read with pread only. */
static int pread_input(cairn__source *f, const uint8_t *b, size_t n, const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (tu_write_file(path, b, n) != 0)
        return -1;
    memset(f, 0, sizeof *f);
    f->path = path;
    f->fd = open(path, O_RDONLY);
    f->size = n;
    return f->fd >= 0 ? 0 : -1;
}

/* Opens, reads every member whole with its checks, verifies each: the
 * first failure's status (every message names the input and an offset). */
static cairn_status try_zip(const cairn__source *f, uint64_t max_inflate, cairn_error *err)
{
    cairn__zip z;
    cairn_status st = cairn__zip_open(f, max_inflate, &z, err);
    for (uint64_t i = 0; st == CAIRN_OK && i < z.count; i++) {
        const cairn__zip_member *m = &z.members[i];
        if (m->size > (64u << 20))
            continue;
        uint8_t *buf = malloc(m->size ? (size_t)m->size : 1);
        st = cairn__zip_read(f, m, 0, buf, (size_t)m->size, CAIRN__ZIP_CHECK, err);
        if (st == CAIRN_OK)
            st = cairn__zip_verify(f, m, err);
        free(buf);
    }
    cairn__zip_close(&z);
    if (st != CAIRN_OK) {
        int named = strncmp(err->message, f->path, strlen(f->path)) == 0 &&
                    strstr(err->message, "offset") != NULL;
        CHECK(named);
        if (!named)
            fprintf(stderr, "  message without file or offset: %s\n", err->message);
    }
    return st;
}

static cairn_status try_mem(const uint8_t *b, size_t n, uint64_t max_inflate, cairn_error *err)
{
    cairn__source f;
    mem_input(&f, b, n);
    return try_zip(&f, max_inflate, err);
}

/* The file offset of central directory entry `i` of an archive that has
 * no comment and no ZIP64 end record. */
static size_t cd_entry(const uint8_t *b, size_t n, size_t i)
{
    size_t at = cairn__le32(b + n - 22 + 16);
    while (i-- > 0)
        at += 46u + cairn__le16(b + at + 28) + cairn__le16(b + at + 30) + cairn__le16(b + at + 32);
    return at;
}

/* ------------------------------------------------------ 1. round trips */

typedef struct spec {
    const char *name;
    size_t size;
    unsigned seed;
    int deflate;
} spec;

static const spec specs[] = {
    {"weights.bin", 1000, 1, 0},
    {"b/c.txt", 300000, 2, 1},
    {"empty", 0, 3, 0},
    {"empty_deflated", 0, 4, 1},
    {"\xc3\xbcn\xc3\xaf.bin", 77, 5, 0},
    {"random.bin", 70000, 6, 1},
    {"../../etc/passwd", 5, 7, 0}, /* a key like any other */
};
#define N_SPECS (sizeof specs / sizeof specs[0])

static void check_members(const cairn__source *f, const cairn__zip *z, uint64_t align)
{
    cairn_error err = {0};
    CHECK(z->count == N_SPECS);
    for (size_t i = 0; i < N_SPECS; i++) {
        const spec *s = &specs[i];
        const cairn__zip_member *m = cairn__zip_find(z, s->name, strlen(s->name));
        CHECK(m != NULL);
        if (!m)
            continue;
        CHECK(m == &z->members[i] && m->size == s->size && strcmp(m->name, s->name) == 0);
        CHECK(m->method == (s->deflate ? CAIRN__ZIP_DEFLATED : CAIRN__ZIP_STORED));
        if (!s->deflate && align > 1)
            CHECK((m->data_offset + 13) % align == 0);
        uint8_t *want = pattern_new(s->size, s->seed), *got = malloc(s->size + 1);
        CHECK_OK(cairn__zip_read(f, m, 0, got, s->size, CAIRN__ZIP_CHECK, &err));
        CHECK(memcmp(got, want, s->size) == 0);
        if (s->size > 20) { /* a range in the middle, with and without the checks */
            memset(got, 0, s->size);
            CHECK_OK(cairn__zip_read(f, m, 7, got, s->size - 20, 0, &err));
            CHECK(memcmp(got, want + 7, s->size - 20) == 0);
            CHECK_OK(cairn__zip_read(f, m, 7, got, s->size - 20, CAIRN__ZIP_CHECK, &err));
            CHECK(memcmp(got, want + 7, s->size - 20) == 0);
        }
        CHECK_OK(cairn__zip_verify(f, m, &err));
        CHECK_ST(cairn__zip_read(f, m, 1, got, s->size, 0, &err), CAIRN_E_ARG);
        free(want);
        free(got);
    }
    CHECK(cairn__zip_find(z, "nothing", 7) == NULL);
    CHECK(cairn__zip_find(z, "weights.bi", 10) == NULL);
}

static uint8_t *write_specs(int force_zip64, uint64_t align, size_t *n)
{
    mem_zip m;
    mz_start(&m);
    m.zw.force_zip64 = force_zip64;
    for (size_t i = 0; i < N_SPECS; i++) {
        uint8_t *p = pattern_new(specs[i].size, specs[i].seed);
        CHECK_OK(mz_add(&m, specs[i].name, p, specs[i].size, specs[i].deflate, align, 13));
        free(p);
    }
    return mz_finish(&m, n);
}

static void test_round_trips(void)
{
    cairn_error err = {0};
    for (int zip64 = 0; zip64 < 2; zip64++) {
        for (uint64_t align = 1; align <= 4096; align *= 64) {
            size_t n;
            uint8_t *b = write_specs(zip64, align, &n);
            for (int pass = 0; pass < 2; pass++) {
                cairn__source f;
                if (pass == 0)
                    mem_input(&f, b, n);
                else
                    CHECK(pread_input(&f, b, n, "rt.zip") == 0);
                cairn__zip z;
                CHECK_OK(cairn__zip_open(&f, UINT64_MAX, &z, &err));
                CHECK(z.zip64 == zip64);
                check_members(&f, &z, align);
                cairn__zip_close(&z);
                cairn__zip_kind kind;
                CHECK_OK(cairn__zip_sniff(&f, &kind, &err));
                CHECK(kind == CAIRN__ZIP_OTHER);
                if (f.fd >= 0)
                    close(f.fd);
            }
            /* Equal calls give equal bytes. */
            size_t n2;
            uint8_t *b2 = write_specs(zip64, align, &n2);
            CHECK(n == n2 && memcmp(b, b2, n) == 0);
            free(b2);
            free(b);
        }
    }
    /* No members: just the end record, which opens as an empty archive. */
    mem_zip m;
    mz_start(&m);
    size_t n;
    uint8_t *b = mz_finish(&m, &n);
    CHECK(n == 22 && cairn__zip_magic(b, n));
    cairn__source f;
    mem_input(&f, b, n);
    cairn__zip z;
    CHECK_OK(cairn__zip_open(&f, DEF, &z, &err));
    CHECK(z.count == 0 && cairn__zip_find(&z, "x", 1) == NULL);
    cairn__zip_close(&z);
    cairn__zip_kind kind;
    CHECK_OK(cairn__zip_sniff(&f, &kind, &err));
    CHECK(kind == CAIRN__ZIP_NPZ);
    free(b);
    /* Member names decide what the archive is. */
    static const struct { const char *a, *b; cairn__zip_kind kind; } kinds[] = {
        {"x.npy", "y.npy", CAIRN__ZIP_NPZ},        {"x.npy", "notes.txt", CAIRN__ZIP_NPZ},
        {"archive/data.pkl", "x.npy", CAIRN__ZIP_TORCH}, {"data.pkl", "v", CAIRN__ZIP_TORCH},
        {"x.npyz", "data.pklx", CAIRN__ZIP_OTHER}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        mz_start(&m);
        CHECK_OK(mz_add(&m, kinds[i].a, "abc", 3, 0, 1, 0));
        CHECK_OK(mz_add(&m, kinds[i].b, "abc", 3, 1, 1, 0));
        b = mz_finish(&m, &n);
        mem_input(&f, b, n);
        CHECK_OK(cairn__zip_sniff(&f, &kind, &err));
        CHECK(kind == kinds[i].kind);
        free(b);
    }
}

/* Writer refusals: names ZIP cannot hold, alignments it cannot pad to. */
static void test_writer_refusals(void)
{
    mem_zip m;
    mz_start(&m);
    cairn_error err = {0};
    cairn__zip_piece p = {"x", 1};
    CHECK_ST(cairn__zipw_add(&m.zw, "", 0, &p, 1, 0, 1, 0, &err), CAIRN_E_LIMIT);
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    CHECK_ST(cairn__zipw_add(&m.zw, big, 70000, &p, 1, 0, 1, 0, &err), CAIRN_E_LIMIT);
    CHECK_ST(cairn__zipw_add(&m.zw, "a", 1, &p, 1, 0, 8192, 0, &err), CAIRN_E_ARG);
    CHECK_ST(cairn__zipw_add(&m.zw, "a", 1, &p, 1, 0, 48, 0, &err), CAIRN_E_ARG);
    free(big);
    size_t n;
    free(mz_finish(&m, &n));
}

/* ------------------------------------------------------------ 2. Python */

static const char py_write[] =
    "import sys, zipfile, io\n"
    "d = sys.argv[1]\n"
    "man = open(d + '/manifest.txt', 'w')\n"
    "def pat(n, seed): return bytes(((j * 131 + seed * 7 + (j >> 8)) & 255) for j in range(n))\n"
    "class Unseekable:\n"
    "    def __init__(s, f): s.f = f\n"
    "    def write(s, b): return s.f.write(b)\n"
    "    def flush(s): s.f.flush()\n"
    "members = [('a.bin', 1000, 1, zipfile.ZIP_STORED), ('b/c.txt', 50000, 2, zipfile.ZIP_DEFLATED),\n"
    "           ('empty', 0, 3, zipfile.ZIP_STORED), ('e2', 0, 4, zipfile.ZIP_DEFLATED),\n"
    "           ('\\u00fcn\\u00ef.bin', 77, 5, zipfile.ZIP_DEFLATED)]\n"
    "def emit(fn, zf, zip64=False):\n"
    "    for name, n, seed, method in members:\n"
    "        zi = zipfile.ZipInfo(name, (2020, 1, 2, 3, 4, 6))\n"
    "        zi.compress_type = method\n"
    "        with zf.open(zi, 'w', force_zip64=zip64) as w: w.write(pat(n, seed))\n"
    "        man.write('%s\\t%s\\t%d\\t%d\\n' % (fn, name.encode().hex(), n, seed))\n"
    "for fn, kind in [('plain', 0), ('comment', 1), ('zip64', 2), ('stream', 3)]:\n"
    "    f = open(d + '/' + fn + '.zip', 'wb')\n"
    "    zf = zipfile.ZipFile(Unseekable(f) if kind == 3 else f, 'w')\n"
    "    emit(fn, zf, kind == 2)\n"
    "    if kind == 1: zf.comment = b'c' * 65535\n"
    "    zf.close(); f.close()\n"
    "zipfile.ZipFile(d + '/none.zip', 'w').close()\n"
    "man.write('none\\t-\\t0\\t0\\n')\n"
    "zf = zipfile.ZipFile(d + '/many.zip', 'w')\n"
    "for i in range(65537): zf.writestr('m%d' % i, bytes([i & 255]))\n"
    "zf.close()\n"
    "man.write('many\\t-\\t65537\\t0\\n')\n";

static uint8_t *hex_name(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        s[i] = (uint8_t)v;
    }
    s[n] = 0;
    *len = n;
    return s;
}

static void check_python_member(const char *dir, const char *file, const char *hex, size_t size,
                                unsigned seed)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.zip", dir, file);
    size_t n;
    uint8_t *b = tu_read_whole(path, &n);
    CHECK(b != NULL);
    cairn_error err = {0};
    cairn__source f;
    mem_input(&f, b, n);
    cairn__zip z;
    CHECK_OK(cairn__zip_open(&f, DEF, &z, &err));
    if (strcmp(file, "none") == 0) {
        CHECK(z.count == 0);
    } else if (strcmp(file, "many") == 0) {
        CHECK(z.count == size && z.zip64);
        const cairn__zip_member *m = cairn__zip_find(&z, "m65536", 6);
        uint8_t v = 9;
        CHECK(m && cairn__zip_read(&f, m, 0, &v, 1, CAIRN__ZIP_CHECK, &err) == CAIRN_OK && v == 0);
    } else {
        size_t len;
        uint8_t *name = hex_name(hex, &len);
        const cairn__zip_member *m = cairn__zip_find(&z, (const char *)name, len);
        CHECK(m != NULL && (!m || m->size == size));
        if (m && m->size == size) {
            uint8_t *want = pattern_new(size, seed), *got = malloc(size + 1);
            CHECK_OK(cairn__zip_read(&f, m, 0, got, size, CAIRN__ZIP_CHECK, &err));
            CHECK(memcmp(got, want, size) == 0);
            if (strcmp(file, "stream") == 0)
                CHECK(m->flags & 0x8);
            free(want);
            free(got);
        }
        free(name);
    }
    cairn__zip_close(&z);
    free(b);
}

static const char py_check[] =
    "import sys, zipfile\n"
    "d = sys.argv[1]\n"
    "def pat(n, seed): return bytes(((j * 131 + seed * 7 + (j >> 8)) & 255) for j in range(n))\n"
    "bad = 0\n"
    "for line in open(d + '/cairn_manifest.txt'):\n"
    "    fn, hexname, n, seed = line.rstrip('\\n').split('\\t')\n"
    "    zf = zipfile.ZipFile(d + '/' + fn)\n"
    "    if zf.testzip() is not None: bad += 1; print(fn, 'testzip')\n"
    "    name = bytes.fromhex(hexname).decode()\n"
    "    if zf.read(name) != pat(int(n), int(seed)): bad += 1; print(fn, name, 'differs')\n"
    "print('python checked cairn archives, %d bad' % bad)\n"
    "sys.exit(1 if bad else 0)\n";

static void python_reads_cairn(const char *dir)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/cairn_manifest.txt", dir);
    FILE *man = fopen(path, "w");
    for (int zip64 = 0; zip64 < 2; zip64++) {
        size_t n;
        uint8_t *b = write_specs(zip64, 64, &n);
        snprintf(path, sizeof path, "%s/cairn%d.zip", dir, zip64);
        CHECK(tu_write_file(path, b, n) == 0);
        for (size_t i = 0; i < N_SPECS; i++) {
            fprintf(man, "cairn%d.zip\t", zip64);
            for (const char *p = specs[i].name; *p; p++)
                fprintf(man, "%02x", (unsigned char)*p);
            fprintf(man, "\t%zu\t%u\n", specs[i].size, specs[i].seed);
        }
        free(b);
    }
    fclose(man);
    CHECK(tu_run_python_text(tmp, py_check, dir, NULL) == 0);
}

/* One line of the Python writer's manifest (ctx: the directory); counts the
 * lines that parse. */
static int check_python_file(void *ctx, char *line)
{
    char file[64], hex[256];
    size_t size;
    unsigned seed;
    if (sscanf(line, "%63s %255s %zu %u", file, hex, &size, &seed) != 4)
        return 0;
    check_python_member(ctx, file, hex, size, seed);
    return 1;
}

static void test_python(void)
{
    char dir[4200];
    if (!tu_python_imports("zipfile", "zipfile cross-checks"))
        return;
    snprintf(dir, sizeof dir, "%s/py", tmp);
    mkdir(dir, 0777);
    CHECK(tu_run_python_text(tmp, py_write, dir, NULL) == 0);
    int files = tu_each_line(tu_path(dir, "manifest.txt"), check_python_file, dir);
    CHECK(files == 22);
    fprintf(stderr, "cairn read %d members of Python's zipfile\n", files);
    python_reads_cairn(dir);
}

/* ------------------------------------------------------ 3. hostile input */

/* three members: stored, deflated, stored; no comment, no ZIP64. */
static uint8_t *base_archive(size_t *n)
{
    mem_zip m;
    mz_start(&m);
    uint8_t *p = pattern_new(5000, 9);
    memset(p + 1000, 0, 4000); /* compressible */
    CHECK_OK(mz_add(&m, "one.bin", p, 300, 0, 1, 0));
    CHECK_OK(mz_add(&m, "two.bin", p, 5000, 1, 1, 0));
    CHECK_OK(mz_add(&m, "three.bin", p + 7, 100, 0, 1, 0));
    free(p);
    return mz_finish(&m, n);
}

typedef struct patch_case {
    const char *what;
    int entry;       /* central directory entry to patch, or -1 for the end record */
    size_t field;    /* offset within it */
    int width;       /* 1, 2 or 4 bytes */
    uint32_t value;
    int add;         /* add value to the field instead of setting it */
    int both;        /* patch the field 4 bytes on too (both sizes of a stored member) */
    cairn_status want;
    const char *says;
} patch_case;

static const patch_case patches[] = {
    {"cd offset past EOF", -1, 16, 4, 0x7fffffff, 0, 0, CAIRN_E_CORRUPT, "does not end"},
    {"cd size too large", -1, 12, 4, 1000, 1, 0, CAIRN_E_CORRUPT, "does not end"},
    {"entry count above what fits", -1, 10, 2, 500, 0, 0, CAIRN_E_CORRUPT, "cannot fit"},
    {"entry count below entries", -1, 10, 2, 2, 0, 0, CAIRN_E_CORRUPT, "after its"},
    {"disk number", -1, 4, 2, 1, 0, 0, CAIRN_E_UNSUPPORTED, "multi-disk"},
    {"entries on this disk", -1, 8, 2, 2, 0, 0, CAIRN_E_UNSUPPORTED, "multi-disk"},
    {"comment length", -1, 20, 2, 5, 0, 0, CAIRN_E_CORRUPT, "no ZIP end"},
    {"entry signature", 1, 0, 1, 'Q', 0, 0, CAIRN_E_CORRUPT, "bad signature"},
    {"encrypted", 1, 8, 2, 1, 0, 0, CAIRN_E_UNSUPPORTED, "member 'two.bin'"},
    {"strong encryption", 0, 8, 2, 0x40, 0, 0, CAIRN_E_UNSUPPORTED, "encrypted"},
    {"method bzip2", 2, 10, 2, 12, 0, 0, CAIRN_E_UNSUPPORTED, "method 12"},
    {"method 99 deflated", 1, 10, 2, 99, 0, 0, CAIRN_E_UNSUPPORTED, "member 'two.bin'"},
    {"disk start", 0, 34, 2, 3, 0, 0, CAIRN_E_UNSUPPORTED, "disk 3"},
    {"stored sizes differ", 0, 20, 4, 299, 0, 0, CAIRN_E_CORRUPT, "stored member"},
    {"renamed in the directory only", 2, 46, 1, 'o', 0, 0, CAIRN_E_CORRUPT,
     "names another member"},
    {"name with NUL", 0, 47, 1, 0, 0, 0, CAIRN_E_CORRUPT, "NUL"},
    {"name length past cd", 0, 28, 2, 60000, 0, 0, CAIRN_E_CORRUPT, "run past"},
    {"extra length past cd", 2, 30, 2, 60000, 0, 0, CAIRN_E_CORRUPT, "run past"},
    {"local offset past cd", 2, 42, 4, 0x7ffffff0, 0, 0, CAIRN_E_CORRUPT, "runs into"},
    {"local offset into data", 2, 42, 4, 5, 1, 0, CAIRN_E_CORRUPT, "local header"},
    {"overlap", 1, 20, 4, 40, 1, 0, CAIRN_E_CORRUPT, "overlaps"},
    {"data into cd", 2, 20, 4, 100000, 1, 1, CAIRN_E_CORRUPT, "runs into the central"},
    {"zip64 placeholder without extra", 1, 24, 4, 0xffffffffu, 0, 0, CAIRN_E_CORRUPT, "ZIP64"},
    {"beyond 1032:1", 1, 24, 4, 0x7fffffff, 0, 0, CAIRN_E_CORRUPT, "1032:1"},
    {"declared smaller", 1, 24, 4, 4999, 0, 0, CAIRN_E_CORRUPT, "more than"},
    {"declared larger", 1, 24, 4, 5001, 0, 0, CAIRN_E_CORRUPT, "ends after"},
    {"compressed smaller", 1, 20, 4, (uint32_t)-3, 1, 0, CAIRN_E_CORRUPT, "deflate data ends"},
    {"compressed larger", 1, 20, 4, 2, 1, 0, CAIRN_E_CORRUPT, "before the member"},
    {"crc of stored", 0, 16, 1, 0x5a, 0, 0, CAIRN_E_CHECKSUM, "CRC-32"},
    {"crc of deflated", 1, 16, 1, 0x5a, 0, 0, CAIRN_E_CHECKSUM, "CRC-32"},
};

static void put(uint8_t *p, int width, uint32_t v)
{
    for (int i = 0; i < width; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get(const uint8_t *p, int width)
{
    uint32_t v = 0;
    for (int i = 0; i < width; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void test_patches(void)
{
    size_t n;
    uint8_t *base = base_archive(&n);
    cairn_error err = {0};
    CHECK_OK(try_mem(base, n, DEF, &err));
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        const patch_case *c = &patches[i];
        uint8_t *b = malloc(n);
        memcpy(b, base, n);
        size_t at = (c->entry < 0 ? n - 22 : cd_entry(b, n, (size_t)c->entry)) + c->field;
        uint32_t v = c->add ? get(b + at, c->width) + c->value : c->value;
        put(b + at, c->width, v);
        if (c->both)
            put(b + at + 4, c->width, v);
        if (c->entry < 0 && c->field == 10) /* the total and this disk's count agree */
            put(b + at - 2, c->width, v);
        cairn_status st = try_mem(b, n, DEF, &err);
        CHECK_ST(st, c->want);
        int says = strstr(err.message, c->says) != NULL;
        CHECK(says);
        if (st != c->want || !says || getenv("CAIRN_TEST_VERBOSE"))
            fprintf(stderr, "  %s: %d %s\n", c->what, st, err.message);
        free(b);
    }
    free(base);
}

/* Two central directory entries with one name, the second pointing at its
 * own (renamed) local header. */
static void test_duplicates(void)
{
    mem_zip m;
    mz_start(&m);
    CHECK_OK(mz_add(&m, "same", "abc", 3, 0, 1, 0));
    CHECK_OK(mz_add(&m, "sane", "abc", 3, 1, 1, 0));
    size_t n;
    uint8_t *b = mz_finish(&m, &n);
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(b + i, "sane", 4) == 0)
            b[i + 2] = 'm';
    cairn_error err = {0};
    CHECK_ST(try_mem(b, n, DEF, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "duplicate member name") && strstr(err.message, "member 'same'"));
    free(b);
}

/* ZIP64 records written for every member and for the end, then damaged. */
static void test_zip64(void)
{
    size_t n;
    uint8_t *base = write_specs(1, 1, &n);
    cairn_error err = {0};
    CHECK_OK(try_mem(base, n, DEF, &err));
    size_t loc = n - 22 - 20, rec = (size_t)cairn__le64(base + loc + 8);
    CHECK(rec == loc - 56 && cairn__le32(base + rec) == 0x06064b50u);
    size_t cd = (size_t)cairn__le64(base + rec + 48);
    static const struct { const char *what; int where; size_t off; int width; uint64_t v;
                          cairn_status want; } cases[] = {
        {"locator points nowhere", 0, 8, 4, 3, CAIRN_E_CORRUPT},
        {"locator past itself", 0, 8, 4, 0x7fffffff, CAIRN_E_CORRUPT},
        {"locator disk", 0, 4, 4, 1, CAIRN_E_UNSUPPORTED},
        {"locator disks", 0, 16, 4, 2, CAIRN_E_UNSUPPORTED},
        {"record signature", 1, 0, 1, 'x', CAIRN_E_CORRUPT},
        {"record size", 1, 4, 4, 40, CAIRN_E_CORRUPT},
        {"record disk", 1, 16, 4, 1, CAIRN_E_UNSUPPORTED},
        {"record entries", 1, 32, 4, 8, CAIRN_E_UNSUPPORTED},
        {"both entry counts", 1, 24, 4, 0, CAIRN_E_UNSUPPORTED},
        {"record cd size", 1, 40, 4, 7, CAIRN_E_CORRUPT},
        {"record cd offset", 1, 48, 4, 0x7ffffff, CAIRN_E_CORRUPT},
        {"end record disagrees", 2, 10, 2, 3, CAIRN_E_CORRUPT},
        {"extra too short", 3, 46 + 11 + 2, 2, 8, CAIRN_E_CORRUPT},
        {"extra overruns", 3, 46 + 11 + 2, 2, 40, CAIRN_E_CORRUPT},
        {"extra size wrong", 3, 46 + 11 + 4, 4, 7, CAIRN_E_CORRUPT},
        {"extra offset wrong", 3, 46 + 11 + 20, 4, 7, CAIRN_E_CORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *b = malloc(n);
        memcpy(b, base, n);
        size_t at = (cases[i].where == 0 ? loc : cases[i].where == 1 ? rec
                     : cases[i].where == 2 ? n - 22 : cd) + cases[i].off;
        put(b + at, cases[i].width, (uint32_t)cases[i].v);
        cairn_status st = try_mem(b, n, DEF, &err);
        CHECK_ST(st, cases[i].want);
        if (st != cases[i].want || getenv("CAIRN_TEST_VERBOSE"))
            fprintf(stderr, "  %s: %d %s\n", cases[i].what, st, err.message);
        free(b);
    }
    free(base);
}

/* The inflate limit: max(max_inflate, min(100 x compressed, 4 x the file)). */
static void test_inflate_limit(void)
{
    mem_zip m;
    mz_start(&m);
    size_t big = 8u << 20;
    uint8_t *zeros = calloc(1, big);
    CHECK_OK(mz_add(&m, "zeros", zeros, big, 1, 1, 0));
    size_t n;
    uint8_t *b = mz_finish(&m, &n);
    cairn_error err = {0};
    CHECK(n < big / 500);
    CHECK_OK(try_mem(b, n, UINT64_MAX, &err));
    CHECK_OK(try_mem(b, n, big, &err));
    CHECK_ST(try_mem(b, n, big - 1, &err), CAIRN_E_LIMIT);
    CHECK(strstr(err.message, "member 'zeros'") && strstr(err.message, "max_inflate"));
    CHECK_ST(try_mem(b, n, 1, &err), CAIRN_E_LIMIT);
    free(b);
    free(zeros);
    /* Random bytes do not compress: any size passes the ratio test. */
    mz_start(&m);
    uint8_t *rnd = malloc(1u << 20);
    uint64_t seed = 5;
    for (size_t i = 0; i < (1u << 20); i++)
        rnd[i] = (uint8_t)tu_rand(&seed);
    CHECK_OK(mz_add(&m, "random", rnd, 1u << 20, 1, 1, 0));
    b = mz_finish(&m, &n);
    CHECK_OK(try_mem(b, n, 1, &err));
    free(b);
    free(rnd);
    /* A member within 100:1 but over 4 x the archive's size is refused
     * unless max_inflate allows it: the file's bytes set the budget. */
    mz_start(&m);
    uint8_t *sparse = calloc(1, big);
    seed = 9;
    for (size_t i = 0; i < big; i += 1 + (size_t)(tu_rand(&seed) % 64))
        sparse[i] = (uint8_t)tu_rand(&seed);
    CHECK_OK(mz_add(&m, "sparse", sparse, big, 1, 1, 0));
    b = mz_finish(&m, &n);
    CHECK(n * 100 > big && n * 4 < big);
    CHECK_ST(try_mem(b, n, 1, &err), CAIRN_E_LIMIT);
    CHECK(strstr(err.message, "member 'sparse'") && strstr(err.message, "max_inflate") &&
          strstr(err.message, "x the file's"));
    CHECK_OK(try_mem(b, n, big, &err));
    free(b);
    free(sparse);
}

static int acceptable(cairn_status st)
{
    return st == CAIRN_OK || st == CAIRN_E_CORRUPT || st == CAIRN_E_UNSUPPORTED ||
           st == CAIRN_E_LIMIT || st == CAIRN_E_CHECKSUM;
}

/* Every truncation fails; random damage fails cleanly or still reads. */
static void test_mutations(void)
{
    size_t n;
    uint8_t *base = base_archive(&n);
    cairn_error err = {0};
    int cases = 0;
    for (size_t len = 0; len < n; len++, cases++) {
        uint8_t *cut = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        memcpy(cut, base, len);
        CHECK_ST(try_mem(cut, len, DEF, &err), CAIRN_E_CORRUPT);
        free(cut);
    }
    uint64_t seed = 42;
    for (int round = 0; round < 20000; round++, cases++) {
        uint8_t *b = malloc(n);
        memcpy(b, base, n);
        int flips = 1 + (int)(tu_rand(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(tu_rand(&seed) % n);
            /* Bias towards the structures: the last 250 bytes hold the directory. */
            if (k == 0 && round % 2 == 0)
                at = n - 1 - (size_t)(tu_rand(&seed) % 250);
            b[at] = (uint8_t)tu_rand(&seed);
        }
        cairn_status st = try_mem(b, n, DEF, &err);
        CHECK(acceptable(st));
        if (!acceptable(st))
            fprintf(stderr, "  round %d: %d %s\n", round, st, err.message);
        free(b);
    }
    free(base);
    fprintf(stderr, "mutations: %d cases\n", cases);
}

int main(void)
{
    tmp = tu_tmpdir("test_zip");
    test_round_trips();
    test_writer_refusals();
    test_patches();
    test_duplicates();
    test_zip64();
    test_inflate_limit();
    test_mutations();
    test_python();
    tu_remove_tmpdir_if_passed(tmp);
    TEST_MAIN_END();
}
