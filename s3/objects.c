// SPDX-License-Identifier: MIT
/*
 * The read-side operations of s3.h on top of s3_perform() (s3.c):
 * ListObjectsV2 with its paging, the bucket check, HeadObject with the FSx
 * POSIX metadata headers, ranged GetObject into memory or to a file
 * descriptor with its Content-Range and If-Match checks, and PutObject from
 * memory. The requests, retries and error mapping are in s3.c; the export
 * side (streamed and multipart PUT, copy, delete) is in upload.c.
 */
#include "s3/s3_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "common/common.h"

/* ---- operations ---- */

void s3_object_release(struct s3_object *o)
{
	if (!o)
		return;
	free(o->key);
	o->key = NULL;
}

static int list_page(struct s3_client *c, const char *prefix, const char *token,
		     int max_keys, struct s3_list_page *pg)
{
	struct s3_req r = {.method = "GET", .max_body = S3_MAX_XML_BYTES};
	struct s3_buf q;
	int ret;

	s3_buf_init(&q);
	if (token) {
		s3_buf_adds(&q, "continuation-token=");
		s3_buf_add_uri(&q, token, strlen(token), false);
		s3_buf_addc(&q, '&');
	}
	s3_buf_adds(&q, "encoding-type=url&list-type=2");
	if (max_keys > 0)
		s3_buf_addf(&q, "&max-keys=%d", max_keys);
	if (prefix && *prefix) {
		s3_buf_adds(&q, "&prefix=");
		s3_buf_add_uri(&q, prefix, strlen(prefix), false);
	}
	if (q.oom) {
		s3_buf_release(&q);
		return -ENOMEM;
	}
	r.query = q.p;
	ret = s3_perform(c, &r);
	if (!ret) {
		ret = s3_parse_list(r.resp.p, r.resp.len, pg);
		if (ret == -EPROTO)
			s3_set_error("", "malformed ListObjectsV2 response");
	}
	s3_buf_release(&r.resp);
	s3_buf_release(&q);
	return ret;
}

int s3_list_objects(struct s3_client *c, const char *prefix, s3_list_cb cb,
		    void *arg)
{
	char *token = NULL;
	int ret;

	if (!c || !cb)
		return -EINVAL;
	for (;;) {
		struct s3_list_page pg;
		size_t i;

		ret = list_page(c, prefix, token, s3_client_list_page_size(c),
				&pg);
		if (ret)
			break;
		for (i = 0; !ret && i < pg.nobjects; i++)
			ret = cb(arg, &pg.objects[i]);
		if (!ret && pg.truncated &&
		    (!pg.next_token ||
		     (token && !strcmp(token, pg.next_token)))) {
			s3_set_error("", "truncated listing without a new "
					 "continuation token");
			ret = -EPROTO;
		}
		free(token);
		token = pg.truncated ? pg.next_token : NULL;
		if (pg.truncated)
			pg.next_token = NULL;
		s3_list_page_release(&pg);
		if (ret || !token)
			break;
	}
	free(token);
	return ret;
}

int s3_check_bucket(struct s3_client *c, const char *prefix)
{
	struct s3_list_page pg;
	int ret;

	if (!c)
		return -EINVAL;
	ret = list_page(c, prefix, NULL, 1, &pg);
	if (!ret)
		s3_list_page_release(&pg);
	return ret;
}

static void parse_meta(const char *key, struct s3_resp_hdrs *h,
		       struct s3_object *o)
{
	static atomic_uint warned;
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(s3_meta_names); i++) {
		const char *v = h->meta[i];
		uint64_t u;
		int ret;

		if (!(h->meta_set & (1u << i)))
			continue;
		ret = h->meta_long & (1u << i) ? -EINVAL : 0;
		switch (i) {
		case S3_META_PERM:
			if (!ret)
				ret = s3_parse_mode(v, &o->mode);
			if (!ret)
				o->have |= S3_HAVE_MODE;
			break;
		case S3_META_OWNER:
		case S3_META_GROUP:
			if (!ret)
				ret = parse_u64(v, &u) ? -EINVAL : 0;
			if (!ret && u > UINT32_MAX)
				ret = -EINVAL;
			if (!ret && i == S3_META_OWNER) {
				o->uid = (uint32_t)u;
				o->have |= S3_HAVE_UID;
			} else if (!ret) {
				o->gid = (uint32_t)u;
				o->have |= S3_HAVE_GID;
			}
			break;
		case S3_META_ATIME:
			if (!ret)
				ret = s3_parse_time(v, &o->atime_ns);
			if (!ret)
				o->have |= S3_HAVE_ATIME;
			break;
		case S3_META_MTIME:
			if (!ret)
				ret = s3_parse_time(v, &o->file_mtime_ns);
			if (!ret)
				o->have |= S3_HAVE_MTIME;
			break;
		}
		if (ret && !(atomic_fetch_or(&warned, 1u << i) & (1u << i)))
			log_warn("s3: ignoring malformed %s on %s (further "
				 "ones are not logged)",
				 s3_meta_names[i], key);
	}
}

