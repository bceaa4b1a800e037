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
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

#define NBUCKETS 1024

struct hydrate_file {
	struct hydrate *h;
	uint64_t ino;
	unsigned refs;		    /* protected by h->lock */
	struct hydrate_file *hnext; /* protected by h->lock */

	pthread_mutex_t lock;
	pthread_cond_t cond;	/* broadcast when a chunk lands or fails */
	int fd;			/* read-only after open */
	char *key;		/* read-only after open */
	char etag[80];		/* read-only after open */
	uint64_t size;		/* protected by lock */
	uint64_t nchunks;	/* protected by lock */
	uint8_t *present;	/* protected by lock */
	uint8_t *inflight;	/* protected by lock */
	uint64_t ncached_bytes; /* protected by lock */
	int lost;	  /* protected by lock: sticky, the object changed */
	int last_err;	  /* protected by lock */
	uint64_t ra_next; /* protected by lock: where a sequential read goes on
			   */
	uint32_t ra_window; /* protected by lock */
};

struct job {
	struct hydrate_file *f;
	uint64_t idx;
	struct job *next;
};

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
	bool stopping;	       /* protected by lock */

	pthread_t *workers;
	int nworkers;
	pthread_t persister;
	bool persister_started;

	_Atomic uint64_t hits, misses, bytes_fetched, fetch_errors;
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

static uint64_t chunk_len(const struct hydrate_file *f, uint32_t csize,
			  uint64_t idx)
{
	uint64_t off = idx * csize;

	return off >= f->size ? 0 : MIN((uint64_t)csize, f->size - off);
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
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);

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
	f->nchunks = chunk_count(mi.size, h->csize);
	f->lost = mi.state == META_LOST;
	memcpy(f->etag, mi.etag, sizeof(f->etag));
	if (mi.s3_key) {
		f->key = mi.s3_key;
		mi.s3_key = NULL;
	}
	bmlen = (size_t)(f->nchunks + 7) / 8 + 1;
	f->present = calloc(1, bmlen);
	f->inflight = calloc(1, bmlen);
	if (!f->present || !f->inflight) {
		ret = -ENOMEM;
		goto out_abort;
	}
	if (mi.state == META_NEW || mi.state == META_DIRTY || !f->key) {
		/* Local data is authoritative: everything is present. */
		memset(f->present, 0xff, bmlen);
	} else if (mi.state != META_RELEASED) {
		ret = meta_chunk_load(txn, ino, f->present, f->nchunks);
		if (ret < 0)
			goto out_abort;
	}
	for (uint64_t i = 0; i < f->nchunks; i++)
		if (bit_get(f->present, i))
			f->ncached_bytes += chunk_len(f, h->csize, i);
	meta_txn_abort(txn);
	txn = NULL;

	f->fd = chunk_open(h->cs, ino, true);
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
	return f->fd;
}

uint64_t hydrate_size(const struct hydrate_file *f)
{
	return f->size;
}

/* ---- fetching ---- */

/* Caller holds f->lock; collects chunk idx into the job list if needed. */
static int want_chunk(struct hydrate_file *f, uint64_t idx, struct job **list)
{
	struct job *j;

	if (idx >= f->nchunks || bit_get(f->present, idx) ||
	    bit_get(f->inflight, idx))
		return 0;
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->f = f;
	j->idx = idx;
	j->next = *list;
	*list = j;
	bit_set(f->inflight, idx);
	return 0;
}

static void free_jobs(struct job *list)
{
	while (list) {
		struct job *n = list->next;
		free(list);
		list = n;
	}
}

static void queue_jobs(struct hydrate *h, struct job *list)
{
	struct job *rev = NULL;

	if (!list)
		return;
	/* want_chunk() prepends; restore ascending order for the queue. */
	while (list) {
		struct job *n = list->next;
		list->next = rev;
		rev = list;
		list = n;
	}
	pthread_mutex_lock(&h->lock);
	for (struct job *j = rev; j; j = j->next) {
		j->f->refs++;
		if (!j->next) {
			if (h->job_tail)
				h->job_tail->next = rev;
			else
				h->job_head = rev;
			h->job_tail = j;
			break;
		}
	}
	pthread_cond_broadcast(&h->job_cond);
	pthread_mutex_unlock(&h->lock);
}

