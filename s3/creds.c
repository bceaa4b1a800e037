// SPDX-License-Identifier: MIT
/*
 * AWS credentials the way the AWS CLI finds them: environment variables,
 * then a profile of the shared credentials file. Secrets are never logged;
 * messages name the file, the line and the profile only.
 */
#include "s3/s3_i.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/common.h"

#define MAX_CREDS_FILE (1u << 20)

static void free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void s3_credentials_release(struct s3_credentials *c)
{
	if (!c)
		return;
	free(c->access_key);
	free_secret(c->secret_key);
	free_secret(c->session_token);
	memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
	char *e;

	while (*s && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int set_field(char **dst, const char *v)
{
	char *n = strdup(v);

	if (!n)
		return -ENOMEM;
	free_secret(*dst);
	*dst = n;
	return 0;
}

/* Parse the text of a credentials file (modified in place). */
static int parse_creds(char *text, const char *path, const char *profile,
		       struct s3_credentials *out)
{
	bool in_section = false, found = false;
	char *line, *next;
	int lineno = 0, ret = 0;

	for (line = text; line; line = next) {
		char *l, *eq, *k, *v;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		/* Indented lines continue a nested value: not ours. */
		if (line[0] == ' ' || line[0] == '\t')
			continue;
		l = trim(line);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');
			if (!end || *trim(end + 1)) {
				log_warn("%s:%d: malformed section header",
					 path, lineno);
				return -EINVAL;
			}
			*end = '\0';
			in_section = !strcmp(trim(l + 1), profile);
			found |= in_section;
			continue;
		}
		eq = strchr(l, '=');
		if (!eq) {
			log_warn("%s:%d: expected key = value", path, lineno);
			return -EINVAL;
		}
		if (!in_section)
			continue;
		*eq = '\0';
		k = trim(l);
		v = trim(eq + 1);
		if (!strcasecmp(k, "aws_access_key_id"))
			ret = set_field(&out->access_key, v);
		else if (!strcasecmp(k, "aws_secret_access_key"))
			ret = set_field(&out->secret_key, v);
		else if (!strcasecmp(k, "aws_session_token") ||
			 !strcasecmp(k, "aws_security_token"))
			ret = set_field(&out->session_token, v);
		if (ret)
			return ret;
	}
	if (!found)
		return -ENOENT;
	if (!out->access_key && !out->secret_key)
		return -ENOENT;
	if (!out->access_key || !*out->access_key || !out->secret_key ||
	    !*out->secret_key) {
		log_warn("%s: profile [%s] has partial credentials", path,
			 profile);
		return -EINVAL;
	}
	return 0;
}

int s3_credentials_from_file(const char *path, const char *profile,
			     struct s3_credentials *out)
{
	struct s3_buf text;
	char chunk[4096];
	FILE *f;
	size_t n;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!path || !profile || !*profile)
		return -EINVAL;
	f = fopen(path, "re");
	if (!f) {
		ret = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
		if (ret != -ENOENT)
			log_warn("cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	s3_buf_init(&text);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		s3_buf_add(&text, chunk, n);
		if (text.len > MAX_CREDS_FILE)
			break;
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (ferror(f)) {
		ret = -EIO;
	} else if (text.oom) {
		ret = -ENOMEM;
	} else if (text.len > MAX_CREDS_FILE) {
		log_warn("%s: too large for a credentials file", path);
		ret = -EINVAL;
	} else if (text.len && memchr(text.p, '\0', text.len)) {
		log_warn("%s: not a text file", path);
		ret = -EINVAL;
	} else {
		ret = parse_creds(text.p ? text.p : (char *)"", path, profile,
				  out);
	}
	fclose(f);
	if (text.p)
		OPENSSL_cleanse(text.p, text.len);
	s3_buf_release(&text);
	if (ret)
		s3_credentials_release(out);
	return ret;
}

static int from_env(struct s3_credentials *out)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");

	if (!ak || !*ak || !sk || !*sk)
		return -ENOENT;
	if (!tok || !*tok)
		tok = getenv("AWS_SECURITY_TOKEN");
	out->access_key = strdup(ak);
	out->secret_key = strdup(sk);
	out->session_token = tok && *tok ? strdup(tok) : NULL;
	if (!out->access_key || !out->secret_key ||
	    (tok && *tok && !out->session_token)) {
		s3_credentials_release(out);
		return -ENOMEM;
	}
	return 0;
}

static char *creds_path(void)
{
	const char *p = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *home = getenv("HOME");
	struct s3_buf b;

	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	s3_buf_init(&b);
	if (p && *p) {
		if (p[0] == '~' && p[1] == '/' && home) {
			s3_buf_adds(&b, home);
			s3_buf_adds(&b, p + 1);
		} else {
			s3_buf_adds(&b, p);
		}
	} else if (home) {
		s3_buf_adds(&b, home);
		s3_buf_adds(&b, "/.aws/credentials");
	} else {
		return NULL;
	}
	return s3_buf_detach(&b);
}

int s3_credentials_load(const char *profile, struct s3_credentials *out)
{
	char *path;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!profile) {
		ret = from_env(out);
		if (ret != -ENOENT)
			return ret;
		profile = getenv("AWS_PROFILE");
		if (!profile || !*profile)
			profile = "default";
	}
	path = creds_path();
	if (!path)
		return -ENOENT;
	ret = s3_credentials_from_file(path, profile, out);
	if (ret == -ENOENT)
		log_debug("no credentials for profile [%s] in %s", profile,
			  path);
	free(path);
	return ret;
}
