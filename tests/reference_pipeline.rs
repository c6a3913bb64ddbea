//! The reference pipeline from the docs (`pipelines/db-orkes/`), end to end: an app repository
//! made here as a local Git repo, a cluster (the tests' API-server double) and a MongoDB-protocol
//! server (SecantusDB). Each scenario checks the report, the database and the cluster.
//!
//! The docs' own pipeline deploys with `kubectl apply` and `kubectl rollout status` in its Run
//! step, which reach the double through the runner's cluster proxy; the failure scenarios run the
//! K8sApply variant, whose rollout the double can slow down or break.

mod support;

use std::path::{Path, PathBuf};

use lockstep::exec::Cancel;
use serde_json::Value;
use support::git::Origin;
use support::kube_double::{APP_MANIFESTS, ApiServerDouble, Rollout};
use support::mongo::{MongoSession, Secantus};
use support::*;

const CHANGELOG: &str = r#"databaseChangeLog:
  - changeSet:
      id: orders-collection
      author: orkes
      changes:
        - createCollection:
            collectionName: orders
  - changeSet:
      id: orders-index
      author: orkes
      changes:
        - createIndex:
            collectionName: orders
            keys: '{ orderId: 1 }'
            options: '{ unique: true, name: "ux_order_id" }'
  - changeSet:
      id: seed-statuses
      author: orkes
      changes:
        - insertMany:
            collectionName: statuses
            documents: '[{ _id: "NEW" }, { _id: "PAID" }]'
      rollback:
        - dropCollection:
            collectionName: statuses
"#;

/// A changeset that fails halfway: the second document repeats the first one's `_id`.
const BROKEN_CHANGESET: &str = r#"  - changeSet:
      id: seed-more-statuses
      author: orkes
      changes:
        - insertMany:
            collectionName: statuses
            documents: '[{ _id: "SHIPPED" }, { _id: "SHIPPED" }]'
      rollback:
        - runCommand:
            command: '{ delete: "statuses", deletes: [{ q: { _id: "SHIPPED" }, limit: 0 }] }'
"#;

struct World {
    repos: tempfile::TempDir,
    kube_dir: tempfile::TempDir,
    cluster: ApiServerDouble,
    mongo: Secantus,
}

impl World {
    /// The app repository `orkes` (deployment.yml, db/changelog.yaml) and the servers.
    fn new(changelog: &str) -> World {
        let repos = tempfile::tempdir().unwrap();
        let origin = Origin::init(&repos.path().join("orkes"));
        origin.commit(
            "app and schema",
            &[
                ("deployment.yml", APP_MANIFESTS),
                ("db/changelog.yaml", changelog),
            ],
        );
        World {
            repos,
            kube_dir: tempfile::tempdir().unwrap(),
            cluster: ApiServerDouble::start(),
            mongo: Secantus::start(),
        }
    }

    /// lockstep.yaml: the pipeline's connectors pointed at this world.
    fn config(&self) -> String {
        format!(
            "connectors:\n  demodb: {{ type: Git, url: 'file://{}', connectionType: Account }}\n  db: {{ type: Kubernetes, kubeconfig: '{}', context: double }}\n  mongo: {{ type: MongoDB, uri: '{}/orkes' }}\ndbSchemas:\n  DB_Orkes: {{ connectorRef: demodb, repoName: orkes, branch: main, changelog: db/changelog.yaml }}\ndbInstances:\n  mongorelease: {{ schema: DB_Orkes, connector: mongo }}\n",
            self.repos.path().display(),
            self.cluster.kubeconfig(self.kube_dir.path()).display(),
            self.mongo.uri()
        )
    }

    fn run(&self, pipeline: &str) -> Ran {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_with_files(
            pipeline,
            &self.config(),
            &[],
            Cancel::default(),
            &[],
        ))
    }

    fn history(&self) -> Vec<Value> {
        let mut rows =
            MongoSession::open(&self.mongo, "orkes", false).documents("DATABASECHANGELOG");
        rows.sort_by_key(|r| r["orderExecuted"].as_i64());
        rows
    }

    fn statuses(&self) -> Vec<String> {
        let mut ids: Vec<String> = MongoSession::open(&self.mongo, "orkes", false)
            .documents("statuses")
            .iter()
            .map(|d| d["_id"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids
    }
}

fn pipeline_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipelines/db-orkes")
        .join(name)
}

