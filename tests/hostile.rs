//! Hostile cases: steps, pipelines, changelogs, repositories and components that try to get past
//! what they were granted. Each case asserts that the attempt is refused, names what is missing,
//! and that nothing reached the disk, the database or the cluster.

mod support;

use std::path::Path;

use lockstep::exec::status::Status;
use lockstep_changelog::db::Value;
use support::db::TestDb;
use support::git::Origin;
use support::kube_double::{APP_MANIFESTS, ApiServerDouble};
use support::mongo::{MongoSession, Secantus};
use support::*;

fn custom(id: &str, component: &str, spec: &str) -> String {
    format!(
        "- step:\n    type: {}\n    name: {id}\n    identifier: {id}\n    spec:\n{}",
        type_name(component),
        indent(spec, 6)
    )
}

fn step_types(entries: &[(&str, &str)]) -> String {
    let mut out = "stepTypes:\n".to_string();
    for (component, extra) in entries {
        out.push_str(&step_type(component, extra));
    }
    out
}

fn error_of(ran: &Ran, step: &str) -> lockstep::exec::NodeError {
    ran.node(step)
        .error
        .clone()
        .unwrap_or_else(|| panic!("{step} did not fail: {:?}", ran.node(step)))
}

/// A Run step that records, as output RESULT, whatever `probe` prints: it runs with `set +e`, so
/// each refused attempt shows up as its error text instead of stopping the script.
fn probe(id: &str, probe: &str) -> String {
    run_step_with_outputs(
        id,
        &format!("set +e\nRESULT=$( ( {probe} ) 2>&1 )\ntrue\n"),
        &["RESULT"],
        "",
    )
}

fn probed(ran: &Ran, id: &str) -> String {
    assert_eq!(
        ran.status(id),
        Status::Success,
        "{id}: {:?}",
        ran.node(id).error
    );
    ran.output(id, "RESULT")
}

// ---- 1. the compiled-code cache -------------------------------------------------------------

#[test]
fn a_run_step_can_neither_read_nor_write_the_component_cache_or_its_key() {
    let cache = cache_dir().display().to_string();
    let ran = run_blocking(
        &pipeline_with_steps(&probe(
            "thief",
            &format!("ls {cache}; cat {cache}/seal.key; cp /bin/true {cache}/planted.cwasm"),
        )),
        "",
        &[],
    );
    let result = probed(&ran, "thief");
    assert!(result.contains("No such file or directory"), "{result}");
    assert!(
        !cache_dir().join("planted.cwasm").exists(),
        "nothing was written into the cache"
    );
}

#[test]
fn a_run_needs_a_workspace_that_does_not_overlap_the_cache() {
    let message = sandbox()
        .check_isolation(&cache_dir().join("workspace"), &[])
        .unwrap_err();
    assert!(
        message.contains("overlaps the component cache"),
        "{message}"
    );
    let message = sandbox()
        .check_isolation(Path::new("/tmp/somewhere-else"), &[cache_dir()])
        .unwrap_err();
    assert!(message.contains("processSandbox.paths"), "{message}");
}

#[test]
fn another_components_compiled_code_swapped_into_a_pinned_components_entry_is_never_run() {
    let cache = tempfile::tempdir().unwrap();
    let runner = lockstep::sandbox::Sandbox::new(2, cache.path(), &|_| {}).unwrap();
    let (noop, busy) = (
        std::fs::read(component_path("noop")).unwrap(),
        std::fs::read(component_path("busy-loop")).unwrap(),
    );
    runner
        .load(&noop, Some(&sha256_of(&component_path("noop"))))
        .unwrap();
    runner.load(&busy, None).unwrap();
    let entry = |wasm: &[u8]| {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&lockstep::sandbox::artifact::sha256_hex(wasm))
            })
            .unwrap()
    };
    std::fs::copy(entry(&busy), entry(&noop)).unwrap();
    let reloaded = runner
        .load(&noop, Some(&sha256_of(&component_path("noop"))))
        .unwrap();
    assert_eq!(
        reloaded.provenance,
        lockstep::sandbox::artifact::Provenance::Compiled,
        "the swapped entry's seal names the busy loop, so the noop was recompiled"
    );
}

// ---- 2. Run steps are confined -------------------------------------------------------------

#[test]
fn a_run_step_cannot_read_host_secrets_or_the_runners_home() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let ran = run_blocking(
        &pipeline_with_steps(&probe(
            "snoop",
            &format!("cat /etc/shadow; ls {home}; ls /run /var/run; ls /sys"),
        )),
        "",
        &[],
    );
    let result = probed(&ran, "snoop");
    assert!(!result.contains("root:"), "{result}");
    assert_eq!(
        result.matches("No such file or directory").count(),
        5,
        "{result}"
    );
}

#[test]
fn a_run_step_writes_only_its_workspace_and_its_private_tmp() {
    let outside = tempfile::tempdir().unwrap();
    let script = format!(
        "touch {0}/planted; touch /usr/planted; touch /planted; echo ok > /tmp/scratch && cat /tmp/scratch; touch inside",
        outside.path().display()
    );
    let ran = run_blocking(&pipeline_with_steps(&probe("writer", &script)), "", &[]);
    let result = probed(&ran, "writer");
    assert!(!outside.path().join("planted").exists(), "{result}");
    assert!(
        !Path::new("/usr/planted").exists() && !Path::new("/planted").exists(),
        "{result}"
    );
    assert!(result.contains("ok"), "its /tmp is writable: {result}");
    assert!(
        ran.dir.path().join("workspace/s/inside").exists(),
        "its workspace is writable"
    );
}

