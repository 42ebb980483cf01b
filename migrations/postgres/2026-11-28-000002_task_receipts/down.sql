DROP TABLE task_receipts;
