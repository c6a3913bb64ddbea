//! Opens the MongoDB instance `instance` (spec) and runs `command` (spec, Extended JSON) on it;
//! the reply becomes output `reply`, the database name output `database`.
use lockstep_step::mongo::Connection;
use lockstep_step::{Context, Error, Outcome, Step, Value, export_step};

struct MongoCommand;

fn text(ctx: &Context, field: &str) -> Result<String, Error> {
    match ctx.spec(field) {
        Some(Value::Text(text)) => Ok(text),
        _ => Err(Error::Invalid(format!("spec needs `{field}`"))),
    }
}

impl Step for MongoCommand {
    fn run(ctx: &Context) -> Result<Outcome, Error> {
        let connection = Connection::open(&text(ctx, "instance")?)?;
        ctx.set_output("database", &connection.database())?;
        let reply = connection.run_command(&text(ctx, "command")?)?;
        ctx.set_output("reply", &reply)?;
        Ok(Outcome::done())
    }
}

export_step!(MongoCommand);
