//! A SecantusDB server (MongoDB wire protocol, in memory) for one test, on a free port.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lockstep::capability::db::DbTarget;
use lockstep::capability::mongo::{BlockingMongo, MongoConnection};
use lockstep_changelog::db::Mongo;

/// Installs SecantusDB (`pip install --pre secantusdb`) once, if `secantusd-py` is not there yet.
fn ensure_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let present = Command::new("secantusd-py")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !present {
            let status = Command::new("pip")
                .args(["install", "--pre", "--quiet", "secantusdb"])
                .status()
                .expect("pip is needed to install SecantusDB for the MongoDB tests");
            assert!(status.success(), "`pip install --pre secantusdb` failed");
        }
    });
}

pub struct Secantus {
    child: Child,
    pub port: u16,
}

impl Secantus {
    /// A server that, like a single-node replica set, has transactions.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A standalone server: no transactions.
    pub fn start_standalone() -> Self {
        Self::start_with(&["--standalone"])
    }

    fn start_with(flags: &[&str]) -> Self {
        ensure_installed();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("secantusd-py")
            .args(["--port", &port.to_string(), "--storage-path", ":memory:"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("secantusd-py is needed for the MongoDB tests: pip install --pre secantusdb");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "secantusd-py did not start listening on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Secantus { child, port }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking connection to one database of a [`Secantus`] server, through the product's own
/// `lockstep:db/mongo` implementation (the real driver), for the engine and for checking results.
pub struct MongoSession {
    connection: BlockingMongo,
    // Dropped after the connection, which it drives.
    _runtime: tokio::runtime::Runtime,
}

impl MongoSession {
    pub fn open(server: &Secantus, database: &str, admin_commands: bool) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let target = DbTarget::Mongo {
            uri: server.uri(),
            database: database.into(),
            password: None,
            admin_commands,
        };
        let connection = runtime.block_on(MongoConnection::open(&target)).unwrap();
        MongoSession {
            connection: BlockingMongo::new(connection, runtime.handle().clone()),
            _runtime: runtime,
        }
    }

    pub fn connection(&mut self) -> &mut BlockingMongo {
        &mut self.connection
    }

    /// Runs a command given as JSON and returns the reply.
    pub fn command(&mut self, command: serde_json::Value) -> serde_json::Value {
        let reply = self
            .connection
            .run_command(&command.to_string())
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        serde_json::from_str(&reply).unwrap()
    }

    /// Every document of a collection, in natural order.
    pub fn documents(&mut self, collection: &str) -> Vec<serde_json::Value> {
        let reply = self
            .command(serde_json::json!({ "find": collection, "filter": {}, "batchSize": 100_000 }));
        reply["cursor"]["firstBatch"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn collections(&mut self) -> Vec<String> {
        let reply = self.command(serde_json::json!({ "listCollections": 1, "nameOnly": true }));
        let mut names: Vec<String> = reply["cursor"]["firstBatch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    pub fn index_names(&mut self, collection: &str) -> Vec<String> {
        let reply = self.command(serde_json::json!({ "listIndexes": collection }));
        let mut names: Vec<String> = reply["cursor"]["firstBatch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}
