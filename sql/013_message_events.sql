-- 013_message_events.sql: an incoming message's event names the
-- message instead of carrying a copy of it.
--
-- An inbound message is written once: later, a redelivery can only
-- fill a field still empty (or add to its status history), the loop
-- guard mark it auto-replied to in the same transaction, and "prune
-- --redact" blank its text.  So the message as the sender reads it is
-- the message as it was received, or less: the
-- envelope of sms.received is built when it is sent (th_event_body()
-- in sql/functions.sql), from the organization's own row.  The
-- webhook's transaction writes a row of about 100 bytes instead of the
-- JSON and its 500 bytes to 1 KB (bench/README, "Delivering events to
-- three endpoints").  Events of records that move on (calls, outbound
-- messages, campaign contacts) keep their snapshot in body.
ALTER TABLE delivery_events ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN message_ref bigint,
    ADD CONSTRAINT delivery_events_body_or_message CHECK
	(body IS NOT NULL OR message_ref IS NOT NULL);
