//! The changelog engine against real databases: PostgreSQL at 127.0.0.1:5432 (each test creates
//! and drops its own database) and SQLite files, through the same drivers the DB steps use.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use lockstep_changelog::db::{Sql, Value};
use lockstep_changelog::engine::{Engine, EngineError, RollbackTarget, RunSettings};
use lockstep_changelog::formatted_sql;
use lockstep_changelog::model::{ChangeSet, Changelog};
use support::db::TestDb;

fn changelog(source: &str) -> Changelog {
    formatted_sql::parse(
        "db/changelog.sql",
        source,
        &mut lockstep_changelog::properties::FileProperties::only(&BTreeMap::new()),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

const THREE: &str = "--liquibase formatted sql
--changeset alice:1
create table t1 (id int primary key, name text);
--rollback drop table t1;
--changeset alice:2
alter table t1 add column x int;
--rollback alter table t1 drop column x;
--changeset bob:3
insert into t1 (id, name) values (1, 'one');
--rollback delete from t1 where id = 1;
";

fn settings() -> RunSettings {
    RunSettings {
        holder: "test".into(),
        lock_wait: Duration::from_millis(500),
        ..RunSettings::default()
    }
}

fn update(db: &TestDb, log: &Changelog) -> Result<Vec<String>, EngineError> {
    let mut session = db.session();
    Engine::sql(&mut session, settings())
        .update(log, None, false)
        .map(|r| r.applied)
}

#[test]
fn update_applies_pending_changesets_once_with_liquibase_rows() {
    for db in TestDb::all() {
        let log = changelog(THREE);
        assert_eq!(update(&db, &log).unwrap().len(), 3, "{}", db.name());
        assert_eq!(
            update(&db, &log).unwrap().len(),
            0,
            "a second update has nothing to do ({})",
            db.name()
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM t1"), 1);
        let rows = db.session().query("SELECT ID, AUTHOR, FILENAME, ORDEREXECUTED, EXECTYPE, MD5SUM, DESCRIPTION, COMMENTS, TAG, LIQUIBASE, CONTEXTS, LABELS, DEPLOYMENT_ID FROM DATABASECHANGELOG ORDER BY ORDEREXECUTED", &[]).unwrap().rows;
        assert_eq!(rows.len(), 3);
        let first = &rows[0];
        assert_eq!(
            first[..8],
            [
                Value::from("1"),
                Value::from("alice"),
                Value::from("db/changelog.sql"),
                Value::Integer(1),
                Value::from("EXECUTED"),
                Value::from("9:71e9465eb9023b52374c5c6ee43c39e0"),
                Value::from("sql"),
                Value::from("")
            ],
            "{}",
            db.name()
        );
        assert_eq!(
            first[8..12],
            [Value::Null, Value::from("4.28.0"), Value::Null, Value::Null]
        );
        assert_eq!(
            first[12].as_text().unwrap().len(),
            10,
            "DEPLOYMENT_ID is 10 digits"
        );
        assert_eq!(rows[2][3], Value::Integer(3));
    }
}

#[test]
fn the_tracking_tables_have_liquibases_shape_on_postgresql() {
    let db = TestDb::postgres();
    update(&db, &changelog(THREE)).unwrap();
    let columns = db.session().query("SELECT column_name::text || ' ' || data_type::text || coalesce('(' || character_maximum_length::text || ')', '') || ' ' || is_nullable::text FROM information_schema.columns WHERE table_name = 'databasechangelog' ORDER BY ordinal_position", &[]).unwrap();
    let columns: Vec<String> = columns
        .rows
        .iter()
        .map(|r| r[0].as_text().unwrap().to_string())
        .collect();
    assert_eq!(
        columns,
        [
            "id character varying(255) NO",
            "author character varying(255) NO",
            "filename character varying(255) NO",
            "dateexecuted timestamp without time zone NO",
            "orderexecuted integer NO",
            "exectype character varying(10) NO",
            "md5sum character varying(35) YES",
            "description character varying(255) YES",
            "comments character varying(255) YES",
            "tag character varying(255) YES",
            "liquibase character varying(20) YES",
            "contexts character varying(255) YES",
            "labels character varying(255) YES",
            "deployment_id character varying(10) YES",
        ]
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM information_schema.table_constraints WHERE table_name = 'databasechangelog' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"), 0, "no primary key");
    let lock = db
        .session()
        .query(
            "SELECT ID, LOCKED, LOCKEDBY FROM DATABASECHANGELOGLOCK",
            &[],
        )
        .unwrap()
        .rows;
    assert_eq!(
        lock,
        [vec![Value::Integer(1), Value::Boolean(false), Value::Null]],
        "released after the update"
    );
}

/// Its second changeset creates a table, then fails.
const FAILS_IN_ITS_SECOND_CHANGESET: &str = "--liquibase formatted sql\n--changeset a:1\ncreate table good (id int);\n--changeset a:2\ncreate table half (id int);\ninsert into nowhere values (1);\n--changeset a:3\ncreate table never (id int);\n";

#[test]
fn a_failing_changeset_leaves_no_row_and_no_ddl_and_earlier_ones_stay() {
    // MySQL cannot undo DDL: see the MariaDB test below.
    for db in [TestDb::postgres(), TestDb::sqlite()] {
        let log = changelog(FAILS_IN_ITS_SECOND_CHANGESET);
        let error = update(&db, &log).unwrap_err();
        assert!(
            matches!(&error, EngineError::ChangeSetFailed { changeset, applied: 1, .. } if changeset == "db/changelog.sql::2::a"),
            "{error}"
        );
        assert_eq!(
            db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"),
            1,
            "{}",
            db.name()
        );
        let tables = match db {
            TestDb::Postgres { .. } => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ('good', 'half', 'never')"
            }
            _ => "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('good', 'half', 'never')",
        };
        assert_eq!(db.count(tables), 1, "only `good` exists ({})", db.name());
    }
}

#[test]
fn when_the_history_row_cannot_be_written_the_changeset_does_not_commit() {
    let db = TestDb::postgres();
    update(
        &db,
        &changelog("--liquibase formatted sql\n--changeset a:1\ncreate table first (id int);\n"),
    )
    .unwrap();
    db.session()
        .batch("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no more rows'; END $$; CREATE TRIGGER refuse BEFORE INSERT ON databasechangelog FOR EACH ROW EXECUTE FUNCTION refuse()")
        .unwrap();
    let log = changelog(
        "--liquibase formatted sql\n--changeset a:1\ncreate table first (id int);\n--changeset a:2\ncreate table second (id int);\ninsert into first values (1);\n",
    );
    let error = update(&db, &log).unwrap_err();
    assert!(error.to_string().contains("no more rows"), "{error}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'second'"),
        0
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM first"), 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"), 1);
    // With the trigger gone, changeset 2 applies whole.
    db.session()
        .batch("DROP TRIGGER refuse ON databasechangelog")
        .unwrap();
    assert_eq!(update(&db, &log).unwrap(), ["db/changelog.sql::2::a"]);
}

#[test]
fn on_mariadb_a_changeset_that_failed_after_its_ddl_is_reported_and_not_run_again() {
    let db = TestDb::mariadb();
    let log = changelog(FAILS_IN_ITS_SECOND_CHANGESET);
    let error = update(&db, &log).unwrap_err();
    assert!(
        matches!(&error, EngineError::ChangeSetFailed { changeset, applied: 1, .. } if changeset == "db/changelog.sql::2::a"),
        "{error}"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"), 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ('good', 'half', 'never')"),
        2,
        "MySQL committed `create table half` by itself"
    );
    let again = update(&db, &log).unwrap_err().to_string();
    assert!(
        again.contains("changeset db/changelog.sql::2::a may be half-applied"),
        "{again}"
    );
    // A changeset whose first statement fails changed nothing, and is simply run again.
    let db = TestDb::mariadb();
    let log =
        changelog("--liquibase formatted sql\n--changeset a:1\ncreate table nowhere.t (id int);\n");
    update(&db, &log).unwrap_err();
    let again = update(&db, &log).unwrap_err().to_string();
    assert!(!again.contains("half-applied"), "{again}");
}

