//! The pipeline as written: stages, steps, step groups and their common fields.
//!
//! Values that may hold `<+...>` expressions stay text here; they are resolved when the node runs.

use std::time::Duration;

use crate::diag::Location;
use crate::yaml::Node;

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub identifier: String,
    pub variables: Vec<Variable>,
    pub stages: Vec<StageItem>,
    pub timeout: Option<Duration>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub kind: VariableKind,
    pub value: VariableValue,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableKind {
    String,
    Number,
    /// The value is a secret id; `<+...variables.X>` yields the secret's value, masked in logs.
    Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VariableValue {
    /// A fixed value or an expression.
    Fixed(String),
    /// `<+input>`: supplied with `--var`, else the `.default(...)`, else the run is refused.
    Input {
        default: Option<String>,
        allowed: Option<Vec<String>>,
    },
}

#[derive(Debug, Clone)]
pub enum StageItem {
    Stage(Box<Stage>),
    Parallel(Vec<Stage>),
}

impl StageItem {
    /// The stage, or the stages run in parallel.
    pub fn stages(&self) -> &[Stage] {
        match self {
            StageItem::Stage(stage) => std::slice::from_ref(&**stage),
            StageItem::Parallel(stages) => stages,
        }
    }
}

/// Fields every stage, step group and step has.
#[derive(Debug, Clone)]
pub struct Common {
    pub name: String,
    pub identifier: String,
    pub when: Option<When>,
    pub failure_strategies: Vec<FailureRule>,
    pub strategy: Option<Strategy>,
    pub timeout: Option<Duration>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub common: Common,
    pub stage_type: String,
    pub variables: Vec<Variable>,
    pub execution: Execution,
}

#[derive(Debug, Clone, Default)]
pub struct Execution {
    pub steps: Vec<StepItem>,
    pub rollback_steps: Vec<StepItem>,
}

#[derive(Debug, Clone)]
pub enum StepItem {
    Step(Step),
    Group(StepGroup),
    Parallel(Vec<StepItem>),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub common: Common,
    pub step_type: String,
    /// The `spec` as written; expressions inside are resolved just before the step runs.
    pub spec: Node,
}

#[derive(Debug, Clone)]
pub struct StepGroup {
    pub common: Common,
    pub variables: Vec<Variable>,
    pub steps: Vec<StepItem>,
    /// Run by the `StepGroupRollback` action.
    pub rollback_steps: Vec<StepItem>,
    /// `stepGroupInfra` as written (used by later capabilities for default grants).
    pub infra: Option<Node>,
}

/// `when` on a stage (`pipelineStatus`) or a step / step group (`stageStatus`).
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    pub status: StatusGate,
    pub condition: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusGate {
    /// Run only if nothing before it failed (also the default without `when`).
    Success,
    /// Run only if something before it failed.
    Failure,
    /// Always run.
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailureRule {
    pub errors: Vec<ErrorType>,
    pub action: Action,
    pub location: Location,
}

impl FailureRule {
    /// Whether this rule names `error` explicitly (not through `AllErrors`).
    pub fn names(&self, error: ErrorType) -> bool {
        self.errors.contains(&error)
    }

    pub fn catches_all(&self) -> bool {
        self.errors.contains(&ErrorType::AllErrors)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Ignore,
    Retry {
        count: u32,
        intervals: Vec<Duration>,
        on_retry_failure: Box<Action>,
    },
    RetryStepGroup {
        count: u32,
        intervals: Vec<Duration>,
    },
    MarkAsSuccess,
    MarkAsFailure,
    Abort,
    StageRollback,
    StepGroupRollback,
    PipelineRollback,
    /// Runs are non-interactive and every runtime input is resolved before the first step, so
    /// no input can time out: this acts as `MarkAsSuccess`.
    ProceedWithDefaultValues,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Ignore => "Ignore",
            Action::Retry { .. } => "Retry",
            Action::RetryStepGroup { .. } => "RetryStepGroup",
            Action::MarkAsSuccess => "MarkAsSuccess",
            Action::MarkAsFailure => "MarkAsFailure",
            Action::Abort => "Abort",
            Action::StageRollback => "StageRollback",
            Action::StepGroupRollback => "StepGroupRollback",
            Action::PipelineRollback => "PipelineRollback",
            Action::ProceedWithDefaultValues => "ProceedWithDefaultValues",
        }
    }
}

macro_rules! error_types {
    ($($name:ident),* $(,)?) => {
        /// Harness failure types, matched by `failureStrategies[].onFailure.errors`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorType { $($name),* }

        impl ErrorType {
            pub const ALL: &[ErrorType] = &[$(ErrorType::$name),*];

            pub fn name(self) -> &'static str {
                match self { $(ErrorType::$name => stringify!($name)),* }
            }

            pub fn parse(text: &str) -> Option<ErrorType> {
                Self::ALL.iter().copied().find(|t| t.name() == text)
            }
        }

        impl std::fmt::Display for ErrorType {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// Reports and tests compare an error type with its Harness name.
        impl PartialEq<&str> for ErrorType {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }

        impl serde::Serialize for ErrorType {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }
    };
}

error_types!(
    AllErrors,
    Unknown,
    Authentication,
    Authorization,
    Connectivity,
    Timeout,
    Verification,
    DelegateProvisioning,
    PolicyEvaluationFailure,
    InputTimeoutError,
    ApprovalRejection,
    DelegateRestart,
    UserMarkedFailure,
    InfrastructureFailure,
    PluginImageFailure,
    ResourceLimitsFailure,
    ConfigurationFailure,
    RetryableTransientFailure,
);

/// A looping strategy. Values may be expressions over pipeline and stage variables; they are
/// resolved when the plan is built.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    Matrix {
        /// Axis name → its values (in YAML order).
        axes: Vec<(String, Vec<serde_json::Value>)>,
        exclude: Vec<Vec<(String, serde_json::Value)>>,
        max_concurrency: Option<usize>,
    },
    Parallelism {
        count: Countable,
        max_concurrency: Option<usize>,
    },
    Repeat {
        source: RepeatSource,
        max_concurrency: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Countable {
    Fixed(usize),
    Expression(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RepeatSource {
    Times(Countable),
    Items(Vec<serde_json::Value>),
    /// An expression that yields a list (or a comma-separated string).
    ItemsExpression(String),
}
