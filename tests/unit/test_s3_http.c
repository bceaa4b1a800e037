// SPDX-License-Identifier: MIT
/*
 * The S3 client against a scripted HTTP server on loopback: what goes on the
 * wire (paths, signing headers, addressing), status mapping, retries and
 * their time bound, stalled and refusing servers, ranged GETs that the
 * server answers wrongly, HEAD metadata, list pagination, and the handle
 * pool under concurrent callers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "s3/s3.h"
#include "s3/s3_i.h"

#define MAX_REQS 64

/* The scripted server: answers request i with resp[min(i, nresp-1)]. */
struct server {
	int fd;
	int port;
	pthread_t thread;
	bool stall; /* accept, read, never answer */
	const char *resp[8];
	int nresp;
	pthread_mutex_t lock;
	char *reqs[MAX_REQS]; /* protected by lock: request heads */
	int nreqs;	      /* protected by lock */
	atomic_bool stop;
};

static struct server srv;

static void read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	long body = 0;
	char *end = NULL;

	while (len + 1 < cap) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;
		if (poll(&p, 1, 2000) <= 0)
			break;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end) {
			char *cl = strcasestr(buf, "\r\ncontent-length:");
			if (cl && cl < end)
				body = strtol(cl + 17, NULL, 10);
			if ((long)len >= (end - buf) + 4 + body)
				break;
		}
	}
	buf[len] = '\0';
	if (end)
		end[2] = '\0'; /* keep the head only */
}

static void *serve(void *arg)
{
	(void)arg;
	while (!srv.stop) {
		struct pollfd p = {srv.fd, POLLIN, 0};
		char buf[65536];
		const char *r;
		int c, i;

		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept(srv.fd, NULL, NULL);
		if (c < 0)
			continue;
		read_request(c, buf, sizeof(buf));
		pthread_mutex_lock(&srv.lock);
		i = srv.nreqs;
		if (srv.nreqs < MAX_REQS)
			srv.reqs[srv.nreqs++] = strdup(buf);
		pthread_mutex_unlock(&srv.lock);
		if (srv.stall) {
			while (!srv.stop)
				usleep(10000);
			close(c);
			break;
		}
		r = srv.resp[i < srv.nresp ? i : srv.nresp - 1];
		if (write(c, r, strlen(r)) < 0)
			perror("write");
		shutdown(c, SHUT_WR);
		close(c);
	}
	return NULL;
}

static void server_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int one = 1;

	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(srv.fd >= 0);
	setsockopt(srv.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(srv.fd, 64), 0);
	getsockname(srv.fd, (struct sockaddr *)&a, &al);
	srv.port = ntohs(a.sin_port);
	pthread_mutex_init(&srv.lock, NULL);
	assert_int_equal(pthread_create(&srv.thread, NULL, serve, NULL), 0);
}

static int setup(void **state)
{
	(void)state;
	memset(&srv, 0, sizeof(srv));
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	srv.stop = true;
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	for (i = 0; i < srv.nreqs; i++)
		free(srv.reqs[i]);
	pthread_mutex_destroy(&srv.lock);
	return 0;
}

static struct s3_client *client(bool path_style, const char *host, int retry_ms,
				const char *token)
{
	char ep[128];
	struct s3_config cfg = {
		.endpoint = ep,
		.region = "us-east-1",
		.bucket = "bucket",
		.creds = {"AKIDEXAMPLE", "secret", (char *)token},
		.path_style = path_style,
		.retry_total_ms = retry_ms,
		/* Short only where a stalled server is the subject: elsewhere
		 * a loaded machine must not turn a slow answer into a retry. */
		.connect_timeout_ms = 5000,
		.request_timeout_ms = srv.stall ? 1000 : 5000,
	};
	struct s3_client *c;

	snprintf(ep, sizeof(ep), "http://%s:%d", host, srv.port);
	assert_int_equal(s3_client_new(&cfg, &c), 0);
	return c;
}

#define HTTP(status, extra, body)                                              \
	"HTTP/1.1 " status "\r\nConnection: close\r\n" extra                   \
	"Content-Length: " #body "\r\n\r\n"

static const char *xml_resp(const char *status, const char *body)
{
	static char bufs[8][4096];
	static int n;
	char *b = bufs[n++ % 8];

	snprintf(b, 4096,
		 "HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: "
		 "application/xml\r\nContent-Length: %zu\r\n\r\n%s",
		 status, strlen(body), body);
	return b;
}

static const char *req(int i)
{
	const char *r;

	pthread_mutex_lock(&srv.lock);
	r = i < srv.nreqs ? srv.reqs[i] : "";
	pthread_mutex_unlock(&srv.lock);
	return r;
}

