// SPDX-License-Identifier: MIT
/*
 * Unit tests of tasks/task.h (task.c, task_check.c, task_describe.c,
 * task_json.c): the FSx request validators (table-driven, with both sides of
 * every boundary), request equality, the DataRepositoryTask JSON round trip
 * and the error bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/common.h"
#include "tasks/task.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FSID	"fs-0123456789abcdef0"
#define T_EXP	"\"Type\":\"EXPORT_TO_REPOSITORY\""
#define T_IMP	"\"Type\":\"IMPORT_METADATA_FROM_REPOSITORY\""
#define T_REL	"\"Type\":\"RELEASE_DATA_FROM_FILESYSTEM\""
#define T_AUTO	"\"Type\":\"AUTO_RELEASE_DATA\""
#define FS	"\"FileSystemId\":\"" FSID "\""
#define REP_OFF "\"Report\":{\"Enabled\":false}"
#define REP_ON(path)                                                           \
	"\"Report\":{\"Enabled\":true,\"Path\":\"" path "\",\"Format\":"       \
	"\"REPORT_CSV_20191124\",\"Scope\":\"FAILED_FILES_ONLY\"}"
#define BASE FS "," REP_OFF
#define BAD  TASK_ERR_BAD_REQUEST

static const struct task_mount_info mount = {FSID, "bkt", "data/"};

/* Parse; check the return code and that msg contains want_msg. */
static void expect_create(const char *json, enum task_source src,
			  const char *tok, const struct task_mount_info *mi,
			  int want, const char *want_msg)
{
	struct task_request r;
	char msg[512];
	int ret = task_request_parse(json, strlen(json), src, tok, mi, &r, msg,
				     sizeof(msg));

	if (ret != want || (want_msg && !strstr(msg, want_msg)))
		fail_msg("%s\n -> %d (want %d) \"%s\" (want \"%s\")", json, ret,
			 want, msg, want_msg ? want_msg : "");
	if (want)
		assert_null(r.fsid); /* released */
	task_request_release(&r);
}

