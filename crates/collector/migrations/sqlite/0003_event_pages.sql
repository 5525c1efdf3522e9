-- speediso collector schema, version 3: run pages read the events that are
-- not progress (a long wipe stores millions of progress events) page by
-- page through this index, and count the progress between them.
CREATE INDEX events_not_progress ON events (run_id, seq) WHERE type <> 'progress';
