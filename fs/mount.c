// SPDX-License-Identifier: MIT
/*
 * Mount lifecycle: start-up checks, the first-mount import, the FUSE session
 * and an orderly shutdown.
 *
 * Without --foreground the process forks before any thread exists; the
 * child does all the work and reports through a pipe either "OK" once the
 * kernel mount is live or one error line, which the parent prints before
 * exiting 1. So `tidefs ...` returns 0 only with a live mount, and a failed
 * start leaves nothing mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "fs/fs_i.h"
#include "tasks/tasks.h"

#define FORMAT_VERSION 1

struct start_err {
	char msg[512];
};

__attribute__((format(printf, 2, 3))) static int fail(struct start_err *e,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int check_mountpoint(const char *mp, struct start_err *e)
{
	struct stat st;

	if (stat(mp, &st) < 0)
		return fail(e, "mount point %s: %s", mp, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(e, "mount point %s is not a directory", mp);
	if (access(mp, W_OK) < 0 && getuid() != 0)
		return fail(e, "mount point %s: %s", mp, strerror(errno));
	return 0;
}

int fs_lock_cache_dir(const char *dir, bool create)
{
	char path[PATH_MAX];
	int fd, err;

	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/* Create the cache dir and take its exclusive lock; returns the fd. */
static int lock_cache_dir(const char *dir, struct start_err *e)
{
	int fd = fs_lock_cache_dir(dir, true);

	if (fd == -EWOULDBLOCK)
		return fail(e, "cache dir %s is in use by another tidefs mount",
			    dir);
	if (fd < 0)
		return fail(e, "cache dir %s: %s", dir, strerror(-fd));
	return fd;
}

static int make_fsid(char out[32])
{
	uint8_t r[9];
	int ret = random_bytes(r, sizeof(r));

	if (ret < 0)
		return ret;
	/* fs- + 17 lowercase hex digits. */
	snprintf(out, 32, "fs-%01x%02x%02x%02x%02x%02x%02x%02x%02x", r[0] & 0xf,
		 r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]);
	return 0;
}

/* Reconcile the super table with the options; first mount fills it. */
static int setup_super(struct fs *fs, bool *need_import, struct start_err *e)
{
	const struct fs_options *o = fs->opt;
	struct meta_txn *txn;
	char buf[PATH_MAX + 16];
	uint64_t v;
	int ret;

	ret = meta_txn_begin(fs->db, true, &txn);
	if (ret < 0)
		return fail(e, "cache metadata: %s", strerror(-ret));
	ret = meta_super_get_str(txn, "repository", buf, sizeof(buf));
	if (ret == 0 && strcmp(buf, fs->repo) != 0) {
		meta_txn_abort(txn);
		return fail(e, "cache dir %s was made for %s, not %s",
			    o->cache_dir, buf, fs->repo);
	}
	if (ret == -ENOENT)
		meta_super_put_str(txn, "repository", fs->repo);

	if (meta_super_get_u64(txn, "chunk_size", &v) == 0) {
		if (v != o->chunk_size && o->chunk_size != (1u << 20))
			log_warn("cache dir keeps its chunk size %" PRIu64
				 "; --chunk-size ignored",
				 v);
		fs->csize = (uint32_t)v;
	} else {
		fs->csize = o->chunk_size;
		meta_super_put_u64(txn, "chunk_size", fs->csize);
	}

	if (o->cache_size) {
		fs->capacity = o->cache_size;
		meta_super_put_u64(txn, "cache_size", fs->capacity);
	} else if (meta_super_get_u64(txn, "cache_size", &v) == 0) {
		fs->capacity = v;
	} else {
		struct statvfs sv;
		if (statvfs(o->cache_dir, &sv) < 0) {
			meta_txn_abort(txn);
			return fail(e, "cache dir %s: %s", o->cache_dir,
				    strerror(errno));
		}
		fs->capacity = (uint64_t)sv.f_bavail * sv.f_frsize / 10 * 8;
		meta_super_put_u64(txn, "cache_size", fs->capacity);
	}

	if (meta_super_get_str(txn, "fsid", fs->fsid, sizeof(fs->fsid)) < 0) {
		ret = make_fsid(fs->fsid);
		if (ret == 0)
			meta_super_put_str(txn, "fsid", fs->fsid);
	}
	*need_import = meta_super_get_u64(txn, "imported", &v) < 0 || v != 1;
	if (*need_import) {
		struct meta_inode root = {0};
		int64_t now = time_now_ns();

		root.ino = META_ROOT_INO;
		root.mode = S_IFDIR | 0755;
		root.uid = fs->owner_uid;
		root.gid = fs->owner_gid;
		root.nlink = 2;
		root.state = META_NEW;
		root.atime_ns = root.mtime_ns = root.ctime_ns = now;
		meta_inode_put(txn, &root);
	}
	ret = meta_txn_commit(txn);
	if (ret < 0)
		return fail(e, "cache metadata: %s", strerror(-ret));
	return 0;
}

