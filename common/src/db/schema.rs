//! Diesel table definitions, matching `migrations/{postgres,sqlite}` column for
//! column. The SQL types are those both backends share, so one query compiles
//! for PostgreSQL and SQLite alike (see `db::AnyConnection`).

diesel::table! {
    chassis (id) {
        id -> Integer,
        uuid -> Text,
        extra -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    conductors (id) {
        id -> Integer,
        hostname -> Text,
        drivers -> Text,
        online -> Bool,
        conductor_group -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    conductor_hardware_interfaces (id) {
        id -> Integer,
        conductor_id -> Integer,
        hardware_type -> Text,
        interface_type -> Text,
        interface_name -> Text,
        is_default -> Bool,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    allocations (id) {
        id -> Integer,
        uuid -> Text,
        name -> Nullable<Text>,
        node_id -> Nullable<Integer>,
        state -> Text,
        owner -> Nullable<Text>,
        last_error -> Nullable<Text>,
        resource_class -> Nullable<Text>,
        traits -> Text,
        candidate_nodes -> Text,
        extra -> Text,
        conductor_affinity -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        backfill_node_id -> Nullable<Integer>,
    }
}

diesel::table! {
    nodes (id) {
        id -> Integer,
        uuid -> Text,
        instance_uuid -> Nullable<Text>,
        instance_name -> Nullable<Text>,
        name -> Nullable<Text>,
        chassis_id -> Nullable<Integer>,
        power_state -> Nullable<Text>,
        target_power_state -> Nullable<Text>,
        provision_state -> Text,
        target_provision_state -> Nullable<Text>,
        provision_updated_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        instance_info -> Text,
        properties -> Text,
        driver -> Text,
        driver_info -> Text,
        driver_internal_info -> Text,
        clean_step -> Text,
        deploy_step -> Text,
        service_step -> Text,
        resource_class -> Nullable<Text>,
        raid_config -> Text,
        target_raid_config -> Text,
        reservation -> Nullable<Text>,
        conductor_affinity -> Nullable<Integer>,
        conductor_group -> Text,
        maintenance -> Bool,
        maintenance_reason -> Nullable<Text>,
        fault -> Nullable<Text>,
        console_enabled -> Bool,
        inspection_started_at -> Nullable<Timestamp>,
        inspection_finished_at -> Nullable<Timestamp>,
        extra -> Text,
        automated_clean -> Nullable<Bool>,
        protected -> Bool,
        protected_reason -> Nullable<Text>,
        owner -> Nullable<Text>,
        lessee -> Nullable<Text>,
        allocation_id -> Nullable<Integer>,
        description -> Nullable<Text>,
        bios_interface -> Nullable<Text>,
        boot_interface -> Nullable<Text>,
        console_interface -> Nullable<Text>,
        deploy_interface -> Nullable<Text>,
        firmware_interface -> Nullable<Text>,
        inspect_interface -> Nullable<Text>,
        management_interface -> Nullable<Text>,
        network_interface -> Nullable<Text>,
        power_interface -> Nullable<Text>,
        raid_interface -> Nullable<Text>,
        rescue_interface -> Nullable<Text>,
        storage_interface -> Nullable<Text>,
        vendor_interface -> Nullable<Text>,
        retired -> Bool,
        retired_reason -> Nullable<Text>,
        network_data -> Text,
        boot_mode -> Nullable<Text>,
        secure_boot -> Nullable<Bool>,
        shard -> Nullable<Text>,
        parent_node -> Nullable<Text>,
        disable_power_off -> Bool,
        health -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    portgroups (id) {
        id -> Integer,
        uuid -> Text,
        name -> Nullable<Text>,
        node_id -> Integer,
        address -> Nullable<Text>,
        extra -> Text,
        internal_info -> Text,
        standalone_ports_supported -> Bool,
        mode -> Nullable<Text>,
        properties -> Text,
        physical_network -> Nullable<Text>,
        category -> Nullable<Text>,
        dynamic_portgroup -> Bool,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ports (id) {
        id -> Integer,
        uuid -> Text,
        address -> Text,
        node_id -> Integer,
        extra -> Text,
        local_link_connection -> Text,
        portgroup_id -> Nullable<Integer>,
        pxe_enabled -> Bool,
        internal_info -> Text,
        physical_network -> Nullable<Text>,
        is_smartnic -> Bool,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        vendor -> Nullable<Text>,
        category -> Nullable<Text>,
        available_for_dynamic_portgroup -> Bool,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    node_tags (node_id, tag) {
        node_id -> Integer,
        tag -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    node_traits (node_id, trait_name) {
        node_id -> Integer,
        #[sql_name = "trait"]
        trait_name -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    node_history (id) {
        id -> Integer,
        uuid -> Text,
        conductor -> Nullable<Text>,
        event_type -> Nullable<Text>,
        severity -> Nullable<Text>,
        event -> Nullable<Text>,
        user -> Nullable<Text>,
        project -> Nullable<Text>,
        node_id -> Integer,
        state -> Nullable<Text>,
        target_provision_state -> Nullable<Text>,
        duration_seconds -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    deploy_templates (id) {
        id -> Integer,
        uuid -> Text,
        name -> Text,
        extra -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        steps -> Text,
    }
}

diesel::table! {
    runbooks (id) {
        id -> Integer,
        uuid -> Text,
        name -> Text,
        description -> Nullable<Text>,
        steps -> Text,
        traits -> Text,
        disable_ramdisk -> Bool,
        public -> Bool,
        owner -> Nullable<Text>,
        extra -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    volume_connectors (id) {
        id -> Integer,
        uuid -> Text,
        node_id -> Integer,
        #[sql_name = "type"]
        connector_type -> Text,
        connector_id -> Text,
        extra -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    volume_targets (id) {
        id -> Integer,
        uuid -> Text,
        node_id -> Integer,
        volume_type -> Text,
        properties -> Text,
        boot_index -> Integer,
        volume_id -> Text,
        extra -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    inspection_rules (id) {
        id -> Integer,
        uuid -> Text,
        description -> Nullable<Text>,
        priority -> Integer,
        sensitive -> Bool,
        phase -> Text,
        conditions -> Text,
        actions -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    node_inventory (id) {
        id -> Integer,
        node_id -> Integer,
        inventory_data -> Text,
        plugin_data -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    node_journal (id) {
        id -> BigInt,
        node_uuid -> Text,
        event_type -> Text,
        event -> Nullable<Text>,
        previous_provision_state -> Nullable<Text>,
        provision_state -> Nullable<Text>,
        power_state -> Nullable<Text>,
        to_power -> Nullable<Text>,
        step -> Nullable<Text>,
        last_error -> Nullable<Text>,
        publisher -> Text,
        trace_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    task_receipts (task_id) {
        task_id -> Text,
        node_id -> Integer,
        conductor -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(conductor_hardware_interfaces -> conductors (conductor_id));
diesel::joinable!(nodes -> chassis (chassis_id));
diesel::joinable!(ports -> nodes (node_id));
diesel::joinable!(portgroups -> nodes (node_id));
diesel::joinable!(node_traits -> nodes (node_id));
diesel::joinable!(node_tags -> nodes (node_id));
diesel::joinable!(node_history -> nodes (node_id));
diesel::joinable!(volume_connectors -> nodes (node_id));
diesel::joinable!(volume_targets -> nodes (node_id));

diesel::allow_tables_to_appear_in_same_query!(
    chassis,
    conductors,
    conductor_hardware_interfaces,
    allocations,
    nodes,
    portgroups,
    ports,
    node_tags,
    node_traits,
    node_history,
    deploy_templates,
    runbooks,
    volume_connectors,
    volume_targets,
    inspection_rules,
    node_inventory,
    task_receipts,
);