static void test_create_table(void **state)
{
	static const struct {
		const char *json;
		enum task_source src;
		const char *tok;
		int ret;
		const char *msg;
	} c[] = {
		/* the four types */
		{"{" T_EXP "," BASE "}", TASK_SRC_API, NULL, 0, NULL},
		{"{" T_IMP "," BASE "}", TASK_SRC_API, NULL, 0, NULL},
		{"{" T_REL "," BASE "}", TASK_SRC_API, NULL, 0, NULL},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":1}", TASK_SRC_API,
		 NULL, 0, NULL},
		{"{" BASE "}", TASK_SRC_API, NULL, BAD,
		 "Value null at 'Type' failed to satisfy constraint: Member "
		 "must not be null"},
		{"{\"Type\":null," BASE "}", TASK_SRC_API, NULL, BAD,
		 "at 'Type'"},
		{"{\"Type\":\"EXPORT\"," BASE "}", TASK_SRC_API, NULL, BAD,
		 "Value 'EXPORT' at 'Type' failed to satisfy constraint: "
		 "Member must satisfy enum value set: [EXPORT_TO_REPOSITORY, "
		 "IMPORT_METADATA_FROM_REPOSITORY, "
		 "RELEASE_DATA_FROM_FILESYSTEM, AUTO_RELEASE_DATA]"},
		{"{\"Type\":\"export_to_repository\"," BASE "}", TASK_SRC_API,
		 NULL, BAD, "at 'Type'"},
		{"{\"Type\":1," BASE "}", TASK_SRC_API, NULL, BAD,
		 "Invalid type for parameter Type: expected string, got "
		 "integer"},
		/* body */
		{"", TASK_SRC_API, NULL, BAD, "'Type'"},
		{"{" T_EXP "," BASE, TASK_SRC_API, NULL, BAD,
		 "Malformed request body"},
		{"{" T_EXP "," BASE "} x", TASK_SRC_API, NULL, BAD,
		 "Malformed request body"},
		{"[]", TASK_SRC_API, NULL, BAD,
		 "expected a JSON object, got array"},
		{"\"x\"", TASK_SRC_API, NULL, BAD, "got string"},
		{"null", TASK_SRC_API, NULL, BAD, "got null"},
		{"{" T_EXP "," T_EXP "," BASE "}", TASK_SRC_API, NULL, BAD,
		 "Malformed request body"},
		{"{" T_EXP "," BASE ",\"Foo\":1}", TASK_SRC_API, NULL, BAD,
		 "Unknown parameter 'Foo' in the request"},
		{"{" T_EXP "," BASE ",\"type\":1}", TASK_SRC_API, NULL, BAD,
		 "Unknown parameter 'type'"},
		{"{" T_EXP ",\"Paths\":[\"a\"],\"FileSystemId\":\"" FSID
		 "\",\"Report\":{\"Enabled\":false,\"Extra\":1}}",
		 TASK_SRC_API, NULL, BAD,
		 "Unknown parameter 'Extra' in Report"},
		/* Paths */
		{"{" T_EXP "," BASE ",\"Paths\":[]}", TASK_SRC_API, NULL, 0,
		 NULL},
		{"{" T_EXP "," BASE ",\"Paths\":[\"\"]}", TASK_SRC_API, NULL, 0,
		 NULL},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a/b c\",\"/\"]}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"Paths\":\"a\"}", TASK_SRC_API, NULL,
		 BAD, "parameter Paths: expected list, got string"},
		{"{" T_EXP "," BASE ",\"Paths\":[1]}", TASK_SRC_API, NULL, BAD,
		 "parameter Paths[0]: expected string"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"ok\",\"a\\nb\"]}",
		 TASK_SRC_API, NULL, BAD,
		 "Value 'a?b' at 'Paths[1]' failed to satisfy constraint: "
		 "Member must satisfy regular expression pattern: "
		 "^[^\\u0000\\u0085\\u2028\\u2029\\r\\n]{0,4096}$"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\\rb\"]}", TASK_SRC_API,
		 NULL, BAD, "'Paths[0]'"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\\u0000b\"]}", TASK_SRC_API,
		 NULL, BAD, "'Paths[0]'"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\\u0085b\"]}", TASK_SRC_API,
		 NULL, BAD, "'Paths[0]'"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\xc2\x85"
		 "b\"]}",
		 TASK_SRC_API, NULL, BAD, "'Paths[0]'"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\\u2028b\"]}", TASK_SRC_API,
		 NULL, BAD, "'Paths[0]'"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\xe2\x80\xa9\"]}",
		 TASK_SRC_API, NULL, BAD, "'Paths[0]'"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\\tb\\u0084\\u2027\"]}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"Paths\":[\"caf\xc3\xa9/\xf0\x9f\x98\x80"
		 "\"]}",
		 TASK_SRC_API, NULL, 0, NULL},
		/* invalid UTF-8 and lone surrogates never reach the rules */
		{"{" T_EXP "," BASE ",\"Paths\":[\"a\xc3\"]}", TASK_SRC_API,
		 NULL, BAD, "Malformed request body"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"\xed\xa0\x80\"]}",
		 TASK_SRC_API, NULL, BAD, "Malformed request body"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"\\ud800\"]}", TASK_SRC_API,
		 NULL, BAD, "Malformed request body"},
		{"{" T_EXP "," BASE ",\"Paths\":[\"\xc0\xaf\"]}", TASK_SRC_API,
		 NULL, BAD, "Malformed request body"},
		/* FileSystemId */
		{"{" T_EXP "," REP_OFF "}", TASK_SRC_API, NULL, BAD,
		 "Value null at 'FileSystemId'"},
		{"{" T_EXP "," REP_OFF ",\"FileSystemId\":\"fs-01234567\"}",
		 TASK_SRC_API, NULL, TASK_ERR_FS_NOT_FOUND,
		 "File system 'fs-01234567' does not exist."},
		{"{" T_EXP "," REP_OFF ",\"FileSystemId\":\"fs-0123456\"}",
		 TASK_SRC_API, NULL, BAD,
		 "at 'FileSystemId' failed to satisfy constraint: Member must "
		 "have length greater than or equal to 11"},
		{"{" T_EXP "," REP_OFF
		 ",\"FileSystemId\":\"fs-0123456789abcdef01\"}",
		 TASK_SRC_API, NULL, TASK_ERR_FS_NOT_FOUND, NULL},
		{"{" T_EXP "," REP_OFF
		 ",\"FileSystemId\":\"fs-0123456789abcdef012\"}",
		 TASK_SRC_API, NULL, BAD, "less than or equal to 21"},
		{"{" T_EXP "," REP_OFF
		 ",\"FileSystemId\":\"fs-0123456789ABCDEF0\"}",
		 TASK_SRC_API, NULL, BAD,
		 "Member must satisfy regular expression pattern: "
		 "^(fs-[0-9a-f]{8,})$"},
		{"{" T_EXP "," REP_OFF
		 ",\"FileSystemId\":\"fc-0123456789abcdef0\"}",
		 TASK_SRC_API, NULL, BAD, "'FileSystemId'"},
		{"{" T_EXP "," REP_OFF
		 ",\"FileSystemId\":\"fs-0123456789abcdefg\"}",
		 TASK_SRC_API, NULL, BAD, "'FileSystemId'"},
		{"{" T_EXP "," REP_OFF ",\"FileSystemId\":[]}", TASK_SRC_API,
		 NULL, BAD,
		 "parameter FileSystemId: expected string, got array"},
		/* Report */
		{"{" T_EXP "," FS "}", TASK_SRC_API, NULL, BAD,
		 "Value null at 'Report'"},
		{"{" T_EXP "," FS ",\"Report\":{}}", TASK_SRC_API, NULL, BAD,
		 "Value null at 'Report.Enabled'"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":\"true\"}}",
		 TASK_SRC_API, NULL, BAD,
		 "parameter Report.Enabled: expected boolean, got string"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":1}}", TASK_SRC_API,
		 NULL, BAD, "Report.Enabled"},
		{"{" T_EXP "," FS ",\"Report\":true}", TASK_SRC_API, NULL, BAD,
		 "parameter Report: expected structure, got boolean"},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt/data/reports") "}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt/data") "}", TASK_SRC_API,
		 NULL, 0, NULL},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt/data/") "}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt/datax") "}",
		 TASK_SRC_API, NULL, BAD,
		 "Report.Path 's3://bkt/datax' must be inside the linked data "
		 "repository s3://bkt/data/"},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt/other/x") "}",
		 TASK_SRC_API, NULL, BAD, "inside the linked data repository"},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt") "}", TASK_SRC_API,
		 NULL, BAD, "inside the linked data repository"},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt2/data/x") "}",
		 TASK_SRC_API, NULL, BAD, "inside the linked data repository"},
		{"{" T_EXP "," FS "," REP_ON("s3://bk/data/x") "}",
		 TASK_SRC_API, NULL, BAD, "inside the linked data repository"},
		{"{" T_EXP "," FS "," REP_ON("/data/reports") "}", TASK_SRC_API,
		 NULL, BAD, "must be an S3 URL"},
		{"{" T_EXP "," FS "," REP_ON("S3://bkt/data/r") "}",
		 TASK_SRC_API, NULL, BAD, "must be an S3 URL"},
		{"{" T_EXP "," FS "," REP_ON("ab") "}", TASK_SRC_API, NULL, BAD,
		 "Value 'ab' at 'Report.Path' failed to satisfy constraint: "
		 "Member must have length greater than or equal to 3"},
		{"{" T_EXP "," FS "," REP_ON("s3://bkt/data/a\\nb") "}",
		 TASK_SRC_API, NULL, BAD,
		 "^[^\\u0000\\u0085\\u2028\\u2029\\r\\n]{3,4357}$"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":true}}",
		 TASK_SRC_API, NULL, BAD,
		 "Report.Path is required when Report.Enabled is true"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":true,\"Path\":"
		 "\"s3://bkt/data/r\",\"Scope\":\"FAILED_FILES_ONLY\"}}",
		 TASK_SRC_API, NULL, BAD,
		 "Report.Format is required when Report.Enabled is true"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":true,\"Path\":"
		 "\"s3://bkt/data/r\",\"Format\":\"REPORT_CSV_20191124\"}}",
		 TASK_SRC_API, NULL, BAD, "Report.Scope is required"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":true,\"Path\":"
		 "\"s3://bkt/data/r\",\"Format\":\"CSV\",\"Scope\":"
		 "\"FAILED_FILES_ONLY\"}}",
		 TASK_SRC_API, NULL, BAD,
		 "Value 'CSV' at 'Report.Format' failed to satisfy constraint: "
		 "Member must satisfy enum value set: [REPORT_CSV_20191124]"},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":true,\"Path\":"
		 "\"s3://bkt/data/r\",\"Format\":\"REPORT_CSV_20191124\","
		 "\"Scope\":\"ALL\"}}",
		 TASK_SRC_API, NULL, BAD,
		 "at 'Report.Scope' failed to satisfy constraint: Member must "
		 "satisfy enum value set: [FAILED_FILES_ONLY]"},
		/* a disabled report still has well-formed members */
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":false,\"Path\":"
		 "\"/elsewhere\",\"Format\":\"REPORT_CSV_20191124\"}}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," FS ",\"Report\":{\"Enabled\":false,\"Scope\":"
		 "\"X\"}}",
		 TASK_SRC_API, NULL, BAD, "'Report.Scope'"},
		/* ClientRequestToken */
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"a\"}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"A-z_0.9\"}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"\"}",
		 TASK_SRC_API, NULL, BAD,
		 "Value '' at 'ClientRequestToken' failed to satisfy "
		 "constraint: Member must have length greater than or equal "
		 "to 1"},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"x\"}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"a b\"}",
		 TASK_SRC_API, NULL, BAD,
		 "1 validation error detected: Value 'a b' at "
		 "'ClientRequestToken' failed to satisfy constraint: Member "
		 "must satisfy regular expression pattern: "
		 "^[A-Za-z0-9_.-]{0,63}$"},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"a/b\"}",
		 TASK_SRC_API, NULL, BAD, "'ClientRequestToken'"},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"caf\xc3\xa9\"}",
		 TASK_SRC_API, NULL, BAD, "'ClientRequestToken'"},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":\"a\\u0000\"}",
		 TASK_SRC_API, NULL, BAD, "'ClientRequestToken'"},
		{"{" T_EXP "," BASE ",\"ClientRequestToken\":7}", TASK_SRC_API,
		 NULL, BAD, "parameter ClientRequestToken: expected string"},
		/* Tags */
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"\"}]}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"Tags\":[]}", TASK_SRC_API, NULL, BAD,
		 "Value with 0 items at 'Tags' failed to satisfy constraint: "
		 "Member must have length greater than or equal to 1"},
		{"{" T_EXP "," BASE ",\"Tags\":{}}", TASK_SRC_API, NULL, BAD,
		 "parameter Tags: expected list, got object"},
		{"{" T_EXP "," BASE ",\"Tags\":[\"k\"]}", TASK_SRC_API, NULL,
		 BAD, "parameter Tags[0]: expected structure, got string"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Value\":\"v\"}]}",
		 TASK_SRC_API, NULL, BAD, "Value null at 'Tags[0].Key'"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"k\"}]}",
		 TASK_SRC_API, NULL, BAD, "Value null at 'Tags[0].Value'"},
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"\",\"Value\":\"v\"}]}",
		 TASK_SRC_API, NULL, BAD,
		 "at 'Tags[0].Key' failed to satisfy constraint: Member must "
		 "have length greater than or equal to 1"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\","
		 "\"X\":1}]}",
		 TASK_SRC_API, NULL, BAD, "Unknown parameter 'X' in Tags[0]"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"k\",\"Value\":1}]}",
		 TASK_SRC_API, NULL, BAD,
		 "parameter Tags[0].Value: expected "
		 "string, got integer"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"a b_.:/=+-@Z9\","
		 "\"Value\":\"x y\"}]}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"a,b\"}]}",
		 TASK_SRC_API, NULL, BAD,
		 "Value 'a,b' at 'Tags[0].Value' failed to satisfy "
		 "constraint: Member must satisfy regular expression pattern: "
		 "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$"},
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"k*\",\"Value\":\"\"}]}",
		 TASK_SRC_API, NULL, BAD, "'Tags[0].Key'"},
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"k\\t\",\"Value\":\"\"}]}",
		 TASK_SRC_API, NULL, BAD, "'Tags[0].Key'"},
		/* Unicode letters (L), numbers (N), separators (Z) */
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"caf\xc3\xa9 "
		 "\xe6\x97\xa5\xe6\x9c\xac \xd9\xa3 \xc2\xbd\","
		 "\"Value\":\"\xc2\xa0\\u2028\xe3\x80\x80\xce\xa9\"}]}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"\xf0\x9f\x98\x80\","
		 "\"Value\":\"\"}]}",
		 TASK_SRC_API, NULL, BAD, "'Tags[0].Key'"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"a\xe2\x82\xac\","
		 "\"Value\":\"\"}]}",
		 TASK_SRC_API, NULL, BAD, "'Tags[0].Key'"},
		{"{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"\xf0\x9d\x90\x80\","
		 "\"Value\":\"\"}]}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"1\"},"
		 "{\"Key\":\"j\",\"Value\":\"1\"},{\"Key\":\"k\",\"Value\":"
		 "\"2\"}]}",
		 TASK_SRC_API, NULL, BAD,
		 "Tags[2].Key 'k' duplicates Tags[0].Key: tag keys must be "
		 "unique"},
		{"{" T_EXP "," BASE
		 ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"1\"},"
		 "{\"Key\":\"K\",\"Value\":\"1\"}]}",
		 TASK_SRC_API, NULL, 0, NULL},
		/* CapacityToRelease */
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":0}", TASK_SRC_API,
		 NULL, BAD,
		 "Value '0' at 'CapacityToRelease' failed to satisfy "
		 "constraint: Member must have value greater than or equal to "
		 "1"},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":-5}", TASK_SRC_API,
		 NULL, BAD, "'CapacityToRelease'"},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":2147483647}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":2147483648}",
		 TASK_SRC_API, NULL, BAD,
		 "Value '2147483648' at 'CapacityToRelease' failed to satisfy "
		 "constraint: Member must have value less than or equal to "
		 "2147483647"},
		{"{" T_AUTO "," BASE
		 ",\"CapacityToRelease\":99999999999999999999}",
		 TASK_SRC_API, NULL, BAD, "Malformed request body"},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":1.0}",
		 TASK_SRC_API, NULL, BAD,
		 "parameter CapacityToRelease: expected integer, got number"},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":\"1\"}",
		 TASK_SRC_API, NULL, BAD,
		 "parameter CapacityToRelease: expected integer, got string"},
		{"{" T_AUTO "," BASE "}", TASK_SRC_API, NULL, BAD,
		 "CapacityToRelease is required for AUTO_RELEASE_DATA tasks"},
		{"{" T_EXP "," BASE ",\"CapacityToRelease\":1}", TASK_SRC_API,
		 NULL, BAD,
		 "CapacityToRelease is only valid for AUTO_RELEASE_DATA tasks, "
		 "not EXPORT_TO_REPOSITORY"},
		{"{" T_REL "," BASE ",\"CapacityToRelease\":1}", TASK_SRC_API,
		 NULL, BAD, "not RELEASE_DATA_FROM_FILESYSTEM"},
		/* ReleaseConfiguration */
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{}}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{"
		 "\"DurationSinceLastAccess\":{\"Unit\":\"DAYS\",\"Value\":0}}"
		 "}",
		 TASK_SRC_API, NULL, 0, NULL},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{"
		 "\"DurationSinceLastAccess\":{\"Unit\":\"DAYS\",\"Value\":-1}}"
		 "}",
		 TASK_SRC_API, NULL, BAD,
		 "Value '-1' at 'ReleaseConfiguration.DurationSinceLastAccess."
		 "Value' failed to satisfy constraint: Member must have value "
		 "greater than or equal to 0"},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{"
		 "\"DurationSinceLastAccess\":{\"Unit\":\"HOURS\",\"Value\":1}}"
		 "}",
		 TASK_SRC_API, NULL, BAD,
		 "Value 'HOURS' at "
		 "'ReleaseConfiguration.DurationSinceLastAccess.Unit' failed "
		 "to satisfy constraint: Member must satisfy enum value set: "
		 "[DAYS]"},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{"
		 "\"DurationSinceLastAccess\":{\"Unit\":\"DAYS\",\"Value\":1.5}"
		 "}}",
		 TASK_SRC_API, NULL, BAD,
		 "parameter "
		 "ReleaseConfiguration.DurationSinceLastAccess.Value: "
		 "expected integer"},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{"
		 "\"DurationSinceLastAccess\":{\"Unit\":\"DAYS\",\"V\":1}}}",
		 TASK_SRC_API, NULL, BAD,
		 "Unknown parameter 'V' in "
		 "ReleaseConfiguration.DurationSinceLastAccess"},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{\"X\":1}}",
		 TASK_SRC_API, NULL, BAD,
		 "Unknown parameter 'X' in ReleaseConfiguration"},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":[]}",
		 TASK_SRC_API, NULL, BAD, "expected structure, got array"},
		{"{" T_REL "," BASE ",\"ReleaseConfiguration\":{"
		 "\"DurationSinceLastAccess\":5}}",
		 TASK_SRC_API, NULL, BAD, "expected structure, got integer"},
		{"{" T_EXP "," BASE ",\"ReleaseConfiguration\":{}}",
		 TASK_SRC_API, NULL, BAD,
		 "ReleaseConfiguration is only valid for "
		 "RELEASE_DATA_FROM_FILESYSTEM tasks, not "
		 "EXPORT_TO_REPOSITORY"},
		{"{" T_AUTO "," BASE ",\"CapacityToRelease\":3,"
		 "\"ReleaseConfiguration\":{}}",
		 TASK_SRC_API, NULL, BAD, "not AUTO_RELEASE_DATA"},
		/* control files */
		{"{" T_EXP "}", TASK_SRC_CTL, "job-1", 0, NULL},
		{"{" T_EXP "}", TASK_SRC_CTL, NULL, 0, NULL},
		{"{" T_EXP ",\"ClientRequestToken\":\"job-1\"}", TASK_SRC_CTL,
		 "job-1", 0, NULL},
		{"{" T_EXP ",\"ClientRequestToken\":\"job-2\"}", TASK_SRC_CTL,
		 "job-1", BAD,
		 "ClientRequestToken 'job-2' differs from the control file "
		 "name"},
		{"{" T_EXP "}", TASK_SRC_CTL, "my job", BAD,
		 "Control file name 'my job' is not a valid "
		 "ClientRequestToken"},
		{"{" T_EXP "}", TASK_SRC_CTL, "", BAD, "Control file name ''"},
		{"{" T_EXP "}", TASK_SRC_CTL,
		 "0123456789012345678901234567890123456789012345678901234567890"
		 "123",
		 BAD, "Control file name"},
		{"{" T_EXP "," FS "}", TASK_SRC_CTL, "j", 0, NULL},
		{"{" T_EXP ",\"FileSystemId\":\"fs-0123456789abcdef1\"}",
		 TASK_SRC_CTL, "j", TASK_ERR_FS_NOT_FOUND,
		 "File system 'fs-0123456789abcdef1' does not exist."},
		{"{" T_EXP ",\"FileSystemId\":\"fs-x\"}", TASK_SRC_CTL, "j",
		 BAD, "'FileSystemId'"},
		{"{" T_EXP "," REP_ON("s3://bkt/data/r") "}", TASK_SRC_CTL, "j",
		 0, NULL},
		{"{" T_EXP "," REP_ON("s3://x/data/r") "}", TASK_SRC_CTL, "j",
		 BAD, "inside the linked data repository"},
		{"{" T_EXP ",\"Report\":{}}", TASK_SRC_CTL, "j", BAD,
		 "'Report.Enabled'"},
		{"{" T_EXP ",\"Bogus\":true}", TASK_SRC_CTL, "j", BAD,
		 "Unknown parameter 'Bogus'"},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		expect_create(c[i].json, c[i].src, c[i].tok, &mount, c[i].ret,
			      c[i].msg);
}

