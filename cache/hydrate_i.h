/* SPDX-License-Identifier: MIT */
/*
 * hydrate — state shared by hydrate.c and hydrate_change.c (private to
 * cache/; the module's contract is hydrate.h). Locking and lifetime rules
 * are in the DESIGN comment of hydrate.c.
 */
#ifndef TIDEFS_HYDRATE_I_H
#define TIDEFS_HYDRATE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/hydrate.h"
#include "common/common.h"

#define NBUCKETS 1024

struct job;	/* one fetch, hydrate.c */
struct persist; /* one presence record to write, hydrate.c */
struct spare;	/* spare_i.h */

struct hydrate_file {
	struct hydrate *h;
	uint64_t ino;
	unsigned refs;		    /* protected by h->lock */
	struct hydrate_file *hnext; /* protected by h->lock */
	/* protected by h->lock: in the table but still being loaded by the
	 * open that put it there; everyone else waits (h->load_cond) */
	bool loading;

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
	uint64_t nchunks;   /* protected by lock: chunk_count(backing) */
	uint8_t *present;   /* protected by lock: nchunks bits */
	uint8_t *inflight;  /* protected by lock: nchunks bits */
	unsigned ninflight; /* protected by lock */
	/* Fetched chunks whose presence record is queued or being written
	 * but not committed yet (it stays up when that commit fails): while
	 * non-zero, a change records the present chunks it builds on itself,
	 * or a crash would forget them and fetch the old bytes over it. */
	_Atomic unsigned unpersisted;
	/* The last transaction that changed what reading the file back
	 * needs (size, state, chunks, flags; not times or the generation):
	 * an fdatasync needs a sync point only if none in force holds it. At
	 * load: the store's last transaction then (anything before may). */
	_Atomic uint64_t need_txn;
	uint64_t ncached_bytes; /* protected by lock */
	int lost;	   /* protected by lock: sticky, the object changed */
	unsigned nhandles; /* protected by lock: open file handles */
	bool accessed; /* protected by lock: read since the last LRU update */
	/* protected by lock: the kernel may cache pages of this file (it was
	 * read since it was created, or it existed before this open) */
	bool kcache;
	/* protected by lock: handles through which the kernel reads the data
	 * file itself (passthrough), and the kernel's id of the data file
	 * while there are any (-1 otherwise) */
	unsigned npassthrough;
	int pt_id;
	uint64_t ra_next; /* protected by lock: where a sequential read goes */
	uint32_t ra_window; /* protected by lock */
	/* Write-behind (hydrate_change.c), protected by lock: where the last
	 * write ended, and where the next slice to hand to the disk starts. */
	uint64_t wb_end, wb_next;
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
	pthread_cond_t load_cond;    /* a file finished loading */
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
	_Atomic uint64_t passthrough_opens;
	_Atomic int64_t open_handles;
	hydrate_attach_fn pt_attach; /* set once before the mount goes live */
	hydrate_detach_fn pt_detach;
	void *pt_arg;
	_Atomic int64_t enospc_logged; /* mono ns of the last ENOSPC log */
};

/* Read-ahead window in chunks: at most a quarter of the cache, so that a
 * reader of a file larger than the cache never reads ahead what it must
 * then give back (hyd_trim keeps that much after the read). */
static inline uint32_t hyd_ra_max(const struct hydrate *h)
{
	uint64_t quarter = h->cfg.capacity / h->csize / 4;

	if (!h->cfg.capacity || quarter >= h->cfg.readahead_max)
		return h->cfg.readahead_max;
	return quarter > 1 ? (uint32_t)quarter : 1;
}

/* Free at least `want` bytes (a quarter of the cache if more) of f's own
 * present chunks outside [keep_off, keep_end) and the read-ahead window
 * after it, when f is an archived, unpinned file without passthrough
 * handles. Caller holds no lock of f. Returns the bytes freed. */
uint64_t hyd_trim(struct hydrate_file *f, uint64_t keep_off, uint64_t keep_end,
		  uint64_t want);

/* Caller holds h->lock: the loaded file of ino, or NULL. Waits (dropping
 * h->lock) while another thread loads it. */
struct hydrate_file *hyd_find_locked(struct hydrate *h, uint64_t ino);

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
static inline uint64_t chunk_len(const struct hydrate_file *f, uint32_t csize,
				 uint64_t idx)
{
	uint64_t off = idx * csize;

	return off >= f->backing ? 0 : MIN((uint64_t)csize, f->backing - off);
}

/* Raise f->need_txn to id (a transaction that changed what reading f back
 * needs). */
static inline void hyd_need_txn(struct hydrate_file *f, uint64_t id)
{
	uint64_t cur = atomic_load(&f->need_txn);

	while (cur < id &&
	       !atomic_compare_exchange_weak(&f->need_txn, &cur, id))
		;
}

/* hydrate.c: the data file and fetching. */

/* Caller holds f->io for writing: create the data file on first need. */
int hyd_need_fd(struct hydrate_file *f);
/* Caller holds f->lock; collects chunk idx into the job list if needed. */
int hyd_want_chunk(struct hydrate_file *f, uint64_t idx, struct job **list);
/* Caller holds f->lock: undo hyd_want_chunk() for jobs never queued. */
void hyd_drop_jobs(struct hydrate_file *f, struct job *list);
/* Queue jobs from hyd_want_chunk() for the fetch workers; takes h->lock. */
void hyd_queue_jobs(struct hydrate *h, struct job *list);
/* Caller holds f->lock: bytes the jobs will fetch. */
uint64_t hyd_jobs_bytes(const struct hydrate_file *f, const struct job *j);
/* Caller holds no lock: reserve room for the jobs, or drop them; 0 or
 * -ENOSPC. */
int hyd_reserve_or_drop(struct hydrate_file *f, struct job *jobs,
			uint64_t bytes);

/* hydrate_change.c: cache space. */

/* Reserve grow bytes of cache, asking for space when over capacity; 0 or
 * -ENOSPC. Caller holds no f->lock. */
int hyd_reserve(struct hydrate *h, uint64_t grow);

#endif
