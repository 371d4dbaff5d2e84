/*
 * conf.c: telehook.conf, an ini file: "[section]" headers, "key = value"
 * lines, values optionally double-quoted, whole-line "#" and ";" comments.
 *
 * One table, conf_keys[], drives parsing, defaults, range checks and the
 * documentation check in t/optscan.sh: a key exists only if it is there.
 * Every error is reported as "file:line: reason" and parsing goes on, so
 * one run of "telehook -n" lists them all.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "extern.h"

struct conf	 conf;

#define C(f)	offsetof(struct conf, f)

/* Sections in file order; keys alphabetical within a section. */
const struct conf_key conf_keys[] = {
	{ "database", "conninfo", CONF_CONNINFO, C(conninfo), 0,
	    "dbname=telehook", 0, 0 },
	{ "database", "lock_timeout_ms", CONF_INT, C(lock_timeout_ms), 0,
	    "500", 0, 60000 },
	{ "database", "pooler", CONF_POOLER, C(pooler), 0, "none", 0, 0 },
	{ "database", "read_conninfo", CONF_CONNINFO, C(read_conninfo), 0,
	    NULL, 0, 0 },
	{ "database", "read_max_lag_ms", CONF_INT, C(read_max_lag_ms), 0,
	    "1000", 0, 600000 },
	{ "database", "statement_timeout_ms", CONF_INT,
	    C(statement_timeout_ms), 0, "2000", 100, 60000 },

	{ "server", "answer_budget_ms", CONF_INT, C(answer_budget_ms), 0,
	    "1000", 200, 60000 },
	{ "server", "cache_ttl_s", CONF_INT, C(cache_ttl_s), 0, "60",
	    0, 86400 },
	{ "server", "health_socket", CONF_PATH, C(health_socket), 0,
	    "/run/telehook/health.sock", 0, 0 },
	{ "server", "log_level", CONF_LOGLEVEL, C(log_level), 0, "info",
	    0, 0 },
	{ "server", "max_body_bytes", CONF_INT, C(max_body_bytes), 0,
	    "1048576", 1024, 64 * 1024 * 1024 },
	{ "server", "public_url", CONF_URL, C(public_url), 0, NULL, 0, 0 },
	{ "server", "secret_key_file", CONF_PATH, C(secret_key_file), 0,
	    NULL, 0, 0 },
	{ "server", "spool_dir", CONF_PATH, C(spool_dir), 0,
	    TELEHOOK_SPOOLDIR, 0, 0 },
	{ "server", "trusted_proxies", CONF_CIDRS, C(trusted_proxies), 0,
	    NULL, 0, 0 },

	{ "twilio", "api_url", CONF_APIURL, C(twilio.api_url), 0,
	    "https://api.twilio.com", 0, 0 },
	{ "twilio", "auth_token", CONF_STR, C(twilio.auth_token),
	    CONF_SECRET, NULL, 0, 0 },
	{ "twilio", "auth_token_previous", CONF_STR,
	    C(twilio.auth_token_previous), CONF_SECRET, NULL, 0, 0 },
	{ "twilio", "insecure_allow_unsigned", CONF_BOOL,
	    C(twilio.insecure_allow_unsigned), 0, "no", 0, 0 },
	{ "twilio", "webhook_secret", CONF_STR, C(twilio.webhook_secret),
	    CONF_SECRET, NULL, 0, 0 },

	{ "retell", "allowed_ips", CONF_CIDRS, C(retell.allowed_ips), 0,
	    NULL, 0, 0 },
	{ "retell", "api_key", CONF_STR, C(retell.api_key), CONF_SECRET,
	    NULL, 0, 0 },
	{ "retell", "api_key_previous", CONF_STR, C(retell.api_key_previous),
	    CONF_SECRET, NULL, 0, 0 },
	{ "retell", "insecure_allow_unsigned", CONF_BOOL,
	    C(retell.insecure_allow_unsigned), 0, "no", 0, 0 },
	{ "retell", "signature_tolerance_s", CONF_INT,
	    C(retell.signature_tolerance_s), 0, "300", 1, 86400 },
	{ "retell", "webhook_secret", CONF_STR, C(retell.webhook_secret),
	    CONF_SECRET, NULL, 0, 0 },

	{ "voipms", "allowed_ips", CONF_CIDRS, C(voipms.allowed_ips), 0,
	    NULL, 0, 0 },
	{ "voipms", "api_password", CONF_STR, C(voipms.api_password),
	    CONF_SECRET, NULL, 0, 0 },
	{ "voipms", "api_url", CONF_APIURL, C(voipms.api_url), 0,
	    "https://voip.ms/api/v1/rest.php", 0, 0 },
	{ "voipms", "api_username", CONF_STR, C(voipms.api_username), 0,
	    NULL, 0, 0 },
	{ "voipms", "currency", CONF_STR, C(voipms.currency), 0, "USD", 0, 0 },
	{ "voipms", "insecure_allow_unsigned", CONF_BOOL,
	    C(voipms.insecure_allow_unsigned), 0, "no", 0, 0 },
	{ "voipms", "timezone", CONF_STR, C(voipms.timezone), 0, "UTC", 0, 0 },
	{ "voipms", "url_token", CONF_STR, C(voipms.url_token), CONF_SECRET,
	    NULL, 0, 0 },
	{ "voipms", "url_token_previous", CONF_STR,
	    C(voipms.url_token_previous), CONF_SECRET, NULL, 0, 0 },

	{ "delivery", "allow_private", CONF_BOOL, C(delivery.allow_private),
	    0, "no", 0, 0 },
	{ "delivery", "defer_s", CONF_INT, C(delivery.defer_s), 0, "30", 0,
	    3600 },
	{ "delivery", "retry_schedule", CONF_SCHEDULE,
	    C(delivery.retry_schedule), 0, "5s,5m,30m,2h,5h,10h,10h", 0, 0 },
	{ "delivery", "timeout_s", CONF_INT, C(delivery.timeout_s), 0, "15",
	    1, 120 },

	{ "smtp", "from", CONF_STR, C(smtp.from), 0, NULL, 0, 0 },
	{ "smtp", "password", CONF_STR, C(smtp.password), CONF_SECRET, NULL,
	    0, 0 },
	{ "smtp", "url", CONF_SMTPURL, C(smtp.url), 0, NULL, 0, 0 },
	{ "smtp", "username", CONF_STR, C(smtp.username), 0, NULL, 0, 0 },

	{ NULL, NULL, CONF__MAX, 0, 0, NULL, 0, 0 }
};

