//! Step types: the built-in ones (each a module here, behind [`BuiltInStep`], whose component
//! ships inside the binary) and the custom ones of lockstep.yaml ([`custom`]).
//!
//! A step type knows its names, its component, how to check a step's spec for `validate`, and
//! what a step of it is granted (from its spec and the operator's lockstep.yaml) when it runs.
//! Adding a built-in step type is a module and a line in [`BUILT_INS`].

pub mod custom;
mod db_schema;
mod git_clone;
pub mod k8s;
mod run;

use std::path::PathBuf;

use crate::capability::Grants;
use crate::capability::git::SchemaFetch;
use crate::config::{Config, CustomStepType, Refusal};
use crate::diag::{Diagnostic, Location};
use crate::pipeline::Step;
use crate::plan::KubeInfra;
use crate::sandbox::limits::StepLimits;
use crate::yaml::Node;

/// A step type whose component ships inside the `lockstep` binary.
pub trait BuiltInStep: Sync {
    /// The step types it implements (one component may implement several).
    fn names(&self) -> &'static [&'static str];

    /// Its component (built for wasm32-wasip2 by the build script).
    fn component(&self) -> &'static [u8];

    /// Checks a step's spec as written, for `lockstep validate` (and before every run).
    fn check(
        &self,
        step_type: &str,
        spec: &Node,
        at: &SpecLocation<'_>,
        config: &Config,
        out: &mut Vec<Diagnostic>,
    );

    /// What a step of this type gets when it runs: its grants and the spec its component
    /// receives (with the host's settings added). `Err` says what lockstep.yaml lacks or refuses.
    fn bind(
        &self,
        step_type: &str,
        spec: serde_json::Value,
        context: &BindContext<'_>,
    ) -> Result<Bound, Refusal>;

    /// Whether its steps run scripts, which the kernel must be able to confine.
    fn runs_scripts(&self) -> bool {
        false
    }
}

/// Every built-in step type.
pub const BUILT_INS: &[&dyn BuiltInStep] = &[
    &run::Run,
    &git_clone::GitClone,
    &db_schema::DbSchema,
    &k8s::Kubernetes,
];

/// Harness step types that Lockstep knows of but does not run yet.
const NOT_YET_IMPLEMENTED: &[&str] = &[
    "LiquibaseCommand",
    "DBSchemaUpdateSQL",
    "DBSchemaRollbackSQL",
    "Plugin",
    "Background",
    "ShellScript",
    "Http",
    "Wait",
    "HarnessApproval",
];

/// Where a step's component and grants come from.
pub enum StepSource<'a> {
    BuiltIn(&'static dyn BuiltInStep),
    Custom(&'a CustomStepType),
    /// Known or unknown, but not runnable: `validate` warns, `run` refuses before starting.
    Unavailable(String),
}

/// What binding a step may depend on besides its spec.
pub struct BindContext<'a> {
    pub config: &'a Config,
    /// The step's fully qualified name and the run's execution id (a DB step's lock holder).
    pub fqn: &'a str,
    pub execution_id: &'a str,
    /// The pipeline's identifier.
    pub pipeline: &'a str,
    /// The enclosing step group's Kubernetes `stepGroupInfra`, if any.
    pub infra: Option<&'a KubeInfra>,
    /// How long the step may run.
    pub timeout: std::time::Duration,
}

/// What a step gets when it runs.
pub struct Bound {
    pub grants: Grants,
    /// The spec its component receives.
    pub spec: serde_json::Value,
    /// What lockstep.yaml says for it, read by the component through `context.settings`: a
    /// separate channel from the spec, so nothing in a pipeline can pass for it.
    pub settings: Option<serde_json::Value>,
    /// A Git-hosted schema the runner fetches into the stage workspace (the path in `.1`, relative
    /// to it) before the step starts, unless a step of the same run already has.
    pub schema_fetch: Option<(SchemaFetch, PathBuf)>,
}

impl Bound {
    fn new(grants: Grants, spec: serde_json::Value) -> Self {
        Bound {
            grants,
            spec,
            settings: None,
            schema_fetch: None,
        }
    }

    fn with_settings(self, settings: impl serde::Serialize) -> Self {
        Bound {
            settings: Some(serde_json::to_value(settings).expect("settings are plain data")),
            ..self
        }
    }
}