#[test]
fn mark_failed_as_ran_records_the_failed_changeset() {
    let db = TestDb::postgres();
    let log = changelog(
        "--liquibase formatted sql\n--changeset a:1\nselect 1;\n--changeset a:2\ninsert into nowhere values (1);\n--changeset a:3\nselect 3;\n",
    );
    let mut session = db.session();
    let error = Engine::sql(&mut session, settings())
        .update(&log, None, true)
        .unwrap_err();
    assert!(matches!(error, EngineError::ChangeSetFailed { .. }));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM DATABASECHANGELOG WHERE ID = '2' AND EXECTYPE = 'EXECUTED'"),
        1
    );
    assert_eq!(
        update(&db, &log).unwrap(),
        ["db/changelog.sql::3::a"],
        "the next update goes past it"
    );
}

#[test]
fn rollback_by_count_and_by_tag() {
    for db in TestDb::all() {
        let log = changelog(THREE);
        update(&db, &log).unwrap();
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        assert_eq!(
            engine
                .rollback(&log, &RollbackTarget::Count(1))
                .unwrap()
                .rolled_back,
            ["db/changelog.sql::3::bob"]
        );
        engine.tag("v1").unwrap();
        drop(engine);
        assert_eq!(db.count("SELECT COUNT(*) FROM t1"), 0);
        update(&db, &log).unwrap();
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        assert_eq!(
            engine
                .rollback(&log, &RollbackTarget::Tag("v1".into()))
                .unwrap()
                .rolled_back,
            ["db/changelog.sql::3::bob"]
        );
        let error = engine
            .rollback(&log, &RollbackTarget::Tag("nope".into()))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("tag `nope` is not in DATABASECHANGELOG (tags there: v1)"),
            "{error}"
        );
        assert_eq!(
            engine
                .rollback(&log, &RollbackTarget::Count(10))
                .unwrap()
                .rolled_back
                .len(),
            2,
            "{}",
            db.name()
        );
        drop(engine);
        assert_eq!(db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"), 0);
    }
}

