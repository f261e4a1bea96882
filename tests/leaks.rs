//! No cross-peer leaks (issue 11, "hostile inputs at every door"): every
//! endpoint of the API, asked by two courts about their own bundle and case,
//! the other court's, one that does not exist and guessed ids, with stock
//! curl over mTLS. A court sees its own; everything else answers exactly as
//! a bundle or case that does not exist does (same status, same body with the
//! id in it replaced, same content type), and no answer to a court carries
//! the other court's ids, case number or applicant.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::node::{curl, start, wait_line, Node};
use common::{tiny_app, Net, COMMITTEE, FUTIAN, NANSHAN};

fn drop_for(net: &Net, name: &str, case: &str, court: &str) {
    let staging = net.out(&format!("staging-{name}"));
    tiny_app(&staging, case, court);
    // Each court's applicant is someone else.
    let toml = staging.join("application.toml");
    let text = fs::read_to_string(&toml)
        .expect("toml")
        .replace("applicant@example.com", &format!("{name}@example.com"));
    fs::write(&toml, text).expect("toml");
    fs::write(staging.join("READY"), b"").expect("marker");
    let intake = net.agency(COMMITTEE).dir.join("data/clerk/intake");
    fs::rename(&staging, intake.join(name)).expect("drop");
}

/// What a court can tell from an answer: status, content type, body with the
/// id asked about replaced.
fn seen(
    net: &Net,
    node: &Node,
    court: &str,
    method: &str,
    path: &str,
    asked: &str,
) -> (u16, String) {
    let mut args = vec!["-X", method];
    if method == "HEAD" {
        args = vec!["-I"];
    }
    if method == "POST" {
        args.extend(["-H", "Content-Type: application/json", "-d", "{\"x\":1}"]);
    }
    let (status, body) = curl(net, node, court, path, &args);
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if !asked.is_empty() {
        text = text
            .replace(asked, "{asked}")
            .replace(&urlencode(asked), "{asked}");
    }
    // Headers of a HEAD differ only by date.
    let text = text
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\n");
    (status, text)
}

/// A method and the path it is asked at, for an id.
type Endpoint = (&'static str, fn(&str) -> String);

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn every_endpoint_answers_another_courts_ids_exactly_as_it_answers_ids_that_do_not_exist() {
    let net = Net::new();
    let node = start(&net);
    let cases = BTreeMap::from([
        (FUTIAN, ("futian-app", "深劳人仲案〔2026〕7001号")),
        (NANSHAN, ("nanshan-app", "深劳人仲案〔2026〕7002号")),
    ]);
    let mut ids = BTreeMap::new();
    for (court, (name, case)) in &cases {
        drop_for(&net, name, case, court);
        let line = wait_line(&node, &format!("ACCEPTED  {name}"));
        ids.insert(*court, line.rsplit(' ').next().expect("id").to_owned());
    }
    let mut checked = 0;
    for (me, other) in [(FUTIAN, NANSHAN), (NANSHAN, FUTIAN)] {
        let (own_id, other_id) = (&ids[me], &ids[other]);
        let (own_case, other_case) = (cases[me].1, cases[other].1);
        let other_applicant = format!("{}@example.com", cases[other].0);
        let missing_id = "aaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned();
        let missing_case = "深劳人仲案〔2026〕9999号".to_owned();

        // The listing: its own bundle only.
        let (status, body) = seen(&net, &node, me, "GET", "/v1/bundles", "");
        assert_eq!(status, 200);
        assert!(body.contains(own_id.as_str()), "{me}: {body}");
        assert!(
            !body.contains(other_id.as_str()),
            "{me} sees {other}'s bundle: {body}"
        );

        // Per-bundle endpoints: another court's id, a missing one and guessed
        // ones (the other's id with its first letter changed, the own id
        // with its last) all answer alike.
        let mut guessed_own = own_id.clone();
        guessed_own.replace_range(0..1, if own_id.starts_with('b') { "c" } else { "b" });
        let bundle_endpoints: [Endpoint; 3] = [
            ("GET", |id| format!("/v1/bundles/{id}")),
            ("HEAD", |id| format!("/v1/bundles/{id}")),
            ("POST", |id| format!("/v1/bundles/{id}/receipt")),
        ];
        for (method, path) in bundle_endpoints {
            let baseline = seen(&net, &node, me, method, &path(&missing_id), &missing_id);
            assert_eq!(
                baseline.0,
                404,
                "{me} {method} {}: {baseline:?}",
                path(&missing_id)
            );
            for probe in [other_id.clone(), guessed_own.clone()] {
                let got = seen(&net, &node, me, method, &path(&probe), &probe);
                assert_eq!(
                    got,
                    baseline,
                    "{me} {method} {}: answered unlike a missing bundle",
                    path(&probe)
                );
                assert!(!got.1.contains(other_case) && !got.1.contains(&other_applicant));
                checked += 1;
            }
            // Its own bundle is there (a receipt of garbage is refused as such).
            let own = seen(&net, &node, me, method, &path(own_id), own_id);
            assert_ne!(own.0, 404, "{me} {method} its own bundle: {own:?}");
        }

        // The case endpoints.
        let case_endpoints: [Endpoint; 2] = [
            ("GET", |c| format!("/v1/cases/{}", urlencode(c))),
            ("POST", |c| format!("/v1/cases/{}/events", urlencode(c))),
        ];
        for (method, path) in case_endpoints {
            let baseline = seen(&net, &node, me, method, &path(&missing_case), &missing_case);
            assert_ne!(baseline.0 / 100, 2, "{me} {method}: {baseline:?}");
            let got = seen(&net, &node, me, method, &path(other_case), other_case);
            assert_eq!(
                got,
                baseline,
                "{me} {method} {}: another court's case answered unlike a missing one",
                path(other_case)
            );
            assert!(!got.1.contains(other_id.as_str()) && !got.1.contains(&other_applicant));
            checked += 1;
        }
        let (status, body) = seen(
            &net,
            &node,
            me,
            "GET",
            &format!("/v1/cases/{}", urlencode(own_case)),
            own_case,
        );
        assert_eq!(status, 200, "{me}: its own case: {body}");
        assert!(!body.contains(other_id.as_str()));
    }
    eprintln!(
        "{checked} probes of other courts' and missing ids: all answered alike, nothing leaked"
    );
}
