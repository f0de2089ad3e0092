//! Which role each route needs, in one place: the auth middleware enforces it before the
//! handler reads anything, `openapi.yaml` states it per operation (`x-flex-role`), and a test
//! walks every documented operation with every role to hold the two together.

use axum::{extract::MatchedPath, http::Method};

use crate::store::Role;

/// Routes only an administrator may use, even to read: tokens, webhooks (their URLs and
/// delivery logs), the audit trail, reconcile (its report names every object on the array).
const ADMIN_ONLY: [&str; 4] = [
    "/api/v2/flex_app_tokens",
    "/api/v1/webhooks",
    "/api/v1/audit",
    "/api/v1/sdp",
];
/// Routes whose reads are open to viewers and whose changes are an administrator's.
const ADMIN_CHANGES: [&str; 1] = ["/api/echo/v1/snapshot_schedules"];
/// The seed generation's clone from a snapshot, which clients send as a GET with a body.
const GET_THAT_CLONES: &str = "/flex/api/v1/db_snapshots/{id}/clone";

/// The least role that may call `method` on `route` (a route template). A request that
/// matched no route needs the most, so nothing unlisted is open by mistake.
pub fn needed(method: &Method, route: Option<&MatchedPath>) -> Role {
    let Some(route) = route.map(MatchedPath::as_str) else {
        return Role::Admin;
    };
    if ADMIN_ONLY.iter().any(|prefix| route.starts_with(prefix)) {
        return Role::Admin;
    }
    // Dry runs change nothing.
    if route.ends_with("/__validate") {
        return Role::Viewer;
    }
    let reads = *method == Method::GET || *method == Method::HEAD;
    if reads {
        return if route == GET_THAT_CLONES {
            Role::Operator
        } else {
            Role::Viewer
        };
    }
    // Registering and unregistering hosts (not their databases' lifecycle, under the same
    // prefix).
    if route.ends_with("/hosts/{host_id}") || ADMIN_CHANGES.iter().any(|p| route.starts_with(p)) {
        return Role::Admin;
    }
    Role::Operator
}
