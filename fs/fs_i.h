/* SPDX-License-Identifier: MIT */
/* Private to fs/: the mounted file system's shared state. */
#ifndef TIDEFS_FS_I_H
#define TIDEFS_FS_I_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "cache/chunk.h"
#include "cache/hydrate.h"
#include "cache/meta.h"
#include "fs/fs.h"
#include "s3/s3.h"

/* Inode numbers of the virtual .tidefs tree: far above anything LMDB hands
 * out. */
#define FS_CTL_BASE  (1ull << 62)
#define FS_CTL_DIR   (FS_CTL_BASE + 1)
#define FS_CTL_STATS (FS_CTL_BASE + 2)
#define FS_CTL_NAME  ".tidefs"

#define FS_NSTATES 5

/* File state (read-only) and pinning (settable) xattrs. */
#define FS_STATE_XATTR "user.tidefs.state"
#define FS_PIN_XATTR   "user.tidefs.norelease"

/*
 * Which xattr names tidefs stores: the user and trusted namespaces and
 * security.capability. ACLs (system.*) and security labels (the rest of
 * security.*) are not supported: get, set and remove answer EOPNOTSUPP, as
 * a file system without them does. That answer is also what lets `ls -l`
 * stop asking: coreutils remembers, per device, that labels and ACLs are
 * unsupported, instead of asking every file twice (20,000 FUSE round trips
 * for 10,000 files).
 */
static inline bool fs_xattr_supported(const char *name)
{
	if (!strncmp(name, "system.", 7))
		return false;
	if (!strncmp(name, "security.", 9))
		return !strcmp(name, "security.capability");
	return true;
}

/*
 * fi->fh of a regular file: its shared hydrate_file, with bit 0 set when the
 * handle is write-only and the kernel writes through it directly
 * (FOPEN_DIRECT_IO: no copy into the FUSE page cache, no security.capability
 * lookup per write). Such writes leave S_ISUID/S_ISGID and the cached pages
 * of other handles to us. hydrate_file pointers are malloc-aligned.
 */
#define FS_FH_DIRECT 1u
/* Bit 1: the handle is passthrough (hydrate_handle_open() gave an id). */
#define FS_FH_PT   2u
#define FS_FH_BITS (FS_FH_DIRECT | FS_FH_PT)

static inline uint64_t fs_fh(struct hydrate_file *hf, bool direct)
{
	return (uint64_t)(uintptr_t)hf | (direct ? FS_FH_DIRECT : 0);
}

static inline struct hydrate_file *fs_fh_file(const struct fuse_file_info *fi)
{
	return (struct hydrate_file *)(uintptr_t)(fi->fh &
						  ~(uint64_t)FS_FH_BITS);
}

static inline bool fs_fh_direct(const struct fuse_file_info *fi)
{
	return fi->fh & FS_FH_DIRECT;
}

/* Reply flags of an opened regular file (open and create). */
void fs_open_flags(struct fuse_file_info *fi, struct hydrate_file *hf);
/* The caller of req, for hydrate's set-id rules (hydrate_caller). */
struct hydrate_caller fs_caller(fuse_req_t req);

struct ctl_buf;
struct dirh;
struct ctl_name;
struct task_engine;
struct task_filler;
struct api_server;

struct fs {
	const struct fs_options *opt;
	struct meta_db *db;
	struct chunk_store *cs;
	struct s3_client *s3;
	struct hydrate *hy;
	struct fuse_session *se;
	char fsid[32];	   /* "fs-" + 17 hex */
	char *repo;	   /* "s3://bucket/prefix" */
	uint64_t capacity; /* cache size in bytes */
	uint32_t csize;
	uid_t owner_uid; /* who mounted */
	gid_t owner_gid;
	double timeout; /* entry/attr cache timeout given to the kernel */

	struct fs_lookups *lookups;
	struct task_engine *engine;
	struct task_filler *filler; /* completes lazily imported inodes */
	struct api_server *api;
	pthread_t sig_thread; /* aborts S3 transfers on SIGTERM/SIGINT */
	bool sig_thread_started;
	atomic_bool stopping; /* set in stop(): the watcher ends */
	int64_t mount_time;   /* seconds, for the control tree's times */
	/* Lock order: stats_lock before the task engine's lock. */
	struct ctl_buf *ctl_bufs; /* protected by stats_lock: open ctl files */
	struct dirh *dirs; /* protected by stats_lock: open directories */
	struct ctl_name *ctl_names;	  /* protected by stats_lock */
	size_t nctl_names, ctl_names_cap; /* protected by stats_lock */
	char *cancel_result; /* protected by stats_lock: last cancel's answer */

	pthread_mutex_t stats_lock;
	uint64_t cached_bytes; /* protected by stats_lock */
	uint64_t
		nstate[FS_NSTATES]; /* protected by stats_lock: regular files */
	uint64_t ninodes;	    /* protected by stats_lock */

