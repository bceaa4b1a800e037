// SPDX-License-Identifier: MIT
/*
 * The export side of the S3 client against a scripted HTTP server on
 * loopback, for what moto cannot show: the requests on the wire (conditions,
 * Content-MD5, the real payload hash, the Complete body), a part that keeps
 * failing (the upload is aborted), 200 answers with an <Error> body, 409
 * ConditionalRequestConflict, hostile XML; plus table tests of the result
 * parsers and of s3_posix_headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define MIB	      (1u << 20)
#define MAX_REQS      256
#define UPLOAD_ID     "UP/1+="
#define UPLOAD_ID_ENC "UP%2F1%2B%3D"

/* First rule whose match is in the request line answers it. */
struct rule {
	const char *match;
	const char *resp;
};

struct rec {
	char *head; /* request line and headers */
	char *body; /* the first 64 KiB of the body */
};

static struct {
	int fd, port;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock;
	struct rule rules[16];	   /* protected by lock */
	struct rec reqs[MAX_REQS]; /* protected by lock */
	int nreqs;		   /* protected by lock */
	const char *slow_match;	   /* protected by lock: requests whose */
	int slow_ms;		   /* line has it are answered this late */
} srv;

/* Read one request, its whole body; keep the head and the body's start. */
static void read_request(int fd, struct rec *r)
{
	size_t cap = 1 << 16, len = 0, hlen = 0;
	char *buf = malloc(cap + 1), *end;
	long body = -1;

	assert_non_null(buf);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;
		if (poll(&p, 1, 5000) <= 0)
			break;
		n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (body < 0 && (end = strstr(buf, "\r\n\r\n"))) {
			char *cl = strcasestr(buf, "\r\ncontent-length:");
			hlen = (size_t)(end - buf) + 4;
			body = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
			r->head = strndup(buf, hlen - 2);
		}
		if (body >= 0 && len >= hlen + (size_t)body) {
			break;
		}
		if (len == cap) {
			/* Keep the head and 64 KiB of the body; drop the
			 * rest as it comes. */
			if (body < 0)
				break;
			if (!r->body)
				r->body = strndup(buf + hlen, len - hlen);
			body -= (long)(len - hlen);
			len = hlen;
		}
	}
	if (!r->head)
		r->head = strndup(buf, len);
	if (!r->body)
		r->body = strndup(buf + MIN(hlen, len), len - MIN(hlen, len));
	free(buf);
}

static const char *answer(const char *head, int *delay_ms)
{
	const char *eol = strstr(head, "\r\n");
	size_t n = eol ? (size_t)(eol - head) : strlen(head);
	char line[1024];
	int i;

	snprintf(line, sizeof(line), "%.*s", (int)MIN(n, 1000), head);
	*delay_ms = srv.slow_match && strstr(line, srv.slow_match) ? srv.slow_ms
								   : 0;
	for (i = 0; i < 16 && srv.rules[i].match; i++)
		if (strstr(line, srv.rules[i].match))
			return srv.rules[i].resp;
	if (getenv("S3DBG"))
		fprintf(stderr, "unmatched: %s\n", line);
	return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
}

static void *serve(void *arg)
{
	(void)arg;
	while (!srv.stop) {
		struct pollfd p = {srv.fd, POLLIN, 0};
		struct rec r = {0};
		const char *a;
		int c, delay_ms;

		if (poll(&p, 1, 20) <= 0)
			continue;
		c = accept(srv.fd, NULL, NULL);
		if (c < 0)
			continue;
		read_request(c, &r);
		pthread_mutex_lock(&srv.lock);
		a = answer(r.head, &delay_ms);
		if (srv.nreqs < MAX_REQS) {
			srv.reqs[srv.nreqs++] = r;
		} else {
			free(r.head);
			free(r.body);
		}
		pthread_mutex_unlock(&srv.lock);
		if (delay_ms > 0)
			poll(NULL, 0, delay_ms);
		if (write(c, a, strlen(a)) < 0)
			perror("write");
		shutdown(c, SHUT_WR);
		close(c);
	}
	return NULL;
}

