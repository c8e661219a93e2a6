/*
 * cmd_replay.c - `anomalyd replay`: push a CSV file through the very same
 * pipeline as live data (lib/detector.c: assembly, windows, calibration,
 * threshold, alerts), synchronously, with the timestamps of the file.
 *
 * Output: one CSV line per input row (--output, default stdout), but for
 * rows skipped for their time (see replay_on_bad: a bad cell never stops a
 * replay):
 *   row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase,probability,log_likelihood,dq
 * score/smoothed are those of the window ending at that row (empty when no
 * window ended there); threshold is the current one (empty until
 * calibrated); exceeded = that window's smoothed score > threshold;
 * anomaly = the row-level prediction (--row-label: "alert" = an alert is
 * active after this row (default), "window" = the last scored window
 * exceeded the threshold); phase = the detector phase after the row, or
 * "training" on the row whose window completed the training set (replay
 * trains synchronously right there); probability and log_likelihood are
 * the anomaly probability of that window (empty when none); dq = 1 when a
 * data-quality condition is open after the row or was raised by it (a
 * dropout is raised and cleared by the row that ends the silence).
 * Events (phase changes, calibration, alerts raised/cleared, training,
 * data quality, regime acceptance, continual learning) go to --events as
 * JSON lines, the same objects the daemon publishes. Continual-learning
 * fine-tunes run synchronously when due, and a candidate in shadow is
 * scored on the same window as the live model (as the daemon's batches do).
 *
 * With -c FILE the pipeline is the one `anomalyd run -c FILE` builds for
 * the detector (--detector NAME, or the only one): model, row assembly
 * mode, window hop, score metric and smoothing, calibration, threshold,
 * alert and training settings come from the config (through the same
 * ad_detconf.pipe the daemon uses); any of the plain options below given
 * as well overrides that one setting. Without -c every setting starts from
 * the library's defaults, which are the config's defaults.
 *
 * With --label COL the rows' labels give point metrics (SKAB definitions):
 *   precision, recall, F1 = TP/(TP+(FP+FN)/2), FAR = 100*FP/(FP+TN),
 *   MAR = 100*FN/(FN+TP)
 * over all rows, or only rows from --calibrate-rows on with
 * --exclude-calibration (SKAB protocol: test part only). Rows before the
 * first full window count as normal predictions.
 *
 * --summary FILE: the counts as one JSON object; "threshold" is null and
 * "calibration": {"finished": false, "reason": ..} says why when no
 * threshold was ever set (calib_why).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "args.h"
#include "cmd.h"
#include "config.h"
#include "csv.h"
#include "detector.h"
#include "season.h"
#include "engine.h"
#include "model.h"

/* What the command line asks for. */
typedef struct replay_opts {
    const char *config, *detector, *model, *input, *output, *events, *summary;
    const char *stream, *label;
    int row_label;              /* 0 alert, 1 window */
    int excl;
    long calib_rows, calib_from;
    char sep;
    int time_unit;              /* numeric time column: 0 s, 1 ms, 2 us */
    int boot_T;
    ad_detector_cfg cfg;
} replay_opts;

/* The pipeline being replayed and its counters. */
typedef struct replay {
    const replay_opts *o;
    ad_detector_cfg cfg;
    const char *model_path;
    const ad_strlist *boot_features;   /* bootstrap with -c: feature names */
    int boot_T;
    ad_config *conf;
    ad_model *m;
    ad_table *t;
    ad_engine *eng;
    uint64_t eng_gen;
    ad_engine *sh_eng;                 /* the shadow candidate's engine */
    const ad_model *sh_model;
    char sh_id[AD_MODEL_ID_LEN + 1];
    float *sh_rec;
    float *sh_share;                   /* its shares (score.normalize) */
    ad_detector *d;
    FILE *out, *evf;
    float *in, *rec, *sh;
    double *vals;
    int T, F;
    int dq_raised;                     /* a dq condition raised this row */
    int64_t newest_ts;                 /* the newest row time pushed (INT64_MIN) */
    size_t newest_line, first_behind;  /* its CSV line; the first row behind it */
    size_t behind_of;                  /* ... the line it was behind */
    int64_t behind_ts;
    size_t bad_seen[2];                /* bad cells seen: values, times */
    uint64_t tp, fp, fn, tn;
    char calib_fail[600];              /* why --calibrate-rows could not end
                                        * calibration ("": it did, or not yet) */
} replay;

#define R_TYPES "rows|period|all"
#define REPLAY_NOPTS 64

