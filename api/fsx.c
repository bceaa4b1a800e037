// SPDX-License-Identifier: MIT
/*
 * DESIGN
 *
 * The FSx JSON 1.1 endpoint on libmicrohttpd. One internal polling thread
 * (epoll) serves every connection; a request's body is gathered up to
 * max_body, then verified (SigV4, clock skew, replay) and handed to the
 * task engine, whose calls are short (they queue work, never run it). So
 * nothing here blocks on S3.
 *
 * Replays: a request whose signature was already seen within the skew
 * window is refused, unless replaying it cannot change anything: read-only
 * operations (Describe*), CancelDataRepositoryTask (a task is canceled
 * once; a replay answers CANCELING or DataRepositoryTaskEnded) and a
 * CreateDataRepositoryTask that carries a ClientRequestToken (the same
 * signature means the same body, so the same token and parameters, which
 * return the original task). botocore signs no per-call nonce
 * (amz-sdk-invocation-id is added after signing) and X-Amz-Date has
 * one-second resolution, so a client polling a task, cancelling twice, or
 * retrying a create with its token sends identical signatures within a
 * second and must get the real answer. What stays checked is what a replay
 * could repeat: a create without a token (boto3 and the CLI always fill
 * one in; raw clients may not), and anything unknown. Signatures live in a
 * ring protected by `lock`, the only lock in this file.
 *
 * Bodies: a Content-Length over max_body is refused (413) before the body is
 * read; a chunked body that grows past it is discarded and refused at the end.
 */
#include "api/api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "s3/s3.h"
#include "tasks/tasks.h"

#define TARGET_PREFIX "AWSSimbaAPIService_v20180301."
#define REPLAY_SLOTS  4096

struct seen {
	char sig[65];
	int64_t until;
};

struct api_server {
	struct api_config cfg;
	char *region;
	struct task_engine *e;
	struct api_key *keys;
	size_t nkeys;
	struct MHD_Daemon *d;
	int fd;
	char *unix_path; /* removed at stop */
	pthread_mutex_t lock;
	struct seen seen[REPLAY_SLOTS]; /* protected by lock */
	size_t seen_next;		/* protected by lock */
};

struct conn {
	char *body;
	size_t len, cap;
	bool too_big;
	bool answered; /* a response is already queued */
};

/* ---- credentials ---- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

void api_free_keys(struct api_key *keys, size_t nkeys)
{
	for (size_t i = 0; i < nkeys; i++) {
		free(keys[i].id);
		if (keys[i].secret) {
			explicit_bzero(keys[i].secret, strlen(keys[i].secret));
			free(keys[i].secret);
		}
	}
	free(keys);
}

static int push_key(struct api_key **keys, size_t *n, char *id, char *secret)
{
	struct api_key *k;

	if (!id || !secret)
		return 0; /* an incomplete section is ignored */
	k = realloc(*keys, (*n + 1) * sizeof(**keys));
	if (!k)
		return -ENOMEM;
	*keys = k;
	k[*n].id = strdup(id);
	k[*n].secret = strdup(secret);
	if (!k[*n].id || !k[*n].secret) {
		free(k[*n].id);
		free(k[*n].secret);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

int api_load_keys(const char *path, struct api_key **keys, size_t *nkeys)
{
	char line[1024], id[256] = "", secret[256] = "";
	FILE *f = fopen(path, "re");
	int ret = 0;

	*keys = NULL;
	*nkeys = 0;
	if (!f)
		return -errno;
	while (ret == 0 && fgets(line, sizeof(line), f)) {
		char *l = trim(line), *eq;

		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			ret = push_key(keys, nkeys, id[0] ? id : NULL,
				       secret[0] ? secret : NULL);
			id[0] = secret[0] = '\0';
			continue;
		}
		eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		if (!strcmp(trim(l), "aws_access_key_id"))
			snprintf(id, sizeof(id), "%s", trim(eq + 1));
		else if (!strcmp(trim(l), "aws_secret_access_key"))
			snprintf(secret, sizeof(secret), "%s", trim(eq + 1));
	}
	if (ret == 0)
		ret = push_key(keys, nkeys, id[0] ? id : NULL,
			       secret[0] ? secret : NULL);
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(line, sizeof(line));
	fclose(f);
	if (ret == 0 && *nkeys == 0)
		ret = -EINVAL;
	if (ret < 0) {
		api_free_keys(*keys, *nkeys);
		*keys = NULL;
		*nkeys = 0;
	}
	return ret;
}

