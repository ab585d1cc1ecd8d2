/* diff_values.h -- element-wise comparison of two same-dtype, same-shape tensors, for `cairn diff`. */
#ifndef CAIRN_TOOLS_DIFF_VALUES_H
#define CAIRN_TOOLS_DIFF_VALUES_H

#include <cairn.h>

#include <stdint.h>

/* How elements are matched. Bitwise (numeric == 0): equal when their stored
 * bytes are equal, so -0.0 != 0.0 and NaNs are equal only with the same bits.
 * Numeric (numeric != 0, numpy.isclose style): equal when a == b (so -0.0 ==
 * 0.0, Inf == Inf), when both are NaN, or when |a-b| <= atol + rtol*|b|;
 * integers are compared exactly against that bound. */
typedef struct diff_tolerance {
    int numeric;
    double atol, rtol; /* finite, >= 0 */
} diff_tolerance;

typedef struct diff_stats {
    uint64_t count;        /* elements compared */
    uint64_t differing;    /* elements that are not equal (see diff_tolerance) */
    uint64_t nan_mismatch; /* of those, how many have a NaN on either side */
    /* Over every element pair where neither side is NaN (0 when none):
     * max |a-b|, and max |a-b|/|b|, where b == 0 gives inf if a != 0 (and 0
     * if a == 0) and an infinite |a-b| gives inf. Complex numbers use the
     * modulus. */
    double max_abs, max_rel;
    int is_integer;       /* integer or BOOL dtype: max_abs_int is exact */
    uint64_t max_abs_int; /* |a-b| of integers, exact even for U64 0 vs 2^64-1 */
} diff_stats;

/* Whether two tensors have the same dtype, rank and dims. */
int diff_same_dtype_shape(const cairn_tensor_info *a, const cairn_tensor_info *b);

/* Compares tensor `ia` of `fa` with tensor `ib` of `fb`; both infos must
 * have the same dtype and shape (CAIRN_E_ARG otherwise). Reads zero-copy
 * views where the file allows; a tensor of more than 16 MiB that
 * cairn_tensor_read_range reads a range at a time (cairn_tensor_ranged:
 * HDF5 datasets, compressed native tensors, files read with pread) in
 * 4 MiB windows, its checksum checked in a pass of its own first; any
 * other the whole stored tensor. Slices of 64Ki elements are converted to
 * a wide type, so memory stays bounded by the stored tensors read whole
 * (at most 16 MiB each when ranged reads serve) plus ~10 MiB. Checksums of
 * whole reads are checked in the same pass: a
 * tensor whose checksum fails is still compared (the stats show where a
 * damaged copy differs), and when no element differs the checksum's
 * failure is returned, so a stale checksum never reads as identical. */
cairn_status diff_values(const cairn_file *fa, uint64_t ia, const cairn_tensor_info *ta,
                         const cairn_file *fb, uint64_t ib, const cairn_tensor_info *tb,
                         const diff_tolerance *tol, diff_stats *out, cairn_error *err);

#endif
