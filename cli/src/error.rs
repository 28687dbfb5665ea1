//! Exit codes and the errors that carry them.
//!
//! Commands return `anyhow` errors; [`exit_code`] finds the most specific cause in the chain:
//! an [`ApiError`] maps its HTTP status to a code, a [`Failure`] carries its own, and
//! anything else is an operation that failed (1).

use std::process::ExitCode;

use crate::client::ApiError;

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
}