static int count_cb(void *arg, struct s3_object *o)
{
	int *n = arg;

	(void)o;
	(*n)++;
	return 0;
}

#define EMPTY_LIST                                                             \
	"<ListBucketResult><IsTruncated>false</IsTruncated></"                 \
	"ListBucketResult>"

static void test_request_shape(void **state)
{
	struct s3_client *c;
	struct s3_object o;

	(void)state;
	srv.resp[0] = HTTP("200 OK", "ETag: \"e\"\r\n", 0);
	srv.nresp = 1;
	server_start();
	c = client(true, "127.0.0.1", 1000, "TOKEN/+=");
	assert_int_equal(s3_head_object(c, "a b/+%?#\xc3\xbc//./../x~", &o), 0);
	assert_string_equal(o.etag, "\"e\"");
	assert_int_equal(o.size, 0);
	s3_object_release(&o);
	assert_non_null(strstr(req(0), "HEAD /bucket/a%20b/%2B%25%3F%23%C3%BC/"
				       "/./../x~ HTTP/1.1\r\n"));
	assert_non_null(strstr(req(0), "\r\nAuthorization: AWS4-HMAC-SHA256 "
				       "Credential=AKIDEXAMPLE/"));
	assert_non_null(strstr(req(0), "/us-east-1/s3/aws4_request, "
				       "SignedHeaders=host;x-amz-content-"
				       "sha256;x-amz-date;x-amz-security-token,"
				       " Signature="));
	assert_non_null(
		strstr(req(0), "\r\nx-amz-security-token: TOKEN/+=\r\n"));
	assert_non_null(strstr(req(0), "\r\nx-amz-content-sha256: e3b0c442"));
	s3_client_free(c);
}

static void test_virtual_hosted(void **state)
{
	struct s3_client *c;
	char host[64];
	int n = 0;

	(void)state;
	srv.resp[0] = xml_resp("200 OK", EMPTY_LIST);
	srv.nresp = 1;
	server_start();
	/* curl resolves *.localhost to loopback. */
	c = client(false, "localhost", 1000, NULL);
	assert_int_equal(s3_list_objects(c, "dir/a b", count_cb, &n), 0);
	assert_int_equal(n, 0);
	assert_non_null(strstr(req(0), "GET /?encoding-type=url&list-type=2"
				       "&prefix=dir%2Fa%20b HTTP/1.1\r\n"));
	snprintf(host, sizeof(host), "\r\nhost: bucket.localhost:%d\r\n",
		 srv.port);
	assert_non_null(strcasestr(req(0), host));
	assert_null(strstr(req(0), "x-amz-security-token"));
	s3_client_free(c);
}

static void test_retry_then_ok(void **state)
{
	struct s3_client *c;
	int n = 0;

	(void)state;
	srv.resp[0] = xml_resp("503 Slow Down",
			       "<Error><Code>SlowDown</Code></Error>");
	srv.resp[1] = xml_resp("500 Internal Server Error", "");
	srv.resp[2] =
		xml_resp("200 OK", "<ListBucketResult><Contents><Key>k</Key>"
				   "</Contents></ListBucketResult>");
	srv.nresp = 3;
	server_start();
	c = client(true, "127.0.0.1", 10000, NULL);
	assert_int_equal(s3_list_objects(c, NULL, count_cb, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s3_client_attempts(c), 3);
	s3_client_free(c);
}

static void test_status_mapping(void **state)
{
	static const struct {
		const char *status, *code;
		int ret;
	} t[] = {
		{"404 Not Found", "NoSuchBucket", -ENOENT},
		{"403 Forbidden", "AccessDenied", -EACCES},
		{"403 Forbidden", "SignatureDoesNotMatch", -EACCES},
		{"400 Bad Request", "InvalidArgument", -EINVAL},
		{"409 Conflict", "OperationAborted", -EINVAL},
		{"412 Precondition Failed", "PreconditionFailed", -ESTALE},
		{"416 Range Not Satisfiable", "InvalidRange", -ERANGE},
		{"301 Moved Permanently", "PermanentRedirect", -EIO},
	};
	char body[8][256];
	struct s3_client *c;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		snprintf(body[i], sizeof(body[i]),
			 "<Error><Code>%s</Code><Message>m%zu</Message>"
			 "</Error>",
			 t[i].code, i);
		srv.resp[i] = xml_resp(t[i].status, body[i]);
	}
	srv.nresp = (int)ARRAY_SIZE(t);
	server_start();
	c = client(true, "127.0.0.1", 5000, NULL);
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		char msg[8];
		assert_int_equal(s3_check_bucket(c, "p/"), t[i].ret);
		assert_string_equal(s3_error_code(), t[i].code);
		snprintf(msg, sizeof(msg), "m%zu", i);
		assert_string_equal(s3_error_message(), msg);
	}
	/* 4xx are never retried. */
	assert_int_equal(s3_client_attempts(c), ARRAY_SIZE(t));
	assert_non_null(strstr(req(0), "GET /bucket?encoding-type=url&"
				       "list-type=2&max-keys=1&prefix=p%2F "));
	s3_client_free(c);
}

