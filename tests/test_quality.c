/*
 * test_quality.c - the data-quality monitor: a stuck sensor among varying
 * ones is flagged with its name within twice the stuck duration and the
 * others are not; a feature constant by nature is never "stuck"; dropout of
 * the whole stream and of one feature, raised after k periods and cleared
 * when samples return; learned and physical ranges; rejected bursts;
 * flagged spans for calibration; save/restore; config and state messages.
 */
#include <stdint.h>
#include <string.h>

#include "t.h"
#include "ad.h"
#include "quality.h"

#define F 5
static const char *const names[F] = { "flow", "temp", "pressure", "vibration", "current" };

/* ---- deterministic data -------------------------------------------------- */

static uint64_t rng = 88172645463325252ULL;

static double unif(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Roughly N(0,1): sum of 12 uniforms - 6. */
static double noise(void)
{
    double s = 0;
    int i;

    for (i = 0; i < 12; i++)
        s += unif();
    return s - 6;
}

/* Row i of a 5-feature pump: every feature varies. Pressure in Pa. */
static void pump_row(int i, double *v)
{
    v[0] = 50 + 5 * sin(i * 0.05) + noise();
    v[1] = 60 + 0.5 * noise();
    v[2] = 101325 + 2 * noise();
    v[3] = 0.3 + 0.05 * noise();
    v[4] = 12 + sin(i * 0.01) + 0.2 * noise();
}

/* ---- event capture ------------------------------------------------------- */

#define MAXEV 64
static ad_dq_event evs[MAXEV];
static int n_ev;

static void on_event(const ad_dq_event *ev, void *user)
{
    (void)user;
    if (n_ev < MAXEV)
        evs[n_ev] = *ev;
    n_ev++;
}

static ad_dq *mk(const ad_dq_cfg *c, int nf, const double *pmin, const double *pmax)
{
    ad_dq *q = NULL;
    char err[200];

    n_ev = 0;
    rng = 88172645463325252ULL;
    if (ad_dq_new(&q, c, "pump1", nf, pmin, pmax, on_event, NULL, err, sizeof err) != 0)
        fprintf(stderr, "ad_dq_new: %s\n", err);
    return q;
}

#define TS(i) (1700000000000LL + 1000LL * (i))

/* ---- cases --------------------------------------------------------------- */

static void test_stuck_pressure(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F], frozen = 0;
    int i, flagged_before = 0, flagged_stuck = 0;
    const int freeze = 300, resume = 400;
    ad_dq_learned l;

    ad_dq_cfg_default(&c);      /* learn 100, stuck_samples 30 */
    q = mk(&c, F, NULL, NULL);
    for (i = 0; i < 450; i++) {
        int fl;
        pump_row(i, v);
        if (i == freeze - 1)
            frozen = v[2];
        if (i >= freeze && i < resume)
            v[2] = frozen;      /* frozen at its last value */
        fl = ad_dq_row(q, TS(i), v, NULL);
        if (i < freeze && fl)
            flagged_before++;
        if (i >= freeze + 60 && i < resume && (fl & AD_DQ_F_STUCK))
            flagged_stuck++;
    }
    ad_dq_get_learned(q, 2, &l);
    T_NOTE("pressure learned: center %.3f sigma %.3f step %.3f run_max %u period %.0f ms",
           l.center, l.sigma, l.step, l.run_max, l.period_ms);
    T_CHECK(l.learned && l.varies && l.stuck_need == 30, "learned %d varies %d need %llu",
            l.learned, l.varies, (unsigned long long)l.stuck_need);
    T_CHECK(fabs(l.center - 101325) < 1 && l.sigma > 1 && l.sigma < 3,
            "pressure center %.4f sigma %.4f (float offsets keep Pa precision)",
            l.center, l.sigma);
    T_CHECK(flagged_before == 0, "%d clean rows flagged before the freeze", flagged_before);
    T_CHECK(n_ev == 2, "events %d (raise and clear of one condition)", n_ev);
    if (n_ev >= 2) {
        int64_t delay = evs[0].start_ms - TS(freeze);
        T_NOTE("stuck raised %lld ms after the freeze (limit 2 x 30 s = 60000 ms)",
               (long long)delay);
        T_CHECK(evs[0].check == AD_DQ_STUCK && evs[0].feature == 2 && evs[0].active,
                "raised check %d feature %d", evs[0].check, evs[0].feature);
        T_CHECK(delay > 0 && delay <= 2 * 30000, "delay %lld ms", (long long)delay);
        T_CHECK(evs[0].since_ms == TS(freeze - 1), "since %lld (last moving sample %lld)",
                (long long)evs[0].since_ms, (long long)TS(freeze - 1));
        T_CHECK(evs[0].value == frozen, "held value %.6f", evs[0].value);
        T_CHECK(evs[1].check == AD_DQ_STUCK && evs[1].feature == 2 && !evs[1].active &&
                evs[1].end_ms == TS(resume) && strcmp(evs[0].id, evs[1].id) == 0,
                "cleared at %lld (resume %lld), ids %s / %s", (long long)evs[1].end_ms,
                (long long)TS(resume), evs[0].id, evs[1].id);
        T_CHECK(evs[1].since_ms == evs[0].since_ms && evs[1].start_ms == evs[0].start_ms,
                "the clear names the condition's since as the raise did (%lld, raise %lld)",
                (long long)evs[1].since_ms, (long long)evs[0].since_ms);
    }
    T_CHECK(flagged_stuck == resume - freeze - 60, "rows flagged stuck %d", flagged_stuck);
    /* calibration sees the whole flat run, back to its first sample */
    T_CHECK(ad_dq_flagged(q, TS(freeze), TS(freeze + 5)) == 1,
            "window at the start of the freeze is flagged (retroactively)");
    T_CHECK(ad_dq_flagged(q, TS(100), TS(freeze - 2)) == 0, "window before it is not");
    T_CHECK(ad_dq_flagged(q, TS(resume + 1), TS(449)) == 0, "window after the clear is not");
    ad_dq_free(q);
}

