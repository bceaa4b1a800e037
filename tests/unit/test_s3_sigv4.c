// SPDX-License-Identifier: MIT
/*
 * SigV4: AWS's published test-suite vectors, vectors generated with
 * botocore's S3 signer (sigv4_botocore_vectors.h), and, when PYTHON3 is set,
 * a fresh differential run against botocore on random S3-like requests.
 * Also the SigV4 URI encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3.h"
#include "s3/s3_i.h"

#include "sigv4_botocore_vectors.h"

#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define AK    "AKIDEXAMPLE"
#define SK    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE  "20150830T123600Z"
#define HOST  "example.amazonaws.com"

/* One case of aws-sig-v4-test-suite (service "service", us-east-1). */
struct suite_case {
	const char *name;
	const char *method;
	const char *path; /* as S3 sends it: encoded once, not normalised */
	const char *query;
	struct s3_header extra[4];
	size_t nextra;
	const char *payload;
	const char *signed_headers;
	const char *signature;
};

static const struct suite_case suite[] = {
	{"get-vanilla",
	 "GET",
	 "/",
	 "",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
	{"get-vanilla-query-order-key-case",
	 "GET",
	 "/",
	 "Param2=value2&Param1=value1",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	{"get-vanilla-query-order-value",
	 "GET",
	 "/",
	 "Param1=value2&Param1=value1",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
	{"get-vanilla-utf8-query",
	 "GET",
	 "/",
	 "\xe1\x88\xb4=bar",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
	{"get-vanilla-empty-query-key",
	 "GET",
	 "/",
	 "Param1=value1",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
	{"get-unreserved",
	 "GET",
	 "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	 "",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
	{"get-space (S3: unnormalised)",
	 "GET",
	 "/example%20space/",
	 "",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
	{"get-utf8",
	 "GET",
	 "/%E1%88%B4",
	 "",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
	{"get-slashes (S3: unnormalised)",
	 "GET",
	 "//example//",
	 "",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"},
	{"get-header-value-trim",
	 "GET",
	 "/",
	 "",
	 {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}},
	 2,
	 EMPTY,
	 "host;my-header1;my-header2;x-amz-date",
	 "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
	{"get-header-key-duplicate",
	 "GET",
	 "/",
	 "",
	 {{"My-Header1", "value2"},
	  {"My-Header1", "value2"},
	  {"My-Header1", "value1"}},
	 3,
	 EMPTY,
	 "host;my-header1;x-amz-date",
	 "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
	{"get-header-value-order",
	 "GET",
	 "/",
	 "",
	 {{"My-Header1", "value4"},
	  {"My-Header1", "value1"},
	  {"My-Header1", "value3"},
	  {"My-Header1", "value2"}},
	 4,
	 EMPTY,
	 "host;my-header1;x-amz-date",
	 "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
	{"post-vanilla",
	 "POST",
	 "/",
	 "",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	{"post-vanilla-query",
	 "POST",
	 "/",
	 "Param1=value1",
	 {{0}},
	 0,
	 EMPTY,
	 "host;x-amz-date",
	 "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
	{"post-x-www-form-urlencoded",
	 "POST",
	 "/",
	 "",
	 {{"Content-Type", "application/x-www-form-urlencoded"}},
	 1,
	 "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
	 "content-type;host;x-amz-date",
	 "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
};

static void test_aws_suite(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(suite) / sizeof(suite[0]); i++) {
		const struct suite_case *t = &suite[i];
		struct s3_header h[8];
		size_t n = 0;
		char out[512], expect[512], sig[65];
		struct s3_sigv4_request req = {
			.method = t->method,
			.path = t->path,
			.query = t->query,
			.headers = h,
			.payload_hash = t->payload,
			.region = "us-east-1",
			.service = "service",
			.amz_date = DATE,
			.access_key = AK,
			.secret_key = SK,
		};

		h[n++] = (struct s3_header){"Host", HOST};
		for (j = 0; j < t->nextra; j++)
			h[n++] = t->extra[j];
		h[n++] = (struct s3_header){"X-Amz-Date", DATE};
		req.nheaders = n;
		snprintf(expect, sizeof(expect),
			 "AWS4-HMAC-SHA256 Credential=" AK
			 "/20150830/us-east-1/"
			 "service/aws4_request, SignedHeaders=%s, Signature=%s",
			 t->signed_headers, t->signature);
		assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), sig), 0);
		if (strcmp(out, expect))
			fail_msg("%s:\n got %s\nwant %s", t->name, out, expect);
		assert_string_equal(sig, t->signature);
	}
}

/* The session-token variant of get-vanilla. */
static void test_aws_session_token(void **state)
{
	const char *tok = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553"
			  "b73ebf194267";
	struct s3_header h[] = {{"Host", HOST},
				{"X-Amz-Date", DATE},
				{"X-Amz-Security-Token", tok}};
	struct s3_sigv4_request req = {.method = "GET",
				       .path = "/",
				       .query = NULL,
				       .headers = h,
				       .nheaders = 3,
				       .payload_hash = EMPTY,
				       .region = "us-east-1",
				       .service = "service",
				       .amz_date = DATE,
				       .access_key = AK,
				       .secret_key = SK};
	char out[512], sig[65];

	(void)state;
	assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), sig), 0);
	assert_string_equal(sig, "07ec1639c89043aa0e3e2de82b96708f198cceab042d"
				 "4a97044c66dd9f74e7f8");
	assert_non_null(strstr(out, "SignedHeaders=host;x-amz-date;"
				    "x-amz-security-token, "));
}

static void test_sign_errors(void **state)
{
	struct s3_header h[] = {{"Host", HOST}, {"X-Amz-Date", DATE}};
	struct s3_sigv4_request req = {.method = "GET",
				       .path = "/",
				       .headers = h,
				       .nheaders = 2,
				       .payload_hash = EMPTY,
				       .region = "us-east-1",
				       .service = "s3",
				       .amz_date = DATE,
				       .access_key = AK,
				       .secret_key = SK};
	char out[512];

	(void)state;
	assert_int_equal(s3_sigv4_sign(&req, out, 20, NULL), -ENOSPC);
	req.amz_date = "2015-08-30";
	assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), NULL), -EINVAL);
	req.amz_date = DATE;
	req.secret_key = NULL;
	assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), NULL), -EINVAL);
	req.secret_key = SK;
	req.nheaders = 0;
	assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), NULL), -EINVAL);
	/* Empty path signs as "/"; a NULL query as "". */
	req.nheaders = 2;
	req.path = "";
	assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), NULL), 0);
}

