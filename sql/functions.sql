-- functions.sql: every function telehook's statements call, as it is
-- now.  "telehookctl migrate" applies this file after the numbered
-- migrations, every time, with CREATE OR REPLACE: to change what a
-- function does, change it here.  Only a change of its arguments or its
-- result needs a numbered migration (which drops the old one; the new
-- one is then defined here).  The numbered migrations stay the history
-- of the schema: tables, columns, indexes and data.

-- A time as the JSON shapes write it, in UTC.  STABLE, as to_char() is,
-- so the planner inlines it.
CREATE OR REPLACE FUNCTION th_iso(timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- "Now" for the records of one transaction: the time the request was
-- received, which a spool drain sets (telehook.now) so replayed events
-- keep their real time; otherwise now().
CREATE OR REPLACE FUNCTION th_now() RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(current_setting('telehook.now', true), '')::timestamptz, now()) $$;

CREATE OR REPLACE FUNCTION th_route(p_provider text, p_explicit text,
    p_number text, p_call text, p_message text, p_account text) RETURNS uuid
    LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_scope	uuid := nullif(current_setting('telehook.scope', true), '')::uuid;
	v_ex	uuid;
	v_org	uuid;
BEGIN
	IF p_explicit IS NOT NULL AND p_explicit ~*
	    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
		v_ex := (SELECT id FROM organizations WHERE id = p_explicit::uuid);
	END IF;
	IF v_scope IS NULL THEN
		IF p_explicit IS NOT NULL THEN
			RETURN v_ex;
		END IF;
		RETURN coalesce(
		    (SELECT organization_id FROM phone_numbers WHERE e164 = p_number),
		    (SELECT organization_id FROM calls WHERE provider = p_provider AND
		     call_id = p_call),
		    (SELECT organization_id FROM messages WHERE provider = p_provider
		     AND message_id = p_message),
		    (SELECT id FROM organizations WHERE p_provider = 'twilio' AND
		     twilio_account_sid = p_account),
		    (SELECT min(organization_id::text)::uuid FROM provider_accounts
		     WHERE provider = p_provider AND account_id = p_account AND
		     p_account <> '' HAVING count(DISTINCT organization_id) = 1));
	END IF;
	-- Scoped: every input that names an organization must name this one.
	FOR v_org IN
		SELECT v_ex
		UNION ALL SELECT organization_id FROM phone_numbers
		    WHERE e164 = p_number
		UNION ALL SELECT organization_id FROM calls
		    WHERE provider = p_provider AND call_id = p_call
		UNION ALL SELECT organization_id FROM messages
		    WHERE provider = p_provider AND message_id = p_message
		UNION ALL SELECT id FROM organizations
		    WHERE p_provider = 'twilio' AND twilio_account_sid = p_account
	LOOP
		IF v_org IS NOT NULL AND v_org <> v_scope THEN
			RAISE EXCEPTION 'cross_tenant: the credential of one '
			    'organization names another'
			    USING ERRCODE = 'TH403';
		END IF;
	END LOOP;
	RETURN v_scope;
END
$$;

CREATE OR REPLACE FUNCTION th_org(p_id uuid) RETURNS TABLE (id uuid, name text,
    timezone text, greeting text, forward_to text, hours text,
    after_hours text, retell_agent_id text, dow int, minute int,
    agent_sip text, closed boolean)
    LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY SELECT o.id, o.name, o.timezone, o.greeting,
	    o.forward_to, o.hours, o.after_hours, o.retell_agent_id,
	    extract(dow FROM th_now() AT TIME ZONE o.timezone)::int,
	    (extract(hour FROM th_now() AT TIME ZONE o.timezone) * 60 +
	    extract(minute FROM th_now() AT TIME ZONE o.timezone))::int,
	    o.agent_sip,
	    EXISTS (SELECT 1 FROM closures c WHERE c.organization_id = o.id
	        AND (th_now() AT TIME ZONE o.timezone)::date
	        BETWEEN c.first_day AND c.last_day)
	FROM organizations o WHERE o.id = p_id;
END
$$;