static int setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int one = 1;

	(void)state;
	memset(&srv, 0, sizeof(srv));
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
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	srv.stop = true;
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	for (i = 0; i < srv.nreqs; i++) {
		free(srv.reqs[i].head);
		free(srv.reqs[i].body);
	}
	pthread_mutex_destroy(&srv.lock);
	return 0;
}

static void set_rules(const struct rule *r, size_t n)
{
	pthread_mutex_lock(&srv.lock);
	memset(srv.rules, 0, sizeof(srv.rules));
	memcpy(srv.rules, r, n * sizeof(*r));
	pthread_mutex_unlock(&srv.lock);
}

static void set_slow(const char *match, int ms)
{
	pthread_mutex_lock(&srv.lock);
	srv.slow_match = match;
	srv.slow_ms = ms;
	pthread_mutex_unlock(&srv.lock);
}

/* Number of requests whose head contains all of a and b (b may be NULL);
 * *head (if not NULL) gets a copy of the last one's head ("" if none). */
static int count(const char *a, const char *b, char **head)
{
	int i, n = 0;

	pthread_mutex_lock(&srv.lock);
	if (head)
		*head = strdup("");
	for (i = 0; i < srv.nreqs; i++) {
		const char *h = srv.reqs[i].head;
		if (!h || !strstr(h, a) || (b && !strstr(h, b)))
			continue;
		n++;
		if (head) {
			free(*head);
			*head = strdup(h);
		}
	}
	pthread_mutex_unlock(&srv.lock);
	return n;
}

/* The body of the last request whose head contains a (malloc'ed). */
static char *body_of(const char *a)
{
	char *b = NULL;
	int i;

	pthread_mutex_lock(&srv.lock);
	for (i = srv.nreqs - 1; i >= 0 && !b; i--)
		if (srv.reqs[i].head && strstr(srv.reqs[i].head, a))
			b = strdup(srv.reqs[i].body ? srv.reqs[i].body : "");
	pthread_mutex_unlock(&srv.lock);
	return b ? b : strdup("");
}

static struct s3_client *client_timeout(int retry_ms, int request_ms)
{
	char ep[128];
	struct s3_config cfg = {
		.endpoint = ep,
		.region = "us-east-1",
		.bucket = "bucket",
		.creds = {"AKIDEXAMPLE", "secret", NULL},
		.path_style = true,
		.retry_total_ms = retry_ms,
		.connect_timeout_ms = 2000,
		.request_timeout_ms = request_ms,
	};
	struct s3_client *c;

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", srv.port);
	assert_int_equal(s3_client_new(&cfg, &c), 0);
	return c;
}

static struct s3_client *client(int retry_ms)
{
	return client_timeout(retry_ms, 5000);
}

static const char *xml_resp(const char *status, const char *body)
{
	static char bufs[32][2048];
	static int n;
	char *b = bufs[n++ % 32];

	snprintf(b, 2048,
		 "HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: "
		 "application/xml\r\nContent-Length: %zu\r\n\r\n%s",
		 status, strlen(body), body);
	return b;
}

#define INITIATE                                                               \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                         \
	"<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key>"   \
	"<UploadId>" UPLOAD_ID "</UploadId></InitiateMultipartUploadResult>"
#define COMPLETE                                                               \
	"<CompleteMultipartUploadResult><Key>k</Key><ETag>&quot;all-3&quot;"   \
	"</ETag></CompleteMultipartUploadResult>"
#define PART_OK                                                                \
	"HTTP/1.1 200 OK\r\nConnection: close\r\nETag: \"p&<>\"\r\n"           \
	"Content-Length: 0\r\n\r\n"
#define NO_CONTENT "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"

/* An unlinked temporary file of len bytes of 'x'. */
static int temp_file(size_t len)
{
	char path[] = "/tmp/tidefs-s3puth-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	return fd;
}

