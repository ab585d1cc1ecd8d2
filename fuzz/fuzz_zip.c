/* fuzz_zip.c -- libFuzzer target: the ZIP reader (zip.h) alone: opens
 * arbitrary bytes as an archive, looks every member up by name, reads each
 * whole with its CRC checked, reads a slice from its middle, and verifies. */
#include "container/zip.h"

#include <stdint.h>
#include <stdlib.h>

/* Members are read only up to this size (inputs are a few KiB, so only a
 * lying size gets near it); inflating is limited the same way. */
#define LIMIT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_member(const cairn__source *f, const cairn__zip *z, const cairn__zip_member *m)
{
    if (cairn__zip_find(z, m->name, m->name_len) != m)
        __builtin_trap(); /* names are unique: lookup finds the member itself */
    if (m->size > LIMIT)
        return;
    uint8_t *buf = malloc(m->size ? (size_t)m->size : 1);
    if (!buf)
        return;
    cairn__zip_read(f, m, 0, buf, (size_t)m->size, CAIRN__ZIP_CHECK, NULL);
    if (m->size > 2)
        cairn__zip_read(f, m, m->size / 2, buf, (size_t)(m->size - m->size / 2), 0, NULL);
    free(buf);
    cairn__zip_verify(f, m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t empty[1];
    cairn__source f;
    memset(&f, 0, sizeof f);
    f.path = "<fuzz>";
    f.fd = -1;
    f.base = size ? data : empty;
    f.size = size;
    cairn__zip z;
    if (cairn__zip_open(&f, LIMIT, &z, NULL) != CAIRN_OK)
        return 0;
    for (uint64_t i = 0; i < z.count; i++)
        read_member(&f, &z, &z.members[i]);
    cairn__zip_find(&z, "data.pkl", 8);
    cairn__zip_close(&z);
    cairn__zip_kind kind;
    cairn__zip_sniff(&f, &kind, NULL);
    return 0;
}
