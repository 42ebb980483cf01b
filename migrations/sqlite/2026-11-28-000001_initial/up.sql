-- Ferric's initial schema, following Ironic's tables (ironic/db/sqlalchemy/models.py).
-- JSON columns are TEXT as in Ironic (oslo.db JsonEncodedDict): the API returns
-- JSON objects with their keys in the order they were written, which jsonb
-- would not keep.

CREATE TABLE chassis (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    extra TEXT NOT NULL DEFAULT '{}',
    description VARCHAR(255),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE conductors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname VARCHAR(255) NOT NULL UNIQUE,
    drivers TEXT NOT NULL DEFAULT '[]',
    online BOOLEAN NOT NULL DEFAULT TRUE,
    conductor_group VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE conductor_hardware_interfaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conductor_id INTEGER NOT NULL REFERENCES conductors (id) ON DELETE CASCADE,
    hardware_type VARCHAR(255) NOT NULL,
    interface_type VARCHAR(16) NOT NULL,
    interface_name VARCHAR(255) NOT NULL,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uniq_conductorhardwareinterfaces0 UNIQUE (conductor_id, hardware_type, interface_type, interface_name)
);

CREATE TABLE allocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    name VARCHAR(255) UNIQUE,
    node_id INTEGER,
    state VARCHAR(15) NOT NULL,
    owner VARCHAR(255),
    last_error TEXT,
    resource_class VARCHAR(80),
    traits TEXT NOT NULL DEFAULT '[]',
    candidate_nodes TEXT NOT NULL DEFAULT '[]',
    extra TEXT NOT NULL DEFAULT '{}',
    conductor_affinity INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    instance_uuid VARCHAR(36) UNIQUE,
    instance_name VARCHAR(255),
    name VARCHAR(255) UNIQUE,
    chassis_id INTEGER REFERENCES chassis (id),
    power_state VARCHAR(15),
    target_power_state VARCHAR(15),
    provision_state VARCHAR(15) NOT NULL,
    target_provision_state VARCHAR(15),
    provision_updated_at TIMESTAMP,
    last_error TEXT,
    instance_info TEXT NOT NULL DEFAULT '{}',
    properties TEXT NOT NULL DEFAULT '{}',
    driver VARCHAR(255) NOT NULL,
    driver_info TEXT NOT NULL DEFAULT '{}',
    driver_internal_info TEXT NOT NULL DEFAULT '{}',
    clean_step TEXT NOT NULL DEFAULT '{}',
    deploy_step TEXT NOT NULL DEFAULT '{}',
    service_step TEXT NOT NULL DEFAULT '{}',
    resource_class VARCHAR(80),
    raid_config TEXT NOT NULL DEFAULT '{}',
    target_raid_config TEXT NOT NULL DEFAULT '{}',
    reservation VARCHAR(255),
    conductor_affinity INTEGER REFERENCES conductors (id) ON DELETE SET NULL,
    conductor_group VARCHAR(255) NOT NULL DEFAULT '',
    maintenance BOOLEAN NOT NULL DEFAULT FALSE,
    maintenance_reason TEXT,
    fault VARCHAR(255),
    console_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    inspection_started_at TIMESTAMP,
    inspection_finished_at TIMESTAMP,
    extra TEXT NOT NULL DEFAULT '{}',
    automated_clean BOOLEAN,
    protected BOOLEAN NOT NULL DEFAULT FALSE,
    protected_reason TEXT,
    owner VARCHAR(255),
    lessee VARCHAR(255),
    allocation_id INTEGER REFERENCES allocations (id) ON DELETE SET NULL,
    description TEXT,
    bios_interface VARCHAR(255),
    boot_interface VARCHAR(255),
    console_interface VARCHAR(255),
    deploy_interface VARCHAR(255),
    firmware_interface VARCHAR(255),
    inspect_interface VARCHAR(255),
    management_interface VARCHAR(255),
    network_interface VARCHAR(255),
    power_interface VARCHAR(255),
    raid_interface VARCHAR(255),
    rescue_interface VARCHAR(255),
    storage_interface VARCHAR(255),
    vendor_interface VARCHAR(255),
    retired BOOLEAN NOT NULL DEFAULT FALSE,
    retired_reason TEXT,
    network_data TEXT NOT NULL DEFAULT '{}',
    boot_mode VARCHAR(16),
    secure_boot BOOLEAN,
    shard VARCHAR(255),
    parent_node VARCHAR(36),
    disable_power_off BOOLEAN NOT NULL DEFAULT FALSE,
    health VARCHAR(32),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX node_owner_idx ON nodes (owner);
