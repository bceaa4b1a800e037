// SPDX-License-Identifier: MIT
/*
 * hydrate — the file table, fetching from S3, persisting presence, and
 * setup and teardown. Changes to file data (writes, truncate, fallocate,
 * release, invalidation) are in hydrate_change.c; the structs both files
 * share are in hydrate_i.h.
 *
 * DESIGN
 *
 * Threads: the FUSE threads call hydrate_ensure(); `fetch_threads` workers
 * take jobs (one chunk each) from a FIFO and run the ranged GET; one
 * persister thread turns fetched chunks into LMDB presence records.
 *
 * Lock order: h->lock (file table, job queue, persist list) before f->lock
 * (one file's bitmaps). Neither is held across network I/O, a disk write or
 * an LMDB transaction: a worker copies what it needs from the file under
 * f->lock, drops it, fetches, writes, then takes f->lock again to publish.
 *
 * Lifetime: a file's refcount (under h->lock) counts open handles, queued or
 * running jobs and persist entries; the file leaves the table and is freed at
 * zero. So a job never outlives its file. An inode has at most one file in
 * the table: the first open puts it there marked `loading`, fills it from
 * the store without h->lock, and every other open of the inode waits for
 * that (h->load_cond) instead of loading a copy, so the state a writer
 * changes and the data file it writes are never loaded again under it.
 */
#include "cache/hydrate_i.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/spare_i.h"
#include "common/common.h"

/*
 * Fetched chunks are recorded in batches gathered for up to 5 s (as ext4
 * commits its journal): the batch's fdatasync then finds most of the data
 * written back already, instead of forcing the disk to write while a reader
 * streams the object in (that cost a cold sequential read 30% here).
 * Readers never wait for it (presence is published in memory first);
 * hydrate_flush() cuts the wait short for stats, the state xattr, every
 * task and unmount (fsync need not: a change records the chunks it builds
 * on itself). A crash forgets at most those 5 s of fetches: they are
 * fetched again.
 */
#define PERSIST_DELAY_NS 5000000000ll

/* Fetch chunks [idx, idx + count) of f with one ranged GET. */
struct job {
	struct hydrate_file *f;
	uint64_t idx;
	uint32_t count;
	struct job *next;
};

#define JOB_SPAN                                                               \
	16 /* adjacent chunks merged into one GET (streamed to disk)           \
	    */

struct persist {
	struct hydrate_file *f;
	uint64_t idx;	 /* UINT64_MAX: only the state (lost) changed */
	int64_t when_ns; /* when it was fetched */
};

/* ---- file table ---- */

static void file_free(struct hydrate_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->key);
	free(f->present);
	free(f->inflight);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	pthread_rwlock_destroy(&f->io);
	free(f);
}

/* Caller holds h->lock. */
static void file_unref_locked(struct hydrate_file *f)
{
	struct hydrate *h = f->h;
	struct hydrate_file **pp;

	if (--f->refs > 0)
		return;
	for (pp = &h->files[f->ino % NBUCKETS]; *pp; pp = &(*pp)->hnext) {
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	}
	file_free(f);
}

/* Caller holds h->lock: the file of ino, not loaded yet. */
static struct hydrate_file *file_new(struct hydrate *h, uint64_t ino)
{
	struct hydrate_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->fd = -1;
	f->pt_id = -1;
	f->h = h;
	f->ino = ino;
	f->kcache = true;
	f->refs = 1;
	f->loading = true;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	pthread_rwlock_init(&f->io, NULL);
	f->hnext = h->files[ino % NBUCKETS];
	h->files[ino % NBUCKETS] = f;
	return f;
}

/*
 * Fill f from the store and open its data file. Only the open that put f
 * in the table runs this, and only once: it may square the data file with
 * the stored size (after a crash between a write and its commit), which
 * would cut off bytes that the handles of a loaded file are writing.
 */
