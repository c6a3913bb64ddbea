//! K8sRollingDeploy and K8sRollingRollback: releases kept per app, one history object per
//! release, pruning that touches only the release's own objects, and deploys that race or run
//! out of time, against the API-server double.

mod support;

use lockstep::exec::status::Status;
use serde_json::Value;
use support::k8s::*;
use support::kube_double::{APP_MANIFESTS, ApiServerDouble, Rollout};

const DEPLOY: &str = "filePaths: [app]\npruningEnabled: true\n";

fn deploy_step(spec: &str) -> String {
    k8s_step("K8sRollingDeploy", "deploy", spec, "")
}

fn rollback_on_failure() -> String {
    k8s_step(
        "K8sRollingRollback",
        "rollback",
        "{}\n",
        "  when:\n    stageStatus: Failure\n",
    )
}

/// The app's Deployment and ConfigMap, named `app` (`go-mongodb-app`, `app-settings` for the
/// default app).
fn app(name: &str) -> String {
    APP_MANIFESTS
        .replace("go-mongodb-app", name)
        .replace("app-settings", &format!("{name}-settings"))
}

/// The history objects of release `key`, oldest first: (number, status).
fn history(double: &ApiServerDouble, key: &str) -> Vec<(u64, String)> {
    let mut releases: Vec<(u64, String)> = double
        .objects("configmaps", "shop")
        .iter()
        .filter(|o| {
            let labels = &o["metadata"]["labels"];
            labels["lockstep.io/release"] == key && labels["lockstep.io/release-number"].is_string()
        })
        .map(|o| {
            let labels = &o["metadata"]["labels"];
            (
                labels["lockstep.io/release-number"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
                labels["lockstep.io/status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    releases.sort();
    releases
}

fn image(double: &ApiServerDouble) -> String {
    double
        .object("deployments", "shop", "go-mongodb-app")
        .unwrap()
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

fn error(ran: &support::Ran, step: &str) -> String {
    ran.node(step)
        .error
        .clone()
        .unwrap_or_else(|| panic!("{step} did not fail"))
        .message
}

#[test]
fn a_rolling_deploy_records_releases_and_the_rollback_restores_the_last_good_one() {
    let double = ApiServerDouble::start();
    let ran = Deploy {
        files: &[("app/deployment.yml", APP_MANIFESTS)],
        steps: &deploy_step(DEPLOY),
        ..Deploy::default()
    }
    .run(&double);
    assert_eq!(
        ran.status("deploy"),
        Status::Success,
        "{:?}",
        ran.node("deploy").error
    );
    assert_eq!(ran.output("deploy", "releaseNumber"), "1");

    // Release 2 changes to an image that cannot be pulled and drops the ConfigMap: the deploy
    // fails as soon as its pod is stuck, and the stage's rollback restores release 1.
    double.break_image("registry.example.com/app:2.0");
    let second = APP_MANIFESTS
        .split("---")
        .next()
        .unwrap()
        .replace("app:1.0", "app:2.0");
    let ran = Deploy {
        files: &[("app/deployment.yml", &second)],
        steps: &(deploy_step(DEPLOY) + &rollback_on_failure()),
        ..Deploy::default()
    }
    .run(&double);
    assert_eq!(ran.status("deploy"), Status::Failed);
    let message = error(&ran, "deploy");
    assert!(
        message.contains("cannot roll out")
            && message.contains("ImagePullBackOff")
            && message.contains("Failed to pull image \"registry.example.com/app:2.0\""),
        "the pod and its events say why: {message}"
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
    assert_eq!(
        history(&double, "test-s"),
        [(1, "Succeeded".to_string()), (2, "RolledBack".to_string())]
    );
    assert!(
        double
            .object("configmaps", "shop", "lockstep.release.test-s.v2")
            .is_some()
    );
}

#[test]
fn a_successful_rolling_deploy_with_pruning_deletes_what_the_last_release_had_and_this_one_lacks() {
    let double = ApiServerDouble::start();
    let deploy = |manifests: &str| {
        Deploy {
            files: &[("app/deployment.yml", manifests)],
            steps: &deploy_step(DEPLOY),
            ..Deploy::default()
        }
        .run(&double)
    };
    deploy(APP_MANIFESTS);
    let settings = double.object("configmaps", "shop", "app-settings").unwrap();
    assert_eq!(
        settings["metadata"]["labels"]["lockstep.io/release"], "test-s",
        "every object a release applies carries its label"
    );
    let ran = deploy(APP_MANIFESTS.split("---").next().unwrap());
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
fn pruning_text_true_is_on_for_the_step_and_for_its_grant() {
    let double = ApiServerDouble::start();
    let spec = "filePaths: [app]\npruningEnabled: \"True\"\n";
    for manifests in [APP_MANIFESTS, APP_MANIFESTS.split("---").next().unwrap()] {
        let ran = Deploy {
            files: &[("app/deployment.yml", manifests)],
            steps: &deploy_step(spec),
            ..Deploy::default()
        }
        .run(&double);
        assert_eq!(
            ran.status("deploy"),
            Status::Success,
            "{:?}",
            ran.node("deploy").error
        );
    }
    assert!(
        double
            .object("configmaps", "shop", "app-settings")
            .is_none()
    );
}

#[test]
fn each_apps_deploy_is_its_own_release_and_pruning_never_deletes_another_apps_objects() {
    let double = ApiServerDouble::start();
    let (orders, billing) = (app("orders"), app("billing"));
    let deploy = |stage: &str, manifests: &str| {
        let ran = Deploy {
            files: &[("app/deployment.yml", manifests)],
            steps: &deploy_step(DEPLOY),
            stage,
            ..Deploy::default()
        }
        .run(&double);
        assert_eq!(
            ran.status("deploy"),
            Status::Success,
            "{:?}",
            ran.node("deploy").error
        );
    };
    deploy("orders", &orders);
    deploy("billing", &billing);
    // Billing drops its ConfigMap: only billing's own is pruned.
    deploy("billing", billing.split("---").next().unwrap());
    assert!(
        double
            .object("configmaps", "shop", "billing-settings")
            .is_none()
    );
    assert!(
        double
            .object("configmaps", "shop", "orders-settings")
            .is_some(),
        "another app's ConfigMap stays"
    );
    assert!(double.object("deployments", "shop", "orders").is_some());
    assert_eq!(history(&double, "test-orders").len(), 1);
    assert_eq!(history(&double, "test-billing").len(), 2);
}

#[test]
fn an_object_of_the_same_name_taken_over_by_another_release_is_not_pruned() {
    let double = ApiServerDouble::start();
    let deploy = |stage: &str, manifests: &str| {
        Deploy {
            files: &[("app/deployment.yml", manifests)],
            steps: &deploy_step(DEPLOY),
            stage,
            ..Deploy::default()
        }
        .run(&double)
    };
    deploy("first", APP_MANIFESTS);
    // Another release now applies app-settings too: it carries that release's label.
    deploy("second", APP_MANIFESTS.split("---").nth(1).unwrap());
    let ran = deploy("first", APP_MANIFESTS.split("---").next().unwrap());
    assert_eq!(
        ran.status("deploy"),
        Status::Success,
        "{:?}",
        ran.node("deploy").error
    );
    let settings = double.object("configmaps", "shop", "app-settings");
    assert!(settings.is_some(), "not first's to prune any more");
}

#[test]
fn a_connector_name_that_is_not_a_kubernetes_name_still_gives_valid_history_names() {
    let double = ApiServerDouble::start();
    let ran = Deploy {
        files: &[("app/deployment.yml", APP_MANIFESTS)],
        steps: &deploy_step("filePaths: [app]\nreleaseName: K8s_Prod-Orders\n"),
        connector: "K8s_Prod",
        ..Deploy::default()
    }
    .run(&double);
    assert_eq!(
        ran.status("deploy"),
        Status::Success,
        "{:?}",
        ran.node("deploy").error
    );
    assert_eq!(
        history(&double, "k8s-prod-orders"),
        [(1, "Succeeded".to_string())]
    );
    assert!(
        ran.logs_of("deploy")
            .iter()
            .any(|l| l.contains("release `K8s_Prod-Orders` is kept as `k8s-prod-orders`")),
        "{:?}",
        ran.logs_of("deploy")
    );
}

#[test]
fn two_deploys_of_one_release_at_once_never_both_succeed() {
    let double = ApiServerDouble::start();
    double.set_rollout("go-mongodb-app", Rollout::Slow(8));
    let racing = |id: &str| {
        k8s_step(
            "K8sRollingDeploy",
            id,
            "filePaths: [app]\nreleaseName: shared\n",
            "",
        )
    };
    let ran = Deploy {
        files: &[("app/deployment.yml", APP_MANIFESTS)],
        steps: &support::parallel(&(racing("one") + &racing("two"))),
        ..Deploy::default()
    }
    .run(&double);
    let statuses = [ran.status("one"), ran.status("two")];
    assert!(
        statuses.contains(&Status::Success) && statuses.contains(&Status::Failed),
        "one wins, one is refused: {statuses:?}"
    );
    let loser = if statuses[0] == Status::Failed {
        "one"
    } else {
        "two"
    };
    let message = error(&ran, loser);
    assert!(
        message.contains("release shared") && message.contains("another"),
        "{message}"
    );
    assert_eq!(history(&double, "shared"), [(1, "Succeeded".to_string())]);
}

#[test]
fn a_deploy_that_runs_out_of_time_records_its_release_failed_and_the_rollback_skips_it() {
    let double = ApiServerDouble::start();
    let deploy = |steps: &str| {
        Deploy {
            files: &[("app/deployment.yml", APP_MANIFESTS)],
            steps,
            ..Deploy::default()
        }
        .run(&double)
    };
    deploy(&deploy_step(DEPLOY));
    double.set_rollout("go-mongodb-app", Rollout::Slow(u32::MAX));
    let ran = deploy(&k8s_step(
        "K8sRollingDeploy",
        "deploy",
        DEPLOY,
        "  timeout: 3s\n",
    ));
    assert_eq!(
        ran.status("deploy"),
        Status::Expired,
        "{:?}",
        ran.node("deploy").error
    );
    assert_eq!(
        ran.node("deploy").error.clone().unwrap().error_type,
        "Timeout"
    );
    assert_eq!(
        history(&double, "test-s"),
        [(1, "Succeeded".to_string()), (2, "Failed".to_string())],
        "the release did not stay InProgress"
    );
    double.set_rollout("go-mongodb-app", Rollout::Succeeds);
    let ran = deploy(&k8s_step("K8sRollingRollback", "rollback", "", ""));
    assert_eq!(
        ran.status("rollback"),
        Status::Success,
        "{:?}",
        ran.node("rollback").error
    );
    assert_eq!(ran.output("rollback", "restoredRelease"), "1");
}

#[test]
fn an_empty_rollback_spec_is_valid_and_without_history_there_is_nothing_to_roll_back() {
    let double = ApiServerDouble::start();
    for spec in ["", "{}\n"] {
        let ran = Deploy {
            steps: &k8s_step("K8sRollingRollback", "rollback", spec, ""),
            ..Deploy::default()
        }
        .run(&double);
        assert_eq!(
            ran.status("rollback"),
            Status::Success,
            "{:?}",
            ran.node("rollback").error
        );
        assert_eq!(
            ran.node("rollback").summary.as_deref(),
            Some("release test-s has no history; nothing to roll back")
        );
    }
}

#[test]
fn the_history_keeps_one_compressed_object_per_release_and_its_newest_ten() {
    let double = ApiServerDouble::start();
    // About 190 KB of manifests: four copies of them overflowed a single history object.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bundle\ndata:\n  bundle.js: \"{}\"\n",
        "function f(){return 42;}".repeat(7_800)
    );
    let steps: String = (1..=12)
        .map(|i| k8s_step("K8sRollingDeploy", &format!("deploy_{i}"), DEPLOY, ""))
        .collect();
    let ran = Deploy {
        files: &[
            ("app/deployment.yml", APP_MANIFESTS),
            ("app/bundle.yml", &big),
        ],
        steps: &steps,
        ..Deploy::default()
    }
    .run(&double);
    for record in &ran.outcome.records {
        assert!(record.error.is_none(), "{}: {:?}", record.fqn, record.error);
    }
    assert_eq!(ran.output("deploy_12", "releaseNumber"), "12");
    let releases = history(&double, "test-s");
    assert_eq!(
        releases.first().unwrap().0,
        3,
        "releases 1 and 2 were pruned"
    );
    assert_eq!(releases.len(), 10);
    let newest = double
        .object("configmaps", "shop", "lockstep.release.test-s.v12")
        .unwrap();
    let stored = newest["binaryData"]["manifests.gz"].as_str().unwrap().len();
    assert!(
        stored < 20_000,
        "compressed: {stored} bytes of base64 for {} bytes",
        big.len()
    );
}
