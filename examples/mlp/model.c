/* model.c -- the network, forward and backward, in float32 like PyTorch's
 * default. Every loop runs in a fixed order, so the same inputs, parameters
 * and generator state give the same bits, run after run: that is what lets a
 * resumed run match an uninterrupted one exactly. */
#include "mlp.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Positions of the three Linear layers in the nn.Sequential. */
static const char *const module_index[MLP_LAYERS] = {"0", "3", "4"};

static float *floats(size_t count) { return calloc(count ? count : 1, sizeof(float)); }

/* PyTorch's Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) for the
 * weight and U(-1/sqrt(in), 1/sqrt(in)) for the bias, which work out to the
 * same bound. Weight first (row-major), then bias. */
static void linear_reset(linear *l, rng *r)
{
    double bound = 1.0 / sqrt((double)l->in);
    for (size_t i = 0; i < (size_t)l->out * (size_t)l->in; i++)
        l->weight[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
    for (int o = 0; o < l->out; o++)
        l->bias[o] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

static int linear_alloc(linear *l, int in, int out)
{
    size_t nw = (size_t)in * (size_t)out;
    l->in = in;
    l->out = out;
    l->weight = floats(nw);
    l->grad_weight = floats(nw);
    l->bias = floats((size_t)out);
    l->grad_bias = floats((size_t)out);
    return l->weight && l->grad_weight && l->bias && l->grad_bias;
}

static void linear_free(linear *l)
{
    free(l->weight);
    free(l->grad_weight);
    free(l->bias);
    free(l->grad_bias);
}

void mlp_free(mlp *m)
{
    if (!m)
        return;
    for (int i = 0; i < MLP_LAYERS; i++)
        linear_free(&m->fc[i]);
    free(m->h1);
    free(m->keep);
    free(m->a1);
    free(m->h3);
    free(m->proba);
    free(m->g_h3);
    free(m->g_a1);
    free(m->g_z);
    *m = (mlp){0};
}

cairn_status mlp_init(mlp *m, int num_units, double dropout, int capacity, rng *r,
                      cairn_error *err)
{
    *m = (mlp){.num_units = num_units, .dropout = dropout, .capacity = capacity};
    const int in[MLP_LAYERS] = {MLP_IN, num_units, MLP_MID};
    const int out[MLP_LAYERS] = {num_units, MLP_MID, MLP_OUT};
    int ok = 1;
    for (int i = 0; i < MLP_LAYERS; i++)
        ok &= linear_alloc(&m->fc[i], in[i], out[i]);
    size_t hidden = (size_t)capacity * (size_t)num_units;
    m->h1 = floats(hidden);
    m->keep = floats(hidden);
    m->a1 = floats(hidden);
    m->g_a1 = floats(hidden);
    m->h3 = floats((size_t)capacity * MLP_MID);
    m->g_h3 = floats((size_t)capacity * MLP_MID);
    m->proba = floats((size_t)capacity * MLP_OUT);
    m->g_z = floats((size_t)capacity * MLP_OUT);
    if (!ok || !m->h1 || !m->keep || !m->a1 || !m->g_a1 || !m->h3 || !m->g_h3 || !m->proba ||
        !m->g_z) {
        mlp_free(m);
        return fail(err, CAIRN_E_NOMEM, "out of memory for a network with %d hidden units",
                    num_units);
    }
    for (int i = 0; i < MLP_LAYERS; i++)
        linear_reset(&m->fc[i], r);
    return CAIRN_OK;
}

mlp_param mlp_param_at(const mlp *m, int i)
{
    const linear *l = &m->fc[i / 2];
    int is_weight = i % 2 == 0;
    mlp_param p = {.rank = is_weight ? 2 : 1};
    snprintf(p.name, sizeof p.name, "%s.%s", module_index[i / 2], is_weight ? "weight" : "bias");
    p.dims[0] = (uint64_t)l->out;
    p.dims[1] = is_weight ? (uint64_t)l->in : 0;
    p.count = is_weight ? (size_t)l->out * (size_t)l->in : (size_t)l->out;
    p.data = is_weight ? l->weight : l->bias;
    p.grad = is_weight ? l->grad_weight : l->grad_bias;
    return p;
}

cairn_status mlp_register(const mlp *m, cairn_params *set, cairn_error *err)
{
    for (int i = 0; i < MLP_PARAMS; i++) {
        mlp_param p = mlp_param_at(m, i);
        cairn_status st = cairn_params_add(set, p.name, CAIRN_F32, p.rank, p.dims, p.data, err);
        if (st != CAIRN_OK)
            return st;
    }
    return CAIRN_OK;
}

/* ----------------------------------------------------------------- forward */

/* out = in W^T + b, for `rows` rows. */
static void linear_forward(const linear *l, const float *in, int rows, float *out)
{
    for (int r = 0; r < rows; r++) {
        const float *x = in + (size_t)r * l->in;
        for (int o = 0; o < l->out; o++) {
            const float *w = l->weight + (size_t)o * l->in;
            float s = 0.0f;
            for (int i = 0; i < l->in; i++)
                s += x[i] * w[i];
            out[(size_t)r * l->out + o] = s + l->bias[o];
        }
    }
}

/* Row-wise softmax in place, shifted by the row maximum so expf cannot overflow. */
static void softmax(float *z, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        float *row = z + (size_t)r * cols, max = row[0], sum = 0.0f;
        for (int j = 1; j < cols; j++)
            max = row[j] > max ? row[j] : max;
        for (int j = 0; j < cols; j++) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        for (int j = 0; j < cols; j++)
            row[j] /= sum;
    }
}

void mlp_forward(mlp *m, const float *x, int rows, rng *dropout)
{
    size_t hidden = (size_t)rows * (size_t)m->num_units;
    /* Inverted dropout, like nn.Dropout: the kept units are scaled up during
     * training so eval mode needs no rescaling. */
    float scale = (float)(1.0 / (1.0 - m->dropout));
    linear_forward(&m->fc[0], x, rows, m->h1);
    for (size_t k = 0; k < hidden; k++) {
        float relu = m->h1[k] > 0.0f ? m->h1[k] : 0.0f;
        m->keep[k] = !dropout ? 1.0f : rng_uniform(dropout) < m->dropout ? 0.0f : scale;
        m->a1[k] = relu * m->keep[k];
    }
    linear_forward(&m->fc[1], m->a1, rows, m->h3);
    linear_forward(&m->fc[2], m->h3, rows, m->proba);
    softmax(m->proba, rows, MLP_OUT);
}

/* skorch feeds a softmax output to NLLLoss as log(p + eps), eps being the
 * float32 machine epsilon, so that a probability of 0 gives a finite loss. */
double mlp_loss(const mlp *m, const int32_t *y, int rows)
{
    double sum = 0.0;
    for (int r = 0; r < rows; r++)
        sum -= logf(m->proba[(size_t)r * MLP_OUT + y[r]] + FLT_EPSILON);
    return sum / rows;
}

/* torch.argmax: the first class with the highest probability. */
int mlp_predicted_class(const mlp *m, int row)
{
    const float *p = m->proba + (size_t)row * MLP_OUT;
    int best = 0;
    for (int j = 1; j < MLP_OUT; j++)
        if (p[j] > p[best])
            best = j;
    return best;
}

/* ---------------------------------------------------------------- backward */

/* Given g_out = dL/d(out), sets the layer's parameter gradients and, if g_in
 * is not NULL, dL/d(in). */
static void linear_backward(linear *l, const float *in, const float *g_out, int rows, float *g_in)
{
    for (int o = 0; o < l->out; o++) {
        float gb = 0.0f;
        for (int r = 0; r < rows; r++)
            gb += g_out[(size_t)r * l->out + o];
        l->grad_bias[o] = gb;
        for (int i = 0; i < l->in; i++) {
            float gw = 0.0f;
            for (int r = 0; r < rows; r++)
                gw += g_out[(size_t)r * l->out + o] * in[(size_t)r * l->in + i];
            l->grad_weight[(size_t)o * l->in + i] = gw;
        }
    }
    if (!g_in)
        return;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < l->in; i++) {
            float g = 0.0f;
            for (int o = 0; o < l->out; o++)
                g += g_out[(size_t)r * l->out + o] * l->weight[(size_t)o * l->in + i];
            g_in[(size_t)r * l->in + i] = g;
        }
}

void mlp_backward(mlp *m, const float *x, const int32_t *y, int rows)
{
    /* Softmax and the loss -mean(log(p_y + eps)) together: the gradient with
     * respect to the logits is (p - onehot(y)) * p_y / (p_y + eps) / rows. */
    for (int r = 0; r < rows; r++) {
        const float *p = m->proba + (size_t)r * MLP_OUT;
        float py = p[y[r]], k = py / (py + FLT_EPSILON) / (float)rows;
        for (int j = 0; j < MLP_OUT; j++)
            m->g_z[(size_t)r * MLP_OUT + j] = k * (p[j] - (j == y[r] ? 1.0f : 0.0f));
    }
    linear_backward(&m->fc[2], m->h3, m->g_z, rows, m->g_h3);
    linear_backward(&m->fc[1], m->a1, m->g_h3, rows, m->g_a1);
    /* Back through dropout (the same mask) and ReLU (open where h1 > 0). */
    for (size_t k = 0; k < (size_t)rows * (size_t)m->num_units; k++)
        m->g_a1[k] = m->h1[k] > 0.0f ? m->g_a1[k] * m->keep[k] : 0.0f;
    linear_backward(&m->fc[0], x, m->g_a1, rows, NULL);
}
