//! Custom step types: a component from lockstep.yaml, pinned by sha256, granted exactly what its
//! entry says.

use super::Bound;
use crate::capability::db::DbGrant;
use crate::capability::git::GitGrant;
use crate::capability::kube::{KindsFrom, KubeGrant};
use crate::capability::process::ProcessGrant;
use crate::capability::{FileGrant, Grants, db, git, kube};
use crate::config::{Config, CustomStepType, Refusal};

/// The grants of a step of type `step_type`, its names resolved through lockstep.yaml.
pub fn bind(
    step_type: &str,
    custom: &CustomStepType,
    spec: serde_json::Value,
    config: &Config,
) -> Result<Bound, Refusal> {
    let declared = &custom.grants;
    let mut grants = Grants {
        process: declared.process.then(|| ProcessGrant {
            policy: config.process_policy.clone(),
            cluster: None,
        }),
        env: declared.env.clone(),
        files: declared
            .files
            .iter()
            .map(|f| FileGrant {
                host_path: f.path.clone(),
                guest_path: f.guest_path.clone(),
                read_only: f.read_only,
            })
            .collect(),
        ..Grants::default()
    };
    for instance in &declared.db {
        grants.db.push(DbGrant {
            instance: instance.clone(),
            target: db::resolve::target(config, instance)?,
        });
    }
    for connector in &declared.git {
        grants.git.push(GitGrant {
            connector: connector.clone(),
            remote: git::resolve::remote(config, connector)?,
        });
    }
    for spec in &declared.kube {
        let cluster = kube::resolve::cluster(config, &spec.connector)?;
        grants.kube.push(KubeGrant {
            connector: spec.connector.clone(),
            cluster,
            namespaces: spec.namespaces.clone(),
            kinds: spec.kinds.clone(),
            verbs: spec.verbs.clone(),
            kinds_from: KindsFrom::StepType(step_type.to_string()),
        });
    }
    let bound = Bound::new(grants, spec);
    Ok(match &custom.settings {
        Some(settings) => bound.with_settings(settings),
        None => bound,
    })
}