/// The step type named `step_type`: a custom one (lockstep.yaml may shadow a built-in), a
/// built-in, or why there is none.
pub fn source<'a>(config: &'a Config, step_type: &str) -> StepSource<'a> {
    if let Some(custom) = config.step_types.get(step_type) {
        return StepSource::Custom(custom);
    }
    if let Some(built_in) = BUILT_INS.iter().find(|b| b.names().contains(&step_type)) {
        return StepSource::BuiltIn(*built_in);
    }
    if NOT_YET_IMPLEMENTED.contains(&step_type) {
        return StepSource::Unavailable(format!(
            "step type `{step_type}` is not implemented by Lockstep yet"
        ));
    }
    let mut known: Vec<&str> = BUILT_INS
        .iter()
        .flat_map(|b| b.names().iter().copied())
        .chain(config.step_types.keys().map(String::as_str))
        .collect();
    known.sort();
    let hint = crate::pipeline::closest(step_type, &known)
        .map_or(String::new(), |g| format!(" (did you mean `{g}`?)"));
    StepSource::Unavailable(format!(
        "step type `{step_type}` is not known{hint}; define it under `stepTypes:` in lockstep.yaml, or use one of {}",
        known.join(", ")
    ))
}

impl StepSource<'_> {
    /// See [`BuiltInStep::bind`]; custom steps get what lockstep.yaml says.
    pub fn bind(
        &self,
        step_type: &str,
        spec: serde_json::Value,
        context: &BindContext<'_>,
    ) -> Result<Bound, Refusal> {
        match self {
            StepSource::BuiltIn(built_in) => built_in.bind(step_type, spec, context),
            StepSource::Custom(custom) => custom::bind(step_type, custom, spec, context.config),
            StepSource::Unavailable(message) => Err(Refusal::Configuration(message.clone())),
        }
    }

    pub fn limits(&self) -> StepLimits {
        match self {
            StepSource::Custom(c) => StepLimits::third_party_with(&c.limits),
            _ => StepLimits::built_in(),
        }
    }

    /// Whether its steps run scripts, which the kernel must be able to confine.
    pub fn runs_scripts(&self) -> bool {
        match self {
            StepSource::BuiltIn(built_in) => built_in.runs_scripts(),
            StepSource::Custom(custom) => custom.grants.process,
            StepSource::Unavailable(_) => false,
        }
    }
}

/// Where a step's spec is, for diagnostics about its fields.
pub struct SpecLocation<'a> {
    pub step: &'a Location,
    pub spec: &'a Node,
}

impl SpecLocation<'_> {
    /// The location of `spec.key` (or of the spec, when the key is missing).
    pub fn field(&self, key: &str) -> Location {
        let node = self.spec.get(key).unwrap_or(self.spec);
        Location {
            pos: node.pos,
            yaml_path: format!("{}.spec.{key}", self.step.yaml_path),
            file: self.step.file.clone(),
        }
    }
}

/// Checks the `spec` of one step.
pub fn check_spec(step: &Step, source: &StepSource<'_>, config: &Config) -> Vec<Diagnostic> {
    let mut out = vec![];
    let at = SpecLocation {
        step: &step.common.location,
        spec: &step.spec,
    };
    match source {
        StepSource::BuiltIn(built_in) => {
            built_in.check(&step.step_type, &step.spec, &at, config, &mut out)
        }
        StepSource::Unavailable(message) => out.push(
            Diagnostic::warning(
                step.common.location.clone(),
                format!("{message}; this pipeline validates, but `lockstep run` will refuse it"),
            )
            .with_help("run it once the step type is supported, or replace the step"),
        ),
        StepSource::Custom(_) => {}
    }
    out
}

/// Checks every step's type and spec; returns warnings and errors in document order.
pub fn check_pipeline(pipeline: &crate::pipeline::Pipeline, config: &Config) -> Vec<Diagnostic> {
    use crate::pipeline::{StageItem, StepItem};
    fn walk(items: &[StepItem], config: &Config, out: &mut Vec<Diagnostic>) {
        for item in items {
            match item {
                StepItem::Step(step) => {
                    out.extend(check_spec(step, &source(config, &step.step_type), config))
                }
                StepItem::Group(group) => {
                    if let Some(infra) = &group.infra {
                        out.extend(k8s::check_group_infra(
                            infra,
                            &group.common.location,
                            config,
                        ));
                    }
                    walk(&group.steps, config, out);
                    walk(&group.rollback_steps, config, out);
                }
                StepItem::Parallel(inner) => walk(inner, config, out),
            }
        }
    }
    let mut out = vec![];
    for stage in pipeline.stages.iter().flat_map(StageItem::stages) {
        walk(&stage.execution.steps, config, &mut out);
        walk(&stage.execution.rollback_steps, config, &mut out);
    }
    out
}
