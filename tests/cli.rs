//! The `sealpost` binary, run as a sysadmin or clerk would: exit codes, messages,
//! and configuration errors that name file, line and key.

mod common;

use std::fs;
use std::process::{Command, Output};

use common::{bin, copy_fixture, Net, COMMITTEE, FUTIAN, NANSHAN};

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("SEALPOST_CONFIG")
        .output()
        .expect("run sealpost")
}

/// `sealpost seal -c CONFIG --input APP --to COURT -o OUT`.
fn seal(
    config: &std::path::Path,
    app: &std::path::Path,
    to: &str,
    out: &std::path::Path,
) -> Output {
    let p = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    run(&[
        "seal",
        "-c",
        &p(config),
        "--input",
        &p(app),
        "--to",
        to,
        "-o",
        &p(out),
    ])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_summarises_a_good_node() {
    let net = Net::new();
    let cfg = net.config_path(COMMITTEE);
    let o = run(&["check-config", "-c", cfg.to_str().expect("utf-8")]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.starts_with("OK  "), "{t}");
    for want in [
        "sz-lac",
        "role committee",
        "signing cert",
        "SPKI sha256",
        FUTIAN,
        NANSHAN,
        "days)",
    ] {
        assert!(t.contains(want), "summary lacks {want:?}:\n{t}");
    }
}

/// Edits the committee's config, runs check-config, returns (exit code, stderr).
fn broken(edit: impl FnOnce(&Net, &str) -> String) -> (Option<i32>, String) {
    let net = Net::new();
    let cfg = net.config_path(COMMITTEE);
    let original = fs::read_to_string(&cfg).expect("read");
    fs::write(&cfg, edit(&net, &original)).expect("write");
    let o = run(&["check-config", "-c", cfg.to_str().expect("utf-8")]);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_78() {
    // A typo in a key name.
    let (code, err) = broken(|_, t| t.replace("role = ", "rol = "));
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("sealpost.toml") && err.contains("rol"),
        "{err}"
    );

    // Another agency's signing key: the key file does not match the certificate.
    let (code, err) = broken(|net, t| {
        let other = net.agency(FUTIAN).dir.join("sign.key");
        t.replace(
            "signing_key = \"sign.key\"",
            &format!("signing_key = \"{}\"", other.display()),
        )
    });
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("sealpost.toml:11: key `pki.signing_key`"),
        "{err}"
    );
    assert!(
        err.contains("does not belong to the signing certificate"),
        "{err}"
    );

    // A node id that is not in the directory.
    let (code, err) = broken(|_, t| t.replace("id = \"sz-lac\"", "id = \"sz-ghost\""));
    assert_eq!(code, Some(78));
    assert!(
        err.contains(":2: key `node.id`") && err.contains("not in the peer directory"),
        "{err}"
    );

    // Syntax error, with toml's line.
    let (code, err) = broken(|_, t| t.replace("[pki]", "[pki"));
    assert_eq!(code, Some(78));
    assert!(
        err.contains("sealpost.toml:6:") && err.contains("not valid TOML"),
        "{err}"
    );

    // A missing key file.
    let (code, err) = broken(|_, t| t.replace("age.key", "no-such.key"));
    assert_eq!(code, Some(78));
    assert!(
        err.contains("key `pki.encryption_identity`") && err.contains("no-such.key"),
        "{err}"
    );

    // A bad size.
    let (code, err) = broken(|_, t| format!("{t}\n[limits]\nmax_document_size = \"12 parsecs\"\n"));
    assert_eq!(code, Some(78));
    assert!(
        err.contains("key `limits.max_document_size`") && err.contains("unknown unit"),
        "{err}"
    );
}

#[test]
fn peer_directory_errors_are_located_too() {
    let net = Net::new();
    let peers = net.path().join("peers.toml");
    let text = fs::read_to_string(&peers).expect("read");
    // Break the second peer's encryption key.
    let mut n = 0;
    let broken: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if l.starts_with("encryption_key") {
                n += 1;
                if n == 2 {
                    return format!("encryption_key = \"age1notakey\" # line {}", i + 1);
                }
            }
            l.to_owned()
        })
        .collect();
    let line = broken
        .iter()
        .position(|l| l.contains("age1notakey"))
        .expect("edited")
        + 1;
    fs::write(&peers, broken.join("\n")).expect("write");
    let o = run(&[
        "check-config",
        "-c",
        net.config_path(COMMITTEE).to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        err.contains(&format!("peers.toml:{line}: key `peer[1].encryption_key`")),
        "{err}"
    );
}

