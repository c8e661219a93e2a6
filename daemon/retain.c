/*
 * retain.c - state retention: the files of state_dir/<detector>/ that no
 * stream needs any more are removed (top-level key state_retain_days), at
 * start, after each reload and then every day (every state_retain_days
 * when that is shorter, at most once a minute).
 *
 * What goes (docs/config.md, "State directory"):
 *  - every file of a stream that is not live here and whose newest file
 *    under the detector's current configuration (its state file, its model
 *    and reference under the current model id and settings hash) was last
 *    written longer ago than the retention: the stream has been gone that
 *    long. A stream's files go together: one evicted last week keeps the
 *    model it promoted last year;
 *  - a model or reference file under another model id or settings hash
 *    than the detector's current ones, last written longer ago than the
 *    retention, whether its stream is live or not: nothing reads it under
 *    this configuration.
 * What stays: the current files of a live stream; every current file of a
 * stream whose state file holds an open alert (or cannot be read): removed,
 * the alert would stay open on the broker and with its consumers, never
 * cleared. At start the daemon restores such a stream (state_scan), which
 * continues the alert or, silent for idle_evict_s, is evicted and closes it
 * (reason "evicted"); its file then ages like any other. Files the daemon
 * does not name this way (an operator's, temporary ones) are never touched.
 *
 * Never on the loop thread: the thread pool reads the directories (scan),
 * the loop drops what belongs to a live stream or waits in the state
 * writer's queue, then the thread pool removes the rest (remove), each file
 * only if it is still a regular file as old as when it was scanned. A
 * stream that appears while its files are being removed has its restore
 * parked until the removal is over (retain_holds, state_restore): it
 * starts anew, as it would have a moment later, instead of reading half a
 * set of files. A reload during the scan discards it and scans again.
 *
 * THE SWEEP'S CLOCK. "Now" is never taken from a wall clock ahead: the
 * first sweep of the process (at start) takes the wall clock, at most a
 * day after the newest file of the detectors' directories (a clock ahead
 * at boot, before NTP sets it, made every file look older than the
 * retention); every later sweep (daily, SIGHUP) takes that time plus the
 * monotonic time since, or the wall clock when that is behind. Files the
 * daemon writes while the clock is ahead carry future times: they are
 * never the reference, and they stay. After a stop longer than a day the
 * files go that much later, until the next restart (a conservative
 * error: nothing goes early). Each sweep leaves its clock in
 * state_dir/.retain_clock ("<wall s> <now s>": the wall clock it read and
 * the now it took); the first sweep of the next process takes that now
 * plus the wall time since, when the wall clock has not gone back since
 * (the lead the clock had then, a year, kept off), else that now: a
 * restart while the clock is still ahead, after the process before wrote
 * files with its times, does not take those for now either. A clock the
 * kernel says is synchronized has no lead (clock_read).
 *
 * Ownership: dd->sweep owns the sweep from sweep_begin to sweep_end, and
 * the sweep owns its directory lists and file names.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "daemon_int.h"

#define DAY_S 86400.0
/* the most a lead of the wall clock is taken as (ten years): a larger
 * one in .retain_clock is not this daemon's (refused, warned) */
#define LEAD_MAX_S (10LL * 366 * 86400)
#define MIN_PERIOD_S 60.0        /* sweeps at most this often */
#define WARN_FILES 10            /* files named in warnings per sweep */

enum { RF_STATE = 1, RF_MODEL };                /* file kinds */
/* why a file goes, or stays for an open alert (unless its stream is live:
 * filter) */
enum { RW_KEEP = 0, RW_GONE, RW_STALE, RW_OPEN };

typedef struct rfile {
    char *name;                  /* in its directory (malloc'd) */
    size_t stem;                 /* bytes of name that are the stream's */
    int kind;                    /* RF_STATE, RF_MODEL (trained or reference) */
    int current;                 /* state file, or a model file under the
                                  * current model id and settings hash */
    int why;                     /* RW_* */
    int removed;                 /* remove: unlinked */
    int err;                     /* errno of a failed unlink or read, or 0 */
    time_t mtime;
    uint64_t size;
} rfile;

