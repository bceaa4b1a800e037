// SPDX-License-Identifier: MIT
/*
 * meta_safe — sync points that survive a power loss.
 *
 * Commits are MDB_NOSYNC: LMDB writes a commit's pages and its meta page
 * into the page cache and the disk gets them whenever the kernel writes them
 * back, in any order. After a power loss the disk may hold a meta page whose
 * tree was only partly written, or pages of the last synced tree that later
 * commits reused (LMDB reuses a page two transactions after it was freed,
 * unless a reader still uses it) - a damaged store, which loses more than
 * the commits since the last sync. So:
 *
 *  - A sync point (meta_sync(): fsync, fsyncdir, unmount, and every 5 s
 *    while there are commits) syncs data.mdb, pins the latest transaction
 *    with a read transaction held until the next sync point, so no later
 *    commit reuses a page of its tree, syncs again if a commit came in
 *    meanwhile (little is left), and records a copy of that transaction's
 *    meta page, with the boot id, in DIR/meta/safe (two slots, written in
 *    turn, each with a checksum; fdatasync'ed). The old pin is let go only
 *    then.
 *  - The pin keeps LMDB from reusing every page freed after it, and a
 *    busy writer frees several pages per commit (copy-on-write): 5 s of
 *    creating small files grew the store by 500 MiB. So once the store has
 *    grown 2 MiB past the pin, the sync point lapses: both slots are made
 *    invalid (written and flushed by the committing thread, never waiting
 *    for a sync in progress) and the pin goes. Until the next sync point
 *    a power loss finds no sync point and the store opens as it is, as
 *    before sync points: under a steady stream of changes the protection
 *    holds only from an fsync (or the periodic sync) for the next 2 MiB of
 *    changes.
 *  - At open, if the newest valid slot was written in an earlier boot and
 *    data.mdb holds commits after it (or no valid meta page at all), the
 *    system went down after the daemon's last sync point: what the disk
 *    holds of the later commits cannot be trusted, and the saved meta page
 *    is written over both of data.mdb's meta pages. The store is then the
 *    synced one, intact: its pages were on disk at the sync and nothing
 *    overwrote them since. Commits after it are lost, as a local file
 *    system loses what was not synced.
 *  - In the same boot (the daemon was killed, the kernel kept running) the
 *    page cache held every commit, so nothing is rolled back.
 *
 * The meta page is read from data.mdb at the offsets of LMDB's on-disk
 * format (stable since 0.9.0; checked against the transaction id at open
 * and at every sync point): with another layout sync points are off and the
 * store works as before. Commits hold db->commit_lock so that a sync point
 * copies a meta page no commit is writing.
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

#define SAFE_MAGIC   "TIDESAFE"
#define SAFE_VERSION 1
#define SAFE_HDR     128 /* slot header; the meta page follows */
#define SAFE_SUM_AT  120 /* u64 checksum of the slot with this zeroed */
#define BOOT_ID_LEN  40
/* The most the store may grow while a sync point pins its pages. */
#define SAFE_BUDGET (2u << 20)
/* A sync point that lasted this long before it lapsed (a moderate writer)
 * is followed by the next periodic one right away instead of at the
 * interval: a fifth of the interval, at least 1 s. */
#define SAFE_RENEW(every) MAX((every) / 5, 1000000000LL)

/* LMDB's on-disk meta page: a 16-byte page header, then MDB_meta. */
#define LM_MAGIC_AT 16
#define LM_TXNID_AT 144
#define LM_META_END 152
#define LM_MAGIC    0xBEEFC0DEu

struct safe_slot {
	uint64_t seq, txnid;
	int64_t written_s;
	char boot[BOOT_ID_LEN];
};

static void read_boot_id(char out[BOOT_ID_LEN])
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	memset(out, 0, BOOT_ID_LEN);
	if (!f)
		return;
	if (!fgets(out, BOOT_ID_LEN, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	out[BOOT_ID_LEN - 1] = '\0';
}

static uint64_t lm_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v)); /* native order, as LMDB writes it */
	return v;
}

static uint32_t lm_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The txnid of an LMDB meta page, or 0 if it is not one. */
static uint64_t lm_meta_txnid(const uint8_t *page)
{
	if (lm_u32(page + LM_MAGIC_AT) != LM_MAGIC)
		return 0;
	return lm_u64(page + LM_TXNID_AT);
}

