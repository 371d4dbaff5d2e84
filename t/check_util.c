/*
 * check_util: small pure modules: E.164 numbers (phone.c), business
 * hours (hours.c), address lists (cidr.c), log escaping (log.c), tokens
 * and sealed secrets (crypto.c), buffers (buf.c), the CPU's pressure
 * (pressure.c) and util.c.
 */
#include <sys/stat.h>

#include <sched.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

static const struct {
	const char	*in;
	const char	*out;	/* NULL: rejected */
} phones[] = {
	{ "+14155551212", "+14155551212" },
	{ "4155551212", "+14155551212" },		/* VoIP.ms style */
	{ "14155551212", "+14155551212" },
	{ "(415) 555-1212", "+14155551212" },
	{ "415.555.1212", "+14155551212" },
	{ "+44 20 7946 0958", "+442079460958" },
	{ "+1 (415) 555-1212", "+14155551212" },
	{ "1555", NULL },
	{ "0155551212", NULL },				/* NANP area code */
	{ "2125551212", "+12125551212" },		/* area codes 2-9 */
	{ "9175551212", "+19175551212" },
	{ "1235551212", NULL },				/* not 1 */
	{ "24155551212", NULL },			/* 11 digits, not 1 */
	{ "+0441234567", NULL },
	{ "+1234567890123456", NULL },			/* 16 digits */
	{ "+1415555121a", NULL },
	{ "++14155551212", NULL },
	{ "1+4155551212", NULL },
	{ "", NULL },
	{ "anonymous", NULL },
	{ "client:alice", NULL },
};

START_TEST(test_phone_e164)
{
	char	 out[32];
	int	 rc = phone_e164(phones[_i].in, out, sizeof(out));

	if (phones[_i].out == NULL)
		ck_assert_msg(rc == -1, "%s accepted", phones[_i].in);
	else {
		ck_assert_msg(rc == 0, "%s rejected", phones[_i].in);
		ck_assert_str_eq(out, phones[_i].out);
	}
}
END_TEST

START_TEST(test_hours_parse_and_open)
{
	struct hours	 h;
	const char	*err;

	ck_assert_int_eq(hours_parse("mon-fri 09:00-17:00; sat 10:00-14:00",
	    &h, &err), 0);
	ck_assert_int_eq(hours_open(&h, 1, 9 * 60), 1);		/* Mon 9:00 */
	ck_assert_int_eq(hours_open(&h, 1, 17 * 60), 0);	/* closes */
	ck_assert_int_eq(hours_open(&h, 1, 8 * 60 + 59), 0);
	ck_assert_int_eq(hours_open(&h, 5, 16 * 60 + 59), 1);	/* Fri */
	ck_assert_int_eq(hours_open(&h, 6, 13 * 60), 1);	/* Sat */
	ck_assert_int_eq(hours_open(&h, 6, 15 * 60), 0);
	ck_assert_int_eq(hours_open(&h, 0, 12 * 60), 0);	/* Sun */
	ck_assert_int_eq(hours_open(&h, 7, 12 * 60), 0);
}
END_TEST

START_TEST(test_hours_forms)
{
	struct hours	 h;
	const char	*err;
	struct buf	 b;

	buf_init(&b);
	ck_assert_int_eq(hours_parse("Monday,wed 08:00-12:00, 13:00-18:00; "
	    "fri-mon 10:00-11:00; sun closed;", &h, &err), 0);
	ck_assert_int_eq(hours_open(&h, 3, 12 * 60 + 30), 0);	/* lunch */
	ck_assert_int_eq(hours_open(&h, 3, 13 * 60), 1);
	ck_assert_int_eq(hours_open(&h, 1, 8 * 60), 0);	/* replaced */
	ck_assert_int_eq(hours_open(&h, 1, 10 * 60), 1);
	ck_assert_int_eq(hours_open(&h, 0, 10 * 60), 0);	/* closed */
	hours_format(&h, &b);
	ck_assert_str_eq(buf_cstr(&b), "mon 10:00-11:00; wed 08:00-12:00,"
	    "13:00-18:00; fri-sat 10:00-11:00");
	buf_reset(&b);
	/* spans that touch do not overlap: open through the joint */
	ck_assert_int_eq(hours_parse("mon 08:00-12:00,12:00-13:00", &h,
	    &err), 0);
	ck_assert_int_eq(hours_open(&h, 1, 12 * 60), 1);
	ck_assert_int_eq(hours_open(&h, 1, 13 * 60), 0);
	ck_assert_int_eq(hours_parse("24/7", &h, &err), 0);
	ck_assert_int_eq(hours_open(&h, 0, 0), 1);
	ck_assert_int_eq(hours_open(&h, 6, 1439), 1);
	hours_format(&h, &b);
	ck_assert_str_eq(buf_cstr(&b), "mon-sun 00:00-24:00");
	buf_reset(&b);
	/* days are one range only when every span is the same, both ends */
	ck_assert_int_eq(hours_parse("mon 09:00-17:00; tue 09:00-12:00; "
	    "wed 08:00-12:00; thu-fri 08:00-12:00", &h, &err), 0);
	hours_format(&h, &b);
	ck_assert_str_eq(buf_cstr(&b), "mon 09:00-17:00; tue 09:00-12:00; "
	    "wed-fri 08:00-12:00");
	buf_reset(&b);
	ck_assert_int_eq(hours_parse("sat-sun closed", &h, &err), 0);
	hours_format(&h, &b);
	ck_assert_str_eq(buf_cstr(&b), "closed");
	/* the canonical text parses back to the same hours */
	ck_assert_int_eq(hours_parse(buf_cstr(&b), &h, &err), 0);
	ck_assert_int_eq(hours_open(&h, 3, 600), 0);
	buf_free(&b);
}
END_TEST

