-- 011_delivery.sql: delivering each organization's events to its own
-- systems, signed per Standard Webhooks (architecture.md §14).
--
-- An endpoint is an organization's URL with the event types it wants
-- and its signing secret (sealed with secret_key_file; during a
-- rotation the previous one signs too until previous_until).  A
-- delivery is one event for one endpoint, written by a trigger on the
-- derived record in the same transaction, so an event exists exactly
-- when its record changed, however often the provider redelivers or an
-- operator replays.  The sender (telehookctl deliveries run) sends them
-- in order per subject (a call, a message, a campaign contact) and
-- endpoint, with the same msg_id (webhook-id) on every attempt.  The
-- webhooks' own transactions write one delivery_events row per event;
-- the sender makes the deliveries.
CREATE TABLE endpoints (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	url		text NOT NULL CHECK (url ~ '^https?://[^/?#@]+'),
	description	text,
	events		text[],			-- NULL: every type
	secret_sealed	text NOT NULL,
	previous_sealed	text,
	previous_until	timestamptz,
	enabled		boolean NOT NULL DEFAULT true,
	disabled_reason	text,
	ok_total	bigint NOT NULL DEFAULT 0,	-- attempts answered 2xx
	failed_total	bigint NOT NULL DEFAULT 0,	-- attempts that were not
	latency_ms_sum	bigint NOT NULL DEFAULT 0,	-- over all attempts
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_org ON endpoints (organization_id) WHERE enabled;

-- What happened, once per event, written by the triggers below in the
-- record's transaction with its id in delivery_pending: all a webhook
-- pays for.  The sender fans each pending event out to the endpoints
-- that want it (a small delivery row each, the body stays here, written
-- once) and takes it off delivery_pending in the same statement.
CREATE TABLE delivery_events (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL,
	type		text NOT NULL,
	subject		text NOT NULL,
	body		text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_events_created ON delivery_events (created_at);
CREATE TABLE delivery_pending (
	event_id	bigint PRIMARY KEY REFERENCES delivery_events
			    ON DELETE CASCADE
);

CREATE TABLE deliveries (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	endpoint_id	uuid NOT NULL REFERENCES endpoints ON DELETE CASCADE,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	msg_id		text NOT NULL,		-- webhook-id: 122 random bits
	type		text NOT NULL,
	subject		text NOT NULL,			-- the order it keeps
	event_id	bigint NOT NULL REFERENCES delivery_events
			    ON DELETE CASCADE,		-- the body
	state		text NOT NULL DEFAULT 'pending' CHECK (state IN
			    ('pending', 'sending', 'retry', 'delivered', 'dead')),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	claimed_at	timestamptz,
	last_status	integer,
	last_error	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	delivered_at	timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id)
    WHERE state IN ('pending', 'retry');
CREATE INDEX deliveries_open ON deliveries (endpoint_id, subject, id)
    WHERE state IN ('pending', 'sending', 'retry');
CREATE INDEX deliveries_dead ON deliveries (endpoint_id) WHERE state = 'dead';
CREATE INDEX deliveries_event ON deliveries (event_id);
-- A queue that grows from nothing to many thousands in a minute under
-- load: its statistics must follow, or the sender's claim is planned
-- for an empty table and walks every open row (the sender also
-- analyzes it after a large fan-out).
ALTER TABLE deliveries SET (autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE delivery_pending SET (autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.05);

-- The triggers' functions are sql/functions.sql's (applied after the
-- migrations); these placeholders only let the triggers be created.
CREATE OR REPLACE FUNCTION th_calls_deliver() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION th_messages_deliver() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION th_contacts_deliver() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;

CREATE TRIGGER calls_deliver AFTER INSERT OR UPDATE ON calls
    FOR EACH ROW EXECUTE FUNCTION th_calls_deliver();
CREATE TRIGGER messages_deliver AFTER INSERT OR UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION th_messages_deliver();
CREATE TRIGGER contacts_deliver AFTER UPDATE OF status ON campaign_contacts
    FOR EACH ROW EXECUTE FUNCTION th_contacts_deliver();
