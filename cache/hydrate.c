// SPDX-License-Identifier: MIT
/*
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
 * zero. So a job never outlives its file.
 */
#include "cache/hydrate.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <inttypes.h>
#include <stdio.h>
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

#define NBUCKETS	 1024
#define PERSIST_DELAY_NS 200000000 /* batch fetched chunks for 0.2 s */

struct hydrate_file {
	struct hydrate *h;
	uint64_t ino;
	unsigned refs;		    /* protected by h->lock */
	struct hydrate_file *hnext; /* protected by h->lock */

	pthread_rwlock_t io; /* read: hydrate_read; write: changes */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast when a chunk lands or fails */
	int fd;		     /* read-only after open */
	char *key;	     /* protected by lock (export renames) */
	char etag[80];	     /* protected by lock */
	uint64_t size;	     /* protected by lock */
	/* Leading bytes that come from the S3 object (the rest is local);
	 * only shrinks while open. Protected by lock. */
	uint64_t backing;
	uint64_t nchunks;	/* protected by lock: chunk_count(backing) */
	uint8_t *present;	/* protected by lock: nchunks bits */
	uint8_t *inflight;	/* protected by lock: nchunks bits */
	unsigned ninflight;	/* protected by lock */
	uint64_t ncached_bytes; /* protected by lock */
	int lost;	   /* protected by lock: sticky, the object changed */
	unsigned nhandles; /* protected by lock: open file handles */
	bool accessed; /* protected by lock: read since the last LRU update */
	/* protected by lock: the kernel may cache pages of this file (it was
	 * read since it was created, or it existed before this open) */
	bool kcache;
	uint64_t ra_next; /* protected by lock: where a sequential read goes */
	uint32_t ra_window; /* protected by lock */
};

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
	uint64_t idx; /* UINT64_MAX: only the state (lost) changed */
};

struct hydrate {
	struct meta_db *db;
	struct chunk_store *cs;
	struct s3_client *s3;
	uint32_t csize;
	struct hydrate_config cfg;

	pthread_mutex_t lock;
	pthread_cond_t job_cond;     /* jobs queued or stopping */
	pthread_cond_t persist_cond; /* persist entries queued or stopping */
	pthread_cond_t idle_cond;    /* a persist batch finished */
	struct hydrate_file *files[NBUCKETS]; /* protected by lock */
	struct job *job_head, *job_tail;      /* protected by lock */
	struct persist *plist;		      /* protected by lock */
	size_t plen, pcap;		      /* protected by lock */
	unsigned persisting;   /* protected by lock: batches being written */
	unsigned running_jobs; /* protected by lock */
	bool flush_wanted;     /* protected by lock: persist now */
	bool stopping;	       /* protected by lock */

	pthread_t *workers;
	int nworkers;
	pthread_t persister;
	bool persister_started;
	struct spare *spare; /* empty data files made ahead; may be NULL */

	_Atomic int64_t used;	     /* bytes cached, all inodes */
	hydrate_space_fn need_space; /* set once before the mount goes live */
	void *space_arg;
	_Atomic uint64_t hits, misses, bytes_fetched, fetch_errors;
	_Atomic int64_t enospc_logged; /* mono ns of the last ENOSPC log */
};

static inline bool bit_get(const uint8_t *b, uint64_t i)
{
	return b[i >> 3] & (1u << (i & 7));
}

