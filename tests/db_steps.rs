//! The DBSchemaApply and DBSchemaRollback steps in pipelines, against PostgreSQL and SQLite.

mod support;

use lockstep::exec::Cancel;
use lockstep::exec::status::Status;
use lockstep_changelog::db::Value;
use support::db::TestDb;
use support::*;

const CHANGELOG: &str = "--liquibase formatted sql
--changeset alice:1
create table ${prefix}person (id int primary key, name text);
--rollback drop table ${prefix}person;
--changeset alice:2 context:prod
alter table ${prefix}person add column email text;
--rollback alter table ${prefix}person drop column email;
--changeset alice:3 context:test
insert into ${prefix}person (id, name) values (99, 'test data');
--rollback delete from ${prefix}person where id = 99;
";

fn config(db: &TestDb, extra: &str) -> String {
    format!(
        "connectors:\n{}dbSchemas:\n  app:\n    changelog: db/changelog.sql\n    root: .\ndbInstances:\n  main:\n    schema: app\n    connector: db\n    context: prod\n    substituteProperties:\n      prefix: app_\n{extra}",
        db.connector("db")
    )
}

fn db_step(kind: &str, id: &str, spec: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: {kind}\n    name: {id}\n    identifier: {id}\n    spec:\n      connectorRef: account.harnessImage\n      dbSchema: app\n      dbInstance: main\n{}{}",
        indent(spec, 6),
        indent(extra, 2)
    )
}

/// Runs the pipeline on a runtime of its own: the database fixtures block, so the tests are sync.
fn run_db(pipeline: &str, config: &str, changelog: &str) -> Ran {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_with_files(
        pipeline,
        config,
        &[],
        Cancel::default(),
        &[("db/changelog.sql", changelog)],
    ))
}

#[test]
fn apply_then_roll_back_to_the_pre_start_tag() {
    for db in TestDb::all() {
        let steps = db_step("DBSchemaApply", "apply", "tag: v1\n", "")
            + &db_step(
                "DBSchemaRollback",
                "undo",
                "tag: <+steps.apply.output.preStartTag>\n",
                "",
            );
        let ran = run_db(&pipeline_with_steps(&steps), &config(&db, ""), CHANGELOG);
        assert_eq!(
            ran.status("apply"),
            Status::Success,
            "{:?} ({})",
            ran.node("apply").error,
            db.name()
        );
        assert_eq!(
            ran.output("apply", "changeSetsApplied"),
            "2",
            "context prod admits 1 and 2, not the test data"
        );
        assert!(ran.output("apply", "preStartTag").starts_with("pre_apply_"));
        assert_eq!(
            ran.status("undo"),
            Status::Success,
            "{:?}",
            ran.node("undo").error
        );
        assert_eq!(ran.output("undo", "changeSetsRolledBack"), "2");
        assert_eq!(
            db.count("SELECT COUNT(*) FROM DATABASECHANGELOG"),
            1,
            "only the synthetic pre-start row is left ({})",
            db.name()
        );
        assert_eq!(
            db.scalar("SELECT FILENAME FROM DATABASECHANGELOG"),
            Value::from("liquibase-internal")
        );
    }
}

#[test]
fn the_docs_pattern_rolls_the_schema_back_when_the_apply_fails() {
    let db = TestDb::postgres();
    let broken = format!(
        "{CHANGELOG}--changeset bob:4\ninsert into nowhere values (1);\n--rollback select 1;\n"
    );
    let steps = db_step(
        "DBSchemaApply",
        "apply",
        "tag: v1\nchangeSetFailureStrategy: MARK_NEXT_RUN\n",
        "  timeout: 10m\n",
    ) + &db_step(
        "DBSchemaRollback",
        "rollback_one",
        "changeSetCount: 1\n",
        "  when:\n    stageStatus: Failure\n",
    );
    let ran = run_db(&pipeline_with_steps(&steps), &config(&db, ""), &broken);
    assert_eq!(ran.status("apply"), Status::Failed);
    assert!(
        ran.node("apply")
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("changeset db/changelog.sql::4::bob failed"),
        "{:?}",
        ran.node("apply").error
    );
    assert_eq!(ran.output("apply", "changeSetsApplied"), "2");
    assert_eq!(
        ran.status("rollback_one"),
        Status::Success,
        "{:?}",
        ran.node("rollback_one").error
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM DATABASECHANGELOG WHERE FILENAME = 'db/changelog.sql'"),
        2,
        "the marked-ran changeset 4 was rolled back"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM app_person"), 0);
}

#[test]
fn a_custom_step_granted_one_instance_cannot_open_another() {
    let (a, b) = (TestDb::sqlite(), TestDb::sqlite());
    let open_db = step_type("open-db", "    grants:\n      db: [main]\n");
    let config = format!(
        "connectors:\n{}{}dbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: a }}\n  other: {{ schema: app, connector: b }}\nstepTypes:\n{open_db}",
        a.connector("a"),
        b.connector("b")
    );
    let step = |id: &str, instance: &str| {
        format!(
            "- step:\n    type: OpenDb\n    name: {id}\n    identifier: {id}\n    spec:\n      instance: {instance}\n"
        )
    };
    let ran = run_db(
        &pipeline_with_steps(&parallel(
            &(step("mine", "main") + &step("theirs", "other")),
        )),
        &config,
        CHANGELOG,
    );
    assert_eq!(
        ran.status("mine"),
        Status::Success,
        "{:?}",
        ran.node("mine").error
    );
    let error = ran.node("theirs").error.clone().unwrap();
    assert_eq!(error.error_type, "Authorization");
    assert!(
        error
            .message
            .contains("was not granted database instance `other` (granted: main)"),
        "{}",
        error.message
    );
    assert!(!b.target_exists(), "nothing reached the other database");
}

#[test]
fn a_db_step_whose_instance_is_not_configured_fails_with_a_configuration_error() {
    let db = TestDb::sqlite();
    let step = db_step("DBSchemaApply", "apply", "", "")
        .replace("dbInstance: main", "dbInstance: elsewhere");
    let ran = run_db(&pipeline_with_steps(&step), &config(&db, ""), CHANGELOG);
    let error = ran.node("apply").error.clone().unwrap();
    assert_eq!(error.error_type, "ConfigurationFailure");
    assert!(
        error
            .message
            .contains("db instance `elsewhere` is not defined; add it under `dbInstances:`"),
        "{}",
        error.message
    );
}
