//! The systemd packaging (issue 12): `packaging/openhearing.service` says what the
//! issue asks (own user, descriptor limit, read-only system but the data folder, no
//! new privileges, restart on failure) and systemd accepts it; `packaging/install.sh`
//! lays out exactly the files and modes the unit refers to, and starts nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = include_str!("../packaging/openhearing.service");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `Key=value` of the unit's `[section]`, in order (keys may repeat).
fn section(name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in UNIT.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').expect("Key=value");
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

fn value(section: &[(String, String)], key: &str) -> String {
    section
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the unit sets {key}="))
}

/// Runs `cmd`, which must succeed; its output.
fn succeeds(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what} runs: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {stderr}");
    out
}

/// Runs install.sh with `DESTDIR` and the real server binary.
fn install(destdir: &Path, extra: &[&str]) -> std::process::Output {
    succeeds(
        Command::new(repo().join("packaging/install.sh"))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_openhearing"))
            .args(extra)
            .env("DESTDIR", destdir),
        "install.sh",
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_unit_hardens_the_service_as_documented() {
    let s = section("Service");
    for (key, want) in [
        ("User", "openhearing"),
        ("Group", "openhearing"),
        ("LimitNOFILE", "65536"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/openhearing"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("UMask", "0077"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(value(&s, key), want, "{key}=");
    }
    // Media needs UDP and TCP on IPv4/IPv6 and netlink for the interface addresses.
    let families = value(&s, "RestrictAddressFamilies");
    for f in ["AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(families.split(' ').any(|x| x == f), "{families} lacks {f}");
    }
    assert_eq!(value(&section("Install"), "WantedBy"), "multi-user.target");
}

#[test]
fn install_lays_out_what_the_unit_refers_to() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let out = install(root, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was started"));

    let s = section("Service");
    let exec = value(&s, "ExecStart");
    let mut words = exec.split(' ');
    let binary = words.next().expect("a binary");
    assert_eq!(words.next(), Some("serve"));
    assert_eq!(words.next(), Some("--config"));
    let config = words.next().expect("a config file");
    let data = value(&s, "ReadWritePaths");
    assert_eq!(value(&s, "WorkingDirectory"), data);
    let under = |p: &str| root.join(p.trim_start_matches('/'));

    for (path, want) in [
        (under(binary), 0o755),
        (under(config), 0o640),
        (under(&data), 0o700),
        (under("/etc/openhearing"), 0o750),
        (under("/etc/systemd/system/openhearing.service"), 0o644),
        (under("/usr/local/share/doc/openhearing/README.md"), 0o644),
    ] {
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    let installed = std::fs::read_to_string(under("/etc/systemd/system/openhearing.service"))
        .expect("installed unit");
    assert_eq!(installed, UNIT);
    // The data folder is empty: the server creates its contents on first start.
    assert_eq!(
        std::fs::read_dir(under(&data)).expect("data dir").count(),
        0
    );

    // The written configuration is valid and points at the folder the unit may write.
    let config_path = under(config);
    let text = std::fs::read_to_string(&config_path).expect("config");
    assert!(text.contains(&format!("dir = \"{data}\"")), "{text}");
    succeeds(
        Command::new(env!("CARGO_BIN_EXE_openhearing"))
            .args(["config", "check"])
            .arg(&config_path),
        "openhearing config check",
    );

    // Installing again keeps an edited configuration and fixes a loosened folder.
    std::fs::write(&config_path, format!("{text}\n# edited\n")).expect("edit");
    std::fs::set_permissions(under(&data), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    install(root, &[]);
    assert!(std::fs::read_to_string(&config_path)
        .expect("config")
        .ends_with("# edited\n"));
    assert_eq!(mode(&under(&data)), 0o700);
}

#[test]
fn dry_run_only_tells() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = install(tmp.path(), &["--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("install -d -m 0700") && said.contains("/var/lib/openhearing"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("dir").count(),
        0,
        "a dry run creates nothing"
    );
}

/// systemd's own parser accepts the unit (systemd-analyze comes with the `systemd`
/// package, which `scripts/install-deps.sh --test` installs; the binary path is
/// pointed at the built server, since verify checks it exists).
#[test]
fn systemd_accepts_the_unit() {
    let probe = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .expect("systemd-analyze is installed (scripts/install-deps.sh --test)");
    assert!(probe.status.success());
    let tmp = tempfile::tempdir().expect("temp dir");
    let unit = tmp.path().join("openhearing.service");
    let text = UNIT.replace(
        "/usr/local/bin/openhearing",
        env!("CARGO_BIN_EXE_openhearing"),
    );
    std::fs::write(&unit, text).expect("unit copy");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Each line systemd ignores (unknown key, bad value) is a warning on stderr.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}
