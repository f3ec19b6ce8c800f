#!/usr/bin/env bash
# Installs OpenHearing as a systemd service, for a court's IT person.
#
#   sudo packaging/install.sh [--binary PATH] [--dry-run]
#
# What it does (nothing else; it starts nothing):
#   1. creates the system user and group `openhearing` (no login shell, no home
#      besides the data folder), unless they exist;
#   2. creates the data folder /var/lib/openhearing (mode 0700, owned by that user)
#      and the configuration folder /etc/openhearing (0750, root:openhearing);
#   3. installs the binary as /usr/local/bin/openhearing (0755);
#   4. writes /etc/openhearing/openhearing.toml (0640, root:openhearing) unless it
#      already exists: the listen address and the data folder, everything else at
#      its default (`openhearing config default` shows every key);
#   5. installs the unit /etc/systemd/system/openhearing.service (0644) and the README
#      under /usr/local/share/doc/openhearing/, and runs `systemctl daemon-reload`.
# Then it prints the commands that enable and start the service.
#
# Options:
#   --binary PATH  the server binary (default: target/release/openhearing, built
#                  with `cargo build --release`)
#   --dry-run      print what would be done, change nothing
#   --help         this text
# Environment:
#   DESTDIR        stage the files under this folder instead of / (for packages and
#                  tests): no user is created, ownership is left alone and systemctl
#                  is not called; modes are as above.
#
# Running it again is safe: existing users, folders and the configuration file are
# kept (folder modes are set again); the binary and the unit are replaced.
set -euo pipefail

USER_NAME=openhearing
PREFIX=/usr/local
DATA_DIR=/var/lib/openhearing
CONF_DIR=/etc/openhearing
UNIT_DIR=/etc/systemd/system
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
BINARY="$REPO/target/release/openhearing"
DRY_RUN=0
DESTDIR="${DESTDIR:-}"

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BINARY="${2:?--binary needs a path}"; shift 2 ;;
        --binary=*) BINARY="${1#--binary=}"; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# Runs a command, or only shows it with --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

# `install` with owner and group only for a real install as root.
owned() { # owner group
    if [ -z "$DESTDIR" ]; then printf -- '-o\n%s\n-g\n%s\n' "$1" "$2"; fi
}

if [ ! -x "$BINARY" ]; then
    echo "install.sh: no server binary at $BINARY; build it with \`cargo build --release\` or pass --binary PATH" >&2
    exit 1
fi
if [ -z "$DESTDIR" ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or set DESTDIR to stage the files, or use --dry-run" >&2
    exit 1
fi

# 1. The service user.
if [ -z "$DESTDIR" ]; then
    if ! getent group "$USER_NAME" >/dev/null; then
        run groupadd --system "$USER_NAME"
    fi
    if ! getent passwd "$USER_NAME" >/dev/null; then
        run useradd --system --gid "$USER_NAME" --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "OpenHearing server" "$USER_NAME"
    fi
fi

# 2. Folders. The data folder holds the hearing records: the service user's alone.
mapfile -t OWN_SERVICE < <(owned "$USER_NAME" "$USER_NAME")
mapfile -t OWN_CONF < <(owned root "$USER_NAME")
mapfile -t OWN_ROOT < <(owned root root)
run install -d -m 0700 "${OWN_SERVICE[@]}" "$DESTDIR$DATA_DIR"
run install -d -m 0750 "${OWN_CONF[@]}" "$DESTDIR$CONF_DIR"
run install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR$UNIT_DIR" "$DESTDIR$PREFIX/share/doc/openhearing"

# 3. The binary.
run install -m 0755 "${OWN_ROOT[@]}" "$BINARY" "$DESTDIR$PREFIX/bin/openhearing"

# 4. The configuration, only if there is none yet (it may hold an admin key).
CONFIG="$DESTDIR$CONF_DIR/openhearing.toml"
if [ -e "$CONFIG" ]; then
    echo "keeping the existing $CONFIG"
elif [ "$DRY_RUN" = 1 ]; then
    echo "+ write $CONFIG (listen 0.0.0.0:8443, data.dir $DATA_DIR)"
else
    tmp="$(mktemp)"
    cat > "$tmp" <<CONF
# OpenHearing configuration, merged over the built-in defaults: write only the keys
# you change. \`openhearing config default\` prints every key with its meaning;
# \`openhearing config check $CONF_DIR/openhearing.toml\` checks this file.

[server]
listen = "0.0.0.0:8443"
# The address participants' browsers use, e.g. "https://hearings.example-court.vn".
# public_url = "https://hearings.example-court.vn"

# [server.tls]
# A certificate for that name (unset: a self-signed one in $DATA_DIR/tls/).
# cert_file = "$CONF_DIR/cert.pem"
# key_file = "$CONF_DIR/key.pem"

[data]
# Must match ReadWritePaths= in $UNIT_DIR/openhearing.service.
dir = "$DATA_DIR"
CONF
    install -m 0640 "${OWN_CONF[@]}" "$tmp" "$CONFIG"
    rm -f "$tmp"
fi

# 5. The unit and the documentation.
run install -m 0644 "${OWN_ROOT[@]}" "$HERE/openhearing.service" "$DESTDIR$UNIT_DIR/openhearing.service"
run install -m 0644 "${OWN_ROOT[@]}" "$REPO/README.md" "$DESTDIR$PREFIX/share/doc/openhearing/README.md"
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
fi

cat <<DONE
Installed (nothing was started). Next:
  1. edit $CONF_DIR/openhearing.toml (public_url, certificate) and open the firewall
     (README: "Running in production");
  2. sudo systemctl enable --now openhearing
  3. journalctl -u openhearing   # the first start prints the admin API key once
DONE
