//! The Redfish side of the simulated BMCs: one HTTP listener per BMC, each
//! served by its own accept loop (axum on hyper: a request costs the same
//! with ten or ten thousand BMCs), serving the service root, `Systems/1` (power, `Reset`, boot override), `Managers/BMC` with a
//! virtual CD (`InsertMedia`/`EjectMedia`) and the `SessionService`, as
//! sushy and Ferric's `redfish` driver use them. Authentication: HTTP basic
//! or a session token (`X-Auth-Token`); only the service root is public.
//!
//! Invariants: every answer goes through [`admit`] (the BMC's latency,
//! injected errors and hanging apply to all alike); a refused request
//! changes nothing; errors carry a Redfish `error` body.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::fleet::{Bmc, Verdict};

/// One BMC's Redfish service: the machine and its open sessions.
#[derive(Clone)]
pub struct Service {
    bmc: Arc<Bmc>,
    /// Open sessions: (id, token).
    sessions: Arc<Mutex<Vec<(u64, String)>>>,
    next_session: Arc<AtomicU64>,
}

impl Service {
    fn sessions<T>(&self, f: impl FnOnce(&mut Vec<(u64, String)>) -> T) -> T {
        let mut guard = match self.sessions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

/// Serves `bmc`'s Redfish API on `listener` until the process ends.
pub async fn serve(bmc: Arc<Bmc>, listener: tokio::net::TcpListener) {
    let service = Service {
        bmc,
        sessions: Arc::default(),
        next_session: Arc::new(AtomicU64::new(1)),
    };
    let _ = axum::serve(listener, routes().with_state(service)).await;
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
fn routes() -> axum::Router<Service> {
    axum::Router::new()
        .route("/redfish/v1", get(service_root))
        .route("/redfish/v1/", get(service_root))
        .route("/redfish/v1/Systems", get(systems))
        .route(SYSTEM, get(system).patch(patch_system))
        .route(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            post(reset),
        )
        .route("/redfish/v1/Managers", get(managers))
        .route(MANAGER, get(manager))
        .route(
            "/redfish/v1/Managers/BMC/VirtualMedia",
            get(media_collection),
        )
        .route(CD, get(cd))
        .route(
            "/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia",
            post(insert_media),
        )
        .route(
            "/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia",
            post(eject_media),
        )
        .route("/redfish/v1/SessionService", get(session_service))
        .route(SESSIONS, get(session_list).post(log_in))
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            axum::routing::delete(log_out),
        )
        .fallback(not_found)
}

/// A Redfish error answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": format!("Base.1.8.{code}"),
        "message": message,
        "@Message.ExtendedInfo": [{"MessageId": format!("Base.1.8.{code}"), "Message": message}],
    }});
    (status, Json(body)).into_response()
}

