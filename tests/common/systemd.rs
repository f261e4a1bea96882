//! Test support for the service files: stock tools looked up on `PATH` (a
//! missing one fails the test, naming the tool and its Debian package), and a
//! throw-away root file system in which `systemd-analyze verify --root`,
//! `systemd-sysusers --root` and `systemd-tmpfiles --root` check the unit,
//! the user and the folders without touching the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of `tool` on `PATH`; panics naming the tool and its package.
pub fn tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is missing: apt-get install {package} (scripts/test installs it as root)"
            )
        })
}

/// Runs `cmd`, returning its output; panics if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Standard output and standard error together, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Copies a directory tree (files, folders, symbolic links as links).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.expect("dir entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().expect("file type");
        if t.is_symlink() {
            let target = fs::read_link(&src).expect("readlink");
            std::os::unix::fs::symlink(target, &dst).expect("symlink");
        } else if t.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// Makes `root` a root file system `systemd-analyze verify --root` can check
/// `sealpost.service` in: the host's system units (the targets the unit
/// depends on), `/bin/kill` (its `ExecReload=`), and — unless `root` already
/// holds an unpacked package — `binary` as `/usr/bin/sealpost`, its man page
/// and the unit from the source tree. Returns the `MANPATH` for verify's check
/// of `Documentation=man:sealpost(1)`.
pub fn unit_root(root: &Path, binary: &Path) -> PathBuf {
    let host_units = Path::new("/lib/systemd/system");
    assert!(
        host_units.join("sysinit.target").is_file(),
        "{} has no sysinit.target: apt-get install systemd (scripts/test installs it)",
        host_units.display()
    );
    let units = root.join("lib/systemd/system");
    let ours = units.join("sealpost.service");
    let packaged = fs::read(&ours).ok();
    copy_tree(host_units, &units);
    match packaged {
        // The host may have a sealpost.service of its own: ours wins.
        Some(unit) => fs::write(&ours, unit).expect("restore the packaged unit"),
        None => {
            fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/sealpost.service"),
                &ours,
            )
            .expect("copy the unit");
        }
    }
    fs::create_dir_all(root.join("bin")).expect("mkdir bin");
    fs::copy(tool("kill", "procps"), root.join("bin/kill")).expect("copy kill");
    let man = root.join("usr/share/man");
    let bin = root.join("usr/bin/sealpost");
    if !bin.is_file() {
        fs::create_dir_all(root.join("usr/bin")).expect("mkdir usr/bin");
        fs::copy(binary, &bin).expect("copy the binary");
        let assets = root.join("assets");
        let o = output(Command::new(binary).arg("assets").arg(&assets));
        assert!(o.status.success(), "sealpost assets: {}", text(&o));
        fs::create_dir_all(man.join("man1")).expect("mkdir man1");
        fs::rename(assets.join("sealpost.1"), man.join("man1/sealpost.1")).expect("man page");
    }
    man
}

/// `systemd-analyze verify --root=<root> sealpost.service`: its exit status
/// and everything it said (nothing, when the unit is clean).
pub fn verify(root: &Path, manpath: &Path) -> (bool, String) {
    let analyze = tool("systemd-analyze", "systemd");
    tool("man", "man-db"); // for the check of Documentation=man:sealpost(1)
    let o = output(
        Command::new(analyze)
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg("sealpost.service")
            .env("MANPATH", manpath)
            .env("SYSTEMD_LOG_COLOR", "0"),
    );
    (o.status.success(), text(&o))
}
