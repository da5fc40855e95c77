-- meterline-server schema, version 4: customer-token signing keys (DESIGN §6).

-- HMAC-SHA256(full secret key text, "meterline customer token v1"), stored when a secret key
-- is minted so the server can verify customer tokens signed with it without keeping the
-- secret. NULL for publishable and admin keys, and for secret keys minted before this
-- migration: those cannot verify customer tokens (mint a new secret key to use tokens).
ALTER TABLE api_keys ADD COLUMN token_signing_key BLOB;

-- The server looks for keys revoked by another process (the CLI) every few seconds.
CREATE INDEX api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