static void test_stuck_by_time(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F], frozen = 0;
    int i;

    ad_dq_cfg_default(&c);
    c.stuck_samples = 0;
    c.stuck_ms = 20000;
    q = mk(&c, F, NULL, NULL);
    for (i = 0; i < 300; i++) {
        pump_row(i, v);
        if (i == 199)
            frozen = v[0];
        if (i >= 200)
            v[0] = frozen;
        ad_dq_row(q, TS(i), v, NULL);
    }
    T_CHECK(n_ev == 1 && evs[0].check == AD_DQ_STUCK && evs[0].feature == 0 &&
            evs[0].by_time && evs[0].limit == 20000,
            "one stuck event on flow by time (n %d)", n_ev);
    if (n_ev >= 1) {
        int64_t delay = evs[0].start_ms - TS(200);
        T_NOTE("stuck_ms 20000: raised %lld ms after the freeze", (long long)delay);
        T_CHECK(delay > 0 && delay <= 40000, "delay %lld", (long long)delay);
    }
    ad_dq_free(q);
}

static void test_constant_by_nature(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F];
    int i, flagged = 0;
    ad_dq_learned l3, l4;

    ad_dq_cfg_default(&c);
    q = mk(&c, F, NULL, NULL);
    for (i = 0; i < 1000; i++) {
        pump_row(i, v);
        v[3] = 40 + 5 * ((i / 40) % 2); /* a setpoint: 40 / 45, every 40 rows */
        v[4] = 7.0;                   /* constant by nature */
        if (ad_dq_row(q, TS(i), v, NULL))
            flagged++;
    }
    ad_dq_get_learned(q, 3, &l3);
    ad_dq_get_learned(q, 4, &l4);
    T_NOTE("setpoint: varies %d run_max %u; constant: varies %d step %g",
           l3.varies, l3.run_max, l4.varies, l4.step);
    T_CHECK(l4.learned && !l4.varies && l4.stuck_need == 0, "constant feature not 'varying'");
    T_CHECK(l3.learned && !l3.varies, "setpoint feature not 'varying'");
    T_CHECK(n_ev == 0, "no event in 1000 rows (got %d, first check %d feature %d)", n_ev,
            n_ev ? (int)evs[0].check : -1, n_ev ? evs[0].feature : -1);
    T_CHECK(flagged == 0, "rows flagged %d", flagged);
    ad_dq_free(q);
}

