/*
 * egress.c: the one guard of every connection telehook makes from data
 * a tenant or a provider sent (recording fetches, deliveries to
 * endpoints): the address is checked before connect(), by libcurl's
 * open-socket callback, so a refused address never sees a SYN, on every
 * redirect hop and whatever form the URL wrote it in (a name, IPv4 in
 * decimal, octal or short form, IPv6, IPv4-mapped IPv6): what is checked
 * is the address the kernel would be asked to connect to.
 *
 * "Inside" is every address that is not the public Internet's: the
 * unspecified, loopback, private (RFC 1918), shared (CGNAT, RFC 6598),
 * link-local, unique-local, multicast and reserved blocks, and IPv6
 * forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4)
 * judged by the IPv4 address they carry; the documentation blocks; and
 * this machine's own addresses, public ones too.  Proxies from the
 * environment are not used: the address connected to must be the
 * target's own.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "extern.h"

/* An IPv4 block: the address in host order and its prefix length. */
static const struct {
	unsigned int	 net;
	int		 bits;
} egress_v4[] = {
	{ 0x00000000, 8 },	/* "this network", 0.0.0.0 */
	{ 0x0a000000, 8 },	/* RFC 1918 */
	{ 0x64400000, 10 },	/* shared address space, CGNAT */
	{ 0x7f000000, 8 },	/* loopback */
	{ 0xa9fe0000, 16 },	/* link-local, cloud metadata */
	{ 0xac100000, 12 },	/* RFC 1918 */
	{ 0xc0000000, 24 },	/* IETF protocol assignments */
	{ 0xc0000200, 24 },	/* documentation, TEST-NET-1 */
	{ 0xc6336400, 24 },	/* documentation, TEST-NET-2 */
	{ 0xcb007100, 24 },	/* documentation, TEST-NET-3 */
	{ 0xc0a80000, 16 },	/* RFC 1918 */
	{ 0xc6120000, 15 },	/* benchmarking */
	{ 0xe0000000, 4 },	/* multicast */
	{ 0xf0000000, 4 },	/* reserved, broadcast */
};

/* An IPv6 block: its first bytes and its prefix length. */
static const struct {
	unsigned char	 net[16];
	int		 bits;
} egress_v6[] = {
	{ { 0 }, 96 },					/* ::/96, compatible */
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff }, 96 },	/* translated */
	{ { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48 },		/* local NAT64 */
	{ { 0x01, 0x00 }, 64 },				/* discard */
	{ { 0x20, 0x01, 0, 0 }, 32 },			/* Teredo */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32 },		/* documentation */
	{ { 0xfc }, 7 },				/* unique local */
	{ { 0xfe, 0x80 }, 10 },				/* link-local */
	{ { 0xfe, 0xc0 }, 10 },				/* site-local */
	{ { 0xff }, 8 },				/* multicast */
};

