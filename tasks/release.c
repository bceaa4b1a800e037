// SPDX-License-Identifier: MIT
/*
 * RELEASE_DATA_FROM_FILESYSTEM and AUTO_RELEASE_DATA: drop the cached data
 * of archived files, keeping every bit of metadata; the next read fetches
 * it back from S3. Only archived, unpinned files without open handles are
 * released (hydrate_release checks that under the file's locks, so a write
 * racing a release either lands first — the file is dirty and kept — or
 * after, on a released file).
 *
 * RELEASE walks its paths and releases files whose max(atime, ctime, mtime)
 * lies more than Value days before the task was created. AUTO_RELEASE takes
 * the least recently used files from the lru index, oldest first, in slices,
 * until CapacityToRelease is freed or nothing eligible is left; with Paths,
 * the archived files under them, ordered by their last access.
 *
 * All of them release in batches of BATCH files (hydrate_release_many): one
 * LMDB commit and one sync per batch, made durable before any of its files
 * is punched, instead of one of each per file (which capped small files at
 * about 1,200 files/s). Cancellation is checked between batches.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/common.h"
#include "tasks/tasks_i.h"

#define NS_PER_DAY (86400ll * 1000000000ll)
#define SLICE	   256
#define BATCH	   64 /* files per LMDB commit and sync */
#define BUSY_RETRY 64

struct rcollect {
	int64_t cutoff; /* release files last touched before this */
	bool any_age;
	struct task_cands c;
};

static int64_t last_touch(const struct meta_inode *mi)
{
	return MAX(mi->atime_ns, MAX(mi->ctime_ns, mi->mtime_ns));
}

static int rcollect_cb(void *arg, const char *rel, const struct meta_inode *mi)
{
	struct rcollect *c = arg;

	/* TotalCount: files eligible by path and age that hold data;
	 * new/dirty files are skipped, not counted. */
	if (!S_ISREG(mi->mode) || mi->state != META_ARCHIVED ||
	    (mi->flags & META_F_HEAD_PENDING)) /* no data yet */
		return 0;
	if (!c->any_age && last_touch(mi) >= c->cutoff)
		return 0;
	return task_cands_add(&c->c, rel, mi->ino);
}

static const char *release_code(int err)
{
	return err == -ENOENT ? "PATH_NOT_FOUND" : "LOCAL_IO_ERROR";
}

/* Bookkeeping for candidate k after hydrate_release_many() gave it err:
 * returns 1 when it was busy and may be retried (then k stays), 0
 * otherwise (k->rel is cleared: done or skipped). */
static int release_done(struct task_run *r, struct task_cand *k, int err,
			uint64_t freed, bool retry)
{
	if (err == -EBUSY && retry)
		return 1;
	/* Open, pinned, or changed since the walk: skipped as FSx skips
	 * them — neither done nor failed. */
	if (err != -EAGAIN && err != -EBUSY && err != -EPERM) {
		task_run_add_released(r, freed);
		task_run_file_done(r, k->rel, err, release_code(err));
	}
	free(k->rel);
	k->rel = NULL;
	return 0;
}

/* Release the next batch of candidates still to do, from c->v[*pos] on,
 * with one LMDB commit and sync; returns how many were busy (kept for a
 * retry when `retry`). */
static size_t release_batch(struct task_run *r, struct task_cands *c,
			    size_t *pos, bool retry)
{
	const struct task_engine_config *cfg = task_run_config(r);
	uint64_t inos[BATCH], freed[BATCH];
	size_t idx[BATCH], n = 0, tried = 0, busy = 0;
	int errs[BATCH];

	for (; *pos < c->n && n < BATCH; (*pos)++) {
		if (!c->v[*pos].rel)
			continue; /* done in the first pass */
		idx[n] = *pos;
		inos[n++] = c->v[*pos].ino;
	}
	if (hydrate_release_many(cfg->hy, inos, n, true, 0, errs, freed,
				 &tried) < 0) {
		for (tried = 0; tried < n; tried++) {
			errs[tried] = -ENOMEM;
			freed[tried] = 0;
		}
	}
	for (size_t i = 0; i < tried; i++)
		busy += release_done(r, &c->v[idx[i]], errs[i], freed[i],
				     retry);
	return busy;
}