#define CONF_MAXSIZE	(1024 * 1024)

static void
conf_report(conf_errfn errfn, const char *file, int line, const char *fmt,
    ...) PRINTFLIKE(4, 5);

static void
conf_report(conf_errfn errfn, const char *file, int line, const char *fmt,
    ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errfn != NULL)
		errfn(file, line, msg);
}

static int
conf_bool(const char *v)
{
	static const char *yes[] = { "yes", "true", "on", "1", NULL };
	static const char *no[] = { "no", "false", "off", "0", NULL };
	int	 i;

	for (i = 0; yes[i] != NULL; i++)
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
	for (i = 0; no[i] != NULL; i++)
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	return -1;
}

/*
 * public_url: scheme and authority only, as the provider sees us.  The
 * request path is appended from REQUEST_URI, so a path here would sign
 * the wrong URL.
 */
static const char *
conf_check_url(const char *v)
{
	const char	*host;

	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		return "must start with https:// or http://";
	if (*host == '\0' || *host == '/' || *host == ':')
		return "has no host";
	if (strpbrk(host, "?#@ \t") != NULL)
		return "must be scheme://host[:port] only "
		    "(no user, query or fragment)";
	if (strchr(host, '/') != NULL && strcmp(strchr(host, '/'), "/") != 0)
		return "must not have a path: the request path is appended";
	return NULL;
}

/*
 * An API endpoint telehook calls with credentials: HTTPS, or plain HTTP
 * only to this machine (a local test server).
 */
static const char *
conf_check_apiurl(const char *v)
{
	if (strncmp(v, "https://", 8) == 0)
		return v[8] != '\0' && v[8] != '/' ? NULL : "has no host";
	return util_url_local(v, "http") ? NULL :
	    "must be https:// (plain http only to this machine)";
}

/*
 * The operator's mail relay: smtps:// (TLS from the start) or smtp://
 * (STARTTLS, required unless the relay is on this machine).
 */
static const char *
conf_check_smtpurl(const char *v)
{
	const char	*h;

	if (strncmp(v, "smtps://", 8) == 0)
		h = v + 8;
	else if (strncmp(v, "smtp://", 7) == 0)
		h = v + 7;
	else
		return "must be smtp:// or smtps://";
	return *h != '\0' && *h != '/' && *h != ':' ? NULL : "has no host";
}

