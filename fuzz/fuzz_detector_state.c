/* fuzz_detector_state.c - libFuzzer target for the detector's saved state
 * (ad_detector_restore: calibration, threshold state, the alert and its
 * acceptance progress with its step down and onset, the accepted regimes
 * with a re-entry run, "dq", "adapt", "window", "level", "burst", "noise"
 * and "band" sub-objects, a candidate in shadow with its span): any input
 * restores or fails with a message; a restored detector saves (as a
 * hand-over, window rows included) to text that restores again, and keeps
 * scoring, alerting and checking data quality on rows. The last byte picks
 * the settings: bit 0 acceptance in data time, bit 1 continual learning in
 * data time, bit 7 the trimmed estimator with calibration.recur and
 * threshold adaptation, and acceptance chains over a gap on a period (a
 * parked chain) accepted at a recurrence's onset. Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "ad.h"
#include "detector.h"
#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T 3
#define F 2

static ad_model *g_m;
static uint64_t g_hash;

/* ms: regime acceptance given in data time (alert.accept_after_ms), turned
 * into windows once the window period is known: after a restore, with an
 * alert possibly open. ams: the continual learner's counts in data time
 * (adapt.normal_ms, min_ms, margin_ms, shadow_ms; rows 1 s apart): its
 * normal set and shadow are sized then, with an adapt state restored
 * before. */
static ad_detector *mk(int ms, int ams, int rec)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[256];

    if (g_m == NULL) {
        ad_layer_spec L[1] = { { AD_LAYER_TD_DENSE, F, AD_ACT_LINEAR, 0 } };
        void *buf;
        size_t len;
        if (ad_model_create(&g_m, T, F, L, 1, err, sizeof err) != 0)
            abort();
        if (ad_model_serialize(g_m, &buf, &len) == 0)   /* sets the id */
            free(buf);
    }
    ad_detector_cfg_default(&c);
    c.calib_windows = 10;
    c.alert.accept_after = ms ? 0 : 5;
    c.alert.accept_after_ms = ms ? 5000 : 0;
    c.adapt.enabled = 1;
    c.adapt.every_windows = 5;
    c.adapt.every_hours = 0;
    c.adapt.normal_windows = 8;
    c.adapt.min_windows = 2;
    c.adapt.margin = 1;
    c.adapt.shadow_windows = 3;
    c.thr.min_samples = 3;      /* a candidate's threshold on 3 shadow windows */
    c.alert.level_ms = 10000;   /* the level test over 10 windows of 1 s */
    c.alert.burst_ms = 20000;   /* the burst test: 3 outliers within 20 s */
    c.alert.burst_n = 3;
    c.alert.burst_z = 5;
    c.alert.noise_ms = 3600000; /* the noise test on (its shortest span: one block) */
    c.alert.raise_ratio = 1.2;      /* a band run (alert.band raise) */
    c.alert.stepdown_ratio = 0.5;   /* step-down progress of an open alert */
    c.alert.stepdown_windows = 3;
    c.alert.stepdown_after = 4;
    if (ams) {
        c.adapt.normal_ms = 8000;
        c.adapt.min_ms = 2000;
        c.adapt.margin_ms = 1000;
        c.adapt.shadow_ms = 3000;
    }
    if (rec) {                      /* trimmed with recurrence, adapting; a seasonal level;
                                     * chains of recurrences on a period */
        c.alert.accept_gap = 6;
        c.alert.accept_period_ms = 20000;
        c.alert.accept_onset = 1;   /* the onset run ("accept"."onset") */
        c.thr.estimator = AD_EST_TRIMMED;
        c.thr.recur = 3;
        c.thr.adapt = 1;
        c.season_ms = 96000;
        c.season_periods = 2;
    }
    if (ad_detector_new(&d, &c, "fuzz", g_m, 0, 0, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_detector_state: the target's detector: %s\n", err);
        abort();
    }
    g_hash = ad_detector_cfg_hash(&c);
    return d;
}