static void replay_table(replay_opts *o, ad_arg *tab)
{
    ad_detector_cfg *c = &o->cfg;
    const ad_arg t[] = {
        AD_ARG_GROUP("input/output"),
        { "config", 'c', AD_ARG_STR, &o->config, 0, 0, NULL, "FILE",
          "take the pipeline of this daemon config (see below)", 0, NULL },
        { "detector", 0, AD_ARG_STR, &o->detector, 0, 0, NULL, "NAME",
          "with -c: the detector (default: the only one)", 0, NULL },
        { "model", 'm', AD_ARG_STR, &o->model, 0, 0, NULL, "FILE",
          "model file (not with --training bootstrap)", 0, NULL },
        { "input", 'i', AD_ARG_STR, &o->input, 0, 0, NULL, "FILE",
          "CSV: header, time column, the model's features", 0, NULL },
        { "output", 'o', AD_ARG_STR, &o->output, 0, 0, NULL, "FILE",
          "per-row CSV (default stdout; '-' stdout)", 0, NULL },
        { "events", 'e', AD_ARG_STR, &o->events, 0, 0, NULL, "FILE",
          "alert/phase events as JSON lines", 0, NULL },
        { "summary", 0, AD_ARG_STR, &o->summary, 0, 0, NULL, "FILE",
          "counters and metrics as one JSON object", 0, NULL },
        { "sep", 0, AD_ARG_SEP, &o->sep, 0, 0, NULL, "C",
          "field separator (default: detected)", 0, NULL },
        { "time-unit", 0, AD_ARG_CHOICE, &o->time_unit, 0, 0, "s|ms|us", "U",
          "unit of a numeric time column (default s)", 0, NULL },
        { "stream", 0, AD_ARG_STR, &o->stream, 0, 0, NULL, "NAME",
          "stream key used in alert ids (default: input\nfile name)", 0, NULL },
        { "label", 0, AD_ARG_STR, &o->label, 0, 0, NULL, "COL",
          "label column (0/1): print point metrics", 0, NULL },
        { "row-label", 0, AD_ARG_CHOICE, &o->row_label, 0, 0, "alert|window",
          "alert|window", "row-level prediction", AD_ARG_DEF, NULL },
        { "exclude-calibration", 0, AD_ARG_FLAG, &o->excl, 0, 0, NULL, NULL,
          "metrics only over rows >= --calibrate-rows", 0, NULL },
        AD_ARG_GROUP("windows and scores"),
        { "rows-mode", 0, AD_ARG_CHOICE, &c->stream.mode, 0, 0, R_TYPES, "MODE",
          "row assembly: rows|period|all", AD_ARG_DEF, NULL },
        { "period", 0, AD_ARG_SECONDS, &c->stream.period_ms, 0.001, 86400, NULL, "S",
          "period mode: row grid step, seconds", AD_ARG_DEF, NULL },
        { "hop", 0, AD_ARG_INT, &c->hop, 1, 1000000, NULL, "N",
          "rows between windows", AD_ARG_DEF, NULL },
        { "metric", 0, AD_ARG_CHOICE, &c->metric, 0, 0, "mse|mae|peak", "M",
          "reconstruction error: mse|mae|peak", AD_ARG_DEF, NULL },
        { "normalize", 0, AD_ARG_CHOICE, &c->normalize, 0, 0, "none|feature|feature_rms", "N",
          "feature: the score is the largest per-feature error\nover its calibration median "
          "(feature_rms: their\nroot mean square; score.normalize)", AD_ARG_DEF, NULL },
        { "smooth", 0, AD_ARG_NUM, &c->smooth_alpha, 0.0001, 1, NULL, "A",
          "EWMA weight in (0,1], 1 = off", AD_ARG_DEF, NULL },
        { "missing", 0, AD_ARG_CHOICE, &c->stream.missing, 0, 0, "hold|invalid",
          "hold|invalid", "missing/NaN policy", AD_ARG_DEF, NULL },
        { "hold-limit", 0, AD_ARG_INT, &c->stream.hold_limit, 0, 1000000, NULL, "N",
          "max consecutive held rows (0 = no limit)", AD_ARG_DEF, NULL },
        { "max-age", 0, AD_ARG_SECONDS, &c->stream.max_age_ms, 0, 1e9, NULL, "S",
          "seconds after which a value is missing (0 = off)", AD_ARG_DEF, NULL },
        { "max-gap", 0, AD_ARG_SECONDS, &c->stream.max_gap_ms, 0, 1e9, NULL, "S",
          "rows further apart restart the windows (0: never)", AD_ARG_DEF, NULL },
        { "max-gap-intervals", 0, AD_ARG_NUM, &c->stream.max_gap_intervals, 0, 1e6, NULL, "N",
          "... and further apart than N usual row intervals\n(0: --max-gap alone)", AD_ARG_DEF, NULL },
        AD_ARG_GROUP("calibration and threshold"),
        { "calibrate-rows", 0, AD_ARG_LONG, &o->calib_rows, 1, 1e9, NULL, "N",
          "calibrate on the windows ending in the first N\nrows (then detect); "
          "overrides --calib-windows", 0, NULL },
        { "calibrate-from", 0, AD_ARG_LONG, &o->calib_from, 0, 1e9, NULL, "R",
          "windows ending before row R are not scored (e.g.\nthe rows the model "
          "was trained on)", 0, NULL },
        { "calib-windows", 0, AD_ARG_INT, &c->calib_windows, 0, 1e8, NULL, "N",
          "calibrate on N windows", AD_ARG_DEF, NULL },
        { "calib-duration", 0, AD_ARG_SECONDS, &c->calib_duration_ms, 0, 1e9, NULL, "S",
          "or for S seconds of data (0 = no limit)", AD_ARG_DEF, NULL },
        { "method", 0, AD_ARG_CHOICE, &c->thr.method, 0, 0, "quantile|sigma|pot|fixed|model",
          "M", "quantile|sigma|pot|fixed|model", AD_ARG_DEF, NULL },
        { "q", 0, AD_ARG_NUM, &c->thr.q, 1e-9, 0.999999999, NULL, "Q",
          "quantile level", AD_ARG_DEF, NULL },
        { "margin", 0, AD_ARG_NUM, &c->thr.margin, 1e-6, 1e6, NULL, "X",
          "quantile/model multiplier", AD_ARG_DEF, NULL },
        { "k-sigma", 0, AD_ARG_NUM, &c->thr.k, 0, 1000, NULL, "K",
          "sigma: mean + K std", AD_ARG_DEF, NULL },
        { "risk", 0, AD_ARG_NUM, &c->thr.pot_risk, 1e-12, 0.5, NULL, "R",
          "pot: target risk", AD_ARG_DEF, NULL },
        { "pot-init", 0, AD_ARG_NUM, &c->thr.pot_init, 0.5, 0.9999, NULL, "Q",
          "pot: initial threshold quantile", AD_ARG_DEF, NULL },
        { "value", 0, AD_ARG_NUM, &c->thr.fixed, 0, 1e30, NULL, "X",
          "fixed: the threshold", 0, NULL },
        { "model-key", 0, AD_ARG_CBUF, c->thr.model_key, 0, sizeof c->thr.model_key,
          NULL, "KEY", "model: key under training.error", AD_ARG_DEF, NULL },
        { "adapt", 0, AD_ARG_FLAG, &c->thr.adapt, 0, 0, NULL, NULL,
          "keep learning the threshold from normal windows", 0, NULL },
        AD_ARG_GROUP("alerts"),
        { "alert-k", 0, AD_ARG_INT, &c->alert.k, 1, AD_ALERT_MAX_N, NULL, "K",
          "raise when K of the last N windows exceed", AD_ARG_DEF, NULL },
        { "alert-n", 0, AD_ARG_INT, &c->alert.n, 1, AD_ALERT_MAX_N, NULL, "N",
          "see --alert-k", AD_ARG_DEF, NULL },
        { "alert-m", 0, AD_ARG_INT, &c->alert.m, 1, 1000000, NULL, "M",
          "clear after M windows below the clear level", AD_ARG_DEF, NULL },
        { "clear-ratio", 0, AD_ARG_NUM, &c->alert.clear_ratio, 0.001, 1, NULL, "R",
          "clear level = threshold x R", AD_ARG_DEF, NULL },
        { "raise-ratio", 0, AD_ARG_NUM, &c->alert.raise_ratio, 1, 100, NULL, "R",
          "raise level = threshold x R (alert.raise_ratio)", AD_ARG_DEF, NULL },
        { "cooldown", 0, AD_ARG_SECONDS, &c->alert.cooldown_ms, 0, 1e9, NULL, "S",
          "no new alert within S seconds of a clear", AD_ARG_DEF, NULL },
        AD_ARG_GROUP("online training"),
        { "training", 0, AD_ARG_CHOICE, &c->training, 0, 0, "none|finetune|bootstrap",
          "MODE", "none|finetune|bootstrap", AD_ARG_DEF, NULL },
        { "train-windows", 0, AD_ARG_INT, &c->train_windows, 0, 10000000, NULL, "N",
          "windows collected for training (0: no count limit)", AD_ARG_DEF, NULL },
        { "train-duration", 0, AD_ARG_SECONDS, &c->train_duration_ms, 0, 1e9, NULL, "S",
          "or until the rows span S seconds of data (0 = no limit)", AD_ARG_DEF, NULL },
        { "epochs", 0, AD_ARG_INT, &c->train_epochs, 1, 100000, NULL, "N",
          "training epochs", AD_ARG_DEF, NULL },
        { "units", 0, AD_ARG_INT, &c->boot_units, 1, AD_MAX_UNITS, NULL, "N",
          "bootstrap LSTM units", AD_ARG_DEF, NULL },
        { "window", 0, AD_ARG_INT, &o->boot_T, 1, AD_MAX_WINDOW, NULL, "T",
          "bootstrap window length (no model file)", 0, NULL },
        AD_ARG_END
    };
    _Static_assert(sizeof t <= REPLAY_NOPTS * sizeof(ad_arg), "REPLAY_NOPTS too small");
    memcpy(tab, t, sizeof t);
}

