// SPDX-License-Identifier: MIT
/*
 * fill — the metadata filler: completes inodes the lazy first-mount import
 * wrote from the listing alone (META_F_HEAD_PENDING).
 *
 * DESIGN
 *
 * The lazy import makes the mount live as soon as the listing is stored;
 * what only HeadObject knows (x-amz-meta-file-* mode, owner, group, times;
 * that an object is a symlink, and its target) comes later, from here. The
 * file system never hands a pending inode to the kernel: lookup, getattr,
 * readdir and readdirplus call task_filler_complete() for the pending
 * inodes they are about to answer with, which moves them ahead of the
 * background order and waits.
 *
 * Work items are inode numbers. Two sources feed the pool:
 *   - the background queue: every pending inode found by the scan at
 *     task_filler_new() (inode order, which is listing order), then the
 *     retry list (inodes whose HEAD failed, tried again after
 *     FILL_RETRY_NS);
 *   - the priority list (doubly linked, FIFO): inodes someone waits for
 *     (task_filler_complete puts them at the head) or soon will
 *     (task_filler_prefetch, at the tail).
 * Every inode being queued at priority, in flight, or done while someone
 * still waits for it has one struct job in a hash by inode number, so an
 * inode is never worked on twice at once and waiters share one result.
 *
 * One item: read the record (a short read transaction; not pending any
 * more -> done), HeadObject it (imp_fetch_one: the same code as the eager
 * import, symlink bodies included), write a symlink's target to its data
 * file and sync it, then one write transaction that reads the record again
 * (someone else may have completed it meanwhile), applies what the eager
 * import would have written (imp_file_inode / imp_posix_from_head), clears
 * the flag and commits. An object that vanished: the file's entry and
 * inode are removed, as if the import had never seen the key (if its
 * entry is no longer where the key says — a parent renamed meanwhile — the
 * file turns lost instead); a vanished marker leaves an implicit
 * directory. No lock is held across a request or a transaction.
 *
 * Threads: up to `parallel` detached workers, started at task_filler_new()
 * when anything is pending and again by task_filler_complete() when the
 * pool had wound down; a worker exits when there is nothing left to do.
 *
 * Locks: f->lock only (queues, hash, counters).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "tasks/import_i.h"

#define FILL_PARALLEL_DEFAULT 32
#define FILL_PARALLEL_MAX     256
#define FILL_HASH	      1024
#define FILL_RETRY_NS	      (5LL * 1000000000LL)
#define FILL_RETRY_MAX_NS     (300LL * 1000000000LL)
#define FILL_PROGRESS_NS      (5LL * 1000000000LL)
#define FILL_MAXCOMPS	      1024
#define FILL_FAIL_LOG_MAX     10

enum job_state { J_QUEUED, J_RUNNING, J_DONE };

struct job {
	uint64_t ino;
	enum job_state state;
	int err;	  /* J_DONE: the result */
	unsigned waiters; /* callers of task_filler_complete */
	bool prio;	  /* on the priority list */
	struct job *hnext;
	struct job *prev, *next; /* the priority list */
};

struct inos {
	uint64_t *v;
	size_t n, cap;
};

struct task_filler {
	struct task_filler_config cfg;
	int parallel;

	pthread_mutex_t lock;
	pthread_cond_t cond;	  /* workers: work or stop */
	pthread_cond_t done_cond; /* waiters: a job is done; free: live == 0 */
	struct job *hash[FILL_HASH]; /* protected by lock */
	struct job *phead, *ptail;   /* protected by lock */
	struct inos queue;	     /* protected by lock: background */
	size_t qpos;		     /* protected by lock */
	struct inos retry;	     /* protected by lock */
	int64_t retry_at;	     /* protected by lock: mono ns */
	int64_t retry_delay;	     /* protected by lock */
	unsigned nfail_logged;	     /* protected by lock: this round */
	int live;		     /* protected by lock: workers */
	int idle;		     /* protected by lock: waiting for work */
	bool stop;		     /* protected by lock */
	uint64_t pending;	     /* protected by lock */
	uint64_t filled;	     /* protected by lock: this mount */
	int64_t t0, last_log;	     /* protected by lock */
};

static int inos_add(struct inos *a, uint64_t ino)
{
	return u64_push(&a->v, &a->n, &a->cap, ino);
}

/* ---- jobs (all under f->lock) ---- */

static struct job **job_slot(struct task_filler *f, uint64_t ino)
{
	struct job **pp = &f->hash[ino % FILL_HASH];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->hnext;
	return pp;
}

