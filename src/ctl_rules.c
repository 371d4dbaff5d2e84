/*
 * ctl_rules.c: telehookctl reply, secret, block and closure: what an
 * organization answers, verifies with, refuses and when it is closed.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"
#include "ctl.h"

/*
 * reply add: keywords are lower-cased, trimmed and de-duplicated; the
 * text is what an SMS answers, or what the speech flow says.
 */
static int
ctl_reply_add(int argc, char **argv)
{
	const char	*kw = NULL, *text = NULL, *channel = "sms";
	const struct ctl_opt opts[] = { { "keywords", &kw, 0 }, { "text", &text, 0 },
			    { "channel", &channel, 0 }, { NULL, NULL, 0 } };
	struct buf	 norm;
	struct db_res	 res;
	const char	*p[4], *k, *end;
	char		*id, *one, *c, *probe, *list;
	size_t		 n;
	cJSON		*o;

	id = ctl_resolve_org(argv[ctl_parse_opts(argc, argv, opts)]);
	if (kw == NULL || text == NULL)
		ctl_die(EX_USAGE_, "reply add needs --keywords and --text");
	if (strcmp(channel, "sms") != 0 && strcmp(channel, "voice") != 0)
		ctl_die(EX_DATAERR_, "--channel must be sms or voice");
	if (*text == '\0' || strlen(text) > 1600)
		ctl_die(EX_DATAERR_, "--text must be 1 to 1600 characters");
	buf_init(&norm);
	for (k = kw; *k != '\0'; k = *end ? end + 1 : end) {
		end = k + strcspn(k, ",");
		while (k < end && isspace((unsigned char)*k))
			k++;
		n = (size_t)(end - k);
		while (n > 0 && isspace((unsigned char)k[n - 1]))
			n--;
		if (n == 0)
			continue;
		if (n > 64)
			ctl_die(EX_DATAERR_, "a keyword is at most 64 characters");
		one = xstrndup(k, n);
		for (c = one; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		/* each keyword once */
		xasprintf(&probe, ",%s,", one);
		xasprintf(&list, ",%s,", buf_cstr(&norm));
		if (strstr(list, probe) == NULL) {
			if (norm.len > 0)
				buf_putc(&norm, ',');
			buf_puts(&norm, one);
		}
		free(probe);
		free(list);
		free(one);
	}
	if (norm.len == 0)
		ctl_die(EX_DATAERR_, "--keywords names no keyword");
	p[0] = id;
	p[1] = channel;
	p[2] = buf_cstr(&norm);
	p[3] = text;
	ctl_q("reply add", "INSERT INTO reply_rules (organization_id, channel, "
	    "keywords, reply) VALUES ($1, $2, string_to_array($3, ','), $4) "
	    "RETURNING id", 4, p, &res);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "channel", channel);
		cJSON_AddStringToObject(o, "keywords", buf_cstr(&norm));
		cJSON_AddStringToObject(o, "text", text);
		ctl_json_print(o);
	} else
		printf("%s\n", db_val(&res, 0, "id"));
	db_res_free(&res);
	buf_free(&norm);
	free(id);
	return 0;
}

static int
ctl_reply_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "channel", "keywords",
	    "text", NULL };

	return ctl_rows(argc, argv, "replies",
	    "SELECT id, channel, array_to_string(keywords, ',') AS keywords, "
	    "reply AS text FROM reply_rules WHERE organization_id = $1 "
	    "ORDER BY channel, id", cols, 0);
}

static int
ctl_reply_remove(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];
	cJSON		*o;

	p[0] = ctl_check_id(argv[ctl_parse_opts(argc, argv, NULL)],
	    "a reply id (see reply list)");
	ctl_q("reply remove", "DELETE FROM reply_rules WHERE id = $1::bigint "
	    "RETURNING id", 1, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no such reply: %s", p[0]);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "removed", p[0]);
		ctl_json_print(o);
	} else
		printf("removed reply %s\n", p[0]);
	db_res_free(&res);
	return 0;
}

/*
 * secret set: the secret is read from standard input (one line), sealed
 * with secret_key_file and stored; it is never printed or logged.
 */