CREATE OR REPLACE FUNCTION th_event_in(p_provider text, p_type text, p_key text,
    p_org uuid, p_route text, p_addr inet, p_ctype text, p_headers jsonb,
    p_body bytea, p_payload jsonb, p_spooled boolean,
    p_method text DEFAULT NULL, p_uri text DEFAULT NULL,
    p_rederive bigint DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
	v_id	bigint;
BEGIN
	IF p_rederive IS NOT NULL THEN
		UPDATE events SET provider_key = p_key, event_type = p_type,
		    organization_id = coalesce(organization_id, p_org),
		    payload = p_payload, failed_at = NULL, failure = NULL
		WHERE id = p_rederive AND NOT EXISTS (SELECT 1 FROM events e
		    WHERE e.provider = p_provider AND e.provider_key = p_key
		    AND e.id <> p_rederive)
		RETURNING id INTO v_id;
		RETURN v_id;
	END IF;
	INSERT INTO events (provider, event_type, provider_key,
	    organization_id, route, client_addr, content_type, headers, body,
	    payload, received_at, spooled_at, method, request_uri)
	VALUES (p_provider, p_type, p_key, p_org, p_route, p_addr, p_ctype,
	    p_headers, p_body, p_payload, th_now(),
	    CASE WHEN p_spooled THEN now() END, p_method, p_uri)
	ON CONFLICT (provider, provider_key) DO NOTHING RETURNING id INTO v_id;
	RETURN v_id;
END
$$;

-- A message, inserted or advanced: status only moves forward, and
-- prev_rank keeps the rank the update found (as calls).
CREATE OR REPLACE FUNCTION th_message_in(p_org uuid, p_provider text, p_id text,
    p_direction text, p_from text, p_to text, p_body text, p_num_media int,
    p_media jsonb, p_status text, p_rank smallint)
    RETURNS TABLE (id bigint, organization_id uuid, status text,
    status_rank smallint, prev_rank smallint)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	INSERT INTO messages AS m (organization_id, provider, message_id,
	    direction, from_number, to_number, body, num_media, media, status,
	    status_rank, status_history, created_at)
	VALUES (p_org, p_provider, p_id, p_direction, p_from, p_to, p_body,
	    coalesce(p_num_media, 0), coalesce(p_media, '[]'), p_status,
	    coalesce(p_rank, 0),
	    CASE WHEN p_status IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(
	    jsonb_build_object('status', p_status, 'at', th_iso(th_now()))) END,
	    th_now())
	ON CONFLICT (provider, message_id) DO UPDATE SET
	    prev_rank = m.status_rank,
	    organization_id = coalesce(m.organization_id,
	        excluded.organization_id),
	    from_number = coalesce(m.from_number, excluded.from_number),
	    to_number = coalesce(m.to_number, excluded.to_number),
	    body = coalesce(m.body, excluded.body),
	    status = CASE WHEN excluded.status_rank > m.status_rank
	        THEN excluded.status ELSE m.status END,
	    status_rank = greatest(m.status_rank, excluded.status_rank),
	    status_history = m.status_history || excluded.status_history,
	    updated_at = now()
	RETURNING m.id, m.organization_id, m.status, m.status_rank, m.prev_rank
	INTO id, organization_id, status, status_rank, prev_rank;
	RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION th_activity(p_org uuid, p_type text,
    p_summary text, p_call bigint, p_message bigint, p_event bigint)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO activity (organization_id, type, summary, call_id,
	    message_id, event_id, occurred_at)
	VALUES (p_org, p_type, p_summary, p_call, p_message, p_event, th_now())
	ON CONFLICT DO NOTHING;
END
$$;

-- What decides whether a number gets an auto-reply: has it opted out,
-- is it blocked, how many of its messages we answered in the last ten
-- minutes (the loop guard), is it one of our own.
CREATE OR REPLACE FUNCTION th_reply_state(p_org uuid, p_num text) RETURNS TABLE (
    opted_out boolean, blocked boolean, recent int, own boolean)
    LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY SELECT
	    EXISTS (SELECT 1 FROM opt_outs o WHERE o.organization_id = p_org
	    AND o.e164 = p_num),
	    EXISTS (SELECT 1 FROM blocked_numbers b WHERE
	    b.organization_id = p_org AND b.e164 = p_num),
	    (SELECT count(*) FROM messages m WHERE m.organization_id = p_org
	    AND m.from_number = p_num AND m.direction = 'inbound' AND
	    m.auto_reply AND m.created_at > th_now() - interval '10 minutes')::int,
	    EXISTS (SELECT 1 FROM phone_numbers n WHERE
	    n.organization_id = p_org AND n.e164 = p_num);
END
$$;

CREATE OR REPLACE FUNCTION th_sms_incoming(p_provider text, p_type text, p_key text,
    p_explicit text, p_number text, p_account text, p_route text, p_addr inet,
    p_ctype text, p_headers jsonb, p_body bytea, p_payload jsonb,
    p_spooled boolean, p_message_id text, p_from text, p_to text,
    p_text text, p_num_media int, p_media jsonb, p_rank smallint,
    p_summary text, p_method text DEFAULT NULL, p_uri text DEFAULT NULL,
    p_rederive bigint DEFAULT NULL)
    RETURNS TABLE (event_id bigint, answer text, org_id uuid, name text,
    timezone text, greeting text, forward_to text, hours text,
    after_hours text, retell_agent_id text, dow int, minute int,
    message bigint, opted_out boolean, blocked boolean, recent int,
    own boolean, rules json)
    LANGUAGE plpgsql AS $$
DECLARE
	v_org	uuid;
	v_event	bigint;
	v_msg	bigint;
BEGIN
	v_org := th_route(p_provider, p_explicit, p_number, NULL,
	    p_message_id, p_account);
	v_event := th_event_in(p_provider, p_type, p_key, v_org, p_route,
	    p_addr, p_ctype, p_headers, p_body, p_payload, p_spooled,
	    p_method, p_uri, p_rederive);
	IF v_event IS NULL THEN
		RETURN QUERY SELECT NULL::bigint, e.answer, e.organization_id,
		    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL::int,
		    NULL::int, NULL::bigint, NULL::boolean, NULL::boolean,
		    NULL::int, NULL::boolean, NULL::json
		    FROM events e WHERE e.provider = p_provider AND
		    e.provider_key = p_key;
		RETURN;
	END IF;
	SELECT m.id INTO v_msg FROM th_message_in(v_org, p_provider,
	    p_message_id, 'inbound', p_from, p_to, p_text, p_num_media,
	    p_media, 'received', p_rank) m;
	IF v_org IS NULL THEN
		RETURN QUERY SELECT v_event, NULL::text, NULL::uuid, NULL, NULL,
		    NULL, NULL, NULL, NULL, NULL, NULL::int, NULL::int, v_msg,
		    NULL::boolean, NULL::boolean, NULL::int, NULL::boolean,
		    NULL::json;
		RETURN;
	END IF;
	PERFORM th_activity(v_org, 'sms_reply', p_summary, NULL, v_msg,
	    v_event);
	RETURN QUERY SELECT v_event, NULL::text, o.id, o.name, o.timezone,
	    o.greeting, o.forward_to, o.hours, o.after_hours,
	    o.retell_agent_id, o.dow, o.minute, v_msg, s.opted_out, s.blocked,
	    s.recent, s.own,
	    coalesce((SELECT json_agg(json_build_array(array_to_string(
	        r.keywords, ','), r.reply) ORDER BY r.id) FROM reply_rules r
	        WHERE r.organization_id = v_org AND r.channel = 'sms'), '[]')
	FROM th_org(v_org) o, th_reply_state(v_org, p_from) s;
END
$$;

-- Move call p_call to outcome p_outcome if that is forward; the row
-- (organization, direction, numbers, recording) when it moved, else
-- nothing.  p_again (a replay re-deriving its event, architecture.md §6) also
-- returns the row when the call is at that outcome already, so what the
-- outcome logs is written if it is missing; the writes themselves are
-- idempotent per event.
CREATE OR REPLACE FUNCTION th_call_outcome(p_call bigint, p_outcome text,
    p_again boolean DEFAULT false)
    RETURNS TABLE (organization_id uuid, direction text, from_number text,
    to_number text, recording_url text, call_id text)
    LANGUAGE sql AS $$
	UPDATE calls c SET outcome = p_outcome,
	    outcome_rank = CASE p_outcome WHEN 'missed' THEN 1
	        WHEN 'voicemail' THEN 2 WHEN 'answered' THEN 3 END,
	    answered_at = CASE WHEN p_outcome = 'answered'
	        THEN coalesce(c.answered_at, th_now()) ELSE c.answered_at END,
	    updated_at = th_now()
	WHERE c.id = p_call AND (c.outcome_rank < CASE p_outcome
	    WHEN 'missed' THEN 1 WHEN 'voicemail' THEN 2
	    WHEN 'answered' THEN 3 END OR (p_again AND c.outcome = p_outcome))
	RETURNING c.organization_id, c.direction, c.from_number, c.to_number,
	    c.recording_url, c.call_id
$$;

-- Insert call $3 of provider $2, or move it forward: its status only to
-- a higher rank (RANK_ANSWERED is 4, RANK_FINAL 5, src/extern.h), a
-- field only from nothing to something, except what a later event
-- knows better (times given, duration, transcript, analysis).  prev_rank
-- keeps the rank the update found, read from the row it locked, so the
-- caller learns whether this very event moved the call, even when two
-- events race.  Times are milliseconds since the epoch.
CREATE OR REPLACE FUNCTION th_call_upsert(p_org uuid, p_provider text,
    p_call_id text, p_direction text, p_from text, p_to text, p_status text,
    p_rank smallint, p_duration int, p_recording text, p_transcript text,
    p_started_ms bigint, p_ended_ms bigint, p_cost_cents int, p_reason text,
    p_summary text, p_sentiment text, p_successful boolean, p_custom jsonb,
    p_agent text, p_campaign uuid, p_contact uuid, p_caller_name text,
    p_analyzed boolean, p_cost numeric, p_currency text)
    RETURNS TABLE (o_id bigint, o_org uuid, o_status text, o_rank smallint,
    o_direction text, o_from text, o_to text, o_prev_rank smallint,
    o_summary text, o_analyzed boolean, o_campaign uuid, o_contact uuid,
    o_successful boolean, o_outcome text, o_recording text, o_call_id text)
    LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY INSERT INTO calls AS c (organization_id, provider,
	    call_id, direction, from_number, to_number, status, status_rank,
	    duration_s, recording_url, transcript, started_at, answered_at,
	    ended_at, cost_cents, disconnection_reason, summary, sentiment,
	    successful, custom_data, agent_id, campaign_id, contact_id,
	    caller_name, analyzed_at, cost, cost_currency)
	VALUES (p_org, p_provider, p_call_id, p_direction, p_from, p_to,
	    coalesce(p_status, 'queued'), coalesce(p_rank, 0), p_duration,
	    p_recording, p_transcript,
	    coalesce(to_timestamp(p_started_ms::double precision / 1000),
	        th_now()),
	    CASE WHEN p_rank >= 4 THEN coalesce(to_timestamp(
	        p_started_ms::double precision / 1000), th_now()) END,
	    CASE WHEN p_ended_ms IS NOT NULL
	        THEN to_timestamp(p_ended_ms::double precision / 1000)
	        WHEN p_rank >= 5 THEN th_now() END,
	    p_cost_cents, p_reason, p_summary, p_sentiment, p_successful,
	    p_custom, p_agent, p_campaign, p_contact, p_caller_name,
	    CASE WHEN p_analyzed THEN th_now() END, p_cost, p_currency)
	ON CONFLICT (provider, call_id) DO UPDATE SET
	    prev_rank = c.status_rank,
	    organization_id = coalesce(c.organization_id,
	        excluded.organization_id),
	    direction = coalesce(c.direction, excluded.direction),
	    from_number = coalesce(c.from_number, excluded.from_number),
	    to_number = coalesce(c.to_number, excluded.to_number),
	    status = CASE WHEN excluded.status_rank > c.status_rank
	        THEN excluded.status ELSE c.status END,
	    status_rank = greatest(c.status_rank, excluded.status_rank),
	    started_at = CASE WHEN p_started_ms IS NOT NULL
	        THEN excluded.started_at ELSE c.started_at END,
	    answered_at = coalesce(c.answered_at, excluded.answered_at),
	    ended_at = coalesce(CASE WHEN p_ended_ms IS NOT NULL
	        THEN excluded.ended_at END, c.ended_at, excluded.ended_at),
	    duration_s = coalesce(excluded.duration_s, c.duration_s),
	    recording_url = coalesce(excluded.recording_url, c.recording_url),
	    transcript = coalesce(excluded.transcript, c.transcript),
	    cost_cents = coalesce(excluded.cost_cents, c.cost_cents),
	    disconnection_reason = coalesce(excluded.disconnection_reason,
	        c.disconnection_reason),
	    summary = coalesce(excluded.summary, c.summary),
	    sentiment = coalesce(excluded.sentiment, c.sentiment),
	    successful = coalesce(excluded.successful, c.successful),
	    custom_data = coalesce(excluded.custom_data, c.custom_data),
	    agent_id = coalesce(excluded.agent_id, c.agent_id),
	    campaign_id = coalesce(c.campaign_id, excluded.campaign_id),
	    contact_id = coalesce(c.contact_id, excluded.contact_id),
	    caller_name = coalesce(excluded.caller_name, c.caller_name),
	    analyzed_at = coalesce(c.analyzed_at, excluded.analyzed_at),
	    cost = coalesce(excluded.cost, c.cost),
	    cost_currency = coalesce(excluded.cost_currency, c.cost_currency),
	    updated_at = now()
	RETURNING c.id, c.organization_id, c.status, c.status_rank,
	    c.direction, c.from_number, c.to_number, c.prev_rank, c.summary,
	    c.analyzed_at IS NOT NULL, c.campaign_id, c.contact_id,
	    c.successful, c.outcome, c.recording_url, c.call_id;
END
$$;

-- The dashboard (telehook.8, GET /api/v1/orgs/{org}/dashboard): KPIs for
-- month p_month (YYYY-MM; NULL: this month) in the organization's time
-- zone, and the latest activity; NULL for an unknown organization.
-- Answered and missed are the calls' outcomes (architecture.md §7), not
-- their statuses.  calls_org_started carries the call KPIs,
-- messages_org_created the SMS ones, activity_org_id the list.
CREATE OR REPLACE FUNCTION th_api_dashboard(p_org uuid, p_month text)
    RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (WITH o AS (SELECT id, name, timezone, coalesce(p_month,
	    to_char(now() AT TIME ZONE timezone, 'YYYY-MM')) AS month
	    FROM organizations WHERE id = p_org),
	b AS (SELECT o.*, to_date(o.month, 'YYYY-MM')::timestamp
	    AT TIME ZONE o.timezone AS t0, (to_date(o.month, 'YYYY-MM') +
	    interval '1 month')::timestamp AT TIME ZONE o.timezone AS t1
	    FROM o),
	c AS (SELECT count(*) FILTER (WHERE outcome = 'answered') AS answered,
	    count(*) FILTER (WHERE direction = 'inbound' AND outcome IN
	        ('missed', 'voicemail')) AS missed,
	    coalesce(round(avg(duration_s) FILTER (WHERE outcome = 'answered'
	        AND duration_s IS NOT NULL)), 0)::int AS avg_s,
	    count(*) FILTER (WHERE analyzed_at IS NOT NULL) AS analyzed,
	    count(*) FILTER (WHERE analyzed_at IS NOT NULL AND successful)
	        AS ok
	    FROM calls, b WHERE calls.organization_id = b.id AND
	    calls.started_at >= b.t0 AND calls.started_at < b.t1),
	m AS (SELECT count(*) FILTER (WHERE direction = 'inbound') AS inbound,
	    count(*) FILTER (WHERE direction = 'outbound' AND status_rank >= 4
	        AND status NOT IN ('failed', 'undelivered', 'canceled'))
	        AS sent
	    FROM messages, b WHERE messages.organization_id = b.id AND
	    messages.created_at >= b.t0 AND messages.created_at < b.t1),
	a AS (SELECT coalesce(json_agg(json_build_object('id', a.id::text,
	    'type', a.type, 'occurred_at', th_iso(a.occurred_at), 'summary',
	    a.summary, 'call_id', c.call_id, 'message_id', m.message_id)
	    ORDER BY a.id DESC), '[]') AS items
	    FROM (SELECT * FROM activity WHERE organization_id = p_org
	    ORDER BY id DESC LIMIT 20) a
	    LEFT JOIN calls c ON c.id = a.call_id
	    LEFT JOIN messages m ON m.id = a.message_id)
	SELECT json_build_object('organization_id', b.id, 'name', b.name,
	    'month', b.month,
	    'timezone', b.timezone, 'kpis', json_build_object(
	    'answered_calls', c.answered, 'missed_calls', c.missed,
	    'sms_follow_ups', m.inbound, 'sms_sent', m.sent,
	    'avg_call_seconds', c.avg_s, 'ai_calls_analyzed', c.analyzed,
	    'ai_calls_successful', c.ok), 'recent_activity', a.items)::text
	FROM b, c, m, a);
END
$$;

-- A page of an organization's activity, newest first: p_limit items
-- with ids below p_before (NULL: from the newest), and "next", the
-- p_before of the following page, when there is one (activity_org_id).
CREATE OR REPLACE FUNCTION th_api_activity(p_org uuid, p_before bigint,
    p_limit int) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (WITH page AS (SELECT a.id, a.type, a.occurred_at, a.summary,
	    c.call_id, m.message_id FROM activity a
	    LEFT JOIN calls c ON c.id = a.call_id
	    LEFT JOIN messages m ON m.id = a.message_id
	    WHERE a.organization_id = p_org AND
	    (p_before IS NULL OR a.id < p_before)
	    ORDER BY a.id DESC LIMIT p_limit + 1)
	SELECT json_build_object('activity', coalesce((SELECT json_agg(
	    json_build_object('id', x.id::text, 'type', x.type, 'occurred_at',
	    th_iso(x.occurred_at), 'summary', x.summary, 'call_id', x.call_id,
	    'message_id', x.message_id) ORDER BY x.id DESC)
	    FROM (SELECT * FROM page ORDER BY id DESC LIMIT p_limit) x), '[]'),
	    'next', CASE WHEN (SELECT count(*) FROM page) > p_limit THEN
	    (SELECT min(y.id)::text FROM (SELECT id FROM page ORDER BY id DESC
	    LIMIT p_limit) y) END)::text);
END
$$;

-- An organization's campaigns, newest first, with their contacts
-- counted by status (campaigns_org, campaign_contacts_status).
CREATE OR REPLACE FUNCTION th_api_campaigns(p_org uuid) RETURNS text
    LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT json_build_object('campaigns', coalesce(json_agg(
	    json_build_object('id', c.id, 'name', c.name, 'total_contacts',
	    coalesce(s.total, 0), 'processed', c.processed, 'successful',
	    c.successful, 'contacts_by_status', json_build_object(
	    'pending', coalesce(s.pending, 0),
	    'calling', coalesce(s.calling, 0),
	    'completed', coalesce(s.completed, 0),
	    'failed', coalesce(s.failed, 0),
	    'no_answer', coalesce(s.no_answer, 0)))
	    ORDER BY c.created_at DESC, c.id), '[]'))::text
	FROM campaigns c LEFT JOIN LATERAL (SELECT count(*) AS total,
	    count(*) FILTER (WHERE status = 'pending') AS pending,
	    count(*) FILTER (WHERE status = 'calling') AS calling,
	    count(*) FILTER (WHERE status = 'completed') AS completed,
	    count(*) FILTER (WHERE status = 'failed') AS failed,
	    count(*) FILTER (WHERE status = 'no_answer') AS no_answer
	    FROM campaign_contacts WHERE campaign_id = c.id) s ON true
	WHERE c.organization_id = p_org);