/* Set key k from value v; NULL on success, else why not. */
static const char *
conf_set(struct conf *c, const struct conf_key *k, const char *v)
{
	static char	 why[160];
	void		*field = (char *)c + k->off;
	const char	*errstr;
	long long	 n;
	int		 b;
	struct cidrlist	 cl;
	PQconninfoOption *opts, *o;
	char		*pqerr = NULL;
	char		*copy;
	size_t		 len;
	long long	 sched[DELIVERY_MAX_ATTEMPTS];

	switch (k->type) {
	case CONF_INT:
		n = util_strtonum(v, k->min, k->max, &errstr);
		if (errstr != NULL) {
			snprintf(why, sizeof(why), "%s is %s (%lld to %lld)",
			    k->name, errstr, k->min, k->max);
			return why;
		}
		*(long long *)field = n;
		return NULL;
	case CONF_BOOL:
		if ((b = conf_bool(v)) == -1) {
			snprintf(why, sizeof(why), "%s must be yes or no",
			    k->name);
			return why;
		}
		*(int *)field = b;
		return NULL;
	case CONF_LOGLEVEL:
		if ((b = log_level_parse(v)) == -1) {
			snprintf(why, sizeof(why), "%s must be one of err, "
			    "warning, notice, info, debug", k->name);
			return why;
		}
		*(int *)field = b;
		return NULL;
	case CONF_POOLER:
		if (strcmp(v, "none") == 0)
			*(int *)field = DB_POOLER_NONE;
		else if (strcmp(v, "transaction") == 0)
			*(int *)field = DB_POOLER_TRANSACTION;
		else {
			snprintf(why, sizeof(why), "%s must be none or "
			    "transaction", k->name);
			return why;
		}
		return NULL;
	case CONF_URL:
		if ((errstr = conf_check_url(v)) != NULL) {
			snprintf(why, sizeof(why), "%s %s", k->name, errstr);
			return why;
		}
		copy = xstrdup(v);
		len = strlen(copy);
		if (len > 0 && copy[len - 1] == '/')
			copy[len - 1] = '\0';
		free(*(char **)field);
		*(char **)field = copy;
		return NULL;
	case CONF_APIURL:
		if ((errstr = conf_check_apiurl(v)) != NULL) {
			snprintf(why, sizeof(why), "%s %s", k->name, errstr);
			return why;
		}
		break;
	case CONF_SMTPURL:
		if ((errstr = conf_check_smtpurl(v)) != NULL) {
			snprintf(why, sizeof(why), "%s %s", k->name, errstr);
			return why;
		}
		break;
	case CONF_SCHEDULE:
		if (util_schedule(v, sched, DELIVERY_MAX_ATTEMPTS) == -1) {
			snprintf(why, sizeof(why), "%s must be up to %d delays "
			    "like 5s,5m,2h", k->name, DELIVERY_MAX_ATTEMPTS);
			return why;
		}
		break;
	case CONF_CIDRS:
		if (cidrlist_parse(v, &cl, &errstr) == -1) {
			snprintf(why, sizeof(why), "%s: %s", k->name, errstr);
			return why;
		}
		cidrlist_free(&cl);
		break;
	case CONF_PATH:
		if (v[0] != '/') {
			snprintf(why, sizeof(why), "%s must be an absolute "
			    "path", k->name);
			return why;
		}
		break;
	case CONF_CONNINFO:
		if ((opts = PQconninfoParse(v, &pqerr)) == NULL) {
			snprintf(why, sizeof(why), "%s: %s", k->name,
			    pqerr != NULL ? strtok(pqerr, "\n") :
			    "out of memory");
			PQfreemem(pqerr);
			return why;
		}
		for (o = opts; o->keyword != NULL; o++)
			if (strcmp(o->keyword, "password") == 0 &&
			    o->val != NULL && o->val[0] != '\0')
				c->has_secrets = 1;
		PQconninfoFree(opts);
		break;
	case CONF_STR:
		if (v[0] == '\0' && (k->flags & CONF_SECRET)) {
			snprintf(why, sizeof(why), "%s is empty", k->name);
			return why;
		}
		break;
	case CONF__MAX:
		return "bad table entry";
	}
	free(*(char **)field);
	*(char **)field = xstrdup(v);
	if (k->flags & CONF_SECRET)
		c->has_secrets = 1;
	return NULL;
}

void
conf_defaults(struct conf *c)
{
	const struct conf_key	*k;
	const char		*why;

	memset(c, 0, sizeof(*c));
	for (k = conf_keys; k->name != NULL; k++)
		if (k->def != NULL && (why = conf_set(c, k, k->def)) != NULL)
			fatalx("default of %s: %s", k->name, why);
	c->has_secrets = 0;
}

static const struct conf_key *
conf_lookup(const char *section, const char *name, size_t *idx)
{
	size_t	 i;

	for (i = 0; conf_keys[i].name != NULL; i++)
		if (strcmp(conf_keys[i].section, section) == 0 &&
		    strcmp(conf_keys[i].name, name) == 0) {
			*idx = i;
			return &conf_keys[i];
		}
	return NULL;
}

