//! Why a host call, or the step, did not succeed.

use crate::__private::bindings::lockstep::common::types::Error as Wit;

/// What went wrong, as a kind the runner acts on and a message a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The step was not granted what a call needs. Nothing left the host.
    AccessDenied(String),
    NotFound(String),
    /// A call raced another writer or contradicts existing state.
    Conflict(String),
    /// Arguments (or the spec) are malformed or out of range.
    Invalid(String),
    /// A size, count or time limit of the sandbox was reached.
    LimitExceeded(String),
    /// A backend could not be reached; retrying later may succeed.
    Unavailable(String),
    /// The step ran and its work failed.
    Failed(String),
}

impl Error {
    /// The same kind of error, its message prefixed with what was being done.
    pub fn context(self, doing: &str) -> Error {
        let prefix = |m: String| format!("{doing}: {m}");
        match self {
            Error::AccessDenied(m) => Error::AccessDenied(prefix(m)),
            Error::NotFound(m) => Error::NotFound(prefix(m)),
            Error::Conflict(m) => Error::Conflict(prefix(m)),
            Error::Invalid(m) => Error::Invalid(prefix(m)),
            Error::LimitExceeded(m) => Error::LimitExceeded(prefix(m)),
            Error::Unavailable(m) => Error::Unavailable(prefix(m)),
            Error::Failed(m) => Error::Failed(prefix(m)),
        }
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::AccessDenied(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Invalid(m)
            | Error::LimitExceeded(m)
            | Error::Unavailable(m)
            | Error::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl From<Wit> for Error {
    fn from(error: Wit) -> Self {
        match error {
            Wit::AccessDenied(m) => Error::AccessDenied(m),
            Wit::NotFound(m) => Error::NotFound(m),
            Wit::Conflict(m) => Error::Conflict(m),
            Wit::Invalid(m) => Error::Invalid(m),
            Wit::LimitExceeded(m) => Error::LimitExceeded(m),
            Wit::Unavailable(m) => Error::Unavailable(m),
            Wit::Failed(m) => Error::Failed(m),
        }
    }
}

impl From<Error> for Wit {
    fn from(error: Error) -> Self {
        match error {
            Error::AccessDenied(m) => Wit::AccessDenied(m),
            Error::NotFound(m) => Wit::NotFound(m),
            Error::Conflict(m) => Wit::Conflict(m),
            Error::Invalid(m) => Wit::Invalid(m),
            Error::LimitExceeded(m) => Wit::LimitExceeded(m),
            Error::Unavailable(m) => Wit::Unavailable(m),
            Error::Failed(m) => Wit::Failed(m),
        }
    }
}
