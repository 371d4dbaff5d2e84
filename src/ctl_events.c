/*
 * ctl_events.c: telehookctl outbox, events, prune, send and spool: the
 * queues and the stored events.
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

/* outbox send: send what is due through the providers' APIs. */
static int
ctl_outbox_send(int argc, char **argv)
{
	struct outbox_stats	 st;
	int			 rc;
	cJSON			*o;

	(void)ctl_parse_opts(argc, argv, NULL);
	log_setlevel(LOG_LEVEL_WARNING);	/* say what failed for good */
	rc = outbox_send(&st);
	/* the staff's e-mail, whatever became of the SMS */
	if (mail_send(&st) == -1)
		rc = -1;
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "sent", st.sent);
		cJSON_AddNumberToObject(o, "retrying", st.retrying);
		cJSON_AddNumberToObject(o, "failed", st.failed);
		cJSON_AddNumberToObject(o, "recovered", st.recovered);
		cJSON_AddNumberToObject(o, "mail_sent", st.mail_sent);
		cJSON_AddNumberToObject(o, "mail_retrying", st.mail_retrying);
		cJSON_AddNumberToObject(o, "mail_failed", st.mail_failed);
		cJSON_AddNumberToObject(o, "unconfigured", st.unconfigured);
		ctl_json_print(o);
	} else {
		printf("sent %d, retrying %d, failed %d\n", st.sent,
		    st.retrying, st.failed);
		if (st.mail_sent + st.mail_retrying + st.mail_failed > 0)
			printf("mail sent %d, retrying %d, failed %d\n",
			    st.mail_sent, st.mail_retrying, st.mail_failed);
	}
	if (rc == -1)
		ctl_die_db(db_last_error(), "outbox send");
	/* nothing to send with is the operator's to fix, not a success */
	if (st.unconfigured > 0)
		ctl_die(EX_CONFIG_, "%d message%s failed for want of configuration: "
		    "[voipms] api_username and api_password (or the "
		    "organization's own), [smtp] url and from", st.unconfigured,
		    st.unconfigured == 1 ? "" : "s");
	return 0;
}

