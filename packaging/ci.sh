#!/usr/bin/env bash
# packaging/ci.sh: build the .deb and the .rpm and prove they are fit to ship.
#
# Builds release binaries, both packages, checks that they list the files an admin
# expects (and not tandem-lab), that the config is a conffile / %config(noreplace), that
# no maintainer script starts or restarts the daemon, runs lintian (errors fail, warnings
# are printed), `systemd-analyze verify`, then installs the .deb with dpkg, runs
# tandemctl from the installed paths, reinstalls over an edited config (the edit must
# survive) and purges (everything the package owns must be gone).
#
# Runs as root on Debian 12, non-interactively (CI=true, no stdin). Installs what it
# needs only when missing, so a second run only rebuilds. Leaves the machine as it found
# it: the package is purged and the `tandem` group removed again if this script made it.
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# Versions known to build with the project's toolchain (Rust 1.85+) under --locked.
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

# Every long step gets a bound, so a hung download or build fails the run instead of
# eating CI's whole budget.
APT_TIMEOUT=600
INSTALL_TIMEOUT=900
BUILD_TIMEOUT=1200

step() { printf '\n==> [%4ss] %s\n' "$SECONDS" "$*"; }
fail() {
    echo "packaging/ci.sh: FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (installs packages, dpkg -i)"
# This script installs and then purges the package (config, key and state included).
# On a CI machine a leftover from an interrupted run is fair game; anywhere else an
# installed tandem may be a real node, so refuse.
if dpkg -s tandem >/dev/null 2>&1 && [ "${CI:-}" != true ]; then
    fail "tandem is installed here and this script would purge it; run with CI=true to allow"
fi

# --- tools -------------------------------------------------------------------------
step "tools"
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v rpm >/dev/null || missing+=(rpm)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v addgroup >/dev/null || missing+=(adduser)
command -v objcopy >/dev/null || missing+=(binutils) # cargo-deb's dbgsym split, strip
if [ "${#missing[@]}" -gt 0 ]; then
    echo "apt-get install ${missing[*]}"
    timeout "$APT_TIMEOUT" apt-get update -qq
    timeout "$APT_TIMEOUT" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo_tool_has() { # subcommand, version
    cargo "$1" --version 2>/dev/null | grep -qF "$2"
}
if ! cargo_tool_has deb "$CARGO_DEB_VERSION"; then
    echo "cargo install cargo-deb $CARGO_DEB_VERSION"
    timeout "$INSTALL_TIMEOUT" cargo install --locked --quiet cargo-deb --version "=$CARGO_DEB_VERSION"
fi
if ! cargo_tool_has generate-rpm "$CARGO_GENERATE_RPM_VERSION"; then
    echo "cargo install cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION"
    timeout "$INSTALL_TIMEOUT" cargo install --locked --quiet cargo-generate-rpm --version "=$CARGO_GENERATE_RPM_VERSION"
fi
cargo deb --version
cargo generate-rpm --version

work=$(mktemp -d /tmp/tandem-pkg-ci.XXXXXX)
group_existed=no
getent group tandem >/dev/null && group_existed=yes
cleanup() {
    local rc=$?
    if dpkg -s tandem >/dev/null 2>&1; then dpkg --purge tandem >/dev/null || true; fi
    if [ "$group_existed" = no ] && getent group tandem >/dev/null; then
        groupdel tandem || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# --- generated docs are current -----------------------------------------------------
step "man pages and completions match the CLI (examples/gen-docs.rs)"
timeout "$BUILD_TIMEOUT" cargo run --locked --quiet --example gen-docs -- "$work/man" "$work/completions"
# tandem.yaml.5 is hand-written; everything else in docs/man is generated.
diff -r -x tandem.yaml.5 docs/man "$work/man" ||
    fail "docs/man is stale: run 'cargo run --example gen-docs' and commit"
diff -r packaging/completions "$work/completions" ||
    fail "packaging/completions is stale: run 'cargo run --example gen-docs' and commit"

# --- build -------------------------------------------------------------------------
step "cargo build --release (tandemd, tandemctl)"
timeout "$BUILD_TIMEOUT" cargo build --locked --release --bin tandemd --bin tandemctl
# The dbgsym package needs the debug info (profile.release debug = 1). A binary
# stripped in place by hand still looks fresh to cargo: rebuild it then.
if ! readelf -S target/release/tandemd target/release/tandemctl | grep -c '\.debug_info' | grep -qx 2; then
    echo "target/release binaries were stripped: rebuilding"
    touch src/bin/tandemd.rs src/bin/tandemctl.rs
    timeout "$BUILD_TIMEOUT" cargo build --locked --release --bin tandemd --bin tandemctl
fi

step "cargo deb"
rm -rf target/debian target/generate-rpm
timeout "$BUILD_TIMEOUT" cargo deb --no-build
deb=$(ls target/debian/tandem_*.deb)
ls -l target/debian/
[ "$(echo "$deb" | wc -l)" -eq 1 ] || fail "expected one .deb, got: $deb"

step "cargo generate-rpm"
# cargo-generate-rpm packs the binaries as they are: give it stripped copies (the .deb
# moved their debug info into tandem-dbgsym; the RPM has no debuginfo subpackage).
# Copies, not target/release itself: cargo would keep the stripped files as up to date
# and the next run's dbgsym would come out empty. --target-dir maps the assets'
# target/release/ to the copies.
mkdir -p "$work/rpm-target/release"
for b in tandemd tandemctl; do
    strip -s -o "$work/rpm-target/release/$b" "target/release/$b"
done
mkdir -p target/generate-rpm
timeout "$BUILD_TIMEOUT" cargo generate-rpm --target-dir "$work/rpm-target" -o target/generate-rpm/
rpmfile=$(ls target/generate-rpm/tandem-*.rpm)
[ "$(echo "$rpmfile" | wc -l)" -eq 1 ] || fail "expected one .rpm, got: $rpmfile"

# --- contents ----------------------------------------------------------------------
step "dpkg-deb -c $deb"
dpkg-deb -c "$deb" | tee "$work/deb.list"
awk '{print $6}' "$work/deb.list" | sed 's|^\./|/|; s|/$||' >"$work/deb.paths"

step "rpm -qpl $rpmfile"
rpm -qpl "$rpmfile" | tee "$work/rpm.paths"

required_common=(
    /usr/sbin/tandemd
    /usr/bin/tandemctl
    /etc/tandem/tandem.yaml
    /usr/lib/tandem/agents
    /usr/lib/tandem/ocf-shims/crm_attribute
    /usr/lib/tandem/ocf-shims/crm_master
    /usr/share/bash-completion/completions/tandemctl
    /usr/share/bash-completion/completions/tandemd
    /usr/share/tandem/monitoring/tandem-alerts.yml
    /usr/share/tandem/monitoring/tandem-dashboard.json
)
required_deb=(
    /usr/lib/systemd/system/tandem.service
    /usr/lib/systemd/system/tandem@.service
    /usr/share/man/man8/tandemd.8.gz
    /usr/share/man/man8/tandemctl.8.gz
    /usr/share/man/man5/tandem.yaml.5.gz
    /usr/share/zsh/vendor-completions/_tandemctl
    /usr/share/doc/tandem/copyright
)
required_rpm=(
    /usr/lib/systemd/system/tandem.service
    /usr/lib/systemd/system/tandem@.service
    /usr/share/man/man8/tandemd.8
    /usr/share/man/man8/tandemctl.8
    /usr/share/man/man5/tandem.yaml.5
    /usr/share/zsh/site-functions/_tandemctl
)
for p in "${required_common[@]}" "${required_deb[@]}"; do
    grep -qxF "$p" "$work/deb.paths" || fail ".deb lacks $p"
done
for p in "${required_common[@]}" "${required_rpm[@]}"; do
    # rpm lists files only; a directory is there when a file below it is.
    grep -qE "^$p(/|$)" "$work/rpm.paths" || fail ".rpm lacks $p"
done
if grep -q tandem-lab "$work/deb.paths" "$work/rpm.paths"; then
    fail "tandem-lab must not be packaged"
fi
echo "required paths: present in both packages; tandem-lab: absent"

step "conffile, %config(noreplace), maintainer scripts"
dpkg-deb -e "$deb" "$work/control"
grep -qxF /etc/tandem/tandem.yaml "$work/control/conffiles" || fail "tandem.yaml is not a conffile"
rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpmfile" >"$work/rpm.flags"
grep -qE '^/etc/tandem/tandem.yaml c?n' "$work/rpm.flags" ||
    fail "tandem.yaml is not %config(noreplace): $(grep tandem.yaml "$work/rpm.flags")"
# The package must never enable, start or restart the daemon (rolling upgrades are the
# admin's call); stopping is allowed only on removal.
for s in preinst postinst prerm postrm; do
    [ -f "$work/control/$s" ] || continue
    # (The generated postinst re-creates enable symlinks only for a unit the admin had
    # enabled before, `was-enabled`; whether install enables it is checked after dpkg -i.)
    if grep -nE 'deb-systemd-invoke (start|restart|try-restart)|systemctl .*(start|restart)' "$work/control/$s"; then
        fail "$s starts, restarts or enables the service"
    fi
done
rpm -qp --scripts "$rpmfile" >"$work/rpm.scripts"
if grep -nE 'systemctl .*(start|restart|enable)( |$)' "$work/rpm.scripts" | grep -v 'disable --now'; then
    fail "an rpm scriptlet starts, restarts or enables the service"
fi
echo "conffile ok; noreplace ok; no maintainer script starts/restarts/enables tandem"

step "tandem.yaml is 0640 root:tandem (it may hold fence agent secrets)"
rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME}\n]' "$rpmfile" |
    grep -qxF '/etc/tandem/tandem.yaml -rw-r----- root:tandem' ||
    fail "rpm: tandem.yaml is not 0640 root:tandem"