static void usage(FILE *f, const ad_arg *tab)
{
    fprintf(f,
        "usage: anomalyd replay --model FILE --input FILE.csv [options]\n"
        "       anomalyd replay -c CONFIG [--detector NAME] --input FILE.csv [options]\n"
        "\n"
        "Pushes a CSV through the live detection pipeline (timestamps from the\n"
        "file) and writes one line per input row:\n"
        "  row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase,probability,log_likelihood,dq\n"
        "With -c the pipeline is the one 'anomalyd run -c CONFIG' builds for the\n"
        "detector; options given as well override single settings. Defaults below\n"
        "are the library's, which are the config's.\n"
        "\n");
    ad_args_help(f, tab);
}

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

/* A bad cell of the CSV (lib/csv.c, lenient): a value that is not a number
 * is a missing value, a row whose time is not a time (or not one in
 * 1970..9999) is skipped. The first REPLAY_BAD_TELL of each kind are named
 * (file, line, column, cell); the rest only counted, in the summary, so
 * that a file with a million bad cells does not flood stderr. */
#define REPLAY_BAD_TELL 10
static void replay_on_bad(int kind, const char *msg, void *ud)
{
    replay *r = ud;
    int is_time = kind == AD_CSV_BAD_TIME;
    size_t n = ++r->bad_seen[is_time];

    if (n <= REPLAY_BAD_TELL)
        fprintf(stderr, "anomalyd replay: %s (%s)\n", msg,
                is_time ? "row skipped" : "read as a missing value");
    else if (n == REPLAY_BAD_TELL + 1)
        fprintf(stderr, "anomalyd replay: more %s: counted in the summary, not named\n",
                is_time ? "rows with a bad time" : "non-numeric cells");
}

/* "named above", or "the first N named above" when n bad cells of a kind
 * were more than replay_on_bad names. */
static const char *named_above(size_t n, char *buf, size_t len)
{
    if (n <= REPLAY_BAD_TELL)
        return "named above";
    snprintf(buf, len, "the first %d named above", REPLAY_BAD_TELL);
    return buf;
}

/* -c FILE: the detector's pipeline as `run` builds it (the config's own
 * ad_detconf.pipe: defaults, auto row mode and validation already applied). */
