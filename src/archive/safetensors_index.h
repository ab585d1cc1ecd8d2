/*
 * safetensors_index.h -- sharded safetensors models (docs/FORMAT.md §11.6):
 * a JSON index, {"metadata": {"total_size": N}, "weight_map": {tensor:
 * shard file}}, plus the shards it names, read as one archive.
 */
#ifndef CAIRN_SAFETENSORS_INDEX_H
#define CAIRN_SAFETENSORS_INDEX_H

#include "archive/archive.h"

/* The largest index read (real ones are a few hundred KiB). */
#define STX_MAX_INDEX (UINT64_C(64) << 20)
/* Leading JSON whitespace the sniff skips before it wants the '{'. */
#define STX_SNIFF_SPAN 4096
/* At most this many weight_map entries, as the native format's tensor limit. */
#define STX_MAX_TENSORS (UINT64_C(1) << 22)

/* Opens the shard `name` (a bare file name the index reader has checked:
 * no '/', no '\\', no leading '.') for the index `index`, as a safetensors
 * cairn_file the caller then owns. */
typedef cairn_status (*cairn__shard_open_fn)(void *ctx, const cairn_file *index, const char *name,
                                             cairn_file **out, cairn_error *err);

/* Whether the input is JSON text: its first byte that is not JSON whitespace
 * (within the first STX_SNIFF_SPAN bytes) is '{'. Format detection asks only
 * after every format with a magic number, and safetensors, had their turn. */
int cairn__stindex_sniff(const cairn_file *f);

/* For a sniffed input: sets f->ops to the index reader when the text is a
 * JSON object with a "weight_map" key (or, not parsing, at least holds the
 * token "weight_map", so the open reports where the JSON breaks). Otherwise
 * CAIRN_E_FORMAT saying why; a text over STX_MAX_INDEX is CAIRN_E_LIMIT. */
cairn_status cairn__stindex_detect(cairn_file *f, cairn_error *err);

/* The index reader's open with a chosen way to reach the shards (the reader's
 * own open passes one that opens files next to the index; the fuzzer passes
 * in-memory shards). `open_shard` NULL: an index that names any shard is
 * CAIRN_E_UNSUPPORTED. On failure f->state stays NULL. */
cairn_status cairn__stindex_open(cairn_file *f, cairn__shard_open_fn open_shard, void *ctx,
                                 cairn_error *err);

#endif /* CAIRN_SAFETENSORS_INDEX_H */