END
$$;

-- The staff's calls, newest first (calls_org_id, calls_org_outcome_id):
-- p_status missed is every missed call, voicemail included (a voicemail
-- is a missed call with a recording, architecture.md §7); voicemail and
-- answered are those outcomes alone.  p_since bounds started_at.
CREATE OR REPLACE FUNCTION th_api_calls(p_org uuid, p_status text,
    p_since timestamptz, p_before bigint, p_limit int) RETURNS text
    LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (WITH page AS (SELECT c.* FROM calls c
	    WHERE c.organization_id = p_org AND
	    (p_before IS NULL OR c.id < p_before) AND
	    (p_since IS NULL OR c.started_at >= p_since) AND
	    (p_status IS NULL OR c.outcome = p_status OR
	     (p_status = 'missed' AND c.outcome = 'voicemail'))
	    ORDER BY c.id DESC LIMIT p_limit + 1)
	SELECT json_build_object('calls', coalesce((SELECT json_agg(
	    json_build_object('call_id', x.call_id, 'provider', x.provider,
	    'direction', x.direction, 'from', x.from_number, 'to',
	    x.to_number, 'caller_name', x.caller_name, 'status', x.status,
	    'outcome', x.outcome, 'started_at', th_iso(x.started_at),
	    'ended_at', th_iso(x.ended_at), 'duration_s', x.duration_s, 'agent_id',
	    x.agent_id, 'summary', x.summary, 'sentiment', x.sentiment,
	    'successful', x.successful, 'has_recording',
	    x.recording_url IS NOT NULL, 'transcript_excerpt',
	    CASE WHEN length(x.transcript) > 200 THEN
	    left(x.transcript, 199) || '…' ELSE x.transcript END,
	    'handled_at', th_iso(x.handled_at)) ORDER BY x.id DESC)
	    FROM (SELECT * FROM page ORDER BY id DESC LIMIT p_limit) x), '[]'),
	    'next', CASE WHEN (SELECT count(*) FROM page) > p_limit THEN
	    (SELECT min(y.id)::text FROM (SELECT id FROM page ORDER BY id DESC
	    LIMIT p_limit) y) END)::text);
