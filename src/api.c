/*
 * api.c: the dashboard API (architecture.md §3, 5, 7 and 11).
 *
 * Every request carries "Authorization: Bearer <token>"; the token's
 * SHA-256 finds it (unique index), the hashes are compared again in
 * constant time, and it reads only its own organization: any other id
 * is 404, as if it did not exist.  No token, or a revoked or unknown
 * one, is 401.
 *
 * Each answer is one statement that builds its JSON in PostgreSQL, so
 * the dashboard is one round trip whatever the size of the tables; the
 * indexes that carry each query are named next to it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "extern.h"

/*
 * api_tokens_token_hash_key finds the token.  last_used_at is written
 * at most once a minute, so reading the dashboard is not a write storm.
 */
static const struct db_stmt st_token = { "api_token",
	"SELECT id, organization_id, token_hash FROM api_tokens "
	"WHERE token_hash = $1 AND revoked_at IS NULL", 1 };
static const struct db_stmt st_token_used = { "api_token_used",
	"UPDATE api_tokens SET last_used_at = now() WHERE id = $1 AND "
	"(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
	1 };

enum verdict
api_verify(struct req *r, const char **why)
{
	const char	*auth, *p[1];
	char		 hash[TOKEN_HASHHEX + 1];
	struct db_res	 res;
	enum verdict	 v;

	*why = NULL;
	auth = req_header(r, "Authorization");
	if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
	    auth[7] == '\0') {
		*why = "missing bearer token";
		return VERIFY_DENY;
	}
	crypto_token_hash(auth + 7, hash);
	p[0] = hash;
	if (db_exec(&st_token, p, &res) != DB_OK) {
		*why = "database unavailable";
		return VERIFY_UNAVAILABLE;
	}
	if (res.nrows != 1 ||
	    !crypto_streq(db_val(&res, 0, "token_hash"), hash)) {
		db_res_free(&res);
		*why = "invalid token";
		return VERIFY_DENY;
	}
	/* another organization's data: as if it did not exist */
	if (r->nargs < 1 || !store_is_uuid(r->args[0]) ||
	    !crypto_streq(db_val(&res, 0, "organization_id"), r->args[0])) {
		*why = "unknown organization";
		v = VERIFY_NOTFOUND;
	} else {
		p[0] = db_val(&res, 0, "id");
		(void)db_exec(&st_token_used, p, NULL);
		req_note(r, r->args[0], NULL);
		v = VERIFY_OK;
	}
	db_res_free(&res);
	return v;
}

/*
 * Run st and answer its one JSON value, the column called json; 404
 * when it returns none.  A read (write == 0) may be served by the read
 * replica.
 */
static enum db_err
api_json(struct resp *p, const struct db_stmt *st, const char *const *params,
    const char *missing, int write)
{
	struct db_res	 res;
	cJSON		*j;
	const char	*v;
	enum db_err	 e;
	int		 replica = 0;

	e = write ? db_exec(st, params, &res) :
	    db_exec_read(st, params, &res, &replica);
	if (e != DB_OK) {
		resp_error(p, 503, "database unavailable");
		return DB_OK;
	}
	if (res.nrows == 0 || (v = db_val(&res, 0, "json")) == NULL) {
		db_res_free(&res);
		resp_error(p, 404, "%s", missing);
		return DB_OK;
	}
	if ((j = cJSON_Parse(v)) == NULL) {
		db_res_free(&res);
		return DB_EQUERY;
	}
	db_res_free(&res);
	resp_set_json(p, 200, j);
	return DB_OK;
}

/*
 * The dashboard: KPIs for a calendar month in the organization's time
 * zone, and the latest activity (th_api_dashboard, sql/functions.sql).
 */
static const struct db_stmt st_dashboard = { "api_dashboard",
	"SELECT th_api_dashboard($1, $2) AS json", 2 };

enum db_err
api_dashboard(struct req *r, struct resp *p)
{
	const char	*month = kv_get(&r->qs, "month"), *params[2];
	int		 y, m;
	char		 tail;

	if (month != NULL && (strlen(month) != 7 ||
	    sscanf(month, "%4d-%2d%c", &y, &m, &tail) != 2 ||
	    month[4] != '-' || y < 2000 || y > 2999 || m < 1 || m > 12)) {
		resp_error(p, 400, "month must be YYYY-MM");
		return DB_OK;
	}
	params[0] = r->args[0];
	params[1] = month;
	return api_json(p, &st_dashboard, params, "unknown organization", 0);
}

