/* mpi_ckpt_test.c -- the distributed checkpoint manager under crashes, a
 * full disk and a second writer.
 *
 *   run ROOT STEPS [async|resume]
 *                           saves every step (keep_last 2): "w" F32 [64, 33]
 *                           split by rows, "b" I32 [9, 40] by columns, the
 *                           replicated scalar "step"; contents depend on the
 *                           step, so a mix of two saves is detectable;
 *                           resume: first does what check does (so a kill
 *                           trial needs one job, not two);
 *   check ROOT              opens the manager (which removes dead staging
 *                           directories), resumes from the newest valid
 *                           checkpoint on this many ranks and checks every
 *                           element against its recorded step; prints it;
 *   listed ROOT             a read-only manager: prints the checkpoints'
 *                           numbers; fails if one listed is not valid;
 *   enospc ROOT BIG         ROOT on a small file system: one good save, then
 *                           one where rank 1's piece (BIG bytes) cannot fit:
 *                           every rank must get the error, nothing new may
 *                           be committed, and resume finds the first save;
 *   lock ROOT               a second manager on the directory is refused,
 *                           naming the holder's pid; after close it opens.
 */
#include <cairn_mpi.h>

#include "mpi_leak.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int me, size;

static float wval(uint64_t step, uint64_t i) { return (float)(step * 1000003u + i); }
static int32_t bval(uint64_t step, uint64_t i) { return (int32_t)(step * 7919u + i * 3u); }

static void split(uint64_t n, int parts, int p, uint64_t *lo, uint64_t *hi)
{
    *lo = n * (uint64_t)p / (uint64_t)parts;
    *hi = n * (uint64_t)(p + 1) / (uint64_t)parts;
}

static cairn_status add_state(cairn_mpi_save *s, uint64_t step, float *w, int32_t *b,
                              int64_t *st, cairn_error *err)
{
    uint64_t wd[2] = {64, 33}, bd[2] = {9, 40}, lo, hi;
    split(64, size, me, &lo, &hi);
    uint64_t wo[2] = {lo, 0}, we[2] = {hi - lo, 33};
    for (uint64_t i = 0; i < (hi - lo) * 33; i++)
        w[i] = wval(step, lo * 33 + i);
    cairn_status rc = cairn_mpi_save_add(s, "w", CAIRN_F32, 2, wd, wo, we, w, err);
    split(40, size, me, &lo, &hi);
    uint64_t bo[2] = {0, lo}, be[2] = {9, hi - lo};
    for (uint64_t r = 0; r < 9; r++)
        for (uint64_t c = lo; c < hi; c++)
            b[r * (hi - lo) + (c - lo)] = bval(step, r * 40 + c);
    if (rc == CAIRN_OK)
        rc = cairn_mpi_save_add(s, "b", CAIRN_I32, 2, bd, bo, be, b, err);
    *st = (int64_t)step;
    if (rc == CAIRN_OK)
        rc = cairn_mpi_save_add_replicated(s, "step", CAIRN_I64, 0, NULL, st, err);
    return rc;
}

static int staging_left(const char *root);
static int resume_check(cairn_mpi_ckpt *m, uint64_t *out_step);

static int do_run(const char *root, uint64_t steps, int async, int resume)
{
    /* resume: a run going on from the checkpoints of the run before it */
    cairn_mpi_ckpt_opts o = {.struct_size = sizeof o, .dirname = root, .keep_last = 2,
                             .flags = (async ? CAIRN_CKPT_ASYNC : 0) |
                                      (resume ? CAIRN_CKPT_PRUNE_EARLIER : 0)};
    cairn_mpi_ckpt *m;
    cairn_error err;
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: open: %s\n", me, err.message);
        return 1;
    }
    if (resume) {
        uint64_t step;
        int bad = me == 0 && staging_left(root);
        if (bad)
            fprintf(stderr, "staging directories survived the manager's open\n");
        bad += resume_check(m, &step);
        int any = 0;
        MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        if (any) {
            cairn_mpi_ckpt_close(m, &err);
            return 1;
        }
        fflush(stdout);
    }
    float w[64 * 33];
    int32_t b[9 * 40];
    int64_t st;
    for (uint64_t step = 1; step <= steps; step++) {
        cairn_mpi_save *s;
        if (cairn_mpi_ckpt_begin(m, step / 10, step, NULL, 0, &s, NULL, &err) != CAIRN_OK) {
            fprintf(stderr, "rank %d: begin: %s\n", me, err.message);
            return 1;
        }
        if (s && add_state(s, step, w, b, &st, &err) != CAIRN_OK)
            fprintf(stderr, "rank %d: add: %s\n", me, err.message);
        if (s && cairn_mpi_ckpt_commit(m, s, &err) != CAIRN_OK) {
            fprintf(stderr, "rank %d: commit: %s\n", me, err.message);
            return 1;
        }
        /* async: the buffers may change at once */
        memset(w, 0xff, sizeof w);
    }
    if (cairn_mpi_ckpt_close(m, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: close: %s\n", me, err.message);
        return 1;
    }
    return 0;
}

