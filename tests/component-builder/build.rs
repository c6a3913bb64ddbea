use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    for watched in ["tests/components", "guest-steps/sdk", "wit"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    match lockstep_build_support::build_components(&root.join("tests/components")) {
        Ok(built) => println!(
            "cargo::rustc-env=LOCKSTEP_TEST_COMPONENT_DIR={}",
            built.display()
        ),
        Err(message) => println!("cargo::error={message}"),
    }
}