static int
ctl_outbox_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "kind",
	    "organization_id", "from", "to", "state", "attempts:n",
	    "next_attempt_at", "last_error", "text", NULL };
	const char	*state = NULL;
	const struct ctl_opt opts[] = { { "state", &state, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	const char	*p[1];

	(void)ctl_parse_opts(argc, argv, opts);
	if (state != NULL && strcmp(state, "pending") != 0 &&
	    strcmp(state, "sending") != 0 && strcmp(state, "retry") != 0 &&
	    strcmp(state, "sent") != 0 && strcmp(state, "failed") != 0)
		ctl_die(EX_DATAERR_, "--state must be pending, sending, retry, "
		    "sent or failed");
	p[0] = state;
	/* SMS first, then the staff's e-mail (kind email, to the user) */
	ctl_q("outbox list", "SELECT id, 'sms' AS kind, organization_id, "
	    "from_number AS \"from\", to_number AS \"to\", state, attempts, "
	    "th_iso(next_attempt_at) AS next_attempt_at, last_error, "
	    "body AS text FROM outbox WHERE $1::text IS NULL OR state = $1 "
	    "UNION ALL SELECT m.id, 'email', m.organization_id, NULL, "
	    "u.email, m.state, m.attempts, th_iso(m.next_attempt_at), "
	    "m.last_error, m.kind FROM mail_outbox m JOIN users u ON "
	    "u.id = m.user_id WHERE $1::text IS NULL OR m.state = $1 "
	    "ORDER BY 2 DESC, 1 DESC", 1, p, &res);
	ctl_print_rows("outbox", &res, cols);
	db_res_free(&res);
	return 0;
}

/* --since: any time PostgreSQL reads, checked before use. */
static void
check_time(const char *t)
{
	const char	*p[1] = { t };

	if (t != NULL && db_query("SELECT $1::timestamptz", 1, p, NULL) !=
	    DB_OK)
		ctl_die(EX_DATAERR_, "--since %s is not a time (e.g. 2026-11-01 or "
		    "'2026-11-21 09:00+00')", t);
}

static const char *
check_limit(const char *v, const char *dflt)
{
	const char	*errstr;

	if (v == NULL)
		return dflt;
	(void)util_strtonum(v, 1, 100000, &errstr);
	if (errstr != NULL)
		ctl_die(EX_DATAERR_, "--limit must be 1 to 100000");
	return v;
}

/* events list: newest first (architecture.md §11 shape). */
static int
ctl_events_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "provider", "event_type",
	    "provider_key", "organization_id", "received_at", NULL };
	static const char *const fcols[] = { "id", "provider", "route",
	    "provider_key", "received_at", "failure", NULL };
	/* The filters are the same; --failed shows why instead of whose. */
	static const char *const where = "($1::uuid IS NULL OR "
	    "organization_id = $1) AND (NOT $2::bool OR organization_id IS "
	    "NULL) AND ($3::timestamptz IS NULL OR received_at >= $3) "
	    "ORDER BY events.id DESC LIMIT $4::int";	/* the bigint */
	const char	*org = NULL, *unrouted = NULL, *since = NULL;
	const char	*limit = NULL, *failed = NULL, *p[4];
	const struct ctl_opt opts[] = { { "org", &org, 0 },
			    { "unrouted", &unrouted, 1 }, { "since", &since, 0 },
			    { "limit", &limit, 0 }, { "failed", &failed, 1 },
			    { NULL, NULL, 0 } };
	struct db_res	 res;
	char		*id = NULL, *sql;

	(void)ctl_parse_opts(argc, argv, opts);
	if (org != NULL && unrouted != NULL)
		ctl_die(EX_USAGE_, "--org and --unrouted exclude each other");
	check_time(since);
	p[0] = org != NULL ? (id = ctl_resolve_org(org)) : NULL;
	p[1] = unrouted != NULL ? "true" : "false";
	p[2] = since;
	p[3] = check_limit(limit, "100");
	if (failed != NULL)
		xasprintf(&sql, "SELECT id::text AS id, provider, route, "
		    "provider_key, th_iso(received_at) AS received_at, "
		    "failure FROM events "
		    "WHERE failed_at IS NOT NULL AND %s", where);
	else
		xasprintf(&sql, "SELECT id::text AS id, provider, "
		    "event_type, provider_key, organization_id, "
		    "th_iso(received_at) AS received_at FROM events WHERE %s",
		    where);
	ctl_q("events list", sql, 4, p, &res);
	ctl_print_rows("events", &res, failed != NULL ? fcols : cols);
	free(sql);
	db_res_free(&res);
	free(id);
	return 0;
}

/*
 * Replay: derive a stored event's records again, through its route's own
 * handler, as if it had just come (architecture.md §6).  The request is
 * rebuilt from what the event kept: method, request line, content type and
 * raw body; an event kept before 0.2.0 has no request line, and gets its
 * route's path.  An event that belongs to an organization (assigned, or
 * routed when it came) names it, so it routes there again.
 */
#define REPLAY_COLS \
	"SELECT id::text AS id, route, coalesce(method, '') AS method, " \
	"request_uri, content_type, encode(body, 'hex') AS body_hex, " \
	"coalesce(host(client_addr), '-') AS client, " \
	"(extract(epoch FROM received_at) * 1000000)::bigint::text AS " \
	"received_us, answer, organization_id FROM events "

