// SPDX-License-Identifier: MIT
/*
 * The export side of the S3 client, on top of s3_perform(): PutObject
 * streamed from a file descriptor, multipart uploads with parts in
 * parallel, CopyObject (UploadPartCopy beyond 5 GiB) with new metadata,
 * DeleteObject, and the FSx POSIX metadata headers.
 *
 * DESIGN
 * - No body is held in memory. A part (or a single PUT) is read twice with
 *   pread: once to hash it (sha256 for SigV4's x-amz-content-sha256, MD5 for
 *   Content-MD5, so S3 checks what arrived), once by curl's read callback
 *   while sending, again from the start on each retry. A file changed in
 *   between makes S3 refuse the part (BadDigest, -EINVAL) instead of storing
 *   a torn object.
 * - Multipart: CreateMultipartUpload, then `parallel` workers (the calling
 *   thread and parallel - 1 threads) take part numbers from mp.next under
 *   mp.lock; each part is one s3_perform() with its own retry budget. The
 *   first failure stops new parts from starting, and the upload is aborted.
 *   The conditions go on CompleteMultipartUpload, the only multipart request
 *   S3 checks them on; a HeadObject checks them first so that a stale file
 *   fails before gigabytes are sent.
 * - Copies look the source up first (its size picks CopyObject or
 *   UploadPartCopy; the conditions are checked early).
 *
 * What moto_server 5.2.1 does with conditions (checked by experiment and in
 * its source, s3/responses.py):
 * - PutObject: If-None-Match: * → 412 when the key exists; If-Match → 412
 *   when the ETag differs, 404 NoSuchKey when the key does not exist.
 * - CompleteMultipartUpload: If-None-Match: * → 412 when the key exists;
 *   If-Match is ignored (the upload completes). Only our HeadObject
 *   pre-check catches a stale multipart upload against moto.
 * - CopyObject: x-amz-copy-source-if-match and the destination's
 *   If-None-Match are ignored (only x-amz-copy-source-if-none-match is
 *   checked); our HeadObject pre-checks catch both. UploadPartCopy ignores
 *   x-amz-copy-source-if-match.
 * - Content-MD5 and x-amz-content-sha256 are not verified; DeleteObject of a
 *   missing key answers 204.
 */
#include "s3/s3_i.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/common.h"

#define MIB	     (1ull << 20)
#define PART_MIN     (5 * MIB)	  /* S3: every part but the last */
#define PART_MAX     (5ull << 30) /* S3: one part, one PutObject */
#define MAX_PARTS    10000u
#define MAX_PARALLEL 64
#define HASH_BUF     (256u << 10)
#define UPLOAD_PART  (16 * MIB)
#define COPY_PART    (512 * MIB)
#define SINGLE_MAX   (32 * MIB)
#define PARALLEL     4
/* Seconds a Complete or a server-side copy may go without a byte. */
#define COMPLETE_STALL_S 900
#define S3_RESULT_MAX	 S3_MAX_ERROR_BYTES

_Static_assert(SIZE_MAX >= UINT64_MAX, "bodies are sized with size_t");

static const char *const posix_names[5] = {
	"x-amz-meta-file-permissions", "x-amz-meta-file-owner",
	"x-amz-meta-file-group",       "x-amz-meta-file-atime",
	"x-amz-meta-file-mtime",
};

size_t s3_posix_headers(uint32_t mode, uint32_t uid, uint32_t gid,
			int64_t atime_ns, int64_t mtime_ns,
			struct s3_header hdrs[5], struct s3_meta_bufs *bufs)
{
	size_t i;

	/* FSx: setuid is dropped on export. */
	mode &= 0177777u & ~(uint32_t)S_ISUID;
	snprintf(bufs->v[0], sizeof(bufs->v[0]), "%07" PRIo32, mode);
	snprintf(bufs->v[1], sizeof(bufs->v[1]), "%" PRIu32, uid);
	snprintf(bufs->v[2], sizeof(bufs->v[2]), "%" PRIu32, gid);
	snprintf(bufs->v[3], sizeof(bufs->v[3]), "%" PRId64 "ns", atime_ns);
	snprintf(bufs->v[4], sizeof(bufs->v[4]), "%" PRId64 "ns", mtime_ns);
	for (i = 0; i < 5; i++)
		hdrs[i] = (struct s3_header){posix_names[i], bufs->v[i]};
	return 5;
}