static const char *s3_err_text(int err)
{
	const char *code = s3_error_code();

	return code && *code ? code : strerror(-err);
}

static int connect_s3(struct fs *fs, bool first, struct start_err *e)
{
	const struct fs_options *o = fs->opt;
	struct s3_config cfg = {0};
	int ret;

	ret = s3_credentials_load(o->profile, &cfg.creds);
	if (ret == -ENOENT) {
		log_warn("no AWS credentials found; sending unsigned"
			 " requests");
	} else if (ret < 0) {
		return fail(e, "AWS credentials%s%s: %s",
			    o->profile ? " for profile " : "",
			    o->profile ? o->profile : "", strerror(-ret));
	}
	cfg.endpoint = o->endpoint;
	cfg.region = o->region;
	cfg.bucket = o->bucket;
	cfg.path_style = o->endpoint && !o->virtual_hosted;
	cfg.insecure_tls = o->insecure_tls;
	cfg.retry_total_ms = o->retry_timeout_s * 1000;
	/* A stalled endpoint must not hold a request past the retry budget. */
	cfg.request_timeout_ms = MIN(30000, cfg.retry_total_ms);
	/* The metadata filler may run twice import_parallel HEADs when
	 * lookups wait while its background workers are busy. */
	cfg.max_handles = o->fetch_threads + 2 * o->import_parallel + 4;
	ret = s3_client_new(&cfg, &fs->s3);
	s3_credentials_release(&cfg.creds);
	if (ret < 0)
		return fail(e, "S3 client: %s", strerror(-ret));

	ret = s3_check_bucket(fs->s3, o->prefix);
	if (ret == 0)
		return 0;
	if (ret == -ENOENT)
		return fail(e, "bucket %s does not exist (%s)", o->bucket,
			    s3_err_text(ret));
	if (ret == -EACCES)
		return fail(e,
			    "access to bucket %s denied: %s (check the"
			    " credentials)",
			    o->bucket, s3_err_text(ret));
	if (!first && (ret == -ECONNREFUSED || ret == -EHOSTUNREACH ||
		       ret == -ETIMEDOUT || ret == -EIO)) {
		/* The cache is usable without S3: serve what is cached. */
		log_warn("S3 endpoint unreachable (%s); cached data stays"
			 " readable",
			 strerror(-ret));
		return 0;
	}
	return fail(e, "cannot reach S3 endpoint %s for bucket %s: %s",
		    o->endpoint ? o->endpoint : "(AWS)", o->bucket,
		    strerror(-ret));
}

struct scan {
	struct fs *fs;
	struct chunk_store *cs;
	uint64_t *dead; /* inodes without a name, left by a crash */
	size_t ndead, cap;
	uint64_t orphans; /* data files removed */
};

static int scan_inode(void *arg, const struct meta_inode *mi)
{
	struct scan *sc = arg;
	struct fs *fs = sc->fs;

	if (mi->nlink == 0 || (mi->flags & META_F_UNLINKED)) {
		if (sc->ndead == sc->cap) {
			uint64_t *n =
				array_grow(sc->dead, &sc->cap, sizeof(*n), 64);
			if (!n)
				return -ENOMEM;
			sc->dead = n;
		}
		sc->dead[sc->ndead++] = mi->ino;
	}
	fs->ninodes++;
	if (S_ISREG(mi->mode) && mi->state < FS_NSTATES)
		fs->nstate[mi->state]++;
	/* Cache use is regular files' bytes (hydrate counts nothing else). */
	if (S_ISREG(mi->mode))
		fs->cached_bytes += mi->cached_bytes;
	return 0;
}

