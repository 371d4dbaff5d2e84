-- What the SMS handler sends PostgreSQL for one signed Twilio SMS, as
-- pgbench runs it: BEGIN and th_sms_incoming() (sql/002) in one
-- pipeline, then COMMIT, each SMS with a new MessageSid and sender.
-- This is (c) of bench/run, the database ceiling.  (No colon may stand
-- before a name anywhere in this file but the variable n: pgbench would
-- read a variable.)
\set n random(1, 9999999)
\startpipeline
BEGIN;
SELECT * FROM th_sms_incoming('twilio', 'sms_incoming',
    'PGB' || replace(gen_random_uuid()::text, '-', '') || chr(58) || 'received',
    NULL, '+15550009000', 'AC00000000000000000000000000000000',
    'twilio_sms_incoming', '127.0.0.1', 'application/x-www-form-urlencoded',
    '{"host":"127.0.0.1","content-type":"application/x-www-form-urlencoded","content-length":"238","x-twilio-signature":"RSOYDt4T1cUTdK1PDd93/VVr8B8=","connection":"keep-alive"}',
    decode('4d6573736167655369643d534d303030303030303030303030303030303030303030303030303030303030303726536d735369643d534d3030303030303030303030303030303030303030303030303030303030303037264163636f756e745369643d414330303030303030303030303030303030303030303030303030303030303030302646726f6d3d253242313535353030303030303726546f3d253242313535353030303930303026426f64793d5468616e6b73253231264e756d4d656469613d3026536d735374617475733d72656365697665642641706956657273696f6e3d323031302d30342d3031', 'hex'),
    '{"MessageSid":"SM00000000000000000000000000000007","SmsSid":"SM00000000000000000000000000000007","AccountSid":"AC00000000000000000000000000000000","From":"+15550000007","To":"+15550009000","Body":"Thanks!","NumMedia":"0","SmsStatus":"received","ApiVersion":"2010-04-01"}',
    false, 'PGB' || replace(gen_random_uuid()::text, '-', ''),
    '+1555' || lpad(:n::text, 7, '0'), '+15550009000', 'Thanks!', 0, '[]', 4::smallint,
    'SMS from +1555' || lpad(:n::text, 7, '0'));
\endpipeline
COMMIT;
