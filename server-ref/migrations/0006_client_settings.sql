-- meterline-server schema, version 6: the project settings of publishable keys (DESIGN §6).

-- Both hold a JSON array of strings, sorted and without repeats, as checked by the admin
-- API: the event types a publishable key with a customer token may send, and the browser
-- origins (`https://app.example.com`) served CORS. Empty by default: a publishable key
-- sends nothing and no browser origin is allowed until the project says so.
ALTER TABLE projects ADD COLUMN client_event_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
