//! The `lockstep:kube` capability and the K8sApply step: the real `kube` client against the
//! tests' API-server double (see `support/kube_double.rs`).

mod support;

use lockstep::exec::Cancel;
use lockstep::exec::status::Status;
use support::kube_double::{APP_MANIFESTS as DEPLOYMENT, ApiServerDouble, Rollout};
use support::*;

/// lockstep.yaml with connector `db` → the double, which the operator allows pipelines to use
/// in namespace `shop`.
fn config(double: &ApiServerDouble, dir: &std::path::Path, extra: &str) -> String {
    format!(
        "connectors:\n  db: {{ type: Kubernetes, kubeconfig: '{}', context: double, namespaces: [shop] }}\n{extra}",
        double.kubeconfig(dir).display()
    )
}

/// Steps inside a step group whose `stepGroupInfra` is the cluster, namespace `shop`.
fn in_cluster_group(steps: &str) -> String {
    group(
        "deploy_group",
        steps,
        "  stepGroupInfra:\n    type: KubernetesDirect\n    spec:\n      connectorRef: db\n      namespace: shop\n",
    )
}

fn apply_step(id: &str, spec: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: K8sApply\n    name: {id}\n    identifier: {id}\n    spec:\n{}{}",
        indent(spec, 6),
        indent(extra, 2)
    )
}

/// Writes the manifests through a Run step (the stage workspace is the run's), then `steps`.
fn run(double: &ApiServerDouble, steps: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let write = run_step(
        "write",
        &format!("mkdir -p app\ncat > app/deployment.yml <<'EOF'\n{DEPLOYMENT}EOF\n"),
        "",
    );
    let pipeline = pipeline_with_steps(&(write + &in_cluster_group(steps)));
    let config = config(double, dir.path(), "");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_with_files(
        &pipeline,
        &config,
        &[],
        Cancel::default(),
        &[],
    ))
}

#[test]
fn k8s_apply_applies_server_side_in_the_groups_namespace_and_waits_for_the_rollout() {
    let double = ApiServerDouble::start();
    double.set_rollout("go-mongodb-app", Rollout::Slow(3));
    let ran = run(
        &double,
        &apply_step("apply", "filePaths: [app/deployment.yml]\n", ""),
    );
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert_eq!(ran.output("apply", "objectsApplied"), "2");
    let deployment = double
        .object("deployments", "shop", "go-mongodb-app")
        .expect("the Deployment is in namespace shop");
    assert_eq!(
        deployment["status"]["readyReplicas"], 2,
        "the rollout finished"
    );
    let managers: Vec<&str> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(
        managers,
        ["lockstep"],
        "applied server-side by field manager lockstep"
    );
    assert!(
        double
            .object("configmaps", "shop", "app-settings")
            .is_some()
    );
    let requests = double.requests();
    assert!(
        requests.iter().any(|r| r
            .starts_with("PATCH /apis/apps/v1/namespaces/shop/deployments/go-mongodb-app?")
            && r.contains("dryRun=All")),
        "a server-side dry run came first: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(
                |r| r.starts_with("GET /apis/apps/v1/namespaces/shop/deployments/go-mongodb-app")
            )
            .count()
            >= 3,
        "it polled the slow rollout"
    );
}