typedef struct rdir {
    char *path;                  /* the detector's state directory */
    char tag[64];                /* its current model tag (state_tag) */
    rfile *f;                    /* after the scan: the files to remove
                                  * and those kept for an open alert */
    size_t n, cap;
    int scan_err;                /* errno of opendir, or 0 */
    unsigned kept, kept_open;    /* files of ours kept; of them for the open
                                  * alert of a stream not live */
    unsigned unreadable;         /* state files that could not be read */
    char read_err[320];          /* the first such file's message */
} rdir;

typedef struct retain_sweep {
    uv_work_t w;
    ad_daemon *dd;
    int removing;                /* 0: scanning, 1: removing */
    int stale;                   /* a reload came during the scan */
    double days;
    time_t cutoff;               /* files last written before this may go */
    time_t now;                  /* the sweep's now (THE SWEEP'S CLOCK) */
    time_t wall;                 /* the wall clock at the start */
    time_t boot;                 /* and the boot clock (CLOCK_BOOTTIME) */
    long long lead;              /* s the wall clock is ahead (clock_read) */
    long long lead_bad;          /* a lead or time refused in .retain_clock */
    enum { CN_NONE, CN_CARRIED, CN_BAD, CN_SYNCED } clock_note;  /* said by scan_after */
    char *clock_path;            /* state_dir/.retain_clock (malloc'd) */
    int first;                   /* no trusted time yet: the newest file bounds now */
    rdir *dirs;
    int ndirs;
    char **hold;                 /* sorted "<dir>/<stem>" of the files to remove */
    size_t nhold;
    uint64_t t0;                 /* uv_hrtime at the start */
} retain_sweep;

/* ---- file names ------------------------------------------------------------- */

static int is_hex16(const char *p)
{
    for (int i = 0; i < 16; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

static int ends_with(const char *s, size_t l, const char *suf, size_t *rest)
{
    size_t n = strlen(suf);
    if (l < n || memcmp(s + l - n, suf, n) != 0)
        return 0;
    *rest = l - n;
    return 1;
}

/* The kind of file name nm (RF_*), the length of its stream part (stem)
 * and, for a model file, where its tag starts and how long it is; 0 when
 * the daemon does not write files of that name (state.c): "<stem>.state.
 * json", "<stem>.<16 hex or boot>.<16 hex>[.reference|.candidate].safetensors", with
 * a stem of at least one byte. Parsed from the right: a stem may hold dots
 * but a tag cannot, so the split is unambiguous. */
static int parse_name(const char *nm, size_t *stem, size_t *tag, size_t *taglen)
{
    size_t l = strlen(nm), r;
    if (ends_with(nm, l, ".state.json", &r)) {
        *stem = r;
        return r > 0 ? RF_STATE : 0;
    }
    if (!ends_with(nm, l, ".safetensors", &r))
        return 0;
    if (!ends_with(nm, r, ".reference", &r))
        ends_with(nm, r, ".candidate", &r);
    /* ".<settings hash>" */
    if (r < 17 || nm[r - 17] != '.' || !is_hex16(nm + r - 16))
        return 0;
    r -= 17;
    *taglen = 17;
    /* ".<model id>" or ".boot" */
    if (r >= 17 && nm[r - 17] == '.' && is_hex16(nm + r - 16)) {
        r -= 17;
        *taglen += 17;
    } else if (r >= 5 && memcmp(nm + r - 5, ".boot", 5) == 0) {
        r -= 5;
        *taglen += 5;
    } else {
        return 0;
    }
    *stem = r;
    *tag = r;
    return r > 0 ? RF_MODEL : 0;
}

/* ---- scan (thread pool) ------------------------------------------------------- */

static int rfile_push(rdir *r, const rfile *f)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? 2 * r->cap : 64;
        rfile *nf = realloc(r->f, nc * sizeof *nf);
        if (!nf)
            return -1;
        r->f = nf;
        r->cap = nc;
    }
    r->f[r->n++] = *f;
    return 0;
}

