-- What an inspection found (API 1.81 `GET /v1/nodes/{id}/inventory`): the
-- agent's inventory and the plugin data, one row per node, replaced by
-- each inspection and deleted with the node.
CREATE TABLE node_inventory (
    id SERIAL PRIMARY KEY,
    node_id INTEGER NOT NULL UNIQUE REFERENCES nodes(id) ON DELETE CASCADE,
    inventory_data TEXT NOT NULL,
    plugin_data TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
