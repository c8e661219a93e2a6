/*
 * state.c - the persisted state of streams in state_dir/<detector>/ (layout
 * in daemon.h): calibration state files and models trained online. Both
 * directions run on the libuv thread pool, never on the loop thread.
 *
 * Writing: a calibrating thousand streams, evictions and the final save at
 * stop would otherwise hold the loop for as many fsyncs. One batch of at
 * most WRITE_BATCH files is written at a time, in queue order, so a newer
 * state of a stream never loses to an older one; a queued file of the same
 * path is replaced rather than written twice. A file that alert messages
 * wait for (state_defer_alert) is queued ahead of those without. A state
 * queued or being written is what a restore reads instead of the file.
 *
 * Reading (state_restore): the loop marks the stream restoring, the thread
 * pool loads the model trained online (if any) and reads the state file,
 * then the loop builds the detector, restores its calibration and pushes
 * the samples held meanwhile (streams.c), in arrival order.
 *
 * The scan at start (state_scan): the thread pool reads and parses every
 * stream state file (thousands of files would hold the loop, MQTT
 * keepalives and signals, for seconds), then the loop does what they ask
 * in directory order: the streams with an open alert restored (as any new
 * stream is), the retained messages of streams no longer fed emptied, the
 * open alerts of removed detectors cleared, files rewritten. The loop runs
 * meanwhile: a message of such a stream opens it first, and the scan
 * finds it open.
 *
 * Ownership: the writer queue (wjob) is the daemon's, and so is the scan
 * request (dd->scan) until its after-callback; each restore_req is
 * owned by its uv_work_t until its after-callback, holds the stream without
 * owning it (the stream stays alive while s->restoring is set) and owns the
 * model and text it read until it hands them over.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "daemon_int.h"
#include "homeassistant.h"
#include "kafka.h"
#include "safetensors.h"
#include "topic.h"

#define STATE_MAX ((size_t)64 << 20)     /* largest state file read */

typedef struct restore_req {
    uv_work_t w;
    ad_daemon *dd;
    stream_rec *s;
    restore_mode mode;
    char state_path[8192];       /* "" when no state dir */
    char model_path[8192];       /* model trained online to look for, or "" */
    char ref_path[8192];         /* its drift reference (trained online), or "" */
    char *js;                    /* state text (pending copy or file), or NULL */
    int live;                    /* js is the stream's own, taken at a reload */
    int kafka;                   /* js is its state from the Kafka state topic (set
                                  * before the work is queued: read-only there) */
    int kafka_parsed;            /* that state parsed on the thread pool: 1 it
                                  * does, -1 not (0: not looked at) */
    int dq;                      /* the open data-quality alerts js lists are
                                  * the stream's to close (restore_extras): a
                                  * new stream's, or a reload's rebuild that
                                  * supersedes such a restore in flight */
    ad_model *tm;                /* model trained online, loaded, or NULL */
    char tm_err[512];            /* why model_path could not be loaded, or "" */
    char js_err[512];            /* why state_path, there, could not be read, or "" */
    ad_model *rm;                /* the reference, loaded, or NULL */
    char cand_path[8192];        /* a fine-tune's candidate in shadow, or "" */
    ad_model *cm;                /* ... loaded, or NULL */
    char cm_err[512];            /* why cand_path, there, could not be loaded */
    int cm_carried;              /* cm is the rebuilt detector's candidate, its
                                  * file still being written: not read */
    char cm_unsaved[256];        /* a rebuild's candidate whose file could not
                                  * be saved: why ("" none); not read */
    char calib_why[256];         /* why the saved calibration was not reused */
    struct restore_req *next;    /* parked while a retention sweep removes
                                  * its stream's files (dd->parked) */
} restore_req;

/* ---- paths -------------------------------------------------------------- */

static void escape_key(const char *k, char *out, size_t len)
{
    size_t o = 0;
    for (; *k && o + 4 < len; k++) {
        unsigned char ch = (unsigned char)*k;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || (ch == '.' && o > 0))
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", ch);
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, len, "%%");          /* the empty key */
}

/* Escaped names longer than this are cut and end in "~" and the FNV-1a
 * hash of the whole key: a file name must stay within 255 bytes with the
 * longest suffix (".<model id>.<hash>.reference.safetensors", 62 bytes). */
#define NAME_MAX_ESC 160

static void state_path(const det_rt *d, const char *key, const char *suffix, char *out,
                       size_t len)
{
    char esc[3 * KEY_MAX + 8];
    escape_key(key, esc, sizeof esc);
    if (strlen(esc) > NAME_MAX_ESC) {
        size_t cut = NAME_MAX_ESC - 17;
        /* never cut inside a %XX escape */
        if (esc[cut - 1] == '%') cut -= 1;
        else if (esc[cut - 2] == '%') cut -= 2;
        snprintf(esc + cut, sizeof esc - cut, "~%016llx",
                 (unsigned long long)ad_fnv1a64_str(key));
    }
    snprintf(out, len, "%s/%s%s", d->state_dir, esc, suffix);
}

/* The tag of the model files of d's streams: ".<base model id or "boot">.
 * <settings hash>" (16 hex digits each). */
void state_tag(const det_rt *d, char *out, size_t len)
{
    snprintf(out, len, ".%s.%016llx", d->mr ? d->mr->m->id : "boot",
             (unsigned long long)ad_detector_cfg_hash(&d->c->pipe));
}

/* <key><tag><kind>.safetensors */
static void model_file_path(const det_rt *d, const char *key, const char *kind, char *out,
                            size_t len)
{
    char tag[64], suffix[112];
    state_tag(d, tag, sizeof tag);
    snprintf(suffix, sizeof suffix, "%s%s.safetensors", tag, kind);
    state_path(d, key, suffix, out, len);
}

/* The reference of a stream's drift measure when it is not the configured
 * model (the trained file is overwritten by promotions). The marker comes
 * after the hash: a trained file's name has 16 hex digits there, so no
 * stream key can make the two names equal. */
void state_reference_path(const det_rt *d, const char *key, char *out, size_t len)
{
    model_file_path(d, key, ".reference", out, len);
}

void state_candidate_path(const det_rt *d, const char *key, char *out, size_t len)
{
    model_file_path(d, key, ".candidate", out, len);
}

void state_trained_path(const det_rt *d, const char *key, char *out, size_t len)
{
    model_file_path(d, key, "", out, len);
}

void state_stem(const det_rt *d, const char *key, char *out, size_t len)
{
    state_path(d, key, "", out, len);
}

/* A stream running a model trained online (reused from the state dir) runs
 * with training "none", so its detector's settings hash differs from the
 * configured one. Its state, in a file or on the Kafka state topic
 * (state_text), always carries the configured hash: swapped on the way out
 * and back in (restore_calibration), so a state says under which settings
 * it was made whichever model the stream ran, and a restore compares it
 * with the settings in force. Returns a malloc'd string or NULL (then use
 * js). */
static char *swap_hash(const char *js, uint64_t from, uint64_t to)
{
    cJSON *o, *h;
    char want[32], repl[32], key[64], *out = NULL;
    const char *at;
    snprintf(want, sizeof want, "%016llx", (unsigned long long)from);
    snprintf(repl, sizeof repl, "%016llx", (unsigned long long)to);
    /* the detector's text (ad_detector_save_parts) has it among its first
     * members, before any object (a "\"" in a string is escaped: the key
     * cannot be matched inside one): swapped in place, not parsed and
     * printed again (a megabyte of a candidate's span at a stop) */
    snprintf(key, sizeof key, "\"settings_hash\":\"%s\"", want);
    at = strstr(js, key);
    if (at && !memchr(js + 1, '{', (size_t)(at - js - 1)) && (out = strdup(js)) != NULL) {
        memcpy(out + (at - js) + strlen("\"settings_hash\":\""), repl, strlen(repl));
        return out;
    }
    o = cJSON_Parse(js);
    h = o ? cJSON_GetObjectItemCaseSensitive(o, "settings_hash") : NULL;
    if (cJSON_IsString(h) && strcmp(h->valuestring, want) == 0 &&
        cJSON_SetValuestring(h, repl))
        out = ad_json_print(o);
    cJSON_Delete(o);
    return out;
}

static uint64_t trained_cfg_hash(const det_rt *d)
{
    ad_detector_cfg c = d->c->pipe;
    c.training = AD_TRAIN_NONE;
    return ad_detector_cfg_hash(&c);
}

/* ---- writer ------------------------------------------------------------- */

static void writer_kick(ad_daemon *dd);

/* Files one writer batch holds at most (one uv_work each): a file that
 * alert messages wait for is queued ahead of the files without (a reload
 * or a calibrating crowd queues thousands, an fsync or two each), so its
 * alerts wait for at most this many other files, not for all of them. */
#define WRITE_BATCH 16

/* A file whose write failed is tried again after RETRY_MIN_MS, then after
 * twice as long at each round that fails, up to RETRY_MAX_MS: a full disk
 * is not hammered, and a freed one is written within 30 s. */
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 30000

/* Unwritten states kept for the retry at most (their number, their
 * bytes): while the disk fails, every stream evicted or stopped leaves one
 * that nothing replaces. Over either, the oldest is dropped (counted in
 * stats state_files_lost, said once a failing spell): its stream's next
 * start continues from its older file. It also bounds what each state
 * save scans (retry_drop, state_queued, state_pending). */
#define RETRY_MAX_FILES 256
#define RETRY_MAX_BYTES (16u << 20)

static void wmsg_free(wmsg *m)
{
    free(m->topic);
    free(m->payload);
    free(m->what);
    free(m);
}

/* Publish the alert messages of list (in order) and free them: their
 * state file is written (or could not be: the alert still goes out). */
static void wmsg_publish(ad_daemon *dd, wmsg *list)
{
    int n = 0;
    for (wmsg *m = list, *nx; m; m = nx) {
        nx = m->next;
        if (dd->mqtt)
            ad_mqtt_publish_alert(dd->mqtt, m->topic, m->payload, strlen(m->payload), m->qos,
                                  0, m->what);
        wmsg_free(m);
        dd->w_msgs--;
        n++;
    }
    if (n)
        state_outbox_sync(dd, 0);   /* kept if the broker is away */
}

static void wmsg_append(wmsg **list, wmsg *more)
{
    while (*list)
        list = &(*list)->next;
    *list = more;
}

int state_defer_alert(ad_daemon *dd, stream_rec *s, const char *topic, const char *payload,
                      int qos, const char *what)
{
    wmsg *m;
    if (!s->det || !s->det->state_dir[0] || !s->d || !(m = calloc(1, sizeof *m)))
        return -1;
    if (!(m->topic = strdup(topic)) || !(m->payload = strdup(payload)) ||
        (what && !(m->what = strdup(what)))) {
        wmsg_free(m);
        return -1;
    }
    m->qos = qos;
    wmsg_append(&dd->defer, m);
    dd->w_msgs++;
    return 0;
}

static void wjob_free(wjob *j)
{
    free(j->unlink_after);
    free(j->path);
    free(j->data);
    free(j);
}

static void writer_work(uv_work_t *r)
{
    ad_daemon *dd = r->data;
    for (wjob *j = dd->w_batch; j; j = j->next) {
        const char *sl = strrchr(j->path, '/');
        char dir[8192], e[256];

        j->failed = ad_write_file_atomic(j->path, j->data, j->len, j->err, sizeof j->err) != 0;
        /* the detector's directory is not there (it could not be made at
         * start: state_dir read-only, not mounted yet; or removed since):
         * made now, when it can be, and the write tried again */
        if (j->failed && sl && sl > j->path && (size_t)(sl - j->path) < sizeof dir) {
            memcpy(dir, j->path, (size_t)(sl - j->path));
            dir[sl - j->path] = '\0';
            if (access(dir, F_OK) != 0 && errno == ENOENT &&
                ad_mkdir_p(dir, 0750, e, sizeof e) == 0)
                j->failed = ad_write_file_atomic(j->path, j->data, j->len, j->err,
                                                 sizeof j->err) != 0;
        }
        /* a candidate's file this state no longer names: removed only now,
         * so a kill -9 never finds a state naming a file gone */
        if (!j->failed && j->unlink_after) {
            j->unlink_err = unlink(j->unlink_after) != 0 && errno != ENOENT ? errno : 0;
            if (!j->unlink_err) {
                free(j->unlink_after);
                j->unlink_after = NULL;
            }
        }
    }
}

/* The entry of the retry list for path, unlinked, or NULL. */
static wjob *retry_take(ad_daemon *dd, const char *path)
{
    wjob *prev = NULL;
    for (wjob **pp = &dd->w_retry; *pp; prev = *pp, pp = &(*pp)->next)
        if (strcmp((*pp)->path, path) == 0) {
            wjob *j = *pp;
            *pp = j->next;
            if (dd->w_retry_tail == j)
                dd->w_retry_tail = prev;
            j->next = NULL;
            dd->w_retry_n--;
            dd->w_retry_bytes -= j->len;
            return j;
        }
    return NULL;
}

/* The oldest entry of the retry list, unlinked, or NULL. */
static wjob *retry_pop(ad_daemon *dd)
{
    wjob *j = dd->w_retry;
    if (!j)
        return NULL;
    if (!(dd->w_retry = j->next))
        dd->w_retry_tail = NULL;
    j->next = NULL;
    dd->w_retry_n--;
    dd->w_retry_bytes -= j->len;
    return j;
}

/* j's path is behind a state whose write failed: j is owed (counted once
 * in w_unwritten, stats state_files_unwritten, until j is written). */
static void owe(ad_daemon *dd, wjob *j)
{
    if (!j->owed) {
        j->owed = 1;
        dd->w_unwritten++;
    }
    dd->w_barrier = 0;
}

/* j leaves the writer (written, or dropped): no longer owed. */
static void settle(ad_daemon *dd, wjob *j)
{
    if (j->owed) {
        j->owed = 0;
        dd->w_unwritten--;
    }
}

/* The queued job of path in list, or NULL. */
static wjob *job_of(wjob *j, const char *path)
{
    for (; j; j = j->next)
        if (strcmp(j->path, path) == 0)
            return j;
    return NULL;
}

/* A newer state of path is queued: the failed one is not written again.
 * Returns whether one was dropped (its path is owed until the newer state
 * is written: the caller owes that one). */
static int retry_drop(ad_daemon *dd, const char *path)
{
    wjob *j;
    if (!dd->w_retry || (j = retry_take(dd, path)) == NULL)
        return 0;
    settle(dd, j);
    wjob_free(j);
    return 1;
}

static int queued_in(const wjob *j, const char *path)
{
    for (; j; j = j->next)
        if (strcmp(j->path, path) == 0)
            return 1;
    return 0;
}

/* A write of j failed (err): kept for the retry, unless a newer state of
 * its path is queued meanwhile. A full disk, a read-only or removed
 * state_dir: each failure is counted (stats state_write_errors), said
 * once until every file is written again. */
static void writer_failed(ad_daemon *dd, wjob *j, const char *err)
{
    /* the writer's message names the file, uv's does not */
    int named = strncmp(err, j->path, strlen(j->path)) == 0;
    wjob *q;

    dd->c.state_write_errors++;
    dd->w_fail_n++;
    if (!dd->w_failing) {
        dd->w_failing = 1;
        ad_log(AD_LOG_ERR, "state: cannot write %s%s%s; the state files not written are "
               "tried again until they are (stats state_write_errors, "
               "state_files_unwritten), and a restart meanwhile continues their streams "
               "from the older files", named ? "" : j->path, named ? "" : ": ", err);
    }
    if ((q = job_of(dd->wq_head, j->path)) != NULL ||
        (q = job_of(dd->w_batch, j->path)) != NULL) {
        /* the file stays behind until that newer state is written */
        settle(dd, j);
        owe(dd, q);
        wjob_free(j);
        return;
    }
    owe(dd, j);
    if (err != j->err)              /* uv's */
        snprintf(j->err, sizeof j->err, "%s", err);
    j->failed = 0;
    j->next = NULL;
    if (dd->w_retry_tail) dd->w_retry_tail->next = j; else dd->w_retry = j;
    dd->w_retry_tail = j;
    dd->w_retry_n++;
    dd->w_retry_bytes += j->len;
    /* bounded: the oldest go (never j, the newest) */
    while (dd->w_retry != j &&
           (dd->w_retry_n > RETRY_MAX_FILES || dd->w_retry_bytes > RETRY_MAX_BYTES)) {
        wjob *old = retry_pop(dd);
        if (!dd->w_lost_n)
            ad_log(AD_LOG_ERR, "state: over %u state files (or %u MB) wait to be written: "
                   "the oldest, %s, is dropped, its stream's next start continues from "
                   "its older file; the ones dropped after it are counted (stats "
                   "state_files_lost) and said when every file is written again",
                   RETRY_MAX_FILES, RETRY_MAX_BYTES >> 20, old->path);
        dd->w_lost_n++;
        dd->c.state_files_lost++;
        settle(dd, old);
        wjob_free(old);
    }
    if (!dd->w_retry_at && !dd->stopping) {
        if (!dd->w_retry_ms)
            dd->w_retry_ms = RETRY_MIN_MS;
        dd->w_retry_at = uv_now(dd->loop) + dd->w_retry_ms;
    }
}