static int load_config(replay *r, const replay_opts *o)
{
    char err[1024];
    const ad_detconf *dc = NULL;

    if (ad_config_load(&r->conf, o->config, err, sizeof err) != 0) {
        fprintf(stderr, "anomalyd replay: %s\n", err);
        return -1;
    }
    for (int i = 0; i < r->conf->n_det; i++)
        if (o->detector ? strcmp(r->conf->det[i].name, o->detector) == 0 : r->conf->n_det == 1)
            dc = &r->conf->det[i];
    if (!dc) {
        ad_buf names = { 0 };
        for (int i = 0; i < r->conf->n_det; i++)
            ad_buf_printf(&names, "%s%s", i ? ", " : "", r->conf->det[i].name);
        if (o->detector)
            fprintf(stderr, "anomalyd replay: --detector: %s has no detector \"%s\" "
                    "(it has: %s)\n", o->config, o->detector, names.s ? names.s : "");
        else
            fprintf(stderr, "anomalyd replay: %s has %d detectors: choose one with "
                    "--detector (%s)\n", o->config, r->conf->n_det, names.s ? names.s : "");
        ad_buf_free(&names);
        return -1;
    }
    r->cfg = dc->pipe;
    r->model_path = dc->model;
    if (dc->pipe.training == AD_TRAIN_BOOTSTRAP) {
        r->boot_T = dc->window_length;
        r->boot_features = &dc->features;
    }
    return 0;
}

/* Settings: the config's detector (or the defaults), then the options. */
static int replay_settings(replay *r, replay_opts *o, ad_arg *tab, int argc, char **argv)
{
    char err[1024];
    int rc;

    r->o = o;
    r->cfg = o->cfg;                    /* defaults, plus the options */
    r->model_path = o->model;
    r->boot_T = o->boot_T;
    if (o->config) {
        if (load_config(r, o))
            return 1;
        /* parse again over the config's settings: options override them */
        o->cfg = r->cfg;
        if ((rc = ad_args_parse("replay", tab, argc, argv, NULL, 0, NULL)) != 0)
            return 2;
        r->cfg = o->cfg;
        if (o->model)
            r->model_path = o->model;
        if (o->boot_T)
            r->boot_T = o->boot_T;
    }
    if (r->cfg.training == AD_TRAIN_BOOTSTRAP) {
        if (o->model || r->boot_T < 1) {
            fprintf(stderr, "anomalyd replay: --training bootstrap takes --window T "
                    "and no --model\n");
            return 2;
        }
        r->model_path = NULL;
    }
    if (!o->input || (!r->model_path && r->cfg.training != AD_TRAIN_BOOTSTRAP)) {
        fprintf(stderr, "anomalyd replay: --input and --model (or -c CONFIG, or "
                "--training bootstrap --window T) are required\n");
        return 2;
    }
    if (o->excl && o->calib_rows == 0) {
        fprintf(stderr, "anomalyd replay: --exclude-calibration needs --calibrate-rows\n");
        return 2;
    }
    if (o->calib_rows > 0)
        r->cfg.calib_windows = 0;       /* the row count decides */
    if (r->cfg.thr.method == AD_THR_FIXED && !(r->cfg.thr.fixed > 0)) {
        fprintf(stderr, "anomalyd replay: --method fixed needs --value X > 0\n");
        return 2;
    }
    if (ad_detector_cfg_check(&r->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "anomalyd replay: %s\n", err);
        return 2;
    }
    return 0;
}

/* Model, CSV, detector, buffers and output files. */
static int replay_open(replay *r)
{
    const replay_opts *o = r->o;
    char err[1024];
    const char *stream = o->stream;
    ad_csv_opts co;
    size_t tf;

    if (r->model_path && ad_model_load(&r->m, r->model_path, err, sizeof err) < 0)
        goto fail;
    memset(&co, 0, sizeof co);
    co.sep = o->sep;
    co.label_col = o->label;
    co.allow_missing = 1;
    co.lenient = 1;                     /* bad cells: see replay_on_bad */
    co.unix_time = 1;                   /* ts_ms = the time column x 1000 */
    co.time_unit_s = o->time_unit == 1 ? 1e-3 : o->time_unit == 2 ? 1e-6 : 1;
    co.on_bad = replay_on_bad;
    co.on_bad_ud = r;
    if (r->m) {
        co.features = (const char *const *)r->m->features;
        co.n_features = r->m->n_features;
    } else if (r->boot_features && r->boot_features->n > 0) {
        co.features = (const char *const *)r->boot_features->v;
        co.n_features = r->boot_features->n;
    }
    if (ad_csv_read(&r->t, o->input, &co, err, sizeof err) < 0)
        goto fail;
    if (r->t->n_rows > 0 && r->t->n_bad_time == r->t->n_rows) {
        snprintf(err, sizeof err, "%s: no row has a usable time (%zu rows; the first named "
                 "above; a numeric time column is read in --time-unit, seconds by default)",
                 o->input, r->t->n_rows);
        goto fail;
    }
    if (!stream) {
        const char *b = strrchr(o->input, '/');
        stream = b ? b + 1 : o->input;
    }
    if (ad_detector_new(&r->d, &r->cfg, stream, r->m, r->m ? 0 : r->boot_T,
                        r->m ? 0 : r->t->n_features, (const char *const *)r->t->features,
                        err, sizeof err) != 0)
        goto fail;
    r->T = ad_detector_T(r->d);
    r->F = ad_detector_F(r->d);
    tf = (size_t)r->T * (size_t)r->F;
    r->in = malloc(tf * sizeof(float));
    r->rec = malloc(tf * sizeof(float));
    r->sh = malloc((size_t)r->F * sizeof(float));
    r->vals = malloc((size_t)r->F * sizeof(double));
    if (!r->in || !r->rec || !r->sh || !r->vals) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    r->out = (!o->output || strcmp(o->output, "-") == 0) ? stdout : fopen(o->output, "w");
    if (!r->out) {
        snprintf(err, sizeof err, "%s: cannot write", o->output);
        goto fail;
    }
    if (o->events && !(r->evf = fopen(o->events, "w"))) {
        snprintf(err, sizeof err, "%s: cannot write", o->events);
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "anomalyd replay: %s\n", err);
    return -1;
}

