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

/// Rounds of the apply comparison. Each round times Lockstep and the psql floors back to back,
/// so the ratio of a round compares runs on the same machine state; the target is on the
/// median of the rounds' ratios.
const ROUNDS: usize = 5;

fn main() {
    let work = tempfile::tempdir().unwrap();
    let changelog = mixed_changelog();
    let liquibase = npm_tool(
        "liquibase",
        "liquibase@4.28.1",
        "node_modules/liquibase/dist/liquibase/liquibase",
    );

    // The server alone runs Lockstep's own SQL: in a single transaction, and with one
    // transaction per changeset (each ends with its history row's INSERT).
    let scripted = work.path().join("scripted");
    project(&scripted, "bench_scripted", &changelog);
    fresh_database("bench_scripted");
    let update_sql = lockstep(&scripted, &["update-sql"]).output().unwrap();
    assert!(update_sql.status.success(), "update-sql failed");
    psql("DROP DATABASE bench_scripted WITH (FORCE)");
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
    let single_path = work.path().join("single.sql");
    let per_changeset_path = work.path().join("per-changeset.sql");
    std::fs::write(&single_path, &script).unwrap();
    std::fs::write(
        &per_changeset_path,
        format!("BEGIN;\n{per_changeset}COMMIT;\n"),
    )
    .unwrap();
    let psql_script = |path: &Path, single: bool| {
        fresh_database("bench_psql");
        let mut command = Command::new("psql");
        command.args(["-h", "127.0.0.1", "-U", "postgres", "-q"]);
        if single {
            command.arg("-1");
        }
        command
            .args(["-v", "ON_ERROR_STOP=1", "-d", "bench_psql", "-f"])
            .arg(path);
        let time = timed(&mut command);
        psql("DROP DATABASE bench_psql WITH (FORCE)");
        time
    };

    let mut lockstep_times = vec![];
    let mut liquibase_times = vec![];
    let mut server_times = vec![];
    let mut per_changeset_times = vec![];
    let mut ratios = vec![];
    for round in 0..ROUNDS {
        let dir = work.path().join(format!("lockstep{round}"));
        let database = format!("bench_lockstep_{round}");
        project(&dir, &database, &changelog);
        fresh_database(&database);
        let ours = timed(&mut lockstep(&dir, &["update"]));
        psql(&format!("DROP DATABASE {database} WITH (FORCE)"));
        let floor = psql_script(&per_changeset_path, false);
        ratios.push(ours.as_secs_f64() / floor.as_secs_f64());
        lockstep_times.push(ours);
        per_changeset_times.push(floor);
        server_times.push(psql_script(&single_path, true));

        let dir = work.path().join(format!("liquibase{round}"));
        let database = format!("bench_liquibase_{round}");
        project(&dir, &database, &changelog);
        fresh_database(&database);
        liquibase_times.push(timed(
            Command::new(&liquibase)
                .arg(format!("--url=jdbc:postgresql://127.0.0.1:5432/{database}"))
                .args([
                    "--username=postgres",
                    "--changelog-file=db/changelog.yaml",
                    "--show-banner=false",
                    "--log-level=SEVERE",
                    "update",
                ])
                .current_dir(&dir),
        ));
        psql(&format!("DROP DATABASE {database} WITH (FORCE)"));
    }
    let (ours, theirs) = (median(lockstep_times), median(liquibase_times));
    println!(
        "apply 1,000 changesets (createTable, addColumn, createIndex, sql) to an empty PostgreSQL database, median of {ROUNDS}:"
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
        "  PostgreSQL alone     {:>8.0} ms  (the same SQL through psql, one transaction per changeset)",
        median(per_changeset_times).as_secs_f64() * 1e3
    );
    println!(
        "  PostgreSQL alone     {:>8.0} ms  (the same SQL in a single transaction)",
        median(server_times).as_secs_f64() * 1e3
    );
    ratios.sort_by(f64::total_cmp);
    let over_floor = ratios[ROUNDS / 2];
    println!(
        "  Lockstep / one-transaction-per-changeset floor, median of the rounds: {over_floor:.2}× (rounds {:.2}–{:.2}×; target ≤ 1.1×: {})",
        ratios[0],
        ratios[ROUNDS - 1],
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
