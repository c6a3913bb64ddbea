//! The GitClone step and the `lockstep:git` capability, against local repositories made by the
//! tests (libgit2 on both sides; no `git` binary).

mod support;

use std::path::{Path, PathBuf};

use lockstep::exec::Cancel;
use lockstep::exec::status::Status;
use support::git::Origin;
use support::*;

/// `<root>/orkes`: main has two commits (tag `v1` on the first), `feature` one more.
struct Repos {
    root: tempfile::TempDir,
    v1: String,
    main: String,
    feature: String,
}

fn repos() -> Repos {
    let root = tempfile::tempdir().unwrap();
    let origin = Origin::init(&root.path().join("orkes"));
    let v1 = origin.commit("first", &[("deployment.yml", "version: 1\n")]);
    origin.tag("v1");
    let main = origin.commit(
        "second",
        &[
            ("deployment.yml", "version: 2\n"),
            ("db/changelog.yaml", "databaseChangeLog: []\n"),
        ],
    );
    origin.switch("feature");
    let feature = origin.commit("feature work", &[("deployment.yml", "version: 3\n")]);
    origin.switch("main");
    Repos {
        root,
        v1,
        main,
        feature,
    }
}

fn config(repos: &Repos, extra: &str) -> String {
    format!(
        "connectors:\n  demodb: {{ type: Git, url: 'file://{}', connectionType: Account }}\n  orkes_repo: {{ type: Git, url: 'file://{}/orkes' }}\n{extra}",
        repos.root.path().display(),
        repos.root.path().display()
    )
}