CREATE INDEX node_lessee_idx ON nodes (lessee);
CREATE INDEX node_driver_idx ON nodes (driver);
CREATE INDEX node_provision_state_idx ON nodes (provision_state);
CREATE INDEX node_reservation_idx ON nodes (reservation);
CREATE INDEX node_conductor_group_idx ON nodes (conductor_group);
CREATE INDEX node_resource_class_idx ON nodes (resource_class);
CREATE INDEX node_shard_idx ON nodes (shard);
CREATE INDEX node_parent_node_idx ON nodes (parent_node);
CREATE INDEX node_chassis_id_idx ON nodes (chassis_id);

CREATE TABLE portgroups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    name VARCHAR(255) UNIQUE,
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    address VARCHAR(18) UNIQUE,
    extra TEXT NOT NULL DEFAULT '{}',
    internal_info TEXT NOT NULL DEFAULT '{}',
    standalone_ports_supported BOOLEAN NOT NULL DEFAULT TRUE,
    mode VARCHAR(255),
    properties TEXT NOT NULL DEFAULT '{}',
    physical_network VARCHAR(64),
    category VARCHAR(80),
    dynamic_portgroup BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX portgroup_node_id_idx ON portgroups (node_id);

CREATE TABLE ports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    address VARCHAR(18) NOT NULL UNIQUE,
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    extra TEXT NOT NULL DEFAULT '{}',
    local_link_connection TEXT NOT NULL DEFAULT '{}',
    portgroup_id INTEGER REFERENCES portgroups (id) ON DELETE SET NULL,
    pxe_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    internal_info TEXT NOT NULL DEFAULT '{}',
    physical_network VARCHAR(64),
    is_smartnic BOOLEAN NOT NULL DEFAULT FALSE,
    name VARCHAR(255) UNIQUE,
    description VARCHAR(255),
    vendor VARCHAR(32),
    category VARCHAR(80),
    available_for_dynamic_portgroup BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX port_node_id_idx ON ports (node_id);
CREATE INDEX port_portgroup_id_idx ON ports (portgroup_id);

CREATE TABLE node_tags (
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    tag VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    PRIMARY KEY (node_id, tag)
);
CREATE INDEX node_tags_idx ON node_tags (tag);

CREATE TABLE node_traits (
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    trait VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    PRIMARY KEY (node_id, trait)
);
CREATE INDEX node_traits_idx ON node_traits (trait);

CREATE TABLE node_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    conductor VARCHAR(255),
    event_type VARCHAR(255),
    severity VARCHAR(255),
    event TEXT,
    "user" VARCHAR(64),
    project VARCHAR(80),
    node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    state VARCHAR(255),
    target_provision_state VARCHAR(255),
    duration_seconds INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX history_node_id_idx ON node_history (node_id);
CREATE INDEX history_conductor_idx ON node_history (conductor);

CREATE TABLE deploy_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(36) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL UNIQUE,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE deploy_template_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_template_id INTEGER NOT NULL REFERENCES deploy_templates (id) ON DELETE CASCADE,
    interface VARCHAR(255) NOT NULL,
    step VARCHAR(255) NOT NULL,
    args TEXT NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX deploy_template_id ON deploy_template_steps (deploy_template_id);
CREATE INDEX deploy_template_steps_interface_idx ON deploy_template_steps (interface);
CREATE INDEX deploy_template_steps_step_idx ON deploy_template_steps (step);
