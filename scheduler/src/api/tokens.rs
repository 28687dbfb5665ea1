//! Named bearer tokens: who a request is, for access control and the audit trail.
//!
//! Tokens come from `DOTJOB_ADMIN_TOKEN` (named `admin`), `DOTJOB_READ_TOKEN` (named `read`)
//! and the tokens file `DOTJOB_TOKENS_FILE`: lines `name role token` (`role` is `admin` or
//! `read`, `#` starts a comment), or a JSON array of `{"name", "role", "token"}`. Names and
//! tokens are unique. The file is checked for changes (modification time and size) at most
//! every [`RELOAD_EVERY`], on the next request, and re-read when it changed, so tokens can
//! be added, rotated and revoked without a restart; a file that became unreadable or
//! invalid keeps the last good set (logged as an error). Tokens are compared in constant
//! time, all of them on every request, and never logged: only names are.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::secret::Secret;

/// How often the tokens file is checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Longest token name.
pub const NAME_MAX: usize = 64;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every operation.
    Admin,
    /// The operations that change nothing.
    Read,
}

/// One token with its name.
#[derive(Clone, Debug)]
pub struct NamedToken {
    /// Shown in the audit trail and logs.
    pub name: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// The token (redacted when printed).
    pub secret: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonToken {
    name: String,
    role: Role,
    token: String,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= NAME_MAX
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Parses a tokens file. Errors name lines and token names, never tokens.
pub fn parse_file(text: &str) -> Result<Vec<NamedToken>, String> {
    let raw: Vec<(String, String, String)> = if text.trim_start().starts_with('[') {
        let list: Vec<JsonToken> = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a JSON array of {{name, role, token}} (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        list.into_iter()
            .map(|t| {
                let role = if t.role == Role::Admin {
                    "admin"
                } else {
                    "read"
                };
                (t.name, role.to_owned(), t.token)
            })
            .collect()
    } else {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, role, token] = parts[..] else {
                return Err(format!("line {}: expected `name role token`", n + 1));
            };
            out.push((name.to_owned(), role.to_owned(), token.to_owned()));
        }
        out
    };
    raw.into_iter()
        .map(|(name, role, token)| {
            if !valid_name(&name) {
                return Err(format!(
                    "token name `{}` must be 1-{NAME_MAX} of [A-Za-z0-9_.-]",
                    name.chars().take(NAME_MAX).collect::<String>()
                ));
            }
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "read" => Role::Read,
                _ => return Err(format!("token `{name}`: role must be `admin` or `read`")),
            };
            let secret = Secret::new(&token);
            secret.check().map_err(|e| format!("token `{name}`: {e}"))?;
            Ok(NamedToken {
                name: name.into(),
                role,
                secret,
            })
        })
        .collect()
}

/// Refuses duplicate names or tokens across `all`.
fn check_unique(all: &[&NamedToken]) -> Result<(), String> {
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.name == b.name {
                return Err(format!("token name `{}` is used twice", a.name));
            }
            if a.secret.expose() == b.secret.expose() {
                return Err(format!(
                    "tokens `{}` and `{}` are the same token",
                    a.name, b.name
                ));
            }
        }
    }
    Ok(())
}

/// The file's tokens and what they were read from.
#[derive(Debug)]
struct FileState {
    tokens: Arc<Vec<NamedToken>>,
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// Every configured token, the file's kept fresh.
#[derive(Debug)]
pub struct TokenRegistry {
    /// From `DOTJOB_ADMIN_TOKEN` / `DOTJOB_READ_TOKEN`.
    fixed: Vec<NamedToken>,
    /// `DOTJOB_TOKENS_FILE`.
    file: Option<PathBuf>,
    /// Set when the configuration could not be read: nothing is accepted.
    closed: bool,
    state: RwLock<FileState>,
}

fn stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}

impl TokenRegistry {
    /// Tokens from the two variables and the file; fails on an unreadable or invalid
    /// file (start-up configuration error).
    pub fn load(
        admin: Option<Secret>,
        read: Option<Secret>,
        file: Option<PathBuf>,
    ) -> Result<Self, String> {
        let fixed: Vec<NamedToken> = [(admin, "admin", Role::Admin), (read, "read", Role::Read)]
            .into_iter()
            .filter_map(|(s, name, role)| {
                s.map(|secret| NamedToken {
                    name: name.into(),
                    role,
                    secret,
                })
            })
            .collect();
        let reg = Self {
            fixed,
            file,
            closed: false,
            state: RwLock::new(FileState {
                tokens: Arc::default(),
                stamp: None,
                checked: Instant::now(),
            }),
        };
        if let Some(f) = &reg.file {
            let tokens = reg
                .read_file(f)
                .map_err(|e| format!("DOTJOB_TOKENS_FILE {}: {e}", f.display()))?;
            if let Ok(mut st) = reg.state.write() {
                st.tokens = Arc::new(tokens);
                st.stamp = stamp(f).ok();
            }
        } else {
            check_unique(&reg.fixed.iter().collect::<Vec<_>>())?;
        }
        Ok(reg)
    }

    fn read_file(&self, f: &Path) -> Result<Vec<NamedToken>, String> {
        let text = std::fs::read_to_string(f).map_err(|e| e.to_string())?;
        let tokens = parse_file(&text)?;
        check_unique(&self.fixed.iter().chain(&tokens).collect::<Vec<_>>())?;
        Ok(tokens)
    }