static int
replay_event(const struct db_res *res, int row, const char **why)
{
	struct spooled		 sp;
	const struct route	*rt = NULL;
	const char		*route = db_val(res, row, "route");
	const char		*uri = db_val(res, row, "request_uri"), *hex;
	const char		*org = db_val(res, row, "organization_id");
	const char		*method = db_val(res, row, "method");
	const char		*type = db_val(res, row, "content_type");
	const char		*errstr;
	char			*u, *env[5];
	size_t			 i, n;
	int			 rc;

	for (i = 0; i < nroutes && rt == NULL; i++)
		if (strcmp(routes[i].name, route) == 0 &&
		    (routes[i].flags & ROUTE_TX))
			rt = &routes[i];
	if (rt == NULL) {
		*why = "no route takes this event any more";
		return REPLAY_FAILED;
	}
	if ((hex = db_val(res, row, "body_hex")) == NULL) {
		*why = "its body was redacted (prune --redact)";
		return REPLAY_FAILED;
	}
	memset(&sp, 0, sizeof(sp));
	n = strlen(hex) / 2;
	sp.body = xmalloc(n + 1);
	for (i = 0; i < n; i++)
		sp.body[i] = (char)strtol((char[3]){ hex[2 * i],
		    hex[2 * i + 1], '\0' }, NULL, 16);
	sp.body[n] = '\0';
	sp.bodylen = n;
	if (uri == NULL)
		uri = rt->path;
	if (org != NULL && strstr(uri, "organization_id=") == NULL)
		xasprintf(&u, "%s%sorganization_id=%s", uri,
		    strchr(uri, '?') != NULL ? "&" : "?", org);
	else
		u = xstrdup(uri);
	xasprintf(&env[0], "REQUEST_METHOD=%s", *method != '\0' ? method :
	    n == 0 && (rt->methods & METHOD_GET) ? "GET" : "POST");
	xasprintf(&env[1], "REQUEST_URI=%s", u);
	xasprintf(&env[2], "CONTENT_TYPE=%s", type != NULL ? type : "");
	xasprintf(&env[3], "CONTENT_LENGTH=%zu", n);
	env[4] = NULL;
	sp.envp = env;
	sp.client = (char *)db_val(res, row, "client");
	sp.received_us = util_strtonum(db_val(res, row, "received_us"), 0,
	    LLONG_MAX, &errstr);
	sp.answer = (char *)db_val(res, row, "answer");
	sp.rederive = util_strtonum(db_val(res, row, "id"), 1, LLONG_MAX,
	    &errstr);
	rc = worker_replay(&sp, why);
	for (i = 0; i < 4; i++)
		free(env[i]);
	free(u);
	free(sp.body);
	return rc;
}

static const struct db_stmt st_failure = { "ctl_failure",
	"UPDATE events SET failure = $2 WHERE id = $1::bigint", 2 };

