/*
 * spool.c: the spool directory, where a verified request waits while the
 * database cannot take it (architecture.md §6).  The worker answers 2xx
 * only after the file is on disk: written to a temporary name, fsync'd,
 * renamed, and the directory fsync'd.  A drain replays each file through
 * the route's own handler in one transaction and removes it only after
 * the commit; the provider key makes a second replay change nothing.
 *
 * A spooled request is one file "<received µs, hex>-<pid>-<n>.spool":
 *
 *	telehook-spool 1
 *	received: <microseconds since the epoch>
 *	client: <address>
 *	scope: <organization>		(only for a per-organization credential)
 *	env: NAME=value			(value percent-encoded; repeated)
 *	answer: <bytes>
 *	body: <bytes>
 *	<empty line>
 *	<answer bytes><body bytes>
 *	sha256: <hex of everything above this line>
 *
 * With secret_key_file set (architecture.md §5: message text stays in the
 * database), that whole record is sealed, and the file is
 *
 *	telehook-spool 2
 *	sealed: <base64 of nonce || secretbox of the record above>
 *	sha256: <hex of everything above this line>
 *
 * Neither form keeps a credential: no URL token, no Authorization,
 * Cookie or shared-secret header (req_header_secret()); replay does not
 * verify again, it needs none.
 *
 * A file that does not parse, or whose checksum does not match, is moved
 * to quarantine/ with a log line; it never stops a drain.  Files being
 * written start with '.' and do not count.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

#define SPOOL_SUFFIX	".spool"
#define SPOOL_MAGIC	"telehook-spool 1\n"
#define SPOOL_MAGIC2	"telehook-spool 2\n"
#define SPOOL_MAXFILE	(64 * 1024 * 1024)
#define SPOOL_MAXENV	256

/* How many requests wait in dir; 0 when it does not exist, -1 on error. */
long
spool_depth(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	long		 n = 0;
	size_t		 len, slen = strlen(SPOOL_SUFFIX);

	if (dir == NULL)
		return 0;
	if ((d = opendir(dir)) == NULL)
		return access(dir, F_OK) == -1 ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		len = strlen(de->d_name);
		if (len > slen &&
		    strcmp(de->d_name + len - slen, SPOOL_SUFFIX) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * 1 when a worker could write a request into dir now: a directory it may
 * write, on a filesystem with room for a request (SPOOL_MINFREE: a
 * typical webhook's file with room to spare).
 */
#define SPOOL_MINFREE	(64 * 1024)

int
spool_writable(const char *dir)
{
	struct stat	 st;
	struct statvfs	 vfs;

	if (dir == NULL || stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return 0;
	if (access(dir, W_OK | X_OK) != 0)
		return 0;
	if (statvfs(dir, &vfs) == 0 && (unsigned long long)vfs.f_bavail *
	    vfs.f_frsize < SPOOL_MINFREE)
		return 0;
	return 1;
}

/* Why the spool cannot take a request: "ok", "full" or "unwritable". */
const char *
spool_state(const char *dir)
{
	struct statvfs	 vfs;

	if (spool_writable(dir))
		return "ok";
	if (dir != NULL && access(dir, W_OK | X_OK) == 0 &&
	    statvfs(dir, &vfs) == 0)
		return "full";
	return "unwritable";
}

/* Percent-encode what could break a line: controls, space, '%', 8-bit. */
static void
spool_enc(struct buf *b, const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '%') {
			buf_putc(b, '%');
			buf_putc(b, hex[*p >> 4]);
			buf_putc(b, hex[*p & 0xf]);
		} else
			buf_putc(b, (char)*p);
}

/* The CGI parameters a replay needs: the request line and headers. */
static int
spool_keep_env(const char *e)
{
	static const char *const keep[] = { "REQUEST_METHOD=",
	    "REQUEST_URI=", "CONTENT_TYPE=", "CONTENT_LENGTH=",
	    "REMOTE_ADDR=", "HTTP_", NULL };
	int	 i;

	if (req_header_secret(e))
		return 0;
	for (i = 0; keep[i] != NULL; i++)
		if (strncmp(e, keep[i], strlen(keep[i])) == 0)
			return 1;
	return 0;
}

/* Write all of len bytes; -1 on error. */
static int
spool_write_all(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync a directory, so a rename or unlink in it is durable. */
static int
spool_sync_dir(const char *dir)
{
	int	 fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * Spool request r, which was answered with answer.  0 once the file is
 * durable; -1 with *errstr set otherwise (and no file left behind).
 */
int
spool_write(const char *dir, const struct req *r, const char *answer,
    const char **errstr)
{
	static unsigned int	 counter;
	struct buf		 b;
	char			 hex[65], *tmp = NULL, *final = NULL, *red;
	char			*sealed, *rbody;
	char			**e;
	size_t			 alen = strlen(answer), blen;
	int			 fd = -1, rc = -1;

	buf_init(&b);
	b.max = SPOOL_MAXFILE;
	buf_puts(&b, SPOOL_MAGIC);
	buf_printf(&b, "received: %lld\n", r->received_us);
	buf_puts(&b, "client: ");
	spool_enc(&b, r->client_addr != NULL ? r->client_addr : "-");
	buf_putc(&b, '\n');
	if (r->scope_org != NULL) {
		buf_puts(&b, "scope: ");
		spool_enc(&b, r->scope_org);
		buf_putc(&b, '\n');
	}
	/* nor in the body (a form's or a JSON object's "token") */
	blen = r->bodylen;
	rbody = req_body_redacted(r, &blen);
	for (e = r->envp; e != NULL && *e != NULL; e++)
		if (spool_keep_env(*e)) {
			/* the replay needs no URL token: keep none on disk */
			red = NULL;
			if (strncmp(*e, "REQUEST_URI=", 12) == 0)
				red = req_redact_uri(*e);
			else if (rbody != NULL &&
			    strncmp(*e, "CONTENT_LENGTH=", 15) == 0)
				xasprintf(&red, "CONTENT_LENGTH=%zu", blen);
			buf_puts(&b, "env: ");
			spool_enc(&b, red != NULL ? red : *e);
			buf_putc(&b, '\n');
			free(red);
		}
	buf_printf(&b, "answer: %zu\nbody: %zu\n\n", alen, blen);
	buf_add(&b, answer, alen);
	buf_add(&b, rbody != NULL ? rbody : r->body != NULL ? r->body : "",
	    blen);
	free(rbody);
	crypto_sha256_hex(buf_cstr(&b), b.len, hex);
	buf_printf(&b, "sha256: %s\n", hex);
	if (!b.failed && crypto_have_key) {
		sealed = crypto_seal(crypto_key, buf_cstr(&b));
		buf_reset(&b);
		buf_puts(&b, SPOOL_MAGIC2);
		buf_printf(&b, "sealed: %s\n", sealed);
		free(sealed);
		crypto_sha256_hex(buf_cstr(&b), b.len, hex);
		buf_printf(&b, "sha256: %s\n", hex);
	}
	if (b.failed) {
		*errstr = "request too large to spool";
		goto done;
	}
	counter++;
	xasprintf(&tmp, "%s/.tmp-%016llx-%ld-%u", dir, r->received_us,
	    (long)getpid(), counter);
	xasprintf(&final, "%s/%016llx-%ld-%u" SPOOL_SUFFIX, dir,
	    r->received_us, (long)getpid(), counter);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		*errstr = strerror(errno);
		goto done;
	}
	if (spool_write_all(fd, b.data, b.len) == -1 || fsync(fd) == -1) {
		*errstr = strerror(errno);
		goto unlink;
	}
	if (close(fd) == -1) {
		fd = -1;
		*errstr = strerror(errno);
		goto unlink;
	}
	fd = -1;
	if (rename(tmp, final) == -1) {
		*errstr = strerror(errno);
		goto unlink;
	}
	if (spool_sync_dir(dir) == -1) {
		/* renamed, but not known durable: do not claim it */
		*errstr = strerror(errno);
		(void)unlink(final);
		goto done;
	}
	rc = 0;
	goto done;
unlink:
	(void)unlink(tmp);
done:
	if (fd != -1)
		close(fd);
	free(tmp);
	free(final);
	buf_free(&b);
	return rc;
}

/* Decode a percent-encoded line value (len bytes) into a new string. */
static char *
spool_dec(const char *s, size_t len)
{
	const char	*errstr;
	char		*out;

	if (kv_pct_decode(s, len, 0, &out, &errstr) == -1)
		return NULL;
	return out;
}

/* The decimal number at p (up to end of line), or -1. */
static long long
spool_num(const char *p, size_t len)
{
	char		 tmp[24];
	const char	*errstr;
	long long	 v;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, p, len);
	tmp[len] = '\0';
	v = util_strtonum(tmp, 0, (long long)SPOOL_MAXFILE * 1000000000LL,
	    &errstr);
	return errstr != NULL ? -1 : v;
}

void
spooled_free(struct spooled *s)
{
	size_t	 i;

	free(s->client);
	free(s->scope);
	for (i = 0; i < s->nenv; i++)
		free(s->envp[i]);
	free(s->envp);
	free(s->answer);
	free(s->body);
	memset(s, 0, sizeof(*s));
}

/*
 * Parse a spool file of len bytes.  Strict: anything unexpected is an
 * error, with *errstr saying what.
 */
static int	spool_parse1(const char *, size_t, struct spooled *,
		    const char **);

/*
 * Parse a spool file of len bytes, either form.  -1 with *errstr when it
 * cannot be read (quarantine it); -2 when it is sealed and this process
 * has no key to open it (leave it for one that has).
 */
int
spool_parse(const char *data, size_t len, struct spooled *s,
    const char **errstr)
{
	const char	*end = data + len, *sum, *p;
	char		 hex[65], *b64, *plain;
	int		 rc;

	if (len < strlen(SPOOL_MAGIC2) ||
	    memcmp(data, SPOOL_MAGIC2, strlen(SPOOL_MAGIC2)) != 0)
		return spool_parse1(data, len, s, errstr);
	memset(s, 0, sizeof(*s));
	if (len < 73 + strlen(SPOOL_MAGIC2) + 9 || end[-1] != '\n' ||
	    memcmp(end - 73, "sha256: ", 8) != 0) {
		*errstr = "truncated";
		return -1;
	}
	sum = end - 73;
	crypto_sha256_hex(data, (size_t)(sum - data), hex);
	if (memcmp(hex, sum + 8, 64) != 0) {
		*errstr = "checksum mismatch";
		return -1;
	}
	p = data + strlen(SPOOL_MAGIC2);
	if (memcmp(p, "sealed: ", 8) != 0 || sum[-1] != '\n') {
		*errstr = "malformed header line";
		return -1;
	}
	if (!crypto_have_key) {
		*errstr = "sealed, and no secret_key_file to open it";
		return -2;
	}
	b64 = xstrndup(p + 8, (size_t)(sum - 1 - (p + 8)));
	plain = crypto_open(crypto_key, b64);
	free(b64);
	if (plain == NULL) {
		*errstr = "does not open with secret_key_file";
		return -1;
	}
	rc = spool_parse1(plain, strlen(plain), s, errstr);
	explicit_bzero(plain, strlen(plain));
	free(plain);
	return rc;
}

/* The record itself (telehook-spool 1). */
static int
spool_parse1(const char *data, size_t len, struct spooled *s,
    const char **errstr)
{
	const char	*p = data, *end = data + len, *nl, *sum;
	char		 hex[65];
	long long	 alen = -1, blen = -1, v;
	size_t		 n;

	memset(s, 0, sizeof(*s));
	s->received_us = -1;
	if (len < strlen(SPOOL_MAGIC) ||
	    memcmp(data, SPOOL_MAGIC, strlen(SPOOL_MAGIC)) != 0) {
		*errstr = "not a telehook spool file";
		return -1;
	}
	/* The checksum line closes the file and covers all before it. */
	if (len < 73 || end[-1] != '\n') {
		*errstr = "truncated";
		return -1;
	}
	sum = end - 73;
	if (memcmp(sum, "sha256: ", 8) != 0) {
		*errstr = "truncated: no checksum line";
		return -1;
	}
	crypto_sha256_hex(data, (size_t)(sum - data), hex);
	if (memcmp(hex, sum + 8, 64) != 0) {
		*errstr = "checksum mismatch";
		return -1;
	}
	end = sum;
	p += strlen(SPOOL_MAGIC);
	s->envp = xcalloc(SPOOL_MAXENV + 1, sizeof(char *));
	for (;;) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			*errstr = "truncated header";
			goto fail;
		}
		n = (size_t)(nl - p);
		if (n == 0) {
			p = nl + 1;
			break;
		}
		if (n > 10 && memcmp(p, "received: ", 10) == 0) {
			if ((v = spool_num(p + 10, n - 10)) < 0)
				goto bad;
			s->received_us = v;
		} else if (n > 8 && memcmp(p, "client: ", 8) == 0) {
			free(s->client);
			if ((s->client = spool_dec(p + 8, n - 8)) == NULL)
				goto bad;
		} else if (n > 7 && memcmp(p, "scope: ", 7) == 0) {
			free(s->scope);
			if ((s->scope = spool_dec(p + 7, n - 7)) == NULL ||
			    !store_is_uuid(s->scope))
				goto bad;
		} else if (n > 5 && memcmp(p, "env: ", 5) == 0) {
			if (s->nenv == SPOOL_MAXENV)
				goto bad;
			if ((s->envp[s->nenv] = spool_dec(p + 5, n - 5)) ==
			    NULL || strchr(s->envp[s->nenv], '=') == NULL) {
				s->nenv++;
				goto bad;
			}
			s->nenv++;
		} else if (n > 8 && memcmp(p, "answer: ", 8) == 0) {
			if ((alen = spool_num(p + 8, n - 8)) < 0)
				goto bad;
		} else if (n > 6 && memcmp(p, "body: ", 6) == 0) {
			if ((blen = spool_num(p + 6, n - 6)) < 0)
				goto bad;
		} else
			goto bad;
		p = nl + 1;
	}
	if (s->received_us < 0 || s->client == NULL || alen < 0 || blen < 0) {
		*errstr = "missing header line";
		goto fail;
	}
	if ((long long)(end - p) != alen + blen) {
		*errstr = "answer and body lengths do not match the file";
		goto fail;
	}
	if (util_has_nul(p, (size_t)(alen + blen))) {
		*errstr = "NUL byte in answer or body";
		goto fail;
	}
	s->answer = xstrndup(p, (size_t)alen);
	s->body = xstrndup(p + alen, (size_t)blen);
	s->bodylen = (size_t)blen;
	return 0;
bad:
	*errstr = "malformed header line";
fail:
	spooled_free(s);
	return -1;
}

/* Read a whole file; NULL with *errstr on failure.  Caller frees. */
static char *
spool_read(const char *path, size_t *len, const char **errstr)
{
	struct buf	 b;
	char		 chunk[16384];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*errstr = strerror(errno);
		return NULL;
	}
	buf_init(&b);
	b.max = SPOOL_MAXFILE + 4096;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n == -1 || b.failed) {
		*errstr = n == -1 ? strerror(errno) : "file too large";
		buf_free(&b);
		return NULL;
	}
	*len = b.len;
	if (b.data == NULL)
		return xstrdup("");
	return b.data;
}

