/*
 * hours.c: weekly business hours, as operators write them with
 * "telehookctl org set ORG hours=...":
 *
 *	mon-fri 09:00-17:00; sat 10:00-14:00
 *	mon,wed 08:00-12:00,13:00-18:00; sun closed
 *	24/7
 *	closed
 *
 * Clauses are separated by ';'.  A clause is a day list (days and day
 * ranges separated by ',', ranges may wrap: fri-mon) and then spans
 * "HH:MM-HH:MM" separated by ',' or blanks, or "closed".  A later clause
 * replaces the spans of the days it names.  24:00 ends a day; a span
 * past midnight is written as two clauses.  Times are in the
 * organization's time zone.  Days are numbered as tm_wday: 0 is Sunday.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "extern.h"

static const char *const hours_days[7] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat"
};

/* The day named at *p (3-letter or full English name); -1 if none. */
static int
hours_day(const char **p)
{
	static const char *const full[7] = { "sunday", "monday", "tuesday",
	    "wednesday", "thursday", "friday", "saturday" };
	int	 i;
	size_t	 n;

	for (i = 0; i < 7; i++) {
		n = strlen(full[i]);
		if (strncasecmp(*p, full[i], n) == 0 &&
		    !isalpha((unsigned char)(*p)[n])) {
			*p += n;
			return i;
		}
		if (strncasecmp(*p, hours_days[i], 3) == 0 &&
		    !isalpha((unsigned char)(*p)[3])) {
			*p += 3;
			return i;
		}
	}
	return -1;
}

/* "HH:MM" at *p as minutes, 0..1440 (24:00 only as an end); -1 if bad. */
static int
hours_time(const char **p)
{
	const char	*s = *p;
	int		 h, m;

	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    s[2] != ':' || !isdigit((unsigned char)s[3]) ||
	    !isdigit((unsigned char)s[4]))
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	*p += 5;
	return h * 60 + m;
}