int task_exec_release(struct task_run *r)
{
	const struct task_request *q = task_run_request(r);
	struct rcollect c = {0};
	int ret;

	c.any_age = q->release_days == 0;
	c.cutoff =
		task_run_created_ns(r) - (int64_t)q->release_days * NS_PER_DAY;
	ret = task_walk_paths(r, rcollect_cb, &c);
	if (ret == 0) {
		task_run_set_total(r, c.c.n);
		for (int pass = 0; pass < 2 && !task_run_canceled(r); pass++) {
			size_t busy = 0, pos = 0;
			while (pos < c.c.n && !task_run_canceled(r))
				busy += release_batch(r, &c.c, &pos, pass == 0);
			if (!busy)
				break;
			/* A file closed just now may still hold its handle:
			 * the kernel releases it after close() returns. */
			nanosleep(&(struct timespec){0, 200000000}, NULL);
		}
		/* TotalCount counted candidates by path and age; the
		 * skipped ones do not count. */
		task_run_set_total(r, task_run_done_count(r));
	}
	task_cands_release(&c.c);
	return ret;
}

struct lru_slice {
	int64_t ts[SLICE];
	uint64_t ino[SLICE];
	size_t n;
	int64_t after_ts; /* resume strictly after (after_ts, after_ino) */
	uint64_t after_ino;
};

static int slice_cb(void *arg, int64_t ts, uint64_t ino)
{
	struct lru_slice *s = arg;

	if (ts < s->after_ts || (ts == s->after_ts && ino <= s->after_ino))
		return 0;
	s->ts[s->n] = ts;
	s->ino[s->n] = ino;
	return ++s->n == SLICE;
}

static void count_freed(struct task_run *r, uint64_t f, uint64_t *freed)
{
	*freed += f;
	if (r) {
		task_run_add_released(r, f);
		task_run_file_done(r, "", 0, NULL);
	}
}

/* A stale lru entry (the file is not archived any more): drop it. */
static void drop_stale(const struct task_engine_config *cfg, int64_t ts,
		       uint64_t ino)
{
	struct meta_txn *w;

	if (meta_txn_begin(cfg->db, true, &w) == 0) {
		meta_lru_del(w, ts, ino);
		meta_txn_commit(w);
	}
}

/* Release inos[0..n) in batches until `target` is freed, checking for
 * cancellation between batches. ts (NULL: none) holds their lru keys, so
 * that stale lru entries are dropped; busy files are remembered (up to
 * BUSY_RETRY) for a retry. */
static int release_inos(const struct task_engine_config *cfg,
			struct task_run *r, const uint64_t *inos,
			const int64_t *ts, size_t n, uint64_t target,
			uint64_t *freed, uint64_t *busy, size_t *nbusy)
{
	for (size_t i = 0; i < n && *freed < target;) {
		size_t m = MIN((size_t)BATCH, n - i), tried;
		uint64_t f[BATCH];
		int errs[BATCH], ret;

		if (r && task_run_canceled(r))
			break;
		/* Stop taking files once the batch holds what is missing. */
		ret = hydrate_release_many(cfg->hy, &inos[i], m, true,
					   target - *freed, errs, f, &tried);
		if (ret < 0)
			return ret;
		for (size_t k = 0; k < tried; k++) {
			if (ts && (errs[k] == -EAGAIN || errs[k] == -ENOENT))
				drop_stale(cfg, ts[i + k], inos[i + k]);
			else if (errs[k] == -EBUSY && *nbusy < BUSY_RETRY)
				busy[(*nbusy)++] = inos[i + k];
			else if (errs[k] == 0)
				count_freed(r, f[k], freed);
		}
		i += tried;
	}
	return 0;
}

/* A file closed just now may still have its handle: the kernel releases
 * handles asynchronously after close(). Try the busy ones once more. */
