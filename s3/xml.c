// SPDX-License-Identifier: MIT
/*
 * S3 XML responses (ListObjectsV2 pages, <Error> bodies, the results of
 * CreateMultipartUpload, CompleteMultipartUpload, CopyObject and
 * UploadPartCopy) parsed with expat.
 *
 * The input is untrusted: a DOCTYPE (and with it every entity declaration,
 * so no "billion laughs") stops the parser, and the input size, the nesting
 * depth, the text of one element and the number of objects are capped.
 * Anything malformed is -EPROTO, never a crash or a partial result.
 */
#include "s3/s3_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "common/common.h"

/* One parse: the element path, the text of the current leaf, and what the
 * caller wants done with them. */
struct xml_ctx {
	XML_Parser parser;
	int depth;
	const char *path[S3_MAX_XML_DEPTH]; /* element names, depth-indexed */
	struct s3_buf text;
	int err; /* first error; sticks */
	void (*on_start)(struct xml_ctx *x, const char *name);
	void (*on_end)(struct xml_ctx *x, const char *name, char *text,
		       size_t len);
	void *arg;
};

static void xml_fail(struct xml_ctx *x, int err)
{
	if (!x->err)
		x->err = err;
	XML_StopParser(x->parser, XML_FALSE);
}

/* Element names are interned for comparison only; expat's name pointers are
 * only valid during the callback, so path[] holds static strings. */
static const char *intern(const char *name)
{
	static const char *const known[] = {
		"ListBucketResult",
		"Contents",
		"Key",
		"Size",
		"ETag",
		"LastModified",
		"IsTruncated",
		"NextContinuationToken",
		"EncodingType",
		"Error",
		"Code",
		"Message",
		"InitiateMultipartUploadResult",
		"UploadId",
		"CompleteMultipartUploadResult",
		"CompleteMultipartUploadResponse",
		"CopyObjectResult",
		"CopyPartResult",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(name, known[i]))
			return known[i];
	return "";
}

