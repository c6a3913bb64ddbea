//! Resolves a pipeline into the graph that runs: looping strategies expanded into copies with
//! suffixed identifiers, every node given its fully qualified name (FQN).
//!
//! FQNs mirror the YAML: `pipeline.stages.S.spec.execution.steps.G.steps.X`; rollback steps sit
//! under `…execution.rollbackSteps.X` (or `…steps.G.rollbackSteps.X`); `parallel` adds no segment.

pub mod inputs;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::expr::{self, ExprError, Resolver};
use crate::pipeline::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Pipeline,
    Stage,
    StepGroup,
    Step,
    /// Children run concurrently, at most `concurrency` at a time.
    Parallel,
}

/// The values a looping strategy gives one copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrategyValues {
    pub iteration: usize,
    pub iterations: usize,
    pub matrix: BTreeMap<String, Value>,
    pub item: Option<Value>,
    pub identifier_postfix: String,
}

#[derive(Debug, Clone)]
pub struct PlanNode {
    pub kind: NodeKind,
    pub identifier: String,
    pub name: String,
    /// Empty for `Parallel`.
    pub fqn: String,
    pub common: Option<Common>,
    pub step: Option<Step>,
    pub variables: Vec<Variable>,
    pub children: Vec<PlanNode>,
    pub rollback: Vec<PlanNode>,
    pub concurrency: Option<usize>,
    pub strategy: Option<StrategyValues>,
    /// A step group's `stepGroupInfra` cluster: the default for its Kubernetes steps' grants.
    pub infra: Option<KubeInfra>,
}

/// `stepGroupInfra: { type: KubernetesDirect, spec: { connectorRef, namespace } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeInfra {
    pub connector: String,
    pub namespace: Option<String>,
}

impl KubeInfra {
    fn from_node(node: &crate::yaml::Node) -> Option<KubeInfra> {
        let spec = node.get("spec")?;
        let text = |key: &str| {
            spec.get(key)
                .and_then(crate::yaml::Node::as_str)
                .map(str::to_string)
        };
        Some(KubeInfra {
            connector: text("connectorRef")?,
            namespace: text("namespace"),
        })
    }
}

impl PlanNode {
    fn new(kind: NodeKind, identifier: &str, name: &str, fqn: String) -> Self {
        PlanNode {
            kind,
            identifier: identifier.into(),
            name: name.into(),
            fqn,
            common: None,
            step: None,
            variables: vec![],
            children: vec![],
            rollback: vec![],
            concurrency: None,
            strategy: None,
            infra: None,
        }
    }

    fn parallel(children: Vec<PlanNode>, concurrency: Option<usize>) -> Self {
        PlanNode {
            concurrency,
            children,
            ..PlanNode::new(NodeKind::Parallel, "", "", String::new())
        }
    }

    /// The step type, for steps; the node kind's name otherwise.
    pub fn type_name(&self) -> &str {
        match self.kind {
            NodeKind::Pipeline => "Pipeline",
            NodeKind::Stage => "Stage",
            NodeKind::StepGroup => "StepGroup",
            NodeKind::Parallel => "Parallel",
            NodeKind::Step => self.step.as_ref().map_or("Step", |s| s.step_type.as_str()),
        }
    }

    /// Every node below (not including) this one, depth first.
    pub fn descendants(&self) -> Vec<&PlanNode> {
        let mut out = vec![];
        for child in self.children.iter().chain(&self.rollback) {
            out.push(child);
            out.extend(child.descendants());
        }
        out
    }
}

/// Why a looping strategy cannot be expanded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("`exclude` removes every combination")]
    EverythingExcluded,
    #[error(transparent)]
    Expression(#[from] ExprError),
    #[error("`{text}` gave `{value}`, which is not a whole number")]
    NotACount { text: String, value: String },
}

/// A node whose looping strategy cannot be expanded, where it is and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: strategy of `{identifier}`: {reason}")]
pub struct PlanError {
    pub location: String,
    pub identifier: String,
    pub reason: StrategyError,
}