static struct job *job_new(struct task_filler *f, uint64_t ino,
			   enum job_state st)
{
	struct job **pp = job_slot(f, ino), *j;

	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->ino = ino;
	j->state = st;
	*pp = j;
	return j;
}

static void job_free(struct task_filler *f, struct job *j)
{
	struct job **pp = job_slot(f, j->ino);

	if (*pp == j)
		*pp = j->hnext;
	free(j);
}

static void prio_unlink(struct task_filler *f, struct job *j)
{
	if (!j->prio)
		return;
	if (j->prev)
		j->prev->next = j->next;
	else
		f->phead = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		f->ptail = j->prev;
	j->prev = j->next = NULL;
	j->prio = false;
}

static void prio_push(struct task_filler *f, struct job *j, bool front)
{
	prio_unlink(f, j);
	j->prio = true;
	if (front) {
		j->next = f->phead;
		if (f->phead)
			f->phead->prev = j;
		else
			f->ptail = j;
		f->phead = j;
	} else {
		j->prev = f->ptail;
		if (f->ptail)
			f->ptail->next = j;
		else
			f->phead = j;
		f->ptail = j;
	}
}

/* ---- one inode ---- */

/* Find the entry of a file by its key: the parent and the leaf name. */
static int find_entry(struct meta_txn *txn, const char *rel, uint64_t *parent,
		      const char **leaf, char *scratch)
{
	char *comps[FILL_MAXCOMPS];
	size_t n;
	int is_dir, ret;
	uint64_t ino = META_ROOT_INO;

	strcpy(scratch, rel);
	ret = task_key_split(scratch, comps, FILL_MAXCOMPS, &n, &is_dir);
	if (ret)
		return ret;
	for (size_t i = 0; i + 1 < n; i++) {
		ret = meta_dentry_get(txn, ino, comps[i], &ino);
		if (ret)
			return ret;
	}
	*parent = ino;
	*leaf = rel + (comps[n - 1] - scratch);
	return 0;
}

/* The object of a pending file vanished: drop its entry and inode, as if
 * the import had never listed it. Returns 1 when removed, 0 when it turned
 * lost instead, or -errno. */
static int drop_vanished(struct task_filler *f, struct meta_txn *txn,
			 struct meta_inode *mi)
{
	const char *rel = mi->s3_key + strlen(f->cfg.prefix);
	char *scratch = malloc(strlen(rel) + 1);
	const char *leaf = NULL;
	uint64_t parent = 0, ino = 0;
	int ret;

	if (!scratch)
		return -ENOMEM;
	ret = find_entry(txn, rel, &parent, &leaf, scratch);
	if (ret == 0)
		ret = meta_dentry_get(txn, parent, leaf, &ino);
	if (ret == 0 && ino == mi->ino && mi->nlink == 1) {
		meta_dentry_del(txn, parent, leaf);
		meta_inode_del(txn, mi->ino);
		meta_chunk_clear(txn, mi->ino, 0);
		meta_xattr_clear(txn, mi->ino);
		free(scratch);
		return 1;
	}
	free(scratch);
	if (ret < 0 && ret != -ENOENT && ret != -ENOTDIR && ret != -EINVAL)
		return ret;
	/* Not where its key says (a parent renamed since the import). */
	mi->state = META_LOST;
	mi->flags &= ~(uint32_t)META_F_HEAD_PENDING;
	return meta_inode_put(txn, mi);
}

/* What the eager import would have made of o, onto the record cur. */
static void apply_head(struct meta_inode *cur, const struct imp_obj *o)
{
	struct meta_inode in;
	uint32_t nlink = cur->nlink, flags = cur->flags;
	uint64_t gen = cur->generation;
	char *key = cur->s3_key;

	if (S_ISDIR(cur->mode)) {
		imp_take_posix(cur, o, S_IFDIR);
		cur->last_access_ns = cur->atime_ns;
		cur->s3_mtime_ns =
			o->have_head ? o->head.mtime_ns : cur->s3_mtime_ns;
		snprintf(cur->etag, sizeof(cur->etag), "%s",
			 o->have_head ? o->head.etag : "");
	} else {
		imp_file_inode(o, &in);
		in.s3_key = key; /* keep ours, owned */
		in.nlink = nlink;
		in.generation = gen;
		in.flags = flags;
		*cur = in;
	}
	cur->flags &= ~(uint32_t)META_F_HEAD_PENDING;
}

