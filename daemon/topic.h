/*
 * topic.h - MQTT topic filters and topic levels: does a topic match a
 * subscription filter (with + and #), and which levels name the stream and
 * the feature.
 *
 * Matching follows MQTT 3.1.1 section 4.7: '+' matches exactly one level,
 * '#' (last) matches the parent level and any number of levels below,
 * and wildcards at the first level do not match topics starting with '$'.
 * Levels are separated by '/'; empty levels are levels.
 */
#ifndef AD_TOPIC_H
#define AD_TOPIC_H

#include <stddef.h>

/* A shared subscription "$share/<group>/<filter>" (MQTT 5, also taken by
 * mosquitto and others under 3.1.1): the broker delivers each message to
 * one subscriber of the group. Routing matches topics against <filter>:
 * the part after the group, returned here (`filter` itself when not
 * shared). */
const char *ad_topic_share_strip(const char *filter);

/*
 * A shared subscription keeps a stream on one instance only when each
 * stream is one topic (and the broker delivers a topic's messages to one
 * instance: mosquitto deals them round-robin). 1 and a sentence in out when
 * the filters of a detector (with its stream_levels) let one stream span
 * several topics under a shared subscription; 0 otherwise.
 */
int ad_topic_share_warning(char *const *filters, int n, const int *levels, int nlev,
                           char *out, size_t outlen);

/* 0 if `filter` is a valid subscription filter, else AD_EINVAL with the
 * reason in err ("'#' must be the last level", ...). */
int ad_topic_filter_check(const char *filter, char *err, size_t errlen);

/* 1 if `topic` (a publish topic, no wildcards) matches `filter`, else 0;
 * a $share/<group>/ prefix of filter is skipped. */
int ad_topic_match(const char *filter, const char *topic);

/*
 * 1 if some topic the publish template `tmpl` expands to could match
 * `filter` (a $share/<group>/ prefix skipped), else 0: {detector} is
 * replaced by `detector` (NULL: any name, a level holding it matches any
 * text), {stream} stands for any nlev levels (a stream key of nlev
 * stream_levels) and a level holding it for any text. Used to warn when the
 * daemon would receive what it publishes, or take data for commands.
 */
int ad_topic_template_overlap(const char *filter, const char *tmpl, const char *detector,
                              int nlev);

/*
 * Copy level `idx` of `topic` into out (idx < 0 counts from the end, -1 =
 * last). Returns the level's length, or -1 if there is no such level or it
 * does not fit in outlen (NUL included).
 */
int ad_topic_level(const char *topic, int idx, char *out, size_t outlen);

/*
 * Stream key: the levels listed in `levels` joined with '/' (n == 0: "" ).
 * Returns the length or -1 (missing level, too long).
 */
int ad_topic_stream_key(const char *topic, const int *levels, int n,
                        char *out, size_t outlen);

/*
 * Expand a publish topic template: {detector} and {stream} are replaced.
 * Returns the length or -1 if it does not fit.
 */
int ad_topic_expand(const char *tmpl, const char *detector, const char *stream,
                    char *out, size_t outlen);

#endif /* AD_TOPIC_H */
