/*
 * vmath.c - vectorised elementwise math for the inference engine and the
 * trainer: exp, sigmoid, tanh, relu over float arrays, and the fused LSTM
 * cell (all gate nonlinearities plus the c/h update in one pass per step).
 *
 * The arithmetic is in vmath.h (inline, branch-free Cephes polynomials);
 * here are the loops, each compiled for AVX-512, AVX2+FMA and baseline
 * x86-64 (AD_VEC_FN) and picked at load time, so one portable binary runs
 * the widest vectors the CPU has. Accuracy: a few ulp against libm (tests/
 * test_engine.c sweeps [-100, 100]); NaN in -> NaN out everywhere, which the
 * daemon relies on to flag broken inputs or models.
 */
#include "engine.h"
#include "vmath.h"

AD_VEC_FN
void ad_vexp(float *x, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        x[i] = ad_vm_exp(x[i]);
}

AD_VEC_FN
void ad_vsigmoid(float *x, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        x[i] = ad_vm_sigmoid(x[i]);
}

AD_VEC_FN
void ad_vtanh(float *x, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        x[i] = ad_vm_tanh(x[i]);
}

AD_VEC_FN
void ad_vrelu(float *x, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        x[i] = ad_vm_relu(x[i]);
}

/* One row of the cell, tanh activation: z (4H), c (H) in/out, h (H) out. */
AD_INLINE void cell_row_tanh(const float *restrict z, float *restrict c,
                             float *restrict h, int H)
{
    int j;

    for (j = 0; j < H; j++) {
        float i = ad_vm_sigmoid(z[j]);
        float f = ad_vm_sigmoid(z[H + j]);
        float g = ad_vm_tanh(z[2 * H + j]);
        float o = ad_vm_sigmoid(z[3 * H + j]);
        float cc = f * c[j] + i * g;

        c[j] = cc;
        h[j] = o * ad_vm_tanh(cc);
    }
}

AD_INLINE void cell_row_relu(const float *restrict z, float *restrict c,
                             float *restrict h, int H)
{
    int j;

    for (j = 0; j < H; j++) {
        float i = ad_vm_sigmoid(z[j]);
        float f = ad_vm_sigmoid(z[H + j]);
        float g = ad_vm_relu(z[2 * H + j]);
        float o = ad_vm_sigmoid(z[3 * H + j]);
        float cc = f * c[j] + i * g;

        c[j] = cc;
        h[j] = o * ad_vm_relu(cc);
    }
}

AD_VEC_FN
void ad_lstm_cell(const float *z, float *c, float *h, int B, int H, int relu)
{
    size_t H4 = 4 * (size_t)H, Hs = (size_t)H;
    int b;

    if (relu) {
        for (b = 0; b < B; b++)
            cell_row_relu(z + b * H4, c + b * Hs, h + b * Hs, H);
    } else {
        for (b = 0; b < B; b++)
            cell_row_tanh(z + b * H4, c + b * Hs, h + b * Hs, H);
    }
}

void ad_fill_rows(float *y, const float *bias, size_t rows, size_t n)
{
    size_t r;

    for (r = 0; r < rows; r++)
        memcpy(y + r * n, bias, n * sizeof(float));
}
