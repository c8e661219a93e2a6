/*
 * notify.h - systemd service notification (sd_notify): READY=1 once the
 * daemon is connected, RELOADING=1 (with MONOTONIC_USEC) / READY=1 around a
 * SIGHUP reload, STOPPING=1, STATUS= lines, and WATCHDOG=1 pings from a loop
 * timer at half of WATCHDOG_USEC (so a stalled loop stops the pings and
 * systemd restarts the service). Without NOTIFY_SOCKET every call is a
 * no-op.
 */
#ifndef AD_NOTIFY_H
#define AD_NOTIFY_H

#include <uv.h>

/* Start the watchdog timer if systemd asked for one. 0 or negative code. */
int ad_notify_init(uv_loop_t *loop);
/* Close the timer (call before closing the loop). */
void ad_notify_close(void);

void ad_notify_ready(void);
void ad_notify_reloading(void);
void ad_notify_stopping(void);
void ad_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* AD_NOTIFY_H */