/* Every file whose write failed is written (w_unwritten 0): whether the
 * states queued until then are written too (w_barrier, set now). Under
 * steady saving the queue is never empty; the files that failed, and what
 * was queued before they were written (a clear of theirs), still are. */
static int written_up_to(ad_daemon *dd)
{
    if (!dd->w_barrier)
        dd->w_barrier = dd->w_seq;
    for (const wjob *j = dd->wq_head; j; j = j->next)
        if (j->seq <= dd->w_barrier)
            return 0;
    for (const wjob *j = dd->w_batch; j; j = j->next)
        if (j->seq <= dd->w_barrier)
            return 0;
    return 1;
}

static void writer_after(uv_work_t *r, int status)
{
    ad_daemon *dd = r->data;
    wjob *j = dd->w_batch, *n;
    dd->w_batch = NULL;
    /* w_busy stays set until the batch is handled: publishing its alert
     * messages syncs outbox.json (state_write_ahead), which must not start
     * the next batch meanwhile. Before, it did: a newer state of a failed
     * file taken into that batch was not seen here, both went to the retry
     * list, and its round kept the older (a cleared alert written open) */
    for (; j; j = n) {
        n = j->next;
        j->next = NULL;
        wmsg_publish(dd, j->msgs);      /* the file holds their alerts now (or
                                         * could not: the alert still goes out) */
        j->msgs = NULL;
        if (j->unlink_err && j->unlink_after)
            ad_log(AD_LOG_WARNING, "state: cannot remove %s: %s (a restart does not use it: "
                   "no state asks for it)", j->unlink_after, strerror(j->unlink_err));
        if (status != 0 || j->failed) {
            writer_failed(dd, j, status ? uv_strerror(status) : j->err);
        } else {
            settle(dd, j);
            wjob_free(j);
        }
    }
    dd->w_busy = 0;
    if (dd->w_failing && !dd->w_unwritten && written_up_to(dd)) {
        if (dd->w_lost_n)
            ad_log(AD_LOG_NOTICE, "state: every state file is written again (%llu failed "
                   "write(s) meanwhile; %llu unwritten state(s) dropped over the limit, their "
                   "streams continue from their older files)",
                   (unsigned long long)dd->w_fail_n, (unsigned long long)dd->w_lost_n);
        else
            ad_log(AD_LOG_NOTICE, "state: every state file is written again (%llu failed "
                   "write(s) meanwhile)", (unsigned long long)dd->w_fail_n);
        dd->w_failing = 0;
        dd->w_fail_n = 0;
        dd->w_lost_n = 0;
        dd->w_retry_ms = 0;
        dd->w_retry_at = 0;
        dd->w_barrier = 0;
    }
    writer_kick(dd);
}

void state_writer_retry(ad_daemon *dd, int now)
{
    wjob *j;

    if (!dd->w_retry || (!now && (!dd->w_retry_at || uv_now(dd->loop) < dd->w_retry_at)))
        return;
    /* the next round, if this one leaves some, waits twice as long */
    dd->w_retry_at = 0;
    dd->w_retry_ms = dd->w_retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : dd->w_retry_ms * 2;
    while ((j = retry_pop(dd)) != NULL) {
        wjob *q = job_of(dd->wq_head, j->path);
        if (q || (q = job_of(dd->w_batch, j->path)) != NULL) {
            /* a newer state of it is on its way: owed until written */
            settle(dd, j);
            owe(dd, q);
            wjob_free(j);
            continue;
        }
        if (dd->wq_tail) dd->wq_tail->next = j; else dd->wq_head = j;
        dd->wq_tail = j;
    }
    writer_kick(dd);
}

static void writer_kick(ad_daemon *dd)
{
    wjob *j, *last = NULL;
    int n = 0;

    if (dd->w_busy || !dd->wq_head)
        return;
    /* at most WRITE_BATCH files: an alert's file queued meanwhile goes
     * next, not after a whole reload's worth of files */
    dd->w_batch = dd->wq_head;
    for (j = dd->wq_head; j && n < WRITE_BATCH; last = j, j = j->next, n++)
        if (j == dd->wq_pri)
            dd->wq_pri = NULL;      /* the leading ones are all taken */
    last->next = NULL;
    dd->wq_head = j;
    if (!j)
        dd->wq_tail = NULL;
    dd->w_busy = 1;
    dd->w_req.data = dd;
    if (uv_queue_work(dd->loop, &dd->w_req, writer_work, writer_after) != 0) {
        writer_work(&dd->w_req);        /* no thread pool: write here */
        writer_after(&dd->w_req, 0);
    }
}

/* Queue j after the queued files that alert messages wait for, ahead of
 * the others (one file a path is queued, so the files of one stream stay
 * in order; alert messages of different streams keep theirs). */
static void wq_insert_ahead(ad_daemon *dd, wjob *j)
{
    wjob **pp = dd->wq_pri ? &dd->wq_pri->next : &dd->wq_head;
    j->next = *pp;
    *pp = j;
    if (!j->next)
        dd->wq_tail = j;
    dd->wq_pri = j;
}

/* Queue data (taken over) for path, with the alert messages msgs (taken
 * over: published once it is written); 0 or -1 (out of memory, data freed,
 * msgs published now). */
static int state_write_unlink(ad_daemon *dd, const char *path, char *data, wmsg *msgs,
                              char *unlink_after)
{
    wjob *j, *prev = NULL;
    int owed = retry_drop(dd, path);    /* this state is newer */
    for (j = dd->wq_head; j; prev = j, j = j->next)
        if (strcmp(j->path, path) == 0) {
            if (owed)
                owe(dd, j);
            free(j->data);
            j->data = data;
            j->len = strlen(data);
            if (unlink_after) {
                free(j->unlink_after);
                j->unlink_after = unlink_after;
            }
            if (msgs && !j->msgs) {
                /* now an alert waits for it: ahead of the others */
                if (prev) prev->next = j->next; else dd->wq_head = j->next;
                if (dd->wq_tail == j) dd->wq_tail = prev;
                wq_insert_ahead(dd, j);
            }
            wmsg_append(&j->msgs, msgs);
            return 0;
        }
    if (!(j = calloc(1, sizeof *j)) || !(j->path = strdup(path))) {
        free(j);
        free(data);
        free(unlink_after);
        wmsg_publish(dd, msgs);
        return -1;
    }
    j->data = data;
    j->len = strlen(data);
    j->msgs = msgs;
    j->unlink_after = unlink_after;
    j->seq = ++dd->w_seq;
    if (owed)
        owe(dd, j);
    if (msgs) {
        wq_insert_ahead(dd, j);
    } else {
        if (dd->wq_tail) dd->wq_tail->next = j; else dd->wq_head = j;
        dd->wq_tail = j;
    }
    writer_kick(dd);
    return 0;
}

static int state_write_msgs(ad_daemon *dd, const char *path, char *data, wmsg *msgs)
{
    return state_write_unlink(dd, path, data, msgs, NULL);
}

static int state_write(ad_daemon *dd, const char *path, char *data)
{
    return state_write_msgs(dd, path, data, NULL);
}

/* state_write, queued ahead of the files no alert message waits for
 * (outbox.json: what it holds is on no disk until it is written). */
static int state_write_ahead(ad_daemon *dd, const char *path, char *data)
{
    wjob *j;
    int owed;
    for (j = dd->wq_head; j; j = j->next)
        if (strcmp(j->path, path) == 0)
            return state_write_msgs(dd, path, data, NULL);
    owed = retry_drop(dd, path);    /* this state is newer */
    if (!(j = calloc(1, sizeof *j)) || !(j->path = strdup(path))) {
        free(j);
        free(data);
        return -1;
    }
    j->data = data;
    j->len = strlen(data);
    j->seq = ++dd->w_seq;
    if (owed)
        owe(dd, j);
    wq_insert_ahead(dd, j);
    writer_kick(dd);
    return 0;
}

int state_queued(const ad_daemon *dd, const char *path)
{
    if (queued_in(dd->w_retry, path))
        return 1;
    for (const wjob *j = dd->w_batch; j; j = j->next)
        if (strcmp(j->path, path) == 0) return 1;
    for (const wjob *j = dd->wq_head; j; j = j->next)
        if (strcmp(j->path, path) == 0) return 1;
    return 0;
}

/* The newest not yet written state for path (a copy), or NULL. */
static char *state_pending(const ad_daemon *dd, const char *path)
{
    const wjob *hit = NULL;
    /* a state whose write failed is the newest unless one is queued: a
     * restore (a device back after its eviction, a reload's rebuild) goes
     * on from it, not from the older file (its alert sequence, an alert
     * cleared since) */
    for (const wjob *j = dd->w_retry; j; j = j->next)
        if (strcmp(j->path, path) == 0) hit = j;
    for (const wjob *j = dd->w_batch; j; j = j->next)
        if (strcmp(j->path, path) == 0) hit = j;
    for (const wjob *j = dd->wq_head; j; j = j->next)
        if (strcmp(j->path, path) == 0) hit = j;
    return hit ? strdup(hit->data) : NULL;
}

void state_writer_free(ad_daemon *dd)
{
    while (dd->wq_head) {
        wjob *j = dd->wq_head;
        dd->wq_head = j->next;
        for (wmsg *m = j->msgs, *nx; m; m = nx) {
            nx = m->next;
            wmsg_free(m);
        }
        wjob_free(j);
    }
    for (wmsg *m = dd->defer, *nx; m; m = nx) {
        nx = m->next;
        wmsg_free(m);
    }
    dd->defer = NULL;
    dd->wq_tail = dd->wq_pri = NULL;
    if (dd->w_retry) {
        const wjob *j = dd->w_retry;
        int named = strncmp(j->err, j->path, strlen(j->path)) == 0;
        ad_log(AD_LOG_ERR, "state: %u state file(s) not written at exit (%s%s%s%s): the "
               "next start continues their streams from the older files", dd->w_retry_n,
               named ? "" : j->path, named ? "" : ": ", j->err,
               dd->w_retry_n > 1 ? ", and others" : "");
    }
    while (dd->w_retry)
        wjob_free(retry_pop(dd));
}

/* Whether s has an open model alert whose topic it knows (s->alert_at). */
static int alert_topic_open(const stream_rec *s)
{
    ad_detector_summary b;

    if (!s->alert_at || !s->d)
        return 0;
    ad_detector_summarize(s->d, &b);
    return b.alert_active;
}

/* "alert_topic": the open alert's id, the MQTT topic it was raised on
 * (its clear goes there; none when it went to Kafka only), "kafka_topic"
 * the Kafka topic it was produced to (when it was), and the stream's
 * feature names (its top features are indices): what its clear needs when
 * no detector is left to publish it (the scan at start, scan_orphan_file). */
static void add_extras(const stream_rec *s, cJSON *o, int topic)
{
    const char *const *names;
    cJSON *t;

    command_state_add(s, o);
    if (topic && (t = cJSON_AddObjectToObject(o, "alert_topic"))) {
        cJSON_AddStringToObject(t, "alert_id", s->alert_at->id);
        if (s->alert_at->topic[0])
            cJSON_AddStringToObject(t, "topic", s->alert_at->topic);
        if (s->alert_at->kafka)
            cJSON_AddStringToObject(t, "kafka_topic", s->alert_at->kafka);
        if ((names = ad_detector_features(s->d)) != NULL)
            cJSON_AddItemToObject(t, "features",
                                  cJSON_CreateStringArray(names, ad_detector_F(s->d)));
    }
}

/* Add to a state text js (taken over; returned, or a new text) what the
 * daemon keeps beside the detector's state (add_extras), parsed and
 * printed once, and only when there is something to add. */
static char *attach_extras(const stream_rec *s, char *js)
{
    cJSON *o;
    char *out;
    int topic;

    if (!js)
        return js;
    topic = alert_topic_open(s);
    if ((!s->fb && !topic) || !(o = cJSON_Parse(js)))
        return js;
    add_extras(s, o, topic);
    out = ad_json_print(o);     /* the state's numbers read back bit for bit */
    cJSON_Delete(o);
    if (!out)
        return js;
    free(js);
    return out;
}

/* Add "name":value (printed JSON, taken over) to a state text js (taken
 * over; returned, or a new text), spliced in before the closing brace: the
 * state is not parsed again for it. */
static char *splice_member(char *js, const char *name, char *value)
{
    char *out;
    size_t l, n;

    if (!js || !value || (l = strlen(js)) < 2 || js[l - 1] != '}') {
        free(value);
        return js;
    }
    n = l + strlen(name) + strlen(value) + 8;
    if ((out = malloc(n)) != NULL) {
        snprintf(out, n, "%.*s%s\"%s\":%s}", (int)(l - 1), js, js[l - 2] == '{' ? "" : ",",
                 name, value);
        free(js);
        js = out;
    }
    free(value);
    return js;
}

/* Add to a state text js (taken over; returned, or a new text) the MQTT
 * topics the stream's messages came on ("topics": [...], and
 * "topics_more": true when it did not keep them all), so that a stream
 * restored at start knows what feeds it (a reload that changes
 * stream_levels or topics decides from them, reload.c). */
static char *attach_topics(const stream_rec *s, char *js)
{
    cJSON *a;

    if (!js || (!s->n_topics && !s->topics_more) ||
        !(a = cJSON_CreateStringArray((const char *const *)s->topics, s->n_topics)))
        return js;
    js = splice_member(js, "topics", cJSON_PrintUnformatted(a));
    cJSON_Delete(a);
    if (s->topics_more)
        js = splice_member(js, "topics_more", strdup("true"));
    return js;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    return s ? ad_fnv1a64(h, s, strlen(s) + 1) : ad_fnv1a64(h, "-", 1);
}

/* A fingerprint of what feeds d's streams (its topics and stream_levels)
 * and of where they are published (alert.state_topic, and with Home
 * Assistant on its discovery prefix, state topic and the client id the
 * entities are named by): a state file saved under the same ones names a
 * stream that is still fed and published where it was (state_scan reads
 * no further). */
static uint64_t feed_hash(const ad_config *cfg, const det_rt *d)
{
    uint64_t h = AD_FNV_INIT;

    for (int i = 0; i < d->c->topics.n; i++)
        h = ad_fnv1a64(h, d->c->topics.v[i], strlen(d->c->topics.v[i]) + 1);
    h = ad_fnv1a64(h, "|", 1);
    if (d->c->stream_levels.n > 0)
        h = ad_fnv1a64(h, d->c->stream_levels.v,
                       (size_t)d->c->stream_levels.n * sizeof d->c->stream_levels.v[0]);
    h = hash_str(ad_fnv1a64(h, "|", 1), d->c->state_topic);
    if (cfg->ha.enabled) {
        h = hash_str(ad_fnv1a64(h, "|ha", 3), cfg->ha.discovery_prefix);
        h = hash_str(h, cfg->ha.state_topic);
        h = hash_str(h, cfg->broker.client_id);
        /* its object ids hashed (homeassistant.h): a file saved under the
         * plain ones (an older version, or that other detector added while
         * stopped) is read at start and its old entities emptied; the hash
         * of other detectors is as before */
        if (ha_name_shadowed(cfg, d->c->name))
            h = ad_fnv1a64(h, "|hashed", 7);
    }
    return h;
}

/* Add to a state text js (taken over; returned, or a new text) what the
 * stream keeps on the broker, retained, for when no live detector is left
 * to empty it (state_scan: its detector removed while the daemon was
 * stopped, scan_orphan_file, or its topics no longer fed, scan_unfed), or
 * to empty the old topics when it is published elsewhere (scan_moved):
 *   "published": {"detector": name, "state_topic": its state topic,
 *                 "ha_topics": [its Home Assistant discovery configs and
 *                 entity state], "feed": feed_hash, "kafka": true (its
 *                 streams come from Kafka partitions), "alerts_to": where
 *                 its alerts go, "mqtt", "kafka" or "both" (an older
 *                 file without it may have had its alert go to Kafka too,
 *                 and "alert_topic" does not say: scan_orphan_file)}
 * (state_topic and ha_topics only when configured). */
static char *attach_published(ad_daemon *dd, const stream_rec *s, char *js)
{
    const det_rt *d = s->det;
    char topic[1024], feed[24];
    cJSON *p, *ha;

    if (!js || !(p = cJSON_CreateObject()))
        return js;
    cJSON_AddStringToObject(p, "detector", d->c->name);
    if (d->c->state_topic &&
        ad_topic_expand(d->c->state_topic, d->c->name, s->key, topic, sizeof topic) >= 0)
        cJSON_AddStringToObject(p, "state_topic", topic);
    if ((ha = ha_stream_topics(dd, s)) != NULL)
        cJSON_AddItemToObject(p, "ha_topics", ha);
    snprintf(feed, sizeof feed, "%016llx", (unsigned long long)feed_hash(dd->g->cfg, d));
    cJSON_AddStringToObject(p, "feed", feed);
    if (d->c->kafka_topics.n > 0)
        cJSON_AddTrueToObject(p, "kafka");
    cJSON_AddStringToObject(p, "alerts_to", d->c->alerts_to == AD_ALERTS_KAFKA ? "kafka" :
                            d->c->alerts_to == AD_ALERTS_BOTH ? "both" : "mqtt");
    js = splice_member(js, "published", cJSON_PrintUnformatted(p));
    cJSON_Delete(p);
    return js;
}

