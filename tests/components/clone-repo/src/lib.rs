//! Clones branch `main` of the connector named by `connector` (spec) into `directory`.
use lockstep_step::git::{CloneRequest, Reference, clone};
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct CloneRepo;

impl Step for CloneRepo {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let text = |key: &str| {
            ctx.spec_text(key)
                .ok_or_else(|| Error::Invalid(format!("spec needs `{key}`")))
        };
        let request = CloneRequest {
            connector: text("connector")?,
            repo_name: None,
            reference: Reference::Branch("main".into()),
            depth: 0,
            directory: text("directory")?,
        };
        let cloned = clone(&request)?;
        ctx.set_output("commitSha", &cloned.commit_sha)?;
        Ok(Outcome::done())
    }
}

export_step!(CloneRepo);
