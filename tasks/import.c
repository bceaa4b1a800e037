// SPDX-License-Identifier: MIT
/*
 * import — the metadata of an S3 prefix into an empty metadata store.
 *
 * DESIGN
 *
 * Four phases, only the last touches LMDB:
 *
 * 1. List every key under the prefix (ListObjectsV2) into an array.
 * 2. Plan the tree in memory: each key is split into components
 *    (task_key_split); every proper prefix becomes a directory, kept in a
 *    hash of relative paths ("a/b") -> index into `dirs` (the root is dirs[0],
 *    path ""). Keys ending in '/' are directory markers, carrying the
 *    directory's POSIX metadata. A file key whose path is also a directory
 *    (key "d" next to "d/f" or "d/") is skipped: the directory wins. Keys that
 *    cannot be POSIX paths are skipped. Each skipped key gets exactly one
 *    log_warn naming it. The key equal to the prefix itself ("prefix/")
 *    carries the metadata of the root.
 * 3. HeadObject every file and marker, `parallel` requests at a time: a pool
 *    of threads takes the next index under im->lock; the calling thread waits
 *    on im->cond and logs progress every 2 s. Symlink objects
 *    (file-permissions with S_IFLNK) are read whole (s3_get_range) by the
 *    same workers. No lock is held across a request.
 * 4. One write transaction: allocate inode numbers, write symlink targets to
 *    their data files (synced before the commit), put every inode and
 *    dentry, the root's link count and super "imported" = 1, commit. A
 *    failure anywhere leaves the store as it was (and removes the symlink
 *    data files written).
 *
 * Defaults (docs/FSX-SEMANTICS.md): no metadata headers -> S_IFREG|0755 or
 * S_IFDIR|0755, uid 0, gid 0, atime = mtime = ctime = LastModified; with
 * headers ctime is still LastModified (ctime is not stored in S3). A directory
 * that only exists as a key prefix (no marker) gets mode 040755, uid 0, gid 0
 * and, for all three times, the newest LastModified of the objects beneath it:
 * a stable answer (a remount of the same bucket shows the same times) that
 * also tells when something under it last changed.
 *
 * Lazy (the first mount): phase 3 HEADs only the "prefix/" marker (the
 * root's metadata; the kernel knows the root from the start). Every other
 * file and marker is written in phase 4 from its listing (size, ETag,
 * LastModified, the defaults above) with META_F_HEAD_PENDING; the metadata
 * filler (fill.c) HEADs them afterwards and applies what phase 3 would
 * have. Implicit directories take whole seconds of LastModified, as
 * HeadObject gives them, so both ways make the same tree.
 *
 * Phases 1-3 and the inode records are shared with the
 * IMPORT_METADATA_FROM_REPOSITORY task (import_task.c) through import_i.h;
 * the task HEADs only new and changed keys and applies them in short
 * transactions.
 *
 * Locks: im->lock only (the pool's index, counters and first error).
 */
#include "tasks/import_i.h"
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMPORT_LINK_MAX		4095 /* PATH_MAX - 1 */
#define IMPORT_MAXCOMPS		1024 /* S3 keys are at most 1024 bytes */
#define IMPORT_PROGRESS_NS	(2LL * 1000000000LL)
#define IMPORT_PARALLEL_DEFAULT 16
#define IMPORT_PARALLEL_MAX	256
#define IMPORT_DIR_SIZE		4096

int task_key_split(char *key, char **comps, size_t maxcomps, size_t *ncomps,
		   int *is_dir)
{
	size_t len, n = 0;
	int dir = 0;
	char *p;

	*ncomps = 0;
	*is_dir = 0;
	if (!key || !*key)
		return -EINVAL; /* the prefix itself */
	len = strlen(key);
	if (key[len - 1] == '/') {
		dir = 1;
		key[--len] = '\0';
		if (!len)
			return -EINVAL; /* "/" */
	}
	p = key;
	for (;;) {
		char *slash = strchr(p, '/');
		size_t clen = slash ? (size_t)(slash - p) : strlen(p);

		if (clen == 0 || clen > IMP_NAME_MAX)
			return -EINVAL;
		if (p[0] == '.' && (clen == 1 || (clen == 2 && p[1] == '.')))
			return -EINVAL;
		if (n == maxcomps)
			return -E2BIG;
		comps[n++] = p;
		if (!slash)
			break;
		*slash = '\0';
		p = slash + 1;
	}
	*ncomps = n;
	*is_dir = dir;
	return 0;
}