static int file_load(struct hydrate_file *f)
{
	struct hydrate *h = f->h;
	uint64_t ino = f->ino;
	struct meta_inode mi = {0};
	struct meta_txn *txn = NULL;
	struct stat st;
	size_t bmlen;
	int ret;

	ret = meta_txn_begin(h->db, false, &txn);
	if (ret < 0)
		goto out_free;
	ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		goto out_abort;
	if (!S_ISREG(mi.mode)) {
		ret = S_ISDIR(mi.mode) ? -EISDIR : -EINVAL;
		goto out_abort;
	}
	atomic_store(&f->need_txn, meta_txn_id(txn));
	f->size = mi.size;
	f->backing = 0;
	if (mi.s3_key && mi.state != META_NEW)
		f->backing = MIN(mi.s3_size, mi.size);
	f->nchunks = chunk_count(f->backing, h->csize);
	f->lost = mi.state == META_LOST;
	memcpy(f->etag, mi.etag, sizeof(f->etag));
	f->key = mi.s3_key;
	mi.s3_key = NULL;
	bmlen = (size_t)(f->nchunks + 7) / 8 + 1;
	f->present = calloc(1, bmlen);
	f->inflight = calloc(1, bmlen);
	if (!f->present || !f->inflight) {
		ret = -ENOMEM;
		goto out_abort;
	}
	if (f->nchunks > 0 && mi.state != META_RELEASED) {
		ret = meta_chunk_load(txn, ino, f->present, f->nchunks);
		if (ret < 0)
			goto out_abort;
	}
	meta_txn_abort(txn);
	txn = NULL;

	/* First open of this inode, most often a create: its writer will
	 * want a data file, so top the spare ones up. */
	spare_kick(h->spare, ino);
	/* The spare made for a new number is open already. */
	f->fd = spare_take(h->spare, ino, &st);
	if (f->fd < 0) {
		/* An empty file gets its data file with its first byte. */
		f->fd = chunk_open(h->cs, ino, f->size > 0);
		if (f->fd == -ENOENT && f->size == 0) {
			f->fd = -1;
			meta_inode_release(&mi);
			return 0;
		}
		if (f->fd < 0) {
			ret = f->fd;
			f->fd = -1;
			goto out_free;
		}
		if (fstat(f->fd, &st) < 0) {
			ret = -errno;
			goto out_free;
		}
	}
	if ((uint64_t)st.st_size != f->size &&
	    ftruncate(f->fd, (off_t)f->size) < 0) {
		ret = -errno;
		goto out_free;
	}
	/* Start from what the cache's usage counts for this file, not from
	 * the allocation now: ext4 may have added extent blocks at writeback
	 * since, and counting them here would make a release free more than
	 * was ever counted. The next change settles the difference. */
	f->ncached_bytes = mi.cached_bytes;
	meta_inode_release(&mi);
	return 0;

out_abort:
	meta_txn_abort(txn);
out_free:
	meta_inode_release(&mi);
	return ret;
}

struct hydrate_file *hyd_find_locked(struct hydrate *h, uint64_t ino)
{
	for (;;) {
		struct hydrate_file *f = h->files[ino % NBUCKETS];

		while (f && f->ino != ino)
			f = f->hnext;
		if (!f || !f->loading)
			return f;
		pthread_cond_wait(&h->load_cond, &h->lock);
	}
}

int hydrate_open(struct hydrate *h, uint64_t ino, struct hydrate_file **out)
{
	struct hydrate_file *f;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&h->lock);
	f = hyd_find_locked(h, ino);
	if (f) {
		f->refs++;
		pthread_mutex_unlock(&h->lock);
		*out = f;
		return 0;
	}
	/* In the table before it is loaded: the other opens of ino wait
	 * for this one instead of loading a copy of their own. */
	f = file_new(h, ino);
	pthread_mutex_unlock(&h->lock);
	if (!f)
		return -ENOMEM;
	ret = file_load(f);
	pthread_mutex_lock(&h->lock);
	f->loading = false;
	pthread_cond_broadcast(&h->load_cond);
	if (ret < 0)
		file_unref_locked(f); /* waiters look again, and load it */
	pthread_mutex_unlock(&h->lock);
	if (ret < 0)
		return ret;
	*out = f;
	return 0;
}