static void test_part_fails_abort(void **state)
{
	struct s3_put_opts o = {
		.part_size = 5 * MIB, .parallel = 3, .single_max = 5 * MIB};
	const struct rule rules[] = {
		{"?uploads ", xml_resp("200 OK", INITIATE)},
		{"partNumber=2&",
		 xml_resp("500 Internal Server Error",
			  "<Error><Code>InternalError</Code></Error>")},
		{"PUT /bucket/k?partNumber=", PART_OK},
		{"DELETE /bucket/k?uploadId=" UPLOAD_ID_ENC " ", NO_CONTENT},
	};
	struct s3_client *c;
	char etag[80];
	int fd = temp_file(11 * MIB);

	(void)state;
	set_rules(rules, ARRAY_SIZE(rules));
	/* Long enough that part 2 is retried even when its first 5 MiB
	 * attempt is slow (ASan, a loaded machine). */
	c = client(2000);
	assert_int_equal(s3_put_file(c, "k", fd, 11 * MIB, &o, etag), -EIO);
	assert_string_equal(etag, "");
	assert_string_equal(s3_error_code(), "InternalError");
	assert_non_null(strstr(s3_error_message(), "part 2"));
	/* Part 2 was retried; the upload was aborted, never completed. */
	assert_true(count("PUT /bucket/k?partNumber=2&uploadId=" UPLOAD_ID_ENC
			  " ",
			  NULL, NULL) > 1);
	assert_int_equal(count("DELETE /bucket/k?uploadId=" UPLOAD_ID_ENC " ",
			       NULL, NULL),
			 1);
	assert_int_equal(count("POST /bucket/k?uploadId=", NULL, NULL), 0);
	assert_int_equal(count("POST /bucket/k?uploads ", NULL, NULL), 1);
	close(fd);
	s3_client_free(c);
}

static void test_complete_shape(void **state)
{
	const struct s3_header meta[] = {{"x-amz-meta-file-owner", "5"}};
	struct s3_put_opts o = {.if_match = "\"e1\"",
				.meta = meta,
				.nmeta = 1,
				.part_size = 5 * MIB,
				.parallel = 2,
				.single_max = 5 * MIB};
	const struct rule rules[] = {
		{"HEAD /bucket/k ",
		 "HTTP/1.1 200 OK\r\nConnection: close\r\n"
		 "ETag: \"e1\"\r\nContent-Length: 7\r\n\r\n"},
		{"?uploads ", xml_resp("200 OK", INITIATE)},
		{"PUT /bucket/k?partNumber=", PART_OK},
		{"POST /bucket/k?uploadId=" UPLOAD_ID_ENC " ",
		 xml_resp("200 OK", "\n  \n" COMPLETE)},
	};
	struct s3_client *c;
	char etag[80], *h, *body;
	int fd = temp_file(11 * MIB);

	(void)state;
	set_rules(rules, ARRAY_SIZE(rules));
	c = client(2000);
	assert_int_equal(s3_put_file(c, "k", fd, 11 * MIB, &o, etag), 0);
	assert_string_equal(etag, "\"all-3\"");
	/* Create carries the metadata, not the conditions. */
	assert_int_equal(count("POST /bucket/k?uploads ", NULL, &h), 1);
	assert_non_null(strstr(h, "\r\nx-amz-meta-file-owner: 5\r\n"));
	assert_null(strcasestr(h, "if-match"));
	free(h);
	/* Parts: Content-MD5 of 5 MiB of 'x', the real sha256, 5+5+1 MiB. */
	assert_int_equal(count("PUT /bucket/k?partNumber=1&", NULL, &h), 1);
	assert_non_null(strstr(h, "\r\nContent-MD5: "));
	assert_null(strstr(h, "UNSIGNED-PAYLOAD"));
	assert_non_null(strstr(h, "\r\nContent-Length: 5242880\r\n"));
	free(h);
	assert_int_equal(count("PUT /bucket/k?partNumber=3&",
			       "\r\nContent-Length: 1048576\r\n", NULL),
			 1);
	/* Complete: the condition, the parts in order, ETags escaped. */
	assert_int_equal(count("POST /bucket/k?uploadId=", NULL, &h), 1);
	assert_non_null(strstr(h, "\r\nIf-Match: \"e1\"\r\n"));
	free(h);
	body = body_of("POST /bucket/k?uploadId=");
	assert_string_equal(
		body, "<CompleteMultipartUpload>"
		      "<Part><PartNumber>1</PartNumber><ETag>&quot;p&amp;&lt;"
		      "&gt;&quot;</ETag></Part>"
		      "<Part><PartNumber>2</PartNumber><ETag>&quot;p&amp;&lt;"
		      "&gt;&quot;</ETag></Part>"
		      "<Part><PartNumber>3</PartNumber><ETag>&quot;p&amp;&lt;"
		      "&gt;&quot;</ETag></Part>"
		      "</CompleteMultipartUpload>");
	free(body);
	assert_int_equal(count("DELETE", NULL, NULL), 0);
	close(fd);
	s3_client_free(c);
}

