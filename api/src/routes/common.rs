//! Helpers every resource's handlers share: the base URL for links, node
//! lookup by UUID or name, and the view context of a node.

use actix_web::HttpRequest;
use ferric_common::db::models::chassis::Chassis;
use ferric_common::db::models::node::Node;
use ferric_common::db::{AnyConnection, DbError};

use crate::error::ApiError;
use crate::microversion::Microversion;
use crate::startup::LocalAddr;
use crate::state::AppState;
use crate::validation::{is_uuid_like, is_valid_hostname, is_valid_logical_name};
use crate::views::node::NodeContext;

/// The URL clients reach this API at: `[api]public_endpoint`, else the
/// forwarded scheme and host when a trusted proxy sets them, else the
/// scheme and the address the connection reached (never the client's
/// `Host` header: links must not say what a client claims).
pub fn base_url(req: &HttpRequest, state: &AppState) -> String {
    if let Some(endpoint) = &state.settings.api.public_endpoint {
        return endpoint.trim_end_matches('/').to_owned();
    }
    if state.settings.api.enable_proxy_headers_parsing {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    // Without a trusted proxy, forwarded headers and the Host header are a
    // client's claim: the address the client reached names us.
    let host = req.conn_data::<LocalAddr>().map_or_else(
        || req.app_config().host().to_owned(),
        |local| local.0.to_string(),
    );
    let scheme = if state.settings.api.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `node` once no conductor holds its lock. As Ironic's lock retry, a
/// locked node is read again every `[conductor]
/// node_locked_retry_interval_ms`, `node_locked_retry_attempts` times in
/// all, before the answer is 409 naming the holder (an operation that just
/// ended, such as a power action, is waited for, not refused).
///
/// # Errors
/// 409 when it stays locked, 404 when it is deleted meanwhile.
pub async fn wait_unlocked(state: &AppState, mut node: Node) -> Result<Node, ApiError> {
    let settings = &state.settings.conductor;
    let interval = std::time::Duration::from_millis(settings.node_locked_retry_interval_ms);
    for _ in 1..settings.node_locked_retry_attempts.max(1) {
        if node.reservation.is_none() {
            return Ok(node);
        }
        // Waiting for the lock, as Ironic does; no event tells the API
        // when a conductor releases one.
        tokio::time::sleep(interval).await;
        let id = node.id;
        node = state
            .db
            .run(move |conn| Node::by_id(conn, id))
            .await?
            .ok_or_else(|| ApiError::node_not_found(&node.uuid))?;
    }
    match &node.reservation {
        None => Ok(node),
        Some(holder) => Err(ApiError::node_locked(&node.uuid, holder)),
    }
}

/// Looks a node up by UUID or (from 1.5) name, as `get_rpc_node` does.
///
/// # Errors
/// 400 for an ident that is neither, 404 when no node matches.
pub async fn find_node(
    state: &AppState,
    ident: &str,
    version: Microversion,
) -> Result<Node, ApiError> {
    let key = NodeKey::parse(ident, version)?;
    let node = state.db.run(move |conn| key.load(conn)).await?;
    node.ok_or_else(|| ApiError::node_not_found(ident))
}

/// A node ident checked against the request's version: a UUID, or a name.
struct NodeKey {
    ident: String,
    by_uuid: bool,
}

impl NodeKey {
    fn parse(ident: &str, version: Microversion) -> Result<NodeKey, ApiError> {
        let by_uuid = is_uuid_like(ident);
        if !by_uuid && !is_valid_logical_name(ident) {
            return Err(ApiError::routing(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!("Expected UUID or name for node: {ident}"),
            ));
        }
        if !by_uuid {
            if !version.at_least(5) {
                return Err(ApiError::node_not_found(ident));
            }
            let valid = if version.at_least(10) {
                is_valid_logical_name(ident)
            } else {
                is_valid_hostname(ident)
            };
            if !valid {
                return Err(ApiError::BadRequest(format!(
                    "Expected a logical name or UUID but received {ident}."
                )));
            }
        }
        Ok(NodeKey {
            ident: if by_uuid {
                ident.to_lowercase()
            } else {
                ident.to_owned()
            },
            by_uuid,
        })
    }

    fn load(&self, conn: &mut AnyConnection) -> Result<Option<Node>, DbError> {
        if self.by_uuid {
            Node::by_uuid(conn, &self.ident)
        } else {
            Node::by_ident(conn, &self.ident)
        }
    }
}

/// What a node body needs from the database besides the row.
fn context_rows(
    conn: &mut AnyConnection,
    chassis_id: Option<i32>,
    node_id: i32,
) -> Result<(Option<String>, Vec<String>), DbError> {
    let chassis = match chassis_id {
        Some(id) => Chassis::by_id(conn, id)?.map(|c| c.uuid),
        None => None,
    };
    Ok((chassis, Node::traits(conn, node_id)?))
}

/// Chassis UUID, traits and owning conductor of one node.
///
/// # Errors
/// When the database cannot be read.
pub async fn node_context<'a>(
    state: &AppState,
    node: &Node,
    base: &'a str,
    version: Microversion,
) -> Result<NodeContext<'a>, ApiError> {
    let (chassis_id, node_id) = (node.chassis_id, node.id);
    let (chassis_uuid, traits) = state
        .db
        .run(move |conn| context_rows(conn, chassis_id, node_id))
        .await?;
    context(state, node, base, version, chassis_uuid, traits).await
}

/// A node and its view context in one database round trip (`GET` of one
/// node is the API's hottest path).
///
/// # Errors
/// As [`find_node`].
pub async fn find_node_with_context<'a>(
    state: &AppState,
    ident: &str,
    base: &'a str,
    version: Microversion,
) -> Result<(Node, NodeContext<'a>), ApiError> {
    let key = NodeKey::parse(ident, version)?;
    let found = state
        .db
        .run(move |conn| {
            let Some(node) = key.load(conn)? else {
                return Ok(None);
            };
            let (chassis, traits) = context_rows(conn, node.chassis_id, node.id)?;
            Ok(Some((node, chassis, traits)))
        })
        .await?;
    let (node, chassis_uuid, traits) = found.ok_or_else(|| ApiError::node_not_found(ident))?;
    let ctx = context(state, &node, base, version, chassis_uuid, traits).await?;
    Ok((node, ctx))
}

async fn context<'a>(
    state: &AppState,
    node: &Node,
    base: &'a str,
    version: Microversion,
    chassis_uuid: Option<String>,
    traits: Vec<String>,
) -> Result<NodeContext<'a>, ApiError> {
    let view = state.cluster(false).await?;
    Ok(NodeContext {
        base,
        version,
        chassis_uuid,
        traits,
        conductor: view
            .owner(&node.conductor_group, &node.driver, &node.uuid)
            .map(str::to_owned),
    })
}
