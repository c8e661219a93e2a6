/*
 * daemon_int.h - the daemon's runtime structures, shared by its modules
 * (private: only the daemon/ sources include it; the public face is daemon.h).
 *
 * Who owns what:
 *   ad_daemon   owns the current generation (g), the MQTT client, the
 *               workers, the batch lists, the dead-stream list, the state
 *               writer queue and every counter. One per process, used on
 *               the loop thread only (except `cancel`, read by training).
 *   gen         (generation.c) owns its config and its det_rt array; each
 *               det_rt holds one reference to its shared model (mr) and
 *               owns its payload parser and its stream map's bucket array.
 *   stream_rec  (streams.c) is owned by the stream map of its det_rt while
 *               live, by ad_daemon.dead once killed. It owns its detector
 *               (d), a model trained online (own_model), a reference to the
 *               shared model (mr), the graveyard of replaced detectors the
 *               samples held while its restore is in flight and the list
 *               of its open data-quality alerts (dq_open). Batches,
 *               training, continual-learning and model-save tasks point at
 *               it without owning it: a stream with windows in flight, a
 *               training or adapt job, a save or a restore is marked dead
 *               and freed when the last of them comes back.
 *   batch       (batch.c) holds a model reference (mr) or, for a
 *               stream-owned model, none: the windows it carries keep that
 *               model alive (the detector's retired models, the stream's
 *               graveyard), so a batch is open only while it carries one.
 *   model_ref   refcounted on the loop thread (mr_get/mr_put); the last put
 *               frees the model.
 *
 * Module map: generation.c (config + models), streams.c (stream table,
 * limits, eviction, samples in, events out), state.c (state files, read and
 * written off the loop thread), batch.c (windows to the workers, scores
 * back, shadow models beside the live one), training.c (online training,
 * continual-learning jobs, promoted models saved), publish.c (alert, state,
 * status, stats JSON), stats.c (latency percentiles), retain.c (state
 * files of streams gone for state_retain_days removed), reload.c (SIGHUP:
 * new generation, adopt streams, swap), homeassistant.c (MQTT discovery and
 * entity states), command.c (operator commands over MQTT), metrics.c
 * (Prometheus text file), daemon.c (the loop and wiring).
 */
#ifndef AD_DAEMON_INT_H
#define AD_DAEMON_INT_H

#include <stdint.h>
#include <uv.h>
#include <cJSON.h>

#include "ad.h"
#include "config.h"
#include "detector.h"
#include "model.h"
#include "mqtt.h"
#include "payload.h"
#include "workers.h"

/* Samples of one message: room for what its bytes can hold (a sample
 * takes at least 5 of them: a SenML record {"v":1}, a JSON field "a":1),
 * kept up to SMP_KEEP samples between messages (a larger one's buffer is
 * freed after it). */
#define SMP_KEEP 65536
#define LAT_RING 4096            /* latency samples kept for percentiles */
#define KEY_MAX 256              /* stream key bytes */
#define STREAM_TOPICS 16         /* distinct topics kept per stream */

typedef struct model_ref {
    ad_model *m;
    int refs;
    uint64_t key;                /* engine cache key, unique per process */
    struct batch *open;          /* open batch for this model */
} model_ref;

/* A replaced detector waiting until no batch in flight reads its model. */
typedef struct old_det {
    ad_detector *d;
    ad_model *own;
    struct old_det *next;
} old_det;

/* One message's samples received while the stream's restore was in flight,
 * pushed in arrival order once it completes. */
typedef struct held_msg {
    struct held_msg *next;
    double now_s;                /* arrival time given to the message */
    int64_t rec_ms;              /* the Kafka record's time its samples without
                                  * one took, or INT64_MIN */
    char *origin;                /* the Kafka record ("in[0]@17"), or NULL */
    int handover;                /* kafka_rec.handover */
    int n;
    ad_sample smp[];
} held_msg;

/* The Kafka record a message is (streams_message_key): named in what is
 * logged about its samples; with kafka.row_time "record" its timestamp is
 * the time of the samples its payload gives none (borrowed, for the call). */
typedef struct kafka_rec {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t ts_ms;               /* record timestamp (ms since the epoch); -1:
                                  * none, or kafka.row_time "arrival" */
    const char *ts_type;         /* "CreateTime" or "LogAppendTime" */
    int handover;                /* before the offset of the hand-over state
                                  * whose restore is in flight: skipped if it
                                  * takes the state (kafka_handover_taken) */
} kafka_rec;

struct det_rt;
struct restore_req;

/* Where an open model alert was raised (one allocation, only while it is
 * open): the MQTT topic ("" when it did not go to MQTT, alerts_to kafka),
 * its cleared event goes there, also after a reload or a restart changed
 * alert.topic; and kafka, the Kafka topic it was produced to (NULL when it
 * did not go to Kafka; points into the same allocation). Kept in the state
 * file (state.c), whose scan at start clears it on both when its detector
 * is gone (publish.c). */
typedef struct alert_at {
    char id[AD_ALERT_ID_LEN];
    const char *kafka;
    char topic[];
} alert_at;

#define BAD_KINDS 24             /* kinds of bad input budgeted apart */
#define LIMIT_EVICT_LINES 10     /* stream-limit eviction notices a minute */

