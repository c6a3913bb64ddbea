//! `DBSchemaApply` and `DBSchemaRollback`: one component that applies or rolls back its schema's
//! changelog on its `dbInstance`, Liquibase-compatibly.

use std::path::PathBuf;

use lockstep_builtins::db::{DatabaseKind, SCHEMA_MOUNT, Settings};

use super::{BindContext, Bound, BuiltInStep, SpecLocation};
use crate::capability::db::{DbGrant, DbTarget};
use crate::capability::{FileGrant, Grants, db, git};
use crate::config::{Config, Refusal};
use crate::diag::Diagnostic;
use crate::yaml::Node;

pub struct DbSchema;

impl BuiltInStep for DbSchema {
    fn names(&self) -> &'static [&'static str] {
        &["DBSchemaApply", "DBSchemaRollback"]
    }

    fn component(&self) -> &'static [u8] {
        include_bytes!(concat!(
            env!("LOCKSTEP_GUEST_DIR"),
            "/lockstep_step_db_schema.wasm"
        ))
    }

    fn check(
        &self,
        step_type: &str,
        spec: &Node,
        at: &SpecLocation<'_>,
        config: &Config,
        out: &mut Vec<Diagnostic>,
    ) {
        check_db_step(step_type, spec, at, config, out);
    }

    /// Its grants: the instance its spec names (only that one), and its schema's root read-only
    /// at [`SCHEMA_MOUNT`] (for a schema in a Git repository, its checkout, fetched by the runner:
    /// the step itself gets no Git grant). Its settings: what the component needs from
    /// lockstep.yaml ([`Settings`]).
    fn bind(
        &self,
        _: &str,
        spec: serde_json::Value,
        context: &BindContext<'_>,
    ) -> Result<Bound, Refusal> {
        let config = context.config;
        let field = |name: &str| {
            spec.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| Refusal::Configuration(format!("the spec needs `{name}`")))
        };
        let (schema_id, instance_id) = (field("dbSchema")?, field("dbInstance")?);
        let instance = config
            .db_instances
            .get(&instance_id)
            .ok_or_else(|| Refusal::Configuration(format!("db instance `{instance_id}` is not defined; add it under `dbInstances:` in lockstep.yaml")))?;
        if instance.schema != schema_id {
            return Err(Refusal::Configuration(format!(
                "db instance `{instance_id}` belongs to schema `{}`, not `{schema_id}`",
                instance.schema
            )));
        }
        let schema = &config.db_schemas[&schema_id];
        let target = db::resolve::target(config, &instance_id)?;
        let database_kind = if matches!(target, DbTarget::Mongo { .. }) {
            DatabaseKind::Mongodb
        } else {
            DatabaseKind::Sql
        };
        let schema_fetch = git::resolve::schema_fetch(config, &schema_id)?
            .map(|fetch| (fetch, schema_checkout_dir(&schema_id, context.execution_id)));
        let root = schema_fetch
            .as_ref()
            .map_or_else(|| schema.root.clone(), |(_, dir)| dir.clone());
        let grants = Grants {
            db: vec![DbGrant {
                instance: instance_id,
                target,
            }],
            files: vec![FileGrant {
                host_path: root,
                guest_path: SCHEMA_MOUNT.to_string(),
                read_only: true,
            }],
            ..Grants::default()
        };
        let settings = Settings {
            changelog_file: schema.changelog.clone(),
            contexts: instance
                .context
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            label_filter: instance.labels.clone(),
            properties: instance.substitute_properties.clone(),
            lock_holder: format!("{} (execution {})", context.fqn, context.execution_id),
            database_kind,
        };
        Ok(Bound {
            schema_fetch,
            ..Bound::new(grants, spec).with_settings(settings)
        })
    }
}

/// Where a Git-hosted schema is checked out in the stage workspace: one directory per schema
/// and run, so that every DB step of the run reads the same checkout — a rollback reads exactly
/// the changelog its apply read, even if the branch has moved since — and it is fetched once.
fn schema_checkout_dir(schema: &str, execution_id: &str) -> PathBuf {
    PathBuf::from(format!(".lockstep/schemas/{schema}-{execution_id}"))
}

fn check_db_step(
    step_type: &str,
    spec: &Node,
    at: &SpecLocation<'_>,
    config: &Config,
    out: &mut Vec<Diagnostic>,
) {
    for required in ["dbSchema", "dbInstance"] {
        if spec.get(required).and_then(Node::as_str).is_none() {
            out.push(
                Diagnostic::error(
                    at.field(required),
                    format!("a {step_type} step needs `{required}`"),
                )
                .with_help(format!("add `{required}: <id from lockstep.yaml>`")),
            );
        }
    }
    if let Some(instance) = spec
        .get("dbInstance")
        .and_then(Node::as_str)
        .filter(|i| !i.contains("<+"))
        && !config.db_instances.contains_key(instance)
    {
        out.push(Diagnostic::warning(at.field("dbInstance"), format!("db instance `{instance}` is not in lockstep.yaml, so `lockstep run` will fail this step")).with_help(format!("add `{instance}: {{ schema: …, connector: … }}` under `dbInstances:` in lockstep.yaml")));
    }
    if step_type == "DBSchemaApply" {
        if let Some(strategy) = spec.get("changeSetFailureStrategy").and_then(Node::as_str)
            && strategy != "MARK_NEXT_RUN"
        {
            out.push(
                Diagnostic::error(
                    at.field("changeSetFailureStrategy"),
                    format!("`{strategy}` is not a changeSetFailureStrategy"),
                )
                .with_help(
                    "the only value is MARK_NEXT_RUN (today spelt `markNextChangeSetRun: true`)",
                ),
            );
        }
        return;
    }
    match (
        spec.get("tag").filter(|n| !n.is_null()),
        spec.get("changeSetCount").filter(|n| !n.is_null()),
    ) {
        (Some(_), Some(_)) | (None, None) => out.push(
            Diagnostic::error(
                at.step.clone(),
                "a DBSchemaRollback step needs exactly one of `tag` or `changeSetCount`",
            )
            .with_help("write `tag: <+steps.apply.output.preStartTag>` or `changeSetCount: 1`"),
        ),
        (None, Some(count)) => {
            let text = count.as_str().unwrap_or_default();
            if !text.contains("<+") && !text.parse::<u64>().is_ok_and(|n| n >= 1) {
                out.push(
                    Diagnostic::error(
                        at.field("changeSetCount"),
                        format!("`{text}` is not a whole number of at least 1"),
                    )
                    .with_help("write e.g. `changeSetCount: 1`"),
                );
            }
        }
        (Some(_), None) => {}
    }
}