static void retry_busy(const struct task_engine_config *cfg, struct task_run *r,
		       const uint64_t *busy, size_t nbusy, uint64_t target,
		       uint64_t *freed)
{
	if (*freed >= target || nbusy == 0)
		return;
	nanosleep(&(struct timespec){0, 200000000}, NULL);
	for (size_t i = 0; i < nbusy && *freed < target; i++) {
		uint64_t f = 0;
		if (hydrate_release(cfg->hy, busy[i], true, &f) == 0)
			count_freed(r, f, freed);
	}
}

int task_release_lru(const struct task_engine_config *cfg, struct task_run *r,
		     uint64_t target, uint64_t *freed_out)
{
	struct lru_slice s = {.after_ts = INT64_MIN};
	uint64_t freed = 0, busy[BUSY_RETRY];
	size_t nbusy = 0;
	int ret = 0;

	while (freed < target && ret == 0 && !(r && task_run_canceled(r))) {
		struct meta_txn *txn;

		s.n = 0;
		ret = meta_txn_begin(cfg->db, false, &txn);
		if (ret < 0)
			break;
		ret = meta_lru_foreach(txn, slice_cb, &s);
		meta_txn_abort(txn);
		if (ret < 0)
			break;
		ret = 0;
		if (s.n == 0)
			break; /* nothing eligible left */
		ret = release_inos(cfg, r, s.ino, s.ts, s.n, target, &freed,
				   busy, &nbusy);
		s.after_ts = s.ts[s.n - 1];
		s.after_ino = s.ino[s.n - 1];
	}
	if (ret == 0)
		retry_busy(cfg, r, busy, nbusy, target, &freed);
	*freed_out = freed;
	return ret;
}

/* AUTO_RELEASE_DATA with Paths: the files under them, least recently used
 * first (the walk is bounded by the paths, not the whole file system). */
struct lru_cand {
	int64_t ts;
	uint64_t ino;
};

struct lru_cands {
	struct lru_cand *v;
	size_t n, cap;
};

static int lcollect_cb(void *arg, const char *rel, const struct meta_inode *mi)
{
	struct lru_cands *c = arg;

	(void)rel;
	if (!S_ISREG(mi->mode) || mi->state != META_ARCHIVED ||
	    !mi->cached_bytes)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		struct lru_cand *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct lru_cand){mi->last_access_ns, mi->ino};
	return 0;
}

static int cmp_lru_cand(const void *a, const void *b)
{
	const struct lru_cand *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int release_lru_paths(struct task_run *r, uint64_t target,
			     uint64_t *freed_out)
{
	const struct task_engine_config *cfg = task_run_config(r);
	struct lru_cands c = {0};
	uint64_t freed = 0, busy[BUSY_RETRY], *inos = NULL;
	size_t nbusy = 0, n = 0;
	int ret;

	ret = task_walk_paths(r, lcollect_cb, &c);
	if (ret == 0 && c.n) {
		qsort(c.v, c.n, sizeof(*c.v), cmp_lru_cand);
		inos = malloc(c.n * sizeof(*inos));
		if (!inos)
			ret = -ENOMEM;
	}
	for (size_t i = 0; ret == 0 && i < c.n; i++) {
		/* Overlapping paths list a file twice. */
		if (i > 0 && c.v[i].ino == c.v[i - 1].ino)
			continue;
		inos[n++] = c.v[i].ino;
	}
	if (ret == 0)
		ret = release_inos(cfg, r, inos, NULL, n, target, &freed, busy,
				   &nbusy);
	if (ret == 0)
		retry_busy(cfg, r, busy, nbusy, target, &freed);
	free(inos);
	free(c.v);
	*freed_out = freed;
	return ret;
}

int task_exec_auto_release(struct task_run *r)
{
	const struct task_engine_config *cfg = task_run_config(r);
	const struct task_request *q = task_run_request(r);
	uint64_t target = task_run_target_bytes(r), freed = 0;
	int ret;

	if (!target)
		target = q->capacity_gib << 30;
	if (q->npaths)
		ret = release_lru_paths(r, target, &freed);
	else
		ret = task_release_lru(cfg, r, target, &freed);
	/* Which files go is only known as they go: the total is what was
	 * released. */
	task_run_set_total(r, task_run_done_count(r));
	return ret;
}
