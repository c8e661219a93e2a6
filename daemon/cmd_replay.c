/*
 * cmd_replay.c - `anomalyd replay`: push a CSV file through the very same
 * pipeline as live data (lib/detector.c: assembly, windows, calibration,
 * threshold, alerts), synchronously, with the timestamps of the file.
 *
 * Output: one CSV line per input row (--output, default stdout):
 *   row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase
 * score/smoothed are those of the window ending at that row (empty when no
 * window ended there); threshold is the current one (empty until
 * calibrated); exceeded = that window's smoothed score > threshold;
 * anomaly = the row-level prediction (--row-label: "alert" = an alert is
 * active after this row (default), "window" = the last scored window
 * exceeded the threshold); phase = the detector phase after the row, or
 * "training" on the row whose window completed the training set (replay
 * trains synchronously right there).
 * Events (phase changes, calibration, alerts raised/cleared, training) go
 * to --events as JSON lines, the same objects the daemon publishes.
 *
 * With --label COL the rows' labels give point metrics (SKAB definitions):
 *   precision, recall, F1 = TP/(TP+(FP+FN)/2), FAR = 100*FP/(FP+TN),
 *   MAR = 100*FN/(FN+TP)
 * over all rows, or only rows from --calibrate-rows on with
 * --exclude-calibration (SKAB protocol: test part only). Rows before the
 * first full window count as normal predictions.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "cmd.h"
#include "csv.h"
#include "detector.h"
#include "engine.h"
#include "model.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: anomalyd replay --model FILE --input FILE.csv [options]\n"
        "\n"
        "Pushes a CSV through the live detection pipeline (timestamps from the\n"
        "file) and writes one line per input row:\n"
        "  row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase\n"
        "\n"
        "input/output:\n"
        "  -m, --model FILE        model file (not with --training bootstrap)\n"
        "  -i, --input FILE        CSV: header, time column, the model's features\n"
        "  -o, --output FILE       per-row CSV (default stdout; '-' stdout)\n"
        "  -e, --events FILE       alert/phase events as JSON lines\n"
        "      --summary FILE      counters and metrics as one JSON object\n"
        "      --sep C             field separator (default: detected)\n"
        "      --stream NAME       stream key used in alert ids (default: input\n"
        "                          file name)\n"
        "      --label COL         label column (0/1): print point metrics\n"
        "      --row-label alert|window  row-level prediction (default alert)\n"
        "      --exclude-calibration     metrics only over rows >= --calibrate-rows\n"
        "windows and scores:\n"
        "      --hop N             rows between windows (default 1)\n"
        "      --metric mse|mae    reconstruction error (default mae)\n"
        "      --smooth A          EWMA weight in (0,1], 1 = off (default 1)\n"
        "      --missing hold|invalid  missing/NaN policy (default hold)\n"
        "      --hold-limit N      max consecutive held rows (default 0 = no limit)\n"
        "      --max-age S         seconds after which a value is missing (0 = off)\n"
        "calibration and threshold:\n"
        "      --calibrate-rows N  calibrate on the windows ending in the first N\n"
        "                          rows (then detect); overrides --calib-windows\n"
        "      --calibrate-from R  windows ending before row R are not scored (e.g.\n"
        "                          the rows the model was trained on)\n"
        "      --calib-windows N   calibrate on N windows (default 100)\n"
        "      --calib-duration S  or for S seconds of data\n"
        "      --method M          quantile|sigma|pot|fixed|model (default quantile)\n"
        "      --q Q               quantile level (default 0.99)\n"
        "      --margin X          quantile/model multiplier (default 1)\n"
        "      --k-sigma K         sigma: mean + K std (default 3)\n"
        "      --risk R            pot: target risk (default 1e-3)\n"
        "      --pot-init Q        pot: initial threshold quantile (default 0.98)\n"
        "      --value X           fixed: the threshold\n"
        "      --model-key KEY     model: key under training.error (default q99)\n"
        "      --adapt             keep learning the threshold from normal windows\n"
        "alerts:\n"
        "      --alert-k K --alert-n N   raise when K of the last N windows exceed\n"
        "                          (default 1 of 1)\n"
        "      --alert-m M         clear after M windows below (default 1)\n"
        "      --clear-ratio R     clear level = threshold x R (default 1)\n"
        "      --cooldown S        no new alert within S seconds of a clear\n"
        "online training:\n"
        "      --training none|finetune|bootstrap  (default none)\n"
        "      --train-windows N   windows collected for training (default 500)\n"
        "      --epochs N          training epochs (default 5)\n"
        "      --units N           bootstrap LSTM units (default 32)\n"
        "      --window T          bootstrap window length (no model file)\n"
        "  -h, --help\n");
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "anomalyd replay: --%s: expected an integer %ld..%ld, got '%s'\n",
                opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_dbl(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (*s == '\0' || *end != '\0' || !isfinite(v)) {
        fprintf(stderr, "anomalyd replay: --%s: expected a number, got '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    O_SEP = 256, O_STREAM, O_LABEL, O_ROWLABEL, O_EXCL, O_HOP, O_METRIC, O_SMOOTH,
    O_MISSING, O_HOLD, O_MAXAGE, O_CALROWS, O_CALWIN, O_CALDUR, O_METHOD, O_Q,
    O_MARGIN, O_KSIG, O_RISK, O_POTINIT, O_VALUE, O_MKEY, O_ADAPT, O_AK, O_AN, O_AM,
    O_CLEAR, O_COOL, O_TRAINING, O_TWIN, O_EPOCHS, O_UNITS, O_WINDOW, O_SUMMARY, O_CALFROM
};

/* Write a JSON object as one line and free it. */
static void put_json(FILE *f, cJSON *j)
{
    char *s;

    if (j == NULL)
        return;
    s = cJSON_PrintUnformatted(j);
    if (s) {
        fputs(s, f);
        fputc('\n', f);
        free(s);
    }
    cJSON_Delete(j);
}