	/* Passthrough (passthrough.c): the unique of an INIT request that
	 * offered it (0: none pending); whether our INIT reply asked for it
	 * (cleared when the kernel refuses to register a data file). */
	_Atomic uint64_t pt_init_unique;
	atomic_bool pt_asked;
};

extern const struct fuse_lowlevel_ops fs_ops;

/* loop.c: run the session's request loop on up to max_workers threads
 * until it ends (unmounted, fuse_session_exit(), or an error). 0, or the
 * -errno that ended it. */
int fs_loop_run(struct fuse_session *se, int max_workers);

/* Passthrough reads (passthrough.c). fs_pt_setup() after the session is
 * mounted: our hooks read requests and write replies. fs_pt_enable() once
 * fs->hy exists: hydrate may register data files. fs_pt_arm(id) right
 * before fuse_reply_open() makes that reply a passthrough one with backing
 * id; fs_pt_disarm() right after says whether it did. */
/* mount.c: take the cache dir's exclusive lock (held by a live mount);
 * create: make the dir and the lock file if missing. The fd, or -errno
 * (-EWOULDBLOCK: a mount holds it). */
int fs_lock_cache_dir(const char *dir, bool create);

int fs_pt_setup(struct fs *fs);
void fs_pt_enable(struct fs *fs);
void fs_pt_arm(int backing_id);
bool fs_pt_disarm(void);

/* Kernel lookup counts and deferred deletion (inode.c). */
struct fs_lookups;
int fs_lookups_new(struct fs_lookups **out);
void fs_lookups_free(struct fs_lookups *l);
void fs_lookup_ref(struct fs *fs, uint64_t ino);
void fs_lookup_forget(struct fs *fs, uint64_t ino, uint64_t n);
/* The inode lost its last name: true when the kernel does not know it
 * (purge now), false when the purge waits for the last forget. */
bool fs_lookup_unlinked(struct fs *fs, uint64_t ino);
/* Delete an inode with nlink 0: record, chunks, xattrs, data file. */
int fs_purge_inode(struct fs *fs, uint64_t ino);

/* Adjust the counters of .tidefs/stats for an inode appearing (+1) or
 * going away (-1). */
void fs_count_inode(struct fs *fs, const struct meta_inode *mi, int delta);

/* Changes to the namespace and attributes (nsops.c). */
void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name);
void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* Directory listing from a snapshot taken at opendir (dirops.c). */
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* A kernel entry (with the attribute/entry timeouts) for an inode. */
void fs_fill_entry(struct fs *fs, const struct meta_inode *mi,
		   struct fuse_entry_param *e);
/* Fill st from an inode record. */
void fs_fill_stat(const struct fs *fs, const struct meta_inode *mi,
		  struct stat *st);
/* Drop what the kernel caches for an entry or an inode (after a task
 * changed it behind the kernel's back). */
void fs_inval_entry(void *arg, uint64_t parent, const char *name);
void fs_inval_inode(void *arg, uint64_t ino);
/* The filler's on_fill: keep the counters of .tidefs/stats current. */
void fs_on_fill(void *arg, const struct meta_inode *before,
		const struct meta_inode *after);
/* Complete inodes whose metadata is pending (lazy first mount) before the
 * kernel sees them; errs as task_filler_complete(). Returns 0 or -EIO (and
 * logs which inode). Hold no transaction. */
int fs_fill(struct fs *fs, const uint64_t *inos, size_t n, int *errs);
/* hydrate_change_cb: keep the counters of .tidefs/stats current. */
void fs_on_change(void *arg, uint64_t ino, int old_state, int new_state);

/* The .tidefs control tree (ctl.c). All return 0 or -errno. */
static inline int fs_is_ctl(fuse_ino_t ino)
{
	return ino >= FS_CTL_BASE;
}
int ctl_lookup(struct fs *fs, fuse_ino_t parent, const char *name,
	       struct fuse_entry_param *e);
int ctl_getattr(struct fs *fs, fuse_ino_t ino, struct stat *st);
void ctl_readdir(struct fs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
		 off_t off, int plus);
void ctl_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino,
	      struct fuse_file_info *fi);
void ctl_read(fuse_req_t req, size_t size, off_t off,
	      struct fuse_file_info *fi);
void ctl_write(fuse_req_t req, const char *data, size_t size, off_t off,
	       struct fuse_file_info *fi);
void ctl_flush(struct fs *fs, fuse_req_t req, struct fuse_file_info *fi);
int ctl_create(struct fs *fs, fuse_ino_t parent, const char *name,
	       struct fuse_file_info *fi, struct fuse_entry_param *e);
int ctl_setattr(struct fs *fs, fuse_ino_t ino, int to_set, struct stat *st);
void ctl_release(fuse_req_t req, struct fuse_file_info *fi);
/* Free directory handles the kernel never released (dirops.c). */
void fs_release_dirs(struct fs *fs);
/* Free the buffers of ctl files the kernel never released. */
void ctl_release_all(struct fs *fs);
/* Entry for .tidefs itself, for lookups in the root. */
void ctl_dir_entry(struct fs *fs, struct fuse_entry_param *e);

#endif
