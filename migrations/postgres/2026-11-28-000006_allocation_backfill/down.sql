ALTER TABLE allocations DROP COLUMN backfill_node_id;