/* ---- hashing a range of the file ---- */

/* sha256 (hex) and MD5 (base64, for Content-MD5) of [off, off+len). */
static int hash_range(int fd, uint64_t off, uint64_t len, char sha[65],
		      char md5[25])
{
	EVP_MD_CTX *s = EVP_MD_CTX_new(), *m = EVP_MD_CTX_new();
	unsigned char *buf = malloc(HASH_BUF), ds[32], dm[16];
	int ret = 0;

	if (!s || !m || !buf || !EVP_DigestInit_ex(s, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(m, EVP_md5(), NULL)) {
		ret = -ENOMEM;
		goto out;
	}
	while (len) {
		ssize_t n =
			pread(fd, buf, (size_t)MIN(len, HASH_BUF), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			s3_set_error("", n < 0 ? "reading the file failed"
					       : "the file is shorter than "
						 "the upload");
			goto out;
		}
		if (!EVP_DigestUpdate(s, buf, (size_t)n) ||
		    !EVP_DigestUpdate(m, buf, (size_t)n)) {
			ret = -ENOMEM;
			goto out;
		}
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	if (!EVP_DigestFinal_ex(s, ds, NULL) ||
	    !EVP_DigestFinal_ex(m, dm, NULL)) {
		ret = -ENOMEM;
		goto out;
	}
	hex_encode(ds, sizeof(ds), sha);
	EVP_EncodeBlock((unsigned char *)md5, dm, sizeof(dm));
out:
	free(buf);
	EVP_MD_CTX_free(s);
	EVP_MD_CTX_free(m);
	return ret;
}

/* ---- small helpers ---- */

static const struct s3_put_opts no_opts;

static bool has_if_match(const struct s3_put_opts *o)
{
	return o->if_match && *o->if_match;
}

/* hdrs (room for nmeta + extra) ← the caller's metadata headers. */
static struct s3_header *headers_new(const struct s3_put_opts *o, size_t extra,
				     size_t *n)
{
	struct s3_header *h = calloc(o->nmeta + extra, sizeof(*h));

	if (h && o->nmeta)
		memcpy(h, o->meta, o->nmeta * sizeof(*h));
	*n = o->nmeta;
	return h;
}

/*
 * Check the conditions with a HeadObject, ahead of the requests that S3
 * checks them on: 0, -ESTALE, -ENOENT (if_match on a missing key), or the
 * error of the HEAD.
 */
static int precheck(struct s3_client *c, const char *key, const char *if_match,
		    bool none_match_any)
{
	struct s3_object ob;
	int ret;

	ret = s3_head_object(c, key, &ob);
	if (ret == -ENOENT && !if_match)
		return 0;
	if (ret)
		return ret;
	if (none_match_any || (if_match && !s3_etag_equal(ob.etag, if_match)))
		ret = -ESTALE;
	s3_object_release(&ob);
	if (ret)
		s3_set_error("PreconditionFailed",
			     none_match_any
				     ? "the key exists"
				     : "the ETag is not the expected one");
	return ret;
}

/* Part size: want (or dflt), within S3's bounds and its 10,000 parts. */
static uint64_t part_size_for(uint64_t len, uint64_t want, uint64_t dflt)
{
	uint64_t ps = want ? want : dflt;

	ps = MAX(ps, PART_MIN);
	ps = MAX(ps, (len + MAX_PARTS - 1) / MAX_PARTS);
	ps = (ps + MIB - 1) / MIB * MIB;
	return MIN(ps, PART_MAX);
}

/* ---- single PutObject ---- */

/*
 * An If-None-Match: * PUT failed because the key exists. If the object
 * there holds exactly our bytes (its ETag is their MD5), an earlier attempt
 * of ours landed — a retry after a lost answer, or an export resumed after
 * a crash — and the upload succeeded. Otherwise it stays -ESTALE.
 */
static int landed_already(struct s3_client *c, const char *key,
			  const char *md5_b64, char etag_out[80])
{
	unsigned char raw[24];
	char want[40], hexmd5[33];
	struct s3_object ob = {0};
	int ret = -ESTALE;

	if (EVP_DecodeBlock(raw, (const unsigned char *)md5_b64,
			    (int)strlen(md5_b64)) < 16)
		return ret;
	hex_encode(raw, 16, hexmd5);
	snprintf(want, sizeof(want), "\"%s\"", hexmd5);
	if (s3_head_object(c, key, &ob) == 0 && !strcmp(ob.etag, want)) {
		if (etag_out)
			memcpy(etag_out, ob.etag, 80);
		ret = 0;
	}
	s3_object_release(&ob);
	if (ret == -ESTALE)
		s3_set_error("PreconditionFailed",
			     "the key exists with other content");
	return ret;
}

static int put_single(struct s3_client *c, const char *key, int fd,
		      uint64_t len, const struct s3_put_opts *o,
		      char etag_out[80])
{
	struct s3_req r = {.method = "PUT",
			   .key = key,
			   .body_from_fd = true,
			   .body_fd = fd,
			   .body_len = (size_t)len,
			   .max_body = S3_MAX_ERROR_BYTES};
	char sha[65], md5[25];
	struct s3_header *h;
	size_t n;
	int ret;

	h = headers_new(o, 3, &n);
	if (!h)
		return -ENOMEM;
	ret = hash_range(fd, 0, len, sha, md5);
	if (ret)
		goto out;
	h[n++] = (struct s3_header){"Content-MD5", md5};
	if (has_if_match(o))
		h[n++] = (struct s3_header){"If-Match", o->if_match};
	if (o->if_none_match_any)
		h[n++] = (struct s3_header){"If-None-Match", "*"};
	r.hdrs = h;
	r.nhdrs = n;
	r.payload_hash = sha;
	ret = s3_perform(c, &r);
	s3_buf_release(&r.resp);
	if (!ret && etag_out)
		memcpy(etag_out, r.h.etag, 80);
	if (ret == -ESTALE && o->if_none_match_any)
		ret = landed_already(c, key, md5, etag_out);
out:
	free(h);
	return ret;
}

/* ---- multipart: upload or copy ---- */

struct mp {
	struct s3_client *c;
	const char *key;
	char *upload_id;	   /* owned */
	char *uid_enc;		   /* owned, URI-encoded upload_id */
	int fd;			   /* upload: the file */
	const char *copy_source;   /* copy: "bucket/key", encoded */
	const char *copy_if_match; /* copy: the source's ETag */
	uint64_t len, part_size;
	unsigned nparts;
	char (*etags)[80]; /* owned; etags[i] written by one worker */

	pthread_mutex_t lock;
	unsigned next;	/* protected by lock */
	int err;	/* protected by lock: the first failure */
	char code[128]; /* protected by lock: its s3_error_code() */
	char msg[512];	/* protected by lock: its s3_error_message() */
};

static char *part_query(const struct mp *m, unsigned i)
{
	struct s3_buf q;

	s3_buf_init(&q);
	s3_buf_addf(&q, "partNumber=%u&uploadId=%s", i + 1, m->uid_enc);
	return s3_buf_detach(&q);
}

static int upload_part(struct mp *m, unsigned i)
{
	uint64_t off = (uint64_t)i * m->part_size;
	struct s3_req r = {.method = "PUT",
			   .key = m->key,
			   .body_from_fd = true,
			   .body_fd = m->fd,
			   .body_fd_off = off,
			   .body_len = (size_t)MIN(m->part_size, m->len - off),
			   .max_body = S3_MAX_ERROR_BYTES};
	char sha[65], md5[25], *q;
	struct s3_header h[1];
	int ret;

	ret = hash_range(m->fd, off, r.body_len, sha, md5);
	if (ret)
		return ret;
	q = part_query(m, i);
	if (!q)
		return -ENOMEM;
	h[0] = (struct s3_header){"Content-MD5", md5};
	r.query = q;
	r.hdrs = h;
	r.nhdrs = 1;
	r.payload_hash = sha;
	ret = s3_perform(m->c, &r);
	s3_buf_release(&r.resp);
	free(q);
	if (!ret && !r.h.etag[0]) {
		s3_set_error("", "UploadPart answered without an ETag");
		ret = -EPROTO;
	}
	if (!ret)
		memcpy(m->etags[i], r.h.etag, 80);
	return ret;
}

static int copy_part(struct mp *m, unsigned i)
{
	uint64_t off = (uint64_t)i * m->part_size;
	uint64_t end = MIN(off + m->part_size, m->len) - 1;
	struct s3_req r = {.method = "PUT",
			   .key = m->key,
			   .error_in_200 = true,
			   .max_body = S3_RESULT_MAX,
			   .stall_s = COMPLETE_STALL_S};
	struct s3_header h[3];
	char range[64], *q;
	int ret;

	q = part_query(m, i);
	if (!q)
		return -ENOMEM;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, end);
	h[0] = (struct s3_header){"x-amz-copy-source", m->copy_source};
	h[1] = (struct s3_header){"x-amz-copy-source-range", range};
	r.nhdrs = 2;
	if (*m->copy_if_match)
		h[r.nhdrs++] = (struct s3_header){"x-amz-copy-source-if-match",
						  m->copy_if_match};
	r.query = q;
	r.hdrs = h;
	ret = s3_perform(m->c, &r);
	if (!ret) {
		ret = s3_parse_copy_result(r.resp.p, r.resp.len, m->etags[i]);
		if (ret == -EPROTO)
			s3_set_error("", "malformed CopyPartResult");
	}
	s3_buf_release(&r.resp);
	free(q);
	return ret;
}

static void *worker(void *arg)
{
	struct mp *m = arg;

	for (;;) {
		unsigned i;
		int ret;

		pthread_mutex_lock(&m->lock);
		if (m->err || m->next >= m->nparts) {
			pthread_mutex_unlock(&m->lock);
			break;
		}
		i = m->next++;
		pthread_mutex_unlock(&m->lock);
		ret = m->copy_source ? copy_part(m, i) : upload_part(m, i);
		if (!ret)
			continue;
		pthread_mutex_lock(&m->lock);
		if (!m->err) {
			m->err = ret;
			snprintf(m->code, sizeof(m->code), "%s",
				 s3_error_code());
			snprintf(m->msg, sizeof(m->msg), "part %u: %s", i + 1,
				 s3_error_message());
		}
		pthread_mutex_unlock(&m->lock);
		break;
	}
	return NULL;
}

/* Every part, parallel at a time; the first error (s3_error_* set). */
static int run_parts(struct mp *m, int parallel)
{
	pthread_t t[MAX_PARALLEL];
	int n = 0, i;

	parallel = MIN(parallel, MAX_PARALLEL);
	parallel = (int)MIN((unsigned)parallel, m->nparts);
	for (i = 1; i < parallel; i++) {
		if (pthread_create(&t[n], NULL, worker, m))
			break; /* go on with fewer */
		n++;
	}
	worker(m);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	if (m->err)
		s3_set_error(m->code, m->msg);
	return m->err;
}

static int mp_create(struct mp *m, const struct s3_put_opts *o)
{
	struct s3_req r = {.method = "POST",
			   .key = m->key,
			   .query = "uploads",
			   .hdrs = o->meta,
			   .nhdrs = o->nmeta,
			   .error_in_200 = true,
			   .max_body = S3_RESULT_MAX};
	struct s3_buf b;
	int ret;

	ret = s3_perform(m->c, &r);
	if (!ret) {
		ret = s3_parse_initiate(r.resp.p, r.resp.len, &m->upload_id);
		if (ret == -EPROTO)
			s3_set_error("", "malformed "
					 "InitiateMultipartUploadResult");
	}
	s3_buf_release(&r.resp);
	if (ret)
		return ret;
	s3_buf_init(&b);
	s3_buf_add_uri(&b, m->upload_id, strlen(m->upload_id), false);
	m->uid_enc = s3_buf_detach(&b);
	return m->uid_enc ? 0 : -ENOMEM;
}

static void add_xml_text(struct s3_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			s3_buf_adds(b, "&amp;");
			break;
		case '<':
			s3_buf_adds(b, "&lt;");
			break;
		case '>':
			s3_buf_adds(b, "&gt;");
			break;
		case '"':
			s3_buf_adds(b, "&quot;");
			break;
		default:
			s3_buf_addc(b, *s);
		}
	}
}

