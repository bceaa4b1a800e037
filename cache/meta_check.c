// SPDX-License-Identifier: MIT
/*
 * meta_check — is the store intact? (meta_open_checked() in meta.h)
 *
 * A power loss while no sync point protects the store (meta_safe.c: it
 * lapsed under a busy writer), or a disk that loses or garbles writes, can
 * leave data.mdb with a meta page whose tree is half written. LMDB has no
 * checksums: it reads such a tree as it finds it, returns nonsense or
 * crashes (an assertion, a bad pointer). A mount that trusted it would then
 * also remove the data files its damaged tables no longer name (the orphan
 * scan), which may be the only copy of files not yet exported.
 *
 * So a store that was not closed cleanly is checked before it is opened
 * for writing, in a child process (a crash there only says "damaged"):
 *
 *   - LMDB's own accounting (its debug builds' audit): the pages of every
 *     tree (free list, main table, each table) plus the free pages plus
 *     the two meta pages are exactly the pages the last transaction used;
 *     every free page number lies among them, and none is free twice;
 *   - every table walks from first to last without error, keys strictly
 *     ascending, as many entries as its header says;
 *   - every record has its table's shape (key and value sizes), every
 *     inode record decodes, every name leads from a directory inode to an
 *     inode. (A store of a format this binary does not read is left to
 *     meta_open, which refuses it with its own message.)
 *
 * A store closed cleanly (super "closed" = 1, written by meta_close() and
 * cleared by the next open) costs a fork and a look at that flag. The walk
 * reads every page once: a mount after kill -9 of a store holding 100,000
 * files took 0.34 s in all. meta_check() runs the same walk on demand
 * (tidefs check). The child processes here and in meta_salvage.c are the
 * meta_reader_* helpers at the end of this file.
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Child exit codes. */
enum { CHK_OK = 0, CHK_DAMAGED = 1, CHK_FAILED = 2 };

#define CHK_WHY	    300
#define CHK_TIMEOUT 600 /* s: a check that hangs is damage too */

struct ino_kind {
	uint64_t ino; /* first: sorted and found by u64_cmp */
	bool dir;
};

struct chk {
	MDB_txn *txn;
	char why[CHK_WHY];
	struct ino_kind *inos; /* ascending (the walk's order) */
	size_t ninos, cap;
};

static int bad(struct chk *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct chk *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return CHK_DAMAGED;
}

static const struct ino_kind *find_ino(const struct chk *c, uint64_t ino)
{
	if (!c->ninos)
		return NULL;
	return bsearch(&ino, c->inos, c->ninos, sizeof(*c->inos), u64_cmp);
}

