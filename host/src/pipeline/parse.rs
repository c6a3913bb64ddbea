//! Reads a pipeline YAML document into [`Pipeline`], collecting every problem as a diagnostic.
//!
//! Unknown keys are warnings (Harness's schema allows them and ignores them); a wrong shape,
//! a missing required field or an invalid value is an error. Nothing here runs anything.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::duration;
use super::model::*;
use crate::diag::{Diagnostic, Diagnostics, InvalidInput, Location};
use crate::yaml::{self, Document, Node, Value};

/// A pipeline file that parsed, with the warnings found on the way.
#[derive(Debug)]
pub struct Parsed {
    pub pipeline: Pipeline,
    pub warnings: Vec<Diagnostic>,
}

/// Parses a pipeline file. Errors carry every diagnostic found (warnings included).
pub fn parse_pipeline(path: &Path, source: &str) -> Result<Parsed, InvalidInput> {
    let doc = yaml::parse(path, source).map_err(|d| InvalidInput(vec![d]))?;
    let mut decoder = Decoder {
        doc: &doc,
        diags: Diagnostics::default(),
    };
    let pipeline = decoder.document();
    match pipeline {
        Some(pipeline) if !decoder.diags.has_errors() => Ok(Parsed {
            pipeline,
            warnings: decoder.diags.into_vec(),
        }),
        _ => Err(InvalidInput(decoder.diags.into_vec())),
    }
}

const PIPELINE_KEYS: &[&str] = &[
    "name",
    "identifier",
    "projectIdentifier",
    "orgIdentifier",
    "tags",
    "variables",
    "properties",
    "stages",
    "timeout",
    "description",
    "delegateSelectors",
    "allowStageExecutions",
    "notificationRules",
    "fixedInputsOnRerun",
];
const STAGE_KEYS: &[&str] = &[
    "name",
    "identifier",
    "type",
    "description",
    "spec",
    "when",
    "failureStrategies",
    "strategy",
    "variables",
    "tags",
    "timeout",
    "delegateSelectors",
];
const STEP_KEYS: &[&str] = &[
    "type",
    "name",
    "identifier",
    "spec",
    "timeout",
    "when",
    "failureStrategies",
    "strategy",
    "description",
    "enforce",
    "delegateSelectors",
];
const STEP_GROUP_KEYS: &[&str] = &[
    "name",
    "identifier",
    "steps",
    "rollbackSteps",
    "stepGroupInfra",
    "when",
    "failureStrategies",
    "strategy",
    "variables",
    "sharedPaths",
    "delegateSelectors",
    "timeout",
    "template",
];

struct Decoder<'a> {
    doc: &'a Document,
    diags: Diagnostics,
}

/// Where a list of steps sits, which decides the failure actions allowed in it.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Stage,
    InGroup,
}

impl<'a> Decoder<'a> {
    fn loc(&self, node: &Node, path: &str) -> Location {
        self.doc.location(node.pos, path)
    }

    fn error(
        &mut self,
        node: &Node,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diagnostic::error(self.loc(node, path), message).with_help(help);
        self.diags.push(d);
    }

    fn warn(
        &mut self,
        node: &Node,
        path: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diagnostic::warning(self.loc(node, path), message).with_help(help);
        self.diags.push(d);
    }

    fn document(&mut self) -> Option<Pipeline> {
        let Some(root) = self.doc.roots.first() else {
            let here = Node {
                value: Value::Null,
                pos: crate::diag::Pos { line: 1, col: 1 },
            };
            self.error(
                &here,
                "",
                "the file is empty",
                "a pipeline file starts with `pipeline:`",
            );
            return None;
        };
        if self.doc.roots.len() > 1 {
            let second = &self.doc.roots[1];
            self.warn(
                second,
                "",
                "only the first YAML document is read; the rest of the file is ignored",
                "remove the `---` separator and what follows, or move it to its own file",
            );
        }
        let Some(pipeline) = root.get("pipeline") else {
            self.error(
                root,
                "",
                "this is not a pipeline: the top-level key `pipeline` is missing",
                "a pipeline file starts with `pipeline:` and indents everything else under it",
            );
            return None;
        };
        if pipeline.is_null() && root.as_map().is_some_and(|m| m.len() > 1) {
            return self.unindented_pipeline(root, pipeline);
        }
        for (key, _) in root.as_map().unwrap_or_default() {
            if key.as_str() != Some("pipeline") {
                let name = key.as_str().unwrap_or_default().to_string();
                self.warn(
                    key,
                    &name,
                    format!("unknown top-level key `{name}` is ignored"),
                    "everything of a pipeline goes under `pipeline:`",
                );
            }
        }
        self.pipeline(pipeline)
    }

