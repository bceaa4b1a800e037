// SPDX-License-Identifier: MIT
/*
 * AWS Signature Version 4, as small steps: canonical query, canonical
 * headers, canonical request, string to sign, signing key, signature. The
 * path is taken as given (S3 rules: already URI-encoded once, never
 * normalised or double-encoded). Also the byte buffer and URI helpers the
 * rest of s3/ builds requests with.
 */
#include "s3/s3_i.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "common/common.h"

/* ---- s3_buf ---- */

void s3_buf_init(struct s3_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void s3_buf_release(struct s3_buf *b)
{
	free(b->p);
	s3_buf_init(b);
}

static bool buf_grow(struct s3_buf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (b->oom)
		return false;
	if (extra > SIZE_MAX / 2 - b->len) {
		b->oom = true;
		return false;
	}
	want = b->len + extra + 1;
	if (want <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void s3_buf_add(struct s3_buf *b, const void *data, size_t len)
{
	if (!buf_grow(b, len))
		return;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void s3_buf_adds(struct s3_buf *b, const char *s)
{
	s3_buf_add(b, s, strlen(s));
}

void s3_buf_addc(struct s3_buf *b, char c)
{
	s3_buf_add(b, &c, 1);
}

void s3_buf_addf(struct s3_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!buf_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *s3_buf_detach(struct s3_buf *b)
{
	char *p;

	if (b->oom) {
		s3_buf_release(b);
		return NULL;
	}
	if (!b->p)
		s3_buf_add(b, "", 0);
	p = b->p;
	if (!p)
		return NULL;
	s3_buf_init(b);
	return p;
}

/* ---- URI encoding ---- */

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

void s3_buf_add_uri(struct s3_buf *b, const char *s, size_t len,
		    bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			s3_buf_addc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			s3_buf_add(b, e, 3);
		}
	}
}

char *s3_uri_encode(const char *s, bool keep_slash)
{
	struct s3_buf b;

	s3_buf_init(&b);
	if (s)
		s3_buf_add_uri(&b, s, strlen(s), keep_slash);
	return s3_buf_detach(&b);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t s3_uri_decode(char *s, size_t len, bool plus_space)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			s[o++] = (char)(hexval(s[i + 1]) * 16 +
					hexval(s[i + 2]));
			i += 2;
		} else if (plus_space && s[i] == '+') {
			s[o++] = ' ';
		} else {
			s[o++] = s[i];
		}
	}
	if (o < len)
		s[o] = '\0';
	return o;
}

/* ---- hashing ---- */

void s3_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data ? data : "", len, md);
	hex_encode(md, sizeof(md), hex);
}

static int hmac(const void *key, size_t keylen, const char *msg,
		unsigned char out[32])
{
	unsigned int n = 32;

	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
		  strlen(msg), out, &n) ||
	    n != 32)
		return -ENOMEM;
	return 0;
}

/* ---- canonicalisation ---- */

struct qparam {
	char *name;  /* encoded */
	char *value; /* encoded */
};

static int cmp_qparam(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : strcmp(x->value, y->value);
}

/* Decode then re-encode one query component, so "a%20b", "a b" and
 * "a%2fb" all sign the way AWS expects. */
static char *requery(const char *s, size_t len)
{
	struct s3_buf b;
	char *tmp = strndup(s, len);
	size_t n;

	if (!tmp)
		return NULL;
	n = s3_uri_decode(tmp, len, false);
	s3_buf_init(&b);
	s3_buf_add_uri(&b, tmp, n, false);
	free(tmp);
	return s3_buf_detach(&b);
}

static int canonical_query(const char *query, struct s3_buf *out)
{
	struct qparam *ps = NULL;
	size_t n = 0, i, cap = 0;
	const char *p = query;
	int ret = 0;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t nlen = eq ? (size_t)(eq - p) : plen;

		if (plen) {
			if (n == cap) {
				struct qparam *np =
					array_grow(ps, &cap, sizeof(*ps), 8);
				if (!np) {
					ret = -ENOMEM;
					goto out;
				}
				ps = np;
			}
			ps[n].name = requery(p, nlen);
			ps[n].value = eq ? requery(eq + 1, plen - nlen - 1)
					 : strdup("");
			n++;
			if (!ps[n - 1].name || !ps[n - 1].value) {
				ret = -ENOMEM;
				goto out;
			}
		}
		p = amp ? amp + 1 : NULL;
	}
	if (n)
		qsort(ps, n, sizeof(*ps), cmp_qparam);
	for (i = 0; i < n; i++) {
		if (i)
			s3_buf_addc(out, '&');
		s3_buf_adds(out, ps[i].name);
		s3_buf_addc(out, '=');
		s3_buf_adds(out, ps[i].value);
	}
out:
	for (i = 0; i < n; i++) {
		free(ps[i].name);
		free(ps[i].value);
	}
	free(ps);
	return ret;
}

struct chdr {
	char *name;  /* lower-cased */
	char *value; /* trimmed, spaces folded */
	size_t order;
};