/* Equivalent spellings of a query canonicalise the same way. */
static void test_query_canonical(void **state)
{
	static const char *const same[] = {
		"prefix=a%20b&list-type=2",
		"list-type=2&prefix=a%20b",
		"list-type=2&prefix=a b",
		"list-type=2&&prefix=a%20b&",
	};
	struct s3_header h[] = {{"Host", HOST}, {"X-Amz-Date", DATE}};
	struct s3_sigv4_request req = {.method = "GET",
				       .path = "/b",
				       .headers = h,
				       .nheaders = 2,
				       .payload_hash = EMPTY,
				       .region = "us-east-1",
				       .service = "s3",
				       .amz_date = DATE,
				       .access_key = AK,
				       .secret_key = SK};
	char first[65], sig[65], out[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		req.query = same[i];
		assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), sig), 0);
		if (i == 0)
			memcpy(first, sig, sizeof(first));
		else
			assert_string_equal(sig, first);
	}
	/* '+' is a literal plus, not a space. */
	req.query = "list-type=2&prefix=a+b";
	assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), sig), 0);
	assert_string_not_equal(sig, first);
}

static void test_botocore_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(botocore_vectors) / sizeof(botocore_vectors[0]);
	     i++) {
		const struct botocore_vector *v = &botocore_vectors[i];
		const char *date = NULL;
		char out[1024];
		size_t j;

		for (j = 0; j < v->nheaders; j++)
			if (!strcmp(v->headers[j].name, "X-Amz-Date"))
				date = v->headers[j].value;
		assert_non_null(date);
		struct s3_sigv4_request req = {.method = v->method,
					       .path = v->path,
					       .query = v->query,
					       .headers = v->headers,
					       .nheaders = v->nheaders,
					       .payload_hash = v->payload,
					       .region = v->region,
					       .service = v->service,
					       .amz_date = date,
					       .access_key = v->access_key,
					       .secret_key = v->secret_key};
		assert_int_equal(s3_sigv4_sign(&req, out, sizeof(out), NULL),
				 0);
		if (strcmp(out, v->authorization))
			fail_msg("%s:\n got %s\nwant %s", v->name, out,
				 v->authorization);
	}
}

static char *run(const char *cmd, size_t *len)
{
	struct s3_buf b;
	char chunk[4096];
	size_t n;
	FILE *p = popen(cmd, "r");

	if (!p)
		return NULL;
	s3_buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		s3_buf_add(&b, chunk, n);
	if (pclose(p) != 0) {
		s3_buf_release(&b);
		return NULL;
	}
	*len = b.len;
	return s3_buf_detach(&b);
}

static char *slurp(const char *path, size_t *len)
{
	struct s3_buf b;
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	s3_buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		s3_buf_add(&b, chunk, n);
	fclose(f);
	*len = b.len;
	return s3_buf_detach(&b);
}