END
$$;

-- SMS threads, the latest first: the organization's messages newest
-- first (messages_org_id), keeping each that is its contact's newest (a
-- probe of messages_org_contact), until a page of them; the first pages
-- read about a page of messages, however long the history.  A walk that
-- has passed 2,000 messages (a page deep in a long history, or past the
-- last thread) finds the rest by grouping the messages older than where
-- it stopped, a probe a contact.  p_before is a message id:
-- threads whose newest message is older.  The counts are index ranges
-- of messages_org_contact too.
CREATE OR REPLACE FUNCTION th_api_conversations(p_org uuid, p_before bigint,
    p_limit int) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_ids	bigint[] := '{}';
	v_last	bigint := coalesce(p_before, 9223372036854775807);
	v_n	int;
	v_walked int := 0;
	r	record;
BEGIN
	-- a hundred at a time: planned for the first rows, so by the
	-- index once the statistics know the organization
	<<walk>>
	LOOP
		v_n := 0;
		FOR r IN SELECT m.id, CASE WHEN m.direction = 'inbound' THEN
		    m.from_number ELSE m.to_number END AS contact
		    FROM messages m WHERE m.organization_id = p_org AND
		    m.id < v_last ORDER BY m.id DESC LIMIT 100 LOOP
			v_n := v_n + 1;
			v_last := r.id;
			CONTINUE WHEN r.contact IS NULL OR EXISTS (SELECT 1
			    FROM messages n WHERE n.organization_id = p_org AND
			    (CASE WHEN n.direction = 'inbound' THEN
			    n.from_number ELSE n.to_number END) = r.contact AND
			    n.id > r.id);
			v_ids := v_ids || r.id;
			EXIT walk WHEN cardinality(v_ids) > p_limit;
		END LOOP;
		EXIT WHEN v_n < 100;
		v_walked := v_walked + v_n;
		IF v_walked >= 2000 THEN
			v_ids := v_ids || ARRAY(SELECT l.id FROM (SELECT
			    CASE WHEN m.direction = 'inbound' THEN m.from_number
			    ELSE m.to_number END AS contact, max(m.id) AS id
			    FROM messages m WHERE m.organization_id = p_org AND
			    m.id < v_last GROUP BY 1) l WHERE l.contact IS NOT
			    NULL AND NOT EXISTS (SELECT 1 FROM messages n WHERE
			    n.organization_id = p_org AND (CASE WHEN
			    n.direction = 'inbound' THEN n.from_number ELSE
			    n.to_number END) = l.contact AND n.id > l.id)
			    ORDER BY l.id DESC LIMIT p_limit + 1 -
			    cardinality(v_ids));
			EXIT;
		END IF;
	END LOOP;
	RETURN (WITH page AS (SELECT m.*, CASE WHEN m.direction =
	    'inbound' THEN m.from_number ELSE m.to_number END AS contact
	    FROM messages m WHERE m.id = ANY (v_ids[1:p_limit]) AND
	    m.organization_id = p_org)
	SELECT json_build_object('conversations', coalesce((SELECT json_agg(
	    json_build_object('contact', x.contact, 'messages', (SELECT
	    count(*) FROM messages n WHERE n.organization_id = p_org AND
	    (CASE WHEN n.direction = 'inbound' THEN n.from_number ELSE
	    n.to_number END) = x.contact),
	    'last_message_id', x.message_id, 'last_direction', x.direction,
	    'last_body', x.body, 'last_status', x.status, 'last_auto_reply',
	    x.auto_reply, 'last_at', th_iso(x.created_at)) ORDER BY x.id DESC)
	    FROM page x), '[]'),
	    'next', CASE WHEN cardinality(v_ids) > p_limit THEN
	    v_ids[p_limit]::text END)::text);
