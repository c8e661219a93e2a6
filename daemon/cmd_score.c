/*
 * cmd_score.c - `anomalyd score`: the engine end to end on a CSV file, and
 * `anomalyd info`: what a model file holds.
 *
 * score reads a CSV of samples (header naming the features; columns matched
 * to the model's feature names, extra columns ignored), scales every row with
 * the model's scaler, forms every full window with hop 1 and prints one line
 * per window: the 0-based index of its last data row and its reconstruction
 * error. This is how anyone can check the engine end to end, and compare it
 * with another implementation. With --normalize feature the error is the
 * detector's score.normalize "feature" score, its per-feature scales
 * learned on the first --scale-windows windows (as calibration would).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "args.h"
#include "cmd.h"
#include "csv.h"
#include "detector.h"
#include "engine.h"
#include "model.h"

/* Options of `score`; returns 0 to go on, or the exit status + 1. */
typedef struct score_opts {
    int metric, share, batch, normalize, scale_windows;
    char sep;
} score_opts;

static int score_args(int argc, char **argv, const char **model, const char **input,
                      score_opts *o)
{
    int *metric = &o->metric, *share = &o->share, *batch = &o->batch;
    char *sep = &o->sep;
    const ad_arg tab[] = {
        { "model", 'm', AD_ARG_STR, model, 0, 0, NULL, "FILE",
          "model file (.safetensors)", 0, NULL },
        { "input", 'i', AD_ARG_STR, input, 0, 0, NULL, "FILE",
          "CSV with a header row; columns are matched to the\nmodel's feature "
          "names, others are ignored", 0, NULL },
        { "metric", 0, AD_ARG_CHOICE, metric, 0, 0, "mse|mae|peak", "M",
          "mse, mae or peak (the worst row's mean\nabsolute error)", AD_ARG_DEF, NULL },
        { "share", 0, AD_ARG_FLAG, share, 0, 0, NULL, NULL,
          "also print each feature's share of the error", 0, NULL },
        { "normalize", 0, AD_ARG_CHOICE, &o->normalize, 0, 0, "none|feature|feature_rms", "N",
          "feature: the largest per-feature error over its\nmedian on the first "
          "--scale-windows windows\n(feature_rms: their root mean square;\nscore.normalize)",
          AD_ARG_DEF, NULL },
        { "scale-windows", 0, AD_ARG_INT, &o->scale_windows, 1, 100000000, NULL, "N",
          "--normalize feature: windows the scales are\nlearned on", AD_ARG_DEF, NULL },
        { "sep", 0, AD_ARG_SEP, sep, 0, 0, NULL, "C",
          "field separator (default: detected)", 0, NULL },
        { "batch", 0, AD_ARG_INT, batch, 1, 4096, NULL, "N",
          "windows per forward pass", AD_ARG_DEF, NULL },
        AD_ARG_END
    };
    int rc = ad_args_parse("score", tab, argc, argv, NULL, 0, NULL);

    if (rc == 1) {
        printf("usage: anomalyd score --model FILE --input FILE.csv [options]\n"
               "\n"
               "Prints one line per full window (hop 1): the 0-based index of the\n"
               "window's last data row and its reconstruction error.\n"
               "\n");
        ad_args_help(stdout, tab);
        return 1;
    }
    if (rc)
        return 3;
    if (!*model || !*input) {
        fprintf(stderr, "anomalyd score: --model and --input are required\n");
        return 3;
    }
    return 0;
}

static void print_line(const ad_model *m, size_t row, double s, const float *sh)
{
    printf("%zu %.9g", row, s);
    if (sh)
        for (int f = 0; f < m->n_features; f++)
            printf(" %s=%.4f", m->features[f], sh[f]);
    putchar('\n');
}

/* --normalize feature: every window's score and shares (n_win x (1 + F) in
 * kept) normalised with the scales of the first o->scale_windows, printed. */
static int print_normalized(const ad_model *m, const float *kept, size_t n_win,
                            const score_opts *o)
{
    const int F = m->n_features;
    size_t n = n_win < (size_t)o->scale_windows ? n_win : (size_t)o->scale_windows, i;
    float *e = malloc(n * (size_t)F * sizeof(float)), *ns = malloc((size_t)F * sizeof(float));
    double *scale = malloc((size_t)F * sizeof(double));
    int rc = -1;

    if (!e || !ns || !scale) {
        fprintf(stderr, "anomalyd score: out of memory\n");
        goto done;
    }
    for (i = 0; i < n; i++)
        for (int f = 0; f < F; f++)
            e[i * (size_t)F + (size_t)f] = (float)((double)kept[i * (size_t)(F + 1)] *
                                                   kept[i * (size_t)(F + 1) + 1 + (size_t)f] * F);
    if (ad_recon_scales(e, n, 0, n, F, scale) != 0) {
        fprintf(stderr, "anomalyd score: out of memory\n");
        goto done;
    }
    for (i = 0; i < n_win; i++) {
        const float *k = kept + i * (size_t)(F + 1);
        double s = ad_recon_normalize(k[0], k + 1, scale, F, o->normalize == AD_NORM_FEATURE_RMS,
                                      ns);
        print_line(m, i + (size_t)m->window - 1, s, o->share ? ns : NULL);
    }
    rc = 0;
done:
    free(e);
    free(ns);
    free(scale);
    return rc;
}

