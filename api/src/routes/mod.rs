//! The whole route table, in one place.

pub mod allocations;
pub mod chassis;
pub mod common;
pub mod conductors;
pub mod deploy_templates;
pub mod drivers;
pub mod events;
pub mod health;
pub mod history;
pub mod inspection_rules;

pub mod node;
pub mod portgroups;
pub mod ports;
pub mod ramdisk;
pub mod resource;
pub mod root;
pub mod runbooks;
pub mod small_lists;
pub mod step_lists;
pub mod volumes;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use ferric_common::db::models::inspection_rule::InspectionRule;
use ferric_common::db::models::step_template::{DeployTemplate, Runbook};

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
            .route(web::get().to(node::crud::list))
            .route(web::post().to(node::crud::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/detail")
            .route(web::get().to(node::crud::list_detail))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/validate")
            .route(web::get().to(node::validate::validate_by_query))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}")
            .route(web::get().to(node::crud::show))
            .route(web::patch().to(node::crud::update))
            .route(web::delete().to(node::crud::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states")
            .route(web::get().to(node::states::get_states))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/power")
            .route(web::put().to(node::states::set_power))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/provision")
            .route(web::put().to(node::provision::set_provision))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/boot_device")
            .route(web::get().to(node::management::get_boot_device))
            .route(web::put().to(node::management::set_boot_device))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/boot_device/supported")
            .route(web::get().to(node::management::supported_boot_devices))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/inject_nmi")
            .route(web::put().to(node::management::inject_nmi))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/maintenance")
            .route(web::put().to(node::maintenance::set_maintenance))
            .route(web::delete().to(node::maintenance::unset_maintenance))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/validate")
            .route(web::get().to(node::validate::validate_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/traits")
            .route(web::get().to(node::traits::get_traits))
            .route(web::put().to(node::traits::set_traits))
            .route(web::delete().to(node::traits::delete_traits))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/traits/{trait}")
            .route(web::put().to(node::traits::add_trait))
            .route(web::delete().to(node::traits::delete_trait))
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
            .route(web::get().to(node::inventory::bios))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/inventory")
            .route(web::get().to(node::inventory::inventory))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/children")
            .route(web::get().to(node::inventory::children))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/bios/{setting}")
            .route(web::get().to(node::inventory::bios_setting))
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
        web::resource("/v1/nodes/{ident}/ports/detail")
            .route(web::get().to(ports::list_detail_for_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/portgroups")
            .route(web::get().to(portgroups::list_for_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/portgroups/detail")
            .route(web::get().to(portgroups::list_detail_for_node))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/portgroups")
            .route(web::get().to(portgroups::list))
            .route(web::post().to(portgroups::create))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/portgroups/detail")
            .route(web::get().to(portgroups::list_detail))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/portgroups/{ident}")
            .route(web::get().to(portgroups::show))
            .route(web::patch().to(portgroups::update))
            .route(web::delete().to(portgroups::delete))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/portgroups/{ident}/ports")
            .route(web::get().to(ports::list_for_portgroup))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/portgroups/{ident}/ports/detail")
            .route(web::get().to(ports::list_detail_for_portgroup))
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
            .route(web::get().to(node::crud::list_in_chassis))
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
        web::resource("/v1/drivers/{name}/raid/logical_disk_properties")
            .route(web::get().to(drivers::raid_logical_disk_properties))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/drivers/{name}/vendor_passthru/methods")
            .route(web::get().to(drivers::vendor_methods))
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
            .route(web::put().to(node::states::set_boot_mode))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/secure_boot")
            .route(web::put().to(node::states::set_secure_boot))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vifs")
            .route(web::get().to(node::vifs::list_vifs))
            .route(web::post().to(node::vifs::attach_vif))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vifs/{vif}")
            .route(web::delete().to(node::vifs::detach_vif))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/console")
            .route(web::get().to(node::console::get_console))
            .route(web::put().to(node::console::set_console))
            .default_service(web::to(method_not_allowed)),
    );
    // Ironic's object dispatch also reaches a node's console state as
    // `/v1/nodes/states/console/{ident}` (ironic-tempest-plugin reads it so).
    cfg.service(
        web::resource("/v1/nodes/states/console/{ident}")
            .route(web::get().to(node::console::get_console))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/states/raid")
            .route(web::put().to(node::raid::set_raid))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/indicators")
            .route(web::get().to(node::management::indicators))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/management/indicators/{indicator}")
            .route(web::get().to(node::management::indicator_state))
            .route(web::put().to(node::management::set_indicator_state))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vendor_passthru/methods")
            .route(web::get().to(node::vendor::vendor_methods))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vendor_passthru")
            .route(web::get().to(node::vendor::vendor_passthru))
            .route(web::post().to(node::vendor::vendor_passthru))
            .route(web::put().to(node::vendor::vendor_passthru))
            .route(web::delete().to(node::vendor::vendor_passthru))
            .route(web::patch().to(node::vendor::vendor_passthru))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/vmedia")
            .route(web::get().to(node::vmedia::list_vmedia))
            .route(web::post().to(node::vmedia::attach_vmedia))
            .route(web::delete().to(node::vmedia::detach_vmedia))
            .default_service(web::to(method_not_allowed_since(89))),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/firmware")
            .route(web::get().to(node::inventory::firmware))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/volume")
            .route(web::get().to(volumes::root))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/volume/")
            .route(web::get().to(volumes::root))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/volume/connectors")
            .route(web::get().to(volumes::list_connectors))
            .route(web::post().to(volumes::create_connector))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/volume/connectors/{ident}")
            .route(web::get().to(volumes::show_connector))
            .route(web::patch().to(volumes::update_connector))
            .route(web::delete().to(volumes::delete_connector))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/volume/targets")
            .route(web::get().to(volumes::list_targets))
            .route(web::post().to(volumes::create_target))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/volume/targets/{ident}")
            .route(web::get().to(volumes::show_target))
            .route(web::patch().to(volumes::update_target))
            .route(web::delete().to(volumes::delete_target))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/volume")
            .route(web::get().to(volumes::node_root))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/volume/connectors")
            .route(web::get().to(volumes::list_node_connectors))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/nodes/{ident}/volume/targets")
            .route(web::get().to(volumes::list_node_targets))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/events")
            .route(web::post().to(events::post))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/lookup")
            .route(web::get().to(ramdisk::lookup))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/continue_inspection")
            .route(web::post().to(ramdisk::continue_inspection))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/heartbeat")
            .route(web::post().to(ramdisk::heartbeat_by_body))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/heartbeat/{node}")
            .route(web::post().to(ramdisk::heartbeat))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/inspection_rules")
            .route(web::get().to(resource::list::<InspectionRule>))
            .route(web::post().to(resource::create::<InspectionRule>))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/inspection_rules/{uuid}")
            .route(web::get().to(resource::show::<InspectionRule>))
            .route(web::patch().to(resource::update::<InspectionRule>))
            .route(web::delete().to(resource::delete::<InspectionRule>))
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
            .route(web::get().to(resource::list::<DeployTemplate>))
            .route(web::post().to(resource::create::<DeployTemplate>))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/deploy_templates/{ident}")
            .route(web::get().to(resource::show::<DeployTemplate>))
            .route(web::patch().to(resource::update::<DeployTemplate>))
            .route(web::delete().to(resource::delete::<DeployTemplate>))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/runbooks")
            .route(web::get().to(resource::list::<Runbook>))
            .route(web::post().to(resource::create::<Runbook>))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/v1/runbooks/{ident}")
            .route(web::get().to(resource::show::<Runbook>))
            .route(web::patch().to(resource::update::<Runbook>))
            .route(web::delete().to(resource::delete::<Runbook>))
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
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .default_service(web::to(method_not_allowed)),
    );
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(crate::metrics::show))
            .default_service(web::to(method_not_allowed)),
    );
}

/// Unknown paths: webob's 404.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
}

/// A known path with a method it does not take: webob's 405.
async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::routing(StatusCode::METHOD_NOT_ALLOWED, ""))
}

/// A method a sub-resource of a node does not have: 405 from the version
/// that introduced it, 404 below (Ironic's node controller refuses the
/// sub-resource before looking at the method).
fn method_not_allowed_since(
    minor: u32,
) -> impl Fn(crate::microversion::Microversion) -> std::future::Ready<Result<HttpResponse, ApiError>>
+ Clone
+ 'static {
    move |version| {
        std::future::ready(Err(if version.at_least(minor) {
            ApiError::routing(StatusCode::METHOD_NOT_ALLOWED, "")
        } else {
            ApiError::routing(StatusCode::NOT_FOUND, "")
        }))
    }
}