/*
 * Local day and minute of an instant (the cache's clock, util_local_at),
 * against the IANA rules: the DST changes of 2026-03-08 and 2026-11-01
 * in New York, and days that differ from UTC's.
 */
static const struct {
	const char	*tz;
	time_t		 t;		/* UTC */
	int		 wday, minute;
} local_at[] = {
	{ "America/New_York", 1772953140, 0, 1 * 60 + 59 },	/* 06:59Z: EST */
	{ "America/New_York", 1772953200, 0, 3 * 60 },		/* 07:00Z: EDT */
	{ "America/New_York", 1793512740, 0, 1 * 60 + 59 },	/* 05:59Z: EDT */
	{ "America/New_York", 1793512800, 0, 1 * 60 },		/* 06:00Z: EST */
	{ "America/New_York", 1793516340, 0, 1 * 60 + 59 },	/* 06:59Z: EST */
	{ "America/Chicago", 1795843800, 5, 23 * 60 + 30 },	/* Sat 05:30Z */
	{ "America/Chicago", 1795852800, 6, 2 * 60 },		/* Sat 08:00Z */
	{ "Asia/Kolkata", 1795982400, 1, 1 * 60 + 30 },		/* Sun 20:00Z */
	{ "UTC", 1795982400, 0, 20 * 60 },
	{ NULL, 1795982400, 0, 20 * 60 },			/* UTC */
};

START_TEST(test_local_at)
{
	int	 wday = -1, minute = -1;

	util_local_at(local_at[_i].tz, local_at[_i].t, &wday, &minute);
	ck_assert_msg(wday == local_at[_i].wday &&
	    minute == local_at[_i].minute, "%s %lld: day %d minute %d",
	    local_at[_i].tz ? local_at[_i].tz : "NULL",
	    (long long)local_at[_i].t, wday, minute);
}
END_TEST

/* A span past midnight, as two clauses, in a zone that is not UTC. */
START_TEST(test_hours_across_midnight)
{
	struct hours	 h;
	const char	*err;
	int		 wday, minute;

	ck_assert_int_eq(hours_parse("fri 22:00-24:00; sat 00:00-02:00", &h,
	    &err), 0);
	util_local_at("America/Chicago", 1795843800, &wday, &minute);
	ck_assert_int_eq(hours_open(&h, wday, minute), 1);	/* Fri 23:30 */
	util_local_at("America/Chicago", 1795843800 + 8940, &wday, &minute);
	ck_assert_int_eq(hours_open(&h, wday, minute), 1);	/* Sat 01:59 */
	util_local_at("America/Chicago", 1795852800, &wday, &minute);
	ck_assert_int_eq(hours_open(&h, wday, minute), 0);	/* Sat 02:00 */
	/* the same instant is Saturday 05:30 in UTC: closed */
	util_local_at("UTC", 1795843800, &wday, &minute);
	ck_assert_int_eq(hours_open(&h, wday, minute), 0);
}
END_TEST

static const char *const bad_hours[] = {
	"", "mon", "mon 9:00-17:00", "mon 09:00-25:00", "mon 17:00-09:00",
	"mon 09:00-09:00", "xyz 09:00-10:00", "mon- 09:00-10:00",
	"mon 09:00-12:00,11:00-13:00", "mon 09:60-10:00", "mon 24:00-24:00",
	"mon closed now", ";", "mon 09:00-10:00;;tue 09:00-10:00",
	"mon 01:00-02:00,03:00-04:00,05:00-06:00,07:00-08:00,09:00-10:00",
};

START_TEST(test_hours_bad)
{
	struct hours	 h;
	const char	*err = NULL;

	ck_assert_msg(hours_parse(bad_hours[_i], &h, &err) == -1,
	    "accepted \"%s\"", bad_hours[_i]);
	ck_assert_ptr_nonnull(err);
}
END_TEST

