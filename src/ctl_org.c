/*
 * ctl_org.c: telehookctl org, number, user and token: the
 * organizations and who and what belongs to them.
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

static const char *const org_cols[] = { "id", "name", "timezone",
    "greeting", "forward_to", "hours", "after_hours", "retell_agent_id",
    "twilio_account_sid", "agent_sip", "numbers:n", "users:n", "created_at",
    NULL };
#define ORG_SELECT \
	"SELECT o.id, o.name, o.timezone, o.greeting, o.forward_to, " \
	"o.hours, o.after_hours, o.retell_agent_id, o.twilio_account_sid, " \
	"o.agent_sip, " \
	"(SELECT count(*) FROM phone_numbers n " \
	"WHERE n.organization_id = o.id) AS numbers, " \
	"(SELECT count(*) FROM users u WHERE u.organization_id = o.id) " \
	"AS users, th_iso(o.created_at) AS created_at FROM organizations o "

static int
ctl_org_add(int argc, char **argv)
{
	const char	*id = NULL, *tz = "UTC";
	const struct ctl_opt opts[] = { { "id", &id, 0 }, { "timezone", &tz, 0 },
			    { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*p[3];
	int		 i;
	enum db_err	 e;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, opts);
	p[0] = argv[i];
	if (p[0][0] == '\0' || strlen(p[0]) > 200)
		ctl_die(EX_DATAERR_, "an organization name is 1 to 200 characters");
	if (id != NULL && !store_is_uuid(id))
		ctl_die(EX_DATAERR_, "--id %s is not a UUID", id);
	if (!ctl_tz_valid(tz))
		ctl_die(EX_DATAERR_, "unknown time zone %s", tz);
	p[1] = tz;
	p[2] = id;
	e = db_query("INSERT INTO organizations (name, timezone, id) "
	    "VALUES ($1, $2, coalesce($3::uuid, gen_random_uuid())) "
	    "RETURNING id", 3, p, &res);
	if (e == DB_EDUP)
		ctl_die(EX_DATAERR_, "an organization with that name or id "
		    "exists");
	if (e != DB_OK)
		ctl_die_db(e, "org add");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "name", argv[i]);
		cJSON_AddStringToObject(o, "timezone", tz);
		ctl_json_print(o);
	} else
		printf("%s\n", db_val(&res, 0, "id"));
	db_res_free(&res);
	return 0;
}

static int
ctl_org_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "name", "timezone",
	    "numbers:n", "users:n", "created_at", NULL };
	struct db_res	 res;

	(void)ctl_parse_opts(argc, argv, NULL);
	ctl_q("org list", "SELECT o.id, o.name, o.timezone, "
	    "(SELECT count(*) FROM phone_numbers n "
	    "WHERE n.organization_id = o.id) AS numbers, "
	    "(SELECT count(*) FROM users u WHERE u.organization_id = o.id) "
	    "AS users, th_iso(o.created_at) AS created_at "
	    "FROM organizations o ORDER BY lower(o.name)",
	    0, NULL, &res);
	ctl_print_rows("organizations", &res, cols);
	db_res_free(&res);
	return 0;
}

static int
ctl_org_show(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];
	char		*id;

	p[0] = id = ctl_resolve_org(argv[ctl_parse_opts(argc, argv, NULL)]);
	ctl_q("org show", ORG_SELECT "WHERE o.id = $1", 1, p, &res);
	ctl_print_object(&res, org_cols);
	db_res_free(&res);
	free(id);
	return 0;
}

/*
 * org set: each key has a validator that may rewrite the value into its
 * stored form.  An empty value clears the setting (or restores the
 * default of a required one).  All keys are checked before any is set.
 */
typedef const char *(*org_check_fn)(const char *, char **);

static const char *
chk_timezone(const char *v, char **out)
{
	if (*v == '\0') {
		*out = xstrdup("UTC");
		return NULL;
	}
	if (!ctl_tz_valid(v))
		return "unknown time zone";
	*out = xstrdup(v);
	return NULL;
}

static const char *
chk_text(const char *v, char **out)
{
	if (strlen(v) > 1000)
		return "longer than 1000 characters";
	*out = *v ? xstrdup(v) : NULL;
	return NULL;
}

