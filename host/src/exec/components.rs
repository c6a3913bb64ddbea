//! The components of the step types a plan uses, loaded (compiled or from the cache) before any
//! step starts; and whether this machine can confine the plan's scripts.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::plan::{NodeKind, PlanNode};
use crate::sandbox::{Sandbox, StepComponent};
use crate::steps::{self, StepSource};

/// Loads the component of every step type the plan uses, before any step starts.
/// Returns every problem at once.
pub fn load_components(
    root: &PlanNode,
    config: &Config,
    sandbox: &Sandbox,
) -> Result<HashMap<String, Arc<StepComponent>>, Vec<String>> {
    let mut components = HashMap::new();
    let mut problems = vec![];
    let mut seen = std::collections::HashSet::new();
    for node in root
        .descendants()
        .into_iter()
        .filter(|n| n.kind == NodeKind::Step)
    {
        let step_type = node.type_name().to_string();
        if !seen.insert(step_type.clone()) {
            continue;
        }
        let loaded = match steps::source(config, &step_type) {
            StepSource::Unavailable(message) => Err(format!("{message} (step `{}`)", node.fqn)),
            StepSource::BuiltIn(b) => sandbox
                .load(b.component(), None)
                .map_err(|e| format!("built-in step type `{step_type}`: {e}")),
            StepSource::Custom(custom) => match std::fs::read(&custom.component) {
                Ok(bytes) => sandbox.load(&bytes, Some(&custom.sha256)).map_err(|e| {
                    format!(
                        "{}: step type `{step_type}` ({}): {e}",
                        custom.location,
                        custom.component.display()
                    )
                }),
                Err(e) => Err(format!(
                    "{}: step type `{step_type}`: cannot read {}: {e}",
                    custom.location,
                    custom.component.display()
                )),
            },
        };
        match loaded {
            Ok(component) => {
                components.insert(step_type, Arc::new(component));
            }
            Err(problem) => problems.push(problem),
        }
    }
    if let Some(problem) = process_sandbox_problem(root, config) {
        problems.push(problem);
    }
    if problems.is_empty() {
        Ok(components)
    } else {
        Err(problems)
    }
}

/// When the plan runs scripts and the operator requires them confined: whether this machine can
/// confine them. Checked before any step starts, so a run never gets halfway to find out.
fn process_sandbox_problem(root: &PlanNode, config: &Config) -> Option<String> {
    use crate::config::Confinement;
    if config.process_policy.confinement != Confinement::Required {
        return None;
    }
    let runs_scripts = root
        .descendants()
        .iter()
        .filter(|n| n.kind == NodeKind::Step)
        .any(|n| steps::source(config, n.type_name()).runs_scripts());
    let refused = runs_scripts
        .then(|| crate::capability::process::probe(&config.process_policy).err())
        .flatten()?;
    Some(format!(
        "Run steps cannot be confined on this machine: {refused}"
    ))
}