/* Move name out of the way into dir/quarantine/, saying why. */
static void
spool_quarantine(const char *dir, const char *name, const char *why)
{
	char	*qdir, *from, *to;

	xasprintf(&qdir, "%s/quarantine", dir);
	xasprintf(&from, "%s/%s", dir, name);
	xasprintf(&to, "%s/%s", qdir, name);
	if (mkdir(qdir, 0700) == -1 && errno != EEXIST)
		log_warn("spool: mkdir %s", qdir);
	if (rename(from, to) == -1)
		log_warn("spool: %s: %s; cannot quarantine it", name, why);
	else {
		log_warnx("spool: %s quarantined: %s", name, why);
		(void)spool_sync_dir(dir);
	}
	free(qdir);
	free(from);
	free(to);
}

static int
spool_filter(const struct dirent *de)
{
	size_t	 len = strlen(de->d_name), slen = strlen(SPOOL_SUFFIX);

	return de->d_name[0] != '.' && len > slen &&
	    strcmp(de->d_name + len - slen, SPOOL_SUFFIX) == 0;
}

/* Remove temporaries a killed worker left: never answered 2xx. */
static void
spool_sweep_tmp(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		*path;
	time_t		 now = time(NULL);

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		xasprintf(&path, "%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && now - st.st_mtime > 60 &&
		    unlink(path) == 0)
			log_notice("spool: removed stale %s", de->d_name);
		free(path);
	}
	closedir(d);
}