typedef struct stream_rec {
    uint64_t hash;               /* lookup fields first: one cache line */
    struct stream_rec *hnext;
    struct det_rt *det;          /* NULL once dead */
    ad_detector *d;              /* NULL while a new detector is restored */
    ad_model *own_model;         /* model loaded from the state dir (owned) */
    /* reload.shadow: the configured model file kept_file (its id) does not
     * run, the live model does: KEPT_REJECTED, the shadow rejected it;
     * KEPT_SHADOW, it is in shadow or waits for it. The live model is
     * saved in the state dir under the file's tag (training_save_kept)
     * and this is kept in the state file ("model_kept"), so that a restart
     * or an evicted stream's return runs the live model too (state.c) */
    int kept_why;
    char kept_file[AD_MODEL_ID_LEN + 1];
    model_ref *mr;               /* shared model reference (or NULL) */
    uint64_t serial;
    uint32_t epoch;              /* bumps when d is replaced */
    int inflight;                /* windows in open/submitted batches */
    int training;
    int dead;
    struct restore_req *restoring; /* the restore to install (state.c), or NULL */
    int restores;                /* restore requests on the thread pool */
    held_msg *held, *held_tail;  /* samples waiting for that restore */
    /* restored from a hand-over (a stop's or an eviction's save: nothing
     * consumed after it) that the file on disk still is: saved again at
     * the next stats interval (state_save_alerts), so that a kill -9 then
     * does not restore it as a hand-over again */
    int handover_read;
    uint64_t last_ms;            /* uv_now of the last sample */
    uint64_t state_pub_ms;       /* uv_now of the last state published */
    int coll_waiting;            /* the retained state said training waits on
                                  * flagged rows (ad_detector_collect_waiting) */
    int calib_waiting;           /* ... or calibration waits on flagged
                                  * windows (ad_detector_calib_waiting) */
    uint64_t coll_pub_ms;        /* uv_now of the last state published for a
                                  * wait begun or ended (0: none) */
    uint64_t state_conn;         /* ad_daemon.conns at its last retained state */
    uint64_t kept_seq;           /* ad_detector_kept_seq at its last state
                                  * published (a kept change begun or ended) */
    uint64_t kept_pub;           /* its windows_kept then */
    int64_t last_arrival_ms;     /* arrival time given to the last message */
    /* a step back of the clock taken at once (streams_clock_anew) that
     * could not rebuild the stream (collecting or training, a model not
     * in the state directory): its arrival times run this far ahead of
     * the data wall clock, after its last row at the messages' spacing,
     * until it can be rebuilt (streams_house); 0: none */
    int64_t arrival_lead_ms;
    int clock_anew;              /* such a step came while its restore was in
                                  * flight: its arrival clock starts anew when
                                  * the restore lands (state.c) */
    /* the id of the model whose copy is in the state directory (trained
     * online, promoted, kept, or loaded from there), "" none: a rebuild
     * from the hand-over state finds the live model only when it is this
     * one or the configured one */
    char disk_model[AD_MODEL_ID_LEN + 1];
    int64_t last_rec_raw;        /* the last Kafka record timestamp taken as a
                                  * time (kafka.row_time record), 0: none yet */
    int64_t last_rec_ms;         /* the time its samples were given */
    int64_t arrival_floor_ms;    /* restored: time-less samples are stamped
                                  * after this (the saved last row), 0: none */
    struct batch *open;          /* open batch for a stream-owned model */
    struct adapt_task *adapt;    /* continual-learning job on the workers */
    int saving;                  /* promoted-model saves on the workers */
    /* a fine-tune's candidate in shadow (state.c span_part): when its span
     * last went into the state file (loop ms, 0: not yet), whether a save
     * without it followed, a span too long to save said once; cand_drop:
     * its file is removed with the next state written once no model or
     * candidate save of the stream is on the workers (training.c);
     * cand_nofile: the candidate in shadow's file is not on disk (its save
     * still on the workers, or failed): no state file names it (a kill -9
     * then would find a state naming a file that is not there);
     * cand_saving: candidate file saves on the workers; cand_id: the
     * candidate of the last one submitted, cand_err why it failed (NULL
     * it did not, or it is still running; on the heap: a failed save is
     * rare, and 256 bytes in every stream's record were 60 % more of it):
     * a rebuild while it runs carries the candidate over from memory, one
     * after it failed says so (state.c restore_candidate); cand_queued:
     * the candidate cand_id names waits for an earlier candidate's save to
     * the same file to end before its own is submitted (training.c
     * candidate_write: one at a time, in order) */
    uint64_t span_saved_ms;
    int span_stale, span_warned, cand_drop, cand_nofile, cand_saving, cand_queued;
    char cand_id[AD_MODEL_ID_LEN + 1];
    char *cand_err;
    uint64_t seen_future, seen_late, seen_dup;  /* rejections already logged */
    /* exact copies of its messages (ad_stream_stats dup_copies) already
     * looked at, and whether they were said (once: streams.c) */
    uint64_t seen_copies, seen_copy_values;
    int copies_said;
    uint64_t seen_unoffered;     /* adapt_unoffered already logged */
    cJSON *dq_open;              /* open data-quality alerts (array) or NULL; each
                                  * entry's "topic": the MQTT topic it was raised on */
    int dq_carried;              /* dq_open may hold an entry carried over a rebuild
                                  * (publish_dq_carry, a restored state): each
                                  * message settles them (streams.c), until
                                  * publish_dq_carrying finds none; 0: none */
    struct alert_at *alert_at;   /* where its open model alert was raised, or NULL */
    old_det *grave;
    struct feedback *fb;         /* operator feedback (command.c), or NULL */
    /* the distinct MQTT topics its messages came on (malloc'd, at most
     * STREAM_TOPICS; none yet, or keyed by Kafka record keys,
     * record_keyed): a reload that changes stream_levels or topics tells
     * from them whether the stream still gets data (reload.c). Kept in its
     * state file, so a stream restored at start knows them (state.c).
     * topics_more: others came that are not listed (more than
     * STREAM_TOPICS, or out of memory) */
    char **topics;
    int n_topics, topics_more;
    int record_keyed;
    /* decided once its restore is installed (state.c state_check_fed):
     * RELOAD_CHECK_RELOAD, a reload changed stream_levels or topics while
     * its restore was in flight; RELOAD_CHECK_START, restored at start for
     * its open alert (they may have changed while the daemon was stopped) */
    int reload_check;
    uint64_t ha_ms;              /* uv_now of the last Home Assistant state */
    int ha_announced;            /* its discovery configs were published */
    uint64_t ha_conn;            /* ad_daemon.conns when they last were */
    char ha_model[AD_MODEL_ID_LEN + 1]; /* the model id they named ("": none) */
    /* the object ids they were announced under (homeassistant.c): 0 those
     * of the configuration now, HA_IDS_PLAIN or HA_IDS_HASHED */
    int ha_ids;
    struct stream_rec *dnext;    /* dead list */
    char key[];                  /* allocated with the record */
} stream_rec;