/* The shadow candidate's score on the window in r->in (NAN when none). */
static double shadow_score(replay *r, const ad_window_job *job)
{
    const float *in;

    if (job->shadow == NULL)
        return NAN;
    if (r->sh_model != job->shadow || !r->sh_eng || strcmp(r->sh_id, job->shadow->id) != 0) {
        ad_engine_free(r->sh_eng);
        r->sh_eng = ad_engine_new(job->shadow, 1);
        r->sh_model = job->shadow;
        snprintf(r->sh_id, sizeof r->sh_id, "%s", job->shadow->id);
        if (!r->sh_eng)
            return NAN;
    }
    if (!r->sh_rec && !(r->sh_rec = malloc(2 * (size_t)r->T * (size_t)r->F * sizeof(float))))
        return NAN;
    if (!r->sh_share && !(r->sh_share = malloc((size_t)r->F * sizeof(float))))
        return NAN;
    in = r->in;
    if (!ad_model_same_scaler(job->model, job->shadow)) {
        float *rs = r->sh_rec + (size_t)r->T * (size_t)r->F;
        ad_model_rescale(job->model, job->shadow, r->in, rs, (size_t)r->T);
        in = rs;
    }
    if (ad_engine_forward(r->sh_eng, in, r->sh_rec, 1) != 0)
        return NAN;
    return ad_recon_score(in, r->sh_rec, r->T, r->F, r->cfg.metric, r->sh_share);
}

/* A continual-learning fine-tune, synchronously. */
static void replay_adapt(replay *r)
{
    ad_adapt_job *aj = ad_detector_take_adapt_job(r->d);
    ad_model *nm = NULL;
    ad_train_report rep;
    char terr[512] = "";

    if (aj == NULL)
        return;
    memset(&rep, 0, sizeof rep);
    if (ad_adapt_job_run(aj, &nm, &rep, NULL, terr, sizeof terr) != 0) {
        fprintf(stderr, "anomalyd replay: fine-tune failed: %s\n", terr);
        nm = NULL;
    }
    ad_detector_adapt_done2(r->d, nm, nm ? &rep : NULL, nm ? NULL : terr);
    ad_adapt_job_free(aj);
}

/* Score every window the queued rows formed (synchronously, batch 1). */
static int replay_windows(replay *r, size_t row, double *score, double *smoothed)
{
    ad_window_job job;
    int scored = 0;

    while (ad_detector_next_window(r->d, r->in, &job)) {
        ad_detector_stats st;

        if (row < (size_t)r->o->calib_from) {
            ad_detector_job_dropped(r->d, &job);    /* not scored (--calibrate-from) */
            continue;
        }
        if (!r->eng || r->eng_gen != job.gen) {
            ad_engine_free(r->eng);
            r->eng = ad_engine_new(job.model, 1);
            r->eng_gen = job.gen;
            if (!r->eng) {
                fprintf(stderr, "anomalyd replay: engine: out of memory\n");
                return -1;
            }
        }
        if (ad_engine_forward(r->eng, r->in, r->rec, 1) != 0) {
            fprintf(stderr, "anomalyd replay: forward pass failed\n");
            return -1;
        }
        double shs;
        int fed;

        *score = ad_recon_score(r->in, r->rec, r->T, r->F, r->cfg.metric, r->sh);
        shs = shadow_score(r, &job);
        if ((fed = ad_detector_feed_score3(r->d, &job, *score, r->sh, shs, r->sh_share)) < 0)
            return -1;
        ad_detector_get_stats(r->d, &st);
        /* the detector's score (normalised with score.normalize feature
         * once calibrated) */
        if (r->cfg.normalize != AD_NORM_NONE)
            *score = fed == 0 ? st.last_score : NAN;
        *smoothed = st.last_smoothed;
        scored = 1;
    }
    return scored;
}

/* Write the queued events; run a training job synchronously when one is
 * ready. Returns 1 when it trained, 2 when a fine-tune ran (windows or
 * events may be due again), else 0. */
static int replay_events(replay *r)
{
    ad_event ev;
    int trained = 0;

    while (ad_detector_poll_event(r->d, &ev)) {
        ad_train_job *tj;
        ad_model *nm = NULL;
        char terr[512] = "";

        if (r->evf)
            put_json(r->evf, ad_event_to_json(r->d, &ev));
        if (ev.type == AD_EV_DQ_RAISED)
            r->dq_raised = 1;
        if (ev.type == AD_EV_ADAPT_READY) {
            replay_adapt(r);
            trained |= 2;       /* its events are polled in the next round */
            continue;
        }
        if (ev.type != AD_EV_TRAIN_READY)
            continue;
        tj = ad_detector_take_train_job(r->d);
        if (tj && ad_train_job_run(tj, &nm, NULL, terr, sizeof terr) == 0) {
            if (ad_detector_train_done(r->d, nm, 1, NULL) != 0) {
                ad_model_free(nm);
                ad_detector_train_done(r->d, NULL, 0, "model does not match");
            }
        } else {
            fprintf(stderr, "anomalyd replay: training failed: %s\n", terr);
            ad_detector_train_done(r->d, NULL, 0, terr);
        }
        ad_train_job_free(tj);
        trained |= 1;
    }
    return trained;
}

/* The windows scored while input row `row` is pushed and its events run:
 * the last one's score and smoothed score, whether any was, and whether
 * scoring failed. */
typedef struct row_scores {
    size_t row;
    double score, smoothed;
    int scored, failed;
} row_scores;

/* The rows the last push or advance completed, into their windows now, as
 * the daemon takes them as each sample completes them (streams.c
 * push_samples): one step of the input can complete more rows than the
 * stream queues (a period grid with lateness that a row moves past many
 * rows at once), and taking them only after the row would lose the oldest
 * (stream.h THE ROW QUEUE), rows the daemon scores. */
