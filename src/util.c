/*
 * util.c: allocation wrappers and small string helpers.
 *
 * Out of memory is fatal: the worker runs under multiwatch, which starts a
 * new one, and nginx answers the single request in flight with 502.  That
 * is kinder to the provider than a half-built answer.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "extern.h"

void *
xmalloc(size_t size)
{
	void	*p;

	if (size == 0)
		size = 1;
	if ((p = malloc(size)) == NULL)
		fatal("malloc %zu", size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((p = calloc(nmemb, size)) == NULL)
		fatal("calloc %zu*%zu", nmemb, size);
	return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if (SIZE_MAX / nmemb < size)
		fatalx("xreallocarray: %zu*%zu overflows", nmemb, size);
	if ((p = realloc(ptr, nmemb * size)) == NULL)
		fatal("realloc %zu*%zu", nmemb, size);
	return p;
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL)
		fatal("strndup");
	return p;
}

/* Caller frees *ret. */
int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("vasprintf");
	return n;
}

/*
 * OpenBSD strtonum(3): a decimal integer in [minval, maxval], or 0 with
 * *errstr set to "invalid", "too small" or "too large".
 */
long long
util_strtonum(const char *s, long long minval, long long maxval,
    const char **errstr)
{
	long long	 v;
	char		*end;

	*errstr = NULL;
	if (s == NULL || *s == '\0' || minval > maxval) {
		*errstr = "invalid";
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0') {
		*errstr = "invalid";
		return 0;
	}
	if ((v == LLONG_MIN && errno == ERANGE) || v < minval) {
		*errstr = "too small";
		return 0;
	}
	if ((v == LLONG_MAX && errno == ERANGE) || v > maxval) {
		*errstr = "too large";
		return 0;
	}
	return v;
}

int
util_has_nul(const void *p, size_t len)
{
	return memchr(p, '\0', len) != NULL;
}

/* Lower-case hex of len bytes into out, which holds 2*len+1. */
void
util_hex(const unsigned char *p, size_t len, char *out)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 0xf];
	}
	out[2 * len] = '\0';
}

/*
 * s made safe for a terminal, as vis(3) with VIS_CSTYLE | VIS_OCTAL
 * would: control characters (C0, DEL and, written in UTF-8, C1), bytes
 * that are not UTF-8, and the backslash become escapes, so a field that
 * holds an ESC sequence cannot reach the operator's terminal.  Printable
 * text, UTF-8 included, is kept.  Caller frees.
 */
