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

/* Tests only: page size of ListObjectsV2 (max-keys; 0 = server default). */
void s3_client_set_list_page_size(struct s3_client *c, int max_keys);
/* Tests only: number of HTTP attempts made by this client so far. */
uint64_t s3_client_attempts(struct s3_client *c);

/* Upper bounds on what a response may make us hold. */
#define S3_MAX_XML_BYTES    (64u << 20) /* one ListObjectsV2 page */
#define S3_MAX_ERROR_BYTES  (64u << 10) /* an <Error> body */
#define S3_MAX_XML_DEPTH    32
#define S3_MAX_XML_TEXT	    (64u << 10) /* one element's text */
#define S3_MAX_LIST_OBJECTS 100000	/* objects per page */

#endif
