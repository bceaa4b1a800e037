// SPDX-License-Identifier: MIT
/*
 * EXPORT_TO_REPOSITORY: send new and changed files, directories and
 * symlinks under the task's paths to S3 with their POSIX metadata.
 *
 * Pass 1 walks the paths and collects what needs exporting (new, dirty, or
 * archived under a different key after a rename), so TotalCount is known
 * before any upload. Pass 2 exports one entry at a time:
 *   - data changed (or new): upload the local file (fetching chunks it
 *     never had first), If-Match the ETag it came from, or If-None-Match: *
 *     for a key new to it;
 *   - metadata or name changed only: CopyObject from its object with the
 *     new metadata (no data moves through us);
 *   - directories: a "dir/" marker object; FIFOs, sockets, devices: failed
 *     with UNSUPPORTED_FILE_TYPE.
 * An entry becomes archived only if its generation did not change during
 * the upload; otherwise it stays dirty for the next export.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "tasks/tasks_i.h"

struct collect {
	const struct task_engine_config *cfg;
	const char *prefix;
	struct task_cands c;
};

static bool needs_export(const struct meta_inode *mi, const char *key)
{
	if (mi->state == META_NEW || mi->state == META_DIRTY)
		return true;
	if (mi->state == META_LOST)
		return false; /* incomplete local data, changed object */
	/* Archived or released under another name: renamed. */
	return mi->s3_key && strcmp(mi->s3_key, key) != 0;
}

/* Another name of a hard-linked, exported file (one object per name; the
 * inode remembers the first). */
static bool other_name(const struct meta_inode *mi, const char *key)
{
	return mi->nlink > 1 && mi->s3_key && strcmp(mi->s3_key, key) &&
	       (mi->state == META_ARCHIVED || mi->state == META_RELEASED);
}

/* ... and is its object there already, with the same bytes? */
static bool other_name_sent(const struct task_engine_config *cfg,
			    const struct meta_inode *mi, const char *key)
{
	struct s3_object ob = {0};
	bool sent;

	if (!other_name(mi, key))
		return false;
	sent = s3_head_object(cfg->s3, key, &ob) == 0 &&
	       !strcmp(ob.etag, mi->etag);
	s3_object_release(&ob);
	return sent;
}

static int collect_cb(void *arg, const char *rel, const struct meta_inode *mi)
{
	struct collect *c = arg;
	char *key;
	bool want;

	if (!*rel)
		return 0; /* the root has no object of its own */
	key = task_key_of(c->prefix, rel, S_ISDIR(mi->mode));
	if (!key)
		return -ENOMEM;
	want = needs_export(mi, key);
	if (want && other_name_sent(c->cfg, mi, key))
		want = false;
	free(key);
	return want ? task_cands_add(&c->c, rel, mi->ino) : 0;
}

static const char *error_code(int err)
{
	switch (err) {
	case -ESTALE:
		return "S3_PRECONDITION_FAILED";
	case -EACCES:
		return "S3_ACCESS_DENIED";
	case -ENOENT:
		return "S3_OBJECT_NOT_FOUND";
	case -ENOMEM:
		return "OUT_OF_MEMORY";
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ETIMEDOUT:
		return "S3_UNREACHABLE";
	default:
		return "S3_ERROR";
	}
}

