// SPDX-License-Identifier: MIT
/*
 * The export side of the S3 client against moto_server on loopback (started
 * by support.c; the test fails when it cannot start): PutObject from a file
 * with the FSx metadata, a parallel multipart upload, conditional writes,
 * CopyObject with new metadata (also as UploadPartCopy), DeleteObject.
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
#include <unistd.h>

#include "common/common.h"
#include "s3/s3.h"
#include "s3/s3_i.h"
#include "support.h"

#define MIB (1u << 20)

static struct moto moto;

static struct s3_client *client(const char *bucket)
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

/* An unlinked temporary file of len pseudo-random bytes (seeded). */
static int temp_file(size_t len, unsigned seed, char **data)
{
	char path[] = "/tmp/tidefs-s3put-XXXXXX";
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	char *d = malloc(len ? len : 1);
	size_t i;
	int fd;

	assert_non_null(d);
	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		d[i] = (char)(x >> 24);
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite_all(fd, d, len, 0), 0);
	if (data)
		*data = d;
	else
		free(d);
	return fd;
}

/* The object's bytes equal want (read back in 8 MiB windows). */
static void check_content(struct s3_client *c, const char *key,
			  const char *etag, const char *want, size_t len)
{
	size_t win = 8 * MIB, off, got;
	char *buf = malloc(win);

	assert_non_null(buf);
	for (off = 0; off < len; off += got) {
		assert_int_equal(s3_get_range(c, key, etag, off,
					      MIN(win, len - off), buf, &got),
				 0);
		assert_true(got > 0);
		assert_memory_equal(buf, want + off, got);
	}
	free(buf);
}

