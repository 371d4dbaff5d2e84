-- 001_initial.sql: the telehook schema (architecture.md §4-8).
--
-- Applied by "telehookctl migrate" inside one transaction, and recorded in
-- schema_migrations.  Never edit a migration that has shipped: add the
-- next number instead.
--
-- Conventions: organizations, users, campaigns, contacts and tokens have
-- UUIDs (they appear in URLs and commands); high-volume rows (events,
-- calls, messages, activity, notifications, rejections) have bigint ids,
-- which keep their indexes small and give activity paging a cheap order.
-- Every timestamp is timestamptz.

CREATE TABLE IF NOT EXISTS schema_migrations (
	version		text PRIMARY KEY,
	applied_at	timestamptz NOT NULL DEFAULT now()
);

-- ISO 8601 in UTC with a "Z" offset, as every JSON answer writes times.
CREATE FUNCTION th_iso(timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- "Now" for the records of one transaction: the time the request was
-- received, which a spool drain sets (telehook.now) so replayed events
-- keep their real time; otherwise now().
CREATE FUNCTION th_now() RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(current_setting('telehook.now', true), '')::timestamptz, now()) $$;

-- Organizations (the earlier back ends' "clients"): the unit of tenancy.
CREATE TABLE organizations (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name			text NOT NULL CHECK (name <> '' AND length(name) <= 200),
	timezone		text NOT NULL DEFAULT 'UTC',
	greeting		text,
	forward_to		text CHECK (forward_to ~ '^\+[1-9][0-9]{6,14}$'),
	hours			text,		-- canonical hours_format() text
	after_hours		text NOT NULL DEFAULT 'voicemail'
				    CHECK (after_hours IN ('voicemail', 'agent')),
	retell_agent_id		text,
	twilio_account_sid	text CHECK (twilio_account_sid ~ '^AC[0-9a-f]{32}$'),
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organizations_name_key ON organizations (lower(name));
-- architecture.md §4: the last routing rule maps a Twilio AccountSid to its owner.
CREATE UNIQUE INDEX organizations_twilio_account_key
    ON organizations (twilio_account_sid) WHERE twilio_account_sid IS NOT NULL;

-- Phone numbers an organization owns, in E.164.  A number belongs to one
-- organization: it is how an inbound event finds its owner.
CREATE TABLE phone_numbers (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	e164		text NOT NULL UNIQUE CHECK (e164 ~ '^\+[1-9][0-9]{6,14}$'),
	provider	text CHECK (provider IN ('twilio', 'retell', 'voipms')),
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_numbers_org ON phone_numbers (organization_id);

-- Provider secrets per organization (and provider account), sealed with
-- the key in secret_key_file: base64 of nonce || secretbox.  The
-- plaintext never reaches the database.
CREATE TABLE provider_accounts (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	provider	text NOT NULL CHECK (provider IN ('twilio', 'retell', 'voipms')),
	account_id	text NOT NULL DEFAULT '',	-- Twilio AccountSid, or ''
	secret_sealed	text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (organization_id, provider, account_id)
);
-- Verification looks the keys up by provider and account.
CREATE INDEX provider_accounts_lookup ON provider_accounts (provider, account_id);

-- The people of an organization: every one is notified of inbound calls.
CREATE TABLE users (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	email		text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
	name		text,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_org_email_key ON users (organization_id, lower(email));

-- Dashboard API tokens: only the SHA-256 of a token is kept.
CREATE TABLE api_tokens (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	name		text,
	token_hash	text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
	created_at	timestamptz NOT NULL DEFAULT now(),
	last_used_at	timestamptz,
	revoked_at	timestamptz
);
CREATE INDEX api_tokens_org ON api_tokens (organization_id);

-- Every accepted webhook, once: provider_key is the idempotency key of
-- architecture.md §6, so a redelivery conflicts here and changes nothing.
-- organization_id is NULL for an unrouted event until it is assigned.
CREATE TABLE events (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	provider	text NOT NULL CHECK (provider IN ('twilio', 'retell', 'voipms')),
	event_type	text NOT NULL,
	provider_key	text NOT NULL,
	organization_id	uuid REFERENCES organizations ON DELETE SET NULL,
	route		text NOT NULL,
	received_at	timestamptz NOT NULL DEFAULT now(),
	client_addr	inet,
	content_type	text,
	headers		jsonb NOT NULL DEFAULT '{}',
	body		bytea,			-- raw, as signed; NULL once redacted
	payload		jsonb,			-- the parsed parameters
	answer		text,			-- what was answered, for redelivery
	spooled_at	timestamptz,		-- set when it came from the spool
	assigned_at	timestamptz,		-- set by "events assign"
	redacted_at	timestamptz,
	UNIQUE (provider, provider_key)
);
CREATE INDEX events_org_received ON events (organization_id, received_at DESC);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_unrouted ON events (received_at DESC) WHERE organization_id IS NULL;

-- Calls: one row per provider call across all of its events.  status
-- only moves forward: status_rank orders the states (architecture.md §6).  An
-- upsert sets prev_rank to the rank it found, so it can tell, atomically,
-- whether it moved the call forward.
CREATE TABLE calls (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id		uuid REFERENCES organizations ON DELETE SET NULL,
	provider		text NOT NULL CHECK (provider IN ('twilio', 'retell', 'voipms')),
	call_id			text NOT NULL,		-- CallSid, Retell call_id, VoIP.ms callid
	direction		text CHECK (direction IN ('inbound', 'outbound')),
	from_number		text,
	to_number		text,
	status			text NOT NULL DEFAULT 'queued' CHECK (status IN
				    ('queued', 'initiated', 'ringing', 'in-progress',
				     'completed', 'busy', 'failed', 'no-answer', 'canceled')),
	status_rank		smallint NOT NULL DEFAULT 0,
	prev_rank		smallint NOT NULL DEFAULT -1,	-- before the last update
	started_at		timestamptz NOT NULL DEFAULT now(),
	answered_at		timestamptz,
	ended_at		timestamptz,
	duration_s		integer CHECK (duration_s >= 0),
	cost_cents		integer,
	disconnection_reason	text,
	recording_url		text,
	transcript		text,
	summary			text,
	sentiment		text,
	successful		boolean,
	custom_data		jsonb,
	agent_id		text,
	caller_name		text,		-- when the provider knows it
	analyzed_at		timestamptz,
	campaign_id		uuid,
	contact_id		uuid,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (provider, call_id)
);
-- KPIs count an organization's calls by month of started_at.
CREATE INDEX calls_org_started ON calls (organization_id, started_at);
-- A Retell call id is also looked up without its provider (live state).
CREATE INDEX calls_call_id ON calls (call_id);
-- Retell inbound: what is known of a caller from earlier calls.
CREATE INDEX calls_org_from ON calls (organization_id, from_number, started_at DESC);
CREATE INDEX calls_campaign ON calls (campaign_id) WHERE campaign_id IS NOT NULL;

-- Messages: one row per SMS/MMS, with its status history.
CREATE TABLE messages (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid REFERENCES organizations ON DELETE SET NULL,
	provider	text NOT NULL CHECK (provider IN ('twilio', 'retell', 'voipms')),
	message_id	text NOT NULL,
	direction	text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
	from_number	text,
	to_number	text,
	body		text,
	num_media	integer NOT NULL DEFAULT 0,
	media		jsonb NOT NULL DEFAULT '[]',
	status		text,
	status_rank	smallint NOT NULL DEFAULT 0,
	prev_rank	smallint NOT NULL DEFAULT -1,	-- before the last update
	status_history	jsonb NOT NULL DEFAULT '[]',
	auto_reply	boolean NOT NULL DEFAULT false,	-- we sent it
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (provider, message_id)
);
-- KPIs count messages by direction and month.
CREATE INDEX messages_org_created ON messages (organization_id, direction, created_at);
-- The loop guard looks at recent traffic with one number.
CREATE INDEX messages_peer ON messages (organization_id, from_number, created_at DESC);

-- Notifications: one per user of the organization per business event.
CREATE TABLE notifications (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	user_id		uuid REFERENCES users ON DELETE CASCADE,
	event_id	bigint REFERENCES events ON DELETE SET NULL,
	type		text NOT NULL,
	title		text NOT NULL,
	message		text NOT NULL,
	data		jsonb NOT NULL DEFAULT '{}',
	created_at	timestamptz NOT NULL DEFAULT now(),
	read_at		timestamptz
);
CREATE INDEX notifications_org ON notifications (organization_id, id DESC);
CREATE INDEX notifications_unread ON notifications (organization_id, id DESC)
    WHERE read_at IS NULL;

-- The activity log behind "recent activity" (architecture.md §11 activity types).
CREATE TABLE activity (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	type		text NOT NULL CHECK (type IN ('call_started', 'call_ended',
			    'call_missed', 'sms_reply', 'sms_sent', 'voicemail',
			    'recording_ready', 'inbound_call', 'campaign_progress')),
	occurred_at	timestamptz NOT NULL DEFAULT now(),
	summary		text NOT NULL,
	call_id		bigint REFERENCES calls ON DELETE SET NULL,
	message_id	bigint REFERENCES messages ON DELETE SET NULL,
	event_id	bigint REFERENCES events ON DELETE SET NULL
);
-- Recent activity and paging by id ("before=ID").
CREATE INDEX activity_org_id ON activity (organization_id, id DESC);
CREATE INDEX activity_call ON activity (call_id) WHERE call_id IS NOT NULL;

-- Campaigns of outbound AI calls, and their contacts.
CREATE TABLE campaigns (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	name		text NOT NULL CHECK (name <> ''),
	processed	integer NOT NULL DEFAULT 0 CHECK (processed >= 0),
	successful	integer NOT NULL DEFAULT 0 CHECK (successful >= 0),
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_org ON campaigns (organization_id, created_at DESC);

CREATE TABLE campaign_contacts (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	campaign_id	uuid NOT NULL REFERENCES campaigns ON DELETE CASCADE,
	position	integer NOT NULL,		-- order in the imported file
	phone		text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
	name		text,
	status		text NOT NULL DEFAULT 'pending' CHECK (status IN
			    ('pending', 'calling', 'completed', 'failed', 'no_answer')),
	status_rank	smallint NOT NULL DEFAULT 0,
	call_id		text,
	processed	boolean NOT NULL DEFAULT false,	-- counted in processed
	successful	boolean NOT NULL DEFAULT false,	-- counted in successful
	updated_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (campaign_id, position)
);
-- A call without contact_id finds its contact by the dialed number.
CREATE INDEX campaign_contacts_phone ON campaign_contacts (campaign_id, phone);
CREATE INDEX campaign_contacts_status ON campaign_contacts (campaign_id, status);

-- Auto-reply rules (channel sms) and the knowledge base of the speech
-- <Gather> flow (channel voice).
CREATE TABLE reply_rules (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	channel		text NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'voice')),
	keywords	text[] NOT NULL CHECK (cardinality(keywords) > 0),
	reply		text NOT NULL CHECK (reply <> ''),
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reply_rules_org ON reply_rules (organization_id, channel, id);

-- Callers an organization rejects (Retell inbound) or hangs up on
-- (Twilio voice), and never auto-replies to.
CREATE TABLE blocked_numbers (
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	e164		text NOT NULL CHECK (e164 ~ '^\+[1-9][0-9]{6,14}$'),
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (organization_id, e164)
);

-- STOP / START opt-outs per organization and number.
CREATE TABLE opt_outs (
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	e164		text NOT NULL,
	opted_out_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (organization_id, e164)
);

-- Rejected requests, without their bodies (architecture.md §5), for the operator.
CREATE TABLE rejections (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid REFERENCES organizations ON DELETE SET NULL,
	received_at	timestamptz NOT NULL DEFAULT now(),
	route		text NOT NULL,
	status		smallint NOT NULL,
	cause		text NOT NULL,
	client_addr	inet,
	detail		text
);
CREATE INDEX rejections_received ON rejections (received_at DESC);
CREATE INDEX rejections_org ON rejections (organization_id, received_at DESC)
    WHERE organization_id IS NOT NULL;

-- Messages waiting to be sent through a provider's REST API (VoIP.ms
-- auto-replies): queued in the transaction of the message they answer,
-- sent by "telehookctl outbox send".  A row is claimed (sending) before
-- the API is called and marked sent after, so a crash in between leaves
-- it visibly in doubt rather than silently sent twice.
CREATE TABLE outbox (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	provider	text NOT NULL CHECK (provider IN ('voipms')),
	event_id	bigint UNIQUE REFERENCES events ON DELETE SET NULL,
	from_number	text NOT NULL,		-- our DID
	to_number	text NOT NULL,
	body		text NOT NULL CHECK (body <> ''),
	state		text NOT NULL DEFAULT 'pending' CHECK (state IN
			    ('pending', 'sending', 'retry', 'sent', 'failed')),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	claimed_at	timestamptz,
	last_error	text,
	provider_message_id text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	sent_at		timestamptz
);
-- The sender's queue: what is due, oldest first.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE state IN ('pending', 'retry');
