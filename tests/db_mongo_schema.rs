//! MongoDB schema changes with liquibase-mongodb's changelog model, against a MongoDB-protocol
//! server (SecantusDB) through the real `mongodb` driver: the engine, the DB steps and `lockstep db`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use lockstep::exec::Cancel;
use lockstep::exec::status::Status;
use lockstep_changelog::engine::{Engine, EngineError, RollbackTarget, RunSettings};
use lockstep_changelog::model::Changelog;
use serde_json::json;
use support::mongo::{MongoSession, Secantus};
use support::*;

/// Every liquibase-mongodb change type, with the rollback forms they need.
const CHANGELOG: &str = r#"databaseChangeLog:
  - changeSet:
      id: 1
      author: alice
      changes:
        - createCollection:
            collectionName: people
  - changeSet:
      id: 2
      author: alice
      changes:
        - createIndex:
            collectionName: people
            keys: '{ email: 1 }'
            options: '{ unique: true, name: "ix_email" }'
  - changeSet:
      id: 3
      author: alice
      changes:
        - insertOne:
            collectionName: people
            document: |
              { _id: 1, name: "Ada", email: "ada@example.com" }
        - insertMany:
            collectionName: people
            documents: '[{ _id: 2, name: "Grace", email: "grace@example.com" }, { _id: 3, name: "Edsger", email: "edsger@example.com" }]'
      rollback:
        - runCommand:
            command: '{ delete: "people", deletes: [{ q: {}, limit: 0 }] }'
  - changeSet:
      id: 4
      author: bob
      changes:
        - tagDatabase:
            tag: people-loaded
  - changeSet:
      id: 5
      author: bob
      changes:
        - createCollection:
            collectionName: scratch
        - runCommand:
            command: '{ insert: "scratch", documents: [{ n: 1 }] }'
        - adminCommand:
            command: '{ ping: 1 }'
        - dropCollection:
            collectionName: scratch
      rollback: empty
"#;

fn load_changelog(text: &str) -> (tempfile::TempDir, Changelog) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db/changelog.yaml"), text).unwrap();
    let changelog = lockstep_changelog::load::load(
        dir.path(),
        "db/changelog.yaml",
        &BTreeMap::new(),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    (dir, changelog)
}

fn settings() -> RunSettings {
    RunSettings {
        holder: "test".into(),
        lock_wait: Duration::from_millis(300),
        ..RunSettings::default()
    }
}

fn update(session: &mut MongoSession, changelog: &Changelog) -> Result<Vec<String>, EngineError> {
    Engine::mongo(session.connection(), settings())
        .update(changelog, None, false)
        .map(|r| r.applied)
}

fn history(session: &mut MongoSession) -> Vec<serde_json::Value> {
    let mut rows = session.documents("DATABASECHANGELOG");
    rows.sort_by_key(|r| r["orderExecuted"].as_i64());
    rows
}