static int
ctl_secret_set(int argc, char **argv)
{
	const char	*account = "";
	const struct ctl_opt opts[] = { { "account", &account, 0 },
			    { NULL, NULL, 0 } };
	char		 line[1024], *id, *sealed, hash[65];
	const char	*p[5], *provider, *a;
	struct db_res	 res;
	enum db_err	 e;
	size_t		 n;
	int		 i, urltoken, rotated = 0;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, opts);
	provider = argv[i + 1];
	if (strcmp(provider, "twilio") != 0 && strcmp(provider, "retell") != 0 &&
	    strcmp(provider, "voipms") != 0)
		ctl_die(EX_DATAERR_, "PROVIDER must be twilio, retell or voipms");
	if (strcmp(provider, "twilio") == 0 && *account != '\0') {
		if (strlen(account) != 34 || strncmp(account, "AC", 2) != 0 ||
		    strspn(account + 2, "0123456789abcdefABCDEF") != 32)
			ctl_die(EX_DATAERR_, "--account must be a Twilio "
			    "AccountSid (AC and 32 hex digits)");
	}
	if (!crypto_have_key)
		ctl_die(EX_CONFIG_, "secret_key_file is not set in %s: secrets "
		    "cannot be sealed", conf.path);
	id = ctl_resolve_org(argv[i]);
	if (fgets(line, sizeof(line), stdin) == NULL)
		ctl_die(EX_DATAERR_, "no secret on standard input");
	n = strcspn(line, "\r\n");
	if (line[n] == '\0' && !feof(stdin))
		ctl_die(EX_DATAERR_, "secret longer than %zu bytes",
		    sizeof(line) - 2);
	line[n] = '\0';
	for (a = line; *a != '\0'; a++)
		if (iscntrl((unsigned char)*a))
			ctl_die(EX_DATAERR_, "the secret holds a control "
			    "character");
	if (n == 0)
		ctl_die(EX_DATAERR_, "empty secret");
	/*
	 * A VoIP.ms URL token (no --account; with one it is the password of
	 * that API user) is the whole credential and names its
	 * organization: it must not be guessable, and it is found by its
	 * SHA-256 (the unique index refuses one token for two).
	 */
	urltoken = strcmp(provider, "voipms") == 0 && *account == '\0';
	if (urltoken && n < 16)
		ctl_die(EX_DATAERR_, "a VoIP.ms URL token needs at least 16 "
		    "characters (openssl rand -hex 16)");
	if (urltoken)
		crypto_sha256_hex(line, n, hash);
	sealed = crypto_seal(crypto_key, line);
	explicit_bzero(line, sizeof(line));
	p[0] = id;
	p[1] = provider;
	p[2] = account;
	p[3] = sealed;
	p[4] = urltoken ? hash : NULL;
	/*
	 * Rotation of a URL token: the one it replaces stays valid as
	 * ":previous" until "secret remove ORG voipms --account :previous",
	 * so the DIDs' callback URLs can be changed one by one.
	 */
	if (urltoken) {
		if ((e = db_begin()) != DB_OK)
			ctl_die_db(e, "secret set");
		ctl_q("secret set", "DELETE FROM provider_accounts WHERE "
		    "organization_id = $1 AND provider = 'voipms' AND "
		    "account_id = ':previous'", 1, p, NULL);
		ctl_q("secret set", "UPDATE provider_accounts SET account_id = "
		    "':previous', updated_at = now() WHERE organization_id = $1 "
		    "AND provider = 'voipms' AND account_id = ''", 1, p, &res);
		rotated = res.cmdtuples != NULL && atoi(res.cmdtuples) > 0;
		db_res_free(&res);
	}
	ctl_q("secret set", "INSERT INTO provider_accounts (organization_id, "
	    "provider, account_id, secret_sealed, secret_hash) VALUES ($1, $2, "
	    "$3, $4, $5) ON CONFLICT (organization_id, provider, account_id) "
	    "DO UPDATE SET secret_sealed = excluded.secret_sealed, "
	    "secret_hash = excluded.secret_hash, updated_at = now()",
	    5, p, NULL);
	if (urltoken && (e = db_commit()) != DB_OK)
		ctl_die_db(e, "secret set");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "provider", provider);
		cJSON_AddStringToObject(o, "account", account);
		cJSON_AddBoolToObject(o, "previous_kept", rotated);
		ctl_json_print(o);
	} else {
		printf("secret stored for %s%s%s\n", provider,
		    *account ? " account " : "", account);
		if (rotated)
			printf("the previous URL token is accepted until "
			    "\"telehookctl secret remove %s voipms --account "
			    ":previous\"\n", id);
	}
	free(sealed);
	free(id);
	return 0;
}