/* ---- phase 1: listing ---- */

int imp_list_cb(void *arg, struct s3_object *obj)
{
	struct imp *im = arg;
	struct imp_obj *o;
	int64_t now;

	if (!obj->key || strncmp(obj->key, im->prefix, im->plen) != 0)
		return 0; /* not under the prefix: cannot happen */
	if (im->nobjs == im->capobjs) {
		size_t cap = im->capobjs ? im->capobjs * 2 : 1024;
		void *p = realloc(im->objs, cap * sizeof(*im->objs));

		if (!p)
			return -ENOMEM;
		im->objs = p;
		im->capobjs = cap;
	}
	o = &im->objs[im->nobjs++];
	memset(o, 0, sizeof(*o));
	o->key = obj->key;
	obj->key = NULL;
	o->size = obj->size;
	o->mtime_ns = obj->mtime_ns;
	memcpy(o->etag, obj->etag, sizeof(o->etag));
	o->dir = o->leaf = IMP_NONE;
	now = time_mono_ns();
	if (now - im->last_log_ns >= IMPORT_PROGRESS_NS) {
		log_info("import: listed %zu objects", im->nobjs);
		im->last_log_ns = now;
	}
	return 0;
}

/* ---- phase 2: the plan ---- */

static size_t *hash_slot(struct imp *im, const char *path, size_t len)
{
	size_t i = (size_t)fnv1a64(path, len) & (im->hcap - 1);

	for (;; i = (i + 1) & (im->hcap - 1)) {
		size_t d = im->hash[i];

		if (d == IMP_NONE || (im->dirs[d].len == len &&
				      memcmp(im->dirs[d].path, path, len) == 0))
			return &im->hash[i];
	}
}

static int hash_grow(struct imp *im)
{
	size_t cap = im->hcap ? im->hcap * 2 : 1024;
	size_t *old = im->hash, oldcap = im->hcap;

	im->hash = malloc(cap * sizeof(*im->hash));
	if (!im->hash) {
		im->hash = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < cap; i++)
		im->hash[i] = IMP_NONE;
	im->hcap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i] != IMP_NONE)
			*hash_slot(im, im->dirs[old[i]].path,
				   im->dirs[old[i]].len) = old[i];
	free(old);
	return 0;
}

static size_t dir_find(struct imp *im, const char *path, size_t len)
{
	return *hash_slot(im, path, len);
}

/* Find or add the directory path (child of parent, name = last namelen
 * bytes); its index goes to *out. */
static int dir_get(struct imp *im, const char *path, size_t len, size_t namelen,
		   size_t parent, size_t *out)
{
	struct imp_dir *d;
	size_t *slot;
	int ret;

	if ((im->ndirs + 1) * 2 > im->hcap) {
		ret = hash_grow(im);
		if (ret)
			return ret;
	}
	slot = hash_slot(im, path, len);
	if (*slot != IMP_NONE) {
		*out = *slot;
		return 0;
	}
	if (im->ndirs == im->capdirs) {
		size_t cap = im->capdirs ? im->capdirs * 2 : 256;
		void *p = realloc(im->dirs, cap * sizeof(*im->dirs));

		if (!p)
			return -ENOMEM;
		im->dirs = p;
		im->capdirs = cap;
	}
	d = &im->dirs[im->ndirs];
	*d = (struct imp_dir){.path = path,
			      .len = len,
			      .namelen = namelen,
			      .parent = parent,
			      .newest_ns = INT64_MIN,
			      .marker = IMP_NONE};
	if (parent != IMP_NONE)
		im->dirs[parent].nsubdirs++;
	*slot = im->ndirs;
	*out = im->ndirs++;
	return 0;
}