static void test_dropout_stream(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F];
    int i, fl;
    int64_t t, last = TS(199), back = TS(199) + 30000;

    ad_dq_cfg_default(&c);      /* dropout_factor 5 */
    q = mk(&c, F, NULL, NULL);
    for (i = 0; i < 200; i++) {
        pump_row(i, v);
        ad_dq_row(q, TS(i), v, NULL);
        ad_dq_advance(q, TS(i) + 500);
    }
    T_CHECK(n_ev == 0, "no event while rows arrive (%d)", n_ev);
    for (t = last + 500; t < back; t += 500)
        ad_dq_advance(q, t);
    T_CHECK(n_ev == 1, "one event for the silent stream (got %d)", n_ev);
    if (n_ev >= 1) {
        int64_t delay = evs[0].start_ms - last;
        T_NOTE("stream dropout raised %lld ms after the last row (5 periods = 5000 ms)",
               (long long)delay);
        T_CHECK(evs[0].check == AD_DQ_DROPOUT && evs[0].feature == -1 && evs[0].active,
                "check %d feature %d", evs[0].check, evs[0].feature);
        T_CHECK(delay > 5000 && delay <= 10000, "delay %lld", (long long)delay);
        T_CHECK(evs[0].since_ms == last && evs[0].limit == 5000, "since %lld limit %g",
                (long long)evs[0].since_ms, evs[0].limit);
    }
    T_CHECK(ad_dq_active(q) == 1, "open %d", ad_dq_active(q));
    pump_row(200, v);
    fl = ad_dq_row(q, back, v, NULL);
    T_CHECK(n_ev == 2 && !evs[1].active && evs[1].feature == -1 &&
            evs[1].end_ms == back && strcmp(evs[0].id, evs[1].id) == 0,
            "cleared when rows return (n %d)", n_ev);
    T_CHECK(fl & AD_DQ_F_DROPOUT, "the first row after the hole is flagged (%d)", fl);
    T_CHECK(ad_dq_active(q) == 0, "nothing open");
    T_CHECK(ad_dq_flagged(q, last + 1000, last + 2000) == 1, "the hole is flagged");
    for (i = 1; i < 20; i++) {
        pump_row(200 + i, v);
        fl = ad_dq_row(q, back + 1000LL * i, v, NULL);
        ad_dq_advance(q, back + 1000LL * i + 500);
        T_CHECK(fl == 0, "row %d after the return flagged %d", i, fl);
    }
    T_CHECK(n_ev == 2, "no more events (%d)", n_ev);
    ad_dq_free(q);
}

static void test_dropout_one_feature(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F];
    int i, f;
    int64_t last1 = TS(149);

    ad_dq_cfg_default(&c);
    q = mk(&c, F, NULL, NULL);
    /* samples one feature at a time, no advance: the other features' samples
     * are the clock */
    for (i = 0; i < 250; i++) {
        pump_row(i, v);
        for (f = 0; f < F; f++) {
            if (f == 1 && i >= 150 && i < 200)
                continue;           /* temp goes silent for 50 s */
            ad_dq_sample(q, TS(i) + 10 * f, f, v[f]);
        }
    }
    T_CHECK(n_ev == 2, "raise and clear for the silent feature (got %d)", n_ev);
    if (n_ev >= 2) {
        int64_t delay = evs[0].start_ms - last1;
        T_NOTE("feature dropout raised %lld ms after its last sample (limit 5000)",
               (long long)delay);
        T_CHECK(evs[0].check == AD_DQ_DROPOUT && evs[0].feature == 1 && evs[0].active &&
                delay > 5000 && delay <= 10000, "check %d feature %d delay %lld",
                evs[0].check, evs[0].feature, (long long)delay);
        T_CHECK(!evs[1].active && evs[1].feature == 1 && evs[1].end_ms == TS(200) + 10,
                "cleared by its next sample at %lld", (long long)evs[1].end_ms);
    }
    ad_dq_free(q);
}

