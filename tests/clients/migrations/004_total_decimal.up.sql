CREATE TABLE IF NOT EXISTS migration_runs (version int NOT NULL, at timestamptz NOT NULL DEFAULT now());
-- Not idempotent on purpose: a second run of this migration fails, so a migration that ran twice is seen.
ALTER TABLE orders ALTER COLUMN total TYPE NUMERIC(12,2) USING total::numeric / 100;
INSERT INTO migration_runs (version) VALUES (4);
