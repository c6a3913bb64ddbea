//! Through the connector named by `connector` (spec): reads ConfigMap `app-settings` in namespace
//! `default`; with `list: true`, lists ConfigMaps in every namespace instead; with `kind` and
//! `apiVersion`, reads the object `name` of that kind.
use lockstep_step::kube::{Client, ObjectRef};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct KubeGet;

impl Step for KubeGet {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let connector = ctx
            .spec_text("connector")
            .ok_or_else(|| Error::Invalid("spec needs `connector`".into()))?;
        let client = Client::open(&connector)?;
        if ctx.spec("list").and_then(|v| v.as_bool()) == Some(true) {
            let items = client.list("v1", "ConfigMap", None, None)?;
            ctx.set_output("listed", &items.len().to_string())?;
            return Ok(Outcome::done());
        }
        let target = match (ctx.spec_text("apiVersion"), ctx.spec_text("kind")) {
            (Some(api_version), Some(kind)) => ObjectRef {
                api_version,
                kind,
                namespace: None,
                name: ctx.spec_text("name").unwrap_or_default(),
            },
            _ => ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("default".into()),
                name: "app-settings".into(),
            },
        };
        let found = client.get(&target)?;
        ctx.set_output("found", if found.is_some() { "yes" } else { "no" })?;
        Ok(Outcome::done())
    }
}

export_step!(KubeGet);