/* Place one listed object: its directories, its kind and parent. */
static int plan_obj(struct imp *im, size_t i, char *scratch)
{
	struct imp_obj *o = &im->objs[i];
	const char *rel = o->key + im->plen;
	char *comps[IMPORT_MAXCOMPS];
	size_t n, ndirs, parent = 0;
	int is_dir, ret;

	if (!*rel) {
		o->kind = IMP_ROOT;
		return 0;
	}
	strcpy(scratch, rel);
	ret = task_key_split(scratch, comps, IMPORT_MAXCOMPS, &n, &is_dir);
	if (ret) {
		o->err = -EINVAL;
		log_warn("import: skipping key '%s': not a POSIX path (an "
			 "empty, "
			 "'.' or '..' component, or a name over %d bytes)",
			 o->key, IMP_NAME_MAX);
		return 0;
	}
	ndirs = is_dir ? n : n - 1;
	for (size_t c = 0; c < ndirs; c++) {
		size_t off = (size_t)(comps[c] - scratch);
		size_t namelen = strlen(comps[c]);

		ret = dir_get(im, rel, off + namelen, namelen, parent, &parent);
		if (ret)
			return ret;
	}
	o->dir = parent;
	if (is_dir) {
		o->kind = IMP_DIR;
		im->dirs[parent].marker = i;
	} else {
		o->kind = IMP_FILE;
		o->leaf = im->plen + (size_t)(comps[n - 1] - scratch);
	}
	return 0;
}

int imp_plan(struct imp *im)
{
	size_t maxlen = 0;
	char *scratch;
	int ret = 0;

	for (size_t i = 0; i < im->nobjs; i++)
		maxlen = MAX(maxlen, strlen(im->objs[i].key));
	scratch = malloc(maxlen + 1);
	im->jobs = malloc((im->nobjs + 1) * sizeof(*im->jobs));
	if (!scratch || !im->jobs) {
		free(scratch);
		return -ENOMEM;
	}
	/* The root: path "" */
	ret = dir_get(im, "", 0, 0, IMP_NONE, &(size_t){0});
	for (size_t i = 0; i < im->nobjs && !ret; i++)
		ret = plan_obj(im, i, scratch);
	free(scratch);
	if (ret)
		return ret;
	for (size_t i = 0; i < im->nobjs; i++) {
		struct imp_obj *o = &im->objs[i];
		const char *rel = o->key + im->plen;

		if (o->kind == IMP_FILE &&
		    dir_find(im, rel, strlen(rel)) != IMP_NONE) {
			log_warn("import: skipping key '%s': a directory of "
				 "that name exists (the directory wins)",
				 o->key);
			o->kind = IMP_SKIP;
			o->err = -EISDIR;
		}
	}
	return 0;
}

/* ---- phase 3: HeadObject (and symlink targets) in parallel ---- */

/* Read the target of a symlink object; false: import it as a file. */
static int fetch_link(struct imp *im, struct imp_obj *o)
{
	uint64_t size = o->head.size;
	size_t got = 0;
	char *buf;
	int ret;

	if (size == 0 || size > IMPORT_LINK_MAX) {
		log_warn("import: key '%s' is a symlink with a %" PRIu64
			 "-byte target; importing it as a regular file",
			 o->key, size);
		return 0;
	}
	buf = malloc((size_t)size + 1);
	if (!buf)
		return -ENOMEM;
	ret = s3_get_range(im->s3, o->key, o->head.etag, 0, (size_t)size, buf,
			   &got);
	if (ret == -ENOENT || ret == -ESTALE) {
		log_warn("import: skipping key '%s': it changed or vanished "
			 "during the import",
			 o->key);
		o->kind = IMP_SKIP;
		o->err = -ENOENT;
		free(buf);
		return 0;
	}
	if (!ret && got != size)
		ret = -EIO;
	if (ret) {
		free(buf);
		if (im->tolerant && ret != -ENOMEM) {
			o->kind = IMP_SKIP;
			o->err = ret;
			return 0;
		}
		log_error("import: reading symlink '%s': %s", o->key,
			  strerror(-ret));
		return ret;
	}
	buf[size] = '\0';
	if (memchr(buf, '\0', (size_t)size)) {
		log_warn("import: key '%s' is a symlink whose target holds a "
			 "NUL byte; importing it as a regular file",
			 o->key);
		free(buf);
		return 0;
	}
	o->link = buf;
	o->symlink = true;
	return 0;
}

