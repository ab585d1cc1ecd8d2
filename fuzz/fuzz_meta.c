/* fuzz_meta.c -- libFuzzer target: the metadata decoder on hostile bytes, plus encode/decode/JSON consistency. */
#include "common/value_internal.h"

#include <stdlib.h>

/* The encoding is canonical: what decodes re-encodes to the same bytes,
 * except that extension values (tags 0x40-0x7F) shrink to a null and empty
 * input reads as an empty map. So a re-encoding of the same length must be
 * byte-identical, and a second round trip must change nothing. */
static void check_roundtrip(const uint8_t *data, size_t size, const cairn_value *tree)
{
    uint8_t *enc1 = NULL, *enc2 = NULL;
    size_t len1 = 0, len2 = 0;
    cairn_status st = cairn__meta_encode(tree, NULL, NULL, &enc1, &len1, NULL);
    if (st == CAIRN_E_NOMEM)
        return;
    if (st != CAIRN_OK)
        __builtin_trap();
    if (size > 0 && (len1 > size || (len1 == size && memcmp(enc1, data, size) != 0)))
        __builtin_trap();
    cairn_value *again = NULL;
    st = cairn__meta_decode(enc1, len1, "fuzz", 0, NULL, NULL, &again, NULL);
    if (st != CAIRN_OK && st != CAIRN_E_NOMEM)
        __builtin_trap();
    if (st == CAIRN_OK && cairn__meta_encode(again, NULL, NULL, &enc2, &len2, NULL) == CAIRN_OK &&
        (len1 != len2 || memcmp(enc1, enc2, len1) != 0))
        __builtin_trap();
    free(enc1);
    free(enc2);
    cairn_value_free(again);
}

static void check_json(const cairn_value *tree, int indent)
{
    char *json = NULL;
    cairn_status st = cairn_value_to_json(tree, indent, &json, NULL);
    if (st != CAIRN_OK && st != CAIRN_E_NOMEM)
        __builtin_trap();
    if (st == CAIRN_OK && (!json || json[0] != '{'))
        __builtin_trap();
    cairn_free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_value *tree = NULL;
    cairn_error err;
    cairn_status st = cairn__meta_decode(data, size, "fuzz", 0, NULL, NULL, &tree, &err);
    if (st != CAIRN_OK) {
        /* Errors are clean: a known status, a message, nothing returned. */
        if (tree || err.status != st || err.message[0] == '\0' ||
            (st != CAIRN_E_CORRUPT && st != CAIRN_E_LIMIT && st != CAIRN_E_NOMEM))
            __builtin_trap();
        return 0;
    }
    check_roundtrip(data, size, tree);
    check_json(tree, size & 1 ? 2 : 0);
    cairn_value *copy = cairn_value_clone(tree);
    cairn_value_free(copy);
    cairn_value_free(tree);
    return 0;
}