#[test]
fn a_run_step_cannot_read_another_stages_workspace() {
    let stages = stage(
        "first",
        &run_step("keep", "echo stage-secret > notes", ""),
        "",
    ) + &stage("second", &probe("peek", "cat ../first/notes; ls .."), "");
    let ran = run_blocking(&pipeline_with_stages(&stages), "", &[]);
    let result = probed(&ran, "peek");
    assert!(
        !result.contains("stage-secret") && !result.lines().any(|l| l == "first"),
        "{result}"
    );
}

#[test]
fn a_run_step_has_no_network_and_no_database_without_a_grant() {
    let ran = run_blocking(
        &pipeline_with_steps(&probe(
            "net",
            "exec 3<>/dev/tcp/127.0.0.1/5432 && echo reached-postgres; ls /var/run/postgresql; exec 4<>/dev/tcp/127.0.0.1/4222 && echo reached-nats",
        )),
        "",
        &[],
    );
    let result = probed(&ran, "net");
    assert!(!result.contains("reached"), "{result}");
    assert!(
        result.contains("Connection refused") || result.contains("Network is unreachable"),
        "{result}"
    );
}

#[test]
fn the_operator_can_give_scripts_the_hosts_network() {
    let config = "processSandbox:\n  network: host\n";
    let ran = run_blocking(
        &pipeline_with_steps(&probe(
            "net",
            "exec 3<>/dev/tcp/127.0.0.1/5432 && echo reached-postgres",
        )),
        config,
        &[],
    );
    assert!(probed(&ran, "net").contains("reached-postgres"));
}

#[test]
fn a_run_step_sees_neither_the_runners_environment_nor_a_parallel_steps() {
    // SAFETY: set before the run reads anything; no other test uses this variable.
    unsafe { std::env::set_var("LOCKSTEP_HOSTILE_RUNNER_SECRET", "runner-secret-value") };
    let waiting = "- step:\n    type: Run\n    name: holder\n    identifier: holder\n    spec:\n      shell: Bash\n      envVariables:\n        TOKEN: parallel-secret-value\n      command: sleep 2\n";
    let snoop = probe(
        "snoop",
        &format!(
            "sleep 0.5; cat /proc/*/environ | tr '\\0' '\\n' | grep -c secret-value; ls /proc | grep -c '^[0-9]'; test -e /proc/{}/environ && echo runner-visible",
            std::process::id()
        ),
    );
    let ran = run_blocking(
        &pipeline_with_steps(&parallel(&(waiting.to_string() + &snoop))),
        "",
        &[],
    );
    let result = probed(&ran, "snoop");
    let counts: Vec<&str> = result.lines().collect();
    assert_eq!(
        counts[0], "0",
        "no secret of the runner or the parallel step: {result}"
    );
    assert!(
        counts[1].parse::<u32>().unwrap() < 10,
        "only its own processes: {result}"
    );
    assert!(!result.contains("runner-visible"), "{result}");
}

#[test]
fn a_daemonised_child_does_not_outlive_its_step() {
    let script = "setsid sh -c 'sleep 1; touch escaped' > /dev/null 2>&1 &\nnohup sh -c 'sleep 1; touch nohup' > /dev/null 2>&1 &\necho started";
    let ran = run_blocking(
        &pipeline_with_steps(&run_step("daemon", script, "")),
        "",
        &[],
    );
    assert_eq!(ran.status("daemon"), Status::Success);
    std::thread::sleep(std::time::Duration::from_millis(1600));
    let workspace = ran.dir.path().join("workspace/s");
    assert!(
        !workspace.join("escaped").exists() && !workspace.join("nohup").exists(),
        "a child of the finished step kept running"
    );
}

#[test]
fn processes_and_file_sizes_are_bounded_by_the_operators_limits() {
    let config = "processSandbox:\n  limits: { processes: 32, fileSize: 1Mi }\n";
    let forks = run_step("forks", "for i in $(seq 1 64); do sleep 5 & done; wait", "");
    let ran = run_blocking(&pipeline_with_steps(&forks), config, &[]);
    assert_eq!(
        ran.status("forks"),
        Status::Failed,
        "64 processes in a budget of 32"
    );
    assert!(
        ran.logs_of("forks")
            .iter()
            .any(|l| l.contains("fork") || l.contains("Resource temporarily unavailable")),
        "{:?}",
        ran.logs_of("forks")
    );
    let big = run_step("big", "head -c 2097152 /dev/zero > big", "");
    let ran = run_blocking(&pipeline_with_steps(&big), config, &[]);
    assert_eq!(ran.status("big"), Status::Failed);
    assert!(
        std::fs::metadata(ran.dir.path().join("workspace/s/big"))
            .unwrap()
            .len()
            <= 1 << 20
    );
}