static void replay_take(replay *r, row_scores *rs)
{
    int s;

    if (rs->failed || ad_detector_rows_queued(r->d) == 0)
        return;
    if ((s = replay_windows(r, rs->row, &rs->score, &rs->smoothed)) < 0)
        rs->failed = 1;
    else
        rs->scored |= s;
}

/* Push row i the way the daemon pushes a message: a whole row in rows mode,
 * one sample per feature otherwise (period mode then advances its grid to
 * the row's time, as the daemon's clock would). Before the push, data time
 * moves on to just before the row, as the daemon's timer would have moved
 * it during the silence: a gap in the file is a dropout (data quality) in
 * every mode. The rows each step completes are scored at once
 * (replay_take). */
static void replay_push_row(replay *r, size_t i, int64_t ts, row_scores *rs)
{
    if (ts > INT64_MIN) {
        ad_detector_advance(r->d, ts - 1);
        replay_take(r, rs);
    }
    for (int f = 0; f < r->F; f++)
        r->vals[f] = r->t->x[i * (size_t)r->F + (size_t)f];
    if (r->cfg.stream.mode == AD_ASM_ROWS) {
        ad_detector_push_row(r->d, ts, r->vals, NULL);
        replay_take(r, rs);
        return;
    }
    for (int f = 0; f < r->F; f++) {
        ad_detector_push_sample(r->d, ts, f, r->vals[f]);
        replay_take(r, rs);
    }
    if (r->cfg.stream.mode == AD_ASM_PERIOD) {
        ad_detector_advance(r->d, ts);
        replay_take(r, rs);
    }
}

/* Push row i (replay_push_row), noting the first row dropped for its time. */
static void replay_push(replay *r, size_t i, int64_t ts, row_scores *rs)
{
    uint64_t dropped = ad_detector_dropped(r->d);
    size_t line = r->t->line ? r->t->line[i] : i + 2;

    replay_push_row(r, i, ts, rs);
    /* the first row dropped for its time, and the row that set the newest
     * time then, are named at the end (one row far in the future drops
     * every row after it) */
    if (ad_detector_dropped(r->d) != dropped && r->first_behind == 0 && ts != INT64_MIN &&
        r->newest_ts != INT64_MIN) {
        r->first_behind = line;
        r->behind_of = r->newest_line;
        r->behind_ts = r->newest_ts;
    }
    if (ts > r->newest_ts) {
        r->newest_ts = ts;
        r->newest_line = line;
    }
}

/* One input row: push, score, events, the output line and the metrics. A
 * row without a time (the CSV reader refused it and said so: not a time,
 * or outside 1970..9999, which would not convert to ms) is not pushed and
 * has no output line nor metrics; --calibrate-rows still ends there. */
static int replay_row(replay *r, size_t i)
{
    const replay_opts *o = r->o;
    int skip = r->t->time && !ad_time_ok(r->t->time[i]);
    int64_t ts = !r->t->time ? (int64_t)i * 1000 :
                 skip ? INT64_MIN : (int64_t)llround(r->t->time[i] * 1000.0);
    ad_detector_stats st;
    row_scores rs = { i, NAN, NAN, 0, 0 };
    int again, trained = 0, pred;
    char b1[40], b2[40], b3[40], b4[40], b5[40], err[512];

    r->dq_raised = 0;
    if (!skip)
        replay_push(r, i, ts, &rs);
    do {
        replay_take(r, &rs);
        if (rs.failed)
            return -1;
        if (o->calib_rows > 0 && i + 1 == (size_t)o->calib_rows &&
            ad_detector_phase(r->d) == AD_PHASE_CALIBRATING &&
            ad_detector_finish_calibration(r->d, err, sizeof err) != 0) {
            fprintf(stderr, "anomalyd replay: row %zu: calibration not done: %s\n",
                    i + 1, err);
            snprintf(r->calib_fail, sizeof r->calib_fail, "ending it at row %zu "
                     "(--calibrate-rows) failed: %s", i + 1, err);
        }
        again = replay_events(r);
        trained |= again & 1;
    } while (again);
    if (skip)
        return 0;
    ad_detector_get_stats(r->d, &st);
    pred = st.phase == AD_PHASE_DETECTING && (o->row_label ? st.exceeded : st.alert_active);
    fmt_num(b1, sizeof b1, rs.scored ? rs.score : NAN);
    fmt_num(b2, sizeof b2, rs.scored ? rs.smoothed : NAN);
    fmt_num(b3, sizeof b3, st.threshold);
    fmt_num(b4, sizeof b4, rs.scored ? st.last_probability : NAN);
    fmt_num(b5, sizeof b5, rs.scored ? st.last_log_likelihood : NAN);
    fprintf(r->out, "%zu,%lld,%s,%s,%s,%d,%d,%s,%s,%s,%s,%d\n", i, (long long)ts, b1, b2, b3,
            rs.scored && st.exceeded, pred, st.alert_id,
            ad_phase_name(trained ? AD_PHASE_TRAINING : st.phase), b4, b5,
            st.dq_active > 0 || r->dq_raised);
    if (r->t->label && !(o->excl && i < (size_t)o->calib_rows)) {
        int y = r->t->label[i] > 0.5f;
        if (y && pred) r->tp++;
        else if (!y && pred) r->fp++;
        else if (y && !pred) r->fn++;
        else r->tn++;
    }
    return 0;
}

/* Why the stream has no threshold at the end of the input (st: its
 * stats), into buf. */