fn ids(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["author"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_change_type_applies_and_the_history_is_what_liquibase_mongodb_writes() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let (_dir, changelog) = load_changelog(CHANGELOG);

    let applied = update(&mut session, &changelog).unwrap();
    assert_eq!(applied.len(), 5, "{applied:?}");
    assert_eq!(
        session.collections(),
        ["DATABASECHANGELOG", "DATABASECHANGELOGLOCK", "people"],
        "scratch was created and dropped"
    );
    assert_eq!(session.documents("people").len(), 3);
    assert!(
        session
            .index_names("people")
            .contains(&"ix_email".to_string())
    );

    let rows = history(&mut session);
    assert_eq!(
        ids(&rows),
        ["alice:1", "alice:2", "alice:3", "bob:4", "bob:5"]
    );
    let first = &rows[0];
    assert_eq!(first["fileName"], "db/changelog.yaml");
    assert_eq!(first["execType"], "EXECUTED");
    assert_eq!(
        first["description"],
        "createCollection collectionName=people"
    );
    assert_eq!(first["liquibase"], "4.28.0");
    assert_eq!(first["orderExecuted"], 1, "an int32, counted from 1");
    assert!(
        first["dateExecuted"].get("$date").is_some(),
        "a BSON date: {}",
        first["dateExecuted"]
    );
    assert!(first["md5sum"].as_str().unwrap().starts_with("9:"));
    assert_eq!(
        rows[3]["tag"], "people-loaded",
        "tagDatabase tags its own row"
    );
    assert_eq!(
        rows[2]["description"],
        "insertOne collectionName=people; insertMany collectionName=people"
    );

    // The tracking collection is protected the way liquibase-mongodb protects it.
    assert!(
        session
            .index_names("DATABASECHANGELOG")
            .contains(&"ui_DATABASECHANGELOG".to_string())
    );
    let listed =
        session.command(json!({ "listCollections": 1, "filter": { "name": "DATABASECHANGELOG" } }));
    let schema = &listed["cursor"]["firstBatch"][0]["options"]["validator"]["$jsonSchema"];
    assert_eq!(
        schema["required"],
        json!(["id", "author", "fileName", "execType"]),
        "liquibase-mongodb's validator: {listed}"
    );
    let invalid = session.command(json!({ "insert": "DATABASECHANGELOG", "documents": [{ "fileName": "x", "author": "a", "id": "9", "execType": "BOGUS" }] }));
    assert!(
        invalid["writeErrors"][0]["code"] == 121,
        "the validator refuses an unknown execType: {invalid}"
    );
    let duplicate = json!({ "insert": "DATABASECHANGELOG", "documents": [{ "fileName": "db/changelog.yaml", "author": "alice", "id": "1", "execType": "EXECUTED" }] });
    let reply = session.command(duplicate);
    assert!(
        reply["writeErrors"][0]["code"] == 11000,
        "the unique index refuses a second row for one changeset: {reply}"
    );
    let lock = session.documents("DATABASECHANGELOGLOCK");
    assert_eq!(
        lock[0]["locked"], false,
        "released after the update: {lock:?}"
    );

    // Up to date: nothing pending, and a second update runs nothing.
    assert!(
        Engine::mongo(session.connection(), settings())
            .status(&changelog)
            .unwrap()
            .is_empty()
    );
    assert!(update(&mut session, &changelog).unwrap().is_empty());
}

#[test]
fn the_checksums_are_liquibase_mongodbs_and_an_edited_changeset_is_refused() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let golden = "databaseChangeLog:\n  - changeSet:\n      id: 1\n      author: it\n      changes:\n        - insertOne:\n            collectionName: results\n            document: '{ info: \"notExistsAnyDocumentInCollection1\" }'\n";
    let (_dir, changelog) = load_changelog(golden);
    update(&mut session, &changelog).unwrap();
    assert_eq!(
        history(&mut session)[0]["md5sum"],
        "9:af9b299cda217428f9d082b71472c7c2",
        "the vector of liquibase-mongodb's own IT"
    );

    let (_edited_dir, edited) = load_changelog(&golden.replace("notExists", "edited"));
    let error = update(&mut session, &edited).unwrap_err().to_string();
    assert!(
        error.contains(
            "db/changelog.yaml:3: changeset db/changelog.yaml::1::it was changed after it ran"
        ),
        "{error}"
    );
    assert_eq!(session.documents("results").len(), 1, "nothing was written");
}

#[test]
fn rollback_by_tag_and_by_count_run_the_inverses_newest_first() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let (_dir, changelog) = load_changelog(CHANGELOG);
    update(&mut session, &changelog).unwrap();

    // To the tag: undoes changeset 5 (empty rollback) and the tagDatabase changeset 4 itself.
    let report = Engine::mongo(session.connection(), settings())
        .rollback(&changelog, &RollbackTarget::Tag("people-loaded".into()))
        .unwrap();
    assert_eq!(
        report.rolled_back,
        ["db/changelog.yaml::5::bob", "db/changelog.yaml::4::bob"]
    );
    assert_eq!(
        ids(&history(&mut session)),
        ["alice:1", "alice:2", "alice:3"]
    );
    assert_eq!(session.documents("people").len(), 3);

    // By count: the explicit rollback of 3, then dropIndex (inverse of createIndex by keys).
    Engine::mongo(session.connection(), settings())
        .rollback(&changelog, &RollbackTarget::Count(2))
        .unwrap();
    assert_eq!(ids(&history(&mut session)), ["alice:1"]);
    assert!(session.documents("people").is_empty());
    assert!(
        !session
            .index_names("people")
            .contains(&"ix_email".to_string())
    );
    // And dropCollection, the inverse of createCollection.
    Engine::mongo(session.connection(), settings())
        .rollback(&changelog, &RollbackTarget::Count(1))
        .unwrap();
    assert_eq!(
        session.collections(),
        ["DATABASECHANGELOG", "DATABASECHANGELOGLOCK"]
    );
}

