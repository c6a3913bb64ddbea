//! MongoDB databases by `dbInstance` label; commands and replies are Extended JSON. Needs
//! `grants: { db: [INSTANCE] }`. A connection reaches only its instance's database (and `admin`
//! where the instance allows admin commands).

use crate::__private::bindings::lockstep::db::mongo as wit;
use crate::Error;

/// A connection to one database; closed when dropped.
pub struct Connection(wit::Connection);

impl Connection {
    /// Opens the database of `instance`; `access-denied`, before any I/O, when not granted.
    pub fn open(instance: &str) -> Result<Connection, Error> {
        Ok(Connection(wit::Connection::open(instance)?))
    }

    /// The name of the database the connection reaches.
    pub fn database(&self) -> String {
        self.0.database()
    }

    /// Runs one command (`{"insert": "people", "documents": [...]}`) and returns the reply. A
    /// reply with `ok: 0` is an error with the server's message.
    pub fn run_command(&self, command: &serde_json::Value) -> Result<serde_json::Value, Error> {
        let reply = self.0.run_command(&command.to_string())?;
        serde_json::from_str(&reply)
            .map_err(|e| Error::Failed(format!("the server's reply is not JSON: {e}")))
    }

    /// [`Connection::run_command`] on the `admin` database: `access-denied` unless the instance
    /// allows admin commands.
    pub fn run_admin_command(
        &self,
        command: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        let reply = self.0.run_admin_command(&command.to_string())?;
        serde_json::from_str(&reply)
            .map_err(|e| Error::Failed(format!("the server's reply is not JSON: {e}")))
    }

    /// The id (`lsid`, Extended JSON) of the session transactions run in; `None` when the
    /// deployment has no transactions (a standalone server).
    pub fn transaction_session(&self) -> Result<Option<String>, Error> {
        self.0.transaction_session().map_err(Into::into)
    }

    /// Starts a transaction that [`Connection::run_command`] then runs in.
    pub fn start_transaction(&self) -> Result<(), Error> {
        self.0.start_transaction().map_err(Into::into)
    }

    pub fn commit_transaction(&self) -> Result<(), Error> {
        self.0.commit_transaction().map_err(Into::into)
    }

    /// Undoes the open transaction; nothing when none is open.
    pub fn abort_transaction(&self) -> Result<(), Error> {
        self.0.abort_transaction().map_err(Into::into)
    }
}

/// The changelog engine sends its commands as text.
#[cfg(feature = "changelog")]
impl lockstep_changelog::db::Mongo for Connection {
    fn run_command(&mut self, command: &str) -> Result<String, lockstep_changelog::db::DbError> {
        self.0
            .run_command(command)
            .map_err(|e| crate::db::db_error(e.into()))
    }

    fn run_admin_command(
        &mut self,
        command: &str,
    ) -> Result<String, lockstep_changelog::db::DbError> {
        self.0
            .run_admin_command(command)
            .map_err(|e| crate::db::db_error(e.into()))
    }

    fn transaction_session(&mut self) -> Result<Option<String>, lockstep_changelog::db::DbError> {
        Connection::transaction_session(self).map_err(crate::db::db_error)
    }

    fn start_transaction(&mut self) -> Result<(), lockstep_changelog::db::DbError> {
        Connection::start_transaction(self).map_err(crate::db::db_error)
    }

    fn commit_transaction(&mut self) -> Result<(), lockstep_changelog::db::DbError> {
        Connection::commit_transaction(self).map_err(crate::db::db_error)
    }

    fn abort_transaction(&mut self) -> Result<(), lockstep_changelog::db::DbError> {
        Connection::abort_transaction(self).map_err(crate::db::db_error)
    }
}