#[test]
fn a_link_made_by_a_run_step_does_not_lead_a_wasm_step_outside_the_workspace() {
    let links = probe("links", "ln /etc/hostname hard; ln -s /etc soft; ls");
    let read_hard = custom("read_hard", "read-file", "path: /workspace/hard");
    let read_soft = "- step:\n    type: ReadFile\n    name: read_soft\n    identifier: read_soft\n    spec:\n      path: /etc-through-link/hostname\n";
    let config = step_types(&[(
        "read-file",
        "    grants:\n      files:\n        - { path: ., readOnly: true }\n        - { path: soft, guestPath: /etc-through-link, readOnly: true }\n",
    )]);
    let ran = run_blocking(
        &pipeline_with_steps(&(links + &parallel(&(read_hard + read_soft)))),
        &config,
        &[],
    );
    let result = probed(&ran, "links");
    assert!(
        !ran.dir.path().join("workspace/s/hard").exists(),
        "the hard link to a file outside was refused: {result}"
    );
    assert_eq!(ran.status("read_hard"), Status::Failed);
    let error = error_of(&ran, "read_soft");
    assert!(
        error.message.contains("symlink"),
        "the grant does not follow the planted symlink: {}",
        error.message
    );
}

#[test]
fn where_the_operator_turned_confinement_off_every_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        pipeline_with_steps(&run_step("x", "true", "")),
    )
    .unwrap();
    let config = dir.path().join("operator.yaml");
    std::fs::write(&config, "processSandbox: { confinement: off }\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("run")
        .arg(dir.path().join("p.yaml"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Run steps are NOT confined"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- 3. repository content cannot grant ----------------------------------------------------

#[test]
fn a_lockstep_yaml_shipped_in_the_repository_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("stolen");
    std::fs::write(&secret_file, "operator-only").unwrap();
    let repository_config = format!(
        "secrets:\n  loot: {{ file: {} }}\n{}",
        secret_file.display(),
        step_types(&[("needs-process", "    grants:\n      process: true\n")])
    );
    std::fs::write(dir.path().join("lockstep.yaml"), repository_config).unwrap();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        pipeline_with_steps(&custom("grab", "needs-process", "")),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("run")
        .arg("pipeline.yaml")
        .current_dir(dir.path())
        .env_remove("LOCKSTEP_CONFIG")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lockstep.yaml is not read") && stderr.contains("--config"),
        "{stderr}"
    );
    assert!(
        stderr.contains("step type `NeedsProcess` is not known"),
        "{stderr}"
    );
    let db = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["db", "status", "--instance", "main"])
        .current_dir(dir.path())
        .env_remove("LOCKSTEP_CONFIG")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(db.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&db.stderr).contains("say which lockstep.yaml with --config"),
        "{}",
        String::from_utf8_lossy(&db.stderr)
    );
}

fn kube_config(double: &ApiServerDouble, dir: &Path, connector: &str, extra: &str) -> String {
    format!(
        "  {connector}: {{ type: Kubernetes, kubeconfig: '{}', context: double{extra} }}\n",
        double.kubeconfig(dir).display()
    )
}

fn k8s_group(connector: &str, namespace: &str, steps: &str) -> String {
    group(
        "deploy",
        steps,
        &format!(
            "  stepGroupInfra:\n    type: KubernetesDirect\n    spec:\n      connectorRef: {connector}\n      namespace: {namespace}\n"
        ),
    )
}

fn apply(spec: &str) -> String {
    format!(
        "- step:\n    type: K8sApply\n    name: apply\n    identifier: apply\n    spec:\n{}",
        indent(spec, 6)
    )
}

fn write_manifests(manifests: &str) -> String {
    run_step(
        "write",
        &format!("mkdir -p app\ncat > app/m.yml <<'EOF'\n{manifests}EOF\n"),
        "",
    )
}

#[test]
fn a_pipeline_cannot_deploy_to_a_namespace_the_operator_did_not_allow() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "connectors:\n{}",
        kube_config(&double, dir.path(), "prod", ", namespaces: [shop]")
    );
    let config =
        lockstep::config::Config::parse(&dir.path().join("lockstep.yaml"), &config).unwrap();
    let pipeline = pipeline_with_steps(
        &(write_manifests(APP_MANIFESTS)
            + &k8s_group("prod", "kube-system", &apply("filePaths: [app]\n"))),
    );
    // Refused as the pipeline is loaded, before its first step (the manifests' writer) runs.
    let refused = lockstep::session::Session::load(&dir.path().join("p.yaml"), &pipeline, config)
        .err()
        .expect("a namespace the operator did not allow is invalid")
        .to_string();
    assert!(
        refused.contains(
            "namespace `kube-system` is not allowed for connector `prod` (allowed: shop)"
        ) && refused.contains("connectors.prod.namespaces")
            && refused.contains("stepGroupInfra.spec.namespace"),
        "{refused}"
    );
    assert!(double.requests().is_empty(), "{:?}", double.requests());
}

#[test]
fn a_steps_own_connector_ref_does_not_override_its_groups_cluster() {
    let (group_cluster, other) = (ApiServerDouble::start(), ApiServerDouble::start());
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let config = format!(
        "connectors:\n{}{}",
        kube_config(
            &group_cluster,
            dir.path(),
            "staging",
            ", namespaces: [shop]"
        ),
        kube_config(&other, other_dir.path(), "prod", ", namespaces: ['*']")
    );
    let pipeline = pipeline_with_steps(
        &(write_manifests(APP_MANIFESTS)
            + &k8s_group(
                "staging",
                "shop",
                &apply("connectorRef: prod\nfilePaths: [app]\n"),
            )),
    );
    let ran = run_blocking(&pipeline, &config, &[]);
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert!(
        group_cluster
            .object("configmaps", "shop", "app-settings")
            .is_some()
    );
    assert!(
        other.requests().is_empty(),
        "the step's connectorRef reached another cluster: {:?}",
        other.requests()
    );
}