/* secret remove: forget a stored secret (the end of a rotation). */
static int
ctl_secret_remove(int argc, char **argv)
{
	const char	*account = "";
	const struct ctl_opt opts[] = { { "account", &account, 0 },
			    { NULL, NULL, 0 } };
	const char	*p[3];
	struct db_res	 res;
	char		*id;
	int		 i, n;

	i = ctl_parse_opts(argc, argv, opts);
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = account;
	ctl_q("secret remove", "DELETE FROM provider_accounts WHERE "
	    "organization_id = $1 AND provider = $2 AND account_id = $3",
	    3, p, &res);
	n = atoi(res.cmdtuples != NULL ? res.cmdtuples : "0");
	db_res_free(&res);
	free(id);
	if (n == 0)
		ctl_die(EX_DATAERR_, "no such secret");
	if (!ctl_json_out)
		printf("secret removed\n");
	else
		ctl_json_print(cJSON_CreateObject());
	return 0;
}

static int
ctl_secret_list(int argc, char **argv)
{
	static const char *const cols[] = { "organization_id", "organization",
	    "provider", "account", "updated_at", NULL };

	return ctl_rows(argc, argv, "secrets", "SELECT o.id AS "
	    "organization_id, o.name AS organization, a.provider, "
	    "a.account_id AS account, th_iso(a.updated_at) AS updated_at FROM "
	    "provider_accounts a JOIN organizations o ON o.id = "
	    "a.organization_id WHERE $1::uuid IS NULL OR o.id = $1::uuid "
	    "ORDER BY lower(o.name), a.provider, a.account_id", cols, 1);
}

/* block: callers an organization rejects and never auto-replies to. */
static int
ctl_block(int argc, char **argv, int add)
{
	struct db_res	 res;
	char		 e164[32], *id;
	const char	*p[2];
	int		 i;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, NULL);
	if (phone_e164(argv[i + 1], e164, sizeof(e164)) == -1)
		ctl_die(EX_DATAERR_, "%s is not a phone number", argv[i + 1]);
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = e164;
	if (add)
		ctl_q("block add", "INSERT INTO blocked_numbers (organization_id, "
		    "e164) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
		    2, p, &res);
	else
		ctl_q("block remove", "DELETE FROM blocked_numbers WHERE "
		    "organization_id = $1 AND e164 = $2 RETURNING 1", 2, p, &res);
	if (!add && res.nrows == 0)
		ctl_die(EX_DATAERR_, "%s is not blocked", e164);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, add ? "blocked" : "unblocked", e164);
		ctl_json_print(o);
	} else
		printf("%s %s\n", add ? "blocked" : "unblocked", e164);
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_block_add(int argc, char **argv)
{
	return ctl_block(argc, argv, 1);
}

static int
ctl_block_remove(int argc, char **argv)
{
	return ctl_block(argc, argv, 0);
}

static int
ctl_block_list(int argc, char **argv)
{
	static const char *const cols[] = { "e164", "created_at", NULL };

	return ctl_rows(argc, argv, "blocked",
	    "SELECT e164, th_iso(created_at) AS created_at FROM blocked_numbers "
	    "WHERE organization_id = $1 ORDER BY e164", cols, 0);
}

/* A date as YYYY-MM-DD, checked (February 30 is not one). */
static int
date_valid(const char *d)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int	 y, m, day, i;

	if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)d[i]))
			return 0;
	y = atoi(d);
	m = atoi(d + 5);
	day = atoi(d + 8);
	if (y < 2000 || y > 2999 || m < 1 || m > 12 || day < 1 ||
	    day > mdays[m - 1])
		return 0;
	return !(m == 2 && day == 29 && (y % 4 != 0 || (y % 100 == 0 &&
	    y % 400 != 0)));
}

