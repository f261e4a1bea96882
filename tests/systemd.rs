//! The service files, checked with systemd's own tools: the unit's sandbox
//! (`systemd-analyze security --offline`), the unit itself (`systemd-analyze
//! verify` in a throw-away root with `/usr/bin/sealpost` in place), the
//! sysusers.d and tmpfiles.d files (`systemd-sysusers` and `systemd-tmpfiles`
//! applied to a throw-away root), and their agreement with the configuration
//! template the package installs. A missing tool fails the test, naming it.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::systemd::{output, text, tool};

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn unit_text() -> String {
    fs::read_to_string(source("systemd/sealpost.service")).expect("the unit")
}

/// The values of `key=` lines in the unit, in order.
fn unit_values(key: &str) -> Vec<String> {
    unit_text()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

/// The bound: 1.6 before, at most 1.2 now (in tenths, as systemd
/// computes and prints it).
const MAX_EXPOSURE_TENTHS: u32 = 12;

#[test]
fn the_unit_sandbox_exposure_is_at_most_1_2() {
    let analyze = tool("systemd-analyze", "systemd");
    let o = output(
        Command::new(analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(source("systemd/sealpost.service"))
            .env("SYSTEMD_COLORS", "0"),
    );
    let t = text(&o);
    assert!(o.status.success(), "systemd-analyze security failed:\n{t}");
    // "→ Overall exposure level for sealpost.service: 1.2 OK 🙂"
    let line = t
        .lines()
        .find(|l| l.contains("Overall exposure level for sealpost.service:"))
        .unwrap_or_else(|| panic!("no overall exposure line in:\n{t}"));
    let score = line
        .rsplit(": ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    let (whole, tenth) = score
        .split_once('.')
        .unwrap_or_else(|| panic!("cannot parse the score {score:?}"));
    let tenths: u32 =
        whole.parse::<u32>().expect("score") * 10 + tenth.parse::<u32>().expect("score");
    assert!(
        tenths <= MAX_EXPOSURE_TENTHS,
        "exposure {score} is above 1.2; what is still open:\n{}",
        t.lines()
            .filter(|l| l.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // And systemd's own gate agrees (it fails above the threshold).
    let o = output(
        Command::new(tool("systemd-analyze", "systemd"))
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--threshold={MAX_EXPOSURE_TENTHS}"))
            .arg(source("systemd/sealpost.service")),
    );
    assert!(
        o.status.success(),
        "--threshold={MAX_EXPOSURE_TENTHS}: {}",
        text(&o)
    );
}

#[test]
fn the_unit_verifies_clean() {
    let root = tempfile::tempdir().expect("tempdir");
    let manpath = common::systemd::unit_root(root.path(), &common::bin());
    let (ok, said) = common::systemd::verify(root.path(), &manpath);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

#[test]
fn the_unit_is_a_notify_service_that_reloads_stops_and_is_watched() {
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("User", "sealpost"),
        ("Group", "sealpost"),
        ("ExecStart", "/usr/bin/sealpost run"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "78"),
        ("StateDirectory", "sealpost"),
        ("ConfigurationDirectory", "sealpost"),
        ("RuntimeDirectory", "sealpost"),
    ] {
        assert_eq!(unit_values(key), [want], "{key}=");
    }
    assert_eq!(unit_values("WatchdogSec").len(), 1, "WatchdogSec=");
}

/// The template's paths are the ones the unit lets the daemon use.
#[test]
fn the_configuration_template_uses_the_folders_the_unit_grants() {
    let text = fs::read_to_string(source("config/sealpost.toml")).expect("template");
    let t: toml::Table = text.parse().expect("the template is TOML");
    let get = |section: &str, key: &str| -> String {
        t[section][key]
            .as_str()
            .unwrap_or_else(|| panic!("{section}.{key} is missing"))
            .to_owned()
    };
    assert_eq!(
        get("node", "data_dir"),
        "/var/lib/sealpost",
        "StateDirectory=sealpost"
    );
    assert_eq!(
        get("admin", "socket"),
        "/run/sealpost/admin.sock",
        "RuntimeDirectory=sealpost"
    );
    assert!(
        get("admin", "listen").starts_with("127.0.0.1:"),
        "metrics on loopback"
    );
    let rw = unit_values("ReadWritePaths").join(" ");
    let intake = get("intake", "root");
    assert!(
        rw.split_whitespace()
            .any(|p| p.trim_start_matches('-') == intake),
        "{intake} not in ReadWritePaths={rw}"
    );
    for key in [
        "exchange_ca",
        "tls_cert",
        "tls_key",
        "signing_cert",
        "signing_key",
        "encryption_identity",
    ] {
        assert!(
            get("pki", key).starts_with("/etc/sealpost/pki/"),
            "pki.{key}"
        );
    }
    assert_eq!(get("directory", "file"), "/etc/sealpost/peers.toml");
}

/// `systemd-sysusers` and `systemd-tmpfiles`, applied to an empty root, make
/// the user and exactly the folders docs/operations.md promises.
#[test]
fn sysusers_and_tmpfiles_make_the_user_and_the_folders() {
    let sysusers = tool("systemd-sysusers", "systemd");
    let tmpfiles = tool("systemd-tmpfiles", "systemd");
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    fs::create_dir_all(r.join("etc")).expect("mkdir etc");
    let o = output(
        Command::new(sysusers)
            .arg(format!("--root={}", r.display()))
            .arg(source("systemd/sysusers.d/sealpost.conf")),
    );
    assert!(o.status.success(), "systemd-sysusers: {}", text(&o));
    let passwd = fs::read_to_string(r.join("etc/passwd")).expect("passwd");
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("sealpost:"))
        .unwrap_or_else(|| panic!("no sealpost user in:\n{passwd}"))
        .split(':')
        .collect();
    assert_eq!(user[5], "/var/lib/sealpost", "home");
    assert!(user[6].ends_with("nologin"), "shell {}", user[6]);
    let (uid, gid): (u32, u32) = (user[2].parse().expect("uid"), user[3].parse().expect("gid"));
    assert!(uid < 1000, "a system user, not uid {uid}");
    let group = fs::read_to_string(r.join("etc/group")).expect("group");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("sealpost:x:{gid}:"))),
        "{group}"
    );

    let o = output(
        Command::new(tmpfiles)
            .arg(format!("--root={}", r.display()))
            .arg("--create")
            .arg(source("systemd/tmpfiles.d/sealpost.conf")),
    );
    assert!(o.status.success(), "systemd-tmpfiles: {}", text(&o));
    for (dir, mode, owned) in [
        ("var/lib/sealpost", 0o750, true),
        ("var/backups/sealpost", 0o750, true),
        ("srv/sealpost", 0o755, false),
        ("srv/sealpost/clerk", 0o2750, true),
        ("srv/sealpost/clerk/intake", 0o2770, true),
    ] {
        let m = fs::metadata(r.join(dir)).unwrap_or_else(|e| panic!("/{dir}: {e}"));
        assert!(m.is_dir(), "/{dir}");
        assert_eq!(
            m.mode() & 0o7777,
            mode,
            "/{dir}: mode {:o}",
            m.mode() & 0o7777
        );
        let want = if owned { (uid, gid) } else { (0, 0) };
        assert_eq!((m.uid(), m.gid()), want, "/{dir}: owner");
    }
}
