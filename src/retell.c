/*
 * retell.c: the Retell AI provider (architecture.md §3-8): call events at
 * /webhooks/retell and the call_inbound webhook at
 * /webhooks/retell/inbound.
 *
 * Events are JSON {"event": ..., "call": {...}}, keyed by event and
 * call_id (transfers add their start timestamp; transcript_updated keeps
 * the latest).  Every call event carries the whole call object, so each
 * one upserts the call; activity, notifications and campaign progress
 * follow only when the call really moved forward, which keeps counts
 * exact under redelivery and out-of-order events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

#include "retell.h"


/* A string member of o, or NULL. */
const char *
rt_str(const cJSON *o, const char *name)
{
	const cJSON	*j = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(j) && j->valuestring[0] != '\0' ?
	    j->valuestring : NULL;
}

/* A non-negative integral number member of o as decimal, in buf. */
static const char *
rt_int(const cJSON *o, const char *name, char *buf, size_t len)
{
	const cJSON	*j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(j) || j->valuedouble < 0 ||
	    j->valuedouble > 9007199254740991.0)
		return NULL;
	snprintf(buf, len, "%lld", (long long)j->valuedouble);
	return buf;
}

const cJSON *
rt_obj(const cJSON *o, const char *name)
{
	const cJSON	*j = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsObject(j) ? j : NULL;
}

/* A number in E.164 when it is one, else as sent.  Caller frees. */
static char *
rt_number(const char *v)
{
	char	 e[32];

	if (v == NULL)
		return NULL;
	return xstrdup(phone_e164(v, e, sizeof(e)) == 0 ? e : v);
}

/*
 * architecture.md §11: Retell's call_status onto the common states; an
 * ended call that never connected is failed, busy or no-answer by its
 * disconnection reason.
 */
const char *
retell_status(const char *call_status, const char *reason)
{
	if (call_status == NULL)
		return NULL;
	if (strcmp(call_status, "registered") == 0)
		return "queued";
	if (strcmp(call_status, "ongoing") == 0)
		return "in-progress";
	if (strcmp(call_status, "not_connected") == 0 ||
	    strcmp(call_status, "error") == 0)
		return "failed";
	if (strcmp(call_status, "ended") != 0)
		return NULL;
	if (reason == NULL)
		return "completed";
	if (strcmp(reason, "dial_busy") == 0)
		return "busy";
	if (strcmp(reason, "dial_no_answer") == 0)
		return "no-answer";
	if (strncmp(reason, "dial_", 5) == 0 ||
	    strcmp(reason, "invalid_destination") == 0 ||
	    strncmp(reason, "telephony_provider_", 19) == 0 ||
	    strcmp(reason, "sip_routing_error") == 0 ||
	    strcmp(reason, "marked_as_spam") == 0 ||
	    strcmp(reason, "user_declined") == 0 ||
	    strcmp(reason, "registered_call_timeout") == 0 ||
	    strcmp(reason, "concurrency_limit_reached") == 0 ||
	    strcmp(reason, "no_valid_payment") == 0 ||
	    strcmp(reason, "error_user_not_joined") == 0)
		return "failed";
	return "completed";
}

/*
 * A campaign contact's outcome for a call that ended with status and
 * reason: completed, no_answer (nobody, or a machine, picked up) or
 * failed.
 */
const char *
retell_contact_outcome(const char *status, const char *reason)
{
	if (status == NULL)
		return NULL;
	if (strcmp(status, "busy") == 0 || strcmp(status, "no-answer") == 0 ||
	    (reason != NULL && (strcmp(reason, "voicemail_reached") == 0 ||
	    strcmp(reason, "user_declined") == 0)))
		return "no_answer";
	if (strcmp(status, "completed") == 0)
		return "completed";
	return "failed";
}

/*
 * The organization the signed body names: a top-level organization_id
 * (older senders, as the dashboards before telehook took them) or the
 * call's metadata.organization_id.
 */
const char *
rt_explicit(const struct req *r, const cJSON *call)
{
	const cJSON	*meta;
	const char	*id;

	if (r->json != NULL && (id = rt_str(r->json, "organization_id")) != NULL)
		return id;
	if (call != NULL && (meta = rt_obj(call, "metadata")) != NULL)
		return rt_str(meta, "organization_id");
	return NULL;
}