/* A feature never seen while the others come (a misnamed field): a dropout
 * of that feature since the stream's first sample, once longer than the
 * stream's limit; it clears on the feature's first sample. */
static void test_dropout_never_seen(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F];
    int i, f;

    ad_dq_cfg_default(&c);
    q = mk(&c, F, NULL, NULL);
    for (i = 0; i < 250; i++) {
        pump_row(i, v);
        for (f = 0; f < F; f++)
            if (f != 3 || i >= 200)     /* vibration from row 200 on */
                ad_dq_sample(q, TS(i) + 10 * f, f, v[f]);
        ad_dq_advance(q, TS(i) + 50);
    }
    T_CHECK(n_ev == 2, "raise and clear for the unseen feature (got %d)", n_ev);
    if (n_ev >= 2) {
        T_NOTE("never-seen dropout raised at row %.1f, since %lld, limit %g ms",
               (double)(evs[0].start_ms - TS(0)) / (double)(TS(1) - TS(0)),
               (long long)evs[0].since_ms, evs[0].limit);
        T_CHECK(evs[0].check == AD_DQ_DROPOUT && evs[0].feature == 3 && evs[0].active &&
                evs[0].since_ms == TS(0) && evs[0].start_ms < TS(200),
                "check %d feature %d since %lld (want %lld)", evs[0].check, evs[0].feature,
                (long long)evs[0].since_ms, (long long)TS(0));
        T_CHECK(!evs[1].active && evs[1].feature == 3 && evs[1].end_ms == TS(200) + 30,
                "cleared by its first sample at %lld", (long long)evs[1].end_ms);
    }
    ad_dq_free(q);
}

/* Fast feature 0 every 1 s; slow feature 1 every 60 s. Learn both, save,
 * restore into a fresh monitor (a restart), feed 40 s of data: feature 1's
 * own learned dropout limit is 5 x 60 s; not yet seen since the restart is
 * not a dropout. */
static void test_never_seen_after_restore(void)
{
    ad_dq_cfg c; ad_dq *q = NULL, *r = NULL; char err[256]; char *js; int i;
    ad_dq_cfg_default(&c);
    c.learn_samples = 16;
    q = mk(&c, 2, NULL, NULL);
    for (i = 0; i < 60 * 20; i++) {
        int64_t t = TS(0) + (int64_t)i * 1000;
        ad_dq_sample(q, t, 0, 1.0 + 0.1 * sin(i * 0.3));
        if (i % 60 == 0)
            ad_dq_sample(q, t + 1, 1, 5.0 + 0.1 * sin(i * 0.01));
        ad_dq_advance(q, t + 500);
    }
    T_CHECK(n_ev == 0, "no event while learning (got %d)", n_ev);
    {
        ad_dq_learned l; ad_dq_get_learned(q, 1, &l);
        T_NOTE("feature 1 learned %d, period %g ms, dropout limit %g ms", l.learned, l.period_ms, l.dropout_ms);
    }
    js = ad_dq_save(q);
    r = mk(&c, 2, NULL, NULL);
    T_CHECK(ad_dq_restore(r, js, err, sizeof err) == 0, "restore: %s", err);
    n_ev = 0;
    /* the restart: fast feature comes right away, the slow one is due in 40 s */
    for (i = 0; i < 40; i++) {
        int64_t t = TS(0) + 2000000 + (int64_t)i * 1000;
        ad_dq_sample(r, t, 0, 1.0 + 0.1 * sin(i * 0.3));
        ad_dq_advance(r, t + 500);
    }
    ad_dq_sample(r, TS(0) + 2000000 + 40000, 1, 5.0);
    if (n_ev > 0)
        T_NOTE("event: check %s feature %d active %d since %lld limit %g", ad_dq_check_name(evs[0].check),
               evs[0].feature, evs[0].active, (long long)(evs[0].since_ms - TS(0)), evs[0].limit);
    T_CHECK(n_ev == 0, "no dropout for the slow feature after a restart (got %d events)", n_ev);
    free(js); ad_dq_free(q); ad_dq_free(r);
}

