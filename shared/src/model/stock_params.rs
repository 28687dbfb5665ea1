//! Write-time checks of the params of jobs using the stock handlers (`shell`, `http`), and
//! of secret references (`{"$secret": "NAME"}`) in any job's params.
//!
//! The admin API knows nothing of a worker's allow-lists, but it can refuse params that no
//! worker would ever run: a `shell` command that is not an argv array of strings, a relative
//! program path, an environment variable a job may never set. The same rules are enforced
//! again by the stock worker at run time (the worker is the authority; this check only
//! turns a certain failure later into a 400 naming the field now). The list of refused
//! environment variables lives here so the API and the worker share it.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Variables a job may never set for the `shell` handler, compared case-insensitively:
/// they choose which program or library is loaded, or change how a shell or interpreter
/// starts, so setting them runs code the allow-list never named.
const REFUSED_ENV: &[&str] = &[
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "CDPATH",
    "GLOBIGNORE",
    "PROMPT_COMMAND",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PYTHONBREAKPOINT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5OPT",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "LUA_PATH",
    "LUA_CPATH",
    "LUA_INIT",
    "TCLLIBPATH",
    "CLASSPATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "GLIBC_TUNABLES",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
];

/// Prefixes of refused variables (same reason as [`REFUSED_ENV`]; `DOTJOB_` is the
/// worker's own).
const REFUSED_ENV_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "BASH_FUNC_",
    "MALLOC_",
    "GIT_CONFIG_",
    "LUA_INIT_",
    "DOTJOB_",
];

/// Fields the `shell` handler takes.
const SHELL_FIELDS: &[&str] = &["command", "env", "cwd"];

/// Fields the `http` handler takes.
const HTTP_FIELDS: &[&str] = &["url", "method", "headers", "body"];

/// Why a job may not set the environment variable `name` for the `shell` handler, or
/// `None` when it may.
pub fn refused_env_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Some("is not a variable name (empty, or contains `=` or NUL)");
    }
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("DOTJOB_") {
        return Some("is reserved for the worker (it sets DOTJOB_RUN_ID and the like)");
    }
    if REFUSED_ENV.contains(&upper.as_str())
        || REFUSED_ENV_PREFIXES.iter().any(|p| upper.starts_with(p))
    {
        return Some(
            "may not be set by a job: it changes which program or library runs, or how a \
             shell or interpreter starts",
        );
    }
    None
}

/// Why `program` (a `shell` job's `command[0]`) can never be allowed, or `None`.
/// A program is named as listed in the allow-list (a plain name) or by its absolute path;
/// a relative path would run whatever sits at that place relative to the working folder.
pub fn refused_program(program: &str) -> Option<&'static str> {
    if program.is_empty() {
        return Some("the program name is empty");
    }
    if program.contains('\0') {
        return Some("contains NUL");
    }
    if program.contains('/') && !program.starts_with('/') {
        return Some(
            "is a relative path; name the program as it is listed in DOTJOB_SHELL_ALLOW, or by \
             its absolute path",
        );
    }
    None
}

/// The key of a secret reference: `{"$secret": "NAME"}` stands for the secret `NAME`, which
/// the worker resolves at run time; only the reference is ever stored.
pub const SECRET_KEY: &str = "$secret";

/// Longest secret name.
pub const SECRET_NAME_MAX: usize = 128;

/// Whether `name` may name a secret: a letter or `_`, then letters, digits and `_`.
pub fn valid_secret_name(name: &str) -> bool {
    let mut b = name.bytes();
    name.len() <= SECRET_NAME_MAX
        && b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The secret name `v` refers to, when `v` is exactly `{"$secret": "<valid name>"}`.
pub fn secret_ref(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    o.get(SECRET_KEY)?.as_str().filter(|n| valid_secret_name(n))
}

/// Refuses malformed secret references anywhere in `v` (`field` is its path).
fn check_secret_refs(field: &str, v: &Value) -> Result<()> {
    match v {
        Value::Object(o) if o.contains_key(SECRET_KEY) => {
            if secret_ref(v).is_some() {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!(
                        "a secret reference is exactly {{\"{SECRET_KEY}\": \"NAME\"}}, NAME of letters, \
                         digits and `_` (at most {SECRET_NAME_MAX})"
                    ),
                ))
            }
        }
        Value::Object(o) => o
            .iter()
            .try_for_each(|(k, v)| check_secret_refs(&format!("{field}.{k}"), v)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_secret_refs(&format!("{field}[{i}]"), v)),
        _ => Ok(()),
    }
}

/// A string param that may also be a secret reference (checked with `check`).
fn string_or_secret(
    field: String,
    v: &Value,
    check: impl Fn(&str) -> Option<&'static str>,
) -> Result<()> {
    match v {
        Value::String(s) => match check(s) {
            Some(why) => Err(Error::invalid(field, why)),
            None => Ok(()),
        },
        v if secret_ref(v).is_some() => Ok(()),
        _ => Err(Error::invalid(
            field,
            format!("must be a string (or {{\"{SECRET_KEY}\": \"NAME\"}})"),
        )),
    }
}

