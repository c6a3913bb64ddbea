//! `lockstep step new NAME`: a crate with the SDK as its dependency, a step that reads its spec,
//! logs and sets an output, and a unit test of it that runs on the host.

use std::path::{Path, PathBuf};

use super::{AuthoringError, type_name};

/// The toolchain the SDK is built and tested with, so the new crate builds with the same one.
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");
/// The versions the built-in steps are built with: a new crate starts from them, so its first
/// build needs no registry lookup and reuses what is already compiled.
const LOCKFILE: &str = include_str!("../../../guest-steps/Cargo.lock");

/// What [`new_step`] needs to know about this Lockstep.
pub struct Sdk {
    /// `guest-steps/sdk` of a Lockstep checkout.
    pub path: PathBuf,
    /// Where that checkout builds its components; shared so the SDK's dependencies are compiled
    /// once. `None`: the crate's own `target/`.
    pub target_dir: Option<PathBuf>,
}

impl Sdk {
    /// The SDK of the checkout this binary was built from.
    pub fn of_this_build() -> Sdk {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."));
        // `<target dir>/wasm-guests/wasm32-wasip2/release`, from host/build.rs.
        let guests = Path::new(env!("LOCKSTEP_GUEST_DIR"));
        Sdk {
            path: root.join("guest-steps/sdk"),
            target_dir: guests
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf),
        }
    }
}

/// A crate written by [`new_step`].
#[derive(Debug)]
pub struct Scaffolded {
    pub dir: PathBuf,
    /// The step type it is pinned as by default.
    pub type_name: String,
}

fn check_name(name: &str) -> Result<(), AuthoringError> {
    let reason = if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it must start with a lowercase letter")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Some("it may hold only lowercase letters, digits and `-`")
    } else if name.ends_with('-') || name.contains("--") {
        Some("a `-` must sit between two words")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AuthoringError::InvalidName {
            name: name.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Writes the crate `name` into `dir` (which must not exist, or be empty). Every file is written
/// or none: a failure removes what was written.
pub fn new_step(dir: &Path, name: &str, sdk: &Sdk) -> Result<Scaffolded, AuthoringError> {
    check_name(name)?;
    let sdk_path = sdk
        .path
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| AuthoringError::SdkMissing(sdk.path.clone()))?;
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(AuthoringError::Exists(dir.to_path_buf()));
    }
    let existed = dir.exists();
    let step_type = type_name(name);
    let files = files(name, &step_type, &sdk_path, sdk.target_dir.as_deref());
    let written = files.iter().try_for_each(|(relative, content)| {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(AuthoringError::io(parent))?;
        }
        std::fs::write(&path, content).map_err(AuthoringError::io(&path))
    });
    if let Err(error) = written {
        if existed {
            for (relative, _) in &files {
                let _ = std::fs::remove_file(dir.join(relative));
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(error);
    }
    Ok(Scaffolded {
        dir: dir.to_path_buf(),
        type_name: step_type,
    })
}

/// Text for TOML's basic strings (paths may hold `\` or `"`).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn files(
    name: &str,
    step_type: &str,
    sdk: &Path,
    target_dir: Option<&Path>,
) -> Vec<(&'static str, String)> {
    let mut files = vec![
        ("Cargo.toml", cargo_toml(name, sdk)),
        ("src/lib.rs", LIB_RS.replace("STEP_TYPE", step_type)),
        (
            "README.md",
            README
                .replace("STEP_TYPE", step_type)
                .replace("CRATE", name),
        ),
        (".gitignore", "/target\n*.wasm\n".into()),
        ("rust-toolchain.toml", TOOLCHAIN.into()),
        ("Cargo.lock", LOCKFILE.into()),
    ];
    if let Some(target_dir) = target_dir {
        files.push((
            ".cargo/config.toml",
            format!(
                "# Shares the compiled SDK dependencies with the Lockstep checkout that wrote this crate.\n[build]\ntarget-dir = {}\n",
                toml_string(&target_dir.to_string_lossy())
            ),
        ));
    }
    files
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
lockstep-step = {{ path = {sdk} }}
serde = {{ version = "1", features = ["derive"] }}

# A workspace of its own, wherever it is created.
[workspace]

# As the built-in steps are built: small components, and the SDK's dependencies compiled once.
[profile.release]
opt-level = "s"
strip = true
panic = "abort"
codegen-units = 4
"#,
        sdk = toml_string(&sdk.to_string_lossy())
    )
}