/*
 * Whose event: explicit id, else the number, else the call's owner.  The
 * query string is not signed (retell-sdk signs the body alone), so its
 * organization_id only routes what the body leaves unrouted; it never
 * overrides the body (architecture.md §4).
 */
enum db_err
rt_route(struct req *r, const cJSON *call, const char *inbound_to,
    char **org)
{
	struct route_query	 q;
	const char		*dir, *qs;
	enum db_err		 e;

	memset(&q, 0, sizeof(q));
	q.provider = "retell";
	q.explicit_id = rt_explicit(r, call);
	if (inbound_to != NULL)
		q.number = inbound_to;
	else if (call != NULL) {
		dir = rt_str(call, "direction");
		q.number = rt_str(call, dir != NULL &&
		    strcmp(dir, "outbound") == 0 ? "from_number" : "to_number");
		q.call_id = rt_str(call, "call_id");
	}
	if ((e = store_route(&q, org)) != DB_OK || *org != NULL ||
	    q.explicit_id != NULL ||
	    (qs = kv_get(&r->qs, "organization_id")) == NULL)
		return e;
	memset(&q, 0, sizeof(q));
	q.provider = "retell";
	q.explicit_id = qs;
	return store_route(&q, org);
}

/* The call object of an event: "call", or the root for compat senders. */
const cJSON *
rt_call_of(const cJSON *root)
{
	const cJSON	*c = rt_obj(root, "call");

	if (c != NULL)
		return c;
	if (rt_str(root, "call_id") != NULL)
		return root;
	return NULL;
}

/* The number that decides the owner, without the database (fallback). */
const char *
rt_owner_number(const cJSON *root)
{
	const cJSON	*c, *ci;
	const char	*dir;

	if ((ci = rt_obj(root, "call_inbound")) != NULL)
		return rt_str(ci, "to_number");
	if ((c = rt_call_of(root)) == NULL)
		return NULL;
	dir = rt_str(c, "direction");
	return rt_str(c, dir != NULL && strcmp(dir, "outbound") == 0 ?
	    "from_number" : "to_number");
}