/*
 * Hosts as URLs write them, and whether each is inside (egress.c): the
 * blocks of IANA's special-purpose registries that are not the public
 * Internet, in every numeric form inet_aton(3) and RFC 4291 allow.
 */
#define A20	"aaaaaaaaaaaaaaaaaaaa"
static const struct {
	const char	*host;
	int		 inside;
} egress_hosts[] = {
	{ "127.0.0.1", 1 }, { "127.0.0.2", 1 }, { "127.255.255.255", 1 },
	{ "2130706434", 1 },		/* 127.0.0.2 in decimal */
	{ "0x7f000002", 1 }, { "0177.0.0.2", 1 }, { "127.2", 1 },
	{ "127.1", 1 }, { "0", 1 }, { "0.0.0.0", 1 },
	{ "10.0.0.1", 1 }, { "10.255.255.255", 1 }, { "11.0.0.1", 0 },
	{ "9.255.255.255", 0 },
	{ "172.16.0.1", 1 }, { "172.31.255.255", 1 }, { "172.32.0.1", 0 },
	{ "172.15.255.255", 0 },
	{ "192.168.0.1", 1 }, { "192.169.0.1", 0 },
	{ "100.64.0.1", 1 }, { "100.127.255.255", 1 }, { "100.128.0.1", 0 },
	{ "100.63.255.255", 0 },
	{ "169.254.169.254", 1 }, { "169.255.0.1", 0 },
	{ "192.0.0.8", 1 }, { "198.18.0.1", 1 }, { "198.19.255.255", 1 },
	{ "198.20.0.1", 0 },
	{ "192.0.2.1", 1 }, { "198.51.100.7", 1 }, { "203.0.113.5", 1 },
	{ "203.0.114.1", 0 },
	{ "224.0.0.1", 1 }, { "239.255.255.255", 1 }, { "240.0.0.1", 1 },
	{ "255.255.255.255", 1 },
	{ "8.8.8.8", 0 }, { "1.1.1.1", 0 }, { "52.94.236.248", 0 },
	{ "[::1]", 1 }, { "::1", 1 }, { "[::]", 1 },
	{ "[::ffff:127.0.0.2]", 1 }, { "[::ffff:7f00:2]", 1 },
	{ "[::ffff:10.1.2.3]", 1 }, { "[::ffff:8.8.8.8]", 0 },
	{ "[::127.0.0.1]", 1 },		/* IPv4-compatible */
	{ "[::ffff:0:127.0.0.1]", 1 },	/* IPv4-translated */
	{ "[64:ff9b::10.0.0.1]", 1 }, { "[64:ff9b::8.8.8.8]", 0 },
	{ "[64:ff9b:1::1]", 1 },
	{ "[2002:7f00:1::1]", 1 },	/* 6to4 of 127.0.0.1 */
	{ "[2002:808:808::1]", 0 },	/* 6to4 of 8.8.8.8 */
	{ "[2001::1]", 1 },		/* Teredo */
	{ "[2001:db8::1]", 1 },
	{ "[fc00::1]", 1 }, { "[fd12:3456::1]", 1 }, { "[fe80::1%25eth0]", 1 },
	{ "[fe80::1]", 1 }, { "[febf::1]", 1 }, { "[fec0::1]", 1 },
	{ "[ff02::1]", 1 }, { "[100::1]", 1 },
	{ "[2606:4700::1111]", 0 }, { "[2a00:1450::1]", 0 },
	{ "localhost", 1 }, { "LOCALHOST.", 1 }, { "api.localhost", 1 },
	{ "api.twilio.com", 0 }, { "10.0.0.1.example.com", 0 },
	{ "127.0.0.1.nip.io", 0 }, { "", 0 },
	/* a name longer than any address: a name (the connection checks) */
	{ A20 A20 A20 A20 A20 A20 A20 A20 A20 A20 ".example.com", 0 },
	{ "[" A20 A20 A20 A20 "]", 0 },
};

START_TEST(test_egress_host)
{
	ck_assert_msg(egress_host_inside(egress_hosts[_i].host) ==
	    egress_hosts[_i].inside, "%s: expected %s", egress_hosts[_i].host,
	    egress_hosts[_i].inside ? "inside" : "public");
}
END_TEST

/*
 * This machine's own addresses are inside whatever block they are in
 * (egress.c, before connect): seen in a network namespace of this
 * test's own, whose lo carries public-looking addresses.  It takes
 * root (dev/check runs as root); otherwise there is nothing to see.
 */