END
$$;

-- One thread, newest first (messages_org_contact): both directions,
-- each with its delivery status and history, auto-replies marked.
CREATE OR REPLACE FUNCTION th_api_conversation(p_org uuid, p_contact text,
    p_before bigint, p_limit int) RETURNS text
    LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (WITH page AS (SELECT m AS msg, m.id FROM messages m
	    WHERE m.organization_id = p_org AND (CASE WHEN m.direction =
	    'inbound' THEN m.from_number ELSE m.to_number END) = p_contact AND
	    (p_before IS NULL OR m.id < p_before)
	    ORDER BY m.id DESC LIMIT p_limit + 1)
	SELECT json_build_object('contact', p_contact,
	    'messages', coalesce((SELECT json_agg(th_message_json(x.msg)
	    ORDER BY x.id DESC) FROM (SELECT * FROM page ORDER BY id DESC
	    LIMIT p_limit) x), '[]'),
	    'next', CASE WHEN (SELECT count(*) FROM page) > p_limit THEN
	    (SELECT min(y.id)::text FROM (SELECT id FROM page ORDER BY id DESC
	    LIMIT p_limit) y) END)::text);
END
$$;

-- One campaign with its contacts in file order, paged by position
-- (campaigns_pkey, campaign_contacts_campaign_id_position_key); NULL
-- when the campaign is not the organization's.
CREATE OR REPLACE FUNCTION th_api_campaign(p_org uuid, p_id uuid,
    p_after int, p_limit int) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (WITH page AS (SELECT k.* FROM campaign_contacts k
	    WHERE k.campaign_id = p_id AND (p_after IS NULL OR
	    k.position > p_after) ORDER BY k.position LIMIT p_limit + 1)
	SELECT json_build_object('id', c.id, 'name', c.name,
	    'created_at', th_iso(c.created_at), 'total_contacts',
	    (SELECT count(*) FROM campaign_contacts WHERE campaign_id = c.id),
	    'processed', c.processed, 'successful', c.successful,
	    'contacts', coalesce((SELECT json_agg(json_build_object('id',
	    x.id, 'position', x.position, 'phone', x.phone, 'name', x.name,
	    'status', x.status, 'call_id', x.call_id, 'outcome', cl.outcome,
	    'duration_s', cl.duration_s, 'summary', cl.summary, 'successful',
	    x.successful, 'updated_at', th_iso(x.updated_at))
	    ORDER BY x.position) FROM (SELECT * FROM page ORDER BY position
	    LIMIT p_limit) x LEFT JOIN LATERAL (SELECT outcome, duration_s,
	    summary FROM calls WHERE organization_id = p_org AND
	    call_id = x.call_id ORDER BY id DESC LIMIT 1) cl ON true), '[]'),
	    'next', CASE WHEN (SELECT count(*) FROM page) > p_limit THEN
	    (SELECT max(y.position)::text FROM (SELECT position FROM page
	    ORDER BY position LIMIT p_limit) y) END)::text
	FROM campaigns c WHERE c.id = p_id AND c.organization_id = p_org);