/* With PYTHON3 set: the committed table is what botocore says today. */
static void test_botocore_live_table(void **state)
{
	const char *py = getenv("PYTHON3"), *src = getenv("TIDEFS_SRC");
	char cmd[4096], path[4096];
	char *live, *committed;
	size_t llen, clen;

	(void)state;
	if (!py || !src)
		skip();
	snprintf(cmd, sizeof(cmd), "'%s' '%s/tests/unit/gen_sigv4_vectors.py'",
		 py, src);
	snprintf(path, sizeof(path), "%s/tests/unit/sigv4_botocore_vectors.h",
		 src);
	live = run(cmd, &llen);
	if (!live)
		skip(); /* no botocore here */
	committed = slurp(path, &clen);
	assert_non_null(committed);
	assert_int_equal(llen, clen);
	assert_memory_equal(live, committed, clen);
	free(live);
	free(committed);
}

static char *field(char **p, char sep)
{
	char *s = *p, *e;

	if (!s)
		return NULL;
	e = strchr(s, sep);
	if (e) {
		*e = '\0';
		*p = e + 1;
	} else {
		*p = NULL;
	}
	return s;
}

/* With PYTHON3 set: random S3-like requests signed by both. */
static void test_botocore_live_random(void **state)
{
	const char *py = getenv("PYTHON3"), *src = getenv("TIDEFS_SRC");
	char cmd[4096];
	char *out, *line, *rest;
	size_t len;
	int count = 0;

	(void)state;
	if (!py || !src)
		skip();
	snprintf(cmd, sizeof(cmd),
		 "'%s' '%s/tests/unit/gen_sigv4_vectors.py' --tsv 300 %d", py,
		 src, 20240607);
	out = run(cmd, &len);
	if (!out)
		skip();
	rest = out;
	while ((line = field(&rest, '\n')) && *line) {
		char *f = line, *hp;
		char *method = field(&f, '\t'), *path = field(&f, '\t');
		char *query = field(&f, '\t'), *hdrs = field(&f, '\t');
		char *payload = field(&f, '\t'), *region = field(&f, '\t');
		char *service = field(&f, '\t'), *ak = field(&f, '\t');
		char *sk = field(&f, '\t'), *want = field(&f, '\t');
		struct s3_header h[16];
		size_t n = 0;
		const char *date = NULL;
		char got[2048];

		assert_non_null(want);
		hp = hdrs;
		while (hp && n < 16) {
			char *kv = field(&hp, '\x1f');
			char *k = field(&kv, '\x1e');
			h[n].name = k;
			h[n].value = kv;
			if (!strcmp(k, "X-Amz-Date"))
				date = kv;
			n++;
		}
		struct s3_sigv4_request req = {.method = method,
					       .path = path,
					       .query = query,
					       .headers = h,
					       .nheaders = n,
					       .payload_hash = payload,
					       .region = region,
					       .service = service,
					       .amz_date = date,
					       .access_key = ak,
					       .secret_key = sk};
		assert_int_equal(s3_sigv4_sign(&req, got, sizeof(got), NULL),
				 0);
		if (strcmp(got, want))
			fail_msg("%s %s?%s:\n got %s\nwant %s", method, path,
				 query, got, want);
		count++;
	}
	assert_int_equal(count, 300);
	free(out);
}

static void test_uri_encode(void **state)
{
	static const struct {
		const char *in;
		bool slash;
		const char *out;
	} t[] = {
		{"", true, ""},
		{"a/b c", true, "a/b%20c"},
		{"a/b c", false, "a%2Fb%20c"},
		{"-._~AZaz09", false, "-._~AZaz09"},
		{"+%?#&=", true, "%2B%25%3F%23%26%3D"},
		{"\xc3\xbc\xe2\x98\x83", true, "%C3%BC%E2%98%83"},
		{"\x01\x7f\xff", true, "%01%7F%FF"},
		{"a//b/./../", true, "a//b/./../"},
		{"*!'()", true, "%2A%21%27%28%29"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *s = s3_uri_encode(t[i].in, t[i].slash);
		assert_non_null(s);
		assert_string_equal(s, t[i].out);
		free(s);
	}
}

static void test_uri_decode(void **state)
{
	char a[] = "a%20b+c%2Fd%zz%4";
	char b[] = "a+b%2B";
	size_t n;

	(void)state;
	n = s3_uri_decode(a, strlen(a), false);
	assert_int_equal(n, strlen("a b+c/d%zz%4"));
	assert_string_equal(a, "a b+c/d%zz%4");
	n = s3_uri_decode(b, strlen(b), true);
	assert_string_equal(b, "a b+");
	assert_int_equal(n, 4);
}

static void test_sha256(void **state)
{
	char hex[65];

	(void)state;
	s3_sha256_hex("", 0, hex);
	assert_string_equal(hex, EMPTY);
	s3_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177"
				 "a9cb410ff61f20015ad");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aws_suite),
		cmocka_unit_test(test_aws_session_token),
		cmocka_unit_test(test_sign_errors),
		cmocka_unit_test(test_query_canonical),
		cmocka_unit_test(test_botocore_table),
		cmocka_unit_test(test_botocore_live_table),
		cmocka_unit_test(test_botocore_live_random),
		cmocka_unit_test(test_uri_encode),
		cmocka_unit_test(test_uri_decode),
		cmocka_unit_test(test_sha256),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
