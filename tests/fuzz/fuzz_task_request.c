// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the FSx request parsers of tasks/task.h (task.c,
 * task_describe.c; request bodies come from the network and from control
 * files). Beyond "no crash": every accepted CreateDataRepositoryTask request
 * must survive the task_to_json / task_from_json round trip unchanged. Build
 * with -DTIDEFS_FUZZ=ON and clang; run:
 * ./fuzz_task_request -max_len=16384 corpus/
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct task_mount_info mount = {"fs-0123456789abcdef0", "bkt",
					     "data/"};

static void roundtrip(struct task_request *r)
{
	struct task t, u;
	char *s;

	memset(&t, 0, sizeof(t));
	strcpy(t.id, "task-0123456789abcdef0");
	t.req = *r;
	t.life = TASK_FAILED;
	t.failure_msg = NULL;
	s = task_to_json(&t, "us-east-1", NULL);
	if (!s)
		__builtin_trap();
	if (task_from_json(s, strlen(s), &u) ||
	    !task_request_equal(&t.req, &u.req))
		__builtin_trap();
	task_release(&u);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	struct task_describe_request d;
	struct task_request r;
	struct task t;
	char msg[256], id[24];

	for (int src = TASK_SRC_API; src <= TASK_SRC_CTL; src++) {
		if (!task_request_parse(json, size, (enum task_source)src,
					src == TASK_SRC_CTL ? "tok" : NULL,
					&mount, &r, msg, sizeof(msg)))
			roundtrip(&r);
		else if (!memchr(msg, '\0', sizeof(msg)))
			__builtin_trap();
		task_request_release(&r);
	}
	if (!task_describe_parse(json, size, &d, msg, sizeof(msg)))
		task_describe_release(&d);
	if (!task_cancel_parse(json, size, id, msg, sizeof(msg)) &&
	    strncmp(id, "task-", 5))
		__builtin_trap();
	if (!task_from_json(json, size, &t))
		task_release(&t);
	return 0;
}
