-- speediso collector schema, version 2: a run is bound to the token that
-- stored its first event (tokens::token_id, a hash of the secret, never the
-- secret). NULL for runs stored before version 2: the next batch binds them.
ALTER TABLE runs ADD COLUMN token_id TEXT;