/* LMDB's default order: bytes, then the shorter key first. */
static int key_cmp(const MDB_val *a, const MDB_val *b)
{
	size_t n = MIN(a->mv_size, b->mv_size);
	int d = n ? memcmp(a->mv_data, b->mv_data, n) : 0;

	if (d)
		return d;
	return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

typedef int (*rec_fn)(struct chk *c, const MDB_val *k, const MDB_val *v);

static int rec_inode(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	struct meta_inode mi;
	uint64_t ino;
	int ret;

	if (k->mv_size != 8)
		return bad(c, "inodes: a key of %zu bytes", k->mv_size);
	ino = get_be64(k->mv_data);
	ret = meta_inode_decode(ino, v, &mi);
	if (ret == -ENOMEM) {
		bad(c, "out of memory");
		return CHK_FAILED;
	}
	if (ret < 0)
		return bad(c,
			   "inodes: the record of inode %llu does not decode",
			   (unsigned long long)ino);
	if (c->ninos == c->cap) {
		struct ino_kind *n =
			array_grow(c->inos, &c->cap, sizeof(*n), 1024);

		if (!n) {
			meta_inode_release(&mi);
			bad(c, "out of memory");
			return CHK_FAILED;
		}
		c->inos = n;
	}
	c->inos[c->ninos++] =
		(struct ino_kind){.ino = ino, .dir = S_ISDIR(mi.mode)};
	meta_inode_release(&mi);
	return CHK_OK;
}

static int rec_dentry(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *name = (const uint8_t *)k->mv_data + 8;
	const struct ino_kind *parent;
	uint64_t p, child;

	if (k->mv_size < 9 || k->mv_size > 8 + META_NAME_MAX || v->mv_size != 8)
		return bad(c, "dentries: a record of %zu + %zu bytes",
			   k->mv_size, v->mv_size);
	p = get_be64(k->mv_data);
	child = get_le64(v->mv_data);
	if (memchr(name, '/', k->mv_size - 8) ||
	    memchr(name, '\0', k->mv_size - 8))
		return bad(c,
			   "dentries: a name in directory %llu holds '/' or"
			   " NUL",
			   (unsigned long long)p);
	parent = find_ino(c, p);
	if (!parent || !parent->dir)
		return bad(c, "dentries: a name in %llu, which is %s",
			   (unsigned long long)p,
			   parent ? "not a directory" : "no inode");
	if (!find_ino(c, child))
		return bad(c,
			   "dentries: %.*s in directory %llu names inode"
			   " %llu, which does not exist",
			   (int)(k->mv_size - 8), (const char *)name,
			   (unsigned long long)p, (unsigned long long)child);
	return CHK_OK;
}

static int rec_ino_pair(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	if (k->mv_size != 16 || v->mv_size != 0)
		return bad(c, "chunks/lru: a record of %zu + %zu bytes",
			   k->mv_size, v->mv_size);
	return CHK_OK;
}

static int rec_dirty(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	if (k->mv_size != 8 || v->mv_size != 0)
		return bad(c, "dirty: a record of %zu + %zu bytes", k->mv_size,
			   v->mv_size);
	return CHK_OK;
}

static int rec_xattr(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	if (k->mv_size < 9 || k->mv_size > 8 + META_NAME_MAX ||
	    v->mv_size > META_XATTR_VAL_MAX)
		return bad(c, "xattrs: a record of %zu + %zu bytes", k->mv_size,
			   v->mv_size);
	return CHK_OK;
}

static int rec_named(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	(void)v;
	if (k->mv_size == 0)
		return bad(c, "tasks/super: an empty key");
	return CHK_OK;
}

static int rec_gone(struct chk *c, const MDB_val *k, const MDB_val *v)
{
	const char *h = k->mv_data;

	if (k->mv_size != 64 || !memchr(v->mv_data, '\0', v->mv_size))
		return bad(c, "gone: a record of %zu + %zu bytes", k->mv_size,
			   v->mv_size);
	for (size_t i = 0; i < 64; i++)
		if (!((h[i] >= '0' && h[i] <= '9') ||
		      (h[i] >= 'a' && h[i] <= 'f')))
			return bad(c, "gone: a key that is not hex");
	return CHK_OK;
}

/* The order the tables are walked in: inodes before dentries. */
static const rec_fn rec_fns[T_COUNT] = {
	[T_INODES] = rec_inode,	   [T_DENTRIES] = rec_dentry,
	[T_CHUNKS] = rec_ino_pair, [T_LRU] = rec_ino_pair,
	[T_DIRTY] = rec_dirty,	   [T_XATTRS] = rec_xattr,
	[T_TASKS] = rec_named,	   [T_SUPER] = rec_named,
	[T_GONE] = rec_gone,
};

/* Walk one table; fn (NULL: none) checks each record. */
static int walk(struct chk *c, MDB_dbi dbi, const char *name, rec_fn fn)
{
	uint8_t prev[512]; /* LMDB keys are at most 511 bytes */
	MDB_val pk = {.mv_size = 0, .mv_data = prev}, k, v;
	MDB_cursor *cur;
	MDB_stat st;
	size_t n = 0;
	int rc, ret = CHK_OK;

	rc = mdb_stat(c->txn, dbi, &st);
	if (!rc)
		rc = mdb_cursor_open(c->txn, dbi, &cur);
	if (rc)
		return bad(c, "%s: %s", name, mdb_strerror(rc));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > sizeof(prev) ||
		    (n > 0 && key_cmp(&pk, &k) >= 0)) {
			ret = bad(c, "%s: keys out of order", name);
			break;
		}
		memcpy(prev, k.mv_data, k.mv_size);
		pk.mv_size = k.mv_size;
		n++;
		if (fn && (ret = fn(c, &k, &v)) != CHK_OK)
			break;
	}
	mdb_cursor_close(cur);
	if (ret != CHK_OK)
		return ret;
	if (rc != MDB_NOTFOUND)
		return bad(c, "%s: %s", name, mdb_strerror(rc));
	if (n != st.ms_entries)
		return bad(c, "%s: %zu entries, its header says %zu", name, n,
			   (size_t)st.ms_entries);
	return CHK_OK;
}