static int orphan_cb(void *arg, uint64_t ino)
{
	struct scan *sc = arg;
	struct meta_txn *txn;
	struct meta_inode mi = {0};
	int ret;

	ret = meta_txn_begin(sc->fs->db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &mi);
	meta_txn_abort(txn);
	if (ret == -ENOENT) {
		/* Deleted, or a spare made ahead for a number never taken
		 * (hydrate keeps a few; a crash leaves them behind). */
		log_debug("removing orphaned data file of inode %" PRIu64, ino);
		sc->orphans++;
		return chunk_remove(sc->cs, ino);
	}
	if (ret == 0 && !S_ISREG(mi.mode) && !S_ISLNK(mi.mode)) {
		/* A spare whose number became a directory, FIFO, ... */
		meta_inode_release(&mi);
		sc->orphans++;
		return chunk_remove(sc->cs, ino);
	}
	meta_inode_release(&mi);
	return ret < 0 ? ret : 0;
}

/*
 * Count states and cached bytes, drop data files without an inode, and
 * purge inodes that lost their last name while open before a crash.
 * Runs before hydrate starts, so purging only needs the store.
 */
static int scan_store(struct fs *fs, struct start_err *e)
{
	struct scan sc = {.fs = fs, .cs = fs->cs};
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(fs->db, false, &txn);
	if (ret == 0) {
		ret = meta_inode_foreach(txn, scan_inode, &sc);
		meta_txn_abort(txn);
	}
	if (ret < 0) {
		free(sc.dead);
		return fail(e, "cache metadata: %s", strerror(-ret));
	}
	for (size_t i = 0; i < sc.ndead && ret == 0; i++) {
		struct meta_inode mi = {0};
		ret = meta_txn_begin(fs->db, true, &txn);
		if (ret < 0)
			break;
		if (meta_inode_get(txn, sc.dead[i], &mi) == 0) {
			fs_count_inode(fs, &mi, -1);
			if (S_ISREG(mi.mode))
				fs->cached_bytes -= mi.cached_bytes;
		}
		meta_inode_del(txn, sc.dead[i]);
		meta_chunk_clear(txn, sc.dead[i], 0);
		meta_xattr_clear(txn, sc.dead[i]);
		meta_dirty_del(txn, sc.dead[i]);
		ret = meta_txn_commit(txn);
		meta_inode_release(&mi);
		log_info("purged inode %" PRIu64 ", unlinked while open",
			 sc.dead[i]);
	}
	free(sc.dead);
	if (ret == 0)
		ret = chunk_foreach(fs->cs, orphan_cb, &sc);
	if (sc.orphans)
		log_info("removed %" PRIu64 " orphaned data file(s)",
			 sc.orphans);
	if (ret < 0)
		return fail(e, "cache data: %s", strerror(-ret));
	return 0;
}

static int run_import(struct fs *fs, struct start_err *e)
{
	struct task_import_stats st = {0};
	int64_t t0 = time_mono_ns();
	int ret;

	log_info("first mount: importing %s", fs->repo);
	/* Lazy: from the listing alone; the filler HEADs every object
	 * afterwards, and before the kernel sees it. */
	ret = task_import_prefix(fs->db, fs->cs, fs->s3, fs->opt->prefix,
				 fs->opt->import_parallel, true, &st);
	if (ret < 0)
		return fail(e, "import of %s failed: %s", fs->repo,
			    s3_err_text(ret));
	log_info("imported %" PRIu64 " files, %" PRIu64 " directories, %" PRIu64
		 " symlinks (%" PRIu64 " keys skipped) in %.1f s; metadata of"
		 " %" PRIu64 " objects follows in the background",
		 st.files, st.dirs, st.symlinks, st.skipped,
		 (double)(time_mono_ns() - t0) / 1e9, st.pending);
	return 0;
}

static int start_filler(struct fs *fs)
{
	struct task_filler_config fc = {
		.db = fs->db,
		.cs = fs->cs,
		.s3 = fs->s3,
		.prefix = fs->opt->prefix,
		.parallel = fs->opt->import_parallel,
		.on_fill = fs_on_fill,
		.cb_arg = fs,
	};

	return task_filler_new(&fc, &fs->filler);
}