#[test]
fn a_change_without_an_automatic_rollback_is_refused_before_anything_is_undone() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let changelog = "databaseChangeLog:\n  - changeSet:\n      id: 1\n      author: a\n      changes:\n        - createCollection:\n            collectionName: c\n  - changeSet:\n      id: 2\n      author: a\n      changes:\n        - insertOne:\n            collectionName: c\n            document: '{ x: 1 }'\n";
    let (_dir, changelog) = load_changelog(changelog);
    update(&mut session, &changelog).unwrap();
    let error = Engine::mongo(session.connection(), settings())
        .rollback(&changelog, &RollbackTarget::Count(2))
        .unwrap_err()
        .to_string();
    assert!(error.contains("db/changelog.yaml:9: the rollback of changeset db/changelog.yaml::2::a: insertOne has no automatic rollback"), "{error}");
    assert_eq!(history(&mut session).len(), 2, "nothing was rolled back");
    assert_eq!(session.documents("c").len(), 1);
}

#[test]
fn mongo_preconditions_decide_between_run_mark_ran_continue_and_halt() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let changelog = r#"databaseChangeLog:
  - changeSet:
      id: seed
      author: a
      changes:
        - insertMany:
            collectionName: people
            documents: '[{ name: "Ada", admin: true }, { name: "Grace" }]'
      rollback: empty
  - changeSet:
      id: runs
      author: a
      preConditions:
        - collectionExists:
            collectionName: people
        - documentExists:
            collectionName: people
            filter: '{ admin: true }'
        - expectedDocumentCount:
            collectionName: people
            expectedCount: 2
      changes:
        - insertOne:
            collectionName: audit
            document: '{ event: "checked" }'
  - changeSet:
      id: marked
      author: a
      preConditions:
        - onFail: MARK_RAN
        - not:
            - collectionExists:
                collectionName: people
      changes:
        - insertOne:
            collectionName: audit
            document: '{ event: "never" }'
  - changeSet:
      id: skipped
      author: a
      preConditions:
        - onFail: CONTINUE
        - expectedDocumentCount:
            collectionName: people
            filter: '{ name: "Linus" }'
            expectedCount: 1
      changes:
        - insertOne:
            collectionName: audit
            document: '{ event: "never either" }'
  - changeSet:
      id: halts
      author: a
      preConditions:
        - documentExists:
            collectionName: nowhere
      changes:
        - insertOne:
            collectionName: audit
            document: '{ event: "halted" }'
"#;
    let (_dir, changelog) = load_changelog(changelog);
    let error = update(&mut session, &changelog).unwrap_err().to_string();
    assert!(
        error
            .contains("changeset db/changelog.yaml::halts::a failed: a precondition does not hold"),
        "{error}"
    );
    let rows = history(&mut session);
    assert_eq!(
        ids(&rows),
        ["a:seed", "a:runs", "a:marked"],
        "CONTINUE writes no row, so it is checked again next time"
    );
    assert_eq!(rows[2]["execType"], "MARK_RAN");
    let audit = session.documents("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["event"], "checked");
}

#[test]
fn a_failure_midway_keeps_what_ran_and_mark_next_changeset_run_records_the_failed_one() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let changelog = r#"databaseChangeLog:
  - changeSet:
      id: 1
      author: a
      changes:
        - createCollection:
            collectionName: people
  - changeSet:
      id: 2
      author: a
      changes:
        - insertMany:
            collectionName: people
            documents: '[{ _id: 1 }, { _id: 1 }]'
      rollback: empty
  - changeSet:
      id: 3
      author: a
      changes:
        - createCollection:
            collectionName: later