static void test_range(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F], pmin[F], pmax[F];
    int i, fl, f;
    ad_dq_learned l;

    ad_dq_cfg_default(&c);
    c.range_k = 10;             /* learned range on (default off); clear after 5 */
    for (f = 0; f < F; f++)
        pmin[f] = pmax[f] = NAN;
    pmin[1] = 0;
    pmax[1] = 70;               /* temp: physical range 0..70 */
    q = mk(&c, F, pmin, pmax);
    for (i = 0; i < 150; i++) {
        pump_row(i, v);
        if (i == 20)
            v[1] = 1000;        /* physically impossible, while learning */
        fl = ad_dq_row(q, TS(i), v, NULL);
        if (i == 20)
            T_CHECK(fl & AD_DQ_F_RANGE, "impossible value flagged while learning (%d)", fl);
    }
    T_CHECK(n_ev == 2 && evs[0].check == AD_DQ_RANGE && evs[0].physical &&
            evs[0].feature == 1 && evs[0].value == 1000 && evs[0].hi == 70 &&
            evs[0].start_ms == TS(20) && !evs[1].active && evs[1].end_ms == TS(25),
            "physical: raise at row 20, clear after 5 in range (n %d)", n_ev);
    ad_dq_get_learned(q, 1, &l);
    T_CHECK(fabs(l.center - 60) < 0.3, "temp center %.3f not pulled by the 1000", l.center);
    ad_dq_get_learned(q, 3, &l);
    T_NOTE("vibration learned range [%.4f, %.4f]", l.lo, l.hi);
    n_ev = 0;
    pump_row(150, v);
    v[3] = l.center + 11 * l.sigma;
    fl = ad_dq_row(q, TS(150), v, NULL);
    T_CHECK(fl & AD_DQ_F_RANGE, "value 11 sigma away flagged (%d)", fl);
    T_CHECK(n_ev == 1 && evs[0].check == AD_DQ_RANGE && !evs[0].physical &&
            evs[0].feature == 3 && evs[0].lo == l.lo && evs[0].hi == l.hi,
            "learned range event on vibration (n %d)", n_ev);
    for (i = 151; i < 160; i++) {
        pump_row(i, v);
        fl = ad_dq_row(q, TS(i), v, NULL);
        T_CHECK((i < 155) == ((fl & AD_DQ_F_RANGE) != 0),
                "row %d flag %d (open until 5 in range)", i, fl);
    }
    T_CHECK(n_ev == 2 && !evs[1].active && evs[1].end_ms == TS(155), "cleared at row 155");
    ad_dq_free(q);
}

static void test_rejected_burst(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F];
    int i, fl;

    ad_dq_cfg_default(&c);      /* 10 per 60 s */
    q = mk(&c, F, NULL, NULL);
    /* sporadic rejections (one every 10 s) never raise */
    for (i = 0; i < 600; i++) {
        pump_row(i, v);
        ad_dq_row(q, TS(i), v, NULL);
        if (i % 10 == 0)
            ad_dq_rejected(q, 3, 1);
    }
    T_CHECK(n_ev == 0, "6 rejected a minute: no event (%d)", n_ev);
    /* a burst of 12 at once */
    for (i = 0; i < 3; i++)
        ad_dq_rejected(q, 3, 4);
    T_CHECK(n_ev == 1 && evs[0].check == AD_DQ_REJECTED && evs[0].feature == 3 &&
            evs[0].active && evs[0].start_ms == TS(599),
            "burst raised on vibration (n %d)", n_ev);
    for (i = 600; i < 800 && n_ev < 2; i++) {
        pump_row(i, v);
        fl = ad_dq_row(q, TS(i), v, NULL);
        if (n_ev < 2)
            T_CHECK(fl & AD_DQ_F_REJECTED, "row %d flagged while open", i);
    }
    T_CHECK(n_ev == 2 && !evs[1].active && evs[1].count == 12, "cleared (n %d)", n_ev);
    if (n_ev >= 2) {
        T_NOTE("rejected burst cleared %lld ms after the burst",
               (long long)(evs[1].end_ms - evs[0].start_ms));
        T_CHECK(evs[1].end_ms - evs[0].start_ms <= 2 * 60000, "within two windows");
    }
    /* unknown feature: the stream */
    ad_dq_rejected(q, -1, 50);
    T_CHECK(n_ev == 3 && evs[2].feature == -1 && evs[2].check == AD_DQ_REJECTED,
            "unknown-feature burst raised on the stream");
    ad_dq_free(q);
}