static int mp_complete(struct mp *m, const char *if_match, bool none_match_any,
		       char etag_out[80])
{
	/* S3 may take minutes to assemble a big object before it answers
	 * (it sends whitespace meanwhile; other servers send nothing). */
	struct s3_req r = {.method = "POST",
			   .key = m->key,
			   .error_in_200 = true,
			   .max_body = S3_RESULT_MAX,
			   .stall_s = COMPLETE_STALL_S};
	struct s3_header h[2];
	struct s3_buf body, q;
	char etag[80];
	unsigned i;
	int ret;

	s3_buf_init(&body);
	s3_buf_init(&q);
	s3_buf_adds(&body, "<CompleteMultipartUpload>");
	for (i = 0; i < m->nparts; i++) {
		s3_buf_addf(&body, "<Part><PartNumber>%u</PartNumber><ETag>",
			    i + 1);
		add_xml_text(&body, m->etags[i]);
		s3_buf_adds(&body, "</ETag></Part>");
	}
	s3_buf_adds(&body, "</CompleteMultipartUpload>");
	s3_buf_addf(&q, "uploadId=%s", m->uid_enc);
	if (body.oom || q.oom) {
		ret = -ENOMEM;
		goto out;
	}
	if (if_match)
		h[r.nhdrs++] = (struct s3_header){"If-Match", if_match};
	if (none_match_any)
		h[r.nhdrs++] = (struct s3_header){"If-None-Match", "*"};
	r.hdrs = h;
	r.query = q.p;
	r.body = body.p;
	r.body_len = body.len;
	ret = s3_perform(m->c, &r);
	if (!ret) {
		ret = s3_parse_complete(r.resp.p, r.resp.len, etag);
		if (ret == -EPROTO)
			s3_set_error("", "malformed "
					 "CompleteMultipartUploadResult");
	}
	if (!ret && etag_out)
		memcpy(etag_out, etag, 80);
out:
	s3_buf_release(&r.resp);
	s3_buf_release(&body);
	s3_buf_release(&q);
	return ret;
}

