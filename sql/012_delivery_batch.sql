-- 012_delivery_batch.sql: the sender takes pending events in batches
-- and sends them from memory (src/deliver.c); a delivery row is written
-- once, when its first attempt has an answer (or has had none in time),
-- in one statement a batch.  What that statement and the webhooks'
-- triggers no longer pay for:
--
--  - deliveries.organization_id's foreign key: an endpoint is its
--    organization's and its deliveries go with it (endpoint_id's
--    ON DELETE CASCADE), so the check was a second one per row;
--  - deliveries.event_id's and delivery_pending's foreign keys to
--    delivery_events: events are only ever removed by "telehookctl
--    prune", and only those no delivery and no pending id names; each
--    check locked the event's row, a page write per delivery and per
--    webhook;
--  - a B-tree on delivery_events.created_at, which only pruning reads:
--    a BRIN index follows the insertion order for almost nothing.
--
-- One delivery per event and endpoint, however a sender dies: the
-- index on event_id becomes unique with the endpoint.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_organization_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE delivery_pending DROP CONSTRAINT delivery_pending_event_id_fkey;
DROP INDEX deliveries_event;
CREATE UNIQUE INDEX deliveries_event ON deliveries (event_id, endpoint_id);
DROP INDEX delivery_events_created;
CREATE INDEX delivery_events_created ON delivery_events USING brin
    (created_at);
