//! Damaged bundles (issue 11, "hostile inputs"): well over 100 variants of one
//! real bundle — cut at every age chunk boundary and in every part, a bit
//! flipped in every part that carries meaning, entries reordered and
//! duplicated, bytes before and after the container, the wrong recipient —
//! and every one is refused by `open` with a documented code, with nothing
//! written: no output folder, no temporary left beside it.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{Net, COMMITTEE, FUTIAN, NANSHAN};
use sealpost::bundle::{self, DocumentSource, Kind, SealInput, Verifier};
use sealpost::config::Config;
use sealpost::types::{BundleId, Timestamp};

/// Every code `open` may refuse a bundle with (`docs/bundle-format.md`).
const DOCUMENTED: &[&str] = &[
    "bundle-too-large",
    "container-invalid",
    "trailing-data",
    "duplicate-entry",
    "unsafe-entry-name",
    "symlink-entry",
    "unexpected-entry",
    "missing-entry",
    "entry-not-stored",
    "entry-too-large",
    "container-layout",
    "local-header-mismatch",
    "envelope-malformed",
    "unsupported-format",
    "signer-cert-invalid",
    "envelope-signature-invalid",
    "signer-untrusted",
    "signer-cert-not-valid-at-signing-time",
    "signer-identity-mismatch",
    "signer-cert-digest-mismatch",
    "sender-unknown",
    "signer-not-in-directory",
    "created-in-future",
    "wrong-recipient",
    "payload-length-mismatch",
    "payload-digest-mismatch",
    "decryption-failed",
    "payload-malformed",
    "manifest-malformed",
    "manifest-signature-invalid",
    "manifest-mismatch",
    "document-digest-mismatch",
];

/// A real bundle of three age chunks and more from the committee to Futian.
fn sealed(net: &Net) -> bundle::Sealed {
    let c = net.config(COMMITTEE);
    let src = net.out("src");
    fs::create_dir_all(&src).expect("mkdir");
    let doc: Vec<u8> = (0..200 * 1024u32).map(|i| (i * 131 + 17) as u8).collect();
    let path = src.join("证据.pdf");
    fs::write(&path, &doc).expect("doc");
    let recipient = c.directory.get(&FUTIAN.parse().expect("id")).expect("peer");
    let input = SealInput {
        id: BundleId::generate(),
        kind: Kind::FollowUp,
        created_at: Timestamp::now(),
        sender: c.me(),
        signer: &c.keys.signing,
        recipient,
        archive: None,
        case_ref: "深劳人仲案〔2026〕0100号".parse().expect("case"),
        refers_to: Some(BundleId::generate()),
        application: None,
        body: Some(serde_json::json!({"event": "damaged"})),
        documents: vec![DocumentSource {
            name: "证据.pdf".into(),
            role: "evidence".into(),
            media_type: "application/pdf".into(),
            path,
        }],
    };
    bundle::seal(&input, &net.out("good.sealpost")).expect("seal")
}

/// One stored entry as the file holds it: name, where its data starts, its length.
struct Entry {
    name: String,
    header: usize,
    data: usize,
    len: usize,
}

/// The entries of a stored zip, from its local headers.
fn entries(bytes: &[u8]) -> Vec<Entry> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| {
        u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize
    };
    let mut out = Vec::new();
    let mut at = 0;
    while u32_at(at) == 0x0403_4b50 {
        let name_len = u16_at(at + 26);
        let extra_len = u16_at(at + 28);
        let name = String::from_utf8_lossy(&bytes[at + 30..at + 30 + name_len]).into_owned();
        let data = at + 30 + name_len + extra_len;
        let len = u32_at(at + 18);
        out.push(Entry {
            name,
            header: at,
            data,
            len,
        });
        at = data + len;
    }
    out
}

