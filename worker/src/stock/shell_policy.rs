//! What the `shell` handler may run, decided once at worker start.
//!
//! The allow-list names programs, and only those programs' own code may run: each plain
//! name is resolved to an absolute path from the worker's own `PATH` when the worker
//! starts (absolute paths in the list are taken as they are), and that path is what gets
//! executed, so nothing a job sends (its `env`, its `cwd`, a relative `command[0]`) can
//! change which file runs. Environment variables that change how a program, its libraries
//! or an interpreter load are refused (the list is shared with the admin API's write-time
//! check); an optional allow-list of names narrows what jobs may set further. A job's
//! working folder must exist and, when folders are configured, lie inside one of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dotjob_shared::model::stock_params::{refused_env_name, refused_program};

/// Settings of the `shell` handler, as configured (before resolution).
#[derive(Clone, Debug, Default)]
pub struct ShellConfig {
    /// Programs jobs may run: plain names (looked up on the worker's `PATH` at start) or
    /// absolute paths (`DOTJOB_SHELL_ALLOW`).
    pub allow: Vec<String>,
    /// When not empty, the only environment variable names jobs may set; `PREFIX_*`
    /// allows every name with that prefix (`DOTJOB_SHELL_ENV_ALLOW`).
    pub env_allow: Vec<String>,
    /// When not empty, folders a job's `cwd` must lie inside, after resolving symlinks
    /// (`DOTJOB_SHELL_CWD_ALLOW`).
    pub cwd_allow: Vec<PathBuf>,
}

/// An allowed program: where it was found at start, or why it was not.
#[derive(Clone, Debug)]
enum Program {
    Found(PathBuf),
    Missing,
}

/// The resolved rules the handler applies to every run.
#[derive(Debug, Default)]
pub struct ShellPolicy {
    /// `command[0]` as a job may write it (an allowed name, an allowed absolute path, or
    /// the absolute path a name resolved to) → the file to execute.
    programs: HashMap<String, Program>,
    /// Names (exact) and prefixes (from `PREFIX_*`) jobs may set; both empty = any name
    /// that is not refused.
    env_names: Vec<String>,
    env_prefixes: Vec<String>,
    /// Canonical folders a `cwd` must be inside; empty = any existing folder.
    cwd_roots: Vec<PathBuf>,
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first executable `name` in the absolute folders of `path` (relative entries, such
/// as an empty one meaning "the current folder", are skipped).
fn lookup(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| is_executable_file(p))
}

impl ShellPolicy {
    /// Resolves `cfg` against the worker's own `PATH`. A malformed entry (a relative path,
    /// a missing cwd folder, an env name that is refused anyway) is an error; a program
    /// name not found on the `PATH` is only reported in `missing` (its runs are refused),
    /// so one configuration can serve workers with different tools installed.
    pub fn resolve(cfg: &ShellConfig) -> Result<(Self, Vec<String>), String> {
        Self::resolve_with_path(cfg, std::env::var_os("PATH").as_deref())
    }