static void test_retry_budget(void **state)
{
	struct s3_client *c;
	int64_t t0;
	int n = 0;

	(void)state;
	srv.resp[0] = xml_resp("503 Service Unavailable", "");
	srv.nresp = 1;
	server_start();
	/* A budget long enough for a second attempt even on a loaded
	 * machine; the bound only needs to be finite (without a budget the
	 * retries would not end) and generous (budget + one attempt). */
	c = client(true, "127.0.0.1", 2000, NULL);
	t0 = time_mono_ns();
	assert_int_equal(s3_list_objects(c, NULL, count_cb, &n), -EIO);
	assert_true(time_mono_ns() - t0 < 15000000000ll);
	assert_true(s3_client_attempts(c) >= 2);
	assert_string_equal(s3_error_code(), "ServiceUnavailable");
	s3_client_free(c);
}

static void test_stalled_server(void **state)
{
	struct s3_client *c;
	struct s3_object o;
	int64_t t0, dt;

	(void)state;
	srv.stall = true;
	server_start();
	c = client(true, "127.0.0.1", 1000, NULL);
	t0 = time_mono_ns();
	assert_int_equal(s3_head_object(c, "k", &o), -ETIMEDOUT);
	dt = time_mono_ns() - t0;
	/* retry budget 1 s + at most one more 1 s attempt (about 2 s), with
	 * slack for a loaded machine: a stall that is not cut off would
	 * hang until the ctest timeout. */
	assert_true(dt >= 900000000ll);
	assert_true(dt < 15000000000ll);
	s3_client_free(c);
}

static void test_refused(void **state)
{
	struct s3_client *c;
	struct s3_object o;
	int64_t t0;

	(void)state;
	server_start();
	/* Port now closed: nothing listens. */
	srv.stop = true;
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	srv.thread = pthread_self();
	c = client(true, "127.0.0.1", 2000, NULL);
	t0 = time_mono_ns();
	assert_int_equal(s3_head_object(c, "k", &o), -ECONNREFUSED);
	assert_true(time_mono_ns() - t0 < 15000000000ll);
	assert_true(s3_client_attempts(c) >= 2);
	assert_string_not_equal(s3_error_message(), "");
	s3_client_free(c);
	/* teardown must not join our own thread */
	srv.thread = 0;
}

static void test_range_variants(void **state)
{
	struct s3_client *c;
	char buf[16];
	size_t got;

	(void)state;
	/* 0: Range ignored, whole object with 200. */
	srv.resp[0] =
		HTTP("200 OK", "ETag: \"v1\"\r\n", 20) "0123456789abcdefghij";
	/* 1: same, window runs past the end. */
	srv.resp[1] = HTTP("200 OK", "", 20) "0123456789abcdefghij";
	/* 2: a proper 206. */
	srv.resp[2] = HTTP("206 Partial Content",
			   "Content-Range: bytes 5-8/20\r\nETag: \"v1\"\r\n",
			   4) "5678";
	/* 3: a 206 for the wrong range. */
	srv.resp[3] = HTTP("206 Partial Content",
			   "Content-Range: bytes 0-3/20\r\n", 4) "0123";
	/* 4: a 206 with more bytes than asked for. */
	srv.resp[4] = HTTP("206 Partial Content", "", 10) "5678XXXXXX";
	/* 5: 412. */
	srv.resp[5] =
		xml_resp("412 Precondition Failed",
			 "<Error><Code>PreconditionFailed</Code></Error>");
	/* 6: a server that ignores If-Match: the ETag gives it away. */
	srv.resp[6] = HTTP("206 Partial Content",
			   "Content-Range: bytes 5-8/20\r\nETag: \"v2\"\r\n",
			   4) "5678";
	/* 7: short 206 that is not at the end of the object. */
	srv.resp[7] = HTTP("206 Partial Content",
			   "Content-Range: bytes 5-6/20\r\n", 2) "56";
	srv.nresp = 8;
	server_start();
	c = client(true, "127.0.0.1", 1000, NULL);

	memset(buf, '#', sizeof(buf));
	assert_int_equal(s3_get_range(c, "k", "\"v1\"", 5, 4, buf, &got), 0);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "5678####", 8);
	assert_non_null(strcasestr(req(0), "\r\nrange: bytes=5-8\r\n"));
	assert_non_null(strcasestr(req(0), "\r\nif-match: \"v1\"\r\n"));

	memset(buf, '#', sizeof(buf));
	assert_int_equal(s3_get_range(c, "k", NULL, 17, 10, buf, &got), 0);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "hij#", 4);
	assert_null(strcasestr(req(1), "if-match"));

	memset(buf, '#', sizeof(buf));
	assert_int_equal(s3_get_range(c, "k", "v1", 5, 4, buf, &got), 0);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "5678#", 5);

	assert_int_equal(s3_get_range(c, "k", NULL, 5, 4, buf, &got), -EIO);
	memset(buf, '#', sizeof(buf));
	assert_int_equal(s3_get_range(c, "k", NULL, 5, 4, buf, &got), -EIO);
	assert_memory_equal(buf + 4, "####", 4); /* never past len */
	assert_int_equal(s3_get_range(c, "k", "\"v1\"", 5, 4, buf, &got),
			 -ESTALE);
	assert_string_equal(s3_error_code(), "PreconditionFailed");
	assert_int_equal(s3_get_range(c, "k", "\"v1\"", 5, 4, buf, &got),
			 -ESTALE);
	assert_int_equal(s3_get_range(c, "k", NULL, 5, 4, buf, &got), -EIO);
	assert_int_equal(got, 0);

	/* Zero length: nothing to do, no request. */
	assert_int_equal(s3_get_range(c, "k", NULL, 5, 0, NULL, &got), 0);
	assert_int_equal(s3_client_attempts(c), 8);
	s3_client_free(c);
}