"#;
    let (_dir, changelog) = load_changelog(changelog);
    let error = Engine::mongo(session.connection(), settings())
        .update(&changelog, None, false)
        .unwrap_err();
    match &error {
        EngineError::ChangeSetFailed {
            changeset,
            applied,
            error,
        } => {
            assert_eq!(
                (changeset.as_str(), *applied),
                ("db/changelog.yaml::2::a", 1)
            );
            assert!(
                error.to_string().contains("11000"),
                "the server's duplicate-key error: {error}"
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        ids(&history(&mut session)),
        ["a:1"],
        "the failed changeset has no row"
    );
    assert!(
        !session.collections().contains(&"later".to_string()),
        "nothing after the failure ran"
    );
    assert_eq!(
        session.documents("DATABASECHANGELOGLOCK")[0]["locked"],
        false,
        "the lock is released after a failure"
    );

    // markNextChangeSetRun: the failing changeset is recorded as ran, so the next run goes on.
    Engine::mongo(session.connection(), settings())
        .update(&changelog, None, true)
        .unwrap_err();
    assert_eq!(ids(&history(&mut session)), ["a:1", "a:2"]);
    assert_eq!(
        update(&mut session, &changelog).unwrap(),
        ["db/changelog.yaml::3::a"]
    );
}

#[test]
fn invalid_changelogs_are_refused_before_the_first_write() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let changelog = "databaseChangeLog:\n  - changeSet:\n      id: 1\n      author: a\n      changes:\n        - createCollection:\n            collectionName: ok\n  - changeSet:\n      id: 2\n      author: a\n      changes:\n        - createTable:\n            tableName: t\n            columns:\n              - column: { name: id, type: int }\n  - changeSet:\n      id: 3\n      author: a\n      changes:\n        - insertOne:\n            collectionName: c\n            document: '{ broken: }'\n";
    let (_dir, changelog) = load_changelog(changelog);
    let error = update(&mut session, &changelog).unwrap_err().to_string();
    assert!(error.contains("db/changelog.yaml:9: changeset db/changelog.yaml::2::a: `createTable` is a SQL change; it cannot run on MongoDB"), "{error}");
    assert!(error.contains("db/changelog.yaml:17: changeset db/changelog.yaml::3::a: insertOne `document`: expected a value"), "{error}");
    assert!(
        session.collections().is_empty(),
        "nothing was written, not even the tracking collections: {:?}",
        session.collections()
    );
}

#[test]
fn the_lock_is_guarded_a_liquibase_holder_is_waited_for_and_release_locks_frees_it() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let (_dir, changelog) = load_changelog(CHANGELOG);
    session.command(json!({ "insert": "DATABASECHANGELOGLOCK", "documents": [{ "_id": 1, "locked": true, "lockGranted": { "$date": "2026-01-01T00:00:00Z" }, "lockedBy": "build-7 (10.0.0.7)" }] }));
    match update(&mut session, &changelog).unwrap_err() {
        EngineError::Locked { by, .. } => assert_eq!(by, "build-7 (10.0.0.7)"),
        other => panic!("{other}"),
    }
    assert!(!session.collections().contains(&"people".to_string()));
    Engine::mongo(session.connection(), settings())
        .release_locks()
        .unwrap();
    assert_eq!(update(&mut session, &changelog).unwrap().len(), 5);
}

#[test]
fn two_updates_racing_on_one_database_apply_each_changeset_once() {
    let server = Secantus::start();
    let (_dir, changelog) = load_changelog(CHANGELOG);
    let results: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
        let runners: Vec<_> = (0..2)
            .map(|runner| {
                let (server, changelog) = (&server, &changelog);
                scope.spawn(move || {
                    let mut session = MongoSession::open(server, "shop", true);
                    let settings = RunSettings {
                        holder: format!("runner {runner}"),
                        lock_wait: Duration::from_secs(30),
                        ..RunSettings::default()
                    };
                    Engine::mongo(session.connection(), settings)
                        .update(changelog, None, false)
                        .map(|r| r.applied)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        runners.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let applied: Vec<String> = results.into_iter().flat_map(|r| r.unwrap()).collect();
    assert_eq!(
        applied.len(),
        5,
        "each changeset applied by exactly one runner: {applied:?}"
    );
    let mut session = MongoSession::open(&server, "shop", true);
    assert_eq!(history(&mut session).len(), 5);
    assert_eq!(session.documents("people").len(), 3);
}

#[test]
fn a_json_changelog_with_raw_json_values_applies() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", true);
    let dir = tempfile::tempdir().unwrap();
    let json_changelog = r#"{"databaseChangeLog": [
  {"changeSet": {"id": "1", "author": "a", "changes": [
    {"createCollection": {"collectionName": "towns", "options": {"$rawJson": {"validator": {"$jsonSchema": {"bsonType": "object", "required": ["name"]}}}}}},
    {"insertOne": {"collectionName": "towns", "document": {"$rawJson": {"name": "Delft", "since": {"$date": "1246-04-01T00:00:00Z"}}}}}
  ]}}
]}"#;
    std::fs::write(dir.path().join("changelog.json"), json_changelog).unwrap();
    let changelog = lockstep_changelog::load::load(
        dir.path(),
        "changelog.json",
        &BTreeMap::new(),
        &Default::default(),
    )
    .unwrap();
    Engine::mongo(session.connection(), settings())
        .update(&changelog, None, false)
        .unwrap();
    let towns = session.documents("towns");
    assert_eq!(towns[0]["name"], "Delft");
}

#[test]
fn admin_commands_need_the_instance_to_allow_them() {
    let server = Secantus::start();
    let mut session = MongoSession::open(&server, "shop", false);
    let (_dir, changelog) = load_changelog(CHANGELOG);
    let error = update(&mut session, &changelog).unwrap_err().to_string();
    assert!(error.contains("changeset db/changelog.yaml::5::bob failed: access denied: admin commands are off for this db instance; set `adminCommands: true`"), "{error}");
    assert_eq!(
        history(&mut session).len(),
        4,
        "the changesets before it stay applied"
    );
}

// The DB steps in a pipeline, and `lockstep db`, on a MongoDB instance.

fn project_config(server: &Secantus, admin_commands: bool) -> String {
    format!(
        "connectors:\n  mongo: {{ type: MongoDB, uri: '{}/shop' }}\ndbSchemas:\n  orders: {{ changelog: db/changelog.yaml }}\ndbInstances:\n  main: {{ schema: orders, connector: mongo, adminCommands: {admin_commands} }}\n",
        server.uri()
    )
}

fn db_step(kind: &str, id: &str, spec: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: {kind}\n    name: {id}\n    identifier: {id}\n    spec:\n      connectorRef: account.harnessImage\n      dbSchema: orders\n      dbInstance: main\n{}{}",
        indent(spec, 6),
        indent(extra, 2)
    )
}