/* The other way (restore, from a state file or the Kafka state topic): the
 * "alert_topic" add_extras kept, unless s knows a newer one (a
 * reload's rebuild), and the topics attach_topics kept, added to those s
 * knows (messages held during the restore, or the stream's own before a
 * reload's rebuild). */
static void restore_extras(stream_rec *s, const char *js, int dq)
{
    cJSON *o, *t, *id, *tp, *kt;

    if (!js || (!strstr(js, "\"alert_topic\"") && !strstr(js, "\"topics\"") &&
                !strstr(js, "\"dq_open\"")) ||
        !(o = cJSON_Parse(js)))
        return;
    /* the data-quality alerts open when it was saved (state_text): a new
     * monitor does not continue them, the caller closes them */
    t = cJSON_GetObjectItemCaseSensitive(o, "dq_open");
    if (dq && !s->dq_open && cJSON_IsArray(t) && t->child) {
        s->dq_open = cJSON_DetachItemFromObjectCaseSensitive(o, "dq_open");
        s->dq_carried = 1;      /* entries marked carried, maybe (streams.c) */
    }
    t = cJSON_GetObjectItemCaseSensitive(o, "alert_topic");
    id = cJSON_GetObjectItemCaseSensitive(t, "alert_id");
    tp = cJSON_GetObjectItemCaseSensitive(t, "topic");
    kt = cJSON_GetObjectItemCaseSensitive(t, "kafka_topic");
    if (!s->alert_at && cJSON_IsString(id) && (cJSON_IsString(tp) || cJSON_IsString(kt)))
        s->alert_at = publish_alert_at(id->valuestring, cJSON_IsString(tp) ? tp->valuestring : "",
                                       cJSON_IsString(kt) ? kt->valuestring : NULL);
    if (!s->record_keyed) {
        t = cJSON_GetObjectItemCaseSensitive(o, "topics");
        cJSON_ArrayForEach(tp, t)
            if (cJSON_IsString(tp))
                streams_note_topic(s, tp->valuestring);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "topics_more")))
            s->topics_more = 1;
    }
    cJSON_Delete(o);
}

char *state_text(const stream_rec *s, int handover)
{
    char *js;

    int kind = handover & 3;
    int parts = (kind == SAVE_CHECKPOINT ? AD_DET_SAVE_WINDOW :
                 kind == SAVE_HANDOVER ? AD_DET_SAVE_WINDOW | AD_DET_SAVE_NORMAL : 0) |
                ((handover & SAVE_SPAN) ? AD_DET_SAVE_SPAN : 0);

    if (!s->det || !s->d || !(js = ad_detector_save_parts(s->d, parts)))
        return NULL;
    if (s->own_model) {
        char *sw = swap_hash(js, trained_cfg_hash(s->det), ad_detector_cfg_hash(&s->det->c->pipe));
        if (sw) { free(js); js = sw; }
    }
    /* its open data-quality alerts (s->dq_open, with the topics they were
     * raised on): whatever ends this process, the stream restored from
     * this text closes them (restore_close_dq), as a clean stop does */
    if (js && s->dq_open && s->dq_open->child)
        js = splice_member(js, "dq_open", cJSON_PrintUnformatted(s->dq_open));
    /* reload.shadow: the configured file that does not run, the live model
     * kept under its tag (training_save_kept): a restore runs that too */
    if (js && s->kept_why && s->det->mr && strcmp(s->kept_file, s->det->mr->m->id) == 0) {
        char k[96];

        snprintf(k, sizeof k, "{\"file\":\"%s\",\"state\":\"%s\"}", s->kept_file,
                 s->kept_why == KEPT_REJECTED ? "rejected" : "shadow");
        js = splice_member(js, "model_kept", strdup(k));
    }
    return attach_extras(s, js);
}

/* The "model_kept" of state text js for the configured file id: KEPT_*. */
static int kept_record(const char *js, const char *id)
{
    cJSON *o, *k, *f, *st;
    int why = KEPT_NONE;

    if (!js || !strstr(js, "\"model_kept\"") || !(o = cJSON_Parse(js)))
        return KEPT_NONE;
    k = cJSON_GetObjectItemCaseSensitive(o, "model_kept");
    f = cJSON_GetObjectItemCaseSensitive(k, "file");
    st = cJSON_GetObjectItemCaseSensitive(k, "state");
    if (cJSON_IsString(f) && cJSON_IsString(st) && strcmp(f->valuestring, id) == 0)
        why = strcmp(st->valuestring, "rejected") == 0 ? KEPT_REJECTED :
              strcmp(st->valuestring, "shadow") == 0 ? KEPT_SHADOW : KEPT_NONE;
    cJSON_Delete(o);
    return why;
}

/* The span of a fine-tune's candidate in shadow, in the state file beside
 * its model file: every hand-over (stop, eviction, a reload's rebuild)
 * holds it, and a save of an event while it is short (SPAN_SHORT windows
 * judged normal: 33 KB), else one at least SPAN_EVERY_MS after the last
 * that held it (SPAN_STALE_MS when a save without it replaced that one:
 * state_save_alerts makes it). The others leave it out: 30,000 windows
 * (shadow_ms 8.3 h at a window a second) took 0.2-0.4 s to save on the
 * loop at every event, a periodic save of an open alert, a stop. A kill -9
 * finds the span of the last save that held it, when no save followed it;
 * else the state does not name the candidate, whose fine-tune comes again
 * (restore_candidate removes its file). */
#define SPAN_SHORT 1000
#define SPAN_EVERY_MS (15 * 60 * 1000)
#define SPAN_STALE_MS (60 * 1000)

/* event: a save of s for an event (a short span always goes with it),
 * else the periodic one's question (state_save_alerts) */
static int span_due(ad_daemon *dd, const stream_rec *s, int event)
{
    long n = s->d ? ad_adapt_shadow_span(ad_detector_adapt(s->d)) : -1;
    uint64_t ago = uv_now(dd->loop) - s->span_saved_ms;

    /* its file not on disk (being written, or its save failed): no state
     * names it (span_part), so none is due for it; before, the periodic
     * save found it never saved and rewrote the state every stats tick */
    if (n < 0 || s->cand_nofile)
        return 0;
    if (!s->span_saved_ms || ago >= SPAN_EVERY_MS || (s->span_stale && ago >= SPAN_STALE_MS))
        return 1;
    return event && n <= SPAN_SHORT;
}

/* SAVE_SPAN when the save of s to its state file (handover: SAVE_*) holds
 * the span (above), else 0; notes which it was. */
static int span_part(ad_daemon *dd, stream_rec *s, int handover)
{
    long n = s->d ? ad_adapt_shadow_span(ad_detector_adapt(s->d)) : -1;

    if (n == -2 && !s->span_warned) {
        s->span_warned = 1;
        ad_log(AD_LOG_WARNING, "stream %s/%s: the span of candidate in shadow is over %d "
               "windows: no longer saved, a restart goes on without the candidate",
               s->det->c->name, s->key, AD_ADAPT_SHADOW_SAVE_MAX);
    }
    if (n < 0)
        return 0;
    if (s->cand_nofile) {
        /* its file is not written yet (the save after it holds the span:
         * save_done) or could not be: a state naming it must not be on
         * disk before it */
        s->span_stale = 1;
        return 0;
    }
    if (handover == SAVE_HANDOVER || span_due(dd, s, 1)) {
        s->span_saved_ms = uv_now(dd->loop) ? uv_now(dd->loop) : 1;
        s->span_stale = 0;
        return SAVE_SPAN;
    }
    s->span_stale = 1;
    return 0;
}

static void save(ad_daemon *dd, stream_rec *s, int handover)
{
    char path[8192], *js, *unl = NULL;
    /* the alert messages kept for this save (state_defer_alert) */
    wmsg *msgs = dd->defer;
    dd->defer = NULL;
    /* stopping: every save is the hand-over the next start continues
     * from. A save without the window rows after the stop's own (the
     * periodic save of open alerts while the MQTT stop waits for the
     * broker, an operator command) replaced it, and the restarted stream
     * scored again only T-1 rows later. */
    if (dd->stopping)
        handover = 1;
    if (!s->det || !s->det->state_dir[0] ||
        !(js = state_text(s, handover | span_part(dd, s, handover)))) {
        wmsg_publish(dd, msgs);     /* nothing to wait for (not calibrated yet) */
        return;
    }
    js = attach_published(dd, s, attach_topics(s, js));
    state_path(s->det, s->key, ".state.json", path, sizeof path);
    /* a decided candidate's file: removed once this state, which no longer
     * names it, is written (not while its own or the promoted model's
     * save is on the workers: the state after it is the one) */
    if (s->cand_drop && !s->saving) {
        char cp[8192];

        state_candidate_path(s->det, s->key, cp, sizeof cp);
        if ((unl = strdup(cp)) != NULL)     /* out of memory: the next save */
            s->cand_drop = 0;
    }
    if (state_write_unlink(dd, path, js, msgs, unl) != 0)
        ad_log(AD_LOG_WARNING, "state: cannot write %s: out of memory", path);
}

void state_save(ad_daemon *dd, stream_rec *s)
{
    save(dd, s, 0);
}

void state_save_handover(ad_daemon *dd, stream_rec *s)
{
    save(dd, s, 1);
}

void state_candidate_kept(ad_daemon *dd, stream_rec *s)
{
    char cp[8192];
    wjob *lists[2] = { dd->wq_head, dd->w_retry };

    s->cand_drop = 0;
    if (!s->det || !s->det->state_dir[0])
        return;
    state_candidate_path(s->det, s->key, cp, sizeof cp);
    for (int i = 0; i < 2; i++)
        for (wjob *j = lists[i]; j; j = j->next)
            if (j->unlink_after && strcmp(j->unlink_after, cp) == 0) {
                free(j->unlink_after);
                j->unlink_after = NULL;
            }
}

/* ---- restore ------------------------------------------------------------- */

/* Thread pool: the file reads. A missing or unreadable file is no state. */
/* A Kafka record's state (rec) never holds the span of a candidate in
 * shadow: the stream's state file (file) of the same point of the stream
 * (a stop or a hand-over writes both: the learner's same offered count)
 * gives it. The record's text with it (malloc'd), or NULL. */
static char *span_from_file(const char *rec, const char *file)
{
    cJSON *ro = cJSON_Parse(rec), *fo = file ? cJSON_Parse(file) : NULL, *sh;
    cJSON *ra = cJSON_GetObjectItemCaseSensitive(ro, "adapt");
    cJSON *fa = cJSON_GetObjectItemCaseSensitive(fo, "adapt");
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(ra, "offered");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(fa, "offered");
    char *out = NULL;

    if (cJSON_IsObject(ra) && !cJSON_GetObjectItemCaseSensitive(ra, "shadow") &&
        cJSON_IsNumber(rn) && cJSON_IsNumber(fn) && rn->valuedouble == fn->valuedouble &&
        (sh = cJSON_DetachItemFromObjectCaseSensitive(fa, "shadow")) != NULL) {
        cJSON_AddItemToObject(ra, "shadow", sh);
        out = ad_json_print(ro);    /* its numbers bit for bit */
    }
    cJSON_Delete(ro);
    cJSON_Delete(fo);
    return out;
}

static void restore_work(uv_work_t *w)
{
    restore_req *r = w->data;
    char err[512];
    if (r->model_path[0] && access(r->model_path, R_OK) == 0 &&
        ad_model_load(&r->tm, r->model_path, err, sizeof err) != 0) {
        ad_model_free(r->tm);
        r->tm = NULL;
        snprintf(r->tm_err, sizeof r->tm_err, "%s", err);   /* told on the loop */
    }
    if (r->tm && r->ref_path[0] && access(r->ref_path, R_OK) == 0 &&
        ad_model_load(&r->rm, r->ref_path, err, sizeof err) != 0) {
        ad_model_free(r->rm);
        r->rm = NULL;
    }
    if (r->cand_path[0] && !r->cm_carried && !r->cm_unsaved[0] &&
        access(r->cand_path, F_OK) == 0 &&
        ad_model_load(&r->cm, r->cand_path, err, sizeof err) != 0) {
        ad_model_free(r->cm);
        r->cm = NULL;
        snprintf(r->cm_err, sizeof r->cm_err, "%s", err);   /* told on the loop */
    }
    if (!r->js && r->state_path[0] && access(r->state_path, F_OK) == 0 &&
        ad_read_text(r->state_path, STATE_MAX, &r->js, err, sizeof err) != 0) {
        r->js = NULL;
        snprintf(r->js_err, sizeof r->js_err, "%s", err);   /* told on the loop */
    }
    /* restored from a Kafka record with a candidate's file there (a
     * restart, a shared state dir): its span from the state file */
    if (r->kafka && r->cm && r->js && r->state_path[0] && access(r->state_path, F_OK) == 0) {
        char *fjs = NULL, *out;

        if (ad_read_text(r->state_path, STATE_MAX, &fjs, err, sizeof err) == 0 &&
            strstr(fjs, "\"shadow\":{") && (out = span_from_file(r->js, fjs)) != NULL) {
            free(r->js);
            r->js = out;
        }
        free(fjs);
    }
    if (r->kafka && r->js) {
        /* the Kafka state topic's record is only scanned when it is read
         * (kafka.c): parsed here, off the loop */
        cJSON *o = cJSON_Parse(r->js);
        r->kafka_parsed = o ? 1 : -1;
        cJSON_Delete(o);
    }
}

/* Loop: a state from the Kafka state topic that does not parse (checked
 * on the thread pool, here when the restore ran at once) is no state:
 * dropped, and the stream calibrates afresh. Not the instance's own state
 * file: the latest record is the stream's state, and that file may be
 * days old (an alert another owner cleared since). Its records before the
 * record's offset are not skipped (kafka_restore_result). */
static void restore_kafka_check(restore_req *r, stream_rec *s)
{
    if (!r->kafka || !r->js)
        return;
    if (r->kafka_parsed == 0) {
        cJSON *o = cJSON_Parse(r->js);
        r->kafka_parsed = o ? 1 : -1;
        cJSON_Delete(o);
    }
    if (r->kafka_parsed > 0)
        return;
    ad_log(AD_LOG_WARNING, "stream %s/%s: its latest record on the Kafka state topic holds "
           "a state that does not parse: the stream calibrates afresh (its state file here, "
           "if any, is not used), its records read from the partition's committed offset",
           s->det->c->name, s->key);
    free(r->js);
    r->js = NULL;
}

static void restore_req_free(restore_req *r)
{
    ad_model_free(r->tm);
    ad_model_free(r->rm);
    ad_model_free(r->cm);
    free(r->js);
    free(r);
}

/* The model of the state dir that r looked for is not used, for `why`:
 * the stream runs what its settings give (warning). */
static void set_aside(const restore_req *r, const stream_rec *s, const char *why)
{
    const det_rt *d = s->det;

    ad_log(AD_LOG_WARNING, "stream %s/%s: the model in %s is not used: %s; running %s",
           d->c->name, s->key, r->model_path, why,
           d->mr ? "the configured model" : "a model trained anew");
}

/* A detector for s under the settings of s->det, reusing the model trained
 * online that r loaded when it fits. */
