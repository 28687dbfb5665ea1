//! `GET /whoami`: what the caller's token may do, so a client (the console) can hide the
//! write controls a read-only token cannot use instead of letting them fail.
//!
//! The access middleware has already let the request through (a read needs the read or
//! the admin token, or an open API), so the answer only tells those apart. Tokens are
//! compared as the middleware does: SHA-256 digests, in constant time.

use std::sync::Arc;

use axum::Json;
use axum::extract::Extension;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::auth::Guard;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every operation.
    Admin,
    /// Only operations that change nothing.
    Read,
}

/// The caller's role.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// What the presented token may do (`admin` when the API has no tokens).
    pub role: Role,
    /// True when the API has no tokens configured (every call is allowed).
    pub open: bool,
}

/// Whether `token` is `secret`, comparing digests in constant time.
fn same(secret: Option<&super::auth::Secret>, digest: &[u8; 32]) -> bool {
    secret.is_some_and(|s| {
        let theirs: [u8; 32] = Sha256::digest(s.expose().as_bytes()).into();
        theirs.ct_eq(digest).into()
    })
}

/// The role of the bearer token sent (`admin` or `read`), and whether the API is open.
#[utoipa::path(get, path = "/whoami", operation_id = "whoami", tag = "meta",
    responses((status = 200, description = "The caller's role", body = WhoAmI)),
    security(("read_token" = []), ("admin_token" = [])))]
pub async fn whoami(Extension(guard): Extension<Arc<Guard>>, headers: HeaderMap) -> Json<WhoAmI> {
    let open = guard.tokens.is_open();
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .map_or("", |(_, t)| t.trim());
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let admin = open || same(guard.tokens.admin.as_ref(), &digest);
    Json(WhoAmI {
        role: if admin { Role::Admin } else { Role::Read },
        open,
    })
}