    /// The docs' example has `pipeline:` with its keys at the same indentation, which YAML reads
    /// as an empty `pipeline` next to them. Read the siblings as the pipeline, and say how to fix it.
    fn unindented_pipeline(&mut self, root: &Node, pipeline_key_value: &Node) -> Option<Pipeline> {
        let entries = root.as_map().unwrap_or_default();
        let key_node = entries
            .iter()
            .find(|(k, _)| k.as_str() == Some("pipeline"))
            .map(|(k, _)| k)
            .unwrap_or(pipeline_key_value);
        let siblings: Vec<(Node, Node)> = entries
            .iter()
            .filter(|(k, _)| k.as_str() != Some("pipeline"))
            .cloned()
            .collect();
        let first = siblings
            .first()
            .map_or(key_node.pos.line, |(k, _)| k.pos.line);
        let last = siblings
            .iter()
            .map(|(_, v)| last_line(v))
            .max()
            .unwrap_or(first);
        let names: Vec<&str> = siblings.iter().filter_map(|(k, _)| k.as_str()).collect();
        self.warn(
            key_node,
            "pipeline",
            format!(
                "`pipeline:` has nothing indented under it; its keys ({}) are at the same level, so YAML reads `pipeline` as empty. Lockstep reads them as the pipeline's keys",
                names.join(", ")
            ),
            format!("indent lines {first}–{last} by two more spaces so they sit under `pipeline:`"),
        );
        let body = Node {
            value: Value::Map(siblings),
            pos: key_node.pos,
        };
        self.pipeline(&body)
    }

    fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
    ) -> Option<&'n [(Node, Node)]> {
        let Some(entries) = node.as_map() else {
            self.error(
                node,
                path,
                format!(
                    "`{}` must be a map, found {}",
                    last_segment(path),
                    node.kind()
                ),
                "write it as `key: value` lines indented under it",
            );
            return None;
        };
        let mut seen = HashSet::new();
        for (key, _) in entries {
            let name = key.as_str().unwrap_or_default();
            if !seen.insert(name) {
                self.error(
                    key,
                    &join(path, name),
                    format!("`{name}` appears twice"),
                    "keep one of them",
                );
            } else if !known.is_empty() && !known.contains(&name) {
                let help = match closest(name, known) {
                    Some(guess) => format!("did you mean `{guess}`?"),
                    None => format!("known keys here: {}", known.join(", ")),
                };
                self.warn(
                    key,
                    &join(path, name),
                    format!("unknown key `{name}` is ignored"),
                    help,
                );
            }
        }
        Some(entries)
    }

    fn string(&mut self, parent: &Node, path: &str, key: &str, required: bool) -> Option<String> {
        let field = join(path, key);
        match parent.get(key) {
            None
            | Some(Node {
                value: Value::Null, ..
            }) => {
                if required {
                    self.error(
                        parent,
                        &field,
                        format!("`{key}` is required here"),
                        format!("add `{key}: ...` under `{}`", last_segment(path)),
                    );
                }
                None
            }
            Some(node) => match node.as_str() {
                Some(text) => Some(text.to_string()),
                None => {
                    self.error(
                        node,
                        &field,
                        format!("`{key}` must be a single value, found {}", node.kind()),
                        format!("write `{key}: value` on one line"),
                    );
                    None
                }
            },
        }
    }

    fn identifier(&mut self, parent: &Node, path: &str) -> Option<String> {
        let id = self.string(parent, path, "identifier", true)?;
        if !is_identifier(&id) {
            let node = parent.get("identifier").unwrap_or(parent);
            self.error(node, &join(path, "identifier"), format!("`{id}` is not a valid identifier"), "start with a letter or `_`, then use only letters, digits and `_` (no hyphens, dots or spaces), at most 128 characters");
        }
        Some(id)
    }

    fn duration(&mut self, parent: &Node, path: &str, key: &str) -> Option<Duration> {
        let text = self.string(parent, path, key, false)?;
        let parsed = duration::parse(&text);
        if parsed.is_none() {
            let node = parent.get(key).unwrap_or(parent);
            self.error(
                node,
                &join(path, key),
                format!("`{text}` is not a duration"),
                "write whole numbers with units s, m, h, d or w, e.g. `10m` or `1h30m`",
            );
        }
        parsed
    }

    fn pipeline(&mut self, node: &Node) -> Option<Pipeline> {
        let path = "pipeline";
        self.map(node, path, PIPELINE_KEYS)?;
        let name = self.string(node, path, "name", true);
        let identifier = self.identifier(node, path);
        let timeout = self.duration(node, path, "timeout");
        let variables = self.variables(node, path);
        let stages = match node.get("stages") {
            Some(stages) => self.stages(stages, "pipeline.stages"),
            None => {
                self.error(
                    node,
                    "pipeline.stages",
                    "a pipeline needs `stages`",
                    "add `stages:` with at least one `- stage:`",
                );
                vec![]
            }
        };
        self.unique_stage_ids(&stages);
        Some(Pipeline {
            name: name.unwrap_or_default(),
            identifier: identifier.unwrap_or_default(),
            variables,
            stages,
            timeout,
            location: self.loc(node, path),
        })
    }

    fn variables(&mut self, parent: &Node, path: &str) -> Vec<Variable> {
        let Some(list) = parent.get("variables") else {
            return vec![];
        };
        let path = join(path, "variables");
        if list.is_null() {
            return vec![];
        }
        let Some(items) = list.as_seq() else {
            self.error(
                list,
                &path,
                "`variables` must be a list",
                "write each variable as `- name: x` with `type` and `value`",
            );
            return vec![];
        };
        let mut out: Vec<Variable> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if self
                .map(
                    item,
                    &item_path,
                    &[
                        "name",
                        "type",
                        "value",
                        "default",
                        "description",
                        "required",
                    ],
                )
                .is_none()
            {
                continue;
            }
            let Some(name) = self.string(item, &item_path, "name", true) else {
                continue;
            };
            if out.iter().any(|v| v.name == name) {
                self.error(
                    item,
                    &item_path,
                    format!("variable `{name}` is declared twice"),
                    "give each variable a distinct name",
                );
            }
            let kind = match self.string(item, &item_path, "type", false).as_deref() {
                None | Some("String") => VariableKind::String,
                Some("Number") => VariableKind::Number,
                Some("Secret") => VariableKind::Secret,
                Some(other) => {
                    let node = item.get("type").unwrap_or(item);
                    self.error(
                        node,
                        &join(&item_path, "type"),
                        format!("variable type `{other}` is not known"),
                        "use String, Number or Secret",
                    );
                    VariableKind::String
                }
            };
            let raw = match item.get("value") {
                Some(v) if !v.is_null() => match v.as_str() {
                    Some(text) => text.to_string(),
                    None => {
                        self.error(
                            v,
                            &join(&item_path, "value"),
                            "a variable's value must be a single value",
                            "quote it if it contains `:` or starts with `[` or `{`",
                        );
                        continue;
                    }
                },
                _ => self
                    .string(item, &item_path, "default", false)
                    .unwrap_or_default(),
            };
            let value = match parse_input(&raw) {
                Some(Ok(input)) => input,
                Some(Err(problem)) => {
                    let node = item.get("value").unwrap_or(item);
                    self.error(
                        node,
                        &join(&item_path, "value"),
                        problem,
                        "write `<+input>`, `<+input>.default(x)` or `<+input>.allowedValues(a,b)`",
                    );
                    continue;
                }
                None => VariableValue::Fixed(raw),
            };
            out.push(Variable {
                name,
                kind,
                value,
                location: self.loc(item, &item_path),
            });
        }
        out
    }

    fn stages(&mut self, node: &Node, path: &str) -> Vec<StageItem> {
        let Some(items) = node.as_seq() else {
            self.error(
                node,
                path,
                format!("`stages` must be a list, found {}", node.kind()),
                "write each stage as `- stage:`",
            );
            return vec![];
        };
        if items.is_empty() {
            self.error(
                node,
                path,
                "`stages` is empty",
                "add at least one `- stage:`",
            );
        }
        let mut out = vec![];
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Some(entries) = self.map(item, &item_path, &[]) else {
                continue;
            };
            if entries.len() != 1 {
                self.error(
                    item,
                    &item_path,
                    "each item of `stages` has exactly one of `stage` or `parallel`",
                    "split it into separate `- stage:` items",
                );
                continue;
            }
            let (key, value) = &entries[0];
            match key.as_str() {
                Some("stage") => out.extend(
                    self.stage(value, &format!("{item_path}.stage"))
                        .map(|s| StageItem::Stage(Box::new(s))),
                ),
                Some("parallel") => {
                    let parallel_path = format!("{item_path}.parallel");
                    let Some(inner) = value.as_seq() else {
                        self.error(
                            value,
                            &parallel_path,
                            "`parallel` must be a list of `- stage:` items",
                            "indent the stages under `parallel:` as a list",
                        );
                        continue;
                    };
                    let mut stages = vec![];
                    for (j, inner_item) in inner.iter().enumerate() {
                        let inner_path = format!("{parallel_path}[{j}]");
                        match inner_item.get("stage") {
                            Some(stage) if inner_item.as_map().is_some_and(|m| m.len() == 1) => {
                                stages.extend(self.stage(stage, &format!("{inner_path}.stage")))
                            }
                            _ => self.error(
                                inner_item,
                                &inner_path,
                                "each item of a stage `parallel` must be a `- stage:`",
                                "nest only `- stage:` items under `parallel:`",
                            ),
                        }
                    }
                    out.push(StageItem::Parallel(stages));
                }
                Some("insert") => self.error(
                    key,
                    &item_path,
                    "`insert` (templates) is not supported by Lockstep",
                    "inline the template's stages",
                ),
                other => self.error(
                    key,
                    &item_path,
                    format!("`{}` cannot appear in `stages`", other.unwrap_or("?")),
                    "use `- stage:` or `- parallel:`",
                ),
            }
        }
        out
    }

    fn common(&mut self, node: &Node, path: &str, scope: Option<Scope>) -> Option<Common> {
        let name = self.string(node, path, "name", true);
        let identifier = self.identifier(node, path);
        let when = self.when(node, path, scope.is_none());
        let failure_strategies = self.failure_strategies(node, path, scope);
        let strategy = self.strategy(node, path);
        let timeout = self.duration(node, path, "timeout");
        Some(Common {
            name: name?,
            identifier: identifier?,
            when,
            failure_strategies,
            strategy,
            timeout,
            location: self.loc(node, path),
        })
    }

    fn stage(&mut self, node: &Node, path: &str) -> Option<Stage> {
        self.map(node, path, STAGE_KEYS)?;
        let common = self.common(node, path, None);
        let stage_type = self.string(node, path, "type", true);
        let variables = self.variables(node, path);
        let spec_path = join(path, "spec");
        let execution = match node.get("spec") {
            None => {
                self.error(
                    node,
                    &spec_path,
                    "a stage needs a `spec` with `execution`",
                    "add `spec:` → `execution:` → `steps:`",
                );
                Execution::default()
            }
            Some(spec) => {
                let known: &[&str] = match stage_type.as_deref() {
                    Some("Deployment") => &[
                        "execution",
                        "deploymentType",
                        "service",
                        "services",
                        "environment",
                        "environments",
                    ],
                    Some("CI") => &[
                        "execution",
                        "cloneCodebase",
                        "infrastructure",
                        "platform",
                        "runtime",
                        "serviceDependencies",
                        "sharedPaths",
                    ],
                    _ => &["execution", "serviceDependencies"],
                };
                self.map(spec, &spec_path, known);
                match spec.get("execution") {
                    Some(execution) => self.execution(execution, &join(&spec_path, "execution")),
                    None => {
                        self.error(
                            spec,
                            &spec_path,
                            "`execution` is required in a stage's `spec`",
                            "add `execution:` with `steps:`",
                        );
                        Execution::default()
                    }
                }
            }
        };
        if let Some(t) = &stage_type
            && !matches!(t.as_str(), "Custom" | "Deployment" | "CI")
        {
            let at = node.get("type").unwrap_or(node);
            self.warn(
                at,
                &join(path, "type"),
                format!("stage type `{t}` runs like a Custom stage"),
                "Lockstep runs the execution steps of every stage type the same way",
            );
        }
        Some(Stage {
            common: common?,
            stage_type: stage_type?,
            variables,
            execution,
        })
    }

    fn execution(&mut self, node: &Node, path: &str) -> Execution {
        if self.map(node, path, &["steps", "rollbackSteps"]).is_none() {
            return Execution::default();
        }
        let steps = match node.get("steps") {
            Some(steps) => self.steps(steps, &join(path, "steps"), Scope::Stage, true),
            None => {
                self.error(
                    node,
                    &join(path, "steps"),
                    "`execution` needs `steps`",
                    "add `steps:` with at least one `- step:`",
                );
                vec![]
            }
        };
        let rollback_steps = node
            .get("rollbackSteps")
            .map(|n| self.steps(n, &join(path, "rollbackSteps"), Scope::Stage, false))
            .unwrap_or_default();
        self.unique_ids(&steps, &rollback_steps);
        Execution {
            steps,
            rollback_steps,
        }
    }

    fn steps(&mut self, node: &Node, path: &str, scope: Scope, non_empty: bool) -> Vec<StepItem> {
        if node.is_null() {
            if non_empty {
                self.error(
                    node,
                    path,
                    "this list of steps is empty",
                    "add at least one `- step:`",
                );
            }
            return vec![];
        }
        let Some(items) = node.as_seq() else {
            self.error(
                node,
                path,
                format!(
                    "`{}` must be a list, found {}",
                    last_segment(path),
                    node.kind()
                ),
                "write each step as `- step:`",
            );
            return vec![];
        };
        if items.is_empty() && non_empty {
            self.error(
                node,
                path,
                "this list of steps is empty",
                "add at least one `- step:`",
            );
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.step_item(item, &format!("{path}[{i}]"), scope))
            .collect()
    }

    fn step_item(&mut self, item: &Node, path: &str, scope: Scope) -> Option<StepItem> {
        let entries = self.map(item, path, &[])?;
        if entries.len() != 1 {
            self.error(
                item,
                path,
                "each item of a step list has exactly one of `step`, `stepGroup` or `parallel`",
                "split it into separate list items",
            );
            return None;
        }
        let (key, value) = &entries[0];
        match key.as_str() {
            Some("step") => self
                .step(value, &format!("{path}.step"), scope)
                .map(StepItem::Step),
            Some("stepGroup") => self
                .step_group(value, &format!("{path}.stepGroup"))
                .map(StepItem::Group),
            Some("parallel") => {
                let parallel_path = format!("{path}.parallel");
                let Some(inner) = value.as_seq() else {
                    self.error(
                        value,
                        &parallel_path,
                        "`parallel` must be a list of steps or step groups",
                        "indent `- step:` items under `parallel:`",
                    );
                    return None;
                };
                let items: Vec<StepItem> = inner
                    .iter()
                    .enumerate()
                    .filter_map(|(j, n)| self.step_item(n, &format!("{parallel_path}[{j}]"), scope))
                    .collect();
                if items.iter().any(|i| matches!(i, StepItem::Parallel(_))) {
                    self.error(
                        value,
                        &parallel_path,
                        "`parallel` cannot contain another `parallel`",
                        "flatten the inner list into this one",
                    );
                }
                Some(StepItem::Parallel(items))
            }
            Some("insert") => {
                self.error(
                    key,
                    path,
                    "`insert` (templates) is not supported by Lockstep",
                    "inline the template's steps",
                );
                None
            }
            other => {
                self.error(
                    key,
                    path,
                    format!("`{}` cannot appear in a step list", other.unwrap_or("?")),
                    "use `- step:`, `- stepGroup:` or `- parallel:`",
                );
                None
            }
        }
    }

    fn step(&mut self, node: &Node, path: &str, scope: Scope) -> Option<Step> {
        self.map(node, path, STEP_KEYS)?;
        let common = self.common(node, path, Some(scope));
        let step_type = self.string(node, path, "type", true);
        let spec = node.get("spec").cloned().unwrap_or(Node {
            value: Value::Map(vec![]),
            pos: node.pos,
        });
        if !spec.is_null() && spec.as_map().is_none() {
            self.error(
                &spec,
                &join(path, "spec"),
                "a step's `spec` must be a map",
                "write the step's settings as `key: value` lines under `spec:`",
            );
        }
        Some(Step {
            common: common?,
            step_type: step_type?,
            spec,
        })
    }

    fn step_group(&mut self, node: &Node, path: &str) -> Option<StepGroup> {
        self.map(node, path, STEP_GROUP_KEYS)?;
        if node.get("template").is_some() {
            self.error(
                node,
                &join(path, "template"),
                "step group templates are not supported by Lockstep",
                "inline the template's steps",
            );
        }
        let common = self.common(node, path, Some(Scope::InGroup));
        let variables = self.variables(node, path);
        let steps = match node.get("steps") {
            Some(steps) => self.steps(steps, &join(path, "steps"), Scope::InGroup, true),
            None => {
                self.error(
                    node,
                    &join(path, "steps"),
                    "a step group needs `steps`",
                    "add `steps:` with at least one `- step:`",
                );
                vec![]
            }
        };
        let rollback_steps = node
            .get("rollbackSteps")
            .map(|n| self.steps(n, &join(path, "rollbackSteps"), Scope::InGroup, false))
            .unwrap_or_default();
        let infra = node.get("stepGroupInfra").cloned();
        Some(StepGroup {
            common: common?,
            variables,
            steps,
            rollback_steps,
            infra,
        })
    }

    fn when(&mut self, node: &Node, path: &str, is_stage: bool) -> Option<When> {
        let when = node.get("when")?;
        let path = join(path, "when");
        let status_key = if is_stage {
            "pipelineStatus"
        } else {
            "stageStatus"
        };
        self.map(when, &path, &[status_key, "condition"])?;
        let status = match self.string(when, &path, status_key, true)?.as_str() {
            "Success" => StatusGate::Success,
            "Failure" => StatusGate::Failure,
            "All" => StatusGate::All,
            other => {
                let at = when.get(status_key).unwrap_or(when);
                self.error(
                    at,
                    &join(&path, status_key),
                    format!("`{other}` is not a {status_key}"),
                    "use Success, Failure or All",
                );
                return None;
            }
        };
        let condition = match when.get("condition") {
            None => None,
            Some(c) => match &c.value {
                Value::Scalar { text, .. } => Some(text.clone()),
                Value::Null => None,
                _ => {
                    self.error(
                        c,
                        &join(&path, "condition"),
                        "`condition` must be an expression",
                        "write e.g. `condition: <+pipeline.variables.deploy> == \"yes\"`",
                    );
                    None
                }
            },
        };
        Some(When { status, condition })
    }

    fn failure_strategies(
        &mut self,
        node: &Node,
        path: &str,
        scope: Option<Scope>,
    ) -> Vec<FailureRule> {
        let Some(list) = node.get("failureStrategies") else {
            return vec![];
        };
        let path = join(path, "failureStrategies");
        if list.is_null() {
            return vec![];
        }
        let Some(items) = list.as_seq() else {
            self.error(
                list,
                &path,
                "`failureStrategies` must be a list",
                "write each rule as `- onFailure:` with `errors` and `action`",
            );
            return vec![];
        };
        let mut rules = vec![];
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if self.map(item, &item_path, &["onFailure"]).is_none() {
                continue;
            }
            let Some(on_failure) = item.get("onFailure") else {
                self.error(
                    item,
                    &item_path,
                    "a failure strategy needs `onFailure`",
                    "write `- onFailure: {errors: [AllErrors], action: {type: Ignore}}`",
                );
                continue;
            };
            let of_path = join(&item_path, "onFailure");
            if self
                .map(on_failure, &of_path, &["errors", "action"])
                .is_none()
            {
                continue;
            }
            let errors = self.error_types(on_failure, &of_path);
            let Some(action_node) = on_failure.get("action") else {
                self.error(
                    on_failure,
                    &join(&of_path, "action"),
                    "`onFailure` needs an `action`",
                    "add `action: {type: Ignore}` or another action",
                );
                continue;
            };
            if let Some(action) = self.action(action_node, &join(&of_path, "action"), scope, true) {
                rules.push(FailureRule {
                    errors,
                    action,
                    location: self.loc(item, &item_path),
                });
            }
        }
        rules
    }

    fn error_types(&mut self, on_failure: &Node, path: &str) -> Vec<ErrorType> {
        let errors_path = join(path, "errors");
        let Some(list) = on_failure.get("errors").and_then(Node::as_seq) else {
            self.error(
                on_failure,
                &errors_path,
                "`errors` must be a list of error types",
                "write e.g. `errors: [AllErrors]`",
            );
            return vec![];
        };
        let mut out = vec![];
        for (i, e) in list.iter().enumerate() {
            match e.as_str().and_then(ErrorType::parse) {
                Some(t) => out.push(t),
                None => {
                    let names: Vec<&str> = ErrorType::ALL.iter().map(|t| t.name()).collect();
                    let text = e.as_str().unwrap_or("?");
                    let help = closest(text, &names).map_or_else(
                        || format!("use one of {}", names.join(", ")),
                        |g| format!("did you mean `{g}`?"),
                    );
                    self.error(
                        e,
                        &format!("{errors_path}[{i}]"),
                        format!("`{text}` is not an error type"),
                        help,
                    );
                }
            }
        }
        out
    }

    fn action(
        &mut self,
        node: &Node,
        path: &str,
        scope: Option<Scope>,
        allow_retry: bool,
    ) -> Option<Action> {
        self.map(node, path, &["type", "spec"])?;
        let kind = self.string(node, path, "type", true)?;
        let at = node.get("type").unwrap_or(node);
        let type_path = join(path, "type");
        let spec_path = join(path, "spec");
        let spec = node.get("spec");
        let action = match kind.as_str() {
            "Ignore" => Action::Ignore,
            "MarkAsSuccess" => Action::MarkAsSuccess,
            "MarkAsFailure" => Action::MarkAsFailure,
            "Abort" => Action::Abort,
            "StageRollback" => Action::StageRollback,
            "PipelineRollback" => Action::PipelineRollback,
            "ProceedWithDefaultValues" => Action::ProceedWithDefaultValues,
            "StepGroupRollback" | "RetryStepGroup" if scope != Some(Scope::InGroup) => {
                self.error(
                    at,
                    &type_path,
                    format!("`{kind}` applies only inside a step group"),
                    "move this rule to the step group, or use StageRollback / Retry",
                );
                return None;
            }
            "StepGroupRollback" => Action::StepGroupRollback,
            "Retry" | "RetryStepGroup" if !allow_retry => {
                self.error(
                    at,
                    &type_path,
                    "`onRetryFailure` cannot retry again",
                    "use Ignore, MarkAsFailure, Abort or a rollback here",
                );
                return None;
            }
            "Retry" | "RetryStepGroup" => {
                let Some(spec) = spec else {
                    self.error(
                        node,
                        &spec_path,
                        format!("`{kind}` needs a `spec` with `retryCount`"),
                        "add `spec: {retryCount: 2, retryIntervals: [10s]}`",
                    );
                    return None;
                };
                let known: &[&str] = if kind == "Retry" {
                    &[
                        "retryCount",
                        "retryIntervals",
                        "onRetryFailure",
                        "condition",
                    ]
                } else {
                    &["retryCount", "retryIntervals"]
                };
                self.map(spec, &spec_path, known)?;
                let count = self.string(spec, &spec_path, "retryCount", true)?;
                let Ok(count) = count.parse::<u32>() else {
                    let at = spec.get("retryCount").unwrap_or(spec);
                    self.error(
                        at,
                        &join(&spec_path, "retryCount"),
                        format!("`{count}` is not a whole number"),
                        "write e.g. `retryCount: 2`",
                    );
                    return None;
                };
                let intervals = self.intervals(spec, &spec_path);
                if kind == "RetryStepGroup" {
                    Action::RetryStepGroup { count, intervals }
                } else {
                    let orf_path = join(&spec_path, "onRetryFailure");
                    let on_retry_failure =
                        match spec.get("onRetryFailure").and_then(|n| n.get("action")) {
                            Some(a) => self.action(a, &join(&orf_path, "action"), scope, false)?,
                            None => {
                                self.error(
                                    spec,
                                    &orf_path,
                                    "`Retry` needs `onRetryFailure.action`",
                                    "add `onRetryFailure: {action: {type: MarkAsFailure}}`",
                                );
                                return None;
                            }
                        };
                    Action::Retry {
                        count,
                        intervals,
                        on_retry_failure: Box::new(on_retry_failure),
                    }
                }
            }
            "ManualIntervention" => {
                self.error(at, &type_path, "ManualIntervention waits for a person to choose, but Lockstep runs are non-interactive", "use the action you would pick by hand (Retry, Ignore, MarkAsFailure, StageRollback or Abort)");
                return None;
            }
            other => {
                let names = [
                    "Ignore",
                    "Retry",
                    "RetryStepGroup",
                    "MarkAsSuccess",
                    "MarkAsFailure",
                    "Abort",
                    "StageRollback",
                    "StepGroupRollback",
                    "PipelineRollback",
                    "ProceedWithDefaultValues",
                ];
                let help = closest(other, &names).map_or_else(
                    || format!("use one of {}", names.join(", ")),
                    |g| format!("did you mean `{g}`?"),
                );
                self.error(
                    at,
                    &type_path,
                    format!("`{other}` is not a failure action"),
                    help,
                );
                return None;
            }
        };
        Some(action)
    }

    fn intervals(&mut self, spec: &Node, path: &str) -> Vec<Duration> {
        let Some(list) = spec.get("retryIntervals") else {
            return vec![];
        };
        let list_path = join(path, "retryIntervals");
        let Some(items) = list.as_seq() else {
            self.error(
                list,
                &list_path,
                "`retryIntervals` must be a list of durations",
                "write e.g. `retryIntervals: [10s, 30s]`",
            );
            return vec![];
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let parsed = item.as_str().and_then(duration::parse);
                if parsed.is_none() {
                    self.error(
                        item,
                        &format!("{list_path}[{i}]"),
                        "not a duration",
                        "write e.g. `10s` or `1m`",
                    );
                }
                parsed
            })
            .collect()
    }

    fn strategy(&mut self, node: &Node, path: &str) -> Option<Strategy> {
        let strategy = node.get("strategy")?;
        let path = join(path, "strategy");
        let entries = self.map(
            strategy,
            &path,
            &["matrix", "parallelism", "repeat", "onFailure", "when"],
        )?;
        let forms: Vec<&str> = entries
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .filter(|k| matches!(*k, "matrix" | "parallelism" | "repeat"))
            .collect();
        if forms.len() != 1 {
            self.error(
                strategy,
                &path,
                "a strategy has exactly one of `matrix`, `parallelism` or `repeat`",
                "keep one of them",
            );
            return None;
        }
        let form = forms[0];
        let body = strategy.get(form)?;
        let body_path = join(&path, form);
        match form {
            "matrix" => self.matrix(body, &body_path),
            "parallelism" => {
                let count = self.countable(body, &body_path)?;
                Some(Strategy::Parallelism {
                    count,
                    max_concurrency: None,
                })
            }
            _ => self.repeat(body, &body_path),
        }
    }

    fn countable(&mut self, node: &Node, path: &str) -> Option<Countable> {
        let text = node.as_str().unwrap_or_default();
        if let Ok(n) = text.parse::<usize>() {
            return Some(Countable::Fixed(n));
        }
        if text.contains("<+") {
            return Some(Countable::Expression(text.to_string()));
        }
        self.error(
            node,
            path,
            format!("`{text}` is not a whole number"),
            "write a number such as `3`, or an expression",
        );
        None
    }

    fn max_concurrency(&mut self, body: &Node, path: &str) -> Option<usize> {
        let node = body.get("maxConcurrency")?;
        match node.as_str().and_then(|t| t.parse::<usize>().ok()) {
            Some(n) if n > 0 => Some(n),
            _ => {
                self.error(
                    node,
                    &join(path, "maxConcurrency"),
                    "`maxConcurrency` must be a whole number of at least 1",
                    "write e.g. `maxConcurrency: 2`",
                );
                None
            }
        }
    }

    fn matrix(&mut self, body: &Node, path: &str) -> Option<Strategy> {
        let entries = self.map(body, path, &[])?;
        let mut axes = vec![];
        let mut exclude = vec![];
        for (key, value) in entries {
            let name = key.as_str().unwrap_or_default();
            match name {
                "maxConcurrency" | "nodeName" => {}
                "exclude" => {
                    let Some(items) = value.as_seq() else {
                        self.error(
                            value,
                            &join(path, "exclude"),
                            "`exclude` must be a list of axis combinations",
                            "write e.g. `exclude: [{os: linux, arch: arm}]`",
                        );
                        continue;
                    };
                    for item in items {
                        if let Some(pairs) = item.as_map() {
                            exclude.push(
                                pairs
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().unwrap_or_default().to_string(), v.to_json())
                                    })
                                    .collect(),
                            );
                        } else {
                            self.error(
                                item,
                                &join(path, "exclude"),
                                "each `exclude` item is a map of axis: value",
                                "write e.g. `- {os: linux}`",
                            );
                        }
                    }
                }
                _ => match value.as_seq() {
                    Some(values) if !values.is_empty() => {
                        axes.push((name.to_string(), values.iter().map(Node::to_json).collect()))
                    }
                    _ => self.error(
                        value,
                        &join(path, name),
                        format!("matrix axis `{name}` must be a non-empty list"),
                        format!("write e.g. `{name}: [a, b]`"),
                    ),
                },
            }
        }
        if axes.is_empty() {
            self.error(
                body,
                path,
                "a matrix needs at least one axis",
                "add e.g. `version: [1, 2]`",
            );
            return None;
        }
        let max_concurrency = self.max_concurrency(body, path);
        Some(Strategy::Matrix {
            axes,
            exclude,
            max_concurrency,
        })
    }

    fn repeat(&mut self, body: &Node, path: &str) -> Option<Strategy> {
        self.map(
            body,
            path,
            &[
                "times",
                "items",
                "maxConcurrency",
                "start",
                "end",
                "unit",
                "partitionSize",
                "nodeName",
            ],
        )?;
        let max_concurrency = self.max_concurrency(body, path);
        let source = match (body.get("times"), body.get("items")) {
            (Some(times), None) => {
                RepeatSource::Times(self.countable(times, &join(path, "times"))?)
            }
            (None, Some(items)) => match (&items.value, items.as_str()) {
                (Value::Seq(list), _) => {
                    RepeatSource::Items(list.iter().map(Node::to_json).collect())
                }
                (_, Some(text)) if text.contains("<+") => {
                    RepeatSource::ItemsExpression(text.to_string())
                }
                _ => {
                    self.error(
                        items,
                        &join(path, "items"),
                        "`items` must be a list or an expression",
                        "write e.g. `items: [a, b]`",
                    );
                    return None;
                }
            },
            _ => {
                self.error(
                    body,
                    path,
                    "`repeat` needs exactly one of `times` or `items`",
                    "write e.g. `times: 3` or `items: [a, b]`",
                );
                return None;
            }
        };
        Some(Strategy::Repeat {
            source,
            max_concurrency,
        })
    }

    /// Stage identifiers are unique in the pipeline.
    fn unique_stage_ids(&mut self, stages: &[StageItem]) {
        let mut seen = HashSet::new();
        for stage in stages.iter().flat_map(StageItem::stages) {
            if !seen.insert(stage.common.identifier.clone()) {
                self.diags.push(duplicate(&stage.common));
            }
        }
    }

    /// Step and step-group identifiers are unique within a stage: expressions address them by id.
    fn unique_ids(&mut self, steps: &[StepItem], rollback: &[StepItem]) {
        let mut seen = HashSet::new();
        let mut stack: Vec<&StepItem> = steps.iter().chain(rollback).collect();
        while let Some(item) = stack.pop() {
            let common = match item {
                StepItem::Step(s) => &s.common,
                StepItem::Group(g) => {
                    stack.extend(g.steps.iter().chain(&g.rollback_steps));
                    &g.common
                }
                StepItem::Parallel(items) => {
                    stack.extend(items);
                    continue;
                }
            };
            if !seen.insert(common.identifier.clone()) {
                self.diags.push(duplicate(common));
            }
        }
    }
}

