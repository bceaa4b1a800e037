// SPDX-License-Identifier: MIT
/* Credentials: shared credentials file parsing, profiles, environment. */
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

#include "s3/s3.h"

static char path[64];

static int write_file(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/tidefs-creds-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int remove_file(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void put(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *sample = "# a comment\n"
			    "; another\n"
			    "[default]\n"
			    "aws_access_key_id = AKIDDEFAULT\n"
			    "aws_secret_access_key=secretdefault  \n"
			    "\n"
			    "[ dev ]\r\n"
			    "  # indented comment\r\n"
			    "AWS_ACCESS_KEY_ID\t=\tAKIDDEV\r\n"
			    "aws_secret_access_key = sec/ret+with=equals\r\n"
			    "aws_session_token = tok==\r\n"
			    "region = eu-west-1\r\n"
			    "s3 =\n"
			    "    max_concurrent_requests = 20\n"
			    "[partial]\n"
			    "aws_access_key_id = AKIDONLY\n"
			    "[empty]\n"
			    "[legacy]\n"
			    "aws_access_key_id = A\n"
			    "aws_secret_access_key = S\n"
			    "aws_security_token = T\n"
			    "[default]\n"
			    "aws_session_token = later\n";

static void test_profiles(void **state)
{
	struct s3_credentials c;

	(void)state;
	put(sample);
	assert_int_equal(s3_credentials_from_file(path, "default", &c), 0);
	assert_string_equal(c.access_key, "AKIDDEFAULT");
	assert_string_equal(c.secret_key, "secretdefault");
	/* A repeated section adds to the first, as botocore does. */
	assert_string_equal(c.session_token, "later");
	s3_credentials_release(&c);
	assert_null(c.access_key);

	assert_int_equal(s3_credentials_from_file(path, "dev", &c), 0);
	assert_string_equal(c.access_key, "AKIDDEV");
	assert_string_equal(c.secret_key, "sec/ret+with=equals");
	assert_string_equal(c.session_token, "tok==");
	s3_credentials_release(&c);

	assert_int_equal(s3_credentials_from_file(path, "legacy", &c), 0);
	assert_string_equal(c.session_token, "T");
	s3_credentials_release(&c);

	assert_int_equal(s3_credentials_from_file(path, "partial", &c),
			 -EINVAL);
	assert_null(c.access_key);
	assert_int_equal(s3_credentials_from_file(path, "empty", &c), -ENOENT);
	assert_int_equal(s3_credentials_from_file(path, "nope", &c), -ENOENT);
	assert_int_equal(
		s3_credentials_from_file("/nonexistent/x", "default", &c),
		-ENOENT);
}

static void test_malformed(void **state)
{
	struct s3_credentials c;

	(void)state;
	put("[default\naws_access_key_id = A\n");
	assert_int_equal(s3_credentials_from_file(path, "default", &c),
			 -EINVAL);
	put("[default]\njust some words\n");
	assert_int_equal(s3_credentials_from_file(path, "default", &c),
			 -EINVAL);
	put("[default] trailing\n");
	assert_int_equal(s3_credentials_from_file(path, "default", &c),
			 -EINVAL);
	put("");
	assert_int_equal(s3_credentials_from_file(path, "default", &c),
			 -ENOENT);
}

static void test_load_env_and_profile(void **state)
{
	struct s3_credentials c;

	(void)state;
	put(sample);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	unsetenv("AWS_PROFILE");
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretenv", 1);
	setenv("AWS_SESSION_TOKEN", "tokenv", 1);
	assert_int_equal(s3_credentials_load(NULL, &c), 0);
	assert_string_equal(c.access_key, "AKIDENV");
	assert_string_equal(c.session_token, "tokenv");
	s3_credentials_release(&c);

	/* An explicit profile wins over the environment. */
	assert_int_equal(s3_credentials_load("dev", &c), 0);
	assert_string_equal(c.access_key, "AKIDDEV");
	s3_credentials_release(&c);

	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	assert_int_equal(s3_credentials_load(NULL, &c), 0);
	assert_string_equal(c.access_key, "AKIDDEFAULT");
	s3_credentials_release(&c);

	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(s3_credentials_load(NULL, &c), 0);
	assert_string_equal(c.access_key, "AKIDDEV");
	s3_credentials_release(&c);

	setenv("AWS_PROFILE", "missing", 1);
	assert_int_equal(s3_credentials_load(NULL, &c), -ENOENT);
	unsetenv("AWS_PROFILE");

	/* ~/.aws/credentials under HOME when no file is named. */
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	setenv("HOME", "/nonexistent-home", 1);
	assert_int_equal(s3_credentials_load(NULL, &c), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_profiles, write_file,
						remove_file),
		cmocka_unit_test_setup_teardown(test_malformed, write_file,
						remove_file),
		cmocka_unit_test_setup_teardown(test_load_env_and_profile,
						write_file, remove_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