/* ---- SigV4 verification ---- */

const char *api_auth_error_name(int err)
{
	switch (err) {
	case API_AUTH_MISSING:
		return "MissingAuthenticationTokenException";
	case API_AUTH_MALFORMED:
		return "IncompleteSignatureException";
	case API_AUTH_UNKNOWN_KEY:
		return "UnrecognizedClientException";
	default:
		return "InvalidSignatureException";
	}
}

__attribute__((format(printf, 4, 5))) static int
auth_fail(int code, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return code;
}

static int parse_amz_date(const char *s, int64_t *out)
{
	struct tm tm = {0};
	char *end;

	if (!s || strlen(s) != 16)
		return -EINVAL;
	end = strptime(s, "%Y%m%dT%H%M%SZ", &tm);
	if (!end || *end)
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

struct auth_parts {
	char key_id[128], date[16], region[64], service[32];
	char signed_headers[1024];
	char signature[65];
};

/* "AWS4-HMAC-SHA256 Credential=…/…/…/…/aws4_request, SignedHeaders=…,
 * Signature=…" */
static int parse_authorization(const char *h, struct auth_parts *p)
{
	const char *c, *sh, *sg;
	int n;

	if (strncmp(h, "AWS4-HMAC-SHA256 ", 17))
		return -EINVAL;
	c = strstr(h, "Credential=");
	sh = strstr(h, "SignedHeaders=");
	sg = strstr(h, "Signature=");
	if (!c || !sh || !sg)
		return -EINVAL;
	n = sscanf(c + 11, "%127[^/]/%15[^/]/%63[^/]/%31[^/]/aws4_request",
		   p->key_id, p->date, p->region, p->service);
	if (n != 4)
		return -EINVAL;
	if (sscanf(sh + 14, "%1023[^, ]", p->signed_headers) != 1 ||
	    sscanf(sg + 10, "%64[0-9a-f]", p->signature) != 1 ||
	    strlen(p->signature) != 64)
		return -EINVAL;
	return 0;
}

static bool ct_equal(const char *a, const char *b, size_t n)
{
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

int api_verify_sigv4(const struct api_request_view *r,
		     const struct api_key *keys, size_t nkeys,
		     const char *region, int64_t now_s, int max_skew_s,
		     char sig_out[65], char *msg, size_t msglen)
{
	struct s3_header hdrs[32];
	struct s3_sigv4_request sr = {0};
	struct auth_parts p;
	const struct api_key *k = NULL;
	const char *auth, *amz_date;
	char names[1024], *save = NULL, *tok, hash[65], authz[1024], sig[65];
	size_t nh = 0;
	int64_t t;
	bool have_host = false, have_date = false;

	auth = r->header(r->arg, "Authorization");
	if (!auth)
		return auth_fail(API_AUTH_MISSING, msg, msglen,
				 "Missing Authentication Token");
	if (parse_authorization(auth, &p) < 0)
		return auth_fail(API_AUTH_MALFORMED, msg, msglen,
				 "Authorization header requires Credential,"
				 " SignedHeaders and Signature (AWS4-HMAC-"
				 "SHA256)");
	for (size_t i = 0; i < nkeys; i++)
		if (!strcmp(keys[i].id, p.key_id))
			k = &keys[i];
	if (!k)
		return auth_fail(API_AUTH_UNKNOWN_KEY, msg, msglen,
				 "The security token included in the request"
				 " is invalid");
	if (strcmp(p.service, "fsx") || (region && strcmp(p.region, region)))
		return auth_fail(API_AUTH_BAD_SIGNATURE, msg, msglen,
				 "Credential should be scoped to a valid"
				 " region ('%s') and service 'fsx'",
				 region ? region : "");
	amz_date = r->header(r->arg, "X-Amz-Date");
	if (parse_amz_date(amz_date, &t) < 0 || strncmp(amz_date, p.date, 8))
		return auth_fail(API_AUTH_MALFORMED, msg, msglen,
				 "X-Amz-Date is missing, malformed or does"
				 " not match the credential scope");
	if (t < now_s - max_skew_s || t > now_s + max_skew_s)
		return auth_fail(API_AUTH_EXPIRED, msg, msglen,
				 "Signature expired: %s is not within %d"
				 " seconds of the server's time",
				 amz_date, max_skew_s);

	snprintf(names, sizeof(names), "%s", p.signed_headers);
	for (tok = strtok_r(names, ";", &save); tok;
	     tok = strtok_r(NULL, ";", &save)) {
		const char *v = r->header(r->arg, tok);
		if (!v || nh == ARRAY_SIZE(hdrs))
			return auth_fail(API_AUTH_MALFORMED, msg, msglen,
					 "Signed header %s is missing", tok);
		have_host |= !strcmp(tok, "host");
		have_date |= !strcmp(tok, "x-amz-date");
		hdrs[nh].name = tok;
		hdrs[nh].value = v;
		nh++;
	}
	if (!have_host || !have_date)
		return auth_fail(API_AUTH_MALFORMED, msg, msglen,
				 "SignedHeaders must include host and"
				 " x-amz-date");
	s3_sha256_hex(r->body ? r->body : "", r->body_len, hash);
	sr.method = r->method;
	sr.path = r->path;
	sr.query = r->query;
	sr.headers = hdrs;
	sr.nheaders = nh;
	sr.payload_hash = hash;
	sr.region = p.region;
	sr.service = p.service;
	sr.amz_date = amz_date;
	sr.access_key = k->id;
	sr.secret_key = k->secret;
	if (s3_sigv4_sign(&sr, authz, sizeof(authz), sig) < 0)
		return auth_fail(API_AUTH_MALFORMED, msg, msglen,
				 "The request cannot be signed");
	if (!ct_equal(sig, p.signature, 64))
		return auth_fail(API_AUTH_BAD_SIGNATURE, msg, msglen,
				 "The request signature we calculated does"
				 " not match the signature you provided");
	memcpy(sig_out, sig, 65);
	return API_AUTH_OK;
}

/* ---- the server ---- */

static bool replayed(struct api_server *s, const char *sig, int64_t now)
{
	bool seen = false;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < REPLAY_SLOTS && !seen; i++)
		seen = s->seen[i].until > now && !strcmp(s->seen[i].sig, sig);
	if (!seen) {
		struct seen *e = &s->seen[s->seen_next];
		memcpy(e->sig, sig, 65);
		e->until = now + 2 * s->cfg.max_skew_s;
		s->seen_next = (s->seen_next + 1) % REPLAY_SLOTS;
	}
	pthread_mutex_unlock(&s->lock);
	return seen;
}

static const char *conn_header(void *arg, const char *name)
{
	return MHD_lookup_connection_value(arg, MHD_HEADER_KIND, name);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status,
				 const char *body)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char rid[40];
	uint8_t r[16];

	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	random_bytes(r, sizeof(r));
	snprintf(rid, sizeof(rid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x"
		 "%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
		 r[10], r[11], r[12], r[13], r[14], r[15]);
	MHD_add_response_header(resp, "Content-Type",
				"application/x-amz-json-1.1");
	MHD_add_response_header(resp, "x-amzn-RequestId", rid);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
				  const char *type, const char *msg)
{
	char *body = task_error_json(TASK_ERR_BAD_REQUEST, msg);
	char buf[1200];
	enum MHD_Result ret;

	/* task_error_json names task errors; auth errors have other names. */
	if (body) {
		char *m = strstr(body, "\"Message\"");
		snprintf(buf, sizeof(buf), "{\"__type\": \"%s\", %s", type,
			 m ? m : "\"Message\": \"\"}");
		free(body);
		return send_json(c, status, buf);
	}
	ret = send_json(c, 500,
			"{\"__type\": \"InternalServerError\","
			" \"Message\": \"out of memory\"}");
	return ret;
}

static int dispatch(struct api_server *s, const char *op, const char *body,
		    size_t len, char **resp)
{
	if (!strcmp(op, "CreateDataRepositoryTask"))
		return task_engine_create(s->e, body, len, TASK_SRC_API, NULL,
					  resp);
	if (!strcmp(op, "DescribeDataRepositoryTasks"))
		return task_engine_describe(s->e, body, len, resp);
	if (!strcmp(op, "CancelDataRepositoryTask"))
		return task_engine_cancel(s->e, body, len, resp);
	if (!strcmp(op, "DescribeFileSystems"))
		return task_engine_describe_fs(s->e, body, len, resp);
	*resp = NULL;
	return TASK_ERR_INVALID_ACTION;
}

/* Requests whose replay cannot change anything: exempt from the replay
 * check (see DESIGN). */
static bool replay_harmless(const char *target, const char *body, size_t len)
{
	json_t *j, *tok;
	bool ret;

	if (!target || strncmp(target, TARGET_PREFIX, strlen(TARGET_PREFIX)))
		return false;
	target += strlen(TARGET_PREFIX);
	if (!strcmp(target, "DescribeDataRepositoryTasks") ||
	    !strcmp(target, "DescribeFileSystems") ||
	    !strcmp(target, "CancelDataRepositoryTask"))
		return true;
	if (strcmp(target, "CreateDataRepositoryTask") || !body)
		return false;
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	tok = json_is_object(j) ? json_object_get(j, "ClientRequestToken")
				: NULL;
	ret = json_is_string(tok) && json_string_length(tok) > 0;
	json_decref(j);
	return ret;
}

static enum MHD_Result handle(struct api_server *s, struct MHD_Connection *c,
			      const char *method, const char *url,
			      struct conn *cn)
{
	struct api_request_view v = {0};
	const char *target, *ctype;
	char msg[512], sig[65], *resp = NULL;
	int64_t now = time_now_ns() / 1000000000;
	enum MHD_Result r;
	int ret;

	if (cn->too_big)
		return send_error(c, 413, "SerializationException",
				  "The request body is too large");
	if (strcmp(method, "POST") || strcmp(url, "/"))
		return send_error(c, 404, "UnknownOperationException",
				  "Only POST / is served");
	v.method = method;
	v.path = url;
	v.query = "";
	v.header = conn_header;
	v.arg = c;
	v.body = cn->body;
	v.body_len = cn->len;
	target =
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Target");
	ret = api_verify_sigv4(&v, s->keys, s->nkeys, s->region, now,
			       s->cfg.max_skew_s, sig, msg, sizeof(msg));
	if (ret == API_AUTH_OK && !replay_harmless(target, cn->body, cn->len) &&
	    replayed(s, sig, now)) {
		ret = API_AUTH_REPLAYED;
		snprintf(msg, sizeof(msg),
			 "This request was already received (replay)");
	}
	if (ret != API_AUTH_OK) {
		log_info("api: refused a request: %s", msg);
		return send_error(c, ret == API_AUTH_MISSING ? 403 : 400,
				  api_auth_error_name(ret), msg);
	}
	ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	if (!ctype || strncmp(ctype, "application/x-amz-json-1.1", 26))
		return send_error(c, 400, "SerializationException",
				  "Content-Type must be"
				  " application/x-amz-json-1.1");
	if (!target || strncmp(target, TARGET_PREFIX, strlen(TARGET_PREFIX)))
		return send_error(c, 400, "UnknownOperationException",
				  "X-Amz-Target must name an"
				  " AWSSimbaAPIService_v20180301 operation");
	ret = dispatch(s, target + strlen(TARGET_PREFIX),
		       cn->body ? cn->body : "", cn->len, &resp);
	if (ret == TASK_ERR_INVALID_ACTION) {
		snprintf(msg, sizeof(msg),
			 "The operation %s is not supported by tidefs",
			 target + strlen(TARGET_PREFIX));
		return send_error(c, 400, "InvalidAction", msg);
	}
	if (!resp)
		return send_error(c, 500, "InternalServerError",
				  "out of memory");
	r = send_json(c, ret == 0 ? 200 : (unsigned)task_err_http_status(ret),
		      resp);
	free(resp);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct api_server *s = cls;
	struct conn *cn = *con_cls;

	(void)version;
	if (!cn) {
		const char *cl = MHD_lookup_connection_value(
			c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;

		cn = calloc(1, sizeof(*cn));
		if (!cn)
			return MHD_NO;
		*con_cls = cn;
		/* Refuse a declared oversize body before reading it; MHD
		 * closes the connection after the response. */
		if (cl && (parse_u64(cl, &n) < 0 || n > s->cfg.max_body)) {
			cn->too_big = cn->answered = true;
			return send_error(c, 413, "SerializationException",
					  "The request body is too large");
		}
		return MHD_YES;
	}
	if (cn->too_big && *size) {
		*size = 0; /* already answered, or being discarded */
		return MHD_YES;
	}
	if (*size) {
		if (cn->len + *size > s->cfg.max_body) {
			cn->too_big = true;
		} else {
			if (cn->len + *size + 1 > cn->cap) {
				size_t ncap = (cn->len + *size + 1) * 2;
				char *n = realloc(cn->body, ncap);
				if (!n)
					return MHD_NO;
				cn->body = n;
				cn->cap = ncap;
			}
			memcpy(cn->body + cn->len, data, *size);
			cn->len += *size;
			cn->body[cn->len] = '\0';
		}
		*size = 0;
		return MHD_YES;
	}
	if (cn->answered)
		return MHD_YES;
	cn->answered = true;
	return handle(s, c, method, url, cn);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (cn) {
		free(cn->body);
		free(cn);
		*con_cls = NULL;
	}
}

/* Remove what is at un's path only if it is a socket nobody listens on:
 * never a regular file, never a live server's socket. 0 or -EADDRINUSE. */
static int remove_stale_socket(const struct sockaddr_un *un)
{
	struct stat st;
	int fd, ret;

	if (lstat(un->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)un, sizeof(*un));
	close(fd);
	if (ret == 0)
		return -EADDRINUSE;
	unlink(un->sun_path);
	return 0;
}

static int listen_socket(struct api_server *s, const char *addr)
{
	int fd, one = 1, ret;
	bool v6 = false;

	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		if (strlen(addr + 5) >= sizeof(un.sun_path))
			return -EINVAL;
		strcpy(un.sun_path, addr + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		ret = remove_stale_socket(&un);
		if (ret < 0) {
			close(fd);
			return ret;
		}
		if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
		    chmod(un.sun_path, 0600) < 0 || listen(fd, 64) < 0) {
			int err = -errno;
			close(fd);
			return err;
		}
		s->unix_path = strdup(un.sun_path);
		return fd;
	}
	const char *colon = strrchr(addr, ':');
	char host[128];
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	struct sockaddr_in in4 = {.sin_family = AF_INET};
	uint64_t port;
	size_t hl;

	if (!colon || parse_u64(colon + 1, &port) < 0 || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - addr);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6.sin6_addr) != 1)
			return -EINVAL;
		in6.sin6_port = htons((uint16_t)port);
		v6 = true;
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	} else {
		if (inet_pton(AF_INET, host, &in4.sin_addr) != 1)
			return -EINVAL;
		in4.sin_port = htons((uint16_t)port);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((v6 ? bind(fd, (struct sockaddr *)&in6, sizeof(in6))
		: bind(fd, (struct sockaddr *)&in4, sizeof(in4))) < 0 ||
	    listen(fd, 64) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int api_server_start(const struct api_config *cfg, struct task_engine *e,
		     struct api_server **out)
{
	struct api_server *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->e = e;
	s->fd = -1;
	if (!s->cfg.max_skew_s)
		s->cfg.max_skew_s = 300;
	if (!s->cfg.max_body)
		s->cfg.max_body = 1u << 20;
	if (!s->cfg.max_conns)
		s->cfg.max_conns = 64;
	pthread_mutex_init(&s->lock, NULL);
	s->region = strdup(cfg->region ? cfg->region : "us-east-1");
	if (!s->region) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = api_load_keys(cfg->credentials, &s->keys, &s->nkeys);
	if (ret < 0)
		goto out_free;
	s->fd = listen_socket(s, cfg->listen);
	if (s->fd < 0) {
		ret = s->fd;
		goto out_free;
	}
	s->d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY, 0,
		NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
		MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_conns,
		MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
		MHD_OPTION_END);
	if (!s->d) {
		ret = -EIO;
		goto out_free;
	}
	s->fd = -1; /* MHD owns and closes it now */
	log_info("api: serving the FSx API on %s (%zu keys)", cfg->listen,
		 s->nkeys);
	*out = s;
	return 0;

out_free:
	api_server_stop(s);
	return ret;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	if (s->fd >= 0)
		close(s->fd);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	api_free_keys(s->keys, s->nkeys);
	free(s->region);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