/// Builds the plan. `resolver` resolves expressions in strategy counts and items
/// (pipeline variables and meta are known before the run).
pub fn build(pipeline: &Pipeline, resolver: &dyn Resolver) -> Result<PlanNode, PlanError> {
    let mut root = PlanNode::new(
        NodeKind::Pipeline,
        &pipeline.identifier,
        &pipeline.name,
        "pipeline".into(),
    );
    root.variables = pipeline.variables.clone();
    root.common = Some(Common {
        name: pipeline.name.clone(),
        identifier: pipeline.identifier.clone(),
        when: None,
        failure_strategies: vec![],
        strategy: None,
        timeout: pipeline.timeout,
        location: pipeline.location.clone(),
    });
    for item in &pipeline.stages {
        root.children.push(match item {
            StageItem::Stage(stage) => stage_node(stage, resolver)?,
            StageItem::Parallel(stages) => PlanNode::parallel(
                stages
                    .iter()
                    .map(|s| stage_node(s, resolver))
                    .collect::<Result<_, _>>()?,
                None,
            ),
        });
    }
    Ok(root)
}

fn stage_node(stage: &Stage, resolver: &dyn Resolver) -> Result<PlanNode, PlanError> {
    expand(&stage.common, resolver, |id, values| {
        let fqn = format!("pipeline.stages.{id}");
        let exec = format!("{fqn}.spec.execution");
        let mut node = PlanNode::new(NodeKind::Stage, id, &stage.common.name, fqn);
        node.common = Some(stage.common.clone());
        node.variables = stage.variables.clone();
        node.strategy = values;
        node.children = items(&stage.execution.steps, &format!("{exec}.steps"), resolver)?;
        node.rollback = items(
            &stage.execution.rollback_steps,
            &format!("{exec}.rollbackSteps"),
            resolver,
        )?;
        Ok(node)
    })
}

fn items(
    list: &[StepItem],
    prefix: &str,
    resolver: &dyn Resolver,
) -> Result<Vec<PlanNode>, PlanError> {
    list.iter()
        .map(|item| step_item(item, prefix, resolver))
        .collect()
}

fn step_item(
    item: &StepItem,
    prefix: &str,
    resolver: &dyn Resolver,
) -> Result<PlanNode, PlanError> {
    match item {
        StepItem::Parallel(inner) => Ok(PlanNode::parallel(items(inner, prefix, resolver)?, None)),
        StepItem::Step(step) => expand(&step.common, resolver, |id, values| {
            let mut node = PlanNode::new(
                NodeKind::Step,
                id,
                &step.common.name,
                format!("{prefix}.{id}"),
            );
            node.common = Some(step.common.clone());
            node.step = Some(step.clone());
            node.strategy = values;
            Ok(node)
        }),
        StepItem::Group(group) => expand(&group.common, resolver, |id, values| {
            let fqn = format!("{prefix}.{id}");
            let mut node = PlanNode::new(NodeKind::StepGroup, id, &group.common.name, fqn.clone());
            node.common = Some(group.common.clone());
            node.variables = group.variables.clone();
            node.strategy = values;
            node.children = items(&group.steps, &format!("{fqn}.steps"), resolver)?;
            node.rollback = items(
                &group.rollback_steps,
                &format!("{fqn}.rollbackSteps"),
                resolver,
            )?;
            node.infra = group.infra.as_ref().and_then(KubeInfra::from_node);
            Ok(node)
        }),
    }
}

/// Calls `make` once for a node without a strategy, or once per copy (with a suffixed
/// identifier and its values) wrapped in a `Parallel` honouring `maxConcurrency`.
fn expand(
    common: &Common,
    resolver: &dyn Resolver,
    make: impl Fn(&str, Option<StrategyValues>) -> Result<PlanNode, PlanError>,
) -> Result<PlanNode, PlanError> {
    let Some(strategy) = &common.strategy else {
        return make(&common.identifier, None);
    };
    let (copies, concurrency) = copies(strategy, resolver).map_err(|reason| PlanError {
        location: common.location.to_string(),
        identifier: common.identifier.clone(),
        reason,
    })?;
    let iterations = copies.len();
    let nodes = copies
        .into_iter()
        .enumerate()
        .map(|(iteration, (postfix, matrix, item))| {
            let values = StrategyValues {
                iteration,
                iterations,
                matrix,
                item,
                identifier_postfix: postfix.clone(),
            };
            make(&format!("{}{postfix}", common.identifier), Some(values))
        })
        .collect::<Result<_, _>>()?;
    Ok(PlanNode::parallel(nodes, concurrency))
}