/* By stem, the state file first. */
static int rfile_cmp(const void *a, const void *b)
{
    const rfile *x = a, *y = b;
    size_t n = x->stem < y->stem ? x->stem : y->stem;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    if (x->stem != y->stem)
        return x->stem < y->stem ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int same_stem(const rfile *a, const rfile *b)
{
    return a->stem == b->stem && memcmp(a->name, b->name, a->stem) == 0;
}

/* Decide the files of one stream, f[0..n) (sorted: its state file, if
 * any, first). */
static void decide_stream(const retain_sweep *sw, rdir *r, rfile *f, size_t n)
{
    time_t newest = 0;
    int any = 0, gone, open = 0;
    for (size_t i = 0; i < n; i++)
        if (f[i].current && (!any || f[i].mtime > newest)) {
            newest = f[i].mtime;
            any = 1;
        }
    gone = any && newest < sw->cutoff;
    if (gone && f[0].kind == RF_STATE) {
        char path[8192], key[KEY_MAX], err[320];
        int rc;
        snprintf(path, sizeof path, "%s/%s", r->path, f[0].name);
        rc = state_file_open_alert(path, key, sizeof key, err, sizeof err);
        if (rc == 1 || rc == 2) {
            gone = 0;
            open = 1;
        } else if (rc < 0 && rc != AD_ENOENT) {
            /* cannot tell: kept, and said */
            gone = 0;
            if (!r->unreadable++)
                snprintf(r->read_err, sizeof r->read_err, "%s", err);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!f[i].current && f[i].mtime < sw->cutoff)
            f[i].why = RW_STALE;
        else if (f[i].current && gone)
            f[i].why = RW_GONE;
        else if (f[i].current && open)
            f[i].why = RW_OPEN;
        else
            f[i].why = RW_KEEP;
    }
}

static void scan_dir(rdir *r)
{
    DIR *dp = opendir(r->path);
    struct dirent *e;
    size_t i, tl = strlen(r->tag);
    int dfd;

    if (!dp) {
        r->scan_err = errno;
        return;
    }
    dfd = dirfd(dp);
    while ((e = readdir(dp)) != NULL) {
        rfile f;
        struct stat st;
        size_t tag = 0, taglen = 0;
        memset(&f, 0, sizeof f);
        if (!(f.kind = parse_name(e->d_name, &f.stem, &tag, &taglen)))
            continue;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        f.current = f.kind == RF_STATE ||
                    (taglen == tl && memcmp(e->d_name + tag, r->tag, tl) == 0);
        f.mtime = st.st_mtime;
        f.size = (uint64_t)st.st_size;
        if (!(f.name = strdup(e->d_name)) || rfile_push(r, &f) != 0) {
            free(f.name);
            r->scan_err = ENOMEM;
            break;
        }
    }
    closedir(dp);
    if (r->scan_err) {
        for (i = 0; i < r->n; i++)
            free(r->f[i].name);
        r->n = 0;
        return;
    }
    if (r->n)
        qsort(r->f, r->n, sizeof *r->f, rfile_cmp);
}

/* Decide the files scan_dir collected in r. */
static void decide_dir(const retain_sweep *sw, rdir *r)
{
    size_t i, j, k;

    for (i = 0; i < r->n; i = j) {
        for (j = i + 1; j < r->n && same_stem(&r->f[i], &r->f[j]); j++)
            ;
        decide_stream(sw, r, r->f + i, j - i);
    }
    /* keep only the files to remove and those of an open alert */
    for (i = k = 0; i < r->n; i++) {
        if (r->f[i].why == RW_KEEP) {
            r->kept++;
            free(r->f[i].name);
        } else {
            r->f[k++] = r->f[i];
        }
    }
    r->n = k;
}

/* 1 when the kernel says the wall clock is synchronized (an NTP client
 * disciplines it: ntp_adjtime, read only), 0 when it does not know. */
static int clock_synced(void)
{
    struct timex tx;
    int st;

    memset(&tx, 0, sizeof tx);
    st = ntp_adjtime(&tx);
    return st != -1 && st != TIME_ERROR && !(tx.status & STA_UNSYNC);
}

/* THE SWEEP'S CLOCK across a restart (thread pool): the lead of the wall
 * clock that the last sweep left (clock_write), when it ran in this boot,
 * plus the steps of the wall clock since: how far its advance outruns the
 * boot clock's (CLOCK_BOOTTIME, which a step does not move; NTP's slewing
 * moves both). A lead takes now back by as much (never forward). A clock
 * the kernel says is synchronized is right: no lead (a clock that was
 * behind at boot, set forward by NTP, is a correction, not a clock ahead:
 * taken as a lead, retention ran that much late, or never). A lead, or a
 * time, outside ten years is not one this daemon wrote: refused. */
static void clock_read(retain_sweep *sw)
{
    char id[64];
    long long wall, lead, bt, step;
    time_t t;
    FILE *f = fopen(sw->clock_path, "r");

    if (!f)
        return;
    /* another boot: the boot clock started again under the last sweep's
     * reading (no boot id: /proc/sys is not there under the unit's
     * ProcSubset=pid; a reboot whose daemon starts later in its boot than
     * the last sweep ran in the one before is taken as a step forward) */
    if (fscanf(f, "%63s %lld %lld %lld", id, &wall, &bt, &lead) != 4 ||
        bt > (long long)sw->boot) {
        fclose(f);
        return;
    }
    fclose(f);
    /* bounded before any sum: a file edited by hand, or another program's */
    if (lead < -LEAD_MAX_S || lead > LEAD_MAX_S || bt < 0 ||
        wall < (long long)sw->wall - LEAD_MAX_S || wall > (long long)sw->wall + LEAD_MAX_S) {
        sw->lead_bad = lead;
        sw->clock_note = CN_BAD;
        return;
    }
    /* steps and leads of a minute or less are the jitter of readings
     * in whole seconds: one left standing would take the files just
     * written for the future */
    step = ((long long)sw->wall - wall) - ((long long)sw->boot - bt);
    if (step >= -60 && step <= 60)
        step = 0;
    sw->lead = lead + step;
    if (sw->lead > LEAD_MAX_S) {
        sw->lead_bad = sw->lead;
        sw->lead = 0;
        sw->clock_note = CN_BAD;
        return;
    }
    if (sw->lead >= -60 && sw->lead <= 60)
        sw->lead = 0;
    if (sw->lead > 0 && clock_synced()) {
        sw->clock_note = CN_SYNCED;     /* once: the file keeps 0 from now */
        sw->lead_bad = sw->lead;
        sw->lead = 0;
    }
    if (sw->lead > 0 && (sw->first || step != 0))
        sw->clock_note = CN_CARRIED;
    t = sw->wall - (time_t)sw->lead;
    if (sw->lead > 0 && t < sw->now) {
        sw->now = t;
        sw->cutoff = t - (time_t)(sw->days * DAY_S);
    }
}

/* Leave this sweep's clock for the sweeps to come (thread pool): "-
 * <wall s> <boot clock s> <lead s>" (the first field, once a boot id, is
 * not read). Written to a temporary name and
 * renamed: a crash leaves the old one or the new one. A failure is not
 * said: the next start goes by the newest file alone, as before the file
 * existed. */
static void clock_write(retain_sweep *sw)
{
    char tmp[8300];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", sw->clock_path);
    if (!(f = fopen(tmp, "w")))
        return;
    fprintf(f, "- %lld %lld %lld\n", (long long)sw->wall, (long long)sw->boot, sw->lead);
    if (fclose(f) != 0 || rename(tmp, sw->clock_path) != 0)
        unlink(tmp);
}

static void scan_work(uv_work_t *w)
{
    retain_sweep *sw = w->data;
    time_t newest = 0, bound;
    int any = 0;

    clock_read(sw);
    for (int i = 0; i < sw->ndirs; i++) {
        rdir *r = &sw->dirs[i];
        scan_dir(r);
        /* a file written after the sweep's now (by a clock ahead) is
         * never the reference */
        for (size_t k = 0; k < r->n; k++)
            if (r->f[k].mtime <= sw->now && (!any || r->f[k].mtime > newest)) {
                newest = r->f[k].mtime;
                any = 1;
            }
    }
    /* THE SWEEP'S CLOCK, first sweep: now is at most a day after the
     * newest file of the detectors' directories. A clock ahead when the
     * sweep runs (an RTC reset into the future, at boot before NTP sets it)
     * made every file look older than the retention, and the start-up
     * sweep removed the files of every stream. */
    if (sw->first && any) {
        bound = newest + (time_t)DAY_S;
        if (bound < sw->now) {
            sw->now = bound;
            sw->cutoff = bound - (time_t)(sw->days * DAY_S);
        }
    }
    clock_write(sw);
    for (int i = 0; i < sw->ndirs; i++)
        decide_dir(sw, &sw->dirs[i]);
}

/* ---- remove (thread pool) ----------------------------------------------------- */

static void remove_work(uv_work_t *w)
{
    retain_sweep *sw = w->data;
    char path[8192];
    for (int i = 0; i < sw->ndirs; i++) {
        rdir *r = &sw->dirs[i];
        for (size_t k = 0; k < r->n; k++) {
            rfile *f = &r->f[k];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", r->path, f->name);
            /* rewritten since the scan (a stream came back, a promotion):
             * it stays */
            if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_mtime >= sw->cutoff) {
                f->why = RW_KEEP;
                continue;
            }
            if (unlink(path) == 0) {
                f->removed = 1;
                f->size = (uint64_t)st.st_size;
            } else if (errno != ENOENT) {
                f->err = errno;
            }
        }
    }
}