static const char *
chk_e164(const char *v, char **out)
{
	char	 e[32];

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (phone_e164(v, e, sizeof(e)) == -1)
		return "not a phone number (E.164, e.g. +14155551212)";
	*out = xstrdup(e);
	return NULL;
}

static const char *
chk_hours(const char *v, char **out)
{
	struct hours	 h;
	struct buf	 b;
	const char	*errstr;

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (hours_parse(v, &h, &errstr) == -1)
		return errstr;
	buf_init(&b);
	hours_format(&h, &b);
	*out = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return NULL;
}

static const char *
chk_after_hours(const char *v, char **out)
{
	if (*v == '\0')
		v = "voicemail";
	if (strcmp(v, "voicemail") != 0 && strcmp(v, "agent") != 0)
		return "must be voicemail or agent";
	*out = xstrdup(v);
	return NULL;
}

static const char *
chk_agent(const char *v, char **out)
{
	const char	*p;

	for (p = v; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return "must be letters, digits, '_' or '-'";
	if (strlen(v) > 128)
		return "longer than 128 characters";
	*out = *v ? xstrdup(v) : NULL;
	return NULL;
}

/* A SIP address for <Dial><Sip>: sip: or sips:, no blanks or quotes. */
static const char *
chk_sip(const char *v, char **out)
{
	const char	*p;

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (strncmp(v, "sip:", 4) != 0 && strncmp(v, "sips:", 5) != 0)
		return "must start with sip: or sips:";
	if (strlen(v) > 256)
		return "longer than 256 characters";
	for (p = v; *p != '\0'; p++)
		if (*p <= ' ' || *p == '"' || *p == '<' || *p == '>' ||
		    *p == 0x7f)
			return "must hold no blank, quote or angle bracket";
	*out = xstrdup(v);
	return NULL;
}

static const char *
chk_account_sid(const char *v, char **out)
{
	char	*s;

	if (*v == '\0') {
		*out = NULL;
		return NULL;
	}
	if (strlen(v) != 34 || strncmp(v, "AC", 2) != 0)
		return "must be AC and 32 hex digits";
	s = xstrdup(v);
	for (*out = s, s += 2; *s != '\0'; s++) {
		if (!isxdigit((unsigned char)*s)) {
			free(*out);
			*out = NULL;
			return "must be AC and 32 hex digits";
		}
		*s = (char)tolower((unsigned char)*s);
	}
	return NULL;
}

static const struct {
	const char	*key;
	org_check_fn	 check;
} org_keys[] = {
	{ "after_hours", chk_after_hours },
	{ "agent_sip", chk_sip },
	{ "forward_to", chk_e164 },
	{ "greeting", chk_text },
	{ "hours", chk_hours },
	{ "retell_agent_id", chk_agent },
	{ "timezone", chk_timezone },
	{ "twilio_account_sid", chk_account_sid },
};
#define NORG_KEYS	(sizeof(org_keys) / sizeof(org_keys[0]))

static int
ctl_org_set(int argc, char **argv)
{
	struct db_res	 res;
	char		*id, *vals[NORG_KEYS], *sql, *key;
	const char	*p[2], *why, *eq;
	int		 i, first;
	size_t		 k;
	unsigned char	 set[NORG_KEYS];
	enum db_err	 e;

	i = ctl_parse_opts(argc, argv, NULL);
	id = ctl_resolve_org(argv[i++]);
	memset(set, 0, sizeof(set));
	memset(vals, 0, sizeof(vals));
	for (; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL)
			ctl_die(EX_USAGE_, "expected KEY=VALUE, not %s", argv[i]);
		key = xstrndup(argv[i], (size_t)(eq - argv[i]));
		for (k = 0; k < NORG_KEYS; k++)
			if (strcmp(org_keys[k].key, key) == 0)
				break;
		if (k == NORG_KEYS)
			ctl_die(EX_DATAERR_, "unknown key %s (one of after_hours, "
			    "agent_sip, forward_to, greeting, hours, "
			    "retell_agent_id, timezone, twilio_account_sid)",
			    key);
		if (set[k])
			ctl_die(EX_DATAERR_, "%s given twice", key);
		if ((why = org_keys[k].check(eq + 1, &vals[k])) != NULL)
			ctl_die(EX_DATAERR_, "%s: %s", key, why);
		set[k] = 1;
		free(key);
	}
	if ((e = db_begin()) != DB_OK)
		ctl_die_db(e, "begin");
	for (k = 0; k < NORG_KEYS; k++) {
		if (!set[k])
			continue;
		/* the column name comes from the table above, never input */
		xasprintf(&sql, "UPDATE organizations SET %s = $2, "
		    "updated_at = now() WHERE id = $1", org_keys[k].key);
		p[0] = id;
		p[1] = vals[k];
		e = db_query(sql, 2, p, NULL);
		free(sql);
		if (e == DB_EDUP)
			ctl_die(EX_DATAERR_, "%s: another organization has it",
			    org_keys[k].key);
		if (e != DB_OK)
			ctl_die_db(e, org_keys[k].key);
	}
	if ((e = db_commit()) != DB_OK)
		ctl_die_db(e, "commit");
	p[0] = id;
	ctl_q("org show", ORG_SELECT "WHERE o.id = $1", 1, p, &res);
	if (ctl_json_out)
		ctl_print_object(&res, org_cols);
	else
		for (k = 0, first = 1; k < NORG_KEYS; k++)
			if (set[k]) {
				printf("%s%s=%s", first ? "" : " ",
				    org_keys[k].key, vals[k] ? vals[k] : "");
				first = 0;
			}
	if (!ctl_json_out)
		putchar('\n');
	db_res_free(&res);
	for (k = 0; k < NORG_KEYS; k++)
		free(vals[k]);
	free(id);
	return 0;
}

