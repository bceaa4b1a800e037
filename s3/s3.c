// SPDX-License-Identifier: MIT
/*
 * The S3 client: the handle pool, signed requests over libcurl, retries,
 * the mapping of HTTP statuses, curl errors and S3 <Error> codes to -errno,
 * and the thread-local last error. The operations of s3.h are on top of
 * s3_perform(): objects.c has the read side (ListObjectsV2, HeadObject,
 * ranged GetObject, PutObject from memory, bucket check), upload.c the
 * export side.
 *
 * DESIGN
 * - Handles: a pool of curl easy handles (pool_lock + pool_cond). A call
 *   takes an idle handle, or creates one while fewer than max_handles exist,
 *   or waits. Handles carry no options between calls (curl_easy_reset on
 *   return) but keep their live connection; DNS and TLS sessions live in
 *   one curl share handle whose lock callbacks take share_locks[data]
 *   (connections are not shared: libcurl does not support that across
 *   threads). No lock of ours is held while curl does network I/O.
 * - Retries: each call has a deadline of retry_total_ms. 5xx, 429, timeouts
 *   and connection failures/resets are retried after a "full jitter" sleep,
 *   uniform in [0, min(5 s, 100 ms * 2^attempt)], clipped to the deadline.
 *   Each attempt is bounded by the connect timeout and the low-speed abort
 *   (request_timeout_ms without a byte), so a stalled server cannot hold a
 *   call much past the deadline. Other statuses are final.
 * - Every request is signed afresh (new x-amz-date) for each attempt.
 *
 * Lock order: pool_lock and share_locks[] are never held together.
 */
#include "s3/s3_i.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/common.h"

#define EMPTY_SHA256                                                           \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_client {
	char *scheme;	 /* "http" or "https" */
	char *authority; /* host[:port], "bucket." prepended when virtual */
	char *base_path; /* "" or "/base", no trailing '/' */
	char *bucket;
	char *region;
	struct s3_credentials creds;
	bool path_style;
	bool insecure_tls;
	int retry_total_ms;
	int connect_timeout_ms;
	int request_timeout_ms;
	int max_handles;
	int list_page_size;
	uint64_t copy_single_max; /* tests only; 0 = 5 GiB */
	atomic_uint_fast64_t attempts;
	atomic_bool cancelled; /* s3_client_cancel(): abort everything */

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	CURL **idle;  /* protected by pool_lock */
	int nidle;    /* protected by pool_lock */
	int ncreated; /* protected by pool_lock */
};

/* ---- thread-local last error ---- */

static _Thread_local char tl_code[128];
static _Thread_local char tl_msg[512];

void s3_set_error(const char *code, const char *msg)
{
	snprintf(tl_code, sizeof(tl_code), "%s", code ? code : "");
	snprintf(tl_msg, sizeof(tl_msg), "%s", msg ? msg : "");
}

const char *s3_error_code(void)
{
	return tl_code;
}

const char *s3_error_message(void)
{
	return tl_msg;
}

/* ---- client ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc,
		       void *arg)
{
	struct s3_client *c = arg;

	(void)h;
	(void)acc;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct s3_client *c = arg;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

/* "http://host:port/base" → scheme, authority, base path. */
static int parse_endpoint(const char *ep, struct s3_client *c)
{
	const char *sep = strstr(ep, "://");
	const char *auth = ep, *slash;
	size_t i, alen;

	if (sep) {
		if ((size_t)(sep - ep) == 4 && !strncasecmp(ep, "http", 4))
			c->scheme = strdup("http");
		else if ((size_t)(sep - ep) == 5 &&
			 !strncasecmp(ep, "https", 5))
			c->scheme = strdup("https");
		else
			return -EINVAL;
		auth = sep + 3;
	} else {
		c->scheme = strdup("https");
	}
	slash = strchr(auth, '/');
	alen = slash ? (size_t)(slash - auth) : strlen(auth);
	if (!alen)
		return -EINVAL;
	for (i = 0; i < alen; i++)
		if (auth[i] <= ' ' || auth[i] == '@' || auth[i] == '?' ||
		    auth[i] == '#' || (unsigned char)auth[i] >= 0x7f)
			return -EINVAL;
	c->authority = strndup(auth, alen);
	c->base_path = strdup(slash ? slash : "");
	if (!c->scheme || !c->authority || !c->base_path)
		return -ENOMEM;
	alen = strlen(c->base_path);
	while (alen && c->base_path[alen - 1] == '/')
		c->base_path[--alen] = '\0';
	return 0;
}

