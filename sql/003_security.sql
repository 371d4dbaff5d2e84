-- 003_security: credential scope (architecture.md §4) and per-organization VoIP.ms
-- URL tokens (architecture.md §5).
--
-- A request verified by one organization's own credential may touch
-- only that organization.  The worker says which organization that is
-- with the transaction-local setting telehook.scope (set in the same
-- round trip as BEGIN); th_route() then refuses, with SQLSTATE TH403,
-- any routing input that names another organization, and gives an
-- event that routes nowhere to the credential's organization.  Without
-- the setting (deployment-wide credentials) routing is as before.

CREATE OR REPLACE FUNCTION th_route(p_provider text, p_explicit text,
    p_number text, p_call text, p_message text, p_account text) RETURNS uuid
    LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_scope	uuid := nullif(current_setting('telehook.scope', true), '')::uuid;
	v_ex	uuid;
	v_org	uuid;
BEGIN
	IF p_explicit IS NOT NULL AND p_explicit ~*
	    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
		v_ex := (SELECT id FROM organizations WHERE id = p_explicit::uuid);
	END IF;
	IF v_scope IS NULL THEN
		IF p_explicit IS NOT NULL THEN
			RETURN v_ex;
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
	END IF;
	-- Scoped: every input that names an organization must name this one.
	FOR v_org IN
		SELECT v_ex
		UNION ALL SELECT organization_id FROM phone_numbers
		    WHERE e164 = p_number
		UNION ALL SELECT organization_id FROM calls
		    WHERE provider = p_provider AND call_id = p_call
		UNION ALL SELECT organization_id FROM messages
		    WHERE provider = p_provider AND message_id = p_message
		UNION ALL SELECT id FROM organizations
		    WHERE p_provider = 'twilio' AND twilio_account_sid = p_account
	LOOP
		IF v_org IS NOT NULL AND v_org <> v_scope THEN
			RAISE EXCEPTION 'cross_tenant: the credential of one '
			    'organization names another'
			    USING ERRCODE = 'TH403';
		END IF;
	END LOOP;
	RETURN v_scope;
END
$$;

-- Per-organization VoIP.ms URL tokens are found by their SHA-256 (the
-- token itself stays sealed); other secrets leave it NULL.
ALTER TABLE provider_accounts ADD COLUMN secret_hash text;
CREATE UNIQUE INDEX provider_accounts_hash ON provider_accounts (provider,
    secret_hash) WHERE secret_hash IS NOT NULL;
