-- 008_handled.sql: a call the front desk has dealt with (a missed call
-- called back), marked through the dashboard API (POST and DELETE
-- .../calls/{call}/handled), the same for everyone in the organization.
ALTER TABLE calls ADD COLUMN handled_at timestamptz;