/* Apply the answer for o to inode ino. Returns 0 or -errno. */
static int fill_apply(struct task_filler *f, uint64_t ino, struct imp_obj *o)
{
	struct meta_inode cur = {0}, before = {0};
	struct meta_txn *txn = NULL;
	int syncfd = -1, ret, gone = 0;
	bool link_written = false;

	if (o->kind == IMP_FILE && o->symlink) {
		/* On disk before the record says its chunk is present. */
		ret = imp_link_write(f->cfg.cs, ino, o->link, &syncfd);
		if (ret == 0 && fdatasync(syncfd) < 0)
			ret = -errno;
		if (syncfd >= 0)
			close(syncfd);
		if (ret < 0) {
			log_error("metadata: writing the target of symlink "
				  "'%s': %s",
				  o->key, strerror(-ret));
			chunk_remove(f->cfg.cs, ino);
			return ret;
		}
		link_written = true;
	}
	ret = meta_txn_begin(f->cfg.db, true, &txn);
	if (ret < 0)
		goto out;
	ret = meta_inode_get(txn, ino, &cur);
	if (ret == -ENOENT ||
	    (ret == 0 && !(cur.flags & META_F_HEAD_PENDING))) {
		ret = 1; /* done meanwhile */
		meta_txn_abort(txn);
		goto out;
	}
	if (ret < 0) {
		meta_txn_abort(txn);
		goto out;
	}
	before = cur;
	before.s3_key = NULL;	   /* shares cur's */
	if (o->kind == IMP_SKIP) { /* a file that vanished */
		ret = drop_vanished(f, txn, &cur);
		gone = ret == 1;
		if (ret > 0)
			ret = 0;
	} else {
		apply_head(&cur, o);
		if (o->kind == IMP_FILE && o->symlink)
			meta_chunk_set(txn, ino, 0);
		ret = meta_inode_put(txn, &cur);
	}
	if (ret < 0)
		meta_txn_abort(txn);
	else
		ret = meta_txn_commit(txn);
	if (ret == 0 && f->cfg.on_fill)
		f->cfg.on_fill(f->cfg.cb_arg, &before, gone ? NULL : &cur);
	if (ret == 0 && gone)
		chunk_remove(f->cfg.cs, ino);
out:
	if (ret < 0 && link_written)
		chunk_remove(f->cfg.cs, ino);
	meta_inode_release(&cur);
	if (ret == 1)
		return 1;
	return ret;
}

/* Complete one inode. 0 (done, or nothing to do), 1 (done by someone
 * else), or -errno (still pending). */
static int fill_one(struct task_filler *f, struct imp *im, uint64_t ino)
{
	struct meta_inode mi = {0};
	struct meta_txn *txn;
	struct imp_obj o;
	int ret;

	ret = meta_txn_begin(f->cfg.db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &mi);
	meta_txn_abort(txn);
	if (ret == -ENOENT || (ret == 0 && !(mi.flags & META_F_HEAD_PENDING))) {
		meta_inode_release(&mi);
		return 1;
	}
	if (ret == 0 && !mi.s3_key)
		ret = -EIO; /* cannot happen: the import gives every key */
	if (ret < 0) {
		meta_inode_release(&mi);
		return ret;
	}
	for (int attempt = 0;; attempt++) {
		memset(&o, 0, sizeof(o));
		o.key = mi.s3_key;
		o.size = mi.s3_size;
		o.mtime_ns = mi.s3_mtime_ns;
		snprintf(o.etag, sizeof(o.etag), "%s", mi.etag);
		o.kind = S_ISDIR(mi.mode) ? IMP_DIR : IMP_FILE;
		o.ino = ino;
		ret = imp_fetch_one(im, &o);
		if (ret == 0 && o.kind == IMP_SKIP && o.err == -ENOENT &&
		    o.have_head && attempt == 0) {
			/* The symlink changed between its HEAD and GET. */
			s3_object_release(&o.head);
			free(o.link);
			continue;
		}
		break;
	}
	if (ret == 0 && o.kind == IMP_SKIP && o.err != -ENOENT)
		ret = o.err;
	if (ret < 0) {
		/* With the endpoint down every object fails: a few lines per
		 * round, the rest at debug level. */
		enum log_level lv = LOG_LVL_WARN;

		pthread_mutex_lock(&f->lock);
		if (f->nfail_logged++ >= FILL_FAIL_LOG_MAX)
			lv = LOG_LVL_DEBUG;
		pthread_mutex_unlock(&f->lock);
		log_msg(lv, "metadata: HeadObject '%s': %s%s%s (stays pending)",
			mi.s3_key, strerror(-ret), *s3_error_code() ? " " : "",
			s3_error_code());
	} else {
		if (o.kind == IMP_SKIP)
			log_warn("metadata: key '%s' vanished since the "
				 "listing; its file is gone",
				 mi.s3_key);
		ret = fill_apply(f, ino, &o);
		if (ret < 0)
			log_error("metadata: storing '%s': %s", mi.s3_key,
				  strerror(-ret));
	}
	s3_object_release(&o.head);
	free(o.link);
	meta_inode_release(&mi);
	return ret;
}