fn ok(body: Value) -> Answer {
    Ok(Json(body).into_response())
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A refusal to answer with.
fn refuse(status: StatusCode, code: &'static str, message: &str) -> Answer {
    Err(Refusal::new(status, code, message))
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
}

impl axum::response::IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

/// What a handler answers: the resource, or the BMC's refusal.
type Answer = Result<Response, Refusal>;

/// The BMC with its faults applied; `Err` with the answer to give
/// instead. `authenticated`: whether credentials are required.
async fn admit(
    service: &Service,
    headers: &HeaderMap,
    authenticated: bool,
) -> Result<Arc<Bmc>, Refusal> {
    let bmc = service.bmc.clone();
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
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if authenticated && !authorised(headers, service) {
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
fn authorised(headers: &HeaderMap, service: &Service) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = header("X-Auth-Token") {
        return service.sessions(|open| open.iter().any(|(_, t)| t == token));
    }
    let Some(basic) = header("Authorization").and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    let bmc = &service.bmc;
    decoded == format!("{}:{}", bmc.username, bmc.password).as_bytes()
}

fn link(path: &str) -> Value {
    json!({"@odata.id": path})
}

async fn service_root(State(service): State<Service>, headers: HeaderMap) -> Answer {
    let bmc = admit(&service, &headers, false).await?;
    ok(json!({
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

fn collection(id: &str, name: &str, members: &[&str]) -> Answer {
    let members: Vec<Value> = members.iter().map(|m| link(m)).collect();
    ok(json!({
        "@odata.id": id,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    }))
}

async fn systems(State(service): State<Service>, headers: HeaderMap) -> Answer {
    admit(&service, &headers, true).await?;
    collection(
        "/redfish/v1/Systems",
        "Computer System Collection",
        &[SYSTEM],
    )
}

async fn system(State(service): State<Service>, headers: HeaderMap) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
    let s = bmc.with(|s| s.clone());
    ok(json!({
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
    State(service): State<Service>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
    let Some(boot) = body.get("Boot").filter(|b| b.is_object()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            "Only Boot can be changed on this system.",
        );
    };
    // Every value is checked before any is set.
    let target = boot_value(boot, "BootSourceOverrideTarget", &BOOT_TARGETS)?;
    let enabled = boot_value(boot, "BootSourceOverrideEnabled", &BOOT_ENABLED)?;
    let mode = boot_value(boot, "BootSourceOverrideMode", &BOOT_MODES)?;
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
    no_content()
}

async fn reset(
    State(service): State<Service>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
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
            return refuse(
                StatusCode::BAD_REQUEST,
                "ActionParameterNotSupported",
                &format!("The parameter ResetType with value {kind:?} is not supported."),
            );
        }
    }
    no_content()
}

async fn managers(State(service): State<Service>, headers: HeaderMap) -> Answer {
    admit(&service, &headers, true).await?;
    collection("/redfish/v1/Managers", "Manager Collection", &[MANAGER])
}

async fn manager(State(service): State<Service>, headers: HeaderMap) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
    ok(json!({
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

async fn media_collection(State(service): State<Service>, headers: HeaderMap) -> Answer {
    admit(&service, &headers, true).await?;
    collection(
        "/redfish/v1/Managers/BMC/VirtualMedia",
        "Virtual Media Services",
        &[CD],
    )
}

async fn cd(State(service): State<Service>, headers: HeaderMap) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
    let media = bmc.with(|s| s.media.clone());
    ok(json!({
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
    State(service): State<Service>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
    let Some(image) = body["Image"].as_str().filter(|i| !i.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            "The action InsertMedia requires the parameter Image to be present in the request body.",
        );
    };
    if bmc.with(|s| s.media.is_some()) {
        return refuse(
            StatusCode::CONFLICT,
            "ResourceInUse",
            "The change to the requested resource failed because the resource is in use or in transition.",
        );
    }
    bmc.with(|s| s.media = Some(image.to_owned()));
    no_content()
}

async fn eject_media(State(service): State<Service>, headers: HeaderMap) -> Answer {
    let bmc = admit(&service, &headers, true).await?;
    bmc.with(|s| s.media = None);
    no_content()
}

async fn session_service(State(service): State<Service>, headers: HeaderMap) -> Answer {
    admit(&service, &headers, true).await?;
    ok(json!({
        "@odata.id": "/redfish/v1/SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": 1800,
        "Sessions": link(SESSIONS),
    }))
}

async fn session_list(State(service): State<Service>, headers: HeaderMap) -> Answer {
    admit(&service, &headers, true).await?;
    let ids: Vec<String> = service.sessions(|open| {
        open.iter()
            .map(|(id, _)| format!("{SESSIONS}/{id}"))
            .collect()
    });
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    collection(SESSIONS, "Session Collection", &ids)
}

async fn log_in(
    State(service): State<Service>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    let bmc = admit(&service, &headers, false).await?;
    if body["UserName"] != bmc.username.as_str() || body["Password"] != bmc.password.as_str() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "There is no valid session established with the implementation.",
        );
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let id = service.next_session.fetch_add(1, Ordering::Relaxed);
    service.sessions(|open| open.push((id, token.clone())));
    let location = format!("{SESSIONS}/{id}");
    let body = json!({"@odata.id": location, "Id": id.to_string(), "UserName": bmc.username});
    Ok((
        StatusCode::CREATED,
        [("X-Auth-Token", token), ("Location", location)],
        Json(body),
    )
        .into_response())
}

async fn log_out(
    State(service): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Answer {
    admit(&service, &headers, true).await?;
    let id: Option<u64> = id.parse().ok();
    let closed = service.sessions(|open| {
        let before = open.len();
        open.retain(|(sid, _)| Some(*sid) != id);
        open.len() < before
    });
    if closed { no_content() } else { missing(&uri) }
}

fn missing(uri: &Uri) -> Answer {
    refuse(
        StatusCode::NOT_FOUND,
        "ResourceMissingAtURI",
        &format!("The resource at the URI {} was not found.", uri.path()),
    )
}

async fn not_found(State(service): State<Service>, headers: HeaderMap, uri: Uri) -> Answer {
    admit(&service, &headers, true).await?;
    missing(&uri)
}