static int
conf_known_section(const char *s)
{
	size_t	 i;

	for (i = 0; conf_keys[i].name != NULL; i++)
		if (strcmp(conf_keys[i].section, s) == 0)
			return 1;
	return 0;
}

/*
 * A value: bare (trailing blanks trimmed) or double-quoted with \" and \\
 * escapes, nothing but blanks after the closing quote.  Caller frees *out.
 */
int
conf_unquote(const char *v, size_t len, char **out, const char **errstr)
{
	char	*d;
	size_t	 i, o = 0;

	*out = NULL;
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 0 || v[0] != '"') {
		*out = xstrndup(v, len);
		return 0;
	}
	d = xmalloc(len);
	for (i = 1; i < len; i++) {
		if (v[i] == '\\' && i + 1 < len &&
		    (v[i + 1] == '"' || v[i + 1] == '\\'))
			d[o++] = v[++i];
		else if (v[i] == '"')
			break;
		else
			d[o++] = v[i];
	}
	if (i >= len) {
		free(d);
		*errstr = "unterminated quoted value";
		return -1;
	}
	if (i + 1 != len) {
		free(d);
		*errstr = "text after closing quote";
		return -1;
	}
	d[o] = '\0';
	*out = d;
	return 0;
}

/*
 * Parse the text of a file named file into c, which conf_defaults() has
 * filled.  Returns the number of errors, each passed to errfn.
 */
int
conf_parse(const char *file, const char *text, size_t len, struct conf *c,
    conf_errfn errfn)
{
	const char		*p = text, *end = text + len, *nl, *eq;
	const struct conf_key	*k;
	char			 section[64] = "";
	char			 name[64];
	char			*val;
	const char		*why;
	unsigned char		 seen[64];
	int			 line = 0, errors = 0, skip = 0;
	size_t			 n, idx, klen;

	memset(seen, 0, sizeof(seen));
	if (util_has_nul(text, len)) {
		conf_report(errfn, file, 0, "file contains a NUL byte");
		return 1;
	}
	for (; p < end; p = nl + 1) {
		line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0 || *p == '#' || *p == ';')
			continue;
		if (*p == '[') {
			if (p[n - 1] != ']' || n - 2 >= sizeof(section) ||
			    n < 3) {
				conf_report(errfn, file, line,
				    "malformed section header");
				errors++;
				skip = 1;
				continue;
			}
			memcpy(section, p + 1, n - 2);
			section[n - 2] = '\0';
			skip = !conf_known_section(section);
			if (skip) {
				conf_report(errfn, file, line,
				    "unknown section [%s]", log_esc(section));
				errors++;
			}
			continue;
		}
		if (skip)
			continue;
		if ((eq = memchr(p, '=', n)) == NULL) {
			conf_report(errfn, file, line,
			    "expected \"key = value\"");
			errors++;
			continue;
		}
		klen = (size_t)(eq - p);
		while (klen > 0 && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
			klen--;
		if (klen == 0 || klen >= sizeof(name)) {
			conf_report(errfn, file, line, "missing or overlong "
			    "key");
			errors++;
			continue;
		}
		memcpy(name, p, klen);
		name[klen] = '\0';
		if (section[0] == '\0') {
			conf_report(errfn, file, line, "%s outside any "
			    "[section]", log_esc(name));
			errors++;
			continue;
		}
		if ((k = conf_lookup(section, name, &idx)) == NULL) {
			conf_report(errfn, file, line, "unknown key %s in "
			    "[%s]", log_esc(name), section);
			errors++;
			continue;
		}
		if (idx < sizeof(seen) && seen[idx]++) {
			conf_report(errfn, file, line, "duplicate key %s",
			    name);
			errors++;
			continue;
		}
		eq++;
		while (eq < p + n && (*eq == ' ' || *eq == '\t'))
			eq++;
		if (conf_unquote(eq, (size_t)(p + n - eq), &val, &why) == -1) {
			conf_report(errfn, file, line, "%s: %s", name, why);
			errors++;
			continue;
		}
		if ((why = conf_set(c, k, val)) != NULL) {
			conf_report(errfn, file, line, "%s", why);
			errors++;
		}
		free(val);
	}
	return errors;
}

