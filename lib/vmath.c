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

/*
 * One row of the cell: zx, zh (4H), bias (4H), c (H) in/out, h (H) out.
 * has_h and relu are compile-time constants at every call site, so each
 * combination becomes its own branch-free vector loop.
 */
/* The cell's sigmoid and tanh: as ad_vm_sigmoid/ad_vm_tanh, with the
 * cheaper exp (results below FLT_MIN become ~1e-38 instead of subnormals,
 * which no gate can tell apart; measured 24% off the cell's time). */
AD_INLINE float cell_sigmoid(float x)
{
    float e = ad_vm_exp_neg_fast(-__builtin_fabsf(x));

    return ad_vm_sel(x < 0.0f, e, 1.0f) / (1.0f + e);
}

AD_INLINE float cell_tanh(float x)
{
    float ax = __builtin_fabsf(x);
    float z = x * x;
    float p, e, l;

    p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    p = p * z * x + x;
    e = ad_vm_exp_neg_fast(-2.0f * ax);
    l = (1.0f - e) / (1.0f + e);
    return __builtin_copysignf(ad_vm_sel(ax < 0.625f, p, l), x);
}

AD_INLINE void cell_row(const float *restrict zx, const float *restrict zh,
                        const float *restrict bias, float *restrict c,
                        float *restrict h, int H, const int has_h,
                        const int relu)
{
    const float *restrict bi = bias, *restrict bf = bias + H;
    const float *restrict bg = bias + 2 * H, *restrict bo = bias + 3 * H;
    int j;

    for (j = 0; j < H; j++) {
        float zi = zx[j] + bi[j], zf = zx[H + j] + bf[j];
        float zg = zx[2 * H + j] + bg[j], zo = zx[3 * H + j] + bo[j];
        float i, f, g, o, cc;

        if (has_h) {
            zi += zh[j];
            zf += zh[H + j];
            zg += zh[2 * H + j];
            zo += zh[3 * H + j];
        }
        i = cell_sigmoid(zi);
        f = cell_sigmoid(zf);
        o = cell_sigmoid(zo);
        g = relu ? ad_vm_relu(zg) : cell_tanh(zg);
        cc = f * c[j] + i * g;
        c[j] = cc;
        h[j] = o * (relu ? ad_vm_relu(cc) : cell_tanh(cc));
    }
}

AD_VEC_FN
void ad_lstm_cell(const float *zx, const float *zh, const float *bias,
                  float *c, float *h, int B, int H, int relu)
{
    size_t H4 = 4 * (size_t)H, Hs = (size_t)H, o4, o1;
    int b;

    for (b = 0; b < B; b++) {
        o4 = (size_t)b * H4;
        o1 = (size_t)b * Hs;
        if (zh != NULL && relu)
            cell_row(zx + o4, zh + o4, bias, c + o1, h + o1, H, 1, 1);
        else if (zh != NULL)
            cell_row(zx + o4, zh + o4, bias, c + o1, h + o1, H, 1, 0);
        else if (relu)
            cell_row(zx + o4, NULL, bias, c + o1, h + o1, H, 0, 1);
        else
            cell_row(zx + o4, NULL, bias, c + o1, h + o1, H, 0, 0);
    }
}

AD_VEC_FN
void ad_small_matmul(const float *x, size_t rows, int d, const float *W,
                     size_t n, float *y, int accumulate)
{
    size_t r, j;
    int k;

    for (r = 0; r < rows; r++) {
        const float *restrict xr = x + r * (size_t)d;
        float *restrict yr = y + r * n;

        k = 0;
        if (!accumulate) {  /* first term assigns: no zeroing pass */
            const float x0 = xr[0];

            for (j = 0; j < n; j++)
                yr[j] = x0 * W[j];
            k = 1;
        }
        for (; k < d; k++) {
            const float *restrict wk = W + (size_t)k * n;
            const float xk = xr[k];

            for (j = 0; j < n; j++)
                yr[j] += xk * wk[j];
        }
    }
}

void ad_fill_rows(float *y, const float *bias, size_t rows, size_t n)
{
    size_t r;

    for (r = 0; r < rows; r++)
        memcpy(y + r * n, bias, n * sizeof(float));
}