static int restore_make_detector(restore_req *r, stream_rec *s, char *err, size_t errlen)
{
    det_rt *d = s->det;
    ad_detector_cfg cfg = d->c->pipe;
    const ad_model *m = d->mr ? d->mr->m : NULL;
    ad_model *own = NULL;
    int rc, kept = d->mr ? kept_record(r->js, d->mr->m->id) : KEPT_NONE;

    s->kept_why = KEPT_NONE;
    /* looked for only for reload.shadow (no training, no continual
     * learning): used only as the live model kept for the file */
    if (!kept && d->c->pipe.training == AD_TRAIN_NONE && !d->c->pipe.adapt.enabled) {
        ad_model_free(r->tm);
        r->tm = NULL;
        r->tm_err[0] = '\0';
    }
    if (r->tm_err[0])
        set_aside(r, s, r->tm_err);
    else if (r->tm && (r->tm->window != d->T || r->tm->n_features != d->F))
        set_aside(r, s, "its window or feature count differs from the detector's");
    else if (r->tm) {
        /* not trained again, but still the model the stream trained
         * itself: a bootstrap's calibration waits on windows above the
         * guard as before the restart (else a wait under way took the
         * model's threshold at the first window after it) */
        cfg.own_model = cfg.training == AD_TRAIN_BOOTSTRAP;
        cfg.training = AD_TRAIN_NONE;
        m = own = r->tm;
        r->tm = NULL;
    }
    rc = ad_detector_new(&s->d, &cfg, s->key, m, d->T, d->F, (const char *const *)d->features,
                         err, errlen);
    if (rc != 0 && own) {
        /* the model of the state dir does not fit the settings (a
         * calibration.method "model" against a training error in another
         * metric): set aside like an unreadable one, and the stream runs
         * what the settings give, which gen_load built a detector with
         * already. Dropping the stream instead left a device that no
         * message could bring back, its state and entities still shown. */
        set_aside(r, s, err);
        ad_model_free(own);
        own = NULL;
        cfg = d->c->pipe;
        m = d->mr ? d->mr->m : NULL;
        rc = ad_detector_new(&s->d, &cfg, s->key, m, d->T, d->F,
                             (const char *const *)d->features, err, errlen);
    }
    if (rc != 0) {
        s->d = NULL;
        ad_model_free(own);
        return rc;
    }
    if (own && kept && strcmp(own->id, d->mr->m->id) != 0) {
        /* what the daemon said it runs, not the file reload.shadow has not
         * promoted (the file changed again since: another tag, not here) */
        s->kept_why = kept;
        snprintf(s->kept_file, sizeof s->kept_file, "%s", d->mr->m->id);
        ad_log(AD_LOG_NOTICE, "stream %s/%s: model file %s (%s) %s; running model %s "
               "kept in %s", d->c->name, s->key, d->c->model, d->mr->m->id,
               kept == KEPT_REJECTED ? "was rejected by reload.shadow" :
               "was in shadow at the stop, evaluated in shadow again",
               own->id, r->model_path);
    } else if (own) {
        ad_log(AD_LOG_INFO, "stream %s/%s: reusing the model trained online in %s",
               d->c->name, s->key, r->model_path);
    }
    s->own_model = own;
    snprintf(s->disk_model, sizeof s->disk_model, "%s", own ? own->id : "");
    /* the drift of an adapted model is measured from its reference: the
     * one kept beside it (a model the stream trained, or the live model an
     * operator accepted, both since replaced by promotions), else the
     * configured one */
    if (own != NULL && r->rm && r->rm->window == d->T && r->rm->n_features == d->F)
        ad_detector_set_reference(s->d, r->rm);     /* kept beside: trained, accepted */
    else if (own != NULL && d->mr && d->mr->m && d->c->pipe.training == AD_TRAIN_NONE)
        ad_detector_set_reference(s->d, d->mr->m);
    ad_detector_set_user(s->d, s);
    /* its arrival clock starts now: the house tick's wall time is never
     * taken for data time, so a stream restored with data from the past
     * does not see a dropout before its next sample (silence counts from
     * here) */
    ad_detector_arrival(s->d, (int64_t)dd_data_wall_ms(r->dd));
    return 0;
}

/* A restored stream that stamps its samples on arrival, whose last row is
 * ahead of the data wall clock (dd_data_clock_lead): by at most an hour
 * the data clock catches up with it; by more its rows start anew from now,
 * as after a silence: the saved last row is taken back to now and the
 * window rows are not kept (else every sample until the clock passes that
 * row was stamped 1 ms after the last, for as long as the clock was ahead:
 * no period rows, no windows, no dropout). Its calibration, alert and
 * tests' state stay. */
static void restore_clock(restore_req *r, stream_rec *s)
{
    const ad_detconf *c = s->det->c;
    cJSON *o, *x;
    char who[600], *out;

    /* not when samples carry their time: a payload's, a Kafka record's (a
     * record read again after a crash keeps its time, refused as at or
     * before the last row) */
    if (!r->js || (c->payload.format == AD_FMT_JSON && c->payload.timestamp) ||
        (r->dd->kafka && r->dd->g->cfg->kafka.row_time == AD_KROW_RECORD) ||
        !strstr(r->js, "\"last_ts\""))
        return;
    o = cJSON_Parse(r->js);
    x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "alert"), "last_ts");
    snprintf(who, sizeof who, "stream %s/%s", c->name, s->key);
    if (cJSON_IsNumber(x) && x->valuedouble >= 1 && x->valuedouble <= 1e15 &&
        dd_data_clock_lead(r->dd, (int64_t)x->valuedouble, who) == 1) {
        cJSON_SetNumberValue(x, (double)((int64_t)dd_data_wall_ms(r->dd) - 1));
        cJSON_DeleteItemFromObjectCaseSensitive(o, "window");
        if ((out = ad_json_print(o)) != NULL) {
            free(r->js);
            r->js = out;
        }
    }
    cJSON_Delete(o);
}

/* The stream's saved calibration into its detector; 1 when it was taken
 * (the same model and settings), 0 when the stream calibrates anew. */
static int restore_calibration(restore_req *r, stream_rec *s)
{
    char err[256];
    cJSON *o = NULL;

    /* a file that is there but cannot be read (replaced by a directory,
     * its permissions, an I/O error) or is no JSON (truncated, overwritten
     * by hand): the stream starts anew, and an alert the file held open
     * is not continued, so that is a warning naming the file, not the
     * notice of a settings change */
    if (!r->js && r->js_err[0]) {
        ad_log(AD_LOG_WARNING, "stream %s/%s: state file cannot be read (%s): the stream "
               "calibrates anew, and an alert the file held open is neither continued nor "
               "cleared", s->det->c->name, s->key, r->js_err);
        return 0;
    }
    if (!r->js)
        return 0;
    if (!r->live && !r->kafka && (o = cJSON_Parse(r->js)) == NULL) {
        ad_log(AD_LOG_WARNING, "stream %s/%s: state file %s is not JSON (truncated or "
               "overwritten?): the stream calibrates anew, and an alert the file held open "
               "is neither continued nor cleared", s->det->c->name, s->key, r->state_path);
        return 0;
    }
    cJSON_Delete(o);
    /* before its clear can be published (a continued alert, or one closed
     * below); its open data-quality alerts only for a new stream (a
     * reload's rebuild closed them itself, reason reload), or for the
     * rebuild that superseded its restore in flight (r->dq: that reload
     * found no detector, nothing open to close, and the alerts its file
     * lists were never closed) */
    restore_extras(s, r->js, r->dq);
    if (s->own_model) {
        char *sw = swap_hash(r->js, ad_detector_cfg_hash(&s->det->c->pipe),
                             trained_cfg_hash(s->det));
        if (sw) { free(r->js); r->js = sw; }
    }
    if (ad_detector_restore(s->d, r->js, err, sizeof err) == 0 &&
        command_state_restore(s, r->js) >= 0) {
        /* the acceptance progress of a hand-over continues as if nothing
         * was consumed after it: true now, no longer once this stream
         * consumes rows while the file still says so */
        s->handover_read = strstr(r->js, "\"handover\":true") != NULL;
        ad_log(AD_LOG_DEBUG, "stream %s/%s: calibration restored from %s", s->det->c->name,
               s->key, r->state_path);
        return 1;
    }
    ad_log(AD_LOG_INFO, "stream %s/%s: saved calibration not reused (%s); recalibrating",
           s->det->c->name, s->key, err);
    snprintf(r->calib_why, sizeof r->calib_why, "%s", err);
    /* the alert part still counts: the seq continues, an alert left open
     * is closed (restart: settings changed while stopped; a reload closed
     * it already) and the old threshold guards the new calibration */
    ad_detector_restore_alert(s->d, r->js, r->mode == RESTORE_NEW ? AD_CLOSE_RESTART :
                              AD_CLOSE_RELOAD);
    /* and the operator's feedback (acknowledgement, false alarms, a
     * freeze): an operator's decision, not a figure of the calibration
     * (before, a freeze was lost here: the retained state said frozen
     * after a reload while the new threshold adapted, and a restart with
     * other calibration settings dropped the feedback altogether) */
    if (command_state_restore(s, r->js) < 0)
        ad_log(AD_LOG_WARNING, "stream %s/%s: saved operator feedback not restored: out of "
               "memory", s->det->c->name, s->key);
    /* a reload's rebuild: its window rows go on when the reload found them
     * fit (reload.c; else it took them out), so the new calibration or
     * model scores from the next row */
    if (r->live && r->mode == RESTORE_REBUILD && ad_detector_restore_window(s->d, r->js))
        ad_log(AD_LOG_DEBUG, "stream %s/%s: window rows kept", s->det->c->name, s->key);
    return 0;
}

/* A fine-tune's candidate was in shadow when the state was saved: back in
 * shadow from its file where its span stopped (calibrated: the stream's
 * calibration state was restored, the same model and settings; else it
 * is dropped with a notice saying why), or, when the file is missing,
 * damaged or not that candidate, dropped with a warning naming the file
 * (the stream goes on without it; a fine-tune comes again at its
 * schedule). A file no state asks for (decided since, its removal lost; a
 * save without the span after the last with it, then a kill -9; a Kafka
 * record) or that is not resumed is removed with the stream's next state
 * written (cand_drop): nothing would ever use it. */
static void restore_candidate(restore_req *r, stream_rec *s, int calibrated)
{
    char id[AD_MODEL_ID_LEN + 1], err[256];
    const char *why;
    /* carried over from memory: its file is being written (there) */
    int resumed = 0, there = r->cm != NULL || r->cm_err[0] || r->cm_unsaved[0];

    if (!s->d || !ad_detector_shadow_saved(s->d, id, sizeof id)) {
        if (there)
            ad_log(AD_LOG_DEBUG, "stream %s/%s: candidate file %s: no state asks for it, "
                   "removed", s->det->c->name, s->key, r->cand_path);
    } else if (!calibrated) {
        /* the learner's state goes on, but the span compared it with a
         * live model or settings that are not those of the stream now: not
         * resumed */
        ad_detector_shadow_resume(s->d, NULL, NULL, 0);
        ad_log(AD_LOG_NOTICE, "stream %s/%s: candidate %s in shadow at the stop is not "
               "resumed: the saved calibration it was compared under was not reused (%s)",
               s->det->c->name, s->key, id,
               r->calib_why[0] ? r->calib_why : "the state could not be read");
    } else if (r->cm_unsaved[0]) {
        /* its file could not be written: nothing to resume it from (and
         * what is at its path, if anything, is an older candidate's) */
        ad_detector_shadow_resume(s->d, NULL, NULL, 0);
        ad_log(AD_LOG_WARNING, "stream %s/%s: candidate %s in shadow is dropped by the "
               "rebuild: its model file could not be saved (%s); the stream goes on "
               "without it, a fine-tune comes again at its schedule", s->det->c->name,
               s->key, id, r->cm_unsaved);
    } else if (r->cm && ad_detector_shadow_resume(s->d, r->cm, err, sizeof err) == 0) {
        if (r->cm_carried)
            ad_log(AD_LOG_INFO, "stream %s/%s: candidate %s goes on in shadow (carried "
                   "over, its file %s still being written)", s->det->c->name, s->key, id,
                   r->cand_path);
        else
            ad_log(AD_LOG_INFO, "stream %s/%s: candidate %s goes on in shadow (from %s)",
                   s->det->c->name, s->key, id, r->cand_path);
        r->cm = NULL;
        resumed = 1;
        /* its file is there: the state names it; carried over, once its
         * save is done (training.c save_done), which may have come while
         * the restore was in flight */
        s->cand_nofile = r->cm_carried &&
                         (s->cand_saving > 0 || s->cand_queued || s->cand_err ||
                          strcmp(s->cand_id, id) != 0);
    } else {
        why = r->cm ? err : r->cm_err[0] ? r->cm_err :
              "no such file (a state handed over from another node, or the file removed)";
        if (!r->cm)
            ad_detector_shadow_resume(s->d, NULL, NULL, 0);     /* the span dropped */
        if (r->cand_path[0])
            ad_log(AD_LOG_WARNING, "stream %s/%s: candidate %s in shadow at the stop not "
                   "restored: %s: %s; the stream goes on without it", s->det->c->name, s->key,
                   id, r->cand_path, why);
        else    /* no state dir (a reload's rebuild): reload.c said so */
            ad_log(AD_LOG_DEBUG, "stream %s/%s: candidate %s in shadow not restored: no "
                   "state_dir for its model", s->det->c->name, s->key, id);
    }
    ad_model_free(r->cm);
    r->cm = NULL;
    /* removed with the next state written (save: it names no candidate
     * now), not here: the state on disk may still name it (a damaged file,
     * a calibration not reused), and a kill -9 in between would find it
     * naming a file gone. Not while a save of the stream's candidate is
     * still on the workers (a rebuild's): that one's state decides */
    if (!resumed && there && r->cand_path[0])
        s->cand_drop = 1;
}

/* The configured file was in shadow (or waited for it) when the state was
 * saved, the live model kept (restore_make_detector): evaluated in shadow
 * again, as the reload that brought it did; never swapped in unevaluated. */
static void restore_shadow(stream_rec *s)
{
    const det_rt *d = s->det;
    char err[256] = "not detecting: its calibration was not restored";
    int rc = -1;

    if (ad_detector_phase(s->d) == AD_PHASE_DETECTING)
        rc = ad_detector_set_model(s->d, d->mr->m, 0, err, sizeof err);
    if (rc == AD_DETECTOR_SHADOW)
        return;
    if (rc == 0) {
        /* swapped after all (no learner): the file runs and calibrates,
         * as a reload would have done; the open alert ends */
        s->kept_why = KEPT_NONE;
        ad_detector_close_alert(s->d, AD_CLOSE_MODEL_CHANGED);
        return;
    }
    ad_log(AD_LOG_WARNING, "stream %s/%s: model file %s not evaluated in shadow again (%s): "
           "the kept model runs until a reload changes the file", d->c->name, s->key,
           d->c->model, err);
}

/* A stream whose restore has just been installed and whose reload_check
 * is set: does its detector's configuration still feed it? Decided by the
 * rule a reload's drop_unfed applies (reload.c reload_stream_unfed), now
 * that its state file has named the topics that fed it and its detector
 * can close the alert it continues. RELOAD_CHECK_RELOAD: a reload changed
 * stream_levels or topics while the restore was in flight.
 * RELOAD_CHECK_START: restored at start for its open alert (state_scan),
 * and the same change may have been made while the daemon was stopped;
 * a state file that does not name the topics (written before they were
 * kept) tells nothing then, and the stream stays, as it did before. A
 * stream no longer fed is removed as a reload removes it: its alert
 * cleared (reason reload), its state saved, its retained state emptied
 * and the Home Assistant entities the process before announced deleted.
 * Returns 1 when the stream was removed, else 0. */
static int state_check_fed(ad_daemon *dd, stream_rec *s)
{
    int check = s->reload_check;
    const char *why;

    s->reload_check = 0;
    if (!check || !s->d || (check == RELOAD_CHECK_START && !s->n_topics))
        return 0;
    if (!(why = reload_stream_unfed(s->det, s)))
        return 0;
    if (check == RELOAD_CHECK_START)
        ad_log(AD_LOG_NOTICE, "detector %s: stream %s, restored at start for its open alert: "
               "%s (changed while stopped), removed", s->det->c->name, s->key, why);
    else
        ad_log(AD_LOG_INFO, "reload: detector %s: stream %s, restored since the reload: "
               "%s, removed", s->det->c->name, s->key, why);
    /* announced by the process before a restart: its entities are
     * retained although this one has not announced them yet */
    s->ha_announced = 1;
    streams_evict(dd, s, AD_CLOSE_RELOAD);
    return 1;
}

/* Loop thread: install what was read. Returns 0, or the error of a detector
 * that could not be made (the stream is then killed). */
