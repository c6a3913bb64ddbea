//! Opens the MongoDB instance `instance` (spec) and runs `command` (spec, Extended JSON) on it;
//! the reply becomes output `reply`, the database name output `database`.
use lockstep_step::mongo::Connection;
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct MongoCommand;

fn text(ctx: &StepContext, field: &str) -> Result<String, Error> {
    ctx.spec_text(field)
        .ok_or_else(|| Error::Invalid(format!("spec needs `{field}`")))
}

impl Step for MongoCommand {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let connection = Connection::open(&text(ctx, "instance")?)?;
        ctx.set_output("database", &connection.database())?;
        let command = lockstep_step::serde_json::from_str(&text(ctx, "command")?)
            .map_err(|e| Error::Invalid(format!("`command` is not JSON: {e}")))?;
        let reply = connection.run_command(&command)?;
        ctx.set_output("reply", &reply.to_string())?;
        Ok(Outcome::done())
    }
}

export_step!(MongoCommand);
