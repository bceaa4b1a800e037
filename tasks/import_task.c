// SPDX-License-Identifier: MIT
/*
 * import_task — IMPORT_METADATA_FROM_REPOSITORY: bring the metadata of new
 * and changed S3 objects into a live file system (docs/FSX-SEMANTICS.md).
 *
 * DESIGN
 *
 * Built on the first-mount import's pieces (import_i.h), in five steps:
 *
 * 1. Paths: each s3://bucket/key… of the request (none: the whole linked
 *    prefix) selects the objects whose keys start with key; paths inside
 *    another one are dropped. A path outside the repository fails the task.
 * 2. List every selected key (imp_list_cb) and plan the tree (imp_plan):
 *    parents, leaf names, keys that cannot be POSIX paths. TotalCount is the
 *    number of keys listed; every key is reported exactly once.
 * 3. Classify each key against the store, in short read transactions
 *    (CLASSIFY_BATCH keys each): no inode at its path -> new; an inode with
 *    the listed ETag -> unchanged, unless the object's LastModified is newer
 *    than the one recorded (a metadata-only rewrite keeps the ETag) ->
 *    metadata only (data, state and cache untouched; silently skipped for
 *    new/dirty inodes, whose data agrees); a new/dirty inode (or one backed
 *    by another key: a local rename or hard link) with another ETag ->
 *    LOCAL_CHANGES_CONFLICT, unless the key's object is the one a name
 *    that left here stood for (meta.h, gone): unchanged then; a name of
 *    another type on the way -> PATH_TYPE_CONFLICT; otherwise changed.
 * 4. HeadObject the new and changed keys in parallel (imp_fetch_all, in
 *    tolerant mode: a failed HEAD fails only its key, S3_ACCESS_DENIED or
 *    S3_ERROR; a key gone meanwhile counts as done, nothing to import).
 * 5. Apply in write transactions of APPLY_BATCH keys, checking cancellation
 *    between them. Each key is checked again inside the transaction (the
 *    file system is live): new ones are created as the first-mount import
 *    would (files released, empty files archived, symlink targets written,
 *    missing directories created, nlink and mtime of parents updated);
 *    changed regular files get size, POSIX metadata, ETag and S3 times from
 *    HEAD, lose their chunk records and cached data and turn released
 *    (hydrate_invalidate_begin/_end bracket the transaction so an open file
 *    never mixes old and new bytes); changed symlinks get their new target;
 *    changed directory markers update the directory's metadata.
 *
 * Counting: an unchanged key counts as succeeded (FSx counts files
 * processed), as does a key that vanished before its HEAD. Deletions are
 * never applied: local names whose objects are gone stay as they are.
 *
 * Error codes in the report: INVALID_KEY (not a POSIX path),
 * PATH_TYPE_CONFLICT (a file key where a directory is, or a non-directory
 * on the way to a key; of a file key "d" next to keys "d/…", the directory
 * wins unless a file "d" is already there), LOCAL_CHANGES_CONFLICT,
 * S3_ACCESS_DENIED, S3_ERROR, LOCAL_IO_ERROR.
 *
 * Locks: none of its own. Per batch, the invalidated files' io locks (taken
 * in hydrate_invalidate_begin) are held across the batch's write
 * transaction, never across network I/O.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "tasks/import_i.h"
#include "tasks/tasks_i.h"

#define CLASSIFY_BATCH 1000
#define APPLY_BATCH    500

enum act {
	ACT_SAME = 0, /* nothing to do: succeeded */
	ACT_NEW,      /* no inode at its path: create */
	ACT_CHANGED,  /* ETag differs: update */
	ACT_META,     /* same ETag, newer LastModified: metadata only */
	ACT_FAIL,     /* failed with code */
	ACT_PENDING,  /* the local inode's metadata is still to come */
};

struct tobj {
	enum act act;
	bool local_reg;	  /* ACT_CHANGED: the local inode is a regular file */
	const char *code; /* ACT_FAIL */
	uint64_t ino;	  /* ACT_CHANGED/META: the local inode */
	char *letag;	  /* ACT_CHANGED/META: its ETag when classified */
};

struct tdir {
	uint32_t stamp; /* the transaction that resolved it */
	int status;	/* 0: exists (imp_dir.ino), -ENOENT, -ENOTDIR, -errno */
	bool created;	/* by the transaction of stamp */
};

struct change {
	uint64_t ino;
	int old_state, new_state;
};