/* ---- boundaries built at run time ---- */

static char *rep(const char *unit, size_t n)
{
	size_t u = strlen(unit);
	char *s = malloc(u * n + 1);

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * u, unit, u);
	s[u * n] = '\0';
	return s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

static void expect_api(char *json, int want, const char *want_msg)
{
	expect_create(json, TASK_SRC_API, NULL, &mount, want, want_msg);
	free(json);
}

/* "[\"x\",\"x\",…]" with n items */
static char *list_of(const char *item, size_t n)
{
	size_t u = strlen(item);
	char *s = malloc((u + 1) * n + 3), *p = s;

	assert_non_null(s);
	*p++ = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		memcpy(p, item, u);
		p += u;
	}
	*p++ = ']';
	*p = '\0';
	return s;
}

static char *tags_of(size_t n)
{
	char *s = malloc(n * 32 + 3), *p = s;

	assert_non_null(s);
	*p++ = '[';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s{\"Key\":\"k%zu\",\"Value\":\"v\"}",
			     i ? "," : "", i);
	strcpy(p, "]");
	return s;
}

static void test_create_boundaries(void **state)
{
	char *a, *b;
	(void)state;

	/* 100 / 101 paths */
	a = list_of("\"p\"", 100);
	expect_api(fmt("{" T_EXP "," BASE ",\"Paths\":%s}", a), 0, NULL);
	free(a);
	a = list_of("\"p\"", 101);
	expect_api(fmt("{" T_EXP "," BASE ",\"Paths\":%s}", a), BAD,
		   "Value with 101 items at 'Paths' failed to satisfy "
		   "constraint: Member must have length less than or equal to "
		   "100");
	free(a);
	/* a path of 4096 / 4097 characters, ASCII and two-byte */
	for (int two = 0; two < 2; two++) {
		const char *unit = two ? "\xc3\xa9" : "a";

		a = rep(unit, 4096);
		expect_api(fmt("{" T_EXP "," BASE ",\"Paths\":[\"%s\"]}", a), 0,
			   NULL);
		free(a);
		a = rep(unit, 4097);
		expect_api(fmt("{" T_EXP "," BASE ",\"Paths\":[\"%s\"]}", a),
			   BAD,
			   "at 'Paths[0]' failed to satisfy constraint: Member "
			   "must have length less than or equal to 4096");
		free(a);
	}
	/* four-byte characters count once */
	a = rep("\xf0\x9f\x98\x80", 4096);
	expect_api(fmt("{" T_EXP "," BASE ",\"Paths\":[\"%s\"]}", a), 0, NULL);
	free(a);
	/* ClientRequestToken of 63 / 64 */
	a = rep("t", 63);
	expect_api(fmt("{" T_EXP "," BASE ",\"ClientRequestToken\":\"%s\"}", a),
		   0, NULL);
	free(a);
	a = rep("t", 64);
	expect_api(fmt("{" T_EXP "," BASE ",\"ClientRequestToken\":\"%s\"}", a),
		   BAD,
		   "at 'ClientRequestToken' failed to satisfy constraint: "
		   "Member must have length less than or equal to 63");
	free(a);
	/* 50 / 51 tags */
	a = tags_of(50);
	expect_api(fmt("{" T_EXP "," BASE ",\"Tags\":%s}", a), 0, NULL);
	free(a);
	a = tags_of(51);
	expect_api(fmt("{" T_EXP "," BASE ",\"Tags\":%s}", a), BAD,
		   "Value with 51 items at 'Tags' failed to satisfy "
		   "constraint: Member must have length less than or equal to "
		   "50");
	free(a);
	/* Key 128 / 129, Value 256 / 257 (also in letters beyond ASCII) */
	for (int two = 0; two < 2; two++) {
		const char *unit = two ? "\xc3\xa9" : "k";

		a = rep(unit, 128);
		b = rep(unit, 256);
		expect_api(fmt("{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"%s\","
			       "\"Value\":\"%s\"}]}",
			       a, b),
			   0, NULL);
		free(a);
		free(b);
		a = rep(unit, 129);
		expect_api(fmt("{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"%s\","
			       "\"Value\":\"\"}]}",
			       a),
			   BAD,
			   "at 'Tags[0].Key' failed to satisfy constraint: "
			   "Member must have length less than or equal to 128");
		free(a);
		a = rep(unit, 257);
		expect_api(fmt("{" T_EXP "," BASE ",\"Tags\":[{\"Key\":\"k\","
			       "\"Value\":\"%s\"}]}",
			       a),
			   BAD,
			   "at 'Tags[0].Value' failed to satisfy constraint: "
			   "Member must have length less than or equal to 256");
		free(a);
	}
	/* Report.Path of 4357 / 4358 characters, inside the repository */
	a = rep("r", 4357 - strlen("s3://bkt/data/"));
	expect_api(fmt("{" T_EXP "," FS "," REP_ON("s3://bkt/data/%s") "}", a),
		   0, NULL);
	free(a);
	a = rep("r", 4358 - strlen("s3://bkt/data/"));
	expect_api(fmt("{" T_EXP "," FS "," REP_ON("s3://bkt/data/%s") "}", a),
		   BAD,
		   "at 'Report.Path' failed to satisfy constraint: Member must "
		   "have length less than or equal to 4357");
	free(a);
	/* messages quote long values shortened */
	a = rep("t", 64);
	{
		struct task_request r;
		char msg[512];
		char *j = fmt("{" T_EXP "," BASE ",\"Paths\":[\"%s\\n\"]}", a);

		assert_int_equal(task_request_parse(j, strlen(j), TASK_SRC_API,
						    NULL, &mount, &r, msg,
						    sizeof(msg)),
				 BAD);
		assert_non_null(strstr(msg, "tttt?'"));
		free(j);
		free(a);
		a = rep("t", 4000);
		j = fmt("{" T_EXP "," BASE ",\"Paths\":[\"%s\\n\"]}", a);
		assert_int_equal(task_request_parse(j, strlen(j), TASK_SRC_API,
						    NULL, &mount, &r, msg,
						    sizeof(msg)),
				 BAD);
		assert_non_null(strstr(msg, "ttt...' at 'Paths[0]'"));
		/* a tiny buffer, and none at all */
		assert_int_equal(task_request_parse(j, strlen(j), TASK_SRC_API,
						    NULL, &mount, &r, msg, 4),
				 BAD);
		assert_int_equal(strlen(msg), 3);
		assert_int_equal(task_request_parse(j, strlen(j), TASK_SRC_API,
						    NULL, &mount, &r, NULL, 0),
				 BAD);
		free(j);
	}
	free(a);
}

