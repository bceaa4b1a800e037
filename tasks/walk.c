// SPDX-License-Identifier: MIT
/* Paths and tree walks over the metadata store, for the task types. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "tasks/tasks_i.h"

int task_resolve(struct meta_txn *txn, const char *path, uint64_t *ino)
{
	char comp[256];
	uint64_t cur = META_ROOT_INO;
	const char *p = path;
	int ret;

	while (*p) {
		const char *slash;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > 255)
			return -ENAMETOOLONG;
		memcpy(comp, p, len);
		comp[len] = '\0';
		if (!strcmp(comp, ".")) {
			p += len;
			continue;
		}
		if (!strcmp(comp, ".."))
			return -EINVAL; /* FSx paths have no wildcards or .. */
		ret = meta_dentry_get(txn, cur, comp, &cur);
		if (ret < 0)
			return ret;
		p += len;
	}
	*ino = cur;
	return 0;
}

char *task_key_of(const char *prefix, const char *rel, bool is_dir)
{
	size_t l = strlen(prefix) + strlen(rel) + 2;
	char *k = malloc(l);

	if (!k)
		return NULL;
	snprintf(k, l, "%s%s%s", prefix, rel, is_dir && *rel ? "/" : "");
	return k;
}

struct child {
	char *name;
	uint64_t ino;
};

struct children {
	struct child *v;
	size_t n, cap;
};

static int add_child(void *arg, const char *name, uint64_t ino)
{
	struct children *c = arg;

	if (c->n == c->cap) {
		struct child *nv = array_grow(c->v, &c->cap, sizeof(*nv), 32);
		if (!nv)
			return -ENOMEM;
		c->v = nv;
	}
	c->v[c->n].name = strdup(name);
	if (!c->v[c->n].name)
		return -ENOMEM;
	c->v[c->n].ino = ino;
	c->n++;
	return 0;
}

static void free_children(struct children *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].name);
	free(c->v);
}

int task_walk(struct meta_db *db, uint64_t ino, const char *rel,
	      task_walk_cb cb, void *arg)
{
	struct meta_inode mi = {0};
	struct children ch = {0};
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(db, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &mi);
	if (ret == 0 && S_ISDIR(mi.mode))
		ret = meta_dentry_foreach(txn, ino, NULL, add_child, &ch);
	meta_txn_abort(txn);
	if (ret == -ENOENT) {
		ret = 0; /* removed meanwhile */
		goto out;
	}
	if (ret < 0)
		goto out;
	ret = cb(arg, rel, &mi);
	for (size_t i = 0; ret == 0 && i < ch.n; i++) {
		size_t l = strlen(rel) + strlen(ch.v[i].name) + 2;
		char *crel = malloc(l);
		if (!crel) {
			ret = -ENOMEM;
			break;
		}
		snprintf(crel, l, "%s%s%s", rel, *rel ? "/" : "", ch.v[i].name);
		ret = task_walk(db, ch.v[i].ino, crel, cb, arg);
		free(crel);
	}
out:
	meta_inode_release(&mi);
	free_children(&ch);
	return ret;
}

int task_walk_paths(struct task_run *r, task_walk_cb cb, void *arg)
{
	const struct task_engine_config *cfg = task_run_config(r);
	const struct task_request *q = task_run_request(r);
	static char *const root[] = {"/"};
	char *const *paths = q->npaths ? q->paths : root;
	size_t npaths = q->npaths ? q->npaths : 1;
	int ret = 0;

	for (size_t i = 0; i < npaths && ret == 0; i++) {
		struct meta_txn *txn;
		const char *p = paths[i];
		uint64_t ino;
		char *rel;

		ret = meta_txn_begin(cfg->db, false, &txn);
		if (ret < 0)
			break;
		ret = task_resolve(txn, p, &ino);
		meta_txn_abort(txn);
		if (ret == -ENOENT || ret == -ENOTDIR) {
			task_run_fail(r,
				      "The path %s does not exist in the"
				      " file system",
				      p);
			return -ENOENT;
		}
		if (ret < 0)
			break;
		while (*p == '/')
			p++;
		rel = strdup(p);
		if (!rel)
			return -ENOMEM;
		for (size_t l = strlen(rel); l > 0 && rel[l - 1] == '/'; l--)
			rel[l - 1] = '\0';
		ret = task_walk(cfg->db, ino, rel, cb, arg);
		free(rel);
	}
	return ret;
}

int task_cands_add(struct task_cands *c, const char *rel, uint64_t ino)
{
	if (c->n == c->cap) {
		struct task_cand *n =
			array_grow(c->v, &c->cap, sizeof(*n), 256);
		if (!n)
			return -ENOMEM;
		c->v = n;
	}
	c->v[c->n].rel = strdup(rel);
	if (!c->v[c->n].rel)
		return -ENOMEM;
	c->v[c->n].ino = ino;
	c->n++;
	return 0;
}

void task_cands_release(struct task_cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].rel);
	free(c->v);
	memset(c, 0, sizeof(*c));
}
