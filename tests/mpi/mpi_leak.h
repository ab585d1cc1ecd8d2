/* mpi_leak.h -- a leak check for MPI test programs in sanitizer builds:
 * called just before MPI_Finalize, while OpenMPI's own memory is still
 * reachable (LeakSanitizer reports only unreachable blocks), so what it
 * finds is the program's or cairn's. At exit OpenMPI's unloaded plugins
 * would drown it (tests/mpi/lib.bash turns the exit check off). Without a
 * sanitizer the weak symbol is absent and this returns 0. */
#ifndef CAIRN_MPI_LEAK_H
#define CAIRN_MPI_LEAK_H

int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static inline int mpi_leaks(void)
{
    return __lsan_do_recoverable_leak_check ? __lsan_do_recoverable_leak_check() != 0 : 0;
}

#endif
