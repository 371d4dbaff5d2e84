/*
 * store_call.c: calls as the database keeps them (architecture.md §7):
 * one row across all of a call's events, its status and its outcome
 * moving forward only, and what a call's end, a missed call and a
 * voicemail log and notify, once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* Call states in the order a call goes through them; terminal last. */
static const struct {
	const char	*status;
	int		 rank;
} call_ranks[] = {
	{ "queued", 1 },
	{ "initiated", 2 },
	{ "ringing", 3 },
	{ "in-progress", RANK_ANSWERED },
	{ "completed", RANK_FINAL },
	{ "busy", RANK_FINAL },
	{ "failed", RANK_FINAL },
	{ "no-answer", RANK_FINAL },
	{ "canceled", RANK_FINAL },
};

/* The rank of a call status; 0 for one we do not know. */
int
store_call_rank(const char *status)
{
	size_t	 i;

	if (status != NULL)
		for (i = 0; i < sizeof(call_ranks) / sizeof(call_ranks[0]); i++)
			if (strcmp(call_ranks[i].status, status) == 0)
				return call_ranks[i].rank;
	return 0;
}

/* Calls: insert or advance, by th_call_upsert() of sql/functions.sql. */
static const struct db_stmt st_call = { "store_call",
	"SELECT o_id, o_org, o_status, o_rank, o_direction, o_from, o_to, "
	"o_prev_rank, o_summary, o_analyzed, o_campaign, o_contact, "
	"o_successful, o_outcome, o_recording, o_call_id "
	"FROM th_call_upsert(p_org => $1, p_provider => $2, p_call_id => $3, "
	"p_direction => $4, p_from => $5, p_to => $6, p_status => $7, "
	"p_rank => $8, p_duration => $9, p_recording => $10, "
	"p_transcript => $11, p_started_ms => $12, p_ended_ms => $13, "
	"p_cost_cents => $14, p_reason => $15, p_summary => $16, "
	"p_sentiment => $17, p_successful => $18, p_custom => $19, "
	"p_agent => $20, p_campaign => $21, p_contact => $22, "
	"p_caller_name => $23, p_analyzed => $24, p_cost => $25, "
	"p_currency => $26)", 26 };

enum db_err
store_call(const struct call_in *in, struct call_out *out)
{
	struct db_res	 res;
	const char	*p[26];
	char		 rank[8];
	enum db_err	 e;

	memset(out, 0, sizeof(*out));
	snprintf(rank, sizeof(rank), "%d", store_call_rank(in->status));
	p[0] = in->org;
	p[1] = in->provider;
	p[2] = in->call_id;
	p[3] = in->direction;
	p[4] = in->from;
	p[5] = in->to;
	p[6] = store_call_rank(in->status) ? in->status : NULL;
	p[7] = p[6] != NULL ? rank : NULL;
	p[8] = util_num_in(in->duration, 0, INT4_MAX);
	p[9] = in->recording_url;
	p[10] = in->transcript;
	p[11] = util_num_in(in->started_ms, 0, MS_MAX);
	p[12] = util_num_in(in->ended_ms, 0, MS_MAX);
	p[13] = util_num_in(in->cost_cents, -INT4_MAX, INT4_MAX);
	p[14] = in->reason;
	p[15] = in->summary;
	p[16] = in->sentiment;
	p[17] = in->successful;
	p[18] = in->custom_data;
	p[19] = in->agent_id;
	p[20] = in->campaign_id;
	p[21] = in->contact_id;
	p[22] = in->caller_name;
	p[23] = in->analyzed ? "true" : "false";
	p[24] = in->cost;
	p[25] = in->cost != NULL ? in->currency : NULL;
	if ((e = db_exec(&st_call, p, &res)) != DB_OK)
		return e;
	if (res.nrows == 1) {
		out->id = strtoll(db_val(&res, 0, "o_id"), NULL, 10);
		out->org = dup_or_null(db_val(&res, 0, "o_org"));
		out->status = dup_or_null(db_val(&res, 0, "o_status"));
		out->rank = atoi(db_val(&res, 0, "o_rank"));
		out->direction = dup_or_null(db_val(&res, 0, "o_direction"));
		out->from = dup_or_null(db_val(&res, 0, "o_from"));
		out->to = dup_or_null(db_val(&res, 0, "o_to"));
		out->old_rank = atoi(db_val(&res, 0, "o_prev_rank"));
		out->summary = dup_or_null(db_val(&res, 0, "o_summary"));
		out->analyzed = strcmp(db_val(&res, 0, "o_analyzed"), "t") == 0;
		out->campaign_id = dup_or_null(db_val(&res, 0, "o_campaign"));
		out->contact_id = dup_or_null(db_val(&res, 0, "o_contact"));
		out->successful = dup_or_null(db_val(&res, 0, "o_successful"));
		out->outcome = dup_or_null(db_val(&res, 0, "o_outcome"));
		out->recording_url = dup_or_null(db_val(&res, 0, "o_recording"));
		out->call_id = dup_or_null(db_val(&res, 0, "o_call_id"));
		if (store_rederiving() > 0)
			out->old_rank = -1;	/* as if new: see above */
	}
	db_res_free(&res);
	return DB_OK;
}

void
store_call_out_free(struct call_out *c)
{
	free(c->outcome);
	free(c->recording_url);
	free(c->call_id);
	free(c->org);
	free(c->status);
	free(c->direction);
	free(c->from);
	free(c->to);
	free(c->summary);
	free(c->campaign_id);
	free(c->contact_id);
	free(c->successful);
	memset(c, 0, sizeof(*c));
}

