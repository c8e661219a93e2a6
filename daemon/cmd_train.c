/*
 * cmd_train.c - `anomalyd train`: train an autoencoder in C from a CSV file
 * and write the model file.
 *
 * Steps: read the CSV (lib/csv: separator detection, header, optional time
 * column, feature columns by name or every numeric column but labels), keep
 * the first --rows rows if asked, fit the input scaler (standard or min-max)
 * on those rows, cut windows (length T, hop), hold out the last part in
 * time order for validation, initialise the weights (Keras defaults, from
 * --seed), train (lib/train: Adam, early stopping on the validation loss),
 * measure the distribution of reconstruction errors on every window of the
 * input (hop 1, as the daemon and `anomalyd score` see them) and write the
 * model with its metadata (features, scaler, window, architecture, and a
 * "training" object: settings, final losses, error distribution).
 *
 * Progress (one line per epoch on stderr) is shown when stderr is a terminal
 * or with --verbose; --quiet silences everything but errors. Ctrl-C once
 * stops training after the current mini-batch and still writes the best
 * model so far; a second Ctrl-C kills.
 *
 * Reproducibility: with the same input, options and seed the weights are the
 * same on the same machine (single-threaded BLAS). Wall-clock figures go
 * into the metadata unless SOURCE_DATE_EPOCH is set (then the file is the
 * same bytes every time, and "created" is that date).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "ad.h"
#include "args.h"
#include "cmd.h"
#include "csv.h"
#include "model.h"
#include "safetensors.h"
#include "train.h"

#define DEFAULT_WINDOW 30
#define DEFAULT_ARCH "lstm-ae:32"
#define MAX_STATS_WINDOWS 200000

static volatile int g_cancel;

static void on_sigint(int sig)
{
    (void)sig;
    g_cancel = 1;
    signal(SIGINT, SIG_DFL);   /* a second Ctrl-C kills */
}

/*
 * Architecture shorthand into specs. Returns the layer count, or -1 with a
 * message in err.
 */
