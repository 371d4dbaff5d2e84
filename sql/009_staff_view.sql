-- 009_staff_view.sql: what the staff's view reads (architecture.md §15).
--
-- The calls list pages newest first by id, all of an organization's
-- calls or those of one outcome; a conversation is every message with
-- one contact (the sender of an inbound message, the recipient of an
-- outbound one), newest first.  Each list is one index range scan.
CREATE INDEX calls_org_id ON calls (organization_id, id);
CREATE INDEX calls_org_outcome_id ON calls (organization_id, outcome, id)
    WHERE outcome IS NOT NULL;
CREATE INDEX messages_org_contact ON messages (organization_id,
    (CASE WHEN direction = 'inbound' THEN from_number ELSE to_number END),
    id);