static int staging_left(const char *root)
{
    DIR *d = opendir(root);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".cairn-tmp-") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* Resumes and checks every element against the recorded step. */
static int resume_check(cairn_mpi_ckpt *m, uint64_t *out_step)
{
    cairn_file *f;
    cairn_mpi_ckpt_info info;
    size_t skipped;
    cairn_error err;
    if (cairn_mpi_ckpt_resume(m, &f, &info, &skipped, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: resume: %s\n", me, err.message);
        return 1;
    }
    int bad = 0;
    uint64_t idx, step = info.step, lo, hi;
    int64_t saved_step = -1;
    if (cairn_tensor_find(f, "step", &idx, NULL, &err) != CAIRN_OK ||
        cairn_tensor_read(f, idx, CAIRN_I64, &saved_step, 8, 0, &err) != CAIRN_OK ||
        saved_step != (int64_t)step)
        bad++;
    /* Loaded with another split than the save's: columns of w, rows of b. */
    split(33, size, me, &lo, &hi);
    uint64_t wo[2] = {0, lo}, we[2] = {64, hi - lo};
    float *w = malloc(64 * 33 * sizeof *w);
    if (cairn_tensor_find(f, "w", &idx, NULL, &err) != CAIRN_OK ||
        cairn_tensor_read_box(f, idx, wo, we, CAIRN_F32, w, 64 * (hi - lo) * 4, 0, &err) !=
            CAIRN_OK)
        bad++;
    else
        for (uint64_t r = 0; r < 64; r++)
            for (uint64_t c = lo; c < hi; c++)
                bad += w[r * (hi - lo) + c - lo] != wval(step, r * 33 + c);
    free(w);
    split(9, size, me, &lo, &hi);
    uint64_t bo[2] = {lo, 0}, be[2] = {hi - lo, 40};
    int32_t b[9 * 40];
    if (cairn_tensor_find(f, "b", &idx, NULL, &err) != CAIRN_OK ||
        cairn_tensor_read_box(f, idx, bo, be, CAIRN_I32, b, (hi - lo) * 40 * 4, 0, &err) !=
            CAIRN_OK)
        bad++;
    else
        for (uint64_t i = 0; i < (hi - lo) * 40; i++)
            bad += b[i] != bval(step, lo * 40 + i);
    cairn_file_close(f);
    if (bad)
        fprintf(stderr, "rank %d: checkpoint %llu (step %llu): %d wrong values (%s)\n", me,
                (unsigned long long)info.seq, (unsigned long long)step, bad, err.message);
    if (me == 0)
        printf("resumed from checkpoint %llu, step %llu, %zu newer skipped\n",
               (unsigned long long)info.seq, (unsigned long long)step, skipped);
    *out_step = step;
    return bad != 0;
}

static cairn_mpi_ckpt *open_at(const char *root, unsigned flags)
{
    cairn_mpi_ckpt_opts o = {.struct_size = sizeof o, .dirname = root, .flags = flags};
    cairn_mpi_ckpt *m;
    cairn_error err;
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: open: %s\n", me, err.message);
        return NULL;
    }
    return m;
}

/* Prints the checkpoints' sequence numbers; fails if one is not valid. */
static int do_listed(const char *root)
{
    cairn_mpi_ckpt *m = open_at(root, CAIRN_CKPT_READ_ONLY);
    if (!m)
        return 1;
    int bad = 0;
    for (size_t i = 0; i < cairn_mpi_ckpt_count(m); i++) {
        cairn_mpi_ckpt_info info;
        cairn_mpi_ckpt_info_at(m, i, &info, NULL);
        if (me == 0)
            printf("%s%llu", i ? " " : "listed: ", (unsigned long long)info.seq);
        if (!info.valid) {
            fprintf(stderr, "rank %d: %s is listed but not valid\n", me, info.path);
            bad++;
        }
    }
    if (me == 0)
        printf("\n");
    cairn_mpi_ckpt_close(m, NULL);
    return bad;
}

static int do_check(const char *root)
{
    cairn_mpi_ckpt *m = open_at(root, 0);
    cairn_error err;
    if (!m)
        return 1;
    int bad = 0;
    if (me == 0 && staging_left(root)) {
        fprintf(stderr, "staging directories survived the manager's open\n");
        bad++;
    }
    uint64_t step;
    bad += resume_check(m, &step);
    cairn_mpi_ckpt_close(m, &err);
    return bad;
}

