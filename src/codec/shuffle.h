/*
 * shuffle.h -- the byte-shuffle filter of docs/FORMAT.md §4.1: the bytes of
 * `size` bytes of elements of `typesize` bytes are regrouped so that byte 0
 * of every element comes first, then byte 1 of every element, and so on.
 * For trained weights this puts the sign/exponent bytes (few distinct
 * values) together, away from the near-random low mantissa bytes, which is
 * what lets a general-purpose codec find the redundancy.
 */
#ifndef CAIRN_SHUFFLE_H
#define CAIRN_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

/* src and dst must not overlap. A tail of size % typesize bytes (never
 * produced by cairn, whose chunks hold whole elements) is copied as is. */
void cairn__shuffle(const uint8_t *src, uint8_t *dst, size_t size, size_t typesize);
void cairn__unshuffle(const uint8_t *src, uint8_t *dst, size_t size, size_t typesize);

#endif