static int start_engine(struct fs *fs)
{
	struct task_engine_config tc = {0};
	int ret;

	tc.db = fs->db;
	tc.cs = fs->cs;
	tc.s3 = fs->s3;
	tc.hy = fs->hy;
	tc.mount.fsid = fs->fsid;
	tc.mount.bucket = fs->opt->bucket;
	tc.mount.prefix = fs->opt->prefix;
	tc.region = fs->opt->region;
	tc.capacity = fs->capacity;
	tc.high_pct = (unsigned)fs->opt->high_pct;
	tc.low_pct = (unsigned)fs->opt->low_pct;
	tc.export_overwrite = fs->opt->export_overwrite;
	tc.on_change = fs_on_change;
	tc.inval_entry = fs_inval_entry;
	tc.inval_inode = fs_inval_inode;
	tc.filler = fs->filler;
	tc.cb_arg = fs;
	ret = task_engine_new(&tc, &fs->engine);
	if (ret == 0)
		hydrate_set_space_cb(fs->hy, task_engine_make_space,
				     fs->engine);
	return ret;
}

/*
 * SIGTERM/SIGINT/SIGHUP end the session as libfuse's handlers do, and also
 * abort S3 transfers at once: a FUSE thread blocked on a stalled fetch would
 * otherwise hold the session loop for the whole retry budget, longer than a
 * container runtime waits before SIGKILL.
 */
static struct fuse_session *sig_se;
/* Set in the handler, read by the watcher thread: a lock-free atomic (a
 * volatile sig_atomic_t is only safe within one thread). */
static atomic_int sig_seen;

static void on_signal(int sig)
{
	int saved = errno;

	atomic_store(&sig_seen, sig);
	if (sig_se)
		fuse_session_exit(sig_se);
	errno = saved;
}

static void *sig_watch(void *arg)
{
	struct fs *fs = arg;

	while (!atomic_load(&sig_seen) && !atomic_load(&fs->stopping)) {
		struct timespec ts = {0, 50000000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&sig_seen) && fs->s3)
		s3_client_cancel(fs->s3);
	return NULL;
}

static int catch_signals(struct fs *fs)
{
	struct sigaction sa = {0};

	sig_se = fs->se;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -errno;
	if (pthread_create(&fs->sig_thread, NULL, sig_watch, fs) != 0)
		return -EAGAIN;
	fs->sig_thread_started = true;
	return 0;
}

static int build_fuse_args(const struct fs *fs, struct fuse_args *args)
{
	const struct fs_options *o = fs->opt;
	char opts[4096], fsname[1200];
	size_t n = 0;

	/* The mount table shows the repository (commas escaped for -o). */
	for (const char *p = fs->repo; *p && n < sizeof(fsname) - 3; p++) {
		if (*p == ',' || *p == '\\')
			fsname[n++] = '\\';
		fsname[n++] = *p;
	}
	fsname[n] = '\0';
	if (o->fuse_opts && strstr(o->fuse_opts, "fsname="))
		fsname[0] = '\0';
	snprintf(opts, sizeof(opts),
		 "default_permissions,subtype=tidefs%s%s%s%s",
		 fsname[0] ? ",fsname=" : "", fsname, o->fuse_opts ? "," : "",
		 o->fuse_opts ? o->fuse_opts : "");
	if (fuse_opt_add_arg(args, "tidefs") < 0 ||
	    fuse_opt_add_arg(args, "-o") < 0 ||
	    fuse_opt_add_arg(args, opts) < 0)
		return -ENOMEM;
	return 0;
}