static void test_create_fields(void **state)
{
	static const char json[] =
		"{\"Type\":\"RELEASE_DATA_FROM_FILESYSTEM\",\"Paths\":[\"b\","
		"\"a\"],\"FileSystemId\":\"" FSID
		"\",\"Report\":{\"Enabled\":true,\"Path\":\"s3://bkt/data/"
		"rep\","
		"\"Format\":\"REPORT_CSV_20191124\",\"Scope\":"
		"\"FAILED_FILES_ONLY\"},\"ClientRequestToken\":\"tok\","
		"\"Tags\":[{\"Key\":\"k1\",\"Value\":\"v1\"},{\"Key\":\"k2\","
		"\"Value\":\"\"}],\"ReleaseConfiguration\":{"
		"\"DurationSinceLastAccess\":{\"Unit\":\"DAYS\",\"Value\":7}}}";
	struct task_request r;
	char msg[256];
	(void)state;

	assert_int_equal(task_request_parse(json, strlen(json), TASK_SRC_API,
					    NULL, &mount, &r, msg, sizeof(msg)),
			 0);
	assert_int_equal(r.type, TASK_RELEASE);
	assert_int_equal(r.npaths, 2);
	assert_string_equal(r.paths[0], "b");
	assert_string_equal(r.paths[1], "a");
	assert_string_equal(r.fsid, FSID);
	assert_true(r.report_enabled);
	assert_string_equal(r.report_path, "s3://bkt/data/rep");
	assert_string_equal(r.report_format, "REPORT_CSV_20191124");
	assert_string_equal(r.report_scope, "FAILED_FILES_ONLY");
	assert_string_equal(r.token, "tok");
	assert_int_equal(r.ntags, 2);
	assert_string_equal(r.tags[1].key, "k2");
	assert_string_equal(r.tags[1].value, "");
	assert_int_equal(r.capacity_gib, 0);
	assert_true(r.have_release_cfg);
	assert_int_equal(r.release_days, 7);
	task_request_release(&r);
	assert_null(r.paths);

	/* a disabled report keeps nothing; absent Paths stay NULL; [] not */
	{
		static const char j2[] =
			"{\"Type\":\"EXPORT_TO_REPOSITORY\",\"FileSystemId\":"
			"\"" FSID "\",\"Report\":{\"Enabled\":false,\"Path\":"
			"\"s3://bkt/data/x\"}}";
		static const char j3[] =
			"{\"Type\":\"EXPORT_TO_REPOSITORY\",\"FileSystemId\":"
			"\"" FSID "\",\"Report\":{\"Enabled\":false},\"Paths\":"
			"[]}";

		assert_int_equal(task_request_parse(j2, strlen(j2),
						    TASK_SRC_API, NULL, &mount,
						    &r, msg, sizeof(msg)),
				 0);
		assert_false(r.report_enabled);
		assert_null(r.report_path);
		assert_null(r.report_format);
		assert_null(r.paths);
		assert_null(r.token);
		assert_false(r.have_release_cfg);
		task_request_release(&r);
		assert_int_equal(task_request_parse(j3, strlen(j3),
						    TASK_SRC_API, NULL, &mount,
						    &r, msg, sizeof(msg)),
				 0);
		assert_non_null(r.paths);
		assert_int_equal(r.npaths, 0);
		task_request_release(&r);
	}
	/* control files: own fsid, the file name as token, no report */
	{
		static const char j4[] = "{\"Type\":\"AUTO_RELEASE_DATA\","
					 "\"CapacityToRelease\":5}";

		assert_int_equal(task_request_parse(j4, strlen(j4),
						    TASK_SRC_CTL, "nightly",
						    &mount, &r, msg,
						    sizeof(msg)),
				 0);
		assert_int_equal(r.type, TASK_AUTO_RELEASE);
		assert_string_equal(r.fsid, FSID);
		assert_string_equal(r.token, "nightly");
		assert_false(r.report_enabled);
		assert_int_equal(r.capacity_gib, 5);
		task_request_release(&r);
	}
	/* an empty prefix: the whole bucket is the repository */
	{
		static const struct task_mount_info whole = {FSID, "bkt", ""};
		static const char *const ok[] = {"s3://bkt", "s3://bkt/",
						 "s3://bkt/any/where"};

		for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
			char *j = fmt("{" T_EXP "," FS ",\"Report\":{"
				      "\"Enabled\":true,\"Path\":\"%s\","
				      "\"Format\":\"REPORT_CSV_20191124\","
				      "\"Scope\":\"FAILED_FILES_ONLY\"}}",
				      ok[i]);

			expect_create(j, TASK_SRC_API, NULL, &whole, 0, NULL);
			free(j);
		}
		expect_create("{" T_EXP "," FS "," REP_ON("s3://bkt2/x") "}",
			      TASK_SRC_API, NULL, &whole, BAD, "inside");
	}
}