/* The newest first, paged by id (th_api_activity). */
static const struct db_stmt st_activity = { "api_activity",
	"SELECT th_api_activity($1, $2, $3) AS json", 3 };

/* A positive integer query parameter, or dflt; -1 when malformed. */
static long long
api_int(const struct req *r, const char *name, long long dflt, long long max)
{
	const char	*v = kv_get(&r->qs, name), *errstr;
	long long	 n;

	if (v == NULL)
		return dflt;
	n = util_strtonum(v, 1, max, &errstr);
	return errstr != NULL ? -1 : n;
}

/*
 * A list's page: limit= (1 to 200, 50 by default) and before= (the
 * "next" of the page before: what it names, in the error), as the
 * statement's parameters; before NULL for the first page.  -1 with
 * the 400 answered.
 */
struct api_page {
	char		 limit[16];
	char		 buf[24];
	const char	*before;
};

static int
api_page(struct req *r, struct resp *p, const char *what,
    struct api_page *pg)
{
	long long	 limit, before;

	if ((limit = api_int(r, "limit", 50, 200)) == -1) {
		resp_error(p, 400, "limit must be 1 to 200");
		return -1;
	}
	if ((before = api_int(r, "before", 0, 9007199254740991LL)) == -1) {
		resp_error(p, 400, "before must be %s", what);
		return -1;
	}
	snprintf(pg->limit, sizeof(pg->limit), "%lld", limit);
	snprintf(pg->buf, sizeof(pg->buf), "%lld", before);
	pg->before = before > 0 ? pg->buf : NULL;
	return 0;
}

enum db_err
api_activity(struct req *r, struct resp *p)
{
	const char	*params[3];
	struct api_page	 pg;

	if (api_page(r, p, "an activity id", &pg) == -1)
		return DB_OK;
	params[0] = r->args[0];
	params[1] = pg.before;
	params[2] = pg.limit;
	return api_json(p, &st_activity, params, "unknown organization", 0);
}

/* notifications_org / notifications_unread: the newest 100. */
static const struct db_stmt st_notifications = { "api_notifications",
	"SELECT json_build_object('notifications', coalesce(json_agg("
	"json_build_object('id', n.id::text, 'type', n.type, 'title', "
	"n.title, 'message', n.message, 'data', n.data, 'user_email', "
	"u.email, 'created_at', th_iso(n.created_at), 'read_at', "
	"th_iso(n.read_at)) ORDER BY n.id DESC), '[]'))::text AS json "
	"FROM (SELECT id, type, title, message, data, user_id, created_at, "
	"read_at FROM notifications WHERE organization_id = $1 AND "
	"(NOT $2::bool OR read_at IS NULL) ORDER BY id DESC LIMIT 100) n "
	"LEFT JOIN users u ON u.id = n.user_id", 2 };

enum db_err
api_notifications(struct req *r, struct resp *p)
{
	const char	*unread = kv_get(&r->qs, "unread"), *params[2];

	if (unread != NULL && strcmp(unread, "1") != 0 &&
	    strcmp(unread, "0") != 0) {
		resp_error(p, 400, "unread must be 1 or 0");
		return DB_OK;
	}
	params[0] = r->args[0];
	params[1] = unread != NULL && strcmp(unread, "1") == 0 ? "true" :
	    "false";
	return api_json(p, &st_notifications, params, "unknown organization", 0);
}

static const struct db_stmt st_read = { "api_notification_read",
	"WITH n AS (UPDATE notifications SET read_at = coalesce(read_at, "
	"now()) WHERE id = $2::bigint AND organization_id = $1 RETURNING id, "
	"type, title, message, data, user_id, created_at, read_at) "
	"SELECT json_build_object('id', n.id::text, 'type', n.type, 'title', "
	"n.title, 'message', n.message, 'data', n.data, 'user_email', "
	"u.email, 'created_at', th_iso(n.created_at), 'read_at', "
	"th_iso(n.read_at))::text AS json FROM n LEFT JOIN users u ON "
	"u.id = n.user_id", 2 };

