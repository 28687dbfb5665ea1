//! [`Secret`]: a bearer token kept beside its SHA-256 digest, compared in constant time and
//! never printed (`Debug` and `Display` are redacted).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token: kept as its SHA-256 digest beside the text, never shown.
#[derive(Clone)]
pub struct Secret {
    text: Arc<str>,
    digest: [u8; 32],
}

impl Secret {
    /// Wraps a token.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.into(),
            digest: Sha256::digest(text.as_bytes()).into(),
        }
    }

    /// The token itself (to send it, e.g. from a test client).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Whether `presented`'s digest equals this token's, in constant time.
    pub(crate) fn matches(&self, presented: &[u8; 32]) -> bool {
        self.digest.ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    /// Takes any text: checking it is [`Secret::check`]'s job, so that an error message
    /// (clap's included) never repeats a token.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl Secret {
    /// Whether it is empty (an unset variable in a template): treated as no token.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Checks it can be sent in an `Authorization` header: 1-4096 visible ASCII
    /// characters. The error does not contain the token.
    pub fn check(&self) -> Result<(), &'static str> {
        let t = self.text.as_bytes();
        if t.is_empty() || t.len() > 4096 || !t.iter().all(u8::is_ascii_graphic) {
            return Err("a token is 1-4096 visible ASCII characters (no spaces)");
        }
        Ok(())
    }
}