static int
ctl_number_add(int argc, char **argv)
{
	const char	*provider = NULL;
	const struct ctl_opt opts[] = { { "provider", &provider, 0 },
			    { NULL, NULL, 0 } };
	char		 e164[32], *id;
	const char	*p[3];
	struct db_res	 res;
	enum db_err	 e;
	int		 i;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, opts);
	if (provider != NULL && strcmp(provider, "twilio") != 0 &&
	    strcmp(provider, "retell") != 0 && strcmp(provider, "voipms") != 0)
		ctl_die(EX_DATAERR_, "--provider must be twilio, retell or voipms");
	if (phone_e164(argv[i + 1], e164, sizeof(e164)) == -1)
		ctl_die(EX_DATAERR_, "%s is not a phone number "
		    "(E.164, e.g. +14155551212)", argv[i + 1]);
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = e164;
	p[2] = provider;
	e = db_query("INSERT INTO phone_numbers (organization_id, e164, "
	    "provider) VALUES ($1, $2, $3) RETURNING id", 3, p, &res);
	if (e == DB_EDUP) {
		ctl_q("number", "SELECT o.name FROM phone_numbers n JOIN "
		    "organizations o ON o.id = n.organization_id "
		    "WHERE n.e164 = $1", 1, p + 1, &res);
		ctl_die(EX_DATAERR_, "%s already belongs to %s", e164,
		    res.nrows ? db_val(&res, 0, "name") : "an organization");
	}
	if (e != DB_OK)
		ctl_die_db(e, "number add");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "e164", e164);
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddItemToObject(o, "provider", ctl_json_value(provider, 's'));
		ctl_json_print(o);
	} else
		printf("%s\n", e164);
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_number_list(int argc, char **argv)
{
	static const char *const cols[] = { "e164", "provider",
	    "organization_id", "organization", "created_at", NULL };

	return ctl_rows(argc, argv, "numbers", "SELECT n.e164, n.provider, "
	    "o.id AS organization_id, o.name AS organization, "
	    "th_iso(n.created_at) AS created_at FROM phone_numbers n JOIN "
	    "organizations o ON o.id = n.organization_id WHERE $1::uuid IS "
	    "NULL OR o.id = $1::uuid ORDER BY lower(o.name), n.e164", cols, 1);
}