/* Is gid the process's group, or one of its supplementary groups? */
static int
conf_our_group(gid_t gid)
{
	gid_t	 groups[256];
	int	 i, n;

	if (gid == getegid())
		return 1;
	if ((n = getgroups((int)(sizeof(groups) / sizeof(groups[0])),
	    groups)) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/*
 * Refuse a file others could change, and one others could read when it
 * holds secrets (OpenBSD httpd check_file_secrecy).  A file the group
 * may read holds secrets only when that group is our own: the Debian
 * package's root:telehook 0640, read by the telehook workers.  root
 * reads it too (telehookctl run by the operator): a root-owned file's
 * group is root's own choice, and the workers, who are not root, still
 * refuse a group that is not theirs.  0 when acceptable.
 */
int
conf_check_secrecy(const char *path, int has_secrets, const char **errstr)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		*errstr = strerror(errno);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		*errstr = "owned by neither root nor the running user";
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		*errstr = "group- or world-writable";
		return -1;
	}
	if (has_secrets && (st.st_mode & S_IROTH)) {
		*errstr = "holds secrets but is world-readable (chmod o-r; "
		    "0640 with the workers' group, or 0600)";
		return -1;
	}
	if (has_secrets && (st.st_mode & S_IRGRP) &&
	    !conf_our_group(st.st_gid) &&
	    !(geteuid() == 0 && st.st_uid == 0)) {
		*errstr = "holds secrets but is readable by a group that is "
		    "not ours (0640 with the workers' group, or 0600)";
		return -1;
	}
	return 0;
}

/* Checks that need the whole file: keys that depend on each other. */
static int
conf_finish(const char *file, struct conf *c, conf_errfn errfn)
{
	const char	*errstr;
	int		 errors = 0;
	unsigned char	 key[CRYPTO_KEYBYTES];

	if (c->trusted_proxies != NULL &&
	    cidrlist_parse(c->trusted_proxies, &c->proxies, &errstr) == -1)
		errors++;
	if (c->retell.allowed_ips != NULL &&
	    cidrlist_parse(c->retell.allowed_ips, &c->retell.allowed,
	    &errstr) == -1)
		errors++;
	if (c->voipms.allowed_ips != NULL &&
	    cidrlist_parse(c->voipms.allowed_ips, &c->voipms.allowed,
	    &errstr) == -1)
		errors++;
	if ((c->twilio.auth_token != NULL ||
	    c->twilio.auth_token_previous != NULL) && c->public_url == NULL) {
		conf_report(errfn, file, 0, "[twilio] auth_token needs "
		    "[server] public_url: Twilio signs the public URL");
		errors++;
	}
	if (c->secret_key_file != NULL &&
	    crypto_load_key(c->secret_key_file, key, &errstr) == -1) {
		conf_report(errfn, file, 0, "secret_key_file %s: %s",
		    c->secret_key_file, errstr);
		errors++;
	}
	explicit_bzero(key, sizeof(key));
	return errors;
}

/*
 * Load path into c.  Returns the number of errors (0: c is usable), each
 * passed to errfn.  A missing or unreadable file is one error on line 0.
 */
int
conf_load(const char *path, struct conf *c, conf_errfn errfn)
{
	struct buf	 b;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd, errors;
	const char	*errstr;

	conf_defaults(c);
	c->path = xstrdup(path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_report(errfn, path, 0, "%s", strerror(errno));
		return 1;
	}
	buf_init(&b);
	b.max = CONF_MAXSIZE;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	if (n == -1 || b.failed) {
		conf_report(errfn, path, 0, "%s", n == -1 ? strerror(errno) :
		    "file too large");
		close(fd);
		buf_free(&b);
		return 1;
	}
	close(fd);
	errors = conf_parse(path, buf_cstr(&b), b.len, c, errfn);
	buf_free(&b);
	if (conf_check_secrecy(path, c->has_secrets, &errstr) == -1) {
		conf_report(errfn, path, 0, "%s", errstr);
		errors++;
	}
	if (errors == 0)
		errors += conf_finish(path, c, errfn);
	return errors;
}

void
conf_free(struct conf *c)
{
	const struct conf_key	*k;
	char			**field;

	for (k = conf_keys; k->name != NULL; k++) {
		switch (k->type) {
		case CONF_STR:
		case CONF_URL:
		case CONF_CIDRS:
		case CONF_PATH:
		case CONF_CONNINFO:
		case CONF_APIURL:
		case CONF_SMTPURL:
		case CONF_SCHEDULE:
			field = (char **)((char *)c + k->off);
			if (*field != NULL && (k->flags & CONF_SECRET))
				explicit_bzero(*field, strlen(*field));
			free(*field);
			*field = NULL;
			break;
		default:
			break;
		}
	}
	cidrlist_free(&c->proxies);
	cidrlist_free(&c->retell.allowed);
	cidrlist_free(&c->voipms.allowed);
	free(c->path);
	c->path = NULL;
}
