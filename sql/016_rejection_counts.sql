-- 016_rejection_counts.sql: an unauthenticated refusal no longer costs a
-- row of its own.
--
-- A flood of bad signatures wrote one rejections row a request, as fast
-- as it could send (1,000 rows in 1.4 s).  Refusals that no credential
-- stands behind are now counted here, one row per organization (when the
-- request names one we know), cause and minute, and only the first few
-- of each are kept in rejections as a sample: the rows a flood writes
-- grow with minutes, causes and organizations, not with its requests or
-- the routes and paths it tries.  A refusal of a
-- verified request (cross_tenant) is still a row of its own.
CREATE TABLE rejection_counts (
	organization_id	uuid REFERENCES organizations ON DELETE CASCADE,
	minute		timestamptz NOT NULL,
	cause		text NOT NULL,
	count		bigint NOT NULL
);
CREATE UNIQUE INDEX rejection_counts_key ON rejection_counts
    ((coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid)),
    minute, cause);
CREATE INDEX rejection_counts_minute ON rejection_counts (minute DESC);