fn no_nul(s: &str) -> Option<&'static str> {
    s.contains('\0').then_some("contains NUL")
}

/// Checks the params of a job: secret references anywhere, and the params of the stock
/// handlers (other handlers' params are their own business). The error names the field,
/// e.g. `params.env.PATH`.
pub fn validate_stock_params(handler: &str, params: &Value) -> Result<()> {
    check_secret_refs("params", params)?;
    match handler {
        "shell" => shell(params),
        "http" => http(params),
        _ => Ok(()),
    }
}

fn object<'a>(field: &str, v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::invalid(field, format!("must be an object ({what})")))
}

fn shell(params: &Value) -> Result<()> {
    let p = object(
        "params",
        params,
        "the shell handler takes command, env, cwd",
    )?;
    if let Some(k) = p.keys().find(|k| !SHELL_FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(
            format!("params.{k}"),
            "unknown field; the shell handler takes command, env, cwd",
        ));
    }
    let Some(command) = p.get("command") else {
        return Err(Error::invalid(
            "params.command",
            "is required (an argv array: program, then arguments)",
        ));
    };
    let argv = command.as_array().ok_or_else(|| {
        Error::invalid(
            "params.command",
            "must be an argv array of strings (no shell is involved)",
        )
    })?;
    if argv.is_empty() {
        return Err(Error::invalid(
            "params.command",
            "needs at least the program",
        ));
    }
    for (i, a) in argv.iter().enumerate() {
        let field = format!("params.command[{i}]");
        if i > 0 {
            string_or_secret(field, a, no_nul)?;
            continue;
        }
        let Some(s) = a.as_str() else {
            return Err(Error::invalid(field, "must be a string"));
        };
        if let Some(why) = refused_program(s) {
            return Err(Error::invalid(field, why));
        }
    }
    if let Some(env) = p.get("env") {
        let env = object("params.env", env, "variable name → string")?;
        for (name, v) in env {
            let field = format!("params.env.{name}");
            if let Some(why) = refused_env_name(name) {
                return Err(Error::invalid(field, format!("{name} {why}")));
            }
            string_or_secret(field, v, no_nul)?;
        }
    }
    match p.get("cwd") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.starts_with('/') && !s.contains('\0') => Ok(()),
        Some(_) => Err(Error::invalid(
            "params.cwd",
            "must be an absolute folder path",
        )),
    }
}

