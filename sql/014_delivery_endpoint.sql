-- 014_delivery_endpoint.sql: a delivery's endpoint is held by the
-- sender's own lock, not by a foreign key.
--
-- The key checked every delivery row the sender's batch statement
-- wrote (three an event with three endpoints) by a query that locked
-- the endpoint's row: a fifth of the sender's PostgreSQL backend
-- (bench/README).  And an endpoint removed while a batch was in flight
-- made that statement fail, so the sender exited and the whole batch
-- was sent again to every other endpoint.  Now the statement locks each
-- endpoint of the batch once, updating its counters, and writes rows
-- only for those it locked (src/batch.c); an endpoint removed first has
-- none, and one removed after waits for the batch to be recorded and
-- then takes its rows with it (th_endpoints_removed(), as the key's ON
-- DELETE CASCADE did, an organization's removal included).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_endpoint_id_fkey;

-- The function is sql/functions.sql's; this placeholder only lets the
-- trigger be created.
CREATE OR REPLACE FUNCTION th_endpoints_removed() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER endpoints_removed AFTER DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION th_endpoints_removed();
