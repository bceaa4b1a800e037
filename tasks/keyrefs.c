// SPDX-License-Identifier: MIT
/*
 * keyrefs — which files stand on which objects (see tasks_i.h).
 *
 * (FNV-1a hash of s3_key, ino) of every inode with a key that is not
 * unlinked, sorted by hash, built once per task when first needed: one
 * pass over the inode table, 16 bytes per such inode. A file renamed away
 * (or under a renamed directory) keeps its old object's key until it is
 * exported under its new name, so a key can have files standing on it that
 * no name there leads to. Export: before replacing the object at a key,
 * every other file standing on it is made independent of it. Import: an
 * object at a key that a file here still stands on, unchanged, is no
 * conflict with the new file at that key's path. Entries may go stale as a
 * task changes keys (and hashes collide): users check each entry against
 * its inode.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache/meta.h"
#include "common/common.h"
#include "tasks/tasks_i.h"

uint64_t task_key_hash(const char *key)
{
	return fnv1a64(key, strlen(key));
}

static int key_ref_push(struct task_key_refs *k, const char *key, uint64_t ino)
{
	if (k->n == k->cap) {
		struct task_key_ref *nv =
			array_grow(k->v, &k->cap, sizeof(*nv), 1024);

		if (!nv)
			return -ENOMEM;
		k->v = nv;
	}
	k->v[k->n++] = (struct task_key_ref){task_key_hash(key), ino};
	return 0;
}

static int add_key_ref(void *arg, const struct meta_inode *mi)
{
	if (!mi->s3_key || (mi->flags & META_F_UNLINKED))
		return 0;
	return key_ref_push(arg, mi->s3_key, mi->ino);
}

static int cmp_key_ref(const void *a, const void *b)
{
	const struct task_key_ref *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

int task_key_refs_build(struct meta_txn *txn, struct task_key_refs *k)
{
	int ret;

	if (k->built)
		return 0;
	k->n = 0;
	ret = meta_inode_foreach(txn, add_key_ref, k);
	if (ret < 0)
		return ret;
	if (k->n)
		qsort(k->v, k->n, sizeof(*k->v), cmp_key_ref);
	k->built = true;
	return 0;
}

size_t task_key_ref_lower(const struct task_key_refs *k, uint64_t h)
{
	size_t lo = 0, hi = k->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->v[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void task_key_refs_free(struct task_key_refs *k)
{
	free(k->v);
	*k = (struct task_key_refs){0};
}