static int restore_apply(restore_req *r, char *err, size_t errlen)
{
    ad_daemon *dd = r->dd;
    stream_rec *s = r->s;
    int rc, taken;

    s->restoring = NULL;
    restore_kafka_check(r, s);
    restore_clock(r, s);
    if (r->mode != RESTORE_CALIBRATION && (rc = restore_make_detector(r, s, err, errlen))) {
        if (r->mode == RESTORE_NEW && !r->js) {
            dd_bad_input(dd, "detector %s: stream %s not created: %s", s->det->c->name,
                         s->key, err);
        } else if (r->mode == RESTORE_NEW) {
            /* a stream with a saved state (restored at start for its open
             * alert, or a device back after its eviction; out of memory:
             * the settings were tried by gen_load and a model of the state
             * dir that does not fit them is set aside): what the broker
             * may still show of it, its retained state and the entities
             * the process before a restart announced, must not show it
             * running. With no detector nothing tells whether an alert it
             * had open has ended: the state file keeps it, and the
             * device's next message or the next start restores the
             * stream again (as a reload's failed rebuild below). */
            dd_bad_input(dd, "detector %s: stream %s not restored: %s; its retained state "
                         "and Home Assistant entities are deleted, its state file (an open "
                         "alert in it too) is kept for its next message or the next start",
                         s->det->c->name, s->key, err);
            s->ha_announced = 1;
            ha_stream_removed(dd, s);
            publish_state_clear(dd, s);
        } else {
            ad_log(AD_LOG_ERR, "reload: detector %s stream %s: %s; stream dropped",
                   s->det->c->name, s->key, err);
            /* gone (out of memory: the settings were tried by gen_load):
             * its entities and retained state must not show it running.
             * Its state file keeps what it had (an alert the rebuild was
             * to continue too: a restart restores it). */
            ha_stream_removed(dd, s);
            publish_state_clear(dd, s);
        }
        if (r->kafka)
            kafka_restore_result(dd, s->det->c->name, s->key, 0);
        streams_kill(dd, s, 0);
        return rc;
    }
    taken = restore_calibration(r, s);
    /* the records its Kafka hand-over state holds are skipped only now
     * that the state is taken (kafka.c on_record); else none is */
    if (r->mode == RESTORE_NEW || r->kafka)
        kafka_restore_result(dd, s->det->c->name, s->key, r->kafka && taken);
    restore_candidate(r, s, taken);
    /* its save waited for an earlier one that ended while it was restored */
    training_candidate_flush(dd, s);
    if (s->kept_why == KEPT_SHADOW)
        restore_shadow(s);
    /* time-less samples (stamped on arrival) come after its last row, as
     * they do on the stream that was not restored (streams.c); not in a
     * stream whose rows carry their time (payload.timestamp): a message
     * without it there is judged by the wall clock, as on the running stream */
    s->arrival_floor_ms = s->d && !(s->det->c->payload.format == AD_FMT_JSON &&
                                    s->det->c->payload.timestamp) ?
                          ad_detector_last_ts(s->d) : 0;
    if (s->clock_anew)
        streams_clock_landed(dd, s);    /* a clock step while it was restored */
    if (state_check_fed(dd, s))
        return 0;
    /* the data-quality alerts its state says were open (the process that
     * saved it ended without closing them: kill -9, a crash, a lost
     * partition owner): closed now as a clean stop closes them, reason
     * restart, and the file rewritten without them; a condition that
     * still holds raises again */
    if (r->dq && s->dq_open && publish_dq_close_all(dd, s, "restart") > 0)
        state_save(dd, s);
    /* A new stream is announced on its state topic right away (phase
     * collecting or calibrating), not only once it has calibrated; so is
     * a stream a reload rebuilt (recalibrating now). */
    if (!streams_events(dd, s))
        publish_state(dd, s);
    streams_release_held(dd, s);
    streams_maybe_free(dd, s);
    return 0;
}

static void restore_after(uv_work_t *w, int status)
{
    restore_req *r = w->data;
    stream_rec *s = r->s;
    char err[256];
    (void)status;
    s->restores--;
    r->dd->restores--;
    if (s->restoring != r || s->dead) {
        /* superseded by a newer restore (reload) or the stream is gone */
        streams_maybe_free(r->dd, s);
    } else {
        restore_apply(r, err, sizeof err);
    }
    restore_req_free(r);
}

int state_restore(ad_daemon *dd, stream_rec *s, restore_mode mode, char *err, size_t errlen)
{
    return state_restore_live(dd, s, mode, NULL, err, errlen);
}

/* A rebuild (a reload's, a clock step's) of s whose candidate in shadow's
 * file is not on disk (s->cand_nofile): the detector just buried (the
 * graveyard's first) runs it. Its save still on the workers: the rebuilt
 * detector takes it over from memory, the file that save writes is its
 * (before, the restore looked for the file, said "no such file", dropped
 * the candidate, and the file written after stayed for good). Its save
 * failed: dropped, saying so. */
static void carry_candidate(const stream_rec *s, restore_req *r)
{
    const ad_model *c;

    if (!s->cand_nofile || !s->grave || !s->grave->d ||
        !(c = ad_adapt_candidate(ad_detector_adapt(s->grave->d))) ||
        strcmp(c->id, s->cand_id) != 0)
        return;
    if (s->cand_err)
        snprintf(r->cm_unsaved, sizeof r->cm_unsaved, "%s", s->cand_err);
    else if ((s->cand_saving > 0 || s->cand_queued) && (r->cm = ad_model_clone(c)) != NULL)
        r->cm_carried = 1;
    /* out of memory: read from its file, if written by then */
}

int state_restore_live(ad_daemon *dd, stream_rec *s, restore_mode mode, char *js, char *err,
                       size_t errlen)
{
    det_rt *d = s->det;
    restore_req *r = calloc(1, sizeof *r);
    char stem[8192];
    int rc;

    if (!r) {
        free(js);
        rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
        if (mode != RESTORE_CALIBRATION && !s->d)
            streams_kill(dd, s, 0);
        return rc;
    }
    r->dd = dd;
    r->s = s;
    r->mode = mode;
    r->w.data = r;
    r->js = js;
    r->live = js != NULL;
    /* a rebuild superseding a new stream's restore in flight: that one
     * would have taken the open data-quality alerts of the state, so this
     * one does (else they stayed open on the broker for good) */
    r->dq = mode == RESTORE_NEW || (s->restoring && s->restoring->dq);
    if (mode == RESTORE_NEW && !r->js) {    /* moved here with its Kafka partition */
        r->js = kafka_state_take(dd, d->c->name, s->key);
        r->kafka = r->js != NULL;
    } else if (!r->js && s->restoring && s->restoring->kafka) {
        /* a reload rebuilds a stream whose restore from the state its
         * Kafka partition's last owner handed over is in flight: that
         * restore is superseded, its state (taken from the table) goes on
         * here, else the stream would start afresh (its calibration, its
         * open alert and the alert sequence lost) */
        r->js = strdup(s->restoring->js);
        r->kafka = r->js != NULL;
    }
    if (d->state_dir[0]) {
        state_path(d, s->key, ".state.json", r->state_path, sizeof r->state_path);
        if (!r->js)
            r->js = state_pending(dd, r->state_path);
        /* a model trained online, or promoted by continual learning */
        if (mode != RESTORE_CALIBRATION &&
            (d->c->pipe.training != AD_TRAIN_NONE || d->c->pipe.adapt.enabled ||
             d->c->pipe.adapt.reload_shadow))
            state_trained_path(d, s->key, r->model_path, sizeof r->model_path);
        if (r->model_path[0] && d->c->pipe.adapt.enabled) {
            state_reference_path(d, s->key, r->ref_path, sizeof r->ref_path);
            state_candidate_path(d, s->key, r->cand_path, sizeof r->cand_path);
            if (mode == RESTORE_REBUILD && r->live)
                carry_candidate(s, r);
        }
        state_stem(d, s->key, stem, sizeof stem);
        if (retain_holds(dd, stem)) {
            /* a retention sweep is removing this stream's files: read
             * the directory once it is done (state_restores_resume) */
            r->next = dd->parked;
            dd->parked = r;
            rc = 0;
        } else {
            rc = uv_queue_work(dd->loop, &r->w, restore_work, restore_after);
        }
        if (rc == 0) {
            s->restoring = r;
            s->restores++;
            dd->restores++;
            return 0;
        }
        restore_work(&r->w);        /* no thread pool: read here */
    }
    /* nothing to read (or read already): install at once */
    rc = restore_apply(r, err, errlen);
    restore_req_free(r);
    return rc;
}

void state_restores_resume(ad_daemon *dd)
{
    restore_req *list = NULL, *r;

    /* in the order they were parked */
    while ((r = dd->parked)) {
        dd->parked = r->next;
        r->next = list;
        list = r;
    }
    while ((r = list)) {
        list = r->next;
        r->next = NULL;
        if (uv_queue_work(dd->loop, &r->w, restore_work, restore_after) != 0) {
            restore_work(&r->w);        /* no thread pool: read here */
            restore_after(&r->w, 0);
        }
    }
}

/* ---- open alerts: periodic save, scan at start ------------------------------ */

void state_save_alerts(ad_daemon *dd)
{
    gen *g = dd->g;
    for (int i = 0; i < g->n; i++) {
        if (!g->dets[i].state_dir[0])
            continue;
        MAP_FOREACH(&g->dets[i].streams, s) {
            ad_detector_summary b;
            if (!s->d)
                continue;
            ad_detector_summarize(s->d, &b);
            /* ... and the span of a candidate in shadow, now and then
             * (span_part) */
            if (b.alert_active || s->handover_read || span_due(dd, s, 0)) {
                s->handover_read = 0;
                state_save(dd, s);
            }
        }
    }
}

/* state_file_open_alert of a state text js. */
static int open_alert_in(const char *js, char *key, size_t len)
{
    cJSON *o, *a, *op, *k;
    int ok = 0;

    /* parsed only when it may hold one (a start reads every file); any
     * spacing, a file may have been edited */
    if (strstr(js, "\"open\"") || strstr(js, "\"dq_open\"")) {
        o = cJSON_Parse(js);
        a = cJSON_GetObjectItemCaseSensitive(o, "alert");
        op = cJSON_GetObjectItemCaseSensitive(a, "open");
        k = cJSON_GetObjectItemCaseSensitive(o, "stream");
        if (cJSON_IsObject(op))
            ok = 2;
        /* open data-quality alerts: the stream is restored to close them */
        a = cJSON_GetObjectItemCaseSensitive(o, "dq_open");
        if (cJSON_IsArray(a) && a->child)
            ok = 2;
        if (ok && cJSON_IsString(k) && strlen(k->valuestring) < len) {
            snprintf(key, len, "%s", k->valuestring);
            ok = 1;
        }
        cJSON_Delete(o);
    }
    return ok;
}

int state_file_open_alert(const char *path, char *key, size_t len, char *err, size_t errlen)
{
    char *js = NULL;
    int rc;

    if ((rc = ad_read_text(path, STATE_MAX, &js, err, errlen)) != 0)
        return rc;
    rc = open_alert_in(js, key, len);
    free(js);
    return rc;
}

/* A stream's state file: "<stream>.state.json". */
static int is_state_file(const char *name)
{
    size_t l = strlen(name);
    return l >= 11 && strcmp(name + l - 11, ".state.json") == 0;
}

/* ---- streams no detector is left for: their retained messages ------------- */

/* Whether a configured detector other than own publishes, or may, on
 * topic, a retained state topic of stream key: its state topic or Home
 * Assistant entity state for the same key, or (own's) a template without
 * {stream}, which own's other streams share. Such a topic is not emptied:
 * its retained message may be a live stream's. */
static int topic_in_use(const gen *g, const det_rt *own, const char *key, const char *topic)
{
    char t[1024];

    for (int i = 0; i < g->n; i++) {
        const det_rt *o = &g->dets[i];
        const char *tm[2] = { o->c->state_topic, g->cfg->ha.enabled ? g->cfg->ha.state_topic :
                              NULL };
        for (int j = 0; j < 2; j++) {
            if (!tm[j] || (o == own && strstr(tm[j], "{stream}")))
                continue;
            if (ad_topic_expand(tm[j], o->c->name, key, t, sizeof t) >= 0 &&
                strcmp(t, topic) == 0)
                return 1;
        }
    }
    return 0;
}

/* Empty the retained messages a state file's "published" names (QoS 1, as
 * publish_state_clear and ha_stream_removed: queued while the broker is
 * away), except those topic_in_use keeps. */
static void empty_published(ad_daemon *dd, const det_rt *own, const char *key,
                            const cJSON *pub)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(pub, "state_topic"), *x;

    if (cJSON_IsString(t) && t->valuestring[0] &&
        !topic_in_use(dd->g, own, key, t->valuestring))
        ad_mqtt_publish(dd->mqtt, t->valuestring, "", 0, 1, 1);
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(pub, "ha_topics"))
        if (cJSON_IsString(x) && x->valuestring[0] &&
            !topic_in_use(dd->g, own, key, x->valuestring))
            ad_mqtt_publish(dd->mqtt, x->valuestring, "", 0, 1, 1);
}

/* ---- the scan at start ------------------------------------------------------ */

/*
 * state_scan: the thread pool reads and parses every stream state file
 * (scan_work; it logs nothing and touches no stream, queue or broker), and
 * notes in directory order what each file asks of the loop (scan_ent);
 * the loop then does it all in that order (scan_after): streams with an
 * open alert restored, retained messages emptied, open alerts of removed
 * detectors cleared, files rewritten, every log line. The thread reads of
 * the daemon only the request's copies, its detectors' topics,
 * stream_levels and state topic templates, and the configuration's Home
 * Assistant topics (unfed and moved files): the generation stays while
 * the scan runs
 * (a reload waits for it, and the daemon frees it only after the scan's
 * after-callback).
 */

/* What the loop does for one state file. */
typedef enum {
    SE_OPEN,                     /* restore the stream (its alert is open) */
    SE_UNFED,                    /* no open alert, no longer fed: empty */
    SE_MOVED,                    /* published elsewhere now: empty the old
                                  * (pub; NULL: only its "feed" rewritten) */
    SE_CLOSE,                    /* removed detector: clear the alert, empty */
    SE_EMPTY,                    /* removed detector, no open alert: empty */
    SE_WARN                      /* log the warning in key */
} scan_kind;

typedef struct scan_ent {
    struct scan_ent *next;
    scan_kind kind;
    int rewrite;                 /* loop: text to be written to path */
    int open;                    /* SE_MOVED: its alert is open (restored,
                                  * it saves its own state) */
    char *key;                   /* the stream (SE_WARN: the warning) */
    char *path;                  /* its state file (SE_UNFED, SE_CLOSE, SE_EMPTY) */
    char *text;                  /* the file without what the loop empties and
                                  * closes, or NULL (out of memory) */
    cJSON *pub;                  /* its "published" */
    const char *why;             /* SE_UNFED: why it is no longer fed */
    cJSON *info;                 /* SE_CLOSE: "alert_topic", "model_id", "metric" */
    ad_alert *alert;             /* SE_CLOSE: the alert, closed */
    cJSON *dq;                   /* SE_CLOSE, SE_EMPTY: its open data-quality
                                  * alerts (its "dq_open"), or NULL */
    int64_t dq_end;              /* their end: the data time of its last row */
} scan_ent;

/* One directory: a configured detector's, or (orphan) one of state_dir
 * that names no configured detector. */
typedef struct scan_dir {
    struct scan_dir *next;       /* orphans */
    const det_rt *det;           /* the detector (NULL: orphan) */
    char *name;                  /* its name (orphan: the directory's) */
    char *dir;                   /* the directory, or NULL: not scanned (no
                                  * state_dir, Kafka-fed) */
    char feed[48];               /* "feed":"<feed_hash>" of det */
    char fp[24];                 /* its feed_hash alone */
    int tmp_removed;             /* leftover temporary files (loop, before) */
    scan_ent *ents, **tail;      /* in readdir order */
    int files, open;             /* state files read; with an open alert */
    int kept_open;               /* orphan: open alerts that nothing clears */
    int dq_open;                 /* orphan: open data-quality alerts read */
    int kafka_now;               /* orphan: kafka.bootstrap_servers configured */
    int oom;                     /* a file's work not kept: out of memory */
} scan_dir;

/* The whole scan: read on the thread pool, applied on the loop. */
struct state_scan_req {
    uv_work_t w;
    ad_daemon *dd;
    scan_dir *dirs;              /* one per detector of dd->g, in its order */
    int n;
    char *root;                  /* state_dir, or NULL */
    int root_tmp;                /* its leftover temporary files */
    scan_dir *orphans, **orphans_tail;
    int abandon;                 /* the daemon exits without running its loop:
                                  * nothing of it is applied */
    uint64_t t0;                 /* uv_hrtime when queued */
};

/* A copy of s, with malloc and memcpy rather than strdup: the failing
 * strdup of tests/fail_strdup.c (a stream key's) stands for the detector's
 * own copy running out of memory, not the scan's. */
static char *scan_copy(const char *s)
{
    size_t l = strlen(s) + 1;
    char *c = malloc(l);

    if (c)
        memcpy(c, s, l);
    return c;
}

static void ent_free(scan_ent *e)
{
    free(e->key);
    free(e->path);
    free(e->text);
    cJSON_Delete(e->pub);
    cJSON_Delete(e->info);
    cJSON_Delete(e->dq);
    free(e->alert);
    free(e);
}

/* A new entry of kind for key (copied), or NULL: out of memory (sd->oom). */
static scan_ent *ent_new(scan_dir *sd, scan_kind kind, const char *key)
{
    scan_ent *e = calloc(1, sizeof *e);

    if (!e || !(e->key = scan_copy(key))) {
        free(e);
        sd->oom = 1;
        return NULL;
    }
    e->kind = kind;
    return e;
}

static void ent_link(scan_dir *sd, scan_ent *e)
{
    *sd->tail = e;
    sd->tail = &e->next;
}

