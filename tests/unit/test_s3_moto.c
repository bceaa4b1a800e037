// SPDX-License-Identifier: MIT
/*
 * The S3 client against a real S3 implementation: moto_server on loopback
 * (started by support.c; the test fails when it cannot start). Bucket
 * creation goes through boto3; everything else through s3.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "s3/s3.h"
#include "s3/s3_i.h"
#include "support.h"

static struct moto moto;

static struct s3_client *client(const char *bucket, int page)
{
	struct s3_config cfg = {
		.endpoint = moto.endpoint,
		.region = "us-east-1",
		.bucket = bucket,
		.creds = {"testing", "testing", NULL},
		.path_style = true,
		.retry_total_ms = 3000,
	};
	struct s3_client *c = NULL;

	assert_int_equal(s3_client_new(&cfg, &c), 0);
	s3_client_set_list_page_size(c, page);
	return c;
}

static int start_moto(void **state)
{
	(void)state;
	return moto_start(&moto);
}

static int stop_moto(void **state)
{
	(void)state;
	moto_stop(&moto);
	return 0;
}

static void test_missing_bucket(void **state)
{
	struct s3_client *c;

	(void)state;
	c = client("does-not-exist", 0);
	assert_int_equal(s3_check_bucket(c, "x/"), -ENOENT);
	assert_string_equal(s3_error_code(), "NoSuchBucket");
	s3_client_free(c);
}

static void test_put_head_get(void **state)
{
	static const char data[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	const struct s3_header meta[] = {
		{"x-amz-meta-file-permissions", "0100640"},
		{"x-amz-meta-file-owner", "1234"},
		{"x-amz-meta-file-group", "5678"},
		{"x-amz-meta-file-atime", "1600000000000000007ns"},
		{"x-amz-meta-file-mtime", "1600000000001"},
	};
	char etag[80], buf[64];
	struct s3_client *c;
	struct s3_object o;
	size_t got;

	(void)state;
	moto_make_bucket(&moto, "phg");
	c = client("phg", 0);
	assert_int_equal(s3_check_bucket(c, NULL), 0);
	assert_int_equal(s3_put_object(c, "dir/file.txt", data,
				       sizeof(data) - 1, meta, ARRAY_SIZE(meta),
				       etag),
			 0);
	assert_true(etag[0] == '"');

	assert_int_equal(s3_head_object(c, "dir/file.txt", &o), 0);
	assert_int_equal(o.size, sizeof(data) - 1);
	assert_string_equal(o.etag, etag);
	assert_true(o.mtime_ns > 1600000000000000000ll);
	assert_int_equal(o.have, S3_HAVE_MODE | S3_HAVE_UID | S3_HAVE_GID |
					 S3_HAVE_ATIME | S3_HAVE_MTIME);
	assert_int_equal(o.mode, 0100640);
	assert_int_equal(o.uid, 1234);
	assert_int_equal(o.gid, 5678);
	assert_int_equal(o.atime_ns, 1600000000000000007ll);
	assert_int_equal(o.file_mtime_ns, 1600000000001000000ll);
	s3_object_release(&o);
	assert_int_equal(s3_head_object(c, "dir/nope", &o), -ENOENT);

	memset(buf, '#', sizeof(buf));
	assert_int_equal(
		s3_get_range(c, "dir/file.txt", etag, 10, 6, buf, &got), 0);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "abcdef#", 7);
	/* A window past the end is short. */
	assert_int_equal(
		s3_get_range(c, "dir/file.txt", etag, 30, 20, buf, &got), 0);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "uvwxyz", 6);
	assert_int_equal(s3_get_range(c, "dir/file.txt",
				      "\"00000000000000000000000000000000\"", 0,
				      4, buf, &got),
			 -ESTALE);
	assert_int_equal(
		s3_get_range(c, "dir/file.txt", NULL, 100, 4, buf, &got),
		-ERANGE);
	assert_int_equal(s3_get_range(c, "dir/nope", NULL, 0, 4, buf, &got),
			 -ENOENT);

	/* The object changes: the old ETag no longer matches. */
	assert_int_equal(
		s3_put_object(c, "dir/file.txt", "new", 3, NULL, 0, NULL), 0);
	assert_int_equal(s3_get_range(c, "dir/file.txt", etag, 0, 3, buf, &got),
			 -ESTALE);
	s3_client_free(c);
}