enum db_err
api_notification_read(struct req *r, struct resp *p)
{
	const char	*params[2], *errstr;

	(void)util_strtonum(r->args[1], 1, 9007199254740991LL, &errstr);
	if (errstr != NULL) {
		resp_error(p, 404, "unknown notification");
		return DB_OK;
	}
	params[0] = r->args[0];
	params[1] = r->args[1];
	return api_json(p, &st_read, params, "unknown notification", 1);
}

/*
 * calls_call_id: one call's live state, by the provider's id, as an
 * event delivered to the organization's endpoints carries it
 * (th_call_json).
 */
static const struct db_stmt st_call = { "api_call",
	"SELECT th_call_json(c)::text AS json FROM calls c WHERE call_id = $2 "
	"AND "
	"organization_id = $1 ORDER BY updated_at DESC LIMIT 1", 2 };

enum db_err
api_call(struct req *r, struct resp *p)
{
	const char	*params[2];

	params[0] = r->args[0];
	params[1] = r->args[1];
	return api_json(p, &st_call, params, "unknown call", 0);
}

/*
 * POST .../calls/{call}/handled: the desk has dealt with it (kept from
 * the first time); DELETE: not after all.  The call as GET shows it.
 */
static const struct db_stmt st_handled = { "api_call_handled",
	"WITH c AS (UPDATE calls SET handled_at = CASE WHEN $3::bool THEN "
	"coalesce(handled_at, now()) END WHERE call_id = $2 AND "
	"organization_id = $1 RETURNING call_id, outcome, handled_at) "
	"SELECT json_build_object('call_id', call_id, 'outcome', outcome, "
	"'handled_at', th_iso(handled_at))::text AS json FROM c LIMIT 1", 3 };

enum db_err
api_call_handled(struct req *r, struct resp *p)
{
	const char	*params[3];

	params[0] = r->args[0];
	params[1] = r->args[1];
	params[2] = r->method == METHOD_DELETE ? "false" : "true";
	return api_json(p, &st_handled, params, "unknown call", 1);
}

/* Progress per campaign (th_api_campaigns). */
static const struct db_stmt st_campaigns = { "api_campaigns",
	"SELECT th_api_campaigns($1) AS json", 1 };

enum db_err
api_campaigns(struct req *r, struct resp *p)
{
	const char	*params[1];

	params[0] = r->args[0];
	return api_json(p, &st_campaigns, params, "unknown organization", 0);
}

/* One campaign and its contacts in file order (th_api_campaign). */
static const struct db_stmt st_campaign = { "api_campaign",
	"SELECT th_api_campaign($1, $2, $3, $4) AS json", 4 };

enum db_err
api_campaign(struct req *r, struct resp *p)
{
	const char	*params[4];
	char		 lim[16], aft[16];
	long long	 limit, after;

	if (!store_is_uuid(r->args[1])) {
		resp_error(p, 404, "unknown campaign");
		return DB_OK;
	}
	if ((limit = api_int(r, "limit", 100, 500)) == -1) {
		resp_error(p, 400, "limit must be 1 to 500");
		return DB_OK;
	}
	if ((after = api_int(r, "after", 0, 2147483647LL)) == -1) {
		resp_error(p, 400, "after must be a contact position");
		return DB_OK;
	}
	snprintf(lim, sizeof(lim), "%lld", limit);
	snprintf(aft, sizeof(aft), "%lld", after);
	params[0] = r->args[0];
	params[1] = r->args[1];
	params[2] = after > 0 ? aft : NULL;
	params[3] = lim;
	return api_json(p, &st_campaign, params, "unknown campaign", 0);
}

/*
 * A timestamp for since=: a date (midnight in the organization's time
 * zone) or a date and time with Z or an offset, as th_iso() writes
 * them.  PostgreSQL parses it; this only refuses what it would read
 * some other way.
 */
