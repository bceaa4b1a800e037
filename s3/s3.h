/* SPDX-License-Identifier: MIT */
/*
 * s3 — the S3 client: SigV4, requests over libcurl, XML responses, retries.
 *
 * A struct s3_client is safe to use from many threads at once: each call
 * takes an idle curl easy handle from the client's pool (connection reuse;
 * DNS, TLS sessions and the connection cache are shared through a curl share
 * handle) and returns it afterwards. No lock is held across network I/O.
 *
 * Errors are negative errno values, translated once here:
 *   -ENOENT        404 (NoSuchKey, NoSuchBucket: see s3_error_code())
 *   -EACCES        403 (AccessDenied, InvalidAccessKeyId,
 *                  SignatureDoesNotMatch)
 *   -ESTALE        412 PreconditionFailed (If-Match / If-None-Match), 409
 *                  ConditionalRequestConflict
 *   -EINVAL        400 and other 4xx not listed, or a bad argument
 *   -ERANGE        416 InvalidRange
 *   -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT  network failures once the
 *                  retry budget is spent
 *   -EPROTO        a malformed or hostile XML response
 *   -EIO           5xx/429 once the retry budget is spent, other failures;
 *                  an <Error> in a 200 answer (CopyObject, UploadPartCopy,
 *                  CompleteMultipartUpload) unless its Code maps above
 *   -ENOMEM
 * 5xx, 429/SlowDown, timeouts and connection resets are retried with
 * exponential backoff and full jitter until cfg.retry_total_ms elapses; other
 * 4xx are never retried.
 */
#ifndef TIDEFS_S3_H
#define TIDEFS_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct s3_credentials {
	char *access_key;    /* owned; NULL for anonymous requests */
	char *secret_key;    /* owned */
	char *session_token; /* owned; may be NULL */
};

/*
 * Load credentials the way the AWS CLI does: AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the environment when
 * profile is NULL and they are set; otherwise the profile (profile, else
 * AWS_PROFILE, else "default") from AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials. Returns 0, -ENOENT when none were found, -EINVAL for a
 * malformed file, -ENOMEM. Free with s3_credentials_release().
 */
int s3_credentials_load(const char *profile, struct s3_credentials *out);
/* Parse an AWS shared-credentials file's section; same returns. */
int s3_credentials_from_file(const char *path, const char *profile,
			     struct s3_credentials *out);
void s3_credentials_release(struct s3_credentials *c);

struct s3_config {
	const char
		*endpoint;  /* "http://127.0.0.1:5000"; NULL = AWS for region */
	const char *region; /* "us-east-1" */
	const char *bucket;
	struct s3_credentials creds; /* borrowed; copied by s3_client_new */
	bool path_style;	     /* true: endpoint/bucket/key; false:
					bucket.endpoint/key */
	bool insecure_tls;	     /* true: do not verify certificates */
	int retry_total_ms;	     /* retry budget per call; 0 = 20000 */
	int connect_timeout_ms;	     /* 0 = 5000 */
	int request_timeout_ms; /* low-speed abort per request; 0 = 30000 */
	int max_handles;	/* pooled curl handles; 0 = 32 */
};

struct s3_client; /* opaque */

/* Copies everything it needs from cfg. Returns 0, -EINVAL, -ENOMEM. */
int s3_client_new(const struct s3_config *cfg, struct s3_client **out);
void s3_client_free(struct s3_client *c);
/* Abort every request in flight and refuse new ones with -ECANCELED (for
 * shutdown: nothing waits out a stalled endpoint). Thread-safe. */
void s3_client_cancel(struct s3_client *c);

/*
 * The S3 <Code> and <Message> of the last failed call on this thread (for a
 * clear message at startup), or "" when none. Valid until the next call.
 */
const char *s3_error_code(void);
const char *s3_error_message(void);

/* POSIX metadata carried in the FSx x-amz-meta-file-* headers. */
enum s3_posix_fields {
	S3_HAVE_MODE = 1 << 0,
	S3_HAVE_UID = 1 << 1,
	S3_HAVE_GID = 1 << 2,
	S3_HAVE_ATIME = 1 << 3,
	S3_HAVE_MTIME = 1 << 4,
};

struct s3_object {
	char *key; /* owned, full key including the prefix */
	uint64_t size;
	char etag[80];	  /* with the surrounding quotes, as S3 sends it */
	int64_t mtime_ns; /* LastModified */
	/* Filled by s3_head_object only: */
	unsigned have; /* enum s3_posix_fields */
	uint32_t mode; /* with file-type bits, from x-amz-meta-file-permissions
			*/
	uint32_t uid, gid;
	int64_t atime_ns, file_mtime_ns;
};