static const char *const odd_keys[] = {
	"odd/a b+c%41?x#y&z=1;",
	"odd/dir//double/./dot/../up",
	"odd/\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
	"odd/tilde~star*quote'paren()",
	"odd/<xml>&amp;\"",
	"odd/trailing-dir/",
};

static int keys_cb(void *arg, struct s3_object *o)
{
	char ***out = arg;

	**out = o->key;
	o->key = NULL; /* keep it */
	(*out)++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_odd_keys(void **state)
{
	char *got[16] = {0}, **pos = got;
	const char *want[ARRAY_SIZE(odd_keys)];
	struct s3_client *c;
	struct s3_object o;
	size_t i;

	(void)state;
	moto_make_bucket(&moto, "odd");
	c = client("odd", 4);
	for (i = 0; i < ARRAY_SIZE(odd_keys); i++) {
		assert_int_equal(
			s3_put_object(c, odd_keys[i], "x", 1, NULL, 0, NULL),
			0);
		assert_int_equal(s3_head_object(c, odd_keys[i], &o), 0);
		assert_int_equal(o.size, 1);
		s3_object_release(&o);
		want[i] = odd_keys[i];
	}
	assert_int_equal(s3_list_objects(c, "odd/", keys_cb, &pos), 0);
	assert_int_equal(pos - got, ARRAY_SIZE(odd_keys));
	qsort(want, ARRAY_SIZE(want), sizeof(want[0]), cmp_str);
	for (i = 0; i < ARRAY_SIZE(odd_keys); i++) {
		assert_string_equal(got[i], want[i]);
		free(got[i]);
	}
	s3_client_free(c);
}

struct putter {
	struct s3_client *c;
	int from, to, failed;
};

static void *put_many(void *arg)
{
	struct putter *p = arg;
	char key[64];
	int i;

	for (i = p->from; i < p->to; i++) {
		snprintf(key, sizeof(key), "many/%05d", i);
		if (s3_put_object(p->c, key, key, strlen(key), NULL, 0, NULL))
			p->failed++;
	}
	return NULL;
}

struct order {
	int n;
	bool sorted;
	char last[64];
};

static int order_cb(void *arg, struct s3_object *o)
{
	struct order *k = arg;

	if (k->n && strcmp(k->last, o->key) >= 0)
		k->sorted = false;
	snprintf(k->last, sizeof(k->last), "%s", o->key);
	k->n++;
	return 0;
}

static void test_many_keys(void **state)
{
	enum { N = 1005, T = 4 };
	struct putter p[T];
	pthread_t t[T];
	struct s3_client *c;
	struct order k = {.sorted = true};
	uint64_t before;
	int i;

	(void)state;
	moto_make_bucket(&moto, "many");
	c = client("many", 0);
	for (i = 0; i < T; i++) {
		p[i] = (struct putter){c, i * N / T, (i + 1) * N / T, 0};
		assert_int_equal(pthread_create(&t[i], NULL, put_many, &p[i]),
				 0);
	}
	for (i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].failed, 0);
	}
	/* Server default page size (1000): two pages. */
	before = s3_client_attempts(c);
	assert_int_equal(s3_list_objects(c, "many/", order_cb, &k), 0);
	assert_int_equal(k.n, N);
	assert_true(k.sorted);
	assert_int_equal(s3_client_attempts(c) - before, 2);
	/* Small pages. */
	k = (struct order){.sorted = true};
	s3_client_set_list_page_size(c, 97);
	assert_int_equal(s3_list_objects(c, "many/00", order_cb, &k), 0);
	assert_int_equal(k.n, 1000);
	assert_true(s3_client_attempts(c) - before >= 2 + 11);
	assert_true(k.sorted);
	s3_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_bucket),
		cmocka_unit_test(test_put_head_get),
		cmocka_unit_test(test_odd_keys),
		cmocka_unit_test(test_many_keys),
	};

	return cmocka_run_group_tests(tests, start_moto, stop_moto);
}