int imp_fetch_one(struct imp *im, struct imp_obj *o)
{
	int ret;

	ret = s3_head_object(im->s3, o->key, &o->head);
	if (ret == -ENOENT) {
		if (o->kind == IMP_FILE) {
			log_warn("import: skipping key '%s': it vanished "
				 "during the import",
				 o->key);
			o->kind = IMP_SKIP;
			o->err = -ENOENT;
		}
		return 0; /* a vanished marker: an implicit directory */
	}
	if (ret && im->tolerant && ret != -ENOMEM) {
		o->kind = IMP_SKIP;
		o->err = ret;
		return 0;
	}
	if (ret) {
		log_error("import: HeadObject '%s': %s%s%s", o->key,
			  strerror(-ret), *s3_error_code() ? " " : "",
			  s3_error_code());
		return ret;
	}
	o->have_head = true;
	if (o->kind == IMP_FILE && (o->head.have & S3_HAVE_MODE) &&
	    S_ISLNK(o->head.mode))
		return fetch_link(im, o);
	return 0;
}

static void *worker_main(void *arg)
{
	struct imp *im = arg;

	for (;;) {
		bool stop = im->stop && im->stop(im->stop_arg);
		size_t i;
		int ret;

		pthread_mutex_lock(&im->lock);
		if (stop && !im->err)
			im->err = -ECANCELED;
		if (im->err || im->next == im->njobs) {
			im->running--;
			pthread_cond_broadcast(&im->cond);
			pthread_mutex_unlock(&im->lock);
			return NULL;
		}
		i = im->jobs[im->next++];
		pthread_mutex_unlock(&im->lock);

		ret = imp_fetch_one(im, &im->objs[i]);

		pthread_mutex_lock(&im->lock);
		if (ret && !im->err)
			im->err = ret;
		im->done++;
		pthread_mutex_unlock(&im->lock);
	}
}

static void wait_workers(struct imp *im)
{
	struct timespec ts;

	pthread_mutex_lock(&im->lock);
	while (im->running > 0) {
		ts = time_deadline(CLOCK_MONOTONIC, 200 * 1000000LL);
		pthread_cond_timedwait(&im->cond, &im->lock, &ts);
		if (im->running > 0 &&
		    time_mono_ns() - im->last_log_ns >= IMPORT_PROGRESS_NS) {
			log_info("import: %zu/%zu objects", im->done,
				 im->njobs);
			im->last_log_ns = time_mono_ns();
		}
	}
	pthread_mutex_unlock(&im->lock);
}

int imp_fetch_all(struct imp *im, int parallel)
{
	pthread_t *th;
	size_t n, started = 0;

	if (!im->njobs)
		return 0;
	if (parallel <= 0)
		parallel = IMPORT_PARALLEL_DEFAULT;
	n = MIN((size_t)MIN(parallel, IMPORT_PARALLEL_MAX), im->njobs);
	th = calloc(n, sizeof(*th));
	if (!th)
		return -ENOMEM;
	im->running = (int)n;
	for (; started < n; started++)
		if (pthread_create(&th[started], NULL, worker_main, im) != 0)
			break;
	if (started < n) {
		pthread_mutex_lock(&im->lock);
		im->running -= (int)(n - started);
		pthread_mutex_unlock(&im->lock);
		if (!started) { /* no thread at all: do it here */
			im->running = 1;
			worker_main(im);
		}
	}
	wait_workers(im);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	return im->err;
}

/* ---- phase 4: the transaction ---- */

void imp_posix_from_head(struct meta_inode *in, const struct imp_obj *o)
{
	const struct s3_object *h = &o->head;
	int64_t lm = o->have_head ? h->mtime_ns : o->mtime_ns;

	in->mode = 0755;
	in->uid = in->gid = 0;
	in->atime_ns = in->mtime_ns = in->ctime_ns = lm;
	if (!o->have_head)
		return;
	if (h->have & S3_HAVE_MODE)
		in->mode = h->mode & 07777;
	if (h->have & S3_HAVE_UID)
		in->uid = h->uid;
	if (h->have & S3_HAVE_GID)
		in->gid = h->gid;
	if (h->have & S3_HAVE_ATIME)
		in->atime_ns = h->atime_ns;
	if (h->have & S3_HAVE_MTIME)
		in->mtime_ns = h->file_mtime_ns;
}

void imp_take_posix(struct meta_inode *mi, const struct imp_obj *o,
		    uint32_t type)
{
	struct meta_inode h = {0};

	imp_posix_from_head(&h, o);
	mi->mode = type | (h.mode & 07777);
	mi->uid = h.uid;
	mi->gid = h.gid;
	mi->atime_ns = h.atime_ns;
	mi->mtime_ns = h.mtime_ns;
	mi->ctime_ns = h.ctime_ns;
}