/* ---- the pool ---- */

/* The next job (f->lock held); NULL: nothing now, *idle says whether to
 * wait (true) or exit (false). */
static struct job *take(struct task_filler *f, bool *idle)
{
	struct job *j;

	*idle = false;
	if (f->stop)
		return NULL;
	if (f->phead) {
		j = f->phead;
		prio_unlink(f, j);
		j->state = J_RUNNING;
		return j;
	}
	/* Extra workers, started for waiters while the others were busy
	 * (stuck on slow HEADs, say), never take background work. */
	if (f->live > f->parallel)
		return NULL;
	while (f->qpos < f->queue.n) {
		uint64_t ino = f->queue.v[f->qpos++];

		if (*job_slot(f, ino))
			continue; /* queued, in flight or just done */
		j = job_new(f, ino, J_RUNNING);
		if (!j) {
			f->qpos--;
			*idle = true;
			return NULL;
		}
		return j;
	}
	if (f->retry.n) {
		if (time_mono_ns() < f->retry_at) {
			*idle = true;
			return NULL;
		}
		free(f->queue.v);
		f->queue = f->retry;
		f->qpos = 0;
		memset(&f->retry, 0, sizeof(f->retry));
		f->nfail_logged = 0;
		return take(f, idle);
	}
	return NULL;
}

static void log_progress(struct task_filler *f, bool force)
{
	int64_t now = time_mono_ns();

	if (!force && now - f->last_log < FILL_PROGRESS_NS)
		return;
	f->last_log = now;
	if (f->pending == 0)
		log_info("metadata: complete (%" PRIu64 " objects in %.1f s)",
			 f->filled, (double)(now - f->t0) / 1e9);
	else
		log_info("metadata: %" PRIu64 " objects done, %" PRIu64
			 " pending",
			 f->filled, f->pending);
}

static void *worker_main(void *arg)
{
	struct task_filler *f = arg;
	struct imp im;

	imp_init(&im, f->cfg.s3, f->cfg.cs, f->cfg.prefix);
	im.tolerant = true;
	pthread_mutex_lock(&f->lock);
	for (;;) {
		bool idle;
		struct job *j = take(f, &idle);
		int ret;

		if (!j && idle) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			f->idle++;
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
			f->idle--;
			continue;
		}
		if (!j)
			break;
		pthread_mutex_unlock(&f->lock);
		ret = fill_one(f, &im, j->ino);
		pthread_mutex_lock(&f->lock);
		if (ret == 0) {
			f->pending -= f->pending > 0;
			f->filled++;
			log_progress(f, f->pending == 0);
		} else if (ret < 0 && !f->stop) {
			/* Again later, backing off while rounds keep failing
			 * (a permanent 403 must not flood the log). */
			if (!f->retry.n) {
				f->retry_delay =
					f->retry_delay ? MIN(f->retry_delay * 2,
							     FILL_RETRY_MAX_NS)
						       : FILL_RETRY_NS;
				f->retry_at = time_mono_ns() + f->retry_delay;
			}
			inos_add(&f->retry, j->ino); /* -ENOMEM: a remount */
		}
		j->state = J_DONE;
		j->err = ret < 0 ? ret : 0;
		if (j->waiters == 0)
			job_free(f, j);
		pthread_cond_broadcast(&f->done_cond);
	}
	f->live--;
	pthread_cond_broadcast(&f->done_cond);
	pthread_mutex_unlock(&f->lock);
	imp_release(&im);
	return NULL;
}

/* Start up to n more workers, at most max in all (f->lock held). */
static void spawn(struct task_filler *f, size_t n, int max)
{
	pthread_attr_t at;

	if (f->stop)
		return;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (; n > 0 && f->live < max; n--) {
		pthread_t th;

		if (pthread_create(&th, &at, worker_main, f) != 0)
			break;
		f->live++;
	}
	pthread_attr_destroy(&at);
	if (f->live == 0)
		log_error("metadata: cannot start a filler thread");
}

/* Workers for the background queue and the priority list: up to
 * `parallel` (f->lock held). */
static void spawn_background(struct task_filler *f, size_t work)
{
	if (f->live < f->parallel)
		spawn(f, MIN(work, (size_t)(f->parallel - f->live)),
		      f->parallel);
}

struct scan {
	struct inos *q;
};

static int scan_cb(void *arg, const struct meta_inode *mi)
{
	struct scan *sc = arg;

	if (!(mi->flags & META_F_HEAD_PENDING) || mi->nlink == 0)
		return 0;
	return inos_add(sc->q, mi->ino);
}

