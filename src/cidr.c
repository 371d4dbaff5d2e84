/*
 * cidr.c: address lists in CIDR notation, IPv4 and IPv6, for allowed_ips
 * and trusted_proxies.  A bare address is a /32 or /128.  An IPv4-mapped
 * IPv6 client address (::ffff:a.b.c.d) matches IPv4 entries.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/* Parse "addr[/bits]" into c, host bits cleared; 0 on success. */
int
cidr_parse(const char *s, struct cidr *c)
{
	char		 tmp[INET6_ADDRSTRLEN + 8];
	char		*slash;
	const char	*errstr;
	int		 max, i;

	if (strlen(s) >= sizeof(tmp))
		return -1;
	memset(c, 0, sizeof(*c));
	strcpy(tmp, s);
	if ((slash = strchr(tmp, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, tmp, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return -1;
	c->bits = max;
	if (slash != NULL) {
		c->bits = (int)util_strtonum(slash, 0, max, &errstr);
		if (errstr != NULL)
			return -1;
	}
	for (i = c->bits; i < max; i++)
		c->addr[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
	return 0;
}

/*
 * Parse a list separated by commas and/or white space.  On error, *errstr
 * names the bad entry (static storage) and the list is left empty.
 */
int
cidrlist_parse(const char *s, struct cidrlist *l, const char **errstr)
{
	static char	 bad[96];
	const char	*p = s;
	size_t		 n;
	char		 tok[INET6_ADDRSTRLEN + 8];

	memset(l, 0, sizeof(*l));
	*errstr = NULL;
	while (*p != '\0') {
		n = strcspn(p, ", \t");
		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(tok)) {
			snprintf(bad, sizeof(bad), "address too long");
			goto fail;
		}
		memcpy(tok, p, n);
		tok[n] = '\0';
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		if (cidr_parse(tok, &l->v[l->n]) == -1) {
			snprintf(bad, sizeof(bad), "not an address or CIDR "
			    "block: \"%s\"", log_esc(tok));
			goto fail;
		}
		l->n++;
		p += n;
	}
	return 0;
fail:
	*errstr = bad;
	cidrlist_free(l);
	return -1;
}

static int
cidr_contains(const struct cidr *c, int family, const unsigned char *a)
{
	int	 full = c->bits / 8, rest = c->bits % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->addr, a, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((c->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

/* 1 when the textual address addr is in the list. */
int
cidrlist_match(const struct cidrlist *l, const char *addr)
{
	unsigned char	 a[16];
	size_t		 i;
	int		 family;
	static const unsigned char mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (addr == NULL)
		return 0;
	if (inet_pton(AF_INET, addr, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, addr, a) == 1) {
		family = AF_INET6;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else
		return 0;
	for (i = 0; i < l->n; i++)
		if (cidr_contains(&l->v[i], family, a))
			return 1;
	return 0;
}

void
cidrlist_free(struct cidrlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
