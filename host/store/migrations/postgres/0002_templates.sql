-- The business's message templates (SQLite migration 0007).
CREATE TABLE templates (
    name             TEXT   NOT NULL,
    language         TEXT   NOT NULL,
    id               TEXT   NOT NULL DEFAULT '',
    category         TEXT   NOT NULL DEFAULT '',
    status           TEXT   NOT NULL,
    quality          TEXT   NOT NULL DEFAULT '',
    reason           TEXT   NOT NULL DEFAULT '',
    parameter_format TEXT   NOT NULL DEFAULT '',
    components       TEXT,
    source           TEXT   NOT NULL,
    as_of            BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (name, language)
);