/* Thread pool: a warning for the loop to log, in its place. */
static void scan_warn(scan_dir *sd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void scan_warn(scan_dir *sd, const char *fmt, ...)
{
    char msg[8600];
    scan_ent *e;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if ((e = ent_new(sd, SE_WARN, msg)) != NULL)
        ent_link(sd, e);
}

/* Thread pool: the entry for file path (its state o, "published" taken
 * out): the file as rewritten without it. Linked, or freed when out of
 * memory. */
static void ent_file(scan_dir *sd, scan_ent *e, const char *path, cJSON *o)
{
    e->pub = cJSON_DetachItemFromObjectCaseSensitive(o, "published");
    if (!(e->path = scan_copy(path)) || !e->pub) {
        sd->oom = 1;
        ent_free(e);
        return;
    }
    e->text = ad_json_print(o);     /* NULL: said when it is written */
    ent_link(sd, e);
}

/* Thread pool: of pub, the "published" of a fed stream key of detector
 * sd->det, the retained topics the configuration no longer publishes the
 * stream on (alert.state_topic, homeassistant.discovery_prefix or
 * state_topic, or broker.client_id changed while the daemon was stopped),
 * taken out into a new {"state_topic", "ha_topics"}; pub keeps the others
 * and gets the current "feed" (also when none moved). NULL: none moved
 * (or out of memory). */
static cJSON *scan_moved(const ad_daemon *dd, const scan_dir *sd, const char *key, cJSON *pub)
{
    const det_rt *d = sd->det;
    cJSON *old = cJSON_CreateObject(), *now, *t, *x, *keep, *gone, *next;
    char topic[1024];
    int moved = 0;

    if (!old)
        return NULL;
    t = cJSON_GetObjectItemCaseSensitive(pub, "state_topic");
    if (cJSON_IsString(t) &&
        (!d->c->state_topic ||
         ad_topic_expand(d->c->state_topic, d->c->name, key, topic, sizeof topic) < 0 ||
         strcmp(topic, t->valuestring) != 0)) {
        cJSON_AddItemToObject(old, "state_topic", cJSON_DetachItemViaPointer(pub, t));
        moved = 1;
    }
    t = cJSON_GetObjectItemCaseSensitive(pub, "ha_topics");
    if (cJSON_IsArray(t) && (gone = cJSON_AddArrayToObject(old, "ha_topics")) != NULL) {
        now = ha_key_topics(dd, d->c->name, key);
        for (x = t->child; x; x = next) {
            next = x->next;
            for (keep = now ? now->child : NULL; keep; keep = keep->next)
                if (cJSON_IsString(x) && strcmp(keep->valuestring, x->valuestring) == 0)
                    break;
            if (!keep) {
                cJSON_AddItemToArray(gone, cJSON_DetachItemViaPointer(t, x));
                moved = 1;
            }
        }
        cJSON_Delete(now);
        if (!t->child)
            cJSON_DeleteItemFromObjectCaseSensitive(pub, "ha_topics");
    }
    if (cJSON_GetObjectItemCaseSensitive(pub, "feed"))
        cJSON_ReplaceItemInObjectCaseSensitive(pub, "feed", cJSON_CreateString(sd->fp));
    else
        cJSON_AddStringToObject(pub, "feed", sd->fp);
    if (!moved) {
        cJSON_Delete(old);
        return NULL;
    }
    return old;
}

/* Thread pool: a state file js (path) of detector sd->det, open (its
 * stream has an open alert: restored) or not. A stream that is not
 * restored at start keeps what it published retained on the broker until
 * its data returns. When its saved topics no longer feed it (topics or
 * stream_levels changed while the daemon was stopped; the rule of a
 * reload, reload_topics_unfed), its data will not return there: the loop
 * empties its retained state and Home Assistant entities as a reload
 * empties them, and rewrites the file without "published" (SE_UNFED).
 * When it is fed (or open) but published elsewhere now (scan_moved),
 * the loop empties the old topics as a reload that moves them does, and
 * rewrites the file with what is left of "published" (SE_MOVED; not an
 * open stream's file: it saves its own). A fed file is rewritten with the
 * current "feed" even when nothing moved (SE_MOVED without pub), so that
 * the next start does not parse it again: a file saved under the same
 * topics, stream_levels and state topics (its "feed") is not parsed. */
static void scan_unfed(const ad_daemon *dd, scan_dir *sd, const char *path, const char *js,
                       int open)
{
    char **topics = NULL;
    const cJSON *k, *x;
    const char *why = NULL;
    cJSON *o, *tp, *pub, *old;
    scan_ent *e;
    int n = 0;

    if (!strstr(js, "\"published\"") || strstr(js, sd->feed) || !(o = cJSON_Parse(js)))
        return;
    k = cJSON_GetObjectItemCaseSensitive(o, "stream");
    tp = cJSON_GetObjectItemCaseSensitive(o, "topics");
    pub = cJSON_GetObjectItemCaseSensitive(o, "published");
    if (!cJSON_IsString(k) || !cJSON_IsObject(pub)) {
        cJSON_Delete(o);
        return;
    }
    if (!open && cJSON_IsArray(tp) &&
        (topics = calloc((size_t)cJSON_GetArraySize(tp) + 1, sizeof *topics)) != NULL) {
        cJSON_ArrayForEach(x, tp)
            if (cJSON_IsString(x))
                topics[n++] = x->valuestring;
        /* topics unknown: nothing tells (as for a stream restored at start) */
        if (n > 0)
            why = reload_topics_unfed(sd->det, k->valuestring, topics, n,
                                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o,
                                                                              "topics_more")));
    }
    free(topics);
    if (why) {
        if ((e = ent_new(sd, SE_UNFED, k->valuestring)) != NULL) {
            e->why = why;
            ent_file(sd, e, path, o);
        }
    } else if ((old = scan_moved(dd, sd, k->valuestring, pub)) != NULL || !open) {
        if ((e = ent_new(sd, SE_MOVED, k->valuestring)) != NULL &&
            (e->path = scan_copy(path)) != NULL) {
            e->pub = old;
            e->open = open;
            if (!open)
                e->text = ad_json_print(o);     /* NULL: said when written */
            ent_link(sd, e);
        } else {
            if (e)
                ent_free(e);
            cJSON_Delete(old);
            sd->oom = 1;
        }
    }
    cJSON_Delete(o);
}

/* Thread pool: the streams of one configured detector's directory: those
 * with an open alert (SE_OPEN), and those whose retained state is to be
 * emptied (scan_unfed). */
static void scan_read_dir(const ad_daemon *dd, scan_dir *sd)
{
    char path[8192], key[KEY_MAX], err[320];
    struct dirent *e;
    DIR *dp = opendir(sd->dir);
    scan_ent *se;

    if (!dp)
        return;
    while ((e = readdir(dp)) != NULL) {
        char *js = NULL;
        int rc;

        if (!is_state_file(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", sd->dir, e->d_name);
        sd->files++;
        if (ad_read_text(path, STATE_MAX, &js, err, sizeof err) != 0)
            continue;
        rc = open_alert_in(js, key, sizeof key);
        if (rc == 0 || rc == 1)
            scan_unfed(dd, sd, path, js, rc == 1);
        free(js);
        if (rc == 1 && (se = ent_new(sd, SE_OPEN, key)) != NULL) {
            ent_link(sd, se);
            sd->open++;
        }
    }
    closedir(dp);
}

/* Thread pool: the open alert of a stream of detector det, no longer
 * configured, from its state file o, closed: *out (malloc'd) its cleared
 * event's alert, reason detector_removed, *info what its clear needs besides
 * ("alert_topic": the MQTT and Kafka topics it was raised on and the
 * feature names;
 * "model_id", "metric"), and o without it (its "alert" "open" null, no
 * "alert_topic", a "detector_removed" record). 0, or -1 with err. */
static int close_removed(const char *key, cJSON *o, ad_alert **out, cJSON **info, char *err,
                         size_t errlen)
{
    cJSON *al = cJSON_GetObjectItemCaseSensitive(o, "alert");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "alert_topic");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(at, "alert_id");
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(at, "topic");
    const cJSON *kt = cJSON_GetObjectItemCaseSensitive(at, "kafka_topic");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(at, "features");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(o, "model_id");
    const cJSON *met = cJSON_GetObjectItemCaseSensitive(o, "metric");
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(al, "last_ts");
    ad_alert_cfg cfg;
    ad_alerter *a;
    ad_alert saved;
    cJSON *rec, *in;
    char iso[40];
    int nf = 0, rc;

    if (!cJSON_IsString(id) || (!cJSON_IsString(tp) && !cJSON_IsString(kt)))
        return ad_errf(err, errlen, AD_EFORMAT, "it does not name where the alert was "
                       "raised (written by an older version: with alerts_to kafka, those "
                       "did not keep it)");
    if (!cJSON_IsString(met))
        return ad_errf(err, errlen, AD_EFORMAT, "\"metric\" missing");
    if (!cJSON_IsArray(fs) || (nf = cJSON_GetArraySize(fs)) <= 0 || nf > AD_MAX_FEATURES)
        nf = 0;
    ad_alert_cfg_default(&cfg);
    /* the shares of another feature count are dropped (top features
     * empty), as for an alert closed under a model of other features */
    if ((rc = ad_alerter_new(&a, &cfg, key, nf ? nf : 1, err, errlen)) == 0) {
        rc = ad_alerter_restore(a, al, 0, &saved, err, errlen);
        ad_alerter_free(a);
    }
    if (rc == 0 && !saved.active)
        rc = ad_errf(err, errlen, AD_EFORMAT, "no open alert");
    if (rc == 0 && strcmp(saved.id, id->valuestring) != 0)
        rc = ad_errf(err, errlen, AD_EFORMAT, "its alert topic is kept for alert %s, the "
                     "open alert is %s", id->valuestring, saved.id);
    if (rc != 0)
        return rc;
    /* ended at the data time of the stream's last row, as a restart's close */
    saved.active = 0;
    saved.reason = AD_CLOSE_DETECTOR_REMOVED;
    saved.end_ms = cJSON_IsNumber(lt) && fabs(lt->valuedouble) <= 1e15 &&
                   (int64_t)lt->valuedouble > saved.start_ms ? (int64_t)lt->valuedouble :
                   saved.start_ms;
    if (!(*out = malloc(sizeof **out)) || !(in = cJSON_CreateObject())) {
        free(*out);
        *out = NULL;
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    }
    **out = saved;
    cJSON_AddItemToObject(in, "alert_topic", cJSON_DetachItemFromObjectCaseSensitive(o,
                                                                             "alert_topic"));
    if (cJSON_IsString(mid))
        cJSON_AddStringToObject(in, "model_id", mid->valuestring);
    cJSON_AddStringToObject(in, "metric", met->valuestring);
    /* the open alert as the file had it: a clear that reaches Kafka and
     * not MQTT puts it back, for MQTT alone (scan_apply_orphan) */
    cJSON_AddItemToObject(in, "open", cJSON_DetachItemFromObjectCaseSensitive(al, "open"));
    *info = in;
    cJSON_AddItemToObject(al, "open", cJSON_CreateNull());
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
    if ((rec = cJSON_AddObjectToObject(o, "detector_removed")) != NULL) {
        cJSON_AddStringToObject(rec, "alert_id", saved.id);
        cJSON_AddStringToObject(rec, "closed", iso);
    }
    return 0;
}

/* Whether an open data-quality alert of dq (a "dq_open") was raised on
 * Kafka. */
static int dq_to_kafka(const cJSON *dq)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, dq)
        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "kafka_topic")))
            return 1;
    return 0;
}

/* Loop: e (SE_CLOSE), whose model alert's clear went to Kafka and could
 * not be queued for MQTT: its text (the file without the alert) gets the
 * alert back open, its "alert_topic" without the Kafka topic, and what
 * the scan took out ("dq_open", "published"), to be written: the next
 * start clears it on MQTT alone. 1 when done, 0 (out of memory: the file
 * is left as it is, and the next start clears it on both again). */
static int reopen_for_mqtt(scan_ent *e)
{
    cJSON *o = e->text ? cJSON_Parse(e->text) : NULL;
    cJSON *al = cJSON_GetObjectItemCaseSensitive(o, "alert");
    cJSON *op = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e->info, "open"), 1);
    cJSON *at = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e->info, "alert_topic"), 1);
    char *t;

    if (!cJSON_IsObject(al) || !cJSON_IsObject(op) || !cJSON_IsObject(at)) {
        cJSON_Delete(o);
        cJSON_Delete(op);
        cJSON_Delete(at);
        return 0;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(al, "open", op);
    cJSON_DeleteItemFromObjectCaseSensitive(at, "kafka_topic");
    cJSON_AddItemToObject(o, "alert_topic", at);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "detector_removed");
    if (e->dq)
        cJSON_AddItemToObject(o, "dq_open", cJSON_Duplicate(e->dq, 1));
    cJSON_AddItemToObject(o, "published", cJSON_Duplicate(e->pub, 1));
    t = ad_json_print(o);
    cJSON_Delete(o);
    if (!t)
        return 0;
    free(e->text);
    e->text = t;
    e->rewrite = 1;
    return 1;
}

/* Loop: the open data-quality alerts dq (a "dq_open" of stream key of the
 * removed detector det) cleared, reason detector_removed, where each was
 * raised (its MQTT topic, its Kafka topic or both), as a live stream's
 * clear (publish_dq_close_all) ending at end (0: now). Returns how many
 * were cleared; *failed counts those whose clear could not be queued
 * (warned), and *kept (created when NULL) gets a copy of each, for the
 * file to keep them. */
static int close_dq_removed(ad_daemon *dd, const char *det, const char *key, const cJSON *dq,
                            int64_t end, const char *path, int *failed, cJSON **kept)
{
    int qos = dd->g->cfg->broker.qos_alerts, n = 0;
    const cJSON *x;

    if (!end)
        end = (int64_t)dd_wall_ms();
    cJSON_ArrayForEach(x, dq) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "alert_id");
        const cJSON *chk = cJSON_GetObjectItemCaseSensitive(x, "check");
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(x, "topic");
        const cJSON *kt = cJSON_GetObjectItemCaseSensitive(x, "kafka_topic");
        char what[256], *txt = NULL;
        const char *w, *why = NULL;
        int to_kafka = 0;       /* its clear went to Kafka */
        cJSON *o;

        if (!cJSON_IsString(id) || (!cJSON_IsString(tp) && !cJSON_IsString(kt))) {
            why = "it does not name its id and where it was raised";
        } else if (cJSON_IsString(kt) && !dd->kafka) {
            why = "it was raised on Kafka, and kafka.bootstrap_servers is not configured now";
        } else if (!(o = cJSON_Duplicate(x, 1))) {
            why = "out of memory";
        } else {
            /* as published: without the topics it was raised on */
            cJSON_DeleteItemFromObjectCaseSensitive(o, "topic");
            cJSON_DeleteItemFromObjectCaseSensitive(o, "kafka_topic");
            publish_dq_cleared_fields(o, det, key,
                                      ad_close_reason_name(AD_CLOSE_DETECTOR_REMOVED), end);
            w = publish_alert_what(o, what, sizeof what);
            /* Kafka first, as publish_alert_removed; at start the broker is
             * perhaps not connected yet: QoS 1 at least, queued */
            if (!(txt = cJSON_PrintUnformatted(o)))
                why = "out of memory";
            else if (cJSON_IsString(kt) &&
                     kafka_alert_to(dd, kt->valuestring, det, key, txt) != 0)
                why = "its clear could not be produced to Kafka";
            else {
                to_kafka = cJSON_IsString(kt);
                if (cJSON_IsString(tp) &&
                    ad_mqtt_publish_alert(dd->mqtt, tp->valuestring, txt, strlen(txt),
                                          qos < 1 ? 1 : qos, 0, w) != 0)
                    why = to_kafka ? "its clear could not be queued for MQTT (it went to "
                                     "Kafka: the next start clears it on MQTT only)" :
                                     "its clear could not be queued for MQTT";
            }
            if (cJSON_IsString(kt))
                dd->outbox_due = 1;     /* kept until the cluster has it */
            free(txt);
            cJSON_Delete(o);
        }
        if (why) {
            ad_log(AD_LOG_WARNING, "state: %s: data-quality alert %s is not closed: %s", path,
                   cJSON_IsString(id) ? id->valuestring : "?", why);
            (*failed)++;
            if (!*kept)
                *kept = cJSON_CreateArray();
            if (*kept && (o = cJSON_Duplicate(x, 1)) != NULL) {
                /* cleared on Kafka already: kept for MQTT alone, else the
                 * next start clears it on Kafka a second time */
                if (to_kafka)
                    cJSON_DeleteItemFromObjectCaseSensitive(o, "kafka_topic");
                cJSON_AddItemToArray(*kept, o);
            }
            continue;
        }
        ad_log(AD_LOG_NOTICE, "data quality %s cleared: detector %s stream %s check %s "
               "reason detector_removed", id->valuestring, det, key,
               cJSON_IsString(chk) ? chk->valuestring : "?");
        dd->c.dq_cleared++;
        n++;
    }
    return n;
}

/* Thread pool: one state file of od, a directory naming no configured
 * detector: its open alert closed (close_removed; SE_CLOSE) or none
 * (SE_EMPTY), for the loop to clear it, empty its retained messages and
 * rewrite the file without them, so that the next start does nothing
 * again. A file that does not say what its stream published (written by
 * an older version) or whose alert cannot be closed is left as it is
 * (counted in kept_open); so is a Kafka detector's (its partitions' state
 * may live on in another instance). */
