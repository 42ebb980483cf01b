//! The whole route table, in one place.

pub mod allocations;
pub mod chassis;
pub mod common;
pub mod conductors;
pub mod deploy_templates;
pub mod drivers;
pub mod history;
pub mod node_controls;
pub mod node_extras;
pub mod node_states;
pub mod nodes;
pub mod ports;
pub mod root;
pub mod runbooks;
pub mod step_lists;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// Registers every route of the API; a known path with another method
/// answers 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(root::root))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1")
            .route(web::get().to(root::v1))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/")
            .route(web::get().to(root::v1))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes")
            .route(web::get().to(nodes::list))
            .route(web::post().to(nodes::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/detail")
            .route(web::get().to(nodes::list_detail))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/validate")
            .route(web::get().to(node_states::validate_by_query))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}")
            .route(web::get().to(nodes::show))
            .route(web::patch().to(nodes::update))
            .route(web::delete().to(nodes::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states")
            .route(web::get().to(node_states::get_states))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/power")
            .route(web::put().to(node_states::set_power))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/provision")
            .route(web::put().to(node_states::set_provision))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/boot_device")
            .route(web::get().to(node_states::get_boot_device))
            .route(web::put().to(node_states::set_boot_device))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/boot_device/supported")
            .route(web::get().to(node_states::supported_boot_devices))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/inject_nmi")
            .route(web::put().to(node_states::inject_nmi))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/maintenance")
            .route(web::put().to(node_states::set_maintenance))
            .route(web::delete().to(node_states::unset_maintenance))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/validate")
            .route(web::get().to(node_states::validate_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/traits")
            .route(web::get().to(node_states::get_traits))
            .route(web::put().to(node_states::set_traits))
            .route(web::delete().to(node_states::delete_traits))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/traits/{trait}")
            .route(web::put().to(node_states::add_trait))
            .route(web::delete().to(node_states::delete_trait))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/history")
            .route(web::get().to(history::list))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/history/{event}")
            .route(web::get().to(history::show))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/bios")
            .route(web::get().to(node_extras::bios))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/inventory")
            .route(web::get().to(node_extras::inventory))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/children")
            .route(web::get().to(node_extras::children))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/bios/{setting}")
            .route(web::get().to(node_extras::bios_setting))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/shards")
            .route(web::get().to(history::shards))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/shards/{name}")
            .route(web::get().to(history::shard))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/ports")
            .route(web::get().to(ports::list_for_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/portgroups")
            .route(web::get().to(empty_portgroups))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/ports")
            .route(web::get().to(ports::list))
            .route(web::post().to(ports::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/ports/detail")
            .route(web::get().to(ports::list_detail))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/ports/{ident}")
            .route(web::get().to(ports::show))
            .route(web::patch().to(ports::update))
            .route(web::delete().to(ports::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/chassis")
            .route(web::get().to(chassis::list))
            .route(web::post().to(chassis::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/chassis/detail")
            .route(web::get().to(chassis::list_detail))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/chassis/{uuid}")
            .route(web::get().to(chassis::show))
            .route(web::patch().to(chassis::update))
            .route(web::delete().to(chassis::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/chassis/{uuid}/nodes")
            .route(web::get().to(nodes::list_in_chassis))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/drivers")
            .route(web::get().to(drivers::list))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/drivers/{name}")
            .route(web::get().to(drivers::show))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/drivers/{name}/properties")
            .route(web::get().to(drivers::show_properties))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/conductors")
            .route(web::get().to(conductors::list))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/conductors/{hostname}")
            .route(web::get().to(conductors::show))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/boot_mode")
            .route(web::put().to(node_states::set_boot_mode))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/secure_boot")
            .route(web::put().to(node_states::set_secure_boot))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vifs")
            .route(web::get().to(node_controls::list_vifs))
            .route(web::post().to(node_controls::attach_vif))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vifs/{vif}")
            .route(web::delete().to(node_controls::detach_vif))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/console")
            .route(web::get().to(node_controls::get_console))
            .route(web::put().to(node_controls::set_console))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/raid")
            .route(web::put().to(node_controls::set_raid))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/indicators")
            .route(web::get().to(node_controls::indicators))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vendor_passthru/methods")
            .route(web::get().to(node_controls::vendor_methods))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vendor_passthru")
            .route(web::get().to(node_controls::vendor_passthru))
            .route(web::post().to(node_controls::vendor_passthru))
            .route(web::put().to(node_controls::vendor_passthru))
            .route(web::delete().to(node_controls::vendor_passthru))
            .route(web::patch().to(node_controls::vendor_passthru))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vmedia")
            .route(web::get().to(node_controls::list_vmedia))
            .route(web::post().to(node_controls::attach_vmedia))
            .route(web::delete().to(node_controls::detach_vmedia))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/firmware")
            .route(web::get().to(node_controls::firmware))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/allocations")
            .route(web::get().to(allocations::list))
            .route(web::post().to(allocations::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/allocations/{ident}")
            .route(web::get().to(allocations::show))
            .route(web::patch().to(allocations::update))
            .route(web::delete().to(allocations::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/allocation")
            .route(web::get().to(allocations::show_for_node))
            .route(web::delete().to(allocations::delete_for_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/deploy_templates")
            .route(web::get().to(deploy_templates::list))
            .route(web::post().to(deploy_templates::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/deploy_templates/{ident}")
            .route(web::get().to(deploy_templates::show))
            .route(web::patch().to(deploy_templates::update))
            .route(web::delete().to(deploy_templates::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/runbooks")
            .route(web::get().to(runbooks::list))
            .route(web::post().to(runbooks::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/runbooks/{ident}")
            .route(web::get().to(runbooks::show))
            .route(web::patch().to(runbooks::update))
            .route(web::delete().to(runbooks::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/runbooks/{ident}/traits")
            .route(web::get().to(runbooks::get_traits))
            .route(web::put().to(runbooks::set_traits))
            .route(web::delete().to(runbooks::delete_traits))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/runbooks/{ident}/traits/{trait}")
            .route(web::put().to(runbooks::add_trait))
            .route(web::delete().to(runbooks::delete_trait))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(crate::metrics::show))
            .default_service(web::to(method_not_allowed)),
    );
}

/// Portgroups are not stored yet: every node has none.
async fn empty_portgroups() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "portgroups": [] }))
}

/// Unknown paths: webob's 404.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
}

/// A known path with a method it does not take: webob's 405.
async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::routing(StatusCode::METHOD_NOT_ALLOWED, ""))
}