static void test_head_metadata(void **state)
{
	struct s3_client *c;
	struct s3_object o;

	(void)state;
	srv.resp[0] = HTTP("200 OK",
			   "ETag: \"abc\"\r\n"
			   "Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\n"
			   "X-Amz-Meta-File-Permissions: 0100640\r\n"
			   "x-amz-meta-file-owner: 1001\r\n"
			   "x-amz-meta-file-group: 1002\r\n"
			   "x-amz-meta-file-atime: 1600000000000000001ns\r\n"
			   "x-amz-meta-file-mtime: 1600000000123\r\n",
			   12345);
	srv.resp[1] = HTTP("200 OK",
			   "ETag: \"abc\"\r\n"
			   "x-amz-meta-file-permissions: rw-r--r--\r\n"
			   "x-amz-meta-file-owner: -1\r\n"
			   "x-amz-meta-file-group: 4294967296\r\n"
			   "x-amz-meta-file-atime: yesterday\r\n"
			   "x-amz-meta-file-mtime: 5ns\r\n",
			   1);
	srv.resp[2] = HTTP("404 Not Found", "", 0);
	srv.nresp = 3;
	server_start();
	c = client(true, "127.0.0.1", 1000, NULL);
	assert_int_equal(s3_head_object(c, "dir/f", &o), 0);
	assert_string_equal(o.key, "dir/f");
	assert_int_equal(o.size, 12345);
	assert_int_equal(o.mtime_ns, 1704164645000000000ll);
	assert_int_equal(o.have, S3_HAVE_MODE | S3_HAVE_UID | S3_HAVE_GID |
					 S3_HAVE_ATIME | S3_HAVE_MTIME);
	assert_int_equal(o.mode, 0100640);
	assert_int_equal(o.uid, 1001);
	assert_int_equal(o.gid, 1002);
	assert_int_equal(o.atime_ns, 1600000000000000001ll);
	assert_int_equal(o.file_mtime_ns, 1600000000123000000ll);
	s3_object_release(&o);

	assert_int_equal(s3_head_object(c, "dir/g", &o), 0);
	assert_int_equal(o.have, S3_HAVE_MTIME);
	assert_int_equal(o.file_mtime_ns, 5);
	s3_object_release(&o);

	assert_int_equal(s3_head_object(c, "dir/h", &o), -ENOENT);
	assert_string_equal(s3_error_code(), "NotFound");
	assert_null(o.key);
	s3_client_free(c);
}

struct collect {
	char keys[16][32];
	int n;
	int stop_at;
};

static int collect_cb(void *arg, struct s3_object *o)
{
	struct collect *k = arg;

	snprintf(k->keys[k->n], sizeof(k->keys[0]), "%s", o->key);
	k->n++;
	return k->n == k->stop_at ? 77 : 0;
}

