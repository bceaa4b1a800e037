/* SPDX-License-Identifier: MIT */
/*
 * The data repository task model and the FSx request/response shapes:
 * parsing and validating CreateDataRepositoryTask, DescribeDataRepositoryTasks
 * and CancelDataRepositoryTask requests exactly as the FSx API does
 * (docs/FSX-SEMANTICS.md), and rendering DataRepositoryTask objects and FSx
 * error bodies. Pure functions over JSON text: no I/O, no threads, so every
 * rule is unit-tested table-driven.
 *
 * This is part of the tasks module; tasks/tasks.h includes it.
 */
#ifndef TIDEFS_TASK_H
#define TIDEFS_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FSx error names, as negative codes below -4096 (see task_strerror). */
enum task_err {
	TASK_ERR_BAD_REQUEST = -4097, /* BadRequest */
	TASK_ERR_INCOMPATIBLE_PARAMETER =
		-4098,			 /* IncompatibleParameterError */
	TASK_ERR_FS_NOT_FOUND = -4099,	 /* FileSystemNotFound */
	TASK_ERR_SERVICE_LIMIT = -4100,	 /* ServiceLimitExceeded */
	TASK_ERR_UNSUPPORTED = -4101,	 /* UnsupportedOperation */
	TASK_ERR_EXECUTING = -4102,	 /* DataRepositoryTaskExecuting */
	TASK_ERR_INTERNAL = -4103,	 /* InternalServerError */
	TASK_ERR_NOT_FOUND = -4104,	 /* DataRepositoryTaskNotFound */
	TASK_ERR_ENDED = -4105,		 /* DataRepositoryTaskEnded */
	TASK_ERR_INVALID_ACTION = -4106, /* InvalidAction (unknown operation) */
};

/* "BadRequest", … for a TASK_ERR_* code; NULL for anything else. */
const char *task_strerror(int code);
/* HTTP status the FSx service uses for it: 400, or 500 for InternalServerError.
 */
int task_err_http_status(int code);
/* The FSx error body {"__type": NAME, "Message": msg} (plus "Limit" for
 * ServiceLimitExceeded), malloc'ed; NULL on ENOMEM. */
char *task_error_json(int code, const char *msg);

enum task_type {
	TASK_EXPORT = 0,       /* EXPORT_TO_REPOSITORY */
	TASK_IMPORT = 1,       /* IMPORT_METADATA_FROM_REPOSITORY */
	TASK_RELEASE = 2,      /* RELEASE_DATA_FROM_FILESYSTEM */
	TASK_AUTO_RELEASE = 3, /* AUTO_RELEASE_DATA */
};
const char *task_type_name(enum task_type t);

enum task_lifecycle {
	TASK_PENDING = 0,
	TASK_EXECUTING = 1,
	TASK_FAILED = 2,
	TASK_SUCCEEDED = 3,
	TASK_CANCELED = 4,
	TASK_CANCELING = 5,
};
const char *task_lifecycle_name(enum task_lifecycle l);
/* Parse "PENDING", …; -EINVAL for unknown names. */
int task_lifecycle_parse(const char *s, enum task_lifecycle *out);
static inline bool task_finished(enum task_lifecycle l)
{
	return l == TASK_FAILED || l == TASK_SUCCEEDED || l == TASK_CANCELED;
}

/* Where a request came from: the FSx wire API requires FileSystemId and
 * Report; control files may leave them out (the mount's own id; no report)
 * and name the ClientRequestToken by the file name. */
enum task_source {
	TASK_SRC_API = 0,
	TASK_SRC_CTL = 1,
};

struct task_tag {
	char *key;   /* owned */
	char *value; /* owned */
};

/* A validated CreateDataRepositoryTask request. All strings owned. */
struct task_request {
	enum task_type type;
	char **paths; /* as given (NULL when absent) */
	size_t npaths;
	char *fsid;
	bool report_enabled;
	char *report_path;   /* NULL unless enabled */
	char *report_format; /* "REPORT_CSV_20191124" */
	char *report_scope;  /* "FAILED_FILES_ONLY" */
	char *token;	     /* ClientRequestToken or NULL */
	struct task_tag *tags;
	size_t ntags;
	uint64_t capacity_gib; /* CapacityToRelease; 0 when absent */
	bool have_release_cfg; /* ReleaseConfiguration given */
	uint64_t release_days; /* DurationSinceLastAccess.Value (default 0) */
};

