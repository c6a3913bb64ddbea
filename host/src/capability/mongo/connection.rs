//! MongoDB connections with the real `mongodb` driver, kept on their instance's database.

use std::time::Duration;

use lockstep_changelog::db::DbError;
use mongodb::bson::{Bson, Document};
use mongodb::options::ClientOptions;

use crate::capability::db::DbTarget;

/// An open connection to one database.
pub struct MongoConnection {
    client: mongodb::Client,
    database: mongodb::Database,
    /// `admin`, when the instance allows admin commands.
    admin: Option<mongodb::Database>,
    /// The session transactions run in, once [`MongoConnection::transaction_session`] made it;
    /// `Some(None)` when the deployment has no transactions.
    session: Option<Option<Box<mongodb::ClientSession>>>,
    /// Whether a transaction is open in `session`: commands then run in it.
    in_transaction: bool,
}

fn unavailable(error: mongodb::error::Error) -> DbError {
    match *error.kind {
        mongodb::error::ErrorKind::Command(ref command) => DbError::Failed(format!(
            "{} ({}): {}",
            command.code_name, command.code, command.message
        )),
        mongodb::error::ErrorKind::Write(_) | mongodb::error::ErrorKind::InsertMany(_) => {
            DbError::Failed(error.to_string())
        }
        _ => DbError::Unavailable(error.to_string()),
    }
}

impl MongoConnection {
    pub async fn open(target: &DbTarget) -> Result<Self, DbError> {
        let DbTarget::Mongo {
            uri,
            database,
            password,
            admin_commands,
        } = target
        else {
            return Err(DbError::Invalid(
                "this instance is a SQL database; open it with lockstep:db/sql".into(),
            ));
        };
        let mut options = ClientOptions::parse(uri).await.map_err(|e| {
            DbError::Invalid(format!(
                "the connector's `uri` is not a MongoDB connection string: {e}"
            ))
        })?;
        // Fail within a step's patience, not the driver's 30 s default.
        options.server_selection_timeout = Some(Duration::from_secs(10));
        if let Some(password) = password {
            options
                .credential
                .get_or_insert_with(Default::default)
                .password = Some(password.clone());
        }
        let client = mongodb::Client::with_options(options).map_err(unavailable)?;
        Ok(MongoConnection {
            database: client.database(database),
            admin: admin_commands.then(|| client.database("admin")),
            client,
            session: None,
            in_transaction: false,
        })
    }

    pub fn database(&self) -> &str {
        self.database.name()
    }

    /// Runs one command given as Extended JSON, in the open transaction if there is one;
    /// returns the reply as relaxed Extended JSON.
    pub async fn run_command(&mut self, command: &str) -> Result<String, DbError> {
        let document = parse(command)?;
        stays_in(&document, self.database.name())?;
        let action = self.database.run_command(document);
        let reply = match (&mut self.session, self.in_transaction) {
            (Some(Some(session)), true) => action.session(&mut **session).await,
            _ => action.await,
        };
        reply_text(reply)
    }

    /// The id (`lsid`, as Extended JSON) of the session this connection runs transactions in,
    /// made on first use; `None` when the deployment has no transactions (a standalone server;
    /// they need a replica set or a sharded cluster).
    pub async fn transaction_session(&mut self) -> Result<Option<String>, DbError> {
        if self.session.is_none() {
            let hello = self
                .database
                .run_command(mongodb::bson::doc! { "hello": 1 })
                .await
                .map_err(unavailable)?;
            let has_transactions = hello.contains_key("setName")
                || hello.get_str("msg").is_ok_and(|msg| msg == "isdbgrid");
            self.session = Some(if has_transactions {
                Some(Box::new(
                    self.client.start_session().await.map_err(unavailable)?,
                ))
            } else {
                None
            });
        }
        Ok(self
            .session
            .as_ref()
            .and_then(|s| s.as_ref())
            .map(|session| {
                Bson::Document(session.id().clone())
                    .into_canonical_extjson()
                    .to_string()
            }))
    }

