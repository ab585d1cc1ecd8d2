/* model_internal.h -- what the checkpoint manager needs of model.c. */
#ifndef CAIRN_MODEL_INTERNAL_H
#define CAIRN_MODEL_INTERNAL_H

#include "common/internal.h"

/* cairn_model_write, plus one more metadata entry `key` -> a copy of `value`
 * (the checkpoint manager's own record). key NULL = nothing more. */
cairn_status cairn__model_write_tagged(cairn_writer *w, const cairn_model_parts *parts,
                                       const char *key, const cairn_value *value,
                                       cairn_error *err);

#endif
