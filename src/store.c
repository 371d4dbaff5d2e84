/*
 * store.c: the records every provider writes, inside the request's one
 * transaction (architecture.md §4, 6 and 7): which organization an event
 * belongs to, the event itself under its idempotency key, and the calls,
 * messages, activity and notifications derived from it.
 *
 * Call and message status only move forward: each status has a rank and
 * an update with a lower or equal rank leaves the status as it was.  The
 * caller learns the rank before and after, and writes activity only for
 * a real step forward, so a late or repeated callback is never counted
 * twice.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extern.h"

static void	store_reply_state_fill(const struct db_res *,
		    struct reply_state *);

/* Message states (Twilio MessageStatus); final states share a rank. */
static const struct {
	const char	*status;
	int		 rank;
} msg_ranks[] = {
	{ "accepted", 1 },
	{ "scheduled", 1 },
	{ "queued", 2 },
	{ "sending", 3 },
	{ "receiving", 3 },
	{ "sent", MSG_RANK_SENT },
	{ "received", 4 },
	{ "delivered", 5 },
	{ "undelivered", 5 },
	{ "failed", 5 },
	{ "canceled", 5 },
	{ "partially_delivered", 5 },
	{ "read", 6 },
};

int
store_message_rank(const char *status)
{
	size_t	 i;

	if (status != NULL)
		for (i = 0; i < sizeof(msg_ranks) / sizeof(msg_ranks[0]); i++)
			if (strcmp(msg_ranks[i].status, status) == 0)
				return msg_ranks[i].rank;
	return 0;
}