void hydrate_close(struct hydrate_file *f)
{
	struct hydrate *h;

	if (!f)
		return;
	h = f->h;
	pthread_mutex_lock(&h->lock);
	file_unref_locked(f);
	pthread_mutex_unlock(&h->lock);
}

int hydrate_fd(const struct hydrate_file *f)
{
	int fd;

	pthread_mutex_lock((pthread_mutex_t *)&f->lock);
	fd = f->fd;
	pthread_mutex_unlock((pthread_mutex_t *)&f->lock);
	return fd;
}

/* Caller holds f->io for writing: create the data file on first need. */
int hyd_need_fd(struct hydrate_file *f)
{
	int fd;

	if (f->fd >= 0)
		return 0;
	fd = chunk_open(f->h->cs, f->ino, true);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&f->lock);
	/* The data file is as long as the file (a truncate may have grown
	 * the file before it had one): the kernel reads it directly for
	 * passthrough handles, and reads past its end find nothing. */
	if (f->size > 0 && ftruncate(fd, (off_t)f->size) < 0) {
		int err = -errno;

		pthread_mutex_unlock(&f->lock);
		close(fd);
		return err;
	}
	f->fd = fd;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

uint64_t hydrate_size(const struct hydrate_file *f)
{
	uint64_t s;

	pthread_mutex_lock((pthread_mutex_t *)&f->lock);
	s = f->size;
	pthread_mutex_unlock((pthread_mutex_t *)&f->lock);
	return s;
}

/* ---- fetching ---- */

/* Caller holds f->lock; collects chunk idx into the job list if needed. */
int hyd_want_chunk(struct hydrate_file *f, uint64_t idx, struct job **list)
{
	struct job *j;

	if (is_present(f, idx) || bit_get(f->inflight, idx))
		return 0;
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->f = f;
	j->idx = idx;
	j->count = 1;
	j->next = *list;
	*list = j;
	bit_set(f->inflight, idx);
	f->ninflight++;
	return 0;
}

/* Caller holds f->lock: undo hyd_want_chunk() for jobs never queued. */
void hyd_drop_jobs(struct hydrate_file *f, struct job *list)
{
	while (list) {
		struct job *n = list->next;
		bit_clear(f->inflight, list->idx);
		f->ninflight--;
		free(list);
		list = n;
	}
}

void hyd_queue_jobs(struct hydrate *h, struct job *list)
{
	struct job *rev = NULL, *last = NULL;

	if (!list)
		return;
	/* hyd_want_chunk() prepends; restore ascending order for the queue. */
	last = list;
	while (list) {
		struct job *n = list->next;
		list->next = rev;
		rev = list;
		list = n;
	}
	/* Merge runs of adjacent chunks: fewer, larger requests. */
	for (struct job *j = rev; j; j = j->next) {
		while (j->next && j->next->f == j->f &&
		       j->next->idx == j->idx + j->count &&
		       j->count < JOB_SPAN) {
			struct job *n = j->next;
			j->count++;
			j->next = n->next;
			free(n);
		}
		if (!j->next)
			last = j;
	}
	pthread_mutex_lock(&h->lock);
	for (struct job *j = rev; j; j = j->next)
		j->f->refs++;
	if (h->job_tail)
		h->job_tail->next = rev;
	else
		h->job_head = rev;
	h->job_tail = last;
	pthread_cond_broadcast(&h->job_cond);
	pthread_mutex_unlock(&h->lock);
}

/*
 * Caller holds f->lock. Wait until chunks [first, last] are present; 0, or
 * -EIO when one of them failed (or cannot be fetched: the file is lost).
 * *waited tells whether it had to wait.
 */
static int wait_present(struct hydrate_file *f, uint64_t first, uint64_t last,
			bool *waited)
{
	for (uint64_t i = first; i <= last;) {
		if (is_present(f, i)) {
			i++;
			continue;
		}
		if (!bit_get(f->inflight, i))
			return -EIO; /* its fetch failed, or lost */
		*waited = true;
		pthread_cond_wait(&f->cond, &f->lock);
	}
	return 0;
}

