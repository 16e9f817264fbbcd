-- wsgate: the table every request that reached the upstream is recorded in
-- (PROTOCOL.md section 5).  The dbwriters create it themselves unless
-- db_create_table is off; then create it with this file, renaming the
-- table if pg_table says so:
--     psql -d wsgate -f /usr/share/wsgate/schema.sql
CREATE TABLE IF NOT EXISTS responses (
    id          bigserial PRIMARY KEY,
    request_key text        NOT NULL UNIQUE,  -- idempotency key, unique per request
    user_id     text        NOT NULL,
    client_id   text,                         -- the request's "id" as JSON text, NULL if absent
    status      integer,                      -- upstream HTTP status, NULL if none
    response    text,                         -- upstream body (NUL and invalid UTF-8 as U+FFFD)
    error       text,                         -- wsgate error text, NULL on success
    latency_ms  double precision,             -- message received -> reply sent
    created_at  timestamptz NOT NULL DEFAULT now()
);
