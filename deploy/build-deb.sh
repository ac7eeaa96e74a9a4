#!/usr/bin/env bash
# Builds the Debian package: target/debian/rooster_<version>-1_<arch>.deb (or under
# $CARGO_TARGET_DIR). What goes in it is [package.metadata.deb] in Cargo.toml; the units and
# the sysusers file are found in deploy/ by cargo-deb itself.
#
# Needs cargo-deb 3.8 or newer: older 3.x releases do not install deploy/rooster.sysusers, so
# the package would carry a unit whose user is never created. A missing or older cargo-deb is
# installed with `cargo install cargo-deb --locked` (it compiles; a few minutes).
#
# The man page and the shell completions are generated here, from the release binary that
# goes into the package, so they describe exactly its command line.
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_CARGO_DEB=3.8.0

# "3.8.0" from "cargo-deb 3.8.0"; empty when cargo-deb is not installed.
have=$(cargo deb --version 2>/dev/null | awk '{print $2}') || have=""
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$MIN_CARGO_DEB" "$have" | sort -V | head -n1)" != "$MIN_CARGO_DEB" ]; then
    echo "build-deb: cargo-deb ${have:-missing}, need $MIN_CARGO_DEB or newer: installing" >&2
    cargo install cargo-deb --locked
fi

cargo build --release --locked

target_dir=$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release/rooster"
assets="$target_dir/release/assets"   # `target/release/assets/…` in Cargo.toml
mkdir -p "$assets"
"$bin" man | gzip -9n > "$assets/rooster.1.gz"
"$bin" completions bash > "$assets/rooster.bash"
"$bin" completions zsh > "$assets/_rooster"
"$bin" completions fish > "$assets/rooster.fish"

cargo deb --no-build --locked "$@"
