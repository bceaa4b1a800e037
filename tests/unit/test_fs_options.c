// SPDX-License-Identifier: MIT
/* Unit tests of the command line: repository URLs, options, environment. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs/fs.h"

static void test_repository(void **state)
{
	static const struct {
		const char *url;
		int ret;
		const char *bucket, *prefix;
	} cases[] = {
		{"s3://bucket", 0, "bucket", ""},
		{"s3://bucket/", 0, "bucket", ""},
		{"s3://bucket/a", 0, "bucket", "a/"},
		{"s3://bucket/a/b/", 0, "bucket", "a/b/"},
		{"s3://my.bucket-1/x", 0, "my.bucket-1", "x/"},
		{"s3://bucket//a", 0, "bucket", "a/"},
		{"s3://bucket/a//b", -EINVAL, NULL, NULL},
		{"s3://", -EINVAL, NULL, NULL},
		{"s3://ab", -EINVAL, NULL, NULL},
		{"http://bucket/a", -EINVAL, NULL, NULL},
		{"bucket/a", -EINVAL, NULL, NULL},
		{"s3://bu cket", -EINVAL, NULL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *b = NULL, *p = NULL;
		int ret = fs_parse_repository(cases[i].url, &b, &p);
		if (ret != cases[i].ret)
			fail_msg("%s: ret %d, want %d", cases[i].url, ret,
				 cases[i].ret);
		if (ret == 0) {
			assert_string_equal(b, cases[i].bucket);
			assert_string_equal(p, cases[i].prefix);
		}
		free(b);
		free(p);
	}
}

static int parse(struct fs_options *o, char *err, int argc, ...)
{
	char *argv[32];
	va_list ap;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	return fs_options_parse(argc, argv, o, err, 256);
}

static void test_full_command_line(void **state)
{
	struct fs_options o;
	char err[256];

	(void)state;
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	assert_int_equal(parse(&o, err, 14, "tidefs", "--cache-dir", "/c",
			       "--cache-size", "512M", "--endpoint-url",
			       "http://127.0.0.1:5000", "-f", "-o",
			       "allow_other,ro", "--log-level", "debug",
			       "s3://bkt/pre", "/mnt"),
			 0);
	assert_string_equal(o.bucket, "bkt");
	assert_string_equal(o.prefix, "pre/");
	assert_string_equal(o.cache_dir, "/c");
	assert_string_equal(o.mountpoint, "/mnt");
	assert_true(o.cache_size == 512ull << 20);
	assert_string_equal(o.endpoint, "http://127.0.0.1:5000");
	assert_string_equal(o.region, "us-east-1");
	assert_true(o.foreground);
	assert_true(o.read_only);
	assert_string_equal(o.fuse_opts, "allow_other,ro");
	assert_int_equal(o.log_level, LOG_LVL_DEBUG);
	assert_int_equal(o.retry_timeout_s, 20);
	assert_int_equal(o.sync_interval_s, 5);
	fs_options_release(&o);
}

static void test_region_and_env(void **state)
{
	struct fs_options o;
	char err[256];

	(void)state;
	setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
	setenv("TIDEFS_CACHE_DIR", "/envcache", 1);
	setenv("TIDEFS_CACHE_SIZE", "2G", 1);
	assert_int_equal(parse(&o, err, 3, "tidefs", "s3://bkt", "/mnt"), 0);
	assert_string_equal(o.region, "eu-west-1");
	assert_string_equal(o.cache_dir, "/envcache");
	assert_true(o.cache_size == 2ull << 30);
	fs_options_release(&o);

	setenv("AWS_REGION", "ap-south-1", 1);
	assert_int_equal(parse(&o, err, 5, "tidefs", "--region", "us-west-2",
			       "s3://bkt", "/mnt"),
			 0);
	assert_string_equal(o.region, "us-west-2");
	fs_options_release(&o);
	assert_int_equal(parse(&o, err, 3, "tidefs", "s3://bkt", "/mnt"), 0);
	assert_string_equal(o.region, "ap-south-1");
	fs_options_release(&o);
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("TIDEFS_CACHE_DIR");
	unsetenv("TIDEFS_CACHE_SIZE");
}

static void test_errors(void **state)
{
	struct fs_options o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, 3, "tidefs", "s3://bkt", "/mnt"),
			 -EINVAL);
	assert_non_null(strstr(err, "--cache-dir"));
	fs_options_release(&o);

	assert_int_equal(parse(&o, err, 6, "tidefs", "--cache-dir", "/c",
			       "--cache-size", "lots", "s3://bkt", "/mnt"),
			 -EINVAL);
	assert_non_null(strstr(err, "--cache-size"));
	fs_options_release(&o);

	assert_int_equal(
		parse(&o, err, 4, "tidefs", "--cache-dir", "/c", "s3://bkt"),
		-EINVAL);
	fs_options_release(&o);

	assert_int_equal(parse(&o, err, 5, "tidefs", "--cache-dir", "/c",
			       "gs://bkt", "/mnt"),
			 -EINVAL);
	assert_non_null(strstr(err, "s3://"));
	fs_options_release(&o);

	assert_int_equal(parse(&o, err, 5, "tidefs", "--bogus", "/c",
			       "s3://bkt", "/mnt"),
			 -EINVAL);
	assert_non_null(strstr(err, "--bogus"));
	fs_options_release(&o);

	assert_int_equal(parse(&o, err, 7, "tidefs", "--cache-dir", "/c",
			       "--chunk-size", "3M", "s3://bkt", "/mnt"),
			 -EINVAL);
	fs_options_release(&o);

	assert_int_equal(parse(&o, err, 7, "tidefs", "--cache-dir", "/c",
			       "--endpoint-url", "ftp://x", "s3://bkt", "/mnt"),
			 -EINVAL);
	fs_options_release(&o);

	for (int i = 0; i < 3; i++) {
		static const char *const bad[] = {"0", "3601", "5s"};

		assert_int_equal(parse(&o, err, 7, "tidefs", "--cache-dir",
				       "/c", "--sync-interval", bad[i],
				       "s3://bkt", "/mnt"),
				 -EINVAL);
		assert_non_null(strstr(err, "--sync-interval"));
		fs_options_release(&o);
	}
	assert_int_equal(parse(&o, err, 7, "tidefs", "--cache-dir", "/c",
			       "--sync-interval", "60", "s3://bkt", "/mnt"),
			 0);
	assert_int_equal(o.sync_interval_s, 60);
	fs_options_release(&o);
}

static void test_help_version(void **state)
{
	struct fs_options o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, 2, "tidefs", "--help"), 0);
	assert_true(o.show_help);
	fs_options_release(&o);
	assert_int_equal(parse(&o, err, 2, "tidefs", "-V"), 0);
	assert_true(o.show_version);
	fs_options_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repository),
		cmocka_unit_test(test_full_command_line),
		cmocka_unit_test(test_region_and_env),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_help_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
