-- The node a backfill allocation names, kept so an unanswered request is
-- retried as the same backfill, never filled with another node.
ALTER TABLE allocations ADD COLUMN backfill_node_id INTEGER;
