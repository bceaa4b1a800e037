/* SPDX-License-Identifier: MIT */
/*
 * api — the FSx-compatible JSON endpoint: `POST /` with
 * `X-Amz-Target: AWSSimbaAPIService_v20180301.<Operation>`, bodies in
 * application/x-amz-json-1.1, every request SigV4-signed (service "fsx")
 * with a key from the configured credentials file. Operations go to the task
 * engine, so a request here and one written to .tidefs/tasks/ make the same
 * task. boto3 and the aws CLI work with only --endpoint-url changed.
 */
#ifndef TIDEFS_API_H
#define TIDEFS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct task_engine;
struct api_server; /* opaque */

struct api_config {
	const char *listen; /* "127.0.0.1:PORT", "[::1]:PORT" or "unix:/path" */
	const char *credentials; /* AWS shared-credentials file: every
				  * section's key pair is accepted */
	const char *region;	 /* expected in the credential scope */
	int max_skew_s;		 /* allowed clock skew of X-Amz-Date; 0 = 300 */
	size_t max_body;	 /* 0 = 1 MiB */
	unsigned max_conns;	 /* 0 = 64 */
};

/* Load the credentials, bind and start serving on a thread of its own.
 * 0, -ENOENT/-EACCES (credentials file), -EINVAL (no keys in it, bad
 * listen address), -EADDRINUSE, -errno. */
int api_server_start(const struct api_config *cfg, struct task_engine *e,
		     struct api_server **out);
void api_server_stop(struct api_server *s);

/* ---- SigV4 verification, exposed for unit tests ---- */

struct api_key {
	char *id;     /* access key id, owned */
	char *secret; /* owned */
};

struct api_request_view {
	const char *method;
	const char *path;  /* as received (already encoded) */
	const char *query; /* may be "" */
	/* Header lookup: value of a header (case-insensitive) or NULL. */
	const char *(*header)(void *arg, const char *name);
	void *arg;
	const void *body;
	size_t body_len;
};

enum api_auth_err {
	API_AUTH_OK = 0,
	API_AUTH_MISSING = -4201,     /* MissingAuthenticationTokenException */
	API_AUTH_MALFORMED = -4202,   /* IncompleteSignatureException */
	API_AUTH_UNKNOWN_KEY = -4203, /* UnrecognizedClientException */
	API_AUTH_BAD_SIGNATURE = -4204, /* InvalidSignatureException */
	API_AUTH_EXPIRED = -4205,  /* InvalidSignatureException (expired) */
	API_AUTH_REPLAYED = -4206, /* InvalidSignatureException (replay) */
};

/* The AWS error name for an api_auth_err, and a message into msg. */
const char *api_auth_error_name(int err);

/*
 * Verify the SigV4 Authorization of a request: scope service "fsx" and the
 * region, X-Amz-Date within max_skew_s of now_s, signed headers including
 * host and x-amz-date, the body's hash, the signature (constant-time). Does
 * not check replays. Returns API_AUTH_OK or an api_auth_err, with a
 * message in msg; *sig_out (65 bytes) gets the signature for replay checks.
 */
int api_verify_sigv4(const struct api_request_view *r,
		     const struct api_key *keys, size_t nkeys,
		     const char *region, int64_t now_s, int max_skew_s,
		     char sig_out[65], char *msg, size_t msglen);

/* Parse an AWS shared-credentials file into keys (every section with both
 * aws_access_key_id and aws_secret_access_key). 0, -errno. */
int api_load_keys(const char *path, struct api_key **keys, size_t *nkeys);
void api_free_keys(struct api_key *keys, size_t nkeys);

#endif