enum { RELOAD_CHECK_NONE, RELOAD_CHECK_RELOAD, RELOAD_CHECK_START };
enum { KEPT_NONE, KEPT_REJECTED, KEPT_SHADOW };  /* stream_rec.kept_why */

typedef struct stream_map {
    stream_rec **b;
    size_t nb, n;
} stream_map;

/* Per-detector figures of the stats message (publish.c): summed over the
 * live streams, plus those of streams already gone (det_rt.retired). */
typedef struct det_counts {
    uint64_t windows_invalid, windows_absurd, values_held, gap_rows, gaps;
    /* late, late_held, future and dropped in samples (feature values: a
     * row refused whole counts its values); gaps, unaligned, overflow in rows */
    uint64_t late, late_held, future, unaligned, overflow, dropped;
    uint64_t dq_raised, dq_open, adapt_promoted, adapt_rejected, adapt_shadow, adapt_drifted;
    uint64_t regimes_accepted;
    uint64_t adapt_unoffered;    /* windows continual learning never saw */
    uint64_t held_lost;          /* rows held as far ahead lost with a state
                                  * that could not be continued */
} det_counts;

/* A detector of the running configuration. */
typedef struct det_rt {
    ad_detconf *c;
    model_ref *mr;               /* NULL for bootstrap */
    ad_payload_parser *parser;
    int T, F;
    char **features;             /* F names (borrowed from model or config) */
    stream_map streams;
    char state_dir[4096];        /* "" if no persistence */
    uint64_t refused, evicted;
    det_counts retired;          /* figures of its streams already gone */
    int warned_unit;             /* a sample time before 2000 was warned of */
    int warned_late_held;        /* period samples held for the next row, told once */
    int warned_rec_time;         /* a Kafka record time before 2000 was warned of */
} det_rt;


/* A generation: one loaded configuration with its models. */
typedef struct gen {
    ad_config *cfg;
    det_rt *dets;
    int n;
} gen;

typedef struct batch {
    ad_task task;                /* first: the task pointer is the batch */
    struct ad_daemon *dd;
    const ad_model *model;
    model_ref *mr;               /* ref held, or NULL (stream-owned model) */
    struct batch **slot;         /* where the open batch is registered */
    uint64_t key;
    int metric;
    int T, F, n, cap;
    int limit;                  /* windows this model takes: ad_batch_cap() */
    float *in, *out, *share;
    float *sh_share;             /* the shadow scores' shares (score.normalize) */
    double *score, *shadow;      /* live and shadow scores (NAN: none) */
    uint64_t *shadow_key;        /* engine key of each job's shadow model */
    int n_shadow;                /* jobs carrying a shadow model */
    ad_window_job *jobs;
    stream_rec **streams;
    uint32_t *epochs;
    uint64_t *t0;                /* uv_hrtime when the window was ready */
    int done;
    struct batch *next;          /* open list / flight FIFO / free list */
} batch;

typedef struct counters {
    uint64_t messages_in, parse_errors, unknown_fields, nonfinite, nonnumeric, oversized;
    uint64_t status_messages;   /* status texts (payload.h STATUS TEXT) */
    uint64_t no_detector, no_stream_key, samples, streams_refused, streams_evicted;
    uint64_t windows_scored, windows_stale, alerts_raised, alerts_cleared;
    uint64_t batches, batch_windows, trainings, training_failures, ignored_stopping;
    uint64_t adapt_jobs, adapt_failures, dq_raised, dq_cleared, windows_shadow;
    uint64_t retired_dropped;    /* dropped samples of freed streams */
    uint64_t retired_overflow;   /* rows_overflow of freed streams */
    uint64_t retired_unoffered;  /* adapt_unoffered of freed streams */
    uint64_t handover_skipped;   /* Kafka records a hand-over state held already */
    /* operator commands (command.c): done, and refused by cause */
    uint64_t cmd_ok, cmd_bad_json, cmd_unknown_stream, cmd_unknown_command, cmd_failed;
    /* files the retention sweeps removed from the state dirs (retain.c) */
    uint64_t state_files_removed, state_bytes_removed;
    /* failed writes of state_dir files (state.c: each attempt counts) */
    uint64_t state_write_errors;
    /* unwritten states dropped over RETRY_MAX_FILES / RETRY_MAX_BYTES */
    uint64_t state_files_lost;
} counters;

/* Inference latency: the last LAT_RING windows (stats.c). */
typedef struct lat_ring {
    double ms[LAT_RING];
    uint64_t n;
} lat_ring;

/* An alert message published once the state file that holds its alert
 * is written (state.c): a kill -9 between the two would otherwise lose
 * the alert the broker has. */
typedef struct wmsg {
    struct wmsg *next;
    char *topic, *payload, *what;    /* what: NULL or the alert's name */
    int qos;
} wmsg;

/* A state file to write off the loop thread (state.c). */
typedef struct wjob {
    struct wjob *next;
    char *path, *data;
    size_t len;
    int failed;                  /* the write failed: err says why */
    int owed;                    /* a write of its path failed and none has
                                  * succeeded since: counted in w_unwritten */
    uint64_t seq;                /* when it was queued (w_seq): kept when a
                                  * newer state of its path replaces its data */
    char *unlink_after;          /* a file removed once this state (which no
                                  * longer names it) is written, or NULL */
    int unlink_err;              /* errno of that removal, 0: done */
    char err[320];
    wmsg *msgs;                  /* published once written, in order */
} wjob;

