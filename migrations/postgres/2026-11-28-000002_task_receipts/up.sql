-- Tasks a conductor has accepted, by task id, so a redelivered message
-- (RabbitMQ delivers at least once) never starts its action twice.
-- Written in the transaction that commits the node's in-progress state;
-- rows older than an hour are pruned (a task expires after its call timeout).
CREATE TABLE task_receipts (
    task_id VARCHAR(255) PRIMARY KEY,
    node_id INTEGER NOT NULL,
    conductor VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX task_receipts_created_at_idx ON task_receipts (created_at);
