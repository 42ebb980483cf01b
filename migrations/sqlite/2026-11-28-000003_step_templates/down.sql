DROP TABLE runbooks;
ALTER TABLE deploy_templates DROP COLUMN steps;
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
