//! The granted cluster, in the granted namespace: applying manifests and waiting for them.

use lockstep_builtins::k8s::Settings;
use lockstep_step::kube::{Client, ObjectRef};
use lockstep_step::{Error, StepContext};
use serde_json::Value;

use crate::manifests::{describe, is_workload, reference};

pub struct Cluster<'c> {
    pub ctx: &'c StepContext<'c>,
    pub client: Client,
    /// The granted connector and namespace.
    pub settings: Settings,
}

impl Cluster<'_> {
    pub fn namespace(&self) -> &str {
        &self.settings.namespace
    }

    /// A server-side dry run of every object: the server validates, nothing is stored.
    pub fn dry_run(&self, manifests: &[Value]) -> Result<(), Error> {
        for object in manifests {
            self.client
                .apply(object, Some(self.namespace()), true)
                .map_err(|e| e.context(&format!("dry run of {}", describe(object))))?;
        }
        Ok(())
    }

    /// Applies every object; the workloads among them.
    pub fn apply_all(&self, manifests: &[Value]) -> Result<Vec<ObjectRef>, Error> {
        for object in manifests {
            self.client
                .apply(object, Some(self.namespace()), false)
                .map_err(|e| e.context(&format!("applying {}", describe(object))))?;
            self.ctx.info(&format!("applied {}", describe(object)));
        }
        Ok(manifests
            .iter()
            .filter(|o| is_workload(o))
            .map(|o| reference(o, self.namespace()))
            .collect())
    }

    /// Waits for each workload to roll out.
    pub fn wait_all(&self, workloads: &[ObjectRef]) -> Result<(), Error> {
        for workload in workloads {
            self.ctx.info(&format!(
                "waiting for {}/{} to roll out",
                workload.kind, workload.name
            ));
            let rollout = self.client.wait_rollout(workload)?;
            self.ctx.info(&rollout.message);
        }
        Ok(())
    }
}