/// Opens `bytes` as `node` would; returns the refusal's code, and checks that
/// nothing was written.
fn refusal(net: &Net, node: &Config, what: &str, bytes: &[u8]) -> String {
    let dir = net.out(&format!("case-{}", BundleId::generate()));
    fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("in.sealpost");
    fs::write(&file, bytes).expect("write");
    let out = dir.join("opened");
    let err = match Verifier::for_node(node).open(&file, &node.keys.encryption, &out) {
        Ok(_) => panic!("{what}: a damaged bundle was opened"),
        Err(e) => e,
    };
    assert!(!out.exists(), "{what}: {} exists", out.display());
    let left: Vec<String> = fs::read_dir(&dir)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "in.sealpost")
        .collect();
    assert!(left.is_empty(), "{what}: left {left:?} (plaintext?)");
    let code = err.code().to_owned();
    assert!(
        DOCUMENTED.contains(&code.as_str()),
        "{what}: undocumented code {code} ({err})"
    );
    let _ = fs::remove_dir_all(&dir);
    code
}

/// A stored zip of `names`' data from `bytes`, in that order (repeats
/// allowed), written by hand: the reference writer refuses what is tested here.
fn rebuild(bytes: &[u8], order: &[&str], extra: &[&str]) -> Vec<u8> {
    rebuild_flipped(bytes, order, extra, None)
}