grep -E ' \./etc/tandem/tandem\.yaml$' "$work/deb.list" | grep -q '^-rw-r----- ' ||
    fail "deb: tandem.yaml is not 0640 (postinst sets the group)"
echo "ok"

step "promtool check rules (when installed)"
if command -v promtool >/dev/null; then
    promtool check rules packaging/monitoring/tandem-alerts.yml
else
    echo "promtool not installed: skipped (Debian: apt-get install prometheus)"
fi

# --- lintian -----------------------------------------------------------------------
step "lintian (fails on errors only)"
# lintian refuses to run as root without this; the .deb is built here, not untrusted.
lintian --allow-root --fail-on error --info "$deb" | tee "$work/lintian.out" || fail "lintian reported errors"
echo "lintian: $(grep -c '^E:' "$work/lintian.out" || true) error(s), $(grep -c '^W:' "$work/lintian.out" || true) warning(s)"

# --- systemd-analyze verify --------------------------------------------------------
step "systemd-analyze verify (source unit, binaries from target/release)"
# verify insists that ExecStart binaries exist; before install they do not, so check a
# copy pointing at the freshly built ones. After install the real unit is verified too.
sed -e "s|/usr/sbin/tandemd|$PWD/target/release/tandemd|" \
    -e "s|/usr/bin/tandemctl|$PWD/target/release/tandemctl|" \
    packaging/tandem.service >"$work/tandem.service"