const ROLE_BINDING: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: take-over
subjects:
  - { kind: ServiceAccount, name: default, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }
";

#[test]
fn an_rbac_object_in_the_manifests_needs_a_kind_the_operator_named() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "connectors:\n{}",
        kube_config(&double, dir.path(), "db", ", namespaces: [shop]")
    );
    let ran = run_blocking(
        &pipeline_with_steps(
            &(write_manifests(ROLE_BINDING)
                + &k8s_group("db", "shop", &apply("filePaths: [app]\n"))),
        ),
        &config,
        &[],
    );
    let error = error_of(&ran, "apply");
    assert_eq!(error.error_type, "Authorization");
    assert!(
        error
            .message
            .contains("RBAC kinds need a grant that names `RoleBinding`"),
        "{}",
        error.message
    );
    assert!(double.requests().is_empty(), "{:?}", double.requests());
}

#[test]
fn a_pipeline_cannot_pass_anything_off_as_the_operators_settings() {
    let path = component_path("echo-spec");
    let config = format!(
        "stepTypes:\n{}  PlainEcho:\n    component: {}\n    sha256: {}\n",
        step_type(
            "echo-spec",
            "    settings: { endpoint: https://audit.internal }\n"
        ),
        path.display(),
        sha256_of(&path)
    );
    let forged = "lockstep: { endpoint: https://evil.example }\nsettings: { endpoint: https://evil.example }\n";
    let steps =
        custom("configured", "echo-spec", forged) + &custom("unconfigured", "plain-echo", forged);
    let ran = run_blocking(&pipeline_with_steps(&steps), &config, &[]);
    assert_eq!(
        ran.output("configured", "settings"),
        r#"{"endpoint":"https://audit.internal"}"#
    );
    assert_eq!(ran.status("unconfigured"), Status::Success);
    assert!(
        !ran.node("unconfigured").outputs.contains_key("settings"),
        "{:?}",
        ran.node("unconfigured").outputs
    );
}

// ---- 4. capability grants without holes -----------------------------------------------------

#[test]
fn a_kube_list_without_a_namespace_and_a_cluster_scoped_kind_are_refused_before_any_request() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "connectors:\n{}{}",
        kube_config(&double, dir.path(), "db", ""),
        step_types(&[(
            "kube-get",
            "    grants:\n      kube: [{ connector: db, namespaces: [shop], kinds: ['*'], verbs: [get, list] }]\n"
        )])
    );
    let steps = parallel(
        &(custom("lister", "kube-get", "connector: db\nlist: true\n")
            + &custom(
                "namespaces",
                "kube-get",
                "connector: db\napiVersion: v1\nkind: Namespace\nname: kube-system\n",
            )),
    );
    let ran = run_blocking(&pipeline_with_steps(&steps), &config, &[]);
    assert!(
        error_of(&ran, "lister")
            .message
            .contains("listing every namespace is not granted (granted: shop)"),
        "{}",
        error_of(&ran, "lister").message
    );
    assert!(
        error_of(&ran, "namespaces")
            .message
            .contains("`Namespace` is cluster-scoped: a grant must name it"),
        "{}",
        error_of(&ran, "namespaces").message
    );
    assert!(
        double.requests().is_empty(),
        "not even discovery: {:?}",
        double.requests()
    );
}

#[test]
fn a_run_steps_kubectl_reaches_only_its_groups_namespace() {
    let double = ApiServerDouble::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "connectors:\n{}",
        kube_config(&double, dir.path(), "db", ", namespaces: [shop, billing]")
    );
    let kubectl = probe(
        "kubectl",
        "kubectl get configmaps -n billing; kubectl get secrets; kubectl get configmaps -A; kubectl get namespaces",
    );
    let ran = run_blocking(
        &pipeline_with_steps(&k8s_group("db", "shop", &kubectl)),
        &config,
        &[],
    );
    let result = probed(&ran, "kubectl");
    for refused in [
        "namespace `billing` is not granted",
        "Secrets need a grant",
        "listing every namespace is not granted",
        "`Namespace` is cluster-scoped",
    ] {
        assert!(result.contains(refused), "{refused}: {result}");
    }
    assert!(
        !double
            .object_requests()
            .iter()
            .any(|r| r.contains("/namespaces/billing/")
                || r.contains("/secrets")
                || r.ends_with("/api/v1/namespaces")),
        "{:?}",
        double.object_requests()
    );
}

fn sqlite_instance(db: &TestDb, step: &str) -> String {
    format!(
        "connectors:\n{}dbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n{}",
        db.connector("db"),
        step_types(&[(step, "    grants:\n      db: [main]\n")])
    )
}

/// Applies a YAML changelog to `db` with the DBSchemaApply step `apply`.
fn apply_yaml_changelog(db: &TestDb, changelog: &str) -> Ran {
    apply_changelog(db, "db/changelog.yaml", changelog)
}

/// Applies the changelog at `path` to `db` with the DBSchemaApply step `apply`.
fn apply_changelog(db: &TestDb, path: &str, changelog: &str) -> Ran {
    let config = sqlite_instance(db, "open-db").replace("db/changelog.sql", path);
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    run_blocking(&pipeline_with_steps(apply), &config, &[(path, changelog)])
}

