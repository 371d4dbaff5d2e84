-- The bare durable insert of one event: the events row alone, without
-- the records architecture.md §6 derives from it in the same transaction.  The
-- reference row of bench/run, beside (c).  (No colon may stand before
-- a name anywhere in this file: pgbench would read a variable.)
INSERT INTO events (provider, event_type, provider_key, organization_id,
    route, client_addr, content_type, headers, body, payload, received_at,
    spooled_at)
VALUES ('twilio', 'sms_incoming',
    gen_random_uuid()::text || chr(58) || 'received',
    NULL, 'twilio_sms_incoming', '127.0.0.1'::inet,
    'application/x-www-form-urlencoded',
    '{"host":"127.0.0.1","content-type":"application/x-www-form-urlencoded","x-twilio-signature":"RSOYDt4T1cUTdK1PDd93/VVr8B8="}'::jsonb,
    decode('4d657373616765536964', 'hex'),
    '{"MessageSid":"SM0123456789abcdef0123456789abcdef","From":"+15551230000","To":"+15550001000","Body":"Thanks!","NumMedia":"0","SmsStatus":"received"}'::jsonb,
    th_now(), CASE WHEN false THEN now() END)
ON CONFLICT (provider, provider_key) DO NOTHING;
