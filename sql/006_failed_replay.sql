-- 006_failed_replay: failed events kept, and replay (architecture.md §6).
--
-- A verified request whose content PostgreSQL refuses is kept raw,
-- marked failed with the reason, and can be replayed once fixed.  Every
-- event now keeps the request line it came with (the URL token taken
-- out), so a replay rebuilds the request exactly.  A replay re-derives
-- an event's records as if it were new: what it writes is idempotent
-- per event (one activity of a type, one notification of a type per
-- user), so a replay of an event already derived changes nothing.

ALTER TABLE events ADD COLUMN method text;
ALTER TABLE events ADD COLUMN request_uri text;
ALTER TABLE events ADD COLUMN failed_at timestamptz;
ALTER TABLE events ADD COLUMN failure text;
CREATE INDEX events_failed ON events (received_at DESC)
    WHERE failed_at IS NOT NULL;

DELETE FROM activity a USING activity b WHERE a.event_id = b.event_id AND
    a.type = b.type AND a.id > b.id;
CREATE UNIQUE INDEX activity_event_type ON activity (event_id, type)
    WHERE event_id IS NOT NULL;
DELETE FROM notifications a USING notifications b WHERE
    a.event_id = b.event_id AND a.type = b.type AND a.user_id = b.user_id
    AND a.id > b.id;
CREATE UNIQUE INDEX notifications_event_type_user ON notifications
    (event_id, type, user_id) WHERE event_id IS NOT NULL;

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

-- architecture.md §6: an event, once; NULL for a redelivery.  With p_rederive, a
-- replay of stored event p_rederive: it takes its real type and key (a
-- failed event was kept under a key of its own), loses its failure, and
-- keeps its organization; NULL when another event has that key already.
DROP FUNCTION th_event_in(text, text, text, uuid, text, inet, text, jsonb,
    bytea, jsonb, boolean);
CREATE FUNCTION th_event_in(p_provider text, p_type text, p_key text,
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

-- The SMS path passes the request line and the replay through.
DROP FUNCTION th_sms_incoming(text, text, text, text, text, text, text, inet,
    text, jsonb, bytea, jsonb, boolean, text, text, text, text, int, jsonb,
    smallint, text);
CREATE FUNCTION th_sms_incoming(p_provider text, p_type text, p_key text,
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