/* ---- the sweep (loop thread) --------------------------------------------------- */

static void sweep_free(retain_sweep *sw)
{
    if (!sw)
        return;
    free(sw->clock_path);
    for (int i = 0; i < sw->ndirs; i++) {
        for (size_t k = 0; k < sw->dirs[i].n; k++)
            free(sw->dirs[i].f[k].name);
        free(sw->dirs[i].f);
        free(sw->dirs[i].path);
    }
    free(sw->dirs);
    for (size_t k = 0; k < sw->nhold; k++)
        free(sw->hold[k]);
    free(sw->hold);
    free(sw);
}

static void sweep_begin(ad_daemon *dd);

/* The sweep is over (done, discarded or failed): parked restores go on,
 * and one more sweep starts if one was asked for meanwhile. */
static void sweep_end(ad_daemon *dd)
{
    sweep_free(dd->sweep);
    dd->sweep = NULL;
    state_restores_resume(dd);
    if (dd->sweep_again && !dd->stopping) {
        dd->sweep_again = 0;
        sweep_begin(dd);
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The stems of d's streams that are live and whose names were cut (they
 * end in "~" and the key's hash, state.c: the key cannot be read back from
 * the name), sorted: a malloc'd array of malloc'd strings, *n of them.
 * 0, or -1 when memory ran out. */
static int cut_stems(det_rt *d, char ***out, size_t *n)
{
    char **v = NULL, stem[8192];
    size_t k = 0, cap = 0;
    *out = NULL;
    *n = 0;
    MAP_FOREACH(&d->streams, s) {
        state_stem(d, s->key, stem, sizeof stem);
        if (!strchr(stem + strlen(d->state_dir), '~'))
            continue;
        if (k == cap) {
            char **nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!nv)
                goto oom;
            v = nv;
        }
        if (!(v[k] = strdup(stem)))
            goto oom;
        k++;
    }
    if (k)
        qsort(v, k, sizeof *v, str_cmp);
    *out = v;
    *n = k;
    return 0;
oom:
    while (k)
        free(v[--k]);
    free(v);
    return -1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* 1 when the files named stem ("<dir>/<escaped key>") are those of a live
 * stream of d. The key is read back from the name (state.c escapes every
 * byte outside [A-Za-z0-9._-] as %XX) and must give the same name again;
 * a cut name is looked up in cut (cut_stems). */
static int stem_live(det_rt *d, const char *stem, char **cut, size_t ncut)
{
    const char *e = stem + strlen(d->state_dir) + 1;
    char key[KEY_MAX], again[8192];
    size_t o = 0;

    if (strchr(e, '~'))
        return ncut && bsearch(&stem, cut, ncut, sizeof *cut, str_cmp) != NULL;
    if (strcmp(e, "%") != 0) {              /* "%": the empty key */
        for (; *e; e++) {
            int hi, lo;
            if (o + 1 >= sizeof key)
                return 0;
            if (*e != '%') {
                key[o++] = *e;
                continue;
            }
            if ((hi = hexval(e[1])) < 0 || (lo = hexval(e[2])) < 0 || (hi | lo) == 0)
                return 0;
            key[o++] = (char)(hi << 4 | lo);
            e += 2;
        }
    }
    key[o] = '\0';
    state_stem(d, key, again, sizeof again);
    return strcmp(again, stem) == 0 && streams_find(d, key) != NULL;
}

static det_rt *find_det(const ad_daemon *dd, const char *dir)
{
    for (int i = 0; i < dd->g->n; i++)
        if (strcmp(dd->g->dets[i].state_dir, dir) == 0)
            return &dd->g->dets[i];
    return NULL;
}

static void drop_list(rdir *r, size_t from)
{
    for (size_t k = from; k < r->n; k++)
        free(r->f[k].name);
    r->n = from;
}

/* Add stem to sw->hold unless it is the last one added (the files of a
 * stream are neighbours); 0 or -1 (out of memory). */
static int hold_add(retain_sweep *sw, size_t *cap, const char *stem)
{
    if (sw->nhold && strcmp(sw->hold[sw->nhold - 1], stem) == 0)
        return 0;
    if (sw->nhold == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        char **nh = realloc(sw->hold, nc * sizeof *nh);
        if (!nh)
            return -1;
        sw->hold = nh;
        *cap = nc;
    }
    if (!(sw->hold[sw->nhold] = strdup(stem)))
        return -1;
    sw->nhold++;
    return 0;
}

/* Loop thread: keep what a live stream or the writer needs; collect the
 * stems of the rest (sw->hold). 0, or -1 when memory ran out (then only
 * the files already checked are removed). */
static int filter(retain_sweep *sw)
{
    char stem[8192], path[8300];
    size_t cap = 0;
    int i, rc = 0;

    for (i = 0; i < sw->ndirs && rc == 0; i++) {
        rdir *r = &sw->dirs[i];
        det_rt *d = find_det(sw->dd, r->path);
        char **cut = NULL;
        size_t ncut = 0, k, m;

        if (!d) {                       /* not a directory of this configuration */
            drop_list(r, 0);
            continue;
        }
        for (k = 0; k < r->n && !memchr(r->f[k].name, '~', r->f[k].stem); k++)
            ;
        if (k < r->n && cut_stems(d, &cut, &ncut) != 0) {
            drop_list(r, 0);
            rc = -1;
            break;
        }
        for (k = m = 0; k < r->n; k++) {
            rfile *f = &r->f[k];
            int live = 0;
            snprintf(stem, sizeof stem, "%s/%.*s", r->path, (int)f->stem, f->name);
            snprintf(path, sizeof path, "%s.state.json", stem);
            if (f->why != RW_STALE)
                live = stem_live(d, stem, cut, ncut);
            if (f->why == RW_OPEN ||
                (f->why == RW_GONE && (live || state_queued(sw->dd, path)))) {
                /* a live stream's, about to be written, or an open alert's */
                r->kept++;
                r->kept_open += f->why == RW_OPEN && !live;
                free(f->name);
                continue;
            }
            if (hold_add(sw, &cap, stem) != 0) {
                rc = -1;
                break;
            }
            r->f[m++] = *f;
        }
        for (size_t x = 0; x < ncut; x++)
            free(cut[x]);
        free(cut);
        /* out of memory: what is not checked stays */
        for (size_t x = k; x < r->n; x++)
            free(r->f[x].name);
        r->n = m;
    }
    for (; i < sw->ndirs; i++)
        drop_list(&sw->dirs[i], 0);
    if (sw->nhold)
        qsort(sw->hold, sw->nhold, sizeof *sw->hold, str_cmp);
    return rc;
}

static void remove_after(uv_work_t *w, int status)
{
    retain_sweep *sw = w->data;
    ad_daemon *dd = sw->dd;
    unsigned gone = 0, streams = 0, stale = 0, kept = 0, kept_open = 0, failed = 0;
    uint64_t bytes = 0;

    for (int i = 0; i < sw->ndirs; i++) {
        rdir *r = &sw->dirs[i];
        const rfile *prev = NULL;
        if (r->scan_err)
            ad_log(AD_LOG_WARNING, "state: retention: cannot read %s: %s", r->path,
                   strerror(r->scan_err));
        if (r->unreadable)
            ad_log(AD_LOG_WARNING, "state: retention: %u state file(s) kept, "
                   "they cannot be read (the first: %s)", r->unreadable, r->read_err);
        kept += r->kept;
        kept_open += r->kept_open;
        for (size_t k = 0; k < r->n; k++) {
            const rfile *f = &r->f[k];
            if (f->err) {
                if (failed++ < WARN_FILES)
                    ad_log(AD_LOG_WARNING, "state: retention: cannot remove %s/%s: %s",
                           r->path, f->name, strerror(f->err));
                continue;
            }
            if (!f->removed) {
                kept++;
                continue;
            }
            bytes += f->size;
            if (f->why == RW_STALE) {
                stale++;
                continue;
            }
            gone++;
            if (!prev || !same_stem(prev, f))
                streams++;
            prev = f;
        }
    }
    if (failed > WARN_FILES)
        ad_log(AD_LOG_WARNING, "state: retention: %u more file(s) could not be removed",
               failed - WARN_FILES);
    if (status != 0)
        ad_log(AD_LOG_WARNING, "state: retention: removal failed: %s", uv_strerror(status));
    dd->c.state_files_removed += gone + stale;
    dd->c.state_bytes_removed += bytes;
    ad_log(AD_LOG_INFO, "state: retention %g day(s): %u file(s) removed, %llu bytes freed "
           "(%u of %u stream(s) gone, %u under another model or settings); %u kept, "
           "%u of them for an open alert%s%s (%.0f ms)",
           sw->days, gone + stale, (unsigned long long)bytes, gone, streams, stale,
           kept + failed, kept_open, failed ? ", not removable: " : "",
           failed ? "see above" : "", (double)(uv_hrtime() - sw->t0) / 1e6);
    sweep_end(dd);
}

static void scan_after(uv_work_t *w, int status)
{
    retain_sweep *sw = w->data;
    ad_daemon *dd = sw->dd;

    if (sw->stale || dd->stopping || status != 0) {
        if (status != 0)
            ad_log(AD_LOG_WARNING, "state: retention: scan failed: %s", uv_strerror(status));
        if (sw->stale)
            dd->sweep_again = 1;        /* under the new configuration */
        sweep_end(dd);
        return;
    }
    if (sw->clock_note == CN_CARRIED)
        ad_log(AD_LOG_WARNING, "state: retention: the wall clock is taken as %lld s ahead "
               "(%s/.retain_clock: set forward since an earlier sweep of this boot, and not "
               "synchronized): files go by a clock that much behind it", sw->lead,
               sw->dd->g->cfg->state_dir);
    else if (sw->clock_note == CN_SYNCED)
        ad_log(AD_LOG_NOTICE, "state: retention: the wall clock is synchronized: its lead "
               "of %lld s (set forward since an earlier sweep of this boot) is taken as a "
               "correction, files go by the clock", sw->lead_bad);
    else if (sw->clock_note == CN_BAD)
        ad_log(AD_LOG_WARNING, "state: retention: %s/.retain_clock: lead %lld s or its times "
               "beyond ten years: not taken (the newest file bounds now)",
               sw->dd->g->cfg->state_dir, sw->lead_bad);
    if (sw->first) {
        /* the reference of the sweeps to come (THE SWEEP'S CLOCK) */
        dd->rt_ref_s = (int64_t)sw->now;
        dd->rt_ref_hr = sw->t0 ? sw->t0 : 1;
    }
    if (filter(sw) != 0)
        ad_log(AD_LOG_WARNING, "state: retention: out of memory; some files are kept "
               "until the next sweep");
    sw->removing = 1;
    if (uv_queue_work(dd->loop, &sw->w, remove_work, remove_after) != 0) {
        ad_log(AD_LOG_WARNING, "state: retention: no thread pool; files kept");
        sweep_end(dd);
    }
}

static void sweep_begin(ad_daemon *dd)
{
    const gen *g = dd->g;
    retain_sweep *sw;
    struct timespec bts;
    int n = 0;

    if (dd->stopping || !g->cfg->state_dir || g->cfg->state_retain_days <= 0)
        return;
    if (dd->sweep) {
        dd->sweep_again = 1;
        return;
    }
    if (!(sw = calloc(1, sizeof *sw)) || !(sw->dirs = calloc((size_t)g->n + 1, sizeof *sw->dirs)))
        goto oom;
    for (int i = 0; i < g->n; i++) {
        const det_rt *d = &g->dets[i];
        rdir *r = &sw->dirs[n];
        if (!d->state_dir[0])
            continue;
        if (!(r->path = strdup(d->state_dir)))
            goto oom;
        state_tag(d, r->tag, sizeof r->tag);
        n++;
    }
    sw->ndirs = n;
    sw->dd = dd;
    sw->days = g->cfg->state_retain_days;
    sw->t0 = uv_hrtime();
    /* THE SWEEP'S CLOCK: after the first sweep, now is the time that sweep
     * took plus the monotonic time since, or the wall clock when that is
     * behind (set back to the right time since) */
    sw->now = sw->wall = time(NULL);
    clock_gettime(CLOCK_BOOTTIME, &bts);
    sw->boot = bts.tv_sec;
    sw->first = dd->rt_ref_hr == 0;
    if (asprintf(&sw->clock_path, "%s/.retain_clock", g->cfg->state_dir) < 0) {
        sw->clock_path = NULL;
        goto oom;
    }
    if (!sw->first) {
        time_t t = (time_t)dd->rt_ref_s + (time_t)((sw->t0 - dd->rt_ref_hr) / 1000000000u);
        if (t < sw->now)
            sw->now = t;
    }
    sw->cutoff = sw->now - (time_t)(sw->days * DAY_S);
    sw->w.data = sw;
    if (n == 0) {
        sweep_free(sw);
        return;
    }
    if (uv_queue_work(dd->loop, &sw->w, scan_work, scan_after) != 0) {
        ad_log(AD_LOG_WARNING, "state: retention: no thread pool; files kept");
        sweep_free(sw);
        return;
    }
    dd->sweep = sw;
    return;
oom:
    ad_log(AD_LOG_WARNING, "state: retention: out of memory; files kept until the next sweep");
    sweep_free(sw);
}

static void retain_cb(uv_timer_t *t)
{
    sweep_begin(t->data);
}

/* Sweep every min(retention, a day), at most once a minute; off without
 * a state dir or with retention 0. */
static void arm(ad_daemon *dd)
{
    double days = dd->g->cfg->state_retain_days, s = days * DAY_S;
    uint64_t ms;

    uv_timer_stop(&dd->retain_timer);
    if (!dd->g->cfg->state_dir || days <= 0)
        return;
    if (s > DAY_S)
        s = DAY_S;
    if (s < MIN_PERIOD_S)
        s = MIN_PERIOD_S;
    ms = (uint64_t)(s * 1000);
    uv_timer_start(&dd->retain_timer, retain_cb, ms, ms);
}

void retain_start(ad_daemon *dd)
{
    uv_timer_init(dd->loop, &dd->retain_timer);
    dd->retain_timer.data = dd;
    if (dd->g->cfg->state_dir && dd->g->cfg->state_retain_days <= 0)
        ad_log(AD_LOG_INFO, "state: state_retain_days 0: files of gone streams are kept");
    arm(dd);
    if (!dd->scan && !dd->sweep)
        sweep_begin(dd);        /* else once the state scan is done */
}

void retain_scan_done(ad_daemon *dd)
{
    sweep_begin(dd);
}

void retain_reload(ad_daemon *dd)
{
    if (dd->sweep && !dd->sweep->removing)
        dd->sweep->stale = 1;
    arm(dd);
    sweep_begin(dd);                    /* or after the one in flight */
}

int retain_holds(const ad_daemon *dd, const char *stem)
{
    const retain_sweep *sw = dd->sweep;
    return sw && sw->removing && sw->nhold &&
           bsearch(&stem, sw->hold, sw->nhold, sizeof *sw->hold, str_cmp) != NULL;
}