/// Asserts that `step` failed on a statement SQLite's authorizer refused.
fn assert_refused_by_sqlite(ran: &Ran, step: &str) {
    let error = error_of(ran, step);
    assert!(
        error.message.contains("SQLite refused the statement"),
        "{step}: {}",
        error.message
    );
}

/// A directory beside the SQLite database, that a smuggled ATTACH or VACUUM INTO would write in.
struct Elsewhere(tempfile::TempDir);

impl Elsewhere {
    fn new() -> Self {
        Elsewhere(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str) -> String {
        self.0.path().join(name).display().to_string()
    }

    /// The statement that would open a second database file here.
    fn attach(&self) -> String {
        format!("ATTACH DATABASE '{}' AS other", self.file("attached.db"))
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_dir(self.0.path()).unwrap().count(),
            0,
            "no other file was created"
        );
    }
}

#[test]
fn sqlite_attach_and_vacuum_into_cannot_reach_another_file_from_a_step_or_a_changelog() {
    let db = TestDb::sqlite();
    let elsewhere = Elsewhere::new();
    let steps = custom(
        "attach",
        "open-db",
        &format!("instance: main\nsql: \"{}\"\n", elsewhere.attach()),
    ) + &custom(
        "vacuum",
        "open-db",
        &format!(
            "instance: main\nsql: \"VACUUM INTO '{}'\"\n",
            elsewhere.file("copy.db")
        ),
    );
    let changelog = format!(
        "--liquibase formatted sql\n--changeset mallory:1\nATTACH DATABASE '{}' AS other;\n",
        elsewhere.file("from-changelog.db")
    );
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    let ran = run_blocking(
        &pipeline_with_steps(&parallel(&(steps + apply))),
        &sqlite_instance(&db, "open-db"),
        &[("db/changelog.sql", &changelog)],
    );
    for step in ["attach", "vacuum", "apply"] {
        assert_refused_by_sqlite(&ran, step);
    }
    elsewhere.assert_untouched();
}