/* One apply batch's per-key outcome. */
struct slot {
	size_t i;		 /* object index */
	const char *code;	 /* NULL: succeeded */
	struct hydrate_file *hf; /* invalidation bracket */
	bool updated_reg;	 /* a regular file's data was dropped */
	bool new_link;		 /* a new symlink's data file was written */
	bool busy; /* open with passthrough: its data cannot change now */
	struct change ch; /* ch.ino 0: no state change to tell */
};

struct itask {
	struct task_run *r;
	const struct task_engine_config *cfg;
	struct imp im;
	struct tobj *t;
	struct tdir *td;
	uint32_t stamp;
	int64_t now;
	int syncfd; /* symlink data files written in this batch */
	uint64_t nnew, nchanged, nsame, nfailed;
	struct task_key_refs refs; /* built when first needed */
};

/* ---- step 1: paths ---- */

/* The key prefix a request path selects; -EINVAL outside the repository. */
static int path_key(const struct task_mount_info *m, const char *path,
		    char **key)
{
	size_t blen = strlen(m->bucket), plen = strlen(m->prefix);
	const char *rest;

	*key = NULL;
	if (!path || !*path) {
		*key = strdup(m->prefix);
		return *key ? 0 : -ENOMEM;
	}
	if (strncmp(path, "s3://", 5) != 0 ||
	    strncmp(path + 5, m->bucket, blen) != 0)
		return -EINVAL;
	rest = path + 5 + blen;
	if (*rest == '/')
		rest++;
	else if (*rest)
		return -EINVAL; /* another bucket: "s3://bucketx" */
	if (strncmp(rest, m->prefix, plen) == 0)
		*key = strdup(rest);
	else if (plen && strlen(rest) == plen - 1 &&
		 strncmp(rest, m->prefix, plen - 1) == 0)
		*key = strdup(m->prefix); /* "s3://bucket/prefix" */
	else
		return -EINVAL;
	return *key ? 0 : -ENOMEM;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keys to list, sorted, none inside another. Malloc'ed; -EINVAL after
 * failing the task. */
static int list_keys(struct itask *it, char ***out, size_t *nout)
{
	const struct task_request *q = task_run_request(it->r);
	size_t n = q->npaths ? q->npaths : 1, kept = 0;
	char **keys = calloc(n, sizeof(*keys));
	int ret = 0;

	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n && !ret; i++) {
		ret = path_key(&it->cfg->mount, q->npaths ? q->paths[i] : NULL,
			       &keys[i]);
		if (ret == -EINVAL)
			task_run_fail(it->r,
				      "Path %s is outside the linked data "
				      "repository s3://%s/%s",
				      q->paths[i], it->cfg->mount.bucket,
				      it->cfg->mount.prefix);
	}
	if (ret) {
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
		free(keys);
		return ret;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (kept && strncmp(keys[i], keys[kept - 1],
				    strlen(keys[kept - 1])) == 0) {
			free(keys[i]); /* inside the previous one */
			continue;
		}
		keys[kept++] = keys[i];
	}
	*out = keys;
	*nout = kept;
	return 0;
}

/* ---- step 3: classification ---- */

static const char *rel_of(const struct itask *it, const struct imp_obj *o)
{
	const char *rel = o->key + it->im.plen;

	return *rel ? rel : "/";
}

static void dir_name(const struct imp_dir *dir, char name[IMP_NAME_MAX + 1])
{
	memcpy(name, dir->path + dir->len - dir->namelen, dir->namelen);
	name[dir->namelen] = '\0';
}

/* Read-modify-write of a parent that gained an entry. */
static void parent_touch(struct itask *it, struct meta_txn *txn, uint64_t pino,
			 bool subdir)
{
	struct meta_inode p = {0};

	if (meta_inode_get(txn, pino, &p) < 0)
		return; /* a lookup error does not stick; the dentry put did */
	if (subdir)
		p.nlink++;
	p.mtime_ns = p.ctime_ns = it->now;
	meta_inode_put(txn, &p);
	meta_inode_release(&p);
}

static int create_dir(struct itask *it, struct meta_txn *txn, size_t d)
{
	struct imp_dir *dir = &it->im.dirs[d];
	uint64_t pino = it->im.dirs[dir->parent].ino;
	char name[IMP_NAME_MAX + 1];
	struct meta_inode in;
	int ret;

	ret = meta_ino_alloc(txn, &dir->ino);
	if (ret < 0)
		return ret;
	imp_dir_inode(&it->im, d, &in);
	in.nlink = 2; /* subdirectories add theirs as they are created */
	dir_name(dir, name);
	meta_inode_put(txn, &in);
	ret = meta_dentry_put(txn, pino, name, dir->ino, false);
	if (ret < 0)
		return ret;
	parent_touch(it, txn, pino, true);
	it->td[d].created = true;
	return meta_txn_error(txn);
}

