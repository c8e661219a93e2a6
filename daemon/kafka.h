/*
 * kafka.h - Kafka input, alerts and the state that moves with a partition
 * (librdkafka), driven from the daemon's libuv loop.
 *
 * Input: one high-level consumer (cooperative-sticky assignor) in
 * kafka.group_id subscribes to every detector's kafka_topics. A record's
 * key is the stream key, its value a payload of the detector's format.
 * librdkafka signals a non-empty queue on a pipe watched by uv_poll; the
 * loop then drains it with rd_kafka_consumer_poll(0): no busy polling and
 * no blocking wait on the loop.
 *
 * Offsets: committed every commit_interval_s at a barrier: consumption
 * stops, open windows are dispatched, and once every window is scored, its
 * events handed out and the producer's queue delivered, the offsets of
 * every record handed to the daemon are committed (at-least-once: after a
 * crash the records since the last commit are scored again; alert ids make
 * the duplicates recognisable). Not while a rebalance is under way
 * (interceptors on the consumer watch its JoinGroup and SyncGroup): such a
 * commit is refused, and librdkafka 2.0 then reports the assignment lost
 * (confluentinc/librdkafka#4059).
 *
 * State moves with its partition (kafka.state_topic set): every state
 * change of a stream (calibration, alert raised/cleared, accepted regime,
 * an operator command) is produced to the compacted state topic, key
 * "detector/stream", as a state file holds it (state_text: the detector's
 * state under the configured settings hash, the MQTT topic of the open
 * alert, operator feedback; state_restore reads them back); a hand-over
 * of a stream still calibrating carries how far it has got. On
 * revoke the same barrier runs, the streams of the revoked partitions are
 * flushed there with the partition's position and dropped, offsets
 * committed, then the partitions released; the same when librdkafka
 * reports the assignment lost while the consumer is still a group member,
 * only without the commit. On assign the new partitions stay paused while
 * the state topic is read to its end; the states of their streams are kept
 * and installed when each stream's first record arrives (state.c restore),
 * and a stream's records below the position its state was written with
 * are skipped (they are in that state).
 *
 * At a stop no record is applied from the signal on (kafka_drain): the
 * commit and the states' positions are each partition's first record not
 * applied, where its next owner reads on.
 *
 * Alerts of detectors with alerts_to kafka|both go to kafka.alert_topic
 * (idempotent producer), key "detector/stream".
 */
#ifndef AD_KAFKA_H
#define AD_KAFKA_H

struct ad_daemon;
struct stream_rec;

/* Start consumer and producer when the config has kafka.bootstrap_servers
 * (else nothing, 0). Negative code and err on a bad setting. */
int kafka_start(struct ad_daemon *dd, char *err, size_t errlen);
/* Backpressure: stop / resume reading records. */
void kafka_pause(struct ad_daemon *dd, int pause);
/* A stop begins: no record is applied any more; the assigned partitions
 * are paused, so each continues (kafka_stop's commit, the hand-over
 * positions) at its first record not applied. */
void kafka_drain(struct ad_daemon *dd);
/* At stop, once in-flight windows are done: flush states, commit, leave
 * the group and close the handles. */
void kafka_stop(struct ad_daemon *dd);
void kafka_free(struct ad_daemon *dd);           /* NULL-safe, at exit */

/* The state of s changed: produce it to the state topic (if any). */
void kafka_state_changed(struct ad_daemon *dd, struct stream_rec *s);
/* The state read from the state topic for detector/key (malloc'd, removed
 * from the table), or NULL. */
char *kafka_state_take(struct ad_daemon *dd, const char *det, const char *key);
/* The restore of stream det/key is installed: taken, the state it took
 * from the state topic (kafka_state_take) was restored, and the stream's
 * records before that state's hand-over offset are skipped; else (no such
 * state, it does not parse, the restore refused it) none are. */
void kafka_restore_result(struct ad_daemon *dd, const char *det, const char *key, int taken);
/* A record of det/key marked kafka_rec.handover (before its hand-over
 * state's offset, read while the restore was in flight): 1 when that
 * restore took the state (the record is skipped, counted), else 0. */
int kafka_handover_taken(struct ad_daemon *dd, const char *det, const char *key);

/* The Kafka topic the last record of stream key of detector det came
 * from, or NULL (not a stream fed by Kafka, or no Kafka). */
const char *kafka_stream_topic(struct ad_daemon *dd, const char *det, const char *key);
/* An alert's JSON for kafka.alert_topic. */
void kafka_alert(struct ad_daemon *dd, const char *det, const char *key, const char *json);
/* The same to topic (where an alert was raised, kafka.alert_topic then):
 * 0 when the producer took it, -1 when not (no Kafka configured, or
 * librdkafka refused it: said in a warning). */
int kafka_alert_to(struct ad_daemon *dd, const char *topic, const char *det, const char *key,
                   const char *json);
/* Alert events handed to the producer and not delivered yet: how many, and
 * each in the order produced (topic, record key, value), for the outbox. */
size_t kafka_pending(const struct ad_daemon *dd);
void kafka_pending_foreach(const struct ad_daemon *dd, void (*cb)(void *ud, const char *topic,
                           const char *key, const char *json), void *ud);
/* An alert event of the outbox produced again (key: its record key). */
int kafka_alert_again(struct ad_daemon *dd, const char *topic, const char *key,
                      const char *json);

#endif /* AD_KAFKA_H */