static void test_put_single_meta(void **state)
{
	struct s3_meta_bufs mb;
	struct s3_header h[6];
	struct s3_put_opts o = {.meta = h};
	char etag[80], *data;
	struct s3_client *c;
	struct s3_object ob;
	int fd;

	(void)state;
	moto_make_bucket(&moto, "single");
	c = client("single");
	fd = temp_file(MIB + 7, 1, &data);
	o.nmeta = s3_posix_headers(0104755, 1001, 1002, 1600000000123456789ll,
				   -5, h, &mb);
	h[o.nmeta++] = (struct s3_header){"x-amz-meta-extra", "yes"};
	assert_int_equal(s3_put_file(c, "d/f", fd, MIB + 7, &o, etag), 0);
	assert_true(etag[0] == '"');
	assert_int_equal(s3_head_object(c, "d/f", &ob), 0);
	assert_string_equal(ob.etag, etag);
	assert_int_equal(ob.size, MIB + 7);
	assert_int_equal(ob.have, S3_HAVE_MODE | S3_HAVE_UID | S3_HAVE_GID |
					  S3_HAVE_ATIME | S3_HAVE_MTIME);
	assert_int_equal(ob.mode, 0100755); /* setuid dropped */
	assert_int_equal(ob.uid, 1001);
	assert_int_equal(ob.gid, 1002);
	assert_int_equal(ob.atime_ns, 1600000000123456789ll);
	assert_int_equal(ob.file_mtime_ns, -5);
	s3_object_release(&ob);
	check_content(c, "d/f", etag, data, MIB + 7);

	/* An empty file, and no options at all. */
	assert_int_equal(s3_put_file(c, "d/empty", fd, 0, NULL, etag), 0);
	assert_int_equal(s3_head_object(c, "d/empty", &ob), 0);
	assert_int_equal(ob.size, 0);
	assert_string_equal(ob.etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
	s3_object_release(&ob);

	/* A file shorter than the length given. */
	assert_int_equal(s3_put_file(c, "d/short", fd, MIB + 8, NULL, etag),
			 -EIO);
	assert_int_equal(s3_head_object(c, "d/short", &ob), -ENOENT);
	close(fd);
	free(data);
	s3_client_free(c);
}

static void test_put_multipart(void **state)
{
	const size_t len = 40 * MIB + 12345;
	struct s3_meta_bufs mb;
	struct s3_header h[5];
	struct s3_put_opts o = {.meta = h, .part_size = 5 * MIB, .parallel = 3};
	char etag[80], *data;
	struct s3_client *c;
	struct s3_object ob;
	uint64_t before;
	int fd;

	(void)state;
	moto_make_bucket(&moto, "multi");
	c = client("multi");
	fd = temp_file(len, 2, &data);
	o.nmeta = s3_posix_headers(0100600, 7, 8, 1000, 2000, h, &mb);
	before = s3_client_attempts(c);
	assert_int_equal(s3_put_file(c, "big", fd, len, &o, etag), 0);
	/* Create, 9 parts, Complete. */
	assert_int_equal(s3_client_attempts(c) - before, 11);
	assert_non_null(strstr(etag, "-9\""));
	assert_int_equal(s3_head_object(c, "big", &ob), 0);
	assert_string_equal(ob.etag, etag);
	assert_int_equal(ob.size, len);
	assert_int_equal(ob.mode, 0100600);
	assert_int_equal(ob.uid, 7);
	assert_int_equal(ob.file_mtime_ns, 2000);
	s3_object_release(&ob);
	check_content(c, "big", etag, data, len);

	/* Too small a part size is raised to 5 MiB; a file shorter than
	 * len fails, and the upload is aborted. */
	o.part_size = 1;
	o.single_max = 6 * MIB;
	assert_int_equal(s3_put_file(c, "short", fd, len + 1, &o, etag), -EIO);
	assert_int_equal(s3_head_object(c, "short", &ob), -ENOENT);
	close(fd);
	free(data);
	s3_client_free(c);
}

static void test_conditions(void **state)
{
	struct s3_put_opts o = {0};
	char e1[80], e2[80], *data;
	struct s3_client *c;
	int fd;

	(void)state;
	moto_make_bucket(&moto, "cond");
	c = client("cond");
	fd = temp_file(12 * MIB, 3, &data);

	/* Single PutObject. */
	o.if_none_match_any = true;
	assert_int_equal(s3_put_file(c, "k", fd, 100, &o, e1), 0);
	/* The same bytes again: our own earlier attempt landed (a retry
	 * after a lost answer, a resumed export) — done, same ETag. */
	assert_int_equal(s3_put_file(c, "k", fd, 100, &o, e2), 0);
	assert_string_equal(e1, e2);
	/* Other bytes under an existing key: refused. */
	assert_int_equal(s3_put_file(c, "k", fd, 99, &o, e2), -ESTALE);
	assert_string_equal(s3_error_code(), "PreconditionFailed");
	o.if_none_match_any = false;
	o.if_match = "\"00000000000000000000000000000000\"";
	assert_int_equal(s3_put_file(c, "k", fd, 101, &o, e2), -ESTALE);
	o.if_match = e1;
	assert_int_equal(s3_put_file(c, "k", fd, 101, &o, e2), 0);
	assert_string_not_equal(e1, e2);
	assert_int_equal(s3_put_file(c, "k", fd, 102, &o, e2), -ESTALE);
	/* moto (like S3) answers 404 for If-Match on a missing key. */
	assert_int_equal(s3_put_file(c, "nokey", fd, 102, &o, e2), -ENOENT);

	/* Multipart (11 MiB in 5 MiB parts). */
	o = (struct s3_put_opts){.if_none_match_any = true,
				 .part_size = 5 * MIB,
				 .single_max = 5 * MIB};
	assert_int_equal(s3_put_file(c, "m", fd, 11 * MIB, &o, e1), 0);
	assert_non_null(strstr(e1, "-3\""));
	assert_int_equal(s3_put_file(c, "m", fd, 11 * MIB, &o, e2), -ESTALE);
	o.if_none_match_any = false;
	o.if_match = "\"0123\"";
	assert_int_equal(s3_put_file(c, "m", fd, 11 * MIB, &o, e2), -ESTALE);
	o.if_match = e1;
	assert_int_equal(s3_put_file(c, "m", fd, 12 * MIB, &o, e2), 0);
	assert_int_equal(s3_put_file(c, "m", fd, 12 * MIB, &o, e2), -ESTALE);
	check_content(c, "m", e2, data, 12 * MIB);
	close(fd);
	free(data);
	s3_client_free(c);
}

static void test_copy(void **state)
{
	const struct s3_header meta[] = {
		{"x-amz-meta-file-permissions", "0100444"},
		{"x-amz-meta-file-owner", "42"},
	};
	struct s3_put_opts o = {.meta = meta, .nmeta = ARRAY_SIZE(meta)};
	char e1[80], e2[80], *data;
	struct s3_client *c;
	struct s3_object ob;
	int fd;

	(void)state;
	moto_make_bucket(&moto, "copy");
	c = client("copy");
	fd = temp_file(3000, 4, &data);
	assert_int_equal(s3_put_file(c, "src x+y", fd, 3000, NULL, e1), 0);

	/* To another key, then onto itself with new metadata. */
	o.if_match = e1;
	assert_int_equal(s3_copy_object(c, "src x+y", "dst/ü", &o, e2), 0);
	assert_string_equal(e2, e1);
	assert_int_equal(s3_head_object(c, "dst/ü", &ob), 0);
	assert_int_equal(ob.have, S3_HAVE_MODE | S3_HAVE_UID);
	assert_int_equal(ob.mode, 0100444);
	assert_int_equal(ob.uid, 42);
	s3_object_release(&ob);
	check_content(c, "dst/ü", e1, data, 3000);
	assert_int_equal(s3_copy_object(c, "src x+y", "src x+y", &o, e2), 0);
	assert_int_equal(s3_head_object(c, "src x+y", &ob), 0);
	assert_int_equal(ob.mode, 0100444);
	s3_object_release(&ob);

	/* Failing conditions: the source's ETag, the destination exists. */
	o.if_match = "\"00000000000000000000000000000000\"";
	assert_int_equal(s3_copy_object(c, "src x+y", "dst2", &o, e2), -ESTALE);
	assert_int_equal(s3_head_object(c, "dst2", &ob), -ENOENT);
	o.if_match = NULL;
	o.if_none_match_any = true;
	assert_int_equal(s3_copy_object(c, "src x+y", "dst/ü", &o, e2),
			 -ESTALE);
	assert_int_equal(s3_copy_object(c, "src x+y", "dst2", &o, e2), 0);
	assert_int_equal(s3_copy_object(c, "nosrc", "dst3", &o, e2), -ENOENT);
	close(fd);
	free(data);
	s3_client_free(c);
}

static void test_copy_multipart(void **state)
{
	const size_t len = 12 * MIB + 3;
	const struct s3_header meta[] = {{"x-amz-meta-file-group", "77"}};
	struct s3_put_opts o = {
		.meta = meta, .nmeta = 1, .part_size = 5 * MIB, .parallel = 2};
	char e1[80], e2[80], *data;
	struct s3_client *c;
	struct s3_object ob;
	uint64_t before;
	int fd;

	(void)state;
	moto_make_bucket(&moto, "copymp");
	c = client("copymp");
	s3_client_set_copy_single_max(c, 6 * MIB);
	fd = temp_file(len, 5, &data);
	assert_int_equal(s3_put_file(c, "src", fd, len, NULL, e1), 0);
	o.if_match = e1;
	before = s3_client_attempts(c);
	assert_int_equal(s3_copy_object(c, "src", "dst", &o, e2), 0);
	/* HEAD, Create, 3 UploadPartCopy, Complete. */
	assert_int_equal(s3_client_attempts(c) - before, 6);
	assert_non_null(strstr(e2, "-3\""));
	assert_int_equal(s3_head_object(c, "dst", &ob), 0);
	assert_int_equal(ob.size, len);
	assert_int_equal(ob.have, S3_HAVE_GID);
	assert_int_equal(ob.gid, 77);
	assert_string_equal(ob.etag, e2);
	s3_object_release(&ob);
	check_content(c, "dst", e2, data, len);
	close(fd);
	free(data);
	s3_client_free(c);
}

static void test_delete(void **state)
{
	struct s3_client *c;
	struct s3_object ob;

	(void)state;
	moto_make_bucket(&moto, "del");
	c = client("del");
	assert_int_equal(s3_put_object(c, "a/b", "x", 1, NULL, 0, NULL), 0);
	assert_int_equal(s3_delete_object(c, "a/b"), 0);
	assert_int_equal(s3_head_object(c, "a/b", &ob), -ENOENT);
	assert_int_equal(s3_delete_object(c, "a/b"), 0);
	assert_int_equal(s3_delete_object(c, ""), -EINVAL);
	s3_client_free(c);
	c = client("no-such-bucket");
	assert_int_equal(s3_delete_object(c, "a"), -ENOENT);
	s3_client_free(c);
}

int main(void)
{
	if (getenv("S3DBG"))
		log_set_level(LOG_LVL_DEBUG);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_single_meta),
		cmocka_unit_test(test_put_multipart),
		cmocka_unit_test(test_conditions),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_copy_multipart),
		cmocka_unit_test(test_delete),
	};

	return cmocka_run_group_tests(tests, start_moto, stop_moto);
}