/*
 * Directory d in txn: 0 when it is there (im.dirs[d].ino), -ENOENT when it
 * is not (created instead when create), -ENOTDIR when a non-directory is in
 * the way, -errno. Cached per transaction (it->stamp).
 */
static int resolve_dir(struct itask *it, struct meta_txn *txn, size_t d,
		       bool create)
{
	struct imp_dir *dir = &it->im.dirs[d];
	struct tdir *td = &it->td[d];
	struct meta_inode mi = {0};
	char name[IMP_NAME_MAX + 1];
	uint64_t ino;
	int ret;

	if (td->stamp == it->stamp && (td->status != -ENOENT || !create))
		return td->status;
	td->stamp = it->stamp;
	td->created = false;
	if (d == 0) {
		dir->ino = META_ROOT_INO;
		return td->status = 0;
	}
	ret = resolve_dir(it, txn, dir->parent, create);
	if (ret == 0) {
		dir_name(dir, name);
		ret = meta_dentry_get(txn, it->im.dirs[dir->parent].ino, name,
				      &ino);
		if (ret == 0)
			ret = meta_inode_get(txn, ino, &mi);
		if (ret == 0) {
			dir->ino = ino;
			ret = S_ISDIR(mi.mode) ? 0 : -ENOTDIR;
		} else if (ret == -ENOENT && create) {
			ret = create_dir(it, txn, d);
		}
	}
	meta_inode_release(&mi);
	return td->status = ret;
}

/*
 * Does the inode carry local changes that win over S3? new and dirty ones
 * do; the root always starts new (it has no object of its own), so there
 * only dirty counts and a "prefix/" marker updates it otherwise.
 */
static bool local_changes(const struct meta_inode *mi)
{
	if (mi->ino == META_ROOT_INO)
		return mi->state == META_DIRTY;
	return mi->state == META_NEW || mi->state == META_DIRTY;
}

static void set_fail(struct tobj *t, const char *code)
{
	t->act = ACT_FAIL;
	t->code = code;
}

/*
 * Rewritten with the same content (a metadata-only change, e.g. a copy with
 * new x-amz-meta-file-* headers keeps the ETag)? Whole seconds: HeadObject's
 * Last-Modified has no more. An export records the time after its upload,
 * so its own object never looks newer.
 */
static bool newer_object(const struct imp_obj *o, const struct meta_inode *mi)
{
	return o->mtime_ns / 1000000000 > mi->s3_mtime_ns / 1000000000;
}

/*
 * Is o the object a file here left when it was deleted or replaced (meta.h,
 * gone)? Then the file now at its path replaced it, and S3 has not changed
 * since: nothing to import, no conflict.
 */
static bool replaced_here(struct meta_txn *txn, const struct imp_obj *o)
{
	char etag[80];

	return meta_gone_get(txn, o->key, etag, sizeof(etag)) == 0 &&
	       strcmp(etag, o->etag) == 0;
}

/*
 * Does another file here still stand on the object at o's key, unchanged?
 * A file renamed away, or below a renamed directory, keeps its old key
 * until it is exported under its new name (keyrefs.c). Then the file now at
 * o's path replaced it as far as S3 is concerned, like replaced_here().
 */
static bool stands_elsewhere(struct itask *it, struct meta_txn *txn,
			     const struct imp_obj *o, uint64_t self)
{
	uint64_t h = task_key_hash(o->key);
	struct task_key_refs *k = &it->refs;

	if (task_key_refs_build(txn, k) < 0)
		return false;
	for (size_t i = task_key_ref_lower(k, h); i < k->n && k->v[i].hash == h;
	     i++) {
		struct meta_inode mi = {0};
		bool on;

		if (k->v[i].ino == self ||
		    meta_inode_get(txn, k->v[i].ino, &mi) != 0)
			continue;
		on = mi.s3_key && strcmp(mi.s3_key, o->key) == 0 &&
		     strcmp(mi.etag, o->etag) == 0 &&
		     !(mi.flags & META_F_UNLINKED);
		meta_inode_release(&mi);
		if (on)
			return true;
	}
	return false;
}

