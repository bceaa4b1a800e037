// SPDX-License-Identifier: MIT
/*
 * Commands on a cache dir that is not mounted.
 *
 * tidefs check CACHE_DIR — the check a mount makes after an unclean
 * shutdown (meta_check), on demand.
 *
 * tidefs salvage CACHE_DIR DEST — copy out what a cache dir holds that S3
 * does not: the files created or changed since their last export (states
 * new and dirty), from a cache dir whose metadata may be damaged (README
 * "Damaged metadata"). Read-only on the cache dir.
 *
 *   DEST/files/PATH          a file or symlink whose name was found
 *   DEST/lost+found/INO      one whose name was not, or a non-empty data
 *                            file with no inode record at all
 *   DEST/SALVAGE.txt         one line per item: state, size, inode, where
 *                            it went, notes
 */
#include "fs/fs_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct salvage {
	const char *cache, *dest;
	FILE *manifest;
	uint64_t *seen; /* inodes with a record, any state */
	size_t nseen, cap;
	size_t copied, unnamed, failed;
};

static void data_path(const struct salvage *sv, uint64_t ino, char *buf,
		      size_t len)
{
	snprintf(buf, len, "%s/data/%02x/%" PRIu64, sv->cache,
		 (unsigned)(ino & 0xff), ino);
}

/* Copy src to dst (created, mode), size bytes: a shorter source reads as
 * zeros past its end (never fetched). */
static int copy_file(const char *src, const char *dst, uint64_t size,
		     mode_t mode)
{
	char buf[1 << 16];
	int in, out, ret = 0;
	uint64_t done = 0;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		   (mode & 0777) | 0600);
	if (out < 0) {
		ret = -errno;
		close(in);
		return ret;
	}
	while (done < size) {
		ssize_t n =
			read(in, buf, (size_t)MIN(sizeof(buf), size - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		ret = pwrite_all(out, buf, (size_t)n, (int64_t)done);
		if (ret < 0)
			break;
		done += (uint64_t)n;
	}
	if (ret == 0 && ftruncate(out, (off_t)size) < 0)
		ret = -errno;
	if (close(out) < 0 && ret == 0)
		ret = -errno;
	close(in);
	if (ret < 0)
		unlink(dst);
	return ret;
}

static int make_symlink(const char *src, const char *dst, uint64_t size)
{
	char target[PATH_MAX];
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (size >= sizeof(target)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	n = pread(fd, target, (size_t)size, 0);
	close(fd);
	if (n != (ssize_t)size)
		return n < 0 ? -errno : -EIO;
	target[n] = '\0';
	return symlink(target, dst) < 0 ? -errno : 0;
}

static int note_seen(struct salvage *sv, uint64_t ino)
{
	return u64_push(&sv->seen, &sv->nseen, &sv->cap, ino);
}

/* Copy inode e's data (or symlink) from src to dst. */
static int put_one(const struct meta_salvage_ent *e, const char *src,
		   const char *dst)
{
	struct stat st;
	int ret;

	ret = mkdir_p_parent(dst);
	if (ret == 0 && lstat(src, &st) < 0)
		ret = -errno;
	if (ret == -ENOENT && e->size == 0 && S_ISREG(e->mode)) {
		/* An empty file never needed a data file. */
		int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			      (e->mode & 0777) | 0600);

		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	}
	if (ret < 0)
		return ret;
	if (S_ISLNK(e->mode))
		return make_symlink(src, dst, e->size);
	return copy_file(src, dst, e->size, e->mode);
}

static int one(void *arg, const struct meta_salvage_ent *e)
{
	struct salvage *sv = arg;
	char src[PATH_MAX], dst[PATH_MAX];
	const char *note = "";
	bool named = false;
	int n, ret;

	ret = note_seen(sv, e->ino);
	if (ret < 0)
		return ret;
	if (e->state != META_NEW && e->state != META_DIRTY)
		return 0; /* S3 has it */
	data_path(sv, e->ino, src, sizeof(src));
	ret = -ENOENT;
	if (e->path && *e->path) {
		n = snprintf(dst, sizeof(dst), "%s/files/%s", sv->dest,
			     e->path);
		if (n > 0 && (size_t)n < sizeof(dst)) {
			ret = put_one(e, src, dst);
			named = ret == 0;
		}
	}
	/* No name, or one the damage made clash with another (a file where
	 * a directory should be): by number. */
	if (ret == -ENOENT || ret == -EEXIST || ret == -ENOTDIR ||
	    ret == -ENAMETOOLONG) {
		snprintf(dst, sizeof(dst), "%s/lost+found/%" PRIu64, sv->dest,
			 e->ino);
		ret = put_one(e, src, dst);
	}
	if (ret == 0 && e->state == META_DIRTY && S_ISREG(e->mode))
		note = "changed since its export: bytes never fetched from S3"
		       " read as zeros";
	if (ret == 0) {
		sv->copied++;
		if (!named)
			sv->unnamed++;
	} else {
		sv->failed++;
	}
	fprintf(sv->manifest, "%s\t%" PRIu64 "\t%" PRIu64 "\t%s\t%s%s%s\n",
		meta_state_name((enum meta_state)e->state), e->size, e->ino,
		ret == 0 ? dst + strlen(sv->dest) + 1 : "-",
		ret == 0 ? "" : "not copied: ", ret == 0 ? "" : strerror(-ret),
		note);
	return 0;
}

/* Non-empty data files no inode record names: lost+found. */
static void orphans(struct salvage *sv)
{
	char sub[PATH_MAX];

	if (sv->nseen)
		qsort(sv->seen, sv->nseen, sizeof(*sv->seen), u64_cmp);
	for (unsigned x = 0; x < 256; x++) {
		struct dirent *de;
		DIR *d;

		snprintf(sub, sizeof(sub), "%s/data/%02x", sv->cache, x);
		d = opendir(sub);
		if (!d)
			continue;
		while ((de = readdir(d)) != NULL) {
			char src[PATH_MAX], dst[PATH_MAX];
			struct stat st;
			uint64_t ino;
			char *end;
			int ret;

			errno = 0;
			ino = strtoull(de->d_name, &end, 10);
			if (*end || errno || end == de->d_name)
				continue;
			if (sv->nseen && bsearch(&ino, sv->seen, sv->nseen,
						 sizeof(ino), u64_cmp))
				continue;
			data_path(sv, ino, src, sizeof(src));
			if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode) ||
			    st.st_size == 0)
				continue; /* a spare made ahead */
			snprintf(dst, sizeof(dst), "%s/lost+found/%" PRIu64,
				 sv->dest, ino);
			ret = mkdir_p_parent(dst);
			if (ret == 0)
				ret = copy_file(src, dst, (uint64_t)st.st_size,
						0600);
			if (ret == 0) {
				sv->copied++;
				sv->unnamed++;
			} else {
				sv->failed++;
			}
			fprintf(sv->manifest,
				"?\t%lld\t%" PRIu64
				"\t%s\tno inode record%s%s\n",
				(long long)st.st_size, ino,
				ret == 0 ? dst + strlen(sv->dest) + 1 : "-",
				ret == 0 ? "" : "; not copied: ",
				ret == 0 ? "" : strerror(-ret));
		}
		closedir(d);
	}
}

