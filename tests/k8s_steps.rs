//! The `lockstep:kube` capability and the K8sApply step: the real `kube` client against the
//! tests' API-server double (see `support/kube_double/`).

mod support;

use lockstep::exec::Cancel;
use lockstep::exec::status::Status;
use support::k8s::*;
use support::kube_double::{APP_MANIFESTS as DEPLOYMENT, ApiServerDouble, Rollout};
use support::*;

/// The app's manifests written as app/deployment.yml, then `steps` in the cluster's step group.
fn run(double: &ApiServerDouble, steps: &str) -> Ran {
    Deploy {
        files: &[("app/deployment.yml", DEPLOYMENT)],
        steps,
        ..Deploy::default()
    }
    .run(double)
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
fn a_rollout_that_exceeds_its_progress_deadline_fails_the_step_with_its_and_its_pods_events() {
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
        error.message.contains("event go-mongodb-app: Failed: Scaled up replica set")
            && error.message.contains(
                "event go-mongodb-app-5d8f7c9b4-x2x7q: Failed: Failed to pull image \"registry.example.com/app:1.0\""
            ),
        "the Deployment's and its pods' events say why: {}",
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

#[test]
fn a_relative_workspace_gives_run_steps_an_absolute_kubeconfig() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&double, dir.path(), "");
    std::fs::write(dir.path().join("lockstep.yaml"), config).unwrap();
    let probe = run_step(
        "probe",
        "mkdir -p sub && cd sub\ncase \"$KUBECONFIG\" in /*) ;; *) echo \"relative: $KUBECONFIG\"; exit 1 ;; esac\nkubectl get configmaps -o name\n",
        "",
    );
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        pipeline_with_steps(&in_cluster_group(&probe)),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "run",
            "pipeline.yaml",
            "--config",
            "lockstep.yaml",
            "--workspace",
            "ws",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/shop/configmaps")),
        "kubectl reached the cluster, not localhost:8080: {stdout}"
    );
}

/// What `lockstep validate` (and `run`, before anything starts) says about a pipeline whose step
/// group points at `connector` in `namespace`, with `config` as lockstep.yaml.
fn validate_group(config: &str, dir: &std::path::Path, connector: &str, namespace: &str) -> String {
    let config = lockstep::config::Config::parse(&dir.join("lockstep.yaml"), config).unwrap();
    let steps = group(
        "deploy_group",
        &apply_step("apply", "filePaths: [app]\n", ""),
        &format!(
            "  stepGroupInfra:\n    type: KubernetesDirect\n    spec:\n      connectorRef: {connector}\n      namespace: {namespace}\n"
        ),
    );
    let pipeline = pipeline_with_steps(&(run_step("first", "echo ran\n", "") + &steps));
    match lockstep::session::Session::load(&dir.join("p.yaml"), &pipeline, config) {
        Ok(session) => session
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(invalid) => invalid.to_string(),
    }
}

#[test]
fn a_step_groups_cluster_is_checked_before_anything_runs() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let good = config(&double, dir.path(), "");
    assert_eq!(validate_group(&good, dir.path(), "db", "shop"), "");

    let missing = validate_group(&good, dir.path(), "prod", "shop");
    assert!(
        missing.contains("stepGroupInfra.spec.connectorRef")
            && missing.contains("warning: connector `prod` is not in lockstep.yaml, so `lockstep run` will refuse this pipeline before any step runs"),
        "valid, as a pipeline naming any connector lockstep.yaml lacks: {missing}"
    );
    let refused = validate_group(&good, dir.path(), "db", "kube-system");
    assert!(
        refused.contains("stepGroupInfra.spec.namespace")
            && refused.contains("`kube-system` is not allowed for connector `db`"),
        "{refused}"
    );
    let no_file = "connectors:\n  db: { type: Kubernetes, kubeconfig: nowhere/kubeconfig }\n";
    let unreadable = validate_group(no_file, dir.path(), "db", "shop");
    assert!(
        unreadable.contains("kubeconfig") && unreadable.contains("nowhere"),
        "{unreadable}"
    );
    let no_context = good.replace("context: double", "context: staging");
    let wrong = validate_group(&no_context, dir.path(), "db", "shop");
    assert!(wrong.contains("has no context `staging`"), "{wrong}");
    let git = "connectors:\n  db: { type: Git, url: 'file:///srv/git' }\n";
    let not_kube = validate_group(git, dir.path(), "db", "shop");
    assert!(
        not_kube.contains("is a Git connector, not a Kubernetes one"),
        "{not_kube}"
    );
}

