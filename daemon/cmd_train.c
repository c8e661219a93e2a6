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
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "ad.h"
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

static void train_usage(FILE *f)
{
    fprintf(f,
        "usage: anomalyd train --input FILE.csv --output MODEL.safetensors [options]\n"
        "\n"
        "Trains an LSTM (or dense) autoencoder on the rows of a CSV file and\n"
        "writes a model file for `anomalyd run` / `score`.\n"
        "\n"
        "data:\n"
        "  -i, --input FILE        CSV with a header row\n"
        "  -o, --output FILE       model file to write\n"
        "      --sep C             field separator: , ; tab (default: detected)\n"
        "      --time-col NAME     time column (default: auto-detected by name;\n"
        "                          \"\" for none)\n"
        "      --features A,B,..   feature columns (default: every numeric column\n"
        "                          but the time column and labels such as 'anomaly')\n"
        "      --rows N            use only the first N data rows\n"
        "      --scaler S          standard (default) or minmax\n"
        "  -T, --window N          window length (default %d)\n"
        "      --hop N             rows between training windows (default 1)\n"
        "model:\n"
        "      --arch SPEC         lstm-ae:H[,H2..]  LSTM encoder -> RepeatVector ->\n"
        "                                            LSTM decoder -> per-step Dense\n"
        "                          lstm-seq:H1,H2,.. stacked LSTMs (sequences) ->\n"
        "                                            per-step Dense\n"
        "                          dense-ae:U1,U2,.. flatten -> Dense(relu).. ->\n"
        "                                            Dense(T*F)\n"
        "                          [...]             an architecture JSON array\n"
        "                                            (model.h), or @FILE holding one\n"
        "                          (default %s)\n"
        "training:\n"
        "      --loss L            mse (default) or mae\n"
        "      --metric M          error metric of the stored distribution\n"
        "                          (default: the loss)\n"
        "      --epochs N          maximum epochs (default 50)\n"
        "      --batch N           windows per mini-batch (default 32)\n"
        "      --lr X              Adam learning rate (default 0.001)\n"
        "      --weight-decay X    decoupled weight decay (AdamW; default 0)\n"
        "      --clip X            gradient-norm clip (default 1; 0 = off)\n"
        "      --val-frac X        last fraction held out for validation (0.1)\n"
        "      --patience N        early-stopping patience in epochs (5; 0 = off)\n"
        "      --seed N            initial weights and shuffling (default 1)\n"
        "      --max-seconds X     stop training after X seconds\n"
        "output:\n"
        "  -q, --quiet             print nothing but errors\n"
        "  -v, --verbose           print progress even when not on a terminal\n"
        "  -h, --help\n", DEFAULT_WINDOW, DEFAULT_ARCH);
}

/* ---- argument helpers ---------------------------------------------------- */