/* ---- equality ---- */

static void parse_ok(const char *json, struct task_request *r)
{
	char msg[256];
	int ret = task_request_parse(json, strlen(json), TASK_SRC_API, NULL,
				     &mount, r, msg, sizeof(msg));

	if (ret)
		fail_msg("%s: %d %s", json, ret, msg);
}

static void test_equal(void **state)
{
#define EQ_BASE T_EXP "," FS ",\"ClientRequestToken\":\"t\""
	static const char *const same[][2] = {
		{"{" EQ_BASE "," REP_OFF "}",
		 "{\"Report\":{\"Enabled\":false},\"FileSystemId\":\"" FSID
		 "\",\"ClientRequestToken\":\"t\"," T_EXP "}"},
		/* tags are a set */
		{"{" EQ_BASE "," REP_OFF ",\"Tags\":[{\"Key\":\"a\",\"Value\":"
		 "\"1\"},{\"Key\":\"b\",\"Value\":\"2\"}]}",
		 "{" EQ_BASE "," REP_OFF ",\"Tags\":[{\"Key\":\"b\",\"Value\":"
		 "\"2\"},{\"Key\":\"a\",\"Value\":\"1\"}]}"},
		/* a disabled report's other members do not matter */
		{"{" EQ_BASE "," REP_OFF "}",
		 "{" EQ_BASE ",\"Report\":{\"Enabled\":false,\"Scope\":"
		 "\"FAILED_FILES_ONLY\"}}"},
		{"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"]}",
		 "{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"]}"},
	};
	static const char *const base =
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"],\"Tags\":"
		"[{\"Key\":\"a\",\"Value\":\"1\"}]}";
	static const char *const differ[] = {
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"b\",\"a\"],\"Tags\":"
		"[{\"Key\":\"a\",\"Value\":\"1\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\"],\"Tags\":"
		"[{\"Key\":\"a\",\"Value\":\"1\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Tags\":[{\"Key\":\"a\",\"Value\":"
		"\"1\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[],\"Tags\":"
		"[{\"Key\":\"a\",\"Value\":\"1\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"],\"Tags\":"
		"[{\"Key\":\"a\",\"Value\":\"2\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"],\"Tags\":"
		"[{\"Key\":\"b\",\"Value\":\"1\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"],\"Tags\":"
		"[{\"Key\":\"a\",\"Value\":\"1\"},{\"Key\":\"b\",\"Value\":"
		"\"1\"}]}",
		"{" EQ_BASE "," REP_OFF ",\"Paths\":[\"a\",\"b\"]}",
		"{" EQ_BASE "," REP_ON(
			"s3://bkt/data/r") ",\"Paths\":[\"a\",\"b\"],\"Tags\":["
					   "{\"Key\":\"a\",\"Value\":"
					   "\"1\"}]}",
		"{" T_IMP "," FS ",\"ClientRequestToken\":\"t\"," REP_OFF
		",\"Paths\":[\"a\",\"b\"],\"Tags\":[{\"Key\":\"a\",\"Value\":"
		"\"1\"}]}",
		"{" T_EXP "," FS ",\"ClientRequestToken\":\"u\"," REP_OFF
		",\"Paths\":[\"a\",\"b\"],\"Tags\":[{\"Key\":\"a\",\"Value\":"
		"\"1\"}]}",
		"{" T_EXP "," FS "," REP_OFF
		",\"Paths\":[\"a\",\"b\"],\"Tags\":[{\"Key\":\"a\",\"Value\":"
		"\"1\"}]}",
	};
	struct task_request a, b;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(same); i++) {
		parse_ok(same[i][0], &a);
		parse_ok(same[i][1], &b);
		if (!task_request_equal(&a, &b) || !task_request_equal(&b, &a))
			fail_msg("not equal: %s / %s", same[i][0], same[i][1]);
		task_request_release(&a);
		task_request_release(&b);
	}
	parse_ok(base, &a);
	assert_true(task_request_equal(&a, &a));
	for (size_t i = 0; i < ARRAY_SIZE(differ); i++) {
		parse_ok(differ[i], &b);
		if (task_request_equal(&a, &b) || task_request_equal(&b, &a))
			fail_msg("equal: %s", differ[i]);
		task_request_release(&b);
	}
	task_request_release(&a);

	/* report paths, capacities, release days */
	{
		static const char *const pairs[][2] = {
			{"{" EQ_BASE "," REP_ON("s3://bkt/data/r") "}",
			 "{" EQ_BASE "," REP_ON("s3://bkt/data/s") "}"},
			{"{" T_AUTO "," FS "," REP_OFF
			 ",\"CapacityToRelease\":1}",
			 "{" T_AUTO "," FS "," REP_OFF
			 ",\"CapacityToRelease\":2}"},
			{"{" T_REL "," FS "," REP_OFF
			 ",\"ReleaseConfiguration\":{}}",
			 "{" T_REL "," FS "," REP_OFF
			 ",\"ReleaseConfiguration\":{"
			 "\"DurationSinceLastAccess\""
			 ":{\"Unit\":\"DAYS\",\"Value\":1}}}"},
			{"{" T_REL "," FS "," REP_OFF "}",
			 "{" T_REL "," FS "," REP_OFF
			 ",\"ReleaseConfiguration\":{}}"},
		};

		for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
			parse_ok(pairs[i][0], &a);
			parse_ok(pairs[i][1], &b);
			if (task_request_equal(&a, &b))
				fail_msg("equal: %s / %s", pairs[i][0],
					 pairs[i][1]);
			task_request_release(&a);
			task_request_release(&b);
		}
	}
#undef EQ_BASE
}

/* ---- DataRepositoryTask JSON ---- */

static void make_task(struct task *t, const char *req_json)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->id, "task-0123456789abcdef0");
	parse_ok(req_json, &t->req);
}

static void assert_task_equal(const struct task *a, const struct task *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->life, b->life);
	assert_true(task_request_equal(&a->req, &b->req));
	assert_int_equal(a->automatic, b->automatic);
	assert_int_equal(a->creation_ns, b->creation_ns);
	assert_int_equal(a->start_ns, b->start_ns);
	assert_int_equal(a->end_ns, b->end_ns);
	assert_int_equal(a->updated_ns, b->updated_ns);
	assert_int_equal(a->total, b->total);
	assert_int_equal(a->succeeded, b->succeeded);
	assert_int_equal(a->failed, b->failed);
	assert_int_equal(a->released_bytes, b->released_bytes);
	if (a->life == TASK_FAILED)
		assert_string_equal(a->failure_msg ? a->failure_msg : "",
				    b->failure_msg);
	else
		assert_null(b->failure_msg);
}

static char *roundtrip(const struct task *t)
{
	struct task u;
	char *s = task_to_json(t, "eu-west-1", NULL);

	assert_non_null(s);
	assert_int_equal(task_from_json(s, strlen(s), &u), 0);
	assert_task_equal(t, &u);
	task_release(&u);
	return s;
}