/* The first 16 hex digits of the body's SHA-256. */
static void
rt_digest(const struct req *r, char *out)
{
	char	 hex[65];

	crypto_sha256_hex(r->body, r->bodylen, hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
}

/* The idempotency key of architecture.md §6. */
static char *
rt_key(const struct rt *t)
{
	const char	*id = t->call ? rt_str(t->call, "call_id") : NULL;
	const char	*dest;
	char		*k, ts[24], d[17];

	if (id == NULL) {
		rt_digest(t->h.r, d);
		xasprintf(&k, "%s:%s", t->event, d);
	} else if (strncmp(t->event, "transfer_", 9) == 0) {
		dest = rt_str(t->call, "transfer_destination");
		if (dest == NULL)
			dest = rt_str(t->h.r->json, "transfer_destination");
		xasprintf(&k, "%s:%s:%s:%s", t->event, id,
		    rt_int(t->call, "start_timestamp", ts, sizeof(ts)) ? ts :
		    "", dest ? dest : "");
	} else
		xasprintf(&k, "%s:%s", t->event, id);
	return k;
}

/* Link the call to its campaign and contact (architecture.md §11). */
static const struct db_stmt st_contact_by_phone = { "retell_contact_phone",
	"SELECT cc.id FROM campaign_contacts cc JOIN campaigns c ON "
	"c.id = cc.campaign_id WHERE cc.campaign_id = $1 AND cc.phone = $2 "
	"AND ($3::uuid IS NULL OR c.organization_id = $3::uuid) "
	"ORDER BY cc.position LIMIT 1", 3 };
static const struct db_stmt st_contact_check = { "retell_contact_check",
	"SELECT cc.id FROM campaign_contacts cc JOIN campaigns c ON "
	"c.id = cc.campaign_id WHERE cc.id = $1 AND cc.campaign_id = $2 "
	"AND ($3::uuid IS NULL OR c.organization_id = $3::uuid)", 3 };

static enum db_err
rt_campaign(struct rt *t, const char *to, char **campaign, char **contact)
{
	const cJSON	*meta = rt_obj(t->call, "metadata");
	const char	*cid, *kid, *p[3];
	struct db_res	 res;
	enum db_err	 e;

	*campaign = *contact = NULL;
	if (meta == NULL || (cid = rt_str(meta, "campaign_id")) == NULL ||
	    !store_is_uuid(cid))
		return DB_OK;
	kid = rt_str(meta, "contact_id");
	p[0] = kid != NULL && store_is_uuid(kid) ? kid : cid;
	p[1] = kid != NULL && store_is_uuid(kid) ? cid : to;
	p[2] = t->h.org_id;
	if (kid != NULL && store_is_uuid(kid))
		e = db_exec(&st_contact_check, p, &res);
	else if (to != NULL) {
		p[0] = cid;
		e = db_exec(&st_contact_by_phone, p, &res);
	} else
		return DB_OK;
	if (e != DB_OK)
		return e;
	if (res.nrows == 1) {
		*campaign = xstrdup(cid);
		*contact = xstrdup(db_val(&res, 0, "id"));
	}
	db_res_free(&res);
	return DB_OK;
}

/*
 * A contact moves forward only (pending, calling, then an outcome);
 * processed and successful flip once each, and only the flip counts
 * for the campaign.
 */
static const struct db_stmt st_contact_status = { "retell_contact_status",
	"UPDATE campaign_contacts SET status = $2, status_rank = $3::smallint, "
	"call_id = coalesce(call_id, $4), updated_at = th_now() "
	"WHERE id = $1 AND status_rank < $3::smallint", 4 };
static const struct db_stmt st_contact_processed = {
	"retell_contact_processed",
	"WITH flip AS (UPDATE campaign_contacts SET processed = true "
	"WHERE id = $1 AND NOT processed RETURNING campaign_id) "
	"UPDATE campaigns c SET processed = c.processed + 1 FROM flip "
	"WHERE c.id = flip.campaign_id RETURNING c.name, c.processed, "
	"(SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id) "
	"AS contacts, c.organization_id", 1 };
static const struct db_stmt st_contact_successful = {
	"retell_contact_successful",
	"WITH flip AS (UPDATE campaign_contacts SET successful = true "
	"WHERE id = $1 AND NOT successful RETURNING campaign_id) "
	"UPDATE campaigns c SET successful = c.successful + 1 FROM flip "
	"WHERE c.id = flip.campaign_id", 1 };

static enum db_err
rt_contact(struct rt *t, const struct call_out *co, const char *reason,
    const char *call_id)
{
	const char	*outcome = NULL, *p[4];
	char		 rank[4], *summary;
	struct db_res	 res;
	enum db_err	 e;

	if (co->contact_id == NULL)
		return DB_OK;
	if (co->rank >= 5)
		outcome = retell_contact_outcome(co->status, reason);
	p[0] = co->contact_id;
	p[1] = outcome != NULL ? outcome : "calling";
	snprintf(rank, sizeof(rank), "%d", outcome != NULL ? 2 : 1);
	p[2] = rank;
	p[3] = call_id;
	if (co->rank >= RANK_ANSWERED || outcome != NULL)
		if ((e = db_exec(&st_contact_status, p, NULL)) != DB_OK)
			return e;
	if (outcome != NULL) {
		if ((e = db_exec(&st_contact_processed, p, &res)) != DB_OK)
			return e;
		if (res.nrows == 1) {
			xasprintf(&summary, "Campaign %s: %s (%s of %s done)",
			    db_val(&res, 0, "name"), outcome,
			    db_val(&res, 0, "processed"),
			    db_val(&res, 0, "contacts"));
			e = store_activity(db_val(&res, 0, "organization_id"),
			    "campaign_progress", summary, co->id, 0,
			    t->h.event);
			free(summary);
			if (e != DB_OK) {
				db_res_free(&res);
				return e;
			}
		}
		db_res_free(&res);
	}
	if (co->successful != NULL && strcmp(co->successful, "t") == 0)
		return db_exec(&st_contact_successful, p, NULL);
	return DB_OK;
}

static const struct db_stmt st_summary = { "retell_summary",
	"UPDATE activity SET summary = $2 WHERE call_id = $1 AND "
	"type = 'call_ended'", 2 };

/*
 * A call event: upsert the call from its object, then log what moved.
 * Returns -1 on a database error.
 */
static int
rt_call_event(struct rt *t)
{
	const cJSON	*c = t->call, *an, *cost, *dyn, *cd;
	struct call_in	 in;
	struct call_out	 co;
	char		 s1[24], s2[24], s3[24], dur[24], cents[24];
	char		*from, *to, *custom = NULL, *summary = NULL;
	char		*campaign = NULL, *contact = NULL, cid[24];
	const char	*reason, *type = NULL, *ms, *cs;
	int		 inbound, ended, rc = -1;

	from = rt_number(rt_str(c, "from_number"));
	to = rt_number(rt_str(c, "to_number"));
	reason = rt_str(c, "disconnection_reason");
	memset(&in, 0, sizeof(in));
	in.provider = "retell";
	in.call_id = rt_str(c, "call_id");
	in.org = t->h.org_id;
	in.direction = rt_str(c, "direction");
	if (in.direction != NULL && strcmp(in.direction, "inbound") != 0 &&
	    strcmp(in.direction, "outbound") != 0)
		in.direction = NULL;
	in.from = from;
	in.to = to;
	/*
	 * Older senders post the call's fields flat, without
	 * call_status, once it has ended: such an event is an ended call.
	 */
	if ((cs = rt_str(c, "call_status")) == NULL && (strcmp(t->event,
	    "call_ended") == 0 || strcmp(t->event, "call_analyzed") == 0))
		cs = "ended";
	in.status = retell_status(cs, reason);
	in.started_ms = rt_int(c, "start_timestamp", s1, sizeof(s1));
	in.ended_ms = rt_int(c, "end_timestamp", s2, sizeof(s2));
	if ((ms = rt_int(c, "duration_ms", s3, sizeof(s3))) != NULL)
		snprintf(dur, sizeof(dur), "%lld", strtoll(ms, NULL, 10) / 1000);
	else if (in.started_ms != NULL && in.ended_ms != NULL)
		snprintf(dur, sizeof(dur), "%lld", (strtoll(in.ended_ms, NULL,
		    10) - strtoll(in.started_ms, NULL, 10)) / 1000);
	else
		dur[0] = '\0';
	in.duration = dur[0] != '\0' && dur[0] != '-' ? dur : NULL;
	if ((cost = rt_obj(c, "call_cost")) != NULL)
		in.cost_cents = rt_int(cost, "combined_cost", cents,
		    sizeof(cents));
	in.reason = reason;
	in.recording_url = rt_str(c, "recording_url");
	/* transcript_updated writes only when its event was the latest */
	in.transcript = rt_str(c, "transcript");
	in.agent_id = rt_str(c, "agent_id");
	if ((dyn = rt_obj(c, "retell_llm_dynamic_variables")) != NULL)
		in.caller_name = rt_str(dyn, "customer_name");
	if ((an = rt_obj(c, "call_analysis")) != NULL) {
		in.analyzed = 1;
		in.summary = rt_str(an, "call_summary");
		if (in.summary == NULL)	/* older senders */
			in.summary = rt_str(an, "summary");
		in.sentiment = rt_str(an, "user_sentiment");
		if (cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(an,
		    "call_successful")))
			in.successful = cJSON_IsTrue(
			    cJSON_GetObjectItemCaseSensitive(an,
			    "call_successful")) ? "true" : "false";
		if ((cd = cJSON_GetObjectItemCaseSensitive(an,
		    "custom_analysis_data")) != NULL && !cJSON_IsNull(cd))
			custom = cJSON_PrintUnformatted(cd);
		in.custom_data = custom;
	}
	if (rt_campaign(t, in.direction != NULL &&
	    strcmp(in.direction, "outbound") == 0 ? to : from, &campaign,
	    &contact) != DB_OK)
		goto done;
	in.campaign_id = campaign;
	in.contact_id = contact;
	if (store_call(&in, &co) != DB_OK)
		goto done;
	inbound = co.direction == NULL || strcmp(co.direction, "inbound") == 0;
	/*
	 * Reaching the conversation: an inbound call notifies everyone.  One
	 * that never connected is logged as missed below instead.
	 */
	if (co.old_rank < RANK_ANSWERED && co.rank >= RANK_ANSWERED && inbound &&
	    (strcmp(co.status, "in-progress") == 0 ||
	    strcmp(co.status, "completed") == 0)) {
		xasprintf(&summary, "Inbound call from %s", co.from ? co.from :
		    "unknown");
		if (store_activity(co.org, "inbound_call", summary, co.id, 0,
		    t->h.event) != DB_OK ||
		    store_notify_inbound_call(co.org, t->h.event, co.from,
		    co.to, in.agent_id) != DB_OK)
			goto free_co;
		free(summary);
		summary = NULL;
	} else if (co.old_rank < RANK_ANSWERED && co.rank == RANK_ANSWERED) {
		type = "call_started";
		summary = xstrdup("Call started");
	}
	if (type != NULL && store_activity(co.org, type, summary, co.id, 0,
	    t->h.event) != DB_OK)
		goto free_co;
	/* architecture.md §7: connected is answered, by the agent */
	if ((strcmp(co.status, "in-progress") == 0 ||
	    strcmp(co.status, "completed") == 0) &&
	    store_call_outcome(&co, "answered", NULL, t->h.event) != DB_OK)
		goto free_co;
	ended = co.old_rank < RANK_FINAL && co.rank == RANK_FINAL;
	if (store_call_ended(&co, reason, co.analyzed ? co.summary : NULL,
	    t->h.event) != DB_OK)
		goto free_co;
	/* an analysis that arrives after the end names the call */
	if (in.analyzed && in.summary != NULL && !ended && type == NULL) {
		const char	*p[2];

		snprintf(cid, sizeof(cid), "%lld", co.id);
		p[0] = cid;
		p[1] = in.summary;
		if (db_exec(&st_summary, p, NULL) != DB_OK)
			goto free_co;
	}
	if (rt_contact(t, &co, reason, in.call_id) != DB_OK)
		goto free_co;
	rc = 0;
free_co:
	store_call_out_free(&co);
done:
	free(summary);
	free(campaign);
	free(contact);
	cJSON_free(custom);
	free(from);
	free(to);
	return rc;
}