fn apply_files(double: &ApiServerDouble, files: &[(&str, &str)], config: &str) -> Ran {
    Deploy {
        files,
        steps: &apply_step("apply", "filePaths: [app]\n", ""),
        config,
        ..Deploy::default()
    }
    .run(double)
}

#[test]
fn a_custom_kind_ending_in_list_is_an_object_and_a_real_list_is_flattened() {
    let double = ApiServerDouble::start();
    let manifests = "apiVersion: example.com/v1
kind: AccessList
metadata:
  name: admins
spec:
  members: [ada, grace]
---
apiVersion: v1
kind: ConfigMapList
items:
  - { apiVersion: v1, kind: ConfigMap, metadata: { name: one }, data: { a: b } }
  - { apiVersion: v1, kind: ConfigMap, metadata: { name: two }, data: { c: d } }
";
    let ran = apply_files(&double, &[("app/objects.yaml", manifests)], "");
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert_eq!(ran.output("apply", "objectsApplied"), "3");
    let access = double
        .object("accesslists", "shop", "admins")
        .expect("applied");
    assert_eq!(
        access["spec"]["members"],
        serde_json::json!(["ada", "grace"])
    );
    assert!(double.object("configmaps", "shop", "one").is_some());
    assert!(double.object("configmaps", "shop", "two").is_some());
}

#[test]
fn an_unknown_kind_is_named_with_its_api_version() {
    let double = ApiServerDouble::start();
    let manifest = "apiVersion: example.com/v9\nkind: Widget\nmetadata:\n  name: w\n";
    let ran = apply_files(&double, &[("app/widget.yaml", manifest)], "");
    let message = ran.node("apply").error.clone().unwrap().message;
    assert!(
        message.contains("the cluster has no kind `Widget` in `example.com/v9`"),
        "{message}"
    );
}

#[test]
fn an_api_server_that_is_down_is_named_by_its_address() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let kubeconfig = double.kubeconfig(dir.path());
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&double.address.to_string(), &format!("127.0.0.1:{port}"));
    std::fs::write(&kubeconfig, text).unwrap();
    let config = format!(
        "connectors:\n  db: {{ type: Kubernetes, kubeconfig: '{}', context: double, namespaces: [shop] }}\n",
        kubeconfig.display()
    );
    let pipeline = pipeline_with_steps(
        &(write_files(&[("app/deployment.yml", DEPLOYMENT)])
            + &in_cluster_group(&apply_step("apply", "filePaths: [app]\n", ""))),
    );
    let ran = run_blocking(&pipeline, &config, &[]);
    let message = ran.node("apply").error.clone().unwrap().message;
    assert!(
        message.contains(&format!(
            "cannot reach the Kubernetes API server at http://127.0.0.1:{port}/"
        )) && message.contains("connector `db`"),
        "{message}"
    );
}

#[test]
fn a_secret_in_the_manifests_is_refused_with_where_the_operator_grants_it() {
    let double = ApiServerDouble::start();
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  t: x\n";
    let ran = apply_files(&double, &[("app/secret.yaml", secret)], "");
    let error = ran.node("apply").error.clone().unwrap();
    assert_eq!(error.error_type, "Authorization");
    assert!(
        error
            .message
            .contains("the operator adds kinds with `connectors.db.kinds` in lockstep.yaml"),
        "{}",
        error.message
    );
    assert!(
        double.object_requests().is_empty(),
        "{:?}",
        double.object_requests()
    );
}