/// [`rebuild`] with one bit of an entry flipped *and its CRCs made to match*:
/// the damage reaches the checks behind the container's.
fn rebuild_flipped(
    bytes: &[u8],
    order: &[&str],
    extra: &[&str],
    flip: Option<(&str, usize)>,
) -> Vec<u8> {
    let all = entries(bytes);
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut count = 0u16;
    for name in order.iter().chain(extra) {
        let e = all.iter().find(|e| e.name == *name).expect("entry");
        let mut owned = bytes[e.data..e.data + e.len].to_vec();
        if let Some((n, at)) = flip {
            if n == *name {
                owned[at] ^= 0x04;
            }
        }
        let data = &owned[..];
        let crc = crc32(data);
        let offset = out.len() as u32;
        let mut fields = Vec::new();
        fields.extend(20u16.to_le_bytes()); // version needed
        fields.extend(0u16.to_le_bytes()); // flags
        fields.extend(0u16.to_le_bytes()); // stored
        fields.extend(0u32.to_le_bytes()); // time and date
        fields.extend(crc.to_le_bytes());
        fields.extend((data.len() as u32).to_le_bytes());
        fields.extend((data.len() as u32).to_le_bytes());
        fields.extend((name.len() as u16).to_le_bytes());
        fields.extend(0u16.to_le_bytes()); // extra
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(&fields);
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes()); // made by
        central.extend(&fields);
        central.extend([0u8; 8]); // comment length, disk, internal, external attributes (first 8 bytes)
        central.extend([0u8; 2]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
        count += 1;
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn every_damaged_variant_of_a_bundle_is_refused_with_its_code_and_writes_nothing() {
    let net = Net::new();
    let court = net.config(FUTIAN);
    let good_bundle = sealed(&net);
    let good = fs::read(&good_bundle.path).expect("read");
    // The bundle itself opens.
    Verifier::for_node(&court)
        .open(&good_bundle.path, &court.keys.encryption, &net.out("ok"))
        .expect("the undamaged bundle opens");
    let parts = entries(&good);
    let payload = parts
        .iter()
        .find(|e| e.name == bundle::PAYLOAD_ENTRY)
        .expect("payload");
    let cd_start = parts.last().map(|e| e.data + e.len).expect("entries");
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();

    // Cut at every age chunk boundary (and one byte either side), and in every part.
    let chunk = common::AGE_CHUNK;
    let header_end = good[payload.data..]
        .windows(4)
        .position(|w| w == b"\n---")
        .map(|p| payload.data + p + 48)
        .expect("age header");
    let mut cuts = vec![payload.data, header_end];
    let mut k = header_end;
    while k < payload.data + payload.len {
        for d in [k.saturating_sub(1), k, k + 1] {
            cuts.push(d);
        }
        k += chunk;
    }
    for e in &parts {
        cuts.push(e.header + 10);
        cuts.push(e.data + e.len / 2);
        cuts.push(e.data + e.len);
    }
    cuts.extend([cd_start + 5, good.len() - 10, good.len() - 1]);
    cuts.sort_unstable();
    cuts.dedup();
    for at in cuts.into_iter().filter(|&at| at < good.len()) {
        variants.push((format!("cut at byte {at}"), good[..at].to_vec()));
    }

    let names = [
        bundle::PAYLOAD_ENTRY,
        bundle::ENVELOPE_ENTRY,
        bundle::SIGNATURE_ENTRY,
        bundle::SIGNER_ENTRY,
    ];
    // A bit flipped in every part that carries meaning.
    let mut flips: Vec<(String, usize)> = Vec::new();
    for i in (0..header_end - payload.data).step_by(17) {
        flips.push(("age header".into(), payload.data + i));
    }
    let mut c = header_end;
    let mut n = 0;
    while c < payload.data + payload.len {
        let end = (c + chunk).min(payload.data + payload.len);
        for at in [c, (c + end) / 2, end - 1] {
            flips.push((format!("age chunk {n}"), at));
        }
        c = end;
        n += 1;
    }
    for e in parts.iter().filter(|e| e.name != bundle::PAYLOAD_ENTRY) {
        let step = (e.len / 12).max(1);
        for i in (0..e.len).step_by(step) {
            let at = e.data + i;
            // A PEM line break carries no meaning to a PEM reader.
            if good[at] == b'\n' {
                continue;
            }
            flips.push((e.name.clone(), at));
        }
        // Its local header: the CRC, the size and the name.
        for (what, off) in [("crc", 14), ("size", 18), ("name", 30)] {
            flips.push((format!("{} local header {what}", e.name), e.header + off));
        }
    }
    for (part, at) in flips {
        let mut b = good.clone();
        b[at] ^= 0x04;
        variants.push((format!("bit flipped in {part} at byte {at}"), b));
        // The same flip inside an entry's data, with the CRCs made to match,
        // so that it meets the signature, certificate and digest checks.
        if let Some(e) = parts.iter().find(|e| at >= e.data && at < e.data + e.len) {
            variants.push((
                format!("bit flipped in {part} at byte {at}, CRCs fixed"),
                rebuild_flipped(&good, &names, &[], Some((&e.name, at - e.data))),
            ));
        }
    }

    // Entries reordered (every order but the right one) and duplicated.
    for p in permutations(&names) {
        if p == names {
            continue;
        }
        variants.push((format!("entries in order {p:?}"), rebuild(&good, &p, &[])));
    }
    for dup in names {
        variants.push((format!("{dup} twice"), rebuild(&good, &names, &[dup])));
    }

    // Bytes before and after the container.
    for (what, tail) in [
        ("a byte after the container", vec![0u8]),
        ("a KiB after the container", vec![0x41; 1024]),
        ("a second bundle appended", good.clone()),
    ] {
        let mut b = good.clone();
        b.extend(tail);
        variants.push((what.into(), b));
    }
    let mut b = b"MZ\x90\x00".to_vec();
    b.extend(&good);
    variants.push(("bytes before the container".into(), b));
    variants.push(("empty".into(), Vec::new()));

    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for (what, bytes) in &variants {
        *codes.entry(refusal(&net, &court, what, bytes)).or_default() += 1;
    }
    // The wrong recipient: a good bundle, opened by another court.
    let nanshan = net.config(NANSHAN);
    let code = refusal(&net, &nanshan, "opened by the wrong court", &good);
    assert_eq!(code, "wrong-recipient");
    *codes.entry(code).or_default() += 1;

    let total: usize = codes.values().sum();
    assert!(total >= 100, "only {total} variants");
    eprintln!("{total} damaged variants, all refused, nothing written: {codes:?}");
    assert!(
        codes.len() >= 8,
        "the variants reach many different checks: {codes:?}"
    );
}

fn permutations<'a>(items: &[&'a str]) -> Vec<Vec<&'a str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}