static void XMLCALL on_start(void *ud, const XML_Char *name,
			     const XML_Char **attrs)
{
	struct xml_ctx *x = ud;

	(void)attrs;
	if (x->err)
		return;
	if (x->depth >= S3_MAX_XML_DEPTH) {
		xml_fail(x, -EPROTO);
		return;
	}
	x->path[x->depth++] = intern(name);
	x->text.len = 0;
	if (x->text.p)
		x->text.p[0] = '\0';
	if (x->on_start)
		x->on_start(x, x->path[x->depth - 1]);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xml_ctx *x = ud;
	const char *n;

	(void)name;
	if (x->err || x->depth <= 0)
		return;
	n = x->path[x->depth - 1];
	if (x->text.oom) {
		xml_fail(x, -ENOMEM);
		return;
	}
	x->on_end(x, n, x->text.p ? x->text.p : (char *)"", x->text.len);
	x->depth--;
	x->text.len = 0;
	if (x->text.p)
		x->text.p[0] = '\0';
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xml_ctx *x = ud;

	if (x->err || len <= 0)
		return;
	if (x->text.len + (size_t)len > S3_MAX_XML_TEXT) {
		xml_fail(x, -EPROTO);
		return;
	}
	s3_buf_add(&x->text, s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name,
			       const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	xml_fail(ud, -EPROTO);
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int pe,
				   const XML_Char *value, int vlen,
				   const XML_Char *base, const XML_Char *sysid,
				   const XML_Char *pubid,
				   const XML_Char *notation)
{
	(void)name;
	(void)pe;
	(void)value;
	(void)vlen;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	xml_fail(ud, -EPROTO);
}

static int xml_run(struct xml_ctx *x, const char *xml, size_t len,
		   size_t maxlen)
{
	enum XML_Status st;
	int ret;

	if (!xml || len > maxlen || len > (size_t)INT32_MAX)
		return -EPROTO;
	x->parser = XML_ParserCreate("UTF-8");
	if (!x->parser)
		return -ENOMEM;
	s3_buf_init(&x->text);
	XML_SetUserData(x->parser, x);
	XML_SetElementHandler(x->parser, on_start, on_end);
	XML_SetCharacterDataHandler(x->parser, on_text);
	XML_SetStartDoctypeDeclHandler(x->parser, on_doctype);
	XML_SetEntityDeclHandler(x->parser, on_entity_decl);
	XML_SetParamEntityParsing(x->parser, XML_PARAM_ENTITY_PARSING_NEVER);
	st = XML_Parse(x->parser, xml, (int)len, XML_TRUE);
	if (x->err)
		ret = x->err;
	else if (st != XML_STATUS_OK)
		ret = XML_GetErrorCode(x->parser) == XML_ERROR_NO_MEMORY
			      ? -ENOMEM
			      : -EPROTO;
	else
		ret = 0;
	XML_ParserFree(x->parser);
	x->parser = NULL;
	s3_buf_release(&x->text);
	return ret;
}

/* Is the element at depth d (0 = root) named n? */
static bool at(const struct xml_ctx *x, int d, const char *n)
{
	return x->depth > d && !strcmp(x->path[d], n);
}

/* ---- ListObjectsV2 ---- */

struct list_state {
	struct s3_list_page *page;
	size_t cap;
	bool in_object;
	bool have_key;
	bool url_encoded;
};

static void list_start(struct xml_ctx *x, const char *name)
{
	struct list_state *ls = x->arg;
	struct s3_list_page *p = ls->page;

	if (x->depth == 1 && strcmp(name, "ListBucketResult")) {
		xml_fail(x, -EPROTO);
		return;
	}
	if (x->depth != 2 || strcmp(name, "Contents"))
		return;
	if (p->nobjects >= S3_MAX_LIST_OBJECTS) {
		xml_fail(x, -EPROTO);
		return;
	}
	if (p->nobjects == ls->cap) {
		struct s3_object *o = array_grow(p->objects, &ls->cap,
						 sizeof(*p->objects), 64);
		if (!o) {
			xml_fail(x, -ENOMEM);
			return;
		}
		p->objects = o;
	}
	memset(&p->objects[p->nobjects], 0, sizeof(p->objects[0]));
	p->nobjects++;
	ls->in_object = true;
	ls->have_key = false;
}

static void list_object_field(struct xml_ctx *x, struct list_state *ls,
			      const char *name, char *text, size_t len)
{
	struct s3_object *o = &ls->page->objects[ls->page->nobjects - 1];

	if (!strcmp(name, "Key")) {
		if (ls->have_key || !len || memchr(text, '\0', len)) {
			xml_fail(x, -EPROTO);
			return;
		}
		o->key = strndup(text, len);
		if (!o->key)
			xml_fail(x, -ENOMEM);
		ls->have_key = true;
	} else if (!strcmp(name, "Size")) {
		if (parse_u64(text, &o->size))
			xml_fail(x, -EPROTO);
	} else if (!strcmp(name, "ETag")) {
		if (len >= sizeof(o->etag)) {
			xml_fail(x, -EPROTO);
			return;
		}
		memcpy(o->etag, text, len + 1);
	} else if (!strcmp(name, "LastModified")) {
		if (s3_parse_iso8601(text, &o->mtime_ns))
			xml_fail(x, -EPROTO);
	}
}

static void list_end(struct xml_ctx *x, const char *name, char *text,
		     size_t len)
{
	struct list_state *ls = x->arg;
	struct s3_list_page *p = ls->page;

	if (!at(x, 0, "ListBucketResult"))
		return;
	if (x->depth == 3 && ls->in_object && at(x, 1, "Contents")) {
		list_object_field(x, ls, name, text, len);
	} else if (x->depth == 2 && !strcmp(name, "Contents")) {
		ls->in_object = false;
		if (!ls->have_key)
			xml_fail(x, -EPROTO);
	} else if (x->depth == 2 && !strcmp(name, "IsTruncated")) {
		if (!strcmp(text, "true"))
			p->truncated = true;
		else if (!strcmp(text, "false"))
			p->truncated = false;
		else
			xml_fail(x, -EPROTO);
	} else if (x->depth == 2 && !strcmp(name, "NextContinuationToken")) {
		free(p->next_token);
		p->next_token = len ? strndup(text, len) : NULL;
		if (len && !p->next_token)
			xml_fail(x, -ENOMEM);
	} else if (x->depth == 2 && !strcmp(name, "EncodingType")) {
		ls->url_encoded = !strcmp(text, "url");
	}
}

void s3_list_page_release(struct s3_list_page *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nobjects; i++)
		s3_object_release(&p->objects[i]);
	free(p->objects);
	free(p->next_token);
	memset(p, 0, sizeof(*p));
}

