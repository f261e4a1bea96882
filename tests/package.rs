//! The Debian package, built by `scripts/package` with cargo-deb and checked
//! with stock tools: its contents and control data (`dpkg-deb`), `lintian`
//! (no errors), the packaged unit (`systemd-analyze verify` in the unpacked
//! package), and `sealpost demo` run from the unpacked package — plus a binary
//! without its files, which must say where it looked.
//!
//! Build time. A release build of this crate and its dependencies takes 5.5
//! minutes on two idle cores (measured: 5 min 25 s; `scripts/package` as a
//! whole, 16 min on a loaded machine), and any profile other than the test's
//! own (dev) rebuilds every dependency as well — a lighter custom profile
//! would still cost minutes. So the test packages the binary `cargo test` has
//! already built (`scripts/package --binary`): the same assets, metadata and
//! maintainer scripts as a release package; only the binary's optimisation
//! differs, and its debug symbols, which a release package moves into a
//! -dbgsym package and which here are stripped (`--no-dbgsym --strip`: xz over
//! 200 MB of dev debug info alone takes half a minute). With `--fast`
//! compression the package takes about 6 s; the test prints the time taken.
//!
//! The package is built once per run, into `CARGO_TARGET_TMPDIR/package`
//! (kept after the run for a look), and shared by the tests below.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::systemd::{output, text, tool};

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The built package and its unpacked root.
struct Package {
    deb: PathBuf,
    root: PathBuf,
}

/// Builds the package once; a failure is reported to every test that needs it.
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Result<Package, String>> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            std::panic::catch_unwind(build).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "building the package panicked".into())
            })
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("the package could not be built: {e}"))
}

fn build() -> Package {
    tool("dpkg-deb", "dpkg");
    tool("objcopy", "binutils");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let o = output(Command::new(&cargo).args(["deb", "--version"]));
    assert!(
        o.status.success(),
        "cargo-deb is missing: cargo install cargo-deb --locked (scripts/test installs it)\n{}",
        text(&o)
    );
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
    let _ = fs::remove_dir_all(&work);
    let out = work.join("debian");
    let start = Instant::now();
    let o = output(
        Command::new(source("scripts/package"))
            .arg("--binary")
            .arg(common::bin())
            .arg("--output")
            .arg(&out)
            .args(["--", "--fast", "--no-dbgsym", "--strip"])
            .env("CARGO", &cargo),
    );
    assert!(o.status.success(), "scripts/package failed:\n{}", text(&o));
    eprintln!("package: built in {:.1?}", start.elapsed());
    let debs: Vec<PathBuf> = fs::read_dir(&out)
        .expect("the output folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}", out.display());
    let deb = debs[0].clone();
    let root = work.join("root");
    let o = output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    assert!(o.status.success(), "dpkg-deb -x: {}", text(&o));
    Package { deb, root }
}