typedef struct ad_daemon {
    uv_loop_t *loop;
    char *path;
    gen *g;
    ad_mqtt *mqtt;
    ad_workers *ws;
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t stats_timer, house_timer, drain_timer;
    uv_timer_t resend_timer;     /* retained states and Home Assistant
                                  * discovery again after a connect */
    uv_check_t check;
    uv_prepare_t prepare;
    /* arrival time of what a loop phase reads: one clock reading per phase,
     * not per message (prepare_cb and check_cb, around the poll phase,
     * start a new one) */
    uint64_t arr_wall_ms, arr_hr_ns;
    int arr_valid;
    /* the data wall clock (dd_data_wall_ms), in us: the last readings of
     * the wall and the monotonic clock, the offset a step back of the wall
     * clock left, the last value given */
    int64_t dw_wall_us, dw_mono_us, dw_off_us, dw_last_us;
    int dw_anew;                 /* a step back over an hour was taken at
                                  * once: streams_clock_anew is due */
    int clock_leads;             /* streams it left with an arrival lead
                                  * (stream_rec.arrival_lead_ms): rebuilt
                                  * once they can be (streams_house) */
    int max_batch;
    int stopping, reloading, ready_sent, paused, exit_code;
    int reload_again;            /* SIGHUP during a reload: once more after */
    int outbox_dirty;            /* state_dir/outbox.json may hold messages */
    /* sensor messages received during a stop (acknowledged to the broker,
     * not applied): written to state_dir/inbox.dat when the stop is over,
     * applied first by the next start */
    struct inbox_msg *inbox_head, **inbox_tail;
    size_t inbox_bytes;
    uint64_t inbox_n;
    int inbox_full;              /* over INBOX_MAX_BYTES: MQTT reading paused */
    int outbox_due;              /* Kafka alert events produced, or what the file
                                  * held for the broker acknowledged: sync it at
                                  * the end of this loop iteration (check_cb), once */
    volatile int cancel;
    batch *open_list, *fifo_head, *fifo_tail, *free_batches;
    int in_flight_batches;
    /* batches allocated, spare among them (the free list), and the most in
     * use (open or in flight) since the last trim (batch_trim) */
    int batches_live, batches_spare, batches_peak;
    float *scratch;              /* bootstrap windows nobody scores */
    size_t scratch_len;
    ad_sample *smp;              /* one message's samples (streams.c) */
    size_t smp_cap;
    stream_rec *dead;
    uint64_t serial;
    counters c;
    lat_ring lat;
    double model_cpu_s;
    uint64_t started_ms, stop_ms, last_evict_ms;
    /* MQTT connections so far, and where the sweep that publishes every
     * stream's retained state and Home Assistant discovery again after one
     * has got to (publish.c): detector, bucket of its map, that map's size
     * then, the generation */
    uint64_t conns;
    int resend_det;
    size_t resend_bucket, resend_nb;
    const struct gen *resend_g;
    char started_iso[40];
    /* bad-input log budget: log_rate lines a minute for each kind (call
     * site's format; one noisy kind cannot hide the others) */
    struct { const char *fmt; int tokens; } log_kind[BAD_KINDS];
    int log_kinds;
    uint64_t log_refill_ms, log_suppressed;
    /* streams evicted at max_streams: LIMIT_EVICT_LINES notices a minute,
     * then one summary with the count and the latest (dd_limit_evicted) */
    int lev_tokens;
    uint64_t lev_refill_ms, lev_quiet;
    char lev_last[240];
    /* state writer: queued files, the batch being written, its request */
    wjob *wq_head, *wq_tail, *w_batch;
    wjob *wq_pri;                /* the last of the queue's leading jobs that
                                  * alert messages wait for, or NULL */
    uv_work_t w_req;
    int w_busy;
    /* files whose last write failed (one a path, the newest state), tried
     * again at w_retry_at (uv_now; 0: not scheduled) after w_retry_ms,
     * doubled at each round that leaves some, up to RETRY_MAX_MS; a newer
     * state of the path queued replaces its entry. Oldest first (w_retry,
     * newest w_retry_tail), w_retry_n of them, w_retry_bytes of data: at
     * most RETRY_MAX_FILES and RETRY_MAX_BYTES, the oldest dropped.
     * w_failing: since the last time every file was written (said once,
     * w_fail_n failures, w_lost_n states dropped). w_unwritten: the paths
     * whose file on disk is older than a state whose write failed (their
     * newest state owed, in the retry list, the queue or the batch; stats
     * state_files_unwritten); once none is, the jobs queued up to
     * w_barrier (a w_seq) are written before every file is said written
     * again, a state queued meanwhile (a clear) on disk too */
    wjob *w_retry, *w_retry_tail;
    unsigned w_retry_n;
    size_t w_retry_bytes;
    uint64_t w_retry_at, w_retry_ms;
    int w_failing;
    uint64_t w_fail_n, w_lost_n;
    unsigned w_unwritten;
    uint64_t w_seq, w_barrier;
    wmsg *defer;                 /* alert messages for the next state_save */
    unsigned w_msgs;             /* alert messages waiting for their file */
    int restores;                /* stream restores in flight (parked included) */
    struct state_scan_req *scan; /* the scan at start in flight (state.c), or NULL */
    struct restore_req *parked;  /* restores waiting for a retention sweep */
    uv_timer_t retain_timer;     /* state retention sweeps (retain.c) */
    struct retain_sweep *sweep;  /* the sweep in flight, or NULL */
    int sweep_again;             /* one more sweep once it is done */
    /* the first sweep's now and its uv_hrtime (0: none yet): later sweeps
     * count from it (retain.c THE SWEEP'S CLOCK) */
    int64_t rt_ref_s;
    uint64_t rt_ref_hr;
    struct adapt_task *adapt_tasks; /* continual-learning jobs out (training.c) */
    struct metrics_w *metrics;   /* metrics file writer (metrics.c), or NULL */
    struct ad_kafka *kafka;      /* Kafka input/output (kafka.c), or NULL */
} ad_daemon;

/* ---- daemon.c ---- */
uint64_t dd_wall_ms(void);
/* The wall clock that arrival times and the streams' data clocks run on:
 * the wall clock, but never going back. When the host's clock is set back
 * (an NTP step, `date -s`) it goes on from where it was, and the step (up
 * to an hour) is taken back gradually, at a tenth of the time passing (an hour's step in
 * ten hours: arrival times 0.9 times the time between their messages
 * apart meanwhile), or at once by a step forward; a step forward alone is
 * taken at once. Taken from the wall clock as it is, a step back stamped
 * the samples that carry no time 1 ms apart (strictly increasing) for as
 * long as the step, and stopped every stream's data clock (silence, period
 * rows) for that long. A step back itself of more than an hour is taken
 * at once, with what earlier steps left to catch up (a warning;
 * dd->dw_anew set: dd_clock_anew starts the streams' rows anew), as a
 * restart takes such a lead (dd_data_clock_lead); smaller steps add to
 * the lead caught up gradually, however long it is (a rebuild costs each
 * stream its window's rows: not for a few ms on top of a lead). Loop
 * thread only. */