/*
 * A Complete may be silent for much longer than the request timeout while the
 * server assembles the object (moto with 1 GiB, S3 with big objects): it is
 * waited for. Any other request that silent is given up.
 */
static void test_slow_complete(void **state)
{
	struct s3_put_opts o = {
		.part_size = 5 * MIB, .parallel = 2, .single_max = 5 * MIB};
	const struct rule rules[] = {
		{"?uploads ", xml_resp("200 OK", INITIATE)},
		{"PUT /bucket/k?partNumber=", PART_OK},
		{"POST /bucket/k?uploadId=" UPLOAD_ID_ENC " ",
		 xml_resp("200 OK", COMPLETE)},
		{"PUT /bucket/slow ", PART_OK},
	};
	struct s3_client *c;
	char etag[80];
	int fd = temp_file(11 * MIB);

	(void)state;
	set_rules(rules, ARRAY_SIZE(rules));
	set_slow("POST /bucket/k?uploadId=", 10000);
	c = client_timeout(400, 1000);
	assert_int_equal(s3_put_file(c, "k", fd, 11 * MIB, &o, etag), 0);
	assert_string_equal(etag, "\"all-3\"");
	assert_int_equal(count("POST /bucket/k?uploadId=", NULL, NULL), 1);
	/* Another request as silent (an empty PUT: curl's speed check
	 * averages over a few seconds of bytes): given up. */
	set_slow("PUT /bucket/slow ", 4000);
	assert_int_not_equal(s3_put_file(c, "slow", fd, 0, &o, etag), 0);
	close(fd);
	s3_client_free(c);
}

static void test_complete_errors(void **state)
{
	static const struct {
		const char *resp;
		int ret;
		const char *code;
		bool retried;
	} t[] = {
		{"200 OK|<Error><Code>InvalidPart</Code><Message>m</Message>"
		 "</Error>",
		 -EIO, "InvalidPart", false},
		{"200 OK|\n\n<?xml version=\"1.0\"?><Error><Code>InternalError"
		 "</Code></Error>",
		 -EIO, "InternalError", true},
		{"200 OK|<Error><Code>PreconditionFailed</Code></Error>",
		 -ESTALE, "PreconditionFailed", false},
		{"412 Precondition Failed|<Error><Code>PreconditionFailed"
		 "</Code></Error>",
		 -ESTALE, "PreconditionFailed", false},
		{"409 Conflict|<Error><Code>ConditionalRequestConflict</Code>"
		 "</Error>",
		 -ESTALE, "ConditionalRequestConflict", false},
		{"200 OK|<!DOCTYPE x [<!ENTITY a \"b\">]><Complete"
		 "MultipartUploadResult><ETag>&a;</ETag>"
		 "</CompleteMultipartUploadResult>",
		 -EPROTO, "", false},
		{"200 OK|<CompleteMultipartUploadResult><Key>k</Key>"
		 "</CompleteMultipartUploadResult>",
		 -EPROTO, "", false},
		{"200 OK|<CompleteMultipartUploadResult><ETag>x", -EPROTO, "",
		 false},
	};
	struct s3_put_opts o = {.part_size = 5 * MIB, .single_max = 1};
	int fd = temp_file(6 * MIB);
	struct s3_client *c;
	char etag[80];
	size_t i;

	(void)state;
	/* Room for a retry of a slow first Complete (loaded machine). */
	c = client(1500);
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		char status[64], *bar = strchr(t[i].resp, '|');
		struct rule rules[] = {
			{"?uploads ", xml_resp("200 OK", INITIATE)},
			{"PUT /bucket/k?partNumber=", PART_OK},
			{"POST /bucket/k?uploadId=", NULL},
			{"DELETE /bucket/k?uploadId=", NO_CONTENT},
		};
		int before = count("POST /bucket/k?uploadId=", NULL, NULL);
		int aborts = count("DELETE", NULL, NULL);

		snprintf(status, sizeof(status), "%.*s", (int)(bar - t[i].resp),
			 t[i].resp);
		rules[2].resp = xml_resp(status, bar + 1);
		set_rules(rules, ARRAY_SIZE(rules));
		assert_int_equal(s3_put_file(c, "k", fd, 6 * MIB, &o, etag),
				 t[i].ret);
		assert_string_equal(etag, "");
		if (*t[i].code)
			assert_string_equal(s3_error_code(), t[i].code);
		if (t[i].retried)
			assert_true(
				count("POST /bucket/k?uploadId=", NULL, NULL) -
					before >
				1);
		else
			assert_int_equal(
				count("POST /bucket/k?uploadId=", NULL, NULL) -
					before,
				1);
		assert_int_equal(count("DELETE", NULL, NULL) - aborts, 1);
	}
	close(fd);
	s3_client_free(c);
}

