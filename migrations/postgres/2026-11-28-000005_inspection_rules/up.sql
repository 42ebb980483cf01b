-- Inspection rules (API 1.96): conditions and actions applied to what
-- inspection finds. Conditions and actions are JSON arrays.
CREATE TABLE inspection_rules (
    id SERIAL PRIMARY KEY,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    description VARCHAR(255),
    priority INTEGER NOT NULL DEFAULT 0,
    sensitive BOOLEAN NOT NULL DEFAULT FALSE,
    phase VARCHAR(16) NOT NULL DEFAULT 'main',
    conditions TEXT NOT NULL DEFAULT '[]',
    actions TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