/* events replay ID | --failed | --since TIME */
static int
ctl_events_replay(int argc, char **argv)
{
	const char	*failed = NULL, *since = NULL, *p[3], *why;
	const struct ctl_opt opts[] = { { "failed", &failed, 1 },
			    { "since", &since, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	cJSON		*o = NULL, *done = NULL, *dup = NULL, *bad = NULL, *b;
	int		 i, row, rc, nd = 0, nu = 0, nb = 0, c_id;

	i = ctl_parse_opts(argc, argv, opts);
	if ((i < argc) + (failed != NULL) + (since != NULL) != 1)
		ctl_die(EX_USAGE_, "usage: events replay ID | --failed | --since "
		    "TIME");
	if (i < argc)
		(void)ctl_check_id(argv[i], "an event id");
	check_time(since);
	p[0] = i < argc ? argv[i] : NULL;
	p[1] = failed != NULL ? "true" : "false";
	p[2] = since;
	ctl_q("events replay", REPLAY_COLS "WHERE ($1::bigint IS NULL OR id = "
	    "$1::bigint) AND (NOT $2::bool OR failed_at IS NOT NULL) AND "
	    "($3::timestamptz IS NULL OR received_at >= $3) ORDER BY "
	    "events.id", 3, p, &res);
	if (i < argc && res.nrows == 0)
		ctl_die(EX_DATAERR_, "no such event: %s", argv[i]);
	c_id = db_col(&res, "id");
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		done = cJSON_AddArrayToObject(o, "derived");
		dup = cJSON_AddArrayToObject(o, "already_stored");
		bad = cJSON_AddArrayToObject(o, "failed");
	}
	for (row = 0; row < res.nrows; row++) {
		rc = replay_event(&res, row, &why);
		if (rc == REPLAY_AWAY)
			ctl_die(EX_UNAVAIL_, "database unreachable: %s", why);
		if (rc == REPLAY_OK) {
			nd++;
			if (o != NULL)
				cJSON_AddItemToArray(done, cJSON_CreateString(
				    db_get(&res, row, c_id)));
			else
				printf("event %s: derived\n",
				    db_get(&res, row, c_id));
		} else if (rc == REPLAY_DUPLICATE) {
			nu++;
			if (o != NULL)
				cJSON_AddItemToArray(dup, cJSON_CreateString(
				    db_get(&res, row, c_id)));
			else
				printf("event %s: already stored as another "
				    "event\n", db_get(&res, row, c_id));
		} else {
			const char	*up[2];
			char		*e = util_vis(why != NULL ? why : "?");

			nb++;
			up[0] = db_get(&res, row, c_id);
			up[1] = why;
			(void)db_exec(&st_failure, up, NULL);
			if (o != NULL) {
				b = cJSON_CreateObject();
				cJSON_AddStringToObject(b, "id", up[0]);
				cJSON_AddStringToObject(b, "reason",
				    why != NULL ? why : "?");
				cJSON_AddItemToArray(bad, b);
			} else
				printf("event %s: failed: %s\n", up[0], e);
			free(e);
		}
	}
	db_res_free(&res);
	if (o != NULL)
		ctl_json_print(o);
	else
		printf("derived %d, already stored %d, failed %d\n", nd, nu,
		    nb);
	return nb > 0 ? EX_DATAERR_ : 0;
}

/* events show: one event whole, as JSON (its parsed payload). */
static int
ctl_events_show(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[1];
	cJSON		*o;

	p[0] = ctl_check_id(argv[ctl_parse_opts(argc, argv, NULL)], "an event id");
	ctl_q("events show", "SELECT json_build_object('id', id::text, 'provider', "
	    "provider, 'event_type', event_type, 'provider_key', provider_key, "
	    "'organization_id', organization_id, 'received_at', "
	    "th_iso(received_at), 'route', route, 'client_addr', "
	    "host(client_addr), 'content_type', content_type, 'headers', "
	    "headers, 'payload', payload, 'answer', answer, 'spooled_at', "
	    "th_iso(spooled_at), 'assigned_at', th_iso(assigned_at), "
	    "'redacted_at', th_iso(redacted_at))::text AS json FROM events "
	    "WHERE id = $1::bigint", 1, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no such event: %s", p[0]);
	if ((o = cJSON_Parse(db_val(&res, 0, "json"))) == NULL)
		ctl_die(EX_SOFTWARE_, "events show: bad JSON");
	if (ctl_json_out)
		ctl_json_print(o);
	else {
		char	*s = cJSON_Print(o);

		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(o);
	}
	db_res_free(&res);
	return 0;
}

/*
 * events assign: give an unrouted event, and the call or message it
 * created, to an organization.
 */
static int
ctl_events_assign(int argc, char **argv)
{
	struct db_res	 res;
	const char	*p[2], *why;
	char		*org;
	int		 i, rc;
	enum db_err	 e;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, NULL);
	(void)ctl_check_id(argv[i], "an event id");
	org = ctl_resolve_org(argv[i + 1]);
	p[0] = argv[i];
	p[1] = org;
	if ((e = db_begin()) != DB_OK)
		ctl_die_db(e, "begin");
	ctl_q("events assign", "UPDATE events SET organization_id = $2, "
	    "assigned_at = now() WHERE id = $1::bigint AND organization_id IS "
	    "NULL RETURNING id", 2, p, &res);
	if (res.nrows == 0) {
		db_res_free(&res);
		db_rollback();
		ctl_q("events assign", "SELECT organization_id FROM events WHERE "
		    "id = $1::bigint", 1, p, &res);
		ctl_die(EX_DATAERR_, res.nrows == 0 ? "no such event: %s" :
		    "event %s already belongs to an organization", argv[i]);
	}
	db_res_free(&res);
	ctl_q("events assign", "UPDATE calls c SET organization_id = $2 FROM "
	    "events e WHERE e.id = $1::bigint AND c.organization_id IS NULL AND "
	    "c.provider = e.provider AND c.call_id IN (e.payload->>'CallSid', "
	    "e.payload->'call'->>'call_id', e.payload->>'callid', "
	    "e.payload->>'uniqueid', e.payload->>'call_id')", 2, p, NULL);
	ctl_q("events assign", "UPDATE messages m SET organization_id = $2 FROM "
	    "events e WHERE e.id = $1::bigint AND m.organization_id IS NULL AND "
	    "m.provider = e.provider AND m.message_id IN (e.payload->>"
	    "'MessageSid', e.payload->>'SmsSid', e.payload->>'id', "
	    "substr(e.provider_key, 5), split_part(e.provider_key, ':', 1))",
	    2, p, NULL);
	if ((e = db_commit()) != DB_OK)
		ctl_die_db(e, "commit");
	/* derive what routing would have: activity, notifications */
	ctl_q("events assign", REPLAY_COLS "WHERE id = $1::bigint", 1, p, &res);
	rc = res.nrows == 1 ? replay_event(&res, 0, &why) : REPLAY_FAILED;
	db_res_free(&res);
	if (rc == REPLAY_AWAY)
		ctl_die(EX_UNAVAIL_, "event %s assigned, not derived: database "
		    "unreachable", argv[i]);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", argv[i]);
		cJSON_AddStringToObject(o, "organization_id", org);
		cJSON_AddBoolToObject(o, "derived", rc == REPLAY_OK);
		ctl_json_print(o);
	} else
		printf("event %s assigned to %s%s\n", argv[i], org,
		    rc == REPLAY_OK ? ", derived" : "");
	free(org);
	return 0;
}