/* LMDB's free list (table 0): txnid -> [count, page numbers...]. Adds
 * the free pages to *nfree. */
static int walk_free(struct chk *c, uint64_t last_pgno, uint64_t *nfree)
{
	uint64_t *pages = NULL;
	size_t npages = 0, cap = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, ret = CHK_OK;

	rc = mdb_cursor_open(c->txn, 0, &cur);
	if (rc)
		return bad(c, "free list: %s", mdb_strerror(rc));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *p = v.mv_data;
		uint64_t cnt;

		if (k.mv_size != sizeof(size_t) || v.mv_size < 8 ||
		    v.mv_size % 8) {
			ret = bad(c, "free list: a record of %zu + %zu bytes",
				  k.mv_size, v.mv_size);
			break;
		}
		memcpy(&cnt, p, 8);
		if (cnt != v.mv_size / 8 - 1) {
			ret = bad(c,
				  "free list: an entry of %llu pages in %zu"
				  " bytes",
				  (unsigned long long)cnt, v.mv_size);
			break;
		}
		for (uint64_t i = 1; i <= cnt; i++) {
			uint64_t pg;

			memcpy(&pg, p + 8 * i, 8);
			if (pg < 2 || pg > last_pgno) {
				ret = bad(c,
					  "free list: page %llu is not a"
					  " page of the store (last %llu)",
					  (unsigned long long)pg,
					  (unsigned long long)last_pgno);
				goto out;
			}
			if (npages == cap) {
				uint64_t *n = array_grow(pages, &cap,
							 sizeof(*n), 4096);
				if (!n) {
					bad(c, "out of memory");
					ret = CHK_FAILED;
					goto out;
				}
				pages = n;
			}
			pages[npages++] = pg;
		}
	}
	if (rc != MDB_NOTFOUND)
		ret = bad(c, "free list: %s", mdb_strerror(rc));
out:
	mdb_cursor_close(cur);
	if (ret == CHK_OK && npages > 1) {
		qsort(pages, npages, sizeof(*pages), u64_cmp);
		for (size_t i = 1; i < npages; i++)
			if (pages[i] == pages[i - 1]) {
				ret = bad(c,
					  "free list: page %llu is free"
					  " twice",
					  (unsigned long long)pages[i]);
				break;
			}
	}
	free(pages);
	*nfree = npages;
	return ret;
}

static uint64_t tree_pages(const MDB_stat *st)
{
	return (uint64_t)st->ms_branch_pages + st->ms_leaf_pages +
	       st->ms_overflow_pages;
}

