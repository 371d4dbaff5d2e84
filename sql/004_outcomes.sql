-- 004_outcomes: answered and missed calls (architecture.md §7).
--
-- That a Twilio call "completed" says nothing about whether anyone took
-- it: the <Dial> leg's DialCallStatus, Retell's connection, a VoIP.ms
-- CDR's disposition and a voicemail recording do.  A call's outcome
-- only moves forward (missed < voicemail < answered), like its status,
-- and th_call_outcome() says whether this event moved it, so the
-- activity and the staff's notifications of a missed call or a
-- voicemail are written exactly once, whatever is redelivered or
-- replayed.

ALTER TABLE calls ADD COLUMN outcome text CHECK (outcome IN ('answered',
    'missed', 'voicemail'));
ALTER TABLE calls ADD COLUMN outcome_rank smallint NOT NULL DEFAULT 0;

-- Calls of the past: completed meant answered, an inbound call that
-- ended otherwise was missed.
UPDATE calls SET outcome = 'answered', outcome_rank = 3
    WHERE status = 'completed';
UPDATE calls SET outcome = 'missed', outcome_rank = 1
    WHERE status IN ('no-answer', 'busy', 'failed', 'canceled')
    AND direction = 'inbound';

ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_type_check;

-- Move call p_call to outcome p_outcome if that is forward; the row
-- (organization, direction, numbers, recording) when it moved, else
-- nothing.  p_again (a replay re-deriving its event, architecture.md §6) also
-- returns the row when the call is at that outcome already, so what the
-- outcome logs is written if it is missing; the writes themselves are
-- idempotent per event.
CREATE FUNCTION th_call_outcome(p_call bigint, p_outcome text,
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

CREATE INDEX calls_org_outcome ON calls (organization_id, started_at)
    WHERE outcome IS NOT NULL;