static int
ctl_number_remove(int argc, char **argv)
{
	struct db_res	 res;
	char		 e164[32];
	const char	*p[1];
	cJSON		*o;
	int		 i;

	i = ctl_parse_opts(argc, argv, NULL);
	if (phone_e164(argv[i], e164, sizeof(e164)) == -1)
		ctl_die(EX_DATAERR_, "%s is not a phone number", argv[i]);
	p[0] = e164;
	ctl_q("number remove", "DELETE FROM phone_numbers WHERE e164 = $1 "
	    "RETURNING organization_id", 1, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no such number: %s", e164);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "removed", e164);
		ctl_json_print(o);
	} else
		printf("removed %s\n", e164);
	db_res_free(&res);
	return 0;
}

static int
ctl_user_add(int argc, char **argv)
{
	const char	*name = NULL;
	const struct ctl_opt opts[] = { { "name", &name, 0 }, { NULL, NULL, 0 } };
	const char	*p[3], *at;
	struct db_res	 res;
	char		*id;
	enum db_err	 e;
	int		 i;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, opts);
	at = strchr(argv[i + 1], '@');
	if (at == NULL || at == argv[i + 1] || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL || strpbrk(argv[i + 1], " \t\r\n"))
		ctl_die(EX_DATAERR_, "%s is not an email address", argv[i + 1]);
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = name;
	e = db_query("INSERT INTO users (organization_id, email, name) "
	    "VALUES ($1, $2, $3) RETURNING id", 3, p, &res);
	if (e == DB_EDUP)
		ctl_die(EX_DATAERR_, "%s is already a user of that organization",
		    argv[i + 1]);
	if (e != DB_OK)
		ctl_die_db(e, "user add");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "email", argv[i + 1]);
		cJSON_AddItemToObject(o, "name", ctl_json_value(name, 's'));
		ctl_json_print(o);
	} else
		printf("%s\n", db_val(&res, 0, "id"));
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_user_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "email", "name", "notify",
	    "created_at", NULL };

	return ctl_rows(argc, argv, "users", "SELECT id, email, name, "
	    "array_to_string(notify, ',') AS notify, th_iso(created_at) AS "
	    "created_at FROM users "
	    "WHERE organization_id = $1 ORDER BY lower(email)", cols, 0);
}

/* The kinds of e-mail alert a user may choose (sql/010_mail.sql). */
static const char *const user_kinds[] = { "missed_call", "voicemail",
	"urgent_sms", "daily_summary", NULL };

/* user set ORG EMAIL notify=KIND,...|none name=NAME */
static int
ctl_user_set(int argc, char **argv)
{
	struct buf	 notify;
	char		*id;
	const char	*p[4] = { NULL, NULL, NULL, NULL }, *bad, *v;
	struct db_res	 res;
	int		 i, k;
	cJSON		*o;

	buf_init(&notify);
	i = ctl_parse_opts(argc, argv, NULL);
	id = ctl_resolve_org(argv[i]);
	p[0] = id;
	p[1] = argv[i + 1];
	for (k = i + 2; k < argc; k++) {
		if (strncmp(argv[k], "notify=", 7) == 0) {
			v = argv[k] + 7;
			buf_reset(&notify);
			if (strcmp(v, "none") == 0 || *v == '\0')
				buf_puts(&notify, "{}");
			else if ((bad = ctl_words(v, user_kinds, &notify)) !=
			    NULL)
				ctl_die(EX_DATAERR_, "notify: %s is not one of "
				    "missed_call, voicemail, urgent_sms, "
				    "daily_summary (or none)", bad);
			p[2] = buf_cstr(&notify);
		} else if (strncmp(argv[k], "name=", 5) == 0)
			p[3] = argv[k] + 5;
		else
			ctl_die(EX_USAGE_, "user set: %s is not notify=... or "
			    "name=...", argv[k]);
	}
	if (k == i + 2)
		ctl_die(EX_USAGE_, "user set ORG EMAIL notify=KIND,...|none "
		    "[name=NAME]");
	ctl_q("user set", "UPDATE users SET notify = coalesce($3::text[], "
	    "notify), name = coalesce($4, name) WHERE organization_id = $1 "
	    "AND lower(email) = lower($2) RETURNING id, email, name, "
	    "array_to_string(notify, ',') AS notify", 4, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "%s is not a user of that organization",
		    argv[i + 1]);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "email", db_val(&res, 0, "email"));
		cJSON_AddItemToObject(o, "name", ctl_json_value(db_val(&res, 0,
		    "name"), 's'));
		cJSON_AddStringToObject(o, "notify", db_val(&res, 0, "notify"));
		ctl_json_print(o);
	} else
		printf("%s notify=%s\n", db_val(&res, 0, "email"),
		    *db_val(&res, 0, "notify") != '\0' ?
		    db_val(&res, 0, "notify") : "none");
	db_res_free(&res);
	buf_free(&notify);
	free(id);
	return 0;
}