static void test_save_restore(void)
{
    ad_dq_cfg c;
    ad_dq *q, *r;
    double v[F], frozen = 0;
    char *s1, *s2, err[300];
    int i, f, rc, ok = 1;
    size_t m_learn, m_learned, m10;

    ad_dq_cfg_default(&c);
    q = mk(&c, F, NULL, NULL);
    m_learn = ad_dq_memory(q);
    for (i = 0; i < 150; i++) {
        pump_row(i, v);
        ad_dq_row(q, TS(i), v, NULL);
    }
    m_learned = ad_dq_memory(q);
    s1 = ad_dq_save(q);
    T_CHECK(s1 != NULL, "saved");
    r = mk(&c, F, NULL, NULL);
    rc = ad_dq_restore(r, s1, err, sizeof err);
    T_CHECK(rc == 0, "restore: %s", rc ? err : "");
    for (f = 0; f < F; f++) {
        ad_dq_learned a, b;
        ad_dq_get_learned(q, f, &a);
        ad_dq_get_learned(r, f, &b);
        if (memcmp(&a, &b, sizeof a) != 0) {
            ok = 0;
            T_NOTE("f%d: center %.17g/%.17g sigma %.17g/%.17g step %g/%g run %u/%u "
                   "period %g/%g gap %g/%g varies %d/%d", f, a.center, b.center, a.sigma,
                   b.sigma, a.step, b.step, a.run_max, b.run_max, a.period_ms, b.period_ms,
                   a.gap_ms, b.gap_ms, a.varies, b.varies);
        }
    }
    T_CHECK(ok, "learned figures identical after restore");
    s2 = ad_dq_save(r);
    T_CHECK(s2 && strcmp(s1, s2) == 0, "saved again: same text");
    T_CHECK(ad_dq_memory(r) == m_learned, "no learning buffers after restore (%zu vs %zu)",
            ad_dq_memory(r), m_learned);
    {
        ad_dq *q10 = NULL;
        ad_dq_new(&q10, &c, "pump1", 2 * F, NULL, NULL, NULL, NULL, err, sizeof err);
        for (i = 0; i < 150; i++) {
            double w[2 * F];
            pump_row(i, w);
            pump_row(i, w + F);
            ad_dq_row(q10, TS(i), w, NULL);
        }
        m10 = ad_dq_memory(q10);
        ad_dq_free(q10);
    }
    T_NOTE("memory F=5: %zu B learning, %zu B learned; %zu B per learned feature",
           m_learn, m_learned, (m10 - m_learned) / F);
    T_CHECK((m10 - m_learned) / F <= 192, "per-feature state %zu B", (m10 - m_learned) / F);
    T_CHECK(m_learn - m_learned >= F * 100 * 8 && m_learn - m_learned <= F * (100 * 8 + 64),
            "learning buffers %zu B (8 B per value and feature)", m_learn - m_learned);
    /* the restored monitor detects at once, without a learning span */
    n_ev = 0;
    for (i = 0; i < 80; i++) {
        pump_row(i, v);
        if (i == 0)
            frozen = v[2];
        v[2] = frozen;
        ad_dq_row(r, TS(1000 + i), v, NULL);
    }
    T_CHECK(n_ev == 1 && evs[0].feature == 2 && evs[0].check == AD_DQ_STUCK &&
            evs[0].start_ms - TS(1000) <= 60000, "stuck found after restore (n %d)", n_ev);
    free(s1);
    free(s2);
    ad_dq_free(q);
    ad_dq_free(r);
}

