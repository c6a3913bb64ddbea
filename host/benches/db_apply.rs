//! Schema-change speed: 1,000 changesets applied to an empty PostgreSQL database by Lockstep and
//! by Liquibase 4.28 (same run, same changelog), and `lockstep db status` on an up-to-date
//! 10,000-changeset changelog. Needs PostgreSQL at 127.0.0.1:5432, Java 17 and npm.
//!
//! Run with `cargo bench --bench db_apply`; the README keeps the latest numbers.
//! Targets: Lockstep ≥ 10× faster than Liquibase end to end; status ≤ 100 ms.
//! For context it also times PostgreSQL alone running the same SQL (Lockstep's `update-sql`
//! output, history inserts included) in one psql transaction: no tool can apply the changelog
//! faster than the server executes it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{median, npm_tool, timed};

fn psql(sql: &str) {
    let status = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qAtc", sql])
        .status()
        .expect("psql");
    assert!(status.success(), "{sql}");
}

fn fresh_database(name: &str) {
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql(&format!("CREATE DATABASE {name}"));
}

/// 1,000 changesets in groups of four: createTable, addColumn, createIndex, sql.
fn mixed_changelog() -> String {
    let mut out = String::from("databaseChangeLog:\n");
    for i in 0..250 {
        out.push_str(&format!(
            "  - changeSet:\n      id: table-{i}\n      author: bench\n      changes:\n        - createTable:\n            tableName: t{i}\n            columns:\n              - column: {{name: id, type: int, constraints: {{primaryKey: true, nullable: false}}}}\n              - column: {{name: name, type: varchar(50)}}\n\
             \x20 - changeSet:\n      id: column-{i}\n      author: bench\n      changes:\n        - addColumn:\n            tableName: t{i}\n            columns:\n              - column: {{name: email, type: varchar(200)}}\n\
             \x20 - changeSet:\n      id: index-{i}\n      author: bench\n      changes:\n        - createIndex:\n            tableName: t{i}\n            indexName: ix_t{i}_email\n            columns:\n              - column: {{name: email}}\n\
             \x20 - changeSet:\n      id: sql-{i}\n      author: bench\n      changes:\n        - sql: insert into t{i} (id, name, email) values (1, 'row {i}', 'r{i}@example.com')\n      rollback: delete from t{i}\n"
        ));
    }
    out
}

fn project(dir: &Path, database: &str, changelog: &str) {
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("db/changelog.yaml"), changelog).unwrap();
    std::fs::write(dir.join("lockstep.yaml"), format!("connectors:\n  db: {{ type: Postgres, url: 'postgres://postgres@127.0.0.1:5432/{database}' }}\ndbSchemas:\n  app: {{ changelog: db/changelog.yaml }}\ndbInstances:\n  main: {{ schema: app, connector: db, allowSuperuser: true }}\n")).unwrap();
}

fn lockstep(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    command
        .arg("db")
        .args(args)
        .args(["--instance", "main", "--config", "lockstep.yaml"])
        .current_dir(dir);
    command
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let changelog = mixed_changelog();
    let liquibase = npm_tool(
        "liquibase",
        "liquibase@4.28.1",
        "node_modules/liquibase/dist/liquibase/liquibase",
    );

    let mut lockstep_times = vec![];
    let mut liquibase_times = vec![];
    let mut server_times = vec![];
    for round in 0..3 {
        let (lockstep_db, liquibase_db) = (
            format!("bench_lockstep_{round}"),
            format!("bench_liquibase_{round}"),
        );
        fresh_database(&lockstep_db);
        fresh_database(&liquibase_db);
        let (a, b) = (
            work.path().join(format!("lockstep{round}")),
            work.path().join(format!("liquibase{round}")),
        );
        project(&a, &lockstep_db, &changelog);
        project(&b, &liquibase_db, &changelog);
        lockstep_times.push(timed(&mut lockstep(&a, &["update"])));
        liquibase_times.push(timed(
            Command::new(&liquibase)
                .arg(format!(
                    "--url=jdbc:postgresql://127.0.0.1:5432/{liquibase_db}"
                ))
                .args([
                    "--username=postgres",
                    "--changelog-file=db/changelog.yaml",
                    "--show-banner=false",
                    "--log-level=SEVERE",
                    "update",
                ])
                .current_dir(&b),
        ));
        psql(&format!("DROP DATABASE {lockstep_db} WITH (FORCE)"));
        psql(&format!("DROP DATABASE {liquibase_db} WITH (FORCE)"));

        // The server alone: the same statements in one transaction, no per-changeset commits.
        fresh_database(&lockstep_db);
        let script = lockstep(&a, &["update-sql"]).output().unwrap().stdout;
        let script_path = work.path().join(format!("update{round}.sql"));
        std::fs::write(&script_path, script).unwrap();
        server_times.push(timed(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-q",
                    "-1",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &lockstep_db,
                    "-f",
                ])
                .arg(&script_path),
        ));
        psql(&format!("DROP DATABASE {lockstep_db} WITH (FORCE)"));
    }
    let (ours, theirs) = (median(lockstep_times), median(liquibase_times));
    println!(
        "apply 1,000 changesets (createTable, addColumn, createIndex, sql) to an empty PostgreSQL database, median of 3:"
    );
    println!(
        "  lockstep db update   {:>8.0} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  liquibase update     {:>8.0} ms",
        theirs.as_secs_f64() * 1e3
    );
    println!(
        "  PostgreSQL alone     {:>8.0} ms  (the same SQL in one psql transaction: the floor for any tool)",
        median(server_times).as_secs_f64() * 1e3
    );
    let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
    println!(
        "  Lockstep is {ratio:.1}× faster (target ≥ 10×: {})",
        if ratio >= 10.0 { "meets" } else { "MISSES" }
    );

    // `status` on an up-to-date 10,000-changeset changelog.
    let mut big = String::from("--liquibase formatted sql\n");
    for i in 0..10_000 {
        big.push_str(&format!(
            "--changeset bench:{i}\nselect {i};\n--rollback select 0;\n"
        ));
    }
    fresh_database("bench_status");
    let dir = work.path().join("status");
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("db/changelog.sql"), &big).unwrap();
    std::fs::write(dir.join("lockstep.yaml"), "connectors:\n  db: { type: Postgres, url: 'postgres://postgres@127.0.0.1:5432/bench_status' }\ndbSchemas:\n  app: { changelog: db/changelog.sql }\ndbInstances:\n  main: { schema: app, connector: db, allowSuperuser: true }\n").unwrap();
    timed(&mut lockstep(&dir, &["update"]));
    let status = median(
        (0..7)
            .map(|_| timed(&mut lockstep(&dir, &["status"])))
            .collect(),
    );
    psql("DROP DATABASE bench_status WITH (FORCE)");
    println!(
        "lockstep db status, up-to-date 10,000-changeset changelog (whole process), median of 7:"
    );
    println!(
        "  {:.0} ms (target ≤ 100 ms: {})",
        status.as_secs_f64() * 1e3,
        if status <= Duration::from_millis(100) {
            "meets"
        } else {
            "MISSES"
        }
    );
}