END
$$;

-- The daily summary mailed to the staff (mail.c): one local day of an
-- organization, as lines of text (calls_org_started,
-- messages_org_created).
CREATE OR REPLACE FUNCTION th_mail_summary(p_org uuid, p_day date)
    RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_tz	text;
	v_t0	timestamptz;
	v_t1	timestamptz;
	c	record;
	m	record;
BEGIN
	SELECT timezone INTO v_tz FROM organizations WHERE id = p_org;
	v_t0 := p_day::timestamp AT TIME ZONE v_tz;
	v_t1 := (p_day + 1)::timestamp AT TIME ZONE v_tz;
	SELECT count(*) FILTER (WHERE outcome = 'answered') AS answered,
	    count(*) FILTER (WHERE direction = 'inbound' AND outcome IN
	        ('missed', 'voicemail')) AS missed,
	    count(*) FILTER (WHERE outcome = 'voicemail') AS voicemail,
	    count(*) FILTER (WHERE direction = 'inbound' AND outcome IN
	        ('missed', 'voicemail') AND handled_at IS NULL) AS open
	    INTO c FROM calls WHERE organization_id = p_org AND
	    started_at >= v_t0 AND started_at < v_t1;
	SELECT count(*) FILTER (WHERE direction = 'inbound') AS inbound,
	    count(*) FILTER (WHERE direction = 'outbound') AS outbound
	    INTO m FROM messages WHERE organization_id = p_org AND
	    created_at >= v_t0 AND created_at < v_t1;
	RETURN format(E'Answered calls: %s\nMissed calls: %s (voicemail: %s; '
	    'not yet handled: %s)\nSMS received: %s\nSMS sent: %s\n',
	    c.answered, c.missed, c.voicemail, c.open, m.inbound, m.outbound);