/* Everything from the lock to the live mount. */
static int start(struct fs *fs, int *lockfd, struct start_err *e)
{
	const struct fs_options *o = fs->opt;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct hydrate_config hc = {0};
	bool need_import = false;
	char why[300];
	int ret;

	if (check_mountpoint(o->mountpoint, e) < 0)
		return -1;
	*lockfd = lock_cache_dir(o->cache_dir, e);
	if (*lockfd < 0)
		return -1;
	ret = meta_open_checked(o->cache_dir, 0, true, why, sizeof(why),
				&fs->db);
	if (ret == -EUCLEAN)
		return fail(e,
			    "cache metadata in %s/meta is damaged (%s); nothing"
			    " was changed: see \"Damaged metadata\" in the"
			    " README (tidefs salvage %s DEST copies out what S3"
			    " does not have)",
			    o->cache_dir, why, o->cache_dir);
	if (ret < 0)
		return fail(e, "cache metadata in %s: %s", o->cache_dir,
			    strerror(-ret));
	meta_set_sync_interval(fs->db, o->sync_interval_s);
	if (setup_super(fs, &need_import, e) < 0)
		return -1;
	ret = chunk_store_open(o->cache_dir, fs->csize, &fs->cs);
	if (ret < 0)
		return fail(e, "cache data in %s: %s", o->cache_dir,
			    strerror(-ret));
	if (connect_s3(fs, need_import, e) < 0)
		return -1;
	if (need_import && run_import(fs, e) < 0)
		return -1;
	if (scan_store(fs, e) < 0)
		return -1;

	ret = fs_lookups_new(&fs->lookups);
	if (ret < 0)
		return fail(e, "out of memory");
	hc.fetch_threads = o->fetch_threads;
	hc.capacity = fs->capacity;
	hc.initial_used = fs->cached_bytes;
	/* Nothing creates files on a read-only mount. */
	hc.spare_files = o->read_only ? 0 : 128;
	hc.on_change = fs_on_change;
	hc.cb_arg = fs;
	ret = hydrate_new(fs->db, fs->cs, fs->s3, &hc, &fs->hy);
	if (ret < 0)
		return fail(e, "starting fetch threads: %s", strerror(-ret));
	ret = start_filler(fs);
	if (ret < 0)
		return fail(e, "starting the metadata filler: %s",
			    strerror(-ret));
	ret = start_engine(fs);
	if (ret < 0)
		return fail(e, "starting the task engine: %s", strerror(-ret));
	if (o->api_listen) {
		struct api_config ac = {.listen = o->api_listen,
					.credentials = o->api_credentials,
					.region = o->region};
		ret = api_server_start(&ac, fs->engine, &fs->api);
		if (ret == -ENOENT || ret == -EACCES)
			return fail(e, "API credentials %s: %s",
				    o->api_credentials, strerror(-ret));
		if (ret == -EINVAL)
			return fail(e,
				    "bad --api-listen %s, or no key pair in"
				    " %s",
				    o->api_listen, o->api_credentials);
		if (ret < 0)
			return fail(e, "cannot serve the API on %s: %s",
				    o->api_listen, strerror(-ret));
	}

	if (build_fuse_args(fs, &args) < 0)
		return fail(e, "out of memory");
	fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se)
		return fail(e, "bad mount options '%s'",
			    o->fuse_opts ? o->fuse_opts : "");
	if (fuse_set_signal_handlers(fs->se) < 0 || catch_signals(fs) < 0)
		return fail(e, "cannot install signal handlers");
	if (fuse_session_mount(fs->se, o->mountpoint) < 0) {
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
		fs->se = NULL;
		return fail(e,
			    "cannot mount on %s (is /dev/fuse there, and"
			    " fusermount3 installed?)",
			    o->mountpoint);
	}
	/* Our hooks under libfuse negotiate passthrough reads. */
	if (!o->no_passthrough && fs_pt_setup(fs) < 0)
		log_warn("passthrough reads are off: cannot hook the session");
	else if (!o->no_passthrough)
		fs_pt_enable(fs);
	return 0;
}

static void stop(struct fs *fs, int lockfd)
{
	atomic_store(&fs->stopping, true);
	if (fs->sig_thread_started)
		pthread_join(fs->sig_thread, NULL);
	if (fs->se) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		sig_se = NULL;
		fuse_remove_signal_handlers(fs->se);
		fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	api_server_stop(fs->api);
	/* Nobody waits for S3 any more: abort stalled transfers rather than
	 * sit out the retry budget (a container gets ~10 s to stop). */
	if (fs->s3)
		s3_client_cancel(fs->s3);
	task_engine_free(fs->engine);
	task_filler_free(fs->filler); /* after the tasks that wait for it */
	hydrate_free(fs->hy);
	fs_lookups_free(fs->lookups);
	ctl_release_all(fs);
	fs_release_dirs(fs);
	/* Records the clean shutdown and syncs (a last sync point). */
	if (fs->db)
		meta_close(fs->db);
	chunk_store_close(fs->cs);
	if (fs->s3)
		s3_client_free(fs->s3);
	if (lockfd >= 0)
		close(lockfd);
	free(fs->repo);
	pthread_mutex_destroy(&fs->stats_lock);
}