static void calib_why(const replay *r, const ad_detector_stats *st, char *buf, size_t len)
{
    if (r->calib_fail[0])
        snprintf(buf, len, "%s", r->calib_fail);
    else if (r->o->calib_rows > 0 && r->t->n_rows < (size_t)r->o->calib_rows)
        snprintf(buf, len, "the input has %zu rows, fewer than --calibrate-rows %ld",
                 r->t->n_rows, r->o->calib_rows);
    else if (st->phase == AD_PHASE_COLLECTING && st->coll_waiting)
        snprintf(buf, len, "the input ended while the stream was collecting (%s "
                 "training), waiting on rows a data-quality flag covers (%s): %llu "
                 "skipped with no window's rows taken in a row since, %llu windows collected",
                 ad_train_mode_name(r->cfg.training), st->coll_flags,
                 (unsigned long long)st->coll_flagged,
                 (unsigned long long)st->windows_collected);
    else if (st->phase == AD_PHASE_COLLECTING || st->phase == AD_PHASE_TRAINING)
        snprintf(buf, len, "the input ended while the stream was %s (%s training)",
                 ad_phase_name(st->phase), ad_train_mode_name(r->cfg.training));
    else if (r->cfg.calib_windows > 0)
        snprintf(buf, len, "the input ended after %llu of the %d calibration windows "
                 "(%llu windows scored)", (unsigned long long)st->calib_windows,
                 r->cfg.calib_windows, (unsigned long long)st->windows_scored);
    else
        snprintf(buf, len, "the input ended before calibration did (%llu calibration "
                 "windows, %llu windows scored)", (unsigned long long)st->calib_windows,
                 (unsigned long long)st->windows_scored);
}

/* Counters and metrics on stderr, and as JSON to --summary. */
static int replay_report(replay *r)
{
    ad_detector_stats st;
    uint64_t tp = r->tp, fp = r->fp, fn = r->fn, tn = r->tn;
    double prec = tp + fp ? (double)tp / (double)(tp + fp) : 0;
    double recl = tp + fn ? (double)tp / (double)(tp + fn) : 0;
    double f1 = tp + fp + fn ? (double)tp / ((double)tp + 0.5 * (double)(fp + fn)) : 0;
    double far = fp + tn ? 100.0 * (double)fp / (double)(fp + tn) : 0;
    double mar = fn + tp ? 100.0 * (double)fn / (double)(fn + tp) : 0;
    FILE *sf;
    cJSON *j, *cj;
    char nb[48], why[700] = "";

    ad_detector_get_stats(r->d, &st);
    if (!isfinite(st.threshold))
        calib_why(r, &st, why, sizeof why);
    /* dup and out-of-order count what was pushed: rows in rows mode */
    fprintf(stderr, "replay: %zu rows, %llu windows (%llu scored, %llu invalid), threshold "
            "%g, %llu alerts, rejected %llu non-finite values, %llu dup, %llu out-of-order "
            "%s\n", r->t->n_rows, (unsigned long long)st.windows,
            (unsigned long long)st.windows_scored, (unsigned long long)st.windows_invalid,
            st.threshold, (unsigned long long)st.alerts,
            (unsigned long long)st.stream.nonfinite, (unsigned long long)st.stream.dup,
            (unsigned long long)st.stream.ooo,
            r->cfg.stream.mode == AD_ASM_ROWS ? "rows" : "samples");
    if (why[0])
        fprintf(stderr, "replay: calibration never finished, no threshold and no alerts: "
                "%s\n", why);
    if (st.stream.overflow > 0)
        fprintf(stderr, "replay: %llu assembled rows lost: the stream's row queue (%d) was "
                "full (rows_overflow)\n", (unsigned long long)st.stream.overflow,
                AD_STREAM_QUEUE);
    if (r->t->n_nonnumeric > 0)
        fprintf(stderr, "replay: %zu non-numeric cell%s read as missing (%s; in the "
                "non-finite count too)\n", r->t->n_nonnumeric, r->t->n_nonnumeric == 1 ? "" : "s",
                named_above(r->t->n_nonnumeric, nb, sizeof nb));
    if (r->t->n_bad_time > 0)
        fprintf(stderr, "replay: %zu row%s skipped for a time that is none or outside "
                AD_TIME_RANGE " (%s)\n", r->t->n_bad_time, r->t->n_bad_time == 1 ? "" : "s",
                named_above(r->t->n_bad_time, nb, sizeof nb));
    if (r->first_behind > 0) {
        char iso[40];

        ad_iso_ms(r->behind_ts, iso, sizeof iso);
        fprintf(stderr, "replay: line %zu is the first row dropped for its time, at or before "
                "line %zu's (%s): rows not after the newest time so far are dropped\n",
                r->first_behind, r->behind_of, iso);
    }
    if (st.window_resets > 0 && r->cfg.stream.max_gap_ms > 0) {
        /* the relative part is of rows/all modes (a period grid restarts
         * at max_gap_ms) */
        int rel = r->cfg.stream.mode != AD_ASM_PERIOD && r->cfg.stream.max_gap_intervals > 0;
        char iv[96] = "";

        if (rel)
            snprintf(iv, sizeof iv, " and %g usual row intervals (rows.max_gap_intervals)",
                     r->cfg.stream.max_gap_intervals);
        fprintf(stderr, "gaps: the windows restarted %llu times after a hole in the "
                "timestamps longer than rows.max_gap_ms (%lld ms)%s, each time %d rows before "
                "the next window (%llu windows, %llu scored of %zu rows): where such holes "
                "are normal for this data, raise rows.max_gap_ms (--max-gap S; 0: never restart)%s\n",
                (unsigned long long)st.window_resets, (long long)r->cfg.stream.max_gap_ms, iv,
                ad_detector_T(r->d) - 1, (unsigned long long)st.windows,
                (unsigned long long)st.windows_scored, r->t->n_rows,
                rel ? " or rows.max_gap_intervals (--max-gap-intervals N)" : "");
    }
    if (r->cfg.season_ms > 0 && !ad_detector_season_on(r->d))
        fprintf(stderr, "season: off for this stream: calibration.season_ms holds fewer than "
                "4 of its windows\n");
    else if (r->cfg.season_ms > 0)
        fprintf(stderr, "season: %llu windows over the threshold raised nothing under the "
                "seasonal level; %d of %d phases have a level\n",
                (unsigned long long)st.windows_seasonal, ad_detector_season_phases(r->d),
                AD_SEASON_BINS);
    if (st.windows_kept > 0)
        fprintf(stderr, "kept: %llu windows over the threshold raised nothing: their rows "
                "moved the way of a change an alert left behind\n",
                (unsigned long long)st.windows_kept);
    if (r->cfg.alert.raise_ratio > 1)
        fprintf(stderr, "raise: %llu windows over the threshold raised nothing under "
                "alert.raise_ratio %g x it (no alert open; %s)\n",
                (unsigned long long)st.windows_under_raise, r->cfg.alert.raise_ratio,
                (r->cfg.alert.accept_after > 0 || r->cfg.alert.accept_after_ms > 0) &&
                r->cfg.alert.band == AD_BAND_LEARN ?
                "not learned as normal either, short of a run of alert.accept_after "
                "windows: alert.band learn" : "not learned as normal either");
    if (r->t->label)
        fprintf(stderr, "metrics: TP=%llu FP=%llu FN=%llu TN=%llu precision=%.4f "
                "recall=%.4f F1=%.4f FAR=%.2f%% MAR=%.2f%%\n", (unsigned long long)tp,
                (unsigned long long)fp, (unsigned long long)fn, (unsigned long long)tn,
                prec, recl, f1, far, mar);
    if (!r->o->summary)
        return 0;
    sf = fopen(r->o->summary, "w");
    j = cJSON_CreateObject();
    if (!sf || !j) {
        fprintf(stderr, "anomalyd replay: %s: cannot write\n", r->o->summary);
        if (sf)
            fclose(sf);
        cJSON_Delete(j);
        return -1;
    }
    cJSON_AddNumberToObject(j, "rows", (double)r->t->n_rows);
    cJSON_AddNumberToObject(j, "windows", (double)st.windows);
    cJSON_AddNumberToObject(j, "windows_scored", (double)st.windows_scored);
    cJSON_AddNumberToObject(j, "windows_invalid", (double)st.windows_invalid);
    cJSON_AddNumberToObject(j, "alerts", (double)st.alerts);
    ad_json_num(j, "threshold", st.threshold);     /* null: never calibrated */
    cJSON_AddStringToObject(j, "phase", ad_phase_name(st.phase));
    if ((cj = cJSON_AddObjectToObject(j, "calibration"))) {
        cJSON_AddBoolToObject(cj, "finished", !why[0]);
        cJSON_AddNumberToObject(cj, "windows", (double)st.calib_windows);
        if (why[0])
            cJSON_AddStringToObject(cj, "reason", why);
    }
    cJSON_AddNumberToObject(j, "nonfinite", (double)st.stream.nonfinite);
    cJSON_AddNumberToObject(j, "nonnumeric", (double)r->t->n_nonnumeric);
    cJSON_AddNumberToObject(j, "bad_time", (double)r->t->n_bad_time);
    cJSON_AddNumberToObject(j, "windows_seasonal", (double)st.windows_seasonal);
    cJSON_AddNumberToObject(j, "windows_kept", (double)st.windows_kept);
    cJSON_AddNumberToObject(j, "windows_burst", (double)st.windows_burst);
    cJSON_AddNumberToObject(j, "windows_under_raise", (double)st.windows_under_raise);
    cJSON_AddNumberToObject(j, "window_resets", (double)st.window_resets);
    cJSON_AddNumberToObject(j, "rows_overflow", (double)st.stream.overflow);
    if (r->t->label) {
        cJSON_AddNumberToObject(j, "tp", (double)tp);
        cJSON_AddNumberToObject(j, "fp", (double)fp);
        cJSON_AddNumberToObject(j, "fn", (double)fn);
        cJSON_AddNumberToObject(j, "tn", (double)tn);
        cJSON_AddNumberToObject(j, "f1", f1);
        cJSON_AddNumberToObject(j, "far", far);
        cJSON_AddNumberToObject(j, "mar", mar);
    }
    put_json(sf, j);
    return fclose(sf) == 0 ? 0 : -1;
}

