-- 002_sms_path.sql: an incoming SMS in one round trip (issue 9).
--
-- The statements a worker runs for every event become functions here,
-- so each is defined once: the worker calls them one at a time for most
-- events, and th_sms_incoming() composes them for an incoming SMS, the
-- busiest path, which then needs one statement besides COMMIT (two when
-- it is answered with a reply).  They are PL/pgSQL, not SQL, functions:
-- PL/pgSQL keeps the plans of its statements for the session, where a
-- SQL function called from another is planned again at every call.
--
-- The loop guard only ever counts messages we answered: a partial index
-- of those replaces the index of every message by sender, so the guard
-- stays cheap for a number that floods us and each new message keeps one
-- index fewer up to date.

DROP INDEX messages_peer;
CREATE INDEX messages_replied ON messages (organization_id, from_number, created_at)
    WHERE auto_reply AND direction = 'inbound';

-- th_iso() was declared IMMUTABLE, but to_char() is only STABLE, so the
-- planner never inlined it: every call parsed and planned its body
-- again.  STABLE is the truth, and lets it be inlined.
CREATE OR REPLACE FUNCTION th_iso(timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- architecture.md §4: the organization an event belongs to.  An explicit id wins
-- (and one that names no organization leaves the event unrouted), then
-- the owner of the number, of the call or message already stored, of
-- the provider account.
CREATE FUNCTION th_route(p_provider text, p_explicit text, p_number text,
    p_call text, p_message text, p_account text) RETURNS uuid
    LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF p_explicit IS NOT NULL THEN
		IF p_explicit !~*
		    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
		    THEN
			RETURN NULL;
		END IF;
		RETURN (SELECT id FROM organizations WHERE id = p_explicit::uuid);
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
END
$$;

-- An organization's settings, with now() on its wall clock (business
-- hours need no time zone code in the worker).
CREATE FUNCTION th_org(p_id uuid) RETURNS TABLE (id uuid, name text,
    timezone text, greeting text, forward_to text, hours text,
    after_hours text, retell_agent_id text, dow int, minute int)
    LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY SELECT o.id, o.name, o.timezone, o.greeting,
	    o.forward_to, o.hours, o.after_hours, o.retell_agent_id,
	    extract(dow FROM now() AT TIME ZONE o.timezone)::int,
	    (extract(hour FROM now() AT TIME ZONE o.timezone) * 60 +
	    extract(minute FROM now() AT TIME ZONE o.timezone))::int
	FROM organizations o WHERE o.id = p_id;
END
$$;

-- architecture.md §6: an event, once.  NULL for a redelivery.
CREATE FUNCTION th_event_in(p_provider text, p_type text, p_key text,
    p_org uuid, p_route text, p_addr inet, p_ctype text, p_headers jsonb,
    p_body bytea, p_payload jsonb, p_spooled boolean) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
	v_id	bigint;
BEGIN
	INSERT INTO events (provider, event_type, provider_key,
	    organization_id, route, client_addr, content_type, headers, body,
	    payload, received_at, spooled_at)
	VALUES (p_provider, p_type, p_key, p_org, p_route, p_addr, p_ctype,
	    p_headers, p_body, p_payload, th_now(),
	    CASE WHEN p_spooled THEN now() END)
	ON CONFLICT (provider, provider_key) DO NOTHING RETURNING id INTO v_id;
	RETURN v_id;
END
$$;

-- A message, inserted or advanced: status only moves forward, and
-- prev_rank keeps the rank the update found (as calls).
CREATE FUNCTION th_message_in(p_org uuid, p_provider text, p_id text,
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

-- One entry of the activity log.
CREATE FUNCTION th_activity(p_org uuid, p_type text, p_summary text,
    p_call bigint, p_message bigint, p_event bigint) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO activity (organization_id, type, summary, call_id,
	    message_id, event_id, occurred_at)
	VALUES (p_org, p_type, p_summary, p_call, p_message, p_event, th_now());
END
$$;

-- What decides whether a number gets an auto-reply: has it opted out,
-- is it blocked, how many of its messages we answered in the last ten
-- minutes (the loop guard), is it one of our own.
CREATE FUNCTION th_reply_state(p_org uuid, p_num text) RETURNS TABLE (
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

-- An incoming SMS, all at once: route it (by p_number, normally To), keep the event (or find the
-- answer of its first delivery), keep the message, log the activity,
-- and return what the reply decision needs: the organization, the
-- sender's reply state and the organization's SMS rules (a JSON array
-- of [keywords, reply], oldest first).  event_id is
-- NULL for a redelivery, and answer is then what it was answered.
CREATE FUNCTION th_sms_incoming(p_provider text, p_type text, p_key text,
    p_explicit text, p_number text, p_account text, p_route text, p_addr inet,
    p_ctype text, p_headers jsonb, p_body bytea, p_payload jsonb,
    p_spooled boolean, p_message_id text, p_from text, p_to text,
    p_text text, p_num_media int, p_media jsonb, p_rank smallint,
    p_summary text)
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
	    p_addr, p_ctype, p_headers, p_body, p_payload, p_spooled);
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
