// SPDX-License-Identifier: MIT
/*
 * S3 XML responses (ListObjectsV2, <Error>), hostile XML, and the scalar
 * parsers: POSIX metadata values and ISO 8601 timestamps.
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

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static int parse(const char *xml, struct s3_list_page *p)
{
	return s3_parse_list(xml, strlen(xml), p);
}

static void test_list_page(void **state)
{
	const char *xml =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<ListBucketResult " NS ">"
		"<Name>bucket</Name><Prefix>data/</Prefix><KeyCount>2</"
		"KeyCount>"
		"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
		"<Contents><Key>data/a.txt</Key>"
		"<LastModified>2024-01-02T03:04:05.000Z</LastModified>"
		"<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>"
		"<Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents>\n  <Key>data/b &amp; c &lt;d&gt;.bin</Key>\n"
		"  <LastModified>2024-02-29T23:59:59.123Z</LastModified>\n"
		"  <ETag>\"abc-2\"</ETag>\n  "
		"<Size>18446744073709551615</Size>\n"
		"  <Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>\n"
		"</Contents></ListBucketResult>";
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse(xml, &p), 0);
	assert_int_equal(p.nobjects, 2);
	assert_false(p.truncated);
	assert_null(p.next_token);
	assert_string_equal(p.objects[0].key, "data/a.txt");
	assert_string_equal(p.objects[0].etag,
			    "\"d41d8cd98f00b204e9800998ecf8427e\"");
	assert_int_equal(p.objects[0].size, 0);
	assert_int_equal(p.objects[0].mtime_ns, 1704164645000000000ll);
	assert_string_equal(p.objects[1].key, "data/b & c <d>.bin");
	assert_true(p.objects[1].size == UINT64_MAX);
	assert_string_equal(p.objects[1].etag, "\"abc-2\"");
	assert_int_equal(p.objects[1].mtime_ns, 1709251199123000000ll);
	assert_int_equal(p.objects[1].have, 0);
	s3_list_page_release(&p);
}

static void test_list_truncated(void **state)
{
	const char *xml =
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"<Contents><Key>k1</Key><Size>5</Size></Contents>"
		"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy"
		"4vbOwM=</NextContinuationToken>"
		"<ContinuationToken>old</ContinuationToken></ListBucketResult>";
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse(xml, &p), 0);
	assert_true(p.truncated);
	assert_string_equal(p.next_token,
			    "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	assert_int_equal(p.nobjects, 1);
	assert_string_equal(p.objects[0].etag, "");
	s3_list_page_release(&p);
}

static void test_list_empty(void **state)
{
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse("<ListBucketResult " NS "><Name>b</Name>"
			       "<KeyCount>0</KeyCount><IsTruncated>false"
			       "</IsTruncated></ListBucketResult>",
			       &p),
			 0);
	assert_int_equal(p.nobjects, 0);
	assert_null(p.objects);
	s3_list_page_release(&p);
	assert_int_equal(parse("<ListBucketResult/>", &p), 0);
	s3_list_page_release(&p);
}

static void test_list_url_encoded(void **state)
{
	const char *xml = "<ListBucketResult><EncodingType>url</EncodingType>"
			  "<Contents><Key>a+b%2Bc%20d%E2%98%83/%25</Key>"
			  "<Size>1</Size></Contents>"
			  "<Contents><Key>ctl%01char</Key></Contents>"
			  "</ListBucketResult>";
	const char *nul = "<ListBucketResult><EncodingType>url</EncodingType>"
			  "<Contents><Key>a%00b</Key></Contents>"
			  "</ListBucketResult>";
	struct s3_list_page p;

	(void)state;
	assert_int_equal(parse(xml, &p), 0);
	assert_string_equal(p.objects[0].key, "a b+c d\xe2\x98\x83/%");
	assert_string_equal(p.objects[1].key, "ctl\x01"
					      "char");
	s3_list_page_release(&p);
	assert_int_equal(parse(nul, &p), -EPROTO);
}

static void test_list_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"not xml",
		"<ListBucketResult>",
		"<ListBucketResult></ListBucketResul>",
		"<Error><Code>x</Code></Error>",
		"<ListBucketResult><Contents><Size>1</Size></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size>"
		"</Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>1x</Size>"
		"</Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Key>b</Key>"
		"</Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key></Key></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</"
		"Key><LastModified>yesterday"
		"</LastModified></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>maybe</IsTruncated>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><ETag>"
		"01234567890123456789012345678901234567890123456789012345678901"
		"234567890123456789</ETag></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a&bogus;</Key></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>\xff\xfe</Key></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult></ListBucketResult><ListBucketResult/>",
	};
	struct s3_list_page p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(bad[i], &p);
		if (ret != -EPROTO)
			fail_msg("case %zu: %d", i, ret);
		assert_null(p.objects);
		assert_int_equal(p.nobjects, 0);
	}
	assert_int_equal(s3_parse_list(NULL, 0, &p), -EPROTO);
	/* An embedded NUL byte is not XML. */
	assert_int_equal(
		s3_parse_list("<ListBucketResult>\0</ListBucketResult>", 37,
			      &p),
		-EPROTO);
}

