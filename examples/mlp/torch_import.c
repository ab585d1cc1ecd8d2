/* torch_import.c -- a PyTorch/skorch state_dict (.pt) into the C model, and
 * predictions for rows read from an .npy file: the bridge that lets a model
 * trained in skorch run here, with no Python and no pickle executed.
 *
 * The .pt is read by libcairn's restricted pickle reader; skorch's
 * net.save_params(f_params=...) writes module_.state_dict(), whose names are
 * the nn.Sequential indices this model already uses ("0.weight", ...). */
#include "mlp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* The hidden width from "0.weight" ([num_units, 10]); the strict load
 * checks every other shape against the network built from it. */
static cairn_status units_from_shapes(const char *path, const cairn_file *f, int *units,
                                      cairn_error *err)
{
    static const char *const names[] = {"0.weight", "module.0.weight"};
    cairn_tensor_info ti;
    cairn_status st = CAIRN_E_NOT_FOUND;
    for (size_t i = 0; i < 2 && st == CAIRN_E_NOT_FOUND; i++)
        st = cairn_tensor_find(f, names[i], NULL, &ti, NULL);
    if (st != CAIRN_OK)
        return fail(err, CAIRN_E_MISMATCH, "%s: no tensor '0.weight': not a state_dict of "
                    "Sequential(Linear(10, U), ReLU, Dropout, Linear(U, 10), Linear(10, 2), "
                    "Softmax)", path);
    if (ti.rank != 2 || ti.dims[1] != MLP_IN || ti.dims[0] < 1 || ti.dims[0] > MLP_MAX_UNITS)
        return fail(err, CAIRN_E_MISMATCH, "%s: '0.weight' has shape [%" PRIu64 ", %" PRIu64
                    "]%s; this model wants [U, %d] with 1 <= U <= %d", path, ti.dims[0],
                    ti.dims[1], ti.rank == 2 ? "" : " (or another rank)", MLP_IN,
                    MLP_MAX_UNITS);
    *units = (int)ti.dims[0];
    return CAIRN_OK;
}

cairn_status torch_load(const train_config *cfg, const char *path, trainer **out,
                        cairn_error *err)
{
    *out = NULL;
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open(path, NULL, &f, err);
    train_config c = *cfg;
    if (st == CAIRN_OK)
        st = units_from_shapes(path, f, &c.num_units, err);
    if (st == CAIRN_OK)
        st = trainer_new(&c, out, err);
    if (st == CAIRN_OK) {
        /* Strict: all six tensors, with this network's shapes. Converting
         * lets a float64 or float16 state_dict in; DataParallel's "module."
         * prefix is dropped. */
        cairn_load_opts opts = {.struct_size = sizeof opts,
                                .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_CONVERT,
                                .strip_prefix = "module."};
        st = cairn_params_load((*out)->params, f, &opts, NULL, err);
    }
    cairn_file_close(f);
    if (st != CAIRN_OK) {
        trainer_free(*out);
        *out = NULL;
    }
    return st;
}

/* The rows of X: a [rows, 10] array (or one row of 10) as float32. */
static cairn_status read_rows(const char *path, float **x, int *rows, cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_tensor_info ti;
    cairn_status st = cairn_file_open(path, NULL, &f, err);
    if (st != CAIRN_OK)
        return st;
    st = cairn_file_count(f) == 1 ? cairn_tensor_info_at(f, 0, &ti, err)
                      : fail(err, CAIRN_E_MISMATCH, "%s: holds %" PRIu64 " arrays, not one",
                             path, cairn_file_count(f));
    uint64_t n = st != CAIRN_OK ? 0 : ti.rank == 2 ? ti.dims[0] : 1;
    int shaped = st == CAIRN_OK && ((ti.rank == 2 && ti.dims[1] == MLP_IN) ||
                                    (ti.rank == 1 && ti.dims[0] == MLP_IN));
    if (st == CAIRN_OK && (!shaped || n > INT32_MAX))
        st = fail(err, CAIRN_E_MISMATCH, "%s: want rows of %d features ([rows, %d]), got "
                  "rank %u, first dimension %" PRIu64, path, MLP_IN, MLP_IN, ti.rank,
                  ti.dims[0]);
    *x = st == CAIRN_OK ? malloc(n ? (size_t)n * MLP_IN * sizeof **x : 1) : NULL;
    if (st == CAIRN_OK && !*x)
        st = fail(err, CAIRN_E_NOMEM, "%s: out of memory for %" PRIu64 " rows", path, n);
    if (st == CAIRN_OK)
        st = cairn_tensor_read(f, 0, CAIRN_F32, *x, (size_t)n * MLP_IN * sizeof **x,
                               CAIRN_READ_VERIFY, err);
    cairn_file_close(f);
    if (st != CAIRN_OK) {
        free(*x);
        *x = NULL;
        return st;
    }
    *rows = (int)n;
    return CAIRN_OK;
}

cairn_status predict_npy(trainer *t, const char *path, cairn_error *err)
{
    float *x = NULL;
    int rows = 0;
    cairn_status st = read_rows(path, &x, &rows, err);
    if (st != CAIRN_OK)
        return st;
    /* In pieces of at most one batch (the network's activation buffers),
     * in eval mode: Dropout passes everything through. */
    for (int first = 0; first < rows; first += t->net.capacity) {
        int n = rows - first < t->net.capacity ? rows - first : t->net.capacity;
        mlp_forward(&t->net, x + (size_t)first * MLP_IN, n, NULL);
        for (int r = 0; r < n; r++) {
            const float *p = t->net.proba + (size_t)r * MLP_OUT;
            for (int j = 0; j < MLP_OUT; j++)
                printf(j ? " %.9g" : "%.9g", (double)p[j]);
            putchar('\n');
        }
    }
    free(x);
    return CAIRN_OK;
}