/* An existing inode at the path of object o: what to do with it. */
static int classify_existing(struct itask *it, struct meta_txn *txn,
			     struct tobj *t, const struct imp_obj *o,
			     const struct meta_inode *mi, bool want_dir)
{
	bool same = mi->etag[0] && strcmp(mi->etag, o->etag) == 0;

	if (want_dir != !!S_ISDIR(mi->mode) ||
	    (!want_dir && !S_ISREG(mi->mode) && !S_ISLNK(mi->mode))) {
		set_fail(t, "PATH_TYPE_CONFLICT");
		return 0;
	}
	if (same && (!newer_object(o, mi) || local_changes(mi))) {
		/* Local metadata changes win silently over remote ones: the
		 * data agrees, and the next export sends them. */
		t->act = ACT_SAME;
		return 0;
	}
	if (local_changes(mi) ||
	    (!want_dir && mi->s3_key && strcmp(mi->s3_key, o->key) != 0)) {
		if ((!mi->s3_key || strcmp(mi->s3_key, o->key) != 0) &&
		    (replaced_here(txn, o) ||
		     stands_elsewhere(it, txn, o, mi->ino))) {
			t->act = ACT_SAME;
			return 0;
		}
		set_fail(t, "LOCAL_CHANGES_CONFLICT");
		return 0;
	}
	t->act = same ? ACT_META : ACT_CHANGED;
	t->ino = mi->ino;
	t->local_reg = S_ISREG(mi->mode);
	t->letag = strdup(mi->etag);
	return t->letag ? 0 : -ENOMEM;
}

/*
 * A file key shadowed by a directory key of the same name ("d" next to
 * "d/x"): the first-mount import lets the directory win. Here a file that
 * is already at that path wins instead (the keys below it then fail).
 */
static bool local_file_at(struct itask *it, struct meta_txn *txn,
			  const struct imp_obj *o)
{
	struct meta_inode mi = {0};
	uint64_t ino;
	bool file;

	if (resolve_dir(it, txn, o->dir, false) != 0 ||
	    meta_dentry_get(txn, it->im.dirs[o->dir].ino, o->key + o->leaf,
			    &ino) != 0 ||
	    meta_inode_get(txn, ino, &mi) != 0)
		return false;
	file = !S_ISDIR(mi.mode);
	meta_inode_release(&mi);
	return file;
}

static int classify_one(struct itask *it, struct meta_txn *txn, size_t i)
{
	struct imp_obj *o = &it->im.objs[i];
	struct tobj *t = &it->t[i];
	struct meta_inode mi = {0};
	uint64_t ino = META_ROOT_INO;
	int ret = 0;

	switch (o->kind) {
	case IMP_SKIP:
		if (o->err == -EISDIR && local_file_at(it, txn, o)) {
			o->kind = IMP_FILE; /* what is here wins */
			o->err = 0;
			return classify_one(it, txn, i);
		}
		set_fail(t, o->err == -EISDIR ? "PATH_TYPE_CONFLICT"
					      : "INVALID_KEY");
		return 0;
	case IMP_FILE:
		ret = resolve_dir(it, txn, o->dir, false);
		if (ret == 0)
			ret = meta_dentry_get(txn, it->im.dirs[o->dir].ino,
					      o->key + o->leaf, &ino);
		break;
	case IMP_DIR:
		ret = resolve_dir(it, txn, o->dir, false);
		ino = it->im.dirs[o->dir].ino;
		break;
	case IMP_ROOT:
		break;
	}
	if (ret == 0)
		ret = meta_inode_get(txn, ino, &mi);
	if (ret == 0 && (mi.flags & META_F_HEAD_PENDING)) {
		t->act = ACT_PENDING; /* completed, then classified again */
		t->ino = ino;
	} else if (ret == 0) {
		ret = classify_existing(it, txn, t, o, &mi,
					o->kind != IMP_FILE);
	} else if (ret == -ENOENT) {
		t->act = ACT_NEW;
		ret = 0;
	} else if (ret == -ENOTDIR) {
		set_fail(t, "PATH_TYPE_CONFLICT");
		ret = 0;
	}
	meta_inode_release(&mi);
	return ret;
}

/*
 * Keys whose local inode the lazy first-mount import left pending: the
 * filler completes them (in parallel, as the import would have made them),
 * then they are classified like the rest. One whose HEAD keeps failing
 * fails with S3_ERROR.
 */
