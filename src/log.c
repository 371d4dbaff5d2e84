/*
 * log.c: err(3)-style logging.  Lines go to syslog(3) by default, because
 * spawn-fcgi without -n points a worker's stderr at /dev/null; -d sends
 * them to stderr instead, and so does a machine with no syslog socket (a
 * container): there journald or the container's runtime reads stderr,
 * where syslog(3) would drop every line.  The sink is chosen once, so
 * callers never test for it.
 *
 * Only the format string is trusted.  Anything that came with a request
 * goes through log_esc() first, so a caller-supplied CR, LF or control
 * byte can never forge or break a log line.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "extern.h"

static int		 log_stderr = 1;
static enum log_level	 log_level = LOG_LEVEL_INFO;
static const char	*log_ident = "telehook";

static const struct {
	const char	*name;
	int		 prio;
} log_levels[LOG_LEVEL__MAX] = {
	{ "err", LOG_ERR },		/* LOG_LEVEL_ERR */
	{ "warning", LOG_WARNING },	/* LOG_LEVEL_WARNING */
	{ "notice", LOG_NOTICE },	/* LOG_LEVEL_NOTICE */
	{ "info", LOG_INFO },		/* LOG_LEVEL_INFO */
	{ "debug", LOG_DEBUG },		/* LOG_LEVEL_DEBUG */
};

void
log_init(const char *ident, int to_stderr, enum log_level level)
{
	struct stat	 st;

	if (!to_stderr && (stat(_PATH_LOG, &st) == -1 ||
	    !S_ISSOCK(st.st_mode)))
		to_stderr = 1;
	log_ident = ident;
	log_stderr = to_stderr;
	log_level = level;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_setlevel(enum log_level level)
{
	log_level = level;
}

/* The level named s, or -1. */
int
log_level_parse(const char *s)
{
	int	 i;

	for (i = 0; i < LOG_LEVEL__MAX; i++)
		if (strcmp(s, log_levels[i].name) == 0)
			return i;
	return -1;
}

static void
log_vemit(enum log_level level, const char *errstr, const char *fmt,
    va_list ap)
{
	char	 msg[2048];

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_stderr) {
		if (errstr != NULL)
			fprintf(stderr, "%s[%ld]: %s: %s\n", log_ident,
			    (long)getpid(), msg, errstr);
		else
			fprintf(stderr, "%s[%ld]: %s\n", log_ident,
			    (long)getpid(), msg);
		fflush(stderr);
	} else if (errstr != NULL)
		syslog(log_levels[level].prio, "%s: %s", msg, errstr);
	else
		syslog(log_levels[level].prio, "%s", msg);
}

#define LOG_BODY(level, err) do {					\
	va_list	 ap;							\
	int	 saved = errno;						\
									\
	va_start(ap, fmt);						\
	log_vemit((level), (err) ? strerror(saved) : NULL, fmt, ap);	\
	va_end(ap);							\
	errno = saved;							\
} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARNING, 1);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARNING, 0);
}

void
log_notice(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_NOTICE, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, 0);
}

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERR, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERR, 0);
	exit(1);
}

/*
 * Escape len bytes of s into dst (size dstlen, always NUL-terminated):
 * printable ASCII stays, backslash and quote are doubled up as \\ and \",
 * CR, LF and tab become \r \n \t, anything else \xHH.  Output that does
 * not fit is cut and ends in "...".  Returns the length written.
 */
size_t
log_escape(char *dst, size_t dstlen, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, o = 0;
	char			 esc[5];
	size_t			 n;
	unsigned char		 c;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		n = 0;
		if (c == '\\' || c == '"') {
			esc[n++] = '\\';
			esc[n++] = (char)c;
		} else if (c == '\n') {
			esc[n++] = '\\';
			esc[n++] = 'n';
		} else if (c == '\r') {
			esc[n++] = '\\';
			esc[n++] = 'r';
		} else if (c == '\t') {
			esc[n++] = '\\';
			esc[n++] = 't';
		} else if (c < 0x20 || c >= 0x7f) {
			esc[n++] = '\\';
			esc[n++] = 'x';
			esc[n++] = hex[c >> 4];
			esc[n++] = hex[c & 0xf];
		} else
			esc[n++] = (char)c;
		if (o + n + 4 > dstlen) {
			/* No room: mark the cut, if there is room for it. */
			if (dstlen >= 4) {
				while (o + 4 > dstlen)
					o--;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(dst + o, esc, n);
		o += n;
	}
	dst[o] = '\0';
	return o;
}

/*
 * An escaped copy of s for one log line, from a small ring of static
 * buffers, so up to eight may appear in the same call.  NULL prints as
 * "-".  Workers are single-threaded.
 */
const char *
log_esc(const char *s)
{
	static char	 ring[8][512];
	static int	 next;
	char		*dst;

	if (s == NULL)
		return "-";
	dst = ring[next];
	next = (next + 1) % 8;
	log_escape(dst, sizeof(ring[0]), s, strlen(s));
	return dst;
}