fn duplicate(common: &Common) -> Diagnostic {
    Diagnostic::error(
        common.location.clone(),
        format!("identifier `{}` is used twice", common.identifier),
    )
    .with_help("identifiers are how expressions find a node; give each one its own")
}

/// Parses `<+input>`, `<+input>.default(x)`, `<+input>.allowedValues(a,b)` (in either order).
/// `None` when the text is not a runtime input.
fn parse_input(text: &str) -> Option<Result<VariableValue, String>> {
    let rest = text.trim().strip_prefix("<+input>")?;
    let mut default = None;
    let mut allowed = None;
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some(call) = rest.strip_prefix('.') else {
            return Some(Err(format!("unexpected `{rest}` after `<+input>`")));
        };
        let Some(open) = call.find('(') else {
            return Some(Err(format!("`{call}` is missing its `(...)`")));
        };
        let Some(close) = call.find(')') else {
            return Some(Err(format!("`{call}` is missing `)`")));
        };
        let args = &call[open + 1..close];
        match &call[..open] {
            "default" => default = Some(args.trim().to_string()),
            "allowedValues" => {
                allowed = Some(args.split(',').map(|s| s.trim().to_string()).collect())
            }
            "executionInput" => {}
            other => {
                return Some(Err(format!(
                    "`.{other}(...)` is not supported on `<+input>`"
                )));
            }
        }
        rest = call[close + 1..].trim();
    }
    Some(Ok(VariableValue::Input { default, allowed }))
}

pub fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 128
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn last_segment(path: &str) -> &str {
    let tail = path.rsplit('.').next().unwrap_or(path);
    tail.split('[').next().unwrap_or(tail)
}

fn last_line(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => items.iter().map(last_line).max().unwrap_or(node.pos.line),
        Value::Map(entries) => entries
            .iter()
            .map(|(_, v)| last_line(v))
            .max()
            .unwrap_or(node.pos.line),
        Value::Scalar { text, .. } => node.pos.line + text.matches('\n').count(),
        Value::Null => node.pos.line,
    }
}

/// The known name closest to a misspelt one, if it is close enough to be a likely typo.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(&word.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
