-- 010_mail.sql: the staff's e-mail alerts (architecture.md §15).
--
-- A user chooses the kinds of alert mailed to them.  An alert is queued
-- in mail_outbox in the same statement as the notification it tells of
-- (store.c), so it exists exactly when the notification does: once per
-- user and event, whatever is redelivered or replayed.  A daily summary
-- is queued by the sender itself, once per user and local day.  The
-- sender (telehookctl outbox send, run by the outbox timer) sends
-- through [smtp] and retries with backoff like the SMS outbox.
ALTER TABLE users ADD COLUMN notify text[] NOT NULL DEFAULT '{}'
    CHECK (notify <@ ARRAY['missed_call', 'voicemail', 'urgent_sms',
        'daily_summary']);

CREATE TABLE mail_outbox (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	user_id		uuid NOT NULL REFERENCES users ON DELETE CASCADE,
	kind		text NOT NULL CHECK (kind IN ('missed_call', 'voicemail',
			    'urgent_sms', 'daily_summary')),
	notification_id	bigint UNIQUE REFERENCES notifications ON DELETE CASCADE,
	day		date,			-- daily_summary: the local day
	state		text NOT NULL DEFAULT 'pending' CHECK (state IN
			    ('pending', 'sending', 'retry', 'sent', 'failed')),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	claimed_at	timestamptz,
	last_error	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	sent_at		timestamptz,
	UNIQUE (user_id, kind, day)
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at, id)
    WHERE state IN ('pending', 'retry');
CREATE INDEX mail_outbox_state ON mail_outbox (state)
    WHERE state IN ('pending', 'sending', 'retry', 'failed');
CREATE INDEX outbox_state ON outbox (state)
    WHERE state IN ('pending', 'sending', 'retry', 'failed');