START_TEST(test_egress_own)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) == -1) {
		fprintf(stderr, "test_egress_own: not root: skipped\n");
		return;
	}
	ck_assert_int_eq(system("PATH=$PATH:/usr/sbin:/sbin; "
	    "ip link set lo up && ip addr add 203.0.114.7/32 dev lo && "
	    "ip addr add 2606:4700::7/128 dev lo"), 0);
	ck_assert_int_eq(egress_host_inside("203.0.114.7"), 1);
	ck_assert_int_eq(egress_host_inside("203.0.114.8"), 0);
	ck_assert_int_eq(egress_host_inside("[2606:4700::7]"), 1);
	ck_assert_int_eq(egress_host_inside("[::ffff:203.0.114.7]"), 1);
	ck_assert_int_eq(egress_host_inside("[2606:4700::8]"), 0);
}
END_TEST

START_TEST(test_egress_url)
{
	ck_assert_int_eq(egress_url_inside("http://2130706433:8080/x"), 1);
	ck_assert_int_eq(egress_url_inside("https://[::ffff:127.0.0.1]/"), 1);
	ck_assert_int_eq(egress_url_inside("http://user@10.1.1.1/"), 1);
	ck_assert_int_eq(egress_url_inside("http://169.254.169.254/latest"), 1);
	ck_assert_int_eq(egress_url_inside("https://hooks.example.com/a"), 0);
	ck_assert_int_eq(egress_url_inside("https://8.8.8.8/a"), 0);
	ck_assert_int_eq(egress_url_inside("not a url"), 0);
}
END_TEST

/* req_shown_path(): nothing from ';' (or %3B) on, bounded. */
START_TEST(test_shown_path)
{
	char	 b[16];

	ck_assert_str_eq(req_shown_path("/a/b;token=x", b, sizeof(b)), "/a/b");
	ck_assert_str_eq(req_shown_path("/a%3btoken=x", b, sizeof(b)), "/a");
	ck_assert_str_eq(req_shown_path("/a%3Btoken=x", b, sizeof(b)), "/a");
	ck_assert_str_eq(req_shown_path("/a?token=x", b, sizeof(b)), "/a");
	ck_assert_str_eq(req_shown_path(NULL, b, sizeof(b)), "-");
	ck_assert_str_eq(req_shown_path("/0123456789abcdefgh", b, sizeof(b)),
	    "/0123456789abcd");
	ck_assert_str_eq(req_shown_path("/a%3", b, sizeof(b)), "/a%3");
}
END_TEST

/* req_shown_path() at its bound: sz - 1 bytes and the NUL, not one more. */
START_TEST(test_shown_path_bound)
{
	struct {
		char	 b[16];
		char	 guard[4];
	} t;

	memset(&t, 'G', sizeof(t));
	/* 15 bytes fit whole */
	ck_assert_str_eq(req_shown_path("/0123456789abcd", t.b,
	    sizeof(t.b)), "/0123456789abcd");
	/* 16 (sz) and 17 are cut to 15 */
	ck_assert_str_eq(req_shown_path("/0123456789abcde", t.b,
	    sizeof(t.b)), "/0123456789abcd");
	ck_assert_int_eq(memcmp(t.guard, "GGGG", 4), 0);
	ck_assert_str_eq(req_shown_path("/0123456789abcdef", t.b,
	    sizeof(t.b)), "/0123456789abcd");
	ck_assert_int_eq(memcmp(t.guard, "GGGG", 4), 0);
}
END_TEST