/* Caller holds f->lock. Queue fetches for the missing chunks of
 * [first, last] (and `extra` read-ahead chunks after it). */
static int request_chunks(struct hydrate_file *f, uint64_t first, uint64_t last,
			  uint64_t extra, struct job **jobs)
{
	int ret = 0;

	for (uint64_t i = first; i <= last && ret == 0; i++)
		ret = hyd_want_chunk(f, i, jobs);
	if (ret == 0 && *jobs && f->lost) {
		/* Cached chunks of a lost file still read (they are the old
		 * object's bytes); nothing more is fetched. */
		hyd_drop_jobs(f, *jobs);
		*jobs = NULL;
		return -EIO;
	}
	if (extra == 0 || f->lost)
		return ret;
	/* Read ahead in batches: only when less than half the window is
	 * cached or on its way, and then the whole window, so the requests
	 * merge into large GETs instead of one chunk per reader step. */
	uint64_t end = MIN(last + extra, f->nchunks ? f->nchunks - 1 : 0);
	uint64_t ahead = 0;
	for (uint64_t i = last + 1; i <= end; i++)
		ahead += is_present(f, i) || bit_get(f->inflight, i);
	if (last + 1 > end || ahead * 2 >= extra)
		return ret;
	for (uint64_t i = last + 1; i <= end && ret == 0; i++)
		ret = hyd_want_chunk(f, i, jobs);
	return ret;
}

/* Caller holds f->lock: bytes the jobs will fetch. */
uint64_t hyd_jobs_bytes(const struct hydrate_file *f, const struct job *j)
{
	uint64_t n = 0;

	for (; j; j = j->next)
		for (uint32_t i = 0; i < j->count; i++)
			n += chunk_len(f, f->h->csize, j->idx + i);
	return n;
}

/*
 * Room for a fetch is reserved before it is queued, so the cache never
 * passes its size by more than what is in flight. When no room can be made
 * (everything cached is dirty, pinned or open), the jobs are dropped.
 * Caller holds no lock.
 */
int hyd_reserve_or_drop(struct hydrate_file *f, struct job *jobs,
			uint64_t bytes)
{
	int ret = hyd_reserve(f->h, bytes);

	if (ret < 0) {
		pthread_mutex_lock(&f->lock);
		hyd_drop_jobs(f, jobs);
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
	}
	return ret;
}

/* hydrate_ensure(); *full tells that the fetch found no room in the cache
 * (everything else cached is dirty, pinned or open). */
static int ensure(struct hydrate_file *f, uint64_t off, uint64_t len,
		  bool *full)
{
	struct hydrate *h = f->h;
	struct job *jobs = NULL;
	uint64_t first, last, end, extra = 0, bytes;
	bool waited = false, fetched;
	int ret;

	pthread_mutex_lock(&f->lock);
	if (len == 0 || off >= f->size || off >= f->backing) {
		pthread_mutex_unlock(&f->lock);
		atomic_fetch_add(&h->hits, 1);
		return 0;
	}
	end = MIN(off + len, f->size);
	chunk_span(off, end - off, h->csize, &first, &last);
	/* Read-ahead: grow a window while the reader stays sequential. */
	if (off == f->ra_next && off != 0) {
		if (f->ra_window < hyd_ra_max(h))
			f->ra_window = f->ra_window ? f->ra_window * 2 : 2;
		f->ra_window = MIN(f->ra_window, hyd_ra_max(h));
		extra = f->ra_window;
	} else if (off != f->ra_next) {
		f->ra_window = 0;
	}
	f->ra_next = end;
	ret = request_chunks(f, first, last, extra, &jobs);
	fetched = jobs != NULL;
	bytes = hyd_jobs_bytes(f, jobs);
	pthread_mutex_unlock(&f->lock);
	if (jobs && hyd_reserve_or_drop(f, jobs, bytes) < 0) {
		*full = true;
		return -EIO;
	}
	hyd_queue_jobs(h, jobs);
	if (ret < 0)
		return ret;

	pthread_mutex_lock(&f->lock);
	ret = wait_present(f, first, last, &waited);
	pthread_mutex_unlock(&f->lock);
	if (waited || fetched)
		atomic_fetch_add(&h->misses, 1);
	else
		atomic_fetch_add(&h->hits, 1);
	return ret;
}

