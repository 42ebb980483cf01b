-- The console's timeline of a node: every provision and power change as its
-- notification said it (Ferric's own record, beside Ironic's node_history),
-- with the conductor that made it and the trace it belongs to. Rows are
-- kept by node UUID (they outlive nothing: a node's rows go with it, and
-- rows older than [console] journal_days are pruned).
CREATE TABLE node_journal (
    id BIGSERIAL PRIMARY KEY,
    node_uuid VARCHAR(36) NOT NULL,
    event_type VARCHAR(255) NOT NULL,
    event VARCHAR(64),
    previous_provision_state VARCHAR(64),
    provision_state VARCHAR(64),
    power_state VARCHAR(64),
    to_power VARCHAR(64),
    step VARCHAR(255),
    last_error TEXT,
    publisher VARCHAR(255) NOT NULL,
    trace_id VARCHAR(32),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX node_journal_node_uuid_idx ON node_journal (node_uuid, id);
CREATE INDEX node_journal_created_at_idx ON node_journal (created_at);