/*
 * What replays a file: set by the program (the worker and telehookctl
 * set worker_replay), so this layer does not call up into dispatch.
 */
static int	(*spool_replay)(const struct spooled *, const char **);

void
spool_set_replay(int (*fn)(const struct spooled *, const char **))
{
	spool_replay = fn;
}

/*
 * Drain up to max files (0: all) from dir, oldest first, for at most
 * max_us microseconds (0: no limit), through replay.  Only one process
 * drains a directory at a time: the others return at once.  Returns -1
 * when the drain could not start (another drainer: st->busy).
 */
int
spool_drain(const char *dir, int max, long long max_us,
    struct drain_stats *st)
{
	struct dirent	**list = NULL;
	struct spooled	 s;
	const char	*errstr;
	char		*path, *lock, *data;
	size_t		 len;
	long long	 start = util_now_us();
	int		 i, n, lfd, rc;

	memset(st, 0, sizeof(*st));
	if (spool_replay == NULL) {
		st->error = 1;
		return -1;
	}
	xasprintf(&lock, "%s/.drain.lock", dir);
	lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lock);
	if (lfd == -1) {
		st->error = 1;
		return -1;
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) == -1) {
		close(lfd);
		st->busy = 1;
		return -1;
	}
	spool_sweep_tmp(dir);
	if ((n = scandir(dir, &list, spool_filter, alphasort)) == -1) {
		st->error = 1;
		n = 0;
	}
	for (i = 0; i < n; i++) {
		if ((max > 0 && st->replayed + st->duplicates +
		    st->quarantined >= max) ||
		    (max_us > 0 && util_now_us() - start > max_us) ||
		    st->stopped) {
			st->left++;
			continue;
		}
		xasprintf(&path, "%s/%s", dir, list[i]->d_name);
		if ((data = spool_read(path, &len, &errstr)) == NULL) {
			if (errno != ENOENT)
				spool_quarantine(dir, list[i]->d_name, errstr);
			free(path);
			continue;
		}
		if ((rc = spool_parse(data, len, &s, &errstr)) == -2) {
			st->left++;	/* for a process with the key */
			st->sealed++;
		} else if (rc == -1) {
			spool_quarantine(dir, list[i]->d_name, errstr);
			st->quarantined++;
		} else {
			rc = spool_replay(&s, &errstr);
			if (rc == REPLAY_AWAY) {
				/* the database went away again: try later */
				st->stopped = 1;
				st->left++;
			} else if (rc == REPLAY_FAILED) {
				spool_quarantine(dir, list[i]->d_name, errstr);
				st->quarantined++;
			} else {
				if (unlink(path) == -1)
					log_warn("spool: unlink %s", path);
				if (rc == REPLAY_DUPLICATE)
					st->duplicates++;
				else if (rc == REPLAY_REFUSED)
					st->refused++;
				else
					st->replayed++;
			}
			spooled_free(&s);
		}
		free(data);
		free(path);
	}
	if (st->replayed + st->duplicates > 0)
		(void)spool_sync_dir(dir);
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	flock(lfd, LOCK_UN);
	close(lfd);
	return 0;
}

/* Requests in quarantine/. */
long
spool_quarantined(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		*q;
	long		 n = 0;

	xasprintf(&q, "%s/quarantine", dir);
	if ((d = opendir(q)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (spool_filter(de))
				n++;
		closedir(d);
	}
	free(q);
	return n;
}

/* The receive time of the oldest waiting request, µs; 0 if none. */
long long
spool_oldest(const char *dir)
{
	struct dirent	**list;
	long long	 t = 0;
	int		 i, n;

	if ((n = scandir(dir, &list, spool_filter, alphasort)) <= 0)
		return 0;
	t = strtoll(list[0]->d_name, NULL, 16);
	/* a name that is no plausible receive time (2001 on): its mtime */
	if (t < 1000000000LL * 1000000) {
		char		*path;
		struct stat	 st;

		xasprintf(&path, "%s/%s", dir, list[0]->d_name);
		t = stat(path, &st) == 0 ? (long long)st.st_mtime * 1000000 : 0;
		free(path);
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return t;
}
