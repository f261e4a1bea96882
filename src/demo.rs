//! `sealpost demo`: two nodes on loopback. A committee daemon (mTLS API on a
//! free port) and two court daemons (polling it) run as child processes with
//! the example PKI and configs; the example applications are dropped into the
//! committee's intake folder and followed into each court's inbox and back as
//! verified receipts.
//!
//! The example files (`certs-example/`, `config/*.example.toml`,
//! `fixtures/applications/`) are found in `$SEALPOST_SHARE` when it is set
//! (and only there); otherwise, in this order, in `../share/sealpost` beside
//! the binary (`/usr/bin` → `/usr/share/sealpost`, the Debian package), in
//! `/usr/share/sealpost`, and in the source tree of `$CARGO_MANIFEST_DIR`
//! (which `cargo run` and `cargo test` set). No build path is compiled in: a
//! binary copied elsewhere without its files says every place it looked.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::application::Application;
use crate::types::{human_bytes, BundleId, Timestamp};

/// The marker of a folder holding the demo's files.
const MARKER: &str = "certs-example/peers.toml";

/// Where the demo's files are, or every place looked in.
pub fn assets() -> Result<PathBuf, Vec<PathBuf>> {
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("SEALPOST_SHARE") {
        // Set on purpose: a wrong value is reported, not passed over.
        candidates.push(PathBuf::from(d));
    } else {
        if let Ok(exe) = std::env::current_exe() {
            if let Some(prefix) = exe.parent().and_then(Path::parent) {
                candidates.push(prefix.join("share/sealpost"));
            }
        }
        candidates.push(PathBuf::from("/usr/share/sealpost"));
        if let Some(d) = std::env::var_os("CARGO_MANIFEST_DIR") {
            candidates.push(PathBuf::from(d));
        }
    }
    candidates
        .iter()
        .find(|c| c.join(MARKER).is_file())
        .cloned()
        .ok_or(candidates)
}

/// Runs the demo; returns false (after saying why on standard error) if it
/// could not be completed.
pub fn demo(dir: Option<PathBuf>, out: &mut impl Write) -> bool {
    match run_demo(dir, out) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("sealpost demo: {e}");
            false
        }
    }
}

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0));
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.0.wait();
    }
}