uint64_t dd_data_wall_ms(ad_daemon *dd);
/* A stream restored with its last row at last_ms (unix ms; who names it
 * in the log): when that is ahead of the data wall clock (the host's clock
 * set back since the rows were written, across a restart or a Kafka
 * hand-over), by at most an hour, the data clock goes on ahead of it and
 * catches up as after a step back (returns 0); by more, the step is taken
 * at once (a warning; returns 1: the caller starts the stream's rows
 * anew). 0 when it is not ahead. Loop thread only. */
int dd_data_clock_lead(ad_daemon *dd, int64_t last_ms, const char *who);
/* Read the clock once per loop phase (see ad_daemon.arr_*). */
void dd_arrival_clock(ad_daemon *dd);
/* After dd_data_wall_ms took a step back of more than an hour at once
 * (dd->dw_anew): the streams' rows start anew from now, as after a restart
 * with the clock set back that far (state.c restore_clock): each stream
 * that stamps its samples on arrival is rebuilt from its hand-over state
 * (its calibration, open alert and tests go on; its window rows are not
 * kept; streams_clock_anew), the others' arrival clocks start from now.
 * A stream a rebuild would lose something of (training rows, a model not
 * saved) runs its arrival times ahead instead until it can be rebuilt
 * (stream_rec.arrival_lead_ms); one being restored starts anew when
 * restored (stream_rec.clock_anew).
 * Loop thread, where streams may be rebuilt (a message's arrival, the
 * house tick). */