void s3_object_release(struct s3_object *o);

/*
 * Called once per object, in key order. Return 0 to go on, anything else to
 * stop: s3_list_objects then returns that value. obj is only valid during
 * the call (take obj->key by setting it to NULL to keep it).
 */
typedef int (*s3_list_cb)(void *arg, struct s3_object *obj);

/* ListObjectsV2 of every key under prefix, following continuation tokens. */
int s3_list_objects(struct s3_client *c, const char *prefix, s3_list_cb cb,
		    void *arg);

/* HeadObject; fills size, etag, mtime and the POSIX fields. -ENOENT on 404. */
int s3_head_object(struct s3_client *c, const char *key, struct s3_object *out);

/*
 * Check the bucket is there and the credentials work (HeadBucket, or a
 * ListObjectsV2 with max-keys=1 under prefix). 0, -ENOENT (no such bucket),
 * -EACCES, or a network error.
 */
int s3_check_bucket(struct s3_client *c, const char *prefix);

/*
 * Ranged GetObject of bytes [off, off+len) into buf. if_match is the ETag
 * the object must still have (NULL: no condition). *got receives the bytes
 * read (short only at the end of the object). -ESTALE when the ETag differs.
 */
int s3_get_range(struct s3_client *c, const char *key, const char *if_match,
		 uint64_t off, size_t len, void *buf, size_t *got);

/*
 * The same, streaming the bytes into fd at fd_off as they arrive (no
 * buffer of len bytes). A retry rewrites the range from its start. A failed
 * write to fd returns its -errno.
 */
int s3_get_range_fd(struct s3_client *c, const char *key, const char *if_match,
		    uint64_t off, size_t len, int fd, uint64_t fd_off,
		    size_t *got);

/* ---- SigV4 (also used by api/ to verify requests) ---- */

struct s3_header {
	const char *name;
	const char *value;
};

/*
 * PutObject of len bytes at data under key, with extra request headers
 * (x-amz-meta-*, If-Match, If-None-Match, Content-Type; names without
 * ':' or spaces, values without CR/LF). etag_out (may be NULL) receives the
 * new ETag with its quotes ("" when the server sent none). Errors as above;
 * -ESTALE for a failed If-Match / If-None-Match.
 */
int s3_put_object(struct s3_client *c, const char *key, const void *data,
		  size_t len, const struct s3_header *hdrs, size_t nhdrs,
		  char etag_out[80]);

/* ---- export: uploads from a file, copies, deletes ---- */

/* Conditions on a write: if_match = required current ETag (NULL: none);
 * if_none_match_any = fail if the key exists (If-None-Match: *). */
struct s3_put_opts {
	const char *if_match;
	bool if_none_match_any;
	/* copy only: the ETag the destination must have (checked with a
	 * HeadObject before the copy, like if_none_match_any) */
	const char *dst_if_match;
	const struct s3_header
		*meta; /* extra headers, e.g. x-amz-meta-file-* */
	size_t nmeta;
	uint64_t part_size;  /* multipart part size; 0 = 16 MiB */
	int parallel;	     /* parts in flight; 0 = 4 */
	uint64_t single_max; /* sizes <= this use one PUT; 0 = 32 MiB */
};

/*
 * Upload len bytes of fd starting at file offset 0 as key, streaming (never
 * the whole file in memory): one PutObject up to single_max, else a multipart
 * upload (CreateMultipartUpload, UploadPart in parallel with pread-backed
 * bodies and a retried Content-MD5/sha256 per part, CompleteMultipartUpload
 * with the conditions, AbortMultipartUpload on any failure). etag_out gets
 * the new ETag with quotes. -ESTALE on 412 (condition failed; also 409
 * ConditionalRequestConflict), other errors as s3.h.
 *
 * Details: o may be NULL (no conditions, defaults); etag_out may be NULL.
 * part_size is raised to S3's 5 MiB minimum and so that at most 10,000
 * parts are needed, and capped at 5 GiB (as is single_max). A multipart
 * upload with conditions first checks them with a HeadObject, so a stale
 * file fails before its data is sent (S3 checks them again at Complete).
 * -ENOENT also when if_match is set and the key is gone (S3 answers 404
 * NoSuchKey); -errno of pread, or -EIO when the file is shorter than len;
 * -EINVAL when the file changed while it was sent (BadDigest). -EFBIG
 * beyond 5 GiB * 10,000 bytes.
 */
