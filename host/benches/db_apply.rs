//! Schema-change speed: 1,000 changesets applied to an empty PostgreSQL database by Lockstep and
//! by Liquibase 4.28 (same run, same changelog), and `lockstep db status` on up-to-date
//! 10,000- and 100,000-changeset changelogs. Needs PostgreSQL at 127.0.0.1:5432, Java 17 and npm.
//!
//! Run with `cargo bench --bench db_apply`; the README keeps the latest numbers.
//! The floors, timed in the same run: PostgreSQL alone running the same SQL (Lockstep's
//! `update-sql` output, history inserts included) through psql, once with one transaction per
//! changeset (what Lockstep does, so the target is ≤ 1.1× that) and once in a single transaction.
//! Targets for status: ≤ 50 ms on 10,000 changesets; ≤ 1 s and ≤ 150 MB on 100,000.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{median, npm_tool, timed, timed_with_peak_memory};

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
    let mut per_changeset_times = vec![];
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

        // The server alone: the same statements in one transaction, and with one transaction
        // per changeset (each ends with its history row's INSERT).
        fresh_database(&lockstep_db);
        let update_sql = lockstep(&a, &["update-sql"]).output().unwrap();
        assert!(update_sql.status.success(), "update-sql failed");
        let script = String::from_utf8(update_sql.stdout).unwrap();
        let per_changeset: String = script
            .lines()
            .map(|line| {
                if line.starts_with("INSERT INTO DATABASECHANGELOG ") {
                    format!("{line}\nCOMMIT;\nBEGIN;\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        for (single, text, times) in [
            (true, script.clone(), &mut server_times),
            (
                false,
                format!("BEGIN;\n{per_changeset}COMMIT;\n"),
                &mut per_changeset_times,
            ),
        ] {
            fresh_database(&lockstep_db);
            let script_path = work.path().join(format!("update{round}-{single}.sql"));
            std::fs::write(&script_path, text).unwrap();
            let mut command = Command::new("psql");
            command.args(["-h", "127.0.0.1", "-U", "postgres", "-q"]);
            if single {
                command.arg("-1");
            }
            command
                .args(["-v", "ON_ERROR_STOP=1", "-d", &lockstep_db, "-f"])
                .arg(&script_path);
            times.push(timed(&mut command));
            psql(&format!("DROP DATABASE {lockstep_db} WITH (FORCE)"));
        }
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
    let per_changeset = median(per_changeset_times);
    println!(
        "  PostgreSQL alone     {:>8.0} ms  (the same SQL through psql, one transaction per changeset)",
        per_changeset.as_secs_f64() * 1e3
    );
    println!(
        "  PostgreSQL alone     {:>8.0} ms  (the same SQL in a single transaction)",
        median(server_times).as_secs_f64() * 1e3
    );
    let over_floor = ours.as_secs_f64() / per_changeset.as_secs_f64();
    println!(
        "  Lockstep / one-transaction-per-changeset floor: {over_floor:.2}× (target ≤ 1.1×: {})",
        if over_floor <= 1.1 { "meets" } else { "MISSES" }
    );
    println!(
        "  Lockstep is {:.1}× faster than Liquibase",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );

    for (changesets, target_ms, target_mb) in [(10_000, 50, None), (100_000, 1_000, Some(150))] {
        let (time, memory) = status_of_up_to_date(work.path(), changesets);
        println!(
            "lockstep db status, up-to-date {changesets}-changeset changelog (whole process), median of 7:"
        );
        let meets = time <= Duration::from_millis(target_ms)
            && target_mb.is_none_or(|mb| memory <= mb * 1024 * 1024);
        println!(
            "  {:.0} ms, peak {:.0} MB (target ≤ {target_ms} ms{}: {})",
            time.as_secs_f64() * 1e3,
            memory as f64 / 1024.0 / 1024.0,
            target_mb.map_or(String::new(), |mb| format!(", ≤ {mb} MB")),
            if meets { "meets" } else { "MISSES" }
        );
    }
}

/// `lockstep db status` on an up-to-date changelog of `changesets` changesets: the median time
/// of 7 runs and the largest peak memory.
fn status_of_up_to_date(work: &Path, changesets: usize) -> (Duration, u64) {
    let mut big = String::from("--liquibase formatted sql\n");
    for i in 0..changesets {
        big.push_str(&format!(
            "--changeset bench:{i}\nselect {i};\n--rollback select 0;\n"
        ));
    }
    let database = format!("bench_status_{changesets}");
    fresh_database(&database);
    let dir = work.join(&database);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("db/changelog.sql"), &big).unwrap();
    std::fs::write(dir.join("lockstep.yaml"), format!("connectors:\n  db: {{ type: Postgres, url: 'postgres://postgres@127.0.0.1:5432/{database}' }}\ndbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db, allowSuperuser: true }}\n")).unwrap();
    timed(&mut lockstep(&dir, &["update"]));
    let runs: Vec<(Duration, u64)> = (0..7)
        .map(|_| timed_with_peak_memory(&mut lockstep(&dir, &["status"])))
        .collect();
    psql(&format!("DROP DATABASE {database} WITH (FORCE)"));
    let peak = runs.iter().map(|(_, memory)| *memory).max().unwrap_or(0);
    (
        median(runs.into_iter().map(|(time, _)| time).collect()),
        peak,
    )
}