/// The K8sApply variant, with the deploy step's timeout replaced when a scenario needs it short.
fn k8s_apply_variant(deploy_timeout: Option<&str>) -> String {
    let text = std::fs::read_to_string(pipeline_file("pipeline-k8sapply.yaml")).unwrap();
    match deploy_timeout {
        Some(timeout) => text.replacen("                              skipSteadyStateCheck: false\n                            timeout: 10m\n", &format!("                              skipSteadyStateCheck: false\n                            timeout: {timeout}\n"), 1),
        None => text,
    }
}

/// The status of each node (stage, group, step) in the report JSON, by identifier.
fn statuses_in_report(ran: &Ran) -> std::collections::BTreeMap<String, String> {
    let report = ran.report();
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| {
            Some((
                n["identifier"].as_str()?.to_string(),
                n["status"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn success_rolls_the_app_out_applies_and_tags_the_schema_and_skips_the_rollback() {
    let world = World::new(CHANGELOG);
    let ran = world.run(&k8s_apply_variant(None));
    let report = statuses_in_report(&ran);
    for (step, status) in [
        ("Git_Clone", "Success"),
        ("Deploy_Application", "Success"),
        ("Apply_Schema", "Success"),
        ("DBSchemaRollback_1", "Skipped"),
        ("db_devops", "Success"),
    ] {
        assert_eq!(
            report.get(step).map(String::as_str),
            Some(status),
            "{step} in {report:?}"
        );
    }
    assert_eq!(ran.output("Apply_Schema", "changeSetsApplied"), "3");
    let history = world.history();
    assert_eq!(
        history.len(),
        4,
        "the pre-start row and three changesets: {history:?}"
    );
    assert_eq!(
        history.last().unwrap()["tag"],
        "v1.0.0",
        "tagged after the apply"
    );
    assert_eq!(world.statuses(), ["NEW", "PAID"]);
    let deployment = world
        .cluster
        .object("deployments", "default", "go-mongodb-app")
        .expect("deployed");
    assert_eq!(deployment["status"]["availableReplicas"], 2);
}

#[test]
fn a_failing_schema_apply_fails_the_stage_and_rolls_back_one_changeset() {
    let world = World::new(&format!("{CHANGELOG}{BROKEN_CHANGESET}"));
    let ran = world.run(&k8s_apply_variant(None));
    let report = statuses_in_report(&ran);
    assert_eq!(report["Apply_Schema"], "Failed");
    assert_eq!(
        report["DBSchemaRollback_1"],
        "Success",
        "{:?}",
        ran.node("DBSchemaRollback_1").error
    );
    assert_eq!(report["db_devops"], "Failed");
    assert_eq!(
        ran.output("DBSchemaRollback_1", "changeSetsRolledBack"),
        "1"
    );
    // MARK_NEXT_RUN recorded the failed changeset as ran; the rollback undid exactly it.
    let history = world.history();
    assert_eq!(
        history[0]["fileName"], "liquibase-internal",
        "the pre-start tag row"
    );
    let ids: Vec<&str> = history[1..]
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["orders-collection", "orders-index", "seed-statuses"]);
    assert_eq!(
        world.statuses(),
        ["NEW", "PAID"],
        "the half-inserted SHIPPED was removed by the rollback"
    );
    assert!(
        world
            .cluster
            .object("deployments", "default", "go-mongodb-app")
            .is_some(),
        "the app deployed in parallel stays"
    );
}

#[test]
fn a_deploy_that_times_out_is_ignored_and_nothing_is_rolled_back() {
    let world = World::new(CHANGELOG);
    world
        .cluster
        .set_rollout("go-mongodb-app", Rollout::Slow(u32::MAX));
    let ran = world.run(&k8s_apply_variant(Some("3s")));
    let report = statuses_in_report(&ran);
    assert_eq!(report["Deploy_Application"], "IgnoreFailed");
    assert_eq!(
        ran.node("Deploy_Application")
            .error
            .clone()
            .unwrap()
            .error_type,
        "Timeout"
    );
    assert_eq!(report["Apply_Schema"], "Success");
    assert_eq!(report["DBSchemaRollback_1"], "Skipped");
    assert_eq!(world.history().len(), 4, "the schema stays applied");
}

#[test]
fn a_failing_rollout_fails_the_stage_and_rolls_the_schema_back() {
    let world = World::new(CHANGELOG);
    world.cluster.set_rollout("go-mongodb-app", Rollout::Fails);
    let ran = world.run(&k8s_apply_variant(None));
    let report = statuses_in_report(&ran);
    assert_eq!(report["Deploy_Application"], "Failed");
    assert!(
        ran.node("Deploy_Application")
            .error
            .clone()
            .unwrap()
            .message
            .contains("ProgressDeadlineExceeded")
    );
    assert_eq!(report["Apply_Schema"], "Success");
    assert_eq!(
        report["DBSchemaRollback_1"],
        "Success",
        "{:?}",
        ran.node("DBSchemaRollback_1").error
    );
    assert_eq!(report["db_devops"], "Failed");
    let ids: Vec<String> = world
        .history()
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        !ids.contains(&"seed-statuses".to_string()),
        "the newest changeset was rolled back: {ids:?}"
    );
    assert!(world.statuses().is_empty(), "its dropCollection ran");
}

/// An image that cannot be pulled never rolls out. With `progressDeadlineSeconds` (600 s) as long
/// as the step's timeout (10m), waiting for the deadline would surface it as a Timeout, which the
/// pipeline ignores: the run would pass with a broken app and the schema applied.
#[test]
fn a_bad_image_fails_the_deploy_before_its_deadline_and_rolls_the_schema_back() {
    let world = World::new(CHANGELOG);
    world.cluster.break_image("registry.example.com/app:1.0");
    let ran = world.run(&k8s_apply_variant(None));
    let report = statuses_in_report(&ran);
    assert_eq!(report["Deploy_Application"], "Failed");
    let error = ran.node("Deploy_Application").error.clone().unwrap();
    assert_ne!(error.error_type, "Timeout");
    assert!(
        error.message.contains("ImagePullBackOff"),
        "{}",
        error.message
    );
    assert_eq!(
        report["DBSchemaRollback_1"],
        "Success",
        "{:?}",
        ran.node("DBSchemaRollback_1").error
    );
    assert_eq!(report["db_devops"], "Failed");
}

#[test]
fn the_docs_pipeline_validates_unmodified() {
    let world = World::new(CHANGELOG);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lockstep.yaml"), world.config()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("validate")
        .arg(pipeline_file("pipeline.yaml"))
        .arg("--config")
        .arg(dir.path().join("lockstep.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn the_docs_pipeline_deploys_with_kubectl_through_the_step_groups_cluster() {
    let world = World::new(CHANGELOG);
    let ran = world.run(&std::fs::read_to_string(pipeline_file("pipeline.yaml")).unwrap());
    let report = statuses_in_report(&ran);
    assert_eq!(
        report["Deploy_Application"],
        "Success",
        "{:?}: {:?}",
        ran.node("Deploy_Application").error,
        ran.logs_of("Deploy_Application")
    );
    for (step, status) in [
        ("Git_Clone", "Success"),
        ("Apply_Schema", "Success"),
        ("DBSchemaRollback_1", "Skipped"),
        ("db_devops", "Success"),
    ] {
        assert_eq!(
            report.get(step).map(String::as_str),
            Some(status),
            "{step} in {report:?}"
        );
    }
    let deployment = world
        .cluster
        .object("deployments", "default", "go-mongodb-app")
        .expect("kubectl applied it");
    assert_eq!(deployment["status"]["availableReplicas"], 2);
    assert!(
        ran.logs_of("Deploy_Application")
            .iter()
            .any(|l| l.contains("successfully rolled out")),
        "{:?}",
        ran.logs_of("Deploy_Application")
    );
}