type Copy = (String, BTreeMap<String, Value>, Option<Value>);

fn copies(
    strategy: &Strategy,
    resolver: &dyn Resolver,
) -> Result<(Vec<Copy>, Option<usize>), StrategyError> {
    match strategy {
        Strategy::Matrix {
            axes,
            exclude,
            max_concurrency,
        } => {
            let mut combos: Vec<(Vec<usize>, BTreeMap<String, Value>)> =
                vec![(vec![], BTreeMap::new())];
            for (axis, values) in axes {
                combos = combos
                    .into_iter()
                    .flat_map(|(idx, combo)| {
                        values.iter().enumerate().map(move |(i, v)| {
                            let mut idx = idx.clone();
                            idx.push(i);
                            let mut combo = combo.clone();
                            combo.insert(axis.clone(), v.clone());
                            (idx, combo)
                        })
                    })
                    .collect();
            }
            combos.retain(|(_, combo)| {
                !exclude.iter().any(|ex| {
                    ex.iter().all(|(k, v)| {
                        combo
                            .get(k)
                            .is_some_and(|c| expr::to_text(c) == expr::to_text(v))
                    })
                })
            });
            if combos.is_empty() {
                return Err(StrategyError::EverythingExcluded);
            }
            let copies = combos
                .into_iter()
                .map(|(idx, combo)| (idx.iter().map(|i| format!("_{i}")).collect(), combo, None))
                .collect();
            Ok((copies, *max_concurrency))
        }
        Strategy::Parallelism {
            count,
            max_concurrency,
        } => {
            let n = count_of(count, resolver)?;
            Ok((
                (0..n)
                    .map(|i| (format!("_{i}"), BTreeMap::new(), None))
                    .collect(),
                *max_concurrency,
            ))
        }
        Strategy::Repeat {
            source,
            max_concurrency,
        } => {
            let items: Vec<Option<Value>> = match source {
                RepeatSource::Times(count) => {
                    (0..count_of(count, resolver)?).map(|_| None).collect()
                }
                RepeatSource::Items(items) => items.iter().cloned().map(Some).collect(),
                RepeatSource::ItemsExpression(text) => match expr::interpolate(text, resolver)? {
                    Value::Array(items) => items.into_iter().map(Some).collect(),
                    other => expr::to_text(&other)
                        .split(',')
                        .map(|s| Some(Value::String(s.trim().to_string())))
                        .collect(),
                },
            };
            Ok((
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (format!("_{i}"), BTreeMap::new(), item))
                    .collect(),
                *max_concurrency,
            ))
        }
    }
}

fn count_of(count: &Countable, resolver: &dyn Resolver) -> Result<usize, StrategyError> {
    match count {
        Countable::Fixed(n) => Ok(*n),
        Countable::Expression(text) => {
            let value = expr::to_text(&expr::interpolate(text, resolver)?);
            value.trim().parse().map_err(|_| StrategyError::NotACount {
                text: text.clone(),
                value,
            })
        }
    }
}

/// The plan as an indented tree, one node a line.
pub fn render_tree(root: &PlanNode) -> String {
    let mut out = format!("pipeline {} ({})\n", root.identifier, root.name);
    tree_children(&root.children, "", &mut out);
    out
}

fn tree_children(children: &[PlanNode], indent: &str, out: &mut String) {
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        tree_node(child, indent, last, out);
    }
}

