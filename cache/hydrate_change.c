// SPDX-License-Identifier: MIT
/*
 * hydrate, changes — what happens to an open file's data besides
 * fetching: writes, fallocate and truncate (read-modify-write of partly
 * covered chunks, then one LMDB record of the change), fsync, export
 * and handle bookkeeping, release of cached data, and invalidation
 * when an import updates the object. Reservation of cache space for
 * writes and fetches (hyd_reserve) lives here too.
 *
 * Locks as in hydrate.c: h->lock before f->lock. A change holds f->io
 * for writing throughout, taken before either of them.
 */
#include "cache/hydrate_i.h"

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

#include "common/common.h"

/* ---- changes ---- */

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

/* Say why writes fail with ENOSPC: the cache size (disk false) or the file
 * system holding the cache dir (disk true). One warning every 5 s. */
static void note_enospc(struct hydrate *h, uint64_t want, bool disk)
{
	int64_t now = time_mono_ns(), last = atomic_load(&h->enospc_logged);
	char a[32], b[32];

	if (now - last < 5000000000ll ||
	    !atomic_compare_exchange_strong(&h->enospc_logged, &last, now))
		return;
	if (disk)
		log_warn("cache dir file system full: a change of %s to a "
			 "data file failed; writes fail with ENOSPC until "
			 "space is freed there",
			 format_size(want, a, sizeof(a)));
	else
		log_warn("cache full: %s more would exceed the cache size of "
			 "%s; writes fail with ENOSPC until data is exported "
			 "and released",
			 format_size(want, a, sizeof(a)),
			 format_size(h->cfg.capacity, b, sizeof(b)));
}

/*
 * Reserve `grow` bytes of cache. Over capacity, ask for space (the eviction
 * lane releases least recently used archived data) and try again; -ENOSPC
 * only when nothing could be freed. Caller holds no f->lock.
 */
