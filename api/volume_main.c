// SPDX-License-Identifier: MIT
/*
 * tidefs-volume: the Docker volume plugin for tidefs. Serves the plugin
 * protocol (HTTP POST with JSON bodies, see api/volume.h) on a unix socket,
 * by default /run/docker/plugins/tidefs.sock, where dockerd discovers it as
 * the volume driver "tidefs". Runs in the foreground (a systemd service),
 * logs to stderr, and on SIGTERM/SIGINT stops serving and exits 0 without
 * unmounting any volume.
 */
#include "api/volume.h"
#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_BODY     (1 << 20)
#define CONTENT_TYPE "application/vnd.docker.plugins.v1+json"

struct request {
	char *body;
	size_t len;
	bool too_big;
};

static void usage(const char *prog)
{
	printf("usage: %s [OPTIONS]\n"
	       "\n"
	       "Docker volume plugin for tidefs: docker volume create -d tidefs"
	       " -o bucket=B ...\n"
	       "\n"
	       "  --socket PATH          listen here (default "
	       "/run/docker/plugins/tidefs.sock)\n"
	       "  --root DIR             state and volumes (default "
	       "/var/lib/tidefs-volume)\n"
	       "  --tidefs PATH          the tidefs binary (default: tidefs on"
	       " PATH)\n"
	       "  --mount-timeout SECS   how long a tidefs start may take "
	       "(default 600)\n"
	       "  --log-level LEVEL      error, warn, info (default), debug\n"
	       "  -h, --help             this text\n"
	       "  -V, --version          print the version\n",
	       prog);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, int status,
				  char *json)
{
	static const char oom[] = "{\"Err\":\"out of memory\"}";
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (json)
		r = MHD_create_response_from_buffer(strlen(json), json,
						    MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(
			sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(json);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	ret = MHD_queue_response(c, (unsigned int)status, r);
	MHD_destroy_response(r);
	return ret;
}

static char *err_json(const char *msg)
{
	size_t n = strlen(msg) + 16;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "{\"Err\":\"%s\"}", msg); /* msg: fixed text */
	return s;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct volume_plugin *vp = cls;
	struct request *rq = *con_cls;
	char *resp = NULL;
	int status;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		if (rq->len + *upload_size > MAX_BODY) {
			rq->too_big = true;
		} else {
			char *n = realloc(rq->body, rq->len + *upload_size + 1);
			if (!n)
				return MHD_NO;
			memcpy(n + rq->len, upload, *upload_size);
			rq->body = n;
			rq->len += *upload_size;
			rq->body[rq->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return send_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				  err_json("use POST"));
	if (rq->too_big)
		return send_reply(c, MHD_HTTP_CONTENT_TOO_LARGE,
				  err_json("request body over 1 MiB"));
	log_debug("volume: %s %.*s", url, (int)MIN(rq->len, 512),
		  rq->body ? rq->body : "");
	status = volume_plugin_call(vp, url, rq->body, rq->len, &resp);
	return send_reply(c, status, resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* A listening unix socket at path; a stale socket file is replaced, a live
 * one (another plugin answers) is an error. */
static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "tidefs-volume: socket path too long: %s\n",
			path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	(void)mkdir_p_parent(path); /* bind() says what is wrong */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out_err;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		fprintf(stderr,
			"tidefs-volume: %s: another plugin is listening\n",
			path);
		close(fd);
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0 || listen(fd, 64) < 0)
		goto out_err;
	return fd;
out_err:
	fprintf(stderr, "tidefs-volume: %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

struct main_opts {
	const char *socket;
	struct volume_config cfg;
	enum log_level level;
};

static int parse_args(int argc, char **argv, struct main_opts *o)
{
	static const struct option lo[] = {
		{"socket", required_argument, NULL, 's'},
		{"root", required_argument, NULL, 'r'},
		{"tidefs", required_argument, NULL, 't'},
		{"mount-timeout", required_argument, NULL, 'm'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "hV", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'r':
			o->cfg.root = optarg;
			break;
		case 't':
			o->cfg.tidefs = optarg;
			break;
		case 'm':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 86400) {
				fprintf(stderr,
					"tidefs-volume: bad "
					"--mount-timeout '%s'\n",
					optarg);
				return 2;
			}
			o->cfg.mount_timeout_s = (int)v;
			break;
		case 'l':
			if (log_parse_level(optarg, &o->level) < 0) {
				fprintf(stderr,
					"tidefs-volume: bad --log-level '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(argv[0]);
			return 0;
		case 'V':
			printf("tidefs-volume %s\n", TIDEFS_VERSION);
			return 0;
		default:
			fprintf(stderr, "tidefs-volume: unknown option or "
					"missing value (see --help)\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tidefs-volume: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct main_opts o = {
		.socket = "/run/docker/plugins/tidefs.sock",
		.cfg = {.root = "/var/lib/tidefs-volume",
			.tidefs = "tidefs",
			.mount_timeout_s = 600},
		.level = LOG_LVL_INFO,
	};
	struct volume_plugin *vp = NULL;
	struct MHD_Daemon *d;
	char err[512];
	sigset_t set;
	int fd, sig, ret;

	ret = parse_args(argc, argv, &o);
	if (ret >= 0)
		return ret;
	log_set_level(o.level);
	/* Before any thread: every thread blocks these, main sigwait()s. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (volume_plugin_open(&o.cfg, &vp, err, sizeof(err)) < 0) {
		fprintf(stderr, "tidefs-volume: %s\n", err);
		return 1;
	}
	fd = listen_unix(o.socket);
	if (fd < 0) {
		volume_plugin_close(vp);
		return 1;
	}
	d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, vp, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, 64U, MHD_OPTION_CONNECTION_TIMEOUT,
		120U, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr,
			"tidefs-volume: cannot start the HTTP server\n");
		close(fd);
		unlink(o.socket);
		volume_plugin_close(vp);
		return 1;
	}
	log_info("tidefs-volume %s listening on %s (root %s, tidefs %s)",
		 TIDEFS_VERSION, o.socket, o.cfg.root, o.cfg.tidefs);
	do {
		if (sigwait(&set, &sig) != 0)
			sig = SIGTERM;
	} while (sig == SIGHUP);
	log_info("tidefs-volume: %s, stopping (volumes stay mounted)",
		 strsignal(sig));
	MHD_stop_daemon(d);
	close(fd);
	unlink(o.socket);
	volume_plugin_close(vp);
	return 0;
}