#[test]
fn merge_columns_on_sqlite_cannot_smuggle_an_attach_through_its_join_string_or_a_column_name() {
    let db = TestDb::sqlite();
    let elsewhere = Elsewhere::new();
    let attach = elsewhere.attach();
    let table = "databaseChangeLog:
  - changeSet:
      id: people
      author: mallory
      changes:
        - createTable: { tableName: people, columns: [{ column: { name: first, type: text } }, { column: { name: last, type: text } }] }
        - insert: { tableName: people, columns: [{ column: { name: first, value: Ada } }, { column: { name: last, value: Lovelace } }] }
";
    let merge = |column1: &str, join: &str| {
        format!(
            "{table}  - changeSet:
      id: merge
      author: mallory
      changes:
        - mergeColumns: {{ tableName: people, column1Name: \"{column1}\", column2Name: last, finalColumnName: full_name, finalColumnType: text, joinString: \"{join}\" }}
"
        )
    };

    // The join string is a literal, its quotes doubled: it lands as written.
    let join = format!("'); {attach}; --");
    let ran = apply_yaml_changelog(&db, &merge("first", &join));
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    let full_name = db.scalar("SELECT full_name FROM people");
    assert_eq!(full_name, Value::Text(format!("Ada{join}Lovelace")));

    // A column name is the changelog's SQL, as in Liquibase; what it smuggles meets SQLite's
    // authorizer, and the changeset is undone whole.
    let db = TestDb::sqlite();
    let ran = apply_yaml_changelog(&db, &merge(&format!("first; {attach}; --"), " "));
    assert_refused_by_sqlite(&ran, "apply");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM pragma_table_info('people') WHERE name = 'full_name'"),
        0,
        "the merge was rolled back"
    );
    elsewhere.assert_untouched();
}

#[test]
fn a_sqlite_table_rebuild_cannot_smuggle_an_attach_through_a_computed_default() {
    let db = TestDb::sqlite();
    let elsewhere = Elsewhere::new();
    let attach = elsewhere.attach();
    // The computed default is the changelog's SQL, written into the rebuilt CREATE TABLE.
    let changelog = format!(
        "databaseChangeLog:
  - changeSet:
      id: people
      author: mallory
      changes:
        - createTable: {{ tableName: people, columns: [{{ column: {{ name: id, type: int }} }}, {{ column: {{ name: name, type: text }} }}] }}
        - insert: {{ tableName: people, columns: [{{ column: {{ name: id, valueNumeric: 1 }} }}, {{ column: {{ name: name, value: Ada }} }}] }}
  - changeSet:
      id: default
      author: mallory
      changes:
        - addDefaultValue: {{ tableName: people, columnName: name, defaultValueComputed: \"1); {attach}; CREATE TABLE t (a\" }}
"
    );
    assert_refused_by_sqlite(&apply_yaml_changelog(&db, &changelog), "apply");
    // The rebuild was undone whole: the table, its text and its row are as they were.
    assert_eq!(
        db.scalar("SELECT sql FROM sqlite_schema WHERE name = 'people'"),
        Value::Text("CREATE TABLE people (id INTEGER, name TEXT)".into())
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM people WHERE name = 'Ada'"),
        1
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM DATABASECHANGELOG WHERE ID = 'default'"),
        0
    );
    elsewhere.assert_untouched();
}

#[test]
fn an_xml_changelog_nested_a_hundred_thousand_deep_fails_the_step_cleanly_before_any_write() {
    let db = TestDb::sqlite();
    let deep = format!(
        "<databaseChangeLog>\n{}{}</databaseChangeLog>\n",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let ran = apply_changelog(&db, "db/changelog.xml", &deep);
    let error = error_of(&ran, "apply");
    assert!(
        error
            .message
            .contains("db/changelog.xml:2: error: elements are nested more than 256 deep"),
        "{}",
        error.message
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'DATABASECHANGELOG'"),
        0
    );
}

#[test]
fn a_postgresql_superuser_connector_is_refused_unless_the_instance_allows_it() {
    let db = TestDb::postgres();
    let marker = tempfile::tempdir().unwrap().path().join("ran");
    let superuser = format!(
        "connectors:\n  db: {{ type: Postgres, url: 'postgres://postgres@127.0.0.1:5432/{}' }}\ndbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
        db.role()
    );
    let changelog = format!(
        "--liquibase formatted sql\n--changeset mallory:1\nCOPY (SELECT 1) TO PROGRAM 'touch {}';\n",
        marker.display()
    );
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    let ran = run_blocking(
        &pipeline_with_steps(apply),
        &superuser,
        &[("db/changelog.sql", &changelog)],
    );
    let error = error_of(&ran, "apply");
    assert_eq!(error.error_type, "Authorization", "{}", error.message);
    assert!(
        error
            .message
            .contains("connects as `postgres`, a superuser")
            && error.message.contains("allowSuperuser: true"),
        "{}",
        error.message
    );
    assert!(!marker.exists(), "no host program ran");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'databasechangelog'"),
        0,
        "nothing was written"
    );
}

#[test]
fn a_step_granted_one_mysql_instance_cannot_even_connect_to_another() {
    let db = TestDb::mariadb();
    // `other` points at a listener standing in for a second MySQL server: it counts connections.
    let other_server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other_server.set_nonblocking(true).unwrap();
    let config = format!(
        "connectors:\n{}  elsewhere: {{ type: MySql, url: 'mysql://root@{}/billing' }}\ndbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n  other: {{ schema: app, connector: elsewhere, allowSuperuser: true }}\n{}",
        db.connector("db"),
        other_server.local_addr().unwrap(),
        step_types(&[("open-db", "    grants:\n      db: [main]\n")])
    );
    let steps = custom(
        "mine",
        "open-db",
        "instance: main\nsql: \"create table mine (id int)\"\n",
    ) + &custom(
        "theirs",
        "open-db",
        "instance: other\nsql: \"create table stolen (id int)\"\n",
    );
    let ran = run_blocking(&pipeline_with_steps(&parallel(&steps)), &config, &[]);
    assert_eq!(
        ran.status("mine"),
        Status::Success,
        "{:?}",
        ran.node("mine").error
    );
    let error = error_of(&ran, "theirs");
    assert_eq!(error.error_type, "Authorization", "{}", error.message);
    assert!(
        error
            .message
            .contains("was not granted database instance `other` (granted: main)"),
        "{}",
        error.message
    );
    assert!(
        other_server.accept().is_err(),
        "nothing reached the other server, not even a connection"
    );
}

#[test]
fn a_mariadb_user_with_global_privileges_is_refused_unless_the_instance_allows_it() {
    let db = TestDb::mariadb();
    let outfile = tempfile::tempdir().unwrap().path().join("dumped");
    let root = format!(
        "connectors:\n  db: {{ type: MySql, url: 'mysql://root@127.0.0.1:3306/{}' }}\ndbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
        db.role()
    );
    let changelog = format!(
        "--liquibase formatted sql\n--changeset mallory:1\nSELECT 1 INTO OUTFILE '{}';\n",
        outfile.display()
    );
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    let ran = run_blocking(
        &pipeline_with_steps(apply),
        &root,
        &[("db/changelog.sql", &changelog)],
    );
    let error = error_of(&ran, "apply");
    assert_eq!(error.error_type, "Authorization", "{}", error.message);
    assert!(
        error.message.contains("connects as `root@")
            && error.message.contains("global privileges")
            && error.message.contains("allowSuperuser: true"),
        "{}",
        error.message
    );
    assert!(!outfile.exists(), "no server file was written");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"),
        0,
        "nothing was written"
    );
}

#[test]
fn a_changelog_value_ending_in_a_backslash_cannot_close_its_literal_on_mariadb() {
    // Were the backslash not doubled, `'x\'` would escape its closing quote and the next value
    // would be read as SQL: the DROP.
    let db = TestDb::mariadb();
    use lockstep_changelog::db::Sql;
    let mut session = db.session();
    for sql in [
        "CREATE TABLE victims (id int)",
        "INSERT INTO victims VALUES (1)",
        "CREATE TABLE notes (a varchar(50), b varchar(50))",
    ] {
        session.batch(sql).unwrap();
    }
    let changelog = r"databaseChangeLog:
  - changeSet:
      id: 1
      author: mallory
      changes:
        - insert: { tableName: notes, columns: [{ column: { name: a, value: 'x\' } }, { column: { name: b, value: ', 1); DROP TABLE victims; -- ' } }] }
";
    let config = format!(
        "connectors:\n{}dbSchemas:\n  app: {{ changelog: db/changelog.yaml }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
        db.connector("db")
    );
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    let ran = run_blocking(
        &pipeline_with_steps(apply),
        &config,
        &[("db/changelog.yaml", changelog)],
    );
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM victims"),
        1,
        "the DROP never ran"
    );
    assert_eq!(
        db.count(
            r"SELECT COUNT(*) FROM notes WHERE a = 'x\\' AND b = ', 1); DROP TABLE victims; -- '"
        ),
        1,
        "both values landed as written"
    );
}

#[test]
fn neither_a_changelog_nor_a_step_can_make_the_runner_send_a_host_file_to_mariadb() {
    let db = TestDb::mariadb();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "host secret\n").unwrap();
    let load = |table: &str| {
        format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE {table}",
            secret.path().display()
        )
    };
    let config = format!(
        "connectors:\n{}dbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n{}",
        db.connector("db"),
        step_types(&[("open-db", "    grants:\n      db: [main]\n")])
    );
    let changelog = format!(
        "--liquibase formatted sql\n--changeset mallory:1\ncreate table loot (line text);\n--changeset mallory:2\n{};\n",
        load("loot")
    );
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    let steal = custom(
        "steal",
        "open-db",
        &format!(
            "instance: main\nsql: \"create table stolen (line text); {}\"\n",
            load("stolen")
        ),
    );
    let ran = run_blocking(
        &pipeline_with_steps(&parallel(&format!("{apply}{steal}"))),
        &config,
        &[("db/changelog.sql", &changelog)],
    );
    for step in ["apply", "steal"] {
        let error = error_of(&ran, step);
        assert!(
            error
                .message
                .contains("asked for a file of the runner's machine"),
            "{step}: {}",
            error.message
        );
    }
    for table in ["loot", "stolen"] {
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM {table}")),
            0,
            "no line of the file reached the server"
        );
    }
}

#[test]
fn a_mongodb_step_cannot_write_another_database() {
    let mongo = Secantus::start();
    let config = format!(
        "connectors:\n  m: {{ type: MongoDB, uri: '{}/orders' }}\ndbSchemas:\n  app: {{ changelog: c.yaml }}\ndbInstances:\n  main: {{ schema: app, connector: m }}\n{}",
        mongo.uri(),
        step_types(&[("mongo-command", "    grants:\n      db: [main]\n")])
    );
    let command = r#"{"aggregate": "people", "pipeline": [{"$match": {}}, {"$out": {"db": "billing", "coll": "stolen"}}], "cursor": {}}"#;
    let ran = run_blocking(
        &pipeline_with_steps(&custom(
            "exfiltrate",
            "mongo-command",
            &format!("instance: main\ncommand: '{command}'\n"),
        )),
        &config,
        &[],
    );
    let error = error_of(&ran, "exfiltrate");
    assert_eq!(error.error_type, "Authorization");
    assert!(
        error.message.contains("names database `billing`"),
        "{}",
        error.message
    );
    assert!(
        MongoSession::open(&mongo, "billing", false)
            .collections()
            .is_empty()
    );
}

fn origin_with(root: &Path, name: &str, files: &[(&str, &str)]) -> Origin {
    let origin = Origin::init(&root.join(name));
    origin.commit("content", files);
    origin
}

fn clone_step(id: &str, spec: &str) -> String {
    format!(
        "- step:\n    type: GitClone\n    name: {id}\n    identifier: {id}\n    spec:\n{}",
        indent(spec, 6)
    )
}

#[test]
fn a_repo_name_cannot_climb_out_of_an_account_connectors_prefix() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("team")).unwrap();
    origin_with(
        &root.path().join("private"),
        "r",
        &[("secret.txt", "private\n")],
    );
    let config = format!(
        "connectors:\n  team: {{ type: Git, url: 'file://{}/team', connectionType: Account }}\n",
        root.path().display()
    );
    let ran = run_blocking(
        &pipeline_with_steps(&clone_step(
            "steal",
            "connectorRef: team\nrepoName: ../private/r\ncloneDirectory: loot\nbuild: { type: branch, spec: { branch: main } }\n",
        )),
        &config,
        &[],
    );
    let error = error_of(&ran, "steal");
    assert!(
        error
            .message
            .contains("repoName `../private/r` must be a repository path"),
        "{}",
        error.message
    );
    assert!(!ran.dir.path().join("workspace/s/loot").exists());
}