static void replay_close(replay *r)
{
    if (r->out && r->out != stdout)
        fclose(r->out);
    if (r->evf)
        fclose(r->evf);
    ad_engine_free(r->eng);
    ad_engine_free(r->sh_eng);
    free(r->sh_rec);
    free(r->sh_share);
    ad_detector_free(r->d);
    ad_table_free(r->t);
    ad_model_free(r->m);
    ad_config_free(r->conf);
    free(r->in);
    free(r->rec);
    free(r->sh);
    free(r->vals);
}

int ad_cmd_replay(int argc, char **argv)
{
    replay_opts o;
    replay r;
    ad_arg tab[REPLAY_NOPTS];
    int rc;

    memset(&o, 0, sizeof o);
    memset(&r, 0, sizeof r);
    r.newest_ts = INT64_MIN;
    ad_detector_cfg_default(&o.cfg);
    replay_table(&o, tab);
    rc = ad_args_parse("replay", tab, argc, argv, NULL, 0, NULL);
    if (rc == 1) {
        usage(stdout, tab);
        return 0;
    }
    if (rc == 0)
        rc = replay_settings(&r, &o, tab, argc, argv);
    if (rc == 0 && replay_open(&r) == 0) {
        fprintf(r.out, "row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase,probability,log_likelihood,dq\n");
        for (size_t i = 0; i < r.t->n_rows && rc == 0; i++)
            rc = replay_row(&r, i) ? 1 : 0;
        if (rc == 0 && fflush(r.out) != 0) {
            fprintf(stderr, "anomalyd replay: write failed\n");
            rc = 1;
        }
        if (rc == 0 && replay_report(&r) != 0)
            rc = 1;
    } else if (rc == 0) {
        rc = 1;
    }
    replay_close(&r);
    return rc;
}