void dd_clock_anew(ad_daemon *dd);
/* Rate-limited warning for bad input: log_rate lines per minute. */
void dd_bad_input(ad_daemon *dd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A stream evicted at the stream limit (an operational event, apart from
 * bad input): a notice naming it, LIMIT_EVICT_LINES a minute; past that
 * counted, and dd_limit_evict_flush (housekeeping) logs how many more and
 * the latest once the minute is over. */
void dd_limit_evicted(ad_daemon *dd, const char *det, int limit, const char *key,
                      const char *phase, const char *for_key);
void dd_limit_evict_flush(ad_daemon *dd, uint64_t now);
/* Apply a message from the broker (a command, or samples for the
 * detectors whose topics match it). */
void dd_message(ad_daemon *dd, const char *topic, const void *payload, size_t len);
/* Subscribe to the topics of dd->g (at start and after a reload). */
void dd_update_subscriptions(ad_daemon *dd);
/* (Re)start the stats timer with dd->g's interval. */
void dd_arm_stats(ad_daemon *dd);
/* Stop as on SIGTERM (in-flight windows finished, states handed over),
 * then exit with exit_code (AD_EXIT_RESTART: a state only a new process
 * leaves; systemd's Restart=on-failure starts one). */
void dd_stop(ad_daemon *dd, int exit_code);
#define AD_EXIT_RESTART 3

/* ---- generation.c ---- */
model_ref *mr_get(model_ref *r);
void mr_put(model_ref *r);
/* Load config file `path` and every model (any thread); log a warning for
 * each topic the daemon would publish and receive itself (generation.c). */
int gen_load(gen **out, const char *path, char *err, size_t errlen);
void gen_free(gen *g);                         /* NULL-safe */
/* Create every state directory; a detector whose cannot be made runs
 * without persistence (warning logged). */
void gen_make_state_dirs(gen *g);

/* ---- streams.c ---- */
/* Iterate a stream map; s may be removed (killed) inside the loop. */
#define MAP_FOREACH(m, s) \
    for (size_t _i = 0; _i < (m)->nb; _i++) \
        for (stream_rec *s = (m)->b[_i], *_n = s ? s->hnext : NULL; s; \
             s = _n, _n = s ? s->hnext : NULL)
/* Route one message's payload to the stream of detector d it names. */
void streams_message(ad_daemon *dd, det_rt *d, const char *topic, const void *payload,
                     size_t len, double now_s);
/* The same for a Kafka record (rec, borrowed), whose key is the stream key.
 * Samples without a time take the record's (rec->ts_ms >= 0), else the
 * arrival time now_s. */
void streams_message_key(ad_daemon *dd, det_rt *d, const char *key, const char *topic,
                         const void *payload, size_t len, double now_s,
                         const kafka_rec *rec);
/* Push the samples held during a restore, in arrival order. */
void streams_release_held(ad_daemon *dd, stream_rec *s);
/* Publish, save, train on the detector's queued events; 1 if its state changed. */
int streams_events(ad_daemon *dd, stream_rec *s);
/* Remove from its detector (state saved first when save) and free when possible. */
void streams_kill(ad_daemon *dd, stream_rec *s, int save);
/* Free a dead stream once nothing refers to it; empty a live one's graveyard. */
void streams_maybe_free(ad_daemon *dd, stream_rec *s);
void streams_free_now(ad_daemon *dd, stream_rec *s);
/* Move the current detector of s (may be NULL) and its own model to its
 * graveyard (freed once no window of s is in flight). 0, or AD_ENOMEM
 * when the graveyard entry cannot be made: then nothing changed (s keeps
 * them; the caller drops the stream, streams_kill, which defers the free
 * the same way). */
int streams_bury(ad_daemon *dd, stream_rec *s);
/* Idle eviction (when evict) and period-mode rows, every house tick. */
void streams_house(ad_daemon *dd, int evict);
/* (see dd_clock_anew) */
void streams_clock_anew(ad_daemon *dd);
/* Stream s's restore was installed (state.c) after such a step came
 * while it was in flight (s->clock_anew): its arrival clock starts from
 * now, the messages held meanwhile stamped after its last row, no later
 * than now. */
void streams_clock_landed(ad_daemon *dd, stream_rec *s);
/* The stream `key` of d, created (its restore started) when new; NULL when
 * refused or not created (logged). */
stream_rec *streams_open(ad_daemon *dd, det_rt *d, const char *key);
/* Close the open alert of s with reason (cleared event published), save
 * its state and kill it. */
void streams_evict(ad_daemon *dd, stream_rec *s, ad_close_reason reason);
/* The live stream `key` of d, or NULL. */
stream_rec *streams_find(det_rt *d, const char *key);
/* Add topic (copied) to the topics s keeps when new (stream_rec.topics). */
void streams_note_topic(stream_rec *s, const char *topic);

/* ---- state.c ---- */
/* Queue the calibration state of s for writing (nothing if not calibrated).
 * Alert messages kept by state_defer_alert go out once it is written. */
void state_save(ad_daemon *dd, stream_rec *s);
/* Keep an alert message of s for its stream's next state_save (which
 * publishes it once the file is written); 0, or -1 when s keeps no state
 * (publish it now). */
int state_defer_alert(ad_daemon *dd, stream_rec *s, const char *topic, const char *payload,
                      int qos, const char *what);
/* The same where the stream stops here (stop, eviction, partition moved):
 * with its window rows, so that it continues on the next windows
 * (ad_detector_save_handover). */
void state_save_handover(ad_daemon *dd, stream_rec *s);
/* A new candidate's file of s is about to be written: the removal of the
 * decided one's (the same name, s->cand_drop or a state write queued with
 * it) is called off. */
void state_candidate_kept(ad_daemon *dd, stream_rec *s);
/* What a state text is for (state_text's handover): an event's or a
 * periodic save; a hand-over (stop, eviction, rebuild, partition move:
 * the learner's normal set too); a kafka.commit_states checkpoint (the
 * rows, not the normal set) */
enum { SAVE_EVENT = 0, SAVE_HANDOVER = 1, SAVE_CHECKPOINT = 2 };
/* or'ed in: the span of a fine-tune's candidate in shadow too (a state
 * file's only, beside the candidate's model file; never a Kafka record) */
enum { SAVE_SPAN = 4 };
/* The state of s as a state file holds it and state_restore reads it back
 * (malloc'd; NULL when there is nothing to keep, not calibrated yet, or
 * out of memory): the detector's state (ad_detector_save_parts: the
 * window rows and the normal set of a SAVE_HANDOVER, the rows of a
 * SAVE_CHECKPOINT, the span of a candidate in shadow with SAVE_SPAN)
 * under the configured settings hash (also for
 * a stream running a model trained online, see swap_hash), and what the
 * daemon keeps beside it: operator feedback ("feedback", command.c) and
 * where the open model alert was raised ("alert_topic": {"alert_id",
 * "topic" (MQTT), "kafka_topic", "features"}, so that its clear goes there
 * after a restart, a reload or a move of its Kafka partition, whatever
 * alert.topic or kafka.alert_topic says by then, and can name its top
 * features when no detector is left to). The
 * state file and the Kafka state topic (kafka.c) both hold this text. */
char *state_text(const stream_rec *s, int handover);
/* What state_restore does with the stream. */
typedef enum {
    RESTORE_NEW,        /* a new stream: build its detector, announce it */
    RESTORE_REBUILD,    /* reload, new settings: build a new detector */
    RESTORE_CALIBRATION /* reload, new model set: restore the calibration only */
} restore_mode;
/* Restore s off the loop thread: build its detector (loading a model
 * trained online from the state dir when one fits) and restore its saved
 * calibration. Until that is installed, s->restoring is set, s->d is NULL
 * (unless RESTORE_CALIBRATION) and samples are held (streams_message); a
 * newer restore of the same stream supersedes an older one. Without a
 * state dir it completes at once. Returns 0, or a negative code (err
 * filled, stream killed) when no detector could be made. */
int state_restore(ad_daemon *dd, stream_rec *s, restore_mode mode, char *err, size_t errlen);
/* The same from js (malloc'd, taken; NULL: as state_restore), the state a
 * reload just took of the stream's detector (state_text with handover),
 * instead of its state file: a calibration still in progress goes on from
 * where it is (the file may hold an older one), and so do the window rows
 * js holds (a rebuild whose calibration is not restored refills its ring
 * from them: ad_detector_restore_window). */
int state_restore_live(ad_daemon *dd, stream_rec *s, restore_mode mode, char *js, char *err,
                       size_t errlen);
/* The path of the model trained online for stream key of d. */
void state_trained_path(const det_rt *d, const char *key, char *out, size_t len);
void state_reference_path(const det_rt *d, const char *key, char *out, size_t len);
/* A fine-tune's candidate in shadow (".candidate.safetensors"), saved
 * while the state holds its span (docs/continual-learning.md). */
void state_candidate_path(const det_rt *d, const char *key, char *out, size_t len);
/* The path of stream key's files without their suffix ("<dir>/<escaped
 * key>"), and the tag of d's model files (".<model id or boot>.<settings
 * hash>"): a file of the stream is stem + ".state.json" or stem + a tag +
 * ".safetensors" / ".reference.safetensors" / ".candidate.safetensors". */
void state_stem(const det_rt *d, const char *key, char *out, size_t len);
void state_tag(const det_rt *d, char *out, size_t len);
/* 1 when the state file at path holds an open model alert (its stream key
 * in key), 2 when it holds one but no stream key that fits, 0 when none,
 * or the negative code of ad_read_text (err filled) when it cannot be
 * read. Any thread. */
int state_file_open_alert(const char *path, char *key, size_t len, char *err, size_t errlen);
/* 1 when a write of path is queued or under way in the writer. */
int state_queued(const ad_daemon *dd, const char *path);
/* Queue the restores parked while a retention sweep removed their
 * streams' files (retain_holds), in the order they were parked. */
void state_restores_resume(ad_daemon *dd);
/* Free the writer queue (at exit, after the loop ran dry); the files
 * whose write failed and were not written since are named in an error. */
void state_writer_free(ad_daemon *dd);
/* Queue again the files whose write failed, when their time has come, or
 * now with `now` (the stop). House tick. */
void state_writer_retry(ad_daemon *dd, int now);
/* Queue the state of every stream with an open alert, and of every stream
 * restored from a hand-over not saved since (stats interval). */
void state_save_alerts(ad_daemon *dd);
/* At start: remove leftover temporary files, restore every stream whose
 * state file holds an open alert (so it continues, or is evicted and
 * closed, even if its device never sends again). A restored stream whose
 * saved topics its detector's topics or stream_levels no longer feed
 * (changed while stopped; reload_stream_unfed) is removed once its
 * restore is installed, its alert cleared with reason reload; one without
 * an open alert (not restored) has its retained state and Home Assistant
 * entities emptied from its file. The streams of a directory naming no
 * configured detector have their open alerts cleared (reason
 * detector_removed) and their retained messages emptied from their files,
 * which are kept, rewritten without them. The state files are read and
 * parsed on the thread pool (dd->scan while they are): the loop runs
 * meanwhile; once they are read, the loop restores, clears, empties and
 * rewrites in directory order. A message of a stream the scan will
 * restore opens and restores it as any message does (its samples held
 * until its state is read); a SIGHUP waits for the scan, and so do the
 * first retention sweep and a stop. */
void state_scan(ad_daemon *dd);
/* The daemon exits before its loop ran (start failed): the scan in flight,
 * if any, is cancelled or waited for, and nothing of it is applied. */
void state_scan_abandon(ad_daemon *dd);
/* Write the messages waiting in the MQTT queue to state_dir/outbox.json
 * (now: synchronously, at stop; else through the writer); nothing when the
 * queue is empty and the file already says so. */
void state_outbox_sync(ad_daemon *dd, int now);
/* At start: queue the messages of state_dir/outbox.json again. */
void state_outbox_load(ad_daemon *dd);
/* During a stop: keep a sensor message (copied) for the next start.
 * 0, or AD_ENOMEM. */
int state_inbox_keep(ad_daemon *dd, const char *topic, const void *payload, size_t len);
/* At the end of a stop: write the kept messages to state_dir/inbox.dat
 * (synchronously) and free them. */
void state_inbox_save(ad_daemon *dd);
/* At start: apply the messages of state_dir/inbox.dat (dd_message), oldest
 * first, then remove the file. */
void state_inbox_load(ad_daemon *dd);
/* One record of an inbox file's bytes buf[0..n) at *pos (advanced past
 * it; the first record is after the header line): 1 with topic (copied,
 * NUL-terminated, for the caller to free) and payload (into buf, *len
 * bytes), 0 at the end, -1 when malformed (*pos unchanged). Reads nothing
 * outside buf[0..n). */
int state_inbox_next(const char *buf, size_t n, size_t *pos, char **topic,
                     const char **payload, size_t *len);

/* ---- batch.c ---- */
/* Pull every due window of s into the open batch of its model (a full
 * batch is submitted and the next one opened), then handle its events. */
void batch_pull(ad_daemon *dd, stream_rec *s);
/* The same without the events: take the rows a sample of a message just
 * completed, so none waits for the message's end (a stream queues only
 * AD_STREAM_QUEUE; a SenML pack completes up to hundreds). */
void batch_take(ad_daemon *dd, stream_rec *s);
/* Submit open batches: all (force) or while workers are idle / full ones. */
void batch_dispatch(ad_daemon *dd, int force);
int batch_open_windows(const ad_daemon *dd);
/* Free the spare batches beyond the most in use since the last call
 * (housekeeping, once a second): a burst's batches do not stay pinned. */
void batch_trim(ad_daemon *dd);
/* Free open and spare batches (at exit). */
void batch_free_all(ad_daemon *dd);

/* ---- training.c ---- */
void training_start(ad_daemon *dd, stream_rec *s);
/* AD_EV_ADAPT_READY: run the stream's continual-learning job on a worker. */
void training_adapt_start(ad_daemon *dd, stream_rec *s);
/* Ask the adapt job of s (or every one, s NULL) to stop early; its result
 * is then dropped. */
void training_adapt_cancel(ad_daemon *dd, stream_rec *s);
/* Continual-learning jobs out on the workers now (the stats'
 * "adapt_running"). */
int training_adapt_running(const ad_daemon *dd);
/* A model was promoted: save a copy in the state dir on a worker, then the
 * stream's state (so a restart comes back with it). */
void training_save_promoted(ad_daemon *dd, stream_rec *s);
/* reload.shadow rejected the configured file, or it enters shadow (why:
 * KEPT_REJECTED, KEPT_SHADOW): the live model is saved where a promoted
 * one would be, under the file's tag, and s->kept_* say so. */
void training_save_kept(ad_daemon *dd, stream_rec *s, int why);
/* A fine-tune's candidate (id, the event's) entered shadow: its model
 * saved beside the state (a worker), then the state, whose hand-overs and
 * some saves carry the span's progress (state.c span_part); a restart or
 * a rebuild resumes it (state.c). training_drop_candidate: it was
 * decided, its file removed once a state without it is written. */
void training_save_candidate(ad_daemon *dd, stream_rec *s, const char *id);
void training_drop_candidate(ad_daemon *dd, stream_rec *s);
/* The save of the candidate in shadow that waited for an earlier
 * candidate's save to the same file (s->cand_queued): submitted once none
 * is on the workers and the stream is not being restored, if that
 * candidate is still in shadow. */
void training_candidate_flush(ad_daemon *dd, stream_rec *s);

/* ---- publish.c ---- */
void publish_json(ad_daemon *dd, const char *topic, cJSON *o, int qos, int retain);
/* "alert <alert_id> <event>" of an alert message o (schema, alert_id,
 * event) into buf: what ad_mqtt_publish_alert names it by; NULL when o is
 * not one. */
const char *publish_alert_what(const cJSON *o, char *buf, size_t len);
/* The stream's state changed: its Home Assistant state and its retained
 * state topic. */
void publish_state(ad_daemon *dd, stream_rec *s);
/* The stream is gone for good (evicted, its detector removed by a reload):
 * an empty retained message on its state topic, so that a new subscriber
 * does not see it; nothing when another live stream publishes on the same
 * topic (a template without {stream}). Not at a stop: the stream comes
 * back from state_dir. */
void publish_state_clear(ad_daemon *dd, stream_rec *s);
/* A reload moved the stream's state topic (old_template, of the same
 * detector, to its detector's current one): the old topic is emptied and
 * the state published on the new one (once the stream is installed). */
void publish_state_moved(ad_daemon *dd, stream_rec *s, const char *old_template);
/* Connected (again): publish the retained state and the Home Assistant
 * discovery configs and state of every live stream once more, paced from
 * dd->resend_timer (a broker restarted without persistence has lost them;
 * all at once they would hold the loop and queue everything published
 * meanwhile, alerts and replies, behind them). Streams still restoring
 * publish theirs when the restore lands. */
void publish_resend_start(ad_daemon *dd);
/* Disconnected or stopping: stop that sweep (the next connect starts one). */
void publish_resend_stop(ad_daemon *dd);
/* A model alert raised or cleared: on its alert topic (a clear on the
 * topic of its raise, s->alert_at), Kafka as configured; logged, counted. */
void publish_alert(ad_daemon *dd, stream_rec *s, const ad_event *ev);
/* The cleared event of alert a (closed: reason, end_ms set) of stream key
 * of a detector no longer configured, where it was raised: on MQTT topic
 * (NULL: not raised on MQTT) and to Kafka topic kafka (NULL: not raised on
 * Kafka; key detector/stream), from what its state file kept: the id of
 * the model that scored it, the metric, the feature names (F, may be
 * NULL). MQTT: QoS qos_alerts, at least 1 (queued while the broker is
 * away, kept in outbox.json); Kafka: handed to the producer (its queue).
 * Logged and counted like publish_alert. 0, or < 0 with err: not queued
 * (Kafka first: when it cannot take it, nothing is published); AD_EIO:
 * it went to Kafka, and could not be queued for MQTT. */
int publish_alert_removed(ad_daemon *dd, const char *detector, const char *key,
                          const char *topic, const char *kafka, const ad_alert *a,
                          const char *model_id, const char *metric,
                          const char *const *names, int F, char *err, size_t errlen);
/* A new alert_at for alert id raised on MQTT topic ("": not on MQTT) and
 * Kafka topic kafka (NULL: not on Kafka), malloc'd, or NULL (out of
 * memory, id too long). */
alert_at *publish_alert_at(const char *id, const char *topic, const char *kafka);
/* Data-quality alert (AD_EV_DQ_*) on the alert topic; keeps s->dq_open. */
void publish_dq(ad_daemon *dd, stream_rec *s, const ad_event *ev);
/* Continual-learning decision (AD_EV_ADAPT) on the stream's events topic. */
/* Close every open data-quality alert of s (a dq_cleared event with
 * `reason` each): its monitor is going away (evicted, rebuilt, stopped,
 * moved to another instance, or restored from a state that still listed
 * them) and does not carry open conditions over. Returns how many were
 * closed; the caller saves the stream's state when it outlives this. */
int publish_dq_close_all(ad_daemon *dd, stream_rec *s, const char *reason);
/* A reload rebuilds s under new settings (s->det the new detector, s->d
 * still the old one): each open data-quality alert the new settings still
 * hold (a range alert whose value is outside the new range, a dropout) is
 * carried over, open (marked "carried" in s->dq_open); the others are
 * closed with reason ("reload"; "restart" for a rebuild at a clock step). A carried alert is taken over by the rebuilt
 * monitor when it raises the same check on the same feature (publish_dq:
 * no second dq_raised; its clear is published under the first id), or
 * closed by publish_dq_settle. Returns how many were open. */
int publish_dq_carry(ad_daemon *dd, stream_rec *s, const char *reason);
/* After a message's samples were pushed and its events published: each
 * alert still carried (publish_dq_carry) whose feature had a value in it
 * (seen: F bytes; the whole stream's: any value, `any` of them) is closed:
 * a dropout reason cleared, a range alert reason reload (the rebuilt
 * monitor did not raise it again at that value). Returns how many. */
int publish_dq_settle(ad_daemon *dd, stream_rec *s, const unsigned char *seen, int any);
/* 1 when s has an open data-quality alert carried over a rebuild. */
int publish_dq_carrying(const stream_rec *s);
void publish_dq_cleared_fields(cJSON *o, const char *det, const char *key, const char *reason,
                               int64_t end);
void publish_adapt(ad_daemon *dd, stream_rec *s, const ad_event *ev);
/* Add the figures of stream s to c (live streams and retired ones). */
void publish_count_stream(const ad_detector *d, det_counts *c);
void publish_stats(ad_daemon *dd);
/* The retained status message (malloc'd JSON) for state "online"/"offline". */
char *publish_status_json(const ad_daemon *dd, const char *state);

/* ---- stats.c ---- */
void stats_latency_add(lat_ring *r, double ms);
/* p50, p90, p99 and max of the ring (zeros when empty); 0 or AD_ENOMEM. */
int stats_latency_percentiles(const lat_ring *r, double *p50, double *p90, double *p99,
                              double *pmax);

/* ---- retain.c ---- */
/* At start (after state_scan: the streams it restored count as live): a
 * sweep now, or once the scan is done (retain_scan_done), then daily
 * (retain_timer). */
void retain_start(ad_daemon *dd);
/* The state scan is done (its streams are live): the first sweep. */
void retain_scan_done(ad_daemon *dd);
/* A reload was applied: a sweep now under the new configuration (the
 * model ids, settings hashes and retention may have changed); one in
 * flight is done again. */
void retain_reload(ad_daemon *dd);
/* 1 while a sweep removes files of stem (state_stem): a restore of that
 * stream must wait (state_restore parks it). */
int retain_holds(const ad_daemon *dd, const char *stem);

/* ---- reload.c ---- */
/* SIGHUP: load the config again off the loop and swap it in between messages. */
void reload_start(ad_daemon *dd);
/* Why stream s gets no more data under the settings of d (no topic of its
 * messages gives its key under d's stream_levels and matches one of d's
 * topics; static text), or NULL when it may still get some (one does, it
 * is keyed by Kafka record keys, or more topics came than it kept). A
 * stream whose topics are unknown (restored at start from a state file
 * that does not name them, no message since) cannot be told to get data. */
const char *reload_stream_unfed(const det_rt *d, const stream_rec *s);
/* The same rule for a stream of key that came on topics (n_topics, and
 * others not kept: topics_more), not keyed by Kafka record keys: a state
 * file's stream that is not live (state_scan). */
const char *reload_topics_unfed(const det_rt *d, const char *key, char *const *topics,
                                int n_topics, int topics_more);

#endif /* AD_DAEMON_INT_H */