int hydrate_ensure(struct hydrate_file *f, uint64_t off, uint64_t len)
{
	bool full = false;

	return ensure(f, off, len, &full);
}

int hydrate_read(struct hydrate_file *f, uint64_t off, size_t len,
		 hydrate_reply_fn reply, void *arg)
{
	struct hydrate *h = f->h;
	size_t want = len;
	uint64_t size;
	int ret;

	/* Once the reply is out, the reader may close and the kernel may
	 * release the handle on another thread: hold our own reference
	 * until we are done with f. */
	pthread_mutex_lock(&h->lock);
	f->refs++;
	pthread_mutex_unlock(&h->lock);
	for (int tries = 0;; tries++) {
		bool full = false;

		len = want;
		pthread_rwlock_rdlock(&f->io);
		pthread_mutex_lock(&f->lock);
		size = f->size;
		f->accessed = true;
		f->kcache = true;
		pthread_mutex_unlock(&f->lock);
		if (off >= size)
			len = 0;
		else if (off + len > size)
			len = (size_t)(size - off);
		ret = ensure(f, off, len, &full);
		if (ret == 0)
			ret = reply(arg, f->fd, off, len);
		pthread_rwlock_unlock(&f->io);
		/* No room, and nothing else could be released: give back
		 * this file's own chunks away from the read (a file larger
		 * than the cache is read through this way), then again. */
		if (!full || tries == 2 ||
		    hyd_trim(f, off, off + len, (uint64_t)len) == 0)
			break;
	}
	hydrate_close(f);
	return ret;
}

static void persist_push(struct hydrate *h, struct hydrate_file *f,
			 uint64_t idx)
{
	pthread_mutex_lock(&h->lock);
	if (h->plen == h->pcap) {
		struct persist *n =
			array_grow(h->plist, &h->pcap, sizeof(*n), 256);
		if (!n) {
			/* Presence is only an optimisation for later mounts:
			 * losing a record just means a refetch. */
			pthread_mutex_unlock(&h->lock);
			return;
		}
		h->plist = n;
	}
	f->refs++;
	atomic_fetch_add(&f->unpersisted, 1);
	h->plist[h->plen].f = f;
	h->plist[h->plen].idx = idx;
	h->plist[h->plen].when_ns = time_now_ns();
	h->plen++;
	pthread_cond_signal(&h->persist_cond);
	pthread_mutex_unlock(&h->lock);
}