#[test]
fn a_rollback_that_cannot_be_done_is_refused_before_any_write() {
    let db = TestDb::postgres();
    let log = changelog(
        "--liquibase formatted sql\n--changeset a:1\ncreate table a (id int);\n--rollback drop table a;\n--changeset a:2\ncreate table b (id int);\n",
    );
    update(&db, &log).unwrap();
    let mut session = db.session();
    let error = Engine::sql(&mut session, settings())
        .rollback(&log, &RollbackTarget::Count(2))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("db/changelog.sql:5: changeset db/changelog.sql::2::a has no rollback"),
        "{error}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"),
        2,
        "nothing was rolled back"
    );
}

#[test]
fn a_changed_changeset_is_refused_before_any_write_unless_accepted() {
    for db in TestDb::all() {
        update(&db, &changelog(THREE)).unwrap();
        let edited = format!(
            "{}--changeset bob:4\nselect 4;\n",
            THREE.replace("add column x int", "add column x bigint")
        );
        let error = update(&db, &changelog(&edited)).unwrap_err();
        assert!(error.to_string().contains("changeset db/changelog.sql::2::alice was changed after it ran: its checksum was 9:661738456b595edcd9f303ca0bc59b50"), "{error}");
        assert_eq!(
            db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"),
            3,
            "changeset 4 did not run ({})",
            db.name()
        );

        let accepted = edited.replace(
            "--changeset alice:2\n",
            "--changeset alice:2\n--validCheckSum: ANY\n",
        );
        assert_eq!(
            update(&db, &changelog(&accepted)).unwrap(),
            ["db/changelog.sql::4::bob"]
        );
        let rerun = edited
            .replace(
                "--changeset alice:2",
                "--changeset alice:2 runOnChange:true",
            )
            .replace("add column x bigint", "add column y int");
        assert_eq!(
            update(&db, &changelog(&rerun)).unwrap(),
            ["db/changelog.sql::2::alice"]
        );
        assert_eq!(
            db.scalar("SELECT EXECTYPE FROM DATABASECHANGELOG WHERE ID = '2'"),
            Value::from("RERAN")
        );
    }
}