/* A few rows through the restored detector, scored with the model. */
static void drive(ad_detector *d)
{
    float in[T * F], out[T * F], share[F];
    ad_window_job job;
    ad_event ev;
    int i;

    for (i = 0; i < 40; i++) {
        double row[F] = { (i % 5) * 0.1, i > 30 ? 50.0 : 0.2 };
        ad_detector_push_row(d, 1000LL * i, row, NULL);
        ad_detector_advance(d, 1000LL * i + 500);
        while (ad_detector_next_window(d, in, &job)) {
            float mae;
            ad_forward_ref(job.model, in, out, 1);
            ad_recon_error(in, out, T, F, AD_METRIC_MAE, NULL, &mae, share);
            ad_detector_feed_score(d, &job, mae, share);
        }
        while (ad_detector_poll_event(d, &ev)) {
            cJSON *j = ad_event_to_json(d, &ev);
            cJSON_Delete(j);
            if (ev.type == AD_EV_ADAPT_READY)
                ad_adapt_job_free(ad_detector_take_adapt_job(d));
        }
    }
}

/* A candidate in shadow saved in "adapt" ("shadow"): given back a model of
 * the saved id (the daemon's file), so the span's parser is reached;
 * refused or taken, the detector goes on. */
static int g_resumed;      /* candidates taken back (test_state_corpus) */

static void resume(ad_detector *d)
{
    char id[AD_MODEL_ID_LEN + 1], err[256];
    ad_model *c;

    if (!ad_detector_shadow_saved(d, id, sizeof id))
        return;
    if ((c = ad_model_clone(g_m)) == NULL)
        abort();
    snprintf(c->id, sizeof c->id, "%s", id);
    err[0] = '\0';
    if (ad_detector_shadow_resume(d, c, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort();
        ad_model_free(c);
    } else {
        g_resumed++;
    }
    if (ad_detector_shadow_saved(d, NULL, 0))  /* consumed either way */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int ms = size > 0 && (data[size - 1] & 1), ams = size > 0 && (data[size - 1] & 2);
    int rec = size > 0 && (data[size - 1] & 0x80);  /* seeds end in ASCII */
    ad_detector *d = mk(ms, ams, rec), *r = NULL;
    char err[512], *txt, *s1 = NULL, *s2 = NULL;

    txt = malloc(size + 1);
    if (txt == NULL)
        abort();
    memcpy(txt, data, size);
    txt[size] = '\0';
    /* model_id and settings_hash strings are set to the current ones, so
     * the parsers behind those checks (threshold state) are reached too */
    {
        cJSON *o = cJSON_Parse(txt);
        cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, "model_id") : NULL;
        cJSON *h = o ? cJSON_GetObjectItemCaseSensitive(o, "settings_hash") : NULL;
        char hs[24], *p2;
        snprintf(hs, sizeof hs, "%016llx", (unsigned long long)g_hash);
        if (cJSON_IsString(x) && cJSON_IsString(h) && cJSON_SetValuestring(x, g_m->id) &&
            cJSON_SetValuestring(h, hs) && (p2 = cJSON_PrintUnformatted(o)) != NULL) {
            free(txt);
            txt = p2;
        }
        cJSON_Delete(o);
    }
    err[0] = '\0';
    if (ad_detector_restore(d, txt, err, sizeof err) == 0) {
        resume(d);
        s1 = ad_detector_save_handover(d);
        r = mk(ms, ams, rec);
        if (s1 == NULL || ad_detector_restore(r, s1, err, sizeof err) != 0)
            abort();
        resume(r);
        s2 = ad_detector_save_handover(r);
        if (s2 == NULL)
            abort();
        drive(d);
        drive(r);
    } else if (err[0] == '\0') {
        abort();
    } else {
        drive(d);       /* a refused state leaves a working detector */
    }
    free(s1);
    free(s2);
    ad_detector_free(d);
    ad_detector_free(r);
    free(txt);
    return 0;
}