static void run_job(struct hydrate *h, struct job *j)
{
	struct hydrate_file *f = j->f;
	uint64_t off = j->idx * h->csize;
	size_t want, got = 0;
	int ret;

	char etag[80], *key;

	pthread_mutex_lock(&f->lock);
	want = 0;
	for (uint32_t i = 0; i < j->count; i++)
		want += (size_t)chunk_len(f, h->csize, j->idx + i);
	key = f->key ? strdup(f->key) : NULL;
	memcpy(etag, f->etag, sizeof(etag));
	pthread_mutex_unlock(&f->lock);

	if (want && !key)
		ret = -ENOMEM;
	else
		ret = want ? s3_get_range_fd(h->s3, key, etag[0] ? etag : NULL,
					     off, want, f->fd, off, &got)
			   : 0;
	free(key);
	if (ret == 0 && got != want)
		ret = -ESTALE; /* shorter than its ETag promised */
	if (ret == -ENOENT)
		ret = -ESTALE; /* the object vanished */
	/* Queue the presence record before readers can see the chunk, so
	 * hydrate_flush() after a read always covers it. */
	if (ret == 0) {
		atomic_fetch_add(&h->bytes_fetched, got);
		for (uint32_t i = 0; i < j->count; i++)
			persist_push(h, f, j->idx + i);
	}

	pthread_mutex_lock(&f->lock);
	for (uint32_t i = 0; i < j->count; i++) {
		bit_clear(f->inflight, j->idx + i);
		f->ninflight--;
		if (ret == 0)
			bit_set(f->present, j->idx + i);
	}
	if (ret == 0) {
		f->ncached_bytes += got; /* reserved when queued */
	} else {
		if (ret == -ESTALE && !f->lost) {
			f->lost = 1;
			log_error("hydrate: object %s changed under inode "
				  "%" PRIu64
				  " (ETag %s no longer matches): file is lost",
				  f->key, f->ino, f->etag);
		} else if (ret != -ESTALE) {
			log_warn("hydrate: fetching %s bytes %" PRIu64
				 "+%zu failed: %s",
				 f->key, off, want, strerror(-ret));
		}
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);

	if (ret < 0) {
		atomic_fetch_sub(&h->used, (int64_t)want); /* the reservation */
		atomic_fetch_add(&h->fetch_errors, 1);
		if (ret == -ESTALE)
			persist_push(h, f, UINT64_MAX);
	}
}