static void
hours_skip(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Parse one clause (without its ';') into h. */
static int
hours_clause(const char *s, struct hours *h, const char **errstr)
{
	const char	*p = s;
	unsigned char	 days[7];
	int		 a, b, d, from, to, nspan = 0, i;
	int		 sf[4], st[4];

	memset(days, 0, sizeof(days));
	hours_skip(&p);
	for (;;) {
		if ((a = hours_day(&p)) == -1) {
			*errstr = "expected a day (mon, tue, ...)";
			return -1;
		}
		b = a;
		if (*p == '-') {
			p++;
			if ((b = hours_day(&p)) == -1) {
				*errstr = "expected a day after '-'";
				return -1;
			}
		}
		for (d = a;; d = (d + 1) % 7) {
			days[d] = 1;
			if (d == b)
				break;
		}
		if (*p != ',')
			break;
		p++;
	}
	hours_skip(&p);
	if (strncasecmp(p, "closed", 6) == 0) {
		p += 6;
		hours_skip(&p);
		if (*p != '\0') {
			*errstr = "text after \"closed\"";
			return -1;
		}
	} else {
		while (*p != '\0') {
			if (nspan == 4) {
				*errstr = "more than 4 spans in a day";
				return -1;
			}
			if ((from = hours_time(&p)) == -1 || *p++ != '-' ||
			    (to = hours_time(&p)) == -1) {
				*errstr = "expected a span HH:MM-HH:MM";
				return -1;
			}
			if (from >= to || from == 1440) {
				*errstr = "a span must end after it starts "
				    "(split spans past midnight in two)";
				return -1;
			}
			for (i = 0; i < nspan; i++)
				if (from < st[i] && sf[i] < to) {
					*errstr = "spans overlap";
					return -1;
				}
			sf[nspan] = from;
			st[nspan] = to;
			nspan++;
			hours_skip(&p);
			if (*p == ',') {
				p++;
				hours_skip(&p);
			}
		}
		if (nspan == 0) {
			*errstr = "expected a span HH:MM-HH:MM or \"closed\"";
			return -1;
		}
	}
	for (d = 0; d < 7; d++) {
		if (!days[d])
			continue;
		h->n[d] = nspan;
		for (i = 0; i < nspan; i++) {
			h->from[d][i] = sf[i];
			h->to[d][i] = st[i];
		}
	}
	return 0;
}

/* Parse s into h.  -1 with *errstr (static) when it is malformed. */
int
hours_parse(const char *s, struct hours *h, const char **errstr)
{
	static char	 why[128];
	char		 clause[256];
	const char	*p = s, *semi;
	size_t		 n;
	int		 d, k = 0;

	memset(h, 0, sizeof(*h));
	while (*p == ' ' || *p == '\t')
		p++;
	if (strcmp(p, "24/7") == 0) {
		for (d = 0; d < 7; d++) {
			h->n[d] = 1;
			h->from[d][0] = 0;
			h->to[d][0] = 1440;
		}
		return 0;
	}
	if (strcmp(p, "closed") == 0)
		return 0;	/* what hours_format() writes for no hours */
	if (*p == '\0') {
		*errstr = "empty hours";
		return -1;
	}
	for (; *p != '\0'; p = *semi ? semi + 1 : semi) {
		k++;
		semi = p + strcspn(p, ";");
		n = (size_t)(semi - p);
		if (n >= sizeof(clause)) {
			*errstr = "clause too long";
			return -1;
		}
		memcpy(clause, p, n);
		clause[n] = '\0';
		while (n > 0 && (clause[n - 1] == ' ' || clause[n - 1] == '\t'))
			clause[--n] = '\0';
		if (clause[strspn(clause, " \t")] == '\0') {
			if (*semi == '\0' && k > 1)
				break;	/* a trailing ';' */
			*errstr = "empty clause";
			return -1;
		}
		if (hours_clause(clause, h, errstr) == -1) {
			snprintf(why, sizeof(why), "clause %d: %s", k,
			    *errstr);
			*errstr = why;
			return -1;
		}
	}
	return 0;
}

/* 1 when h is open on day wday (0 = Sunday) at minute of the day. */
int
hours_open(const struct hours *h, int wday, int minute)
{
	int	 i;

	if (wday < 0 || wday > 6)
		return 0;
	for (i = 0; i < h->n[wday]; i++)
		if (minute >= h->from[wday][i] && minute < h->to[wday][i])
			return 1;
	return 0;
}

static int
hours_same(const struct hours *h, int a, int b)
{
	int	 i;

	if (h->n[a] != h->n[b])
		return 0;
	for (i = 0; i < h->n[a]; i++)
		if (h->from[a][i] != h->from[b][i] || h->to[a][i] != h->to[b][i])
			return 0;
	return 1;
}

/*
 * The canonical text of h, Monday first, consecutive days with the same
 * spans as one range: "mon-fri 09:00-17:00; sat 10:00-14:00".  Closed
 * days are left out; a week with no hours is "closed".
 */
void
hours_format(const struct hours *h, struct buf *b)
{
	static const int order[7] = { 1, 2, 3, 4, 5, 6, 0 };
	int	 i, j, k, d, first = 1;

	for (i = 0; i < 7; i = j) {
		d = order[i];
		for (j = i + 1; j < 7 && hours_same(h, d, order[j]); j++)
			;
		if (h->n[d] == 0)
			continue;
		if (!first)
			buf_puts(b, "; ");
		first = 0;
		buf_puts(b, hours_days[d]);
		if (j - 1 > i) {
			buf_putc(b, '-');
			buf_puts(b, hours_days[order[j - 1]]);
		}
		for (k = 0; k < h->n[d]; k++)
			buf_printf(b, "%c%02d:%02d-%02d:%02d", k ? ',' : ' ',
			    h->from[d][k] / 60, h->from[d][k] % 60,
			    h->to[d][k] / 60, h->to[d][k] % 60);
	}
	if (first)
		buf_puts(b, "closed");
}