#[test]
fn the_db_steps_apply_tag_and_roll_back_a_mongodb_schema() {
    let server = Secantus::start();
    let steps = db_step("DBSchemaApply", "apply", "tag: v1\n", "")
        + &db_step(
            "DBSchemaRollback",
            "undo",
            "tag: <+steps.apply.output.preStartTag>\n",
            "",
        );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = runtime.block_on(run_with_files(
        &pipeline_with_steps(&steps),
        &project_config(&server, true),
        &[],
        Cancel::default(),
        &[("db/changelog.yaml", CHANGELOG)],
    ));
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert_eq!(ran.output("apply", "changeSetsApplied"), "5");
    assert!(
        ran.output("apply", "preStartTag").starts_with("pre_apply_"),
        "a fresh database gets a generated pre-start tag"
    );
    assert_eq!(
        ran.status("undo"),
        Status::Success,
        "{:?}",
        ran.node("undo").error
    );
    assert_eq!(ran.output("undo", "changeSetsRolledBack"), "5");

    let mut session = MongoSession::open(&server, "shop", false);
    let rows = history(&mut session);
    assert_eq!(
        rows.len(),
        1,
        "only the synthetic pre-start row is left: {rows:?}"
    );
    assert_eq!(rows[0]["fileName"], "liquibase-internal");
    assert_eq!(
        session.collections(),
        ["DATABASECHANGELOG", "DATABASECHANGELOGLOCK"]
    );
}