const LIB_RS: &str = r#"//! The `STEP_TYPE` step: greets whom its spec names, logs it and publishes the greeting as
//! output `greeting`.

use lockstep_step::{Error, Outcome, Step, StepContext, export_step};
use serde::Deserialize;

/// What a pipeline writes under the step's `spec:`.
#[derive(Deserialize)]
struct Spec {
    who: String,
}

struct STEP_TYPE;

impl Step for STEP_TYPE {
    fn run(ctx: &StepContext) -> Result<Outcome, Error> {
        let spec: Spec = ctx.spec_as()?;
        let greeting = format!("hello, {}", spec.who);
        ctx.info(&greeting);
        ctx.set_output("greeting", &greeting)?;
        Ok(Outcome::summary(greeting))
    }
}

export_step!(STEP_TYPE);

#[cfg(test)]
mod tests {
    use lockstep_step::serde_json::json;
    use lockstep_step::testing::TestRun;

    use super::*;

    #[test]
    fn greets_whom_the_spec_names_and_publishes_the_greeting() {
        let run = TestRun::new(json!({ "who": "world" }));
        assert_eq!(run.run::<STEP_TYPE>(), Ok(Outcome::summary("hello, world")));
        assert_eq!(run.output("greeting").as_deref(), Some("hello, world"));
    }

    #[test]
    fn a_spec_without_who_is_invalid() {
        let error = TestRun::new(json!({})).run::<STEP_TYPE>().unwrap_err();
        assert!(matches!(&error, Error::Invalid(m) if m.contains("who")), "{error:?}");
    }
}
"#;

const README: &str = r#"# CRATE

A Lockstep step of type `STEP_TYPE`.

```sh
cargo test                                         # the unit tests, on this machine
lockstep step build --config path/to/lockstep.yaml # build for wasm32-wasip2 and pin it there
```

Then in a pipeline:

```yaml
- step:
    type: STEP_TYPE
    name: greet
    identifier: greet
    spec:
      who: world
```

It is granted nothing until its `stepTypes.STEP_TYPE.grants` in lockstep.yaml say so.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk() -> Sdk {
        Sdk {
            path: Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-steps/sdk"),
            target_dir: None,
        }
    }

    #[test]
    fn a_new_step_is_a_crate_with_the_sdk_a_step_and_its_test() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("hello-step");
        let made = new_step(&crate_dir, "hello-step", &sdk()).unwrap();
        assert_eq!(made.type_name, "HelloStep");
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("name = \"hello-step\"")
                && manifest.contains("lockstep-step = { path = \""),
            "{manifest}"
        );
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("impl Step for HelloStep")
                && lib.contains("export_step!(HelloStep)")
                && lib.contains("#[test]")
        );
        assert!(!crate_dir.join(".cargo/config.toml").exists());
    }

    #[test]
    fn a_name_that_is_not_a_crate_name_or_a_taken_directory_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["Hello", "1step", "my step", "trailing-", "../escape"] {
            let error = new_step(&dir.path().join("x"), bad, &sdk()).unwrap_err();
            assert!(
                matches!(error, AuthoringError::InvalidName { .. }),
                "{bad}: {error}"
            );
        }
        assert!(!dir.path().join("x").exists());
        std::fs::write(dir.path().join("taken"), "").unwrap();
        let error = new_step(dir.path(), "taken", &sdk()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("already exists and is not empty"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_sdk_says_how_to_point_at_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Sdk {
            path: dir.path().join("nowhere"),
            target_dir: None,
        };
        let error = new_step(&dir.path().join("s"), "s", &missing).unwrap_err();
        assert!(error.to_string().contains("--sdk PATH"), "{error}");
        assert!(!dir.path().join("s").exists());
    }
}