/*
 * events rejections: the rows kept (every verified request's refusal, a
 * sample of the rest), or with --counts every refusal counted per
 * organization, cause, route and minute; newest first.
 */
static int
ctl_events_rejections(int argc, char **argv)
{
	static const char *const cols[] = { "id", "received_at",
	    "organization_id", "route", "status:n", "cause", "client_addr",
	    "detail", NULL };
	static const char *const ccols[] = { "minute", "organization_id",
	    "cause", "count:n", NULL };
	const char	*org = NULL, *since = NULL, *limit = NULL, *counts = NULL;
	const char	*p[3];
	const struct ctl_opt opts[] = { { "org", &org, 0 },
			    { "since", &since, 0 }, { "limit", &limit, 0 },
			    { "counts", &counts, 1 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	char		*id = NULL;

	(void)ctl_parse_opts(argc, argv, opts);
	check_time(since);
	p[0] = org != NULL ? (id = ctl_resolve_org(org)) : NULL;
	p[1] = since;
	p[2] = check_limit(limit, "100");
	if (counts != NULL) {
		ctl_q("events rejections", "SELECT th_iso(minute) AS minute, "
		    "organization_id, cause, count FROM rejection_counts "
		    "WHERE ($1::uuid "
		    "IS NULL OR organization_id = $1) AND ($2::timestamptz IS "
		    "NULL OR minute >= date_trunc('minute', $2::timestamptz)) "
		    "ORDER BY rejection_counts.minute DESC, "
		    "rejection_counts.count DESC LIMIT $3::int", 3, p, &res);
		ctl_print_rows("rejection_counts", &res, ccols);
	} else {
		ctl_q("events rejections", "SELECT id::text AS id, "
		    "th_iso(received_at) AS received_at, organization_id, route, "
		    "status, cause, host(client_addr) AS client_addr, detail "
		    "FROM rejections WHERE ($1::uuid IS NULL OR "
		    "organization_id = $1) AND ($2::timestamptz IS NULL OR "
		    "received_at >= $2) ORDER BY rejections.id DESC "
		    "LIMIT $3::int", 3, p, &res);
		ctl_print_rows("rejections", &res, cols);
	}
	db_res_free(&res);
	free(id);
	return 0;
}

/*
 * prune: retention.  Raw events, rejections and read notifications
 * older than DAYS are deleted; the calls and messages they made stay, so
 * the KPIs do not change.  --redact also blanks what those old calls,
 * messages and activity say about people: transcripts, recordings,
 * summaries, message bodies, caller names.
 */
static int
ctl_prune(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		 redact;
		const char	*sql;
	} steps[] = {
		{ "events", 0, "DELETE FROM events WHERE received_at < $1" },
		{ "rejections", 0,
		    "DELETE FROM rejections WHERE received_at < $1" },
		{ "rejection_counts", 0,
		    "DELETE FROM rejection_counts WHERE minute < $1" },
		{ "notifications", 0, "DELETE FROM notifications WHERE "
		    "read_at IS NOT NULL AND created_at < $1" },
		{ "outbox", 0, "DELETE FROM outbox WHERE state IN ('sent', "
		    "'failed') AND created_at < $1" },
		{ "mail_outbox", 0, "DELETE FROM mail_outbox WHERE state IN "
		    "('sent', 'failed') AND created_at < $1" },
		{ "deliveries", 0, "DELETE FROM deliveries WHERE state IN "
		    "('delivered', 'dead') AND created_at < $1" },
		{ "delivery_events", 0, "DELETE FROM delivery_events v WHERE "
		    "created_at < $1 AND NOT EXISTS (SELECT 1 FROM deliveries "
		    "d WHERE d.event_id = v.id) AND NOT EXISTS (SELECT 1 FROM "
		    "delivery_pending p WHERE p.event_id = v.id)" },
		{ "calls_redacted", 1, "UPDATE calls SET transcript = NULL, "
		    "recording_url = NULL, summary = NULL, custom_data = NULL, "
		    "caller_name = NULL WHERE started_at < $1 AND "
		    "(transcript IS NOT NULL OR recording_url IS NOT NULL OR "
		    "summary IS NOT NULL OR custom_data IS NOT NULL OR "
		    "caller_name IS NOT NULL)" },
		{ "messages_redacted", 1, "UPDATE messages SET body = NULL, "
		    "reply_text = NULL, media = '[]' WHERE created_at < $1 AND "
		    "(body IS NOT NULL OR reply_text IS NOT NULL OR "
		    "media <> '[]')" },
		/*
		 * The events still waiting for an endpoint carry the same
		 * fields in their bodies, and unread notifications (kept
		 * however old) an urgent SMS's text and a voicemail's: the
		 * fields of each type, blanked where one is not empty (a body
		 * changes only here, so a later attempt sends what remains).
		 */
		{ "delivery_events_redacted", 1, "UPDATE delivery_events v SET "
		    "body = jsonb_set(v.body::jsonb, '{data}', (v.body::jsonb "
		    "-> 'data') || f.blank)::text FROM (VALUES ('^sms\\.', "
		    "'{\"body\": null}'::jsonb), ('^(call|voicemail)\\.', "
		    "'{\"transcript\": null, \"recording_url\": null, "
		    "\"summary\": null}')) f(type, blank) WHERE "
		    "v.created_at < $1 AND v.type ~ f.type AND EXISTS (SELECT "
		    "1 FROM jsonb_each_text(v.body::jsonb -> 'data') d WHERE "
		    "f.blank ? d.key AND d.value <> '')" },
		{ "notifications_redacted", 1, "UPDATE notifications n SET "
		    "data = n.data || f.blank FROM (VALUES ('urgent_sms', "
		    "'{\"body\": null}'::jsonb), ('voicemail', "
		    "'{\"transcription\": null, \"recording_url\": null}')) "
		    "f(type, blank) WHERE n.created_at < $1 AND n.type = "
		    "f.type AND EXISTS (SELECT 1 FROM jsonb_each_text(n.data) d "
		    "WHERE f.blank ? d.key AND d.value <> '')" },
		{ "activity_redacted", 1, "UPDATE activity SET summary = "
		    "CASE type WHEN 'call_ended' THEN 'Call completed' "
		    "WHEN 'call_missed' THEN 'Missed call' "
		    "WHEN 'sms_reply' THEN 'SMS received' "
		    "WHEN 'sms_sent' THEN 'SMS sent' "
		    "WHEN 'voicemail' THEN 'Voicemail' "
		    "WHEN 'inbound_call' THEN 'Inbound call' "
		    "ELSE summary END WHERE occurred_at < $1 AND type IN "
		    "('call_ended', 'call_missed', 'sms_reply', 'sms_sent', "
		    "'voicemail', 'inbound_call')" },
		{ NULL, 0, NULL }
	};
	const char	*days = NULL, *redact = NULL, *errstr, *p[1];
	const struct ctl_opt opts[] = { { "older-than", &days, 0 },
			    { "redact", &redact, 1 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	char		*cutoff;
	cJSON		*o;
	int		 i;
	enum db_err	 e;

	(void)ctl_parse_opts(argc, argv, opts);
	if (days == NULL)
		ctl_die(EX_USAGE_, "usage: telehookctl prune --older-than DAYS "
		    "[--redact]");
	(void)util_strtonum(days, 1, 36500, &errstr);
	if (errstr != NULL)
		ctl_die(EX_DATAERR_, "--older-than must be 1 to 36500 days");
	ctl_q("prune", "SELECT (now() - make_interval(days => $1::int))::text "
	    "AS cutoff", 1, (const char *const *)&days, &res);
	cutoff = xstrdup(db_val(&res, 0, "cutoff"));
	db_res_free(&res);
	p[0] = cutoff;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "before", cutoff);
	if ((e = db_begin()) != DB_OK)
		ctl_die_db(e, "begin");
	for (i = 0; steps[i].name != NULL; i++) {
		if (steps[i].redact && redact == NULL)
			continue;
		ctl_q("prune", steps[i].sql, 1, p, &res);
		cJSON_AddNumberToObject(o, steps[i].name,
		    atof(res.cmdtuples));
		if (!ctl_json_out)
			printf("%s: %s\n", steps[i].name, res.cmdtuples);
		db_res_free(&res);
	}
	if ((e = db_commit()) != DB_OK)
		ctl_die_db(e, "commit");
	if (ctl_json_out)
		ctl_json_print(o);
	else
		cJSON_Delete(o);
	free(cutoff);
	return 0;
}

/* send: a signed sample webhook (ctl_send.c). */
static int
ctl_send(int argc, char **argv)
{
	const char	*url = NULL, *org = NULL, *to = "+15555550100";
	const char	*from = "+15555550199", *id = NULL;
	const struct ctl_opt opts[] = { { "url", &url, 0 }, { "org", &org, 0 },
			    { "to", &to, 0 }, { "from", &from, 0 },
			    { "id", &id, 0 }, { NULL, NULL, 0 } };
	struct send_args a;
	char		 e_to[32], e_from[32];
	int		 i, code;

	i = ctl_parse_opts(argc, argv, opts);
	if (url == NULL)
		url = conf.public_url;
	if (url == NULL)
		ctl_die(EX_USAGE_, "send needs --url (or public_url)");
	if (phone_e164(to, e_to, sizeof(e_to)) == -1 ||
	    phone_e164(from, e_from, sizeof(e_from)) == -1)
		ctl_die(EX_DATAERR_, "--to and --from must be phone numbers");
	if (org != NULL && !store_is_uuid(org))
		ctl_die(EX_DATAERR_, "--org must be an organization id");
	a.provider = argv[i];
	a.event = argv[i + 1];
	a.url = url;
	a.org = org;
	a.to = e_to;
	a.from = e_from;
	a.id = id;
	a.json = ctl_json_out;
	code = ctl_send_sample(&a);
	if (code == -1) {
		fprintf(stderr, "telehookctl: no such sample: %s %s; the "
		    "samples are:\n", argv[i], argv[i + 1]);
		ctl_send_list(stderr);
		return EX_USAGE_;
	}
	if (code >= 200 && code < 300)
		return 0;
	return code >= 400 && code < 500 ? EX_DATAERR_ : EX_UNAVAIL_;
}

/* An ISO 8601 UTC time for microseconds since the epoch. */
static void
iso_time(long long us, char *out, size_t len)
{
	time_t		 t = (time_t)(us / 1000000);
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* spool status: what waits, since when, and what was set aside. */
static int
ctl_spool_status(int argc, char **argv)
{
	long		 depth, quarantined;
	long long	 oldest;
	int		 writable;
	char		 when[32];
	cJSON		*o;

	(void)ctl_parse_opts(argc, argv, NULL);
	depth = spool_depth(conf.spool_dir);
	quarantined = spool_quarantined(conf.spool_dir);
	oldest = spool_oldest(conf.spool_dir);
	writable = spool_writable(conf.spool_dir);
	if (depth < 0)
		ctl_die(EX_NOINPUT_, "%s: cannot read the spool directory",
		    conf.spool_dir);
	if (oldest > 0)
		iso_time(oldest, when, sizeof(when));
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "spool_dir", conf.spool_dir);
		cJSON_AddBoolToObject(o, "writable", writable);
		cJSON_AddNumberToObject(o, "depth", (double)depth);
		cJSON_AddItemToObject(o, "oldest", oldest > 0 ?
		    cJSON_CreateString(when) : cJSON_CreateNull());
		cJSON_AddNumberToObject(o, "oldest_age_s", oldest > 0 ?
		    (double)((util_wall_us() - oldest) / 1000000) : 0);
		cJSON_AddNumberToObject(o, "quarantined", (double)quarantined);
		ctl_json_print(o);
	} else {
		printf("spool_dir: %s%s\n", conf.spool_dir, writable ? "" :
		    " (not writable or full)");
		if (oldest > 0)
			printf("waiting: %ld, oldest received %s (%lld s "
			    "ago)\n", depth, when, (util_wall_us() - oldest) /
			    1000000);
		else
			printf("waiting: %ld\n", depth);
		printf("quarantined: %ld\n", quarantined);
	}
	return 0;
}

/*
 * spool drain: replay everything waiting, exactly once; a file is
 * removed only after its transaction commits.
 */
static int
ctl_spool_drain(int argc, char **argv)
{
	struct drain_stats	 st;
	cJSON			*o;

	(void)ctl_parse_opts(argc, argv, NULL);
	log_setlevel(LOG_LEVEL_WARNING);	/* say what is quarantined */
	if (spool_drain(conf.spool_dir, 0, 0, &st) == -1) {
		if (st.busy)
			ctl_die(EX_TEMPFAIL_, "another process is draining %s",
			    conf.spool_dir);
		ctl_die(EX_CANTCREAT_, "%s: cannot lock the spool directory",
		    conf.spool_dir);
	}
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "replayed", st.replayed);
		cJSON_AddNumberToObject(o, "already_stored", st.duplicates);
		cJSON_AddNumberToObject(o, "quarantined", st.quarantined);
		cJSON_AddNumberToObject(o, "refused", st.refused);
		cJSON_AddNumberToObject(o, "left", st.left);
		ctl_json_print(o);
	} else
		printf("replayed %d, already stored %d, quarantined %d, "
		    "refused %d, left %d\n", st.replayed, st.duplicates,
		    st.quarantined, st.refused, st.left);
	if (st.stopped)
		ctl_die(EX_UNAVAIL_, "database unreachable: %d requests left in "
		    "the spool", st.left);
	/* files left that it could not replay: not done */
	if (st.left > 0)
		ctl_die(EX_TEMPFAIL_, "%d requests left in the spool%s", st.left,
		    st.sealed > 0 ? " (sealed: is secret_key_file set?)" : "");
	return 0;
}