/* token create: the token is printed once and only its hash is stored. */
static int
ctl_token_create(int argc, char **argv)
{
	const char	*name = NULL;
	const struct ctl_opt opts[] = { { "name", &name, 0 }, { NULL, NULL, 0 } };
	char		 token[128], hash[TOKEN_HASHHEX + 1], *id;
	const char	*p[3];
	struct db_res	 res;
	cJSON		*o;

	id = ctl_resolve_org(argv[ctl_parse_opts(argc, argv, opts)]);
	crypto_token_new(token, sizeof(token));
	crypto_token_hash(token, hash);
	p[0] = id;
	p[1] = name;
	p[2] = hash;
	ctl_q("token create", "INSERT INTO api_tokens (organization_id, name, "
	    "token_hash) VALUES ($1, $2, $3) RETURNING id", 3, p, &res);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "token", token);
		ctl_json_print(o);
	} else
		printf("%s\n", token);
	explicit_bzero(token, sizeof(token));
	db_res_free(&res);
	free(id);
	return 0;
}

static int
ctl_token_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "name", "created_at",
	    "last_used_at", "revoked_at", NULL };

	return ctl_rows(argc, argv, "tokens",
	    "SELECT id, name, th_iso(created_at) AS created_at, "
	    "th_iso(last_used_at) AS last_used_at, th_iso(revoked_at) AS "
	    "revoked_at FROM api_tokens t "
	    "WHERE organization_id = $1 ORDER BY t.created_at, t.id", cols, 0);
}

static int
ctl_token_revoke(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];
	cJSON		*o;

	p[0] = argv[ctl_parse_opts(argc, argv, NULL)];
	if (!store_is_uuid(p[0]))
		ctl_die(EX_DATAERR_, "%s is not a token id (see token list)", p[0]);
	ctl_q("token revoke", "UPDATE api_tokens SET revoked_at = "
	    "coalesce(revoked_at, now()) WHERE id = $1::uuid "
	    "RETURNING th_iso(revoked_at) AS revoked_at", 1, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no such token: %s", p[0]);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", p[0]);
		cJSON_AddStringToObject(o, "revoked_at",
		    db_val(&res, 0, "revoked_at"));
		ctl_json_print(o);
	} else
		printf("revoked %s\n", p[0]);
	db_res_free(&res);
	return 0;
}

const struct ctl_cmd ctl_org_cmds[] = {
	{ "org add", 1, 1, 1, "org add NAME [--id UUID] [--timezone TZ]",
	    ctl_org_add },
	{ "org list", 0, 0, 1, "org list", ctl_org_list },
	{ "org show", 1, 1, 1, "org show ORG", ctl_org_show },
	{ "org set", 2, -1, 1, "org set ORG KEY=VALUE ...", ctl_org_set },
	{ "number add", 2, 2, 1,
	    "number add ORG E164 [--provider twilio|retell|voipms]",
	    ctl_number_add },
	{ "number list", 0, 1, 1, "number list [ORG]", ctl_number_list },
	{ "number remove", 1, 1, 1, "number remove E164", ctl_number_remove },
	{ "user add", 2, 2, 1, "user add ORG EMAIL [--name NAME]",
	    ctl_user_add },
	{ "user list", 1, 1, 1, "user list ORG", ctl_user_list },
	{ "user set", 3, -1, 1,
	    "user set ORG EMAIL notify=KIND,...|none [name=NAME]",
	    ctl_user_set },
	{ "token create", 1, 1, 1, "token create ORG [--name NAME]",
	    ctl_token_create },
	{ "token list", 1, 1, 1, "token list ORG", ctl_token_list },
	{ "token revoke", 1, 1, 1, "token revoke TOKEN_ID", ctl_token_revoke },
	{ NULL, 0, 0, 0, NULL, NULL }
};