#[test]
fn when_a_changeset_has_two_history_rows_the_later_one_decides_its_status() {
    for db in TestDb::all() {
        let log = changelog(THREE);
        update(&db, &log).unwrap();
        let mut session = db.session();
        session
            .batch("UPDATE DATABASECHANGELOG SET DATEEXECUTED = '2026-01-02 00:00:00'")
            .unwrap();
        let copy_of_changeset_1 = |date: &str| {
            format!(
                "INSERT INTO DATABASECHANGELOG (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, EXECTYPE, MD5SUM) VALUES ('1', 'alice', 'db/changelog.sql', '{date}', 0, 'EXECUTED', '9:00000000000000000000000000000000')"
            )
        };
        // Written last, but it ran first: the row after it, with the right checksum, counts.
        session
            .batch(&copy_of_changeset_1("2026-01-01 00:00:00"))
            .unwrap();
        let status = Engine::sql(&mut session, settings()).status(&log);
        assert_eq!(status.unwrap(), Vec::<&ChangeSet>::new(), "{}", db.name());
        // Ran after the right one: its other checksum counts.
        session
            .batch("DELETE FROM DATABASECHANGELOG WHERE ORDEREXECUTED = 0")
            .unwrap();
        session
            .batch(&copy_of_changeset_1("2026-01-03 00:00:00"))
            .unwrap();
        let error = Engine::sql(&mut session, settings())
            .status(&log)
            .unwrap_err();
        assert!(
            error.to_string().contains("changeset db/changelog.sql::1::alice was changed after it ran: its checksum was 9:00000000000000000000000000000000"),
            "{}: {error}",
            db.name()
        );
    }
}

#[test]
fn a_stale_lock_left_by_a_dead_runner_is_taken_over_and_liquibases_is_waited_for() {
    for db in TestDb::all() {
        let log = changelog(THREE);
        update(
            &db,
            &changelog("--liquibase formatted sql\n--changeset a:0\nselect 0;\n"),
        )
        .unwrap();
        db.session().execute("UPDATE DATABASECHANGELOGLOCK SET LOCKED = TRUE, LOCKEDBY = 'lockstep killed-runner', LOCKGRANTED = CURRENT_TIMESTAMP", &[]).unwrap();
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        assert_eq!(
            engine.update(&log, None, false).unwrap().applied.len(),
            3,
            "{}",
            db.name()
        );
        assert!(
            engine
                .notes
                .iter()
                .any(|n| n
                    .contains("took over a stale changelog lock left by lockstep killed-runner")),
            "{:?}",
            engine.notes
        );
        drop(engine);

        db.session().execute("UPDATE DATABASECHANGELOGLOCK SET LOCKED = TRUE, LOCKEDBY = 'ci-host (10.0.0.7)', LOCKGRANTED = CURRENT_TIMESTAMP", &[]).unwrap();
        let more = changelog(&format!("{THREE}--changeset bob:4\nselect 4;\n"));
        let error = update(&db, &more).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "could not acquire the changelog lock: it is held by ci-host (10.0.0.7) since"
            ),
            "{error}"
        );
        let mut session = db.session();
        Engine::sql(&mut session, settings())
            .release_locks()
            .unwrap();
        assert_eq!(update(&db, &more).unwrap().len(), 1);
    }
}

/// On PostgreSQL the lock row is locked in a transaction held open on a second session, never
/// committed: if the runner dies the server undoes it, so Liquibase is never left blocked.
#[test]
fn the_postgres_lock_row_is_held_in_an_open_transaction_never_committed_locked() {
    let db = TestDb::postgres();
    let log = changelog(
        "--liquibase formatted sql\n--changeset a:probe\n--preconditions onFail:HALT\n--precondition-sql-check expectedResult:false select cast(locked as text) from databasechangeloglock\nselect 1;\n",
    );
    assert_eq!(update(&db, &log).unwrap(), ["db/changelog.sql::probe::a"]);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"),
        Value::Integer(0),
        "the held session ends with the run"
    );
}

