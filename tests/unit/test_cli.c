// SPDX-License-Identifier: MIT
/* Unit tests of tidectl's pure part (cli/request.c): task type spellings,
 * tokens, request JSON, lifecycles, the safe-to-unmount verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "common/common.h"

static void test_parse_type(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"EXPORT_TO_REPOSITORY", "EXPORT_TO_REPOSITORY"},
		{"export_to_repository", "EXPORT_TO_REPOSITORY"},
		{"export-to-repository", "EXPORT_TO_REPOSITORY"},
		{"export", "EXPORT_TO_REPOSITORY"},
		{"Export", "EXPORT_TO_REPOSITORY"},
		{"import", "IMPORT_METADATA_FROM_REPOSITORY"},
		{"import_metadata_from_repository",
		 "IMPORT_METADATA_FROM_REPOSITORY"},
		{"release", "RELEASE_DATA_FROM_FILESYSTEM"},
		{"release_data_from_filesystem",
		 "RELEASE_DATA_FROM_FILESYSTEM"},
		{"auto-release", "AUTO_RELEASE_DATA"},
		{"auto_release", "AUTO_RELEASE_DATA"},
		{"AUTO_RELEASE_DATA", "AUTO_RELEASE_DATA"},
		{"auto_release_data", "AUTO_RELEASE_DATA"},
		{"", NULL},
		{"exports", NULL},
		{"EXPORT", "EXPORT_TO_REPOSITORY"},
		{"autorelease", NULL},
		{"delete", NULL},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *got = cli_parse_type(cases[i].in);
		if (cases[i].want)
			assert_non_null(got);
		if (cases[i].want)
			assert_string_equal(got, cases[i].want);
		else
			assert_null(got);
	}
}

static void test_token_valid(void **state)
{
	char long63[64], long64[65];
	(void)state;
	memset(long63, 'a', 63);
	long63[63] = '\0';
	memset(long64, 'a', 64);
	long64[64] = '\0';
	assert_true(cli_token_valid("nightly-1"));
	assert_true(cli_token_valid("A.b_C-9"));
	assert_true(cli_token_valid(long63));
	assert_false(cli_token_valid(long64));
	assert_false(cli_token_valid(""));
	assert_false(cli_token_valid("."));
	assert_false(cli_token_valid(".."));
	assert_false(cli_token_valid("a/b"));
	assert_false(cli_token_valid("a b"));
	assert_false(cli_token_valid("tâche"));
}

static void test_make_token(void **state)
{
	char a[CLI_TOKEN_MAX], b[CLI_TOKEN_MAX], tiny[8];
	(void)state;
	assert_int_equal(cli_make_token(a, sizeof(a)), 0);
	assert_int_equal(cli_make_token(b, sizeof(b)), 0);
	assert_true(cli_token_valid(a));
	assert_true(cli_token_valid(b));
	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(a, "tidectl-", 8), 0);
	assert_int_not_equal(cli_make_token(tiny, sizeof(tiny)), 0);
}

static void check_request(const struct cli_create *c, const char *want)
{
	json_t *req = cli_build_request(c);
	json_t *exp = json_loads(want, 0, NULL);

	assert_non_null(req);
	assert_non_null(exp);
	if (!json_equal(req, exp)) {
		char *got = json_dumps(req, JSON_COMPACT);
		fail_msg("request %s, want %s", got, want);
	}
	json_decref(req);
	json_decref(exp);
}

static void test_build_request(void **state)
{
	const char *paths[] = {"a/b", "c"};
	struct cli_create c = {.type = "EXPORT_TO_REPOSITORY"};
	(void)state;

	check_request(&c, "{\"Type\":\"EXPORT_TO_REPOSITORY\"}");
	c.paths = paths;
	c.npaths = 2;
	check_request(&c, "{\"Type\":\"EXPORT_TO_REPOSITORY\","
			  "\"Paths\":[\"a/b\",\"c\"]}");
	c = (struct cli_create){.type = "AUTO_RELEASE_DATA",
				.have_capacity = true,
				.capacity_gib = 3};
	check_request(&c, "{\"Type\":\"AUTO_RELEASE_DATA\","
			  "\"CapacityToRelease\":3}");
	c = (struct cli_create){.type = "RELEASE_DATA_FROM_FILESYSTEM",
				.have_days = true,
				.release_days = 0,
				.report_path = "s3://b/p/reports"};
	check_request(
		&c,
		"{\"Type\":\"RELEASE_DATA_FROM_FILESYSTEM\","
		"\"ReleaseConfiguration\":{\"DurationSinceLastAccess\":"
		"{\"Unit\":\"DAYS\",\"Value\":0}},"
		"\"Report\":{\"Enabled\":true,\"Path\":\"s3://b/p/reports\","
		"\"Format\":\"REPORT_CSV_20191124\","
		"\"Scope\":\"FAILED_FILES_ONLY\"}}");
}

static void test_lifecycle(void **state)
{
	(void)state;
	assert_true(cli_lifecycle_final("SUCCEEDED"));
	assert_true(cli_lifecycle_final("FAILED"));
	assert_true(cli_lifecycle_final("CANCELED"));
	assert_false(cli_lifecycle_final("CANCELING"));
	assert_false(cli_lifecycle_final("PENDING"));
	assert_false(cli_lifecycle_final("EXECUTING"));
	assert_false(cli_lifecycle_final(""));
}

static void check_safety(const char *stats, bool safe, int64_t files)
{
	json_t *j = json_loads(stats, 0, NULL);

	assert_non_null(j);
	cli_stats_add_safety(j);
	assert_int_equal(json_is_true(json_object_get(j, "safe_to_unmount")),
			 safe);
	assert_int_equal(cli_json_int(j, "unexported_files"), files);
	json_decref(j);
}

static void test_safety(void **state)
{
	(void)state;
	check_safety("{\"unexported_files\":0,\"unexported_bytes\":0,"
		     "\"states\":{\"new\":5}}",
		     true, 0);
	check_safety("{\"unexported_files\":2,\"unexported_bytes\":10}", false,
		     2);
	check_safety("{\"states\":{\"new\":1,\"dirty\":2,\"archived\":9}}",
		     false, 3);
	check_safety("{\"states\":{\"new\":0,\"dirty\":0,\"archived\":9}}",
		     true, 0);
}

static void test_json_int(void **state)
{
	json_t *t = json_loads("{\"TotalCount\":1,\"CreationTime\":1.5e9,"
			       "\"Status\":{\"FailedCount\":4}}",
			       0, NULL);
	(void)state;
	assert_int_equal(cli_json_int(t, "TotalCount"), 1);
	assert_int_equal(cli_json_int(t, "FailedCount"), 4);
	assert_int_equal(cli_json_int(t, "CreationTime"), 1500000000);
	assert_int_equal(cli_json_int(t, "Missing"), 0);
	assert_string_equal(cli_json_str(t, "Missing"), "");
	json_decref(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_type),
		cmocka_unit_test(test_token_valid),
		cmocka_unit_test(test_make_token),
		cmocka_unit_test(test_build_request),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_safety),
		cmocka_unit_test(test_json_int),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