/* AbortMultipartUpload; keeps this thread's last error as it was. */
static void mp_abort(struct mp *m)
{
	struct s3_req r = {.method = "DELETE",
			   .key = m->key,
			   .max_body = S3_MAX_ERROR_BYTES};
	char code[128], msg[512];
	struct s3_buf q;
	int ret;

	snprintf(code, sizeof(code), "%s", s3_error_code());
	snprintf(msg, sizeof(msg), "%s", s3_error_message());
	s3_buf_init(&q);
	s3_buf_addf(&q, "uploadId=%s", m->uid_enc);
	r.query = q.p;
	ret = q.oom ? -ENOMEM : s3_perform(m->c, &r);
	if (ret && ret != -ENOENT)
		log_warn("s3: aborting the multipart upload of %s failed: "
			 "%s %s (it stays until a lifecycle rule removes it)",
			 m->key, strerror(-ret), s3_error_code());
	s3_buf_release(&r.resp);
	s3_buf_release(&q);
	s3_set_error(code, msg);
}

/*
 * Create, parts, Complete with the conditions; Abort on any failure once
 * created. o->meta goes on Create.
 */
static int mp_run(struct mp *m, const struct s3_put_opts *o,
		  const char *if_match, bool none_match_any, char etag_out[80])
{
	int ret;

	if (m->len > PART_MAX * MAX_PARTS)
		return -EFBIG;
	m->nparts = (unsigned)((m->len + m->part_size - 1) / m->part_size);
	m->etags = calloc(m->nparts, sizeof(*m->etags));
	if (!m->etags)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	ret = mp_create(m, o);
	if (!ret) {
		ret = run_parts(m, o->parallel ? o->parallel : PARALLEL);
		if (!ret)
			ret = mp_complete(m, if_match, none_match_any,
					  etag_out);
		if (ret)
			mp_abort(m);
	}
	pthread_mutex_destroy(&m->lock);
	free(m->etags);
	free(m->upload_id);
	free(m->uid_enc);
	return ret;
}