static void *worker_main(void *arg)
{
	struct hydrate *h = arg;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		struct job *j;

		while (!h->job_head && !h->stopping)
			pthread_cond_wait(&h->job_cond, &h->lock);
		if (!h->job_head)
			break; /* stopping and drained */
		j = h->job_head;
		h->job_head = j->next;
		if (!h->job_head)
			h->job_tail = NULL;
		h->running_jobs++;
		pthread_mutex_unlock(&h->lock);

		run_job(h, j);

		pthread_mutex_lock(&h->lock);
		h->running_jobs--;
		file_unref_locked(j->f);
		free(j);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* ---- persisting presence ---- */

static int cmp_persist(const void *a, const void *b)
{
	const struct persist *x = a, *y = b;

	if (x->f != y->f)
		return (uintptr_t)x->f < (uintptr_t)y->f ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

struct change {
	uint64_t ino;
	int old_state, new_state;
};

/* Record one file's entries [b, e) of the sorted batch in txn. */
static int persist_file(struct meta_txn *txn, struct persist *b,
			struct persist *e, struct change *ch)
{
	struct hydrate_file *f = b->f;
	struct meta_inode mi = {0};
	uint64_t cached;
	int64_t last_fetch = 0;
	bool got_chunk = false;
	int lost, ret;

	ch->ino = 0;
	ret = meta_inode_get(txn, f->ino, &mi);
	if (ret == -ENOENT)
		return 0; /* deleted meanwhile */
	if (ret < 0)
		return ret;
	if (strcmp(mi.etag, f->etag) != 0 || mi.state == META_NEW) {
		/* Re-imported or changed locally since: not our data. */
		meta_inode_release(&mi);
		return 0;
	}
	pthread_mutex_lock(&f->lock);
	cached = f->ncached_bytes;
	lost = f->lost;
	for (struct persist *p = b; p < e; p++) {
		last_fetch = MAX(last_fetch, p->when_ns);
		if (p->idx == UINT64_MAX || p->idx >= f->nchunks)
			continue;
		meta_chunk_set(txn, f->ino, p->idx);
		got_chunk = true;
		/* Pushed just before its bit is published. */
		if (!bit_get(f->present, p->idx))
			cached += chunk_len(f, f->h->csize, p->idx);
	}
	pthread_mutex_unlock(&f->lock);

	/* A write into these chunks now builds on their record. */
	hyd_need_txn(f, meta_txn_id(txn));
	ch->ino = f->ino;
	ch->old_state = (int)mi.state;
	if (lost && mi.state != META_DIRTY)
		mi.state = META_LOST;
	else if (mi.state == META_RELEASED && got_chunk) {
		mi.state = META_ARCHIVED;
		/* When it was read, not when the batch is recorded. */
		mi.last_access_ns = last_fetch;
		meta_lru_put(txn, mi.last_access_ns, f->ino);
	}
	ch->new_state = (int)mi.state;
	mi.cached_bytes = cached;
	ret = meta_inode_put(txn, &mi);
	meta_inode_release(&mi);
	return ret;
}

/* true when the batch's records are committed */
static bool persist_batch(struct hydrate *h, struct persist *batch, size_t n)
{
	struct meta_txn *txn = NULL;
	struct change *changes;
	size_t nch = 0;
	int ret;

	qsort(batch, n, sizeof(*batch), cmp_persist);
	changes = calloc(n, sizeof(*changes));
	if (!changes)
		return false;
	/* Data first: presence must never reach LMDB before the bytes. */
	for (size_t i = 0; i < n; i++)
		if (i == 0 || batch[i].f != batch[i - 1].f)
			if (fdatasync(batch[i].f->fd) < 0)
				log_warn("hydrate: fdatasync: %s",
					 strerror(errno));
	ret = meta_txn_begin(h->db, true, &txn);
	for (size_t i = 0; ret == 0 && i < n;) {
		size_t j = i;
		while (j < n && batch[j].f == batch[i].f)
			j++;
		ret = persist_file(txn, &batch[i], &batch[j], &changes[nch]);
		if (changes[nch].ino)
			nch++;
		i = j;
	}
	if (ret == 0)
		ret = meta_txn_commit(txn);
	else
		meta_txn_abort(txn);
	if (ret < 0) {
		log_warn("hydrate: recording fetched chunks failed: %s",
			 strerror(-ret));
	} else if (h->cfg.on_change) {
		for (size_t i = 0; i < nch; i++)
			if (changes[i].old_state != changes[i].new_state)
				h->cfg.on_change(h->cfg.cb_arg, changes[i].ino,
						 changes[i].old_state,
						 changes[i].new_state);
	}
	free(changes);
	return ret == 0;
}

static void *persister_main(void *arg)
{
	struct hydrate *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		struct persist *batch;
		size_t n;
		bool done;

		while (h->plen == 0 && !h->stopping)
			pthread_cond_wait(&h->persist_cond, &h->lock);
		if (h->plen > 0 && !h->stopping && !h->flush_wanted) {
			/* Let a batch gather until the deadline (more pushes
			 * signal meanwhile): one fdatasync per file and one
			 * transaction for many chunks. A flush or stopping
			 * cuts it short. */
			struct timespec ts =
				time_deadline(CLOCK_REALTIME, PERSIST_DELAY_NS);

			while (!h->stopping && !h->flush_wanted &&
			       pthread_cond_timedwait(&h->persist_cond,
						      &h->lock,
						      &ts) != ETIMEDOUT)
				;
		}
		h->flush_wanted = false;
		if (h->plen == 0 && h->stopping && h->running_jobs == 0 &&
		    !h->job_head)
			break;
		if (h->plen == 0) {
			/* Stopping but fetches still finishing. */
			pthread_cond_wait(&h->persist_cond, &h->lock);
			continue;
		}
		batch = h->plist;
		n = h->plen;
		h->plist = NULL;
		h->plen = h->pcap = 0;
		h->persisting++;
		pthread_mutex_unlock(&h->lock);

		done = persist_batch(h, batch, n);

		pthread_mutex_lock(&h->lock);
		for (size_t i = 0; i < n; i++) {
			if (done)
				atomic_fetch_sub(&batch[i].f->unpersisted, 1);
			file_unref_locked(batch[i].f);
		}
		free(batch);
		h->persisting--;
		pthread_cond_broadcast(&h->idle_cond);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int hydrate_flush(struct hydrate *h)
{
	pthread_mutex_lock(&h->lock);
	while (h->plen > 0 || h->persisting > 0) {
		h->flush_wanted = true;
		pthread_cond_signal(&h->persist_cond);
		pthread_cond_wait(&h->idle_cond, &h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* ---- setup and teardown ---- */

int hydrate_new(struct meta_db *db, struct chunk_store *cs,
		struct s3_client *s3, const struct hydrate_config *cfg,
		struct hydrate **out)
{
	struct hydrate *h;
	int ret;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->db = db;
	h->cs = cs;
	h->s3 = s3;
	h->csize = chunk_size(cs);
	if (cfg)
		h->cfg = *cfg;
	if (h->cfg.fetch_threads <= 0)
		h->cfg.fetch_threads = 16;
	if (h->cfg.readahead_max == 0)
		h->cfg.readahead_max = 128;
	atomic_store(&h->used, (int64_t)h->cfg.initial_used);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->job_cond, NULL);
	pthread_cond_init(&h->persist_cond, NULL);
	pthread_cond_init(&h->idle_cond, NULL);
	pthread_cond_init(&h->load_cond, NULL);

	h->workers = calloc((size_t)h->cfg.fetch_threads, sizeof(pthread_t));
	if (!h->workers) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = spare_new(db, cs, h->cfg.spare_files, &h->spare);
	if (ret < 0)
		goto out_free;
	ret = -pthread_create(&h->persister, NULL, persister_main, h);
	if (ret < 0)
		goto out_free;
	h->persister_started = true;
	for (int i = 0; i < h->cfg.fetch_threads; i++) {
		ret = -pthread_create(&h->workers[i], NULL, worker_main, h);
		if (ret < 0)
			goto out_free;
		h->nworkers++;
	}
	*out = h;
	return 0;

out_free:
	hydrate_free(h);
	return ret;
}

void hydrate_free(struct hydrate *h)
{
	struct job *j;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	/* Queued read-ahead nobody waits for any more: drop it. */
	while ((j = h->job_head) != NULL) {
		h->job_head = j->next;
		pthread_mutex_lock(&j->f->lock);
		for (uint32_t i = 0; i < j->count; i++)
			atomic_fetch_sub(
				&h->used,
				(int64_t)chunk_len(j->f, h->csize, j->idx + i));
		for (uint32_t i = 0; i < j->count; i++) {
			bit_clear(j->f->inflight, j->idx + i);
			j->f->ninflight--;
		}
		pthread_cond_broadcast(&j->f->cond);
		pthread_mutex_unlock(&j->f->lock);
		file_unref_locked(j->f);
		free(j);
	}
	h->job_tail = NULL;
	pthread_cond_broadcast(&h->job_cond);
	pthread_cond_broadcast(&h->persist_cond);
	pthread_mutex_unlock(&h->lock);
	for (int i = 0; i < h->nworkers; i++)
		pthread_join(h->workers[i], NULL);
	pthread_mutex_lock(&h->lock);
	pthread_cond_broadcast(&h->persist_cond);
	pthread_mutex_unlock(&h->lock);
	if (h->persister_started)
		pthread_join(h->persister, NULL);
	spare_free(h->spare);
	/* Handles the kernel never released (a lazy unmount): */
	for (size_t i = 0; i < NBUCKETS; i++) {
		while (h->files[i]) {
			struct hydrate_file *f = h->files[i];
			h->files[i] = f->hnext;
			log_debug("hydrate: inode %" PRIu64
				  " still open at shutdown",
				  f->ino);
			file_free(f);
		}
	}
	free(h->plist);
	free(h->workers);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->job_cond);
	pthread_cond_destroy(&h->persist_cond);
	pthread_cond_destroy(&h->idle_cond);
	pthread_cond_destroy(&h->load_cond);
	free(h);
}

void hydrate_get_stats(struct hydrate *h, struct hydrate_stats *out)
{
	out->hits = atomic_load(&h->hits);
	out->misses = atomic_load(&h->misses);
	out->bytes_fetched = atomic_load(&h->bytes_fetched);
	out->fetch_errors = atomic_load(&h->fetch_errors);
	out->passthrough_opens = atomic_load(&h->passthrough_opens);
	out->open_handles = (uint64_t)MAX(atomic_load(&h->open_handles), 0);
}
