/* optim.c -- torch.optim.SGD (momentum, no dampening, not Nesterov) and
 * torch.optim.Adam (not AMSGrad), written out for float32 buffers. Their
 * state is what a checkpoint must carry besides the parameters: without the
 * momentum buffers or Adam's moments and step count, a resumed run takes
 * different steps from the uninterrupted one. */
#include "mlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *optim_kind_name(optim_kind kind) { return kind == OPTIM_ADAM ? "adam" : "sgd"; }

int optim_kind_parse(const char *name, optim_kind *out)
{
    if (!strcmp(name, "sgd"))
        *out = OPTIM_SGD;
    else if (!strcmp(name, "adam"))
        *out = OPTIM_ADAM;
    else
        return 0;
    return 1;
}

/* Buffers per parameter: SGD keeps one, Adam two. */
static int buffers(const optim *o) { return o->kind == OPTIM_ADAM ? 2 : 1; }

void optim_free(optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < MLP_PARAMS; i++)
        for (int b = 0; b < 2; b++)
            free(o->buf[i][b]);
    *o = (optim){0};
}

cairn_status optim_init(optim *o, optim_kind kind, double lr, double momentum, const mlp *m,
                        cairn_error *err)
{
    /* PyTorch's defaults for everything the command line does not set. */
    *o = (optim){.kind = kind, .lr = lr, .momentum = momentum, .weight_decay = 0.0,
                 .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    for (int i = 0; i < MLP_PARAMS; i++) {
        o->param[i] = mlp_param_at(m, i);
        for (int b = 0; b < buffers(o); b++)
            if (!(o->buf[i][b] = calloc(o->param[i].count, sizeof(float)))) {
                optim_free(o);
                return fail(err, CAIRN_E_NOMEM, "out of memory for the optimizer state");
            }
    }
    return CAIRN_OK;
}

/* The gradient the update sees: L2 weight decay folded in, as torch does. */
static float decayed(const optim *o, const mlp_param *p, size_t k)
{
    return p->grad[k] + (float)o->weight_decay * p->data[k];
}

/* buf = momentum * buf + g (buf = g on the first step); p -= lr * buf. */
static void sgd_update(const optim *o, const mlp_param *p, float *buf)
{
    float lr = (float)o->lr, mu = (float)o->momentum;
    for (size_t k = 0; k < p->count; k++) {
        float g = decayed(o, p, k);
        if (mu != 0.0f) {
            buf[k] = o->step == 1 ? g : mu * buf[k] + g;
            g = buf[k];
        }
        p->data[k] -= lr * g;
    }
}

/* m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). The bias
 * corrections are computed in double, as torch does with Python floats. */
static void adam_update(const optim *o, const mlp_param *p, float *m, float *v)
{
    double t = (double)o->step;
    float step_size = (float)(o->lr / (1.0 - pow(o->beta1, t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(o->beta2, t));
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    for (size_t k = 0; k < p->count; k++) {
        float g = decayed(o, p, k);
        m[k] = b1 * m[k] + (1.0f - b1) * g;
        v[k] = b2 * v[k] + (1.0f - b2) * g * g;
        p->data[k] -= step_size * m[k] / (sqrtf(v[k]) / bc2_sqrt + eps);
    }
}

void optim_step(optim *o)
{
    o->step++;
    for (int i = 0; i < MLP_PARAMS; i++) {
        if (o->kind == OPTIM_ADAM)
            adam_update(o, &o->param[i], o->buf[i][0], o->buf[i][1]);
        else
            sgd_update(o, &o->param[i], o->buf[i][0]);
    }
}

cairn_status optim_register(const optim *o, cairn_params *set, cairn_error *err)
{
    static const char *const state_names[2][2] = {{"momentum_buffer", NULL},
                                                  {"exp_avg", "exp_avg_sq"}};
    const char *const *names = state_names[o->kind == OPTIM_ADAM];
    for (int i = 0; i < MLP_PARAMS; i++)
        for (int b = 0; b < buffers(o); b++) {
            const mlp_param *p = &o->param[i];
            char name[64];
            snprintf(name, sizeof name, "%s.%s", p->name, names[b]);
            cairn_status st =
                cairn_params_add(set, name, CAIRN_F32, p->rank, p->dims, o->buf[i][b], err);
            if (st != CAIRN_OK)
                return st;
        }
    return CAIRN_OK;
}