/* What the validator needs to know about the mount. */
struct task_mount_info {
	const char *fsid; /* "fs-…" */
	const char *bucket;
	const char *prefix; /* "" or "a/b/" */
};

/*
 * Parse and validate a CreateDataRepositoryTask request body. For
 * TASK_SRC_CTL, ctl_token is the control file's name: it becomes the
 * ClientRequestToken (a different token in the JSON is a BadRequest), a
 * missing FileSystemId means the mount's own, a missing Report means
 * disabled. Returns 0, or a TASK_ERR_* code with a message naming the field
 * in msg (BadRequest for every malformed or out-of-range field, wrong types,
 * unknown members, bad JSON; FileSystemNotFound for another file system;
 * BadRequest for a report path outside s3://bucket/prefix), -ENOMEM.
 * Release with task_request_release() on every path.
 */
int task_request_parse(const char *json, size_t len, enum task_source src,
		       const char *ctl_token, const struct task_mount_info *mi,
		       struct task_request *out, char *msg, size_t msglen);
void task_request_release(struct task_request *r);
/* Do two requests ask for the same thing (for ClientRequestToken
 * idempotency)? */
bool task_request_equal(const struct task_request *a,
			const struct task_request *b);

/* One task: the request plus what happened to it. */
struct task {
	char id[24]; /* "task-" + 17 lowercase hex */
	enum task_lifecycle life;
	struct task_request req;
	bool automatic; /* created by the eviction thread */
	int64_t creation_ns, start_ns, end_ns, updated_ns; /* 0: not yet */
	uint64_t total, succeeded, failed;
	uint64_t released_bytes;
	char *failure_msg; /* owned; set when FAILED */
};

/* Make a new task id ("task-" + 17 random lowercase hex digits). */
int task_make_id(char id[24]);
void task_release(struct task *t);

/*
 * The DataRepositoryTask JSON object of t (FSx shape: TaskId, Lifecycle,
 * Type, CreationTime/StartTime/EndTime as epoch seconds, ResourceARN
 * arn:aws:fsx:<region>:<account>:task/<id>, Tags, FileSystemId, Paths,
 * FailureDetails.Message when FAILED, Status {TotalCount, SucceededCount,
 * FailedCount, LastUpdatedTime, ReleasedCapacity (GiB), ReleasedBytes},
 * Report, CapacityToRelease, ReleaseConfiguration, Automatic). Malloc'ed
 * text, or NULL on ENOMEM. The persisted form is the same JSON.
 */
char *task_to_json(const struct task *t, const char *region,
		   const char *account);
/* Rebuild a task from task_to_json() output (for the tasks table). 0,
 * -EINVAL (-EPROTO for malformed), -ENOMEM. */
int task_from_json(const char *json, size_t len, struct task *out);

/* A validated DescribeDataRepositoryTasks request. */
struct task_describe_request {
	char **task_ids; /* ≤ 50 */
	size_t ntask_ids;
	/* Filters: each name with its values; names are file-system-id,
	 * task-lifecycle, data-repository-association-id, file-cache-id. */
	char **fs_ids;
	size_t nfs_ids;
	enum task_lifecycle *lifecycles;
	size_t nlifecycles;
	bool other_filter; /* a dra/file-cache filter: matches nothing here */
	uint32_t max_results; /* 0: default */
	char *next_token;     /* owned or NULL */
};
int task_describe_parse(const char *json, size_t len,
			struct task_describe_request *out, char *msg,
			size_t msglen);
void task_describe_release(struct task_describe_request *r);

/* CancelDataRepositoryTask: {"TaskId": "task-…"}. */
int task_cancel_parse(const char *json, size_t len, char id[24], char *msg,
		      size_t msglen);

#endif
