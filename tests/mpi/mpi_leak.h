/* mpi_leak.h -- a leak check for MPI test programs in sanitizer builds:
 * called just before MPI_Finalize, while OpenMPI's own memory is still
 * reachable (LeakSanitizer reports only unreachable blocks), so what it
 * finds is the program's or cairn's. At exit OpenMPI's unloaded plugins
 * would drown it (tests/mpi/lib.bash turns the exit check off). Without a
 * sanitizer the weak symbol is absent and this returns 0. */
#ifndef CAIRN_MPI_LEAK_H
#define CAIRN_MPI_LEAK_H

#include <mpi.h>

int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static inline int mpi_leaks(void)
{
    return __lsan_do_recoverable_leak_check ? __lsan_do_recoverable_leak_check() != 0 : 0;
}

/* The start of a test program on every rank: MPI_Init, this rank, the size. */
static inline void mpi_test_begin(int *argc, char ***argv, int *me, int *size)
{
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, me);
    MPI_Comm_size(MPI_COMM_WORLD, size);
}

/* The end of a test program on every rank: the leak check, the sum of
 * every rank's failures, MPI_Finalize; the exit code. */
static inline int mpi_test_end(int bad)
{
    bad += mpi_leaks();
    int total = 0;
    MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    return total ? 1 : 0;
}

#endif
