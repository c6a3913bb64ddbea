//! `lockstep step build`: the step crate compiled for wasm32-wasip2 (release), its component
//! copied next to it and digested.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lockstep_build_support::{TARGET, TargetCheck, add_target_if_missing};
use sha2::{Digest, Sha256};

use super::AuthoringError;

/// A component built from a step crate.
#[derive(Debug)]
pub struct Built {
    /// The crate's library name (its package name with `_` for `-`).
    pub name: String,
    /// `<crate>/<name>.wasm`: a copy that a later `cargo build` or `cargo clean` leaves alone,
    /// so the digest pinned for it stays true until the next `lockstep step build`.
    pub component: PathBuf,
    /// Lowercase hex.
    pub sha256: String,
}

/// Builds the crate in `dir`. `note` hears what is done on the way (the target added); cargo's
/// own progress and errors go to stderr as they happen.
pub fn build(dir: &Path, note: &dyn Fn(&str)) -> Result<Built, AuthoringError> {
    if !dir.join("Cargo.toml").is_file() {
        return Err(AuthoringError::NotACrate(dir.to_path_buf()));
    }
    // In the crate's directory rustup picks the toolchain its rust-toolchain.toml names.
    match add_target_if_missing("rustc", Some(dir), None)
        .map_err(|message| AuthoringError::Toolchain { message })?
    {
        TargetCheck::Present => {}
        TargetCheck::Added { .. } => note(&format!("added the {TARGET} target with rustup")),
    }
    let mut cargo = Command::new("cargo")
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(AuthoringError::io("cargo"))?;
    let stdout = cargo.stdout.take().expect("stdout is piped");
    let mut built = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(AuthoringError::io("cargo's output"))?;
        if let Some(artifact) = component_artifact(&line) {
            built = Some(artifact);
        }
    }
    let status = cargo.wait().map_err(AuthoringError::io("cargo"))?;
    if !status.success() {
        return Err(AuthoringError::BuildFailed(dir.to_path_buf()));
    }
    let (name, wasm) = built.ok_or_else(|| AuthoringError::NoComponent(dir.to_path_buf()))?;
    let bytes = std::fs::read(&wasm).map_err(AuthoringError::io(&wasm))?;
    let component = dir.join(format!("{name}.wasm"));
    std::fs::write(&component, &bytes).map_err(AuthoringError::io(&component))?;
    Ok(Built {
        name,
        component,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

/// From one line of cargo's JSON messages: the name and `.wasm` of a `cdylib` artifact.
fn component_artifact(line: &str) -> Option<(String, PathBuf)> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let target = &message["target"];
    let is_cdylib = target["kind"]
        .as_array()?
        .iter()
        .any(|kind| kind == "cdylib");
    if !is_cdylib {
        return None;
    }
    let wasm = message["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))?;
    let name = target["name"].as_str()?.to_string();
    Some((name, PathBuf::from(wasm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_cdylib_artifact_among_cargos_messages() {
        let dependency = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"serde"},"filenames":["/t/libserde.rlib"]}"#;
        let step = serde_json::json!({"reason": "compiler-artifact", "target": {"kind": ["cdylib"], "name": "hello_step"}, "filenames": ["/t/hello_step.wasm"]}).to_string();
        assert_eq!(component_artifact(dependency), None);
        assert_eq!(component_artifact("not json"), None);
        assert_eq!(
            component_artifact(&step),
            Some((
                "hello_step".to_string(),
                PathBuf::from("/t/hello_step.wasm")
            ))
        );
    }

    #[test]
    fn a_directory_without_a_crate_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let error = build(dir.path(), &|_| {}).unwrap_err();
        assert!(
            error.to_string().contains("lockstep step new NAME"),
            "{error}"
        );
    }
}
