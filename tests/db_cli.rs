//! `lockstep db …` against PostgreSQL and SQLite, including a runner killed mid-apply.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::db::{TestDb, lockstep_db, spawn_lockstep_db};

/// A directory holding lockstep.yaml (instance `main` on `db`) and the changelog.
fn project(db: &TestDb, changelog: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db/changelog.sql"), changelog).unwrap();
    let config = format!(
        "connectors:\n{}dbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
        db.connector("db")
    );
    std::fs::write(dir.path().join("lockstep.yaml"), config).unwrap();
    dir
}

const CHANGELOG: &str = "--liquibase formatted sql
--changeset a:1
create table t1 (id int);
--rollback drop table t1;
--changeset a:2
insert into t1 values (1);
--rollback delete from t1;
";

#[test]
fn status_update_history_tag_rollback_and_their_sql_previews() {
    for db in TestDb::all() {
        let dir = project(&db, CHANGELOG);
        let (code, out, err) = lockstep_db(dir.path(), &["status"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            "2 changeset(s) have not been applied to main:\n  db/changelog.sql::1::a\n  db/changelog.sql::2::a\n"
        );

        let (code, out, _) = lockstep_db(dir.path(), &["update-sql"]);
        assert_eq!(code, 0);
        assert!(
            out.starts_with("CREATE TABLE DATABASECHANGELOG (")
                && out.contains("create table t1 (id int);\nINSERT INTO DATABASECHANGELOG"),
            "{out}"
        );
        assert_eq!(db.count(match db { TestDb::Postgres { .. } | TestDb::Mariadb { .. } => "SELECT COUNT(*) FROM information_schema.tables WHERE lower(table_name) = 'databasechangelog'", TestDb::Sqlite { .. } => "SELECT COUNT(*) FROM sqlite_master WHERE name = 'DATABASECHANGELOG'" }), 0, "update-sql writes nothing ({})", db.name());

        let (code, out, err) = lockstep_db(dir.path(), &["update", "--count", "1"]);
        assert_eq!(
            (code, out.as_str()),
            (
                0,
                "applied db/changelog.sql::1::a\n1 changeset(s) applied to main\n"
            ),
            "{err}"
        );
        assert_eq!(lockstep_db(dir.path(), &["tag", "v1"]).0, 0);
        assert_eq!(
            lockstep_db(dir.path(), &["update"]).1,
            "applied db/changelog.sql::2::a\n1 changeset(s) applied to main\n"
        );
        assert_eq!(
            lockstep_db(dir.path(), &["status"]).1,
            "main is up to date\n"
        );

        let (_, history, _) = lockstep_db(dir.path(), &["history"]);
        let lines: Vec<&str> = history.lines().collect();
        assert!(
            lines[0].starts_with("DEPLOYMENT")
                && lines[1].contains("db/changelog.sql")
                && lines[1].trim_end().ends_with("v1"),
            "{history}"
        );

        let (_, preview, _) = lockstep_db(dir.path(), &["rollback-sql", "--tag", "v1"]);
        assert_eq!(
            preview,
            "-- Rolling back db/changelog.sql::2::a\ndelete from t1;\nDELETE FROM DATABASECHANGELOG WHERE ID = '2' AND AUTHOR = 'a' AND FILENAME = 'db/changelog.sql';\n"
        );
        assert_eq!(
            lockstep_db(dir.path(), &["rollback", "--tag", "v1"]).1,
            "rolled back db/changelog.sql::2::a\n1 changeset(s) rolled back on main\n"
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM t1"), 0);
        let (code, _, err) = lockstep_db(dir.path(), &["rollback", "--tag", "v9"]);
        assert_eq!(code, 2);
        assert!(
            err.contains("tag `v9` is not in DATABASECHANGELOG (tags there: v1)"),
            "{err}"
        );
        assert_eq!(
            lockstep_db(dir.path(), &["validate"]).1,
            "db/changelog.sql is valid: 2 changeset(s), 1 not yet applied to main\n"
        );
        assert_eq!(lockstep_db(dir.path(), &["release-locks"]).0, 0);
    }
}

#[test]
fn bad_input_exits_2_and_says_what_to_do() {
    let db = TestDb::sqlite();
    let dir = project(
        &db,
        "--liquibase formatted sql\n--changeset nobody\nselect 1;\n",
    );
    let (code, _, err) = lockstep_db(dir.path(), &["status"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "db/changelog.sql:2: error: `--changeset nobody` does not name an author and an id"
        ),
        "{err}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["db", "status"])
        .args(["--config", "lockstep.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("say which database with --instance NAME (instances in lockstep.yaml: main)")
    );
}

/// A cheap source of randomness for kill times; reproducible runs are not needed here.
fn random_millis(range: std::ops::Range<u64>, salt: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    range.start + (nanos ^ salt.wrapping_mul(0x9e37_79b9)) % (range.end - range.start)
}

#[test]
fn a_runner_killed_at_random_points_is_resumed_without_duplicates_or_manual_unlock() {
    for db in TestDb::all() {
        let slow = match db {
            TestDb::Postgres { .. } => "select pg_sleep(0.02);",
            TestDb::Mariadb { .. } => "select sleep(0.02);",
            TestDb::Sqlite { .. } => {
                "select count(*) from (with recursive n(i) as (select 1 union all select i + 1 from n where i < 200000) select i from n);"
            }
        };
        // MySQL commits DDL by itself, so there the tables come first and the killed changesets
        // are data changes, which commit with their history row.
        let mut changelog = String::from("--liquibase formatted sql\n");
        let mysql = matches!(db, TestDb::Mariadb { .. });
        if mysql {
            changelog.push_str("--changeset killer:tables\n");
            for i in 0..40 {
                changelog.push_str(&format!("create table k{i} (id int);\n"));
            }
        }
        for i in 0..40 {
            let create = if mysql {
                String::new()
            } else {
                format!("create table k{i} (id int);\n")
            };
            changelog.push_str(&format!(
                "--changeset killer:{i}\n{create}insert into k{i} values ({i});\n{slow}\n"
            ));
        }
        let dir = project(&db, &changelog);
        if mysql {
            // Killed during its DDL, the tables changeset would rightly wait for a person.
            let (code, _, err) = lockstep_db(dir.path(), &["update", "--count", "1"]);
            assert_eq!(code, 0, "{err}");
        }
        for attempt in 0..5 {
            let mut child = spawn_lockstep_db(dir.path(), &["update"]);
            std::thread::sleep(Duration::from_millis(random_millis(50..600, attempt)));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        let (code, out, err) = lockstep_db(dir.path(), &["update"]);
        assert_eq!(
            code,
            0,
            "the next run needs no manual unlock ({}): {err}",
            db.name()
        );
        assert!(out.ends_with("changeset(s) applied to main\n"), "{out}");
        assert_eq!(
            db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"),
            40 + i64::from(mysql),
            "every changeset recorded once ({})",
            db.name()
        );
        for i in [0, 17, 39] {
            assert_eq!(
                db.count(&format!("SELECT COUNT(*) FROM k{i}")),
                1,
                "applied exactly once ({})",
                db.name()
            );
        }
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let db = TestDb::sqlite();
    // More than a pipe holds (64 KiB), so the writer is still writing when the pipe closes.
    let many: String = (1..=10_000)
        .map(|i| format!("--changeset a:{i}\nselect {i};\n"))
        .collect();
    let dir = project(&db, &format!("--liquibase formatted sql\n{many}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "db",
            "status",
            "--instance",
            "main",
            "--config",
            "lockstep.yaml",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -c 10`: read a little, then close the pipe.
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_lock_held_by_another_tool_is_reported_while_waiting_and_for_as_long_as_lock_timeout_says() {
    let db = TestDb::postgres();
    let dir = project(&db, CHANGELOG);
    assert_eq!(lockstep_db(dir.path(), &["update"]).0, 0);
    let more = format!("{CHANGELOG}--changeset a:3\ninsert into t1 values (3);\n");
    std::fs::write(dir.path().join("db/changelog.sql"), more).unwrap();
    use lockstep_changelog::db::Sql;
    db.session()
        .execute("UPDATE DATABASECHANGELOGLOCK SET LOCKED = TRUE, LOCKEDBY = 'ci-host (10.0.0.7)', LOCKGRANTED = CURRENT_TIMESTAMP", &[])
        .unwrap();
    let (code, _, err) = lockstep_db(dir.path(), &["update", "--lock-timeout", "2s"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("note: waiting for the changelog lock, held by ci-host (10.0.0.7) (since")
            && err.contains("giving up after 2 s"),
        "says who holds it while it waits: {err}"
    );
    assert!(
        err.contains("error: could not acquire the changelog lock"),
        "{err}"
    );
    let (code, _, err) = lockstep_db(dir.path(), &["update", "--lock-timeout", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("`soon` is not a duration"), "{err}");
}

/// A repository's changelog cannot reach a file outside the schema's root through a symbolic
/// link: not as an include, a sqlFile or loadData. Nothing reaches the database.
#[test]
fn a_symlink_out_of_the_schema_root_is_refused_and_nothing_is_applied() {
    let db = TestDb::postgres();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.sql"),
        "create table leaked (line text);\n",
    )
    .unwrap();
    std::fs::write(outside.path().join("secret.csv"), "line\nroot:x:0:0\n").unwrap();
    std::fs::write(
        outside.path().join("secret.yaml"),
        "databaseChangeLog:\n  - changeSet: { id: in, author: x, changes: [{ sql: create table leaked (line text) }] }\n",
    )
    .unwrap();
    for (link, change) in [
        ("secret.sql", "sqlFile: { path: db/secret.sql }"),
        (
            "secret.csv",
            "loadData: { tableName: person, file: db/secret.csv }",
        ),
        ("secret.yaml", ""),
    ] {
        let dir = project(&db, "");
        std::os::unix::fs::symlink(outside.path().join(link), dir.path().join("db").join(link))
            .unwrap();
        let changelog = if change.is_empty() {
            format!("databaseChangeLog:\n  - include: {{ file: db/{link} }}\n")
        } else {
            format!(
                "databaseChangeLog:\n  - changeSet: {{ id: person, author: a, changes: [{{ createTable: {{ tableName: person, columns: [{{ column: {{ name: line, type: text }} }}] }} }}] }}\n  - changeSet: {{ id: hostile, author: a, changes: [{{ {change} }}] }}\n"
            )
        };
        std::fs::write(dir.path().join("db/changelog.sql"), "").unwrap();
        std::fs::write(dir.path().join("db/changelog.yaml"), changelog).unwrap();
        let config = std::fs::read_to_string(dir.path().join("lockstep.yaml"))
            .unwrap()
            .replace("db/changelog.sql", "db/changelog.yaml");
        std::fs::write(dir.path().join("lockstep.yaml"), config).unwrap();
        let (code, _, err) = lockstep_db(dir.path(), &["update"]);
        assert_ne!(code, 0, "{link}: {err}");
        assert!(
            err.contains("a symbolic link leads it outside the schema's root"),
            "{link}: {err}"
        );
        assert_eq!(
            db.count("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"),
            0,
            "{link}: nothing reached the database"
        );
    }
}