static int classify_pending(struct itask *it)
{
	struct meta_txn *txn;
	uint64_t *inos;
	size_t n = 0;
	int ret;

	for (size_t i = 0; i < it->im.nobjs; i++)
		n += it->t[i].act == ACT_PENDING;
	if (!n)
		return 0;
	inos = malloc(n * sizeof(*inos));
	if (!inos)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < it->im.nobjs; i++)
		if (it->t[i].act == ACT_PENDING)
			inos[n++] = it->t[i].ino;
	task_filler_complete(it->cfg->filler, inos, n, NULL);
	free(inos);
	ret = meta_txn_begin(it->cfg->db, false, &txn);
	if (ret < 0)
		return ret;
	it->stamp++;
	for (size_t i = 0; i < it->im.nobjs && !ret; i++) {
		if (it->t[i].act != ACT_PENDING)
			continue;
		it->t[i].ino = 0;
		ret = classify_one(it, txn, i);
		if (ret == 0 && it->t[i].act == ACT_PENDING)
			set_fail(&it->t[i], "S3_ERROR");
	}
	meta_txn_abort(txn);
	return ret;
}

/* Every key's first verdict; new and changed ones become HEAD jobs. */
static int classify(struct itask *it)
{
	struct meta_txn *txn;
	int ret = 0;

	for (size_t i = 0; i < it->im.nobjs && !ret;) {
		size_t end = MIN(i + CLASSIFY_BATCH, it->im.nobjs);

		ret = meta_txn_begin(it->cfg->db, false, &txn);
		if (ret < 0)
			break;
		it->stamp++;
		for (; i < end && !ret; i++)
			ret = classify_one(it, txn, i);
		meta_txn_abort(txn);
	}
	if (ret == 0)
		ret = classify_pending(it);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < it->im.nobjs; i++)
		if (it->t[i].act != ACT_SAME && it->t[i].act != ACT_FAIL)
			it->im.jobs[it->im.njobs++] = i;
	return 0;
}

/* After the HEADs: keys that could not be fetched. */
static void after_fetch(struct itask *it)
{
	for (size_t i = 0; i < it->im.nobjs; i++) {
		struct imp_obj *o = &it->im.objs[i];
		struct tobj *t = &it->t[i];

		if (t->act == ACT_SAME || t->act == ACT_FAIL ||
		    o->kind != IMP_SKIP)
			continue;
		if (o->err == -ENOENT)
			t->act = ACT_SAME; /* gone: nothing to import */
		else
			set_fail(t, o->err == -EACCES ? "S3_ACCESS_DENIED"
						      : "S3_ERROR");
	}
}

/* ---- step 5: applying ---- */

/* POSIX metadata and S3 identity of object o onto an existing inode. */
static void take_head(struct meta_inode *mi, const struct imp_obj *o,
		      uint32_t type)
{
	imp_take_posix(mi, o, type);
	mi->s3_mtime_ns = o->have_head ? o->head.mtime_ns : o->mtime_ns;
	snprintf(mi->etag, sizeof(mi->etag), "%s",
		 o->have_head ? o->head.etag : o->etag);
	mi->generation++;
}

static const char *new_file(struct itask *it, struct meta_txn *txn,
			    struct slot *s, uint64_t pino)
{
	struct imp_obj *o = &it->im.objs[s->i];
	struct meta_inode in;

	if (meta_ino_alloc(txn, &o->ino) < 0)
		return "LOCAL_IO_ERROR";
	if (o->symlink) {
		s->new_link = true;
		if (imp_link_write(it->cfg->cs, o->ino, o->link, &it->syncfd) <
		    0)
			return "LOCAL_IO_ERROR";
		meta_chunk_set(txn, o->ino, 0);
	}
	imp_file_inode(o, &in);
	meta_inode_put(txn, &in);
	meta_dentry_put(txn, pino, o->key + o->leaf, o->ino, false);
	parent_touch(it, txn, pino, false);
	if (!o->symlink)
		s->ch = (struct change){o->ino, -1, (int)in.state};
	it->nnew++;
	return NULL;
}

/* Same data, new POSIX metadata (and Last-Modified). */
static const char *update_meta(struct itask *it, struct meta_txn *txn,
			       struct meta_inode *mi, const struct imp_obj *o)
{
	take_head(mi, o, mi->mode & S_IFMT);
	meta_inode_put(txn, mi);
	it->nchanged++;
	return NULL;
}

static const char *update_file(struct itask *it, struct meta_txn *txn,
			       struct slot *s, struct meta_inode *mi)
{
	struct imp_obj *o = &it->im.objs[s->i];

