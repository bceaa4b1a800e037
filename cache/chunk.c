// SPDX-License-Identifier: MIT
/*
 * The local data store: one sparse file per inode, fanned out over 256
 * subdirectories so no directory grows huge. Presence of chunks lives in
 * LMDB (meta_tables.c); this file only creates, opens, punches and removes
 * files.
 */
#include "cache/chunk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

struct chunk_store {
	int dirfd; /* CACHE_DIR/data, read-only after open */
	uint32_t chunk_size;
};

static void ino_path(uint64_t ino, char *buf, size_t len)
{
	snprintf(buf, len, "%02x/%" PRIu64, (unsigned)(ino & 0xff), ino);
}

int chunk_store_open(const char *dir, uint32_t csize, struct chunk_store **out)
{
	char path[PATH_MAX];
	struct chunk_store *cs;
	int ret;

	if (csize == 0 || (csize & (csize - 1)) != 0 || csize < 4096)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/data", dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->chunk_size = csize;
	cs->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs->dirfd < 0) {
		ret = -errno;
		goto out_free;
	}
	for (unsigned i = 0; i < 256; i++) {
		char sub[4];
		snprintf(sub, sizeof(sub), "%02x", i);
		if (mkdirat(cs->dirfd, sub, 0700) < 0 && errno != EEXIST) {
			ret = -errno;
			goto out_close;
		}
	}
	*out = cs;
	return 0;

out_close:
	close(cs->dirfd);
out_free:
	free(cs);
	return ret;
}

void chunk_store_close(struct chunk_store *cs)
{
	if (!cs)
		return;
	close(cs->dirfd);
	free(cs);
}

uint32_t chunk_size(const struct chunk_store *cs)
{
	return cs->chunk_size;
}

int chunk_open(struct chunk_store *cs, uint64_t ino, bool create)
{
	char path[64];
	int fd;

	ino_path(ino, path, sizeof(path));
	fd = openat(cs->dirfd, path,
		    O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	return fd < 0 ? -errno : fd;
}

int chunk_remove(struct chunk_store *cs, uint64_t ino)
{
	char path[64];

	ino_path(ino, path, sizeof(path));
	if (unlinkat(cs->dirfd, path, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int chunk_punch(struct chunk_store *cs, uint64_t ino)
{
	struct stat st;
	int fd, ret = 0;

	fd = chunk_open(cs, ino, false);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	/* Truncating to 0 and back frees every block on any file system. */
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, st.st_size) < 0)
		ret = -errno;
out_close:
	close(fd);
	return ret;
}

int64_t chunk_allocated(struct chunk_store *cs, uint64_t ino)
{
	char path[64];
	struct stat st;

	ino_path(ino, path, sizeof(path));
	if (fstatat(cs->dirfd, path, &st, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return (int64_t)st.st_blocks * 512;
}

int chunk_foreach(struct chunk_store *cs, chunk_ino_cb cb, void *arg)
{
	int ret = 0;

	for (unsigned i = 0; i < 256 && ret == 0; i++) {
		char sub[4];
		DIR *d;
		struct dirent *de;
		int fd;

		snprintf(sub, sizeof(sub), "%02x", i);
		fd = openat(cs->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		d = fdopendir(fd);
		if (!d) {
			ret = -errno;
			close(fd);
			return ret;
		}
		while (ret == 0 && (de = readdir(d)) != NULL) {
			uint64_t ino;
			if (parse_u64(de->d_name, &ino) == 0)
				ret = cb(arg, ino);
		}
		closedir(d);
	}
	return ret;
}