char *
util_vis(const char *s)
{
	const unsigned char	*p;
	char			*out, *o;
	int			 n, i;

	out = o = xmalloc(strlen(s) * 4 + 1);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		n = *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ?
		    3 : *p >= 0xf0 && *p <= 0xf4 ? 4 : 1;
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				break;
		if (n > 1 && i == n && !(*p == 0xc2 && p[1] <= 0x9f)) {
			memcpy(o, p, (size_t)n);
			o += n;
			p += n - 1;
		} else if (*p == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (*p == '\n' || *p == '\t' || *p == '\r') {
			*o++ = '\\';
			*o++ = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
		} else if (*p < 0x20 || *p >= 0x7f) {
			if (n == 2 && i == n) {
				o += sprintf(o, "\\%03o", *p);
				p++;	/* a C1 control, in UTF-8 */
			}
			o += sprintf(o, "\\%03o", *p);
		} else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

/* The length of the valid UTF-8 sequence at p, or 0 if there is none. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t	 n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* no overlong forms, surrogates or code points past U+10FFFF */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/*
 * s as valid UTF-8, or NULL when it is already (architecture.md §6: text
 * that is not UTF-8 is decoded, not refused).  latin1: the whole of s is
 * read as ISO 8859-1, as VoIP.ms sends it; else each invalid byte becomes
 * U+FFFD. Caller frees.
 */
char *
util_utf8_fix(const char *s, int latin1)
{
	const unsigned char	*p;
	char			*out, *o;
	size_t			 n;

	for (p = (const unsigned char *)s; *p != '\0'; p += n)
		if ((n = utf8_len(p)) == 0)
			break;
	if (*p == '\0')
		return NULL;
	out = o = xmalloc(strlen(s) * 3 + 1);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (latin1) {
			if (*p < 0x80)
				*o++ = (char)*p;
			else {
				*o++ = (char)(0xc0 | (*p >> 6));
				*o++ = (char)(0x80 | (*p & 0x3f));
			}
			continue;
		}
		if ((n = utf8_len(p)) == 0) {
			memcpy(o, "\xef\xbf\xbd", 3);	/* U+FFFD */
			o += 3;
			continue;
		}
		memcpy(o, p, n);
		o += n;
		p += n - 1;
	}
	*o = '\0';
	return out;
}

/*
 * s if it is a decimal integer in [lo, hi], else NULL: a number beyond
 * a column's range is stored as NULL (the payload keeps it), not
 * refused (architecture.md §6).
 */
const char *
util_num_in(const char *s, long long lo, long long hi)
{
	const char	*errstr;

	if (s == NULL)
		return NULL;
	(void)util_strtonum(s, lo, hi, &errstr);
	return errstr == NULL ? s : NULL;
}

/*
 * Instant t in time zone tz ("UTC" when NULL): day of the week (0 is
 * Sunday) and minute of the day, as th_org() computes them in SQL.
 * The time is an argument so that tests can pass any instant.
 */
void
util_local_at(const char *tz, time_t t, int *wday, int *minute)
{
	char		*saved;
	struct tm	 tm;

	saved = util_tz_enter(tz);
	localtime_r(&t, &tm);
	util_tz_leave(saved);
	*wday = tm.tm_wday;
	*minute = tm.tm_hour * 60 + tm.tm_min;
}

/*
 * Switch the process's time zone to tz ("UTC" when NULL) for localtime
 * or mktime; util_tz_leave() with what this returns switches back.
 * Workers and telehookctl are single-threaded: switching TZ is safe.
 */
char *
util_tz_enter(const char *tz)
{
	char	*saved = getenv("TZ") != NULL ? xstrdup(getenv("TZ")) : NULL;

	setenv("TZ", tz != NULL ? tz : "UTC", 1);
	tzset();
	return saved;
}

void
util_tz_leave(char *saved)
{
	if (saved != NULL) {
		setenv("TZ", saved, 1);
		free(saved);
	} else
		unsetenv("TZ");
	tzset();
}

/*
 * A retry schedule: delays separated by commas, each a number and s, m
 * or h ("5s,5m,30m,2h").  The delays in seconds into out (at most max);
 * their number, or -1 when s is malformed.
 */
int
util_schedule(const char *s, long long *out, int max)
{
	const char	*p = s;
	char		*end;
	long long	 v, unit;
	int		 n = 0;

	while (*p != '\0') {
		if (n == max || *p < '0' || *p > '9')
			return -1;
		errno = 0;
		v = strtoll(p, &end, 10);
		if (errno != 0 || v < 1 || v > 100000)
			return -1;
		switch (*end) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		default:
			return -1;
		}
		out[n++] = v * unit;
		p = end + 1;
		if (*p == ',' && p[1] != '\0')
			p++;
		else if (*p != '\0')
			return -1;
	}
	return n > 0 ? n : -1;
}

/*
 * Is url scheme:// this machine (127.0.0.1, localhost or [::1], then a
 * port, a path or nothing)?  Where plain text is allowed.
 */
int
util_url_local(const char *url, const char *scheme)
{
	static const char *const hosts[] = { "127.0.0.1", "localhost",
	    "[::1]", NULL };
	const char	*rest;
	size_t		 n = strlen(scheme);
	int		 i;

	if (strncmp(url, scheme, n) != 0 || strncmp(url + n, "://", 3) != 0)
		return 0;
	for (i = 0; hosts[i] != NULL; i++) {
		rest = url + n + 3 + strlen(hosts[i]);
		if (strncmp(url + n + 3, hosts[i], strlen(hosts[i])) == 0 &&
		    (*rest == ':' || *rest == '/' || *rest == '\0'))
			return 1;
	}
	return 0;
}

/* The wall clock, microseconds since the epoch. */
long long
util_wall_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A monotonic clock, microseconds: for deadlines and durations. */
long long
util_now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