static uint64_t slot_sum(uint8_t *buf, size_t len)
{
	uint8_t saved[8];
	uint64_t sum;

	memcpy(saved, buf + SAFE_SUM_AT, 8);
	memset(buf + SAFE_SUM_AT, 0, 8);
	sum = fnv1a64(buf, len);
	memcpy(buf + SAFE_SUM_AT, saved, 8);
	return sum;
}

/* Decode and check the slot in buf (SAFE_HDR + psize bytes). */
static bool slot_valid(uint8_t *buf, size_t psize, struct safe_slot *out)
{
	if (memcmp(buf, SAFE_MAGIC, 8) != 0 ||
	    get_le32(buf + 8) != SAFE_VERSION || get_le32(buf + 12) != psize ||
	    get_le64(buf + SAFE_SUM_AT) != slot_sum(buf, SAFE_HDR + psize))
		return false;
	out->seq = get_le64(buf + 16);
	out->txnid = get_le64(buf + 24);
	memcpy(out->boot, buf + 32, BOOT_ID_LEN);
	out->boot[BOOT_ID_LEN - 1] = '\0';
	out->written_s = (int64_t)get_le64(buf + 72);
	return out->txnid != 0 && lm_meta_txnid(buf + SAFE_HDR) == out->txnid;
}

static int read_full(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -ENODATA;
}

static char *path_in(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* The newest valid slot of the file at path into *slot and page (psize
 * bytes); 1 if there is one, 0 if not, -errno. */
static int newest_slot(int fd, size_t psize, struct safe_slot *slot,
		       uint8_t *page)
{
	uint8_t *buf = malloc(SAFE_HDR + psize);
	struct safe_slot s;
	int found = 0;

	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < 2; i++) {
		if (read_full(fd, buf, SAFE_HDR + psize,
			      (off_t)i * (off_t)(SAFE_HDR + psize)) < 0 ||
		    !slot_valid(buf, psize, &s))
			continue;
		if (!found || s.seq > slot->seq) {
			*slot = s;
			memcpy(page, buf + SAFE_HDR, psize);
			found = 1;
		}
	}
	free(buf);
	return found;
}

