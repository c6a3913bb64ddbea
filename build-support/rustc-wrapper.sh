#!/bin/sh
# Cargo runs this in front of every compiler invocation (`build.rustc-wrapper` in
# .cargo/config.toml), the first within a second of `cargo build`, `cargo run` or `cargo test`.
# It makes sure the toolchain has the wasm32-wasip2 target the step components are built for:
# rustup does not add rust-toolchain.toml's targets to a toolchain that is already installed, and
# a build script would learn of it only after the C libraries are compiled, minutes in.
# Then it runs the compiler: "$1" is rustc (or clippy-driver), the rest its arguments.
target=wasm32-wasip2
sysroot=$("$1" --print sysroot 2>/dev/null) || exec "$@"
if [ ! -d "$sysroot/lib/rustlib/$target" ]; then
  if [ -z "$RUSTUP_TOOLCHAIN" ] || ! command -v rustup > /dev/null 2>&1; then
    echo "error: the $target target is not installed for $sysroot, and rustup is not there to add it; install the target for this toolchain and build again" >&2
    exit 1
  fi
  lock="${TMPDIR:-/tmp}/lockstep-rustup-target-$(id -u).lock"
  (
    flock 9
    if [ ! -d "$sysroot/lib/rustlib/$target" ]; then
      echo "note: adding the $target target to toolchain $RUSTUP_TOOLCHAIN with rustup (once; the step components are built for it)" >&2
      rustup target add "$target" --toolchain "$RUSTUP_TOOLCHAIN" >&2 || {
        echo "error: \`rustup target add $target\` failed; run it yourself and build again" >&2
        exit 1
      }
      # Cargo hides this probe's output; host/build.rs repeats the note where it shows.
      echo "$RUSTUP_TOOLCHAIN" > "${TMPDIR:-/tmp}/lockstep-rustup-target-added-$(id -u)"
    fi
  ) 9> "$lock" || exit 1
fi
exec "$@"