/*
 * Times of implicit directories: the newest LastModified of the objects
 * imported beneath (HeadObject's, as for the files themselves).
 */
void imp_dir_times(struct imp *im)
{
	for (size_t i = 0; i < im->nobjs; i++) {
		const struct imp_obj *o = &im->objs[i];
		int64_t lm = o->have_head ? o->head.mtime_ns : o->mtime_ns;

		if (o->kind != IMP_FILE && o->kind != IMP_DIR)
			continue;
		/* Last-Modified of HeadObject has whole seconds; a listing
		 * may have milliseconds. Lazy or not, the same answer. */
		if (o->pending)
			lm -= lm % 1000000000;
		for (size_t d = o->dir; d != IMP_NONE; d = im->dirs[d].parent)
			im->dirs[d].newest_ns = MAX(im->dirs[d].newest_ns, lm);
	}
}

void imp_dir_inode(const struct imp *im, size_t d, struct meta_inode *in)
{
	const struct imp_dir *dir = &im->dirs[d];

	memset(in, 0, sizeof(*in));
	in->ino = dir->ino;
	if (dir->marker != IMP_NONE) {
		const struct imp_obj *o = &im->objs[dir->marker];

		imp_posix_from_head(in, o);
		in->s3_key = o->key;
		in->s3_mtime_ns = o->have_head ? o->head.mtime_ns : o->mtime_ns;
		if (o->have_head)
			snprintf(in->etag, sizeof(in->etag), "%s",
				 o->head.etag);
		if (o->pending) {
			snprintf(in->etag, sizeof(in->etag), "%s", o->etag);
			in->flags |= META_F_HEAD_PENDING;
		}
	} else {
		int64_t t = dir->newest_ns != INT64_MIN ? dir->newest_ns
							: time_now_ns();

		in->mode = 0755;
		in->atime_ns = in->mtime_ns = in->ctime_ns = t;
	}
	in->mode = S_IFDIR | (in->mode & 07777);
	in->nlink = 2 + dir->nsubdirs;
	in->state = META_ARCHIVED;
	in->size = IMPORT_DIR_SIZE;
	in->generation = 1;
	in->last_access_ns = in->atime_ns;
}

static int put_dir(struct imp *im, struct meta_txn *txn, size_t d)
{
	const struct imp_dir *dir = &im->dirs[d];
	struct meta_inode in;
	char name[IMP_NAME_MAX + 1];

	imp_dir_inode(im, d, &in);
	meta_inode_put(txn, &in);
	memcpy(name, dir->path + dir->len - dir->namelen, dir->namelen);
	name[dir->namelen] = '\0';
	return meta_dentry_put(txn, im->dirs[dir->parent].ino, name, in.ino,
			       false);
}

void imp_file_inode(const struct imp_obj *o, struct meta_inode *in)
{
	memset(in, 0, sizeof(*in));
	in->ino = o->ino;
	imp_posix_from_head(in, o);
	in->nlink = 1;
	in->generation = 1;
	in->last_access_ns = in->atime_ns;
	in->s3_key = o->key;
	in->s3_size = o->head.size;
	in->s3_mtime_ns = o->head.mtime_ns;
	snprintf(in->etag, sizeof(in->etag), "%s", o->head.etag);
	if (o->pending) {
		in->s3_size = o->size;
		in->s3_mtime_ns = o->mtime_ns;
		snprintf(in->etag, sizeof(in->etag), "%s", o->etag);
		in->flags |= META_F_HEAD_PENDING;
	}
	if (o->symlink) {
		in->mode = S_IFLNK | (in->mode & 07777);
		in->size = strlen(o->link);
		in->cached_bytes = in->size;
		in->state = META_ARCHIVED;
	} else {
		in->mode = S_IFREG | (in->mode & 07777);
		in->size = in->s3_size;
		in->state = in->size ? META_RELEASED : META_ARCHIVED;
	}
}

static int put_file(struct imp *im, struct meta_txn *txn, struct imp_obj *o)
{
	struct meta_inode in;

	imp_file_inode(o, &in);
	if (o->symlink)
		meta_chunk_set(txn, o->ino, 0);
	meta_inode_put(txn, &in);
	return meta_dentry_put(txn, im->dirs[o->dir].ino, o->key + o->leaf,
			       o->ino, false);
}