END
$$;

-- A call as GET .../calls/{call} shows it, and as a delivered event
-- carries it (architecture.md §11, §14).
CREATE OR REPLACE FUNCTION th_call_json(c calls) RETURNS json
    LANGUAGE sql STABLE AS $$
	SELECT json_build_object('call_id', c.call_id, 'provider', c.provider,
	    'direction', c.direction, 'from', c.from_number, 'to',
	    c.to_number, 'status', c.status, 'started_at',
	    th_iso(c.started_at), 'ended_at', th_iso(c.ended_at),
	    'duration_s', c.duration_s, 'recording_url', c.recording_url,
	    'transcript', c.transcript, 'summary', c.summary, 'sentiment',
	    c.sentiment, 'successful', c.successful, 'disconnection_reason',
	    c.disconnection_reason, 'cost_cents', c.cost_cents, 'cost',
	    c.cost::text, 'cost_currency', c.cost_currency, 'outcome',
	    c.outcome, 'handled_at', th_iso(c.handled_at), 'campaign_id',
	    c.campaign_id, 'contact_id', c.contact_id)
$$;

-- A message as a conversation shows it, and as an event carries it.
CREATE OR REPLACE FUNCTION th_message_json(m messages) RETURNS json
    LANGUAGE sql STABLE AS $$
	SELECT json_build_object('id', m.id::text, 'message_id', m.message_id,
	    'provider', m.provider, 'direction', m.direction, 'from',
	    m.from_number, 'to', m.to_number, 'body', m.body, 'num_media',
	    m.num_media, 'status', m.status, 'status_history',
	    m.status_history, 'auto_reply', m.auto_reply, 'reply_text',
	    m.reply_text, 'created_at', th_iso(m.created_at))
$$;

-- One event of p_org: the envelope {"type","timestamp","data"}, once,
-- and its id in delivery_pending, for the sender to send to the
-- endpoints that want it (src/deliver.c).  Two small rows are all a
-- webhook pays.
CREATE OR REPLACE FUNCTION th_deliver(p_org uuid, p_type text,
    p_subject text, p_data json) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	v_id	bigint;
BEGIN
	INSERT INTO delivery_events (organization_id, type, subject, body)
	VALUES (p_org, p_type, p_subject, json_build_object('type', p_type,
	    'timestamp', th_iso(th_now()), 'data', p_data)::text)
	RETURNING id INTO v_id;
	INSERT INTO delivery_pending (event_id) VALUES (v_id);
END
$$;