static inline void bit_set(uint8_t *b, uint64_t i)
{
	b[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static inline void bit_clear(uint8_t *b, uint64_t i)
{
	b[i >> 3] &= (uint8_t) ~(1u << (i & 7));
}

/* Chunks past the backed extent hold local bytes only: always present. */
static inline bool is_present(const struct hydrate_file *f, uint64_t i)
{
	return i >= f->nchunks || bit_get(f->present, i);
}

/* Bytes of chunk idx that come from S3. */
static uint64_t chunk_len(const struct hydrate_file *f, uint32_t csize,
			  uint64_t idx)
{
	uint64_t off = idx * csize;

	return off >= f->backing ? 0 : MIN((uint64_t)csize, f->backing - off);
}

/* Bytes held locally: what the data file allocates (holes from sparse
 * writes and truncation cost nothing). Caller holds f->lock. */
static uint64_t count_cached(const struct hydrate_file *f, uint32_t csize)
{
	struct stat st;

	(void)csize;
	if (f->fd < 0 || fstat(f->fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

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

static int file_load(struct hydrate *h, uint64_t ino, struct hydrate_file **out)
{
	struct meta_inode mi = {0};
	struct meta_txn *txn = NULL;
	struct hydrate_file *f;
	struct stat st;
	size_t bmlen;
	int ret;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	f->h = h;
	f->ino = ino;
	f->kcache = true;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	pthread_rwlock_init(&f->io, NULL);

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
	spare_kick(h->spare);
	/* An empty file gets its data file with its first byte. */
	f->fd = chunk_open(h->cs, ino, f->size > 0);
	if (f->fd == -ENOENT && f->size == 0) {
		f->fd = -1;
		meta_inode_release(&mi);
		*out = f;
		return 0;
	}
	if (f->fd < 0) {
		ret = f->fd;
		goto out_free;
	}
	if (fstat(f->fd, &st) < 0) {
		ret = -errno;
		goto out_free;
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
	*out = f;
	return 0;

out_abort:
	meta_txn_abort(txn);
out_free:
	meta_inode_release(&mi);
	file_free(f);
	return ret;
}

int hydrate_open(struct hydrate *h, uint64_t ino, struct hydrate_file **out)
{
	struct hydrate_file *f, *nf = NULL;
	int ret;

	for (;;) {
		pthread_mutex_lock(&h->lock);
		for (f = h->files[ino % NBUCKETS]; f; f = f->hnext)
			if (f->ino == ino)
				break;
		if (f) {
			f->refs++;
			pthread_mutex_unlock(&h->lock);
			if (nf)
				file_free(nf);
			*out = f;
			return 0;
		}
		if (nf) {
			nf->refs = 1;
			nf->hnext = h->files[ino % NBUCKETS];
			h->files[ino % NBUCKETS] = nf;
			pthread_mutex_unlock(&h->lock);
			*out = nf;
			return 0;
		}
		pthread_mutex_unlock(&h->lock);
		/* Load outside the lock; re-check the table afterwards. */
		ret = file_load(h, ino, &nf);
		if (ret < 0)
			return ret;
	}
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
static int need_fd(struct hydrate_file *f)
{
	int fd;

	if (f->fd >= 0)
		return 0;
	fd = chunk_open(f->h->cs, f->ino, true);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&f->lock);
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
static int want_chunk(struct hydrate_file *f, uint64_t idx, struct job **list)
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

/* Caller holds f->lock: undo want_chunk() for jobs never queued. */
static void drop_jobs(struct hydrate_file *f, struct job *list)
{
	while (list) {
		struct job *n = list->next;
		bit_clear(f->inflight, list->idx);
		f->ninflight--;
		free(list);
		list = n;
	}
}

static void queue_jobs(struct hydrate *h, struct job *list)
{
	struct job *rev = NULL, *last = NULL;

	if (!list)
		return;
	/* want_chunk() prepends; restore ascending order for the queue. */
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
		ret = want_chunk(f, i, jobs);
	if (ret == 0 && *jobs && f->lost) {
		/* Cached chunks of a lost file still read (they are the old
		 * object's bytes); nothing more is fetched. */
		drop_jobs(f, *jobs);
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
		ret = want_chunk(f, i, jobs);
	return ret;
}

static int reserve(struct hydrate *h, uint64_t grow);

/* Caller holds f->lock: bytes the jobs will fetch. */
static uint64_t jobs_bytes(const struct hydrate_file *f, const struct job *j)
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
static int reserve_or_drop(struct hydrate_file *f, struct job *jobs,
			   uint64_t bytes)
{
	int ret = reserve(f->h, bytes);

	if (ret < 0) {
		pthread_mutex_lock(&f->lock);
		drop_jobs(f, jobs);
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
	}
	return ret;
}

int hydrate_ensure(struct hydrate_file *f, uint64_t off, uint64_t len)
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
		if (f->ra_window < h->cfg.readahead_max)
			f->ra_window = f->ra_window ? f->ra_window * 2 : 2;
		f->ra_window = MIN(f->ra_window, h->cfg.readahead_max);
		extra = f->ra_window;
	} else if (off != f->ra_next) {
		f->ra_window = 0;
	}
	f->ra_next = end;
	ret = request_chunks(f, first, last, extra, &jobs);
	fetched = jobs != NULL;
	bytes = jobs_bytes(f, jobs);
	pthread_mutex_unlock(&f->lock);
	if (jobs && reserve_or_drop(f, jobs, bytes) < 0)
		return -EIO;
	queue_jobs(h, jobs);
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

int hydrate_read(struct hydrate_file *f, uint64_t off, size_t len,
		 hydrate_reply_fn reply, void *arg)
{
	struct hydrate *h = f->h;
	uint64_t size;
	int ret;

	/* Once the reply is out, the reader may close and the kernel may
	 * release the handle on another thread: hold our own reference
	 * until we are done with f. */
	pthread_mutex_lock(&h->lock);
	f->refs++;
	pthread_mutex_unlock(&h->lock);
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
	ret = hydrate_ensure(f, off, len);
	if (ret == 0)
		ret = reply(arg, f->fd, off, len);
	pthread_rwlock_unlock(&f->io);
	hydrate_close(f);
	return ret;
}

static void persist_push(struct hydrate *h, struct hydrate_file *f,
			 uint64_t idx)
{
	pthread_mutex_lock(&h->lock);
	if (h->plen == h->pcap) {
		size_t ncap = h->pcap ? h->pcap * 2 : 256;
		struct persist *n = realloc(h->plist, ncap * sizeof(*n));
		if (!n) {
			/* Presence is only an optimisation for later mounts:
			 * losing a record just means a refetch. */
			pthread_mutex_unlock(&h->lock);
			return;
		}
		h->plist = n;
		h->pcap = ncap;
	}
	f->refs++;
	h->plist[h->plen].f = f;
	h->plist[h->plen].idx = idx;
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
		if (p->idx == UINT64_MAX || p->idx >= f->nchunks)
			continue;
		meta_chunk_set(txn, f->ino, p->idx);
		got_chunk = true;
		/* Pushed just before its bit is published. */
		if (!bit_get(f->present, p->idx))
			cached += chunk_len(f, f->h->csize, p->idx);
	}
	pthread_mutex_unlock(&f->lock);

	ch->ino = f->ino;
	ch->old_state = (int)mi.state;
	if (lost && mi.state != META_DIRTY)
		mi.state = META_LOST;
	else if (mi.state == META_RELEASED && got_chunk) {
		mi.state = META_ARCHIVED;
		mi.last_access_ns = time_now_ns();
		meta_lru_put(txn, mi.last_access_ns, f->ino);
	}
	ch->new_state = (int)mi.state;
	mi.cached_bytes = cached;
	ret = meta_inode_put(txn, &mi);
	meta_inode_release(&mi);
	return ret;
}

static void persist_batch(struct hydrate *h, struct persist *batch, size_t n)
{
	struct meta_txn *txn = NULL;
	struct change *changes;
	size_t nch = 0;
	int ret;

	qsort(batch, n, sizeof(*batch), cmp_persist);
	changes = calloc(n, sizeof(*changes));
	if (!changes)
		return;
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
}

static void *persister_main(void *arg)
{
	struct hydrate *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		struct persist *batch;
		size_t n;

		while (h->plen == 0 && !h->stopping)
			pthread_cond_wait(&h->persist_cond, &h->lock);
		if (h->plen > 0 && !h->stopping && !h->flush_wanted) {
			/* Let a batch gather: one fdatasync per file and one
			 * transaction for many chunks. A flush cuts it short.
			 */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += PERSIST_DELAY_NS;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&h->persist_cond, &h->lock, &ts);
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

		persist_batch(h, batch, n);

		pthread_mutex_lock(&h->lock);
		for (size_t i = 0; i < n; i++)
			file_unref_locked(batch[i].f);
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

/* ---- changes ---- */

static void note_enospc(struct hydrate *h, uint64_t want)
{
	int64_t now = time_mono_ns(), last = atomic_load(&h->enospc_logged);
	char a[32], b[32];

	if (now - last < 5000000000ll ||
	    !atomic_compare_exchange_strong(&h->enospc_logged, &last, now))
		return;
	log_warn("cache full: %s more would exceed the cache size of %s;"
		 " writes fail with ENOSPC until data is exported and"
		 " released",
		 format_size(want, a, sizeof(a)),
		 format_size(h->cfg.capacity, b, sizeof(b)));
}

/*
 * Reserve `grow` bytes of cache. Over capacity, ask for space (the eviction
 * lane releases least recently used archived data) and try again; -ENOSPC
 * only when nothing could be freed. Caller holds no f->lock.
 */
static int reserve(struct hydrate *h, uint64_t grow)
{
	for (;;) {
		int64_t used;

		if (grow == 0)
			return 0;
		used = atomic_fetch_add(&h->used, (int64_t)grow);
		if (!h->cfg.capacity ||
		    (uint64_t)used + grow <= h->cfg.capacity)
			return 0;
		atomic_fetch_sub(&h->used, (int64_t)grow);
		if (!h->need_space || h->need_space(h->space_arg, grow) < 0) {
			note_enospc(h, grow);
			return -ENOSPC;
		}
	}
}

void hydrate_set_space_cb(struct hydrate *h, hydrate_space_fn fn, void *arg)
{
	h->need_space = fn;
	h->space_arg = arg;
}

struct change_rec {
	uint64_t *set; /* chunk indexes that became present */
	size_t nset;
	bool size_changed;
	bool times;	     /* update mtime/ctime */
	bool kill_suidgid;   /* HYDRATE_KILL_SUIDGID */
	bool mode_changed;   /* out: set-id bits cleared */
	uint64_t clear_from; /* UINT64_MAX: no chunk records to drop */
};

/* Record a change of f in LMDB: size, backing, times, chunks, state. */
static int commit_change(struct hydrate_file *f, struct change_rec *c)
{
	struct hydrate *h = f->h;
	struct meta_inode mi = {0};
	struct meta_txn *txn;
	int old_state, ret;

	ret = meta_txn_begin(h->db, true, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, f->ino, &mi);
	if (ret < 0) {
		meta_txn_abort(txn);
		return ret;
	}
	pthread_mutex_lock(&f->lock);
	mi.size = f->size;
	if (mi.s3_key)
		mi.s3_size = f->backing;
	mi.cached_bytes = f->ncached_bytes;
	pthread_mutex_unlock(&f->lock);
	if (c->times) {
		mi.mtime_ns = mi.ctime_ns = time_now_ns();
	}
	if (c->kill_suidgid) {
		/* As the kernel does for a write without CAP_FSETID. */
		uint32_t kill = S_ISUID | (mi.mode & S_IXGRP ? S_ISGID : 0);
		c->mode_changed = (mi.mode & kill) != 0;
		mi.mode &= ~kill;
	}
	mi.generation++;
	mi.flags |= META_F_DATA_CHANGED;
	old_state = (int)mi.state;
	if (mi.state != META_NEW)
		mi.state = META_DIRTY;
	for (size_t i = 0; i < c->nset; i++)
		meta_chunk_set(txn, f->ino, c->set[i]);
	if (c->clear_from != UINT64_MAX)
		meta_chunk_clear(txn, f->ino, c->clear_from);
	meta_inode_put(txn, &mi);
	meta_dirty_add(txn, f->ino);
	meta_inode_release(&mi);
	ret = meta_txn_commit(txn);
	if (ret == 0 && old_state != META_DIRTY && old_state != META_NEW &&
	    h->cfg.on_change)
		h->cfg.on_change(h->cfg.cb_arg, f->ino, old_state, META_DIRTY);
	return ret;
}

/* Caller holds f->lock: does [off, end) cover backed chunk i only partly? */
static bool partial(const struct hydrate_file *f, uint64_t i, uint64_t off,
		    uint64_t end)
{
	uint64_t cs = i * f->h->csize;
	uint64_t ce = cs + chunk_len(f, f->h->csize, i);

	return off > cs || end < ce;
}

/* Caller holds f->lock: is a chunk of [first, last] being fetched? */
static bool any_inflight(const struct hydrate_file *f, uint64_t first,
			 uint64_t last)
{
	for (uint64_t i = first; i <= last; i++)
		if (bit_get(f->inflight, i))
			return true;
	return false;
}

/*
 * Caller holds f->io for writing. Make the backed chunks that
 * [off, off+len) only partly covers present (read-modify-write), wait out
 * fetches of chunks it covers whole, and return the covered, absent chunks
 * in *set (they become present once the change is on disk). -EIO when a
 * needed fetch failed or the file is lost.
 */
static int prepare_range(struct hydrate_file *f, uint64_t off, uint64_t len,
			 uint64_t **set, size_t *nset)
{
	struct hydrate *h = f->h;
	uint64_t first, last, end = off + len, bytes;
	int ret = 0;

	*set = NULL;
	*nset = 0;
	chunk_span(off, len, h->csize, &first, &last);
	pthread_mutex_lock(&f->lock);
	if (first >= f->nchunks)
		goto out_unlock; /* all of it past the backed extent */
	last = MIN(last, f->nchunks - 1);
	for (;;) {
		struct job *jobs = NULL;

		for (uint64_t i = first; i <= last && ret == 0; i++)
			if (!bit_get(f->present, i) && partial(f, i, off, end))
				ret = want_chunk(f, i, &jobs);
		if (ret == 0 && jobs && f->lost) {
			drop_jobs(f, jobs);
			ret = -EIO;
		}
		if (ret < 0 || (!jobs && !any_inflight(f, first, last)))
			break;
		bytes = jobs_bytes(f, jobs);
		pthread_mutex_unlock(&f->lock);
		if (jobs && reserve_or_drop(f, jobs, bytes) < 0) {
			pthread_mutex_lock(&f->lock);
			ret = -ENOSPC;
			break;
		}
		queue_jobs(h, jobs);
		pthread_mutex_lock(&f->lock);
		while (any_inflight(f, first, last))
			pthread_cond_wait(&f->cond, &f->lock);
		for (uint64_t i = first; i <= last && ret == 0; i++)
			if (!bit_get(f->present, i) && partial(f, i, off, end))
				ret = -EIO; /* its fetch failed */
		if (ret < 0)
			break;
	}
	if (ret == 0) {
		*set = calloc(last - first + 1, sizeof(**set));
		if (!*set)
			ret = -ENOMEM;
		for (uint64_t i = first; ret == 0 && i <= last; i++)
			if (!bit_get(f->present, i))
				(*set)[(*nset)++] = i;
	}
out_unlock:
	pthread_mutex_unlock(&f->lock);
	return ret;
}

/* Caller holds f->lock: mark chunks present (or absent again). */
static void mark_chunks(struct hydrate_file *f, const uint64_t *set,
			size_t nset, bool present)
{
	for (size_t i = 0; i < nset; i++) {
		if (present)
			bit_set(f->present, set[i]);
		else
			bit_clear(f->present, set[i]);
	}
}

enum change_kind { CH_WRITE, CH_PUNCH, CH_ZERO, CH_ALLOC };

static int apply(struct hydrate_file *f, enum change_kind kind, int mode,
		 const void *buf, uint64_t off, uint64_t len)
{
	switch (kind) {
	case CH_WRITE:
		return pwrite_all(f->fd, buf, (size_t)len, (int64_t)off);
	case CH_PUNCH:
	case CH_ZERO:
	case CH_ALLOC:
		if (fallocate(f->fd, mode, (off_t)off, (off_t)len) < 0)
			return -errno;
		return 0;
	}
	return -EINVAL;
}

static int change_range(struct hydrate_file *f, enum change_kind kind, int mode,
			const void *buf, uint64_t off, uint64_t len,
			bool keep_size, unsigned *flags)
{
	struct hydrate *h = f->h;
	struct change_rec c = {
		.clear_from = UINT64_MAX,
		.times = true,
		.kill_suidgid = flags && (*flags & HYDRATE_KILL_SUIDGID),
	};
	uint64_t grow, old_size, new_size, now_cached;
	int ret;

	pthread_rwlock_wrlock(&f->io);
	/* Allocation does not change content: no fetch, no presence. */
	if (kind != CH_ALLOC) {
		ret = prepare_range(f, off, len, &c.set, &c.nset);
		if (ret < 0)
			goto out_unlock;
	}
	pthread_mutex_lock(&f->lock);
	old_size = f->size;
	new_size = keep_size ? old_size : MAX(old_size, off + len);
	/* An upper bound of what the change can allocate; settled against
	 * the data file's real allocation once it is done. */
	grow = kind == CH_WRITE || kind == CH_ALLOC ? len : 0;
	pthread_mutex_unlock(&f->lock);
	/* May wait for the eviction thread: no f->lock held (f->io keeps
	 * other readers and writers of this file out meanwhile). */
	ret = reserve(h, grow);
	if (ret < 0)
		goto out_unlock;
	pthread_mutex_lock(&f->lock);
	mark_chunks(f, c.set, c.nset, true);
	pthread_mutex_unlock(&f->lock);

	ret = need_fd(f);
	if (ret == 0)
		ret = apply(f, kind, mode, buf, off, len);
	pthread_mutex_lock(&f->lock);
	if (ret < 0) {
		mark_chunks(f, c.set, c.nset, false);
		atomic_fetch_sub(&h->used, (int64_t)grow);
		pthread_mutex_unlock(&f->lock);
		if (ret == -ENOSPC || ret == -EDQUOT)
			note_enospc(h, grow);
		goto out_unlock;
	}
	f->size = new_size;
	now_cached = count_cached(f, h->csize);
	atomic_fetch_add(&h->used, (int64_t)now_cached -
					   (int64_t)f->ncached_bytes -
					   (int64_t)grow);
	f->ncached_bytes = now_cached;
	pthread_mutex_unlock(&f->lock);
	c.size_changed = new_size != old_size;
	ret = commit_change(f, &c);
	if (ret == 0 && flags) {
		if (c.mode_changed)
			*flags |= HYDRATE_MODE_CHANGED;
		pthread_mutex_lock(&f->lock);
		if (f->kcache)
			*flags |= HYDRATE_MAY_BE_CACHED;
		pthread_mutex_unlock(&f->lock);
	}

out_unlock:
	pthread_rwlock_unlock(&f->io);
	free(c.set);
	return ret;
}

int hydrate_write(struct hydrate_file *f, const void *buf, size_t len,
		  uint64_t off, unsigned *flags)
{
	if (len == 0)
		return 0;
	return change_range(f, CH_WRITE, 0, buf, off, len, false, flags);
}

void hydrate_note_created(struct hydrate_file *f)
{
	pthread_mutex_lock(&f->lock);
	/* Unless someone found the new name first and read it already. */
	if (f->nhandles == 0 && !f->accessed)
		f->kcache = false;
	pthread_mutex_unlock(&f->lock);
}

int hydrate_fallocate(struct hydrate_file *f, int mode, uint64_t off,
		      uint64_t len)
{
	bool keep = mode & FALLOC_FL_KEEP_SIZE;

	if (len == 0)
		return -EINVAL;
	switch (mode & ~FALLOC_FL_KEEP_SIZE) {
	case 0:
		return change_range(f, CH_ALLOC, mode, NULL, off, len, keep,
				    NULL);
	case FALLOC_FL_PUNCH_HOLE:
		if (!keep)
			return -EOPNOTSUPP;
		return change_range(f, CH_PUNCH, mode, NULL, off, len, true,
				    NULL);
	case FALLOC_FL_ZERO_RANGE:
		return change_range(f, CH_ZERO, mode, NULL, off, len, keep,
				    NULL);
	default:
		return -EOPNOTSUPP;
	}
}

int hydrate_truncate(struct hydrate_file *f, uint64_t size)
{
	struct hydrate *h = f->h;
	struct change_rec c = {.clear_from = UINT64_MAX};
	uint64_t old_cached, new_cached;
	int64_t delta;
	int ret = 0;

	pthread_rwlock_wrlock(&f->io);
	pthread_mutex_lock(&f->lock);
	while (f->ninflight > 0)
		pthread_cond_wait(&f->cond, &f->lock);
	c.size_changed = size != f->size;
	pthread_mutex_unlock(&f->lock);
	/* Extending makes a hole: nothing to reserve. */
	if (size > 0)
		ret = need_fd(f);
	if (ret == 0 && f->fd >= 0 && ftruncate(f->fd, (off_t)size) < 0)
		ret = -errno;
	if (ret < 0)
		goto out_unlock;
	pthread_mutex_lock(&f->lock);
	old_cached = f->ncached_bytes;
	if (size < f->backing) {
		/* Bytes past the new end never come from S3 again. */
		uint64_t n = chunk_count(size, h->csize);
		for (uint64_t i = n; i < f->nchunks; i++)
			bit_clear(f->present, i);
		f->backing = size;
		f->nchunks = n;
		c.clear_from = n;
	}
	f->size = size;
	new_cached = count_cached(f, h->csize);
	f->ncached_bytes = new_cached;
	pthread_mutex_unlock(&f->lock);
	delta = (int64_t)new_cached - (int64_t)old_cached;
	atomic_fetch_add(&h->used, delta);
	c.times = c.size_changed;
	ret = commit_change(f, &c);
out_unlock:
	pthread_rwlock_unlock(&f->io);
	return ret;
}

int hydrate_fsync(struct hydrate_file *f, int datasync)
{
	int ret;

	int fd = hydrate_fd(f);

	ret = fd < 0 ? 0 : datasync ? fdatasync(fd) : fsync(fd);
	if (ret < 0)
		return -errno;
	return meta_sync(f->h->db);
}

int hydrate_exported(struct hydrate *h, uint64_t ino, const char *key,
		     const char *etag, uint64_t size, bool all_local)
{
	struct hydrate_file *f;
	int ret = 0;

	pthread_mutex_lock(&h->lock);
	for (f = h->files[ino % NBUCKETS]; f; f = f->hnext)
		if (f->ino == ino)
			break;
	if (f)
		f->refs++;
	pthread_mutex_unlock(&h->lock);
	if (!f)
		return 0;

	pthread_mutex_lock(&f->lock);
	char *nk = strdup(key);
	if (!nk) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	free(f->key);
	f->key = nk;
	snprintf(f->etag, sizeof(f->etag), "%s", etag);
	if (all_local && f->size == size && f->ninflight == 0) {
		uint64_t n = chunk_count(size, h->csize);
		size_t bmlen = (size_t)(n + 7) / 8 + 1;
		uint8_t *p = calloc(1, bmlen), *q = calloc(1, bmlen);
		if (!p || !q) {
			free(p);
			free(q);
			ret = -ENOMEM;
			goto out_unlock;
		}
		memset(p, 0xff, bmlen);
		free(f->present);
		free(f->inflight);
		f->present = p;
		f->inflight = q;
		f->backing = size;
		f->nchunks = n;
		f->lost = 0;
	}
out_unlock:
	pthread_mutex_unlock(&f->lock);
	hydrate_close(f);
	return ret;
}

/* Move ino to the young end of the LRU if it is archived. */
static void touch_lru(struct hydrate *h, uint64_t ino)
{
	struct meta_inode mi = {0};
	struct meta_txn *txn;

	if (meta_txn_begin(h->db, true, &txn) < 0)
		return;
	if (meta_inode_get(txn, ino, &mi) == 0) {
		int64_t now = time_now_ns();
		/* relatime: atime moves when it is older than the last
		 * change or a day old (release ages use it). Local policy:
		 * the file does not become dirty for it. */
		if (mi.atime_ns <= mi.mtime_ns || mi.atime_ns <= mi.ctime_ns ||
		    now - mi.atime_ns > 86400ll * 1000000000ll)
			mi.atime_ns = now;
		if (mi.state == META_ARCHIVED) {
			meta_lru_del(txn, mi.last_access_ns, ino);
			mi.last_access_ns = now;
			meta_lru_put(txn, mi.last_access_ns, ino);
		}
		meta_inode_put(txn, &mi);
		meta_txn_commit(txn);
	} else {
		meta_txn_abort(txn);
	}
	meta_inode_release(&mi);
}

void hydrate_note_handle(struct hydrate_file *f, int delta)
{
	bool touch = false;

	pthread_mutex_lock(&f->lock);
	f->nhandles = (unsigned)((int)f->nhandles + delta);
	if (f->nhandles == 0 && f->accessed) {
		f->accessed = false;
		touch = true;
	}
	pthread_mutex_unlock(&f->lock);
	/* Access times reach the LRU once per open, not per read. */
	if (touch)
		touch_lru(f->h, f->ino);
}

/* One file of a release batch, held under its io lock for writing. */
struct rel_item {
	struct hydrate_file *f; /* NULL once dropped from the batch */
	size_t i;		/* index in the caller's arrays */
	uint64_t size;
};

/* Take file ino for a release: its io lock (never waited for: a reader or
 * writer may be waiting for space right now) and no fetch in flight. Waits
 * for fetches in flight only when `wait` (the batch holds no other file: a
 * fetch may take the whole retry budget when S3 is down, and readers of
 * the files held would wait as long); otherwise such a file is busy. */
static int rel_take(struct hydrate *h, uint64_t ino, bool skip_open, bool wait,
		    struct hydrate_file **out)
{
	struct hydrate_file *f;
	int ret;

	*out = NULL;
	ret = hydrate_open(h, ino, &f);
	if (ret == -EISDIR || ret == -EINVAL)
		return -EAGAIN;
	if (ret < 0)
		return ret;
	if (pthread_rwlock_trywrlock(&f->io) != 0) {
		hydrate_close(f);
		return -EBUSY;
	}
	pthread_mutex_lock(&f->lock);
	while (wait && f->ninflight > 0)
		pthread_cond_wait(&f->cond, &f->lock);
	ret = (skip_open && f->nhandles > 0) || f->ninflight > 0 ? -EBUSY : 0;
	pthread_mutex_unlock(&f->lock);
	if (ret < 0) {
		pthread_rwlock_unlock(&f->io);
		hydrate_close(f);
		return ret;
	}
	*out = f;
	return 0;
}

static void rel_drop(struct rel_item *it)
{
	if (!it->f)
		return;
	pthread_rwlock_unlock(&it->f->io);
	hydrate_close(it->f);
	it->f = NULL;
}

/* In one write transaction: forget the chunks of every file of the batch
 * that is still archived and unpinned, and mark it released; the others
 * get their error and leave the batch. Then sync: 0 once the records of
 * the files left in the batch are durable, or -errno. */
static int rel_record(struct hydrate *h, const uint64_t *inos,
		      struct rel_item *v, size_t n, int *errs)
{
	struct meta_txn *txn;
	size_t left = 0;
	int ret;

	ret = meta_txn_begin(h->db, true, &txn);
	if (ret < 0)
		return ret;
	for (size_t k = 0; k < n; k++) {
		struct meta_inode mi = {0};
		uint64_t ino = inos[v[k].i];

		ret = meta_inode_get(txn, ino, &mi);
		if (ret == 0 && mi.state != META_ARCHIVED)
			ret = -EAGAIN;
		else if (ret == 0 && (mi.flags & META_F_NORELEASE))
			ret = -EPERM; /* pinned */
		if (ret == 0) {
			meta_chunk_clear(txn, ino, 0);
			meta_lru_del(txn, mi.last_access_ns, ino);
			mi.state = META_RELEASED;
			mi.cached_bytes = 0;
			ret = meta_inode_put(txn, &mi);
			v[k].size = mi.size;
		}
		meta_inode_release(&mi);
		if (ret < 0) {
			/* Nothing of this file was written: it leaves. */
			errs[v[k].i] = ret;
			rel_drop(&v[k]);
			continue;
		}
		left++;
	}
	if (left == 0) {
		meta_txn_abort(txn);
		return 0;
	}
	ret = meta_txn_commit(txn);
	if (ret == 0)
		ret = meta_sync(h->db);
	return ret;
}

/* The store has forgotten f's chunks, durably: punch its data. */
static uint64_t rel_punch(struct hydrate *h, struct hydrate_file *f,
			  uint64_t size)
{
	uint64_t before, freed;

	pthread_mutex_lock(&f->lock);
	before = f->ncached_bytes;
	memset(f->present, 0, (size_t)(f->nchunks + 7) / 8);
	if (f->fd >= 0 &&
	    (ftruncate(f->fd, 0) < 0 || ftruncate(f->fd, (off_t)size) < 0))
		log_warn("release of inode %" PRIu64 ": %s", f->ino,
			 strerror(errno));
	f->ncached_bytes = count_cached(f, h->csize);
	freed = before > f->ncached_bytes ? before - f->ncached_bytes : 0;
	pthread_mutex_unlock(&f->lock);
	atomic_fetch_sub(&h->used, (int64_t)freed);
	if (h->cfg.on_change)
		h->cfg.on_change(h->cfg.cb_arg, f->ino, META_ARCHIVED,
				 META_RELEASED);
	return freed;
}

int hydrate_release_many(struct hydrate *h, const uint64_t *inos, size_t n,
			 bool skip_open, uint64_t want, int *errs,
			 uint64_t *freed, size_t *tried)
{
	struct rel_item *v;
	uint64_t held = 0;
	size_t nv = 0, i;
	int ret;

	*tried = 0;
	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < n && (!want || held < want); i++) {
		struct hydrate_file *f;

		freed[i] = 0;
		errs[i] = rel_take(h, inos[i], skip_open, nv == 0, &f);
		if (errs[i] < 0)
			continue;
		pthread_mutex_lock(&f->lock);
		held += f->ncached_bytes;
		pthread_mutex_unlock(&f->lock);
		v[nv].f = f;
		v[nv].i = i;
		nv++;
	}
	*tried = i;
	if (nv == 0)
		goto out;
	/* Presence records still queued must land before the punch, or they
	 * would mark punched chunks present again. */
	hydrate_flush(h);
	/* The store forgets the chunks before the bytes go, and that is on
	 * disk first: a crash in between never marks punched data present.
	 * One transaction and one sync for the whole batch. */
	ret = rel_record(h, inos, v, nv, errs);
	for (size_t k = 0; k < nv; k++) {
		if (!v[k].f)
			continue;
		if (ret < 0)
			errs[v[k].i] = ret;
		else
			freed[v[k].i] = rel_punch(h, v[k].f, v[k].size);
		rel_drop(&v[k]);
	}
out:
	free(v);
	return 0;
}

int hydrate_release(struct hydrate *h, uint64_t ino, bool skip_open,
		    uint64_t *freed)
{
	size_t tried;
	int err = 0, ret;

	*freed = 0;
	ret = hydrate_release_many(h, &ino, 1, skip_open, 0, &err, freed,
				   &tried);
	return ret < 0 ? ret : err;
}

uint64_t hydrate_used(struct hydrate *h)
{
	int64_t u = atomic_load(&h->used);

	return u < 0 ? 0 : (uint64_t)u;
}

void hydrate_purge(struct hydrate *h, uint64_t ino, uint64_t cached)
{
	int ret = chunk_remove(h->cs, ino);

	if (ret < 0)
		log_warn("removing the data of inode %" PRIu64 ": %s", ino,
			 strerror(-ret));
	atomic_fetch_sub(&h->used, (int64_t)cached);
}

int hydrate_invalidate_begin(struct hydrate *h, uint64_t ino,
			     struct hydrate_file **out)
{
	struct hydrate_file *f;
	int ret;

	*out = NULL;
	ret = hydrate_open(h, ino, &f);
	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&f->io);
	pthread_mutex_lock(&f->lock);
	while (f->ninflight > 0)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	/* A fetched chunk is queued for the persister before it stops being
	 * in flight: with none in flight, this flush records every one of
	 * them (under the old ETag) before the caller's update clears them,
	 * so no old chunk is recorded present afterwards. */
	hydrate_flush(h);
	*out = f;
	return 0;
}

/* Caller holds f->io for writing: reload what an open file knows about its
 * S3 object from the store; its cached bytes are gone. Returns the bytes
 * that no longer count as cached. */
static uint64_t invalidate_reload(struct hydrate_file *f)
{
	struct hydrate *h = f->h;
	struct meta_inode mi = {0};
	struct meta_txn *txn;
	uint8_t *p = NULL, *q = NULL;
	uint64_t backing = 0, n = 0, before, size;
	int ret;

	ret = meta_txn_begin(h->db, false, &txn);
	if (ret == 0) {
		ret = meta_inode_get(txn, f->ino, &mi);
		meta_txn_abort(txn);
	}
	if (ret == 0) {
		if (mi.s3_key && mi.state != META_NEW)
			backing = MIN(mi.s3_size, mi.size);
		n = chunk_count(backing, h->csize);
		p = calloc(1, (size_t)(n + 7) / 8 + 1);
		q = calloc(1, (size_t)(n + 7) / 8 + 1);
		if (!p || !q)
			ret = -ENOMEM;
	}
	pthread_mutex_lock(&f->lock);
	before = f->ncached_bytes;
	if (ret == 0) {
		free(f->present);
		free(f->inflight);
		f->present = p;
		f->inflight = q;
		p = q = NULL;
		f->size = mi.size;
		f->backing = backing;
		f->nchunks = n;
		memcpy(f->etag, mi.etag, sizeof(f->etag));
		if (mi.s3_key) {
			free(f->key);
			f->key = mi.s3_key;
			mi.s3_key = NULL;
		}
		f->lost = mi.state == META_LOST;
		f->ra_next = 0;
		f->ra_window = 0;
	} else {
		/* Never serve the old object's bytes as the new one's. */
		log_warn("hydrate: reloading inode %" PRIu64 ": %s; it reads "
			 "as lost until reopened",
			 f->ino, strerror(-ret));
		memset(f->present, 0, (size_t)(f->nchunks + 7) / 8);
		f->lost = 1;
	}
	size = f->size;
	pthread_mutex_unlock(&f->lock);
	/* A file opened empty has no data file yet; fetches need one now. */
	if (size > 0 && (ret = need_fd(f)) < 0)
		log_warn("hydrate: data file of inode %" PRIu64 ": %s", f->ino,
			 strerror(-ret));
	if (f->fd >= 0 &&
	    (ftruncate(f->fd, 0) < 0 || ftruncate(f->fd, (off_t)size) < 0))
		log_warn("hydrate: dropping the data of inode %" PRIu64 ": %s",
			 f->ino, strerror(errno));
	/* Usage is what the data file allocates: count after the punch. */
	pthread_mutex_lock(&f->lock);
	f->ncached_bytes = count_cached(f, h->csize);
	before -= MIN(before, f->ncached_bytes);
	pthread_mutex_unlock(&f->lock);
	meta_inode_release(&mi);
	free(p);
	free(q);
	return before;
}

void hydrate_invalidate_end(struct hydrate_file *f, bool changed)
{
	struct hydrate *h;

	if (!f)
		return;
	h = f->h;
	if (changed)
		atomic_fetch_sub(&h->used, (int64_t)invalidate_reload(f));
	pthread_rwlock_unlock(&f->io);
	hydrate_close(f);
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
	free(h);
}

void hydrate_get_stats(struct hydrate *h, struct hydrate_stats *out)
{
	out->hits = atomic_load(&h->hits);
	out->misses = atomic_load(&h->misses);
	out->bytes_fetched = atomic_load(&h->bytes_fetched);
	out->fetch_errors = atomic_load(&h->fetch_errors);
}