    fn session(&mut self) -> Result<&mut mongodb::ClientSession, DbError> {
        match &mut self.session {
            Some(Some(session)) => Ok(session),
            _ => Err(DbError::Invalid(
                "no transaction session: ask for transaction-session first, on a deployment that has transactions".into(),
            )),
        }
    }

    pub async fn start_transaction(&mut self) -> Result<(), DbError> {
        self.session()?
            .start_transaction()
            .await
            .map_err(unavailable)?;
        self.in_transaction = true;
        Ok(())
    }

    pub async fn commit_transaction(&mut self) -> Result<(), DbError> {
        self.in_transaction = false;
        self.session()?
            .commit_transaction()
            .await
            .map_err(unavailable)
    }

    pub async fn abort_transaction(&mut self) -> Result<(), DbError> {
        if !std::mem::take(&mut self.in_transaction) {
            return Ok(());
        }
        self.session()?
            .abort_transaction()
            .await
            .map_err(unavailable)
    }

    /// Runs one command on `admin`; refused unless the instance allows admin commands.
    pub async fn run_admin_command(&self, command: &str) -> Result<String, DbError> {
        let Some(admin) = &self.admin else {
            return Err(DbError::AccessDenied("admin commands are off for this db instance; set `adminCommands: true` on it in lockstep.yaml to allow them".into()));
        };
        run(admin, parse(command)?).await
    }
}

fn parse(command: &str) -> Result<Document, DbError> {
    let json: serde_json::Value = serde_json::from_str(command)
        .map_err(|e| DbError::Invalid(format!("the command is not JSON: {e}")))?;
    match Bson::try_from(json) {
        Ok(Bson::Document(document)) => Ok(document),
        _ => Err(DbError::Invalid(
            "a command is a JSON object such as {\"ping\": 1}".into(),
        )),
    }
}

/// Commands that act on other databases by design.
const CROSS_DATABASE_COMMANDS: &[&str] = &[
    "applyOps",
    "renameCollection",
    "copydb",
    "clone",
    "cloneCollection",
    "eval",
    "$eval",
];

/// Keys whose value may name a database to write to or read from (`$out: { db, coll }`,
/// `$merge: { into: { db, coll } }`, mapReduce's `out: { db }`, `$lookup: { from: { db, coll } }`).
const TARGET_KEYS: &[&str] = &[
    "$out",
    "$merge",
    "out",
    "$lookup",
    "$unionWith",
    "$graphLookup",
];

/// Refuses, before anything is sent, a command that would reach a database other than `database`.
fn stays_in(command: &Document, database: &str) -> Result<(), DbError> {
    let refuse = |why: String| {
        Err(DbError::AccessDenied(format!(
            "{why}; a step reaches only its instance's database `{database}`"
        )))
    };
    if let Some((name, _)) = command.iter().next()
        && CROSS_DATABASE_COMMANDS.contains(&name.as_str())
    {
        return refuse(format!("`{name}` acts on other databases"));
    }
    if command.contains_key("$db") {
        return refuse("a command may not choose its database with `$db`".to_string());
    }
    fn named_databases<'b>(value: &'b Bson, found: &mut Vec<&'b str>) {
        match value {
            Bson::Document(document) => {
                for (key, value) in document {
                    match (key.as_str(), value) {
                        ("db", Bson::String(name)) => found.push(name),
                        _ => named_databases(value, found),
                    }
                }
            }
            Bson::Array(items) => items.iter().for_each(|item| named_databases(item, found)),
            _ => {}
        }
    }
    fn targets<'b>(value: &'b Bson, found: &mut Vec<&'b str>) {
        match value {
            Bson::Document(document) => {
                for (key, value) in document {
                    if TARGET_KEYS.contains(&key.as_str()) {
                        named_databases(value, found);
                    }
                    targets(value, found);
                }
            }
            Bson::Array(items) => items.iter().for_each(|item| targets(item, found)),
            _ => {}
        }
    }
    let whole = Bson::Document(command.clone());
    let mut found = vec![];
    targets(&whole, &mut found);
    match found.into_iter().find(|name| *name != database) {
        Some(other) => refuse(format!("the command names database `{other}`")),
        None => Ok(()),
    }
}