int s3_put_file(struct s3_client *c, const char *key, int fd, uint64_t len,
		const struct s3_put_opts *o, char etag_out[80])
{
	struct mp m = {.c = c, .key = key, .fd = fd, .len = len};
	const char *if_match;
	uint64_t single_max;
	int ret;

	if (etag_out)
		etag_out[0] = '\0';
	if (!o)
		o = &no_opts;
	if (!c || !key || !*key || fd < 0 || (o->nmeta && !o->meta) ||
	    o->parallel < 0)
		return -EINVAL;
	s3_set_error(NULL, NULL);
	single_max = o->single_max ? MIN(o->single_max, PART_MAX) : SINGLE_MAX;
	if (len <= single_max)
		return put_single(c, key, fd, len, o, etag_out);
	if_match = has_if_match(o) ? o->if_match : NULL;
	if (if_match || o->if_none_match_any) {
		ret = precheck(c, key, if_match, o->if_none_match_any);
		if (ret)
			return ret;
	}
	m.part_size = part_size_for(len, o->part_size, UPLOAD_PART);
	return mp_run(&m, o, if_match, o->if_none_match_any, etag_out);
}

/* ---- copy ---- */

static int copy_single(struct s3_client *c, const char *dst_key,
		       const char *source, const struct s3_put_opts *o,
		       char etag_out[80])
{
	struct s3_req r = {.method = "PUT",
			   .key = dst_key,
			   .error_in_200 = true,
			   .max_body = S3_RESULT_MAX,
			   .stall_s = COMPLETE_STALL_S};
	struct s3_header *h;
	char etag[80];
	size_t n;
	int ret;

	h = headers_new(o, 4, &n);
	if (!h)
		return -ENOMEM;
	h[n++] = (struct s3_header){"x-amz-copy-source", source};
	h[n++] = (struct s3_header){"x-amz-metadata-directive", "REPLACE"};
	if (has_if_match(o))
		h[n++] = (struct s3_header){"x-amz-copy-source-if-match",
					    o->if_match};
	if (o->if_none_match_any)
		h[n++] = (struct s3_header){"If-None-Match", "*"};
	r.hdrs = h;
	r.nhdrs = n;
	ret = s3_perform(c, &r);
	if (!ret) {
		ret = s3_parse_copy_result(r.resp.p, r.resp.len, etag);
		if (ret == -EPROTO)
			s3_set_error("", "malformed CopyObjectResult");
	}
	if (!ret && etag_out)
		memcpy(etag_out, etag, 80);
	s3_buf_release(&r.resp);
	free(h);
	return ret;
}

