// SPDX-License-Identifier: MIT
/*
 * meta_salvage — read what can be read of a damaged store (meta.h).
 *
 * LMDB may crash on a damaged page, so child processes read: one walks a
 * table (inodes, then dentries) forward from its first key and streams
 * every record that is sane over a pipe, one write() per record (at most
 * PIPE_BUF bytes, so a record arrives whole or not at all); when it stops
 * early (an error, a crash, a record out of order), a second walks it
 * backward from its last key until it meets what the first one had. So
 * only the records of the damaged part of a table are missing. The parent
 * then gives every inode the first name found for it and builds its path
 * from the root by its parents' names.
 */
#include "cache/meta_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Stream records: 'I' ino mode state flags size | 'D' parent ino len name */
#define REC_MAX	    (1 + 8 + 8 + 2 + META_NAME_MAX)
#define SAL_TIMEOUT 600 /* s per walk */

struct sal_ino {
	uint64_t ino; /* first: sorted and found by u64_cmp */
	uint32_t mode, state, flags;
	uint64_t size;
	uint64_t parent; /* 0: no name found */
	char *name;	 /* owned */
};

struct sal {
	struct sal_ino *v; /* sorted by ino once read */
	size_t n, cap;
	struct {
		uint64_t parent, ino;
		char *name;
	} * d;
	size_t nd, capd;
};

static int put_all(int fd, const void *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf = (const char *)buf + w;
		len -= (size_t)w;
	}
	return 0;
}

/* The child: walk table t of the store in path (forward from the first key,
 * or backward from the last), streaming records to fd. */
static int child_walk(const char *path, enum meta_table t, bool back, int fd)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	uint8_t rec[REC_MAX];
	int rc;

	rc = meta_reader_env(path, &env);
	if (!rc)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (!rc)
		rc = mdb_dbi_open(txn, meta_table_names[t], 0, &dbi);
	if (!rc)
		rc = mdb_cursor_open(txn, dbi, &cur);
	for (rc = rc ? rc
		     : mdb_cursor_get(cur, &k, &v, back ? MDB_LAST : MDB_FIRST);
	     rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, back ? MDB_PREV : MDB_NEXT)) {
		size_t len;

		if (t == T_INODES) {
			struct meta_inode mi;
			uint32_t u[3];
			uint64_t ino;

			if (k.mv_size != 8)
				continue;
			ino = get_be64(k.mv_data);
			if (meta_inode_decode(ino, &v, &mi) != 0)
				continue;
			rec[0] = 'I';
			memcpy(rec + 1, &ino, 8);
			u[0] = mi.mode;
			u[1] = mi.state;
			u[2] = mi.flags;
			memcpy(rec + 9, u, 12);
			memcpy(rec + 21, &mi.size, 8);
			len = 29;
			meta_inode_release(&mi);
		} else {
			uint64_t parent, ino;
			uint16_t nlen;

			if (k.mv_size < 9 || k.mv_size > 8 + META_NAME_MAX ||
			    v.mv_size != 8)
				continue;
			nlen = (uint16_t)(k.mv_size - 8);
			/* Names become paths under the salvage's target:
			 * never one that climbs out of it. */
			if (memchr((const char *)k.mv_data + 8, '/', nlen) ||
			    memchr((const char *)k.mv_data + 8, '\0', nlen) ||
			    (nlen <= 2 &&
			     !memcmp((const char *)k.mv_data + 8, "..", nlen)))
				continue;
			parent = get_be64(k.mv_data);
			ino = get_le64(v.mv_data);
			rec[0] = 'D';
			memcpy(rec + 1, &parent, 8);
			memcpy(rec + 9, &ino, 8);
			memcpy(rec + 17, &nlen, 2);
			memcpy(rec + 19, (const char *)k.mv_data + 8, nlen);
			len = 19u + nlen;
		}
		if (put_all(fd, rec, len) < 0)
			break;
	}
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	return rc == MDB_NOTFOUND ? 0 : 1;
}

static int add_ino(struct sal *s, const uint8_t *r)
{
	struct sal_ino *e;
	uint32_t u[3];

	if (s->n == s->cap) {
		e = array_grow(s->v, &s->cap, sizeof(*e), 1024);
		if (!e)
			return -ENOMEM;
		s->v = e;
	}
	e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	memcpy(&e->ino, r + 1, 8);
	memcpy(u, r + 9, 12);
	e->mode = u[0];
	e->state = u[1];
	e->flags = u[2];
	memcpy(&e->size, r + 21, 8);
	return 0;
}

static int add_dentry(struct sal *s, const uint8_t *r, uint16_t nlen)
{
	char *name = malloc((size_t)nlen + 1);

	if (!name)
		return -ENOMEM;
	if (s->nd == s->capd) {
		void *n = array_grow(s->d, &s->capd, sizeof(*s->d), 1024);

		if (!n) {
			free(name);
			return -ENOMEM;
		}
		s->d = n;
	}
	memcpy(&s->d[s->nd].parent, r + 1, 8);
	memcpy(&s->d[s->nd].ino, r + 9, 8);
	memcpy(name, r + 19, nlen);
	name[nlen] = '\0';
	s->d[s->nd++].name = name;
	return 0;
}