int imp_link_write(struct chunk_store *cs, uint64_t ino, const char *target,
		   int *syncfd)
{
	int fd, ret;

	fd = chunk_open(cs, ino, true);
	if (fd < 0)
		return fd;
	ret = ftruncate(fd, 0) < 0 ? -errno : 0;
	if (!ret)
		ret = pwrite_all(fd, target, strlen(target), 0);
	if (*syncfd < 0)
		*syncfd = fd;
	else
		close(fd);
	return ret;
}

int imp_links_sync(int syncfd)
{
	int ret = 0;

	if (syncfd < 0)
		return 0;
	if (syncfs(syncfd) < 0)
		ret = -errno;
	close(syncfd);
	return ret;
}

/* Write the targets of symlinks to their data files and sync them. */
static int write_links(struct imp *im)
{
	int syncfd = -1, ret = 0;

	for (size_t i = 0; i < im->nobjs && !ret; i++) {
		struct imp_obj *o = &im->objs[i];

		if (o->kind == IMP_FILE && o->symlink)
			ret = imp_link_write(im->cs, o->ino, o->link, &syncfd);
	}
	if (!ret)
		ret = imp_links_sync(syncfd);
	else if (syncfd >= 0)
		close(syncfd);
	if (ret)
		log_error("import: writing symlink targets: %s",
			  strerror(-ret));
	return ret;
}

static void remove_links(struct imp *im)
{
	for (size_t i = 0; i < im->nobjs; i++)
		if (im->objs[i].kind == IMP_FILE && im->objs[i].symlink &&
		    im->objs[i].ino)
			chunk_remove(im->cs, im->objs[i].ino);
}

static int prepare_root(struct imp *im, struct meta_txn *txn,
			struct meta_inode *root)
{
	int ret;

	ret = meta_inode_get(txn, META_ROOT_INO, root);
	if (ret) {
		log_error("import: no root inode: %s", strerror(-ret));
		return ret;
	}
	if (!S_ISDIR(root->mode))
		return -ENOTDIR;
	ret = meta_dir_is_empty(txn, META_ROOT_INO);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		log_error("import: the metadata store is not empty");
		return -ENOTEMPTY;
	}
	root->nlink = 2 + im->dirs[0].nsubdirs;
	for (size_t i = 0; i < im->nobjs; i++) {
		struct imp_obj *o = &im->objs[i];

		if (o->kind != IMP_ROOT || !o->have_head)
			continue;
		imp_posix_from_head(root, o);
		root->mode |= S_IFDIR;
		free(root->s3_key);
		root->s3_key = strdup(o->key);
		if (!root->s3_key)
			return -ENOMEM;
		snprintf(root->etag, sizeof(root->etag), "%s", o->head.etag);
		root->s3_mtime_ns = o->head.mtime_ns;
	}
	return 0;
}

/* Before any request: the store must be ready for an import. */
static int check_store(struct meta_db *db)
{
	struct meta_inode root = {0};
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(db, false, &txn);
	if (ret)
		return ret;
	ret = meta_inode_get(txn, META_ROOT_INO, &root);
	if (ret) {
		log_error("import: no root inode: %s", strerror(-ret));
	} else if (!S_ISDIR(root.mode)) {
		ret = -ENOTDIR;
	} else {
		ret = meta_dir_is_empty(txn, META_ROOT_INO);
		if (ret == 0) {
			log_error("import: the metadata store is not empty");
			ret = -ENOTEMPTY;
		} else if (ret == 1) {
			ret = 0;
		}
	}
	meta_inode_release(&root);
	meta_txn_abort(txn);
	return ret;
}

static int alloc_inos(struct imp *im, struct meta_txn *txn)
{
	int ret = 0;

	im->dirs[0].ino = META_ROOT_INO;
	for (size_t d = 1; d < im->ndirs && !ret; d++)
		ret = meta_ino_alloc(txn, &im->dirs[d].ino);
	for (size_t i = 0; i < im->nobjs && !ret; i++)
		if (im->objs[i].kind == IMP_FILE)
			ret = meta_ino_alloc(txn, &im->objs[i].ino);
	return ret;
}

static int write_tree(struct imp *im, struct meta_db *db,
		      struct task_import_stats *st)
{
	struct meta_inode root = {0};
	struct meta_txn *txn;
	bool links = false;
	int ret;

