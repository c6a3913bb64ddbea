//! The error every capability reports, and its WIT form (`lockstep:common/types.error`), which is
//! also what a step returns when it fails.

/// The host side of `lockstep:common`.
pub mod wit {
    wasmtime::component::bindgen!({ path: "../wit", world: "lockstep:common/imports" });
}

/// Why a host call, or a whole step, did not succeed. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The step was not granted what this call needs. Nothing left the host.
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The call raced another writer or contradicts existing state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The arguments are malformed or out of range.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A size, count or time limit of the sandbox was reached.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The backend could not be reached; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The step ran and its work failed (a step's own verdict; host calls never say this).
    #[error("{0}")]
    Failed(String),
}

pub type WitError = wit::lockstep::common::types::Error;

impl From<Error> for WitError {
    fn from(error: Error) -> Self {
        match error {
            Error::AccessDenied(m) => WitError::AccessDenied(m),
            Error::NotFound(m) => WitError::NotFound(m),
            Error::Conflict(m) => WitError::Conflict(m),
            Error::Invalid(m) => WitError::Invalid(m),
            Error::LimitExceeded(m) => WitError::LimitExceeded(m),
            Error::Unavailable(m) => WitError::Unavailable(m),
            Error::Failed(m) => WitError::Failed(m),
        }
    }
}

impl From<WitError> for Error {
    fn from(error: WitError) -> Self {
        match error {
            WitError::AccessDenied(m) => Error::AccessDenied(m),
            WitError::NotFound(m) => Error::NotFound(m),
            WitError::Conflict(m) => Error::Conflict(m),
            WitError::Invalid(m) => Error::Invalid(m),
            WitError::LimitExceeded(m) => Error::LimitExceeded(m),
            WitError::Unavailable(m) => Error::Unavailable(m),
            WitError::Failed(m) => Error::Failed(m),
        }
    }
}

impl From<lockstep_changelog::db::DbError> for Error {
    fn from(error: lockstep_changelog::db::DbError) -> Self {
        use lockstep_changelog::db::DbError;
        match error {
            DbError::AccessDenied(m) => Error::AccessDenied(m),
            DbError::NotFound(m) => Error::NotFound(m),
            DbError::Conflict(m) => Error::Conflict(m),
            DbError::Invalid(m) => Error::Invalid(m),
            DbError::Unavailable(m) => Error::Unavailable(m),
            DbError::Failed(m) => Error::Failed(m),
        }
    }
}

impl Error {
    /// The same kind of error, its message rewritten by `f` (to say what was being done).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::AccessDenied(m) => Error::AccessDenied(f(m)),
            Error::NotFound(m) => Error::NotFound(f(m)),
            Error::Conflict(m) => Error::Conflict(f(m)),
            Error::Invalid(m) => Error::Invalid(f(m)),
            Error::LimitExceeded(m) => Error::LimitExceeded(f(m)),
            Error::Unavailable(m) => Error::Unavailable(f(m)),
            Error::Failed(m) => Error::Failed(f(m)),
        }
    }
}