    /// Re-reads the file when it changed since the last look (at most every
    /// [`RELOAD_EVERY`]).
    fn refresh(&self) {
        let Some(f) = &self.file else { return };
        let due = self
            .state
            .read()
            .is_ok_and(|st| st.checked.elapsed() >= RELOAD_EVERY);
        if !due {
            return;
        }
        let Ok(mut st) = self.state.write() else {
            return;
        };
        if st.checked.elapsed() < RELOAD_EVERY {
            return; // another request just looked
        }
        st.checked = Instant::now();
        let now = stamp(f).ok();
        if now.is_some() && now == st.stamp {
            return;
        }
        let was = st.stamp;
        st.stamp = now;
        match now
            .ok_or_else(|| "cannot read it".to_owned())
            .and_then(|_| self.read_file(f))
        {
            Ok(tokens) => {
                tracing::info!(file = %f.display(), tokens = tokens.len(), "tokens file re-read");
                st.tokens = Arc::new(tokens);
            }
            // Logged once per change of the file, not on every look.
            Err(e) if now.is_some() || was.is_some() => tracing::error!(
                file = %f.display(), error = %e,
                "tokens file unreadable or invalid; keeping the tokens read before"
            ),
            Err(_) => {}
        }
    }

    /// The named token `presented` is, if any. Compares against every token in constant
    /// time.
    pub fn identify(&self, presented: &str) -> Option<(Arc<str>, Role)> {
        self.refresh();
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let file = self
            .state
            .read()
            .map(|st| st.tokens.clone())
            .unwrap_or_default();
        let mut found = None;
        for t in self.fixed.iter().chain(file.iter()) {
            if t.secret.matches(&digest) && found.is_none() {
                found = Some((t.name.clone(), t.role));
            }
        }
        found
    }

    /// The tokens `opts` configure; when they cannot be read (which the start-up check
    /// refuses before this runs), a registry that accepts no token at all, logged.
    pub fn load_or_closed(opts: &super::ApiOptions) -> Self {
        opts.tokens().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the API tokens; every request needing one is refused");
            Self {
                fixed: Vec::new(),
                file: None,
                closed: true,
                state: RwLock::new(FileState {
                    tokens: Arc::default(),
                    stamp: None,
                    checked: Instant::now(),
                }),
            }
        })
    }

    /// No token configured and no file: the API is open.
    pub fn is_open(&self) -> bool {
        self.fixed.is_empty() && self.file.is_none() && !self.closed
    }

    /// Whether any admin token is configured now.
    pub fn has_admin(&self) -> bool {
        let file_admin = self
            .state
            .read()
            .is_ok_and(|st| st.tokens.iter().any(|t| t.role == Role::Admin));
        file_admin || self.fixed.iter().any(|t| t.role == Role::Admin)
    }

    /// Whether any read token is configured now.
    pub fn has_read(&self) -> bool {
        let file_read = self
            .state
            .read()
            .is_ok_and(|st| st.tokens.iter().any(|t| t.role == Role::Read));
        file_read || self.fixed.iter().any(|t| t.role == Role::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_file_formats_parse_and_errors_never_show_tokens() {
        let lines = parse_file("# ops\nalice admin tok-alice-1\n\nci read tok-ci-2\n").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((&*lines[0].name, lines[0].role), ("alice", Role::Admin));
        let json =
            parse_file(r#"[{"name": "bob", "role": "read", "token": "tok-bob-3"}]"#).unwrap();
        assert_eq!((&*json[0].name, json[0].role), ("bob", Role::Read));
        for bad in [
            "alice admin",
            "alice owner tok-secret-9",
            "al ice admin tok-secret-9 extra",
            "bad/name admin tok-secret-9",
            r#"[{"name": "x", "role": "root", "token": "tok-secret-9"}]"#,
        ] {
            let e = parse_file(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(!e.contains("tok-secret-9"), "{e}");
        }
    }

    #[test]
    fn names_and_tokens_are_unique_across_variables_and_file() {
        let dir = std::env::temp_dir().join(format!("dotjob-tokens-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tokens");
        std::fs::write(&f, "admin read tok-other-1\n").unwrap();
        let e = TokenRegistry::load(Some(Secret::new("env-admin")), None, Some(f.clone()));
        assert!(e.unwrap_err().contains("used twice"));
        std::fs::write(&f, "ci read env-admin\n").unwrap();
        let e = TokenRegistry::load(Some(Secret::new("env-admin")), None, Some(f.clone()));
        let e = e.unwrap_err();
        assert!(
            e.contains("same token") && !e.contains("env-admin\n"),
            "{e}"
        );
        std::fs::write(&f, "ci read tok-ci-1\n").unwrap();
        let reg = TokenRegistry::load(Some(Secret::new("env-admin")), None, Some(f)).unwrap();
        assert_eq!(
            reg.identify("env-admin").map(|(n, r)| (n.to_string(), r)),
            Some(("admin".into(), Role::Admin))
        );
        assert_eq!(
            reg.identify("tok-ci-1").map(|(n, r)| (n.to_string(), r)),
            Some(("ci".into(), Role::Read))
        );
        assert!(reg.identify("tok-ci-2").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_file_is_reread_when_it_changes_and_a_bad_version_keeps_the_last_good_one() {
        let dir = std::env::temp_dir().join(format!("dotjob-tokens-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tokens");
        std::fs::write(&f, "ops admin tok-first-1\n").unwrap();
        let reg = TokenRegistry::load(None, None, Some(f.clone())).unwrap();
        assert!(reg.identify("tok-first-1").is_some());
        std::fs::write(&f, "ops admin tok-second-22\n").unwrap();
        // Pretend the last look was long ago.
        reg.state.write().unwrap().checked = Instant::now() - RELOAD_EVERY;
        assert!(reg.identify("tok-first-1").is_none(), "rotated out");
        assert!(reg.identify("tok-second-22").is_some());
        std::fs::write(&f, "garbage\n").unwrap();
        reg.state.write().unwrap().checked = Instant::now() - RELOAD_EVERY;
        assert!(
            reg.identify("tok-second-22").is_some(),
            "kept the last good set"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
