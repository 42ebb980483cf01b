//! The Redfish side of the simulated BMCs: one HTTP listener per BMC (the
//! request's local address says which BMC it reached), serving the service
//! root, `Systems/1` (power, `Reset`, boot override), `Managers/BMC` with a
//! virtual CD (`InsertMedia`/`EjectMedia`) and the `SessionService`, as
//! sushy and Ferric's `redfish` driver use them. Authentication: HTTP basic
//! or a session token (`X-Auth-Token`); only the service root is public.
//!
//! Invariants: every answer goes through [`admit`] (the BMC's latency,
//! injected errors and hanging apply to all alike); a refused request
//! changes nothing; errors carry a Redfish `error` body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::fleet::{Bmc, Verdict};

/// Every BMC by the address it listens on.
pub struct Fleet {
    pub by_address: HashMap<SocketAddr, Arc<Bmc>>,
    /// Open sessions (id, token) per BMC index.
    sessions: std::sync::Mutex<HashMap<usize, Vec<(u64, String)>>>,
    next_session: std::sync::atomic::AtomicU64,
}

impl Fleet {
    pub fn new(bmcs: &[Arc<Bmc>]) -> Fleet {
        Fleet {
            by_address: bmcs.iter().map(|b| (b.address, b.clone())).collect(),
            sessions: std::sync::Mutex::new(HashMap::new()),
            next_session: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn sessions<T>(&self, f: impl FnOnce(&mut HashMap<usize, Vec<(u64, String)>>) -> T) -> T {
        let mut guard = match self.sessions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

const SYSTEM: &str = "/redfish/v1/Systems/1";
const MANAGER: &str = "/redfish/v1/Managers/BMC";
const CD: &str = "/redfish/v1/Managers/BMC/VirtualMedia/Cd";
const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
const BOOT_TARGETS: [&str; 7] = ["None", "Pxe", "Hdd", "Cd", "BiosSetup", "UefiHttp", "Usb"];
const BOOT_ENABLED: [&str; 3] = ["Disabled", "Once", "Continuous"];
const BOOT_MODES: [&str; 2] = ["UEFI", "Legacy"];
const RESET_TYPES: [&str; 7] = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "PushPowerButton",
];

/// The routes of every BMC.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/redfish/v1", web::get().to(service_root))
        .route("/redfish/v1/", web::get().to(service_root))
        .route("/redfish/v1/Systems", web::get().to(systems))
        .route(SYSTEM, web::get().to(system))
        .route(SYSTEM, web::patch().to(patch_system))
        .route(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            web::post().to(reset),
        )
        .route("/redfish/v1/Managers", web::get().to(managers))
        .route(MANAGER, web::get().to(manager))
        .route(
            "/redfish/v1/Managers/BMC/VirtualMedia",
            web::get().to(media_collection),
        )
        .route(CD, web::get().to(cd))
        .route(
            "/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia",
            web::post().to(insert_media),
        )
        .route(
            "/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia",
            web::post().to(eject_media),
        )
        .route("/redfish/v1/SessionService", web::get().to(session_service))
        .route(SESSIONS, web::get().to(session_list))
        .route(SESSIONS, web::post().to(log_in))
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            web::delete().to(log_out),
        )
        .default_service(web::to(not_found));
}

/// A Redfish error answer.
fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {
        "code": format!("Base.1.8.{code}"),
        "message": message,
        "@Message.ExtendedInfo": [{"MessageId": format!("Base.1.8.{code}"), "Message": message}],
    }}))
}

/// A request refused: its status and Redfish message.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Refusal {
        Refusal {
            status,
            code,
            message: message.to_owned(),
        }
    }

    fn answer(self) -> HttpResponse {
        error(self.status, self.code, &self.message)
    }
}

/// The BMC the request reached, its faults applied; `Err` with the answer
/// to give instead. `authenticated`: whether credentials are required.
async fn admit(req: &HttpRequest, fleet: &Fleet, authenticated: bool) -> Result<Arc<Bmc>, Refusal> {
    let local = req.app_config().local_addr();
    let Some(bmc) = fleet.by_address.get(&local).cloned() else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "no BMC listens here",
        ));
    };
    match bmc.admit() {
        Verdict::Hang => {
            std::future::pending::<()>().await;
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceTemporarilyUnavailable",
                "hanging",
            ))
        }
        Verdict::Fail { delay } => {
            tokio::time::sleep(delay).await;
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "ferric-sim: injected failure",
            ))
        }
        Verdict::Serve { delay } => {
            tokio::time::sleep(delay).await;
            if authenticated && !authorised(req, fleet, &bmc) {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "InsufficientPrivilege",
                    "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.",
                ));
            }
            Ok(bmc)
        }
    }
}

/// Basic credentials of the BMC, or one of its session tokens.
fn authorised(req: &HttpRequest, fleet: &Fleet, bmc: &Bmc) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("X-Auth-Token") {
        return fleet.sessions(|s| {
            s.get(&bmc.index)
                .is_some_and(|open| open.iter().any(|(_, t)| t == token))
        });
    }
    let Some(basic) = header("Authorization").and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    decoded == format!("{}:{}", bmc.username, bmc.password).as_bytes()
}