/* The events that describe a call; others are only stored. */
static int
rt_is_call_event(const char *event)
{
	static const char *const known[] = { "call_started", "call_ended",
	    "call_analyzed", "transcript_updated", "transfer_started",
	    "transfer_bridged", "transfer_cancelled", "transfer_ended", NULL };
	int	 i;

	for (i = 0; known[i] != NULL; i++)
		if (strcmp(event, known[i]) == 0)
			return 1;
	return 0;
}

/*
 * transcript_updated comes many times a call; its event row keeps the
 * longest transcript, and an older one (a late redelivery) changes
 * nothing.
 */
static const struct db_stmt st_latest = { "retell_transcript_latest",
	"UPDATE events SET body = decode($2, 'hex'), payload = $3::jsonb, "
	"received_at = th_now() WHERE provider = 'retell' AND "
	"provider_key = $1 AND coalesce(length(payload->'call'->>"
	"'transcript'), 0) < coalesce(length($3::jsonb->'call'->>"
	"'transcript'), 0) RETURNING id", 3 };

static enum db_err
rt_latest(struct rt *t, long long *id)
{
	struct db_res	 res;
	const char	*p[3];
	char		*hex, *payload;
	enum db_err	 e;

	hex = xmalloc(t->h.r->bodylen * 2 + 1);
	util_hex((const unsigned char *)t->h.r->body, t->h.r->bodylen, hex);
	payload = req_payload_json(t->h.r);
	p[0] = t->h.key;
	p[1] = hex;
	p[2] = payload;
	e = db_exec(&st_latest, p, &res);
	free(hex);
	cJSON_free(payload);
	if (e != DB_OK)
		return e;
	*id = res.nrows == 1 ? strtoll(db_val(&res, 0, "id"), NULL, 10) : 0;
	db_res_free(&res);
	return DB_OK;
}

