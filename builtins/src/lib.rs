//! What the host and the built-in step components agree on. The host and the guests compile this
//! one crate, so a mount point, a setting or the reading of a spec field cannot drift apart
//! between them (a `pruningEnabled: "True"` that the step honours is one the grant honours).
//!
//! The host passes a built-in step what lockstep.yaml says about it as the step's settings (the
//! `context.settings` channel, apart from the pipeline's spec): [`k8s::Settings`],
//! [`db::Settings`], [`git_clone::Settings`].

use serde::{Deserialize, Serialize};

/// A Harness boolean: `true`, or text such as `"true"` / `"True"` as pipelines often write it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    Bool(bool),
    Text(String),
    #[default]
    Unset,
}

impl Flag {
    pub fn on(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(t) => t.trim().eq_ignore_ascii_case("true"),
            Flag::Unset => false,
        }
    }
}

/// A value YAML may have typed as a number that is text to the step (`commitSha: 1234567`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(u64),
    Text(String),
}

impl NumberOrText {
    pub fn text(&self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t.clone(),
        }
    }
}

/// K8sApply, K8sRollingDeploy, K8sRollingRollback.
pub mod k8s {
    use super::*;

    /// Where the stage workspace is preopened, read-only, to read manifests.
    pub const WORKSPACE_MOUNT: &str = "/workspace";

    /// The spec fields the steps read (Harness's names).
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Spec {
        #[serde(default)]
        pub file_paths: Vec<String>,
        #[serde(default)]
        pub skip_dry_run: Flag,
        #[serde(default)]
        pub skip_steady_state_check: Flag,
        #[serde(default)]
        pub pruning_enabled: Flag,
        pub release_name: Option<String>,
    }

    impl Spec {
        /// Reads a resolved spec; a field of the wrong shape is an error naming it.
        pub fn from_json(spec: &serde_json::Value) -> Result<Spec, String> {
            if spec.is_null() {
                return Ok(Spec::default());
            }
            serde_json::from_value(spec.clone()).map_err(|e| e.to_string())
        }
    }

    /// The step group's cluster, resolved by the host, and what keys its release.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Settings {
        pub connector: String,
        pub namespace: String,
        /// The release without a `releaseName`: one per pipeline and stage (each app's deploy
        /// is its own), already a [`release_key`].
        pub default_release: String,
        /// The step's timeout: a release still in progress after it is a failed one.
        pub timeout_seconds: u64,
    }

    /// The longest release key: what remains of a ConfigMap name and a label value after the
    /// history's prefix and suffix (`lockstep.release.KEY.v123`, 63 characters for a label).
    pub const MAX_RELEASE_KEY: usize = 53;

    /// A release name as Kubernetes accepts it in object names and label values: lowercase
    /// letters, digits and `-`, starting and ending with a letter or digit, at most
    /// [`MAX_RELEASE_KEY`] characters (a longer name keeps its start and a digest of the whole).
    /// `K8s_Prod-shop` is `k8s-prod-shop`.
    pub fn release_key(name: &str) -> String {
        let mut key = String::new();
        for c in name.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                key.push(c);
            } else if !key.ends_with('-') && !key.is_empty() {
                key.push('-');
            }
        }
        let key = key.trim_end_matches('-');
        let key = if key.is_empty() { "release" } else { key };
        if key.len() <= MAX_RELEASE_KEY {
            return key.to_string();
        }
        // FNV-1a: stable across builds and platforms, and dependency-free.
        let digest = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let digest = format!("{:08x}", digest as u32);
        let kept = key[..MAX_RELEASE_KEY - digest.len() - 1].trim_end_matches('-');
        format!("{kept}-{digest}")
    }
}

/// DBSchemaApply and DBSchemaRollback.
pub mod db {
    use std::collections::BTreeMap;

    use super::*;

    /// Where the schema's root is preopened, read-only.
    pub const SCHEMA_MOUNT: &str = "/schema";

    /// Which `lockstep:db` interface the instance is reached through.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum DatabaseKind {
        Sql,
        Mongodb,
    }

    /// What lockstep.yaml says about the step's schema and instance.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Settings {
        /// The root changelog, relative to [`SCHEMA_MOUNT`].
        pub changelog_file: String,
        #[serde(default)]
        pub contexts: Vec<String>,
        pub label_filter: Option<String>,
        #[serde(default)]
        pub properties: BTreeMap<String, String>,
        /// Who holds the changelog lock while the step runs (step and execution).
        pub lock_holder: String,
        pub database_kind: DatabaseKind,
    }
}

/// GitClone.
pub mod git_clone {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Settings {
        /// Where the checkout lands without a `cloneDirectory`: `repoName`, else the URL's last
        /// segment without `.git`.
        pub directory: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_booleans_are_read_the_same_way_by_the_host_and_the_step() {
        let spec = k8s::Spec::from_json(
            &serde_json::json!({"filePaths": ["a"], "pruningEnabled": "True", "skipDryRun": true}),
        )
        .unwrap();
        assert!(
            spec.pruning_enabled.on()
                && spec.skip_dry_run.on()
                && !spec.skip_steady_state_check.on()
        );
        assert!(
            k8s::Spec::from_json(&serde_json::Value::Null)
                .unwrap()
                .file_paths
                .is_empty()
        );
        assert!(k8s::Spec::from_json(&serde_json::json!({"filePaths": "a"})).is_err());
    }

    #[test]
    fn release_keys_are_valid_kubernetes_names_and_labels() {
        assert_eq!(k8s::release_key("K8s_Prod-shop"), "k8s-prod-shop");
        assert_eq!(k8s::release_key("orders"), "orders");
        assert_eq!(k8s::release_key("--"), "release");
        let long = "a".repeat(40) + "_" + &"b".repeat(40);
        let key = k8s::release_key(&long);
        assert_eq!(key.len(), k8s::MAX_RELEASE_KEY);
        assert_ne!(
            key,
            k8s::release_key(&("a".repeat(40) + "_" + &"c".repeat(40)))
        );
        assert!(
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