-- What an event's attempts send: its snapshot, or the envelope of the
-- message it names (m, the message whose id is v.message_ref), stamped
-- when the message was stored (as a snapshot is when it is taken).
-- Only the event's organization's message: were m another's, data is
-- null.  The caller looks m up (the sender's batch joins it): with no
-- subquery of its own the function is inlined into the batch's query,
-- where as a call per event it was a fifth of the sender's backend
-- (bench/README).
CREATE OR REPLACE FUNCTION th_event_body(v delivery_events, m messages)
    RETURNS text LANGUAGE sql STABLE AS $$
	SELECT coalesce(v.body, json_build_object('type', v.type,
	    'timestamp', th_iso(coalesce(CASE WHEN m.organization_id =
	    v.organization_id THEN m.created_at END, v.created_at)), 'data',
	    CASE WHEN m.organization_id = v.organization_id THEN
	    th_message_json(m) END)::text)
$$;
CREATE OR REPLACE FUNCTION th_event_body(v delivery_events) RETURNS text
    LANGUAGE sql STABLE AS $$
	SELECT th_event_body(v, (SELECT m FROM messages m WHERE
	    m.id = v.message_ref))
$$;

-- An endpoint removed (or its organization) takes its deliveries with
-- it (sql/014: no foreign key).  The sender's batch statement has the
-- endpoint's row locked while it writes them, so this runs after it.
CREATE OR REPLACE FUNCTION th_endpoints_removed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM deliveries WHERE endpoint_id = OLD.id;
	RETURN NULL;
END
$$;

-- The sender takes pending events in batches itself (src/deliver.c).
DROP FUNCTION IF EXISTS th_deliver_fan_out(int);

-- A call's events: started (a new row), answered, missed or
-- voicemail.received (its outcome moved), ended (a final status
-- reached), analyzed.  Status and outcome only move forward, so a
-- redelivered or replayed event changes nothing and sends nothing.
CREATE OR REPLACE FUNCTION th_calls_deliver() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
	v_new	boolean := TG_OP = 'INSERT';
	v_types	text[] := '{}';
	v_type	text;
	v_data	json;
	v_final	text[] := ARRAY['completed', 'busy', 'failed', 'no-answer',
		    'canceled'];
BEGIN
	IF v_new THEN
		v_types := v_types || 'call.started'::text;
	END IF;
	IF NEW.outcome IS NOT NULL AND (v_new OR
	    NEW.outcome IS DISTINCT FROM OLD.outcome) THEN
		v_types := v_types || CASE NEW.outcome
		    WHEN 'answered' THEN 'call.answered'
		    WHEN 'missed' THEN 'call.missed'
		    ELSE 'voicemail.received' END;
	END IF;
	IF NEW.status = ANY (v_final) AND (v_new OR
	    NOT OLD.status = ANY (v_final)) THEN
		v_types := v_types || 'call.ended'::text;
	END IF;
	IF NEW.analyzed_at IS NOT NULL AND (v_new OR OLD.analyzed_at IS NULL)
	    THEN
		v_types := v_types || 'call.analyzed'::text;
	END IF;
	-- most updates tell of nothing: no JSON, no lookup for them
	IF cardinality(v_types) = 0 OR NEW.organization_id IS NULL OR
	    NOT EXISTS (SELECT 1 FROM endpoints WHERE
	    organization_id = NEW.organization_id AND enabled) THEN
		RETURN NULL;
	END IF;
	v_data := th_call_json(NEW);
	FOREACH v_type IN ARRAY v_types LOOP
		PERFORM th_deliver(NEW.organization_id, v_type, 'call:' ||
		    NEW.provider || ':' || NEW.call_id, v_data);
	END LOOP;
	RETURN NULL;
END
$$;

-- A message's events: sms.received (a new inbound one), sms.sent,
-- sms.delivered and sms.failed (an outbound one reached that status).
CREATE OR REPLACE FUNCTION th_messages_deliver() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
	v_type	text;
BEGIN
	IF NEW.direction = 'inbound' THEN
		v_type := CASE WHEN TG_OP = 'INSERT' THEN 'sms.received' END;
	ELSIF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
		v_type := CASE NEW.status WHEN 'sent' THEN 'sms.sent'
		    WHEN 'delivered' THEN 'sms.delivered'
		    WHEN 'failed' THEN 'sms.failed'
		    WHEN 'undelivered' THEN 'sms.failed' END;
	END IF;
	IF v_type IS NULL OR NEW.organization_id IS NULL OR NOT EXISTS (
	    SELECT 1 FROM endpoints WHERE
	    organization_id = NEW.organization_id AND enabled) THEN
		RETURN NULL;
	END IF;
	-- an incoming message's: its id, not a copy (sql/013); written
	-- here, not by a function this calls, as it is most of a busy
	-- organization's events
	IF v_type = 'sms.received' THEN
		WITH v AS (INSERT INTO delivery_events (organization_id, type,
		    subject, message_ref) VALUES (NEW.organization_id, v_type,
		    'message:' || NEW.provider || ':' || NEW.message_id, NEW.id)
		    RETURNING id)
		INSERT INTO delivery_pending (event_id) SELECT id FROM v;
	ELSE
		PERFORM th_deliver(NEW.organization_id, v_type, 'message:' ||
		    NEW.provider || ':' || NEW.message_id, th_message_json(NEW));
	END IF;
	RETURN NULL;
END
$$;

-- campaign.contact_updated: a contact's status moved.
CREATE OR REPLACE FUNCTION th_contacts_deliver() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
	v_org	uuid;
BEGIN
	IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
		RETURN NULL;
	END IF;
	SELECT organization_id INTO v_org FROM campaigns
	    WHERE id = NEW.campaign_id;
	IF NOT EXISTS (SELECT 1 FROM endpoints WHERE organization_id = v_org
	    AND enabled) THEN
		RETURN NULL;
	END IF;
	PERFORM th_deliver(v_org, 'campaign.contact_updated', 'contact:' ||
	    NEW.id, json_build_object('campaign_id', NEW.campaign_id, 'id',
	    NEW.id, 'position', NEW.position, 'phone', NEW.phone, 'name',
	    NEW.name, 'status', NEW.status, 'call_id', NEW.call_id,
	    'successful', NEW.successful, 'updated_at',
	    th_iso(NEW.updated_at)));
	RETURN NULL;
END
$$;