static int do_enospc(const char *root, uint64_t big)
{
    cairn_mpi_ckpt_opts o = {.struct_size = sizeof o, .dirname = root};
    cairn_mpi_ckpt *m;
    cairn_error err;
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m, &err) != CAIRN_OK)
        return fprintf(stderr, "rank %d: open: %s\n", me, err.message), 1;
    float w[64 * 33];
    int32_t b[9 * 40];
    int64_t stv;
    cairn_mpi_save *s;
    int bad = 0;
    cairn_status st = cairn_mpi_ckpt_begin(m, 0, 1, NULL, CAIRN_STEP_FORCE, &s, NULL, &err);
    if (st == CAIRN_OK)
        st = add_state(s, 1, w, b, &stv, &err);
    if (st == CAIRN_OK)
        st = cairn_mpi_ckpt_commit(m, s, &err);
    if (st != CAIRN_OK)
        return fprintf(stderr, "rank %d: first save: %s\n", me, err.message), 1;
    /* The second save: rank 1 holds a piece the file system cannot take. */
    uint8_t *pad = calloc(1, big);
    for (uint64_t i = 0; i < big; i++)
        pad[i] = (uint8_t)(i * 2654435761u >> 13); /* incompressible */
    st = cairn_mpi_ckpt_begin(m, 0, 2, NULL, CAIRN_STEP_FORCE, &s, NULL, &err);
    if (st == CAIRN_OK)
        st = add_state(s, 2, w, b, &stv, &err);
    /* "pad": one box, all on rank 1; the other ranks' boxes are empty. */
    uint64_t dims[1] = {big}, off[1] = {0}, ext[1] = {me == 1 ? big : 0};
    if (st == CAIRN_OK)
        st = cairn_mpi_save_add(s, "pad", CAIRN_U8, 1, dims, off, ext, pad, &err);
    if (st == CAIRN_OK)
        st = cairn_mpi_ckpt_commit(m, s, &err);
    free(pad);
    if (st == CAIRN_OK) {
        fprintf(stderr, "rank %d: the save that cannot fit succeeded\n", me);
        bad++;
    } else if (me == 0) {
        printf("every rank: %s: %s\n", cairn_strerror(st), err.message);
    }
    if (!strstr(err.message, "rank 1")) {
        fprintf(stderr, "rank %d: the error does not name rank 1: %s\n", me, err.message);
        bad++;
    }
    if (me == 0 && staging_left(root)) {
        fprintf(stderr, "a staging directory survived the failed save\n");
        bad++;
    }
    if (cairn_mpi_ckpt_count(m) != 1) {
        fprintf(stderr, "rank %d: %zu checkpoints after the failed save, expected 1\n", me,
                cairn_mpi_ckpt_count(m));
        bad++;
    }
    uint64_t step = 0;
    bad += resume_check(m, &step);
    if (step != 1) {
        fprintf(stderr, "rank %d: resumed from step %llu, expected 1\n", me,
                (unsigned long long)step);
        bad++;
    }
    cairn_mpi_ckpt_close(m, &err);
    return bad;
}

static int do_lock(const char *root)
{
    cairn_mpi_ckpt_opts o = {.struct_size = sizeof o, .dirname = root};
    cairn_mpi_ckpt *m1, *m2;
    cairn_error err;
    int bad = 0;
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m1, &err) != CAIRN_OK)
        return fprintf(stderr, "open: %s\n", err.message), 1;
    cairn_status st = cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m2, &err);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    if (st != CAIRN_E_STATE || (me == 0 && !strstr(err.message, pid))) {
        fprintf(stderr, "rank %d: a second writer was not refused with the holder's pid "
                "(status %d: %s)\n", me, (int)st, err.message);
        bad++;
    } else if (me == 0) {
        printf("second writer refused: %s\n", err.message);
    }
    cairn_mpi_ckpt_close(m1, &err);
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m2, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: open after close: %s\n", me, err.message);
        bad++;
    } else {
        cairn_mpi_ckpt_close(m2, &err);
    }
    return bad;
}

int main(int argc, char **argv)
{
    mpi_test_begin(&argc, &argv, &me, &size);
    int bad = 1;
    if (argc >= 4 && !strcmp(argv[1], "run"))
        bad = do_run(argv[2], strtoull(argv[3], NULL, 10), argc > 4 && !strcmp(argv[4], "async"),
                     argc > 4 && !strcmp(argv[4], "resume"));
    else if (argc >= 3 && !strcmp(argv[1], "check"))
        bad = do_check(argv[2]);
    else if (argc >= 3 && !strcmp(argv[1], "listed"))
        bad = do_listed(argv[2]);
    else if (argc >= 4 && !strcmp(argv[1], "enospc"))
        bad = do_enospc(argv[2], strtoull(argv[3], NULL, 10));
    else if (argc >= 3 && !strcmp(argv[1], "lock"))
        bad = do_lock(argv[2]);
    else if (me == 0)
        fprintf(stderr, "usage: mpi_ckpt_test run ROOT STEPS [async|resume] | check ROOT | listed ROOT | "
                "enospc ROOT BIG | lock ROOT\n");
    return mpi_test_end(bad);
}