#[test]
fn a_symlink_committed_in_one_clone_does_not_lead_another_clone_outside_the_workspace() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let trap = Origin::init(&root.path().join("trap"));
    trap.commit("plain", &[("README", "hi\n")]);
    std::os::unix::fs::symlink(outside.path(), root.path().join("trap/escape")).unwrap();
    let mut index = trap.repository.index().unwrap();
    index.add_path(Path::new("escape")).unwrap();
    index.write().unwrap();
    trap.commit("a symlink out", &[]);
    origin_with(root.path(), "payload", &[("evil.sh", "echo owned\n")]);
    let config = format!(
        "connectors:\n  git: {{ type: Git, url: 'file://{}', connectionType: Account }}\n",
        root.path().display()
    );
    let steps = clone_step(
        "first",
        "connectorRef: git\nrepoName: trap\nbuild: { type: branch, spec: { branch: main } }\n",
    ) + &clone_step(
        "second",
        "connectorRef: git\nrepoName: payload\ncloneDirectory: trap/escape/payload\nbuild: { type: branch, spec: { branch: main } }\n",
    );
    let ran = run_blocking(&pipeline_with_steps(&steps), &config, &[]);
    assert_eq!(
        ran.status("first"),
        Status::Success,
        "{:?}",
        ran.node("first").error
    );
    assert!(
        std::fs::symlink_metadata(ran.dir.path().join("workspace/s/trap/escape"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the clone kept its symlink"
    );
    let error = error_of(&ran, "second");
    assert!(
        error.message.contains("goes through a symlink"),
        "{}",
        error.message
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing was written outside the workspace"
    );
}

#[test]
fn a_step_cannot_hold_more_connections_or_handles_than_its_limits() {
    let db = TestDb::sqlite();
    let config = sqlite_instance(&db, "open-db") + &step_type("hog-handles", "");
    let steps = custom("pool", "open-db", "instance: main\nconnections: 99\n")
        + &custom("handles", "hog-handles", "count: 5000\n");
    let ran = run_blocking(&pipeline_with_steps(&parallel(&steps)), &config, &[]);
    let pool = error_of(&ran, "pool");
    assert_eq!(pool.error_type, "ResourceLimitsFailure", "{}", pool.message);
    assert!(
        pool.message.contains("at most 8 connections"),
        "{}",
        pool.message
    );
    let handles = error_of(&ran, "handles");
    assert_eq!(
        handles.error_type, "ResourceLimitsFailure",
        "{}",
        handles.message
    );
    assert!(
        handles.message.contains("too many handles"),
        "{}",
        handles.message
    );
}

// ---- 5. secrets and terminal output ---------------------------------------------------------

#[test]
fn a_secret_reached_only_through_a_connectors_password_ref_is_masked_in_every_form() {
    let db = TestDb::postgres();
    // SAFETY: set before the run reads it; no other test uses this variable.
    unsafe { std::env::set_var("LOCKSTEP_HOSTILE_DB_PASSWORD", "pw-0f3e/9+x") };
    let config = format!(
        "connectors:\n  db: {{ type: Postgres, url: 'postgres://{0}@127.0.0.1:5432/{0}', passwordRef: pw }}\nsecrets:\n  pw: {{ env: LOCKSTEP_HOSTILE_DB_PASSWORD }}\ndbSchemas:\n  app: {{ changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
        db.role()
    );
    let apply = "- step:\n    type: DBSchemaApply\n    name: apply\n    identifier: apply\n    spec:\n      dbSchema: app\n      dbInstance: main\n";
    let leak = run_step_with_outputs(
        "leak",
        "P='pw-0f3e/9+x'\necho \"plain $P\"\necho \"base64 $(printf %s \"$P\" | base64)\"\necho \"url pw-0f3e%2F9%2Bx\"\nOUT=$P",
        &["OUT"],
        "",
    );
    let ran = run_blocking(
        &pipeline_with_steps(&(apply.to_string() + &leak)),
        &config,
        &[("db/changelog.sql", "--liquibase formatted sql\n")],
    );
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    let logs = ran.logs_of("leak").join("\n");
    for form in ["pw-0f3e/9+x", "cHctMGYzZS85K3g=", "pw-0f3e%2F9%2Bx"] {
        assert!(!logs.contains(form), "{form} in {logs}");
    }
    assert_eq!(logs.matches("**************").count(), 3, "{logs}");
    assert_eq!(
        ran.report()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["identifier"] == "leak")
            .unwrap()["outputs"]["OUT"],
        "**************"
    );
}

