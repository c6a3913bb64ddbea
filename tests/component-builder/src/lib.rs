//! Where the test components (`tests/components/NAME`) are, built: `DIR/NAME.wasm` with `-`
//! spelt `_`.

use std::path::{Path, PathBuf};

pub const DIR: &str = env!("LOCKSTEP_TEST_COMPONENT_DIR");

/// The built component of `tests/components/<name>`.
pub fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(format!("{}.wasm", name.replace('-', "_")))
}