#[test]
fn two_racing_updates_apply_each_changeset_once() {
    for db in TestDb::all() {
        let mut source = String::from("--liquibase formatted sql\n");
        for i in 0..30 {
            source.push_str(&format!(
                "--changeset racer:{i}\ncreate table r{i} (id int);\n"
            ));
        }
        let log = changelog(&source);
        let results: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut session = db.session();
                        let settings = RunSettings {
                            lock_wait: Duration::from_secs(60),
                            ..settings()
                        };
                        Engine::sql(&mut session, settings)
                            .update(&log, None, false)
                            .map(|r| r.applied)
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let applied: usize = results.iter().map(|r| r.as_ref().unwrap().len()).sum();
        assert_eq!(applied, 30, "{results:?} ({})", db.name());
        assert_eq!(db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"), 30);
    }
}

#[test]
fn pre_start_tag_on_a_fresh_and_on_a_tagged_database() {
    for db in TestDb::all() {
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        assert_eq!(engine.pre_start_tag("pre_1").unwrap(), "pre_1");
        drop(engine);
        assert_eq!(
            db.scalar("SELECT FILENAME FROM DATABASECHANGELOG"),
            Value::from("liquibase-internal"),
            "a synthetic row on a fresh database"
        );
        let log = changelog(THREE);
        update(&db, &log).unwrap();
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        engine.tag("v1").unwrap();
        assert_eq!(
            engine.pre_start_tag("pre_2").unwrap(),
            "v1",
            "the newest row's tag is reused"
        );
        // Rolling back to the fresh database's pre-start tag undoes everything and keeps that row.
        assert_eq!(
            engine
                .rollback(&log, &RollbackTarget::Tag("pre_1".into()))
                .unwrap()
                .rolled_back
                .len(),
            3
        );
        drop(engine);
        assert_eq!(
            db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"),
            1,
            "{}",
            db.name()
        );
    }
}

#[test]
fn tag_after_apply_follows_tag_database_changeset() {
    let db = TestDb::postgres();
    let log = changelog(THREE);
    let mut session = db.session();
    let mut engine = Engine::sql(&mut session, settings());
    let applied = engine.update(&log, None, false).unwrap().applied.len();
    engine.tag_after_apply("v1", applied, false).unwrap();
    engine.tag_after_apply("v2", 0, false).unwrap();
    engine.tag_after_apply("v1", 0, true).unwrap();
    engine.tag_after_apply("v3", 0, true).unwrap();
    drop(engine);
    let tags = db.session().query("SELECT ID, AUTHOR, FILENAME, TAG FROM DATABASECHANGELOG WHERE TAG IS NOT NULL ORDER BY ORDEREXECUTED", &[]).unwrap().rows;
    assert_eq!(
        tags,
        [
            vec![
                Value::from("3"),
                Value::from("bob"),
                Value::from("db/changelog.sql"),
                Value::from("v1")
            ],
            vec![
                Value::from("harness_v3"),
                Value::from("harness"),
                Value::from("liquibase-internal"),
                Value::from("v3")
            ],
        ]
    );
}

/// A YAML or XML changelog loaded as a root changelog from a temporary directory.
fn load_changelog(name: &str, source: &str) -> Changelog {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), source).unwrap();
    lockstep_changelog::load::load(dir.path(), name, &BTreeMap::new(), &Default::default())
        .unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn preconditions_of_every_kind_decide_with_their_on_fail_action() {
    for db in TestDb::all() {
        let setup = changelog(
            "--liquibase formatted sql\n--changeset s:1\ncreate table base (id int, name text);\ncreate index ix_base_name on base(name);\ninsert into base values (1, 'x');\ncreate view base_view as select id from base;\n",
        );
        update(&db, &setup).unwrap();
        let check = |id: &str, precondition: &str, on_fail: &str| {
            format!(
                "  - changeSet:\n      id: {id}\n      author: p\n      preConditions:\n        - onFail: {on_fail}\n{}      changes:\n        - sql: create table ran_{id} (id int)\n",
                precondition
                    .lines()
                    .map(|l| format!("        {l}\n"))
                    .collect::<String>()
            )
        };
        let log = format!(
            "databaseChangeLog:\n{}{}{}{}{}{}{}{}{}{}{}{}",
            check("table", "- tableExists: {tableName: base}", "HALT"),
            check(
                "column",
                "- columnExists: {tableName: base, columnName: name}",
                "HALT"
            ),
            check("view", "- viewExists: {viewName: base_view}", "HALT"),
            check("index", "- indexExists: {indexName: ix_base_name}", "HALT"),
            check(
                "rows",
                "- rowCount: {tableName: base, expectedRows: 1}",
                "HALT"
            ),
            check(
                "sqlcheck",
                "- sqlCheck: {expectedResult: 1, sql: select count(*) from base}",
                "HALT"
            ),
            check(
                "executed",
                "- changeSetExecuted: {id: '1', author: s, changeLogFile: db/changelog.sql}",
                "HALT"
            ),
            check(
                "dbms",
                "- dbms: {type: 'postgresql, sqlite, mariadb'}",
                "HALT"
            ),
            check(
                "nested",
                "- not:\n    - or:\n        - tableIsEmpty: {tableName: base}\n        - tableExists: {tableName: nowhere}",
                "HALT"
            ),
            check("skipped", "- tableExists: {tableName: nowhere}", "CONTINUE"),
            check("marked", "- tableExists: {tableName: nowhere}", "MARK_RAN"),
            check("warned", "- tableExists: {tableName: nowhere}", "WARN"),
        );
        let log = load_changelog("preconditions.yaml", &log);
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        let applied = engine
            .update(&log, None, false)
            .unwrap_or_else(|e| panic!("{e} ({})", db.name()))
            .applied;
        assert!(
            engine
                .notes
                .iter()
                .any(|n| n.contains("warned") && n.contains("WARN")),
            "{:?}",
            engine.notes
        );
        drop(engine);
        assert_eq!(
            applied.len(),
            11,
            "all but the CONTINUE one are recorded ({})",
            db.name()
        );
        let exec_type = |id: &str| {
            db.scalar(&format!(
                "SELECT EXECTYPE FROM DATABASECHANGELOG WHERE ID = '{id}'"
            ))
        };
        assert_eq!(exec_type("marked"), Value::from("MARK_RAN"));
        assert_eq!(
            exec_type("skipped"),
            Value::Null,
            "CONTINUE writes no row, so it is checked again next time"
        );
        for ran in [
            "table", "column", "view", "index", "rows", "sqlcheck", "executed", "dbms", "nested",
            "warned",
        ] {
            assert_eq!(
                exec_type(ran),
                Value::from("EXECUTED"),
                "{ran} ({})",
                db.name()
            );
        }

        let halting = load_changelog(
            "halt.xml",
            "<databaseChangeLog><changeSet id=\"h\" author=\"p\"><preConditions onFail=\"HALT\"><not><tableExists tableName=\"base\"/></not></preConditions><sql>select 1</sql></changeSet></databaseChangeLog>",
        );
        let error = update(&db, &halting).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("changeset halt.xml::h::p failed: a precondition does not hold"),
            "{error}"
        );
    }
}

