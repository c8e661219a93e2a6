/*
 * cmd_score.c - `anomalyd score`: the engine end to end on a CSV file, and
 * `anomalyd info`: what a model file holds.
 *
 * score reads a CSV of samples (header naming the features; columns matched
 * to the model's feature names, extra columns ignored), scales every row with
 * the model's scaler, forms every full window with hop 1 and prints one line
 * per window: the 0-based index of its last data row and its reconstruction
 * error. This is how anyone can check the engine end to end, and compare it
 * with another implementation.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "cmd.h"
#include "csv.h"
#include "engine.h"
#include "model.h"

static void score_usage(FILE *f)
{
    fprintf(f,
        "usage: anomalyd score --model FILE --input FILE.csv [options]\n"
        "\n"
        "Prints one line per full window (hop 1): the 0-based index of the\n"
        "window's last data row and its reconstruction error.\n"
        "\n"
        "  -m, --model FILE    model file (.safetensors)\n"
        "  -i, --input FILE    CSV with a header row; columns are matched to the\n"
        "                      model's feature names, others are ignored\n"
        "      --metric M      mse (default) or mae\n"
        "      --share         also print each feature's share of the error\n"
        "      --sep C         field separator (default: detected)\n"
        "      --batch N       windows per forward pass (default 64)\n"
        "  -h, --help\n");
}

int ad_cmd_score(int argc, char **argv)
{
    static const struct option opts[] = {
        { "model", required_argument, NULL, 'm' },
        { "input", required_argument, NULL, 'i' },
        { "metric", required_argument, NULL, 'M' },
        { "share", no_argument, NULL, 'S' },
        { "sep", required_argument, NULL, 's' },
        { "batch", required_argument, NULL, 'b' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *model_path = NULL, *input = NULL;
    ad_metric metric = AD_METRIC_MSE;
    int share = 0, batch = 64, c, rc = 1;
    char sep = 0, err[1024];
    ad_model *m = NULL;
    ad_table *t = NULL;
    ad_engine *e = NULL;
    ad_csv_opts co;
    float *xs = NULL, *in = NULL, *out = NULL, *sh = NULL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'i': input = optarg; break;
        case 'M':
            if (strcmp(optarg, "mse") == 0)
                metric = AD_METRIC_MSE;
            else if (strcmp(optarg, "mae") == 0)
                metric = AD_METRIC_MAE;
            else {
                fprintf(stderr, "anomalyd score: --metric: expected mse or mae, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'S': share = 1; break;
        case 's':
            if (strcmp(optarg, "\\t") == 0 || strcmp(optarg, "tab") == 0)
                sep = '\t';
            else if (strlen(optarg) == 1)
                sep = optarg[0];
            else {
                fprintf(stderr, "anomalyd score: --sep: expected one character, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 4096) {
                fprintf(stderr, "anomalyd score: --batch: expected an integer 1..4096, got '%s'\n", optarg);
                return 2;
            }
            batch = (int)v;
            break;
        }
        case 'h': score_usage(stdout); return 0;
        default: score_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "anomalyd score: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (model_path == NULL || input == NULL) {
        fprintf(stderr, "anomalyd score: --model and --input are required\n");
        score_usage(stderr);
        return 2;
    }
    if (ad_model_load(&m, model_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd score: %s\n", err);
        goto done;
    }
    memset(&co, 0, sizeof(co));
    co.sep = sep;
    co.features = (const char *const *)m->features;
    co.n_features = m->n_features;
    if (ad_csv_read(&t, input, &co, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd score: %s\n", err);
        goto done;
    }
    {
        const int T = m->window, F = m->n_features;
        const size_t win = (size_t)T * (size_t)F;
        size_t n_win, next;

        if (t->n_rows < (size_t)T) {
            fprintf(stderr, "anomalyd score: %s: %zu data rows, fewer than one window of %d\n",
                    input, t->n_rows, T);
            goto done;
        }
        n_win = t->n_rows - (size_t)T + 1;
        if ((size_t)batch > n_win)
            batch = (int)n_win;
        xs = malloc(t->n_rows * (size_t)F * sizeof(float));
        in = malloc((size_t)batch * win * sizeof(float));
        out = malloc((size_t)batch * win * sizeof(float));
        sh = malloc((size_t)F * sizeof(float));
        e = ad_engine_new(m, batch);
        if (xs == NULL || in == NULL || out == NULL || sh == NULL || e == NULL) {
            fprintf(stderr, "anomalyd score: out of memory\n");
            goto done;
        }
        ad_model_scale(m, t->x, xs, t->n_rows);
        for (next = 0; next < n_win;) {
            int B = (int)(n_win - next < (size_t)batch ? n_win - next : (size_t)batch);
            for (int b = 0; b < B; b++)
                memcpy(in + (size_t)b * win, xs + (next + (size_t)b) * (size_t)F,
                       win * sizeof(float));
            if (ad_engine_forward(e, in, out, B) < 0) {
                fprintf(stderr, "anomalyd score: forward pass failed\n");
                goto done;
            }
            for (int b = 0; b < B; b++) {
                float mse, mae;
                ad_recon_error(in + (size_t)b * win, out + (size_t)b * win, T, F,
                               metric, &mse, &mae, share ? sh : NULL);
                printf("%zu %.9g", next + (size_t)b + (size_t)T - 1,
                       metric == AD_METRIC_MSE ? mse : mae);
                if (share)
                    for (int f = 0; f < F; f++)
                        printf(" %s=%.4f", m->features[f], sh[f]);
                putchar('\n');
            }
            next += (size_t)B;
        }
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    ad_engine_free(e);
    ad_table_free(t);
    ad_model_free(m);
    free(xs);
    free(in);
    free(out);
    free(sh);
    return rc;
}

static void info_usage(FILE *f)
{
    fprintf(f, "usage: anomalyd info --model FILE\n"
               "Prints the model's identity, window, features, scaler, layers,\n"
               "parameter count, provenance and training summary.\n");
}

int ad_cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        { "model", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *path = NULL;
    char err[1024];
    ad_model *m = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': path = optarg; break;
        case 'h': info_usage(stdout); return 0;
        default: info_usage(stderr); return 2;
        }
    }
    if (path == NULL && optind < argc)
        path = argv[optind++];
    if (path == NULL || optind < argc) {
        info_usage(stderr);
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
