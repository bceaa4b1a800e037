/* SPDX-License-Identifier: MIT */
/*
 * fs — the FUSE file system: command line, mount lifecycle, low-level
 * operations and the .tidefs control tree.
 */
#ifndef TIDEFS_FS_H
#define TIDEFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct fs_options {
	char *bucket;	     /* owned */
	char *prefix;	     /* owned; "" or ending in '/' */
	char *mountpoint;    /* owned, absolute */
	char *cache_dir;     /* owned, absolute */
	uint64_t cache_size; /* 0: not given */
	char *endpoint;	     /* owned or NULL */
	char *region;	     /* owned */
	char *profile;	     /* owned or NULL */
	char *fuse_opts;     /* owned, comma-separated -o options, or NULL */
	bool foreground;
	bool insecure_tls;
	bool virtual_hosted;
	bool read_only; /* -o ro */
	enum log_level log_level;
	int retry_timeout_s; /* S3 retry budget */
	int sync_interval_s; /* metadata sync point at least this often */
	uint32_t chunk_size;
	int fetch_threads;
	int import_parallel;
	int high_pct, low_pct; /* eviction watermarks, % of the cache size */
	bool export_overwrite; /* --export-conflicts=overwrite */
	bool no_passthrough;   /* --no-passthrough */
	char *api_listen; /* owned: "127.0.0.1:PORT" or "unix:/path", or NULL */
	char *api_credentials; /* owned: shared-credentials file, or NULL */
	bool show_help, show_version;
};

/*
 * Parse argv. Returns 0, or -EINVAL with a one-line message in err. Values
 * may also come from the environment (TIDEFS_CACHE_DIR, TIDEFS_CACHE_SIZE,
 * TIDEFS_ENDPOINT_URL, TIDEFS_REGION, AWS_REGION, AWS_DEFAULT_REGION,
 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); arguments win. Release with
 * fs_options_release() on every path.
 */
int fs_options_parse(int argc, char **argv, struct fs_options *o, char *err,
		     size_t errlen);
void fs_options_release(struct fs_options *o);
void fs_usage(const char *prog);

/* Commands on a cache dir that is not mounted (fs/offline.c); argv[0] is
 * the command's name; they return the exit status. `tidefs check
 * CACHE_DIR`: check its metadata for damage. `tidefs salvage CACHE_DIR
 * DEST`: copy the files not in S3 (new, dirty) out of a cache dir whose
 * metadata may be damaged. */
int fs_check(int argc, char **argv);
int fs_salvage(int argc, char **argv);

/* Split "s3://bucket[/prefix]" into bucket and normalised prefix ("" or
 * "a/b/"). Returns 0 or -EINVAL. */
int fs_parse_repository(const char *url, char **bucket, char **prefix);

/*
 * Mount and serve until unmounted or signalled. Without o->foreground the
 * process forks: the parent returns 0 once the mount is live, or prints the
 * child's one-line error and returns 1. Returns the process exit code.
 */
int fs_run(const struct fs_options *o);

#endif