static void test_hostile(void **state)
{
	const char *laughs =
		"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol3 "
		"\"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 "
		"\"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 "
		"\"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 "
		"\"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 "
		"\"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 "
		"\"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 "
		"\"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n<ListBucketResult><Contents><Key>&lol9;</Key></Contents>"
		"</ListBucketResult>";
	const char *ext = "<!DOCTYPE x SYSTEM \"file:///etc/passwd\">"
			  "<ListBucketResult/>";
	const char *plain_doctype = "<!DOCTYPE ListBucketResult>"
				    "<ListBucketResult/>";
	char code[64], msg[64];
	struct s3_list_page p;
	char *deep, *big;
	size_t i, n;

	(void)state;
	assert_int_equal(parse(laughs, &p), -EPROTO);
	assert_int_equal(parse(ext, &p), -EPROTO);
	assert_int_equal(parse(plain_doctype, &p), -EPROTO);
	assert_int_equal(s3_parse_error(laughs, strlen(laughs), code,
					sizeof(code), msg, sizeof(msg)),
			 -EPROTO);
	assert_string_equal(code, "");

	/* Deep nesting. */
	n = 100000;
	deep = malloc(n * 3 + 64);
	assert_non_null(deep);
	strcpy(deep, "<ListBucketResult>");
	for (i = 0; i < n; i++)
		memcpy(deep + 18 + 3 * i, "<a>", 4);
	assert_int_equal(parse(deep, &p), -EPROTO);
	free(deep);

	/* One huge text node. */
	n = 1 << 20;
	big = malloc(n + 128);
	assert_non_null(big);
	strcpy(big, "<ListBucketResult><Contents><Key>");
	memset(big + strlen(big), 'k', n);
	strcpy(big + 33 + n, "</Key></Contents></ListBucketResult>");
	assert_int_equal(parse(big, &p), -EPROTO);
	free(big);

	/* A page over the size cap is refused before parsing. */
	assert_int_equal(
		s3_parse_list("<a/>", (size_t)S3_MAX_XML_BYTES + 1, &p),
		-EPROTO);
}

static void test_error_body(void **state)
{
	const char *xml =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
		"<Code>NoSuchBucket</Code><Message>The specified bucket does "
		"not exist &amp; never did</Message><BucketName>b</BucketName>"
		"<RequestId>4442587FB7D0A2F9</RequestId></Error>";
	char code[64], msg[16];

	(void)state;
	assert_int_equal(s3_parse_error(xml, strlen(xml), code, sizeof(code),
					msg, sizeof(msg)),
			 0);
	assert_string_equal(code, "NoSuchBucket");
	assert_string_equal(msg, "The specified b"); /* truncated, safe */
	assert_int_equal(s3_parse_error("<Error/>", 8, code, sizeof(code), msg,
					sizeof(msg)),
			 0);
	assert_string_equal(code, "");
	assert_int_equal(s3_parse_error("<ListBucketResult/>", 19, code,
					sizeof(code), msg, sizeof(msg)),
			 -EPROTO);
	assert_int_equal(s3_parse_error("<Error><Code>x", 14, code,
					sizeof(code), msg, sizeof(msg)),
			 -EPROTO);
	assert_int_equal(
		s3_parse_error("", 0, code, sizeof(code), msg, sizeof(msg)),
		-EPROTO);
	/* The code nested deeper is not the error's code. */
	assert_int_equal(s3_parse_error("<Error><X><Code>no</Code></X></Error>",
					37, code, sizeof(code), msg,
					sizeof(msg)),
			 0);
	assert_string_equal(code, "");
}

