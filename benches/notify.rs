//! Applicant notifications per second on the real path: notices queued in the
//! notifier's durable queue (sled, in a real outbox), sent by the real
//! [`Notifier`] over SMTP with STARTTLS and AUTH to a real SMTP server on
//! loopback (`tests/smtp/server.py`, Python's aiosmtpd, which parses and
//! records every message), and recorded as sent in the queue.
//!
//! `cargo bench --bench notify` (env `NOTICES`, default 300). Needs
//! `python3-aiosmtpd` (Debian package).
//!
//! The clock runs from the start of the notifier (every notice already queued)
//! until the last `Sent` outcome; the bench then checks that the server
//! recorded exactly one message per notice and that the queue holds every
//! record as sent.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::smtp::{Mode, Smtp, PASSWORD, USER};
use sealpost::config::{
    EmailSettings, EmailTransport, NotifySettings, OutboxPolicy, Secret, SmtpSettings, SmtpTls,
};
use sealpost::notify::{CourtInfo, Language, Notice, Notifier, Outcome, OutcomeKind, What};
use sealpost::outbox::Outbox;
use sealpost::types::{BundleId, Sha256, Timestamp};
use tokio_util::sync::CancellationToken;

fn notice(n: usize) -> Notice {
    let bundle = BundleId::generate();
    Notice {
        event_key: format!("delivered/{bundle}"),
        case_number: format!("深劳人仲案〔2026〕{}号", 10_000 + n)
            .parse()
            .expect("case"),
        bundle_id: bundle,
        language: if n % 2 == 0 {
            Language::Zh
        } else {
            Language::En
        },
        applicant_name: "张三".into(),
        email: Some(format!("applicant-{n}@example.org")),
        mobile: None,
        court: CourtInfo {
            id: "sz-futian-court".parse().expect("id"),
            name_zh: "深圳市福田区人民法院".into(),
            name_en: "Futian District People's Court of Shenzhen".into(),
            phone: Some("0755-8888 0000".into()),
            email: Some("lian@futian-court.example.cn".into()),
        },
        what: What::Delivered {
            received_at: Timestamp::now(),
            receipt_sha256: Sha256::of(&n.to_le_bytes()),
        },
        attachments: vec![],
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("notify: bench");
        return;
    }
    let count: usize = std::env::var("NOTICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    fs::create_dir_all(&pki_dir).expect("mkdir");
    let smtp = Smtp::start(&pki_dir, Mode::StartTls, true, 0);
    let outbox =
        Outbox::open(&dir.path().join("data"), OutboxPolicy::default()).expect("open outbox");
    let settings = NotifySettings {
        email: Some(EmailSettings {
            transport: EmailTransport::Smtp(SmtpSettings {
                host: "127.0.0.1".into(),
                port: smtp.port,
                tls: SmtpTls::StartTls,
                ca_pem: Some(fs::read(pki_dir.join("ca.pem")).expect("ca")),
                credentials: Some((USER.to_owned(), Secret::new(PASSWORD.as_bytes().to_vec()))),
                timeout: Duration::from_secs(10),
            }),
            from: "深圳市劳动人事争议仲裁委员会 <noreply@lac.example.org>"
                .parse()
                .expect("from"),
            reply_to: None,
        }),
        ..NotifySettings::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let notifier =
            Notifier::open(&outbox, settings, "sz-lac".parse().expect("id")).expect("notifier");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        notifier.subscribe(Arc::new(move |o: &Outcome| {
            let _ = tx.send(o.clone());
        }));
        for n in 0..count {
            assert_eq!(notifier.enqueue(&notice(n)).expect("enqueue"), 1);
        }
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let task = {
            let (n, s) = (notifier.clone(), stop.clone());
            tokio::spawn(async move { n.run(s).await.expect("notifier run") })
        };
        let mut sent = 0;
        let mut first = None;
        while sent < count {
            let o = tokio::time::timeout(Duration::from_secs(120), rx.recv())
                .await
                .expect("an outcome within 120 s")
                .expect("outcomes");
            match o.result {
                OutcomeKind::Sent { .. } => {
                    sent += 1;
                    first.get_or_insert_with(|| t0.elapsed());
                }
                other => panic!("not sent: {other:?}"),
            }
        }
        let took = t0.elapsed();
        stop.cancel();
        let _ = task.await;
        let stats = notifier.stats(Timestamp::now()).expect("stats");
        let recorded = smtp.messages().len();
        assert_eq!(
            recorded, count,
            "the SMTP server recorded every message once"
        );
        let rate = count as f64 / took.as_secs_f64();
        println!();
        println!(
            "notify: {count} e-mail notices, SMTP with STARTTLS + AUTH to aiosmtpd on 127.0.0.1"
        );
        println!();
        println!("| measure | value |");
        println!("|---|---:|");
        println!("| notifications sent and recorded per second | {rate:.1} |");
        println!("| all {count} sent in (s) | {:.2} |", took.as_secs_f64());
        println!(
            "| first sent after (ms) | {:.1} |",
            first.unwrap_or_default().as_secs_f64() * 1000.0
        );
        println!("| messages recorded by the server | {recorded} |");
        println!("| queue stats after | {stats:?} |");
    });
}
