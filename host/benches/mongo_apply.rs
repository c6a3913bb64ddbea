//! MongoDB schema-change speed: 1,000 changesets applied by Lockstep (`lockstep db update`) and
//! the same 1,000 migrations applied by migrate-mongo, each to a fresh database of one SecantusDB
//! server. Needs `secantusd-py` (pip install --pre secantusdb) and npm.
//!
//! Run with `cargo bench --bench mongo_apply`; the README keeps the latest numbers.
//! The issue asks for the ratio to be reported; there is no target.

#[path = "../../tests/support/mongo.rs"]
#[allow(dead_code)]
mod mongo;

mod support;

use std::path::Path;
use std::process::Command;

use mongo::Secantus;
use support::{median, npm_tool, timed};

const CHANGESETS: usize = 1_000;

/// In groups of four: createCollection, createIndex, insertOne, runCommand (an update).
fn changelog() -> String {
    let mut out = String::from("databaseChangeLog:\n");
    for i in 0..CHANGESETS / 4 {
        out.push_str(&format!(
            "  - changeSet:\n      id: collection-{i}\n      author: bench\n      changes:\n        - createCollection:\n            collectionName: c{i}\n\
             \x20 - changeSet:\n      id: index-{i}\n      author: bench\n      changes:\n        - createIndex:\n            collectionName: c{i}\n            keys: '{{ email: 1 }}'\n            options: '{{ unique: true, name: \"ix_email\" }}'\n\
             \x20 - changeSet:\n      id: insert-{i}\n      author: bench\n      changes:\n        - insertOne:\n            collectionName: c{i}\n            document: '{{ _id: 1, email: \"r{i}@example.com\" }}'\n\
             \x20 - changeSet:\n      id: update-{i}\n      author: bench\n      changes:\n        - runCommand:\n            command: '{{ update: \"c{i}\", updates: [{{ q: {{ _id: 1 }}, u: {{ $set: {{ active: true }} }} }}] }}'\n"
        ));
    }
    out
}

/// The same work as migrate-mongo migrations, one file each, named so they sort in order.
fn migrations(dir: &Path) {
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    for i in 0..CHANGESETS / 4 {
        let bodies = [
            format!("await db.createCollection('c{i}');"),
            format!(
                "await db.collection('c{i}').createIndex({{ email: 1 }}, {{ unique: true, name: 'ix_email' }});"
            ),
            format!(
                "await db.collection('c{i}').insertOne({{ _id: 1, email: 'r{i}@example.com' }});"
            ),
            format!(
                "await db.collection('c{i}').updateOne({{ _id: 1 }}, {{ $set: {{ active: true }} }});"
            ),
        ];
        for (k, body) in bodies.iter().enumerate() {
            let name = format!("{:014}-m{i}-{k}.js", i * 4 + k);
            std::fs::write(
                dir.join("migrations").join(name),
                format!(
                    "module.exports = {{\n  async up(db) {{ {body} }},\n  async down() {{}}\n}};\n"
                ),
            )
            .unwrap();
        }
    }
}

fn main() {
    let server = Secantus::start();
    let work = tempfile::tempdir().unwrap();
    let migrate_mongo = npm_tool(
        "migrate-mongo",
        "migrate-mongo@11",
        "node_modules/.bin/migrate-mongo",
    );
    let changelog = changelog();

    let (mut ours, mut theirs) = (vec![], vec![]);
    for round in 0..3 {
        let lockstep_dir = work.path().join(format!("lockstep{round}"));
        std::fs::create_dir_all(lockstep_dir.join("db")).unwrap();
        std::fs::write(lockstep_dir.join("db/changelog.yaml"), &changelog).unwrap();
        std::fs::write(
            lockstep_dir.join("lockstep.yaml"),
            format!("connectors:\n  mongo: {{ type: MongoDB, uri: '{}/lockstep{round}' }}\ndbSchemas:\n  app: {{ changelog: db/changelog.yaml }}\ndbInstances:\n  main: {{ schema: app, connector: mongo }}\n", server.uri()),
        )
        .unwrap();
        ours.push(timed(
            Command::new(env!("CARGO_BIN_EXE_lockstep"))
                .args([
                    "db",
                    "update",
                    "--instance",
                    "main",
                    "--config",
                    "lockstep.yaml",
                ])
                .current_dir(&lockstep_dir),
        ));

        let migrate_dir = work.path().join(format!("migrate{round}"));
        migrations(&migrate_dir);
        std::fs::write(
            migrate_dir.join("migrate-mongo-config.js"),
            format!("module.exports = {{ mongodb: {{ url: '{}', databaseName: 'migrate{round}' }}, migrationsDir: 'migrations', changelogCollectionName: 'changelog', migrationFileExtension: '.js', useFileHash: false, moduleSystem: 'commonjs' }};\n", server.uri()),
        )
        .unwrap();
        theirs.push(timed(
            Command::new(&migrate_mongo)
                .arg("up")
                .current_dir(&migrate_dir),
        ));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "apply {CHANGESETS} changesets (createCollection, createIndex, insertOne, runCommand) to a fresh database of one SecantusDB server, median of 3:"
    );
    println!(
        "  lockstep db update   {:>8.0} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  migrate-mongo up     {:>8.0} ms",
        theirs.as_secs_f64() * 1e3
    );
    println!(
        "  ratio (migrate-mongo / Lockstep): {:.2}",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}
