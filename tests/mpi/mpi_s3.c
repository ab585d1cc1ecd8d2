/* mpi_s3.c -- distributed checkpoints on an object-store prefix (run by
 * tests/mpi/mpi_s3.sh under tests/s3_harness.py).
 *
 *   race PATH JOB START   saves a small checkpoint at PATH (the replicated
 *                         scalar "job" = JOB) once the clock reaches START
 *                         (Unix seconds, so two jobs commit at once);
 *                         prints "won" or "lost: MESSAGE" (rank 0); every
 *                         rank must return the same status, and a loser's
 *                         only allowed status is CAIRN_E_EXISTS;
 *   keys PREFIX           prints every key under PREFIX and its size (rank 0);
 *   rm URL                removes one object (rank 0). */
#include <cairn_mpi.h>

#include "mpi_leak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int me, size;

static int do_race(const char *path, int64_t job, double start)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wait = start - ((double)ts.tv_sec + ts.tv_nsec / 1e9);
    if (wait > 0 && wait < 30) {
        struct timespec d = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&d, NULL);
    }
    float w[16 * 33];
    uint64_t dims[2] = {16 * (uint64_t)size, 33}, off[2] = {16 * (uint64_t)me, 0},
             ext[2] = {16, 33};
    for (size_t i = 0; i < 16 * 33; i++)
        w[i] = (float)(job * 100000 + me * 1000) + (float)i;
    cairn_mpi_save *s;
    cairn_error err;
    cairn_status st = cairn_mpi_save_begin(MPI_COMM_WORLD, path, NULL, &s, &err);
    if (st == CAIRN_OK)
        cairn_mpi_save_add(s, "w", CAIRN_F32, 2, dims, off, ext, w, &err);
    if (st == CAIRN_OK)
        cairn_mpi_save_add_replicated(s, "job", CAIRN_I64, 0, NULL, &job, &err);
    if (st == CAIRN_OK)
        st = cairn_mpi_save_commit(s, &err);
    int mine = (int)st, lo, hi;
    MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
        fprintf(stderr, "rank %d: the ranks disagree (status %d)\n", me, mine);
        return 1;
    }
    if (me == 0) {
        if (st == CAIRN_OK)
            printf("job %lld won\n", (long long)job);
        else
            printf("job %lld lost: %s: %s\n", (long long)job, cairn_strerror(st), err.message);
    }
    return st != CAIRN_OK && st != CAIRN_E_EXISTS;
}

static int print_key(void *ctx, const char *name, uint64_t bytes)
{
    (void)ctx;
    printf("%s %llu\n", name, (unsigned long long)bytes);
    return 0;
}

static int do_keys(const char *prefix)
{
    cairn_error err;
    if (me == 0 && cairn_store_list(prefix, print_key, NULL, &err) != CAIRN_OK) {
        fprintf(stderr, "list %s: %s\n", prefix, err.message);
        return 1;
    }
    return 0;
}

static int do_rm(const char *url)
{
    cairn_error err;
    if (me == 0 && cairn_store_remove(url, &err) != CAIRN_OK) {
        fprintf(stderr, "rm %s: %s\n", url, err.message);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    mpi_test_begin(&argc, &argv, &me, &size);
    int bad = 1;
    if (argc == 5 && !strcmp(argv[1], "race"))
        bad = do_race(argv[2], strtoll(argv[3], NULL, 10), strtod(argv[4], NULL));
    else if (argc == 3 && !strcmp(argv[1], "keys"))
        bad = do_keys(argv[2]);
    else if (argc == 3 && !strcmp(argv[1], "rm"))
        bad = do_rm(argv[2]);
    else if (me == 0)
        fprintf(stderr, "usage: mpi_s3 race PATH JOB START | keys PREFIX | rm URL\n");
    return mpi_test_end(bad);
}