#[test]
fn lockstep_db_works_on_a_mongodb_instance_and_refuses_sql_previews() {
    let server = Secantus::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db/changelog.yaml"), CHANGELOG).unwrap();
    std::fs::write(
        dir.path().join("lockstep.yaml"),
        project_config(&server, true),
    )
    .unwrap();
    let lockstep_db = |args: &[&str]| support::db::lockstep_db(dir.path(), args);
    let (code, out, err) = lockstep_db(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("db/changelog.yaml::5::bob"), "{out}");
    let (code, _, err) = lockstep_db(&["update-sql"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a MongoDB changelog has none"), "{err}");
    let (code, _, err) = lockstep_db(&["update"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = lockstep_db(&["history"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("db/changelog.yaml"))
            .count(),
        5,
        "{out}"
    );
    let (code, _, err) = lockstep_db(&["rollback", "--count", "1"]);
    assert_eq!(code, 0, "{err}");
    let mut session = MongoSession::open(&server, "shop", false);
    assert_eq!(history(&mut session).len(), 4);
}

fn mongo_project(server: &Secantus, changelog: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db/changelog.yaml"), changelog).unwrap();
    std::fs::write(
        dir.path().join("lockstep.yaml"),
        project_config(server, true),
    )
    .unwrap();
    dir
}

#[test]
fn killed_twenty_times_during_a_long_apply_nothing_is_applied_twice_and_no_lock_is_left() {
    let server = Secantus::start();
    let mut changelog = String::from("databaseChangeLog:\n");
    for i in 0..5_001 {
        changelog.push_str(&format!("  - changeSet:\n      id: {i}\n      author: killer\n      changes:\n        - insertOne: {{ collectionName: items, document: '{{ n: {i} }}' }}\n"));
    }
    let dir = mongo_project(&server, &changelog);
    let lease = ["--lock-lease", "1s"];
    for kill in 0..20u64 {
        let mut runner =
            support::db::spawn_lockstep_db(dir.path(), &[&["update"][..], &lease].concat());
        // Somewhere between starting up and well into the changesets.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        std::thread::sleep(Duration::from_millis(
            300 + (nanos ^ kill.wrapping_mul(0x9e37_79b9)) % 1_500,
        ));
        runner.kill().unwrap(); // SIGKILL
        runner.wait().unwrap();
    }
    let (code, _, err) = support::db::lockstep_db(dir.path(), &["update", lease[0], lease[1]]);
    assert_eq!(
        code, 0,
        "the run after the kills needs no manual unlock: {err}"
    );
    let mut session = MongoSession::open(&server, "shop", false);
    let mut seen: Vec<i64> = session
        .documents("items")
        .iter()
        .map(|d| d["n"].as_i64().unwrap())
        .collect();
    let applied = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        (applied, seen.len()),
        (5_001, 5_001),
        "every insert applied exactly once"
    );
    assert_eq!(history(&mut session).len(), 5_001);
    let lock = session.documents("DATABASECHANGELOGLOCK");
    assert_eq!(lock[0]["locked"], json!(false), "{lock:?}");
    assert!(lock[0].get("changeSetInProgress").is_none(), "{lock:?}");
}

#[test]
fn without_transactions_a_changeset_a_dead_runner_left_midway_is_reported_not_run_again() {
    let server = Secantus::start_standalone();
    let dir = mongo_project(&server, CHANGELOG);
    let mut session = MongoSession::open(&server, "shop", false);
    // A runner died while applying changeset 1 (outside a transaction), long enough ago that
    // its lease ran out.
    session.command(json!({ "insert": "DATABASECHANGELOGLOCK", "documents": [{ "_id": 1, "locked": true, "lockGranted": { "$date": "2026-01-01T00:00:00Z" }, "lockedBy": "lockstep ci-7 pid 4242 (lockstep db)", "changeSetInProgress": { "fileName": "db/changelog.yaml", "id": "1", "author": "alice", "rollback": false, "since": { "$date": "2026-01-01T00:00:00Z" } } }] }));
    let (code, _, err) = support::db::lockstep_db(dir.path(), &["update"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("changeset db/changelog.yaml::1::alice may be half-applied")
            && err.contains("it is not run again by itself"),
        "{err}"
    );
    assert!(
        session.collections().iter().all(|c| c != "people"),
        "nothing ran"
    );
    let lock = session.documents("DATABASECHANGELOGLOCK");
    assert_eq!(
        lock[0]["locked"],
        json!(false),
        "the lock is given back: {lock:?}"
    );
    let (code, _, err) = support::db::lockstep_db(dir.path(), &["release-locks"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = support::db::lockstep_db(dir.path(), &["update"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("5 changeset(s) applied"), "{out}");
    assert_eq!(session.documents("people").len(), 3);
}

#[test]
fn a_lock_whose_lease_ran_out_is_taken_over_and_the_run_says_so() {
    let server = Secantus::start();
    let dir = mongo_project(&server, CHANGELOG);
    let mut session = MongoSession::open(&server, "shop", false);
    session.command(json!({ "insert": "DATABASECHANGELOGLOCK", "documents": [{ "_id": 1, "locked": true, "lockGranted": { "$date": "2026-01-01T00:00:00Z" }, "lockedBy": "lockstep ci-7 pid 4242 (lockstep db)" }] }));
    let (code, _, err) = support::db::lockstep_db(dir.path(), &["update"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "took over a stale changelog lock left by lockstep ci-7 pid 4242 (lockstep db)"
        ) && err.contains("its lease ran out"),
        "{err}"
    );
    assert_eq!(session.documents("people").len(), 3);
}
