/* fuzz_json.c -- libFuzzer target: opens arbitrary bytes in memory and reads
 * everything a caller could ask for, as a cairn JSON document (the strict
 * parser of src/format/json/ and the metadata through jansson). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_exercise(data, size, CAIRN_FORMAT_JSON, "w");
}