/// YAML 1.1 as Kubernetes tools read it: octal modes, hex numbers, merge keys, anchors and tags.
const TYPED_MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  labels: &labels { app: NAME }
spec:
  replicas: 0x2
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
    spec:
      containers:
        - &base
          name: app
          image: registry.example.com/app:1.0
          env:
            - { name: PORT, value: !!str 8080 }
            - { name: MODE, value: \"on\" }
        - <<: *base
          name: sidecar
      volumes:
        - name: token
          secret: { secretName: token, defaultMode: 0400 }
        - name: scripts
          configMap: { name: scripts, defaultMode: 0755 }
";

#[test]
fn manifests_are_read_exactly_as_kubectl_reads_them() {
    let double = ApiServerDouble::start();
    let ours = TYPED_MANIFEST.replace("NAME", "by-lockstep");
    let kubectls = TYPED_MANIFEST.replace("NAME", "by-kubectl");
    let ran = Deploy {
        files: &[("app/typed.yaml", &ours), ("kubectl/typed.yaml", &kubectls)],
        steps: &(apply_step("apply", "filePaths: [app]\n", "")
            + &run_step("kubectl_apply", "kubectl apply -f kubectl/typed.yaml\n", "")),
        ..Deploy::default()
    }
    .run(&double);
    for step in ["apply", "kubectl_apply"] {
        assert_eq!(
            ran.status(step),
            Status::Success,
            "{step}: {:?} {:?}",
            ran.node(step).error,
            ran.logs_of(step)
        );
    }
    let spec = |name: &str| {
        let stored = double.object("deployments", "shop", name).unwrap();
        let text = serde_json::to_string(&stored["spec"])
            .unwrap()
            .replace(name, "NAME");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    assert_eq!(spec("by-lockstep"), spec("by-kubectl"));
    let ours = double.object("deployments", "shop", "by-lockstep").unwrap();
    assert_eq!(
        ours["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"], 256,
        "0400 is octal"
    );
    assert_eq!(
        ours["spec"]["template"]["spec"]["containers"][1]["image"], "registry.example.com/app:1.0",
        "merged from the anchor"
    );
    assert_eq!(
        ours["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "8080"
    );
}

fn stateful_set(strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 3
  serviceName: db
  selector: {{ matchLabels: {{ app: db }} }}
  updateStrategy: {strategy}
  template:
    metadata: {{ labels: {{ app: db }} }}
    spec:
      containers: [{{ name: db, image: registry.example.com/db:2 }}]
"
    )
}

#[test]
fn a_partitioned_stateful_set_rolls_out_when_its_partition_is_updated_and_on_delete_is_not_waited_for()
 {
    let double = ApiServerDouble::start();
    let partitioned = stateful_set("{ type: RollingUpdate, rollingUpdate: { partition: 2 } }");
    let ran = apply_files(&double, &[("app/db.yaml", &partitioned)], "");
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert!(
        ran.logs_of("apply")
            .iter()
            .any(|l| l.contains("StatefulSet db rolled out: partitioned roll out complete")),
        "{:?}",
        ran.logs_of("apply")
    );
    let on_delete = stateful_set("{ type: OnDelete }");
    let ran = apply_files(&double, &[("app/db.yaml", &on_delete)], "");
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert!(
        ran.logs_of("apply")
            .iter()
            .any(|l| l.contains("StatefulSet db: not waited for: `OnDelete`")),
        "{:?}",
        ran.logs_of("apply")
    );
}

#[test]
fn a_field_dropped_from_the_manifest_is_removed_by_the_next_apply() {
    let double = ApiServerDouble::start();
    let labelled = DEPLOYMENT.replace(
        "  labels: { app: go-mongodb-app }",
        "  labels: { app: go-mongodb-app, canary: \"true\" }",
    );
    for manifests in [labelled.as_str(), DEPLOYMENT] {
        let ran = Deploy {
            files: &[("app/deployment.yml", manifests)],
            steps: &apply_step("apply", "filePaths: [app]\n", ""),
            ..Deploy::default()
        }
        .run(&double);
        assert_eq!(
            ran.status("apply"),
            Status::Success,
            "{:?}",
            ran.node("apply").error
        );
    }
    let deployment = double
        .object("deployments", "shop", "go-mongodb-app")
        .unwrap();
    assert_eq!(
        deployment["metadata"]["labels"],
        serde_json::json!({"app": "go-mongodb-app"}),
        "server-side apply removes what its manager no longer applies"
    );
}