fn run_demo(dir: Option<PathBuf>, out: &mut impl Write) -> Result<(), String> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let src = &assets().map_err(|looked| {
        let looked = looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if std::env::var_os("SEALPOST_SHARE").is_some() {
            format!("cannot find the demo's files (example PKI, configs and applications) in SEALPOST_SHARE={looked}: it must hold {MARKER}, config/ and fixtures/applications/")
        } else {
            format!("cannot find the demo's files (example PKI, configs and applications); looked in {looked}. Install the package or set SEALPOST_SHARE")
        }
    })?;
    let work = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "sealpost-demo-{}",
            &BundleId::generate().as_str()[..8]
        ))
    });
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // Each node's log in the work directory, not over the demo's story.
    let log_file = |node: &str| -> Result<std::fs::File, String> {
        let path = work.join(format!("{node}.log"));
        std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let say = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    say(
        out,
        format!(
            "sealpost demo — two nodes on loopback, example PKI from {}\nwork dir: {}\n",
            src.display(),
            work.display()
        ),
    );

    // Private keys readable by their owner only, as check-config demands: a
    // copy of the example keys in the work directory (git does not keep modes).
    let private_keys = |agency: &str| -> Result<Vec<(String, PathBuf)>, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = work.join("keys").join(agency);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut env = Vec::new();
        for (file, key) in [
            ("tls.key", "SEALPOST_PKI__TLS_KEY"),
            ("sign.key", "SEALPOST_PKI__SIGNING_KEY"),
            ("age.key", "SEALPOST_PKI__ENCRYPTION_IDENTITY"),
        ] {
            let to = dir.join(file);
            std::fs::copy(src.join("certs-example").join(agency).join(file), &to)
                .map_err(|e| format!("{}: {e}", to.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            env.push((key.to_owned(), to));
        }
        Ok(env)
    };

    // The committee: intake + mTLS API on a free port.
    let lac_dir = work.join("sz-lac");
    let mut committee = Command::new(&exe)
        .args([
            "-c",
            &src.join("config/sealpost.example.toml").to_string_lossy(),
            "run",
        ])
        .envs(private_keys("sz-lac")?)
        .env("SEALPOST_NODE__DATA_DIR", &lac_dir)
        .env("SEALPOST_INTAKE__ROOT", lac_dir.join("clerk"))
        .env("SEALPOST_SERVER__LISTEN", "127.0.0.1:0")
        .env("SEALPOST_ADMIN__LISTEN", "127.0.0.1:0")
        .env("SEALPOST_INTAKE__SETTLE", "1s")
        .env("SEALPOST_INTAKE__SCAN_INTERVAL", "200ms")
        .env("SEALPOST_NOTIFY__EMAIL__DIR", work.join("mail"))
        .stdout(Stdio::piped())
        .stderr(log_file("sz-lac")?)
        .spawn()
        .map_err(|e| format!("cannot start the committee node: {e}"))?;
    let stdout = committee.stdout.take().ok_or("no stdout")?;
    let committee = Daemon(committee);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines
        .next()
        .and_then(Result::ok)
        .ok_or("the committee node did not start")?;
    let addr = first
        .strip_prefix("LISTENING ")
        .ok_or_else(|| format!("unexpected output {first:?}"))?
        .to_owned();
    let port = addr.rsplit(':').next().unwrap_or("0").to_owned();
    say(
        out,
        format!("committee  sz-lac            serving the mTLS API on {addr}"),
    );
    // Keep draining the committee's output so it never blocks.
    std::thread::spawn(move || for _ in lines {});

    // The courts' view of the directory: the committee at its real port.
    let peers_src = src.join("certs-example/peers.toml");
    let text =
        std::fs::read_to_string(&peers_src).map_err(|e| format!("{}: {e}", peers_src.display()))?;
    let abs = src.join("certs-example");
    let text = text
        .replace(
            "signing_cert = \"",
            &format!("signing_cert = \"{}/", abs.display()),
        )
        .replace(
            "endpoint = \"https://localhost:8443\"",
            &format!("endpoint = \"https://localhost:{port}\""),
        );
    let peers = work.join("peers.toml");
    std::fs::write(&peers, text).map_err(|e| e.to_string())?;
    let mut courts = Vec::new();
    for court in ["sz-futian-court", "sz-nanshan-court"] {
        let child = Command::new(&exe)
            .args([
                "-c",
                &src.join(format!("config/{court}.example.toml"))
                    .to_string_lossy(),
                "run",
            ])
            .env("SEALPOST_NODE__DATA_DIR", work.join(court))
            .envs(private_keys(court)?)
            .env("SEALPOST_DIRECTORY__FILE", &peers)
            .env("SEALPOST_CLIENT__WAIT", "30s")
            .env("SEALPOST_FOLLOWUP__ROOT", work.join(court).join("followup"))
            .env("SEALPOST_FOLLOWUP__SETTLE", "1s")
            .env("SEALPOST_FOLLOWUP__SCAN_INTERVAL", "200ms")
            .env("SEALPOST_ADMIN__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(log_file(court)?)
            .spawn()
            .map_err(|e| format!("cannot start {court}: {e}"))?;
        courts.push(Daemon(child));
        say(
            out,
            format!("court      {court:<17} polling https://localhost:{port} (long-poll)"),
        );
    }

    // Drop the example applications as a clerk would (each appears at once).
    let apps = src.join("fixtures/applications");
    let mut names: Vec<String> = std::fs::read_dir(&apps)
        .map_err(|e| format!("{}: {e}", apps.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let clerk = lac_dir.join("clerk");
    let staging = work.join("staging");
    let wait_for = |what: &str, mut cond: Box<dyn FnMut() -> bool + '_>| -> Result<(), String> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    wait_for(
        "the intake folder",
        Box::new(|| clerk.join("intake").is_dir()),
    )?;
    say(out, String::new());
    for name in &names {
        let from = apps.join(name);
        let to = staging.join(name);
        std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
        for f in std::fs::read_dir(&from)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            std::fs::copy(f.path(), to.join(f.file_name())).map_err(|e| e.to_string())?;
        }
        std::fs::write(to.join("READY"), b"").map_err(|e| e.to_string())?;
        let dropped = Instant::now();
        std::fs::rename(&to, clerk.join("intake").join(name)).map_err(|e| e.to_string())?;
        say(
            out,
            format!("── {name}: dropped into {}", clerk.join("intake").display()),
        );
        let note = clerk.join("accepted").join(format!("{name}.txt"));
        wait_for("the committee to accept it", Box::new(|| note.is_file()))?;
        let note_text = std::fs::read_to_string(&note).map_err(|e| e.to_string())?;
        let id = note_text
            .split_whitespace()
            .find_map(|w| w.parse::<BundleId>().ok())
            .ok_or("no bundle id in the acceptance note")?;
        let delivery = crate::outbox::Outbox::bundle_path_in(&lac_dir, &id);
        say(
            out,
            format!(
                "   1. committee accepted, sealed and queued it: bundle {id} ({})",
                human_bytes(std::fs::metadata(&delivery).map(|m| m.len()).unwrap_or(0))
            ),
        );
        let app = Application::load(
            &from,
            &crate::config::Limits::default(),
            &crate::config::load_directory(&peers).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let inbox = work
            .join(app.court.as_str())
            .join("inbox")
            .join(app.case_number.as_str())
            .join(id.as_str());
        wait_for(
            "the court's inbox",
            Box::new(|| inbox.join(".done").exists()),
        )?;
        say(
            out,
            format!(
                "   2. {} fetched it over mTLS, verified it and opened it into\n      {}",
                app.court,
                inbox.display()
            ),
        );
        for d in &app.documents {
            let same = std::fs::read(inbox.join("documents").join(&d.name)).ok()
                == std::fs::read(&d.path).ok();
            if !same {
                return Err(format!("{} differs from the original", d.name));
            }
        }
        say(out, format!("      ✓ {} documents byte-identical to the originals, 转办函 transfer-letter.txt included", app.documents.len()));
        let receipt = lac_dir.join("outbox/receipts").join(format!("{id}.json"));
        wait_for("the signed receipt", Box::new(|| receipt.is_file()))?;
        say(out, format!("   3. the court's signed receipt came back; delivered after {:.2} s\n      receipt: {}", dropped.elapsed().as_secs_f64(), receipt.display()));
        let proof = lac_dir
            .join("proofs")
            .join(crate::evidence::proof::file_name(&id));
        wait_for("the proof of delivery", Box::new(|| proof.is_file()))?;
        let trust = crate::pki::ExchangeCa::load(&[src.join("certs-example/ca.pem")])
            .map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&proof).map_err(|e| e.to_string())?;
        let v = crate::evidence::proof::verify(&bytes, &trust)
            .map_err(|e| format!("the proof of delivery does not verify: {e}"))?;
        say(out, format!("   4. proof of delivery (送达证明), verified offline with the exchange CA alone:\n      {}\n      audit records {}..{} signed by checkpoint {} (printable page beside the clerks' status file)", proof.display(), v.view.audit.first_seq, v.view.audit.last_seq, v.view.audit.checkpoint_seq));
    }

    // The court follows up; the applicant hears; the clerk reads the status file.
    let first = names.first().ok_or("no example applications")?;
    let app = Application::load(
        &apps.join(first),
        &crate::config::Limits::default(),
        &crate::config::load_directory(&peers).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let status = clerk.join("status").join(format!("{first}.txt"));
    let mail = work.join("mail");
    say(out, format!("\n── {first}: the court follows up"));
    let followups = [
        (
            "materials",
            "需补充材料 / materials required",
            format!(
                "case_number = \"{case}\"\nkind = \"materials-required\"\nitems = [\"劳动合同原件 / the original employment contract\", \"近六个月工资流水 / bank statements of the last six months\"]\ndeadline = {deadline}\nplace = \"福田区人民法院立案庭二楼 3 号窗口 / Futian court, case-filing division, 2F window 3\"\nhow = \"\"\"\n现场提交原件及复印件各一份。\nHand in the originals and one copy in person.\n\"\"\"\n\n[contact]\nname = \"立案庭 / case-filing division\"\nphone = \"0755-83000000\"\n",
                case = app.case_number.as_str(),
                deadline = {
                    let d = Timestamp::now().datetime() + time::Duration::days(14);
                    let d = d.to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("UTC+8"));
                    format!("{}-{:02}-{:02}T17:00:00+08:00", d.year(), u8::from(d.month()), d.day())
                }
            ),
            None,
        ),
        (
            "ruling",
            "裁定已作出 / ruling issued",
            format!(
                "case_number = \"{case}\"\nkind = \"ruling-issued\"\nsummary = \"准予财产保全。The application for property preservation is granted.\"\n\n[[attachments]]\nfile = \"民事裁定书.pdf\"\n",
                case = app.case_number.as_str()
            ),
            app.documents.iter().find(|d| d.name.ends_with(".pdf")).map(|d| d.path.clone()),
        ),
    ];
    let court_drop = work.join(app.court.as_str()).join("followup").join("drop");
    wait_for(
        "the court's follow-up folder",
        Box::new(|| court_drop.is_dir()),
    )?;
    for (name, label, form, pdf) in followups {
        let before = count_mail(&mail);
        let to = staging.join(format!("{first}-{name}"));
        std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
        std::fs::write(to.join("event.toml"), form).map_err(|e| e.to_string())?;
        if let Some(pdf) = pdf {
            std::fs::copy(pdf, to.join("民事裁定书.pdf")).map_err(|e| e.to_string())?;
        }
        std::fs::write(to.join("READY"), b"").map_err(|e| e.to_string())?;
        let sent = Instant::now();
        std::fs::rename(&to, court_drop.join(format!("{first}-{name}")))
            .map_err(|e| e.to_string())?;
        say(
            out,
            format!(
                "   {} clerk dropped \"{label}\" into {}",
                app.court,
                court_drop.display()
            ),
        );
        wait_for(
            "the applicant's e-mail",
            Box::new(|| count_mail(&mail) > before),
        )?;
        say(out, format!("   → signed by the court, sent to the committee, verified, and the applicant was e-mailed after {:.2} s", sent.elapsed().as_secs_f64()));
        if let Some(m) = newest_mail(&mail) {
            say(
                out,
                format!("\n   ✉ {}\n{}", m.0.display(), indent(&m.1, "   │ ")),
            );
        }
    }
    wait_for(
        "the clerks' status file",
        Box::new(|| std::fs::read_to_string(&status).is_ok_and(|t| t.contains("裁定已作出"))),
    )?;
    let text = std::fs::read_to_string(&status).map_err(|e| e.to_string())?;
    say(
        out,
        format!(
            "\n   The clerks' status file {}:\n{}",
            status.display(),
            indent(&text, "   │ ")
        ),
    );
    drop(courts);
    drop(committee);
    say(out, format!("\nAll example applications travelled sealed, were opened only by their court, and came back as signed receipts; the court's follow-up reached the committee and the applicant.\nEverything is in {} (each node's log: <node>.log; e-mails: mail/)", work.display()));
    Ok(())
}

fn count_mail(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .count()
        })
        .unwrap_or(0)
}

/// The newest `.eml` in `dir` and its headers and text part, decoded for reading.
fn newest_mail(dir: &std::path::Path) -> Option<(PathBuf, String)> {
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path();
    let raw = std::fs::read(&newest).ok()?;
    let msg = mail_parser::MessageParser::default().parse(&raw)?;
    let addr = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.first())
            .map(|a| {
                format!(
                    "{} <{}>",
                    a.name().unwrap_or_default(),
                    a.address().unwrap_or_default()
                )
            })
            .unwrap_or_default()
    };
    let mut s = format!(
        "From: {}\nTo: {}\nSubject: {}\n",
        addr(msg.from()),
        addr(msg.to()),
        msg.subject().unwrap_or_default()
    );
    use mail_parser::MimeHeaders as _;
    for a in msg.attachments() {
        s.push_str(&format!(
            "Attachment: {} ({} bytes)\n",
            a.attachment_name().unwrap_or("?"),
            a.contents().len()
        ));
    }
    s.push('\n');
    s.push_str(msg.body_text(0).as_deref().unwrap_or_default());
    Some((newest, s))
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