fn clone_step(id: &str, spec: &str) -> String {
    format!(
        "- step:\n    type: GitClone\n    name: {id}\n    identifier: {id}\n    spec:\n{}",
        indent(spec, 6)
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

/// The stage workspace of the one-stage test pipeline.
fn workspace(ran: &Ran) -> PathBuf {
    ran.dir.path().join("workspace/s")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_docs_clone_lands_under_repo_name_where_later_steps_find_it() {
    let repos = repos();
    let steps = clone_step(
        "Git_Clone",
        "connectorRef: demodb\nrepoName: orkes\nbuild:\n  type: branch\n  spec:\n    branch: main\n",
    ) + &run_step_with_outputs(
        "deploy",
        "cd orkes\nDEPLOYMENT=$(cat deployment.yml)\n",
        &["DEPLOYMENT"],
        "",
    );
    let ran = run_sync(&pipeline_with_steps(&steps), &config(&repos, ""));
    assert_eq!(
        ran.status("Git_Clone"),
        Status::Success,
        "{:?}",
        ran.node("Git_Clone").error
    );
    assert_eq!(ran.output("Git_Clone", "commitSha"), repos.main);
    assert_eq!(ran.output("Git_Clone", "cloneDirectory"), "orkes");
    assert_eq!(ran.output("deploy", "DEPLOYMENT"), "version: 2");
    assert!(workspace(&ran).join("orkes/db/changelog.yaml").exists());
}

#[test]
fn a_tag_a_commit_and_another_branch_check_out_what_they_name() {
    let repos = repos();
    let abbreviated = &repos.v1[..10];
    let steps = clone_step(
        "by_tag",
        "connectorRef: orkes_repo\nbuild: { type: tag, spec: { tag: v1 } }\ncloneDirectory: tagged\n",
    ) + &clone_step(
        "by_commit",
        &format!(
            "connectorRef: orkes_repo\nbuild: {{ type: commitSha, spec: {{ commitSha: {abbreviated} }} }}\ncloneDirectory: /harness/pinned\n"
        ),
    ) + &clone_step(
        "by_branch",
        "connectorRef: orkes_repo\nbuild: { type: branch, spec: { branch: feature } }\ndepth: 1\ncloneDirectory: work/feature\n",
    );
    let ran = run_sync(&pipeline_with_steps(&steps), &config(&repos, ""));
    for id in ["by_tag", "by_commit", "by_branch"] {
        assert_eq!(
            ran.status(id),
            Status::Success,
            "{id}: {:?}",
            ran.node(id).error
        );
    }
    assert_eq!(
        ran.output("by_tag", "commitSha"),
        repos.v1,
        "an annotated tag is peeled to its commit"
    );
    assert_eq!(
        read(&workspace(&ran).join("tagged/deployment.yml")),
        "version: 1\n"
    );
    assert_eq!(ran.output("by_commit", "commitSha"), repos.v1);
    assert_eq!(
        read(&workspace(&ran).join("pinned/deployment.yml")),
        "version: 1\n",
        "/harness/… maps into the workspace"
    );
    assert_eq!(ran.output("by_branch", "commitSha"), repos.feature);
    assert_eq!(
        read(&workspace(&ran).join("work/feature/deployment.yml")),
        "version: 3\n"
    );
}

#[test]
fn a_missing_branch_fails_the_step_and_leaves_nothing_behind() {
    let repos = repos();
    // An unquoted all-digit commit reads as a number in YAML; it is still a commit id.
    let steps = clone_step(
        "clone",
        "connectorRef: orkes_repo\nbuild: { type: branch, spec: { branch: nope } }\n",
    ) + &clone_step(
        "digits",
        "connectorRef: orkes_repo\nbuild: { type: commitSha, spec: { commitSha: 1234567 } }\ncloneDirectory: digits\n",
    );
    let ran = run_sync(&pipeline_with_steps(&parallel(&steps)), &config(&repos, ""));
    assert_eq!(ran.status("clone"), Status::Failed);
    let error = ran.node("clone").error.clone().unwrap();
    assert!(
        error.message.contains("branch `nope` is not in"),
        "{}",
        error.message
    );
    let error = ran.node("digits").error.clone().unwrap();
    assert!(
        error.message.contains("commit `1234567` is not in"),
        "{}",
        error.message
    );
    assert!(
        !workspace(&ran).join("orkes").exists(),
        "no half-made checkout"
    );
}

#[test]
fn a_step_cannot_clone_from_a_connector_it_was_not_granted() {
    let repos = repos();
    let clone_repo = step_type("clone-repo", "    grants:\n      git: [orkes_repo]\n");
    let config = config(
        &repos,
        &format!(
            "  other: {{ type: Git, url: 'file://{}/orkes' }}\nstepTypes:\n{clone_repo}",
            repos.root.path().display()
        ),
    );
    let custom = |id: &str, connector: &str| {
        format!(
            "- step:\n    type: CloneRepo\n    name: {id}\n    identifier: {id}\n    spec:\n      connector: {connector}\n      directory: {id}\n"
        )
    };
    let ran = run_sync(
        &pipeline_with_steps(&parallel(
            &(custom("mine", "orkes_repo") + &custom("theirs", "other")),
        )),
        &config,
    );
    assert_eq!(
        ran.status("mine"),
        Status::Success,
        "{:?}",
        ran.node("mine").error
    );
    assert_eq!(ran.output("mine", "commitSha"), repos.main);
    let error = ran.node("theirs").error.clone().unwrap();
    assert_eq!(error.error_type, "Authorization");
    assert!(
        error
            .message
            .contains("was not granted Git connector `other` (granted: orkes_repo)"),
        "{}",
        error.message
    );
    assert!(
        !workspace(&ran).join("theirs").exists(),
        "nothing was fetched"
    );
}

#[test]
fn validate_explains_a_bad_git_clone_spec() {
    let repos = repos();
    let steps = clone_step(
        "clone",
        "connectorRef: demodb\nbuild:\n  type: branch\n  spec: {}\nlfs: true\n",
    ) + &clone_step(
        "pinned",
        "connectorRef: demodb\nrepoName: orkes\nbuild: { type: commitSha, spec: { commitSha: 0123456 } }\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        pipeline_with_steps(&steps),
    )
    .unwrap();
    std::fs::write(dir.path().join("lockstep.yaml"), config(&repos, "")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["validate", "pipeline.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`build.type: branch` needs `build.spec.branch`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`lfs` is ignored by Lockstep's GitClone"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("`commitSha: 0123456` reads as the number 123456; its leading zero is lost"),
        "{stderr}"
    );
}

const SCHEMA: &str = "--liquibase formatted sql\n--changeset alice:1\ncreate table person (id int primary key);\n--rollback drop table person;\n--changeset alice:2\ncreate table pet (id int primary key);\n--rollback drop table pet;\n";

/// `<root>/schemas` holds `db/changelog.sql` on `main`.
fn schema_repo(root: &Path) {
    let origin = Origin::init(&root.join("schemas"));
    origin.commit("schema", &[("db/changelog.sql", SCHEMA)]);
}

fn git_schema_config(repos: &Repos, db: &support::db::TestDb) -> String {
    format!(
        "{}{}dbSchemas:\n  app: {{ connectorRef: demodb, repoName: schemas, branch: main, changelog: db/changelog.sql }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
        config(repos, ""),
        db.connector("db")
    )
}

fn db_step(kind: &str, id: &str, spec: &str) -> String {
    format!(
        "- step:\n    type: {kind}\n    name: {id}\n    identifier: {id}\n    spec:\n      dbSchema: app\n      dbInstance: main\n{}",
        indent(spec, 6)
    )
}

#[test]
fn a_db_schema_in_a_git_repository_is_fetched_and_keeps_its_path_as_filename() {
    let repos = repos();
    schema_repo(repos.root.path());
    let db = support::db::TestDb::sqlite();
    let steps = db_step("DBSchemaApply", "apply", "tag: v1\n")
        + &db_step("DBSchemaRollback", "undo", "changeSetCount: 1\n");
    let ran = run_sync(
        &pipeline_with_steps(&steps),
        &git_schema_config(&repos, &db),
    );
    assert_eq!(
        ran.status("apply"),
        Status::Success,
        "{:?}",
        ran.node("apply").error
    );
    assert_eq!(ran.output("apply", "changeSetsApplied"), "2");
    assert_eq!(
        ran.status("undo"),
        Status::Success,
        "{:?}",
        ran.node("undo").error
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM DATABASECHANGELOG WHERE FILENAME = 'db/changelog.sql'"),
        1,
        "FILENAME is the path inside the repository"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'pet'"),
        0,
        "rolled back"
    );
}

#[test]
fn the_db_steps_of_a_run_share_one_checkout_so_a_rollback_reads_the_changelog_its_apply_read() {
    let repos = repos();
    schema_repo(repos.root.path());
    let db = support::db::TestDb::sqlite();
    // Between the apply and the rollback, `main` moves on: alice:2's rollback there also creates a table.
    let schemas = repos.root.path().join("schemas");
    let moved = repos.root.path().join("moved.sql");
    std::fs::write(
        &moved,
        SCHEMA.replace(
            "--rollback drop table pet;",
            "--rollback drop table pet; create table moved (id int);",
        ),
    )
    .unwrap();
    let move_main = format!(
        "cp {} {}/db/changelog.sql && git -C {} -c user.name=t -c user.email=t@example.com commit -qam moved",
        moved.display(),
        schemas.display(),
        schemas.display()
    );
    let steps = db_step("DBSchemaApply", "apply", "tag: v1\n")
        + &run_step("move", &move_main, "")
        + &db_step("DBSchemaRollback", "undo", "changeSetCount: 1\n");
    // The operator lets scripts reach the origin, which is outside the stage workspace.
    let share_origin = format!(
        "processSandbox:\n  paths:\n    - {{ path: '{}', readOnly: false }}\n",
        repos.root.path().display()
    );
    let ran = run_sync(
        &pipeline_with_steps(&steps),
        &(git_schema_config(&repos, &db) + &share_origin),
    );
    for step in ["apply", "move", "undo"] {
        assert_eq!(
            ran.status(step),
            Status::Success,
            "{step}: {:?}",
            ran.node(step).error
        );
    }
    assert!(
        read(&schemas.join("db/changelog.sql")).contains("create table moved"),
        "main moved during the run"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'pet'"),
        0,
        "rolled back"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'moved'"),
        0,
        "the rollback used the changelog the apply used"
    );
    let checkouts = std::fs::read_dir(workspace(&ran).join(".lockstep/schemas"))
        .unwrap()
        .count();
    assert_eq!(checkouts, 1, "the schema was fetched once for both steps");
}

#[test]
fn lockstep_db_fetches_a_git_hosted_schema_too() {
    let repos = repos();
    schema_repo(repos.root.path());
    let db = support::db::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lockstep.yaml"),
        git_schema_config(&repos, &db),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["db", "update", "--instance", "main"])
        .args(["--config", "lockstep.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM DATABASECHANGELOG WHERE FILENAME = 'db/changelog.sql'"),
        2
    );

    // A reference that is not there: a clear error, and nothing applied.
    let broken = git_schema_config(&repos, &db).replace("branch: main", "branch: release");
    std::fs::write(dir.path().join("lockstep.yaml"), broken).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["db", "status", "--instance", "main"])
        .args(["--config", "lockstep.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("branch `release` is not in"), "{stderr}");
}

/// A smart-HTTP Git server over HTTPS (`git http-backend` behind basic auth, with a self-signed
/// certificate) serving the repositories under `root`; killed when dropped.
struct HttpsGitServer {
    child: std::process::Child,
    port: u16,
    certificate: PathBuf,
    _dir: tempfile::TempDir,
}

impl HttpsGitServer {
    fn start(root: &Path, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .output()
            .expect("openssl makes the test certificate");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let port_file = dir.path().join("port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/support/files/git_https_server.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .arg(root)
            .arg(&certificate)
            .arg(&key)
            .args(["bot", token])
            .arg(&port_file)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !port_file.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the HTTPS Git server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        HttpsGitServer {
            child,
            port,
            certificate,
            _dir: dir,
        }
    }
}

impl Drop for HttpsGitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_https_remote_is_cloned_with_the_token_from_a_secret() {
    let repos = repos();
    let server = HttpsGitServer::start(repos.root.path(), "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "connectors:\n  gh: {{ type: Git, url: 'https://localhost:{}/orkes', username: bot, tokenRef: gh_token }}\nsecrets:\n  gh_token: {{ env: GH_TOKEN }}\n",
        server.port
    );
    std::fs::write(dir.path().join("lockstep.yaml"), config).unwrap();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        pipeline_with_steps(&clone_step(
            "clone",
            "connectorRef: gh\nbuild: { type: branch, spec: { branch: main } }\n",
        )),
    )
    .unwrap();
    let run = |token: &str, workspace: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args([
                "run",
                "pipeline.yaml",
                "--config",
                "lockstep.yaml",
                "--workspace",
                workspace,
            ])
            .env("GH_TOKEN", token)
            .env("SSL_CERT_FILE", &server.certificate)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let cloned = run("s3cret", "ok");
    assert!(
        cloned.status.success(),
        "{}",
        String::from_utf8_lossy(&cloned.stderr)
    );
    assert_eq!(
        read(&dir.path().join("ok/s/orkes/deployment.yml")),
        "version: 2\n"
    );

    let refused = run("wrong", "refused");
    let output = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        output.contains("check the connector's `tokenRef`"),
        "{output}"
    );
    assert!(
        !output.contains("wrong"),
        "the token is never printed: {output}"
    );
    assert!(!dir.path().join("refused/s/orkes").exists());
}