static void test_restore_errors(void)
{
    static const struct { const char *json; const char *msg; } cases[] = {
        { "[1]", "quality state: not a JSON object" },
        { "{\"version\":2}", "quality state: version must be 1" },
        { "{\"version\":1,\"features\":4,\"seq\":0,\"learned\":[]}",
          "quality state: features must be 2" },
        { "{\"version\":1,\"features\":2,\"seq\":-1,\"learned\":[null,null]}",
          "quality state: seq: must be an integer in [0,4294967295]" },
        { "{\"version\":1,\"features\":2,\"seq\":0,\"learned\":[null]}",
          "quality state: learned: must be an array of 2 entries" },
        { "{\"version\":1,\"features\":2,\"seq\":0,\"learned\":[null,"
          "{\"center\":1,\"sigma\":-1,\"step\":1,\"run_max\":1,\"varies\":true,"
          "\"period_ms\":1,\"gap_ms\":1}]}",
          "quality state: learned[1].sigma: must be a number in [0,1e+300]" },
        { "{\"version\":1,\"features\":2,\"seq\":0,\"learned\":[null,"
          "{\"center\":1,\"sigma\":1,\"step\":1,\"run_max\":1.5,\"varies\":true,"
          "\"period_ms\":1,\"gap_ms\":1}]}",
          "quality state: learned[1].run_max: must be an integer" },
        { "{\"version\":1,\"features\":2,\"seq\":0,\"learned\":[7,null]}",
          "quality state: learned[0]: must be null or an object" },
    };
    /* a valid first entry followed by a bad one changes nothing */
    static const char partial[] =
        "{\"version\":1,\"features\":2,\"seq\":9,\"learned\":["
        "{\"center\":1,\"sigma\":1,\"step\":1,\"run_max\":1,\"varies\":true,"
        "\"period_ms\":1000,\"gap_ms\":1000},{\"center\":1}]}";
    ad_dq_cfg c;
    ad_dq *q;
    char err[300];
    size_t i;
    ad_dq_stats st;

    ad_dq_cfg_default(&c);
    q = mk(&c, 2, NULL, NULL);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = ad_dq_restore(q, cases[i].json, err, sizeof err);
        T_CHECK(rc < 0 && strcmp(err, cases[i].msg) == 0, "case %zu: rc %d \"%s\"", i, rc, err);
    }
    T_CHECK(ad_dq_restore(q, partial, err, sizeof err) == AD_EFORMAT, "partial refused: %s",
            err);
    ad_dq_get_stats(q, &st);
    T_CHECK(st.features_learned == 0, "nothing applied (%d learned)", st.features_learned);
    ad_dq_free(q);
}

static void test_cfg_messages(void)
{
    static const struct { int field; double val; const char *msg; } cases[] = {
        { 0, 3, "quality.learn_samples: must be 16..1000000 (got 3)" },
        { 1, 1, "quality.stuck_samples: must be 0 (off) or 2..1000000000 (got 1)" },
        { 2, -5, "quality.stuck_ms: must be 0 (off) or 1..1e12 (got -5)" },
        { 3, 1.5, "quality.stuck_tol: must be in [0,1] (got 1.5)" },
        { 4, 0.5, "quality.range_k: must be 0 (off) or in [1,1e6] (got 0.5)" },
        { 5, 0, "quality.range_clear_samples: must be 1..1000000 (got 0)" },
        { 6, 1, "quality.dropout_factor: must be 0 (off) or in [1.5,1e6] (got 1)" },
        { 7, -1, "quality.reject_count: must be 0 (off) or 1..1000000000 (got -1)" },
        { 8, 0, "quality.reject_window_ms: must be 1..1e12 (got 0)" },
        { 4, NAN, "quality.range_k: must be 0 (off) or in [1,1e6] (got nan)" },
    };
    ad_dq_cfg c;
    ad_dq *q = NULL;
    char err[300];
    size_t i;
    double pmin[2] = { 5, NAN }, pmax[2] = { 1, NAN };

    ad_dq_cfg_default(&c);
    T_CHECK(ad_dq_cfg_check(&c, err, sizeof err) == 0, "defaults valid");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        ad_dq_cfg_default(&c);
        switch (cases[i].field) {
        case 0: c.learn_samples = (int)cases[i].val; break;
        case 1: c.stuck_samples = (int)cases[i].val; break;
        case 2: c.stuck_ms = (int64_t)cases[i].val; break;
        case 3: c.stuck_tol = cases[i].val; break;
        case 4: c.range_k = cases[i].val; break;
        case 5: c.range_clear_samples = (int)cases[i].val; break;
        case 6: c.dropout_factor = cases[i].val; break;
        case 7: c.reject_count = (int)cases[i].val; break;
        default: c.reject_window_ms = (int64_t)cases[i].val; break;
        }
        rc = ad_dq_new(&q, &c, "s", 2, NULL, NULL, NULL, NULL, err, sizeof err);
        T_CHECK(rc == AD_EINVAL && q == NULL && strcmp(err, cases[i].msg) == 0,
                "case %zu: \"%s\"", i, err);
    }
    ad_dq_cfg_default(&c);
    T_CHECK(ad_dq_new(&q, &c, "s", 2, pmin, pmax, NULL, NULL, err, sizeof err) == AD_EINVAL &&
            strcmp(err, "quality: physical range of feature 0: need finite min < max "
                   "(got 5..1)") == 0, "\"%s\"", err);
}

