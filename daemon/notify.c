/*
 * notify.c - systemd notification through libsystemd's sd_notify (see
 * notify.h). The watchdog timer is unref'd so it never keeps the loop alive.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "ad.h"
#include "notify.h"

static uv_timer_t wd_timer;
static int wd_on;

static void wd_cb(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

int ad_notify_init(uv_loop_t *loop)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t ms = usec / 2000;
        if (ms < 1) ms = 1;
        uv_timer_init(loop, &wd_timer);
        uv_timer_start(&wd_timer, wd_cb, ms, ms);
        uv_unref((uv_handle_t *)&wd_timer);
        wd_on = 1;
        sd_notify(0, "WATCHDOG=1");
        ad_log(AD_LOG_INFO, "systemd watchdog: ping every %llu ms", (unsigned long long)ms);
    }
    return 0;
}

void ad_notify_close(void)
{
    if (wd_on) {
        uv_close((uv_handle_t *)&wd_timer, NULL);
        wd_on = 0;
    }
}

void ad_notify_ready(void)
{
    sd_notify(0, "READY=1");
}

void ad_notify_reloading(void)
{
    struct timespec ts;
    char buf[96];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(buf, sizeof buf, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    sd_notify(0, buf);
}

void ad_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

void ad_notify_status(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n = snprintf(buf, sizeof buf, "STATUS=");
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    sd_notify(0, buf);
}