static void scan_orphan_file(scan_dir *od, const char *path)
{
    char *js = NULL, err[320];
    const cJSON *k, *pub, *op;
    ad_alert *alert = NULL;
    cJSON *o, *info = NULL;
    scan_ent *e;
    cJSON *dq;
    int open, ndq = 0;

    od->files++;
    if (ad_read_text(path, STATE_MAX, &js, err, sizeof err) != 0) {
        scan_warn(od, "state: %s", err);
        return;
    }
    if (!strstr(js, "\"open\"") && !strstr(js, "\"published\"") &&
        !strstr(js, "\"dq_open\"")) {
        free(js);
        return;                     /* nothing open, nothing kept retained */
    }
    o = cJSON_Parse(js);
    free(js);
    if (!cJSON_IsObject(o)) {
        scan_warn(od, "state: %s: not JSON, left as it is", path);
        cJSON_Delete(o);
        return;
    }
    k = cJSON_GetObjectItemCaseSensitive(o, "stream");
    pub = cJSON_GetObjectItemCaseSensitive(o, "published");
    op = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "alert"), "open");
    open = cJSON_IsObject(op);
    od->open += open;
    /* its open data-quality alerts: cleared as well (reason
     * detector_removed), where each was raised */
    dq = cJSON_GetObjectItemCaseSensitive(o, "dq_open");
    if (cJSON_IsArray(dq))
        ndq = cJSON_GetArraySize(dq);
    od->dq_open += ndq;
    if (!cJSON_IsString(k) || !cJSON_IsObject(pub) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pub, "kafka"))) {
        od->kept_open += open + ndq;
    } else if (ndq && !od->kafka_now && dq_to_kafka(dq)) {
        scan_warn(od, "state: %s: its open data-quality alerts are not closed: one was "
                  "raised on Kafka, and kafka.bootstrap_servers is not configured now", path);
        od->kept_open += open + ndq;
    } else if (open && close_removed(k->valuestring, o, &alert, &info, err, sizeof err) != 0) {
        scan_warn(od, "state: %s: the open alert is not closed: %s", path, err);
        od->kept_open += 1 + ndq;
    } else if ((e = ent_new(od, open ? SE_CLOSE : SE_EMPTY, k->valuestring)) != NULL) {
        /* an older version kept only the MQTT topic of an alert that
         * may have gone to Kafka as well: the clear goes where it says */
        if (open && !cJSON_GetObjectItemCaseSensitive(pub, "alerts_to") &&
            !cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info,
                                              "alert_topic"), "kafka_topic") && od->kafka_now)
            scan_warn(od, "state: %s: written by an older version, it does not say whether "
                      "the alert went to Kafka as well (alerts_to both): its clear goes to "
                      "MQTT only", path);
        e->alert = alert;
        e->info = info;
        if (ndq) {
            const cJSON *lt = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(o, "alert"), "last_ts");
            e->dq = cJSON_DetachItemFromObjectCaseSensitive(o, "dq_open");
            e->dq_end = cJSON_IsNumber(lt) && lt->valuedouble > 0 &&
                        lt->valuedouble <= 1e15 ? (int64_t)lt->valuedouble : 0;
        }
        ent_file(od, e, path, o);
    } else {
        free(alert);
        cJSON_Delete(info);
        od->kept_open += open;
    }
    cJSON_Delete(o);
}

/* Thread pool: directories of state_dir that name no configured detector
 * (one removed or renamed while the daemon was stopped): nothing restores
 * their streams. What a live detector would do when it removes a stream
 * is noted from their state files (scan_orphan_file), for the loop. */
static void scan_read_orphans(struct state_scan_req *q)
{
    struct dirent *e;
    DIR *dp = opendir(q->root);

    if (!dp)
        return;
    while ((e = readdir(dp)) != NULL) {
        char dir[4096], path[8192];
        struct dirent *f;
        scan_dir *od;
        DIR *sp;
        int i;

        if (e->d_name[0] == '.')
            continue;
        for (i = 0; i < q->n && strcmp(q->dirs[i].name, e->d_name) != 0; i++)
            ;
        if (i < q->n)
            continue;
        snprintf(dir, sizeof dir, "%s/%s", q->root, e->d_name);
        if (!(sp = opendir(dir)))
            continue;               /* a file, or unreadable */
        if (!(od = calloc(1, sizeof *od)) || !(od->name = scan_copy(e->d_name)) ||
            !(od->dir = scan_copy(dir))) {
            if (od) free(od->name);
            free(od);
            closedir(sp);
            continue;               /* not said: out of memory */
        }
        od->tail = &od->ents;
        od->kafka_now = q->dd->g->cfg->kafka.bootstrap_servers != NULL;
        while ((f = readdir(sp)) != NULL) {
            if (!is_state_file(f->d_name))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
            scan_orphan_file(od, path);
        }
        closedir(sp);
        *q->orphans_tail = od;
        q->orphans_tail = &od->next;
    }
    closedir(dp);
}

static void scan_work(uv_work_t *w)
{
    struct state_scan_req *q = w->data;

    for (int i = 0; i < q->n; i++)
        if (q->dirs[i].dir)
            scan_read_dir(q->dd, &q->dirs[i]);
    if (q->root)
        scan_read_orphans(q);
}

static void scan_dir_clear(scan_dir *sd)
{
    while (sd->ents) {
        scan_ent *e = sd->ents;
        sd->ents = e->next;
        ent_free(e);
    }
    free(sd->name);
    free(sd->dir);
}

static void scan_free(struct state_scan_req *q)
{
    for (int i = 0; i < q->n; i++)
        scan_dir_clear(&q->dirs[i]);
    while (q->orphans) {
        scan_dir *od = q->orphans;
        q->orphans = od->next;
        scan_dir_clear(od);
        free(od);
    }
    free(q->dirs);
    free(q->root);
    free(q);
}

/* Loop: the files of sd whose messages were just published (marked
 * rewrite) are rewritten once those messages are safe: outbox.json keeps
 * what the broker has not got (it is not connected yet, or just), then the
 * files are written, after it in the writer's queue. A crash between the
 * two publishes them again at the next start, never loses them. */
static void scan_rewrite(ad_daemon *dd, scan_dir *sd)
{
    int any = 0;

    for (scan_ent *e = sd->ents; e && !any; e = e->next)
        any = e->rewrite;
    if (!any)
        return;
    state_outbox_sync(dd, 0);
    for (scan_ent *e = sd->ents; e; e = e->next) {
        if (!e->rewrite)
            continue;
        if (!e->text)
            ad_log(AD_LOG_WARNING, "state: cannot rewrite %s: out of memory", e->path);
        else if (state_write(dd, e->path, e->text) != 0)
            ad_log(AD_LOG_WARNING, "state: cannot write %s: out of memory", e->path);
        e->text = NULL;             /* taken over by state_write */
    }
}

/* Loop: what the scan found in the directory of detector d, in order:
 * streams with an open alert restored, unfed streams' retained messages
 * emptied (their files rewritten without them). */
static void scan_apply_dir(ad_daemon *dd, det_rt *d, scan_dir *sd)
{
    int n = 0, unfed = 0, moved = 0;

    if (sd->oom)
        ad_log(AD_LOG_ERR, "detector %s: out of memory reading %s: some streams with an "
               "open alert are not restored now (their next message restores them), or "
               "some retained states of streams no longer fed are not emptied", d->c->name,
               sd->dir);
    for (scan_ent *e = sd->ents; e; e = e->next) {
        stream_rec *s;

        if (e->kind == SE_UNFED) {
            /* a message opened it while the scan ran: it is fed, it is
             * live and saves its own state */
            if (streams_find(d, e->key) || state_queued(dd, e->path))
                continue;
            ad_log(AD_LOG_INFO, "detector %s: stream %s (not live, no open alert): %s "
                   "(changed while stopped): its retained state and Home Assistant entities "
                   "are removed", d->c->name, e->key, e->why);
            empty_published(dd, d, e->key, e->pub);
            e->rewrite = 1;
            unfed++;
            continue;
        }
        if (e->kind == SE_MOVED) {
            /* the stream publishes its state on the new topics itself
             * when it is live: restored (its alert is open), or opened by
             * a message while the scan ran (it saves its own file) */
            e->rewrite = !e->open && !streams_find(d, e->key) && !state_queued(dd, e->path);
            if (e->pub) {
                empty_published(dd, NULL, e->key, e->pub);
                moved++;
            }
            continue;
        }
        if (e->kind != SE_OPEN || !(s = streams_open(dd, d, e->key)))
            continue;
        n++;
        /* topics or stream_levels may have changed while the daemon was
         * stopped: the stream is judged as a reload judges it, once its
         * state file has named its topics (state_check_fed; read already
         * when there was no thread pool: judged now). One a message opened
         * while the scan ran is judged alike: that message's topic feeds
         * it. */
        s->reload_check = RELOAD_CHECK_START;
        if (!s->restoring && state_check_fed(dd, s))
            n--;
    }
    scan_rewrite(dd, sd);
    if (n)
        ad_log(AD_LOG_NOTICE, "detector %s: %d stream(s) with an open alert restored",
               d->c->name, n);
    if (unfed)
        ad_log(AD_LOG_NOTICE, "detector %s: %d stream(s) without an open alert that its "
               "topics or stream_levels no longer feed (changed while stopped): their "
               "retained states and Home Assistant entities removed", d->c->name, unfed);
    if (moved)
        ad_log(AD_LOG_NOTICE, "detector %s: %d stream(s) published on other topics now "
               "(alert.state_topic, homeassistant.* or broker.client_id changed while "
               "stopped): their retained messages on the old topics removed", d->c->name,
               moved);
}

/* Loop: a directory naming no configured detector: what a live detector
 * does when it removes a stream, from its files, in order: open alerts
 * cleared (reason detector_removed) on the topic they were raised on,
 * retained states and Home Assistant entities emptied. The files stay,
 * rewritten without them: configured again, the detector finds its
 * streams' calibration. An alert whose clear cannot be queued stays in
 * its file with the stream's retained messages, and the next start tries
 * again (a model alert: the file as it was; a data-quality one: the file
 * keeps it, without what was cleared). One line per directory, with the counts; a
 * warning when open alerts are left open. */
static void scan_apply_orphan(ad_daemon *dd, scan_dir *od)
{
    int closed = 0, emptied = 0, kept_open = od->kept_open;

    for (scan_ent *e = od->ents; e; e = e->next) {
        if (e->kind == SE_WARN) {
            ad_log(AD_LOG_WARNING, "%s", e->key);
            continue;
        }
        if (e->kind == SE_CLOSE) {
            const cJSON *at = cJSON_GetObjectItemCaseSensitive(e->info, "alert_topic");
            const cJSON *fs = cJSON_GetObjectItemCaseSensitive(at, "features"), *x;
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(at, "topic");
            const cJSON *kt = cJSON_GetObjectItemCaseSensitive(at, "kafka_topic");
            const cJSON *mid = cJSON_GetObjectItemCaseSensitive(e->info, "model_id");
            const cJSON *met = cJSON_GetObjectItemCaseSensitive(e->info, "metric");
            const char **names = NULL;
            char err[512];
            int nf = 0, rc;

            if (cJSON_IsArray(fs) && (nf = cJSON_GetArraySize(fs)) > 0 &&
                nf <= AD_MAX_FEATURES && (names = calloc((size_t)nf, sizeof *names)) != NULL) {
                int i = 0;
                cJSON_ArrayForEach(x, fs)
                    names[i++] = cJSON_IsString(x) ? x->valuestring : "?";
            } else {
                nf = 0;
            }
            /* where it was raised: MQTT, Kafka, or both (close_removed
             * made sure of one) */
            rc = cJSON_IsString(met) ?
                 publish_alert_removed(dd, od->name, e->key,
                                       cJSON_IsString(tp) ? tp->valuestring : NULL,
                                       cJSON_IsString(kt) ? kt->valuestring : NULL, e->alert,
                                       cJSON_IsString(mid) ? mid->valuestring : NULL,
                                       met->valuestring, names, nf, err, sizeof err) :
                 ad_errf(err, sizeof err, AD_EFORMAT, "\"metric\" missing");
            free(names);
            if (rc == AD_EIO && reopen_for_mqtt(e)) {
                /* cleared on Kafka, not on MQTT: the file keeps it open for
                 * MQTT alone, else the next start clears it on Kafka again */
                ad_log(AD_LOG_WARNING, "state: %s: the open alert is not closed on MQTT: %s; "
                       "the next start clears it there", e->path, err);
                kept_open += 1 + (e->dq ? cJSON_GetArraySize(e->dq) : 0);
                continue;
            }
            if (rc != 0) {
                ad_log(AD_LOG_WARNING, "state: %s: the open alert is not closed: %s",
                       e->path, err);
                /* the file is kept as it is, its data-quality alerts too:
                 * the next start tries again */
                kept_open += 1 + (e->dq ? cJSON_GetArraySize(e->dq) : 0);
                continue;
            }
            closed++;
        }
        if (e->dq) {
            cJSON *kept = NULL;

            closed += close_dq_removed(dd, od->name, e->key, e->dq, e->dq_end, e->path,
                                       &kept_open, &kept);
            if (kept) {
                /* as a model alert whose clear fails: what the file says
                 * of them stays, its retained messages too, and the next
                 * start tries again. The file is rewritten all the same
                 * (without a model alert just cleared: not cleared twice) */
                e->text = splice_member(e->text, "dq_open", cJSON_PrintUnformatted(kept));
                e->text = splice_member(e->text, "published", cJSON_PrintUnformatted(e->pub));
                cJSON_Delete(kept);
                e->rewrite = 1;
                /* but a model alert cleared just now would stay open in
                 * the stream's retained state (no one publishes it again):
                 * that goes, as for a stream removed; the file still names
                 * it, emptied again by the start that clears the rest */
                if (e->kind == SE_CLOSE)
                    empty_published(dd, NULL, e->key, e->pub);
                continue;
            }
        }
        emptied++;
        empty_published(dd, NULL, e->key, e->pub);
        e->rewrite = 1;
    }
    if (od->oom)
        ad_log(AD_LOG_ERR, "state: %s: out of memory reading it: some open alerts are not "
               "cleared now (the next start clears them)", od->dir);
    scan_rewrite(dd, od);
    if (kept_open)
        ad_log(AD_LOG_WARNING, "state: %s: no detector \"%s\" is configured: %d stream "
               "state file(s), %d with an open alert, %d of them cleared (reason "
               "detector_removed), %d that nothing clears (it stays open on the broker "
               "with its retained state: its file, written by an older version, does not "
               "say where it was published, or it is a Kafka detector's, or a warning "
               "above names it); configure the detector again to restore and close them, "
               "or remove the directory", od->dir, od->name, od->files, od->open + od->dq_open,
               closed, kept_open);
    else if (od->files)
        ad_log(closed ? AD_LOG_NOTICE : AD_LOG_INFO, "state: %s: no detector \"%s\" is "
               "configured: %d stream state file(s), %d open alert(s) cleared (reason "
               "detector_removed), %d stream(s) removed from the broker (retained state, "
               "Home Assistant entities); the files are kept", od->dir, od->name, od->files,
               closed, emptied);
}

static void scan_after(uv_work_t *w, int status)
{
    struct state_scan_req *q = w->data;
    ad_daemon *dd = q->dd;
    gen *g = dd->g;
    int files = 0, open = 0;

    dd->scan = NULL;
    if (q->abandon) {
        scan_free(q);
        return;
    }
    for (int i = 0; i < q->n; i++) {
        files += q->dirs[i].files;
        open += q->dirs[i].open;
    }
    for (scan_dir *od = q->orphans; od; od = od->next) {
        files += od->files;
        open += od->open;
    }
    ad_log(AD_LOG_DEBUG, "state: scan done: %d stream state file(s) read in %.0f ms, %d with "
           "an open alert", files, (double)(uv_hrtime() - q->t0) / 1e6, open);
    if (dd->stopping || status != 0) {
        ad_log(AD_LOG_INFO, "state: stopping before the scan of the state directories was "
               "done: streams with an open alert are restored, and the streams of removed "
               "detectors or no longer fed emptied, at the next start");
        scan_free(q);
        return;
    }
    /* a reload waits for the scan (reload_start): g is the generation
     * the scan was made for */
    for (int i = 0; i < q->n && i < g->n; i++) {
        det_rt *d = &g->dets[i];
        if (q->dirs[i].tmp_removed > 0)
            ad_log(AD_LOG_INFO, "state: %d leftover temporary file(s) removed from %s",
                   q->dirs[i].tmp_removed, d->state_dir);
        if (q->dirs[i].dir)
            scan_apply_dir(dd, d, &q->dirs[i]);
    }
    if (q->root_tmp > 0)
        ad_log(AD_LOG_INFO, "state: %d leftover temporary file(s) removed from %s",
               q->root_tmp, q->root);
    for (scan_dir *od = q->orphans; od; od = od->next)
        scan_apply_orphan(dd, od);
    scan_free(q);
    retain_scan_done(dd);
    if (dd->reload_again) {
        dd->reload_again = 0;
        ad_log(AD_LOG_NOTICE, "SIGHUP arrived during the state scan: reloading now");
        reload_start(dd);
    }
}

/* The request for dd->g: names and directories copied, leftover temporary
 * files removed here, before the loop runs: no state file is being
 * written yet. NULL when out of memory. */
static struct state_scan_req *scan_new(ad_daemon *dd)
{
    gen *g = dd->g;
    struct state_scan_req *q = calloc(1, sizeof *q);

