//! Which server of the host list to use: libpq's walk over `host=a,b`,
//! with `target_session_attrs` checked on the catalog connection. The
//! replication connection then goes to the same server.

use log::debug;

use crate::conninfo::{ConnParams, SessionAttrs};
use crate::error::{Error, Result};

use super::catalog::{pg_error, CatalogConn};

/// The server a session uses.
pub(crate) struct Server {
    /// Connection parameters for it alone.
    pub params: ConnParams,
    /// A hot standby (`pg_is_in_recovery()`).
    pub in_recovery: bool,
    /// `host:port` as the host list names it.
    pub endpoint: String,
}

/// Connects the catalog connection to the first server of the list that
/// answers and qualifies, as libpq does: a server that cannot be reached
/// or does not qualify passes the turn on; any other error (authentication,
/// a missing database) ends the walk. `prefer-standby` walks twice: standbys
/// only, then any server.
pub(crate) async fn connect(params: &ConnParams) -> Result<(CatalogConn, Server)> {
    let attrs = params.target_session_attrs;
    let passes: &[SessionAttrs] = match attrs {
        SessionAttrs::PreferStandby => &[SessionAttrs::Standby, SessionAttrs::Any],
        _ => &[attrs],
    };
    let single = !params.has_choice();
    let mut tried = Vec::new();
    for &pass in passes {
        for endpoint in params.attempt_order() {
            let server = params.at(&endpoint);
            let catalog = match CatalogConn::connect(&server).await {
                Ok(c) => c,
                // One server, no attributes: its own error says it best.
                Err(e) if single => return Err(e),
                Err(e) if e.is_transient() => {
                    debug!("{endpoint}: {e}");
                    tried.push(format!("{endpoint}: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (read_only, in_recovery) = role(&catalog).await?;
            if !pass.accepts(read_only, in_recovery) {
                let is = if in_recovery {
                    "a standby"
                } else if read_only {
                    "read-only"
                } else {
                    "a primary"
                };
                tried.push(format!("{endpoint}: is {is}, not {}", pass.as_str()));
                continue;
            }
            return Ok((
                catalog,
                Server {
                    params: server,
                    in_recovery,
                    endpoint: endpoint.to_string(),
                },
            ));
        }
    }
    Err(Error::connection(
        format!(
            "no server of the host list is usable with target_session_attrs={} ({})",
            attrs.as_str(),
            tried.join("; ")
        ),
        std::io::Error::other("every host was tried"),
    ))
}

/// `transaction_read_only` and `pg_is_in_recovery()`.
async fn role(catalog: &CatalogConn) -> Result<(bool, bool)> {
    let row = catalog
        .client()
        .query_one(
            "SELECT current_setting('transaction_read_only') = 'on', pg_is_in_recovery()",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "checking target_session_attrs".into()))?;
    Ok((row.get(0), row.get(1)))
}