START_TEST(test_cidr)
{
	struct cidrlist	 l;
	struct cidr	 c;
	const char	*err;
	char		 big[80];

	/*
	 * The longest address text there is (45 bytes) and a prefix; a
	 * string of 53 bytes, 54 and 63 (a proxy's hop may be) is none,
	 * read within its bounds (the sanitize build checks them).
	 */
	ck_assert_int_eq(cidr_parse("ffff:ffff:ffff:ffff:ffff:ffff:"
	    "255.255.255.255/128", &c), 0);
	ck_assert_int_eq(c.bits, 128);
	memset(big, '1', sizeof(big));
	big[53] = '\0';
	ck_assert_int_eq(cidr_parse(big, &c), -1);
	big[53] = '1';
	big[54] = '\0';
	ck_assert_int_eq(cidr_parse(big, &c), -1);
	big[54] = '1';
	big[63] = '\0';
	ck_assert_int_eq(cidr_parse(big, &c), -1);

	ck_assert_int_eq(cidrlist_parse("100.20.5.228, 10.0.0.0/8 "
	    "2001:db8::/32,::1", &l, &err), 0);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_int_eq(cidrlist_match(&l, "100.20.5.228"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "100.20.5.229"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "10.255.1.2"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "11.0.0.1"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "2001:db8:1::5"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "2001:db9::5"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "::1"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "::ffff:10.1.2.3"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "not-an-ip"), 0);
	ck_assert_int_eq(cidrlist_match(&l, NULL), 0);
	cidrlist_free(&l);
	/* host bits are cleared; /0 matches all of a family */
	ck_assert_int_eq(cidrlist_parse("192.168.1.77/24,0.0.0.0/0", &l,
	    &err), 0);
	ck_assert_int_eq(l.v[0].addr[3], 0);
	ck_assert_int_eq(cidrlist_match(&l, "8.8.8.8"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "2001:db8::1"), 0);
	cidrlist_free(&l);
	/* prefixes that end inside a byte: the last bits count */
	ck_assert_int_eq(cidrlist_parse("172.16.0.0/12 10.1.16.0/20 "
	    "2001:db8::/127 192.0.2.128/25", &l, &err), 0);
	ck_assert_int_eq(cidrlist_match(&l, "172.31.255.255"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "172.32.0.1"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "172.15.255.255"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "10.1.31.1"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "10.1.32.1"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "10.1.15.255"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "2001:db8::1"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "2001:db8::"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "2001:db8::2"), 0);
	ck_assert_int_eq(cidrlist_match(&l, "192.0.2.255"), 1);
	ck_assert_int_eq(cidrlist_match(&l, "192.0.2.127"), 0);
	cidrlist_free(&l);
	ck_assert_int_eq(cidrlist_parse("10.0.0.0/", &l, &err), -1);
	ck_assert_int_eq(cidrlist_parse("10.0.0.0/8x", &l, &err), -1);
	ck_assert_int_eq(cidrlist_parse("::1/129", &l, &err), -1);
	ck_assert_int_eq(cidrlist_parse("1.2.3", &l, &err), -1);
	ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(test_log_escape)
{
	char	 out[64];

	log_escape(out, sizeof(out), "a\nb\r\"c\"\\\x01\xff", 10);
	ck_assert_str_eq(out, "a\\nb\\r\\\"c\\\"\\\\\\x01\\xff");
	log_escape(out, 12, "0123456789abcdef", 16);
	ck_assert_str_eq(out, "01234567...");
	ck_assert_uint_lt(strlen(out), 12);
	/* always NUL-terminated: room for the NUL alone, or for 3 bytes */
	memset(out, 'x', sizeof(out));
	ck_assert_uint_eq(log_escape(out, 1, "abc", 3), 0);
	ck_assert_str_eq(out, "");
	memset(out, 'x', sizeof(out));
	log_escape(out, 4, "abcdef", 6);
	ck_assert_str_eq(out, "...");
	ck_assert_str_eq(log_esc(NULL), "-");
	ck_assert_str_eq(log_esc("forged\nline"), "forged\\nline");
	/* the printable ASCII range, from the space to the tilde, as is */
	ck_assert_str_eq(log_esc("a b~"), "a b~");
	ck_assert_str_eq(log_esc("\x1f \x7f"), "\\x1f \\x7f");
}
END_TEST

START_TEST(test_tokens)
{
	char	 a[128], b[128], h[TOKEN_HASHHEX + 1];

	crypto_token_new(a, sizeof(a));
	crypto_token_new(b, sizeof(b));
	ck_assert_int_eq(strncmp(a, TOKEN_PREFIX, 4), 0);
	ck_assert_uint_eq(strlen(a), 4 + 43);
	ck_assert_str_ne(a, b);
	/* SHA-256 of "abc", FIPS 180-2 */
	crypto_token_hash("abc", h);
	ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	ck_assert_int_eq(crypto_streq("secret", "secret"), 1);
	ck_assert_int_eq(crypto_streq("secret", "secreT"), 0);
	ck_assert_int_eq(crypto_streq("secret", "secret2"), 0);
	ck_assert_int_eq(crypto_streq(NULL, "x"), 0);
}
END_TEST

START_TEST(test_seal_open)
{
	unsigned char	 key[CRYPTO_KEYBYTES], other[CRYPTO_KEYBYTES];
	char		*s1, *s2, *p;

	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	s1 = crypto_seal(key, "auth-token-123");
	s2 = crypto_seal(key, "auth-token-123");
	ck_assert_str_ne(s1, s2);	/* fresh nonce each time */
	ck_assert_ptr_null(strstr(s1, "auth-token"));
	p = crypto_open(key, s1);
	ck_assert_str_eq(p, "auth-token-123");
	free(p);
	ck_assert_ptr_null(crypto_open(other, s1));
	s1[10] = s1[10] == 'A' ? 'B' : 'A';
	ck_assert_ptr_null(crypto_open(key, s1));
	ck_assert_ptr_null(crypto_open(key, "not base64!"));
	ck_assert_ptr_null(crypto_open(key, "AAAA"));
	free(s1);
	free(s2);
}
END_TEST

START_TEST(test_vis)
{
	static const struct {
		const char	*in;
		const char	*out;
	} c[] = {
		{ "CA123", "CA123" },
		{ "CA\033[2J\033]0;pwned\007", "CA\\033[2J\\033]0;pwned\\007" },
		{ "a\nb\tc\\d", "a\\nb\\tc\\\\d" },
		{ "DEL\177", "DEL\\177" },
		{ "C1 \302\233[2J", "C1 \\302\\233[2J" },	/* U+009B CSI */
		{ "Caf\303\251 \342\202\254", "Caf\303\251 \342\202\254" },
		{ "Latin-1 Caf\351", "Latin-1 Caf\\351" },
		{ "", "" },
	};
	size_t	 i;
	char	*v;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		v = util_vis(c[i].in);
		ck_assert_str_eq(v, c[i].out);
		free(v);
	}
}
END_TEST

