//! A database that exists for one test: PostgreSQL at 127.0.0.1:5432 (created and dropped per
//! test, owned by a login role of the same name that is no superuser, as the README advises),
//! MariaDB at 127.0.0.1:3306 (likewise, with a user granted only that database) or a SQLite file
//! in a temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};

use lockstep::capability::db::{BlockingSql, DbTarget, SqlConnection};
use lockstep_changelog::db::{Sql, Value};

/// A database that exists for one test.
pub enum TestDb {
    Postgres {
        runtime: tokio::runtime::Runtime,
        name: String,
    },
    Mariadb {
        runtime: tokio::runtime::Runtime,
        name: String,
    },
    Sqlite {
        runtime: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
}

/// Runs `statements` as MariaDB's root, one by one.
fn mariadb_admin(runtime: &tokio::runtime::Runtime, statements: &[String]) {
    use mysql_async::prelude::Queryable;
    runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306")
            .await
            .expect("MariaDB at 127.0.0.1:3306");
        for statement in statements {
            conn.query_drop(statement).await.unwrap();
        }
        conn.disconnect().await.unwrap();
    });
}

/// A name no other test (or test process) uses.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lockstep_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn admin_sql(runtime: &tokio::runtime::Runtime, statement: &str) {
    let statement = statement.to_string();
    runtime.block_on(async move {
        let (client, driver) = tokio_postgres::connect(
            "host=127.0.0.1 user=postgres dbname=postgres",
            tokio_postgres::NoTls,
        )
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
        tokio::spawn(driver);
        // One at a time: CREATE and DROP DATABASE refuse to run in a (multi-statement) transaction.
        for statement in statement.split("; ") {
            client.batch_execute(statement).await.unwrap();
        }
    });
}

impl TestDb {
    pub fn postgres() -> Self {
        let name = unique_name();
        let runtime = runtime();
        admin_sql(
            &runtime,
            &format!("CREATE ROLE {name} LOGIN; CREATE DATABASE {name} OWNER {name}"),
        );
        TestDb::Postgres { runtime, name }
    }

    pub fn mariadb() -> Self {
        let name = unique_name();
        let runtime = runtime();
        mariadb_admin(
            &runtime,
            &[
                format!("CREATE DATABASE {name}"),
                format!("CREATE USER '{name}'@'%'"),
                format!("GRANT ALL ON {name}.* TO '{name}'@'%'"),
            ],
        );
        TestDb::Mariadb { runtime, name }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        TestDb::Sqlite {
            runtime: runtime(),
            _dir: dir,
            path,
        }
    }

    /// One of each kind, for behaviour every SQL database must share.
    pub fn all() -> [TestDb; 3] {
        [TestDb::postgres(), TestDb::mariadb(), TestDb::sqlite()]
    }

    pub fn target(&self) -> DbTarget {
        match self {
            TestDb::Postgres { name, .. } => DbTarget::Postgres {
                config: Box::new(
                    format!("host=127.0.0.1 user={name} dbname={name}")
                        .parse()
                        .unwrap(),
                ),
                allow_superuser: false,
            },
            TestDb::Mariadb { name, .. } => DbTarget::Mysql {
                opts: Box::new(
                    mysql_async::Opts::from_url(&format!("mysql://{name}@127.0.0.1:3306/{name}"))
                        .unwrap(),
                ),
                allow_superuser: false,
            },
            TestDb::Sqlite { path, .. } => DbTarget::Sqlite { path: path.clone() },
        }
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        match self {
            TestDb::Postgres { runtime, .. }
            | TestDb::Mariadb { runtime, .. }
            | TestDb::Sqlite { runtime, .. } => runtime,
        }
    }

    /// A new session (as a new runner would open).
    pub fn session(&self) -> BlockingSql {
        let target = self.target();
        let connection = self
            .runtime()
            .block_on(async move { SqlConnection::open(&target).await })
            .unwrap();
        BlockingSql::new(connection, self.runtime().handle().clone())
    }

    pub fn scalar(&self, sql: &str) -> Value {
        self.session()
            .query(sql, &[])
            .unwrap()
            .rows
            .first()
            .and_then(|r| r.first().cloned())
            .unwrap_or(Value::Null)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.scalar(sql).as_integer().unwrap()
    }

    pub fn name(&self) -> &'static str {
        match self {
            TestDb::Postgres { .. } => "postgresql",
            TestDb::Mariadb { .. } => "mariadb",
            TestDb::Sqlite { .. } => "sqlite",
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { runtime, name } = self {
            admin_sql(
                runtime,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); DROP ROLE IF EXISTS {name}"),
            );
        }
        if let TestDb::Mariadb { runtime, name } = self {
            mariadb_admin(
                runtime,
                &[
                    format!("DROP DATABASE IF EXISTS {name}"),
                    format!("DROP USER IF EXISTS '{name}'@'%'"),
                ],
            );
        }
    }
}

impl TestDb {
    /// A lockstep.yaml `connectors:` entry named `name` pointing at this database.
    pub fn connector(&self, name: &str) -> String {
        match self {
            TestDb::Postgres { name: db, .. } => format!(
                "  {name}: {{ type: Postgres, url: 'postgres://{db}@127.0.0.1:5432/{db}' }}\n"
            ),
            TestDb::Mariadb { name: db, .. } => {
                format!("  {name}: {{ type: MySql, url: 'mysql://{db}@127.0.0.1:3306/{db}' }}\n")
            }
            TestDb::Sqlite { path, .. } => {
                format!("  {name}: {{ type: Sqlite, path: '{}' }}\n", path.display())
            }
        }
    }
}

impl TestDb {
    /// The PostgreSQL role or MariaDB user that owns the database (its name is the database's).
    pub fn role(&self) -> &str {
        match self {
            TestDb::Postgres { name, .. } | TestDb::Mariadb { name, .. } => name,
            TestDb::Sqlite { .. } => "",
        }
    }

    /// Whether the database has been created on disk (SQLite) — i.e. whether anything opened it.
    pub fn target_exists(&self) -> bool {
        match self {
            TestDb::Postgres { .. } | TestDb::Mariadb { .. } => true,
            TestDb::Sqlite { path, .. } => path.exists(),
        }
    }
}

/// `lockstep db ARGS --instance main --config lockstep.yaml` in `dir`: the exit code, stdout and
/// stderr.
pub fn lockstep_db(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("db")
        .args(args)
        .args(["--instance", "main", "--config", "lockstep.yaml"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lockstep db ARGS --instance main --config lockstep.yaml` in `dir`, started and left running
/// (its output discarded), for a test to kill.
pub fn spawn_lockstep_db(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("db")
        .args(args)
        .args(["--instance", "main", "--config", "lockstep.yaml"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits, checking every 20 ms, until `done` says so; fails the test after 30 s, saying what
/// never happened.
pub fn wait_until(never: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{never}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