/* The whole check, on an open read transaction. */
static int check_txn(struct chk *c, MDB_env *env)
{
	MDB_dbi dbi[T_COUNT];
	bool have[T_COUNT] = {false};
	MDB_envinfo info;
	MDB_stat st;
	uint64_t used = 2, nfree = 0, v64;
	MDB_val k, v;
	int rc, ret;

	rc = mdb_env_info(env, &info);
	if (rc)
		return bad(c, "%s", mdb_strerror(rc));
	/* The names of the main table are the tables; one holding something
	 * else would be damage, and its pages count below. */
	ret = walk(c, 1, "the table of tables", NULL);
	if (ret != CHK_OK)
		return ret;
	for (int i = 0; i < T_COUNT; i++) {
		rc = mdb_dbi_open(c->txn, meta_table_names[i], 0, &dbi[i]);
		if (rc == MDB_NOTFOUND)
			continue; /* a store made before the table existed */
		if (rc)
			return bad(c, "%s: %s", meta_table_names[i],
				   mdb_strerror(rc));
		have[i] = true;
	}
	if (mdb_stat(c->txn, 1, &st) == 0 && st.ms_entries > T_COUNT)
		return bad(c, "%zu tables, this tidefs knows %d",
			   (size_t)st.ms_entries, T_COUNT);
	/* Super first: the format says whether the records are ours. */
	if (have[T_SUPER]) {
		k = (MDB_val){.mv_size = 6, .mv_data = (void *)"format"};
		rc = mdb_get(c->txn, dbi[T_SUPER], &k, &v);
		if (rc == 0 && v.mv_size == 8) {
			v64 = get_le64(v.mv_data);
			if (v64 < META_FORMAT_MIN || v64 > META_FORMAT)
				return CHK_OK; /* meta_open refuses it */
		} else if (rc != MDB_NOTFOUND) {
			return bad(c, "super: the format record: %s",
				   rc ? mdb_strerror(rc) : "not 8 bytes");
		}
	}
	for (int i = 0; i < T_COUNT; i++) {
		if (!have[i])
			continue;
		ret = walk(c, dbi[i], meta_table_names[i], rec_fns[i]);
		if (ret != CHK_OK)
			return ret;
		rc = mdb_stat(c->txn, dbi[i], &st);
		if (rc)
			return bad(c, "%s: %s", meta_table_names[i],
				   mdb_strerror(rc));
		used += tree_pages(&st);
	}
	ret = walk_free(c, info.me_last_pgno, &nfree);
	if (ret != CHK_OK)
		return ret;
	for (MDB_dbi d = 0; d < 2; d++) {
		rc = mdb_stat(c->txn, d, &st);
		if (rc)
			return bad(c, "%s", mdb_strerror(rc));
		used += tree_pages(&st);
	}
	if (used + nfree != (uint64_t)info.me_last_pgno + 1)
		return bad(c,
			   "%llu pages in trees and %llu free, but the "
			   "store has %llu",
			   (unsigned long long)used, (unsigned long long)nfree,
			   (unsigned long long)info.me_last_pgno + 1);
	return CHK_OK;
}

struct check_arg {
	const char *path;
	bool always; /* even when closed cleanly */
};

/* In the child: open path read-only, check, report why on fd. */
static int child_check(const struct check_arg *a, int fd)
{
	const char *path = a->path;
	struct chk c;
	MDB_env *env = NULL;
	MDB_dbi sdbi;
	MDB_val k = {.mv_size = 6, .mv_data = (void *)"closed"}, v;
	int rc, ret;

	memset(&c, 0, sizeof(c));
	rc = meta_reader_env(path, &env);
	if (rc == ENOENT) {
		ret = CHK_OK; /* a new store */
		goto out;
	}
	if (!rc)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &c.txn);
	if (rc) {
		ret = bad(&c, "cannot read it: %s", mdb_strerror(rc));
		/* LMDB's own codes are negative: what it found in the file.
		 * An errno from the system (but EIO) says nothing of it. */
		if (rc > 0 && rc != EIO)
			ret = CHK_FAILED;
		goto out;
	}
	rc = mdb_dbi_open(c.txn, meta_table_names[T_SUPER], 0, &sdbi);
	if (rc == MDB_NOTFOUND) {
		ret = CHK_OK; /* never opened for writing yet */
		goto out;
	}
	if (!a->always && rc == 0 && mdb_get(c.txn, sdbi, &k, &v) == 0 &&
	    v.mv_size == 8 && get_le64(v.mv_data) == 1) {
		ret = CHK_OK; /* closed cleanly */
		goto out;
	}
	ret = check_txn(&c, env);