/* Parent side of the start-up pipe: wait for "OK" or an error line. */
static int wait_child(pid_t pid, int rfd)
{
	char buf[600];
	size_t len = 0;
	ssize_t n;
	int status;

	while (len < sizeof(buf) - 1 &&
	       (n = read(rfd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(rfd);
	if (strncmp(buf, "OK", 2) == 0)
		return 0;
	waitpid(pid, &status, 0);
	if (len > 0) {
		fprintf(stderr, "tidefs: %s\n", buf);
	} else {
		fprintf(stderr, "tidefs: the daemon exited during start-up"
				" (see the log in the cache dir)\n");
	}
	return 1;
}

static void report(int wfd, const char *msg)
{
	if (wfd < 0)
		return;
	if (write(wfd, msg, strlen(msg)) < 0) {
		/* The parent is gone; nothing to tell. */
	}
	close(wfd);
}

/* Detach the daemon from the terminal: logs go to CACHE_DIR/tidefs.log. */
static void detach(const struct fs_options *o)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/tidefs.log", o->cache_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	if (chdir("/") < 0) {
		/* Not fatal: we only hold absolute paths. */
	}
}

/*
 * Every open file holds its data file open, and the spare data files made
 * ahead are kept open too: take all the descriptors the hard limit allows
 * (the soft limit is often 1,024). Nothing here uses select().
 */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open files limit to %llu: %s",
			 (unsigned long long)rl.rlim_max, strerror(errno));
}

int fs_run(const struct fs_options *o)
{
	struct fs fs = {0};
	struct start_err e = {{0}};
	int pfd[2] = {-1, -1}, lockfd = -1, ret, sig;
	size_t rlen;

	if (!o->foreground) {
		pid_t pid;
		if (pipe2(pfd, O_CLOEXEC) < 0) {
			fprintf(stderr, "tidefs: pipe: %s\n", strerror(errno));
			return 1;
		}
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, "tidefs: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid > 0) {
			close(pfd[1]);
			return wait_child(pid, pfd[0]);
		}
		close(pfd[0]);
		setsid();
		/* From here on the log goes to the cache dir: the caller sees
		 * one line, the daemon's verdict on the start. */
		if (mkdir(o->cache_dir, 0700) == 0 || errno == EEXIST)
			detach(o);
	}
	log_set_level(o->log_level);
	raise_nofile();
	fs.opt = o;
	fs.owner_uid = getuid();
	fs.owner_gid = getgid();
	fs.timeout = 3600.0;
	fs.mount_time = time_now_ns() / 1000000000;
	pthread_mutex_init(&fs.stats_lock, NULL);
	rlen = strlen(o->bucket) + strlen(o->prefix) + 8;
	fs.repo = malloc(rlen);
	if (!fs.repo) {
		report(pfd[1], "out of memory");
		return 1;
	}
	snprintf(fs.repo, rlen, "s3://%s/%s", o->bucket, o->prefix);
	if (o->prefix[0])
		fs.repo[strlen(fs.repo) - 1] = '\0'; /* no trailing slash */

	if (start(&fs, &lockfd, &e) < 0) {
		if (o->foreground)
			fprintf(stderr, "tidefs: %s\n", e.msg);
		else
			report(pfd[1], e.msg);
		stop(&fs, lockfd);
		return 1;
	}
	log_info("mounted %s on %s (cache %s, %s)", fs.repo, o->mountpoint,
		 o->cache_dir, fs.fsid);
	if (!o->foreground)
		report(pfd[1], "OK");

	ret = fs_loop_run(fs.se, 64);
	sig = atomic_load(&sig_seen);
	if (sig)
		log_info("signal %d: unmounting %s", sig, o->mountpoint);
	else if (ret < 0)
		log_error("FUSE session failed (%s): unmounting %s",
			  strerror(-ret), o->mountpoint);
	else
		log_info("unmounted: %s", o->mountpoint);
	stop(&fs, lockfd);
	/* 0: unmounted, or stopped cleanly by SIGTERM/SIGINT; 1: failed. */
	return ret < 0 ? 1 : 0;
}
