/* SPDX-License-Identifier: MIT */
/*
 * s3_i.h — private to s3/: a growable byte buffer, the thread-local last
 * error, small parsers shared between the request code and the XML code, and
 * a few knobs for the unit tests. Nothing outside s3/ and tests/unit/test_s3*
 * may include this header.
 */
#ifndef TIDEFS_S3_I_H
#define TIDEFS_S3_I_H

#include "s3/s3.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A growable, NUL-terminated byte buffer whose first allocation failure
 * sticks: later appends are no-ops and oom stays true, so a caller checks
 * once at the end.
 */
struct s3_buf {
	char *p; /* NUL-terminated when not NULL */
	size_t len;
	size_t cap;
	bool oom;
};

void s3_buf_init(struct s3_buf *b);
void s3_buf_release(struct s3_buf *b);
void s3_buf_add(struct s3_buf *b, const void *data, size_t len);
void s3_buf_adds(struct s3_buf *b, const char *s);
void s3_buf_addc(struct s3_buf *b, char c);
void s3_buf_addf(struct s3_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Take the string (never NULL unless oom): the buffer is left empty. */
char *s3_buf_detach(struct s3_buf *b);

/* Append s URI-encoded per SigV4 ('/' kept when keep_slash). */
void s3_buf_add_uri(struct s3_buf *b, const char *s, size_t len,
		    bool keep_slash);

/* Decode %XX (and '+' as a space when plus_space) in place; a malformed
 * escape is kept literally. Returns the new length. */
size_t s3_uri_decode(char *s, size_t len, bool plus_space);

/* Set this thread's last error (code, message); NULL means "". */
void s3_set_error(const char *code, const char *msg);

/* "2024-01-02T03:04:05.000Z" (fraction and 'Z' optional) → ns since the
 * epoch. 0 or -EINVAL. */
int s3_parse_iso8601(const char *s, int64_t *ns);

/* ---- one request (s3.c), for the operations in objects.c and upload.c ---- */

/* The x-amz-meta-file-* headers (FSx POSIX metadata) a response may carry,
 * indexed by enum s3_meta_field; defined in s3.c. */
enum s3_meta_field {
	S3_META_PERM,
	S3_META_OWNER,
	S3_META_GROUP,
	S3_META_ATIME,
	S3_META_MTIME,
	S3_NMETA
};
extern const char *const s3_meta_names[S3_NMETA];

/* The response headers we use, of the last response only. */
struct s3_resp_hdrs {
	char etag[80];
	char last_modified[64];
	char content_range[96];
	uint64_t content_length;
	bool have_length;
	bool bad; /* a header we use was too long */
	char meta[S3_NMETA][96];
	unsigned meta_set;  /* bit per x-amz-meta-file-* header */
	unsigned meta_long; /* bit per x-amz-meta-file-* header: truncated */
};

struct s3_req {
	/* request */
	const char *method; /* GET, HEAD, PUT, POST, DELETE */
	const char *key;    /* NULL: the bucket */
	const char *query;  /* encoded; NULL or "" for none */
	const struct s3_header *hdrs;
	size_t nhdrs;
	const void *body;  /* PUT/POST body in memory, or: */
	bool body_from_fd; /* the body is pread from body_fd */
	int body_fd;	   /* at [body_fd_off, body_fd_off + body_len) */
	uint64_t body_fd_off;
	size_t body_len;
	const char *payload_hash; /* hex sha256 of the body; NULL: computed
				     from body (in memory only) */
	bool error_in_200; /* a 2xx whose body is an <Error> is an error */
	/* ranged GET into a caller buffer */
	bool windowed;
	char *win;
	size_t win_len;
	uint64_t win_off;
	bool win_to_fd; /* write the window to win_fd at win_fd_off instead */
	int win_fd;
	uint64_t win_fd_off;
	int win_err;	 /* -errno of a failed write to win_fd */
	size_t max_body; /* other bodies are kept up to this many bytes */
	int stall_s;	 /* give up after this many seconds without a byte;
			    0: the client's request timeout */

	/* response, reset for each attempt */
	void *curl; /* CURL * of the attempt */
	long status;
	struct s3_buf resp;
	struct s3_resp_hdrs h;
	size_t win_got;
	uint64_t body_seen;
	bool win_done; /* stopped a 200 once the window was full */
	bool too_big;
	bool overflow;
	size_t upload_pos;
	int read_err; /* errno of a failed pread of the body */
};

/* Run r with retries until the client's retry budget is spent. 0 on a 2xx
 * (and, with error_in_200, a body that is not an <Error>), else -errno with
 * this thread's s3_error_*() set. The caller releases r->resp. */
int s3_perform(struct s3_client *c, struct s3_req *r);

/* Do two ETags name the same content (quotes and a W/ prefix ignored)? */
bool s3_etag_equal(const char *a, const char *b);

/* The bucket name the client was made for. */
const char *s3_client_bucket(const struct s3_client *c);

/* Parse the bodies of CreateMultipartUpload (UploadId, malloc'ed into
 * *upload_id), CompleteMultipartUpload (ETag), and CopyObject or
 * UploadPartCopy (CopyObjectResult or CopyPartResult: ETag). Leading
 * whitespace is skipped (S3 sends some while it works). 0, -EPROTO for a
 * malformed, hostile or incomplete body (an <Error> included), -ENOMEM. */
int s3_parse_initiate(const char *xml, size_t len, char **upload_id);
int s3_parse_complete(const char *xml, size_t len, char etag[80]);
int s3_parse_copy_result(const char *xml, size_t len, char etag[80]);

/* Tests only: CopyObject sizes above this use UploadPartCopy (0 = 5 GiB). */
void s3_client_set_copy_single_max(struct s3_client *c, uint64_t bytes);
uint64_t s3_client_copy_single_max(const struct s3_client *c);

/* Tests only: page size of ListObjectsV2 (max-keys; 0 = server default). */
void s3_client_set_list_page_size(struct s3_client *c, int max_keys);
/* The page size ListObjectsV2 asks for (0 = server default). */
int s3_client_list_page_size(const struct s3_client *c);
/* Tests only: number of HTTP attempts made by this client so far. */
uint64_t s3_client_attempts(struct s3_client *c);

/* Upper bounds on what a response may make us hold. */
#define S3_MAX_XML_BYTES    (64u << 20) /* one ListObjectsV2 page */
#define S3_MAX_ERROR_BYTES  (64u << 10) /* an <Error> body */
#define S3_MAX_XML_DEPTH    32
#define S3_MAX_XML_TEXT	    (64u << 10) /* one element's text */
#define S3_MAX_LIST_OBJECTS 100000	/* objects per page */

#endif