/// An HTTP token (RFC 9110 `tchar`s): methods and header names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn http(params: &Value) -> Result<()> {
    let p = object(
        "params",
        params,
        "the http handler takes url, method, headers, body",
    )?;
    if let Some(k) = p.keys().find(|k| !HTTP_FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(
            format!("params.{k}"),
            "unknown field; the http handler takes url, method, headers, body",
        ));
    }
    let Some(url) = p.get("url") else {
        return Err(Error::invalid("params.url", "is required"));
    };
    // A URL may hold a credential, hence be a secret reference: only the worker sees it.
    string_or_secret("params.url".to_owned(), url, |u| match url::Url::parse(u) {
        Err(_) => Some("is not a URL"),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
            Some("must be an http:// or https:// URL")
        }
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => Some("has no host"),
        Ok(_) => None,
    })?;
    match p.get("method") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if is_token(m) && m.len() <= 32 => {}
        Some(_) => {
            return Err(Error::invalid(
                "params.method",
                "must be an HTTP method such as GET or POST",
            ));
        }
    }
    if let Some(headers) = p.get("headers") {
        let headers = object("params.headers", headers, "header name → string")?;
        for (name, v) in headers {
            let field = format!("params.headers.{name}");
            if !is_token(name) {
                return Err(Error::invalid(field, "is not a header name"));
            }
            string_or_secret(field, v, |s| {
                s.contains(['\r', '\n', '\0'])
                    .then_some("contains a line break or NUL")
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(handler: &str, params: Value) -> Option<String> {
        match validate_stock_params(handler, &params) {
            Ok(()) => None,
            Err(Error::Invalid { field, .. }) => Some(field),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn good_shell_params_pass() {
        assert_eq!(
            field(
                "shell",
                json!({"command": ["date", "-u"], "env": {"TZ": "UTC", "LANG": "C"}, "cwd": "/tmp"})
            ),
            None
        );
        assert_eq!(field("shell", json!({"command": ["/bin/date"]})), None);
    }

    #[test]
    fn bad_shell_params_name_their_field() {
        for (params, want) in [
            (json!("date"), "params"),
            (json!({}), "params.command"),
            (json!({"command": "date -u"}), "params.command"),
            (json!({"command": []}), "params.command"),
            (json!({"command": [1]}), "params.command[0]"),
            (json!({"command": ["date", 5]}), "params.command[1]"),
            (json!({"command": ["./date"]}), "params.command[0]"),
            (json!({"command": ["bin/date"]}), "params.command[0]"),
            (json!({"command": [""]}), "params.command[0]"),
            (
                json!({"command": ["date"], "env": {"PATH": "/x"}}),
                "params.env.PATH",
            ),
            (
                json!({"command": ["date"], "env": {"LD_PRELOAD": "/x.so"}}),
                "params.env.LD_PRELOAD",
            ),
            (
                json!({"command": ["date"], "env": {"ld_library_path": "/x"}}),
                "params.env.ld_library_path",
            ),
            (
                json!({"command": ["date"], "env": {"BASH_FUNC_date%%": "() { id; }"}}),
                "params.env.BASH_FUNC_date%%",
            ),
            (
                json!({"command": ["date"], "env": {"DOTJOB_RUN_ID": "x"}}),
                "params.env.DOTJOB_RUN_ID",
            ),
            (
                json!({"command": ["date"], "env": {"TZ": 1}}),
                "params.env.TZ",
            ),
            (json!({"command": ["date"], "env": ["TZ"]}), "params.env"),
            (json!({"command": ["date"], "cwd": "tmp"}), "params.cwd"),
            (json!({"command": ["date"], "shell": true}), "params.shell"),
        ] {
            assert_eq!(
                field("shell", params.clone()).as_deref(),
                Some(want),
                "{params}"
            );
        }
    }

    #[test]
    fn http_params_name_their_field() {
        assert_eq!(
            field(
                "http",
                json!({"url": "https://example.com/hook", "method": "put", "headers": {"X-Key": "v"}, "body": {"a": 1}})
            ),
            None
        );
        for (params, want) in [
            (json!([]), "params"),
            (json!({}), "params.url"),
            (json!({"url": 5}), "params.url"),
            (json!({"url": "not a url"}), "params.url"),
            (json!({"url": "ftp://example.com/x"}), "params.url"),
            (json!({"url": "file:///etc/passwd"}), "params.url"),
            (
                json!({"url": "https://x.example", "method": "GE T"}),
                "params.method",
            ),
            (
                json!({"url": "https://x.example", "method": 1}),
                "params.method",
            ),
            (
                json!({"url": "https://x.example", "headers": {"A": 1}}),
                "params.headers.A",
            ),
            (
                json!({"url": "https://x.example", "headers": {"A B": "x"}}),
                "params.headers.A B",
            ),
            (
                json!({"url": "https://x.example", "headers": {"A": "x\r\nB: y"}}),
                "params.headers.A",
            ),
            (
                json!({"url": "https://x.example", "headers": "A: x"}),
                "params.headers",
            ),
            (
                json!({"url": "https://x.example", "timeout": 5}),
                "params.timeout",
            ),
        ] {
            assert_eq!(
                field("http", params.clone()).as_deref(),
                Some(want),
                "{params}"
            );
        }
    }

    #[test]
    fn secret_references_stand_for_strings_and_must_be_well_formed() {
        let r = json!({"$secret": "BILLING_API_KEY"});
        assert_eq!(secret_ref(&r), Some("BILLING_API_KEY"));
        assert_eq!(
            field(
                "shell",
                json!({"command": ["curl", r.clone()], "env": {"KEY": r.clone()}})
            ),
            None
        );
        assert_eq!(
            field(
                "http",
                json!({"url": r.clone(), "headers": {"Authorization": r.clone()}, "body": {"k": r.clone()}})
            ),
            None
        );
        assert_eq!(field("custom", json!({"deep": [{"k": r.clone()}]})), None);
        for (handler, params, want) in [
            (
                "custom",
                json!({"deep": [{"k": {"$secret": 5}}]}),
                "params.deep[0].k",
            ),
            ("custom", json!({"k": {"$secret": "A", "x": 1}}), "params.k"),
            ("custom", json!({"k": {"$secret": "has space"}}), "params.k"),
            ("custom", json!({"$secret": ""}), "params"),
            (
                "shell",
                json!({"command": [r.clone()]}),
                "params.command[0]",
            ),
            (
                "shell",
                json!({"command": ["date"], "cwd": r.clone()}),
                "params.cwd",
            ),
        ] {
            assert_eq!(
                field(handler, params.clone()).as_deref(),
                Some(want),
                "{params}"
            );
        }
    }

    #[test]
    fn other_handlers_are_not_checked() {
        assert_eq!(field("send-invoice", json!({"env": {"PATH": "/x"}})), None);
    }

    #[test]
    fn env_rules() {
        for refused in [
            "PATH",
            "Path",
            "LD_AUDIT",
            "DYLD_INSERT_LIBRARIES",
            "MALLOC_CHECK_",
            "GLIBC_TUNABLES",
            "A=B",
            "",
        ] {
            assert!(refused_env_name(refused).is_some(), "{refused}");
        }
        for fine in ["TZ", "LANG", "APP_MODE", "HOME_REGION"] {
            assert!(refused_env_name(fine).is_none(), "{fine}");
        }
    }
}