static int arch_from_spec(const char *spec, int T, int F, ad_layer_spec *s,
                          char *err, size_t errlen)
{
    const char *colon = strchr(spec, ':');
    char kind[32];
    int units[16], nu = 0, n = 0, i;
    const char *p;

    if (spec[0] == '[' || spec[0] == '@') {
        void *buf = NULL;
        size_t len = 0;
        const char *json = spec;
        int nl = 0, rc;
        if (spec[0] == '@') {       /* ad_read_file NUL-terminates */
            if (ad_read_file(spec + 1, 1 << 20, &buf, &len, err, errlen) < 0)
                return -1;
            json = buf;
        }
        rc = ad_arch_parse(json, s, AD_MAX_LAYERS, &nl, err, errlen);
        free(buf);
        return rc < 0 ? -1 : nl;
    }
    if (colon == NULL || (size_t)(colon - spec) >= sizeof(kind)) {
        ad_errf(err, errlen, AD_EINVAL, "--arch '%s': expected KIND:UNITS "
                "(lstm-ae:32, lstm-seq:64,32,64, dense-ae:64,16,64) or a JSON array",
                spec);
        return -1;
    }
    memcpy(kind, spec, (size_t)(colon - spec));
    kind[colon - spec] = '\0';
    for (p = colon + 1; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || nu == 16 || (*end != ',' && *end != '\0')) {
            ad_errf(err, errlen, AD_EINVAL, "--arch '%s': units must be a comma-"
                    "separated list of up to 16 integers 1..4096", spec);
            return -1;
        }
        units[nu++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    if (nu == 0) {
        ad_errf(err, errlen, AD_EINVAL, "--arch '%s': no units given", spec);
        return -1;
    }
    memset(s, 0, sizeof(*s) * AD_MAX_LAYERS);
    if (strcmp(kind, "lstm-ae") == 0) {
        for (i = 0; i < nu; i++)
            s[n++] = (ad_layer_spec){ AD_LAYER_LSTM, units[i], AD_ACT_TANH, i < nu - 1 };
        s[n++] = (ad_layer_spec){ AD_LAYER_REPEAT_VECTOR, T, AD_ACT_LINEAR, 0 };
        for (i = nu - 1; i >= 0; i--)
            s[n++] = (ad_layer_spec){ AD_LAYER_LSTM, units[i], AD_ACT_TANH, 1 };
        s[n++] = (ad_layer_spec){ AD_LAYER_TD_DENSE, F, AD_ACT_LINEAR, 0 };
    } else if (strcmp(kind, "lstm-seq") == 0) {
        for (i = 0; i < nu; i++)
            s[n++] = (ad_layer_spec){ AD_LAYER_LSTM, units[i], AD_ACT_TANH, 1 };
        s[n++] = (ad_layer_spec){ AD_LAYER_TD_DENSE, F, AD_ACT_LINEAR, 0 };
    } else if (strcmp(kind, "dense-ae") == 0) {
        s[n++] = (ad_layer_spec){ AD_LAYER_FLATTEN, 0, AD_ACT_LINEAR, 0 };
        for (i = 0; i < nu; i++)
            s[n++] = (ad_layer_spec){ AD_LAYER_DENSE, units[i], AD_ACT_RELU, 0 };
        s[n++] = (ad_layer_spec){ AD_LAYER_DENSE, T * F, AD_ACT_LINEAR, 0 };
    } else {
        ad_errf(err, errlen, AD_EINVAL, "--arch '%s': unknown kind '%s' "
                "(lstm-ae, lstm-seq, dense-ae)", spec, kind);
        return -1;
    }
    return n;
}

/* ---- progress ------------------------------------------------------------ */

static int progress_cb(const ad_train_epoch *ep, void *ud)
{
    (void)ud;
    if (isnan(ep->val_loss))
        fprintf(stderr, "epoch %3d/%d  loss %.6f  %6.2fs  %8.0f win/s%s\n",
                ep->epoch, ep->epochs, ep->loss, ep->seconds, ep->windows_per_s,
                ep->improved ? "  *" : "");
    else
        fprintf(stderr, "epoch %3d/%d  loss %.6f  val %.6f  %6.2fs  %8.0f win/s%s\n",
                ep->epoch, ep->epochs, ep->loss, ep->val_loss, ep->seconds,
                ep->windows_per_s, ep->improved ? "  *" : "");
    return 0;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}


/* ---- the command --------------------------------------------------------- */

/* What the command line asks for. */
typedef struct train_cmd {
    const char *input, *output, *time_col, *arch, *features;
    char sep;
    long rows_max;
    int scaler_i;               /* index in SCALERS */
    ad_scaler_type scaler;
    int T, hop, metric, quiet, verbose, show;
    ad_train_opts to;
    /* state */
    char **feat;
    int n_feat;
    ad_table *t;
    ad_model *m;
    float *xs, *win;
    size_t n_win;
    ad_train_report rep;
    ad_error_stats st;
    ad_buf constant;            /* "'a' (always 20), 'b' (always 5)" */
    int n_constant;             /* columns constant in the training rows */
} train_cmd;

static const char *const SCALERS = "standard|minmax";

static int train_args(train_cmd *c, int argc, char **argv)
{
    ad_train_opts *to = &c->to;
    const ad_arg tab[] = {
        AD_ARG_GROUP("data"),
        { "input", 'i', AD_ARG_STR, &c->input, 0, 0, NULL, "FILE",
          "CSV with a header row", 0, NULL },
        { "output", 'o', AD_ARG_STR, &c->output, 0, 0, NULL, "FILE",
          "model file to write", 0, NULL },
        { "sep", 0, AD_ARG_SEP, &c->sep, 0, 0, NULL, "C",
          "field separator: , ; tab (default: detected)", 0, NULL },
        { "time-col", 0, AD_ARG_STR, &c->time_col, 0, 0, NULL, "NAME",
          "time column (default: auto-detected by name;\n\"\" for none)", 0, NULL },
        { "features", 0, AD_ARG_STR, &c->features, 0, 0, NULL, "A,B,..",
          "feature columns (default: every numeric column\nbut the time column and "
          "labels such as 'anomaly')", 0, NULL },
        { "rows", 0, AD_ARG_LONG, &c->rows_max, 1, 1e9, NULL, "N",
          "use only the first N data rows", 0, NULL },
        { "scaler", 0, AD_ARG_CHOICE, &c->scaler_i, 0, 0, SCALERS, "S",
          "standard or minmax", AD_ARG_DEF, NULL },
        { "window", 'T', AD_ARG_INT, &c->T, 1, 100000, NULL, "N",
          "window length", AD_ARG_DEF, NULL },
        { "hop", 0, AD_ARG_INT, &c->hop, 1, 100000, NULL, "N",
          "rows between training windows", AD_ARG_DEF, NULL },
        AD_ARG_GROUP("model"),
        { "arch", 0, AD_ARG_STR, &c->arch, 0, 0, NULL, "SPEC",
          "lstm-ae:H[,H2..]  LSTM encoder -> RepeatVector ->\n"
          "                  LSTM decoder -> per-step Dense\n"
          "lstm-seq:H1,H2,.. stacked LSTMs (sequences) ->\n"
          "                  per-step Dense\n"
          "dense-ae:U1,U2,.. flatten -> Dense(relu).. ->\n"
          "                  Dense(T*F)\n"
          "[...]             an architecture JSON array\n"
          "                  (model.h), or @FILE holding one\n", AD_ARG_DEF, NULL },
        AD_ARG_GROUP("training"),
        { "loss", 0, AD_ARG_CHOICE, &to->loss, 0, 0, "mse|mae", "L",
          "mse or mae", AD_ARG_DEF, NULL },
        { "metric", 0, AD_ARG_CHOICE, &c->metric, 0, 0, "mse|mae|peak", "M",
          "error metric of the stored distribution\n(default: the loss)", 0, NULL },
        { "epochs", 0, AD_ARG_INT, &to->epochs, 1, 1000000, NULL, "N",
          "maximum epochs", AD_ARG_DEF, NULL },
        { "batch", 0, AD_ARG_INT, &to->batch_size, 1, 65536, NULL, "N",
          "windows per mini-batch", AD_ARG_DEF, NULL },
        { "lr", 0, AD_ARG_FLOAT, &to->lr, 1e-9, 10, NULL, "X",
          "Adam learning rate", AD_ARG_DEF, NULL },
        { "weight-decay", 0, AD_ARG_FLOAT, &to->weight_decay, 0, 1, NULL, "X",
          "decoupled weight decay (AdamW)", AD_ARG_DEF, NULL },
        { "clip", 0, AD_ARG_FLOAT, &to->clip_norm, 0, 1e6, NULL, "X",
          "gradient-norm clip (0 = off)", AD_ARG_DEF, NULL },
        { "val-frac", 0, AD_ARG_FLOAT, &to->val_frac, 0, 0.9, NULL, "X",
          "last fraction held out for validation", AD_ARG_DEF, NULL },
        { "patience", 0, AD_ARG_INT, &to->patience, 0, 1000000, NULL, "N",
          "early-stopping patience in epochs (0 = off)", AD_ARG_DEF, NULL },
        { "seed", 0, AD_ARG_U64, &to->seed, 0, 0, NULL, "N",
          "initial weights and shuffling", AD_ARG_DEF, NULL },
        { "max-seconds", 0, AD_ARG_NUM, &to->max_seconds, 0, 1e9, NULL, "X",
          "stop training after X seconds", 0, NULL },
        AD_ARG_GROUP("output"),
        { "quiet", 'q', AD_ARG_FLAG, &c->quiet, 0, 0, NULL, NULL,
          "print nothing but errors", 0, NULL },
        { "verbose", 'v', AD_ARG_FLAG, &c->verbose, 0, 0, NULL, NULL,
          "print progress even when not on a terminal", 0, NULL },
        AD_ARG_END
    };
    char err[256];
    int rc = ad_args_parse("train", tab, argc, argv, NULL, 0, NULL);

    if (rc == 1) {
        printf("usage: anomalyd train --input FILE.csv --output MODEL.safetensors [options]\n"
               "\n"
               "Trains an LSTM (or dense) autoencoder on the rows of a CSV file and\n"
               "writes a model file for `anomalyd run` / `score`.\n"
               "\n");
        ad_args_help(stdout, tab);
        return 0;
    }
    if (rc)
        return 2;
    if (!c->input || !c->output) {
        fprintf(stderr, "anomalyd train: --input and --output are required\n");
        return 2;
    }
    if (c->features && !(c->feat = ad_args_split(c->features, &c->n_feat, err, sizeof err))) {
        fprintf(stderr, "anomalyd train: --features: %s\n", err);
        return 2;
    }
    c->scaler = c->scaler_i == 0 ? AD_SCALER_STANDARD : AD_SCALER_MINMAX;
    if (c->metric < 0)
        c->metric = to->loss == AD_LOSS_MAE ? AD_METRIC_MAE : AD_METRIC_MSE;
    c->show = !c->quiet && (c->verbose || isatty(2));
    return -1;          /* go on */
}

/* CSV rows and the model's shape, features and architecture. */
static int train_data(train_cmd *c)
{
    ad_layer_spec specs[AD_MAX_LAYERS];
    ad_csv_opts co;
    char err[1024];
    int nl;

    /* a missing output directory, a file in its place or one that cannot
     * be written to is said now, not after the training */
    if (ad_dir_of_writable(c->output, err, sizeof err) != 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        return -1;
    }
    memset(&co, 0, sizeof co);
    co.sep = c->sep;
    co.time_col = c->time_col;
    co.features = (const char *const *)c->feat;
    co.n_features = c->n_feat;
    co.max_rows = (size_t)c->rows_max;
    if (ad_csv_read(&c->t, c->input, &co, err, sizeof err) < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        return -1;
    }
    if (c->t->n_features < 1) {
        fprintf(stderr, "anomalyd train: %s: no numeric feature column\n", c->input);
        return -1;
    }
    if (c->t->n_rows < (size_t)c->T) {
        fprintf(stderr, "anomalyd train: %s: %zu data rows, too few for one window "
                "of %d rows (use --window to shorten it)\n", c->input, c->t->n_rows, c->T);
        return -1;
    }
    if ((nl = arch_from_spec(c->arch, c->T, c->t->n_features, specs, err, sizeof err)) < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        return -1;
    }
    if (ad_model_create(&c->m, c->T, c->t->n_features, specs, nl, err, sizeof err) < 0) {
        fprintf(stderr, "anomalyd train: architecture '%s' with window %d and "
                "%d features: %s\n", c->arch, c->T, c->t->n_features, err);
        return -1;
    }
    if (ad_model_set_features(c->m, (const char *const *)c->t->features,
                              c->t->n_features) < 0) {
        fprintf(stderr, "anomalyd train: feature names: %s\n", ad_strerror(AD_EINVAL));
        return -1;
    }
    return 0;
}

/* Fit the input scaler on the training rows (standard: mean/std, minmax:
 * min/max; a constant column gets scale 1, noted for train_constant) and
 * scale them into c->xs. */
static int train_scaler(train_cmd *c)
{
    const ad_table *t = c->t;
    const int F = t->n_features;
    float *sa = calloc((size_t)F, sizeof(float)), *sb = calloc((size_t)F, sizeof(float));
    int rc = -1;

    if (!sa || !sb || !(c->xs = malloc(sizeof(float) * t->n_rows * (size_t)F))) {
        fprintf(stderr, "anomalyd train: out of memory\n");
        goto done;
    }
    for (int j = 0; j < F; j++) {
        double mean = 0.0, var = 0.0, mn = INFINITY, mx = -INFINITY;
        int constant;
        for (size_t r = 0; r < t->n_rows; r++) {
            double v = t->x[r * (size_t)F + (size_t)j];
            mean += v;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        mean /= (double)t->n_rows;
        for (size_t r = 0; r < t->n_rows; r++) {
            double d = t->x[r * (size_t)F + (size_t)j] - mean;
            var += d * d;
        }
        var /= (double)t->n_rows;
        constant = c->scaler == AD_SCALER_STANDARD ? !(sqrt(var) > 1e-12 * (fabs(mean) + 1.0))
                                                   : !(mx > mn);
        if (constant) {
            ad_buf_printf(&c->constant, "%s'%s' (always %.6g)", c->n_constant ? ", " : "",
                          t->features[j], mn);
            c->n_constant++;
        }
        if (c->scaler == AD_SCALER_STANDARD) {
            sa[j] = (float)mean;
            sb[j] = constant ? 1.0f : (float)sqrt(var);
        } else {
            if (constant)
                mx = mn + 1.0;
            sa[j] = (float)mn;
            sb[j] = (float)mx;
            if (!(sb[j] > sa[j]))       /* float rounding of a tiny range */
                sb[j] = nextafterf(sa[j], INFINITY);
        }
    }
    if (ad_model_set_scaler(c->m, c->scaler, sa, sb) < 0) {
        fprintf(stderr, "anomalyd train: could not set the scaler\n");
        goto done;
    }
    ad_model_scale(c->m, t->x, c->xs, t->n_rows);
    rc = 0;
done:
    free(sa);
    free(sb);
    return rc;
}

/* Windows (T, hop), Keras init from the seed, Adam with early stopping. */
static int train_fit(train_cmd *c)
{
    const size_t wsz = (size_t)c->T * (size_t)c->t->n_features;
    void (*old_int)(int);
    char err[1024];
    int rc;

    c->n_win = ad_train_cut_windows(c->xs, c->t->n_rows, c->t->n_features, c->T, c->hop,
                                    NULL);
    if (c->n_win == 0 || c->n_win > ((size_t)-1) / sizeof(float) / wsz) {
        fprintf(stderr, "anomalyd train: %s: cannot cut windows\n", c->input);
        return -1;
    }
    if (!(c->win = malloc(sizeof(float) * wsz * c->n_win))) {
        fprintf(stderr, "anomalyd train: out of memory\n");
        return -1;
    }
    ad_train_cut_windows(c->xs, c->t->n_rows, c->t->n_features, c->T, c->hop, c->win);
    c->to.val_gap = (c->T + c->hop - 1) / c->hop - 1;    /* no shared rows train/val */
    ad_train_init_weights(c->m, c->to.seed);
    if (c->show)
        fprintf(stderr, "anomalyd train: %s: %zu rows, %d features, window %d hop %d "
                "-> %zu windows; %s, %zu parameters; loss %s\n", base_name(c->input),
                c->t->n_rows, c->t->n_features, c->T, c->hop, c->n_win, c->arch,
                c->m->n_params, ad_loss_name(c->to.loss));
    g_cancel = 0;
    old_int = signal(SIGINT, on_sigint);
    rc = ad_train_fit(c->m, c->win, c->n_win, &c->to, &c->rep,
                      c->show ? progress_cb : NULL, NULL, &g_cancel, err, sizeof err);
    signal(SIGINT, old_int);
    if (rc < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        return -1;
    }
    if (c->rep.epochs_run == 0) {
        fprintf(stderr, "anomalyd train: stopped before the first epoch ended; "
                "no model written\n");
        return -1;
    }
    if (c->show && c->rep.cancelled)
        fprintf(stderr, "anomalyd train: interrupted; keeping epoch %d\n", c->rep.best_epoch);
    return 0;
}

/* Error distribution on every window of the input (hop 1, strided beyond
 * MAX_STATS_WINDOWS), as the daemon and `anomalyd score` see them. */
static int train_error_stats(train_cmd *c)
{
    const int F = c->t->n_features;
    const size_t wsz = (size_t)c->T * (size_t)F;
    size_t n_stat = c->t->n_rows - (size_t)c->T + 1, stride = 1;

    if (n_stat > MAX_STATS_WINDOWS)
        stride = (n_stat + MAX_STATS_WINDOWS - 1) / MAX_STATS_WINDOWS;
    free(c->win);
    n_stat = ad_train_cut_windows(c->xs, c->t->n_rows, F, c->T, (int)stride, NULL);
    if (!(c->win = malloc(sizeof(float) * wsz * n_stat))) {
        fprintf(stderr, "anomalyd train: out of memory\n");
        return -1;
    }
    ad_train_cut_windows(c->xs, c->t->n_rows, F, c->T, (int)stride, c->win);
    if (ad_train_error_stats(c->m, c->win, n_stat, (ad_metric)c->metric, &c->st, NULL) < 0) {
        fprintf(stderr, "anomalyd train: reconstruction errors are not finite\n");
        return -1;
    }
    return 0;
}

/* The "training" and "provenance" metadata of the model. */
static int train_metadata(train_cmd *c)
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    char *tj = ad_train_meta_json(&c->to, &c->rep, &c->st), ts[32];
    cJSON *meta = tj ? cJSON_Parse(tj) : NULL, *prov = cJSON_CreateObject();
    time_t now = time(NULL);
    struct tm tmv;
    int rc = -1;

    free(tj);
    if (!meta || !prov)
        goto done;
    if (sde && *sde) {
        cJSON_DeleteItemFromObject(meta, "seconds");
        now = (time_t)strtoll(sde, NULL, 10);
    }
    cJSON_AddStringToObject(meta, "input", base_name(c->input));
    cJSON_AddNumberToObject(meta, "rows", (double)c->t->n_rows);
    cJSON_AddNumberToObject(meta, "window", c->T);
    cJSON_AddNumberToObject(meta, "hop", c->hop);
    cJSON_AddNumberToObject(meta, "n_windows", (double)c->n_win);
    cJSON_AddStringToObject(meta, "arch", c->arch);
    cJSON_AddStringToObject(meta, "scaler", c->scaler == AD_SCALER_STANDARD ? "standard" :
                            "minmax");
    if (c->t->time_name)
        cJSON_AddStringToObject(meta, "time_column", c->t->time_name);
    cJSON_AddBoolToObject(meta, "interrupted", c->rep.cancelled);
    cJSON_AddStringToObject(prov, "tool", "anomalyd train " AD_VERSION);
    cJSON_AddStringToObject(prov, "input", base_name(c->input));
    gmtime_r(&now, &tmv);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    cJSON_AddStringToObject(prov, "created", ts);
    free(c->m->training);
    free(c->m->provenance);
    c->m->training = cJSON_PrintUnformatted(meta);
    c->m->provenance = cJSON_PrintUnformatted(prov);
    if (c->m->training && c->m->provenance)
        rc = 0;
done:
    if (rc)
        fprintf(stderr, "anomalyd train: out of memory\n");
    cJSON_Delete(meta);
    cJSON_Delete(prov);
    return rc;
}

static int train_save(train_cmd *c)
{
    char err[1024], vl[32] = "none";

    if (ad_model_save(c->m, c->output, err, sizeof err) < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        return -1;
    }
    if (!c->show)
        return 0;
    if (!isnan(c->rep.val_loss))
        snprintf(vl, sizeof vl, "%.6g", c->rep.val_loss);
    fprintf(stderr, "anomalyd train: wrote %s (id %s): %d epochs (best %d%s), "
            "train loss %.6g, val loss %s, %.1fs, %.0f windows/s\n",
            c->output, c->m->id, c->rep.epochs_run, c->rep.best_epoch,
            c->rep.stopped_early ? ", early stop" : "", c->rep.train_loss,
            vl, c->rep.seconds, c->rep.windows_per_s);
    fprintf(stderr, "anomalyd train: training %s per window: mean %.4g std %.4g "
            "q99 %.4g q999 %.4g max %.4g\n", c->metric == AD_METRIC_PEAK ? "peak" : c->metric == AD_METRIC_MAE ? "MAE" : "MSE",
            c->st.mean, c->st.std, c->st.q99, c->st.q999, c->st.max);
    return 0;
}

/* A constant column carries no information: the model learns to give it
 * back exactly (its training error is 0, all of it when every column is
 * constant) and its scale of 1 makes a later change of it score in raw
 * units. Said after the training's result, where the error is read. */
static int train_constant(const train_cmd *c)
{
    int one = c->n_constant == 1;

    if (c->n_constant == 0 || c->quiet)
        return 0;
    fprintf(stderr, "anomalyd train: warning: %s %s %s constant in the training rows: %s "
            "no information; the model reproduces %s exactly (a training error of 0 on %s) "
            "with a scale of 1, so a later change of %s is scored in raw units. Leave %s out "
            "(--features) unless that is meant.\n", one ? "column" : "columns",
            c->constant.s ? c->constant.s : "", one ? "is" : "are",
            one ? "it carries" : "they carry", one ? "it" : "them", one ? "it" : "them",
            one ? "it" : "them", one ? "it" : "them");
    if (c->n_constant == c->t->n_features)
        fprintf(stderr, "anomalyd train: warning: every feature is constant: the training "
                "error is 0 and the model has learned nothing to compare live data with.\n");
    return 0;
}

int ad_cmd_train(int argc, char **argv)
{
    train_cmd c;
    int rc;

    memset(&c, 0, sizeof c);
    c.T = DEFAULT_WINDOW;
    c.hop = 1;
    c.arch = DEFAULT_ARCH;
    c.metric = -1;
    ad_train_opts_default(&c.to);
    rc = train_args(&c, argc, argv);
    if (rc < 0)
        rc = train_data(&c) || train_scaler(&c) || train_fit(&c) ||
             train_error_stats(&c) || train_metadata(&c) || train_save(&c) ||
             train_constant(&c) ? 1 : 0;
    free(c.xs);
    free(c.win);
    ad_model_free(c.m);
    ad_table_free(c.t);
    ad_args_split_free(c.feat);
    ad_buf_free(&c.constant);
    return rc;
}