static void test_roundtrip(void **state)
{
	struct task t;
	char *s;
	(void)state;

	/* everything set */
	make_task(&t,
		  "{" T_REL "," FS "," REP_ON(
			  "s3://bkt/data/rep") ",\"Paths\":[\"b\",\"a\"],"
					       "\"ClientRequestToken\":\"tk\","
					       "\"Tags\":[{\"Key\":"
					       "\"k\xc3\xa9\",\"Value\":\"\"}],"
					       "\"ReleaseConfiguration\":{"
					       "\"DurationSinceLastAccess\":"
					       "{\"Unit\":\"DAYS\",\"Value\":"
					       "30}}}");
	t.life = TASK_FAILED;
	t.creation_ns = 1700000000123456000LL;
	t.start_ns = 1700000001000000000LL;
	t.end_ns = 1700000002999999000LL;
	t.updated_ns = 1700000002000001000LL;
	t.total = 10;
	t.succeeded = 7;
	t.failed = 3;
	t.released_bytes = (5ULL << 30) + 12345;
	t.failure_msg = strdup("3 files failed");
	s = roundtrip(&t);
	assert_non_null(strstr(s, "\"TaskId\":\"task-0123456789abcdef0\""));
	assert_non_null(strstr(s, "\"Lifecycle\":\"FAILED\""));
	assert_non_null(strstr(s, "\"Type\":\"RELEASE_DATA_FROM_FILESYSTEM\""));
	assert_non_null(strstr(s, "\"CreationTime\":1700000000.123456"));
	assert_non_null(strstr(s, "\"StartTime\":1700000001,"));
	assert_non_null(strstr(
		s, "\"ResourceARN\":\"arn:aws:fsx:eu-west-1:000000000000:task/"
		   "task-0123456789abcdef0\""));
	assert_non_null(strstr(s, "\"FileSystemId\":\"" FSID "\""));
	assert_non_null(strstr(s, "\"Paths\":[\"b\",\"a\"]"));
	assert_non_null(strstr(s, "\"FailureDetails\":{\"Message\":\"3 files "
				  "failed\"}"));
	assert_non_null(strstr(s, "\"ReleasedCapacity\":5,"));
	assert_non_null(strstr(s, "\"ReleasedBytes\":5368721465"));
	assert_non_null(strstr(s, "\"TotalCount\":10,\"SucceededCount\":7,"
				  "\"FailedCount\":3"));
	assert_non_null(strstr(s, "\"Report\":{\"Enabled\":true,\"Path\":"
				  "\"s3://bkt/data/rep\",\"Format\":"
				  "\"REPORT_CSV_20191124\",\"Scope\":"
				  "\"FAILED_FILES_ONLY\"}"));
	assert_non_null(strstr(s, "\"ReleaseConfiguration\":{"
				  "\"DurationSinceLastAccess\":{\"Unit\":"
				  "\"DAYS\",\"Value\":30}}"));
	assert_non_null(strstr(s, "\"ClientRequestToken\":\"tk\""));
	assert_null(strstr(s, "Automatic"));
	assert_null(strstr(s, "CapacityToRelease"));
	free(s);
	/* a message that is not UTF-8 is repaired */
	free(t.failure_msg);
	t.failure_msg = strdup("bad \xff\xc3 byte");
	s = task_to_json(&t, NULL, NULL);
	assert_non_null(strstr(s, "\"Message\":\"bad ?? byte\""));
	assert_non_null(strstr(s, "arn:aws:fsx:us-east-1:000000000000:task/"));
	free(s);
	/* lifecycle other than FAILED: no FailureDetails */
	t.life = TASK_SUCCEEDED;
	s = roundtrip(&t);
	assert_null(strstr(s, "FailureDetails"));
	free(s);
	task_release(&t);

	/* the minimum: no start/end/update, Report disabled, automatic */
	make_task(&t, "{" T_AUTO "," BASE ",\"CapacityToRelease\":12}");
	t.automatic = true;
	t.creation_ns = 5000; /* times keep microseconds */
	s = task_to_json(&t, NULL, "123456789012");
	assert_non_null(s);
	assert_non_null(strstr(s, "\"Report\":{\"Enabled\":false}"));
	assert_non_null(strstr(s, "\"Automatic\":true"));
	assert_non_null(strstr(s, "\"CapacityToRelease\":12"));
	assert_non_null(strstr(s, ":123456789012:task/"));
	assert_null(strstr(s, "StartTime"));
	assert_null(strstr(s, "EndTime"));
	assert_null(strstr(s, "LastUpdatedTime"));
	assert_null(strstr(s, "Tags"));
	assert_null(strstr(s, "Paths"));
	assert_null(strstr(s, "ReleaseConfiguration"));
	assert_null(strstr(s, "ClientRequestToken"));
	free(s);
	s = roundtrip(&t);
	free(s);
	for (int l = TASK_PENDING; l <= TASK_CANCELING; l++) {
		t.life = (enum task_lifecycle)l;
		free(roundtrip(&t));
	}
	task_release(&t);

	/* a task the engine made without the request rules still loads */
	memset(&t, 0, sizeof(t));
	strcpy(t.id, "task-00000000000000000");
	t.req.type = TASK_AUTO_RELEASE;
	t.automatic = true;
	free(roundtrip(&t));
	task_release(&t);

	/* Paths: [] survives, and a control-file task without report */
	make_task(&t, "{" T_EXP "," BASE ",\"Paths\":[]}");
	s = roundtrip(&t);
	assert_non_null(strstr(s, "\"Paths\":[]"));
	free(s);
	task_release(&t);
}

static void test_from_json_errors(void **state)
{
	static const struct {
		const char *json;
		int ret;
	} c[] = {
		{"", -EPROTO},
		{"{", -EPROTO},
		{"[]", -EPROTO},
		{"{}", -EINVAL},
		{"{\"TaskId\":\"task-0123456789abcdef0\",\"Lifecycle\":"
		 "\"DONE\",\"Type\":\"EXPORT_TO_REPOSITORY\"}",
		 -EINVAL},
		{"{\"TaskId\":\"task-0123\",\"Lifecycle\":\"PENDING\",\"Type\":"
		 "\"EXPORT_TO_REPOSITORY\"}",
		 -EINVAL},
		{"{\"TaskId\":\"task-0123456789abcdef0\",\"Lifecycle\":"
		 "\"PENDING\",\"Type\":\"EXPORT\"}",
		 -EINVAL},
		{"{\"TaskId\":\"task-0123456789abcdef0\",\"Lifecycle\":"
		 "\"PENDING\"}",
		 -EINVAL},
		{"{\"TaskId\":\"task-0123456789abcdef0\",\"Lifecycle\":"
		 "\"PENDING\",\"Type\":\"EXPORT_TO_REPOSITORY\",\"Status\":"
		 "{\"TotalCount\":-1}}",
		 -EINVAL},
		{"{\"TaskId\":\"task-0123456789abcdef0\",\"Lifecycle\":"
		 "\"PENDING\",\"Type\":\"EXPORT_TO_REPOSITORY\","
		 "\"CreationTime\":\"x\"}",
		 -EINVAL},
		{"{\"TaskId\":\"task-0123456789abcdef0\",\"Lifecycle\":"
		 "\"PENDING\",\"Type\":\"EXPORT_TO_REPOSITORY\","
		 "\"CreationTime\":1.5,\"Status\":{\"ReleasedCapacity\":2},"
		 "\"ResourceARN\":\"ignored\",\"Future\":1}",
		 0},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		struct task t;
		int ret = task_from_json(c[i].json, strlen(c[i].json), &t);

		if (ret != c[i].ret)
			fail_msg("%s -> %d, want %d", c[i].json, ret, c[i].ret);
		if (!ret) {
			assert_int_equal(t.creation_ns, 1500000000);
			assert_int_equal(t.released_bytes, 2ULL << 30);
		}
		task_release(&t);
	}
}

/* ---- Describe / Cancel ---- */

static void expect_describe(const char *json, int want, const char *want_msg)
{
	struct task_describe_request r;
	char msg[512];
	int ret = task_describe_parse(json, strlen(json), &r, msg, sizeof(msg));

	if (ret != want || (want_msg && !strstr(msg, want_msg)))
		fail_msg("%s\n -> %d (want %d) \"%s\" (want \"%s\")", json, ret,
			 want, msg, want_msg ? want_msg : "");
	task_describe_release(&r);
}

#define TID "task-0123456789abcdef0"