	if (o->symlink != !!S_ISLNK(mi->mode))
		return "PATH_TYPE_CONFLICT";
	if (S_ISLNK(mi->mode)) {
		/* Written before the commit, like new targets: a failed
		 * commit leaves the new target under the old record. */
		if (imp_link_write(it->cfg->cs, mi->ino, o->link, &it->syncfd) <
		    0)
			return "LOCAL_IO_ERROR";
		take_head(mi, o, S_IFLNK);
		mi->size = mi->cached_bytes = strlen(o->link);
		mi->s3_size = o->head.size;
		meta_chunk_set(txn, mi->ino, 0);
		meta_inode_put(txn, mi);
		it->nchanged++;
		return NULL;
	}
	if (it->cfg->hy && !s->hf)
		/* could not hold off its readers; FILE_IN_USE: the kernel
		 * reads its cached bytes itself (passthrough) */
		return s->busy ? "FILE_IN_USE" : "LOCAL_IO_ERROR";
	take_head(mi, o, S_IFREG);
	mi->flags &= ~(uint32_t)META_F_DATA_CHANGED; /* S3's data is ours */
	mi->size = mi->s3_size = o->head.size;
	meta_chunk_clear(txn, mi->ino, 0);
	meta_lru_del(txn, mi->last_access_ns, mi->ino);
	mi->cached_bytes = 0;
	s->ch = (struct change){mi->ino, (int)mi->state,
				mi->size ? META_RELEASED : META_ARCHIVED};
	mi->state = (uint32_t)s->ch.new_state;
	meta_inode_put(txn, mi);
	s->updated_reg = true;
	it->nchanged++;
	return NULL;
}

/* A file or symlink key inside the transaction. */
static const char *apply_file(struct itask *it, struct meta_txn *txn,
			      struct slot *s)
{
	struct imp_obj *o = &it->im.objs[s->i];
	struct tobj *t = &it->t[s->i];
	struct meta_inode mi = {0};
	const char *code = NULL;
	uint64_t pino, ino;
	int ret;

	ret = resolve_dir(it, txn, o->dir, true);
	if (ret == -ENOTDIR)
		return "PATH_TYPE_CONFLICT";
	if (ret < 0)
		return "LOCAL_IO_ERROR";
	pino = it->im.dirs[o->dir].ino;
	ret = meta_dentry_get(txn, pino, o->key + o->leaf, &ino);
	if (ret == -ENOENT)
		return new_file(it, txn, s, pino);
	if (ret == 0)
		ret = meta_inode_get(txn, ino, &mi);
	if (ret < 0)
		return "LOCAL_IO_ERROR";
	if (S_ISDIR(mi.mode))
		code = "PATH_TYPE_CONFLICT";
	else if (t->act == ACT_NEW || ino != t->ino ||
		 strcmp(mi.etag, t->letag) != 0 || local_changes(&mi))
		code = "LOCAL_CHANGES_CONFLICT"; /* changed meanwhile */
	else if (strcmp(mi.etag, o->head.etag) == 0)
		code = update_meta(it, txn, &mi, o); /* or changed back */
	else if (t->act == ACT_CHANGED)
		code = update_file(it, txn, s, &mi);
	else
		it->nsame++; /* rewritten since the listing: next time */
	meta_inode_release(&mi);
	return code;
}

/* A directory marker (or the prefix's own, d = 0) inside the transaction. */
static const char *apply_dir(struct itask *it, struct meta_txn *txn,
			     struct slot *s, size_t d)
{
	struct imp_obj *o = &it->im.objs[s->i];
	struct meta_inode mi = {0};
	const char *etag = o->have_head ? o->head.etag : o->etag;
	const char *code = NULL;
	int ret;

	ret = resolve_dir(it, txn, d, true);
	if (ret == -ENOTDIR)
		return "PATH_TYPE_CONFLICT";
	if (ret < 0)
		return "LOCAL_IO_ERROR";
	if (it->td[d].created) {
		it->nnew++;
		return NULL;
	}
	if (!o->have_head) /* gone before its HEAD: an implicit directory */
		return NULL;
	if (meta_inode_get(txn, it->im.dirs[d].ino, &mi) < 0)
		return "LOCAL_IO_ERROR";
	if (strcmp(mi.etag, etag) == 0 &&
	    (it->t[s->i].act != ACT_META || local_changes(&mi))) {
		it->nsame++;
	} else if (local_changes(&mi)) {
		code = "LOCAL_CHANGES_CONFLICT";
	} else {
		take_head(&mi, o, S_IFDIR);
		if (!mi.s3_key)
			mi.s3_key = strdup(o->key);
		if (!mi.s3_key)
			code = "LOCAL_IO_ERROR";
		else
			meta_inode_put(txn, &mi);
		it->nchanged += !code;
	}
	meta_inode_release(&mi);
	return code;
}

