//! Opens the database instance named by `instance` (spec) and counts its tables.
use lockstep_step::db::{Connection, Value};
use lockstep_step::{Context, Error, Outcome, Step, export_step};

struct OpenDb;

impl Step for OpenDb {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let instance = match ctx.spec("instance") {
            Some(lockstep_step::Value::Text(name)) => name,
            _ => return Err(Error::Invalid("spec needs `instance`".into())),
        };
        let connection = Connection::open(&instance)?;
        let rows = connection.query("SELECT COUNT(*) FROM sqlite_master", &[])?;
        let count = match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => *n,
            _ => -1,
        };
        ctx.set_output("tables", &count.to_string())?;
        Ok(Outcome::done())
    }
}

export_step!(OpenDb);
