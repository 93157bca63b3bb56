-- The business's message templates, one row per name × language: fetched
-- from the Graph API and updated by template webhooks. as_of is the time
-- the row's information dates from (a fetch's start, a webhook's time), so
-- a fetch that began before a webhook never undoes it.
CREATE TABLE templates (
    name             TEXT    NOT NULL,
    language         TEXT    NOT NULL,           -- en_US, pt_BR (normalised from en-US)
    id               TEXT    NOT NULL DEFAULT '',
    category         TEXT    NOT NULL DEFAULT '', -- MARKETING, UTILITY, AUTHENTICATION
    status           TEXT    NOT NULL,
    quality          TEXT    NOT NULL DEFAULT '',
    reason           TEXT    NOT NULL DEFAULT '',
    parameter_format TEXT    NOT NULL DEFAULT '',
    components       TEXT,                        -- JSON as Graph lists it; NULL when known only from a webhook
    source           TEXT    NOT NULL,            -- graph, webhook
    as_of            INTEGER NOT NULL,            -- Unix ms
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (name, language)
);