fn dpkg_deb(args: &[&str]) -> String {
    let o = output(Command::new("dpkg-deb").args(args).arg(&package().deb));
    assert!(o.status.success(), "dpkg-deb {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The files of a folder of the source tree matching `keep`, relative names.
fn files_of(dir: &str, keep: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(source(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && keep(p))
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_package_holds_binary_unit_user_folders_configuration_docs_and_demo() {
    // "-rwxr-xr-x root/root  123 2026-11-30 12:00 ./usr/bin/sealpost"
    let listing = dpkg_deb(&["-c"]);
    let entries: Vec<(&str, &str, &str)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| (f[0], f[1], f[f.len() - 1].trim_start_matches('.')))
        })
        .collect();
    let has = |path: &str, mode: &str| {
        let e = entries
            .iter()
            .find(|(_, _, p)| *p == path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        assert_eq!(e.0, mode, "{path}: mode");
        assert!(
            matches!(e.1, "root/root" | "0/0"),
            "{path}: owned by {}",
            e.1
        );
    };
    const FILE: &str = "-rw-r--r--";
    has("/usr/bin/sealpost", "-rwxr-xr-x");
    for f in [
        "/lib/systemd/system/sealpost.service",
        "/usr/lib/sysusers.d/sealpost.conf",
        "/usr/lib/tmpfiles.d/sealpost.conf",
        "/etc/sealpost/sealpost.toml",
        "/etc/sealpost/peers.toml",
        "/usr/share/man/man1/sealpost.1.gz",
        "/usr/share/bash-completion/completions/sealpost",
        "/usr/share/zsh/vendor-completions/_sealpost",
        "/usr/share/fish/vendor_completions.d/sealpost.fish",
        "/usr/share/doc/sealpost/copyright",
        "/usr/share/doc/sealpost/changelog.Debian.gz",
        "/usr/share/doc/sealpost/README.md",
        "/usr/share/doc/sealpost/openapi.yaml",
        "/usr/share/sealpost/certs-example/peers.toml",
        "/usr/share/sealpost/certs-example/ca.pem",
    ] {
        has(f, FILE);
    }
    for doc in files_of("docs", |p| p.extension().is_some_and(|x| x == "md")) {
        has(&format!("/usr/share/doc/sealpost/{doc}"), FILE);
    }
    for cfg in files_of("config", |p| p.to_string_lossy().ends_with(".example.toml")) {
        has(&format!("/usr/share/sealpost/config/{cfg}"), FILE);
    }
    for agency in ["sz-lac", "sz-futian-court", "sz-nanshan-court"] {
        for f in files_of(&format!("certs-example/{agency}"), |_| true) {
            has(
                &format!("/usr/share/sealpost/certs-example/{agency}/{f}"),
                FILE,
            );
        }
    }
    for app in fs::read_dir(source("fixtures/applications"))
        .expect("fixtures")
        .flatten()
    {
        let name = app.file_name().to_string_lossy().into_owned();
        for f in files_of(&format!("fixtures/applications/{name}"), |_| true) {
            has(
                &format!("/usr/share/sealpost/fixtures/applications/{name}/{f}"),
                FILE,
            );
        }
    }
    assert!(
        !listing.contains("ca.key"),
        "the example CA's key is not for the package:\n{listing}"
    );

    // The files are the source tree's (and the generated ones are real).
    let root = &package().root;
    for (packaged, src) in [
        (
            "lib/systemd/system/sealpost.service",
            "systemd/sealpost.service",
        ),
        (
            "usr/lib/sysusers.d/sealpost.conf",
            "systemd/sysusers.d/sealpost.conf",
        ),
        (
            "usr/lib/tmpfiles.d/sealpost.conf",
            "systemd/tmpfiles.d/sealpost.conf",
        ),
        ("etc/sealpost/sealpost.toml", "config/sealpost.toml"),
        ("etc/sealpost/peers.toml", "config/peers.toml"),
    ] {
        assert_eq!(
            fs::read(root.join(packaged)).expect(packaged),
            fs::read(source(src)).expect(src),
            "{packaged} differs from {src}"
        );
    }
    let man = output(
        Command::new("gzip")
            .arg("-dc")
            .arg(root.join("usr/share/man/man1/sealpost.1.gz")),
    );
    assert!(
        man.status.success(),
        "the man page is not gzip: {}",
        text(&man)
    );
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.contains(".TH sealpost 1") && man.contains("check\\-config"),
        "man page:\n{man}"
    );
    for (f, needle) in [
        (
            "usr/share/bash-completion/completions/sealpost",
            "complete -F",
        ),
        (
            "usr/share/zsh/vendor-completions/_sealpost",
            "#compdef sealpost",
        ),
        (
            "usr/share/fish/vendor_completions.d/sealpost.fish",
            "complete -c sealpost",
        ),
    ] {
        let t = fs::read_to_string(root.join(f)).expect(f);
        assert!(
            t.contains(needle),
            "{f} does not look like a completion:\n{t}"
        );
    }

    // Control data: name, version, dependencies, conffiles, maintainer scripts.
    let fields = dpkg_deb(&["-f"]);
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{fields}"))
            .to_owned()
    };
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert_eq!(field("Package"), "sealpost");
    assert_eq!(field("Version"), version);
    let depends = field("Depends");
    assert!(
        depends.contains("libc6") && depends.contains("adduser"),
        "Depends: {depends}"
    );
    let changelog = fs::read_to_string(source("scripts/deb/changelog")).expect("changelog");
    assert!(
        changelog.starts_with(&format!("sealpost ({version}) ")),
        "scripts/deb/changelog must begin with the version {version}"
    );
    let conffiles = output(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&package().deb)
            .arg("conffiles"),
    );
    assert!(
        conffiles.status.success(),
        "no conffiles: {}",
        text(&conffiles)
    );
    let mut conffiles: Vec<String> = String::from_utf8_lossy(&conffiles.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        ["/etc/sealpost/peers.toml", "/etc/sealpost/sealpost.toml"]
    );
    let info = dpkg_deb(&["-I"]);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().any(|w| w == script)),
            "no {script} in:\n{info}"
        );
    }
}

#[test]
fn lintian_finds_no_errors() {
    let lintian = tool("lintian", "lintian");
    let start = Instant::now();
    let o = output(
        Command::new(lintian)
            .args(["--fail-on", "error", "--tag-display-limit", "0"])
            .arg(&package().deb),
    );
    let t = text(&o);
    eprintln!("lintian ({:.1?}):\n{t}", start.elapsed());
    let errors: Vec<&str> = t.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(
        errors.is_empty() && o.status.success(),
        "lintian errors:\n{t}"
    );
}

