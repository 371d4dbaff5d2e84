-- 005_closures: dated closures (holidays) and the Retell agent's SIP
-- address for the after-hours hand-off (architecture.md §8, issue 14).
--
-- A closure makes its days after hours in the organization's time zone,
-- whatever the weekly hours say (an organization without hours too).
CREATE TABLE closures (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	organization_id	uuid NOT NULL REFERENCES organizations ON DELETE CASCADE,
	first_day	date NOT NULL,
	last_day	date NOT NULL CHECK (last_day >= first_day),
	note		text,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX closures_org ON closures (organization_id, last_day);

-- "after_hours = agent" hands a caller to the organization's Retell
-- agent with <Dial><Sip> at this address.
ALTER TABLE organizations ADD COLUMN agent_sip text
    CHECK (agent_sip ~ '^sips?:[^[:space:]<>"]+$');

-- th_org() gains the SIP address and whether today (on the
-- organization's wall clock) is a closure.  Its callers name its
-- columns, so the new ones go last.
DROP FUNCTION th_org(uuid);
CREATE FUNCTION th_org(p_id uuid) RETURNS TABLE (id uuid, name text,
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