    fn resolve_with_path(
        cfg: &ShellConfig,
        path: Option<&std::ffi::OsStr>,
    ) -> Result<(Self, Vec<String>), String> {
        let mut policy = Self::default();
        let mut missing = Vec::new();
        for entry in cfg.allow.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if let Some(why) = refused_program(entry) {
                return Err(format!("DOTJOB_SHELL_ALLOW: `{entry}` {why}"));
            }
            if entry.starts_with('/') {
                if !is_executable_file(Path::new(entry)) {
                    return Err(format!(
                        "DOTJOB_SHELL_ALLOW: `{entry}` is not an executable file"
                    ));
                }
                policy
                    .programs
                    .insert(entry.to_owned(), Program::Found(entry.into()));
                continue;
            }
            match lookup(entry, path) {
                Some(found) => {
                    if let Some(s) = found.to_str() {
                        policy
                            .programs
                            .insert(s.to_owned(), Program::Found(found.clone()));
                    }
                    policy
                        .programs
                        .insert(entry.to_owned(), Program::Found(found));
                }
                None => {
                    missing.push(entry.to_owned());
                    policy.programs.insert(entry.to_owned(), Program::Missing);
                }
            }
        }
        for name in cfg
            .env_allow
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            match name.strip_suffix('*') {
                Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => {
                    policy.env_prefixes.push(prefix.to_owned());
                }
                Some(_) => {
                    return Err(format!(
                        "DOTJOB_SHELL_ENV_ALLOW: `{name}`: only a trailing `*` after a prefix is supported"
                    ));
                }
                None => {
                    if let Some(why) = refused_env_name(name) {
                        return Err(format!("DOTJOB_SHELL_ENV_ALLOW: {name} {why}"));
                    }
                    policy.env_names.push(name.to_owned());
                }
            }
        }
        for dir in &cfg.cwd_allow {
            let canon = std::fs::canonicalize(dir)
                .ok()
                .filter(|c| c.is_dir())
                .ok_or_else(|| {
                    format!(
                        "DOTJOB_SHELL_CWD_ALLOW: `{}` is not an existing folder",
                        dir.display()
                    )
                })?;
            policy.cwd_roots.push(canon);
        }
        Ok((policy, missing))
    }

    /// The file to execute for `command[0]`, or why it may not run.
    pub fn program(&self, program: &str) -> Result<&Path, String> {
        match self.programs.get(program) {
            Some(Program::Found(p)) => Ok(p),
            Some(Program::Missing) => Err(format!(
                "params.command: `{program}` is allowed, but this worker found no such program \
                 on its PATH when it started"
            )),
            None => match refused_program(program) {
                Some(why) => Err(format!("params.command: `{program}` {why}")),
                None => Err(format!(
                    "params.command: `{program}` is not in DOTJOB_SHELL_ALLOW on this worker"
                )),
            },
        }
    }

    /// Whether a job may set the variable `name`; the error names the field.
    pub fn check_env(&self, name: &str) -> Result<(), String> {
        if let Some(why) = refused_env_name(name) {
            return Err(format!("params.env.{name}: {name} {why}"));
        }
        let listed = self.env_names.is_empty() && self.env_prefixes.is_empty()
            || self.env_names.iter().any(|n| n == name)
            || self
                .env_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()));
        if listed {
            Ok(())
        } else {
            Err(format!(
                "params.env.{name}: {name} is not in DOTJOB_SHELL_ENV_ALLOW on this worker"
            ))
        }
    }

    /// The canonical working folder for `cwd`, which must exist and lie inside an allowed
    /// folder when some are configured.
    pub async fn cwd(&self, cwd: &str) -> Result<PathBuf, String> {
        if !cwd.starts_with('/') {
            return Err(format!(
                "params.cwd: `{cwd}` is not an absolute folder path"
            ));
        }
        let canon = tokio::fs::canonicalize(cwd)
            .await
            .ok()
            .filter(|c| c.is_dir())
            .ok_or_else(|| {
                format!("params.cwd: `{cwd}` is not an existing folder on this worker")
            })?;
        if self.cwd_roots.is_empty() || self.cwd_roots.iter().any(|r| canon.starts_with(r)) {
            Ok(canon)
        } else {
            Err(format!(
                "params.cwd: `{cwd}` is outside the folders in DOTJOB_SHELL_CWD_ALLOW on this worker"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allow: &[&str]) -> ShellConfig {
        ShellConfig {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            ..ShellConfig::default()
        }
    }

    fn plant(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A folder removed when dropped.
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn temp_dir(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "dotjob-shell-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    #[test]
    fn names_resolve_once_from_the_workers_path() {
        let first = temp_dir("first");
        let second = temp_dir("second");
        let want = plant(&first, "tool");
        plant(&second, "tool");
        std::fs::write(second.join("plain"), "not executable").unwrap();
        let path = std::env::join_paths([
            "",
            "relative",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
        ])
        .unwrap();
        let (p, missing) =
            ShellPolicy::resolve_with_path(&cfg(&["tool", "plain", "nowhere"]), Some(&path))
                .unwrap();
        assert_eq!(p.program("tool").unwrap(), want);
        assert_eq!(p.program(want.to_str().unwrap()).unwrap(), want);
        assert_eq!(missing, ["plain", "nowhere"]);
        assert!(
            p.program("plain")
                .unwrap_err()
                .contains("found no such program")
        );
        assert!(p.program("./tool").unwrap_err().contains("relative path"));
        assert!(
            p.program("other")
                .unwrap_err()
                .contains("DOTJOB_SHELL_ALLOW")
        );
        let other = second.join("tool");
        assert!(
            p.program(other.to_str().unwrap()).is_err(),
            "a same-named file elsewhere"
        );
    }

    #[test]
    fn bad_entries_are_configuration_errors() {
        let dir = temp_dir("bad");
        std::fs::write(dir.join("data"), "x").unwrap();
        for bad in ["bin/date", "./date", dir.join("data").to_str().unwrap()] {
            assert!(ShellPolicy::resolve(&cfg(&[bad])).is_err(), "{bad}");
        }
        let env_bad = ShellConfig {
            env_allow: vec!["LD_PRELOAD".into()],
            ..ShellConfig::default()
        };
        assert!(ShellPolicy::resolve(&env_bad).is_err());
        let cwd_bad = ShellConfig {
            cwd_allow: vec![dir.join("missing")],
            ..ShellConfig::default()
        };
        assert!(ShellPolicy::resolve(&cwd_bad).is_err());
    }

    #[test]
    fn env_allow_list_narrows_what_jobs_may_set() {
        let open = ShellPolicy::default();
        assert!(open.check_env("TZ").is_ok());
        assert!(
            open.check_env("PATH")
                .unwrap_err()
                .starts_with("params.env.PATH:")
        );
        assert!(open.check_env("LD_PRELOAD").is_err());
        let (narrow, _) = ShellPolicy::resolve(&ShellConfig {
            env_allow: vec!["TZ".into(), "APP_*".into()],
            ..ShellConfig::default()
        })
        .unwrap();
        assert!(narrow.check_env("TZ").is_ok());
        assert!(narrow.check_env("APP_MODE").is_ok());
        assert!(
            narrow
                .check_env("LANG")
                .unwrap_err()
                .contains("DOTJOB_SHELL_ENV_ALLOW")
        );
    }

    #[tokio::test]
    async fn cwd_must_exist_and_lie_inside_allowed_folders() {
        let root = temp_dir("root");
        let inside = root.join("in");
        std::fs::create_dir_all(&inside).unwrap();
        let outside = temp_dir("out");
        std::os::unix::fs::symlink(&*outside, root.join("escape")).unwrap();
        let (p, _) = ShellPolicy::resolve(&ShellConfig {
            cwd_allow: vec![root.to_path_buf()],
            ..ShellConfig::default()
        })
        .unwrap();
        let canon_inside = std::fs::canonicalize(&inside).unwrap();
        assert_eq!(p.cwd(inside.to_str().unwrap()).await.unwrap(), canon_inside);
        let escape = root.join("escape");
        assert!(
            p.cwd(escape.to_str().unwrap())
                .await
                .unwrap_err()
                .contains("outside")
        );
        assert!(p.cwd(outside.to_str().unwrap()).await.is_err());
        let gone = root.join("gone");
        assert!(
            p.cwd(gone.to_str().unwrap())
                .await
                .unwrap_err()
                .contains("not an existing folder")
        );
        assert!(p.cwd("in").await.unwrap_err().contains("absolute"));
        let any = ShellPolicy::default();
        assert!(any.cwd(outside.to_str().unwrap()).await.is_ok());
    }
}