static void test_initiate_hostile(void **state)
{
	static const char *const bodies[] = {
		"<!DOCTYPE x [<!ENTITY a \"aaaaaaaa\"><!ENTITY b "
		"\"&a;&a;&a;\">]>"
		"<InitiateMultipartUploadResult><UploadId>&b;</UploadId>"
		"</InitiateMultipartUploadResult>",
		"<InitiateMultipartUploadResult><Bucket>b</Bucket>"
		"</InitiateMultipartUploadResult>",
		"<InitiateMultipartUploadResult><UploadId>a</UploadId>"
		"<UploadId>b</UploadId></InitiateMultipartUploadResult>",
		"<ListBucketResult><UploadId>a</UploadId></ListBucketResult>",
		"<InitiateMultipartUploadResult><UploadId>a",
		"",
	};
	struct s3_put_opts o = {.single_max = 1};
	int fd = temp_file(2);
	struct s3_client *c;
	size_t i;

	(void)state;
	c = client(300);
	for (i = 0; i < ARRAY_SIZE(bodies); i++) {
		const struct rule rules[] = {
			{"?uploads ", xml_resp("200 OK", bodies[i])},
			{"PUT", PART_OK},
		};
		set_rules(rules, ARRAY_SIZE(rules));
		assert_int_equal(s3_put_file(c, "k", fd, 2, &o, NULL), -EPROTO);
	}
	assert_int_equal(count("PUT", NULL, NULL), 0);
	assert_int_equal(count("DELETE", NULL, NULL), 0);
	close(fd);
	s3_client_free(c);
}

static void test_single_put_shape(void **state)
{
	const struct rule rules[] = {
		{"PUT /bucket/new ",
		 xml_resp("409 Conflict", "<Error><Code>ConditionalRequest"
					  "Conflict</Code></Error>")},
		{"PUT /bucket/ok ", PART_OK},
	};
	struct s3_put_opts o = {.if_none_match_any = true};
	char etag[80], want[80], *h;
	int fd = temp_file(5);
	struct s3_client *c;

	(void)state;
	assert_int_equal(pwrite_all(fd, "hello", 5, 0), 0);
	set_rules(rules, ARRAY_SIZE(rules));
	c = client(300);
	assert_int_equal(s3_put_file(c, "new", fd, 5, &o, etag), -ESTALE);
	assert_int_equal(count("PUT /bucket/new ", NULL, &h), 1);
	assert_non_null(strstr(h, "\r\nIf-None-Match: *\r\n"));
	/* md5("hello") in base64, sha256("hello") in hex. */
	assert_non_null(
		strstr(h, "\r\nContent-MD5: XUFAKrxLKna5cZ2REBfFkg==\r\n"));
	assert_non_null(strstr(h, "\r\nx-amz-content-sha256: 2cf24dba5fb0a30e"
				  "26e83b2ac5b9e29e1b161e5c1fa7425e730433"
				  "62938b9824\r\n"));
	assert_non_null(strstr(h, "\r\nContent-Length: 5\r\n"));
	free(h);
	assert_int_equal(s3_put_file(c, "ok", fd, 5, NULL, etag), 0);
	snprintf(want, sizeof(want), "\"p&<>\"");
	assert_string_equal(etag, want);
	assert_int_equal(count("PUT /bucket/ok ", "If-", NULL), 0);
	/* An fd that cannot be read: its errno, not retried. */
	close(fd);
	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(s3_put_file(c, "ok", fd, 5, NULL, etag), -EISDIR);
	close(fd);
	assert_int_equal(s3_put_file(c, "ok", -1, 5, NULL, etag), -EINVAL);
	assert_int_equal(s3_put_file(c, "", 0, 5, NULL, etag), -EINVAL);
	s3_client_free(c);
}

