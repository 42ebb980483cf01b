//! HTTP behaviour of the API: version discovery, nodes, bad input, ports,
//! chassis, drivers, conductors, and the golden comparison with Ironic.

mod allocations;
mod auth;
mod bad_input;
mod golden;
mod inspection;
mod inspection_rules;
mod limits;
mod metrics;
mod node_controls;
mod node_resources;
mod nodes;
mod portgroups;
mod ports_chassis;
mod ramdisk;
mod step_templates;
mod upstream;
mod versions;
mod volumes;