#[test]
fn seal_verify_open_through_the_binary() {
    let net = Net::new();
    let app = net.out("app");
    copy_fixture("li-na-nanshan", &app, NANSHAN);
    let bundle = net.out("b.sealpost");
    let lac = net.config_path(COMMITTEE);
    let nanshan = net.config_path(NANSHAN);
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();

    let o = seal(&lac, &app, NANSHAN, &bundle);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("SEALED"));

    // Sealing again onto the same file: refused, file untouched.
    let before = fs::read(&bundle).expect("read");
    let o = seal(&lac, &app, NANSHAN, &bundle);
    assert_eq!(o.status.code(), Some(73), "{}", text(&o));
    assert_eq!(fs::read(&bundle).expect("read"), before);

    let o = run(&["verify", "-c", &s(&nanshan), &s(&bundle)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["verify", "-c", &s(&nanshan), "--json", &s(&bundle)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(v["envelope"]["recipient"], NANSHAN);

    // Futian is not the recipient.
    let o = run(&[
        "verify",
        "-c",
        &s(&net.config_path(FUTIAN)),
        "--json",
        &s(&bundle),
    ]);
    assert_eq!(o.status.code(), Some(65));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["code"], "wrong-recipient");

    let out = net.out("opened");
    let o = run(&["open", "-c", &s(&nanshan), &s(&bundle), "-o", &s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in ["财产保全申请书.pdf", "财产线索.pdf", "身份证明.png"] {
        assert_eq!(
            fs::read(out.join("documents").join(f)).expect("opened doc"),
            fs::read(app.join(f)).expect("original"),
            "{f}"
        );
    }
    let o = run(&["open", "-c", &s(&nanshan), &s(&bundle), "-o", &s(&out)]);
    assert_eq!(o.status.code(), Some(73), "{}", text(&o));

    // A truncated bundle is refused with its code, exit 65, nothing written.
    let cut = net.out("cut.sealpost");
    fs::write(&cut, &before[..before.len() / 2]).expect("write");
    let o = run(&[
        "open",
        "-c",
        &s(&nanshan),
        &s(&cut),
        "-o",
        &s(&net.out("never")),
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o));
    assert!(
        text(&o).contains("REFUSED") && text(&o).contains("[container-invalid]"),
        "{}",
        text(&o)
    );
    assert!(!net.out("never").exists());

    let o = run(&[
        "verify",
        "-c",
        &s(&nanshan),
        &s(&net.out("missing.sealpost")),
    ]);
    assert_eq!(o.status.code(), Some(66));
}

#[test]
fn a_rejected_application_is_explained_in_chinese_and_english() {
    let net = Net::new();
    let app = net.out("app");
    copy_fixture("zhang-wei-futian", &app, FUTIAN);
    fs::remove_file(app.join("受理通知书.pdf")).expect("rm");
    fs::write(app.join("仲裁申请书.pdf"), b"MZ\x90\x00 this is an exe").expect("fake pdf");
    let out = net.out("b.sealpost");
    let o = seal(&net.config_path(COMMITTEE), &app, FUTIAN, &out);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(65), "{t}");
    assert!(t.contains("[document-missing] 受理通知书.pdf"), "{t}");
    assert!(
        t.contains("[document-type-not-allowed] 仲裁申请书.pdf"),
        "{t}"
    );
    assert!(
        t.contains("不在文件夹中") && t.contains("not contain it"),
        "{t}"
    );
    assert!(!out.exists(), "nothing sealed");
}

#[test]
fn help_documents_exit_codes() {
    let o = run(&["--help"]);
    let t = text(&o);
    for code in ["64", "65", "66", "73", "74", "78"] {
        assert!(
            t.contains(&format!("  {code}  ")),
            "--help lacks exit code {code}:\n{t}"
        );
    }
}

#[test]
fn a_misspelt_manifest_key_is_rejected_not_dropped() {
    // Regression: unknown keys inside [respondent] used to be silently ignored.
    let net = Net::new();
    let app = net.out("app");
    copy_fixture("zhang-wei-futian", &app, FUTIAN);
    let manifest = app.join("application.toml");
    let original = fs::read_to_string(&manifest).expect("read");
    fs::write(&manifest, original.replace("address =", "adress =")).expect("write");
    let o = seal(
        &net.config_path(COMMITTEE),
        &app,
        FUTIAN,
        &net.out("b.sealpost"),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(65), "{t}");
    assert!(
        t.contains("[manifest-invalid] application.toml") && t.contains("adress"),
        "{t}"
    );
}

#[test]
fn the_readme_demo_runs_two_nodes_end_to_end() {
    // README's first command: committee + two courts on loopback, the example
    // applications walked into the courts' inboxes and back as receipts.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run(&["demo", "--dir", dir.path().to_str().expect("utf-8")]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert_eq!(
        t.matches("the court's signed receipt came back").count(),
        3,
        "{t}"
    );
    assert!(t.contains("byte-identical"), "{t}");
    let receipts = dir.path().join("sz-lac/outbox/receipts");
    assert_eq!(common::listing(&receipts).len(), 3);
}

#[test]
fn receipt_verify_refuses_a_receipt_from_the_future() {
    use sealpost::receipt::{Receipt, RECEIPT_FORMAT};
    use sealpost::types::{BundleId, Sha256, Timestamp};
    let net = Net::new();
    let court = net.config(FUTIAN);
    // The test PKI's certificates are valid from a day ago to a year ahead, so
    // both receipts are within the signer's validity: only the clock decides.
    let receipt_at = |received_at: Timestamp, name: &str| {
        let signed = Receipt {
            format: RECEIPT_FORMAT.to_owned(),
            bundle_id: BundleId::generate(),
            sender: COMMITTEE.parse().expect("id"),
            receiver: FUTIAN.parse().expect("id"),
            envelope_sha256: Sha256([1; 32]),
            payload_sha256: Sha256([2; 32]),
            received_at,
        }
        .sign(&court.keys.signing);
        let path = net.out(name);
        fs::write(&path, serde_json::to_vec_pretty(&signed).expect("json")).expect("write");
        path
    };
    let now = Timestamp::now().unix();
    let verify = |path: &std::path::Path| {
        run(&[
            "receipt",
            "verify",
            "-c",
            net.config_path(COMMITTEE).to_str().expect("utf-8"),
            path.to_str().expect("utf-8"),
        ])
    };

    let future = receipt_at(
        Timestamp::from_unix(now + 3600).expect("time"),
        "future.json",
    );
    let o = verify(&future);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(65), "{t}");
    assert!(
        t.contains("REFUSED") && t.contains("[receipt-in-future]"),
        "{t}"
    );

    // The same receipt made now verifies: the refusal above is the clock's.
    let present = receipt_at(Timestamp::from_unix(now).expect("time"), "now.json");
    let o = verify(&present);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("VERIFIED RECEIPT"), "{t}");
}