static void test_copy_shapes(void **state)
{
	const struct s3_header meta[] = {{"x-amz-meta-file-group", "9"}};
	struct s3_put_opts o = {.if_match = "\"s1\"", .meta = meta, .nmeta = 1};
	const struct rule head = {
		"HEAD /bucket/src%20k ",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nETag: \"s1\"\r\n"
		"Content-Length: 10\r\n\r\n"};
	struct rule rules[] = {
		head,
		{"PUT /bucket/dst ",
		 xml_resp("200 OK", "<Error><Code>InvalidRequest</Code>"
				    "<Message>nope</Message></Error>")},
	};
	struct s3_client *c;
	char etag[80], *h;

	(void)state;
	set_rules(rules, ARRAY_SIZE(rules));
	c = client(300);
	/* A 200 with an <Error> body. */
	assert_int_equal(s3_copy_object(c, "src k", "dst", &o, etag), -EIO);
	assert_string_equal(s3_error_code(), "InvalidRequest");
	assert_string_equal(s3_error_message(), "nope");
	assert_int_equal(count("PUT /bucket/dst ", NULL, &h), 1);
	assert_non_null(strstr(h, "\r\nx-amz-copy-source: bucket/src%20k\r\n"));
	assert_non_null(strstr(h, "\r\nx-amz-metadata-directive: REPLACE\r\n"));
	assert_non_null(
		strstr(h, "\r\nx-amz-copy-source-if-match: \"s1\"\r\n"));
	assert_non_null(strstr(h, "\r\nx-amz-meta-file-group: 9\r\n"));
	assert_null(strstr(h, "If-None-Match"));
	free(h);

	/* The source's condition fails on the server. */
	rules[1].resp = xml_resp("412 Precondition Failed",
				 "<Error><Code>PreconditionFailed</Code>"
				 "</Error>");
	set_rules(rules, ARRAY_SIZE(rules));
	assert_int_equal(s3_copy_object(c, "src k", "dst", &o, etag), -ESTALE);
	/* ... and before any copy, when HeadObject shows another ETag. */
	o.if_match = "\"s0\"";
	assert_int_equal(s3_copy_object(c, "src k", "dst", &o, etag), -ESTALE);
	assert_int_equal(count("PUT /bucket/dst ", NULL, NULL), 2);

	/* Success: the ETag from CopyObjectResult. */
	o.if_match = NULL;
	rules[1].resp = xml_resp(
		"200 OK", "  <CopyObjectResult><LastModified>2024-01-01T00:00:"
			  "00Z</LastModified><ETag>\"c2\"</ETag>"
			  "</CopyObjectResult>");
	set_rules(rules, ARRAY_SIZE(rules));
	assert_int_equal(s3_copy_object(c, "src k", "dst", &o, etag), 0);
	assert_string_equal(etag, "\"c2\"");
	/* A missing source. */
	assert_int_equal(s3_copy_object(c, "nosrc", "dst", &o, etag), -EINVAL);
	s3_client_free(c);
}