int hyd_reserve(struct hydrate *h, uint64_t grow)
{
	for (;;) {
		int64_t used;

		if (grow == 0)
			return 0;
		used = atomic_fetch_add(&h->used, (int64_t)grow);
		/* Never below 0 in a consistent count; should it be, it
		 * must not read as a full cache. */
		if (!h->cfg.capacity ||
		    (uint64_t)MAX(used, 0) + grow <= h->cfg.capacity)
			return 0;
		atomic_fetch_sub(&h->used, (int64_t)grow);
		if (!h->need_space || h->need_space(h->space_arg, grow) < 0) {
			note_enospc(h, grow, false);
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
	/* chunk indexes to record present: the first nnew become present
	 * with the change, the rest are present already */
	uint64_t *set;
	size_t nset, nnew;
	bool size_changed;
	bool times;		/* update mtime/ctime */
	bool kill_suidgid;	/* HYDRATE_KILL_SUIDGID */
	bool kill_sgid_nogroup; /* HYDRATE_KILL_SGID_NOGROUP */
	const struct hydrate_caller *caller;
	bool kill_priv;	     /* HYDRATE_KILL_PRIV */
	bool mode_changed;   /* out: set-id bits cleared */
	uint64_t clear_from; /* UINT64_MAX: no chunk records to drop */
	bool frees;	     /* a truncation or a punched hole */
};

/* Record a change of f in LMDB: size, backing, times, chunks, state. */
static int commit_change(struct hydrate_file *f, struct change_rec *c)
{
	struct hydrate *h = f->h;
	struct meta_inode mi = {0}, was;
	struct meta_txn *txn;
	int old_state, ret;
	bool needed;

	ret = meta_txn_begin(h->db, true, &txn);
	if (ret < 0)
		return ret;
	if (c->frees)
		meta_txn_frees_space(txn);
	ret = meta_inode_get(txn, f->ino, &mi);
	if (ret < 0) {
		meta_txn_abort(txn);
		return ret;
	}
	was = mi;
	pthread_mutex_lock(&f->lock);
	mi.size = f->size;
	if (mi.s3_key)
		mi.s3_size = f->backing;
	mi.cached_bytes = f->ncached_bytes;
	pthread_mutex_unlock(&f->lock);
	if (c->times) {
		mi.mtime_ns = mi.ctime_ns = time_now_ns();
	}
	if (c->kill_suidgid || c->kill_sgid_nogroup) {
		/* As the kernel does for a change by a caller without
		 * CAP_FSETID (setattr_should_drop_suidgid): S_ISUID; S_ISGID
		 * when group-executable, or else when the caller is not in
		 * the file's group. */
		uint32_t kill = 0;

		if (c->kill_suidgid)
			kill = S_ISUID | (mi.mode & S_IXGRP ? S_ISGID : 0);
		if ((mi.mode & S_ISGID) && !(mi.mode & S_IXGRP) && c->caller &&
		    c->caller->in_group &&
		    !c->caller->in_group(c->caller->arg, mi.gid))
			kill |= S_ISGID;
		c->mode_changed = (mi.mode & kill) != 0;
		mi.mode &= ~kill;
	}
	/* File capabilities do not survive a change of the file's bytes
	 * (cap_inode_killpriv); absent is the common case, one lookup. */
	if (c->kill_priv)
		meta_xattr_del(txn, f->ino, "security.capability");
	mi.generation++;
	mi.flags |= META_F_DATA_CHANGED;
	old_state = (int)mi.state;
	if (mi.state != META_NEW)
		mi.state = META_DIRTY;
	for (size_t i = 0; i < c->nset; i++)
		meta_chunk_set(txn, f->ino, c->set[i]);
	if (c->clear_from != UINT64_MAX)
		meta_chunk_clear(txn, f->ino, c->clear_from);
	/* Times and the generation aside, does reading the file back after
	 * a power loss need this transaction? (An fdatasync then needs a
	 * sync point that holds it: hydrate_fsync.) */
	needed = c->nset > 0 || c->clear_from != UINT64_MAX ||
		 mi.size != was.size || mi.s3_size != was.s3_size ||
		 mi.cached_bytes != was.cached_bytes || mi.state != was.state ||
		 mi.flags != was.flags || mi.mode != was.mode;
	if (needed)
		hyd_need_txn(f, meta_txn_id(txn));
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
 * fetches of chunks it covers whole, and return in c->set the chunks the
 * change must record present: first the covered, absent ones (they become
 * present once the change is on disk), then, while fetched chunks of the
 * file may not be recorded yet, the present ones the change builds on.
 * -EIO when a needed fetch failed or the file is lost.
 */
static int prepare_range(struct hydrate_file *f, uint64_t off, uint64_t len,
			 struct change_rec *c)
{
	struct hydrate *h = f->h;
	uint64_t first, last, end = off + len, bytes;
	int ret = 0;

	c->set = NULL;
	c->nset = c->nnew = 0;
	chunk_span(off, len, h->csize, &first, &last);
	pthread_mutex_lock(&f->lock);
	if (first >= f->nchunks)
		goto out_unlock; /* all of it past the backed extent */
	last = MIN(last, f->nchunks - 1);
	for (;;) {
		struct job *jobs = NULL;

		for (uint64_t i = first; i <= last && ret == 0; i++)
			if (!bit_get(f->present, i) && partial(f, i, off, end))
				ret = hyd_want_chunk(f, i, &jobs);
		if (ret == 0 && jobs && f->lost) {
			hyd_drop_jobs(f, jobs);
			ret = -EIO;
		}
		if (ret < 0 || (!jobs && !any_inflight(f, first, last)))
			break;
		bytes = hyd_jobs_bytes(f, jobs);
		pthread_mutex_unlock(&f->lock);
		if (jobs && hyd_reserve_or_drop(f, jobs, bytes) < 0) {
			pthread_mutex_lock(&f->lock);
			ret = -ENOSPC;
			break;
		}
		hyd_queue_jobs(h, jobs);
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
		c->set = calloc(last - first + 1, sizeof(*c->set));
		if (!c->set)
			ret = -ENOMEM;
		for (uint64_t i = first; ret == 0 && i <= last; i++)
			if (!bit_get(f->present, i))
				c->set[c->nset++] = i;
		c->nnew = c->nset;
		/* A crash must not forget a chunk the change builds on: it
		 * would be fetched again over the change. */
		for (uint64_t i = first; ret == 0 && i <= last; i++)
			if (atomic_load(&f->unpersisted) > 0 &&
			    bit_get(f->present, i))
				c->set[c->nset++] = i;
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

/*
 * Write-behind: once a file's writes run sequentially WB_SLICE past a
 * slice, the slice is handed to the disk (sync_file_range with
 * SYNC_FILE_RANGE_WRITE starts writeback and waits for nothing). An fsync
 * at the end of a large write then finds at most two slices to write
 * instead of the whole file, and the disk works while the writer still
 * sends data. Slices behind the writer are complete, so they are not
 * dirtied again; random writes (databases) and files shorter than two
 * slices are left to the kernel's own writeback. Durability is unchanged:
 * only fsync promises anything, and writeback errors still reach it (this
 * never waits, so it never consumes them).
 */
#define WB_SLICE (16ull << 20)

/* Caller holds f->lock: the next sequence starts at pos (its first slice
 * is the one after pos). */
static void wb_restart(struct hydrate_file *f, uint64_t pos)
{
	f->wb_end = pos;
	f->wb_next = (pos + WB_SLICE - 1) / WB_SLICE * WB_SLICE;
}

/* Caller holds f->lock, after a write of [off, end): the range of whole
 * slices at least a slice behind the writer not yet handed to the disk,
 * in *start and *len (0 if none). */
static void wb_after_write(struct hydrate_file *f, uint64_t off, uint64_t end,
			   uint64_t *start, uint64_t *len)
{
	uint64_t upto;

	*start = *len = 0;
	if (off != f->wb_end) /* not a continuation: start over after it */
		wb_restart(f, end);
	f->wb_end = end;
	if (end < WB_SLICE || f->wb_next + WB_SLICE > end - WB_SLICE)
		return;
	upto = (end - WB_SLICE) / WB_SLICE * WB_SLICE;
	*start = f->wb_next;
	*len = upto - f->wb_next;
	f->wb_next = upto;
}

static int change_range(struct hydrate_file *f, enum change_kind kind, int mode,
			const void *buf, uint64_t off, uint64_t len,
			bool keep_size, unsigned *flags,
			const struct hydrate_caller *caller)
{
	struct hydrate *h = f->h;
	struct change_rec c = {
		.clear_from = UINT64_MAX,
		.times = true,
		.kill_suidgid = flags && (*flags & HYDRATE_KILL_SUIDGID),
		.kill_sgid_nogroup =
			flags && (*flags & HYDRATE_KILL_SGID_NOGROUP),
		.caller = caller,
		.kill_priv = flags && (*flags & HYDRATE_KILL_PRIV),
		.frees = kind == CH_PUNCH,
	};
	uint64_t grow, old_size, new_size, now_cached, wb_start = 0, wb_len = 0;
	int ret;

	pthread_rwlock_wrlock(&f->io);
	/* Allocation does not change content: no fetch, no presence. */
	if (kind != CH_ALLOC) {
		ret = prepare_range(f, off, len, &c);
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
	ret = hyd_reserve(h, grow);
	if (ret < 0)
		goto out_unlock;
	pthread_mutex_lock(&f->lock);
	mark_chunks(f, c.set, c.nnew, true);
	pthread_mutex_unlock(&f->lock);

	ret = hyd_need_fd(f);
	if (ret == 0)
		ret = apply(f, kind, mode, buf, off, len);
	pthread_mutex_lock(&f->lock);
	if (ret < 0) {
		mark_chunks(f, c.set, c.nnew, false);
		atomic_fetch_sub(&h->used, (int64_t)grow);
		pthread_mutex_unlock(&f->lock);
		if (ret == -ENOSPC || ret == -EDQUOT)
			note_enospc(h, len, true);
		goto out_unlock;
	}
	f->size = new_size;
	if (kind == CH_WRITE)
		wb_after_write(f, off, off + len, &wb_start, &wb_len);
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
	/* Outside the io lock: this may wait for room in the disk's queue,
	 * which readers of the file need not. */
	if (wb_len > 0 && sync_file_range(f->fd, (off_t)wb_start, (off_t)wb_len,
					  SYNC_FILE_RANGE_WRITE) < 0)
		log_debug("write-behind of inode %" PRIu64 ": %s", f->ino,
			  strerror(errno));
	return ret;
}

int hydrate_write(struct hydrate_file *f, const void *buf, size_t len,
		  uint64_t off, unsigned *flags,
		  const struct hydrate_caller *caller)
{
	if (len == 0)
		return 0;
	return change_range(f, CH_WRITE, 0, buf, off, len, false, flags,
			    caller);
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
		      uint64_t len, unsigned *flags,
		      const struct hydrate_caller *caller)
{
	bool keep = mode & FALLOC_FL_KEEP_SIZE;

	if (len == 0)
		return -EINVAL;
	switch (mode & ~FALLOC_FL_KEEP_SIZE) {
	case 0:
		return change_range(f, CH_ALLOC, mode, NULL, off, len, keep,
				    flags, caller);
	case FALLOC_FL_PUNCH_HOLE:
		if (!keep)
			return -EOPNOTSUPP;
		return change_range(f, CH_PUNCH, mode, NULL, off, len, true,
				    flags, caller);
	case FALLOC_FL_ZERO_RANGE:
		return change_range(f, CH_ZERO, mode, NULL, off, len, keep,
				    flags, caller);
	default:
		return -EOPNOTSUPP;
	}
}

int hydrate_truncate(struct hydrate_file *f, uint64_t size, unsigned flags,
		     const struct hydrate_caller *caller)
{
	struct hydrate *h = f->h;
	struct change_rec c = {
		.clear_from = UINT64_MAX,
		.kill_suidgid = flags & HYDRATE_KILL_SUIDGID,
		.kill_sgid_nogroup = flags & HYDRATE_KILL_SGID_NOGROUP,
		.caller = caller,
	};
	uint64_t old_cached, new_cached;
	int64_t delta;
	int ret = 0;

	pthread_rwlock_wrlock(&f->io);
	pthread_mutex_lock(&f->lock);
	while (f->ninflight > 0)
		pthread_cond_wait(&f->cond, &f->lock);
	c.size_changed = size != f->size;
	c.frees = size < f->size;
	pthread_mutex_unlock(&f->lock);
	/* Extending makes a hole: nothing to reserve. */
	if (size > 0)
		ret = hyd_need_fd(f);
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
	/* A rewrite from the new end continues the sequence. */
	wb_restart(f, size);
	new_cached = count_cached(f, h->csize);
	f->ncached_bytes = new_cached;
	pthread_mutex_unlock(&f->lock);
	delta = (int64_t)new_cached - (int64_t)old_cached;
	atomic_fetch_add(&h->used, delta);
	c.times = c.size_changed || (flags & HYDRATE_TIMES);
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
	/* fdatasync: the data, and what reading it back needs. A rewrite in
	 * place (databases) changed only times since a sync point still in
	 * force: its data file's flush is all it needs. */
	if (datasync)
		return meta_sync_upto(f->h->db, atomic_load(&f->need_txn));
	return meta_sync(f->h->db);
}

int hydrate_exported(struct hydrate *h, uint64_t ino, const char *key,
		     const char *etag, uint64_t size, bool all_local)
{
	struct hydrate_file *f;
	int ret = 0;

	pthread_mutex_lock(&h->lock);
	f = hyd_find_locked(h, ino);
	if (f)
		f->refs++;
	pthread_mutex_unlock(&h->lock);
	if (!f)
		return 0;

	/* The export committed the file's object (key, etag, its extent):
	 * reading the file back needs that transaction. */
	hyd_need_txn(f, meta_last_txn(h->db));
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
	/* Counted closed once everything the close does is done. */
	atomic_fetch_add(&f->h->open_handles, delta);
}

void hydrate_set_passthrough(struct hydrate *h, hydrate_attach_fn attach,
			     hydrate_detach_fn detach, void *arg)
{
	h->pt_attach = attach;
	h->pt_detach = detach;
	h->pt_arg = arg;
}

/* Caller holds f->lock: may the kernel read the data file by itself? */
static bool pt_eligible(const struct hydrate_file *f)
{
	if (!f->h->pt_attach || f->fd < 0 || f->lost || f->ninflight > 0 ||
	    f->nhandles > f->npassthrough)
		return false;
	/* Whole bytes first: a 1 TiB file has a million chunks. */
	for (uint64_t b = 0; b < f->nchunks / 8; b++)
		if (f->present[b] != 0xff)
			return false;
	for (uint64_t i = f->nchunks / 8 * 8; i < f->nchunks; i++)
		if (!bit_get(f->present, i))
			return false;
	return true;
}

int hydrate_handle_open(struct hydrate_file *f, bool writable)
{
	struct hydrate *h = f->h;
	int id = -1, ret;

	pthread_mutex_lock(&f->lock);
	if (f->npassthrough == 0 && !writable && pt_eligible(f)) {
		/* Registering is one ioctl: fine under f->lock, which keeps
		 * a handle of the other kind from opening meanwhile. */
		ret = h->pt_attach(h->pt_arg, f->fd);
		if (ret >= 0)
			f->pt_id = ret;
	}
	if (f->pt_id >= 0) {
		id = f->pt_id;
		f->npassthrough++;
		/* Its reads never reach us: count the open as a read. */
		f->accessed = true;
	}
	f->nhandles++;
	atomic_fetch_add(&h->open_handles, 1);
	pthread_mutex_unlock(&f->lock);
	if (id < 0)
		return -1;
	atomic_fetch_add(&h->passthrough_opens, 1);
	atomic_fetch_add(&h->hits, 1);
	if (writable) {
		/* A shared writable mapping of this handle writes to the data
		 * file without us: count the file as changed now. */
		struct change_rec c = {.clear_from = UINT64_MAX};

		pthread_rwlock_wrlock(&f->io);
		ret = commit_change(f, &c);
		pthread_rwlock_unlock(&f->io);
		if (ret < 0) {
			hydrate_handle_close(f, true);
			return ret;
		}
	}
	return id;
}

void hydrate_handle_close(struct hydrate_file *f, bool passthrough)
{
	struct hydrate *h = f->h;
	int id = -1;

	if (passthrough) {
		pthread_mutex_lock(&f->lock);
		if (--f->npassthrough == 0) {
			id = f->pt_id;
			f->pt_id = -1;
			pthread_cond_broadcast(&f->cond); /* invalidate_begin */
		}
		pthread_mutex_unlock(&f->lock);
		/* The kernel keeps the data file while its inode has
		 * passthrough files open; the id is only for new opens. */
		if (id >= 0)
			h->pt_detach(h->pt_arg, id);
	}
	hydrate_note_handle(f, -1);
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
	meta_txn_frees_space(txn);
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

/* Caller holds f->io for writing: forget chunks idx[0..n) in the store,
 * durably, as a release does (the state stays archived: the file is only
 * partly cached, as after a partial read). */
static int trim_record(struct hydrate_file *f, const uint64_t *idx, size_t n,
		       uint64_t bytes)
{
	struct meta_inode mi = {0};
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(f->h->db, true, &txn);
	if (ret < 0)
		return ret;
	meta_txn_frees_space(txn);
	ret = meta_inode_get(txn, f->ino, &mi);
	if (ret == 0 &&
	    (mi.state != META_ARCHIVED || (mi.flags & META_F_NORELEASE)))
		ret = -EBUSY; /* changed, or pinned: its bytes stay */
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = meta_chunk_unset(txn, f->ino, idx[i]);
	if (ret == 0) {
		/* What the punch will leave; the next change of the file
		 * settles it against the data file's allocation. */
		pthread_mutex_lock(&f->lock);
		mi.cached_bytes =
			f->ncached_bytes > bytes ? f->ncached_bytes - bytes : 0;
		pthread_mutex_unlock(&f->lock);
		ret = meta_inode_put(txn, &mi);
	}
	meta_inode_release(&mi);
	if (ret < 0) {
		meta_txn_abort(txn);
		return ret;
	}
	ret = meta_txn_commit(txn);
	return ret < 0 ? ret : meta_sync(f->h->db);
}

uint64_t hyd_trim(struct hydrate_file *f, uint64_t keep_off, uint64_t keep_end,
		  uint64_t want)
{
	struct hydrate *h = f->h;
	uint32_t cs = h->csize;
	uint64_t *idx = NULL, n = 0, got = 0, before, freed = 0;
	uint64_t keep_first = keep_off / cs;
	uint64_t keep_last = keep_end / cs + hyd_ra_max(h);

	want = MAX(want, h->cfg.capacity / 4);
	pthread_rwlock_wrlock(&f->io);
	pthread_mutex_lock(&f->lock);
	while (f->ninflight > 0)
		pthread_cond_wait(&f->cond, &f->lock);
	if (f->npassthrough == 0 && !f->lost && f->fd >= 0 && f->nchunks > 0)
		idx = malloc(f->nchunks * sizeof(*idx));
	/* Behind the read first (a sequential reader is done with them),
	 * then the farthest ahead of it, past its read-ahead window. */
	for (uint64_t i = 0;
	     idx && i < MIN(keep_first, f->nchunks) && got < want; i++) {
		if (bit_get(f->present, i)) {
			idx[n++] = i;
			got += chunk_len(f, cs, i);
		}
	}
	for (uint64_t i = f->nchunks; idx && i > keep_last + 1 && got < want;) {
		if (bit_get(f->present, --i)) {
			idx[n++] = i;
			got += chunk_len(f, cs, i);
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (n == 0)
		goto out;
	/* Presence records still queued must land first, or they would mark
	 * punched chunks present again; then the store forgets the chunks,
	 * on disk, before their bytes go. */
	hydrate_flush(h);
	if (trim_record(f, idx, n, got) < 0)
		goto out;
	pthread_mutex_lock(&f->lock);
	before = f->ncached_bytes;
	for (uint64_t k = 0; k < n; k++) {
		bit_clear(f->present, idx[k]);
		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(idx[k] * cs),
			      (off_t)chunk_len(f, cs, idx[k])) < 0)
			log_warn("trimming inode %" PRIu64 ": %s", f->ino,
				 strerror(errno));
	}
	f->ncached_bytes = count_cached(f, cs);
	freed = before > f->ncached_bytes ? before - f->ncached_bytes : 0;
	pthread_mutex_unlock(&f->lock);
	atomic_fetch_sub(&h->used, (int64_t)freed);
	log_debug("trimmed %" PRIu64 " chunks (%" PRIu64 " bytes) of open "
		  "inode %" PRIu64,
		  n, freed, f->ino);
out:
	pthread_rwlock_unlock(&f->io);
	free(idx);
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
	if (f->npassthrough > 0) {
		/* A close reaches us after close() returned: give handles
		 * just closed a moment. */
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 2;
		while (f->npassthrough > 0 &&
		       pthread_cond_timedwait(&f->cond, &f->lock, &until) == 0)
			;
	}
	if (f->npassthrough > 0) {
		/* The kernel reads the data file without us: its bytes must
		 * not change while such a handle is open. */
		pthread_mutex_unlock(&f->lock);
		pthread_rwlock_unlock(&f->io);
		hydrate_close(f);
		return -EBUSY;
	}
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
	if (size > 0 && (ret = hyd_need_fd(f)) < 0)
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
	if (changed) {
		/* The import committed the file's new object: reading it
		 * back needs that transaction. */
		hyd_need_txn(f, meta_last_txn(h->db));
		atomic_fetch_sub(&h->used, (int64_t)invalidate_reload(f));
	}
	pthread_rwlock_unlock(&f->io);
	hydrate_close(f);
}
