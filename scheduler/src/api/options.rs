//! How the admin API is exposed: its tokens, its CORS origins and its security settings
//! (tokens file, audit trail, abuse bounds), checked against the address it listens on
//! before anything starts.

use std::net::SocketAddr;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::Secret;
use super::idempotency::IdempotencyWindow;
use super::limits::SecurityOptions;
use super::tokens::TokenRegistry;

/// Exposure settings of the admin API.
#[derive(Clone, Debug, Default)]
pub struct ApiOptions {
    /// `DOTJOB_ADMIN_TOKEN`: every operation.
    pub admin_token: Option<Secret>,
    /// `DOTJOB_READ_TOKEN`: operations that change nothing.
    pub read_token: Option<Secret>,
    /// `DOTJOB_CORS_ORIGINS`: browser origins allowed to call the API (`*` for any); empty
    /// = no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Named tokens file, audit trail bound, log-follow bounds.
    pub security: SecurityOptions,
    /// `DOTJOB_IDEMPOTENCY_WINDOW`: how long a trigger's idempotency key answers its first
    /// run.
    pub idempotency_window: IdempotencyWindow,
}

impl ApiOptions {
    /// The configured tokens (the two variables and the tokens file, read now).
    pub fn tokens(&self) -> Result<TokenRegistry, String> {
        TokenRegistry::load(
            self.admin_token.clone(),
            self.read_token.clone(),
            self.security.tokens_file.clone(),
        )
    }

    /// Refuses settings that would expose the API by accident, in one line for the
    /// operator: no admin token on a non-loopback address, a read token without an admin
    /// token, equal or malformed tokens, malformed CORS origins.
    pub fn check(&self, listen: SocketAddr) -> Result<(), String> {
        for (name, t) in [
            ("DOTJOB_ADMIN_TOKEN", &self.admin_token),
            ("DOTJOB_READ_TOKEN", &self.read_token),
        ] {
            if let Some(t) = t {
                t.check().map_err(|e| format!("{name}: {e}"))?;
            }
        }
        let tokens = self.tokens()?;
        if !tokens.has_admin() && !listen.ip().is_loopback() {
            return Err(format!(
                "refusing to serve the admin API on {listen} without DOTJOB_ADMIN_TOKEN (or an \
                 admin token in DOTJOB_TOKENS_FILE): set it (and DOTJOB_READ_TOKEN for read-only \
                 access), or listen on a loopback address"
            ));
        }
        if tokens.has_read() && !tokens.has_admin() {
            return Err(
                "DOTJOB_READ_TOKEN is set but DOTJOB_ADMIN_TOKEN is not (nor an admin token in \
                 DOTJOB_TOKENS_FILE): set both, or neither (open API, loopback only)"
                    .to_owned(),
            );
        }
        if self.security.tokens_file.is_some() && !tokens.has_admin() && !tokens.has_read() {
            return Err("DOTJOB_TOKENS_FILE holds no token".to_owned());
        }
        if let (Some(a), Some(r)) = (&self.admin_token, &self.read_token)
            && a.expose() == r.expose()
        {
            return Err("DOTJOB_READ_TOKEN must differ from DOTJOB_ADMIN_TOKEN".to_owned());
        }
        for o in &self.cors_origins {
            if o != "*" && parse_origin(o).is_none() {
                return Err(format!(
                    "DOTJOB_CORS_ORIGINS: `{o}` is not an origin (scheme://host[:port], or *)"
                ));
            }
        }
        Ok(())
    }

    /// The CORS layer, when origins are configured.
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origin = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(self.cors_origins.iter().filter_map(|o| parse_origin(o)))
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("last-event-id"),
                ])
                .max_age(std::time::Duration::from_secs(600)),
        )
    }
}

/// `scheme://host[:port]` with no path, as a header value.
fn parse_origin(o: &str) -> Option<HeaderValue> {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))?;
    let ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| HeaderValue::from_str(o).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(admin: Option<&str>, read: Option<&str>) -> ApiOptions {
        ApiOptions {
            admin_token: admin.map(Secret::new),
            read_token: read.map(Secret::new),
            ..ApiOptions::default()
        }
    }

    #[test]
    fn open_api_only_on_loopback() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(opts(None, None).check(lo).is_ok());
        assert!(opts(None, None).check(lo6).is_ok());
        let e = opts(None, None).check(any).unwrap_err();
        assert!(
            e.contains("DOTJOB_ADMIN_TOKEN") && e.contains("0.0.0.0:8080"),
            "{e}"
        );
        assert!(opts(Some("a"), None).check(any).is_ok());
        assert!(opts(Some("a"), Some("r")).check(any).is_ok());
        assert!(opts(None, Some("r")).check(lo).is_err());
        assert!(opts(Some("same"), Some("same")).check(lo).is_err());
        let e = opts(Some("with space secret"), None).check(lo).unwrap_err();
        assert!(
            e.starts_with("DOTJOB_ADMIN_TOKEN") && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn cors_origins_are_checked() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let with = |o: &str| ApiOptions {
            cors_origins: vec![o.to_owned()],
            ..ApiOptions::default()
        };
        assert!(with("https://console.example.com").check(lo).is_ok());
        assert!(with("http://localhost:3000").check(lo).is_ok());
        assert!(with("*").check(lo).is_ok());
        assert!(with("example.com").check(lo).is_err());
        assert!(with("https://x.com/path").check(lo).is_err());
        assert!(ApiOptions::default().cors_layer().is_none());
    }
}