int hydrate_ensure(struct hydrate_file *f, uint64_t off, uint64_t len)
{
	struct hydrate *h = f->h;
	struct job *jobs = NULL;
	uint64_t first, last, end;
	bool waited = false;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	if (len == 0 || off >= f->size) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	end = MIN(off + len, f->size);
	chunk_span(off, end - off, h->csize, &first, &last);
	for (uint64_t i = first; i <= last && ret == 0; i++)
		ret = want_chunk(f, i, &jobs);
	if (f->lost && jobs) {
		/* Cached chunks of a lost file still read (they are the old
		 * object's bytes); nothing more is fetched. */
		for (struct job *j = jobs; j; j = j->next)
			bit_clear(f->inflight, j->idx);
		pthread_mutex_unlock(&f->lock);
		free_jobs(jobs);
		return -EIO;
	}

	/* Read-ahead: grow a window while the reader stays sequential. */
	if (off == f->ra_next && off != 0) {
		if (f->ra_window < h->cfg.readahead_max)
			f->ra_window = f->ra_window ? f->ra_window * 2 : 2;
		f->ra_window = MIN(f->ra_window, h->cfg.readahead_max);
		for (uint64_t i = last + 1;
		     i <= last + f->ra_window && ret == 0; i++)
			ret = want_chunk(f, i, &jobs);
	} else if (off != f->ra_next) {
		f->ra_window = 0;
	}
	f->ra_next = end;
	pthread_mutex_unlock(&f->lock);
	queue_jobs(h, jobs);
	if (ret < 0)
		return ret;

	pthread_mutex_lock(&f->lock);
	for (uint64_t i = first; i <= last;) {
		if (bit_get(f->present, i)) {
			i++;
			continue;
		}
		if (f->lost) {
			ret = -EIO;
			break;
		}
		if (!bit_get(f->inflight, i)) {
			/* Its fetch failed (errors are not sticky). */
			ret = -EIO;
			break;
		}
		waited = true;
		pthread_cond_wait(&f->cond, &f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	if (waited || jobs)
		atomic_fetch_add(&h->misses, 1);
	else
		atomic_fetch_add(&h->hits, 1);
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

static void run_job(struct hydrate *h, struct job *j, uint8_t *buf)
{
	struct hydrate_file *f = j->f;
	uint64_t off = j->idx * h->csize;
	size_t want, got = 0;
	int ret;

	pthread_mutex_lock(&f->lock);
	want = (size_t)chunk_len(f, h->csize, j->idx);
	pthread_mutex_unlock(&f->lock);

	ret = want ? s3_get_range(h->s3, f->key, f->etag[0] ? f->etag : NULL,
				  off, want, buf, &got)
		   : 0;
	if (ret == 0 && got != want)
		ret = -ESTALE; /* shorter than its ETag promised */
	if (ret == -ENOENT)
		ret = -ESTALE; /* the object vanished */
	if (ret == 0)
		ret = pwrite_all(f->fd, buf, got, (int64_t)off);

	pthread_mutex_lock(&f->lock);
	bit_clear(f->inflight, j->idx);
	if (ret == 0) {
		bit_set(f->present, j->idx);
		f->ncached_bytes += got;
	} else {
		f->last_err = ret;
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

	if (ret == 0) {
		atomic_fetch_add(&h->bytes_fetched, got);
		persist_push(h, f, j->idx);
	} else {
		atomic_fetch_add(&h->fetch_errors, 1);
		if (ret == -ESTALE)
			persist_push(h, f, UINT64_MAX);
	}
}

static void *worker_main(void *arg)
{
	struct hydrate *h = arg;
	uint8_t *buf = malloc(h->csize);

	if (!buf) {
		log_error("hydrate: out of memory for a fetch buffer");
		return NULL;
	}
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

		run_job(h, j, buf);

		pthread_mutex_lock(&h->lock);
		h->running_jobs--;
		file_unref_locked(j->f);
		free(j);
	}
	pthread_mutex_unlock(&h->lock);
	free(buf);
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
	int64_t delta;
};

/* Record one file's entries [b, e) of the sorted batch in txn. */
static int persist_file(struct meta_txn *txn, struct persist *b,
			struct persist *e, struct change *ch)
{
	struct hydrate_file *f = b->f;
	struct meta_inode mi = {0};
	uint64_t cached;
	int lost, ret;

	ch->ino = 0;
	ret = meta_inode_get(txn, f->ino, &mi);
	if (ret == -ENOENT)
		return 0; /* deleted meanwhile */
	if (ret < 0)
		return ret;
	if (strcmp(mi.etag, f->etag) != 0 ||
	    (mi.state != META_ARCHIVED && mi.state != META_RELEASED &&
	     mi.state != META_LOST)) {
		/* Re-imported or changed locally since: not our data. */
		meta_inode_release(&mi);
		return 0;
	}
	for (struct persist *p = b; p < e; p++)
		if (p->idx != UINT64_MAX)
			meta_chunk_set(txn, f->ino, p->idx);
	pthread_mutex_lock(&f->lock);
	cached = f->ncached_bytes;
	lost = f->lost;
	pthread_mutex_unlock(&f->lock);

	ch->ino = f->ino;
	ch->old_state = (int)mi.state;
	ch->delta = (int64_t)cached - (int64_t)mi.cached_bytes;
	if (lost)
		mi.state = META_LOST;
	else if (mi.state == META_RELEASED && cached > 0)
		mi.state = META_ARCHIVED;
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
			h->cfg.on_change(h->cfg.cb_arg, changes[i].ino,
					 changes[i].old_state,
					 changes[i].new_state,
					 changes[i].delta);
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
		h->cfg.readahead_max = 16;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->job_cond, NULL);
	pthread_cond_init(&h->persist_cond, NULL);
	pthread_cond_init(&h->idle_cond, NULL);

	h->workers = calloc((size_t)h->cfg.fetch_threads, sizeof(pthread_t));
	if (!h->workers) {
		ret = -ENOMEM;
		goto out_free;
	}
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
		bit_clear(j->f->inflight, j->idx);
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
	for (size_t i = 0; i < NBUCKETS; i++)
		if (h->files[i])
			log_warn("hydrate: inode %" PRIu64
				 " still open at shutdown",
				 h->files[i]->ino);
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