systemd-analyze verify --man=no "$work/tandem.service"
# A template verifies as one of its instances.
sed -e "s|/usr/sbin/tandemd|$PWD/target/release/tandemd|" \
    -e "s|/usr/bin/tandemctl|$PWD/target/release/tandemctl|" \
    "packaging/tandem@.service" >"$work/tandem@ci.service"
systemd-analyze verify --man=no "$work/tandem@ci.service"
echo "ok"

# --- install, use, upgrade, purge ---------------------------------------------------
step "dpkg -i"
if dpkg -s tandem >/dev/null 2>&1; then dpkg --purge tandem; fi
dpkg -i "$deb"
getent group tandem || fail "postinst did not create group tandem"
[ "$(stat -c '%a %U:%G' /etc/tandem/tandem.yaml)" = "640 root:tandem" ] ||
    fail "installed tandem.yaml is $(stat -c '%a %U:%G' /etc/tandem/tandem.yaml), not 640 root:tandem"
[ ! -e /etc/systemd/system/multi-user.target.wants/tandem.service ] ||
    fail "the package enabled tandem.service"
systemd-analyze verify --man=no /usr/lib/systemd/system/tandem.service
[ ! -e /etc/systemd/system/multi-user.target.wants/tandem@.service ] ||
    fail "the package enabled tandem@.service"
echo "installed unit verifies"

step "tandemctl from the installed paths"
/usr/bin/tandemctl --version
/usr/sbin/tandemd --version
# The shipped example names /etc/tandem/authkey: make it, then the example must check.
/usr/bin/tandemctl keygen
/usr/bin/tandemctl config check /etc/tandem/tandem.yaml

step "reinstall over an edited config: the edit survives"
echo "# edited by packaging/ci.sh" >>/etc/tandem/tandem.yaml
dpkg -i "$deb" </dev/null
grep -qxF "# edited by packaging/ci.sh" /etc/tandem/tandem.yaml || fail "the conffile was overwritten"
[ -e /etc/tandem/authkey ] || fail "reinstall removed the authkey"
echo "ok"

step "dpkg --purge tandem"
dpkg --purge tandem
for p in /usr/sbin/tandemd /usr/bin/tandemctl /etc/tandem/tandem.yaml /etc/tandem/authkey \
    /usr/lib/systemd/system/tandem.service /usr/lib/systemd/system/tandem@.service \
    /var/lib/tandem /usr/lib/tandem; do
    [ ! -e "$p" ] || fail "$p is still there after purge"
done
# The group is kept on purge on purpose (Debian practice for system groups); it must
# still be a system group, not a stray user group.
gid=$(getent group tandem | cut -d: -f3) || fail "purge removed group tandem"
[ "$gid" -lt 1000 ] || fail "group tandem has non-system gid $gid"
echo "purged; group tandem kept (gid $gid)"

step "done in ${SECONDS}s: $deb, $rpmfile"