int
store_is_uuid(const char *s)
{
	int	 i;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/*
 * A replay re-deriving stored event id (architecture.md §6): its records are
 * written as if it were new, every write idempotent per event.  Set by
 * worker_replay() around the handler.
 */
static long long	 store_rederive;

void
store_set_rederive(long long id)
{
	store_rederive = id;
}

/* Is a replay re-deriving an event now (0: no)? */
long long
store_rederiving(void)
{
	return store_rederive;
}

/*
 * Organizations.  now() in the organization's time zone comes with its
 * settings, so business hours need no time zone code here.
 */
static const struct db_stmt st_org_load = { "store_org_load",
	"SELECT id, name, timezone, greeting, forward_to, hours, "
	"after_hours, retell_agent_id, dow, minute, agent_sip, closed "
	"FROM th_org($1)", 1 };

/*
 * th_org()'s columns (sql/functions.sql) of row 0 of res into o; the
 * id is the column called idcol (th_sms_incoming() calls it org_id, and
 * its copy stops before agent_sip and closed: full is 0 there).
 */
static void
store_org_fill(const struct db_res *res, const char *idcol, int full,
    struct org *o)
{
	const char	*errstr, *hours, *closed;

	memset(o, 0, sizeof(*o));
	if (res->nrows != 1 || db_val(res, 0, idcol) == NULL)
		return;
	o->id = dup_or_null(db_val(res, 0, idcol));
	o->name = dup_or_null(db_val(res, 0, "name"));
	o->timezone = dup_or_null(db_val(res, 0, "timezone"));
	o->greeting = dup_or_null(db_val(res, 0, "greeting"));
	o->forward_to = dup_or_null(db_val(res, 0, "forward_to"));
	o->after_hours = dup_or_null(db_val(res, 0, "after_hours"));
	o->retell_agent_id = dup_or_null(db_val(res, 0, "retell_agent_id"));
	if ((hours = db_val(res, 0, "hours")) != NULL &&
	    hours_parse(hours, &o->hours, &errstr) == 0)
		o->has_hours = 1;
	o->wday = atoi(db_val(res, 0, "dow"));
	o->minute = atoi(db_val(res, 0, "minute"));
	if (full) {
		o->agent_sip = dup_or_null(db_val(res, 0, "agent_sip"));
		closed = db_val(res, 0, "closed");
		o->closed = closed != NULL && strcmp(closed, "t") == 0;
	}
}

/* Load organization id into o; o->id is NULL when there is none. */
enum db_err
store_org_load(const char *id, struct org *o)
{
	struct db_res	 res;
	const char	*p[1] = { id };
	enum db_err	 e;

	memset(o, 0, sizeof(*o));
	if (!store_is_uuid(id))
		return DB_OK;
	if ((e = db_exec(&st_org_load, p, &res)) != DB_OK)
		return e;
	store_org_fill(&res, "id", 1, o);
	db_res_free(&res);
	return DB_OK;
}

/*
 * Open now?  Never on a dated closure; else an organization without
 * hours is always open.
 */
int
store_org_open(const struct org *o)
{
	if (o->closed)
		return 0;
	return !o->has_hours || hours_open(&o->hours, o->wday, o->minute);
}

/*
 * While the database is away, a request scoped to one organization's
 * credential (architecture.md §4) is never answered with another's
 * settings: o is emptied when it is another organization.
 */
void
store_org_scope(const struct req *r, struct org *o)
{
	if (r->scope_org != NULL && o->id != NULL &&
	    strcmp(o->id, r->scope_org) != 0)
		store_org_free(o);
}

void
store_org_free(struct org *o)
{
	free(o->id);
	free(o->name);
	free(o->timezone);
	free(o->greeting);
	free(o->forward_to);
	free(o->after_hours);
	free(o->retell_agent_id);
	free(o->agent_sip);
	memset(o, 0, sizeof(*o));
}

/* architecture.md §4: th_route() of sql/functions.sql, one round trip. */
static const struct db_stmt st_route = { "store_route",
	"SELECT th_route($1, $2, $3, $4, $5, $6) AS org", 6 };

/*
 * The organization q belongs to, into *org (caller frees), or NULL for
 * an unrouted event.  An explicit id that names no organization makes
 * the event unrouted; it does not fall through to the other rules.
 */
enum db_err
store_route(const struct route_query *q, char **org)
{
	struct db_res	 res;
	const char	*p[6];
	char		 e164[32];
	enum db_err	 e;

	*org = NULL;
	p[0] = q->provider;
	p[1] = q->explicit_id;
	p[2] = q->number != NULL && phone_e164(q->number, e164,
	    sizeof(e164)) == 0 ? e164 : NULL;
	p[3] = q->call_id;
	p[4] = q->message_id;
	p[5] = q->account;
	if ((e = db_exec(&st_route, p, &res)) != DB_OK)
		return e;
	if (res.nrows == 1 && db_val(&res, 0, "org") != NULL)
		*org = xstrdup(db_val(&res, 0, "org"));
	db_res_free(&res);
	return DB_OK;
}

/*
 * Events.  The insert does nothing on a known provider key; the stored
 * answer of the first delivery is then returned for the redelivery.
 */
static const struct db_stmt st_event_insert = { "store_event_insert",
	"SELECT th_event_in(p_provider => $1, p_type => $2, p_key => $3, "
	"p_org => $4, p_route => $5, p_addr => $6, p_ctype => $7, "
	"p_headers => $8, p_body => decode($9, 'hex'), p_payload => $10, "
	"p_spooled => $11, p_method => $12, p_uri => $13, "
	"p_rederive => $14::bigint) AS id", 14 };
static const struct db_stmt st_event_prior = { "store_event_prior",
	"SELECT id, answer FROM events WHERE provider = $1 AND "
	"provider_key = $2", 2 };
static const struct db_stmt st_event_answer = { "store_event_answer",
	"UPDATE events SET answer = $2 WHERE id = $1", 2 };


/*
 * The fourteen parameters of th_event_in() for request r, into p; the
 * strings it makes go to *made (caller frees with store_event_done()).
 */
struct event_made {
	char	*headers;
	char	*payload;
	char	*hex;
	char	*uri;
	char	 rederive[24];
};

static void
store_event_params(const struct req *r, const struct event_in *ev,
    const char **p, struct event_made *m)
{
	unsigned char	 probe[16];
	const char	*addr = NULL;

	m->headers = req_headers_json(r);
	m->payload = req_payload_json(r);
	m->hex = req_body_hex(r);
	if (r->client_addr != NULL &&
	    (inet_pton(AF_INET, r->client_addr, probe) == 1 ||
	    inet_pton(AF_INET6, r->client_addr, probe) == 1))
		addr = r->client_addr;
	p[0] = ev->provider;
	p[1] = ev->type;
	p[2] = ev->key;
	p[3] = ev->org;
	p[4] = r->route != NULL ? r->route->name : "-";
	p[5] = addr;
	p[6] = r->content_type;
	p[7] = m->headers;
	p[8] = m->hex;
	p[9] = m->payload;
	p[10] = r->replay != NULL && store_rederive == 0 ? "true" : "false";
	/* the request line, for a replay; never the URL token */
	m->uri = req_redact_uri(r->request_uri);
	p[11] = r->method_str;
	p[12] = m->uri;
	snprintf(m->rederive, sizeof(m->rederive), "%lld", store_rederive);
	p[13] = store_rederive > 0 ? m->rederive : NULL;
}

static void
store_event_done(struct event_made *m)
{
	free(m->headers);
	free(m->payload);
	free(m->hex);
	free(m->uri);
}

/*
 * Store the event of request r.  *id is its id, or 0 for a redelivery,
 * whose first answer (if any) goes to *prior (caller frees).
 */
enum db_err
store_event(const struct req *r, const struct event_in *ev, long long *id,
    char **prior)
{
	struct db_res		 res;
	struct event_made	 m;
	const char		*p[14];
	enum db_err		 e;

	*id = 0;
	*prior = NULL;
	store_event_params(r, ev, p, &m);
	e = db_exec(&st_event_insert, p, &res);
	store_event_done(&m);
	if (e != DB_OK)
		return e;
	if (res.nrows == 1 && db_val(&res, 0, "id") != NULL)
		*id = strtoll(db_val(&res, 0, "id"), NULL, 10);
	db_res_free(&res);
	if (*id != 0)
		return DB_OK;
	p[1] = ev->key;
	if ((e = db_exec(&st_event_prior, p, &res)) != DB_OK)
		return e;
	if (res.nrows == 1 && db_val(&res, 0, "answer") != NULL)
		*prior = xstrdup(db_val(&res, 0, "answer"));
	db_res_free(&res);
	return DB_OK;
}

/*
 * An incoming SMS in one statement (th_sms_incoming() of sql/functions.sql): the
 * route, the event, the message and its activity, and back what the
 * reply needs.  out->event is 0 for a redelivery, whose first answer is
 * out->prior.  Free out with store_sms_out_free().
 */
static const struct db_stmt st_sms_incoming = { "store_sms_incoming",
	"SELECT event_id, answer, org_id, name, timezone, greeting, "
	"forward_to, hours, after_hours, retell_agent_id, dow, minute, "
	"message, opted_out, blocked, recent, own, rules "
	"FROM th_sms_incoming(p_provider => $1, p_type => $2, p_key => $3, "
	"p_explicit => $4, p_number => $5, p_account => $6, "
	"p_route => $7, p_addr => $8, p_ctype => $9, p_headers => $10, "
	"p_body => decode($11, 'hex'), p_payload => $12, "
	"p_spooled => $13, p_message_id => $14, p_from => $15, "
	"p_to => $16, p_text => $17, p_num_media => $18, p_media => $19, "
	"p_rank => $20, p_summary => $21, p_method => $22, p_uri => $23, "
	"p_rederive => $24::bigint)", 24 };

enum db_err
store_sms_incoming(const struct req *r, const struct event_in *ev,
    const struct sms_in *in, struct sms_out *out)
{
	struct db_res		 res;
	struct event_made	 m;
	const char		*ep[14], *p[24], *v;
	char			 rank[8], e164[32];
	enum db_err		 e;

	memset(out, 0, sizeof(*out));
	store_event_params(r, ev, ep, &m);
	snprintf(rank, sizeof(rank), "%d", store_message_rank("received"));
	p[0] = ev->provider;
	p[1] = ev->type;
	p[2] = ev->key;
	p[3] = in->explicit_id;
	p[4] = in->number != NULL && phone_e164(in->number, e164,
	    sizeof(e164)) == 0 ? e164 : NULL;
	p[5] = in->account;
	memcpy(&p[6], &ep[4], 7 * sizeof(p[0]));	/* route .. spooled */
	p[13] = in->message_id;
	p[14] = in->from;
	p[15] = in->to;
	p[16] = in->body;
	p[17] = util_num_in(in->num_media, 0, INT4_MAX);
	p[18] = in->media;
	p[19] = rank;
	p[20] = in->summary;
	memcpy(&p[21], &ep[11], 3 * sizeof(p[0]));	/* method, uri, replay */
	e = db_exec(&st_sms_incoming, p, &res);
	store_event_done(&m);
	if (e != DB_OK)
		return e;
	if (res.nrows == 1) {
		if ((v = db_val(&res, 0, "event_id")) != NULL)
			out->event = strtoll(v, NULL, 10);
		out->prior = dup_or_null(db_val(&res, 0, "answer"));
		if (out->event != 0)
			store_org_fill(&res, "org_id", 0, &out->org);
		else	/* a redelivery: whose it is, for the log */
			out->org.id = dup_or_null(db_val(&res, 0, "org_id"));
		if ((v = db_val(&res, 0, "message")) != NULL)
			out->message = strtoll(v, NULL, 10);
		if (out->event != 0 && out->org.id != NULL) {
			store_reply_state_fill(&res, &out->rs);
			out->rules = cJSON_Parse(db_val(&res, 0, "rules"));
		}
	}
	db_res_free(&res);
	return DB_OK;
}

void
store_sms_out_free(struct sms_out *out)
{
	free(out->prior);
	store_org_free(&out->org);
	cJSON_Delete(out->rules);
	memset(out, 0, sizeof(*out));
}

/*
 * Keep what was answered, so a redelivery gets the same.  An empty
 * TwiML document is not kept: a redelivery with no stored answer gets
 * exactly that, and most messages need no reply.
 */
enum db_err
store_event_answer(long long id, const char *answer)
{
	char		 sid[24];
	const char	*p[2] = { sid, answer };

	if (strcmp(answer, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Response></Response>\n") == 0)
		return DB_OK;

	snprintf(sid, sizeof(sid), "%lld", id);
	return db_exec(&st_event_answer, p, NULL);
}

/* Messages: insert or advance, with the status history (as calls). */
static const struct db_stmt st_message = { "store_message",
	"SELECT id, organization_id, status_rank, prev_rank "
	"FROM th_message_in(p_org => $1, p_provider => $2, p_id => $3, "
	"p_direction => $4, p_from => $5, p_to => $6, p_body => $7, "
	"p_num_media => $8, p_media => $9, p_status => $10, "
	"p_rank => $11)", 11 };

enum db_err
store_message(const struct msg_in *in, struct msg_out *out)
{
	struct db_res	 res;
	const char	*p[11];
	char		 rank[8];
	int		 r = store_message_rank(in->status);
	enum db_err	 e;

	memset(out, 0, sizeof(*out));
	snprintf(rank, sizeof(rank), "%d", r);
	p[0] = in->org;
	p[1] = in->provider;
	p[2] = in->message_id;
	p[3] = in->direction;
	p[4] = in->from;
	p[5] = in->to;
	p[6] = in->body;
	p[7] = util_num_in(in->num_media, 0, INT4_MAX);
	p[8] = in->media;
	p[9] = r ? in->status : NULL;
	p[10] = r ? rank : NULL;
	if ((e = db_exec(&st_message, p, &res)) != DB_OK)
		return e;
	if (res.nrows == 1) {
		out->id = strtoll(db_val(&res, 0, "id"), NULL, 10);
		out->org = dup_or_null(db_val(&res, 0, "organization_id"));
		out->rank = atoi(db_val(&res, 0, "status_rank"));
		out->old_rank = store_rederive > 0 ? -1 :
		    atoi(db_val(&res, 0, "prev_rank"));
	}
	db_res_free(&res);
	return DB_OK;
}

static const struct db_stmt st_message_replied = { "store_message_replied",
	"UPDATE messages SET auto_reply = true, reply_text = $2 WHERE id = $1",
	2 };
/* the reply's text, from the inbound message it answered, same owner */
static const struct db_stmt st_message_reply_of = { "store_message_reply_of",
	"UPDATE messages o SET body = i.reply_text, auto_reply = true FROM "
	"messages i WHERE o.id = $1 AND o.body IS NULL AND o.direction = "
	"'outbound' AND i.provider = o.provider AND i.message_id = $2 AND "
	"i.organization_id IS NOT DISTINCT FROM o.organization_id AND "
	"i.direction = 'inbound' AND i.reply_text IS NOT NULL", 2 };

/*
 * Mark an inbound message as one we auto-replied to (the loop guard),
 * with the reply's text, for the staff to read.
 */
enum db_err
store_message_replied(long long id, const char *text)
{
	char		 sid[24];
	const char	*p[2] = { sid, text };

	snprintf(sid, sizeof(sid), "%lld", id);
	return db_exec(&st_message_replied, p, NULL);
}

/*
 * Outbound message id is the automatic reply to the inbound message
 * whose provider id is reply_to: it gets that reply's text (a status
 * callback carries none).  Nothing when they are not the same
 * organization's, or the outbound one has a text.
 */
enum db_err
store_message_reply_of(long long id, const char *reply_to)
{
	char		 sid[24];
	const char	*p[2] = { sid, reply_to };

	snprintf(sid, sizeof(sid), "%lld", id);
	return db_exec(&st_message_reply_of, p, NULL);
}

/* Activity and notifications. */
static const struct db_stmt st_activity = { "store_activity",
	"SELECT th_activity($1, $2, $3, $4, $5, $6)", 6 };

static const char *
id_or_null(long long id, char *buf, size_t len)
{
	if (id <= 0)
		return NULL;
	snprintf(buf, len, "%lld", id);
	return buf;
}

/* One activity entry; nothing for an unrouted event. */
enum db_err
store_activity(const char *org, const char *type, const char *summary,
    long long call, long long msg, long long event)
{
	char		 c[24], m[24], e[24];
	const char	*p[6];

	if (org == NULL)
		return DB_OK;
	p[0] = org;
	p[1] = type;
	p[2] = summary;
	p[3] = id_or_null(call, c, sizeof(c));
	p[4] = id_or_null(msg, m, sizeof(m));
	p[5] = id_or_null(event, e, sizeof(e));
	return db_exec(&st_activity, p, NULL);
}

/*
 * A notification for every user, and for each who chose its kind an
 * e-mail queued in the same statement (sql/010_mail.sql): a
 * notification that already exists queues nothing again.
 */
static const struct db_stmt st_notify = { "store_notify",
	"WITH n AS (INSERT INTO notifications (organization_id, user_id, "
	"event_id, type, title, message, data, created_at) SELECT $1, u.id, "
	"$2::bigint, $3, $4, $5, $6::jsonb, th_now() FROM users u "
	"WHERE u.organization_id = $1 ON CONFLICT DO NOTHING "
	"RETURNING id, user_id, type) "
	"INSERT INTO mail_outbox (organization_id, user_id, kind, "
	"notification_id) SELECT $1, n.user_id, n.type, n.id FROM n "
	"JOIN users u ON u.id = n.user_id WHERE n.type = ANY (u.notify)", 6 };

/*
 * An inbound SMS with one of the emergency rule's keywords (the caller
 * asks reply_urgent()) notifies every user of the organization (type
 * urgent_sms), with its text.
 */
enum db_err
store_notify_urgent_sms(const char *org, long long event, const char *from,
    const char *to, const char *body)
{
	cJSON		*d;
	char		*data, *msg;
	enum db_err	 e;

	if (org == NULL || body == NULL)
		return DB_OK;
	d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "from_number", from != NULL ?
	    cJSON_CreateString(from) : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "to_number", to != NULL ?
	    cJSON_CreateString(to) : cJSON_CreateNull());
	cJSON_AddStringToObject(d, "body", body);
	data = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	xasprintf(&msg, "Urgent SMS from %s", from != NULL ? from : "unknown");
	e = store_notify(org, event, "urgent_sms", "Urgent Message", msg,
	    data);
	free(msg);
	cJSON_free(data);
	return e;
}

/* A notification for every user of org; data is JSON text. */
enum db_err
store_notify(const char *org, long long event, const char *type,
    const char *title, const char *message, const char *data)
{
	char		 e[24];
	const char	*p[6];

	if (org == NULL)
		return DB_OK;
	p[0] = org;
	p[1] = id_or_null(event, e, sizeof(e));
	p[2] = type;
	p[3] = title;
	p[4] = message;
	p[5] = data;
	return db_exec(&st_notify, p, NULL);
}

/* The notification of architecture.md §7 for an inbound call. */
enum db_err
store_notify_inbound_call(const char *org, long long event,
    const char *from, const char *to, const char *agent)
{
	cJSON		*d = cJSON_CreateObject();
	char		*data, *msg;
	enum db_err	 e;

	cJSON_AddItemToObject(d, "from_number", from ? cJSON_CreateString(from)
	    : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "to_number", to ? cJSON_CreateString(to) :
	    cJSON_CreateNull());
	cJSON_AddItemToObject(d, "agent_id", agent ? cJSON_CreateString(agent)
	    : cJSON_CreateNull());
	data = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	xasprintf(&msg, "New inbound call from %s to %s", from ? from :
	    "unknown", to ? to : "unknown");
	e = store_notify(org, event, "inbound_call", "Incoming Call Received",
	    msg, data);
	free(msg);
	cJSON_free(data);
	return e;
}

/* Callers an organization blocks, and numbers that opted out. */
static const struct db_stmt st_blocked = { "store_blocked",
	"SELECT 1 FROM blocked_numbers WHERE organization_id = $1 AND "
	"e164 = $2", 2 };
static const struct db_stmt st_opt_out = { "store_opt_out",
	"INSERT INTO opt_outs (organization_id, e164) VALUES ($1, $2) "
	"ON CONFLICT DO NOTHING", 2 };
static const struct db_stmt st_opt_in = { "store_opt_in",
	"DELETE FROM opt_outs WHERE organization_id = $1 AND e164 = $2", 2 };

static enum db_err
store_exists(const struct db_stmt *st, const char *org, const char *num,
    int *yes)
{
	struct db_res	 res;
	const char	*p[2] = { org, num };
	enum db_err	 e;

	*yes = 0;
	if (org == NULL || num == NULL)
		return DB_OK;
	if ((e = db_exec(st, p, &res)) != DB_OK)
		return e;
	*yes = res.nrows > 0;
	db_res_free(&res);
	return DB_OK;
}

enum db_err
store_is_blocked(const char *org, const char *num, int *yes)
{
	return store_exists(&st_blocked, org, num, yes);
}

enum db_err
store_set_opt_out(const char *org, const char *num, int out)
{
	const char	*p[2] = { org, num };

	return db_exec(out ? &st_opt_out : &st_opt_in, p, NULL);
}

/* What decides whether num gets an auto-reply: th_reply_state(). */
static const struct db_stmt st_reply_state = { "store_reply_state",
	"SELECT opted_out, blocked, recent, own FROM th_reply_state($1, $2)",
	2 };

/* th_reply_state()'s columns of row 0 of res (th_sms_incoming() too). */
static void
store_reply_state_fill(const struct db_res *res, struct reply_state *rs)
{
	rs->opted_out = strcmp(db_val(res, 0, "opted_out"), "t") == 0;
	rs->blocked = strcmp(db_val(res, 0, "blocked"), "t") == 0;
	rs->recent = atoi(db_val(res, 0, "recent"));
	rs->own = strcmp(db_val(res, 0, "own"), "t") == 0;
}

enum db_err
store_reply_state(const char *org, const char *num, struct reply_state *rs)
{
	struct db_res	 res;
	const char	*p[2] = { org, num };
	enum db_err	 e;

	memset(rs, 0, sizeof(*rs));
	if ((e = db_exec(&st_reply_state, p, &res)) != DB_OK)
		return e;
	if (res.nrows == 1)
		store_reply_state_fill(&res, rs);
	db_res_free(&res);
	return DB_OK;
}

/* An organization's reply rules for a channel, oldest first. */
static const struct db_stmt st_rules = { "store_rules",
	"SELECT array_to_string(keywords, ',') AS keywords, reply "
	"FROM reply_rules "
	"WHERE organization_id = $1 AND channel = $2 ORDER BY id", 2 };

enum db_err
store_rules(const char *org, const char *channel, struct db_res *res)
{
	const char	*p[2] = { org, channel };

	return db_exec(&st_rules, p, res);
}