static int cmp_chdr(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	if (r)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

static char *fold_value(const char *v)
{
	struct s3_buf b;
	bool space = false;

	s3_buf_init(&b);
	while (*v && isspace((unsigned char)*v))
		v++;
	for (; *v; v++) {
		if (isspace((unsigned char)*v)) {
			space = true;
			continue;
		}
		if (space)
			s3_buf_addc(&b, ' ');
		space = false;
		s3_buf_addc(&b, *v);
	}
	return s3_buf_detach(&b);
}

/* Appends "name:value\n"... to canon and "a;b;c" to signed_hdrs. */
static int canonical_headers(const struct s3_header *h, size_t n,
			     struct s3_buf *canon, struct s3_buf *signed_hdrs)
{
	struct chdr *hs;
	size_t i, j;
	int ret = 0;

	if (!n)
		return -EINVAL;
	hs = calloc(n, sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (!h[i].name || !h[i].value || !*h[i].name) {
			ret = -EINVAL;
			goto out;
		}
		hs[i].name = strdup(h[i].name);
		hs[i].value = fold_value(h[i].value);
		hs[i].order = i;
		if (!hs[i].name || !hs[i].value) {
			ret = -ENOMEM;
			goto out;
		}
		for (j = 0; hs[i].name[j]; j++)
			hs[i].name[j] =
				(char)tolower((unsigned char)hs[i].name[j]);
	}
	qsort(hs, n, sizeof(*hs), cmp_chdr);
	for (i = 0; i < n; i++) {
		bool same = i && !strcmp(hs[i].name, hs[i - 1].name);
		if (same) {
			s3_buf_addc(canon, ',');
		} else {
			if (i) {
				s3_buf_addc(canon, '\n');
				s3_buf_addc(signed_hdrs, ';');
			}
			s3_buf_adds(canon, hs[i].name);
			s3_buf_addc(canon, ':');
			s3_buf_adds(signed_hdrs, hs[i].name);
		}
		s3_buf_adds(canon, hs[i].value);
	}
	s3_buf_addc(canon, '\n');
out:
	for (i = 0; i < n; i++) {
		free(hs[i].name);
		free(hs[i].value);
	}
	free(hs);
	return ret;
}

static bool valid_amz_date(const char *d)
{
	size_t i;

	if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return false;
	return true;
}

static int signing_key(const char *secret, const char *date8,
		       const char *region, const char *service,
		       unsigned char key[32])
{
	struct s3_buf k;
	int ret;

	s3_buf_init(&k);
	s3_buf_adds(&k, "AWS4");
	s3_buf_adds(&k, secret);
	if (k.oom)
		return -ENOMEM;
	ret = hmac(k.p, k.len, date8, key);
	if (!ret)
		ret = hmac(key, 32, region, key);
	if (!ret)
		ret = hmac(key, 32, service, key);
	if (!ret)
		ret = hmac(key, 32, "aws4_request", key);
	/* The secret-derived buffer is wiped before it is freed. */
	OPENSSL_cleanse(k.p, k.len);
	s3_buf_release(&k);
	return ret;
}

int s3_sigv4_sign(const struct s3_sigv4_request *req, char *out, size_t outlen,
		  char sig_out[65])
{
	struct s3_buf creq, shdrs, sts;
	unsigned char key[32], sig[32];
	char creq_hash[65], sighex[65], date8[9];
	int ret, n;

	if (!req || !out || !req->method || !req->path || !req->headers ||
	    !req->payload_hash || !req->region || !req->service ||
	    !req->amz_date || !req->access_key || !req->secret_key ||
	    !valid_amz_date(req->amz_date))
		return -EINVAL;
	memcpy(date8, req->amz_date, 8);
	date8[8] = '\0';

	s3_buf_init(&creq);
	s3_buf_init(&shdrs);
	s3_buf_init(&sts);
	s3_buf_adds(&creq, req->method);
	s3_buf_addc(&creq, '\n');
	s3_buf_adds(&creq, *req->path ? req->path : "/");
	s3_buf_addc(&creq, '\n');
	ret = canonical_query(req->query, &creq);
	if (ret)
		goto out;
	s3_buf_addc(&creq, '\n');
	ret = canonical_headers(req->headers, req->nheaders, &creq, &shdrs);
	if (ret)
		goto out;
	s3_buf_addc(&creq, '\n');
	s3_buf_adds(&creq, shdrs.p ? shdrs.p : "");
	s3_buf_addc(&creq, '\n');
	s3_buf_adds(&creq, req->payload_hash);
	if (creq.oom || shdrs.oom) {
		ret = -ENOMEM;
		goto out;
	}
	s3_sha256_hex(creq.p, creq.len, creq_hash);

	s3_buf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
		    req->amz_date, date8, req->region, req->service, creq_hash);
	if (sts.oom) {
		ret = -ENOMEM;
		goto out;
	}
	ret = signing_key(req->secret_key, date8, req->region, req->service,
			  key);
	if (!ret)
		ret = hmac(key, sizeof(key), sts.p, sig);
	OPENSSL_cleanse(key, sizeof(key));
	if (ret)
		goto out;
	hex_encode(sig, sizeof(sig), sighex);
	if (sig_out)
		memcpy(sig_out, sighex, 65);
	n = snprintf(out, outlen,
		     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
		     "SignedHeaders=%s, Signature=%s",
		     req->access_key, date8, req->region, req->service, shdrs.p,
		     sighex);
	if (n < 0 || (size_t)n >= outlen)
		ret = -ENOSPC;
out:
	s3_buf_release(&creq);
	s3_buf_release(&shdrs);
	s3_buf_release(&sts);
	return ret;
}