const struct ctl_cmd ctl_events_cmds[] = {
	{ "outbox send", 0, 0, 1, "outbox send", ctl_outbox_send },
	{ "outbox list", 0, 0, 1, "outbox list [--state STATE]",
	    ctl_outbox_list },
	{ "events list", 0, 0, 1, "events list [--org ORG] [--unrouted] "
	    "[--failed] [--since TIME] [--limit N]", ctl_events_list },
	{ "events replay", 0, 1, 1, "events replay ID | --failed | --since "
	    "TIME", ctl_events_replay },
	{ "events show", 1, 1, 1, "events show ID", ctl_events_show },
	{ "events assign", 2, 2, 1, "events assign ID ORG", ctl_events_assign },
	{ "events rejections", 0, 0, 1, "events rejections [--org ORG] "
	    "[--since TIME] [--limit N] [--counts]", ctl_events_rejections },
	{ "prune", 0, 0, 1, "prune --older-than DAYS [--redact]", ctl_prune },
	{ "send", 2, 2, 0, "send PROVIDER EVENT [--url URL] [--org ORG] "
	    "[--to E164] [--from E164] [--id ID]", ctl_send },
	{ "spool status", 0, 0, 0, "spool status", ctl_spool_status },
	{ "spool drain", 0, 0, 1, "spool drain", ctl_spool_drain },
	{ NULL, 0, 0, 0, NULL, NULL }
};