int s3_put_file(struct s3_client *c, const char *key, int fd, uint64_t len,
		const struct s3_put_opts *o, char etag_out[80]);

/*
 * CopyObject src_key -> dst_key in the same bucket with new metadata
 * (x-amz-metadata-directive: REPLACE, headers from o->meta; o->if_match
 * applies to the SOURCE as x-amz-copy-source-if-match; if_none_match_any and
 * dst_if_match to the destination). Objects > 5 GiB use UploadPartCopy
 * multipart. Parse the CopyObjectResult body (a 200 with an <Error> body is an
 * error!).
 *
 * Details: the source is looked up first (HeadObject: its size, and the
 * conditions checked early); -ENOENT when it is gone, -ESTALE when its ETag
 * is not o->if_match, or the destination exists with if_none_match_any.
 * UploadPartCopy pins every part to the source's ETag (o->if_match, else
 * the one HeadObject saw), so a source replaced mid-copy gives -ESTALE, not
 * a mix. part_size 0 means 512 MiB for copies; parallel as for uploads.
 */
int s3_copy_object(struct s3_client *c, const char *src_key,
		   const char *dst_key, const struct s3_put_opts *o,
		   char etag_out[80]);

/* DeleteObject. 0 also when the key does not exist (S3 answers 204). */
int s3_delete_object(struct s3_client *c, const char *key);

/*
 * Format the FSx POSIX metadata headers for mode/uid/gid/atime/mtime into
 * hdrs (5 entries, values in bufs) — x-amz-meta-file-permissions as %07o
 * octal with type bits (e.g. 0100644), owner/group decimal, atime/mtime as
 * "<ns>ns". Returns the number of headers. The setuid bit is dropped
 * (FSx: "setuid is dropped on export"); hdrs point into bufs.
 */
struct s3_meta_bufs {
	char v[5][32];
};
size_t s3_posix_headers(uint32_t mode, uint32_t uid, uint32_t gid,
			int64_t atime_ns, int64_t mtime_ns,
			struct s3_header hdrs[5], struct s3_meta_bufs *bufs);

struct s3_sigv4_request {
	const char *method; /* "GET" */
	const char *path;   /* already URI-encoded path, "/bucket/key%20x" */
	const char *query; /* raw query string without '?', may be "" or NULL */
	const struct s3_header *headers; /* must include host and x-amz-date */
	size_t nheaders;
	const char *payload_hash; /* hex sha256, or "UNSIGNED-PAYLOAD" */
	const char *region;
	const char *service;  /* "s3", "fsx" */
	const char *amz_date; /* "20150830T123600Z" */
	const char *access_key;
	const char *secret_key;
};

/*
 * Compute the Authorization header value for req into out (size outlen).
 * Headers are canonicalised (names lower-cased, values trimmed, sequential
 * spaces folded, sorted); the query is canonicalised (parameters sorted,
 * re-encoded per RFC 3986 unreserved set). Returns 0, -EINVAL, -ENOSPC.
 * If sig_out is not NULL it receives the 64-hex-digit signature.
 */
int s3_sigv4_sign(const struct s3_sigv4_request *req, char *out, size_t outlen,
		  char sig_out[65]);

/* Hex sha256 of data into hex (65 bytes with NUL). */
void s3_sha256_hex(const void *data, size_t len, char hex[65]);

/* URI-encode per SigV4: unreserved kept, '/' kept when keep_slash. Returns a
 * malloc'ed string or NULL on ENOMEM. */
char *s3_uri_encode(const char *s, bool keep_slash);

/* ---- XML parsers, exposed for unit tests and fuzzing ---- */

struct s3_list_page {
	struct s3_object *objects; /* owned array */
	size_t nobjects;
	bool truncated;
	char *next_token; /* owned, NextContinuationToken or NULL */
};

/* Parse a ListObjectsV2 response body. 0 or -EPROTO / -ENOMEM. */
int s3_parse_list(const char *xml, size_t len, struct s3_list_page *out);
void s3_list_page_release(struct s3_list_page *p);

/* Parse an S3 <Error> body's Code and Message into the buffers ("" when
 * absent). 0 or -EPROTO. */
int s3_parse_error(const char *xml, size_t len, char *code, size_t codelen,
		   char *msg, size_t msglen);

/* Parse the FSx POSIX metadata values (x-amz-meta-file-*). Each returns 0 or
 * -EINVAL for a malformed value. */
int s3_parse_mode(const char *s, uint32_t *mode);
int s3_parse_time(const char *s, int64_t *ns); /* "123ns" or milliseconds */

#endif
