//! A court without sealpost: the recipe in `docs/bundle-format.md` (between the
//! `recipe:begin`/`recipe:end` markers), run verbatim with the real `unzip`,
//! `openssl`, `sha256sum`, `age` and `tar`, must verify and open a bundle, and the
//! documents must come out byte-identical. It must also fail on tampered bundles.
//! The tools are installed by `scripts/test`; a missing tool fails the test.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{copy_fixture, Net, COMMITTEE, FUTIAN};
use sealpost::application::Application;

fn recipe() -> String {
    common::doc_block("docs/bundle-format.md", "recipe")
}

fn require_tools() {
    common::require_tools(&[
        "sh",
        "unzip",
        "openssl",
        "sha256sum",
        "age",
        "tar",
        "sed",
        "grep",
        "date",
    ]);
}

/// Runs the recipe on `bundle`; returns (success, output).
fn run_recipe(net: &Net, bundle: &Path, out: &Path) -> (bool, String) {
    fs::create_dir_all(out).expect("mkdir");
    let o = Command::new("sh")
        .arg("-c")
        .arg(recipe())
        .env("BUNDLE", bundle)
        .env("CA", net.path().join("ca.pem"))
        .env("SIGNER_EXPECTED", COMMITTEE)
        .env("AGE_KEY", net.agency(FUTIAN).dir.join("age.key"))
        .env("OUT", out)
        .output()
        .expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success() && text.contains("RECIPE OK"), text)
}

#[test]
fn the_documented_recipe_opens_a_bundle_with_stock_tools() {
    require_tools();
    let net = Net::new();
    let c = net.config(COMMITTEE);
    let app_dir = net.out("app");
    copy_fixture("zhang-wei-futian", &app_dir, FUTIAN);
    let app = Application::load(&app_dir, &c.limits, &c.directory).expect("valid");
    let bundle = net.out("b.sealpost");
    sealpost::intake::seal_application(
        &c,
        &app,
        c.directory.get(&app.court).expect("court"),
        &bundle,
    )
    .expect("seal");

    let out = net.out("stock");
    let (ok, text) = run_recipe(&net, &bundle, &out);
    assert!(ok, "the recipe failed on a good bundle:\n{text}");
    for d in &app.documents {
        let got = fs::read(out.join("payload/documents").join(&d.name))
            .unwrap_or_else(|e| panic!("{} not extracted by stock tools: {e}\n{text}", d.name));
        assert_eq!(
            got,
            fs::read(&d.path).expect("original"),
            "{} differs",
            d.name
        );
    }

    // Tampering is caught by the stock recipe as well.
    let bytes = fs::read(&bundle).expect("read");
    let env_at = bytes
        .windows(b"\"case_ref\"".len())
        .position(|w| w == b"\"case_ref\"")
        .expect("envelope in the zip");
    let mut tampered = bytes.clone();
    tampered[env_at + 20] ^= 0x01; // inside the case reference; the zip CRC no longer matches either
    let evil = net.out("tampered.sealpost");
    fs::write(&evil, &tampered).expect("write");
    let (ok, text) = run_recipe(&net, &evil, &net.out("stock-tampered"));
    assert!(!ok, "the recipe accepted a tampered envelope:\n{text}");

    let evil = net.out("truncated.sealpost");
    fs::write(&evil, &bytes[..bytes.len() - 300]).expect("write");
    let (ok, text) = run_recipe(&net, &evil, &net.out("stock-truncated"));
    assert!(!ok, "the recipe accepted a truncated bundle:\n{text}");
}