static void test_describe_table(void **state)
{
	static const struct {
		const char *json;
		int ret;
		const char *msg;
	} c[] = {
		{"", 0, NULL},
		{"{}", 0, NULL},
		{"{\"TaskIds\":[]}", 0, NULL},
		{"{\"TaskIds\":[\"" TID "\"]}", 0, NULL},
		{"{\"TaskIds\":[\"task-0123456789abcdef01234\"]}", 0, NULL},
		{"{\"TaskIds\":[\"task-0123456789abcdef\"]}", BAD,
		 "Value 'task-0123456789abcdef' at 'TaskIds[0]' failed to "
		 "satisfy constraint: Member must satisfy regular expression "
		 "pattern: ^(task-[0-9a-f]{17,})$"},
		{"{\"TaskIds\":[\"task-0123456789ABCDEF0\"]}", BAD,
		 "'TaskIds[0]'"},
		{"{\"TaskIds\":[\"TASK-0123456789abcdef0\"]}", BAD,
		 "'TaskIds[0]'"},
		{"{\"TaskIds\":[\"task\"]}", BAD,
		 "Member must have length greater than or equal to 12"},
		{"{\"TaskIds\":\"" TID "\"}", BAD,
		 "parameter TaskIds: expected list, got string"},
		{"{\"TaskIds\":[1]}", BAD, "parameter TaskIds[0]"},
		{"{\"Filters\":[]}", 0, NULL},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":["
		 "\"" FSID
		 "\"]},{\"Name\":\"task-lifecycle\",\"Values\":[\"PENDING\","
		 "\"CANCELED\"]},{\"Name\":\"file-cache-id\",\"Values\":["
		 "\"fc-1\"]}]}",
		 0, NULL},
		{"{\"Filters\":[{\"Name\":\"fs-id\",\"Values\":[\"x\"]}]}", BAD,
		 "Value 'fs-id' at 'Filters[0].Name' failed to satisfy "
		 "constraint: Member must satisfy enum value set: "
		 "[file-system-id, task-lifecycle, "
		 "data-repository-association-id, file-cache-id]"},
		{"{\"Filters\":[{\"Values\":[\"x\"]}]}", BAD,
		 "Value null at 'Filters[0].Name'"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\"}]}", BAD,
		 "Value null at 'Filters[0].Values'"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":[]}]}",
		 BAD, "Member must have length greater than or equal to 1"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":[\"\"]}"
		 "]}",
		 BAD,
		 "at 'Filters[0].Values[0]' failed to satisfy constraint: "
		 "Member must have length greater than or equal to 1"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":["
		 "\"a b\"]}]}",
		 BAD, "^[0-9a-zA-Z\\*\\.\\\\/\\?\\-\\_]*$"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":["
		 "\"a*.\\\\/?-_Z9\"]}]}",
		 0, NULL},
		{"{\"Filters\":[{\"Name\":\"task-lifecycle\",\"Values\":["
		 "\"DONE\"]}]}",
		 BAD,
		 "Value 'DONE' at 'Filters[0].Values[0]' failed to satisfy "
		 "constraint: Member must satisfy enum value set: [PENDING, "
		 "EXECUTING, FAILED, SUCCEEDED, CANCELED, CANCELING]"},
		{"{\"Filters\":[{\"Name\":\"task-lifecycle\",\"Values\":["
		 "\"pending\"]}]}",
		 BAD, "'Filters[0].Values[0]'"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":[\"a\"]"
		 "},"
		 "{\"Name\":\"file-system-id\",\"Values\":[\"b\"]}]}",
		 BAD,
		 "Filters[1]: filter 'file-system-id' is given more than "
		 "once"},
		{"{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":[\"a\"]"
		 ","
		 "\"Op\":1}]}",
		 BAD, "Unknown parameter 'Op' in Filters[0]"},
		{"{\"Filters\":{}}", BAD, "parameter Filters: expected list"},
		{"{\"Filters\":[[]]}", BAD,
		 "parameter Filters[0]: expected structure"},
		{"{\"MaxResults\":1}", 0, NULL},
		{"{\"MaxResults\":2147483647}", 0, NULL},
		{"{\"MaxResults\":0}", BAD,
		 "Value '0' at 'MaxResults' failed to satisfy constraint: "
		 "Member must have value greater than or equal to 1"},
		{"{\"MaxResults\":2147483648}", BAD,
		 "less than or equal to 2147483647"},
		{"{\"MaxResults\":\"5\"}", BAD,
		 "parameter MaxResults: expected integer, got string"},
		{"{\"NextToken\":\"QUJD\"}", 0, NULL},
		{"{\"NextToken\":\"QUI=\"}", 0, NULL},
		{"{\"NextToken\":\"QQ==\"}", 0, NULL},
		{"{\"NextToken\":\"a+/9\"}", 0, NULL},
		{"{\"NextToken\":\"\"}", BAD,
		 "at 'NextToken' failed to satisfy constraint: Member must "
		 "have length greater than or equal to 1"},
		{"{\"NextToken\":\"QUJ\"}", BAD,
		 "Value 'QUJ' at 'NextToken' failed to satisfy constraint: "
		 "Member must satisfy regular expression pattern: "
		 "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}"
		 "=)?$"},
		{"{\"NextToken\":\"Q===\"}", BAD, "'NextToken'"},
		{"{\"NextToken\":\"====\"}", BAD, "'NextToken'"},
		{"{\"NextToken\":\"QQ=A\"}", BAD, "'NextToken'"},
		{"{\"NextToken\":\"QU-_\"}", BAD, "'NextToken'"},
		{"{\"NextToken\":\"QUJD\\n\"}", BAD, "'NextToken'"},
		{"{\"NextToken\":5}", BAD,
		 "parameter NextToken: expected string"},
		{"{\"Other\":1}", BAD,
		 "Unknown parameter 'Other' in the request"},
		{"[1]", BAD, "expected a JSON object"},
		{"{\"MaxResults\":1,}", BAD, "Malformed request body"},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		expect_describe(c[i].json, c[i].ret, c[i].msg);
}

static void test_describe_boundaries(void **state)
{
	struct task_describe_request r;
	char *a, *j, msg[256];
	(void)state;

	a = list_of("\"" TID "\"", 50);
	j = fmt("{\"TaskIds\":%s}", a);
	expect_describe(j, 0, NULL);
	free(j);
	free(a);
	a = list_of("\"" TID "\"", 51);
	j = fmt("{\"TaskIds\":%s}", a);
	expect_describe(j, BAD,
			"Value with 51 items at 'TaskIds' failed to satisfy "
			"constraint: Member must have length less than or "
			"equal to 50");
	free(j);
	free(a);
	/* a task id of 128 / 129 characters */
	a = rep("a", 123);
	j = fmt("{\"TaskIds\":[\"task-%s\"]}", a);
	expect_describe(j, 0, NULL);
	free(j);
	free(a);
	a = rep("a", 124);
	j = fmt("{\"TaskIds\":[\"task-%s\"]}", a);
	expect_describe(j, BAD, "less than or equal to 128");
	free(j);
	free(a);
	/* 3 / 4 filters */
	j = "{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":[\"a\"]},"
	    "{\"Name\":\"task-lifecycle\",\"Values\":[\"FAILED\"]},{\"Name\":"
	    "\"file-cache-id\",\"Values\":[\"a\"]},{\"Name\":"
	    "\"data-repository-association-id\",\"Values\":[\"a\"]}]}";
	expect_describe(j, BAD,
			"Value with 4 items at 'Filters' failed to satisfy "
			"constraint: Member must have length less than or "
			"equal to 3");
	/* 20 / 21 values */
	a = list_of("\"v\"", 20);
	j = fmt("{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":%s}]}",
		a);
	expect_describe(j, 0, NULL);
	free(j);
	free(a);
	a = list_of("\"v\"", 21);
	j = fmt("{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":%s}]}",
		a);
	expect_describe(j, BAD,
			"Value with 21 items at 'Filters[0].Values' failed to "
			"satisfy constraint: Member must have length less "
			"than or equal to 20");
	free(j);
	free(a);
	/* a value of 128 / 129 */
	a = rep("v", 128);
	j = fmt("{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":["
		"\"%s\"]}]}",
		a);
	expect_describe(j, 0, NULL);
	free(j);
	free(a);
	a = rep("v", 129);
	j = fmt("{\"Filters\":[{\"Name\":\"file-system-id\",\"Values\":["
		"\"%s\"]}]}",
		a);
	expect_describe(j, BAD, "less than or equal to 128");
	free(j);
	free(a);
	/* NextToken of 252 (valid), 255 (too long a quantum), 256 */
	a = rep("A", 252);
	j = fmt("{\"NextToken\":\"%s\"}", a);
	expect_describe(j, 0, NULL);
	free(j);
	free(a);
	a = rep("A", 254);
	j = fmt("{\"NextToken\":\"%s==\"}", a);
	expect_describe(j, BAD, "less than or equal to 255");
	free(j);
	free(a);
	a = rep("A", 252);
	j = fmt("{\"NextToken\":\"%sAA=\"}", a);
	expect_describe(j, BAD, "regular expression");
	free(j);
	free(a);

	/* the fields */
	j = "{\"TaskIds\":[\"" TID "\"],\"Filters\":[{\"Name\":"
	    "\"task-lifecycle\",\"Values\":[\"EXECUTING\",\"CANCELING\"]},"
	    "{\"Name\":\"file-system-id\",\"Values\":[\"" FSID "\",\"fs-2\"]}],"
	    "\"MaxResults\":7,\"NextToken\":\"QUJD\"}";
	assert_int_equal(
		task_describe_parse(j, strlen(j), &r, msg, sizeof(msg)), 0);
	assert_int_equal(r.ntask_ids, 1);
	assert_string_equal(r.task_ids[0], TID);
	assert_int_equal(r.nlifecycles, 2);
	assert_int_equal(r.lifecycles[0], TASK_EXECUTING);
	assert_int_equal(r.lifecycles[1], TASK_CANCELING);
	assert_int_equal(r.nfs_ids, 2);
	assert_string_equal(r.fs_ids[1], "fs-2");
	assert_false(r.other_filter);
	assert_int_equal(r.max_results, 7);
	assert_string_equal(r.next_token, "QUJD");
	task_describe_release(&r);
	j = "{\"Filters\":[{\"Name\":\"data-repository-association-id\","
	    "\"Values\":[\"dra-1\"]}]}";
	assert_int_equal(
		task_describe_parse(j, strlen(j), &r, msg, sizeof(msg)), 0);
	assert_true(r.other_filter);
	assert_int_equal(r.nfs_ids, 0);
	assert_int_equal(r.max_results, 0);
	assert_null(r.next_token);
	task_describe_release(&r);
}