/*
 * closure add: days (in the organization's time zone) that are after
 * hours whatever the weekly hours say: holidays.
 */
static int
ctl_closure_add(int argc, char **argv)
{
	const char	*until = NULL, *note = NULL;
	const struct ctl_opt opts[] = { { "until", &until, 0 },
			    { "note", &note, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*p[4];
	char		*id;
	int		 i;

	i = ctl_parse_opts(argc, argv, opts);
	if (!date_valid(argv[i + 1]))
		ctl_die(EX_DATAERR_, "%s is not a date (YYYY-MM-DD)", argv[i + 1]);
	if (until != NULL && !date_valid(until))
		ctl_die(EX_DATAERR_, "%s is not a date (YYYY-MM-DD)", until);
	if (until != NULL && strcmp(until, argv[i + 1]) < 0)
		ctl_die(EX_DATAERR_, "--until %s is before %s", until, argv[i + 1]);
	if (note != NULL) {
		const char	*c;

		for (c = note; *c != '\0'; c++)
			if (iscntrl((unsigned char)*c))
				ctl_die(EX_DATAERR_, "--note holds a control "
				    "character");
		if (strlen(note) > 200)
			ctl_die(EX_DATAERR_, "--note is longer than 200 "
			    "characters");
	}
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = until != NULL ? until : argv[i + 1];
	p[3] = note;
	ctl_q("closure add", "INSERT INTO closures (organization_id, first_day, "
	    "last_day, note) VALUES ($1, $2::date, $3::date, $4) RETURNING id",
	    4, p, &res);
	if (ctl_json_out) {
		cJSON	*o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		ctl_json_print(o);
	} else
		printf("%s\n", db_val(&res, 0, "id"));
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_closure_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "first_day", "last_day",
	    "note", NULL };

	return ctl_rows(argc, argv, "closures",
	    "SELECT id::text AS id, first_day::text AS first_day, "
	    "last_day::text AS last_day, note FROM "
	    "closures WHERE organization_id = $1 ORDER BY first_day, "
	    "closures.id",
	    cols, 0);
}

static int
ctl_closure_remove(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];

	p[0] = ctl_check_id(argv[ctl_parse_opts(argc, argv, NULL)], "a closure id");
	ctl_q("closure remove", "DELETE FROM closures WHERE id = $1::bigint "
	    "RETURNING 1", 1, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no such closure: %s", p[0]);
	db_res_free(&res);
	if (ctl_json_out)
		ctl_json_print(cJSON_CreateObject());
	else
		printf("removed closure %s\n", p[0]);
	return 0;
}

const struct ctl_cmd ctl_rules_cmds[] = {
	{ "reply add", 1, 1, 1, "reply add ORG --keywords a,b --text TEXT "
	    "[--channel sms|voice]", ctl_reply_add },
	{ "reply list", 1, 1, 1, "reply list ORG", ctl_reply_list },
	{ "reply remove", 1, 1, 1, "reply remove ID", ctl_reply_remove },
	{ "secret set", 2, 2, 1, "secret set ORG PROVIDER [--account ID] "
	    "< secret", ctl_secret_set },
	{ "secret list", 0, 1, 1, "secret list [ORG]", ctl_secret_list },
	{ "secret remove", 2, 2, 1, "secret remove ORG PROVIDER [--account ID]",
	    ctl_secret_remove },
	{ "block add", 2, 2, 1, "block add ORG E164", ctl_block_add },
	{ "block list", 1, 1, 1, "block list ORG", ctl_block_list },
	{ "block remove", 2, 2, 1, "block remove ORG E164", ctl_block_remove },
	{ "closure add", 2, 2, 1, "closure add ORG DATE [--until DATE] "
	    "[--note TEXT]", ctl_closure_add },
	{ "closure list", 1, 1, 1, "closure list ORG", ctl_closure_list },
	{ "closure remove", 1, 1, 1, "closure remove ID", ctl_closure_remove },
	{ NULL, 0, 0, 0, NULL, NULL }
};