    if (!q || !(q->dirs = calloc((size_t)(g->n > 0 ? g->n : 1), sizeof *q->dirs))) {
        free(q);
        return NULL;
    }
    q->dd = dd;
    q->w.data = q;
    q->orphans_tail = &q->orphans;
    q->n = g->n;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        scan_dir *sd = &q->dirs[i];
        int rc;
        sd->det = d;
        sd->tail = &sd->ents;
        if (!(sd->name = scan_copy(d->c->name)))
            goto oom;
        if (!d->state_dir[0])
            continue;
        if ((rc = ad_clean_tmp_files(d->state_dir)) > 0)
            sd->tmp_removed = rc;
        /* Kafka streams belong to whichever instance holds their partition:
         * their open alerts arrive with the partition's state, not from here */
        if (d->c->kafka_topics.n > 0)
            continue;
        snprintf(sd->fp, sizeof sd->fp, "%016llx",
                 (unsigned long long)feed_hash(g->cfg, d));
        snprintf(sd->feed, sizeof sd->feed, "\"feed\":\"%s\"", sd->fp);
        if (!(sd->dir = scan_copy(d->state_dir)))
            goto oom;
    }
    if (g->cfg->state_dir) {
        int rc = ad_clean_tmp_files(g->cfg->state_dir);
        if (rc > 0)
            q->root_tmp = rc;
        if (!(q->root = scan_copy(g->cfg->state_dir)))
            goto oom;
    }
    return q;
oom:
    scan_free(q);
    return NULL;
}

void state_scan(ad_daemon *dd)
{
    struct state_scan_req *q = scan_new(dd);

    if (!q) {
        ad_log(AD_LOG_ERR, "state: out of memory: the state directories are not scanned, "
               "streams with an open alert are restored by their next message");
        retain_scan_done(dd);
        return;
    }
    dd->scan = q;
    q->t0 = uv_hrtime();
    if (uv_queue_work(dd->loop, &q->w, scan_work, scan_after) != 0) {
        scan_work(&q->w);           /* no thread pool: read here */
        scan_after(&q->w, 0);
    }
}

void state_scan_abandon(ad_daemon *dd)
{
    if (!dd->scan)
        return;
    dd->scan->abandon = 1;
    uv_cancel((uv_req_t *)&dd->scan->w);
    while (dd->scan)
        uv_run(dd->loop, UV_RUN_ONCE);
}

/* ---- outbox: messages waiting for the broker ---------------------------------- */

static void outbox_path(const ad_daemon *dd, char *out, size_t len)
{
    snprintf(out, len, "%s/outbox.json", dd->g->cfg->state_dir);
}

static void outbox_add(void *ud, const char *topic, const void *p, size_t len, int qos,
                       int retain)
{
    cJSON *arr = ud, *m = cJSON_CreateObject();
    char *txt = malloc(len + 1);
    if (!m || !txt) {
        cJSON_Delete(m);
        free(txt);
        return;
    }
    memcpy(txt, p, len);
    txt[len] = '\0';
    cJSON_AddStringToObject(m, "topic", topic);
    cJSON_AddStringToObject(m, "payload", txt);
    cJSON_AddNumberToObject(m, "qos", qos);
    cJSON_AddBoolToObject(m, "retain", retain);
    cJSON_AddItemToArray(arr, m);
    free(txt);
}

static void outbox_add_kafka(void *ud, const char *topic, const char *key, const char *json)
{
    cJSON *arr = ud, *m = cJSON_CreateObject();
    if (!m)
        return;
    cJSON_AddStringToObject(m, "kafka_topic", topic);
    cJSON_AddStringToObject(m, "key", key);
    cJSON_AddStringToObject(m, "payload", json);
    cJSON_AddItemToArray(arr, m);
}

void state_outbox_sync(ad_daemon *dd, int now)
{
    uint64_t kept;
    ad_mqtt_stats ms;
    char path[4200], err[320], *txt;
    cJSON *o, *arr;
    if (!dd->g->cfg->state_dir || !dd->mqtt)
        return;
    ad_mqtt_get_stats(dd->mqtt, &ms);
    /* what the broker does not have yet: queued, and alert messages not
     * acknowledged (handed to the client library, they may not have left
     * this machine when it goes down), and alert events the Kafka cluster
     * has not taken yet; the file is emptied only once what it held is
     * acknowledged: its alert messages (inflight_alerts) and the queued
     * messages it held that went out since (the hold: other messages in
     * flight, e.g. retained stream states, are none of its business; under
     * steady traffic some are always in flight) */
    kept = ms.queued + ms.inflight_alerts + kafka_pending(dd);
    if (!kept && (!dd->outbox_dirty || ad_mqtt_held_inflight(dd->mqtt)))
        return;
    dd->outbox_dirty = kept > 0;
    if (!(o = cJSON_CreateObject()))
        return;
    cJSON_AddNumberToObject(o, "version", 1);
    arr = cJSON_AddArrayToObject(o, "messages");
    ad_mqtt_hold(dd->mqtt);         /* what is queued now is in this file */
    ad_mqtt_queue_foreach(dd->mqtt, outbox_add, arr);
    kafka_pending_foreach(dd, outbox_add_kafka, arr);
    txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt)
        return;
    outbox_path(dd, path, sizeof path);
    if (!now) {
        if (state_write_ahead(dd, path, txt) != 0)
            ad_log(AD_LOG_WARNING, "state: cannot write %s: out of memory", path);
        return;
    }
    retry_drop(dd, path);           /* this one is newer */
    if (ad_write_file_atomic(path, txt, strlen(txt), err, sizeof err) != 0) {
        dd->c.state_write_errors++;
        ad_log(AD_LOG_ERR, "state: cannot write %s: %s: %llu undelivered message(s) not "
               "kept for the next start", path, err, (unsigned long long)kept);
    } else if (kept)
        ad_log(AD_LOG_NOTICE, "state: %llu undelivered message(s) kept in %s",
               (unsigned long long)kept, path);
    free(txt);
}

void state_outbox_load(ad_daemon *dd)
{
    char path[4200], err[320], *js = NULL;
    cJSON *o, *m;
    int n = 0;
    if (!dd->g->cfg->state_dir)
        return;
    outbox_path(dd, path, sizeof path);
    if (access(path, F_OK) != 0)
        return;
    if (ad_read_text(path, STATE_MAX, &js, err, sizeof err) != 0) {
        ad_log(AD_LOG_WARNING, "state: %s", err);
        return;
    }
    o = cJSON_Parse(js);
    /* the file keeps what it held until the broker acknowledged it */
    if (dd->mqtt) {
        ad_mqtt_hold(dd->mqtt);
        ad_mqtt_hold_publishes(dd->mqtt, 1);
    }
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "messages")) {
        cJSON *kt = cJSON_GetObjectItemCaseSensitive(m, "kafka_topic");
        cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "topic");
        cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "payload");
        cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "qos");
        cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "retain");
        cJSON *pj;
        char wbuf[256];
        const char *what;
        int rc;
        if (cJSON_IsString(kt)) {           /* an alert event for Kafka */
            cJSON *k = cJSON_GetObjectItemCaseSensitive(m, "key");
            if (!cJSON_IsString(k) || !cJSON_IsString(p))
                continue;
            if (!dd->kafka) {
                ad_log(AD_LOG_WARNING, "state: %s: an alert event for Kafka topic %s (key "
                       "%s) not produced: kafka.bootstrap_servers is not configured now",
                       path, kt->valuestring, k->valuestring);
                dd->outbox_dirty = 1;   /* rewritten without it, as said */
            } else if (kafka_alert_again(dd, kt->valuestring, k->valuestring,
                                       p->valuestring) == 0)
                n++;
            continue;
        }
        if (!cJSON_IsString(t) || !cJSON_IsString(p) || !cJSON_IsNumber(q))
            continue;
        /* an alert message is named again, for the log if it is refused */
        pj = cJSON_Parse(p->valuestring);
        what = pj ? publish_alert_what(pj, wbuf, sizeof wbuf) : NULL;
        rc = ad_mqtt_publish_alert(dd->mqtt, t->valuestring, p->valuestring,
                                   strlen(p->valuestring),
                                   q->valueint < 1 ? 1 : q->valueint > 2 ? 2 : q->valueint,
                                   cJSON_IsTrue(r), what);
        cJSON_Delete(pj);
        if (rc == 0)
            n++;
    }
    if (dd->mqtt)
        ad_mqtt_hold_publishes(dd->mqtt, 0);
    if (!o)
        ad_log(AD_LOG_WARNING, "state: %s: not JSON, ignored", path);
    cJSON_Delete(o);
    free(js);
    if (n) {
        ad_log(AD_LOG_NOTICE, "state: %d undelivered message(s) from %s queued again", n, path);
        dd->outbox_dirty = 1;       /* the file goes once they are out */
    }
}

/* ---- inbox: messages received during a stop -------------------------------------------------- */

/*
 * state_dir/inbox.dat: "anomalyd inbox 1\n", then per message
 * "<topic bytes> <payload bytes>\n<topic><payload>\n" (payloads are
 * bytes, not text).
 */
#define INBOX_HEAD "anomalyd inbox 1\n"
/* what a stop keeps: 64 MiB, the message that went past it (up to
 * max_payload_bytes, 256 MiB) and a line per message */
#define INBOX_READ_MAX ((size_t)1 << 30)

typedef struct inbox_msg {
    struct inbox_msg *next;
    size_t tlen, len;
    char data[];                /* topic, NUL, payload */
} inbox_msg;

static void inbox_path(const ad_daemon *dd, char *out, size_t len)
{
    snprintf(out, len, "%s/inbox.dat", dd->g->cfg->state_dir);
}

int state_inbox_keep(ad_daemon *dd, const char *topic, const void *payload, size_t len)
{
    size_t tl = strlen(topic);
    inbox_msg *m = malloc(sizeof *m + tl + 1 + len);
    if (!m)
        return AD_ENOMEM;
    m->next = NULL;
    m->tlen = tl;
    m->len = len;
    memcpy(m->data, topic, tl + 1);
    if (len)
        memcpy(m->data + tl + 1, payload, len);
    if (!dd->inbox_tail)
        dd->inbox_tail = &dd->inbox_head;
    *dd->inbox_tail = m;
    dd->inbox_tail = &m->next;
    dd->inbox_n++;
    dd->inbox_bytes += tl + len;
    return 0;
}

static void inbox_free(ad_daemon *dd)
{
    while (dd->inbox_head) {
        inbox_msg *m = dd->inbox_head;
        dd->inbox_head = m->next;
        free(m);
    }
    dd->inbox_tail = NULL;
    dd->inbox_n = 0;
    dd->inbox_bytes = 0;
}

void state_inbox_save(ad_daemon *dd)
{
    char path[4200], err[320], *buf, *p;
    size_t cap;

    if (!dd->inbox_head || !dd->g->cfg->state_dir) {
        inbox_free(dd);
        return;
    }
    inbox_path(dd, path, sizeof path);
    cap = sizeof INBOX_HEAD + dd->inbox_bytes + dd->inbox_n * 48;
    if (!(buf = malloc(cap))) {
        ad_log(AD_LOG_ERR, "state: cannot write %s: out of memory: %llu message(s) received "
               "during the stop are lost", path, (unsigned long long)dd->inbox_n);
        inbox_free(dd);
        return;
    }
    p = buf + sprintf(buf, "%s", INBOX_HEAD);
    for (const inbox_msg *m = dd->inbox_head; m; m = m->next) {
        p += sprintf(p, "%zu %zu\n", m->tlen, m->len);
        memcpy(p, m->data, m->tlen);
        p += m->tlen;
        memcpy(p, m->data + m->tlen + 1, m->len);
        p += m->len;
        *p++ = '\n';
    }
    if (ad_write_file_atomic(path, buf, (size_t)(p - buf), err, sizeof err) != 0)
        ad_log(AD_LOG_ERR, "state: cannot write %s: %s: %llu message(s) received during the "
               "stop are lost", path, err, (unsigned long long)dd->inbox_n);
    else
        ad_log(AD_LOG_NOTICE, "state: %llu message(s) received during the stop kept in %s "
               "for the next start", (unsigned long long)dd->inbox_n, path);
    free(buf);
    inbox_free(dd);
}

/* A decimal number of at most 19 digits at *p, before end (advanced past
 * it): 0, or -1 when there is none (no sign, no spaces: strtoull would
 * skip a newline and read on past the line, and past the buffer). */
static int inbox_num(const char **p, const char *end, size_t *v)
{
    const char *s = *p;
    size_t x = 0;
    int digits = 0;

    while (s < end && *s >= '0' && *s <= '9' && digits < 19) {
        x = x * 10 + (size_t)(*s++ - '0');
        digits++;
    }
    if (!digits || (s < end && *s >= '0' && *s <= '9'))
        return -1;
    *p = s;
    *v = x;
    return 0;
}

/* (see daemon_int.h) */
int state_inbox_next(const char *buf, size_t n, size_t *pos, char **topic,
                     const char **payload, size_t *len)
{
    size_t tl, pl;
    const char *nl, *p;
    size_t at = *pos;

    if (at >= n)
        return 0;
    if (!(nl = memchr(buf + at, '\n', n - at)) || nl - (buf + at) > 48)
        return -1;
    p = buf + at;
    if (inbox_num(&p, nl, &tl) != 0 || p == nl || *p++ != ' ' ||
        inbox_num(&p, nl, &pl) != 0 || p != nl || tl == 0 || tl > n || pl > n)
        return -1;
    at = (size_t)(nl - buf) + 1;
    if (n - at < tl + pl + 1 || buf[at + tl + pl] != '\n' || memchr(buf + at, '\0', tl))
        return -1;
    if (!(*topic = strndup(buf + at, tl)))
        return -1;
    *payload = buf + at + tl;
    *len = pl;
    *pos = at + tl + pl + 1;
    return 1;
}

/* An inbox file the start cannot apply: renamed to path.unapplied.<ms>,
 * so that the next stop, writing a new inbox.dat, does not replace it;
 * into out (the name it has now). */
static void inbox_set_aside(const char *path, char *out, size_t len)
{
    char aside[4300];
    snprintf(aside, sizeof aside, "%s.unapplied.%lld", path, (long long)dd_wall_ms());
    if (rename(path, aside) != 0) {
        snprintf(out, len, "%s (cannot rename it to %s: %s: the next stop with messages "
                 "to keep replaces it)", path, aside, strerror(errno));
        return;
    }
    snprintf(out, len, "%s", aside);
}

void state_inbox_load(ad_daemon *dd)
{
    char path[4200], err[320], now_at[4600], *topic;
    void *data = NULL;
    const char *payload;
    size_t n = 0, pos, len;
    uint64_t done = 0;
    int rc = 0;

    if (!dd->g->cfg->state_dir)
        return;
    inbox_path(dd, path, sizeof path);
    if (access(path, F_OK) != 0)
        return;
    if (ad_read_file(path, INBOX_READ_MAX, &data, &n, err, sizeof err) != 0) {
        inbox_set_aside(path, now_at, sizeof now_at);
        ad_log(AD_LOG_ERR, "state: %s: the messages received during the last stop are not "
               "applied; the file is left for the operator as %s", err, now_at);
        return;
    }
    pos = sizeof INBOX_HEAD - 1;
    if (n < pos || memcmp(data, INBOX_HEAD, pos) != 0) {
        const char *nl = memchr(data, '\n', n);
        size_t first = nl ? (size_t)(nl - (const char *)data) : n, k, q = 0;
        char shown[32 * 4 + 1];

        /* its first bytes as text, others (control characters: a terminal
         * escape; binary) as \xNN: the log shows what is there, unchanged */
        for (k = 0; k < first && k < 32; k++) {
            unsigned char c = ((const unsigned char *)data)[k];
            if (c >= 0x20 && c < 0x7f && c != '\\')
                shown[q++] = (char)c;
            else
                q += (size_t)snprintf(shown + q, sizeof shown - q, "\\x%02x", c);
        }
        shown[q] = '\0';
        inbox_set_aside(path, now_at, sizeof now_at);
        ad_log(AD_LOG_ERR, "state: %s: not an inbox file (first line \"%s\"): not "
               "applied, left for the operator as %s", path, shown, now_at);
        free(data);
        return;
    }
    dd_arrival_clock(dd);
    while ((rc = state_inbox_next(data, n, &pos, &topic, &payload, &len)) == 1) {
        dd_message(dd, topic, payload, len);   /* in messages_in of the last run */
        free(topic);
        done++;
    }
    if (rc < 0)
        ad_log(AD_LOG_WARNING, "state: %s: malformed at byte %zu: the %llu message(s) before "
               "it applied, the rest dropped", path, pos, (unsigned long long)done);
    free(data);
    if (unlink(path) != 0)
        ad_log(AD_LOG_WARNING, "state: cannot remove %s: %s (its messages would be applied "
               "again at the next start)", path, strerror(errno));
    ad_log(AD_LOG_NOTICE, "state: %llu message(s) received during the last stop applied "
           "from %s", (unsigned long long)done, path);
}