static void test_parse_mode(void **state)
{
	static const struct {
		const char *s;
		int ret;
		uint32_t mode;
	} t[] = {
		{"0100644", 0, 0100644},
		{"040755", 0, 040755},
		{"0120777", 0, 0120777},
		{"100600", 0, 0100600},
		{"0644", 0, 0644},
		{"0", 0, 0},
		{"0104755", 0, 0104755},
		{"010644", 0, 010644},
		{"", -EINVAL, 0},
		{"0100648", -EINVAL, 0},
		{"0o644", -EINVAL, 0},
		{"-0644", -EINVAL, 0},
		{" 0644", -EINVAL, 0},
		{"0644 ", -EINVAL, 0},
		{"0200000", -EINVAL, 0},
		{"0170644", -EINVAL, 0},
		{"0x1a4", -EINVAL, 0},
		{"00000000000000000000644", -EINVAL, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint32_t m = 0xdead;
		int ret = s3_parse_mode(t[i].s, &m);
		if (ret != t[i].ret)
			fail_msg("\"%s\": %d", t[i].s, ret);
		if (!ret)
			assert_int_equal(m, t[i].mode);
		else
			assert_int_equal(m, 0xdead);
	}
	assert_int_equal(s3_parse_mode(NULL, NULL), -EINVAL);
}

static void test_parse_time(void **state)
{
	static const struct {
		const char *s;
		int ret;
		int64_t ns;
	} t[] = {
		{"1600000000000000000ns", 0, 1600000000000000000ll},
		{"1600000000123", 0, 1600000000123000000ll},
		{"0ns", 0, 0},
		{"0", 0, 0},
		{"-1000", 0, -1000000000ll},
		{"9223372036854775807ns", 0, INT64_MAX},
		{"9223372036854775808ns", -EINVAL, 0},
		{"9223372036855", -EINVAL, 0}, /* ms overflow in ns */
		{"ns", -EINVAL, 0},
		{"", -EINVAL, 0},
		{"12.5", -EINVAL, 0},
		{"12 ns", -EINVAL, 0},
		{"12NS", -EINVAL, 0},
		{"1e9", -EINVAL, 0},
		{"+5", -EINVAL, 0},
		{"--5", -EINVAL, 0},
		{"99999999999999999999999999ns", -EINVAL, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int64_t v = 42;
		int ret = s3_parse_time(t[i].s, &v);
		if (ret != t[i].ret)
			fail_msg("\"%s\": %d", t[i].s, ret);
		assert_true(ret ? v == 42 : v == t[i].ns);
	}
}

static void test_parse_iso8601(void **state)
{
	static const struct {
		const char *s;
		int ret;
		int64_t ns;
	} t[] = {
		{"1970-01-01T00:00:00.000Z", 0, 0},
		{"2024-01-02T03:04:05.000Z", 0, 1704164645000000000ll},
		{"2024-01-02T03:04:05Z", 0, 1704164645000000000ll},
		{"2024-01-02T03:04:05.5Z", 0, 1704164645500000000ll},
		{"2024-01-02T03:04:05.123456789Z", 0, 1704164645123456789ll},
		{"2024-01-02T03:04:05.000+00:00", 0, 1704164645000000000ll},
		{"1969-12-31T23:59:59.000Z", 0, -1000000000ll},
		{"2000-02-29T00:00:00Z", 0, 951782400000000000ll},
		{"2024-13-02T03:04:05.000Z", -EINVAL, 0},
		{"2024-01-32T03:04:05.000Z", -EINVAL, 0},
		{"2024-01-02 03:04:05", -EINVAL, 0},
		{"2024-01-02T03:04:05.Z", -EINVAL, 0},
		{"2024-01-02T03:04:05.000+01:00", -EINVAL, 0},
		{"2024-01-02T24:04:05Z", -EINVAL, 0},
		{"Tue, 02 Jan 2024 03:04:05 GMT", -EINVAL, 0},
		{"", -EINVAL, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int64_t v = 42;
		int ret = s3_parse_iso8601(t[i].s, &v);
		if (ret != t[i].ret)
			fail_msg("\"%s\": %d", t[i].s, ret);
		if (!ret && v != t[i].ns)
			fail_msg("\"%s\": %lld", t[i].s, (long long)v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_page),
		cmocka_unit_test(test_list_truncated),
		cmocka_unit_test(test_list_empty),
		cmocka_unit_test(test_list_url_encoded),
		cmocka_unit_test(test_list_malformed),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test(test_parse_mode),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_parse_iso8601),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
