ALTER TABLE outbox_events ADD COLUMN trace_context JSONB;
INSERT INTO migration_runs (version) VALUES (6);
