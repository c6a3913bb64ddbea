//! What `lockstep run` shows while it runs: a live tree on a terminal, plain lines otherwise.

use super::output::tell;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use lockstep::exec::status::Status;
use lockstep::exec::{Observer, Outcome, Record};
use lockstep::log::{Level, SecretMask};
use lockstep::plan::{NodeKind, PlanNode};

pub struct Progress {
    live: bool,
    /// FQN, depth and label of every node, in plan order.
    rows: Vec<(String, usize, String)>,
    state: Mutex<LiveState>,
    mask: SecretMask,
}

#[derive(Default)]
struct LiveState {
    statuses: std::collections::HashMap<String, (Status, Option<std::time::Duration>)>,
    drawn: usize,
}

fn depth(fqn: &str) -> usize {
    fqn.matches(".steps.").count()
        + fqn.matches(".rollbackSteps.").count()
        + usize::from(fqn.contains(".stages."))
}

fn icon(status: Status) -> &'static str {
    match status {
        Status::Queued => "·",
        Status::Running => "▶",
        Status::Success => "✔",
        Status::Failed | Status::Errored => "✘",
        Status::Skipped => "○",
        Status::IgnoreFailed => "!",
        Status::Aborted => "■",
        Status::Expired => "⏱",
    }
}

fn short(fqn: &str) -> String {
    if fqn == "pipeline" {
        return fqn.to_string();
    }
    fqn.split('.')
        .filter(|s| !matches!(*s, "pipeline" | "stages" | "spec" | "execution" | "steps"))
        .collect::<Vec<_>>()
        .join("/")
}

impl Progress {
    pub fn new(root: &PlanNode, mask: SecretMask) -> Arc<Self> {
        let rows = root
            .descendants()
            .into_iter()
            .filter(|n| n.kind != NodeKind::Parallel)
            .map(|n| {
                let label = match n.kind {
                    NodeKind::Stage => format!("stage {}", n.identifier),
                    NodeKind::StepGroup => format!("group {}", n.identifier),
                    _ => format!("{} ({})", n.identifier, n.type_name()),
                };
                (n.fqn.clone(), depth(&n.fqn), label)
            })
            .collect();
        Arc::new(Progress {
            live: std::io::stderr().is_terminal(),
            rows,
            state: Mutex::default(),
            mask,
        })
    }

    fn redraw(&self, state: &mut LiveState, out: &mut impl Write) {
        if state.drawn > 0 {
            let _ = write!(out, "\x1b[{}F\x1b[J", state.drawn);
        }
        for (fqn, depth, label) in &self.rows {
            let (status, duration) = state
                .statuses
                .get(fqn)
                .copied()
                .unwrap_or((Status::Queued, None));
            let took = duration.map_or(String::new(), |d| format!(" {:.1}s", d.as_secs_f64()));
            let _ = writeln!(out, "{}{} {label}{took}", "  ".repeat(*depth), icon(status));
        }
        state.drawn = self.rows.len();
    }

    fn event(&self, record: &Record) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .statuses
            .insert(record.fqn.clone(), (record.status, record.duration));
        let mut err = std::io::stderr().lock();
        if self.live {
            self.redraw(&mut state, &mut err);
            return;
        }
        let mut line = format!(
            "{} {} {:?}",
            icon(record.status),
            short(&record.fqn),
            record.status
        );
        if let Some(d) = record.duration {
            line.push_str(&format!(" ({:.1}s)", d.as_secs_f64()));
        }
        // Text from a step or the pipeline reaches the terminal only cleaned.
        let clean = |text: &str| {
            self.mask
                .apply(&lockstep::log::strip_control_keeping_lines(text))
        };
        if let Some(e) = &record.error {
            line.push_str(&format!(": [{}] {}", e.error_type, clean(&e.message)));
        } else if let Some(s) = &record.summary {
            line.push_str(&format!(": {}", clean(s)));
        }
        let _ = writeln!(err, "{line}");
    }

    /// Prints the final summary line.
    pub fn done(&self, outcome: &Outcome) {
        let failed: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.kind == NodeKind::Step && r.status.is_failure())
            .collect();
        for r in &failed {
            if let Some(e) = &r.error {
                tell!(
                    "✘ {}: [{}] {}",
                    short(&r.fqn),
                    e.error_type,
                    self.mask
                        .apply(&lockstep::log::strip_control_keeping_lines(&e.message))
                );
            }
        }
        tell!(
            "pipeline {} ended {:?} in {:.1}s (execution {})",
            outcome.meta.identifier,
            outcome.status,
            outcome.duration.as_secs_f64(),
            outcome.meta.execution_id
        );
    }
}

impl Observer for Progress {
    fn started(&self, record: &Record) {
        if self.live || record.kind == NodeKind::Step || record.kind == NodeKind::Stage {
            self.event(record);
        }
    }

    fn finished(&self, record: &Record) {
        self.event(record);
    }

    fn log(&self, step_fqn: &str, level: Level, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if self.live && state.drawn > 0 {
            let _ = write!(err, "\x1b[{}F\x1b[J", state.drawn);
            state.drawn = 0;
        }
        let tag = match level {
            Level::Warn => " warning:",
            Level::Error => " error:",
            _ => "",
        };
        let _ = writeln!(err, "  {} |{tag} {text}", short(step_fqn));
        if self.live {
            self.redraw(&mut state, &mut err);
        }
    }
}