struct walk_arg {
	const char *path;
	enum meta_table t;
	bool back;
};

static int salvage_walk_fn(void *arg, int wfd)
{
	const struct walk_arg *w = arg;

	return child_walk(w->path, w->t, w->back, wfd);
}

/* Run one walk; add its records to s. Returns 1 when the walk reached its
 * end, 0 when it stopped early (damage), or -errno. */
static int run_walk(const char *path, enum meta_table t, bool back,
		    struct sal *s)
{
	struct walk_arg w = {.path = path, .t = t, .back = back};
	struct meta_reader r = {.fd = -1, .pid = -1};
	uint8_t buf[65536];
	size_t have = 0;
	int status, ret;
	ssize_t n;

	ret = meta_reader_start(&r, salvage_walk_fn, &w, SAL_TIMEOUT);
	if (ret < 0)
		return ret;
	while ((n = meta_reader_read(&r, buf + have, sizeof(buf) - have)) > 0) {
		size_t at = 0;

		have += (size_t)n;
		while (ret == 0 && at < have) {
			const uint8_t *rec = buf + at;
			size_t left = have - at, need;
			uint16_t nlen = 0;

			if (rec[0] == 'I') {
				need = 29;
			} else {
				if (left < 19)
					break;
				memcpy(&nlen, rec + 17, 2);
				need = 19u + nlen;
			}
			if (left < need)
				break;
			ret = rec[0] == 'I' ? add_ino(s, rec)
					    : add_dentry(s, rec, nlen);
			at += need;
		}
		memmove(buf, buf + at, have - at);
		have -= at;
		if (ret < 0)
			break;
	}
	/* A walk that hangs (a damaged tree that loops) ends where it is. */
	status = meta_reader_finish(&r, ret < 0 || n < 0);
	if (ret < 0)
		return ret;
	return n == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static struct sal_ino *find(struct sal *s, uint64_t ino)
{
	if (!s->n)
		return NULL;
	return bsearch(&ino, s->v, s->n, sizeof(*s->v), u64_cmp);
}

/* Path of e from the root, or NULL (no name, a loop, too long). */
static char *path_of(struct sal *s, struct sal_ino *e)
{
	char *p = NULL;
	size_t len = 0;

	for (int depth = 0; depth < 4096; depth++) {
		struct sal_ino *up;
		size_t nl;
		char *np;

		if (e->ino == META_ROOT_INO)
			return p ? p : strdup("");
		if (!e->name)
			break;
		nl = strlen(e->name);
		if (len + nl + 2 > PATH_MAX)
			break;
		np = malloc(len + nl + 2);
		if (!np)
			break;
		memcpy(np, e->name, nl);
		if (p) {
			np[nl] = '/';
			memcpy(np + nl + 1, p, len + 1);
			len += nl + 1;
		} else {
			np[nl] = '\0';
			len = nl;
		}
		free(p);
		p = np;
		up = find(s, e->parent);
		if (!up || !S_ISDIR(up->mode))
			break;
		e = up;
	}
	free(p);
	return NULL;
}

int meta_salvage(const char *dir, meta_salvage_cb cb, void *arg,
		 struct meta_salvage_stats *st)
{
	struct sal s = {0};
	char *path = NULL;
	size_t w = 0;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	if (asprintf(&path, "%s/meta", dir) < 0)
		return -ENOMEM;
	for (int t = 0; t < 2 && ret >= 0; t++) {
		enum meta_table table = t ? T_DENTRIES : T_INODES;
		ret = run_walk(path, table, false, &s);
		if (ret == 0) {
			st->damaged_tables++;
			ret = run_walk(path, table, true, &s);
		}
	}
	if (ret < 0)
		goto out;
	ret = 0;
	/* Forward and backward walks overlap: one entry per inode. */
	if (s.n)
		qsort(s.v, s.n, sizeof(*s.v), u64_cmp);
	for (size_t i = 0; i < s.n; i++)
		if (w == 0 || s.v[w - 1].ino != s.v[i].ino)
			s.v[w++] = s.v[i];
	s.n = w;
	for (size_t i = 0; i < s.nd; i++) {
		struct sal_ino *e = find(&s, s.d[i].ino);

		if (e && !e->name) {
			e->parent = s.d[i].parent;
			e->name = s.d[i].name;
			s.d[i].name = NULL;
		}
	}
	st->inodes = s.n;
	for (size_t i = 0; i < s.n && ret == 0; i++) {
		struct sal_ino *e = &s.v[i];
		struct meta_salvage_ent ent = {
			.ino = e->ino,
			.mode = e->mode,
			.state = e->state,
			.flags = e->flags,
			.size = e->size,
		};

		char *p;

		if (!S_ISREG(e->mode) && !S_ISLNK(e->mode))
			continue;
		p = path_of(&s, e);

		ent.path = p;
		if (!p)
			st->unnamed++;
		ret = cb(arg, &ent);
		free(p);
	}
out:
	for (size_t i = 0; i < s.n; i++)
		free(s.v[i].name);
	for (size_t i = 0; i < s.nd; i++)
		free(s.d[i].name);
	free(s.v);
	free(s.d);
	free(path);
	return ret;
}
