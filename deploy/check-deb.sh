#!/usr/bin/env bash
# Lists the Debian package built by deploy/build-deb.sh and checks that every file an admin
# relies on (deploy/INSTALL.md, "Files") is in it at its standard path, that the postinst
# creates the user, and that the packaged binary runs. Exit 1 naming each missing file.
#   deploy/check-deb.sh [PATH.deb]     (default: the newest target/debian/rooster_*.deb)
set -euo pipefail
cd "$(dirname "$0")/.."

deb=${1:-}
if [ -z "$deb" ]; then
    target_dir=$(cargo metadata --format-version 1 --no-deps \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    deb=$(ls -t "$target_dir"/debian/rooster_*.deb 2>/dev/null | head -n1 || true)
fi
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
    echo "check-deb: no .deb found; run deploy/build-deb.sh first" >&2
    exit 2
fi

echo "== $deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Installed-Size\):/  \1:/p'
listing=$(dpkg-deb --contents "$deb")
echo "$listing"

expected=(
    ./usr/bin/rooster
    ./usr/lib/systemd/system/rooster.service
    ./usr/lib/systemd/system/rooster@.service
    ./usr/lib/sysusers.d/rooster.conf
    ./usr/share/doc/rooster/copyright
    ./usr/share/doc/rooster/INSTALL.md
    ./usr/share/doc/rooster/rooster.example.toml
    ./usr/share/man/man1/rooster.1.gz
    ./usr/share/bash-completion/completions/rooster
    ./usr/share/zsh/vendor-completions/_rooster
    ./usr/share/fish/vendor_completions.d/rooster.fish
)
missing=0
paths=$(echo "$listing" | awk '{print $6}')
for path in "${expected[@]}"; do
    if grep -qxF "$path" <<<"$paths"; then
        echo "ok      $path"
    else
        echo "MISSING $path"
        missing=1
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --control "$deb" "$work/control"
if grep -q 'systemd-sysusers' "$work/control/postinst" 2>/dev/null \
    && grep -q 'rooster.conf' "$work/control/postinst"; then
    echo "ok      postinst runs systemd-sysusers rooster.conf"
else
    echo "MISSING postinst step: systemd-sysusers rooster.conf"
    missing=1
fi
dpkg-deb --extract "$deb" "$work/root"
if grep -q 'Permission is hereby granted' "$work/root/usr/share/doc/rooster/copyright" 2>/dev/null; then
    echo "ok      copyright carries the MIT licence text"
else
    echo "MISSING licence text in usr/share/doc/rooster/copyright"
    missing=1
fi
if version=$("$work/root/usr/bin/rooster" --version); then
    echo "ok      usr/bin/rooster runs: $version"
else
    echo "MISSING a runnable usr/bin/rooster"
    missing=1
fi
# What the postinst does on the real system, done here into the extracted tree (its own
# DPKG_ROOT form): the user must come out of it.
if command -v systemd-sysusers >/dev/null 2>&1; then
    mkdir -p "$work/root/etc"   # a real root has one; the package ships nothing there
    if systemd-sysusers --root="$work/root" rooster.conf \
        && grep -q '^rooster:x:[0-9]*:[0-9]*:rooster - TRiNG queues from Outlook calendars:/var/lib/rooster:/usr/sbin/nologin$' "$work/root/etc/passwd"; then
        echo "ok      systemd-sysusers creates the rooster user from the packaged rooster.conf"
    else
        echo "MISSING the rooster user after systemd-sysusers --root (see above)"
        missing=1
    fi
else
    echo "skipped systemd-sysusers not installed: the user creation was not tried"
fi
if zcat "$work/root/usr/share/man/man1/rooster.1.gz" | grep -q '^\.SH COMMANDS'; then
    echo "ok      man page has its COMMANDS section"
else
    echo "MISSING COMMANDS section in the man page"
    missing=1
fi

if [ "$missing" -ne 0 ]; then
    echo "check-deb: $deb lacks what is marked MISSING above" >&2
    exit 1
fi
echo "check-deb: all ${#expected[@]} files and the checks above are in $deb"