#[test]
fn a_custom_steps_summary_and_error_are_masked_and_stripped_of_control_sequences() {
    // SAFETY: set before the run reads it; no other test uses this variable.
    unsafe { std::env::set_var("LOCKSTEP_HOSTILE_TOKEN", "tok-8c1d2e") };
    let config = "secrets:\n  tok: { env: LOCKSTEP_HOSTILE_TOKEN }\n".to_string()
        + &step_types(&[("echo-spec", "")]);
    let steps = custom(
        "summary",
        "echo-spec",
        "summary: \"done <+secrets.getValue(\\\"tok\\\")> \\e]0;pwned\\a\\e[2J\"\n",
    ) + &custom(
        "failure",
        "echo-spec",
        "fail: \"bad <+secrets.getValue(\\\"tok\\\")> \\e[31mred\"\n",
    );
    let ran = run_blocking(&pipeline_with_steps(&parallel(&steps)), &config, &[]);
    let report = ran.report();
    let node = |id: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["identifier"] == id)
            .unwrap()
            .clone()
    };
    let summary = node("summary")["summary"].as_str().unwrap().to_string();
    assert_eq!(summary, "done ************** ", "{summary:?}");
    let message = node("failure")["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(message, "bad ************** red", "{message:?}");
    let recorded = ran.node("summary").summary.clone().unwrap();
    assert!(
        !recorded.contains('\u{1b}') && !recorded.contains("tok-8c1d2e"),
        "{recorded:?}"
    );
}

// ---- 6. version confusion -------------------------------------------------------------------

#[test]
fn a_component_built_for_a_newer_step_api_says_which_versions_this_lockstep_provides() {
    let wasm = std::fs::read(component_path("future-step")).unwrap();
    let error = sandbox()
        .load(&wasm, None)
        .err()
        .expect("a component for lockstep:step@0.2.0 was loaded");
    let message = error.to_string();
    assert!(
        message.contains("lockstep:step/host@0.2.0")
            && message.contains("built for lockstep:step@0.2.0")
            && message.contains("provides lockstep:step@0.1.0")
            && message.contains("upgrade Lockstep"),
        "{message}"
    );
}