/*
 * architecture.md §7: the outcome of a call, moved forward only (missed <
 * voicemail < answered) by th_call_outcome() of sql/functions.sql.  When this
 * event moved it, a missed call or a voicemail is logged and notifies
 * every user of the organization: once, whatever is redelivered or
 * replayed.  why, if given, says how it was missed.
 */
/* th_call_outcome() of sql/functions.sql: what the activity line needs. */
static const struct db_stmt st_outcome = { "store_outcome",
	"SELECT recording_url, call_id "
	"FROM th_call_outcome($1::bigint, $2, $3::bool)", 3 };

static char *
store_call_data(const struct call_out *co, const char *recording)
{
	cJSON	*d = cJSON_CreateObject();
	char	*s;

	cJSON_AddItemToObject(d, "from_number", co->from != NULL ?
	    cJSON_CreateString(co->from) : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "to_number", co->to != NULL ?
	    cJSON_CreateString(co->to) : cJSON_CreateNull());
	cJSON_AddStringToObject(d, "call", co->call_id != NULL ? co->call_id :
	    "");
	if (recording != NULL) {
		cJSON_AddStringToObject(d, "recording_url", recording);
		cJSON_AddNullToObject(d, "transcription");
	}
	s = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	return s;
}

enum db_err
store_call_outcome(struct call_out *co, const char *outcome,
    const char *why, long long event)
{
	struct db_res	 res;
	const char	*p[3];
	char		 id[24], *text = NULL, *msg = NULL, *data = NULL;
	const char	*from = co->from != NULL ? co->from : "unknown", *v;
	enum db_err	 e;

	snprintf(id, sizeof(id), "%lld", co->id);
	p[0] = id;
	p[1] = outcome;
	p[2] = store_rederiving() > 0 ? "true" : "false";
	if ((e = db_exec(&st_outcome, p, &res)) != DB_OK)
		return e;
	if (res.nrows != 1) {
		db_res_free(&res);
		return DB_OK;		/* not forward: said already */
	}
	free(co->outcome);
	co->outcome = xstrdup(outcome);
	if ((v = db_val(&res, 0, "recording_url")) != NULL &&
	    co->recording_url == NULL)
		co->recording_url = xstrdup(v);
	if ((v = db_val(&res, 0, "call_id")) != NULL && co->call_id == NULL)
		co->call_id = xstrdup(v);
	db_res_free(&res);
	if (strcmp(outcome, "missed") == 0) {
		if (why != NULL)
			xasprintf(&text, "Missed call from %s (%s)", from, why);
		else
			xasprintf(&text, "Missed call from %s", from);
		xasprintf(&msg, "Missed call from %s to %s", from,
		    co->to != NULL ? co->to : "unknown");
		data = store_call_data(co, NULL);
		if ((e = store_activity(co->org, "call_missed", text, co->id, 0,
		    event)) == DB_OK)
			e = store_notify(co->org, event, "missed_call",
			    "Missed Call", msg, data);
	} else if (strcmp(outcome, "voicemail") == 0) {
		xasprintf(&text, "Voicemail from %s%s%s%s", from,
		    why != NULL ? " (" : "", why != NULL ? why : "",
		    why != NULL ? " s)" : "");
		xasprintf(&msg, "Voicemail from %s to %s", from,
		    co->to != NULL ? co->to : "unknown");
		data = store_call_data(co, co->recording_url != NULL ?
		    co->recording_url : "");
		if ((e = store_activity(co->org, "voicemail", text, co->id, 0,
		    event)) == DB_OK)
			e = store_notify(co->org, event, "voicemail",
			    "New Voicemail", msg, data);
	}
	free(text);
	free(msg);
	cJSON_free(data);
	return e;
}

/* A voicemail's transcription reaches its notifications. */
static const struct db_stmt st_vm_text = { "store_vm_text",
	"UPDATE notifications SET data = jsonb_set(data, '{transcription}', "
	"to_jsonb($2::text)) WHERE organization_id = $3 AND type = "
	"'voicemail' AND data->>'call' = $1", 3 };

enum db_err
store_voicemail_text(const struct call_out *co, const char *text)
{
	const char	*p[3];

	if (co->org == NULL || co->call_id == NULL || text == NULL)
		return DB_OK;
	p[0] = co->call_id;
	p[1] = text;
	p[2] = co->org;
	return db_exec(&st_vm_text, p, NULL);
}

/*
 * The activity of a call that reached its end with this event (and only
 * then).  An inbound call that nobody took by then is missed
 * (architecture.md §7: its status, even "completed", says nothing of that);
 * an answered call ends with its summary or "Call completed"; an outbound
 * call nobody answered was not connected.
 */
enum db_err
store_call_ended(struct call_out *co, const char *reason,
    const char *summary, long long event)
{
	const char	*why = reason != NULL ? reason : co->status;
	char		*text;
	enum db_err	 e;
	int		 inbound;

	if (!(co->old_rank < RANK_FINAL && co->rank == RANK_FINAL))
		return DB_OK;
	inbound = co->direction == NULL || strcmp(co->direction, "inbound") == 0;
	/* (a replay writes what the first time may have missed) */
	if (inbound && (co->outcome == NULL || (store_rederiving() > 0 &&
	    strcmp(co->outcome, "missed") == 0)))
		return store_call_outcome(co, "missed",
		    strcmp(why, "completed") == 0 ? NULL : why, event);
	if (co->outcome != NULL && strcmp(co->outcome, "answered") == 0)
		text = xstrdup(summary != NULL ? summary : "Call completed");
	else if (co->outcome == NULL)
		xasprintf(&text, "Call not connected (%s)", why);
	else
		return DB_OK;	/* missed or voicemail: logged already */
	e = store_activity(co->org, "call_ended", text, co->id, 0, event);
	free(text);
	return e;
}