START_TEST(test_utf8_fix)
{
	char	*v;

	ck_assert_ptr_null(util_utf8_fix("Caf\303\251 \342\202\254", 0));
	ck_assert_ptr_null(util_utf8_fix("plain", 1));
	/* VoIP.ms: Latin-1 "Caf\351" */
	v = util_utf8_fix("Caf\351 cr\350me", 1);
	ck_assert_str_eq(v, "Caf\303\251 cr\303\250me");
	free(v);
	/* elsewhere: each invalid byte is U+FFFD */
	v = util_utf8_fix("a\351b\300\257c", 0);
	ck_assert_str_eq(v, "a\357\277\275b\357\277\275\357\277\275c");
	free(v);
	/* a surrogate (ED A0 80) and a truncated sequence */
	v = util_utf8_fix("\355\240\200x\342\202", 0);
	ck_assert_str_eq(v, "\357\277\275\357\277\275\357\277\275x"
	    "\357\277\275\357\277\275");
	free(v);
	/*
	 * The ends of each length: U+0080, U+07FF, U+0800, U+D7FF, U+E000,
	 * U+FFFF, U+10000, an emoji (U+1F600), U+10FFFF: all UTF-8 already,
	 * in either mode
	 */
	ck_assert_ptr_null(util_utf8_fix("\302\200 \337\277 \340\240\200 "
	    "\355\237\277 \356\200\200 \357\277\277 \360\220\200\200 "
	    "\360\237\230\200 \364\217\277\277", 0));
	ck_assert_ptr_null(util_utf8_fix("Hi \360\237\230\200", 1));
	/* overlong (C1 BF, E0 9F BF, F0 8F BF BF) and past U+10FFFF */
	v = util_utf8_fix("\301\277|\340\237\277|\360\217\277\277|"
	    "\364\220\200\200", 0);
	ck_assert_str_eq(v, "\357\277\275\357\277\275|"
	    "\357\277\275\357\277\275\357\277\275|"
	    "\357\277\275\357\277\275\357\277\275\357\277\275|"
	    "\357\277\275\357\277\275\357\277\275\357\277\275");
	free(v);
}
END_TEST

START_TEST(test_buf)
{
	struct buf	 b;

	buf_init(&b);
	ck_assert_str_eq(buf_cstr(&b), "");
	buf_printf(&b, "%d-%s", 42, "x");
	buf_putc(&b, '!');
	ck_assert_str_eq(buf_cstr(&b), "42-x!");
	b.max = 8;
	buf_puts(&b, "toolong");
	ck_assert_int_eq(b.failed, 1);
	buf_puts(&b, "a");	/* sticky */
	ck_assert_str_eq(buf_cstr(&b), "42-x!");
	buf_reset(&b);
	ck_assert_int_eq(b.failed, 0);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_strtonum)
{
	const char	*err;

	ck_assert_int_eq(util_strtonum("42", 0, 100, &err), 42);
	ck_assert_ptr_null(err);
	util_strtonum("101", 0, 100, &err);
	ck_assert_str_eq(err, "too large");
	util_strtonum("-1", 0, 100, &err);
	ck_assert_str_eq(err, "too small");
	util_strtonum("4x", 0, 100, &err);
	ck_assert_str_eq(err, "invalid");
	util_strtonum("", 0, 100, &err);
	ck_assert_str_eq(err, "invalid");
	util_strtonum("99999999999999999999", 0, 100, &err);
	ck_assert_str_eq(err, "too large");
}
END_TEST

/* [delivery] retry_schedule: the default is Svix's, about a day and a half */
START_TEST(test_schedule)
{
	long long	 d[16];
	int		 i;
	static const char *const bad[] = { "", "5", "5x", "0s", "5s,", ",5s",
	    "5s,,5m", "-5s", "5 s", "100001s", "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,"
	    "1s,1s,1s,1s,1s,1s,1s" };

	ck_assert_int_eq(util_schedule("5s,5m,30m,2h,5h,10h,10h", d, 16), 7);
	ck_assert_int_eq(d[0], 5);
	ck_assert_int_eq(d[1], 300);
	ck_assert_int_eq(d[2], 1800);
	ck_assert_int_eq(d[3], 7200);
	ck_assert_int_eq(d[6], 36000);
	ck_assert_int_eq(d[0] + d[1] + d[2] + d[3] + d[4] + d[5] + d[6],
	    5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000);
	ck_assert_int_eq(util_schedule("1s", d, 16), 1);
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++)
		ck_assert_msg(util_schedule(bad[i], d, 16) == -1, "%s", bad[i]);
}
END_TEST