static void test_copy_multipart_shape(void **state)
{
	const struct rule rules[] = {
		{"HEAD /bucket/src ",
		 "HTTP/1.1 200 OK\r\nConnection: close\r\nETag: \"s1\"\r\n"
		 "Content-Length: 12582912\r\n\r\n"},
		{"?uploads ", xml_resp("200 OK", INITIATE)},
		{"partNumber=2&",
		 xml_resp("200 OK", "<Error><Code>PreconditionFailed</Code>"
				    "</Error>")},
		{"PUT /bucket/k?partNumber=",
		 xml_resp("200 OK", "<CopyPartResult><ETag>\"cp\"</ETag>"
				    "</CopyPartResult>")},
		{"DELETE /bucket/k?uploadId=", NO_CONTENT},
	};
	struct s3_put_opts o = {.part_size = 5 * MIB};
	struct s3_client *c;
	char etag[80], *h;

	(void)state;
	set_rules(rules, ARRAY_SIZE(rules));
	c = client(300);
	s3_client_set_copy_single_max(c, 5 * MIB);
	assert_int_equal(s3_copy_object(c, "src", "k", &o, etag), -ESTALE);
	assert_int_equal(count("PUT /bucket/k?partNumber=1&", NULL, &h), 1);
	assert_non_null(strstr(h, "\r\nx-amz-copy-source: bucket/src\r\n"));
	assert_non_null(
		strstr(h, "\r\nx-amz-copy-source-range: bytes=0-5242879\r\n"));
	/* Pinned to the ETag HeadObject saw. */
	assert_non_null(
		strstr(h, "\r\nx-amz-copy-source-if-match: \"s1\"\r\n"));
	free(h);
	assert_int_equal(count("DELETE /bucket/k?uploadId=", NULL, NULL), 1);
	assert_int_equal(count("POST /bucket/k?uploadId=", NULL, NULL), 0);
	s3_client_free(c);
}

static void test_delete_shape(void **state)
{
	const struct rule rules[] = {
		{"DELETE /bucket/a%20b ", NO_CONTENT},
		{"DELETE /bucket/denied ",
		 xml_resp("403 Forbidden",
			  "<Error><Code>AccessDenied</Code></Error>")},
	};
	struct s3_client *c;

	(void)state;
	set_rules(rules, ARRAY_SIZE(rules));
	c = client(300);
	assert_int_equal(s3_delete_object(c, "a b"), 0);
	assert_int_equal(s3_delete_object(c, "denied"), -EACCES);
	s3_client_free(c);
}