int s3_head_object(struct s3_client *c, const char *key, struct s3_object *out)
{
	struct s3_req r = {
		.method = "HEAD", .key = key, .max_body = S3_MAX_ERROR_BYTES};
	int ret;

	if (!c || !key || !*key || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	ret = s3_perform(c, &r);
	s3_buf_release(&r.resp);
	if (ret)
		return ret;
	if (r.h.bad || !r.h.have_length) {
		s3_set_error("", "HEAD response without a usable "
				 "Content-Length/ETag");
		return -EPROTO;
	}
	out->key = strdup(key);
	if (!out->key)
		return -ENOMEM;
	out->size = r.h.content_length;
	memcpy(out->etag, r.h.etag, sizeof(out->etag));
	if (r.h.last_modified[0]) {
		time_t t = curl_getdate(r.h.last_modified, NULL);
		if (t != (time_t)-1)
			out->mtime_ns = (int64_t)t * 1000000000ll;
	}
	parse_meta(key, &r.h, out);
	return 0;
}

bool s3_etag_equal(const char *a, const char *b)
{
	size_t la, lb;

	if (!strncmp(a, "W/", 2))
		a += 2;
	if (!strncmp(b, "W/", 2))
		b += 2;
	la = strlen(a);
	lb = strlen(b);
	if (la >= 2 && a[0] == '"' && a[la - 1] == '"') {
		a++;
		la -= 2;
	}
	if (lb >= 2 && b[0] == '"' && b[lb - 1] == '"') {
		b++;
		lb -= 2;
	}
	return la == lb && !memcmp(a, b, la);
}

/* Check a 206's Content-Range "bytes A-B/T" against what was asked. */
static int check_content_range(const struct s3_req *r)
{
	unsigned long long a, b;
	char total[32];

	if (!r->h.content_range[0])
		return 0; /* not sent: trust the length checks */
	if (sscanf(r->h.content_range, "bytes %llu-%llu/%31s", &a, &b, total) !=
		    3 ||
	    a != r->win_off || b < a)
		return -EIO;
	if (r->win_got != b - a + 1)
		return -EIO;
	if (r->win_got < r->win_len && strcmp(total, "*")) {
		uint64_t t;
		if (parse_u64(total, &t) || t != b + 1)
			return -EIO; /* short, but not at the end */
	}
	return 0;
}

static int get_range(struct s3_client *c, const char *key, const char *if_match,
		     uint64_t off, size_t len, void *buf, int fd,
		     uint64_t fd_off, size_t *got)
{
	struct s3_header hdrs[2];
	struct s3_req r = {.method = "GET",
			   .key = key,
			   .hdrs = hdrs,
			   .windowed = true,
			   .win = buf,
			   .win_len = len,
			   .win_off = off,
			   .win_to_fd = fd >= 0,
			   .win_fd = fd,
			   .win_fd_off = fd_off,
			   .max_body = S3_MAX_ERROR_BYTES};
	char range[64];
	int ret;

	if (got)
		*got = 0;
	if (!c || !key || !*key || !got || (len && !buf && fd < 0) ||
	    (uint64_t)len > UINT64_MAX - off)
		return -EINVAL;
	if (!len)
		return 0;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off,
		 off + len - 1);
	hdrs[r.nhdrs++] = (struct s3_header){"range", range};
	if (if_match && *if_match)
		hdrs[r.nhdrs++] = (struct s3_header){"if-match", if_match};
	ret = s3_perform(c, &r);
	s3_buf_release(&r.resp);
	if (r.win_err)
		return r.win_err;
	if (ret)
		return ret;
	if (if_match && *if_match && r.h.etag[0] &&
	    !s3_etag_equal(r.h.etag, if_match)) {
		s3_set_error("PreconditionFailed", "ETag changed");
		return -ESTALE;
	}
	if (r.status == 206 && check_content_range(&r)) {
		s3_set_error("", "Content-Range does not match the request");
		return -EIO;
	}
	*got = r.win_got;
	return 0;
}

int s3_get_range(struct s3_client *c, const char *key, const char *if_match,
		 uint64_t off, size_t len, void *buf, size_t *got)
{
	return get_range(c, key, if_match, off, len, buf, -1, 0, got);
}

int s3_get_range_fd(struct s3_client *c, const char *key, const char *if_match,
		    uint64_t off, size_t len, int fd, uint64_t fd_off,
		    size_t *got)
{
	if (fd < 0)
		return -EINVAL;
	return get_range(c, key, if_match, off, len, NULL, fd, fd_off, got);
}

int s3_put_object(struct s3_client *c, const char *key, const void *data,
		  size_t len, const struct s3_header *hdrs, size_t nhdrs,
		  char etag_out[80])
{
	struct s3_req r = {.method = "PUT",
			   .key = key,
			   .hdrs = hdrs,
			   .nhdrs = nhdrs,
			   .body = data,
			   .body_len = len,
			   .max_body = S3_MAX_ERROR_BYTES};
	int ret;

	if (etag_out)
		etag_out[0] = '\0';
	if (!c || !key || !*key || (len && !data) || (nhdrs && !hdrs))
		return -EINVAL;
	ret = s3_perform(c, &r);
	s3_buf_release(&r.resp);
	if (!ret && etag_out)
		memcpy(etag_out, r.h.etag, 80);
	return ret;
}
