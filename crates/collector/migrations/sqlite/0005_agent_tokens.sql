-- speediso collector schema, version 5: agent tokens in the database.
-- Tokens the collector issues (`token issue`, POST /v1/admin/tokens;
-- source 'issued') and the tokens file's `host=first-use` tokens (source
-- 'file', registered when the file is loaded) with the host each is bound
-- to (NULL: not yet; set once, by the first batch, with
-- `UPDATE ... WHERE host IS NULL` so two hosts racing cannot both win).
-- Never the secret: `id` is tokens::token_id (the first 16 hex digits of
-- its SHA-256, what runs record), `hash` the full SHA-256 in hex, what
-- the collector looks a presented token up by.
CREATE TABLE agent_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    source     TEXT NOT NULL CHECK (source IN ('issued', 'file')),
    host       TEXT,
    note       TEXT,
    issued_at  TEXT NOT NULL,
    bound_at   TEXT,
    last_used  TEXT,
    revoked_at TEXT
);