static int
api_since_ok(const char *v)
{
	static const char	*shape = "dddd-dd-dd";
	size_t			 i, n = strlen(v);

	if (n < 10)
		return 0;
	for (i = 0; i < 10; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)v[i]) :
		    v[i] != shape[i])
			return 0;
	if (n == 10)
		return 1;
	if (v[10] != 'T' || n < 20 || !isdigit((unsigned char)v[11]) ||
	    !isdigit((unsigned char)v[12]) || v[13] != ':' ||
	    !isdigit((unsigned char)v[14]) || !isdigit((unsigned char)v[15]) ||
	    v[16] != ':' || !isdigit((unsigned char)v[17]) ||
	    !isdigit((unsigned char)v[18]))
		return 0;
	i = 19;
	if (v[i] == '.')
		for (i++; isdigit((unsigned char)v[i]); i++)
			;
	if (strcmp(v + i, "Z") == 0)
		return 1;
	return (v[i] == '+' || v[i] == '-') && strlen(v + i) == 6 &&
	    isdigit((unsigned char)v[i + 1]) &&
	    isdigit((unsigned char)v[i + 2]) && v[i + 3] == ':' &&
	    isdigit((unsigned char)v[i + 4]) &&
	    isdigit((unsigned char)v[i + 5]);
}

/*
 * The calls, newest first (th_api_calls): status=missed (voicemail
 * included), answered or voicemail; since= a date or a time.
 */
static const struct db_stmt st_calls = { "api_calls",
	"SELECT th_api_calls($1, $2, CASE WHEN length($3) = 10 THEN "
	"($3::date)::timestamp AT TIME ZONE (SELECT timezone FROM "
	"organizations WHERE id = $1) ELSE $3::timestamptz END, $4, $5) "
	"AS json", 5 };

enum db_err
api_calls(struct req *r, struct resp *p)
{
	static const char *const statuses[] = { "missed", "answered",
	    "voicemail", NULL };
	const char	*status = kv_get(&r->qs, "status");
	const char	*since = kv_get(&r->qs, "since"), *params[5];
	struct api_page	 pg;
	int		 i;

	if (status != NULL) {
		for (i = 0; statuses[i] != NULL; i++)
			if (strcmp(status, statuses[i]) == 0)
				break;
		if (statuses[i] == NULL) {
			resp_error(p, 400, "status must be missed, answered "
			    "or voicemail");
			return DB_OK;
		}
	}
	if (since != NULL && !api_since_ok(since)) {
		resp_error(p, 400, "since must be YYYY-MM-DD or "
		    "YYYY-MM-DDTHH:MM:SS with Z or an offset");
		return DB_OK;
	}
	if (api_page(r, p, "a call id from next", &pg) == -1)
		return DB_OK;
	params[0] = r->args[0];
	params[1] = status;
	params[2] = since;
	params[3] = pg.before;
	params[4] = pg.limit;
	return api_json(p, &st_calls, params, "unknown organization", 0);
}

/* SMS threads, the latest first (th_api_conversations). */
static const struct db_stmt st_conversations = { "api_conversations",
	"SELECT th_api_conversations($1, $2, $3) AS json", 3 };

enum db_err
api_conversations(struct req *r, struct resp *p)
{
	const char	*params[3];
	struct api_page	 pg;

	if (api_page(r, p, "a message id from next", &pg) == -1)
		return DB_OK;
	params[0] = r->args[0];
	params[1] = pg.before;
	params[2] = pg.limit;
	return api_json(p, &st_conversations, params, "unknown organization",
	    0);
}

/* "+" and 7 to 15 digits, the first not 0: as the numbers are stored. */
static int
api_e164(const char *c)
{
	size_t	n;

	if (c[0] != '+' || c[1] < '1' || c[1] > '9')
		return 0;
	for (n = 1; isdigit((unsigned char)c[n]); n++)
		;
	return c[n] == '\0' && n >= 8 && n <= 16;
}

/*
 * One thread (th_api_conversation).  The contact is E.164; its "+" may
 * come percent-encoded.
 */
static const struct db_stmt st_conversation = { "api_conversation",
	"SELECT th_api_conversation($1, $2, $3, $4) AS json", 4 };

enum db_err
api_conversation(struct req *r, struct resp *p)
{
	const char	*params[4], *c = r->args[1];
	char		 e164[32];
	struct api_page	 pg;

	if (strncasecmp(c, "%2B", 3) == 0) {
		snprintf(e164, sizeof(e164), "+%s", c + 3);
		c = e164;
	}
	if (!api_e164(c)) {
		resp_error(p, 404, "a contact is an E.164 number");
		return DB_OK;
	}
	if (api_page(r, p, "a message id from next", &pg) == -1)
		return DB_OK;
	params[0] = r->args[0];
	params[1] = c;
	params[2] = pg.before;
	params[3] = pg.limit;
	return api_json(p, &st_conversation, params, "unknown organization",
	    0);
}