static void fmt_num(char *buf, size_t len, double v)
{
    if (isfinite(v))
        snprintf(buf, len, "%.9g", v);
    else
        buf[0] = '\0';
}

int ad_cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        { "model", required_argument, NULL, 'm' },
        { "input", required_argument, NULL, 'i' },
        { "output", required_argument, NULL, 'o' },
        { "events", required_argument, NULL, 'e' },
        { "summary", required_argument, NULL, O_SUMMARY },
        { "sep", required_argument, NULL, O_SEP },
        { "stream", required_argument, NULL, O_STREAM },
        { "label", required_argument, NULL, O_LABEL },
        { "row-label", required_argument, NULL, O_ROWLABEL },
        { "exclude-calibration", no_argument, NULL, O_EXCL },
        { "hop", required_argument, NULL, O_HOP },
        { "metric", required_argument, NULL, O_METRIC },
        { "smooth", required_argument, NULL, O_SMOOTH },
        { "missing", required_argument, NULL, O_MISSING },
        { "hold-limit", required_argument, NULL, O_HOLD },
        { "max-age", required_argument, NULL, O_MAXAGE },
        { "calibrate-rows", required_argument, NULL, O_CALROWS },
        { "calib-windows", required_argument, NULL, O_CALWIN },
        { "calibrate-from", required_argument, NULL, O_CALFROM },
        { "calib-duration", required_argument, NULL, O_CALDUR },
        { "method", required_argument, NULL, O_METHOD },
        { "q", required_argument, NULL, O_Q },
        { "margin", required_argument, NULL, O_MARGIN },
        { "k-sigma", required_argument, NULL, O_KSIG },
        { "risk", required_argument, NULL, O_RISK },
        { "pot-init", required_argument, NULL, O_POTINIT },
        { "value", required_argument, NULL, O_VALUE },
        { "model-key", required_argument, NULL, O_MKEY },
        { "adapt", no_argument, NULL, O_ADAPT },
        { "alert-k", required_argument, NULL, O_AK },
        { "alert-n", required_argument, NULL, O_AN },
        { "alert-m", required_argument, NULL, O_AM },
        { "clear-ratio", required_argument, NULL, O_CLEAR },
        { "cooldown", required_argument, NULL, O_COOL },
        { "training", required_argument, NULL, O_TRAINING },
        { "train-windows", required_argument, NULL, O_TWIN },
        { "epochs", required_argument, NULL, O_EPOCHS },
        { "units", required_argument, NULL, O_UNITS },
        { "window", required_argument, NULL, O_WINDOW },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *model_path = NULL, *input = NULL, *output = NULL, *events = NULL;
    const char *summary = NULL, *stream = NULL, *label = NULL;
    int row_label_window = 0, excl = 0, c, rc = 1, boot_T = 0;
    long calib_rows = 0, calib_from = 0, lv;
    double dv;
    char sep = 0, err[1024];
    ad_detector_cfg cfg;
    ad_model *m = NULL;
    ad_table *t = NULL;
    ad_engine *eng = NULL;
    uint64_t eng_gen = 0;
    ad_detector *d = NULL;
    ad_csv_opts co;
    FILE *out = NULL, *evf = NULL;
    float *in = NULL, *rec = NULL, *sh = NULL;
    double *vals = NULL;
    uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
    size_t r;
    int T, F;

    ad_detector_cfg_default(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'e': events = optarg; break;
        case O_SUMMARY: summary = optarg; break;
        case O_SEP:
            if (strcmp(optarg, "\\t") == 0 || strcmp(optarg, "tab") == 0)
                sep = '\t';
            else if (strlen(optarg) == 1)
                sep = optarg[0];
            else {
                fprintf(stderr, "anomalyd replay: --sep: expected one character\n");
                return 2;
            }
            break;
        case O_STREAM: stream = optarg; break;
        case O_LABEL: label = optarg; break;
        case O_ROWLABEL:
            if (strcmp(optarg, "alert") == 0)
                row_label_window = 0;
            else if (strcmp(optarg, "window") == 0)
                row_label_window = 1;
            else {
                fprintf(stderr, "anomalyd replay: --row-label: alert or window\n");
                return 2;
            }
            break;
        case O_EXCL: excl = 1; break;
        case O_HOP:
            if (parse_long("hop", optarg, 1, 1000000, &lv)) return 2;
            cfg.hop = (int)lv;
            break;
        case O_METRIC:
            if (ad_detector_metric_from_name(optarg) < 0) {
                fprintf(stderr, "anomalyd replay: --metric: mse or mae\n");
                return 2;
            }
            cfg.metric = (ad_metric)ad_detector_metric_from_name(optarg);
            break;
        case O_SMOOTH:
            if (parse_dbl("smooth", optarg, &cfg.smooth_alpha)) return 2;
            break;
        case O_MISSING:
            if (ad_miss_policy_from_name(optarg) < 0) {
                fprintf(stderr, "anomalyd replay: --missing: hold or invalid\n");
                return 2;
            }
            cfg.stream.missing = (ad_miss_policy)ad_miss_policy_from_name(optarg);
            break;
        case O_HOLD:
            if (parse_long("hold-limit", optarg, 0, 1000000000, &lv)) return 2;
            cfg.stream.hold_limit = (int)lv;
            break;
        case O_MAXAGE:
            if (parse_dbl("max-age", optarg, &dv)) return 2;
            cfg.stream.max_age_ms = (int64_t)llround(dv * 1000);
            break;
        case O_CALROWS:
            if (parse_long("calibrate-rows", optarg, 1, 1000000000, &calib_rows)) return 2;
            break;
        case O_CALFROM:
            if (parse_long("calibrate-from", optarg, 0, 1000000000, &calib_from)) return 2;
            break;
        case O_CALWIN:
            if (parse_long("calib-windows", optarg, 0, 1000000000, &lv)) return 2;
            cfg.calib_windows = (int)lv;
            break;
        case O_CALDUR:
            if (parse_dbl("calib-duration", optarg, &dv)) return 2;
            cfg.calib_duration_ms = (int64_t)llround(dv * 1000);
            break;
        case O_METHOD:
            if (ad_thr_method_from_name(optarg) < 0) {
                fprintf(stderr, "anomalyd replay: --method: quantile|sigma|pot|fixed|model\n");
                return 2;
            }
            cfg.thr.method = (ad_thr_method)ad_thr_method_from_name(optarg);
            break;
        case O_Q: if (parse_dbl("q", optarg, &cfg.thr.q)) return 2; break;
        case O_MARGIN: if (parse_dbl("margin", optarg, &cfg.thr.margin)) return 2; break;
        case O_KSIG: if (parse_dbl("k-sigma", optarg, &cfg.thr.k)) return 2; break;
        case O_RISK: if (parse_dbl("risk", optarg, &cfg.thr.pot_risk)) return 2; break;
        case O_POTINIT: if (parse_dbl("pot-init", optarg, &cfg.thr.pot_init)) return 2; break;
        case O_VALUE: if (parse_dbl("value", optarg, &cfg.thr.fixed)) return 2; break;
        case O_MKEY:
            if (strlen(optarg) >= sizeof(cfg.thr.model_key)) {
                fprintf(stderr, "anomalyd replay: --model-key: too long\n");
                return 2;
            }
            strcpy(cfg.thr.model_key, optarg);
            break;
        case O_ADAPT: cfg.thr.adapt = 1; break;
        case O_AK:
            if (parse_long("alert-k", optarg, 1, AD_ALERT_MAX_N, &lv)) return 2;
            cfg.alert.k = (int)lv;
            break;
        case O_AN:
            if (parse_long("alert-n", optarg, 1, AD_ALERT_MAX_N, &lv)) return 2;
            cfg.alert.n = (int)lv;
            break;
        case O_AM:
            if (parse_long("alert-m", optarg, 1, 1000000, &lv)) return 2;
            cfg.alert.m = (int)lv;
            break;
        case O_CLEAR: if (parse_dbl("clear-ratio", optarg, &cfg.alert.clear_ratio)) return 2; break;
        case O_COOL:
            if (parse_dbl("cooldown", optarg, &dv)) return 2;
            cfg.alert.cooldown_ms = (int64_t)llround(dv * 1000);
            break;
        case O_TRAINING:
            if (ad_train_mode_from_name(optarg) < 0) {
                fprintf(stderr, "anomalyd replay: --training: none|finetune|bootstrap\n");
                return 2;
            }
            cfg.training = (ad_train_mode)ad_train_mode_from_name(optarg);
            break;
        case O_TWIN:
            if (parse_long("train-windows", optarg, 1, 10000000, &lv)) return 2;
            cfg.train_windows = (int)lv;
            break;
        case O_EPOCHS:
            if (parse_long("epochs", optarg, 1, 100000, &lv)) return 2;
            cfg.train_epochs = (int)lv;
            break;
        case O_UNITS:
            if (parse_long("units", optarg, 1, AD_MAX_UNITS, &lv)) return 2;
            cfg.boot_units = (int)lv;
            break;
        case O_WINDOW:
            if (parse_long("window", optarg, 1, AD_MAX_WINDOW, &lv)) return 2;
            boot_T = (int)lv;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "anomalyd replay: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (input == NULL || (model_path == NULL && cfg.training != AD_TRAIN_BOOTSTRAP)) {
        fprintf(stderr, "anomalyd replay: --input and --model (or --training bootstrap "
                "--window T) are required\n");
        usage(stderr);
        return 2;
    }
    if (cfg.training == AD_TRAIN_BOOTSTRAP && (model_path != NULL || boot_T < 1)) {
        fprintf(stderr, "anomalyd replay: --training bootstrap takes --window T and no --model\n");
        return 2;
    }
    if (excl && calib_rows == 0) {
        fprintf(stderr, "anomalyd replay: --exclude-calibration needs --calibrate-rows\n");
        return 2;
    }
    if (calib_rows > 0)
        cfg.calib_windows = 0;     /* the row count decides */
    if (ad_detector_cfg_check(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "anomalyd replay: %s\n", err);
        return 2;
    }
    if (stream == NULL) {
        const char *b = strrchr(input, '/');
        stream = b ? b + 1 : input;
    }

    if (model_path && ad_model_load(&m, model_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd replay: %s\n", err);
        goto done;
    }
    memset(&co, 0, sizeof(co));
    co.sep = sep;
    co.label_col = label;
    co.allow_missing = 1;
    if (m) {
        co.features = (const char *const *)m->features;
        co.n_features = m->n_features;
    }
    if (ad_csv_read(&t, input, &co, err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyd replay: %s\n", err);
        goto done;
    }
    if (ad_detector_new(&d, &cfg, stream, m, m ? 0 : boot_T, m ? 0 : t->n_features,
                        (const char *const *)t->features, err, sizeof(err)) != 0) {
        fprintf(stderr, "anomalyd replay: %s\n", err);
        goto done;
    }
    T = ad_detector_T(d);
    F = ad_detector_F(d);
    in = malloc((size_t)T * (size_t)F * sizeof(float));
    rec = malloc((size_t)T * (size_t)F * sizeof(float));
    sh = malloc((size_t)F * sizeof(float));
    vals = malloc((size_t)F * sizeof(double));
    if (!in || !rec || !sh || !vals) {
        fprintf(stderr, "anomalyd replay: out of memory\n");
        goto done;
    }
    out = (output == NULL || strcmp(output, "-") == 0) ? stdout : fopen(output, "w");
    if (out == NULL) {
        fprintf(stderr, "anomalyd replay: %s: cannot write\n", output);
        goto done;
    }
    if (events) {
        evf = fopen(events, "w");
        if (evf == NULL) {
            fprintf(stderr, "anomalyd replay: %s: cannot write\n", events);
            goto done;
        }
    }
    fprintf(out, "row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase\n");

    for (r = 0; r < t->n_rows; r++) {
        int64_t ts = t->time ? (int64_t)llround(t->time[r] * 1000.0) : (int64_t)r * 1000;
        ad_window_job job;
        ad_event ev;
        ad_detector_stats st;
        int scored = 0, f, pred, again, trained = 0;
        double score = NAN, smoothed = NAN;
        char b1[40], b2[40], b3[40];

        for (f = 0; f < F; f++)
            vals[f] = t->x[r * (size_t)F + (size_t)f];
        ad_detector_push_row(d, ts, vals, NULL);
        do {
            again = 0;
            while (ad_detector_next_window(d, in, &job)) {
                float mse, mae;
                if (r < (size_t)calib_from)
                    continue;      /* not scored: never fed (--calibrate-from) */
                if (eng == NULL || eng_gen != job.gen) {
                    ad_engine_free(eng);
                    eng = ad_engine_new(job.model, 1);
                    eng_gen = job.gen;
                    if (eng == NULL) {
                        fprintf(stderr, "anomalyd replay: engine: out of memory\n");
                        goto done;
                    }
                }
                if (ad_engine_forward(eng, in, rec, 1) != 0) {
                    fprintf(stderr, "anomalyd replay: forward pass failed\n");
                    goto done;
                }
                ad_recon_error(in, rec, T, F, cfg.metric, &mse, &mae, sh);
                score = cfg.metric == AD_METRIC_MSE ? mse : mae;
                ad_detector_feed_score(d, &job, score, sh);
                ad_detector_get_stats(d, &st);
                smoothed = st.last_smoothed;
                scored = 1;
            }
            if (calib_rows > 0 && r + 1 == (size_t)calib_rows &&
                ad_detector_phase(d) == AD_PHASE_CALIBRATING &&
                ad_detector_finish_calibration(d, err, sizeof(err)) != 0)
                fprintf(stderr, "anomalyd replay: row %zu: calibration not done: %s\n",
                        r + 1, err);
            while (ad_detector_poll_event(d, &ev)) {
                if (evf)
                    put_json(evf, ad_event_to_json(d, &ev));
                if (ev.type == AD_EV_TRAIN_READY) {
                    ad_train_job *tj = ad_detector_take_train_job(d);
                    ad_model *nm = NULL;
                    char terr[512] = "";
                    if (tj && ad_train_job_run(tj, &nm, NULL, terr, sizeof(terr)) == 0) {
                        if (ad_detector_train_done(d, nm, 1, NULL) != 0) {
                            ad_model_free(nm);
                            ad_detector_train_done(d, NULL, 0, "model does not match");
                        }
                    } else {
                        fprintf(stderr, "anomalyd replay: training failed: %s\n", terr);
                        ad_detector_train_done(d, NULL, 0, terr);
                    }
                    ad_train_job_free(tj);
                    again = 1;
                    trained = 1;
                }
            }
        } while (again);

        ad_detector_get_stats(d, &st);
        pred = st.phase == AD_PHASE_DETECTING &&
            (row_label_window ? st.exceeded : st.alert_active);
        fmt_num(b1, sizeof(b1), scored ? score : NAN);
        fmt_num(b2, sizeof(b2), scored ? smoothed : NAN);
        fmt_num(b3, sizeof(b3), st.threshold);
        fprintf(out, "%zu,%lld,%s,%s,%s,%d,%d,%s,%s\n", r, (long long)ts, b1, b2, b3,
                scored && st.exceeded, pred, st.alert_id,
                ad_phase_name(trained ? AD_PHASE_TRAINING : st.phase));
        if (t->label && !(excl && r < (size_t)calib_rows)) {
            int y = t->label[r] > 0.5f;
            if (y && pred) tp++;
            else if (!y && pred) fp++;
            else if (y && !pred) fn++;
            else tn++;
        }
    }
    if (fflush(out) != 0) {
        fprintf(stderr, "anomalyd replay: write failed\n");
        goto done;
    }
    {
        ad_detector_stats st;
        double prec = tp + fp ? (double)tp / (double)(tp + fp) : 0;
        double recl = tp + fn ? (double)tp / (double)(tp + fn) : 0;
        double f1 = tp + fp + fn ? (double)tp / ((double)tp + 0.5 * (double)(fp + fn)) : 0;
        double far = fp + tn ? 100.0 * (double)fp / (double)(fp + tn) : 0;
        double mar = fn + tp ? 100.0 * (double)fn / (double)(fn + tp) : 0;

        ad_detector_get_stats(d, &st);
        fprintf(stderr,
                "replay: %zu rows, %llu windows (%llu scored, %llu invalid), threshold %g, "
                "%llu alerts, rejected %llu non-finite, %llu dup, %llu out-of-order\n",
                t->n_rows, (unsigned long long)st.windows,
                (unsigned long long)st.windows_scored,
                (unsigned long long)st.windows_invalid, st.threshold,
                (unsigned long long)st.alerts, (unsigned long long)st.stream.nonfinite,
                (unsigned long long)st.stream.dup, (unsigned long long)st.stream.ooo);
        if (t->label)
            fprintf(stderr,
                    "metrics: TP=%llu FP=%llu FN=%llu TN=%llu precision=%.4f recall=%.4f "
                    "F1=%.4f FAR=%.2f%% MAR=%.2f%%\n",
                    (unsigned long long)tp, (unsigned long long)fp, (unsigned long long)fn,
                    (unsigned long long)tn, prec, recl, f1, far, mar);
        if (summary) {
            FILE *sf = fopen(summary, "w");
            cJSON *j = cJSON_CreateObject();
            if (sf == NULL || j == NULL) {
                fprintf(stderr, "anomalyd replay: %s: cannot write\n", summary);
                if (sf)
                    fclose(sf);
                cJSON_Delete(j);
                goto done;
            }
            cJSON_AddNumberToObject(j, "rows", (double)t->n_rows);
            cJSON_AddNumberToObject(j, "windows", (double)st.windows);
            cJSON_AddNumberToObject(j, "windows_scored", (double)st.windows_scored);
            cJSON_AddNumberToObject(j, "windows_invalid", (double)st.windows_invalid);
            cJSON_AddNumberToObject(j, "alerts", (double)st.alerts);
            cJSON_AddNumberToObject(j, "threshold", isfinite(st.threshold) ? st.threshold : 0);
            cJSON_AddStringToObject(j, "phase", ad_phase_name(st.phase));
            cJSON_AddNumberToObject(j, "nonfinite", (double)st.stream.nonfinite);
            if (t->label) {
                cJSON_AddNumberToObject(j, "tp", (double)tp);
                cJSON_AddNumberToObject(j, "fp", (double)fp);
                cJSON_AddNumberToObject(j, "fn", (double)fn);
                cJSON_AddNumberToObject(j, "tn", (double)tn);
                cJSON_AddNumberToObject(j, "f1", f1);
                cJSON_AddNumberToObject(j, "far", far);
                cJSON_AddNumberToObject(j, "mar", mar);
            }
            put_json(sf, j);
            fclose(sf);
        }
    }
    rc = 0;
done:
    if (out && out != stdout)
        fclose(out);
    if (evf)
        fclose(evf);
    ad_engine_free(eng);
    ad_detector_free(d);
    ad_table_free(t);
    ad_model_free(m);
    free(in);
    free(rec);
    free(sh);
    free(vals);
    return rc;
}