static const char *apply_one(struct itask *it, struct meta_txn *txn,
			     struct slot *s)
{
	struct imp_obj *o = &it->im.objs[s->i];

	switch (o->kind) {
	case IMP_FILE:
		return apply_file(it, txn, s);
	case IMP_DIR:
		return apply_dir(it, txn, s, o->dir);
	case IMP_ROOT:
		return apply_dir(it, txn, s, 0);
	case IMP_SKIP:
		break;
	}
	return NULL;
}

/* Hold off readers and writers of the regular files the batch changes. */
static void batch_begin(struct itask *it, struct slot *b, size_t n)
{
	for (size_t k = 0; k < n && it->cfg->hy; k++) {
		const struct tobj *t = &it->t[b[k].i];
		int ret;

		if (t->act != ACT_CHANGED || !t->local_reg ||
		    it->im.objs[b[k].i].symlink)
			continue;
		ret = hydrate_invalidate_begin(it->cfg->hy, t->ino, &b[k].hf);
		b[k].busy = ret == -EBUSY;
		if (ret < 0 && ret != -ENOENT && ret != -EBUSY)
			log_warn("import: inode %" PRIu64 ": %s", t->ino,
				 strerror(-ret));
	}
}

/* After the transaction: data, open files, counters, report. */
static void batch_end(struct itask *it, struct slot *b, size_t n, int ret)
{
	const struct task_engine_config *cfg = it->cfg;

	for (size_t k = 0; k < n; k++) {
		struct slot *s = &b[k];
		bool ok = ret == 0 && !s->code;

		if (s->hf)
			hydrate_invalidate_end(s->hf, ok && s->updated_reg);
		else if (ok && s->updated_reg)
			chunk_punch(cfg->cs, s->ch.ino);
		if (ret < 0 && s->new_link)
			chunk_remove(cfg->cs, it->im.objs[s->i].ino);
		if (ret < 0 && !s->code)
			s->code = "LOCAL_IO_ERROR";
		/* The kernel caches attributes and pages of a changed
		 * file: drop them (new names show after the short
		 * negative-entry timeout). */
		if (!s->code && s->ch.ino && s->ch.old_state >= 0 &&
		    cfg->inval_inode)
			cfg->inval_inode(cfg->cb_arg, s->ch.ino);
		/* A new file's name may sit in the kernel as a negative
		 * entry from an earlier lookup. */
		if (!s->code && s->ch.ino && s->ch.old_state < 0 &&
		    cfg->inval_entry) {
			const struct imp_obj *o = &it->im.objs[s->i];
			if (o->kind == IMP_FILE)
				cfg->inval_entry(cfg->cb_arg,
						 it->im.dirs[o->dir].ino,
						 o->key + o->leaf);
		}
		if (!s->code && s->ch.ino && cfg->on_change &&
		    s->ch.old_state != s->ch.new_state)
			cfg->on_change(cfg->cb_arg, s->ch.ino, s->ch.old_state,
				       s->ch.new_state);
		if (s->code)
			it->nfailed++;
		task_run_file_done(it->r, rel_of(it, &it->im.objs[s->i]),
				   s->code ? -EIO : 0, s->code);
	}
}

static void apply_batch(struct itask *it, struct slot *b, size_t n)
{
	struct meta_txn *txn = NULL;
	int ret;

	batch_begin(it, b, n);
	it->stamp++;
	it->now = time_now_ns();
	it->syncfd = -1;
	ret = meta_txn_begin(it->cfg->db, true, &txn);
	for (size_t k = 0; k < n && ret == 0; k++) {
		b[k].code = apply_one(it, txn, &b[k]);
		/* A failed put sticks: the whole batch fails at the commit. */
		ret = meta_txn_error(txn);
	}
	if (ret == 0)
		ret = imp_links_sync(it->syncfd);
	else if (it->syncfd >= 0)
		close(it->syncfd);
	it->syncfd = -1;
	if (ret == 0)
		ret = meta_txn_commit(txn);
	else
		meta_txn_abort(txn);
	if (ret < 0)
		log_error("import: applying %zu keys: %s", n, strerror(-ret));
	batch_end(it, b, n, ret);
}

