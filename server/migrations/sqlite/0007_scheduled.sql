-- Scheduled messages: see migrations/postgres/0012_scheduled.sql (the same tables; one
-- node, so the claim is a conditional update).
CREATE TABLE schedule_hints (
    doc_id        TEXT PRIMARY KEY,
    gen           BIGINT NOT NULL DEFAULT 1,
    next_at       BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT
);
CREATE INDEX schedule_hints_due ON schedule_hints (next_at);

CREATE TABLE schedule_posts (
    doc_id   TEXT NOT NULL,
    message  TEXT NOT NULL,
    bucket   TEXT NOT NULL,
    PRIMARY KEY (doc_id, message)
);

CREATE TRIGGER docs_schedule_hint_insert AFTER INSERT ON docs
    WHEN NEW.doc_id LIKE '%/private/%'
BEGIN
    INSERT INTO schedule_hints (doc_id) VALUES (NEW.doc_id)
    ON CONFLICT (doc_id) DO UPDATE SET gen = gen + 1, next_at = 0;
END;

CREATE TRIGGER docs_schedule_hint_update AFTER UPDATE OF last_seq ON docs
    WHEN NEW.doc_id LIKE '%/private/%'
BEGIN
    INSERT INTO schedule_hints (doc_id) VALUES (NEW.doc_id)
    ON CONFLICT (doc_id) DO UPDATE SET gen = gen + 1, next_at = 0;
END;
