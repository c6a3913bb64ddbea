//! Through the connector named by `connector` (spec): reads ConfigMap `app-settings` in namespace
//! `default`; with `list: true`, lists ConfigMaps in every namespace instead; with `kind` and
//! `apiVersion`, reads the object `name` of that kind.
use lockstep_step::kube::{Client, ObjectRef};
use lockstep_step::{Context, Error, Outcome, Step, Value, export_step};

struct KubeGet;

fn text(ctx: &Context, key: &str) -> Option<String> {
    match ctx.spec(key) {
        Some(Value::Text(value)) => Some(value),
        _ => None,
    }
}

impl Step for KubeGet {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let connector = text(ctx, "connector")
            .ok_or_else(|| Error::Invalid("spec needs `connector`".into()))?;
        let client = Client::open(&connector)?;
        if matches!(ctx.spec("list"), Some(Value::Boolean(true))) {
            let items = client.list("v1", "ConfigMap", None, None)?;
            ctx.set_output("listed", &items.len().to_string())?;
            return Ok(Outcome::done());
        }
        let target = match (text(ctx, "apiVersion"), text(ctx, "kind")) {
            (Some(api_version), Some(kind)) => ObjectRef {
                api_version,
                kind,
                namespace: None,
                name: text(ctx, "name").unwrap_or_default(),
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