static void test_parse_results(void **state)
{
	static const struct {
		int which; /* 0 initiate, 1 complete, 2 copy */
		const char *xml;
		int ret;
		const char *value;
	} t[] = {
		{0, INITIATE, 0, UPLOAD_ID},
		{0,
		 "\r\n \t<InitiateMultipartUploadResult><UploadId>x"
		 "</UploadId></InitiateMultipartUploadResult>",
		 0, "x"},
		{0,
		 "<InitiateMultipartUploadResult><a><UploadId>x</UploadId>"
		 "</a></InitiateMultipartUploadResult>",
		 -EPROTO, NULL},
		{0,
		 "<InitiateMultipartUploadResult><UploadId></UploadId>"
		 "</InitiateMultipartUploadResult>",
		 -EPROTO, NULL},
		{0, "<Error><Code>InternalError</Code></Error>", -EPROTO, NULL},
		{1, COMPLETE, 0, "\"all-3\""},
		{1,
		 "<CompleteMultipartUploadResponse><ETag>e</ETag>"
		 "</CompleteMultipartUploadResponse>",
		 0, "e"},
		{1,
		 "<CompleteMultipartUploadResult><ETag>0123456789012345678901"
		 "23456789012345678901234567890123456789012345678901234567"
		 "89</ETag></CompleteMultipartUploadResult>",
		 -EPROTO, NULL},
		{1,
		 "<CompleteMultipartUploadResult><ETag>a</ETag><ETag>b"
		 "</ETag></CompleteMultipartUploadResult>",
		 -EPROTO, NULL},
		{1, "<CopyObjectResult><ETag>e</ETag></CopyObjectResult>",
		 -EPROTO, NULL},
		{2, "<CopyObjectResult><ETag>e</ETag></CopyObjectResult>", 0,
		 "e"},
		{2,
		 "<CopyPartResult><ETag>&quot;e&quot;</ETag>"
		 "</CopyPartResult>",
		 0, "\"e\""},
		{2, "<CopyObjectResult><ETag>a&#0;b</ETag></CopyObjectResult>",
		 -EPROTO, NULL},
		{2,
		 "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"file:///etc/"
		 "passwd\"><CopyObjectResult><ETag>e</ETag>"
		 "</CopyObjectResult>",
		 -EPROTO, NULL},
		{2, "<CopyObjectResult><ETag>e</ETag></CopyObjectResult><x/>",
		 -EPROTO, NULL},
		{2, "", -EPROTO, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		char etag[80] = "junk", *id = (char *)"junk";
		size_t len = strlen(t[i].xml);
		int ret;

		if (t[i].which == 0)
			ret = s3_parse_initiate(t[i].xml, len, &id);
		else if (t[i].which == 1)
			ret = s3_parse_complete(t[i].xml, len, etag);
		else
			ret = s3_parse_copy_result(t[i].xml, len, etag);
		if (ret != t[i].ret)
			fail_msg("case %zu: %d", i, ret);
		if (t[i].which == 0) {
			if (!ret)
				assert_string_equal(id, t[i].value);
			else
				assert_null(id);
			if (!ret)
				free(id);
		} else {
			assert_string_equal(etag, ret ? "" : t[i].value);
		}
	}
}

static void test_posix_headers(void **state)
{
	static const struct {
		uint32_t mode, uid, gid;
		int64_t atime, mtime;
		const char *v[5];
	} t[] = {
		{0100644, 0, 0, 0, 0, {"0100644", "0", "0", "0ns", "0ns"}},
		{040755,
		 1000,
		 100,
		 1600000000000000000ll,
		 1600000000123456789ll,
		 {"0040755", "1000", "100", "1600000000000000000ns",
		  "1600000000123456789ns"}},
		{0120777,
		 4294967295u,
		 4294967294u,
		 -1,
		 INT64_MAX,
		 {"0120777", "4294967295", "4294967294", "-1ns",
		  "9223372036854775807ns"}},
		/* setuid dropped; setgid and sticky kept. */
		{0104755, 1, 2, 3, 4, {"0100755", "1", "2", "3ns", "4ns"}},
		{0107777,
		 1,
		 2,
		 -1600000000000000001ll,
		 4,
		 {"0103777", "1", "2", "-1600000000000000001ns", "4ns"}},
		/* Bits above the file type are not ours. */
		{0777100644, 1, 2, 3, 4, {"0100644", "1", "2", "3ns", "4ns"}},
	};
	static const char *const names[] = {
		"x-amz-meta-file-permissions", "x-amz-meta-file-owner",
		"x-amz-meta-file-group",       "x-amz-meta-file-atime",
		"x-amz-meta-file-mtime",
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		struct s3_meta_bufs b;
		struct s3_header h[5];
		uint32_t mode;
		int64_t ns;

		assert_int_equal(s3_posix_headers(t[i].mode, t[i].uid, t[i].gid,
						  t[i].atime, t[i].mtime, h,
						  &b),
				 5);
		for (j = 0; j < 5; j++) {
			assert_string_equal(h[j].name, names[j]);
			assert_string_equal(h[j].value, t[i].v[j]);
		}
		/* What we write, we read back. */
		assert_int_equal(s3_parse_mode(h[0].value, &mode), 0);
		assert_int_equal(mode, t[i].mode & 0177777 & ~04000u);
		assert_int_equal(s3_parse_time(h[3].value, &ns), 0);
		assert_int_equal(ns, t[i].atime);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_part_fails_abort),
		T(test_complete_shape),
		T(test_slow_complete),
		T(test_complete_errors),
		T(test_initiate_hostile),
		T(test_single_put_shape),
		T(test_copy_shapes),
		T(test_copy_multipart_shape),
		T(test_delete_shape),
		cmocka_unit_test(test_parse_results),
		cmocka_unit_test(test_posix_headers),
	};
#undef T

	if (getenv("S3DBG"))
		log_set_level(LOG_LVL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
