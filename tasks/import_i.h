/* SPDX-License-Identifier: MIT */
/*
 * Private to tasks/: the pieces of an import shared by the first-mount import
 * (import.c, task_import_prefix) and the IMPORT_METADATA_FROM_REPOSITORY task
 * (import_task.c): the listing, the in-memory plan of the tree, HeadObject of
 * many keys in parallel, and the inode records built from what S3 said.
 *
 * Use: imp_init(), s3_list_objects(…, imp_list_cb, im) once or more (keys in
 * ascending order), imp_plan(), push object indexes onto im->jobs,
 * imp_fetch_all(), build inodes (imp_dir_inode / imp_file_inode), then
 * imp_release(). See the DESIGN comment of import.c.
 */
#ifndef TIDEFS_IMPORT_I_H
#define TIDEFS_IMPORT_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasks/tasks.h"

#define IMP_NAME_MAX 255
#define IMP_NONE     SIZE_MAX

enum imp_kind {
	IMP_SKIP = 0, /* nothing to import: see imp_obj.err */
	IMP_FILE,     /* a file or a symlink */
	IMP_DIR,      /* a "dir/" marker */
	IMP_ROOT,     /* the "prefix/" marker: metadata of the root */
};

struct imp_obj {
	char *key;	  /* owned, full key */
	uint64_t size;	  /* from the listing */
	int64_t mtime_ns; /* LastModified from the listing */
	char etag[80];	  /* ETag from the listing */
	enum imp_kind kind;
	/* Why a key is IMP_SKIP: -EINVAL not a POSIX path, -EISDIR a
	 * directory of that name exists, -ENOENT it vanished during the
	 * import; with im->tolerant also the error of its HeadObject (or of
	 * reading a symlink target): -EACCES, -EIO, … */
	int err;
	size_t dir;	/* IMP_FILE: parent; IMP_DIR: itself (index in dirs) */
	size_t leaf;	/* IMP_FILE: offset of the name in key */
	bool have_head; /* head is filled */
	/* Lazy first mount: not HEADed; its inode is written from the
	 * listing with META_F_HEAD_PENDING (the filler completes it). */
	bool pending;
	bool symlink;
	struct s3_object head;
	char *link; /* owned symlink target */
	uint64_t ino;
};

struct imp_dir {
	const char *path; /* relative, no trailing '/', points into a key */
	size_t len;
	size_t namelen; /* the name is the last namelen bytes of path */
	size_t parent;	/* IMP_NONE for the root */
	uint32_t nsubdirs;
	int64_t newest_ns; /* newest LastModified beneath, imp_dir_times() */
	size_t marker;	   /* object index of "dir/", IMP_NONE when implicit */
	uint64_t ino;
};

struct imp {
	struct s3_client *s3;
	struct chunk_store *cs;
	const char *prefix; /* the mount's: "" or ending in '/' */
	size_t plen;
	/* true (the task): a failed HeadObject or symlink read makes only
	 * that object IMP_SKIP with its err; false (first mount): it fails
	 * the whole import. */
	bool tolerant;
	/* May be NULL: asked between objects whether to stop fetching. */
	bool (*stop)(void *arg);
	void *stop_arg;

	struct imp_obj *objs;
	size_t nobjs, capobjs;
	struct imp_dir *dirs; /* dirs[0] is the root, path "" */
	size_t ndirs, capdirs;
	size_t *hash; /* dir index, IMP_NONE = empty slot */
	size_t hcap;  /* power of two */
	size_t *jobs; /* object indexes to HEAD (room for all objects) */
	size_t njobs;
	int64_t last_log_ns;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t next; /* protected by lock: next job */
	size_t done; /* protected by lock */
	int running; /* protected by lock: live workers */
	int err;     /* protected by lock: first fatal error */
};

/* prefix: "" or ending in '/'; borrowed for the lifetime of im. */
void imp_init(struct imp *im, struct s3_client *s3, struct chunk_store *cs,
	      const char *prefix);
void imp_release(struct imp *im);

/* s3_list_cb appending to im->objs (keys outside im->prefix are ignored). */
int imp_list_cb(void *arg, struct s3_object *obj);

/*
 * Plan the tree of the listed objects: their kinds, parents (directories
 * from key prefixes and markers, im->dirs in creation order, parents before
 * children) and leaf names; keys that cannot be POSIX paths (-EINVAL) and
 * file keys shadowed by a directory of the same name (-EISDIR) become
 * IMP_SKIP with one log_warn each. Allocates im->jobs (empty). 0, -ENOMEM.
 */
int imp_plan(struct imp *im);

/* HeadObject (and symlink targets) of every object in im->jobs, parallel
 * at a time (0: default). 0, or the first fatal error (never with
 * im->tolerant, except -ENOMEM), -ECANCELED when im->stop said so. */
int imp_fetch_all(struct imp *im, int parallel);

/* HeadObject of one object (and the target of a symlink), as
 * imp_fetch_all does for each job: o->have_head, o->symlink and o->link
 * are filled; a vanished file becomes IMP_SKIP with -ENOENT, a vanished
 * marker stays IMP_DIR without head. Returns 0 or the error (never with
 * im->tolerant, except -ENOMEM: then o becomes IMP_SKIP with o->err). */
int imp_fetch_one(struct imp *im, struct imp_obj *o);

/* im->dirs[].newest_ns from the objects imported beneath. */
void imp_dir_times(struct imp *im);

/* POSIX fields of an object (the FSx defaults where headers are missing). */
void imp_posix_from_head(struct meta_inode *in, const struct imp_obj *o);
/* imp_posix_from_head's mode bits, owner and times onto an existing
 * record, whose type becomes type (S_IFREG, S_IFDIR, ...). */
void imp_take_posix(struct meta_inode *mi, const struct imp_obj *o,
		    uint32_t type);

/* The inode record of directory d (ino = im->dirs[d].ino; nlink counts the
 * planned subdirectories). Strings point into im: do not release. */
void imp_dir_inode(const struct imp *im, size_t d, struct meta_inode *in);
/* The inode record of file/symlink object o (ino = o->ino). Strings point
 * into im: do not release. Symlinks: archived, their one chunk present
 * (the caller records it); empty files archived, others released. A
 * pending object (o->pending) gets its size, ETag and times from the
 * listing, the FSx defaults and META_F_HEAD_PENDING. */
void imp_file_inode(const struct imp_obj *o, struct meta_inode *in);

/* Write a symlink target to the data file of ino. The first call keeps its
 * descriptor in *syncfd (start with -1) for imp_links_sync(), which syncs
 * the file system and closes it. 0 or -errno. */
int imp_link_write(struct chunk_store *cs, uint64_t ino, const char *target,
		   int *syncfd);
int imp_links_sync(int syncfd);

#endif