fn tree_node(node: &PlanNode, indent: &str, last: bool, out: &mut String) {
    let branch = if last { "└─ " } else { "├─ " };
    let label = match node.kind {
        NodeKind::Parallel => match node.concurrency {
            Some(n) => format!("parallel (at most {n} at a time)"),
            None => "parallel".to_string(),
        },
        NodeKind::Stage => format!(
            "stage {} ({})",
            node.identifier,
            node.common.as_ref().map_or("", |c| c.name.as_str())
        ),
        NodeKind::StepGroup => format!("stepGroup {}", node.identifier),
        NodeKind::Step => format!("step {} ({})", node.identifier, node.type_name()),
        NodeKind::Pipeline => format!("pipeline {}", node.identifier),
    };
    let when = when_label(node).map(|w| format!("  [{w}]"));
    out.push_str(&format!(
        "{indent}{branch}{label}{}\n",
        when.unwrap_or_default()
    ));
    let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
    tree_children(&node.children, &child_indent, out);
    if !node.rollback.is_empty() {
        out.push_str(&format!("{child_indent}rollbackSteps:\n"));
        tree_children(&node.rollback, &format!("{child_indent}  "), out);
    }
}

/// `when Success if <condition>`: when a node runs, if it says.
fn when_label(node: &PlanNode) -> Option<String> {
    let when = node.common.as_ref()?.when.as_ref()?;
    let condition = when
        .condition
        .as_ref()
        .map_or(String::new(), |c| format!(" if {c}"));
    Some(format!("when {:?}{condition}", when.status))
}

/// Text inside a Mermaid `["…"]` label: quotes and angle brackets as Mermaid's entity codes.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// The plan as a Mermaid flowchart: stages and step groups are subgraphs, arrows show order;
/// a node that runs only under a `when` says so in its label.
pub fn render_mermaid(root: &PlanNode) -> String {
    let mut m = Mermaid {
        out: String::from("flowchart TD\n"),
        next: 0,
    };
    m.sequence(&root.children, 1);
    m.out
}

struct Mermaid {
    out: String,
    next: usize,
}

impl Mermaid {
    /// Emits `items` in order; returns (entry node ids, exit node ids).
    fn sequence(&mut self, items: &[PlanNode], depth: usize) -> (Vec<String>, Vec<String>) {
        let mut entries = vec![];
        let mut exits: Vec<String> = vec![];
        for item in items {
            let (ins, outs) = self.node(item, depth);
            if entries.is_empty() {
                entries = ins.clone();
            }
            for from in &exits {
                for to in &ins {
                    self.line(depth, &format!("{from} --> {to}"));
                }
            }
            exits = outs;
        }
        (entries, exits)
    }

    fn node(&mut self, node: &PlanNode, depth: usize) -> (Vec<String>, Vec<String>) {
        match node.kind {
            NodeKind::Parallel => {
                let mut ins = vec![];
                let mut outs = vec![];
                for child in &node.children {
                    let (i, o) = self.node(child, depth);
                    ins.extend(i);
                    outs.extend(o);
                }
                (ins, outs)
            }
            NodeKind::Step => {
                self.next += 1;
                let id = format!("n{}", self.next);
                let mut label = format!("{} · {}", node.name, node.type_name());
                if let Some(when) = when_label(node) {
                    label.push_str(&format!("<br/>{}", mermaid_text(&when)));
                }
                let label = label.replace('"', "'");
                self.line(depth, &format!("{id}[\"{label}\"]"));
                (vec![id.clone()], vec![id])
            }
            _ => {
                self.next += 1;
                let id = format!("g{}", self.next);
                let mut label = format!("{} {}", node.type_name(), node.name);
                if let Some(when) = when_label(node) {
                    label.push_str(&format!("<br/>{}", mermaid_text(&when)));
                }
                let label = label.replace('"', "'");
                self.line(depth, &format!("subgraph {id}[\"{label}\"]"));
                let (ins, outs) = self.sequence(&node.children, depth + 1);
                if !node.rollback.is_empty() {
                    self.next += 1;
                    let rb = format!("g{}", self.next);
                    self.line(depth + 1, &format!("subgraph {rb}[\"rollbackSteps\"]"));
                    self.sequence(&node.rollback, depth + 2);
                    self.line(depth + 1, "end");
                }
                self.line(depth, "end");
                if ins.is_empty() {
                    (vec![id.clone()], vec![id])
                } else {
                    (ins, outs)
                }
            }
        }
    }

    fn line(&mut self, depth: usize, text: &str) {
        self.out.push_str(&"    ".repeat(depth));
        self.out.push_str(text);
        self.out.push('\n');
    }
}