int s3_copy_object(struct s3_client *c, const char *src_key,
		   const char *dst_key, const struct s3_put_opts *o,
		   char etag_out[80])
{
	struct mp m = {.c = c, .key = dst_key, .fd = -1};
	struct s3_object src;
	struct s3_buf source;
	int ret;

	if (etag_out)
		etag_out[0] = '\0';
	if (!o)
		o = &no_opts;
	if (!c || !src_key || !*src_key || !dst_key || !*dst_key ||
	    (o->nmeta && !o->meta) || o->parallel < 0)
		return -EINVAL;
	s3_set_error(NULL, NULL);
	ret = s3_head_object(c, src_key, &src);
	if (ret)
		return ret;
	if (has_if_match(o) && !s3_etag_equal(src.etag, o->if_match)) {
		s3_set_error("PreconditionFailed",
			     "the source's ETag is not the expected one");
		ret = -ESTALE;
	}
	if (!ret && o->if_none_match_any)
		ret = precheck(c, dst_key, NULL, true);
	if (!ret && o->dst_if_match && *o->dst_if_match)
		ret = precheck(c, dst_key, o->dst_if_match, false);
	s3_buf_init(&source);
	s3_buf_add_uri(&source, s3_client_bucket(c),
		       strlen(s3_client_bucket(c)), false);
	s3_buf_addc(&source, '/');
	s3_buf_add_uri(&source, src_key, strlen(src_key), true);
	if (!ret && source.oom)
		ret = -ENOMEM;
	if (ret)
		goto out;
	if (src.size <= s3_client_copy_single_max(c)) {
		ret = copy_single(c, dst_key, source.p, o, etag_out);
		goto out;
	}
	m.copy_source = source.p;
	/* Every part from the same version of the source. */
	m.copy_if_match = has_if_match(o) ? o->if_match : src.etag;
	m.len = src.size;
	m.part_size = part_size_for(src.size, o->part_size, COPY_PART);
	ret = mp_run(&m, o, NULL, o->if_none_match_any, etag_out);
out:
	s3_buf_release(&source);
	s3_object_release(&src);
	return ret;
}

int s3_delete_object(struct s3_client *c, const char *key)
{
	struct s3_req r = {
		.method = "DELETE", .key = key, .max_body = S3_MAX_ERROR_BYTES};
	int ret;

	if (!c || !key || !*key)
		return -EINVAL;
	ret = s3_perform(c, &r);
	s3_buf_release(&r.resp);
	return ret;
}