static void test_event_json(void)
{
    ad_dq_cfg c;
    ad_dq *q;
    double v[F], frozen = 0;
    int i;
    cJSON *a, *b;
    char *ta, *tb;

    ad_dq_cfg_default(&c);
    q = mk(&c, F, NULL, NULL);
    for (i = 0; i < 250; i++) {
        pump_row(i, v);
        if (i == 149)
            frozen = v[2];
        if (i >= 150 && i < 200)
            v[2] = frozen;
        ad_dq_row(q, TS(i), v, NULL);
    }
    T_CHECK(n_ev == 2, "events %d", n_ev);
    if (n_ev < 2) {
        ad_dq_free(q);
        return;
    }
    a = ad_dq_event_to_json(&evs[0], "pump1", names);
    b = ad_dq_event_to_json(&evs[1], "pump1", names);
    ta = cJSON_PrintUnformatted(a);
    tb = cJSON_PrintUnformatted(b);
    printf("# %s\n# %s\n", ta, tb);
    T_CHECK(strcmp(cJSON_GetObjectItem(a, "kind")->valuestring, "data_quality") == 0 &&
            strcmp(cJSON_GetObjectItem(a, "check")->valuestring, "stuck") == 0 &&
            strcmp(cJSON_GetObjectItem(a, "feature")->valuestring, "pressure") == 0 &&
            strcmp(cJSON_GetObjectItem(a, "state")->valuestring, "raised") == 0 &&
            cJSON_IsNull(cJSON_GetObjectItem(a, "end")) &&
            cJSON_GetObjectItem(a, "limit_samples")->valuedouble == 30,
            "raised JSON: %s", ta);
    T_CHECK(strcmp(cJSON_GetObjectItem(b, "state")->valuestring, "cleared") == 0 &&
            strcmp(cJSON_GetObjectItem(a, "id")->valuestring,
                   cJSON_GetObjectItem(b, "id")->valuestring) == 0 &&
            cJSON_GetObjectItem(b, "end")->valuedouble == (double)TS(200),
            "cleared JSON: %s", tb);
    T_CHECK(strcmp(evs[0].id, "pump1-dq-1700000178000-1") == 0, "id %s", evs[0].id);
    free(ta);
    free(tb);
    cJSON_Delete(a);
    cJSON_Delete(b);
    ad_dq_free(q);
}

int main(void)
{
    T_RUN(test_stuck_pressure);
    T_RUN(test_stuck_by_time);
    T_RUN(test_constant_by_nature);
    T_RUN(test_dropout_stream);
    T_RUN(test_dropout_one_feature);
    T_RUN(test_dropout_never_seen);
    T_RUN(test_never_seen_after_restore);
    T_RUN(test_range);
    T_RUN(test_rejected_burst);
    T_RUN(test_save_restore);
    T_RUN(test_restore_errors);
    T_RUN(test_cfg_messages);
    T_RUN(test_event_json);
    return t_done();
}
