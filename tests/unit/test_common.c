// SPDX-License-Identifier: MIT
/* Unit tests of common/: size parsing and formatting, integers, levels. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <fcntl.h>

#include <cmocka.h>

#include "common/common.h"
#include "support.h"

static void test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t want;
	} cases[] = {
		{"0", 0, 0},
		{"4096", 0, 4096},
		{"512M", 0, 512ull << 20},
		{"512m", 0, 512ull << 20},
		{"50G", 0, 50ull << 30},
		{"1T", 0, 1ull << 40},
		{"1.5G", 0, 3ull << 29},
		{"2GiB", 0, 2ull << 30},
		{"2GB", 0, 2ull << 30},
		{"64K", 0, 64ull << 10},
		{"1E", 0, 1ull << 60},
		{"16E", -ERANGE, 0},
		{"", -EINVAL, 0},
		{"-1G", -EINVAL, 0},
		{"+1G", -EINVAL, 0},
		{" 1G", -EINVAL, 0},
		{"G", -EINVAL, 0},
		{"1X", -EINVAL, 0},
		{"1GX", -EINVAL, 0},
		{"1G ", -EINVAL, 0},
		{"nan", -EINVAL, 0},
		{"inf", -EINVAL, 0},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;
		int ret = parse_size(cases[i].in, &v);
		if (ret != cases[i].ret)
			fail_msg("parse_size(\"%s\") = %d, want %d",
				 cases[i].in, ret, cases[i].ret);
		if (ret == 0 && v != cases[i].want)
			fail_msg("parse_size(\"%s\") = %llu, want %llu",
				 cases[i].in, (unsigned long long)v,
				 (unsigned long long)cases[i].want);
	}
	assert_int_equal(parse_size(NULL, &(uint64_t){0}), -EINVAL);
}

static void test_parse_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_u64("12a", &v), -EINVAL);
	assert_int_equal(parse_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_u64("", &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", &v), -EINVAL);
}

static void test_format_size(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(format_size(0, buf, sizeof(buf)), "0 B");
	assert_string_equal(format_size(1023, buf, sizeof(buf)), "1023 B");
	assert_string_equal(format_size(1536, buf, sizeof(buf)), "1.5 KiB");
	assert_string_equal(format_size(50ull << 30, buf, sizeof(buf)),
			    "50.0 GiB");
}

static void test_log_levels(void **state)
{
	enum log_level l;

	(void)state;
	assert_int_equal(log_parse_level("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_parse_level("WARN", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_parse_level("warning", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_parse_level("loud", &l), -EINVAL);
}

static void test_clock_offset(void **state)
{
	int64_t a, b;

	(void)state;
	/* The offset is read once per process: this must be the first call. */
	setenv("TIDEFS_CLOCK_OFFSET", "86400", 1);
	a = time_now_ns();
	unsetenv("TIDEFS_CLOCK_OFFSET");
	b = time_now_ns();
	assert_true(b - a >= 0);
	assert_true(a > (int64_t)1700000000 * 1000000000LL + 86400000000000LL);
}

/* The published FNV-1a 64 test vectors. */
static void test_fnv1a64(void **state)
{
	(void)state;
	assert_true(fnv1a64("", 0) == 0xcbf29ce484222325ull);
	assert_true(fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
}

/* Appends in order across several doublings; the count and room move. */
static void test_u64_push(void **state)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;

	(void)state;
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(u64_push(&v, &n, &cap, i * 7), 0);
	assert_int_equal(n, 300);
	assert_int_equal(cap, 512);
	for (uint64_t i = 0; i < n; i++)
		assert_true(v[i] == i * 7);
	free(v);
}

/* time_deadline: now + ns, tv_nsec normalised, on the given clock. */
static void test_time_deadline(void **state)
{
	const int64_t cases[] = {
		0, 1, 999999999LL, 1000000000LL, 1500000000LL, 5000000000LL};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t before = time_mono_ns(), at, after;
		struct timespec ts = time_deadline(CLOCK_MONOTONIC, cases[i]);

		after = time_mono_ns();
		at = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
		assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
		assert_true(at >= before + cases[i]);
		assert_true(at <= after + cases[i]);
	}
}

static void test_array_grow(void **state)
{
	uint64_t *v = NULL, *nv;
	size_t cap = 0, n = 0;

	(void)state;
	/* Doubling from the first size keeps what was there. */
	for (uint64_t i = 0; i < 1000; i++) {
		if (n == cap) {
			size_t old = cap;

			nv = array_grow(v, &cap, sizeof(*v), 4);
			assert_non_null(nv);
			assert_int_equal(cap, old ? old * 2 : 4);
			v = nv;
		}
		v[n++] = i * i;
	}
	assert_int_equal(cap, 1024);
	for (uint64_t i = 0; i < n; i++)
		assert_true(v[i] == i * i);
	/* A size that would overflow fails and leaves the array alone. */
	cap = SIZE_MAX / sizeof(*v) / 2 + 1;
	assert_null(array_grow(v, &cap, sizeof(*v), 4));
	assert_int_equal(cap, SIZE_MAX / sizeof(*v) / 2 + 1);
	cap = SIZE_MAX / 2 + 1;
	assert_null(array_grow(v, &cap, 1, 4));
	assert_int_equal(cap, SIZE_MAX / 2 + 1);
	assert_true(v[999] == 999 * 999);
	free(v);
	{
		uint64_t a = 1, b = 2, big = UINT64_MAX;

		assert_true(u64_cmp(&a, &b) < 0 && u64_cmp(&b, &a) > 0);
		assert_int_equal(u64_cmp(&a, &a), 0);
		assert_true(u64_cmp(&a, &big) < 0); /* no overflow */
	}
}

static void test_mkdir_p(void **state)
{
	char dir[] = "/tmp/tidefs-mkdirp-XXXXXX", path[128];
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(mkdir_p(path, 0700), 0); /* already there */
	snprintf(path, sizeof(path), "%s/x/y/file", dir);
	assert_int_equal(mkdir_p_parent(path), 0);
	snprintf(path, sizeof(path), "%s/x/y", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* A file in the way. */
	snprintf(path, sizeof(path), "%s/x/y/f", dir);
	assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
	snprintf(path, sizeof(path), "%s/x/y/f/g", dir);
	assert_int_equal(mkdir_p(path, 0700), -ENOTDIR);
	assert_int_equal(mkdir_p_parent("relative"), 0);
	support_rm_tree(dir);
}

static void test_random_bytes(void **state)
{
	uint8_t a[32] = {0}, b[32] = {0};

	(void)state;
	assert_int_equal(random_bytes(a, sizeof(a)), 0);
	assert_int_equal(random_bytes(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clock_offset),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_fnv1a64),
		cmocka_unit_test(test_array_grow),
		cmocka_unit_test(test_u64_push),
		cmocka_unit_test(test_time_deadline),
		cmocka_unit_test(test_mkdir_p),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