int s3_parse_list(const char *xml, size_t len, struct s3_list_page *out)
{
	struct list_state ls = {.page = out};
	struct xml_ctx x = {
		.on_start = list_start, .on_end = list_end, .arg = &ls};
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = xml_run(&x, xml, len, S3_MAX_XML_BYTES);
	/* A page that ends inside an object has one without a key. */
	if (!ret && ls.in_object)
		ret = -EPROTO;
	for (i = 0; !ret && ls.url_encoded && i < out->nobjects; i++) {
		struct s3_object *o = &out->objects[i];
		size_t n = s3_uri_decode(o->key, strlen(o->key), true);
		if (!n || memchr(o->key, '\0', n))
			ret = -EPROTO;
	}
	if (ret)
		s3_list_page_release(out);
	return ret;
}

/* ---- <Error> ---- */

struct err_state {
	char *code, *msg;
	size_t codelen, msglen;
};

static void err_start(struct xml_ctx *x, const char *name)
{
	if (x->depth == 1 && strcmp(name, "Error"))
		xml_fail(x, -EPROTO);
}

static void copy_text(char *dst, size_t dstlen, const char *src)
{
	size_t n;

	if (!dst || !dstlen)
		return;
	n = strnlen(src, dstlen - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void err_end(struct xml_ctx *x, const char *name, char *text, size_t len)
{
	struct err_state *es = x->arg;

	(void)len;
	if (x->depth != 2)
		return;
	if (!strcmp(name, "Code"))
		copy_text(es->code, es->codelen, text);
	else if (!strcmp(name, "Message"))
		copy_text(es->msg, es->msglen, text);
}

int s3_parse_error(const char *xml, size_t len, char *code, size_t codelen,
		   char *msg, size_t msglen)
{
	struct err_state es = {code, msg, codelen, msglen};
	struct xml_ctx x = {
		.on_start = err_start, .on_end = err_end, .arg = &es};
	int ret;

	copy_text(code, codelen, "");
	copy_text(msg, msglen, "");
	ret = xml_run(&x, xml, len, S3_MAX_ERROR_BYTES);
	if (ret) {
		copy_text(code, codelen, "");
		copy_text(msg, msglen, "");
		return ret == -ENOMEM ? -ENOMEM : -EPROTO;
	}
	return 0;
}

/* ---- one-value results: UploadId, ETag ---- */

struct result_state {
	const char *root;  /* required root element */
	const char *root2; /* or this one (NULL: none) */
	const char *field; /* the child of the root we want */
	char *value;	   /* malloc'ed */
	size_t maxlen;
};

static void result_start(struct xml_ctx *x, const char *name)
{
	struct result_state *rs = x->arg;

	if (x->depth == 1 && strcmp(name, rs->root) &&
	    (!rs->root2 || strcmp(name, rs->root2)))
		xml_fail(x, -EPROTO);
}

static void result_end(struct xml_ctx *x, const char *name, char *text,
		       size_t len)
{
	struct result_state *rs = x->arg;

	if (x->depth != 2 || strcmp(name, rs->field))
		return;
	if (rs->value || !len || len > rs->maxlen || memchr(text, '\0', len)) {
		xml_fail(x, -EPROTO); /* twice, empty, too long */
		return;
	}
	rs->value = strndup(text, len);
	if (!rs->value)
		xml_fail(x, -ENOMEM);
}

static int parse_result(const char *xml, size_t len, struct result_state *rs)
{
	struct xml_ctx x = {
		.on_start = result_start, .on_end = result_end, .arg = rs};
	int ret;

	while (xml && len &&
	       (*xml == ' ' || *xml == '\t' || *xml == '\r' || *xml == '\n')) {
		xml++;
		len--;
	}
	ret = xml_run(&x, xml, len, S3_MAX_ERROR_BYTES);
	if (!ret && !rs->value)
		ret = -EPROTO;
	if (ret) {
		free(rs->value);
		rs->value = NULL;
	}
	return ret == -ENOMEM ? -ENOMEM : ret ? -EPROTO : 0;
}

int s3_parse_initiate(const char *xml, size_t len, char **upload_id)
{
	struct result_state rs = {.root = "InitiateMultipartUploadResult",
				  .field = "UploadId",
				  .maxlen = 1024};
	int ret = parse_result(xml, len, &rs);

	*upload_id = rs.value;
	return ret;
}

static int parse_etag(const char *xml, size_t len, const char *root,
		      const char *root2, char etag[80])
{
	struct result_state rs = {
		.root = root, .root2 = root2, .field = "ETag", .maxlen = 79};
	int ret = parse_result(xml, len, &rs);

	etag[0] = '\0';
	if (!ret) {
		memcpy(etag, rs.value, strlen(rs.value) + 1);
		free(rs.value);
	}
	return ret;
}

int s3_parse_complete(const char *xml, size_t len, char etag[80])
{
	/* moto (5.2.1) names the root CompleteMultipartUploadResponse. */
	return parse_etag(xml, len, "CompleteMultipartUploadResult",
			  "CompleteMultipartUploadResponse", etag);
}

int s3_parse_copy_result(const char *xml, size_t len, char etag[80])
{
	return parse_etag(xml, len, "CopyObjectResult", "CopyPartResult", etag);
}

/* ---- scalar values: POSIX metadata, timestamps ---- */

int s3_parse_mode(const char *s, uint32_t *mode)
{
	static const uint32_t types[] = {0,	  0010000, 0020000, 0040000,
					 0060000, 0100000, 0120000, 0140000};
	uint32_t v = 0;
	size_t i;

	if (!s || !*s || strlen(s) > 12)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return -EINVAL;
		v = v * 8 + (uint32_t)(*s - '0');
		if (v > 0177777)
			return -EINVAL;
	}
	for (i = 0; i < ARRAY_SIZE(types); i++)
		if ((v & 0170000) == types[i])
			break;
	if (i == ARRAY_SIZE(types))
		return -EINVAL;
	*mode = v;
	return 0;
}

int s3_parse_time(const char *s, int64_t *ns)
{
	char digits[24];
	size_t n;
	bool neg = false, is_ns = false;
	uint64_t v;

	if (!s)
		return -EINVAL;
	if (*s == '-') {
		neg = true;
		s++;
	}
	n = strlen(s);
	if (n > 2 && !strcmp(s + n - 2, "ns")) {
		is_ns = true;
		n -= 2;
	}
	if (!n || n >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (parse_u64(digits, &v) || v > INT64_MAX)
		return -EINVAL;
	if (!is_ns) {
		if (v > (uint64_t)INT64_MAX / 1000000)
			return -EINVAL;
		v *= 1000000;
	}
	*ns = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits_at(const char *s, size_t n, unsigned *out)
{
	size_t i;

	*out = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*out = *out * 10 + (unsigned)(s[i] - '0');
	}
	return true;
}

int s3_parse_iso8601(const char *s, int64_t *ns)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, sec, frac = 0, i;
	const char *p;

	if (!s || strlen(s) < 19 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' ||
	    !digits_at(s, 4, &y) || !digits_at(s + 5, 2, &mo) ||
	    !digits_at(s + 8, 2, &d) || !digits_at(s + 11, 2, &h) ||
	    !digits_at(s + 14, 2, &mi) || !digits_at(s + 17, 2, &sec))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
	    mi > 59 || sec > 60)
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		p++;
		for (i = 0; *p >= '0' && *p <= '9'; p++, i++)
			if (i < 9)
				frac = frac * 10 + (unsigned)(*p - '0');
		if (!i)
			return -EINVAL;
		for (; i < 9; i++)
			frac *= 10;
	}
	if (!strcmp(p, "Z") || !strcmp(p, "z") || !strcmp(p, "") ||
	    !strcmp(p, "+00:00"))
		;
	else
		return -EINVAL;
	*ns = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) *
		       1000000000ll +
	       frac);
	return 0;
}