/// Runs `check-config` on the committee with extra environment.
fn check_with_env(net: &Net, env: &[(&str, &str)]) -> Output {
    let cfg = net.config_path(COMMITTEE);
    Command::new(bin())
        .args(["check-config", "-c", cfg.to_str().expect("utf-8")])
        .env_remove("SEALPOST_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run sealpost")
}

#[test]
fn check_config_catches_a_tls_key_that_does_not_belong_to_the_tls_certificate() {
    // Regression: this passed check-config, and `run` then failed to start
    // (the service restart-looping every 5 s).
    let (code, err) = broken(|net, t| {
        let other = net.agency(FUTIAN).dir.join("tls.key");
        t.replace(
            "tls_key = \"tls.key\"",
            &format!("tls_key = \"{}\"", other.display()),
        )
    });
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("sealpost.toml:9: key `pki.tls_key`"), "{err}");
    assert!(
        err.contains("does not belong to the TLS certificate"),
        "{err}"
    );
}

#[test]
fn check_config_catches_data_and_intake_folders_the_node_cannot_write() {
    let net = Net::new();
    let data = net.agency(COMMITTEE).dir.join("data");
    {
        let _frozen = common::Immutable::set(&data);
        let o = check_with_env(&net, &[]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(78), "{t}");
        assert!(
            t.contains("key `node.data_dir`") && t.contains("not writable"),
            "{t}"
        );
    }
    // An intake root elsewhere that does not exist and cannot be created.
    let parent = net.out("share");
    fs::create_dir(&parent).expect("mkdir");
    let _frozen = common::Immutable::set(&parent);
    let root = parent.join("clerks");
    let o = check_with_env(
        &net,
        &[("SEALPOST_INTAKE__ROOT", root.to_str().expect("utf-8"))],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(78), "{t}");
    assert!(
        t.contains("SEALPOST_INTAKE__ROOT") && t.contains("cannot be created"),
        "{t}"
    );
}

#[test]
fn check_config_warns_about_private_keys_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let net = Net::new();
    let key = net.agency(COMMITTEE).dir.join("sign.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = check_with_env(&net, &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "a warning is not an error: {t}");
    let warning = t
        .lines()
        .find(|l| l.starts_with("WARNING"))
        .unwrap_or_else(|| panic!("no warning:\n{t}"));
    assert!(warning.contains("key `pki.signing_key`"), "{warning}");
    assert!(
        warning.contains("0644") && warning.contains("chmod 600"),
        "{warning}"
    );
    // Readable by its owner only: no warning.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(!text(&check_with_env(&net, &[])).contains("WARNING"));
}

#[test]
fn a_bad_environment_override_names_the_variable_not_a_line_of_the_file() {
    let net = Net::new();
    for (var, value, key) in [
        ("SEALPOST_INTAKE__SETTLE", "soon", "intake.settle"),
        ("SEALPOST_INTAKE__WORKERS", "many", "intake.workers"),
        ("SEALPOST_SERVER__LISTEN", "everywhere", "server.listen"),
    ] {
        let o = check_with_env(&net, &[(var, value)]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(78), "{var}: {t}");
        assert!(
            t.contains(&format!(
                "environment variable {var} (overrides key `{key}`"
            )),
            "{var}: {t}"
        );
        assert!(
            !t.contains("sealpost.toml:"),
            "{var} blamed on a line of the file: {t}"
        );
    }
}

#[test]
fn a_bad_command_line_exits_64_as_help_promises() {
    for args in [
        vec!["--no-such-flag"],
        vec!["seal"],
        vec!["ctl", "list", "--state"],
        vec!["frobnicate"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", text(&o));
    }
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["--version"]).status.code(), Some(0));
    assert!(text(&run(&["--help"])).contains("64  bad command line"));
}
