//! Exit codes and the errors that carry them.
//!
//! Commands return `anyhow` errors; [`exit_code`] finds the most specific cause in the chain:
//! an [`ApiError`] maps its HTTP status to a code, a [`Failure`] carries its own, and
//! anything else is an operation that failed (1).

use std::process::ExitCode;

use serde_json::Value;

/// How `dotjob` ends; the codes are documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success (`diff`: no differences).
    Ok = 0,
    /// The operation failed (a run did not succeed, a conflict; `diff`: differences).
    Failed = 1,
    /// Usage or bad input, including a 4xx validation answer.
    Usage = 2,
    /// Not found (404).
    NotFound = 3,
    /// Not authorised (401/403).
    Auth = 4,
    /// Server or connection error.
    Server = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error that knows its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The code to exit with.
    pub exit: Exit,
    /// One line for the user.
    pub message: String,
}

impl Failure {
    /// Bad input or usage (2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// Not found (3).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::NotFound,
            message: message.into(),
        }
    }

    /// The server could not be reached or failed (5).
    pub fn server(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Server,
            message: message.into(),
        }
    }

    /// The operation failed (1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Failed,
            message: message.into(),
        }
    }
}

/// The exit code of an error: that of the first cause that knows one.
pub fn exit_code(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.exit;
        }
        if let Some(a) = cause.downcast_ref::<ApiError>() {
            return a.exit();
        }
    }
    Exit::Failed
}

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.line())]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code (`invalid`, `not_found`, …).
    pub code: String,
    /// For people.
    pub message: String,
    /// The offending field or parameter.
    pub field: Option<String>,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: u16, code: &str, message: &str, field: Option<&str>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            field: field.map(str::to_owned),
        }
    }

    fn line(&self) -> String {
        match &self.field {
            Some(f) => format!("{} (field: {f})", self.message),
            None => self.message.clone(),
        }
    }

    /// The exit code this answer means.
    pub fn exit(&self) -> Exit {
        match self.status {
            401 | 403 => Exit::Auth,
            404 => Exit::NotFound,
            409 => Exit::Failed,
            400..=499 => Exit::Usage,
            _ => Exit::Server,
        }
    }

    /// Reads an error answer's body; anything that is not our error shape is described by
    /// its status and the start of its text.
    pub(crate) fn from_body(status: u16, text: &str) -> Self {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let e = &v["error"];
        match e["message"].as_str() {
            Some(message) => Self::new(
                status,
                e["code"].as_str().unwrap_or("error"),
                message,
                e["field"].as_str(),
            ),
            None => {
                let snippet: String = text.trim().chars().take(200).collect();
                let message = if snippet.is_empty() {
                    format!("the server answered HTTP {status}")
                } else {
                    format!("the server answered HTTP {status}: {snippet}")
                };
                Self::new(status, "http", &message, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_code_comes_from_the_cause() {
        let e = anyhow::Error::from(Failure::not_found("job x not found")).context("jobs get");
        assert_eq!(exit_code(&e), Exit::NotFound);
        let api: anyhow::Result<()> =
            Err(ApiError::new(401, "unauthorized", "no token", None).into());
        let e = api.context("listing jobs").unwrap_err();
        assert_eq!(exit_code(&e), Exit::Auth);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), Exit::Failed);
    }

    #[test]
    fn error_answers_become_one_line() {
        let body = r#"{"error":{"code":"invalid","message":"bad cron","field":"schedule"}}"#;
        let e = ApiError::from_body(400, body);
        assert_eq!(e.to_string(), "bad cron (field: schedule)");
        assert_eq!(e.exit(), Exit::Usage);
        let e = ApiError::from_body(502, "<html>Bad Gateway</html>");
        assert_eq!(
            e.to_string(),
            "the server answered HTTP 502: <html>Bad Gateway</html>"
        );
        assert_eq!(e.exit(), Exit::Server);
        assert_eq!(ApiError::from_body(403, "").exit(), Exit::Auth);
        assert_eq!(ApiError::from_body(404, "").exit(), Exit::NotFound);
        assert_eq!(ApiError::from_body(409, "").exit(), Exit::Failed);
    }
}
