//! Reads ConfigMap `app-settings` in namespace `default` through the connector named by
//! `connector` (spec).
use lockstep_step::kube::{Client, ObjectRef};
use lockstep_step::{Context, Error, Outcome, Step, export_step};

struct KubeGet;

impl Step for KubeGet {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let connector = match ctx.spec("connector") {
            Some(lockstep_step::Value::Text(name)) => name,
            _ => return Err(Error::Invalid("spec needs `connector`".into())),
        };
        let client = Client::open(&connector)?;
        let found = client.get(&ObjectRef { api_version: "v1".into(), kind: "ConfigMap".into(), namespace: Some("default".into()), name: "app-settings".into() })?;
        ctx.set_output("found", if found.is_some() { "yes" } else { "no" })?;
        Ok(Outcome::done())
    }
}

export_step!(KubeGet);