/* POST /webhooks/retell: store, derive, answer 204. */
enum db_err
retell_handle(struct req *r, struct resp *p)
{
	struct rt	 t;
	int		 rc = -1;

	memset(&t, 0, sizeof(t));
	hook_init(&t.h, r, p, "retell");
	p->kind = RESP_EMPTY;
	t.call = rt_call_of(r->json);
	t.event = rt_str(r->json, "event");
	if (t.event == NULL && t.call == r->json)
		t.event = "call_ended";	/* the compat senders' shape */
	if (t.event == NULL) {
		resp_error(p, 400, "missing event");
		return DB_OK;
	}
	if (rt_is_call_event(t.event) && (t.call == NULL ||
	    rt_str(t.call, "call_id") == NULL)) {
		resp_error(p, 400, "missing call.call_id");
		return DB_OK;
	}
	t.h.key = rt_key(&t);
	if (rt_route(r, t.call, NULL, &t.h.org_id) != DB_OK)
		goto done;
	rc = hook_store(&t.h, NULL, t.event);
	/* transcript_updated: a later transcript replaces the first */
	if (rc == 1 && strcmp(t.event, "transcript_updated") == 0) {
		if (rt_latest(&t, &t.h.event) != DB_OK)
			rc = -1;
		else if (t.h.event != 0) {
			rc = 0;
			if (r->replay != NULL)
				r->replay->duplicate = 0;
		}
	}
	if (rc != 0) {
		rc = rc == 1 ? 0 : -1;	/* a redelivery changes nothing */
		goto done;
	}
	if (rt_is_call_event(t.event) && rt_call_event(&t) == -1)
		rc = -1;
done:
	return hook_end(&t.h, rc);
}