/* The cache dir arg names (into cache) and its lock, so no mount can be
 * live meanwhile: the fd, or -1 after saying why not. */
static int open_cache_dir(const char *arg, char cache[PATH_MAX])
{
	int fd;

	if (!realpath(arg, cache)) {
		fprintf(stderr, "tidefs: cache dir %s: %s\n", arg,
			strerror(errno));
		return -1;
	}
	fd = fs_lock_cache_dir(cache, false);
	if (fd < 0) {
		fprintf(stderr, "tidefs: cache dir %s: %s\n", cache,
			fd == -EWOULDBLOCK ? "in use by a tidefs mount"
					   : strerror(-fd));
		return -1;
	}
	return fd;
}

int fs_check(int argc, char **argv)
{
	char cache[PATH_MAX], why[300];
	int lock, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: tidefs check CACHE_DIR\n");
		return 2;
	}
	lock = open_cache_dir(argv[1], cache);
	if (lock < 0)
		return 1;
	ret = meta_check(cache, why, sizeof(why));
	close(lock);
	if (ret == 0) {
		printf("tidefs: cache metadata in %s/meta: intact\n", cache);
		return 0;
	}
	if (ret == -EUCLEAN)
		fprintf(stderr,
			"tidefs: cache metadata in %s/meta is damaged (%s):"
			" see \"Damaged metadata\" in the README\n",
			cache, why);
	else
		fprintf(stderr,
			"tidefs: cache metadata in %s/meta could not be"
			" checked: %s%s%s\n",
			cache, strerror(-ret), why[0] ? ": " : "", why);
	return 1;
}

int fs_salvage(int argc, char **argv)
{
	struct salvage sv = {0};
	struct meta_salvage_stats st;
	char cache[PATH_MAX], dest[PATH_MAX], path[PATH_MAX + 16];
	DIR *d;
	int lock, ret;

	if (argc != 3) {
		fprintf(stderr, "usage: tidefs salvage CACHE_DIR DEST\n");
		return 2;
	}
	lock = open_cache_dir(argv[1], cache);
	if (lock < 0)
		return 1;
	if ((mkdir(argv[2], 0700) < 0 && errno != EEXIST) ||
	    !realpath(argv[2], dest) || !(d = opendir(dest))) {
		fprintf(stderr, "tidefs: %s: %s\n", argv[2], strerror(errno));
		close(lock);
		return 1;
	}
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			close(lock);
			fprintf(stderr, "tidefs: %s is not empty\n", dest);
			return 1;
		}
	closedir(d);
	snprintf(path, sizeof(path), "%s/SALVAGE.txt", dest);
	sv.manifest = fopen(path, "we");
	if (!sv.manifest) {
		fprintf(stderr, "tidefs: %s: %s\n", path, strerror(errno));
		close(lock);
		return 1;
	}
	fprintf(sv.manifest,
		"# tidefs salvage of %s\n# state\tsize\tinode\t"
		"copied to\tnotes\n",
		cache);
	sv.cache = cache;
	sv.dest = dest;
	ret = meta_salvage(cache, one, &sv, &st);
	if (ret == 0)
		orphans(&sv);
	if (fclose(sv.manifest) != 0 && ret == 0)
		ret = -errno;
	close(lock);
	free(sv.seen);
	if (ret < 0) {
		fprintf(stderr, "tidefs: salvage of %s: %s\n", cache,
			strerror(-ret));
		return 1;
	}
	printf("tidefs: %zu file(s) not in S3 copied to %s (%zu without a "
	       "name, in lost+found); %zu inode record(s) read%s; see %s\n",
	       sv.copied, dest, sv.unnamed, st.inodes,
	       st.damaged_tables ? ", some tables damaged" : "", path);
	return sv.failed ? 1 : 0;
}
