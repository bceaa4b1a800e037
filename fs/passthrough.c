// SPDX-License-Identifier: MIT
/*
 * FUSE passthrough (Linux 6.9 and later): for a file whose data is all in
 * the cache, the kernel reads the data file itself, so reads cost what
 * reads of the cache dir's file system cost, with its page cache and its
 * read-ahead, instead of a request to us per 128 KiB.
 *
 * libfuse 3.14 (Debian 12) does not know the feature, so it is negotiated
 * below libfuse, through its custom I/O hooks: the hook that reads requests
 * notes whether the kernel's INIT offers FUSE_PASSTHROUGH; the hook that
 * writes replies adds the flag (and a stack depth of 1) to our INIT reply,
 * and turns an open reply the open handler armed into a passthrough one
 * (FOPEN_PASSTHROUGH and the data file's backing id, no FOPEN_KEEP_CACHE,
 * which the kernel refuses with it). Replies are written by the thread that
 * handles the request, inside fuse_reply_*(), so the arming is a
 * thread-local. The kernel may still decline (an older kernel never offers
 * it; without CAP_SYS_ADMIN, or with the cache dir on a stacked file system
 * such as overlayfs, registering a data file fails): then every handle is
 * an ordinary one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/common.h"
#include "fs/fs_i.h"

/* From the kernel's include/uapi/linux/fuse.h (protocol 7.40); Debian 12's
 * headers predate them. */
#define K_FUSE_INIT	      26
#define K_FUSE_INIT_EXT	      (1u << 30)
#define K_FUSE_PASSTHROUGH_HI (1u << 5) /* FUSE_PASSTHROUGH: bit 37 */
#define K_FOPEN_KEEP_CACHE    (1u << 1)
#define K_FOPEN_PASSTHROUGH   (1u << 7)

struct k_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};

struct k_init_in {
	uint32_t major, minor, max_readahead, flags, flags2;
};

struct k_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct k_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2;
	uint32_t max_stack_depth;
};

struct k_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

struct k_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define K_DEV_IOC_BACKING_OPEN	_IOW(229, 1, struct k_backing_map)
#define K_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* The open reply this thread is about to write: -1 when none is armed. */
static _Thread_local int armed_id = -1;
static _Thread_local bool armed_done;

void fs_pt_arm(int backing_id)
{
	armed_id = backing_id;
	armed_done = false;
}

bool fs_pt_disarm(void)
{
	bool done = armed_done;

	armed_id = -1;
	armed_done = false;
	return done;
}

static ssize_t pt_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs *fs = userdata;
	ssize_t n = read(fd, buf, len);
	const struct k_in_header *in = buf;

	if (n >= (ssize_t)(sizeof(*in) + sizeof(struct k_init_in)) &&
	    in->opcode == K_FUSE_INIT) {
		const struct k_init_in *ii = (const void *)(in + 1);
		bool offered = (ii->flags & K_FUSE_INIT_EXT) &&
			       (ii->flags2 & K_FUSE_PASSTHROUGH_HI);

		atomic_store(&fs->pt_init_unique, offered ? in->unique : 0);
	}
	return n;
}

/* Our INIT reply: ask for passthrough (the kernel offered it). */
static void patch_init(struct fs *fs, struct iovec *iov, int count)
{
	const struct k_out_header *oh = iov[0].iov_base;
	struct k_init_out *io;
	uint64_t unique = atomic_load(&fs->pt_init_unique);

	if (!unique || oh->unique != unique || oh->error != 0 || count < 2 ||
	    iov[1].iov_len < sizeof(*io))
		return;
	atomic_store(&fs->pt_init_unique, 0);
	io = iov[1].iov_base;
	if (!(io->flags & K_FUSE_INIT_EXT))
		return;
	io->flags2 |= K_FUSE_PASSTHROUGH_HI;
	/* Data files live on an ordinary file system (depth 0). */
	io->max_stack_depth = 1;
	atomic_store(&fs->pt_asked, true);
}

static ssize_t pt_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fs *fs = userdata;

	if (count >= 1 && iov[0].iov_len >= sizeof(struct k_out_header)) {
		if (armed_id >= 0 && count == 2 &&
		    iov[1].iov_len == sizeof(struct k_open_out)) {
			struct k_open_out *oo = iov[1].iov_base;

			oo->open_flags &= ~K_FOPEN_KEEP_CACHE;
			oo->open_flags |= K_FOPEN_PASSTHROUGH;
			oo->backing_id = armed_id;
			armed_id = -1;
			armed_done = true;
		} else if (atomic_load(&fs->pt_init_unique)) {
			patch_init(fs, iov, count);
		}
	}
	return writev(fd, iov, count);
}

static ssize_t pt_splice_send(int fdin, off_t *offin, int fdout, off_t *offout,
			      size_t len, unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int fs_pt_setup(struct fs *fs)
{
	static const struct fuse_custom_io io = {
		.read = pt_read,
		.writev = pt_writev,
		.splice_send = pt_splice_send,
	};

	return fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se));
}

static int pt_attach(void *arg, int fd)
{
	struct fs *fs = arg;
	struct k_backing_map map = {.fd = fd};
	int id;

	if (!atomic_load(&fs->pt_asked) || !fs->se)
		return -EOPNOTSUPP;
	id = ioctl(fuse_session_fd(fs->se), K_DEV_IOC_BACKING_OPEN, &map);
	if (id < 0) {
		int err = errno;

		if (err != EPERM && err != EOPNOTSUPP && err != EINVAL &&
		    err != ENOTTY && err != ELOOP)
			return -err; /* this file only (ENOMEM, EMFILE, ...) */
		/* The kernel declined at INIT, we lack CAP_SYS_ADMIN, or the
		 * cache dir's file system cannot back passthrough: say so
		 * once and stop asking. */
		atomic_store(&fs->pt_asked, false);
		log_info("passthrough reads are not available (%s): cached"
			 " data is read through tidefs",
			 strerror(err));
		return -err;
	}
	return id;
}

static void pt_detach(void *arg, int id)
{
	struct fs *fs = arg;
	uint32_t bid = (uint32_t)id;

	if (fs->se &&
	    ioctl(fuse_session_fd(fs->se), K_DEV_IOC_BACKING_CLOSE, &bid) < 0)
		log_debug("closing backing id %d: %s", id, strerror(errno));
}

void fs_pt_enable(struct fs *fs)
{
	hydrate_set_passthrough(fs->hy, pt_attach, pt_detach, fs);
}