fn link(path: &str) -> Value {
    json!({"@odata.id": path})
}

async fn service_root(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, false).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    HttpResponse::Ok().json(json!({
        "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
        "@odata.id": "/redfish/v1/",
        "Id": "RootService",
        "Name": "ferric-sim Redfish service",
        "RedfishVersion": "1.11.0",
        "UUID": uuid_of(bmc.index, 0),
        "Product": "ferric-sim",
        "Systems": link("/redfish/v1/Systems"),
        "Managers": link("/redfish/v1/Managers"),
        "SessionService": link("/redfish/v1/SessionService"),
        "Links": {"Sessions": link(SESSIONS)},
    }))
}

/// A stable UUID for BMC `index` (`kind` 0: the service, 1: the system).
fn uuid_of(index: usize, kind: u8) -> String {
    format!("5f2c1d3e-0000-4000-8{kind:03x}-{index:012x}")
}

fn collection(id: &str, name: &str, members: &[&str]) -> HttpResponse {
    let members: Vec<Value> = members.iter().map(|m| link(m)).collect();
    HttpResponse::Ok().json(json!({
        "@odata.id": id,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    }))
}

async fn systems(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    match admit(&req, &fleet, true).await {
        Ok(_) => collection(
            "/redfish/v1/Systems",
            "Computer System Collection",
            &[SYSTEM],
        ),
        Err(refused) => refused.answer(),
    }
}

async fn system(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let s = bmc.with(|s| s.clone());
    HttpResponse::Ok().json(json!({
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "@odata.id": SYSTEM,
        "Id": "1",
        "Name": format!("sim-{}", bmc.index),
        "UUID": uuid_of(bmc.index, 1),
        "Manufacturer": "ferric-sim",
        "Model": "Simulated machine",
        "SystemType": "Physical",
        "PowerState": if s.power_on { "On" } else { "Off" },
        "Status": {"State": "Enabled", "Health": "OK"},
        "ProcessorSummary": {"Count": 2, "Status": {"State": "Enabled"}},
        "MemorySummary": {"TotalSystemMemoryGiB": 64, "Status": {"State": "Enabled"}},
        "Boot": {
            "BootSourceOverrideEnabled": s.boot_enabled,
            "BootSourceOverrideTarget": s.boot_target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
            "BootSourceOverrideMode": s.boot_mode,
        },
        "Actions": {"#ComputerSystem.Reset": {
            "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": RESET_TYPES,
        }},
        "Links": {"ManagedBy": [link(MANAGER)]},
    }))
}

/// The value of `key` in `boot` when it is one of `allowed`; `Err` with
/// Redfish's answer when it is there but not allowed.
fn boot_value(boot: &Value, key: &str, allowed: &[&str]) -> Result<Option<String>, Refusal> {
    match boot.get(key) {
        None => Ok(None),
        Some(Value::String(v)) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
        Some(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueNotInList",
            &format!(
                "The value {other} for the property {key} is not in the list of acceptable values."
            ),
        )),
    }
}

async fn patch_system(
    req: HttpRequest,
    fleet: web::Data<Fleet>,
    body: web::Json<Value>,
) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let Some(boot) = body.get("Boot").filter(|b| b.is_object()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            "Only Boot can be changed on this system.",
        );
    };
    let values = (
        boot_value(boot, "BootSourceOverrideTarget", &BOOT_TARGETS),
        boot_value(boot, "BootSourceOverrideEnabled", &BOOT_ENABLED),
        boot_value(boot, "BootSourceOverrideMode", &BOOT_MODES),
    );
    let (target, enabled, mode) = match values {
        (Ok(t), Ok(e), Ok(m)) => (t, e, m),
        (Err(refused), _, _) | (_, Err(refused), _) | (_, _, Err(refused)) => {
            return refused.answer();
        }
    };
    bmc.with(|s| {
        if let Some(t) = target {
            s.boot_target = t;
        }
        if let Some(e) = enabled {
            s.boot_enabled = e;
        }
        if let Some(m) = mode {
            s.boot_mode = m;
        }
    });
    HttpResponse::NoContent().finish()
}

async fn reset(req: HttpRequest, fleet: web::Data<Fleet>, body: web::Json<Value>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let kind = body["ResetType"].as_str().unwrap_or_default();
    match kind {
        "On" => bmc.set_power(true),
        "ForceOff" | "GracefulShutdown" => bmc.set_power(false),
        "GracefulRestart" | "ForceRestart" => {
            bmc.set_power(false);
            bmc.set_power(true);
        }
        "PushPowerButton" => {
            let on = bmc.with(|s| s.power_on);
            bmc.set_power(!on);
        }
        "Nmi" => {}
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "ActionParameterNotSupported",
                &format!("The parameter ResetType with value {kind:?} is not supported."),
            );
        }
    }
    HttpResponse::NoContent().finish()
}

