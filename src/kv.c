/*
 * kv.c: application/x-www-form-urlencoded bodies and query strings
 * (WHATWG URL "application/x-www-form-urlencoded parser"): pairs split on
 * '&' (and ';' for VoIP.ms), name and value split on the first '=', '+'
 * is a space, %XX a byte.  Repeated keys are all kept, in order, because
 * Twilio signs every value of a repeated key.
 *
 * Unlike browsers we reject what a provider never sends: a '%' not
 * followed by two hex digits, and any NUL byte, raw or %00.  A rejected
 * body is a 400, not a guess.
 */
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static int
kv_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode len bytes of s into a new string in *out (caller frees).  With
 * plus, '+' decodes to a space.  On error *out is NULL, *errstr says why
 * and -1 is returned.
 */
int
kv_pct_decode(const char *s, size_t len, int plus, char **out,
    const char **errstr)
{
	char	*d;
	size_t	 i, o = 0;
	int	 hi, lo;

	*out = NULL;
	d = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '\0') {
			*errstr = "NUL byte in form data";
			goto fail;
		}
		if (s[i] == '+' && plus)
			d[o++] = ' ';
		else if (s[i] == '%') {
			if (len - i < 3) {
				*errstr = "truncated percent-escape";
				goto fail;
			}
			hi = kv_hexval((unsigned char)s[i + 1]);
			lo = kv_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				*errstr = "bad percent-escape";
				goto fail;
			}
			if (hi == 0 && lo == 0) {
				*errstr = "NUL byte (%00) in form data";
				goto fail;
			}
			d[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			d[o++] = s[i];
	}
	d[o] = '\0';
	*out = d;
	return 0;
fail:
	free(d);
	return -1;
}

void
kv_add(struct kvlist *l, const char *key, const char *val)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n].key = xstrdup(key);
	l->v[l->n].val = xstrdup(val);
	l->n++;
}

/*
 * Parse len bytes of s, appending to l.  Empty pairs ("a=1&&b=2") are
 * skipped; a pair without '=' has an empty value.  On error l holds what
 * was parsed before it, *errstr says why, and -1 is returned.
 */
int
kv_parse(struct kvlist *l, const char *s, size_t len, int flags,
    const char **errstr)
{
	const char	*p = s, *end = s + len, *amp, *eq;
	char		*key, *val;

	*errstr = NULL;
	while (p < end) {
		for (amp = p; amp < end; amp++)
			if (*amp == '&' ||
			    (*amp == ';' && (flags & KV_SEMICOLON)))
				break;
		if (amp == p) {
			p++;
			continue;
		}
		eq = memchr(p, '=', (size_t)(amp - p));
		if (eq == NULL)
			eq = amp;
		if (kv_pct_decode(p, (size_t)(eq - p), 1, &key, errstr) == -1)
			return -1;
		if (eq == amp)
			val = xstrdup("");
		else if (kv_pct_decode(eq + 1, (size_t)(amp - eq - 1), 1,
		    &val, errstr) == -1) {
			free(key);
			return -1;
		}
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 16;
			l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
		}
		l->v[l->n].key = key;
		l->v[l->n].val = val;
		l->n++;
		p = amp + 1;
	}
	return 0;
}

/* The first value of key, or NULL.  Borrowed from l. */
const char *
kv_get(const struct kvlist *l, const char *key)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].val;
	return NULL;
}

size_t
kv_count(const struct kvlist *l, const char *key)
{
	size_t	 i, n = 0;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			n++;
	return n;
}

void
kv_free(struct kvlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}