out:
	if (c.txn)
		mdb_txn_abort(c.txn);
	if (env)
		mdb_env_close(env);
	free(c.inos);
	if (ret != CHK_OK) {
		size_t n = strlen(c.why);

		while (n > 0) {
			ssize_t w = write(fd, c.why, n);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			memmove(c.why, c.why + w, n - (size_t)w);
			n -= (size_t)w;
		}
	}
	return ret;
}

int meta_reader_env(const char *path, MDB_env **out)
{
	int rc = mdb_env_create(out);

	if (rc)
		return rc;
	rc = mdb_env_set_maxdbs(*out, T_COUNT + 2);
	/* Nothing else uses the store meanwhile (the cache dir's lock), and
	 * a damaged one must not be written: no lock file, read-only. */
	if (!rc)
		rc = mdb_env_open(*out, path,
				  MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0600);
	if (rc) {
		mdb_env_close(*out);
		*out = NULL;
	}
	return rc;
}

int meta_reader_start(struct meta_reader *r, int (*fn)(void *arg, int wfd),
		      void *arg, int timeout_s)
{
	static const int crashes[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
	int fds[2], ret;

	r->fd = -1;
	r->pid = -1;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	r->deadline = time_mono_ns() + (int64_t)timeout_s * 1000000000;
	r->pid = fork();
	if (r->pid < 0) {
		ret = -errno;
		close(fds[0]);
		close(fds[1]);
		return ret;
	}
	if (r->pid == 0) {
		/* A crash must end the child, whatever handler the parent
		 * had (a test harness's would carry on in the child). */
		for (size_t i = 0; i < ARRAY_SIZE(crashes); i++)
			signal(crashes[i], SIG_DFL);
		close(fds[0]);
		_exit(fn(arg, fds[1]));
	}
	close(fds[1]);
	r->fd = fds[0];
	return 0;
}

ssize_t meta_reader_read(struct meta_reader *r, void *buf, size_t len)
{
	for (;;) {
		struct pollfd p = {.fd = r->fd, .events = POLLIN};
		int64_t left = (r->deadline - time_mono_ns()) / 1000000;
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)MIN(left, 1000)) < 0 && errno != EINTR)
			return -errno;
		if (!p.revents)
			continue;
		n = read(r->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}

int meta_reader_finish(struct meta_reader *r, bool stop)
{
	int status = 0;

	close(r->fd);
	if (stop)
		kill(r->pid, SIGKILL);
	while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static int check_fn(void *arg, int wfd)
{
	return child_check(arg, wfd);
}

int meta_check_store(const char *path, bool always, char *why, size_t len)
{
	struct check_arg a = {.path = path, .always = always};
	struct meta_reader r = {.fd = -1, .pid = -1};
	char buf[CHK_WHY] = "";
	size_t got = 0;
	bool late = false;
	int status, ret;

	if (len)
		why[0] = '\0';
	ret = meta_reader_start(&r, check_fn, &a, CHK_TIMEOUT);
	if (ret < 0)
		return ret;
	while (got < sizeof(buf) - 1) {
		ssize_t n =
			meta_reader_read(&r, buf + got, sizeof(buf) - 1 - got);

		late = n == -ETIMEDOUT;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	status = meta_reader_finish(&r, late);
	if (late) {
		snprintf(buf, sizeof(buf), "reading it did not finish in %d s",
			 CHK_TIMEOUT);
		ret = -EUCLEAN;
	} else if (WIFSIGNALED(status)) {
		if (!buf[0])
			snprintf(buf, sizeof(buf),
				 "reading it crashed (signal %d)",
				 WTERMSIG(status));
		ret = -EUCLEAN;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == CHK_OK) {
		ret = 0;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == CHK_DAMAGED) {
		ret = -EUCLEAN;
	} else {
		ret = -EIO; /* could not check (out of memory, ...) */
	}
	if (len)
		snprintf(why, len, "%s", buf);
	return ret;
}