int meta_safe_recover(const char *path, bool keep)
{
	char *spath = path_in(path, "safe"), *dpath = path_in(path, "data.mdb");
	char boot[BOOT_ID_LEN], when[32];
	uint8_t hdr[SAFE_HDR], *page = NULL, m[2][LM_META_END];
	uint64_t latest = 0;
	struct safe_slot slot;
	size_t psize;
	int sfd = -1, dfd = -1, ret = 0;
	struct tm tm;
	time_t t;

	if (!spath || !dpath) {
		ret = -ENOMEM;
		goto out;
	}
	sfd = open(spath, O_RDONLY | O_CLOEXEC);
	if (sfd < 0) {
		ret = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	/* The page size is in the slots' headers. */
	psize = (size_t)sysconf(_SC_PAGESIZE);
	if (read_full(sfd, hdr, SAFE_HDR, 0) == 0 &&
	    memcmp(hdr, SAFE_MAGIC, 8) == 0)
		psize = get_le32(hdr + 12);
	if (psize < 512 || psize > 65536 || (psize & (psize - 1)))
		psize = 0;
	page = psize ? malloc(psize) : NULL;
	if (!page || newest_slot(sfd, psize, &slot, page) <= 0) {
		log_info("meta: %s: no valid sync point (the last one lapsed, "
			 "or the file is damaged): the store opens as it is",
			 spath);
		goto out;
	}
	read_boot_id(boot);
	if (!boot[0] || strcmp(boot, slot.boot) == 0)
		goto out; /* same boot: the page cache had every commit */
	dfd = open(dpath, O_RDWR | O_CLOEXEC);
	if (dfd < 0) {
		ret = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t id = 0;

		if (read_full(dfd, m[i], LM_META_END, (off_t)(i * psize)) == 0)
			id = lm_meta_txnid(m[i]);
		latest = MAX(latest, id);
	}
	if (latest == slot.txnid)
		goto out; /* synced when the system went down */
	if (latest > 0 && latest < slot.txnid) {
		log_warn("meta: %s: the sync point (transaction %" PRIu64
			 ") is newer than the store (%" PRIu64 "): not used",
			 spath, slot.txnid, latest);
		goto out;
	}
	t = (time_t)slot.written_s;
	if (!localtime_r(&t, &tm) ||
	    !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(when, sizeof(when), "?");
	log_warn("meta: the system went down after the last sync point of "
		 "the metadata (%s; %" PRIu64 " later transaction(s) were "
		 "not synced): going back to it. Changes made after it are "
		 "lost, as a local file system loses what was not synced",
		 when, latest > slot.txnid ? latest - slot.txnid : 0);
	for (int i = 0; i < 2 && !ret; i++)
		ret = pwrite_all(dfd, page, psize, (off_t)(i * psize));
	if (!ret && fdatasync(dfd) < 0)
		ret = -errno;
	if (ret)
		log_error("meta: going back to the sync point: %s",
			  strerror(-ret));
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	/* Without sync points (durable commits) an old file would roll a
	 * later power loss back to it. */
	if (!ret && !keep && spath && unlink(spath) < 0 && errno != ENOENT)
		ret = -errno;
	free(page);
	free(spath);
	free(dpath);
	return ret;
}

/* Copy the meta page of transaction id into page (psize bytes): 0, or
 * -ENOENT if neither meta page is it. Under commit_lock, so no commit is
 * writing one (a write into the map or a pwrite: the page cache has it
 * either way). */
static int read_meta(struct meta_db *db, uint64_t id, uint8_t *page)
{
	mdb_filehandle_t fd;

	if (mdb_env_get_fd(db->env, &fd) != 0)
		return -EBADF;
	for (int i = 0; i < 2; i++)
		if (read_full(fd, page, db->psize, (off_t)(i * db->psize)) ==
			    0 &&
		    lm_meta_txnid(page) == id)
			return 0;
	return -ENOENT;
}

/* The last committed transaction and the last page it uses (0s if LMDB
 * cannot say). */
static MDB_envinfo env_last(struct meta_db *db)
{
	MDB_envinfo info = {0};

	if (mdb_env_info(db->env, &info) != 0)
		memset(&info, 0, sizeof(info));
	return info;
}

static int safe_lapse(struct meta_db *db);

void meta_safe_committed(struct meta_db *db)
{
	uint64_t pinned = atomic_load(&db->safe_pin_pgno);

	if (!pinned ||
	    env_last(db).me_last_pgno <= pinned + SAFE_BUDGET / db->psize)
		return;
	/* Lapse now, in this thread (a write and a flush, once per sync
	 * point). Never wait for safe_lock here: whoever holds it is making
	 * a new sync point (which moves the pin) or about to wait; the next
	 * commit tries again. */
	if (pthread_mutex_trylock(&db->safe_lock) != 0)
		return;
	if (db->safe_pin && db->safe_fd >= 0 &&
	    atomic_load(&db->safe_pin_pgno) == pinned)
		safe_lapse(db);
	pthread_mutex_unlock(&db->safe_lock);
}

/* The store grew past the budget since the sync point: LMDB could not reuse
 * a page freed since, so a busy writer would grow it without bound. Let the
 * pin go, after making both slots invalid (a power loss must not go back to
 * pages no longer pinned; the mount then checks the store as it finds it).
 * meta_sync() or the periodic thread makes a new one; when this one lasted
 * SAFE_RENEW or longer, the thread makes it right away, so a writer that
 * grows the store by less than the budget in that time stays protected.
 * A busier writer is left to the interval: renewing for it would protect a
 * few more milliseconds per second and grow the store by the budget each
 * time (measured: +20 MiB of the daemon's RSS over a 100,000-file tree).
 * Under safe_lock. */
static int safe_lapse(struct meta_db *db)
{
	static const uint8_t zero[8];
	int ret = 0;

	for (int i = 0; i < 2 && !ret; i++)
		ret = pwrite_all(db->safe_fd, zero, sizeof(zero),
				 (off_t)i * (off_t)(SAFE_HDR + db->psize));
	if (!ret && fdatasync(db->safe_fd) < 0)
		ret = -errno;
	if (ret) {
		log_error("meta: letting a sync point lapse: %s",
			  strerror(-ret));
		return ret;
	}
	log_debug("meta: sync point of transaction %" PRIu64 " lapsed: "
		  "%u MiB of changes since",
		  atomic_load(&db->safe_txnid), SAFE_BUDGET >> 20);
	mdb_txn_abort(db->safe_pin);
	db->safe_pin = NULL;
	atomic_store(&db->safe_pin_pgno, 0);
	if (time_mono_ns() - db->safe_pin_ns >= SAFE_RENEW(db->safe_every_ns)) {
		db->safe_renew = true;
		pthread_cond_signal(&db->safe_cond);
	}
	return 0;
}

/* Make a sync point. Under safe_lock. */
static int safe_point(struct meta_db *db)
{
	size_t len = SAFE_HDR + db->psize;
	uint8_t *buf = calloc(1, len);
	/* The slot after the newest: the newest stays valid (and pinned)
	 * until this one is on disk; a failed write is retried in the same
	 * slot. */
	uint64_t id = 0, seq = db->safe_seq + 1, pgno = 0, synced;
	MDB_txn *pin = NULL;
	int rc, ret = 0;

	if (!buf)
		return -ENOMEM;
	/* Write most of it out before pinning: the pinned sync below then
	 * has little left, and the store grows only while it runs. Every
	 * transaction up to `synced` has its pages in the map already. */
	synced = meta_last_txn(db);
	ret = meta_lmdb_err(mdb_env_sync(db->env, 1), "sync");
	if (ret) {
		free(buf);
		return ret;
	}
	pthread_mutex_lock(&db->commit_lock);
	rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &pin);
	if (rc == 0) {
		id = mdb_txn_id(pin);
		pgno = env_last(db).me_last_pgno;
		ret = read_meta(db, id, buf + SAFE_HDR);
	}
	pthread_mutex_unlock(&db->commit_lock);
	if (rc) {
		free(buf);
		return meta_lmdb_err(rc, "sync point");
	}
	if (ret == -ENOENT) {
		/* Not the layout checked at open: go on without, and without
		 * the old points, whose pages are not pinned any more. */
		log_error("meta: sync point: LMDB's meta page of transaction "
			  "%" PRIu64 " not found; sync points are off",
			  id);
		if (ftruncate(db->safe_fd, 0) < 0)
			log_error("meta: cannot drop the old sync points: %s",
				  strerror(errno));
		close(db->safe_fd);
		db->safe_fd = -1;
		mdb_txn_abort(db->safe_pin);
		db->safe_pin = NULL;
		ret = meta_lmdb_err(mdb_env_sync(db->env, 1), "sync");
		goto out;
	}
	/* Only commits made since the first sync are left to write (each
	 * sync costs a flush of the disk's cache, even with nothing left). */
	if (ret == 0 && id != synced)
		ret = meta_lmdb_err(mdb_env_sync(db->env, 1), "sync");
	if (ret)
		goto out;
	memcpy(buf, SAFE_MAGIC, 8);
	put_le32(buf + 8, SAFE_VERSION);
	put_le32(buf + 12, (uint32_t)db->psize);
	put_le64(buf + 16, seq);
	put_le64(buf + 24, id);
	memcpy(buf + 32, db->boot, BOOT_ID_LEN);
	put_le64(buf + 72, (uint64_t)time(NULL));
	put_le64(buf + SAFE_SUM_AT, slot_sum(buf, len));
	ret = pwrite_all(db->safe_fd, buf, len, (off_t)((seq & 1) * len));
	if (ret == 0 && fdatasync(db->safe_fd) < 0)
		ret = -errno;
	if (ret) {
		log_error("meta: writing the sync point: %s", strerror(-ret));
		goto out;
	}
	/* The new point is on disk: the old one's pages may go. */
	mdb_txn_abort(db->safe_pin);
	db->safe_pin = pin;
	pin = NULL;
	db->safe_seq = seq;
	atomic_store(&db->safe_txnid, id);
	atomic_fetch_add(&db->syncs, 1);
	atomic_store(&db->safe_pin_pgno, MAX(pgno, 1));
	db->safe_pin_ns = time_mono_ns();
	db->safe_renew = false;
out:
	if (pin)
		mdb_txn_abort(pin);
	free(buf);
	return ret;
}

int meta_safe_sync_upto(struct meta_db *db, uint64_t want)
{
	int ret = 0;

	pthread_mutex_lock(&db->safe_lock);
	if (db->safe_fd < 0) {
		ret = meta_lmdb_err(mdb_env_sync(db->env, 1), "sync");
		if (ret == 0)
			atomic_fetch_add(&db->syncs, 1);
	} else if (atomic_load(&db->safe_txnid) < want || !db->safe_pin) {
		ret = safe_point(db); /* else a sync since covered it */
	}
	pthread_mutex_unlock(&db->safe_lock);
	return ret;
}

int meta_safe_sync(struct meta_db *db)
{
	return meta_safe_sync_upto(db, meta_last_txn(db));
}

/* Under safe_lock: how long after its last point the thread makes the
 * next one. */
static int64_t next_gap(const struct meta_db *db)
{
	return db->safe_renew ? SAFE_RENEW(db->safe_every_ns)
			      : db->safe_every_ns;
}

static void *safe_main(void *arg)
{
	struct meta_db *db = arg;
	int64_t last_err = INT64_MIN / 2, last_point = time_mono_ns();
	struct timespec ts;

	pthread_mutex_lock(&db->safe_lock);
	while (!db->safe_stop) {
		int64_t wait = next_gap(db) - (time_mono_ns() - last_point);

		wait = MAX(wait, 1000000LL);
		ts = time_deadline(CLOCK_MONOTONIC, wait);
		pthread_cond_timedwait(&db->safe_cond, &db->safe_lock, &ts);
		if (db->safe_stop || db->safe_fd < 0)
			continue;
		if (time_mono_ns() - last_point < next_gap(db))
			continue;
		last_point = time_mono_ns();
		db->safe_renew = false;
		if (atomic_load(&db->safe_txnid) != meta_last_txn(db) &&
		    safe_point(db) < 0 &&
		    time_mono_ns() - last_err > 60 * 1000000000LL) {
			last_err = time_mono_ns();
			log_warn("meta: a periodic sync point failed (see "
				 "above)");
		}
	}
	pthread_mutex_unlock(&db->safe_lock);
	return NULL;
}

int meta_safe_start(struct meta_db *db, const char *path)
{
	char *spath = path_in(path, "safe");
	uint8_t hdr[SAFE_HDR], *page;
	bool layout_ok;
	int ret;

	db->safe_fd = -1;
	if (!spath)
		return -ENOMEM;
	read_boot_id(db->boot);
	page = malloc(db->psize);
	if (!page) {
		free(spath);
		return -ENOMEM;
	}
	pthread_mutex_lock(&db->commit_lock);
	layout_ok = read_meta(db, meta_last_txn(db), page) == 0;
	pthread_mutex_unlock(&db->commit_lock);
	free(page);
	if (!db->boot[0] || !layout_ok) {
		log_warn("meta: %s", db->boot[0] ? "LMDB's meta page layout "
						   "is not the known one"
						 : "no boot id in /proc");
		log_warn("meta: no sync points: after a power loss the "
			 "metadata may be damaged");
		unlink(spath);
		free(spath);
		return 0;
	}
	db->safe_fd = open(spath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->safe_fd < 0) {
		ret = -errno;
		log_error("meta: %s: %s", spath, strerror(errno));
		free(spath);
		return ret;
	}
	free(spath);
	/* Go on from the file's sequence, so the newest slot stays newest. */
	for (int i = 0; i < 2; i++)
		if (read_full(db->safe_fd, hdr, SAFE_HDR,
			      (off_t)i * (off_t)(SAFE_HDR + db->psize)) == 0 &&
		    memcmp(hdr, SAFE_MAGIC, 8) == 0)
			db->safe_seq = MAX(db->safe_seq, get_le64(hdr + 16));
	/* Failing here is not fatal: meta_sync() and the thread try again,
	 * and fsync fails meanwhile. But the file's old sync points must go:
	 * nothing pins their pages now, so a power loss must not go back to
	 * them. */
	pthread_mutex_lock(&db->safe_lock);
	if (safe_point(db) < 0 && ftruncate(db->safe_fd, 0) < 0)
		log_error("meta: cannot drop the old sync points: %s",
			  strerror(errno));
	pthread_mutex_unlock(&db->safe_lock);
	ret = -pthread_create(&db->safe_thread, NULL, safe_main, db);
	db->safe_running = ret == 0;
	return ret;
}

void meta_set_sync_interval(struct meta_db *db, int seconds)
{
	pthread_mutex_lock(&db->safe_lock);
	db->safe_every_ns = (int64_t)MAX(seconds, 1) * 1000000000LL;
	pthread_cond_signal(&db->safe_cond);
	pthread_mutex_unlock(&db->safe_lock);
}

void meta_safe_stop(struct meta_db *db)
{
	if (db->safe_running) {
		pthread_mutex_lock(&db->safe_lock);
		db->safe_stop = true;
		pthread_cond_signal(&db->safe_cond);
		pthread_mutex_unlock(&db->safe_lock);
		pthread_join(db->safe_thread, NULL);
		db->safe_running = false;
	}
	if (db->safe_fd >= 0) {
		pthread_mutex_lock(&db->safe_lock);
		if (atomic_load(&db->safe_txnid) != meta_last_txn(db))
			safe_point(db);
		pthread_mutex_unlock(&db->safe_lock);
		close(db->safe_fd);
		db->safe_fd = -1;
	}
	mdb_txn_abort(db->safe_pin);
	db->safe_pin = NULL;
}
