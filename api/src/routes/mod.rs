//! The whole route table, in one place.

pub mod chassis;
pub mod common;
pub mod conductors;
pub mod drivers;
pub mod node_states;
pub mod nodes;
pub mod ports;
pub mod root;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// Registers every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root::root))
        .route("/v1", web::get().to(root::v1))
        .route("/v1/", web::get().to(root::v1))
        // Nodes.
        .route("/v1/nodes", web::get().to(nodes::list))
        .route("/v1/nodes", web::post().to(nodes::create))
        .route("/v1/nodes/detail", web::get().to(nodes::list_detail))
        .route(
            "/v1/nodes/validate",
            web::get().to(node_states::validate_by_query),
        )
        .route("/v1/nodes/{ident}", web::get().to(nodes::show))
        .route("/v1/nodes/{ident}", web::patch().to(nodes::update))
        .route("/v1/nodes/{ident}", web::delete().to(nodes::delete))
        .route(
            "/v1/nodes/{ident}/states",
            web::get().to(node_states::get_states),
        )
        .route(
            "/v1/nodes/{ident}/states/power",
            web::put().to(node_states::set_power),
        )
        .route(
            "/v1/nodes/{ident}/states/provision",
            web::put().to(node_states::set_provision),
        )
        .route(
            "/v1/nodes/{ident}/management/boot_device",
            web::get().to(node_states::get_boot_device),
        )
        .route(
            "/v1/nodes/{ident}/management/boot_device",
            web::put().to(node_states::set_boot_device),
        )
        .route(
            "/v1/nodes/{ident}/management/boot_device/supported",
            web::get().to(node_states::supported_boot_devices),
        )
        .route(
            "/v1/nodes/{ident}/maintenance",
            web::put().to(node_states::set_maintenance),
        )
        .route(
            "/v1/nodes/{ident}/maintenance",
            web::delete().to(node_states::unset_maintenance),
        )
        .route(
            "/v1/nodes/{ident}/validate",
            web::get().to(node_states::validate_node),
        )
        .route(
            "/v1/nodes/{ident}/traits",
            web::get().to(node_states::get_traits),
        )
        .route(
            "/v1/nodes/{ident}/traits",
            web::put().to(node_states::set_traits),
        )
        .route(
            "/v1/nodes/{ident}/traits",
            web::delete().to(node_states::delete_traits),
        )
        .route(
            "/v1/nodes/{ident}/traits/{trait}",
            web::put().to(node_states::add_trait),
        )
        .route(
            "/v1/nodes/{ident}/traits/{trait}",
            web::delete().to(node_states::delete_trait),
        )
        .route(
            "/v1/nodes/{ident}/ports",
            web::get().to(ports::list_for_node),
        )
        .route(
            "/v1/nodes/{ident}/portgroups",
            web::get().to(empty_portgroups),
        )
        // Ports.
        .route("/v1/ports", web::get().to(ports::list))
        .route("/v1/ports", web::post().to(ports::create))
        .route("/v1/ports/detail", web::get().to(ports::list_detail))
        .route("/v1/ports/{ident}", web::get().to(ports::show))
        .route("/v1/ports/{ident}", web::patch().to(ports::update))
        .route("/v1/ports/{ident}", web::delete().to(ports::delete))
        // Chassis.
        .route("/v1/chassis", web::get().to(chassis::list))
        .route("/v1/chassis", web::post().to(chassis::create))
        .route("/v1/chassis/detail", web::get().to(chassis::list_detail))
        .route("/v1/chassis/{uuid}", web::get().to(chassis::show))
        .route("/v1/chassis/{uuid}", web::patch().to(chassis::update))
        .route("/v1/chassis/{uuid}", web::delete().to(chassis::delete))
        .route(
            "/v1/chassis/{uuid}/nodes",
            web::get().to(nodes::list_in_chassis),
        )
        // Drivers and conductors.
        .route("/v1/drivers", web::get().to(drivers::list))
        .route("/v1/drivers/{name}", web::get().to(drivers::show))
        .route(
            "/v1/drivers/{name}/properties",
            web::get().to(drivers::show_properties),
        )
        .route("/v1/conductors", web::get().to(conductors::list))
        .route("/v1/conductors/{hostname}", web::get().to(conductors::show));
}

/// Portgroups are not stored yet: every node has none.
async fn empty_portgroups() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "portgroups": [] }))
}

/// Unknown paths: Ironic's 404.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "The resource could not be found.".into(),
    ))
}