/* /proc/pressure/cpu as the kernel writes it (accounting/psi.rst) */
static const struct {
	const char	*text;
	long long	 total;		/* -1: refused */
} psis[] = {
	{ "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 0 },
	/* since Linux 5.13 a "full" line follows, zero system-wide */
	{ "some avg10=1.53 avg60=0.34 avg300=0.08 total=13217710262\n"
	  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 13217710262LL },
	{ "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"
	  "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n", 42 },
	{ "some avg10=0.00 avg60=0.00 avg300=0.00 total=42", 42 },
	{ "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n", -1 },
	{ "some avg10=0.00 avg60=0.00 avg300=0.00\n"
	  "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n", -1 },
	{ "some avg10=0.00 total=abc\n", -1 },
	{ "some avg10=0.00 total=\n", -1 },
	{ "some avg10=0.00 total=-5\n", -1 },
	{ "some avg10=0.00 total=5x\n", -1 },
	{ "some avg10=0.00 total=99999999999999999999\n", -1 },
	{ "some avg10=0.00 xtotal=5\n", -1 },
	{ "somewhat total=5\n", -1 },
	{ "", -1 },
};

START_TEST(test_pressure_parse)
{
	ck_assert_msg(pressure_parse(psis[_i].text) == psis[_i].total,
	    "%s: %lld", psis[_i].text, pressure_parse(psis[_i].text));
}
END_TEST

static void
psi_write(const char *path, long long total)
{
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "some avg10=0.00 avg60=0.00 avg300=0.00 total=%lld\n"
	    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", total);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_pressure_sample)
{
	char		 path[] = "/tmp/check_util.psi.XXXXXX";
	struct pressure	 ps;
	double		 share;
	int		 fd;

	ck_assert_int_ne(fd = mkstemp(path), -1);
	close(fd);
	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	/* the first sample has nothing to compare with */
	psi_write(path, 5000000);
	ck_assert_int_eq(pressure_sample(&ps, 1000000, &share), 0);
	ck_assert(share == 0);
	/* 50 ms of stall in 100 ms */
	psi_write(path, 5050000);
	ck_assert_int_eq(pressure_sample(&ps, 1100000, &share), 0);
	ck_assert(share > 0.499 && share < 0.501);
	/* none in the next 400 ms */
	ck_assert_int_eq(pressure_sample(&ps, 1500000, &share), 0);
	ck_assert(share == 0);
	/* more stall than time (the kernel's clocks differ a little) */
	psi_write(path, 5200000);
	ck_assert_int_eq(pressure_sample(&ps, 1600000, &share), 0);
	ck_assert(share == 1);
	/* 10 ms in 100 ms */
	psi_write(path, 5210000);
	ck_assert_int_eq(pressure_sample(&ps, 1700000, &share), 0);
	ck_assert(share > 0.099 && share < 0.101);
	/* a file without the line, or none: no reading */
	ck_assert_int_eq(truncate(path, 0), 0);
	ck_assert_int_eq(pressure_sample(&ps, 1800000, &share), -1);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(pressure_sample(&ps, 1900000, &share), -1);
}
END_TEST

/*
 * [server] secret_key_file (telehook.conf(5)): exactly 32 bytes in a
 * regular file only its owner may read; anything else is refused with
 * why, and nothing is loaded.
 */
START_TEST(test_key_file)
{
	char		 dir[] = "/tmp/check_util.XXXXXX", path[64];
	unsigned char	 key[CRYPTO_KEYBYTES], want[CRYPTO_KEYBYTES];
	const char	*err = NULL;
	FILE		*f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret.key", dir);
	ck_assert_int_eq(crypto_load_key(path, key, &err), -1);
	ck_assert_str_eq(err, "No such file or directory");
	memset(want, 0xa5, sizeof(want));
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_uint_eq(fwrite(want, 1, 31, f), 31);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(crypto_load_key(path, key, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "exactly 32 bytes"));
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_uint_eq(fwrite(want, 1, sizeof(want), f), sizeof(want));
	fclose(f);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(crypto_load_key(path, key, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
	ck_assert_int_eq(chmod(path, 0600), 0);
	memset(key, 0, sizeof(key));
	ck_assert_int_eq(crypto_load_key(path, key, &err), 0);
	ck_assert_int_eq(memcmp(key, want, sizeof(key)), 0);
	ck_assert_int_eq(crypto_load_key(dir, key, &err), -1);
	ck_assert_str_eq(err, "not a regular file");
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/*
 * An allocation of nothing is still one: a pointer that can be freed
 * and grown, never NULL (which callers take for out of memory) and never
 * a division by zero in the overflow check.
 */
START_TEST(test_alloc_zero)
{
	char	*p;

	p = xreallocarray(NULL, 0, 8);
	ck_assert_ptr_nonnull(p);
	p = xreallocarray(p, 8, 0);
	ck_assert_ptr_nonnull(p);
	p = xreallocarray(p, 3, 5);
	memcpy(p, "fourteen bytes", 15);
	ck_assert_str_eq(p, "fourteen bytes");
	/* one item of many bytes is as many bytes */
	p = xreallocarray(p, 1, 4096);
	ck_assert_uint_ge(malloc_usable_size(p), 4096);
	ck_assert_str_eq(p, "fourteen bytes");
	free(p);
	p = xcalloc(0, 4);
	ck_assert_ptr_nonnull(p);
	free(p);
}
END_TEST

/*
 * The account a Twilio recording URL names (telehook(8) GET
 * calls/CALL/recording: the URL must be under [twilio] api_url, and the
 * account's token is the one asked for): AC and 32 hex digits, then a
 * slash; anything else names none.
 */
static const struct {
	const char	*url;
	const char	*sid;	/* NULL: none */
} rec_urls[] = {
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789ABCDEF/Recordings/RE1",
	    "AC0123456789abcdef0123456789ABCDEF" },
	{ "https://API.twilio.com/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcdef/Recordings/RE1",
	    "AC0123456789abcdef0123456789abcdef" },
	/* 33 hex digits, 31, not hex, not AC */
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcdef0/Recordings/RE1", NULL },
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcde/Recordings/RE1", NULL },
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcdeg/Recordings/RE1", NULL },
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "ac0123456789abcdef0123456789abcdef/Recordings/RE1", NULL },
	/* the account last, no slash after it */
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcdef", NULL },
	/* another host, one that only starts like it, no account */
	{ "https://api.twilio.com.evil.example/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcdef/Recordings/RE1", NULL },
	{ "https://evil.example/2010-04-01/Accounts/"
	    "AC0123456789abcdef0123456789abcdef/Recordings/RE1", NULL },
	{ "https://api.twilio.com/2010-04-01/Recordings/RE1", NULL },
	/* an Account SID starts with AC: one letter of the two is not it */
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "AX0123456789abcdef0123456789abcdef/Recordings/RE1", NULL },
	{ "https://api.twilio.com/2010-04-01/Accounts/"
	    "BC0123456789abcdef0123456789abcdef/Recordings/RE1", NULL },
};

START_TEST(test_recording_account)
{
	char	 sid[40];
	int	 rc;

	rc = recording_twilio_account("https://api.twilio.com/",
	    rec_urls[_i].url, sid, sizeof(sid));
	if (rec_urls[_i].sid == NULL)
		ck_assert_msg(rc == -1, "%s: named %s", rec_urls[_i].url, sid);
	else {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(sid, rec_urls[_i].sid);
	}
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc;

	tc = tcase_create("Phone");
	tcase_add_loop_test(tc, test_phone_e164, 0,
	    sizeof(phones) / sizeof(phones[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("Hours");
	tcase_add_test(tc, test_hours_parse_and_open);
	tcase_add_test(tc, test_hours_forms);
	tcase_add_loop_test(tc, test_local_at, 0,
	    sizeof(local_at) / sizeof(local_at[0]));
	tcase_add_test(tc, test_hours_across_midnight);
	tcase_add_loop_test(tc, test_hours_bad, 0,
	    sizeof(bad_hours) / sizeof(bad_hours[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("Core");
	tcase_add_test(tc, test_cidr);
	tcase_add_loop_test(tc, test_egress_host, 0,
	    sizeof(egress_hosts) / sizeof(egress_hosts[0]));
	tcase_add_test(tc, test_egress_own);
	tcase_add_test(tc, test_egress_url);
	tcase_add_test(tc, test_shown_path);
	tcase_add_test(tc, test_shown_path_bound);
	tcase_add_test(tc, test_log_escape);
	tcase_add_test(tc, test_tokens);
	tcase_add_test(tc, test_seal_open);
	tcase_add_test(tc, test_buf);
	tcase_add_test(tc, test_vis);
	tcase_add_test(tc, test_utf8_fix);
	tcase_add_test(tc, test_strtonum);
	tcase_add_test(tc, test_schedule);
	tcase_add_loop_test(tc, test_pressure_parse, 0,
	    sizeof(psis) / sizeof(psis[0]));
	tcase_add_test(tc, test_pressure_sample);
	tcase_add_test(tc, test_alloc_zero);
	tcase_add_test(tc, test_key_file);
	tcase_add_loop_test(tc, test_recording_account, 0,
	    sizeof(rec_urls) / sizeof(rec_urls[0]));
	suite_add_tcase(s, tc);
	return s;
}