/*
 * What is known of a caller: how many earlier calls, and a name from
 * those calls or from a campaign's contacts.
 */
static const struct db_stmt st_caller = { "retell_caller",
	"SELECT (SELECT count(*) FROM calls WHERE organization_id = $1 AND "
	"from_number = $2) AS calls, coalesce((SELECT caller_name FROM calls "
	"WHERE organization_id = $1 AND from_number = $2 AND caller_name IS "
	"NOT NULL ORDER BY started_at DESC LIMIT 1), (SELECT cc.name FROM "
	"campaign_contacts cc JOIN campaigns c ON c.id = cc.campaign_id "
	"WHERE c.organization_id = $1 AND cc.phone = $2 AND cc.name IS NOT "
	"NULL ORDER BY cc.updated_at DESC LIMIT 1)) AS name", 2 };

/*
 * The call_inbound answer: the organization's agent, what it knows of
 * the caller and whether it is open, as dynamic variables (strings);
 * {"reject":true} for a blocked caller.  With the database away, from
 * the cached organization and without the caller.
 */
static int
rt_inbound_answer(struct rt *t, const char *from, cJSON **out)
{
	cJSON		*root, *ci, *vars, *meta;
	struct db_res	 res;
	const char	*p[2], *name;
	int		 blocked = 0;
	char		 n[24];

	*out = NULL;
	root = cJSON_CreateObject();
	ci = cJSON_AddObjectToObject(root, "call_inbound");
	if (t->h.org.id == NULL) {
		*out = root;	/* the number's own agent answers */
		return 0;
	}
	if (!t->away && from != NULL &&
	    store_is_blocked(t->h.org.id, from, &blocked) != DB_OK)
		goto fail;
	if (blocked) {
		cJSON_AddTrueToObject(ci, "reject");
		*out = root;
		return 0;
	}
	if (t->h.org.retell_agent_id != NULL)
		cJSON_AddStringToObject(ci, "override_agent_id",
		    t->h.org.retell_agent_id);
	vars = cJSON_AddObjectToObject(ci, "dynamic_variables");
	cJSON_AddStringToObject(vars, "organization_name", t->h.org.name);
	cJSON_AddStringToObject(vars, "business_hours",
	    store_org_open(&t->h.org) ? "true" : "false");
	if (!t->away && from != NULL) {
		p[0] = t->h.org.id;
		p[1] = from;
		if (db_exec(&st_caller, p, &res) != DB_OK)
			goto fail;
		snprintf(n, sizeof(n), "%s", db_val(&res, 0, "calls"));
		name = db_val(&res, 0, "name");
		cJSON_AddStringToObject(vars, "previous_calls", n);
		cJSON_AddStringToObject(vars, "caller_known",
		    strcmp(n, "0") != 0 || name != NULL ? "true" : "false");
		if (name != NULL)
			cJSON_AddStringToObject(vars, "caller_name", name);
		db_res_free(&res);
	}
	meta = cJSON_AddObjectToObject(ci, "metadata");
	cJSON_AddStringToObject(meta, "organization_id", t->h.org.id);
	*out = root;
	return 0;
fail:
	cJSON_Delete(root);
	return -1;
}