static int apply(struct itask *it)
{
	struct slot *b = calloc(APPLY_BATCH, sizeof(*b));
	size_t n = 0;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i <= it->im.nobjs; i++) {
		struct tobj *t = i < it->im.nobjs ? &it->t[i] : NULL;

		if (t && (t->act == ACT_SAME || t->act == ACT_FAIL)) {
			if (t->act == ACT_SAME)
				it->nsame++;
			else
				it->nfailed++;
			task_run_file_done(it->r, rel_of(it, &it->im.objs[i]),
					   t->act == ACT_SAME ? 0 : -EIO,
					   t->code);
			continue;
		}
		if (t)
			b[n++] = (struct slot){.i = i};
		if (n == APPLY_BATCH || (!t && n)) {
			if (task_run_canceled(it->r))
				break;
			apply_batch(it, b, n);
			memset(b, 0, n * sizeof(*b));
			n = 0;
		}
	}
	free(b);
	return 0;
}

/* ---- the task ---- */

static bool stop_cb(void *arg)
{
	return task_run_canceled(arg);
}

static int list_all(struct itask *it, char **keys, size_t nkeys)
{
	const struct task_engine_config *cfg = it->cfg;

	for (size_t k = 0; k < nkeys; k++) {
		int ret =
			s3_list_objects(cfg->s3, keys[k], imp_list_cb, &it->im);

		if (ret < 0) {
			task_run_fail(
				it->r, "Listing s3://%s/%s: %s%s%s",
				cfg->mount.bucket, keys[k], strerror(-ret),
				*s3_error_code() ? " " : "", s3_error_code());
			return ret;
		}
		if (task_run_canceled(it->r))
			return -ECANCELED;
	}
	return 0;
}

int task_exec_import(struct task_run *r)
{
	struct itask it = {.r = r, .cfg = task_run_config(r), .syncfd = -1};
	char **keys = NULL, *pfx = NULL;
	const char *prefix = it.cfg->mount.prefix ? it.cfg->mount.prefix : "";
	size_t nkeys = 0;
	int ret;

	if (*prefix && prefix[strlen(prefix) - 1] != '/') {
		if (asprintf(&pfx, "%s/", prefix) < 0)
			return -ENOMEM;
		prefix = pfx;
	}
	imp_init(&it.im, it.cfg->s3, it.cfg->cs, prefix);
	it.im.tolerant = true;
	it.im.stop = stop_cb;
	it.im.stop_arg = r;

	ret = list_keys(&it, &keys, &nkeys);
	if (ret == 0)
		ret = list_all(&it, keys, nkeys);
	if (ret < 0)
		goto out;
	task_run_set_total(r, it.im.nobjs);
	ret = imp_plan(&it.im);
	if (ret == 0) {
		it.t = calloc(it.im.nobjs + 1, sizeof(*it.t));
		it.td = calloc(it.im.ndirs + 1, sizeof(*it.td));
		if (!it.t || !it.td)
			ret = -ENOMEM;
	}
	if (ret == 0)
		ret = classify(&it);
	if (ret == 0 && it.im.njobs > 1000)
		log_info("import: %zu new or changed keys of %zu to inspect",
			 it.im.njobs, it.im.nobjs);
	if (ret == 0)
		ret = imp_fetch_all(&it.im, 0);
	if (ret == -ECANCELED)
		goto out;
	if (ret == 0) {
		after_fetch(&it);
		imp_dir_times(&it.im);
		ret = apply(&it);
	}
	if (ret < 0 && ret != -ECANCELED)
		task_run_fail(r, "Import failed: %s", strerror(-ret));
	else
		log_info("import: %" PRIu64 " new, %" PRIu64
			 " changed, %" PRIu64 " unchanged, %" PRIu64
			 " failed of %zu keys",
			 it.nnew, it.nchanged, it.nsame, it.nfailed,
			 it.im.nobjs);
out:
	task_key_refs_free(&it.refs);
	for (size_t i = 0; it.t && i < it.im.nobjs; i++)
		free(it.t[i].letag);
	free(it.t);
	free(it.td);
	for (size_t k = 0; k < nkeys; k++)
		free(keys[k]);
	free(keys);
	imp_release(&it.im);
	free(pfx);
	return ret == -ECANCELED ? 0 : ret;
}
