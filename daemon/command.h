/*
 * command.h - operator feedback over MQTT: commands to one stream on a
 * command topic, a JSON reply to each, and the feedback kept in the
 * stream's state (and its state file, so it survives a restart).
 *
 * TOPIC. commands.topic is a template with one {detector} level followed,
 * last, by {stream} (which may span levels: stream keys join topic levels
 * with '/'); default anomalyd/cmd/{detector}/{stream}, subscribed as
 * anomalyd/cmd/+/#. commands.enabled turns it on (default off).
 *
 * COMMAND. A JSON object:
 *   {"command": "ack" | "false_alarm" | "recalibrate" | "freeze" | "unfreeze" |
 *               "accept_drift",
 *    "alert_id": "..."   (ack, false_alarm: optional, default the open alert;
 *                         false_alarm also takes the stream's last alert
 *                         after it cleared),
 *    "by": "alice"       (optional, who: kept with ack and false_alarm),
 *    "request_id": any   (optional, echoed in the reply)}
 *   ack          the open alert is acknowledged: the stream's state shows
 *                "acknowledged": true with "acknowledged_by"/"_at" while it
 *                stays open.
 *   false_alarm  the alert's windows count as normal: its threshold is
 *                raised just above the alert's peak score
 *                (ad_detector_false_alarm) and an open alert closes with
 *                reason "false_alarm".
 *   recalibrate  calibration starts over (threshold and raise forgotten).
 *   freeze / unfreeze  threshold adaptation stops / resumes.
 *   accept_drift the change continual learning followed is the new normal:
 *                the live model becomes the reference of the drift measure
 *                (ad_detector_accept_drift), a drift notice out is
 *                withdrawn; result {"reference": id, "previous_ratio"}.
 *
 * REPLY. {"ok": true, "command": .., "detector": .., "stream": .., "result":
 * {..}} or {"ok": false, "command": .. | null, "error": "..", ...} on the
 * MQTT 5 response topic with the request's correlation data when the
 * command carries one, else on commands.reply_topic (default
 * anomalyd/reply/{detector}/{stream}). Bad JSON ("payload is not a JSON
 * object", with "invalid JSON at line L column C" when it does not parse,
 * and "...: text after the end of the command object" when more text
 * follows the object: it is not ignored), unknown detectors and streams, unknown
 * commands and refused commands are answered, counted in the stats
 * ("commands") and logged rate-limited; never fatal. A command over
 * max_payload_bytes is answered too ("payload of N bytes is over
 * max_payload_bytes M"), counted as "oversized" like any such message.
 *
 * PERSISTENCE. The feedback record (ack, false alarms, frozen) is stored as
 * "feedback" in the stream's state file next to the calibration; the
 * raised threshold and the frozen flag live in the calibration itself.
 *
 * Ownership: a stream's feedback record (struct feedback) is owned by its
 * stream_rec and freed with it (streams.c).
 */
#ifndef AD_COMMAND_H
#define AD_COMMAND_H

#include <stddef.h>
#include <cJSON.h>

#include "config.h"
#include "detector.h"

struct ad_daemon;
struct stream_rec;

typedef struct feedback {
    char ack_id[AD_ALERT_ID_LEN], ack_by[64], ack_at[40];
    char last_id[AD_ALERT_ID_LEN];  /* the stream's last alert (open or cleared) */
    double last_peak;
    char fa_id[AD_ALERT_ID_LEN], fa_by[64], fa_at[40];
    double fa_threshold;            /* threshold after the last false alarm */
    unsigned long long false_alarms;
    int frozen;
} feedback;

/* 0 when tmpl is a valid command topic template (see TOPIC), else
 * AD_EINVAL with "path: why" in err. */
int ad_cmd_topic_check(const char *tmpl, const char *path, char *err, size_t errlen);

/* The subscription filter of the command topic into out; its length, 0
 * when commands are disabled, -1 when it does not fit. */
int command_filter(const ad_cmd_cfg *c, char *out, size_t len);

/* A message: 1 when its topic is a command topic (handled and answered
 * here), 0 when it is not (the caller routes it to the detectors). Call
 * from the MQTT message callback (reads the MQTT 5 properties). */
int command_message(struct ad_daemon *dd, const char *topic, const void *payload,
                    size_t len);

/* A message over max_payload_bytes (len bytes): when its topic is a command
 * topic it is counted (stats "oversized"), logged naming the topic and the
 * size, and answered with an error reply (the reply topic needs no parsing:
 * the MQTT 5 response topic, else commands.reply_topic for the topic's
 * detector and stream); returns 1. 0 when it is not a command topic. */
int command_oversized(struct ad_daemon *dd, const char *topic, size_t len);

/* An alert event of s: remembered for a later false_alarm. */
void command_note_alert(struct stream_rec *s, const ad_event *ev);

/* Add the feedback fields to the stream's state JSON object o. */
void command_state_json(const struct stream_rec *s, const ad_detector_stats *st, cJSON *o);

/* Add "feedback" to a calibration state object o (nothing when the stream
 * has no operator feedback: s->fb NULL). */
void command_state_add(const struct stream_rec *s, cJSON *o);

/* Read "feedback" of a saved state text into s (nothing when absent).
 * Returns 0, or AD_ENOMEM. */
int command_state_restore(struct stream_rec *s, const char *js);

/* The "commands" object of the stats. */
void command_stats_json(const struct ad_daemon *dd, cJSON *o);

#endif /* AD_COMMAND_H */
