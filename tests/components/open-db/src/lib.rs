//! Opens the database instance named by `instance` (spec) `connections` times (default once),
//! holding every connection, and counts its tables; with `sql`, runs that script first.
use lockstep_step::db::{Connection, Value};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct OpenDb;

impl Step for OpenDb {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let instance = ctx
            .spec_text("instance")
            .ok_or_else(|| Error::Invalid("spec needs `instance`".into()))?;
        let count = ctx
            .spec("connections")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .max(1);
        let mut held = vec![];
        for _ in 0..count {
            held.push(Connection::open(&instance)?);
        }
        let connection = &held[0];
        if let Some(sql) = ctx.spec_text("sql") {
            connection.batch(&sql)?;
            ctx.set_output("ran", "yes")?;
        }
        let rows = connection.query("SELECT COUNT(*) FROM sqlite_master", &[]);
        let tables = match rows
            .ok()
            .as_ref()
            .and_then(|r| r.rows.first())
            .and_then(|r| r.first())
        {
            Some(Value::Integer(n)) => *n,
            _ => -1,
        };
        ctx.set_output("tables", &tables.to_string())?;
        Ok(Outcome::done())
    }
}

export_step!(OpenDb);