static void test_cancel(void **state)
{
	static const struct {
		const char *json;
		int ret;
		const char *msg;
	} c[] = {
		{"{\"TaskId\":\"" TID "\"}", 0, NULL},
		{"{\"TaskId\":\"task-0123456789abcdef01\"}", 0, NULL},
		{"{\"TaskId\":\"task-0123456789abcdef012\"}",
		 TASK_ERR_NOT_FOUND, "task-0123456789abcdef012 does not exist"},
		{"{}", BAD, "Value null at 'TaskId'"},
		{"", BAD, "Value null at 'TaskId'"},
		{"{\"TaskId\":null}", BAD, "Value null at 'TaskId'"},
		{"{\"TaskId\":\"task-0123\"}", BAD,
		 "Member must have length greater than or equal to 12"},
		{"{\"TaskId\":\"task-0123456789abcdef\"}", BAD,
		 "Member must satisfy regular expression pattern: "
		 "^(task-[0-9a-f]{17,})$"},
		{"{\"TaskId\":\"task-0123456789abcdeF0\"}", BAD, "'TaskId'"},
		{"{\"TaskId\":\"" TID "\",\"X\":1}", BAD,
		 "Unknown parameter 'X'"},
		{"{\"TaskId\":[\"" TID "\"]}", BAD,
		 "parameter TaskId: expected string, got array"},
		{"{\"TaskId\":", BAD, "Malformed request body"},
		{"7", BAD, "expected a JSON object, got integer"},
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		char id[24] = "junk", msg[256];
		int ret = task_cancel_parse(c[i].json, strlen(c[i].json), id,
					    msg, sizeof(msg));

		if (ret != c[i].ret || (c[i].msg && !strstr(msg, c[i].msg)))
			fail_msg("%s -> %d \"%s\"", c[i].json, ret, msg);
		if (!ret)
			assert_non_null(strstr(c[i].json, id));
		else
			assert_string_equal(id, "");
	}
}

/* ---- errors, enums, ids ---- */

static void test_errors(void **state)
{
	static const struct {
		int code;
		const char *name;
		int http;
	} c[] = {
		{TASK_ERR_BAD_REQUEST, "BadRequest", 400},
		{TASK_ERR_INCOMPATIBLE_PARAMETER, "IncompatibleParameterError",
		 400},
		{TASK_ERR_FS_NOT_FOUND, "FileSystemNotFound", 400},
		{TASK_ERR_SERVICE_LIMIT, "ServiceLimitExceeded", 400},
		{TASK_ERR_UNSUPPORTED, "UnsupportedOperation", 400},
		{TASK_ERR_EXECUTING, "DataRepositoryTaskExecuting", 400},
		{TASK_ERR_INTERNAL, "InternalServerError", 500},
		{TASK_ERR_NOT_FOUND, "DataRepositoryTaskNotFound", 400},
		{TASK_ERR_ENDED, "DataRepositoryTaskEnded", 400},
		{TASK_ERR_INVALID_ACTION, "InvalidAction", 400},
	};
	char *s, want[256];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		assert_string_equal(task_strerror(c[i].code), c[i].name);
		assert_int_equal(task_err_http_status(c[i].code), c[i].http);
		s = task_error_json(c[i].code, "m \"q\"");
		assert_non_null(s);
		snprintf(want, sizeof(want),
			 "{\"__type\":\"%s\",\"Message\":\"m \\\"q\\\"\"%s}",
			 c[i].name,
			 c[i].code == TASK_ERR_SERVICE_LIMIT
				 ? ",\"Limit\":\"TOTAL_IN_PROGRESS_COPY_"
				   "BACKUPS\""
				 : "");
		assert_string_equal(s, want);
		free(s);
	}
	assert_null(task_strerror(0));
	assert_null(task_strerror(-EINVAL));
	assert_null(task_strerror(TASK_ERR_INVALID_ACTION - 1));
	assert_null(task_strerror(-4096));
	assert_int_equal(task_err_http_status(-ENOMEM), 500);
	s = task_error_json(-ENOMEM, NULL);
	assert_string_equal(s, "{\"__type\":\"InternalServerError\","
			       "\"Message\":\"\"}");
	free(s);
}

static void test_enums(void **state)
{
	static const char *const types[] = {
		"EXPORT_TO_REPOSITORY", "IMPORT_METADATA_FROM_REPOSITORY",
		"RELEASE_DATA_FROM_FILESYSTEM", "AUTO_RELEASE_DATA"};
	static const char *const lives[] = {"PENDING",	"EXECUTING",
					    "FAILED",	"SUCCEEDED",
					    "CANCELED", "CANCELING"};
	enum task_lifecycle l;
	(void)state;

	for (int i = 0; i < 4; i++)
		assert_string_equal(task_type_name((enum task_type)i),
				    types[i]);
	assert_null(task_type_name((enum task_type)4));
	for (int i = 0; i < 6; i++) {
		assert_string_equal(task_lifecycle_name((enum task_lifecycle)i),
				    lives[i]);
		assert_int_equal(task_lifecycle_parse(lives[i], &l), 0);
		assert_int_equal(l, i);
	}
	assert_null(task_lifecycle_name((enum task_lifecycle)6));
	assert_int_equal(task_lifecycle_parse("pending", &l), -EINVAL);
	assert_int_equal(task_lifecycle_parse("", &l), -EINVAL);
	assert_true(task_finished(TASK_FAILED));
	assert_true(task_finished(TASK_SUCCEEDED));
	assert_true(task_finished(TASK_CANCELED));
	assert_false(task_finished(TASK_CANCELING));
	assert_false(task_finished(TASK_PENDING));
	assert_false(task_finished(TASK_EXECUTING));
}

static void test_make_id(void **state)
{
	char a[24], b[24], msg[64];
	(void)state;

	assert_int_equal(task_make_id(a), 0);
	assert_int_equal(task_make_id(b), 0);
	assert_int_equal(strlen(a), 22);
	assert_memory_equal(a, "task-", 5);
	assert_int_equal(strspn(a + 5, "0123456789abcdef"), 17);
	assert_string_not_equal(a, b);
	/* valid for Cancel and Describe */
	{
		char j[64], id[24];

		snprintf(j, sizeof(j), "{\"TaskId\":\"%s\"}", a);
		assert_int_equal(
			task_cancel_parse(j, strlen(j), id, msg, sizeof(msg)),
			0);
		assert_string_equal(id, a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_table),
		cmocka_unit_test(test_create_boundaries),
		cmocka_unit_test(test_create_fields),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_from_json_errors),
		cmocka_unit_test(test_describe_table),
		cmocka_unit_test(test_describe_boundaries),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_make_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