async fn run(database: &mongodb::Database, document: Document) -> Result<String, DbError> {
    reply_text(database.run_command(document).await)
}

fn reply_text(reply: mongodb::error::Result<Document>) -> Result<String, DbError> {
    let reply = reply.map_err(unavailable)?;
    Ok(Bson::Document(reply).into_relaxed_extjson().to_string())
}

/// Drives a [`MongoConnection`] from synchronous code (the changelog engine) on a tokio runtime.
/// Its methods block, so call them off the runtime's worker threads.
pub struct BlockingMongo {
    connection: MongoConnection,
    runtime: tokio::runtime::Handle,
}

impl BlockingMongo {
    pub fn new(connection: MongoConnection, runtime: tokio::runtime::Handle) -> Self {
        BlockingMongo {
            connection,
            runtime,
        }
    }
}

impl lockstep_changelog::db::Mongo for BlockingMongo {
    fn run_command(&mut self, command: &str) -> Result<String, DbError> {
        self.runtime.block_on(self.connection.run_command(command))
    }

    fn run_admin_command(&mut self, command: &str) -> Result<String, DbError> {
        self.runtime
            .block_on(self.connection.run_admin_command(command))
    }

    fn transaction_session(&mut self) -> Result<Option<String>, DbError> {
        self.runtime.block_on(self.connection.transaction_session())
    }

    fn start_transaction(&mut self) -> Result<(), DbError> {
        self.runtime.block_on(self.connection.start_transaction())
    }

    fn commit_transaction(&mut self) -> Result<(), DbError> {
        self.runtime.block_on(self.connection.commit_transaction())
    }

    fn abort_transaction(&mut self) -> Result<(), DbError> {
        self.runtime.block_on(self.connection.abort_transaction())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(command: &str) -> Result<(), DbError> {
        stays_in(&parse(command).unwrap(), "orders")
    }

    #[test]
    fn commands_on_the_instances_database_pass() {
        assert!(
            check(r#"{"insert": "people", "documents": [{"db": "billing"}]}"#).is_ok(),
            "a document field named db is data"
        );
        assert!(check(r#"{"aggregate": "people", "pipeline": [{"$out": {"db": "orders", "coll": "copy"}}], "cursor": {}}"#).is_ok());
        assert!(
            check(r#"{"aggregate": "people", "pipeline": [{"$out": "copy"}], "cursor": {}}"#)
                .is_ok()
        );
    }

    #[test]
    fn commands_that_reach_another_database_are_refused_before_they_are_sent() {
        for (command, why) in [
            (
                r#"{"aggregate": "people", "pipeline": [{"$out": {"db": "billing", "coll": "x"}}], "cursor": {}}"#,
                "names database `billing`",
            ),
            (
                r#"{"aggregate": "people", "pipeline": [{"$merge": {"into": {"db": "billing", "coll": "x"}}}], "cursor": {}}"#,
                "names database `billing`",
            ),
            (
                r#"{"aggregate": "people", "pipeline": [{"$lookup": {"from": {"db": "billing", "coll": "x"}, "as": "y", "pipeline": []}}], "cursor": {}}"#,
                "names database `billing`",
            ),
            (
                r#"{"mapReduce": "people", "map": "", "reduce": "", "out": {"replace": "x", "db": "billing"}}"#,
                "names database `billing`",
            ),
            (r#"{"find": "people", "$db": "billing"}"#, "`$db`"),
            (
                r#"{"applyOps": [{"op": "i", "ns": "billing.x", "o": {}}]}"#,
                "`applyOps` acts on other databases",
            ),
            (
                r#"{"renameCollection": "orders.people", "to": "billing.people"}"#,
                "`renameCollection`",
            ),
        ] {
            match check(command) {
                Err(DbError::AccessDenied(message)) => assert!(
                    message.contains(why) && message.contains("`orders`"),
                    "{command}: {message}"
                ),
                other => panic!("{command} was not refused: {other:?}"),
            }
        }
    }
}