/* The ETag a deleted file's object had at key (meta.h, gone), or "". */
static int gone_etag(struct meta_db *db, const char *key, char out[80])
{
	struct meta_txn *txn;
	int ret;

	out[0] = '\0';
	ret = meta_txn_begin(db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_gone_get(txn, key, out, 80);
	meta_txn_abort(txn);
	return ret == -ENOENT ? 0 : ret;
}

static int note_other_name(struct meta_db *db, const char *key,
			   const char *etag)
{
	struct meta_txn *txn;
	int ret = meta_txn_begin(db, true, &txn);

	if (ret < 0)
		return ret;
	meta_gone_put(txn, key, etag);
	return meta_txn_commit(txn);
}

/*
 * The inode's object moves from mi->s3_key to key: the old key keeps its
 * object, which no file stands for now (a new file there may replace
 * it), and key is ours.
 */
static void move_object(struct meta_txn *txn, const struct meta_inode *mi,
			const char *key)
{
	if (mi->s3_key && strcmp(mi->s3_key, key) && mi->etag[0] &&
	    mi->state != META_NEW)
		meta_gone_put(txn, mi->s3_key, mi->etag);
	meta_gone_del(txn, key);
}

/*
 * Make file ino, which stands on the object at key, independent of it:
 * fetch what it never had, then forget the object (the file keeps its data
 * and exports by upload). Lost files have nothing left to fetch from it.
 */
static int detach_from_key(const struct task_engine_config *cfg, uint64_t ino,
			   const char *key)
{
	struct meta_inode mi = {0};
	struct hydrate_file *hf = NULL;
	struct meta_txn *txn;
	bool reg;
	int ret;

	ret = meta_txn_begin(cfg->db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &mi);
	meta_txn_abort(txn);
	if (ret < 0 || !mi.s3_key || strcmp(mi.s3_key, key) != 0 ||
	    (mi.flags & META_F_UNLINKED) || mi.state == META_LOST) {
		meta_inode_release(&mi);
		return ret == -ENOENT ? 0 : ret < 0 ? ret : 1;
	}
	reg = S_ISREG(mi.mode);
	meta_inode_release(&mi);
	if (reg) {
		/* Open across the transaction below: the file's chunks stay
		 * as they are, and the next load finds it without a key. */
		ret = hydrate_open(cfg->hy, ino, &hf);
		if (ret == 0)
			ret = hydrate_ensure(hf, 0, hydrate_size(hf));
		if (ret < 0) {
			log_warn("export: %s keeps its object for inode "
				 "%" PRIu64 ", whose data could not be fetched "
				 "from it: %s",
				 key, ino, strerror(-ret));
			goto out;
		}
	}
	ret = meta_txn_begin(cfg->db, true, &txn);
	if (ret < 0)
		goto out;
	ret = meta_inode_get(txn, ino, &mi);
	if (ret == 0 && mi.s3_key && strcmp(mi.s3_key, key) == 0) {
		int old = (int)mi.state;

		/* No file stands for key's object any more: the export
		 * about to replace it may (meta.h, gone). */
		if (mi.etag[0] && mi.state != META_NEW)
			meta_gone_put(txn, key, mi.etag);
		free(mi.s3_key);
		mi.s3_key = NULL;
		mi.etag[0] = '\0';
		mi.s3_size = 0;
		mi.flags |= META_F_DATA_CHANGED;
		meta_chunk_clear(txn, ino, 0);
		if (mi.state != META_NEW && mi.state != META_DIRTY) {
			meta_lru_del(txn, mi.last_access_ns, ino);
			mi.state = META_DIRTY;
			meta_dirty_add(txn, ino);
		}
		meta_inode_put(txn, &mi);
		ret = meta_txn_commit(txn);
		if (ret == 0 && cfg->on_change && old != (int)mi.state)
			cfg->on_change(cfg->cb_arg, ino, old, (int)mi.state);
	} else {
		meta_txn_abort(txn);
	}
	meta_inode_release(&mi);
	if (ret == 0)
		log_info("export: inode %" PRIu64 " has all its data local "
			 "and no longer depends on %s, which is replaced",
			 ino, key);
out:
	if (hf)
		hydrate_close(hf);
	return ret == -ENOENT ? 0 : ret;
}

/*
 * Before the object at key is replaced by ino's export: detach every other
 * file that stands on it (k, built on first use, keyrefs.c). A file renamed
 * away keeps its old object's key until it is exported under its new name;
 * meanwhile an import may have made a new file for the old key, or a new
 * file may have taken the name, and replacing the object would take
 * whatever the renamed file never fetched. Keys this task gives out are not
 * added to k (two entries of one task never share a key).
 */
static int free_key(const struct task_engine_config *cfg,
		    struct task_key_refs *k, const char *key, uint64_t self)
{
	uint64_t h = task_key_hash(key);
	size_t i;
	int ret;

	if (!k->built) {
		struct meta_txn *txn;

		ret = meta_txn_begin(cfg->db, false, &txn);
		if (ret < 0)
			return ret;
		ret = task_key_refs_build(txn, k);
		meta_txn_abort(txn);
		if (ret < 0)
			return ret;
	}
	for (i = task_key_ref_lower(k, h); i < k->n && k->v[i].hash == h; i++) {
		/* Detached now, or no longer on key (detached or exported
		 * elsewhere since the array was built, or a hash collision). */
		if (k->v[i].ino != self) {
			ret = detach_from_key(cfg, k->v[i].ino, key);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* A file changed during its upload: record the object it now has in S3
 * (so the next export's condition matches it) and keep it dirty. Its local
 * data is whole, so nothing is to be fetched from that object. */
static int remember_object(struct meta_txn *txn, struct meta_inode *mi,
			   const char *key, const char *etag)
{
	char *k = strdup(key);

	if (!k)
		return -ENOMEM;
	free(mi->s3_key);
	mi->s3_key = k;
	snprintf(mi->etag, sizeof(mi->etag), "%s", etag);
	mi->s3_size = 0;
	mi->flags |= META_F_DATA_CHANGED;
	if (mi->state == META_NEW)
		mi->state = META_DIRTY;
	return meta_inode_put(txn, mi);
}

/* Record a successful export of ino as key with etag. */
static int mark_exported(struct task_run *r, uint64_t ino, uint64_t gen0,
			 const char *key, const char *etag, bool uploaded)
{
	const struct task_engine_config *cfg = task_run_config(r);
	struct meta_inode mi = {0};
	struct meta_txn *txn;
	int ret, old;
	uint64_t size;

	ret = meta_txn_begin(cfg->db, true, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0) {
		meta_txn_abort(txn);
		return ret == -ENOENT ? 0 : ret;
	}
	if (mi.generation != gen0) {
		/* Changed during the upload: it stays dirty, but the object
		 * we wrote is now the one the next export must match. */
		old = (int)mi.state;
		move_object(txn, &mi, key);
		ret = remember_object(txn, &mi, key, etag);
		if (ret == 0)
			ret = meta_txn_commit(txn);
		else
			meta_txn_abort(txn);
		if (ret == 0 && S_ISREG(mi.mode)) {
			hydrate_exported(cfg->hy, ino, key, etag, mi.size,
					 false);
			if (cfg->on_change && old != (int)mi.state)
				cfg->on_change(cfg->cb_arg, ino, old,
					       (int)mi.state);
		}
		meta_inode_release(&mi);
		return ret;
	}
	old = (int)mi.state;
	move_object(txn, &mi, key);
	free(mi.s3_key);
	mi.s3_key = strdup(key);
	if (!mi.s3_key) {
		meta_txn_abort(txn);
		meta_inode_release(&mi);
		return -ENOMEM;
	}
	snprintf(mi.etag, sizeof(mi.etag), "%s", etag);
	size = mi.size;
	mi.s3_size = size;
	mi.s3_mtime_ns = time_now_ns();
	mi.flags &= ~(uint32_t)META_F_DATA_CHANGED;
	if (uploaded && S_ISREG(mi.mode)) {
		uint64_t n = chunk_count(size, chunk_size(cfg->cs));
		for (uint64_t i = 0; i < n; i++)
			meta_chunk_set(txn, ino, i);
		/* cached_bytes stays what the data file allocates: the
		 * cache's usage counts that, holes of sparse files not. */
	}
	if (S_ISREG(mi.mode) && !uploaded && mi.cached_bytes == 0 && size > 0) {
		mi.state = META_RELEASED;
	} else {
		mi.state = META_ARCHIVED;
		if (S_ISREG(mi.mode)) {
			/* Releasable from now on: enter the LRU. */
			if (!mi.last_access_ns)
				mi.last_access_ns = time_now_ns();
			meta_lru_put(txn, mi.last_access_ns, ino);
		}
	}
	meta_inode_put(txn, &mi);
	meta_dirty_del(txn, ino);
	ret = meta_txn_commit(txn);
	if (ret == 0 && S_ISREG(mi.mode)) {
		hydrate_exported(cfg->hy, ino, key, etag, size, uploaded);
		if (cfg->on_change && old != (int)mi.state)
			cfg->on_change(cfg->cb_arg, ino, old, (int)mi.state);
	}
	meta_inode_release(&mi);
	return ret;
}

static int upload_regular(const struct task_engine_config *cfg,
			  const struct meta_inode *mi, const char *key,
			  const struct s3_put_opts *o, char etag[80])
{
	struct hydrate_file *hf;
	int ret;

	ret = hydrate_open(cfg->hy, mi->ino, &hf);
	if (ret < 0)
		return ret;
	/* Chunks never fetched (a partly rewritten file) come in first. */
	ret = hydrate_ensure(hf, 0, hydrate_size(hf));
	if (ret == 0) {
		int fd = hydrate_fd(hf), nul = -1;
		/* An empty file never had a data file. */
		if (fd < 0)
			fd = nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ret = fd < 0 ? -errno
			     : s3_put_file(cfg->s3, key, fd, hydrate_size(hf),
					   o, etag);
		if (nul >= 0)
			close(nul);
	}
	hydrate_close(hf);
	return ret;
}

static int upload_symlink(const struct task_engine_config *cfg,
			  const struct meta_inode *mi, const char *key,
			  const struct s3_put_opts *o, char etag[80])
{
	int fd = chunk_open(cfg->cs, mi->ino, false), ret;

	if (fd < 0)
		return fd;
	ret = s3_put_file(cfg->s3, key, fd, mi->size, o, etag);
	close(fd);
	return ret;
}

/* Export one entry; returns 0 or -errno with *code set. */
static int export_one(struct task_run *r, struct task_key_refs *refs,
		      const char *rel, uint64_t ino, const char **code)
{
	const struct task_engine_config *cfg = task_run_config(r);
	struct meta_inode mi = {0};
	struct s3_header hdrs[5];
	struct s3_meta_bufs bufs;
	struct s3_put_opts o = {0};
	struct meta_txn *txn;
	char etag[80] = "", gone[80] = "", *key = NULL;
	bool uploaded = false, same_key, is_other;
	int ret;

	*code = "LOCAL_IO_ERROR";
	for (int tries = 0;; tries++) {
		ret = meta_txn_begin(cfg->db, false, &txn);
		if (ret < 0)
			return ret;
		ret = meta_inode_get(txn, ino, &mi);
		meta_txn_abort(txn);
		if (ret == -ENOENT)
			return 0; /* removed since the walk: nothing to send */
		if (ret < 0)
			return ret;
		if (!(mi.flags & META_F_HEAD_PENDING))
			break;
		/* Lazily imported, under a renamed directory: its metadata
		 * from S3 first (it may even turn out to be a symlink). */
		meta_inode_release(&mi);
		ret = tries ? -EIO
			    : task_filler_complete(cfg->filler, &ino, 1, NULL);
		if (ret < 0) {
			*code = error_code(ret);
			return ret;
		}
	}
	if (!S_ISREG(mi.mode) && !S_ISDIR(mi.mode) && !S_ISLNK(mi.mode)) {
		*code = "UNSUPPORTED_FILE_TYPE";
		ret = -EOPNOTSUPP;
		goto out;
	}
	key = task_key_of(cfg->mount.prefix, rel, S_ISDIR(mi.mode));
	if (!key) {
		ret = -ENOMEM;
		goto out;
	}
	if (!needs_export(&mi, key))
		goto out; /* exported already (overlapping paths) */
	o.nmeta = s3_posix_headers(mi.mode, mi.uid, mi.gid, mi.atime_ns,
				   mi.mtime_ns, hdrs, &bufs);
	o.meta = hdrs;
	same_key = mi.s3_key && !strcmp(mi.s3_key, key);
	is_other = other_name(&mi, key);
	/* Whatever replaces the object at key: no other file may still
	 * need bytes from it. */
	ret = free_key(cfg, refs, key, ino);
	if (ret == 0 && !cfg->export_overwrite && !same_key)
		ret = gone_etag(cfg->db, key, gone);
	if (ret < 0)
		goto out;
	if (!cfg->export_overwrite) {
		if (same_key && mi.etag[0])
			o.if_match = mi.etag;
		else if (gone[0])
			o.if_match = gone; /* the object a deleted file left */
		else
			o.if_none_match_any = true;
	}
	*code = NULL;
	if (S_ISDIR(mi.mode)) {
		/* A "dir/" marker: an empty body. */
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ret = fd < 0 ? -errno
			     : s3_put_file(cfg->s3, key, fd, 0, &o, etag);
		if (fd >= 0)
			close(fd);
	} else if (S_ISLNK(mi.mode)) {
		ret = upload_symlink(cfg, &mi, key, &o, etag);
		uploaded = true;
	} else if (mi.s3_key && mi.etag[0] && mi.state != META_NEW &&
		   !(mi.flags & META_F_DATA_CHANGED)) {
		/* Same bytes as its object: copy with the new metadata. The
		 * condition applies to the source object. */
		o.if_match = cfg->export_overwrite ? NULL : mi.etag;
		o.if_none_match_any =
			!same_key && !cfg->export_overwrite && !gone[0];
		o.dst_if_match = !same_key && !cfg->export_overwrite && gone[0]
					 ? gone
					 : NULL;
		ret = s3_copy_object(cfg->s3, mi.s3_key, key, &o, etag);
	} else {
		ret = upload_regular(cfg, &mi, key, &o, etag);
		uploaded = true;
		if (ret == -EIO)
			*code = "LOCAL_DATA_INCOMPLETE";
	}
	if (ret == 0 && !is_other) {
		ret = mark_exported(r, ino, mi.generation, key, etag, uploaded);
	} else if (ret == 0 && etag[0]) {
		/* Another name of a hard-linked file: the inode remembers
		 * only its first object, so the next export of this name
		 * matches the object written now through gone. */
		ret = note_other_name(cfg->db, key, etag);
	}
	if (ret < 0 && !*code)
		*code = error_code(ret);
out:
	free(key);
	meta_inode_release(&mi);
	return ret;
}

int task_exec_export(struct task_run *r)
{
	struct collect c = {.cfg = task_run_config(r),
			    .prefix = task_run_config(r)->mount.prefix};
	struct task_key_refs refs = {0};
	int ret;

	ret = task_walk_paths(r, collect_cb, &c);
	if (ret == 0) {
		task_run_set_total(r, c.c.n);
		for (size_t i = 0; i < c.c.n && !task_run_canceled(r); i++) {
			const struct task_cand *k = &c.c.v[i];
			const char *code = NULL;
			int err = export_one(r, &refs, k->rel, k->ino, &code);

			task_run_file_done(r, k->rel, err, code);
		}
	}
	task_cands_release(&c.c);
	task_key_refs_free(&refs);
	return ret;
}
