//! Row structs and their queries, one module per table family. Rows never
//! leave the server crates as they are: the API turns them into Ironic's JSON
//! views, the conductor into driver calls.

pub mod allocation;
pub mod chassis;
pub mod conductor;
pub mod history;
pub mod inspection_rule;
pub mod inventory;
pub mod journal;
pub mod node;
pub mod node_json;
pub mod port;
pub mod portgroup;
pub mod receipt;
pub mod step_template;
pub mod volume;

/// The backend type of [`super::AnyConnection`], for boxed queries.
pub type AnyBackend = <super::AnyConnection as diesel::Connection>::Backend;

/// How a resource is named in a URL: a UUID (matched on `uuid` only, so a
/// name that looks like a UUID never shadows another row) or a name.
pub enum Ident {
    Uuid(String),
    Name(String),
}

impl Ident {
    pub fn parse(ident: &str) -> Ident {
        if uuid::Uuid::try_parse(ident).is_ok() {
            Ident::Uuid(ident.to_lowercase())
        } else {
            Ident::Name(ident.to_owned())
        }
    }
}

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub sort_key: String,
    pub sort_dir: SortDir,
}
