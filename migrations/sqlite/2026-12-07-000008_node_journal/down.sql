DROP TABLE node_journal;