#[test]
fn the_packaged_unit_verifies_clean_in_the_unpacked_package() {
    // A copy of the unpacked package, so that the host's units added for
    // verify do not end up in the root the other tests use.
    let dir = tempfile::tempdir().expect("tempdir");
    common::systemd::copy_tree(&package().root, dir.path());
    let manpath = common::systemd::unit_root(dir.path(), &common::bin());
    let (ok, said) = common::systemd::verify(dir.path(), &manpath);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

/// A child process in a process group of its own, killed with the whole
/// group (the demo's daemons too) when dropped.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0)) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to its end, or kills it (and everything it started) after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let logs = tempfile::tempdir().expect("tempdir");
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = Group(
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < limit,
            "{cmd:?} still running after {limit:?}; it said:\n{}{}",
            fs::read_to_string(&out).unwrap_or_default(),
            fs::read_to_string(&err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: fs::read(&out).unwrap_or_default(),
        stderr: fs::read(&err).unwrap_or_default(),
    }
}

#[test]
fn the_demo_runs_from_the_unpacked_package() {
    let root = &package().root;
    // Nowhere near the source tree, and nothing pointing back to it.
    let cwd = tempfile::tempdir().expect("tempdir");
    let demo = cwd.path().join("demo");
    let o = run_bounded(
        Command::new(root.join("usr/bin/sealpost"))
            .arg("demo")
            .arg("--dir")
            .arg(&demo)
            .current_dir(cwd.path())
            .env_remove("SEALPOST_SHARE")
            .env_remove("SEALPOST_CONFIG")
            .env_remove("CARGO_MANIFEST_DIR"),
        Duration::from_secs(180),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    // As the binary sees itself (/proc/self/exe: no symbolic links).
    let share = fs::canonicalize(root.join("usr/share/sealpost")).expect("usr/share/sealpost");
    assert!(
        t.contains(&format!("example PKI from {}", share.display())),
        "the demo did not use the package's files in {}:\n{t}",
        share.display()
    );
    assert_eq!(
        t.matches("the court's signed receipt came back").count(),
        3,
        "{t}"
    );
    assert_eq!(
        common::listing(&demo.join("sz-lac/outbox/receipts")).len(),
        3,
        "{t}"
    );
}

#[test]
fn a_binary_without_its_files_says_where_it_looked() {
    let installed = Path::new("/usr/share/sealpost/certs-example/peers.toml");
    assert!(
        !installed.exists(),
        "{} exists (the package is installed here), so a binary without files cannot be shown to fail; run this test where sealpost is not installed",
        installed.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin/sealpost");
    fs::create_dir_all(bin.parent().expect("bin/")).expect("mkdir bin");
    fs::copy(common::bin(), &bin).expect("copy the binary");
    let demo = |share: Option<&Path>| {
        let mut cmd = Command::new(&bin);
        cmd.arg("demo")
            .arg("--dir")
            .arg(dir.path().join("demo"))
            .current_dir(dir.path())
            .env_remove("SEALPOST_SHARE")
            .env_remove("SEALPOST_CONFIG")
            .env_remove("CARGO_MANIFEST_DIR");
        if let Some(s) = share {
            cmd.env("SEALPOST_SHARE", s);
        }
        run_bounded(&mut cmd, Duration::from_secs(60))
    };

    let o = demo(None);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    for looked in [
        dir.path().join("share/sealpost"),
        PathBuf::from("/usr/share/sealpost"),
    ] {
        assert!(
            t.contains(&looked.display().to_string()),
            "does not name {}:\n{t}",
            looked.display()
        );
    }
    assert!(
        t.contains("cannot find the demo's files") && t.contains("SEALPOST_SHARE"),
        "{t}"
    );

    // An explicit SEALPOST_SHARE without the files is reported as such, even
    // though the source tree is at hand.
    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let o = demo(Some(&empty));
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("SEALPOST_SHARE={}", empty.display())),
        "{t}"
    );
    assert!(
        !t.contains("/usr/share/sealpost"),
        "looked beyond SEALPOST_SHARE:\n{t}"
    );
}

#[test]
fn the_packaged_configuration_is_refused_until_the_keys_exist() {
    let root = &package().root;
    let o = output(
        Command::new(root.join("usr/bin/sealpost"))
            .arg("-c")
            .arg(root.join("etc/sealpost/sealpost.toml"))
            .arg("check-config")
            .env_remove("SEALPOST_CONFIG"),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(78), "{t}");
    assert!(
        t.contains("configuration error") && t.contains("/etc/sealpost/pki/"),
        "the error should name the missing key or certificate file:\n{t}"
    );
}