#[test]
fn a_stored_v8_checksum_is_validated_with_v8_and_upgraded_to_v9() {
    for db in TestDb::all() {
        let log = changelog(THREE);
        update(&db, &log).unwrap();
        // As Liquibase 3.5–4.21 would have stored it (the V8 golden vector of this body).
        db.session().execute("UPDATE DATABASECHANGELOG SET MD5SUM = '8:ef379d7efb5971401937506695f21c22' WHERE ID = '2'", &[]).unwrap();
        db.session()
            .execute(
                "UPDATE DATABASECHANGELOG SET MD5SUM = NULL WHERE ID = '3'",
                &[],
            )
            .unwrap();
        let more = changelog(&format!("{THREE}--changeset bob:4\nselect 4;\n"));
        let mut session = db.session();
        let mut engine = Engine::sql(&mut session, settings());
        assert_eq!(
            engine.update(&more, None, false).unwrap().applied,
            ["db/changelog.sql::4::bob"]
        );
        assert!(engine.notes.iter().any(|n| n.contains("upgraded the checksum of db/changelog.sql::2::alice from 8:ef379d7efb5971401937506695f21c22 to 9:661738456b595edcd9f303ca0bc59b50")), "{:?}", engine.notes);
        drop(engine);
        assert_eq!(
            db.scalar("SELECT MD5SUM FROM DATABASECHANGELOG WHERE ID = '2'"),
            Value::from("9:661738456b595edcd9f303ca0bc59b50")
        );
        assert!(
            db.scalar("SELECT MD5SUM FROM DATABASECHANGELOG WHERE ID = '3'")
                .as_text()
                .unwrap()
                .starts_with("9:"),
            "a NULL checksum is filled in ({})",
            db.name()
        );

        db.session().execute("UPDATE DATABASECHANGELOG SET MD5SUM = '8:00000000000000000000000000000000' WHERE ID = '2'", &[]).unwrap();
        let error = update(&db, &more).unwrap_err();
        assert!(error.to_string().contains("changeset db/changelog.sql::2::alice was changed after it ran: its checksum was 8:00000000000000000000000000000000"), "{error}");
    }
}

