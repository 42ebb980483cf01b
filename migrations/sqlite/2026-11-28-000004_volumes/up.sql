-- Volume connectors and targets of nodes booting from volume (API 1.32).
CREATE TABLE volume_connectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    type VARCHAR(32) NOT NULL,
    connector_id VARCHAR(255) NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uniq_volumeconnectors0type0connector_id UNIQUE (type, connector_id)
);
CREATE INDEX volume_connectors_node_id_idx ON volume_connectors (node_id);

CREATE TABLE volume_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    volume_type VARCHAR(64) NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    boot_index INTEGER NOT NULL,
    volume_id VARCHAR(36) NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uniq_volumetargets0node_id0boot_index UNIQUE (node_id, boot_index)
);
CREATE INDEX volume_targets_node_id_idx ON volume_targets (node_id);
