/* fuzz_adapt.c - libFuzzer target for the continual-learning state parser:
 * any input either restores (and then saves to text that restores again to
 * the same text, and the learner keeps working on offered windows and
 * alerts) or fails with a message. Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "ad.h"
#include "adapt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T 3
#define F 2

static ad_adapt *mk(void)
{
    ad_adapt_cfg c;
    ad_thr_cfg thr;
    ad_adapt *a = NULL;
    char err[256];

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.every_windows = 5;
    c.every_hours = 0;
    c.normal_windows = 8;
    c.min_windows = 2;
    c.margin = 1;
    c.shadow_windows = 3;
    c.true_alerts = 4;
    ad_thr_cfg_default(&thr);
    if (ad_adapt_new(&a, &c, T, F, AD_METRIC_MAE, 1.0, &thr, err, sizeof err) != 0)
        abort();
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_adapt *a = mk(), *r = NULL;
    ad_adapt_event ev;
    ad_adapt_stats st;
    char err[512], *txt, *s1 = NULL, *s2 = NULL;
    float w[T * F];
    int i, k;

    txt = malloc(size + 1);
    if (txt == NULL)
        abort();
    memcpy(txt, data, size);
    txt[size] = '\0';
    err[0] = '\0';
    if (ad_adapt_restore(a, txt, err, sizeof err) == 0) {
        s1 = ad_adapt_save(a);
        r = mk();
        if (s1 == NULL || ad_adapt_restore(r, s1, err, sizeof err) != 0)
            abort();
        s2 = ad_adapt_save(r);
        if (s2 == NULL || strcmp(s1, s2) != 0)
            abort();
        /* the restored state drives the schedule and the alert set */
        for (i = 0; i < 40; i++) {
            ad_adapt_obs o = { 1000LL * i, 0.1 + 0.01 * (i % 5), NAN, i % 9 == 0, i % 11 == 0 };
            for (k = 0; k < T * F; k++)
                w[k] = (float)((i + k) % 7);
            if (i == 10)
                ad_adapt_alert_raised(a, "fuzz-1", 1000LL * i);
            if (i == 14)
                ad_adapt_alert_cleared(a, "fuzz-1", 1000LL * i, AD_ADAPT_CLEAR_TRUE);
            if (i == 20)
                ad_adapt_dq_since(a, 1000LL * (i - 3));
            ad_adapt_offer(a, w, NULL, &o);
            while (ad_adapt_poll_event(a, &ev)) {
                cJSON *j = ad_adapt_event_to_json(&ev, "fuzz");
                cJSON_Delete(j);
            }
        }
        ad_adapt_get_stats(a, &st);
        ad_adapt_job_free(ad_adapt_take_job(a, NULL));
    } else if (err[0] == '\0') {
        abort();
    }
    free(s1);
    free(s2);
    ad_adapt_free(a);
    ad_adapt_free(r);
    free(txt);
    return 0;
}