async fn managers(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    match admit(&req, &fleet, true).await {
        Ok(_) => collection("/redfish/v1/Managers", "Manager Collection", &[MANAGER]),
        Err(refused) => refused.answer(),
    }
}

async fn manager(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    HttpResponse::Ok().json(json!({
        "@odata.type": "#Manager.v1_10_0.Manager",
        "@odata.id": MANAGER,
        "Id": "BMC",
        "Name": format!("sim-{}-bmc", bmc.index),
        "ManagerType": "BMC",
        "Status": {"State": "Enabled", "Health": "OK"},
        "VirtualMedia": link("/redfish/v1/Managers/BMC/VirtualMedia"),
        "Links": {"ManagerForServers": [link(SYSTEM)]},
    }))
}

async fn media_collection(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    match admit(&req, &fleet, true).await {
        Ok(_) => collection(
            "/redfish/v1/Managers/BMC/VirtualMedia",
            "Virtual Media Services",
            &[CD],
        ),
        Err(refused) => refused.answer(),
    }
}

async fn cd(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let media = bmc.with(|s| s.media.clone());
    HttpResponse::Ok().json(json!({
        "@odata.type": "#VirtualMedia.v1_4_0.VirtualMedia",
        "@odata.id": CD,
        "Id": "Cd",
        "Name": "Virtual CD",
        "MediaTypes": ["CD", "DVD"],
        "Image": media,
        "Inserted": media.is_some(),
        "WriteProtected": true,
        "ConnectedVia": if media.is_some() { "URI" } else { "NotConnected" },
        "Actions": {
            "#VirtualMedia.InsertMedia": {
                "target": format!("{CD}/Actions/VirtualMedia.InsertMedia")},
            "#VirtualMedia.EjectMedia": {
                "target": format!("{CD}/Actions/VirtualMedia.EjectMedia")},
        },
    }))
}

async fn insert_media(
    req: HttpRequest,
    fleet: web::Data<Fleet>,
    body: web::Json<Value>,
) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let Some(image) = body["Image"].as_str().filter(|i| !i.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            "The action InsertMedia requires the parameter Image to be present in the request body.",
        );
    };
    if bmc.with(|s| s.media.is_some()) {
        return error(
            StatusCode::CONFLICT,
            "ResourceInUse",
            "The change to the requested resource failed because the resource is in use or in transition.",
        );
    }
    bmc.with(|s| s.media = Some(image.to_owned()));
    HttpResponse::NoContent().finish()
}

async fn eject_media(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    bmc.with(|s| s.media = None);
    HttpResponse::NoContent().finish()
}

async fn session_service(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    match admit(&req, &fleet, true).await {
        Ok(_) => HttpResponse::Ok().json(json!({
            "@odata.id": "/redfish/v1/SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": true,
            "SessionTimeout": 1800,
            "Sessions": link(SESSIONS),
        })),
        Err(refused) => refused.answer(),
    }
}

async fn session_list(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let ids: Vec<String> = fleet.sessions(|s| {
        s.get(&bmc.index)
            .map(|open| {
                open.iter()
                    .map(|(id, _)| format!("{SESSIONS}/{id}"))
                    .collect()
            })
            .unwrap_or_default()
    });
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    collection(SESSIONS, "Session Collection", &ids)
}

async fn log_in(req: HttpRequest, fleet: web::Data<Fleet>, body: web::Json<Value>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, false).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    if body["UserName"] != bmc.username.as_str() || body["Password"] != bmc.password.as_str() {
        return error(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "There is no valid session established with the implementation.",
        );
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let id = fleet
        .next_session
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    fleet.sessions(|s| s.entry(bmc.index).or_default().push((id, token.clone())));
    let location = format!("{SESSIONS}/{id}");
    HttpResponse::Created()
        .insert_header(("X-Auth-Token", token))
        .insert_header(("Location", location.clone()))
        .json(json!({"@odata.id": location, "Id": id.to_string(), "UserName": bmc.username}))
}

async fn log_out(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    let bmc = match admit(&req, &fleet, true).await {
        Ok(bmc) => bmc,
        Err(refused) => return refused.answer(),
    };
    let id: Option<u64> = req.match_info().get("id").and_then(|id| id.parse().ok());
    let closed = fleet.sessions(|s| {
        s.get_mut(&bmc.index).is_some_and(|open| {
            let before = open.len();
            open.retain(|(sid, _)| Some(*sid) != id);
            open.len() < before
        })
    });
    if closed {
        HttpResponse::NoContent().finish()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            &format!("The resource at the URI {} was not found.", req.path()),
        )
    }
}

async fn not_found(req: HttpRequest, fleet: web::Data<Fleet>) -> HttpResponse {
    match admit(&req, &fleet, true).await {
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            &format!("The resource at the URI {} was not found.", req.path()),
        ),
        Err(refused) => refused.answer(),
    }
}