/* POST /webhooks/retell/inbound: find the organization, answer JSON. */
enum db_err
retell_inbound(struct req *r, struct resp *p)
{
	struct rt	 t;
	const cJSON	*ci;
	const char	*ev_name, *id;
	char		*from = NULL, *to = NULL, *text, d[17];
	cJSON		*answer;
	int		 rc = -1;

	memset(&t, 0, sizeof(t));
	hook_init(&t.h, r, p, "retell");
	ev_name = rt_str(r->json, "event");
	if (ev_name == NULL || strcmp(ev_name, "call_inbound") != 0 ||
	    (ci = rt_obj(r->json, "call_inbound")) == NULL) {
		resp_error(p, 400, "not a call_inbound event");
		return DB_OK;
	}
	if (rt_str(ci, "to_number") == NULL) {
		resp_error(p, 400, "missing call_inbound.to_number");
		return DB_OK;
	}
	from = rt_number(rt_str(ci, "from_number"));
	to = rt_number(rt_str(ci, "to_number"));
	if ((id = rt_str(ci, "call_id")) != NULL)
		xasprintf(&t.h.key, "call_inbound:%s", id);
	else {
		rt_digest(r, d);
		xasprintf(&t.h.key, "call_inbound:%s", d);
	}
	if (rt_route(r, NULL, to, &t.h.org_id) != DB_OK)
		goto done;
	if ((rc = hook_store(&t.h, NULL, "call_inbound")) == 1) {
		/* a redelivery: the first answer */
		if (t.h.prior != NULL &&
		    (answer = cJSON_Parse(t.h.prior)) != NULL)
			resp_set_json(p, 200, answer);
		else
			resp_set_json(p, 200, cJSON_Parse(
			    "{\"call_inbound\":{}}"));
		rc = 0;
		goto done;
	}
	if (rc == -1 || hook_org(&t.h) != DB_OK ||
	    rt_inbound_answer(&t, from, &answer) == -1) {
		rc = -1;
		goto done;
	}
	if ((text = cJSON_PrintUnformatted(answer)) == NULL)
		fatalx("retell: out of memory");
	rc = hook_keep_answer(&t.h, text) == DB_OK ? 0 : -1;
	free(text);
	if (rc == 0)
		resp_set_json(p, 200, answer);
	else
		cJSON_Delete(answer);
done:
	free(from);
	free(to);
	return hook_end(&t.h, rc);
}

/*
 * While the database is away: events are spooled and answered 204; an
 * inbound call gets the cached organization's agent and hours.
 */
int
retell_fallback(struct req *r, struct resp *p)
{
	struct rt	 t;
	cJSON		*answer;
	const char	*id;
	int		 rc;

	if (r->route->cls != MC_RT_INBOUND) {
		p->kind = RESP_EMPTY;
		return 0;
	}
	memset(&t, 0, sizeof(t));
	t.h.r = r;
	t.h.p = p;
	t.away = 1;
	if (r->json != NULL && (id = rt_explicit(r, NULL)) != NULL)
		(void)cache_org(id, NULL, &t.h.org);
	else if (r->json != NULL && cache_org(NULL, rt_owner_number(r->json),
	    &t.h.org) == 0)
		;
	else if ((id = kv_get(&r->qs, "organization_id")) != NULL)
		(void)cache_org(id, NULL, &t.h.org);
	store_org_scope(r, &t.h.org);
	rc = rt_inbound_answer(&t, NULL, &answer);
	if (rc == 0)
		resp_set_json(p, 200, answer);
	store_org_free(&t.h.org);
	return rc;
}
