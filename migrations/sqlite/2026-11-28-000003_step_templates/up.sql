-- Deploy templates and runbooks keep their steps as one JSON array: they are
-- read and written whole, never queried step by step, so the step table the
-- initial schema carried (and nothing read) goes.
DROP TABLE deploy_template_steps;
ALTER TABLE deploy_templates ADD COLUMN steps TEXT NOT NULL DEFAULT '[]';

CREATE TABLE runbooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL UNIQUE,
    description VARCHAR(255),
    steps TEXT NOT NULL DEFAULT '[]',
    traits TEXT NOT NULL DEFAULT '[]',
    disable_ramdisk BOOLEAN NOT NULL DEFAULT FALSE,
    public BOOLEAN NOT NULL DEFAULT FALSE,
    owner VARCHAR(255),
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX runbooks_owner_idx ON runbooks (owner);