static void test_list_pages(void **state)
{
	struct collect k = {.stop_at = 0};
	struct s3_client *c;

	(void)state;
	srv.resp[0] = xml_resp(
		"200 OK",
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>t/1=+</NextContinuationToken>"
		"<Contents><Key>a</Key></Contents>"
		"<Contents><Key>b</Key></Contents></ListBucketResult>");
	srv.resp[1] = xml_resp(
		"200 OK",
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>c</Key></Contents></ListBucketResult>");
	srv.resp[2] = srv.resp[0];
	srv.resp[3] = xml_resp(
		"200 OK",
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"<Contents><Key>z</Key></Contents></ListBucketResult>");
	srv.resp[4] = xml_resp("200 OK", "<ListBucketResult><Contents>");
	srv.nresp = 5;
	server_start();
	c = client(true, "127.0.0.1", 1000, NULL);
	s3_client_set_list_page_size(c, 2);
	assert_int_equal(s3_list_objects(c, "", collect_cb, &k), 0);
	assert_int_equal(k.n, 3);
	assert_string_equal(k.keys[2], "c");
	assert_non_null(strstr(req(0), "?encoding-type=url&list-type=2&"
				       "max-keys=2 "));
	assert_non_null(strstr(req(1), "?continuation-token=t%2F1%3D%2B&"));

	/* The callback's value stops the listing. */
	k.n = 0;
	k.stop_at = 1;
	assert_int_equal(s3_list_objects(c, "", collect_cb, &k), 77);
	assert_int_equal(k.n, 1);

	/* Truncated without a token cannot go on. */
	k.n = 0;
	k.stop_at = 0;
	assert_int_equal(s3_list_objects(c, "", collect_cb, &k), -EPROTO);
	assert_int_equal(s3_list_objects(c, "", collect_cb, &k), -EPROTO);
	s3_client_free(c);
}

struct worker {
	struct s3_client *c;
	int ok;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 10; i++) {
		struct s3_object o;
		if (!s3_head_object(w->c, "k", &o))
			w->ok++;
		s3_object_release(&o);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct s3_config cfg = {.region = "us-east-1",
				.bucket = "bucket",
				.path_style = true,
				.max_handles = 2};
	struct worker w[6];
	pthread_t t[6];
	char ep[64];
	int i;

	(void)state;
	srv.resp[0] = HTTP("200 OK", "ETag: \"e\"\r\n", 0);
	srv.nresp = 1;
	server_start();
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", srv.port);
	cfg.endpoint = ep;
	assert_int_equal(s3_client_new(&cfg, &w[0].c), 0);
	for (i = 0; i < 6; i++) {
		w[i].c = w[0].c;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 10);
	}
	/* Anonymous: no Authorization header. */
	assert_null(strstr(req(0), "Authorization"));
	s3_client_free(w[0].c);
}

static void test_bad_config(void **state)
{
	struct s3_config cfg = {.bucket = "b"};
	struct s3_client *c = NULL;

	(void)state;
	cfg.endpoint = "ftp://x";
	assert_int_equal(s3_client_new(&cfg, &c), -EINVAL);
	cfg.endpoint = "http://";
	assert_int_equal(s3_client_new(&cfg, &c), -EINVAL);
	cfg.endpoint = "http://user@host";
	assert_int_equal(s3_client_new(&cfg, &c), -EINVAL);
	cfg.endpoint = NULL;
	cfg.bucket = "a/b";
	assert_int_equal(s3_client_new(&cfg, &c), -EINVAL);
	cfg.bucket = NULL;
	assert_int_equal(s3_client_new(&cfg, &c), -EINVAL);
	cfg.bucket = "b";
	cfg.creds.access_key = "AK"; /* without a secret */
	assert_int_equal(s3_client_new(&cfg, &c), -EINVAL);
	cfg.creds.access_key = NULL;
	assert_int_equal(s3_client_new(&cfg, &c), 0); /* AWS default */
	s3_client_free(c);
	/* teardown has no server to stop */
	srv.thread = pthread_self();
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
}

static int teardown_any(void **state)
{
	if (pthread_equal(srv.thread, pthread_self()) || !srv.thread) {
		close(srv.fd);
		for (int i = 0; i < srv.nreqs; i++)
			free(srv.reqs[i]);
		return 0;
	}
	return teardown(state);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown_any)
	const struct CMUnitTest tests[] = {
		T(test_request_shape), T(test_virtual_hosted),
		T(test_retry_then_ok), T(test_status_mapping),
		T(test_retry_budget),  T(test_stalled_server),
		T(test_refused),       T(test_range_variants),
		T(test_head_metadata), T(test_list_pages),
		T(test_concurrent),    T(test_bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