#[test]
fn a_rollout_that_exceeds_its_progress_deadline_fails_the_step_with_the_events() {
    let double = ApiServerDouble::start();
    double.set_rollout("go-mongodb-app", Rollout::Fails);
    let ran = run(
        &double,
        &apply_step("apply", "filePaths: [app]\nskipDryRun: true\n", ""),
    );
    assert_eq!(ran.status("apply"), Status::Failed);
    let error = ran.node("apply").error.clone().unwrap();
    assert!(
        error
            .message
            .contains("Deployment go-mongodb-app did not roll out: ProgressDeadlineExceeded"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("Back-off pulling image"),
        "the events say why: {}",
        error.message
    );
    assert!(
        !double.requests().iter().any(|r| r.contains("dryRun")),
        "skipDryRun skips the dry run"
    );
}

#[test]
fn a_rollout_still_going_when_the_step_times_out_ends_as_a_timeout() {
    let double = ApiServerDouble::start();
    double.set_rollout("go-mongodb-app", Rollout::Slow(u32::MAX));
    let ran = run(
        &double,
        &apply_step(
            "apply",
            "filePaths: [app/deployment.yml]\n",
            "  timeout: 2s\n",
        ),
    );
    assert_eq!(
        ran.status("apply"),
        Status::Expired,
        "a step that runs out of time expires, as in Harness"
    );
    assert_eq!(
        ran.node("apply").error.clone().unwrap().error_type,
        "Timeout"
    );
}

#[test]
fn conflicts_and_unavailable_servers_are_retried() {
    let double = ApiServerDouble::start();
    double.fail_next(2, 503);
    double.fail_next(1, 409);
    let ran = run(
        &double,
        &apply_step("apply", "filePaths: [app/deployment.yml]\n", ""),
    );
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert!(
        double
            .object("deployments", "shop", "go-mongodb-app")
            .is_some()
    );
}

/// The double's watch, through the real client: what a `kubectl rollout status` would consume.
#[test]
fn the_double_streams_a_watch_of_the_objects_from_a_resource_version() {
    use futures::StreamExt;
    let double = ApiServerDouble::start();
    run(
        &double,
        &apply_step("apply", "filePaths: [app/deployment.yml]\n", ""),
    );
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = runtime.block_on(async {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(double.kubeconfig(dir.path())).unwrap();
        let client = kube::Client::try_from(
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .unwrap(),
        )
        .unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, "shop");
        let events: Vec<_> = api
            .watch(&kube::api::WatchParams::default(), "0")
            .await
            .unwrap()
            .collect()
            .await;
        events
            .into_iter()
            .filter_map(|e| match e.unwrap() {
                kube::api::WatchEvent::Added(o) => o.metadata.name,
                _ => None,
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(names, ["app-settings"]);
}

#[test]
fn skip_steady_state_check_returns_without_waiting() {
    let double = ApiServerDouble::start();
    double.set_rollout("go-mongodb-app", Rollout::Fails);
    let ran = run(
        &double,
        &apply_step(
            "apply",
            "filePaths: [app/deployment.yml]\nskipSteadyStateCheck: true\n",
            "",
        ),
    );
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
}

#[test]
fn a_k8s_step_granted_namespace_shop_cannot_touch_default_and_nothing_reaches_the_server() {
    let double = ApiServerDouble::start();
    let elsewhere = DEPLOYMENT.replace(
        "name: go-mongodb-app\n  labels",
        "name: go-mongodb-app\n  namespace: default\n  labels",
    );
    let dir = tempfile::tempdir().unwrap();
    let write = run_step(
        "write",
        &format!("mkdir -p app\ncat > app/deployment.yml <<'EOF'\n{elsewhere}EOF\n"),
        "",
    );
    let pipeline = pipeline_with_steps(
        &(write
            + &in_cluster_group(&apply_step(
                "apply",
                "filePaths: [app/deployment.yml]\n",
                "",
            ))),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = runtime.block_on(run_with_files(
        &pipeline,
        &config(&double, dir.path(), ""),
        &[],
        Cancel::default(),
        &[],
    ));
    let error = ran.node("apply").error.clone().unwrap();
    assert_eq!(error.error_type, "Authorization", "{}", error.message);
    assert!(
        error
            .message
            .contains("namespace `default` is not granted (granted: shop)"),
        "{}",
        error.message
    );
    assert!(
        double.requests().is_empty(),
        "not even discovery reached the server: {:?}",
        double.requests()
    );
}

#[test]
fn a_k8s_step_outside_a_kubernetes_step_group_says_how_to_give_it_a_cluster() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_with_steps(&apply_step("apply", "filePaths: [app]\n", ""));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = runtime.block_on(run_with_files(
        &pipeline,
        &config(&double, dir.path(), ""),
        &[],
        Cancel::default(),
        &[],
    ));
    assert!(
        ran.node("apply")
            .error
            .clone()
            .unwrap()
            .message
            .contains("stepGroupInfra"),
        "{:?}",
        ran.node("apply").error
    );
}

#[test]
fn a_db_step_cannot_reach_the_cluster() {
    // The DB steps import no lockstep:kube; a custom step that does needs a kube grant, and a
    // step granted a database only is refused before it is instantiated.
    let double = ApiServerDouble::start();
    let db = support::db::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &double,
        dir.path(),
        &format!(
            "{}dbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: lite }}\nstepTypes:\n{}",
            db.connector("lite"),
            step_type("kube-get", "    grants:\n      db: [main]\n")
        ),
    );
    let steps = "- step:\n    type: KubeGet\n    name: sneaky\n    identifier: sneaky\n    spec:\n      connector: db\n";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = runtime.block_on(run_with_files(
        &pipeline_with_steps(steps),
        &config,
        &[],
        Cancel::default(),
        &[],
    ));
    let error = ran.node("sneaky").error.clone().unwrap();
    assert!(error.message.contains("lockstep:kube"), "{}", error.message);
    assert!(double.requests().is_empty(), "{:?}", double.requests());
}

#[test]
fn a_custom_step_reaches_only_the_namespaces_and_kinds_its_grant_names() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let grant = |namespaces: &str, kinds: &str| {
        step_type(
            "kube-get",
            &format!(
                "    grants:\n      kube: [{{ connector: db, namespaces: [{namespaces}], kinds: [{kinds}], verbs: [get] }}]\n"
            ),
        )
    };
    let steps = "- step:\n    type: KubeGet\n    name: reader\n    identifier: reader\n    spec:\n      connector: db\n";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = |step_types: String| {
        runtime.block_on(run_with_files(
            &pipeline_with_steps(steps),
            &config(&double, dir.path(), &format!("stepTypes:\n{step_types}")),
            &[],
            Cancel::default(),
            &[],
        ))
    };

    let ran = run(grant("shop", "ConfigMap"));
    let error = ran.node("reader").error.clone().unwrap();
    assert!(
        error
            .message
            .contains("namespace `default` is not granted (granted: shop)"),
        "{}",
        error.message
    );
    assert!(double.requests().is_empty(), "the denied call sent nothing");
    let ran = run(grant("'*'", "'*'"));
    assert!(
        ran.node("reader").error.clone().is_none(),
        "a wildcard covers ConfigMaps: {:?}",
        ran.node("reader").error
    );
    assert_eq!(ran.output("reader", "found"), "no");
    assert!(!double.requests().is_empty());
}

fn rolling_step(kind: &str, id: &str, spec: &str, extra: &str) -> String {
    format!(
        "- step:\n    type: {kind}\n    name: {id}\n    identifier: {id}\n    spec:\n{}{}",
        indent(spec, 6),
        indent(extra, 2)
    )
}

/// Writes `manifests` as app/deployment.yml, then runs `steps` in the cluster's step group.
fn run_release(double: &ApiServerDouble, manifests: &str, steps: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let write = run_step(
        "write",
        &format!("mkdir -p app\ncat > app/deployment.yml <<'EOF'\n{manifests}EOF\n"),
        "",
    );
    let pipeline = pipeline_with_steps(&(write + &in_cluster_group(steps)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_with_files(
        &pipeline,
        &config(double, dir.path(), ""),
        &[],
        Cancel::default(),
        &[],
    ))
}

fn image(double: &ApiServerDouble) -> String {
    let deployment = double
        .object("deployments", "shop", "go-mongodb-app")
        .unwrap();
    deployment
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string()
}

#[test]
fn a_rolling_deploy_records_releases_and_the_rollback_restores_the_last_good_one() {
    let double = ApiServerDouble::start();
    let deploy = rolling_step(
        "K8sRollingDeploy",
        "deploy",
        "filePaths: [app]\npruningEnabled: true\n",
        "",
    );
    let ran = run_release(&double, DEPLOYMENT, &deploy);
    assert_eq!(
        ran.status("deploy"),
        Status::Success,
        "{:?}",
        ran.node("deploy").error
    );
    assert_eq!(ran.output("deploy", "releaseNumber"), "1");

    // Release 2 changes the image, drops the ConfigMap, and fails to roll out; the rollback runs
    // as the stage's failure handling and restores release 1.
    double.break_image("registry.example.com/app:2.0");
    let second = DEPLOYMENT
        .split("---")
        .next()
        .unwrap()
        .replace("app:1.0", "app:2.0");
    let steps = deploy.clone()
        + &rolling_step(
            "K8sRollingRollback",
            "rollback",
            "{}\n",
            "  when:\n    stageStatus: Failure\n",
        );
    let ran = run_release(&double, &second, &steps);
    assert_eq!(ran.status("deploy"), Status::Failed);
    assert!(
        ran.node("deploy")
            .error
            .clone()
            .unwrap()
            .message
            .contains("ProgressDeadlineExceeded")
    );
    assert_eq!(
        ran.status("rollback"),
        Status::Success,
        "{:?}",
        ran.node("rollback").error
    );
    assert_eq!(ran.output("rollback", "restoredRelease"), "1");
    assert_eq!(
        image(&double),
        "registry.example.com/app:1.0",
        "release 1 is back"
    );
    assert!(
        double
            .object("configmaps", "shop", "app-settings")
            .is_some(),
        "a failed release prunes nothing"
    );
    let history = double
        .object("configmaps", "shop", "lockstep-release-db-shop")
        .expect("the release history");
    let releases: serde_json::Value =
        serde_json::from_str(history["data"]["releases"].as_str().unwrap()).unwrap();
    let statuses: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Succeeded", "RolledBack"]);
}

#[test]
fn a_successful_rolling_deploy_with_pruning_deletes_what_the_last_release_had_and_this_one_lacks() {
    let double = ApiServerDouble::start();
    let deploy = rolling_step(
        "K8sRollingDeploy",
        "deploy",
        "filePaths: [app]\npruningEnabled: true\n",
        "",
    );
    run_release(&double, DEPLOYMENT, &deploy);
    assert!(
        double
            .object("configmaps", "shop", "app-settings")
            .is_some()
    );
    let without_settings = DEPLOYMENT.split("---").next().unwrap().to_string();
    let ran = run_release(&double, &without_settings, &deploy);
    assert_eq!(
        ran.status("deploy"),
        Status::Success,
        "{:?}",
        ran.node("deploy").error
    );
    assert_eq!(ran.output("deploy", "releaseNumber"), "2");
    assert!(
        double
            .object("configmaps", "shop", "app-settings")
            .is_none(),
        "pruned"
    );
    assert!(
        double
            .object("deployments", "shop", "go-mongodb-app")
            .is_some()
    );
}

#[test]
fn a_run_step_in_a_kubernetes_step_group_reaches_the_groups_cluster_through_the_runners_proxy() {
    let double = ApiServerDouble::start();
    let command = "CONTEXT=$(grep -o '\"current-context\": *\"[^\"]*\"' \"$KUBECONFIG\")\nNAMESPACE=$(grep -o '\"namespace\": *\"[^\"]*\"' \"$KUBECONFIG\")\nSERVER=$(grep -o '\"server\": *\"[^\"]*\"' \"$KUBECONFIG\")\nCONFIGMAPS=$(kubectl get configmaps -o name)\n";
    let ran = run(
        &double,
        &(apply_step("apply", "filePaths: [app/deployment.yml]\n", "")
            + &run_step_with_outputs(
                "kubectl_step",
                command,
                &["CONTEXT", "NAMESPACE", "SERVER", "CONFIGMAPS"],
                "",
            )),
    );
    assert_eq!(
        ran.status("kubectl_step"),
        Status::Success,
        "{:?}: {:?}",
        ran.node("kubectl_step").error,
        ran.logs_of("kubectl_step")
    );
    assert_eq!(
        ran.output("kubectl_step", "CONTEXT"),
        "\"current-context\": \"db\""
    );
    assert_eq!(
        ran.output("kubectl_step", "NAMESPACE"),
        "\"namespace\": \"shop\"",
        "the group's namespace"
    );
    assert_eq!(
        ran.output("kubectl_step", "SERVER"),
        "\"server\": \"http://127.0.0.1:6443\"",
        "the runner's proxy on the script's own loopback"
    );
    assert_eq!(
        ran.output("kubectl_step", "CONFIGMAPS"),
        "configmap/app-settings"
    );
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/shop/configmaps")),
        "kubectl's request reached the cluster: {:?}",
        double.requests()
    );
}
