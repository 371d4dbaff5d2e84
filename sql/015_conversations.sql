-- 015_conversations.sql: the SMS threads list reads one row a thread.
--
-- th_api_conversations() grouped every message of the organization to
-- find each contact's newest: 185 ms a page for 500,000 messages with
-- 50,000 contacts, and growing with the history, on every look at the
-- dashboard's SMS tab.  conversations keeps, per organization and
-- contact, the newest message's id and the count, written by a trigger
-- on messages (th_messages_conversation() in sql/functions.sql) in the
-- message's own transaction; a page is a range of conversations_latest
-- and a message fetched by id for each row.
--
-- The workers keep storing messages during an upgrade: the lock holds
-- them off from here to the commit of the whole migrate, the functions
-- included, so every message is counted once, here or by the trigger.
CREATE TABLE conversations (
	organization_id	uuid NOT NULL REFERENCES organizations
			    ON DELETE CASCADE,
	contact		text NOT NULL,	-- an inbound one's sender, an
					-- outbound one's recipient
	last_id		bigint NOT NULL,	-- its newest message
	messages	bigint NOT NULL,
	PRIMARY KEY (organization_id, contact)
);
CREATE INDEX conversations_latest ON conversations (organization_id,
    last_id);

-- The function is sql/functions.sql's, applied in the same
-- transaction as this (telehookctl migrate); this placeholder only
-- lets the trigger be created.
CREATE OR REPLACE FUNCTION th_messages_conversation() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;

LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE;
CREATE TRIGGER messages_conversation AFTER INSERT OR DELETE OR UPDATE OF
    organization_id, direction, from_number, to_number ON messages
    FOR EACH ROW EXECUTE FUNCTION th_messages_conversation();
INSERT INTO conversations (organization_id, contact, last_id, messages)
SELECT organization_id, CASE WHEN direction = 'inbound' THEN from_number
    ELSE to_number END, max(id), count(*) FROM messages
    WHERE organization_id IS NOT NULL AND CASE WHEN direction = 'inbound'
    THEN from_number ELSE to_number END IS NOT NULL
    GROUP BY 1, 2;
ANALYZE conversations;