static int parse_long(const char *what, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "anomalyd train: %s: expected an integer %ld..%ld, got '%s'\n",
                what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *what, const char *s, double lo, double hi,
                        double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= lo && v <= hi)) {
        fprintf(stderr, "anomalyd train: %s: expected a number in [%g, %g], got '%s'\n",
                what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Split "a,b,c" into a NULL-terminated malloc'd array of malloc'd strings. */
static char **split_list(const char *s, int *n)
{
    char **v;
    const char *p;
    int k = 1, i = 0;

    for (p = s; *p; p++)
        k += *p == ',';
    v = calloc((size_t)k + 1, sizeof(char *));
    if (v == NULL)
        return NULL;
    p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        v[i] = malloc(len + 1);
        if (v[i] == NULL)
            break;
        memcpy(v[i], p, len);
        v[i][len] = '\0';
        i++;
        if (e == NULL)
            break;
        p = e + 1;
    }
    *n = i;
    return v;
}

static void free_list(char **v)
{
    int i;
    if (v == NULL)
        return;
    for (i = 0; v[i]; i++)
        free(v[i]);
    free(v);
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
        if (spec[0] == '@') {
            if (ad_read_file(spec + 1, 1 << 20, &buf, &len, err, errlen) < 0)
                return -1;
            json = buf;
            /* NUL-terminate: ad_read_file does not promise it */
            {
                char *z = realloc(buf, len + 1);
                if (z == NULL) {
                    free(buf);
                    ad_errf(err, errlen, AD_ENOMEM, "out of memory");
                    return -1;
                }
                z[len] = '\0';
                buf = z;
                json = z;
            }
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

int ad_cmd_train(int argc, char **argv)
{
    enum { O_SEP = 256, O_TIME, O_FEAT, O_ROWS, O_SCALER, O_HOP, O_ARCH,
           O_LOSS, O_METRIC, O_EPOCHS, O_BATCH, O_LR, O_WD, O_CLIP, O_VAL,
           O_PAT, O_SEED, O_MAXS };
    static const struct option opts[] = {
        { "input", required_argument, NULL, 'i' },
        { "output", required_argument, NULL, 'o' },
        { "sep", required_argument, NULL, O_SEP },
        { "time-col", required_argument, NULL, O_TIME },
        { "features", required_argument, NULL, O_FEAT },
        { "rows", required_argument, NULL, O_ROWS },
        { "scaler", required_argument, NULL, O_SCALER },
        { "window", required_argument, NULL, 'T' },
        { "hop", required_argument, NULL, O_HOP },
        { "arch", required_argument, NULL, O_ARCH },
        { "loss", required_argument, NULL, O_LOSS },
        { "metric", required_argument, NULL, O_METRIC },
        { "epochs", required_argument, NULL, O_EPOCHS },
        { "batch", required_argument, NULL, O_BATCH },
        { "lr", required_argument, NULL, O_LR },
        { "weight-decay", required_argument, NULL, O_WD },
        { "clip", required_argument, NULL, O_CLIP },
        { "val-frac", required_argument, NULL, O_VAL },
        { "patience", required_argument, NULL, O_PAT },
        { "seed", required_argument, NULL, O_SEED },
        { "max-seconds", required_argument, NULL, O_MAXS },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *input = NULL, *output = NULL, *time_col = NULL, *arch = DEFAULT_ARCH;
    char **feat = NULL, sep = 0, err[1024] = "";
    int n_feat = 0, T = DEFAULT_WINDOW, hop = 1, quiet = 0, verbose = 0, show;
    int metric = -1, c, rc = 1, nl, F, j;
    long rows_max = 0, lv;
    double dv;
    ad_scaler_type scaler = AD_SCALER_STANDARD;
    ad_train_opts to;
    ad_train_report rep;
    ad_error_stats st;
    ad_layer_spec specs[AD_MAX_LAYERS];
    ad_csv_opts co;
    ad_table *t = NULL;
    ad_model *m = NULL;
    float *xs = NULL, *win = NULL, *sa = NULL, *sb = NULL;
    size_t n_win, n_stat, r, wsz;
    char *tj = NULL;
    cJSON *meta = NULL, *prov = NULL;
    const char *sde;
    void (*old_int)(int) = SIG_DFL;

    ad_train_opts_default(&to);
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:T:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case O_SEP:
            if (strcmp(optarg, "\\t") == 0 || strcmp(optarg, "tab") == 0)
                sep = '\t';
            else if (strlen(optarg) == 1 && strchr(",;\t", optarg[0]))
                sep = optarg[0];
            else {
                fprintf(stderr, "anomalyd train: --sep: expected , ; or tab, got '%s'\n", optarg);
                goto usage;
            }
            break;
        case O_TIME: time_col = optarg; break;
        case O_FEAT:
            free_list(feat);
            feat = split_list(optarg, &n_feat);
            if (feat == NULL) {
                fprintf(stderr, "anomalyd train: out of memory\n");
                return 1;
            }
            for (j = 0; j < n_feat; j++)
                if (feat[j][0] == '\0') {
                    fprintf(stderr, "anomalyd train: --features: empty column name in '%s'\n", optarg);
                    goto usage;
                }
            break;
        case O_ROWS:
            if (parse_long("--rows", optarg, 1, 1000000000L, &rows_max) < 0)
                goto usage;
            break;
        case O_SCALER:
            if (strcmp(optarg, "standard") == 0)
                scaler = AD_SCALER_STANDARD;
            else if (strcmp(optarg, "minmax") == 0)
                scaler = AD_SCALER_MINMAX;
            else {
                fprintf(stderr, "anomalyd train: --scaler: expected standard or minmax, got '%s'\n", optarg);
                goto usage;
            }
            break;
        case 'T':
            if (parse_long("--window", optarg, 1, 100000, &lv) < 0)
                goto usage;
            T = (int)lv;
            break;
        case O_HOP:
            if (parse_long("--hop", optarg, 1, 100000, &lv) < 0)
                goto usage;
            hop = (int)lv;
            break;
        case O_ARCH: arch = optarg; break;
        case O_LOSS:
            if ((j = ad_loss_from_name(optarg)) < 0) {
                fprintf(stderr, "anomalyd train: --loss: expected mse or mae, got '%s'\n", optarg);
                goto usage;
            }
            to.loss = (ad_loss)j;
            break;
        case O_METRIC:
            if (strcmp(optarg, "mse") == 0)
                metric = AD_METRIC_MSE;
            else if (strcmp(optarg, "mae") == 0)
                metric = AD_METRIC_MAE;
            else {
                fprintf(stderr, "anomalyd train: --metric: expected mse or mae, got '%s'\n", optarg);
                goto usage;
            }
            break;
        case O_EPOCHS:
            if (parse_long("--epochs", optarg, 1, 1000000, &lv) < 0)
                goto usage;
            to.epochs = (int)lv;
            break;
        case O_BATCH:
            if (parse_long("--batch", optarg, 1, 65536, &lv) < 0)
                goto usage;
            to.batch_size = (int)lv;
            break;
        case O_LR:
            if (parse_double("--lr", optarg, 1e-9, 10.0, &dv) < 0)
                goto usage;
            to.lr = (float)dv;
            break;
        case O_WD:
            if (parse_double("--weight-decay", optarg, 0.0, 1.0, &dv) < 0)
                goto usage;
            to.weight_decay = (float)dv;
            break;
        case O_CLIP:
            if (parse_double("--clip", optarg, 0.0, 1e6, &dv) < 0)
                goto usage;
            to.clip_norm = (float)dv;
            break;
        case O_VAL:
            if (parse_double("--val-frac", optarg, 0.0, 0.9, &dv) < 0)
                goto usage;
            to.val_frac = (float)dv;
            break;
        case O_PAT:
            if (parse_long("--patience", optarg, 0, 1000000, &lv) < 0)
                goto usage;
            to.patience = (int)lv;
            break;
        case O_SEED: {
            char *end;
            unsigned long long v;
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *optarg == '-' || *end != '\0' || errno != 0) {
                fprintf(stderr, "anomalyd train: --seed: expected a non-negative integer, got '%s'\n", optarg);
                goto usage;
            }
            to.seed = (uint64_t)v;
            break;
        }
        case O_MAXS:
            if (parse_double("--max-seconds", optarg, 0.0, 1e9, &dv) < 0)
                goto usage;
            to.max_seconds = dv;
            break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h':
            train_usage(stdout);
            free_list(feat);
            return 0;
        default:
            goto usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "anomalyd train: unexpected argument '%s'\n", argv[optind]);
        goto usage;
    }
    if (input == NULL || output == NULL) {
        fprintf(stderr, "anomalyd train: --input and --output are required\n");
        goto usage;
    }
    if (metric < 0)
        metric = to.loss == AD_LOSS_MAE ? AD_METRIC_MAE : AD_METRIC_MSE;
    show = !quiet && (verbose || isatty(2));

    /* ---- data ---- */
    memset(&co, 0, sizeof(co));
    co.sep = sep;
    co.time_col = time_col;
    co.features = (const char *const *)feat;
    co.n_features = n_feat;
    co.max_rows = (size_t)rows_max;
    if (ad_csv_read(&t, input, &co, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        goto done;
    }
    F = t->n_features;
    if (F < 1) {
        fprintf(stderr, "anomalyd train: %s: no numeric feature column\n", input);
        goto done;
    }
    if (t->n_rows < (size_t)T) {
        fprintf(stderr, "anomalyd train: %s: %zu data rows, too few for one window "
                "of %d rows (use --window to shorten it)\n", input, t->n_rows, T);
        goto done;
    }
    nl = arch_from_spec(arch, T, F, specs, err, sizeof(err));
    if (nl < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        goto done;
    }
    if (ad_model_create(&m, T, F, specs, nl, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd train: architecture '%s' with window %d and "
                "%d features: %s\n", arch, T, F, err);
        goto done;
    }
    if (ad_model_set_features(m, (const char *const *)t->features, F) < 0) {
        fprintf(stderr, "anomalyd train: feature names: %s\n", ad_strerror(AD_EINVAL));
        goto done;
    }

    /* ---- scaler, fitted on the training rows ---- */
    sa = calloc((size_t)F, sizeof(float));
    sb = calloc((size_t)F, sizeof(float));
    if (sa == NULL || sb == NULL)
        goto oom;
    for (j = 0; j < F; j++) {
        double mean = 0.0, var = 0.0, mn = INFINITY, mx = -INFINITY;
        for (r = 0; r < t->n_rows; r++) {
            double v = t->x[r * (size_t)F + (size_t)j];
            mean += v;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        mean /= (double)t->n_rows;
        for (r = 0; r < t->n_rows; r++) {
            double d = t->x[r * (size_t)F + (size_t)j] - mean;
            var += d * d;
        }
        var /= (double)t->n_rows;
        if (scaler == AD_SCALER_STANDARD) {
            double sd = sqrt(var);
            if (!(sd > 1e-12 * (fabs(mean) + 1.0))) {
                if (!quiet)
                    fprintf(stderr, "anomalyd train: warning: column '%s' is constant "
                            "in the training rows; its scale is set to 1\n", t->features[j]);
                sd = 1.0;
            }
            sa[j] = (float)mean;
            sb[j] = (float)sd;
        } else {
            if (!(mx > mn)) {
                if (!quiet)
                    fprintf(stderr, "anomalyd train: warning: column '%s' is constant "
                            "in the training rows; its range is set to 1\n", t->features[j]);
                mx = mn + 1.0;
            }
            sa[j] = (float)mn;
            sb[j] = (float)mx;
            if (!(sb[j] > sa[j]))       /* float rounding of a tiny range */
                sb[j] = nextafterf(sa[j], INFINITY);
        }
    }
    if (ad_model_set_scaler(m, scaler, sa, sb) < 0) {
        fprintf(stderr, "anomalyd train: could not set the scaler\n");
        goto done;
    }
    wsz = (size_t)T * (size_t)F;
    xs = malloc(sizeof(float) * t->n_rows * (size_t)F);
    if (xs == NULL)
        goto oom;
    ad_model_scale(m, t->x, xs, t->n_rows);

    /* ---- windows and training ---- */
    n_win = ad_train_cut_windows(xs, t->n_rows, F, T, hop, NULL);
    if (n_win == 0 || n_win > ((size_t)-1) / sizeof(float) / wsz) {
        fprintf(stderr, "anomalyd train: %s: cannot cut windows\n", input);
        goto done;
    }
    win = malloc(sizeof(float) * wsz * n_win);
    if (win == NULL)
        goto oom;
    ad_train_cut_windows(xs, t->n_rows, F, T, hop, win);
    to.val_gap = (T + hop - 1) / hop - 1;    /* no shared rows train/val */
    ad_train_init_weights(m, to.seed);
    if (show) {
        fprintf(stderr, "anomalyd train: %s: %zu rows, %d features, window %d hop %d "
                "-> %zu windows; %s, %zu parameters; loss %s\n", base_name(input),
                t->n_rows, F, T, hop, n_win, arch, m->n_params, ad_loss_name(to.loss));
    }
    g_cancel = 0;
    old_int = signal(SIGINT, on_sigint);
    if (ad_train_fit(m, win, n_win, &to, &rep, show ? progress_cb : NULL, NULL,
                     &g_cancel, err, sizeof(err)) < 0) {
        signal(SIGINT, old_int);
        fprintf(stderr, "anomalyd train: %s\n", err);
        goto done;
    }
    signal(SIGINT, old_int);
    if (rep.epochs_run == 0) {
        fprintf(stderr, "anomalyd train: stopped before the first epoch ended; "
                "no model written\n");
        goto done;
    }
    if (show && rep.cancelled)
        fprintf(stderr, "anomalyd train: interrupted; keeping epoch %d\n", rep.best_epoch);

    /* ---- error distribution on every window of the input (hop 1) ---- */
    free(win);
    n_stat = t->n_rows - (size_t)T + 1;
    {
        size_t stride = 1;
        if (n_stat > MAX_STATS_WINDOWS)
            stride = (n_stat + MAX_STATS_WINDOWS - 1) / MAX_STATS_WINDOWS;
        n_stat = ad_train_cut_windows(xs, t->n_rows, F, T, (int)stride, NULL);
        win = malloc(sizeof(float) * wsz * n_stat);
        if (win == NULL)
            goto oom;
        ad_train_cut_windows(xs, t->n_rows, F, T, (int)stride, win);
    }
    if (ad_train_error_stats(m, win, n_stat, (ad_metric)metric, &st, NULL) < 0) {
        fprintf(stderr, "anomalyd train: reconstruction errors are not finite\n");
        goto done;
    }

    /* ---- metadata ---- */
    sde = getenv("SOURCE_DATE_EPOCH");
    tj = ad_train_meta_json(&to, &rep, &st);
    meta = tj ? cJSON_Parse(tj) : NULL;
    prov = cJSON_CreateObject();
    if (meta == NULL || prov == NULL)
        goto oom;
    if (sde != NULL && *sde != '\0')
        cJSON_DeleteItemFromObject(meta, "seconds");
    cJSON_AddStringToObject(meta, "input", base_name(input));
    cJSON_AddNumberToObject(meta, "rows", (double)t->n_rows);
    cJSON_AddNumberToObject(meta, "window", T);
    cJSON_AddNumberToObject(meta, "hop", hop);
    cJSON_AddNumberToObject(meta, "n_windows", (double)n_win);
    cJSON_AddStringToObject(meta, "arch", arch);
    cJSON_AddStringToObject(meta, "scaler", scaler == AD_SCALER_STANDARD ? "standard" : "minmax");
    if (t->time_name)
        cJSON_AddStringToObject(meta, "time_column", t->time_name);
    cJSON_AddBoolToObject(meta, "interrupted", rep.cancelled);
    cJSON_AddStringToObject(prov, "tool", "anomalyd train " AD_VERSION);
    cJSON_AddStringToObject(prov, "input", base_name(input));
    {
        time_t now = time(NULL);
        char ts[32];
        struct tm tmv;
        if (sde != NULL && *sde != '\0')
            now = (time_t)strtoll(sde, NULL, 10);
        gmtime_r(&now, &tmv);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tmv);
        cJSON_AddStringToObject(prov, "created", ts);
    }
    free(m->training);
    free(m->provenance);
    m->training = cJSON_PrintUnformatted(meta);
    m->provenance = cJSON_PrintUnformatted(prov);
    if (m->training == NULL || m->provenance == NULL)
        goto oom;
    if (ad_model_save(m, output, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd train: %s\n", err);
        goto done;
    }
    if (show) {
        char vl[32] = "none";
        if (!isnan(rep.val_loss))
            snprintf(vl, sizeof(vl), "%.6g", rep.val_loss);
        fprintf(stderr, "anomalyd train: wrote %s (id %s): %d epochs (best %d%s), "
                "train loss %.6g, val loss %s, %.1fs, %.0f windows/s\n",
                output, m->id, rep.epochs_run, rep.best_epoch,
                rep.stopped_early ? ", early stop" : "", rep.train_loss,
                vl, rep.seconds, rep.windows_per_s);
        fprintf(stderr, "anomalyd train: training %s per window: mean %.4g std %.4g "
                "q99 %.4g q999 %.4g max %.4g\n", metric == AD_METRIC_MAE ? "MAE" : "MSE",
                st.mean, st.std, st.q99, st.q999, st.max);
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "anomalyd train: out of memory\n");
    rc = 1;
    goto done;
usage:
    train_usage(stderr);
    free_list(feat);
    return 2;
done:
    cJSON_Delete(meta);
    cJSON_Delete(prov);
    free(tj);
    free(sa);
    free(sb);
    free(xs);
    free(win);
    ad_model_free(m);
    ad_table_free(t);
    free_list(feat);
    return rc;
}