	ret = meta_txn_begin(db, true, &txn);
	if (ret)
		return ret;
	ret = prepare_root(im, txn, &root);
	if (!ret)
		ret = alloc_inos(im, txn);
	if (!ret) {
		links = true;
		ret = write_links(im);
	}
	if (ret) {
		meta_txn_abort(txn);
		goto out;
	}
	meta_inode_put(txn, &root);
	imp_dir_times(im);
	for (size_t d = 1; d < im->ndirs; d++)
		put_dir(im, txn, d);
	for (size_t i = 0; i < im->nobjs; i++) {
		struct imp_obj *o = &im->objs[i];

		if (o->kind == IMP_FILE) {
			put_file(im, txn, o);
			if (o->symlink)
				st->symlinks++;
			else
				st->files++;
		} else if (o->kind == IMP_SKIP) {
			st->skipped++;
		}
	}
	st->dirs = im->ndirs - 1;
	meta_super_put_u64(txn, "imported", 1);
	ret = meta_txn_commit(txn); /* one check: errors stick */
	if (ret)
		log_error("import: commit: %s", strerror(-ret));
out:
	if (ret && links)
		remove_links(im);
	meta_inode_release(&root);
	return ret;
}

/* ---- setup, teardown, the first-mount import ---- */

void imp_init(struct imp *im, struct s3_client *s3, struct chunk_store *cs,
	      const char *prefix)
{
	pthread_condattr_t ca;

	memset(im, 0, sizeof(*im));
	im->s3 = s3;
	im->cs = cs;
	im->prefix = prefix;
	im->plen = strlen(prefix);
	im->last_log_ns = time_mono_ns();
	pthread_mutex_init(&im->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&im->cond, &ca);
	pthread_condattr_destroy(&ca);
}

void imp_release(struct imp *im)
{
	for (size_t i = 0; i < im->nobjs; i++) {
		free(im->objs[i].key);
		free(im->objs[i].link);
		s3_object_release(&im->objs[i].head);
	}
	free(im->objs);
	free(im->dirs);
	free(im->hash);
	free(im->jobs);
	pthread_cond_destroy(&im->cond);
	pthread_mutex_destroy(&im->lock);
}

int task_import_prefix(struct meta_db *db, struct chunk_store *cs,
		       struct s3_client *s3, const char *prefix, int parallel,
		       bool lazy, struct task_import_stats *st)
{
	struct imp im;
	char *pfx = NULL;
	int64_t t0 = time_mono_ns();
	int ret;

	memset(st, 0, sizeof(*st));
	if (!prefix)
		prefix = "";
	/* Be lenient: "sub" means "sub/". */
	if (*prefix && prefix[strlen(prefix) - 1] != '/') {
		if (asprintf(&pfx, "%s/", prefix) < 0)
			return -ENOMEM;
		prefix = pfx;
	}
	imp_init(&im, s3, cs, prefix);

	ret = check_store(db);
	if (ret)
		goto out;
	ret = s3_list_objects(s3, prefix, imp_list_cb, &im);
	if (ret) {
		log_error("import: listing '%s': %s", prefix, strerror(-ret));
		goto out;
	}
	st->objects = im.nobjs;
	ret = imp_plan(&im);
	if (ret)
		goto out;
	for (size_t i = 0; i < im.nobjs; i++) {
		struct imp_obj *o = &im.objs[i];

		if (o->kind == IMP_SKIP)
			continue;
		/* Lazy: only the root's own marker now (the kernel knows the
		 * root from the start); the filler does the rest. */
		if (lazy && o->kind != IMP_ROOT) {
			o->pending = true;
			st->pending++;
			continue;
		}
		im.jobs[im.njobs++] = i;
	}
	if (im.njobs > 1000)
		log_info("import: %zu objects to inspect, %d at a time",
			 im.njobs,
			 parallel > 0 ? parallel : IMPORT_PARALLEL_DEFAULT);
	ret = imp_fetch_all(&im, parallel);
	if (ret)
		goto out;
	ret = write_tree(&im, db, st);
	if (!ret && !lazy && time_mono_ns() - t0 >= IMPORT_PROGRESS_NS)
		log_info("import: %zu/%zu objects, done", im.njobs, im.njobs);
out:
	imp_release(&im);
	free(pfx);
	return ret;
}
