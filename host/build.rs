//! Builds the built-in step components (`guest-steps/`) for wasm32-wasip2, so that a plain
//! `cargo build` yields a `lockstep` binary with its built-in steps embedded. (The test
//! components are built by `tests/component-builder`, a dev-dependency, for the tests only.)

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    for watched in ["guest-steps", "wit", "changelog", "yaml", "builtins"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    match lockstep_build_support::build_components(&root.join("guest-steps")) {
        Ok(built) => println!("cargo::rustc-env=LOCKSTEP_GUEST_DIR={}", built.display()),
        Err(message) => println!("cargo::error={message}"),
    }
}