int task_filler_new(const struct task_filler_config *cfg,
		    struct task_filler **out)
{
	struct task_filler *f;
	struct meta_txn *txn;
	struct scan sc;
	pthread_condattr_t ca;
	int ret;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = *cfg;
	f->parallel = cfg->parallel > 0 ? cfg->parallel : FILL_PARALLEL_DEFAULT;
	f->parallel = MIN(f->parallel, FILL_PARALLEL_MAX);
	sc.q = &f->queue;
	ret = meta_txn_begin(cfg->db, false, &txn);
	if (ret == 0) {
		ret = meta_inode_foreach(txn, scan_cb, &sc);
		meta_txn_abort(txn);
	}
	if (ret < 0) {
		free(f->queue.v);
		free(f);
		return ret;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_cond_init(&f->done_cond, &ca);
	pthread_condattr_destroy(&ca);
	f->pending = f->queue.n;
	f->t0 = f->last_log = time_mono_ns();
	if (f->pending) {
		log_info("metadata: %" PRIu64 " objects to complete in the "
			 "background, %d at a time",
			 f->pending, f->parallel);
		pthread_mutex_lock(&f->lock);
		spawn_background(f, f->queue.n);
		pthread_mutex_unlock(&f->lock);
	}
	*out = f;
	return 0;
}

void task_filler_free(struct task_filler *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	while (f->live > 0)
		pthread_cond_wait(&f->done_cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	for (size_t i = 0; i < FILL_HASH; i++) {
		while (f->hash[i]) {
			struct job *j = f->hash[i];

			f->hash[i] = j->hnext;
			free(j);
		}
	}
	free(f->queue.v);
	free(f->retry.v);
	pthread_cond_destroy(&f->cond);
	pthread_cond_destroy(&f->done_cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* A job for ino at priority (f->lock held); NULL on ENOMEM. *queued
 * counts the jobs left waiting for a worker. */
static struct job *want(struct task_filler *f, uint64_t ino, bool front,
			size_t *queued)
{
	struct job *j = *job_slot(f, ino);

	if (!j)
		j = job_new(f, ino, J_QUEUED);
	if (j && j->state == J_QUEUED) {
		if (front || !j->prio)
			prio_push(f, j, front);
		(*queued)++;
	}
	return j;
}

int task_filler_complete(struct task_filler *f, const uint64_t *inos, size_t n,
			 int *errs)
{
	struct job **js;
	size_t queued = 0;
	int first = 0;

	if (!n)
		return 0;
	if (!f) {
		for (size_t i = 0; errs && i < n; i++)
			errs[i] = -EIO;
		return -EIO;
	}
	js = calloc(n, sizeof(*js));
	if (!js)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	/* Backwards, so the first of inos ends up first in line. */
	for (size_t i = n; i-- > 0;) {
		js[i] = want(f, inos[i], true, &queued);
		if (js[i])
			js[i]->waiters++;
	}
	/* Someone waits: when every worker is busy (the background may be
	 * stuck on slow HEADs), extra ones, up to `parallel` more. */
	spawn_background(f, queued);
	if ((size_t)f->idle < queued)
		spawn(f, queued - (size_t)f->idle, 2 * f->parallel);
	pthread_cond_broadcast(&f->cond);
	for (size_t i = 0; i < n; i++) {
		int err;

		while (js[i] && js[i]->state != J_DONE && !f->stop &&
		       f->live > 0)
			pthread_cond_wait(&f->done_cond, &f->lock);
		if (!js[i])
			err = -ENOMEM;
		else if (js[i]->state == J_DONE)
			err = js[i]->err;
		else
			err = f->stop ? -ECANCELED : -EAGAIN;
		if (errs)
			errs[i] = err;
		if (err && !first)
			first = err;
	}
	for (size_t i = 0; i < n; i++) {
		if (!js[i] || --js[i]->waiters > 0)
			continue;
		if (js[i]->state == J_DONE)
			job_free(f, js[i]);
		/* else still queued: a worker takes it later */
	}
	pthread_mutex_unlock(&f->lock);
	free(js);
	return first;
}

void task_filler_prefetch(struct task_filler *f, const uint64_t *inos, size_t n)
{
	size_t queued = 0;

	if (!f || !n)
		return;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < n; i++)
		want(f, inos[i], false, &queued);
	spawn_background(f, queued);
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

uint64_t task_filler_pending(struct task_filler *f)
{
	uint64_t n;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->lock);
	n = f->pending;
	pthread_mutex_unlock(&f->lock);
	return n;
}