static int
egress_prefix(const unsigned char *a, const unsigned char *net, int bits)
{
	int	 full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return 0;
	return rest == 0 ||
	    ((a[full] ^ net[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* 1 when the IPv4 address a (network order bytes) is not public. */
int
egress_inside4(const unsigned char *a)
{
	unsigned int	 v;
	size_t		 i;

	v = (unsigned int)a[0] << 24 | (unsigned int)a[1] << 16 |
	    (unsigned int)a[2] << 8 | a[3];
	for (i = 0; i < sizeof(egress_v4) / sizeof(egress_v4[0]); i++)
		if ((v ^ egress_v4[i].net) >> (32 - egress_v4[i].bits) == 0)
			return 1;
	return 0;
}

/* 1 when the IPv6 address a is not public (by its IPv4 if it has one). */
int
egress_inside6(const unsigned char *a)
{
	static const unsigned char mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char nat64[12] =
	    { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
	size_t		 i;

	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return egress_inside4(a + 12);
	if (a[0] == 0x20 && a[1] == 0x02)		/* 6to4 */
		return egress_inside4(a + 2);
	for (i = 0; i < sizeof(egress_v6) / sizeof(egress_v6[0]); i++)
		if (egress_prefix(a, egress_v6[i].net, egress_v6[i].bits))
			return 1;
	return 0;
}

/*
 * 1 when sa is one of this machine's own addresses: a public one too is
 * the operator's, and what listens on it is not for a tenant to reach.
 * The interfaces are read once a process.
 */
static int
egress_own(const struct sockaddr *sa)
{
	static struct sockaddr_storage	*own;
	static int			 nown = -1;
	struct ifaddrs			*ifa, *i;
	int				 k;

	if (nown == -1) {
		nown = 0;
		if (getifaddrs(&ifa) == 0) {
			for (i = ifa; i != NULL; i = i->ifa_next)
				if (i->ifa_addr != NULL &&
				    (i->ifa_addr->sa_family == AF_INET ||
				    i->ifa_addr->sa_family == AF_INET6)) {
					own = xreallocarray(own, nown + 1,
					    sizeof(*own));
					memset(&own[nown], 0, sizeof(*own));
					memcpy(&own[nown++], i->ifa_addr,
					    i->ifa_addr->sa_family == AF_INET ?
					    sizeof(struct sockaddr_in) :
					    sizeof(struct sockaddr_in6));
				}
			freeifaddrs(ifa);
		}
	}
	for (k = 0; k < nown; k++) {
		if (own[k].ss_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET &&
		    ((const struct sockaddr_in *)(const void *)&own[k])->
		    sin_addr.s_addr == ((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr.s_addr)
			return 1;
		if (sa->sa_family == AF_INET6 && memcmp(&((const struct
		    sockaddr_in6 *)(const void *)&own[k])->sin6_addr,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16) == 0)
			return 1;
	}
	return 0;
}

/*
 * 1 when the socket address sa is not a public IPv4 or IPv6 address, or
 * is one of this machine's own.
 */
int
egress_inside(const struct sockaddr *sa)
{
	static const unsigned char mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const struct sockaddr_in6 *s6 = (const void *)sa;
	struct sockaddr_in	 s4;

	if (egress_own(sa))
		return 1;
	if (sa->sa_family == AF_INET6 &&
	    memcmp(s6->sin6_addr.s6_addr, mapped, 12) == 0) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		if (egress_own((struct sockaddr *)(void *)&s4))
			return 1;
	}
	if (sa->sa_family == AF_INET)
		return egress_inside4((const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return egress_inside6(((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr.s6_addr);
	return 1;		/* a unix socket, or anything else */
}

/*
 * 1 when host, as a URL writes it, is an address inside in any numeric
 * form (inet_aton's decimal, octal, hexadecimal and short forms; IPv6
 * with or without brackets and zone), or a name of this machine; 0 for
 * a public address or any other name (the connection checks those).
 */
int
egress_host_inside(const char *host)
{
	char		 tmp[INET6_ADDRSTRLEN + 16];
	struct in_addr	 a4;
	struct sockaddr_in  s4;
	struct sockaddr_in6 s6;
	unsigned char	 a6[16];
	size_t		 n = strlen(host);
	char		*pct;

	if (n > 0 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, host, n);
	tmp[n] = '\0';
	if (tmp[n - 1] == '.')		/* "localhost." is localhost */
		tmp[--n] = '\0';
	if ((pct = strchr(tmp, '%')) != NULL)
		*pct = '\0';
	if (strchr(tmp, ':') != NULL) {
		if (inet_pton(AF_INET6, tmp, a6) != 1)
			return 0;
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		memcpy(&s6.sin6_addr, a6, 16);
		return egress_inside((struct sockaddr *)(void *)&s6);
	}
	if (strspn(tmp, "0123456789abcdefxABCDEFX.") == strlen(tmp) &&
	    inet_aton(tmp, &a4) == 1) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		s4.sin_addr = a4;
		return egress_inside((struct sockaddr *)(void *)&s4);
	}
	if (strcasecmp(tmp, "localhost") == 0 ||
	    (n > 10 && strcasecmp(tmp + n - 10, ".localhost") == 0))
		return 1;
	return 0;
}

/* 1 when url's host is inside (egress_host_inside); 0 when not or unparsed. */
int
egress_url_inside(const char *url)
{
	CURLU		*u;
	char		*host = NULL;
	int		 inside = 0;

	if ((u = curl_url()) == NULL)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		inside = egress_host_inside(host);
	curl_free(host);
	curl_url_cleanup(u);
	return inside;
}

/*
 * Trust the address and port of url, when its host is written as an
 * address: the operator's own setting ([twilio] api_url) may name a host
 * inside; a name is not trusted (its address is what is checked).
 */
void
egress_trust(struct egress *g, const char *url)
{
	CURLU			*u;
	char			*host = NULL, *port = NULL;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)&g->trusted;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)&g->trusted;
	const char		*errstr;
	size_t			 n;
	int			 p;

	memset(&g->trusted, 0, sizeof(g->trusted));
	if ((u = curl_url()) == NULL)
		return;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK)
		goto done;
	p = (int)util_strtonum(port, 1, 65535, &errstr);
	if (errstr != NULL)
		goto done;
	n = strlen(host);
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((unsigned short)p);
		}
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)p);
	}
done:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

static int
egress_trusted(const struct egress *g, const struct sockaddr *sa)
{
	const struct sockaddr_in  *t4, *a4;
	const struct sockaddr_in6 *t6, *a6;

	if (g->trusted.ss_family != sa->sa_family)
		return 0;
	if (sa->sa_family == AF_INET) {
		t4 = (const struct sockaddr_in *)(const void *)&g->trusted;
		a4 = (const struct sockaddr_in *)(const void *)sa;
		return t4->sin_port == a4->sin_port &&
		    t4->sin_addr.s_addr == a4->sin_addr.s_addr;
	}
	t6 = (const struct sockaddr_in6 *)(const void *)&g->trusted;
	a6 = (const struct sockaddr_in6 *)(const void *)sa;
	return t6->sin6_port == a6->sin6_port &&
	    memcmp(&t6->sin6_addr, &a6->sin6_addr, 16) == 0;
}

/* libcurl's socket for a connection: none for an address inside. */
static curl_socket_t
egress_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct egress	*g = arg;

	if (purpose != CURLSOCKTYPE_IPCXN ||
	    (a->family != AF_INET && a->family != AF_INET6) ||
	    (!g->allow_private && egress_inside(&a->addr) &&
	    !egress_trusted(g, &a->addr))) {
		g->refused++;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Guard every connection of the easy handle curl with g. */
void
egress_curl(void *curl, struct egress *g)
{
	g->refused = 0;
	(void)curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, egress_open);
	(void)curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, g);
	/* http_proxy and friends: the address must be the target's own */
	(void)curl_easy_setopt(curl, CURLOPT_PROXY, "");
}
