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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	if (res.nrows != 1 || !crypto_streq(db_get(&res, 0, 2), hash)) {
		db_res_free(&res);
		*why = "invalid token";
		return VERIFY_DENY;
	}
	/* another organization's data: as if it did not exist */
	if (r->nargs < 1 || !store_is_uuid(r->args[0]) ||
	    !crypto_streq(db_get(&res, 0, 1), r->args[0])) {
		*why = "unknown organization";
		v = VERIFY_NOTFOUND;
	} else {
		p[0] = db_get(&res, 0, 0);
		(void)db_exec(&st_token_used, p, NULL);
		req_note(r, r->args[0], NULL);
		v = VERIFY_OK;
	}
	db_res_free(&res);
	return v;
}

/*
 * Run st and answer its one JSON value; 404 when it returns none.  A
 * read (write == 0) may be served by the read replica.
 */
static enum db_err
api_json(struct resp *p, const struct db_stmt *st, const char *const *params,
    const char *missing, int write)
{
	struct db_res	 res;
	cJSON		*j;
	enum db_err	 e;
	int		 replica = 0;

	e = write ? db_exec(st, params, &res) :
	    db_exec_read(st, params, &res, &replica);
	if (e != DB_OK) {
		resp_error(p, 503, "database unavailable");
		return DB_OK;
	}
	if (res.nrows == 0 || db_get(&res, 0, 0) == NULL) {
		db_res_free(&res);
		resp_error(p, 404, "%s", missing);
		return DB_OK;
	}
	if ((j = cJSON_Parse(db_get(&res, 0, 0))) == NULL) {
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
	"SELECT th_api_dashboard($1, $2)", 2 };

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
	"SELECT th_api_activity($1, $2, $3)", 3 };

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

enum db_err
api_activity(struct req *r, struct resp *p)
{
	const char	*params[3];
	char		 lim[16], bef[24];
	long long	 limit, before;

	if ((limit = api_int(r, "limit", 50, 200)) == -1) {
		resp_error(p, 400, "limit must be 1 to 200");
		return DB_OK;
	}
	if ((before = api_int(r, "before", 0, 9007199254740991LL)) == -1) {
		resp_error(p, 400, "before must be an activity id");
		return DB_OK;
	}
	snprintf(lim, sizeof(lim), "%lld", limit);
	snprintf(bef, sizeof(bef), "%lld", before);
	params[0] = r->args[0];
	params[1] = before > 0 ? bef : NULL;
	params[2] = lim;
	return api_json(p, &st_activity, params, "unknown organization", 0);
}

/* notifications_org / notifications_unread: the newest 100. */
static const struct db_stmt st_notifications = { "api_notifications",
	"SELECT json_build_object('notifications', coalesce(json_agg("
	"json_build_object('id', n.id::text, 'type', n.type, 'title', "
	"n.title, 'message', n.message, 'data', n.data, 'user_email', "
	"u.email, 'created_at', th_iso(n.created_at), 'read_at', "
	"th_iso(n.read_at)) ORDER BY n.id DESC), '[]'))::text "
	"FROM (SELECT * FROM notifications WHERE organization_id = $1 AND "
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
	"now()) WHERE id = $2::bigint AND organization_id = $1 RETURNING *) "
	"SELECT json_build_object('id', n.id::text, 'type', n.type, 'title', "
	"n.title, 'message', n.message, 'data', n.data, 'user_email', "
	"u.email, 'created_at', th_iso(n.created_at), 'read_at', "
	"th_iso(n.read_at))::text FROM n LEFT JOIN users u ON u.id = n.user_id",
	2 };

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

/* calls_call_id: one call's live state, by the provider's id. */
static const struct db_stmt st_call = { "api_call",
	"SELECT json_build_object('call_id', call_id, 'provider', provider, "
	"'direction', direction, 'from', from_number, 'to', to_number, "
	"'status', status, 'started_at', th_iso(started_at), 'ended_at', "
	"th_iso(ended_at), 'duration_s', duration_s, 'recording_url', "
	"recording_url, 'transcript', transcript, 'summary', summary, "
	"'sentiment', sentiment, 'successful', successful, "
	"'disconnection_reason', disconnection_reason, 'cost_cents', "
	"cost_cents, 'cost', cost::text, 'cost_currency', cost_currency, "
	"'outcome', outcome, 'handled_at', th_iso(handled_at), "
	"'campaign_id', campaign_id, 'contact_id', contact_id)"
	"::text FROM calls WHERE call_id = $2 AND organization_id = $1 "
	"ORDER BY updated_at DESC LIMIT 1", 2 };

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
	"'handled_at', th_iso(handled_at))::text FROM c LIMIT 1", 3 };

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
	"SELECT th_api_campaigns($1)", 1 };

enum db_err
api_campaigns(struct req *r, struct resp *p)
{
	const char	*params[1];

	params[0] = r->args[0];
	return api_json(p, &st_campaigns, params, "unknown organization", 0);
}
