/*
 * phone.c: telephone numbers in E.164 ("+14155551212"), the form numbers
 * are stored and compared in.  Spaces, dashes, dots and parentheses are
 * ignored.  Without a '+', a 10-digit North American number (as VoIP.ms
 * sends it) is +1 and those digits, and 11 digits starting with 1 are +
 * and those digits; anything else needs its '+'.
 */
#include <string.h>

#include "extern.h"

/* Normalise in into out (at least 17 bytes); -1 if it is no number. */
int
phone_e164(const char *in, char *out, size_t outlen)
{
	char		 d[32];
	size_t		 n = 0;
	int		 plus = 0;
	const char	*p;

	if (in == NULL || outlen < 17)
		return -1;
	for (p = in; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9') {
			if (n == sizeof(d) - 1)
				return -1;
			d[n++] = *p;
		} else if (*p == '+' && n == 0 && !plus)
			plus = 1;
		else if (*p != ' ' && *p != '-' && *p != '.' && *p != '(' &&
		    *p != ')')
			return -1;
	}
	d[n] = '\0';
	if (!plus) {
		if (n == 10 && d[0] >= '2') {
			memmove(d + 1, d, n + 1);
			d[0] = '1';
			n++;
		} else if (!(n == 11 && d[0] == '1'))
			return -1;
	}
	/* E.164: a country code that does not start with 0, at most 15 */
	if (n < 8 || n > 15 || d[0] == '0')
		return -1;
	out[0] = '+';
	memcpy(out + 1, d, n + 1);
	return 0;
}