#[test]
fn changeset_attributes_behave_as_in_liquibase() {
    for db in TestDb::all() {
        let other_dbms = match db {
            TestDb::Postgres { .. } | TestDb::Mariadb { .. } => "sqlite",
            TestDb::Sqlite { .. } => "postgresql",
        };
        let source = format!(
            "--liquibase formatted sql
--changeset a:soft failOnError:false
insert into nowhere values (1);
--changeset a:always runAlways:true
create table if not exists counter (n int);
insert into counter values (1);
--changeset a:ignored ignore:true
create table ignored (id int);
--changeset a:elsewhere dbms:{other_dbms}
create table elsewhere (id int);
--changeset a:labelled labels:billing
create table billing (id int);
--changeset a:unlabelled labels:search
create table search (id int);
--changeset a:autocommit runInTransaction:false
create table autocommitted (id int);
"
        );
        let log = changelog(&source);
        let label_settings = RunSettings {
            label_filter: Some("billing".into()),
            ..settings()
        };
        let run = |settings: RunSettings| {
            let mut session = db.session();
            let mut engine = Engine::sql(&mut session, settings);
            let applied = engine
                .update(&log, None, false)
                .unwrap_or_else(|e| panic!("{e}"));
            (applied.applied, engine.notes.clone())
        };
        let (applied, notes) = run(label_settings.clone());
        assert_eq!(
            applied,
            [
                "db/changelog.sql::always::a",
                "db/changelog.sql::labelled::a",
                "db/changelog.sql::autocommit::a"
            ],
            "{}",
            db.name()
        );
        assert!(
            notes.iter().any(|n| n
                .contains("changeset db/changelog.sql::soft::a failed and has failOnError:false")),
            "{notes:?}"
        );
        let ids = |db: &TestDb| {
            db.session()
                .query(
                    "SELECT ID, EXECTYPE FROM DATABASECHANGELOG ORDER BY ORDEREXECUTED",
                    &[],
                )
                .unwrap()
                .rows
        };
        assert_eq!(
            ids(&db),
            [
                vec![Value::from("always"), Value::from("EXECUTED")],
                vec![Value::from("labelled"), Value::from("EXECUTED")],
                vec![Value::from("autocommit"), Value::from("EXECUTED")],
            ],
            "no row for the failed, ignored, other-dbms or filtered-out changesets ({})",
            db.name()
        );

        let (again, _) = run(label_settings);
        assert_eq!(
            again,
            ["db/changelog.sql::always::a"],
            "runAlways runs every time; the failed one is retried and fails softly again"
        );
        assert_eq!(
            db.scalar("SELECT EXECTYPE FROM DATABASECHANGELOG WHERE ID = 'always'"),
            Value::from("RERAN")
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM counter"), 2);

        let (everything, _) = run(settings());
        assert_eq!(
            everything,
            [
                "db/changelog.sql::always::a",
                "db/changelog.sql::unlabelled::a"
            ],
            "without a label filter the search changeset runs too ({})",
            db.name()
        );
    }
}