static bool valid_bucket(const char *b)
{
	size_t i, n = strlen(b);

	if (n < 1 || n > 255)
		return false;
	for (i = 0; i < n; i++)
		if (b[i] <= ' ' || b[i] == '/' || b[i] == '?' || b[i] == '#' ||
		    b[i] == '%' || (unsigned char)b[i] >= 0x7f)
			return false;
	return true;
}

static int copy_creds(const struct s3_credentials *in,
		      struct s3_credentials *out)
{
	memset(out, 0, sizeof(*out));
	if (!in->access_key)
		return 0;
	if (!in->secret_key)
		return -EINVAL;
	out->access_key = strdup(in->access_key);
	out->secret_key = strdup(in->secret_key);
	if (in->session_token && *in->session_token)
		out->session_token = strdup(in->session_token);
	if (!out->access_key || !out->secret_key ||
	    (in->session_token && *in->session_token && !out->session_token))
		return -ENOMEM;
	return 0;
}

int s3_client_new(const struct s3_config *cfg, struct s3_client **out)
{
	struct s3_client *c;
	const char *region;
	char *aws = NULL;
	int ret, i;

	*out = NULL;
	if (!cfg || !cfg->bucket || !valid_bucket(cfg->bucket) ||
	    cfg->retry_total_ms < 0 || cfg->connect_timeout_ms < 0 ||
	    cfg->request_timeout_ms < 0 || cfg->max_handles < 0)
		return -EINVAL;
	region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_cond_init(&c->pool_cond, NULL);
	c->path_style = cfg->path_style;
	c->insecure_tls = cfg->insecure_tls;
	c->retry_total_ms = cfg->retry_total_ms ? cfg->retry_total_ms : 20000;
	c->connect_timeout_ms =
		cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
	c->request_timeout_ms =
		cfg->request_timeout_ms ? cfg->request_timeout_ms : 30000;
	c->max_handles = cfg->max_handles ? cfg->max_handles : 32;

	if (!cfg->endpoint) {
		struct s3_buf b;
		s3_buf_init(&b);
		s3_buf_addf(&b, "https://s3.%s.amazonaws.com", region);
		aws = s3_buf_detach(&b);
		if (!aws) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	ret = parse_endpoint(cfg->endpoint ? cfg->endpoint : aws, c);
	if (ret)
		goto fail;
	if (!c->path_style) {
		struct s3_buf b;
		s3_buf_init(&b);
		s3_buf_addf(&b, "%s.%s", cfg->bucket, c->authority);
		free(c->authority);
		c->authority = s3_buf_detach(&b);
	}
	c->bucket = strdup(cfg->bucket);
	c->region = strdup(region);
	c->idle = calloc((size_t)c->max_handles, sizeof(*c->idle));
	c->share = curl_share_init();
	if (!c->authority || !c->bucket || !c->region || !c->idle ||
	    !c->share) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = copy_creds(&cfg->creds, &c->creds);
	if (ret)
		goto fail;
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	/* Not CURL_LOCK_DATA_CONNECT: libcurl does not support a connection
	 * cache shared by concurrent threads (CURLSHOPT_SHARE(3); with it the
	 * daemon crashed inside libcurl under 32 parallel HEADs). Each pooled
	 * handle keeps its own connection across curl_easy_reset(). */
	free(aws);
	*out = c;
	return 0;
fail:
	free(aws);
	s3_client_free(c);
	return ret;
}

void s3_client_free(struct s3_client *c)
{
	int i;

	if (!c)
		return;
	/* Every call has returned its handle by now. */
	for (i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_cond_destroy(&c->pool_cond);
	free(c->idle);
	free(c->scheme);
	free(c->authority);
	free(c->base_path);
	free(c->bucket);
	free(c->region);
	s3_credentials_release(&c->creds);
	free(c);
}

void s3_client_set_list_page_size(struct s3_client *c, int max_keys)
{
	c->list_page_size = max_keys;
}

int s3_client_list_page_size(const struct s3_client *c)
{
	return c->list_page_size;
}

void s3_client_set_copy_single_max(struct s3_client *c, uint64_t bytes)
{
	c->copy_single_max = bytes;
}

uint64_t s3_client_copy_single_max(const struct s3_client *c)
{
	return c->copy_single_max ? c->copy_single_max : 5ull << 30;
}

const char *s3_client_bucket(const struct s3_client *c)
{
	return c->bucket;
}

uint64_t s3_client_attempts(struct s3_client *c)
{
	return atomic_load(&c->attempts);
}

static CURL *handle_get(struct s3_client *c)
{
	CURL *h = NULL;
	bool create = false;

	pthread_mutex_lock(&c->pool_lock);
	while (!c->nidle && c->ncreated >= c->max_handles)
		pthread_cond_wait(&c->pool_cond, &c->pool_lock);
	if (c->nidle) {
		h = c->idle[--c->nidle];
	} else {
		c->ncreated++;
		create = true;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (create) {
		h = curl_easy_init();
		if (!h) {
			pthread_mutex_lock(&c->pool_lock);
			c->ncreated--;
			pthread_cond_signal(&c->pool_cond);
			pthread_mutex_unlock(&c->pool_lock);
		}
	}
	return h;
}

static void handle_put(struct s3_client *c, CURL *h)
{
	curl_easy_reset(h);
	pthread_mutex_lock(&c->pool_lock);
	c->idle[c->nidle++] = h;
	pthread_cond_signal(&c->pool_cond);
	pthread_mutex_unlock(&c->pool_lock);
}

/* ---- one request ---- */

const char *const s3_meta_names[S3_NMETA] = {
	"x-amz-meta-file-permissions", "x-amz-meta-file-owner",
	"x-amz-meta-file-group",       "x-amz-meta-file-atime",
	"x-amz-meta-file-mtime",
};

static void copy_hdr(char *dst, size_t dstlen, const char *v, size_t len,
		     bool *too_long)
{
	if (len >= dstlen) {
		*too_long = true;
		len = dstlen - 1;
	}
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct s3_req *r = ud;
	size_t len = sz * n, nlen, vlen;
	const char *colon, *v;
	unsigned i;

	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		memset(&r->h, 0, sizeof(r->h));
		return len;
	}
	colon = memchr(p, ':', len);
	if (!colon)
		return len;
	nlen = (size_t)(colon - p);
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
			v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
#define IS(name) (nlen == strlen(name) && !strncasecmp(p, name, nlen))
	if (IS("etag")) {
		copy_hdr(r->h.etag, sizeof(r->h.etag), v, vlen, &r->h.bad);
	} else if (IS("last-modified")) {
		copy_hdr(r->h.last_modified, sizeof(r->h.last_modified), v,
			 vlen, &r->h.bad);
	} else if (IS("content-range")) {
		copy_hdr(r->h.content_range, sizeof(r->h.content_range), v,
			 vlen, &r->h.bad);
	} else if (IS("content-length")) {
		char tmp[32];
		bool tl = false;
		copy_hdr(tmp, sizeof(tmp), v, vlen, &tl);
		r->h.have_length = !tl && !parse_u64(tmp, &r->h.content_length);
	} else {
		for (i = 0; i < ARRAY_SIZE(s3_meta_names); i++) {
			bool tl = false;
			if (!IS(s3_meta_names[i]))
				continue;
			copy_hdr(r->h.meta[i], sizeof(r->h.meta[i]), v, vlen,
				 &tl);
			r->h.meta_set |= 1u << i;
			if (tl)
				r->h.meta_long |= 1u << i;
		}
	}
#undef IS
	return len;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct s3_req *r = ud;
	size_t len = sz * n, take, avail = len;
	long status = 0;

	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (r->windowed && (status == 200 || status == 206)) {
		if (status == 200 && r->body_seen < r->win_off) {
			/* The server ignored Range: skip to the window. */
			uint64_t skip = MIN(r->win_off - r->body_seen, avail);
			p += skip;
			avail -= (size_t)skip;
			r->body_seen += skip;
		}
		take = MIN(avail, r->win_len - r->win_got);
		if (take && r->win_to_fd) {
			int e = pwrite_all(
				r->win_fd, p, take,
				(int64_t)(r->win_fd_off + r->win_got));
			if (e < 0) {
				r->win_err = e;
				return 0; /* abort: the disk failed */
			}
		} else if (take) {
			memcpy(r->win + r->win_got, p, take);
		}
		r->win_got += take;
		r->body_seen += take;
		if (status == 206 && avail > take) {
			r->overflow = true; /* more than we asked for */
			return 0;
		}
		if (status == 200 && r->win_got == r->win_len) {
			r->win_done = true; /* the rest is not ours */
			return 0;
		}
		return len;
	}
	if (status >= 200 && status < 300) {
		if (r->resp.len + len > r->max_body) {
			r->too_big = true;
			return 0;
		}
	} else if (r->resp.len + len > S3_MAX_ERROR_BYTES) {
		return len; /* keep the start of an error body only */
	}
	s3_buf_add(&r->resp, p, len);
	return r->resp.oom ? 0 : len;
}

static size_t on_upload(char *p, size_t sz, size_t n, void *ud)
{
	struct s3_req *r = ud;
	size_t take = MIN(sz * n, r->body_len - r->upload_pos);
	ssize_t got;

	if (!take)
		return 0;
	if (!r->body_from_fd) {
		memcpy(p, (const char *)r->body + r->upload_pos, take);
		r->upload_pos += take;
		return take;
	}
	do
		got = pread(r->body_fd, p, take,
			    (off_t)(r->body_fd_off + r->upload_pos));
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		/* 0: the file is shorter than the length we announced. */
		r->read_err = got < 0 ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	r->upload_pos += (size_t)got;
	return (size_t)got;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct s3_req *r = ud;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->upload_pos = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static bool header_ok(const struct s3_header *h)
{
	return h->name && h->value && *h->name &&
	       !strpbrk(h->name, "\r\n:; \t") && !strpbrk(h->value, "\r\n");
}

/* Path (encoded) of the bucket or of key, as sent and as signed. */
static char *request_path(const struct s3_client *c, const char *key)
{
	struct s3_buf b;

	s3_buf_init(&b);
	s3_buf_adds(&b, c->base_path);
	if (c->path_style) {
		s3_buf_addc(&b, '/');
		s3_buf_add_uri(&b, c->bucket, strlen(c->bucket), false);
	}
	if (key) {
		s3_buf_addc(&b, '/');
		s3_buf_add_uri(&b, key, strlen(key), true);
	} else if (!c->path_style) {
		s3_buf_addc(&b, '/');
	}
	return s3_buf_detach(&b);
}

static struct curl_slist *add_hdr(struct curl_slist *l, bool *oom,
				  const char *name, const char *value)
{
	struct curl_slist *n;
	struct s3_buf b;

	if (*oom)
		return l;
	s3_buf_init(&b);
	/* "Name;" sends an empty value; "Name:" would remove the header. */
	s3_buf_addf(&b, *value ? "%s: %s" : "%s;", name, value);
	n = b.oom ? NULL : curl_slist_append(l, b.p);
	s3_buf_release(&b);
	if (!n) {
		*oom = true;
		return l;
	}
	return n;
}

/* Sign r and set up h for one attempt. Fills *hl with the header list the
 * caller frees after the transfer. */
static int prepare(struct s3_client *c, struct s3_req *r, CURL *h,
		   const char *path, char *errbuf, struct curl_slist **hl)
{
	struct s3_header *sh;
	size_t nsh = 0, i;
	char amz_date[17], payload[65], auth[1024];
	struct s3_buf url;
	struct tm tm;
	time_t now = time(NULL);
	bool oom = false;
	int ret = 0;

	gmtime_r(&now, &tm);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
	if (r->payload_hash)
		snprintf(payload, sizeof(payload), "%s", r->payload_hash);
	else if (r->body_len && !r->body_from_fd)
		s3_sha256_hex(r->body, r->body_len, payload);
	else
		memcpy(payload, EMPTY_SHA256, sizeof(payload));
	sh = calloc(r->nhdrs + 4, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh[nsh++] = (struct s3_header){"host", c->authority};
	sh[nsh++] = (struct s3_header){"x-amz-date", amz_date};
	sh[nsh++] = (struct s3_header){"x-amz-content-sha256", payload};
	if (c->creds.session_token)
		sh[nsh++] = (struct s3_header){"x-amz-security-token",
					       c->creds.session_token};
	for (i = 0; i < r->nhdrs; i++)
		sh[nsh++] = r->hdrs[i];
	for (i = 0; i < nsh; i++)
		*hl = add_hdr(*hl, &oom, sh[i].name, sh[i].value);
	if (c->creds.access_key) {
		struct s3_sigv4_request sr = {
			.method = r->method,
			.path = path,
			.query = r->query,
			.headers = sh,
			.nheaders = nsh,
			.payload_hash = payload,
			.region = c->region,
			.service = "s3",
			.amz_date = amz_date,
			.access_key = c->creds.access_key,
			.secret_key = c->creds.secret_key,
		};
		ret = s3_sigv4_sign(&sr, auth, sizeof(auth), NULL);
		if (!ret)
			*hl = add_hdr(*hl, &oom, "Authorization", auth);
	}
	free(sh);
	if (ret)
		return ret;
	if (!oom) {
		/* "Expect:" removes curl's 100-continue handshake. */
		struct curl_slist *e = curl_slist_append(*hl, "Expect:");
		if (e)
			*hl = e;
		oom = !e;
	}
	if (oom)
		return -ENOMEM;

	s3_buf_init(&url);
	s3_buf_addf(&url, "%s://%s%s", c->scheme, c->authority, path);
	if (r->query && *r->query)
		s3_buf_addf(&url, "?%s", r->query);
	if (url.oom)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, url.p);
	s3_buf_release(&url);
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tidefs/" TIDEFS_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
			 r->stall_s > 0 ? (long)r->stall_s
					: (long)MAX(1, (c->request_timeout_ms +
							999) / 1000));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (r->windowed) /* fewer, larger callbacks for data */
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure_tls ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure_tls ? 0L : 2L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
		/* An upload, also for POST: no form Content-Type, and an empty
		 * body still sends Content-Length: 0. */
		if (strcmp(r->method, "PUT"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	return 0;
}

static const char *status_code_name(long status)
{
	switch (status) {
	case 400:
		return "BadRequest";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 412:
		return "PreconditionFailed";
	case 416:
		return "InvalidRange";
	case 429:
		return "SlowDown";
	case 503:
		return "ServiceUnavailable";
	default:
		return status >= 500 ? "InternalError" : "HTTPError";
	}
}

/* Map an HTTP status; *retry tells whether another attempt may help. */
static int status_error(struct s3_req *r, bool *retry)
{
	char code[128], msg[384];
	long st = r->status;

	*retry = st >= 500 || st == 429;
	if (!r->resp.len ||
	    s3_parse_error(r->resp.p, r->resp.len, code, sizeof(code), msg,
			   sizeof(msg)) ||
	    !*code) {
		snprintf(code, sizeof(code), "%s", status_code_name(st));
		snprintf(msg, sizeof(msg), "HTTP %ld", st);
	}
	s3_set_error(code, msg);
	if (*retry)
		return -EIO;
	switch (st) {
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		/* A concurrent conditional write won the race. */
		return strcmp(code, "ConditionalRequestConflict") ? -EINVAL
								  : -ESTALE;
	case 412:
		return -ESTALE;
	case 416:
		return -ERANGE;
	default:
		return st >= 400 && st < 500 ? -EINVAL : -EIO;
	}
}

static int curl_error(struct s3_req *r, CURLcode cc, const char *errbuf,
		      bool *retry)
{
	long oserr = 0;

	*retry = false;
	s3_set_error("", *errbuf ? errbuf : curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		*retry = true;
		curl_easy_getinfo(r->curl, CURLINFO_OS_ERRNO, &oserr);
		if (oserr == EHOSTUNREACH || oserr == ENETUNREACH)
			return -EHOSTUNREACH;
		if (oserr == ETIMEDOUT)
			return -ETIMEDOUT;
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		*retry = true;
		return -ETIMEDOUT;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		*retry = true;
		return -EIO;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR:
		if (r->resp.oom)
			return -ENOMEM;
		if (r->too_big) {
			s3_set_error("", "response body too large");
			return -EPROTO;
		}
		if (r->overflow)
			s3_set_error("", "server sent more than the range");
		return -EIO;
	default:
		return -EIO;
	}
}

static void reset_response(struct s3_req *r)
{
	s3_buf_release(&r->resp);
	memset(&r->h, 0, sizeof(r->h));
	r->status = 0;
	r->win_got = 0;
	r->body_seen = 0;
	r->win_done = false;
	r->too_big = false;
	r->overflow = false;
	r->upload_pos = 0;
	r->read_err = 0;
}

static bool retryable_code(const char *code)
{
	return !strcmp(code, "InternalError") ||
	       !strcmp(code, "ServiceUnavailable") ||
	       !strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout");
}

/* A 200 whose body is an <Error> (CopyObject, UploadPartCopy and
 * CompleteMultipartUpload fail that way once the headers are out). */
static int error_in_200(struct s3_req *r, bool *retry)
{
	char code[128], msg[384];
	const char *p = r->resp.p;
	size_t len = r->resp.len;

	while (len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
		p++;
		len--;
	}
	if (!len ||
	    s3_parse_error(p, len, code, sizeof(code), msg, sizeof(msg)) ||
	    !*code)
		return 0; /* not an <Error>: the caller parses the body */
	s3_set_error(code, *msg ? msg : "error in a 200 response");
	*retry = retryable_code(code);
	if (*retry)
		return -EIO;
	if (!strcmp(code, "PreconditionFailed") ||
	    !strcmp(code, "ConditionalRequestConflict"))
		return -ESTALE;
	if (!strncmp(code, "NoSuch", 6))
		return -ENOENT;
	if (!strcmp(code, "AccessDenied"))
		return -EACCES;
	return -EIO;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	struct s3_client *c = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&c->cancelled) ? 1 : 0;
}

void s3_client_cancel(struct s3_client *c)
{
	atomic_store(&c->cancelled, true);
}

static int attempt(struct s3_client *c, struct s3_req *r, CURL *h,
		   const char *path, bool *retry)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hl = NULL;
	CURLcode cc;
	int ret;

	*retry = false;
	reset_response(r);
	curl_easy_reset(h);
	r->curl = h;
	ret = prepare(c, r, h, path, errbuf, &hl);
	if (ret) {
		curl_slist_free_all(hl);
		return ret;
	}
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	atomic_fetch_add(&c->attempts, 1);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	if (cc == CURLE_WRITE_ERROR && r->win_done)
		cc = CURLE_OK;
	if (cc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&c->cancelled)) {
		s3_set_error("", "cancelled: shutting down");
		return -ECANCELED;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK && r->read_err) {
		s3_set_error("", "reading the upload's source file failed");
		return -r->read_err;
	}
	if (cc != CURLE_OK)
		return curl_error(r, cc, errbuf, retry);
	if (r->status < 200 || r->status >= 300)
		return status_error(r, retry);
	if (r->error_in_200)
		return error_in_200(r, retry);
	return 0;
}

static int64_t backoff_ns(int n)
{
	uint64_t cap = 100ull << MIN(n, 6), rnd = 0;

	cap = MIN(cap, 5000ull) * 1000000ull;
	if (random_bytes(&rnd, sizeof(rnd)))
		rnd = (uint64_t)time_mono_ns() * 6364136223846793005ull;
	return (int64_t)(rnd % (cap + 1));
}

/* Run r with retries; 0 on a 2xx, else -errno (s3_error_* set). */
int s3_perform(struct s3_client *c, struct s3_req *r)
{
	int64_t deadline = time_mono_ns() + c->retry_total_ms * 1000000ll;
	char *path;
	bool retry;
	CURL *h;
	int ret, n;

	s3_set_error(NULL, NULL);
	for (size_t i = 0; i < r->nhdrs; i++)
		if (!header_ok(&r->hdrs[i]))
			return -EINVAL;
	path = request_path(c, r->key);
	if (!path)
		return -ENOMEM;
	h = handle_get(c);
	if (!h) {
		free(path);
		return -ENOMEM;
	}
	for (n = 0;; n++) {
		int64_t left, wait;
		struct timespec ts;

		if (atomic_load(&c->cancelled)) {
			ret = -ECANCELED;
			break;
		}
		ret = attempt(c, r, h, path, &retry);
		if (!retry || atomic_load(&c->cancelled))
			break;
		left = deadline - time_mono_ns();
		if (left < 1000000)
			break;
		wait = MIN(backoff_ns(n), left);
		log_debug("s3: %s %s: %s (%s), retry %d in %" PRId64 " ms",
			  r->method, r->key ? r->key : "(bucket)",
			  strerror(-ret), s3_error_code(), n + 1,
			  wait / 1000000);
		/* Sleep in short steps so a cancel is seen at once. */
		while (wait > 0 && !atomic_load(&c->cancelled)) {
			int64_t step = MIN(wait, 50000000);
			ts.tv_sec = 0;
			ts.tv_nsec = step;
			while (nanosleep(&ts, &ts) && errno == EINTR)
				;
			wait -= step;
		}
	}
	handle_put(c, h);
	free(path);
	if (ret)
		log_debug("s3: %s %s: %s %s %s", r->method,
			  r->key ? r->key : "(bucket)", strerror(-ret),
			  s3_error_code(), s3_error_message());
	return ret;
}