/* Score every window of t (hop 1) in batches and print one line each. */
static int score_windows(const ad_model *m, const ad_table *t, const score_opts *o)
{
    const int T = m->window, F = m->n_features, metric = o->metric, norm = o->normalize;
    const size_t win = (size_t)T * (size_t)F, n_win = t->n_rows - (size_t)T + 1;
    float *xs, *in, *out, *sh, *kept = NULL;
    int batch = o->batch;
    ad_engine *e;
    int rc = -1;

    if ((size_t)batch > n_win)
        batch = (int)n_win;
    xs = malloc(t->n_rows * (size_t)F * sizeof(float));
    in = malloc((size_t)batch * win * sizeof(float));
    out = malloc((size_t)batch * win * sizeof(float));
    sh = malloc((size_t)F * sizeof(float));
    e = ad_engine_new(m, batch);
    if (norm)
        kept = malloc(n_win * (size_t)(F + 1) * sizeof(float));
    if (!xs || !in || !out || !sh || !e || (norm && !kept)) {
        fprintf(stderr, "anomalyd score: out of memory\n");
        goto done;
    }
    ad_model_scale(m, t->x, xs, t->n_rows);
    for (size_t next = 0; next < n_win;) {
        int B = (int)(n_win - next < (size_t)batch ? n_win - next : (size_t)batch);
        for (int b = 0; b < B; b++)
            memcpy(in + (size_t)b * win, xs + (next + (size_t)b) * (size_t)F,
                   win * sizeof(float));
        if (ad_engine_forward(e, in, out, B) < 0) {
            fprintf(stderr, "anomalyd score: forward pass failed\n");
            goto done;
        }
        for (int b = 0; b < B; b++) {
            float *k = norm ? kept + (next + (size_t)b) * (size_t)(F + 1) : NULL;
            float s = ad_recon_score(in + (size_t)b * win, out + (size_t)b * win, T, F,
                                     (ad_metric)metric, k ? k + 1 : o->share ? sh : NULL);
            if (k)
                k[0] = s;
            else
                print_line(m, next + (size_t)b + (size_t)T - 1, s, o->share ? sh : NULL);
        }
        next += (size_t)B;
    }
    if (norm && print_normalized(m, kept, n_win, o) != 0)
        goto done;
    rc = fflush(stdout) == 0 ? 0 : -1;
done:
    ad_engine_free(e);
    free(xs);
    free(in);
    free(out);
    free(sh);
    free(kept);
    return rc;
}

int ad_cmd_score(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL;
    score_opts so = { AD_METRIC_MSE, 0, 64, 0, 200, 0 };
    int rc = 1;
    char err[1024];
    ad_model *m = NULL;
    ad_table *t = NULL;
    ad_csv_opts co;

    if ((rc = score_args(argc, argv, &model_path, &input, &so)))
        return rc - 1;
    rc = 1;
    if (ad_model_load(&m, model_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd score: %s\n", err);
        goto done;
    }
    memset(&co, 0, sizeof(co));
    co.sep = so.sep;
    co.features = (const char *const *)m->features;
    co.n_features = m->n_features;
    if (ad_csv_read(&t, input, &co, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd score: %s\n", err);
        goto done;
    }
    if (t->n_rows < (size_t)m->window) {
        fprintf(stderr, "anomalyd score: %s: %zu data rows, fewer than one window of %d\n",
                input, t->n_rows, m->window);
        goto done;
    }
    rc = score_windows(m, t, &so) == 0 ? 0 : 1;
done:
    ad_table_free(t);
    ad_model_free(m);
    return rc;
}

int ad_cmd_info(int argc, char **argv)
{
    const char *path = NULL, *pos[1];
    const ad_arg tab[] = {
        { "model", 'm', AD_ARG_STR, &path, 0, 0, NULL, "FILE",
          "model file (or give it as the operand)", 0, NULL },
        AD_ARG_END
    };
    char err[1024];
    ad_model *m = NULL;
    int np = 0, rc = ad_args_parse("info", tab, argc, argv, pos, 1, &np);

    if (rc == 1) {
        printf("usage: anomalyd info --model FILE\n"
               "Prints the model's identity, window, features, scaler, layers,\n"
               "parameter count, provenance and training summary.\n");
        return 0;
    }
    if (rc)
        return 2;
    if (!path && np == 1)
        path = pos[0];
    else if (np > 0) {
        fprintf(stderr, "anomalyd info: unexpected argument '%s'\n", pos[0]);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "anomalyd info: --model FILE is required\n");
        return 2;
    }
    if (ad_model_load(&m, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd info: %s\n", err);
        return 1;
    }
    printf("model:       %s\n", path);
    printf("id:          %s\n", m->id);
    printf("window:      %d\n", m->window);
    printf("features:    %d:", m->n_features);
    for (int f = 0; f < m->n_features; f++)
        printf(" %s", m->features[f]);
    printf("\nscaler:      %s\n", m->scaler == AD_SCALER_STANDARD ? "standard" :
           m->scaler == AD_SCALER_MINMAX ? "minmax" : "none");
    printf("parameters:  %zu\n", m->n_params);
    printf("flops:       %.0f per window\n", ad_model_flops(m));
    for (int i = 0; i < m->n_layers; i++) {
        const ad_layer *l = &m->layers[i];
        printf("layer %-2d     %-24s", i, ad_layer_type_name(l->spec.type));
        if (l->in_t)
            printf(" in (%d,%d)", l->in_t, l->in_d);
        else
            printf(" in (%d)", l->in_d);
        if (l->out_t)
            printf(" -> out (%d,%d)", l->out_t, l->out_d);
        else
            printf(" -> out (%d)", l->out_d);
        if (l->spec.type == AD_LAYER_LSTM || l->spec.type == AD_LAYER_DENSE ||
            l->spec.type == AD_LAYER_TD_DENSE)
            printf(" %s", ad_act_name(l->spec.act));
        printf("\n");
    }
    if (m->provenance)
        printf("provenance:  %s\n", m->provenance);
    if (m->training)
        printf("training:    %s\n", m->training);
    ad_model_free(m);
    return 0;
}
