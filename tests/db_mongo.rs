//! The `lockstep:db/mongo` capability against a MongoDB-protocol server (SecantusDB), through
//! the real `mongodb` driver.

mod support;

use lockstep::exec::Cancel;
use lockstep::exec::status::Status;
use support::db::TestDb;
use support::mongo::Secantus;
use support::*;

fn config(server: &Secantus, extra_connectors: &str, grants: &str) -> String {
    format!(
        "connectors:\n  mongo: {{ type: MongoDB, uri: '{}/shop' }}\n  other_mongo: {{ type: MongoDB, uri: '{}' }}\n{extra_connectors}dbSchemas:\n  app: {{ changelog: db/changelog.yaml }}\ndbInstances:\n  main: {{ schema: app, connector: mongo }}\n  other: {{ schema: app, connector: other_mongo, database: billing }}\nstepTypes:\n{}",
        server.uri(),
        server.uri(),
        step_type(
            "mongo-command",
            &format!("    grants:\n      db: [{grants}]\n")
        )
    )
}

fn command_step(id: &str, instance: &str, command: &str) -> String {
    format!(
        "- step:\n    type: MongoCommand\n    name: {id}\n    identifier: {id}\n    spec:\n      instance: {instance}\n      command: '{command}'\n"
    )
}

fn run_sync(pipeline: &str, config: &str) -> Ran {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_with_files(
        pipeline,
        config,
        &[],
        Cancel::default(),
        &[],
    ))
}

#[test]
fn a_granted_step_runs_commands_on_its_instances_database() {
    let server = Secantus::start();
    let steps = command_step(
        "insert",
        "main",
        r#"{"insert": "people", "documents": [{"_id": 1, "name": "Ada"}, {"_id": 2, "name": "Grace"}]}"#,
    ) + &command_step(
        "find",
        "main",
        r#"{"find": "people", "filter": {"name": "Grace"}}"#,
    ) + &command_step("broken", "main", r#"{"noSuchCommand": 1}"#);
    let ran = run_sync(&pipeline_with_steps(&steps), &config(&server, "", "main"));
    assert_eq!(
        ran.status("insert"),
        Status::Success,
        "{:?}",
        ran.node("insert").error
    );
    assert_eq!(
        ran.output("insert", "database"),
        "shop",
        "the database named in the URI"
    );
    assert!(
        ran.output("insert", "reply").contains(r#""n":2"#),
        "{}",
        ran.output("insert", "reply")
    );
    let found = ran.output("find", "reply");
    assert!(
        found.contains(r#""name":"Grace""#) && !found.contains("Ada"),
        "{found}"
    );
    let error = ran.node("broken").error.clone();
    assert_eq!(ran.status("broken"), Status::Failed);
    assert!(
        error.as_ref().unwrap().message.contains("noSuchCommand"),
        "the server's own message: {error:?}"
    );
}

#[test]
fn a_step_cannot_open_an_instance_it_was_not_granted_and_nothing_reaches_it() {
    let server = Secantus::start();
    let steps = parallel(
        &(command_step("mine", "main", r#"{"ping": 1}"#)
            + &command_step(
                "theirs",
                "other",
                r#"{"insert": "invoices", "documents": [{"_id": 1}]}"#,
            )),
    );
    let ran = run_sync(&pipeline_with_steps(&steps), &config(&server, "", "main"));
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

    // Checked from outside, with the driver: the billing database was never written.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(server.uri()).await.unwrap();
        client
            .database("billing")
            .list_collection_names()
            .await
            .unwrap()
    });
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn each_interface_refuses_the_other_kind_of_database() {
    let server = Secantus::start();
    let sqlite = TestDb::sqlite();
    let open_db = step_type("open-db", "    grants:\n      db: [main]\n");
    let config = format!(
        "connectors:\n  mongo: {{ type: MongoDB, uri: '{}/shop' }}\n{}dbSchemas:\n  app: {{ changelog: db/changelog.yaml }}\ndbInstances:\n  main: {{ schema: app, connector: mongo }}\n  local: {{ schema: app, connector: lite }}\nstepTypes:\n{open_db}{}",
        server.uri(),
        sqlite.connector("lite"),
        step_type("mongo-command", "    grants:\n      db: [local]\n")
    );
    let steps = parallel(&("- step:\n    type: OpenDb\n    name: sql_on_mongo\n    identifier: sql_on_mongo\n    spec:\n      instance: main\n".to_string() + &command_step("mongo_on_sql", "local", r#"{"ping": 1}"#)));
    let ran = run_sync(&pipeline_with_steps(&steps), &config);
    assert!(
        ran.node("sql_on_mongo")
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("is a MongoDB database; open it with lockstep:db/mongo")
    );
    assert!(
        ran.node("mongo_on_sql")
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("is a SQL database; open it with lockstep:db/sql")
    );
}
