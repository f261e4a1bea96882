//! `docs/openapi.yaml` agrees with the server: it is a valid OpenAPI 3.1
//! document (checked by the stock `openapi-spec-validator`), its problem-code
//! enum is exactly the set of codes the server can send, every timestamp is a
//! `date-time`, bundle bodies are binary, each operation lists the statuses it
//! can return, and the query parameters and limits are described as the server
//! reads them.
//!
//! Needs Python 3 with `openapi-spec-validator` (which brings PyYAML);
//! `scripts/test` installs it. The interpreter is `python3`, or
//! `$SEALPOST_PYTHON` when set. A missing tool fails the test: it never skips.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use sealpost::api::PROBLEM_CODES;
use sealpost::config::ServerLimits as Limits;

const BUNDLE_TYPE: &str = "application/vnd.sealpost.bundle+zip";

/// Codes of `BundleError::code()` that describe local conditions: never sent.
const LOCAL_ONLY: [&str; 3] = ["bundle-unreadable", "output-exists", "output-failed"];

const HTTP_METHODS: [&str; 8] = [
    "get", "head", "post", "put", "patch", "delete", "options", "trace",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The document, validated as OpenAPI 3.1 and converted to JSON (once: a
/// failure is kept and reported by every test).
fn doc() -> &'static Value {
    static DOC: OnceLock<Result<Value, String>> = OnceLock::new();
    match DOC.get_or_init(load) {
        Ok(doc) => doc,
        Err(why) => panic!("{why}"),
    }
}

fn load() -> Result<Value, String> {
    let python = std::env::var("SEALPOST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .arg(root().join("tests/openapi/validate.py"))
        .arg(root().join("docs/openapi.yaml"))
        .output()
        .map_err(|e| {
            format!(
                "cannot run {python}: {e}. This test needs Python 3 with openapi-spec-validator; \
                 scripts/test installs it (the test does not skip)"
            )
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("validate.py printed no JSON document: {e}")),
        Some(3) => Err(format!(
            "openapi-spec-validator (or PyYAML) is not installed for {python}: {stderr}\
             scripts/test installs it (`python3 -m pip install openapi-spec-validator`); \
             the test does not skip"
        )),
        _ => Err(format!(
            "docs/openapi.yaml is not a valid OpenAPI 3.1 document:\n{stderr}"
        )),
    }
}

/// `v`, with `$ref`s (local JSON pointers) followed.
fn resolve(v: &Value) -> &Value {
    let mut v = v;
    for _ in 0..32 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are expected, not {r}"));
        v = doc()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {r}"));
    }
    panic!("reference loop")
}

fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("docs/openapi.yaml has no {pointer}"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer)
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
}

/// Every operation: (path, method, operation).
fn operations() -> Vec<(&'static str, &'static str, &'static Value)> {
    let mut ops = Vec::new();
    let paths = at(doc(), "/paths").as_object().expect("paths is a map");
    for (path, item) in paths {
        for m in HTTP_METHODS {
            if let Some(op) = item.get(m) {
                ops.push((path.as_str(), m, op));
            }
        }
    }
    ops
}

fn operation(id: &str) -> &'static Value {
    operations()
        .into_iter()
        .find(|(_, _, op)| op["operationId"] == id)
        .map(|(_, _, op)| op)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

/// The string literals on the right of `=>` in the body of `fn code(&self)` in `file`.
fn codes_of(file: &str) -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join(file)).expect("read source");
    let start = src
        .find("fn code(&self)")
        .unwrap_or_else(|| panic!("{file} has no fn code(&self)"));
    let open = start + src[start..].find('{').expect("fn body");
    let mut depth = 0usize;
    let mut end = open;
    for (i, c) in src[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut rest = &src[open..end];
    let mut codes = BTreeSet::new();
    while let Some(i) = rest.find("=> \"") {
        let lit = &rest[i + 4..];
        let close = lit.find('"').expect("closing quote");
        codes.insert(lit[..close].to_owned());
        rest = &lit[close + 1..];
    }
    assert!(!codes.is_empty(), "no codes found in {file}");
    codes
}

/// Bundle-verification codes that push can send with 422.
fn bundle_fault_codes() -> BTreeSet<String> {
    let all = codes_of("src/bundle/error.rs");
    for c in LOCAL_ONLY {
        assert!(
            all.contains(c),
            "BundleError::code() no longer has {c}: update LOCAL_ONLY"
        );
    }
    let faults: BTreeSet<String> = all
        .into_iter()
        .filter(|c| !LOCAL_ONLY.contains(&c.as_str()))
        .collect();
    assert!(faults.len() >= 30, "too few bundle codes found: {faults:?}");
    faults
}

fn receipt_codes() -> BTreeSet<String> {
    let codes = codes_of("src/receipt.rs");
    assert!(codes.contains("receipt-in-future"), "{codes:?}");
    codes
}

/// The status of each code the server sends besides bundle and receipt codes (422).
fn status_of_server_code(code: &str) -> u16 {
    match code {
        "bad-query" | "body-incomplete" => 400,
        "push-not-allowed" | "not-a-submitter" => 403,
        "not-found" => 404,
        "method-not-allowed" => 405,
        "body-timeout" => 408,
        "not-deliverable" | "bundle-id-conflict" => 409,
        "length-required" => 411,
        "body-too-large" | "bundle-too-large" => 413,
        "bad-range" => 416,
        "application-rejected" => 422,
        "internal" => 500,
        "too-many-connections" => 503,
        "insufficient-storage" => 507,
        other => panic!(
            "PROBLEM_CODES has {other}, unknown to this test: add its status here and to docs/openapi.yaml"
        ),
    }
}

/// Every code the server can send, with its status.
fn expected_codes() -> BTreeMap<String, u16> {
    let mut want = BTreeMap::new();
    for c in bundle_fault_codes().into_iter().chain(receipt_codes()) {
        want.insert(c, 422);
    }
    // PROBLEM_CODES says otherwise for bundle-too-large (413, before the body).
    for c in PROBLEM_CODES {
        want.insert((*c).to_owned(), status_of_server_code(c));
    }
    // The inbox's codes (push): bundle-id-conflict and internal.
    for c in codes_of("src/inbox/mod.rs")
        .into_iter()
        .chain(["bundle-id-conflict".to_owned()])
    {
        let status = status_of_server_code(&c);
        want.entry(c).or_insert(status);
    }
    want
}

/// The `| `code` | status | meaning |` rows of the description's code table.
fn code_table() -> Vec<(String, u16, String)> {
    let description = str_at(doc(), "/info/description");
    description
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            assert!(cells.len() >= 4, "odd table row {l:?}");
            let code = cells[1].trim_matches('`').to_owned();
            let status = cells[2]
                .parse()
                .unwrap_or_else(|_| panic!("bad status in {l:?}"));
            (code, status, cells[3].to_owned())
        })
        .collect()
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let version = str_at(doc(), "/openapi");
    assert!(version.starts_with("3.1."), "openapi: {version}");
}

#[test]
fn the_problem_code_enum_is_exactly_what_the_server_sends() {
    let want = expected_codes();
    let listed: Vec<&str> = at(doc(), "/components/schemas/ProblemCode/enum")
        .as_array()
        .expect("enum")
        .iter()
        .map(|v| v.as_str().expect("string code"))
        .collect();
    let enum_set: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(enum_set.len(), listed.len(), "duplicate codes in the enum");
    let want_set: BTreeSet<&str> = want.keys().map(String::as_str).collect();
    let missing: Vec<_> = want_set.difference(&enum_set).collect();
    let extra: Vec<_> = enum_set.difference(&want_set).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ProblemCode enum: missing {missing:?}, never sent {extra:?}"
    );
    let code_ref = str_at(doc(), "/components/schemas/Problem/properties/code/$ref");
    assert_eq!(code_ref, "#/components/schemas/ProblemCode");
}

#[test]
fn the_code_table_lists_every_code_with_its_status() {
    let want = expected_codes();
    let table = code_table();
    let mut seen = BTreeSet::new();
    for (code, status, meaning) in &table {
        assert!(seen.insert(code.as_str()), "{code} twice in the table");
        assert!(!meaning.is_empty(), "{code} has no meaning in the table");
        match want.get(code) {
            Some(s) => assert_eq!(status, s, "status of {code} in the table"),
            None => panic!("the table lists {code}, which the server never sends"),
        }
    }
    let enum_codes = at(doc(), "/components/schemas/ProblemCode/enum")
        .as_array()
        .expect("enum");
    for c in enum_codes {
        let c = c.as_str().expect("string code");
        assert!(seen.contains(c), "{c} is in the enum but not in the table");
    }
    let skew = format!("{} s", sealpost::bundle::MAX_CLOCK_SKEW_SECS);
    for code in ["receipt-in-future", "created-in-future"] {
        let (_, _, meaning) = table
            .iter()
            .find(|(c, _, _)| c == code)
            .unwrap_or_else(|| panic!("the code table has no row for {code}"));
        assert!(meaning.contains(&skew), "{code}: {meaning}");
    }
}

#[test]
fn each_operation_lists_the_statuses_it_can_return() {
    let want: BTreeMap<&str, &[u16]> = BTreeMap::from([
        ("listBundles", &[200, 400, 500, 503][..]),
        (
            "pushBundle",
            &[200, 400, 403, 408, 409, 411, 413, 422, 500, 503, 507][..],
        ),
        ("downloadBundle", &[200, 206, 304, 404, 416, 500, 503][..]),
        ("headBundle", &[200, 206, 304, 404, 416, 500, 503][..]),
        (
            "postReceipt",
            &[200, 400, 404, 408, 409, 413, 422, 500, 503][..],
        ),
        (
            "submitApplication",
            &[201, 400, 403, 408, 413, 422, 500, 503, 507][..],
        ),
    ]);
    let ops = operations();
    let ids: BTreeSet<&str> = ops
        .iter()
        .map(|(_, _, op)| op["operationId"].as_str().expect("operationId"))
        .collect();
    assert_eq!(ids, want.keys().copied().collect(), "operations");
    let mut documented = BTreeSet::new();
    for (path, method, op) in ops {
        let id = op["operationId"].as_str().expect("operationId");
        let responses = op["responses"].as_object().expect("responses");
        let got: Vec<u16> = responses
            .keys()
            .map(|k| k.parse().expect("numeric status"))
            .collect();
        assert_eq!(got, want[id], "statuses of {method} {path}");
        documented.extend(got);
        let busy = resolve(&op["responses"]["503"]);
        assert!(
            busy.pointer("/headers/Retry-After").is_some(),
            "{method} {path}: 503 without Retry-After"
        );
    }
    // Every status of the code table is one some operation documents, but 405,
    // which is the answer to the methods that no operation is.
    for (code, status, _) in code_table() {
        if status != 405 {
            assert!(
                documented.contains(&status),
                "{code}: no operation lists {status}"
            );
        }
    }
}

#[test]
fn method_not_allowed_carries_allow() {
    let text = serde_json::to_string(doc()).expect("json");
    assert!(
        !text.contains("No `Allow`") && !text.contains("no `Allow` header"),
        "the document still says no Allow header is sent"
    );
    let allow = at(
        doc(),
        "/components/responses/MethodNotAllowed/headers/Allow",
    );
    let allow = resolve(allow);
    let values: BTreeSet<&str> = at(allow, "/schema/enum")
        .as_array()
        .expect("Allow values")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    let paths = at(doc(), "/paths").as_object().expect("paths");
    let mut used = BTreeSet::new();
    for (path, item) in paths {
        // The server's Allow lists the methods the path serves, GET and HEAD first.
        let served: Vec<String> = HTTP_METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        let expect = served.join(", ");
        let description = item["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} has no description naming its Allow"));
        assert!(
            description.contains(&format!("`Allow: {expect}`")),
            "{path}: description should name `Allow: {expect}`: {description}"
        );
        assert!(
            values.contains(expect.as_str()),
            "Allow enum lacks {expect}"
        );
        used.insert(expect);
    }
    assert_eq!(values.len(), used.len(), "Allow enum has unused values");
}

/// Whether `s` is exactly `YYYY-MM-DDTHH:MM:SSZ` in shape.
fn is_utc_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Whether schema `s` (following `$ref` and `allOf`) holds a UTC timestamp:
/// its pattern is one, or an example is one.
fn holds_timestamp(s: &Value, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let s = resolve(s);
    let pattern = s["pattern"]
        .as_str()
        .is_some_and(|p| p.ends_with("Z$") && p.contains('T') && p.contains(':'));
    let example = s["example"].as_str().is_some_and(is_utc_timestamp)
        || s["examples"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e.as_str().is_some_and(is_utc_timestamp)));
    pattern
        || example
        || s["allOf"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| holds_timestamp(x, depth + 1)))
}

/// Checks schema `s` found at `at` (named `name`) and the schemas inside it.
fn walk_schema(s: &Value, at: &str, name: &str, found: &mut Vec<String>, bad: &mut Vec<String>) {
    let Some(obj) = s.as_object() else { return };
    if holds_timestamp(s, 0) || name.ends_with("_at") {
        found.push(name.to_owned());
        // A bare reference has the format of its target; anything else must
        // say it itself (an allOf wrapper included: not every tool merges it).
        let format = if obj.len() == 1 && obj.contains_key("$ref") {
            resolve(s).get("format")
        } else {
            obj.get("format")
        };
        if format.and_then(Value::as_str) != Some("date-time") {
            bad.push(at.to_owned());
        }
    }
    if obj.contains_key("$ref") && obj.len() == 1 {
        return; // the target is checked where it is defined
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk_schema(v, &format!("{at}/properties/{k}"), k, found, bad);
        }
    }
    for k in [
        "items",
        "additionalProperties",
        "not",
        "contentSchema",
        "if",
        "then",
        "else",
    ] {
        if let Some(v) = obj.get(k) {
            walk_schema(v, &format!("{at}/{k}"), "", found, bad);
        }
    }
    for k in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(a) = obj.get(k).and_then(Value::as_array) {
            for (i, v) in a.iter().enumerate() {
                walk_schema(v, &format!("{at}/{k}/{i}"), "", found, bad);
            }
        }
    }
}

/// Finds every `schema` member outside examples (parameters, headers, media types).
fn walk_doc(v: &Value, at: &str, found: &mut Vec<String>, bad: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = format!("{at}/{k}");
                match k.as_str() {
                    "example" | "examples" => {}
                    "schema" => walk_schema(x, &here, "", found, bad),
                    _ => walk_doc(x, &here, found, bad),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk_doc(x, &format!("{at}/{i}"), found, bad);
            }
        }
        _ => {}
    }
}

#[test]
fn every_timestamp_is_a_date_time() {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let schemas = at(doc(), "/components/schemas")
        .as_object()
        .expect("schemas");
    for (name, s) in schemas {
        walk_schema(
            s,
            &format!("/components/schemas/{name}"),
            name,
            &mut found,
            &mut bad,
        );
    }
    // Parameters, headers and media types, in paths and components alike.
    walk_doc(doc(), "", &mut found, &mut bad);
    for must in ["Timestamp", "queued_at", "received_at"] {
        assert!(
            found.iter().any(|f| f == must),
            "{must} not recognised as a timestamp (found {found:?})"
        );
    }
    assert!(
        bad.is_empty(),
        "timestamps without format: date-time: {bad:?}"
    );
}

/// The single media type of `content` is `media`, with a raw binary schema.
fn assert_binary(content: &Value, media: &str, what: &str) {
    let map = content
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no content"));
    let types: Vec<&String> = map.keys().collect();
    assert_eq!(types, [media], "{what}: media types");
    let schema = resolve(&map[media]["schema"]);
    assert_eq!(schema["type"], "string", "{what}: {schema}");
    assert_eq!(schema["contentMediaType"], media, "{what}: {schema}");
    assert_eq!(schema["format"], "binary", "{what}: {schema}");
    for k in [
        "contentEncoding",
        "properties",
        "items",
        "allOf",
        "anyOf",
        "oneOf",
    ] {
        assert!(schema.get(k).is_none(), "{what}: {k} in {schema}");
    }
}

#[test]
fn bundle_bodies_are_binary() {
    let push = operation("pushBundle");
    assert_eq!(push["requestBody"]["required"], true);
    assert_binary(
        &resolve(&push["requestBody"])["content"],
        BUNDLE_TYPE,
        "push request body",
    );
    let download = operation("downloadBundle");
    for status in ["200", "206"] {
        assert_binary(
            &resolve(&download["responses"][status])["content"],
            BUNDLE_TYPE,
            &format!("download {status}"),
        );
    }
    let submit = operation("submitApplication");
    assert_binary(
        &resolve(&submit["requestBody"])["content"],
        "application/zip",
        "application request body",
    );
    let head = operation("headBundle");
    for (status, r) in head["responses"].as_object().expect("responses") {
        assert!(
            resolve(r).get("content").is_none(),
            "HEAD {status} has a body"
        );
    }
}

#[test]
fn the_query_parameters_are_described_as_the_server_reads_them() {
    let list = operation("listBundles");
    let param = |name: &str| -> &Value {
        list["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(resolve)
            .find(|p| p["name"] == name && p["in"] == "query")
            .unwrap_or_else(|| panic!("no query parameter {name}"))
    };
    let after = &param("after")["schema"];
    assert_eq!(after["type"], "string");
    assert_eq!(after["maxLength"], 20);
    assert_eq!(after["pattern"], "^[0-9]+$");

    let limits = Limits::default();
    let wait = param("wait");
    let schema = &wait["schema"];
    assert_eq!(schema["type"], "integer");
    assert_eq!(schema["minimum"], 0);
    for k in ["maximum", "exclusiveMaximum"] {
        assert!(
            schema.get(k).is_none(),
            "wait has {k}: values above {} are clamped, not refused",
            limits.max_wait.as_secs()
        );
    }
    let clamp = format!("above {}", limits.max_wait.as_secs());
    let text = wait["description"].as_str().expect("wait description");
    assert!(text.contains(&clamp), "wait: {text}");

    let limit = &param("limit")["schema"];
    assert_eq!(limit["minimum"], 1);
    assert_eq!(limit["maximum"], 500);

    let description = list["description"].as_str().expect("description");
    assert!(
        description.contains("percent-decoded"),
        "listBundles should say query values are percent-decoded: {description}"
    );
    assert!(
        !description.contains("not percent-decoded") && !description.contains("read as sent"),
        "listBundles still says query values are read as sent: {description}"
    );
}

#[test]
fn the_limits_are_the_servers_defaults() {
    let d = Limits::default();
    let description = str_at(doc(), "/info/description");
    let want = [
        format!("`max_handshakes` ({})", d.max_handshakes),
        format!("`handshake_timeout` ({} s)", d.handshake.as_secs()),
        format!("`header_timeout` ({} s)", d.header_read.as_secs()),
        format!("`max_connections` ({})", d.max_connections),
        format!(
            "`max_connections_per_peer` ({})",
            d.max_connections_per_peer
        ),
        format!("`body_timeout` ({} s)", d.body_grace.as_secs()),
        format!("`min_body_rate` ({} KiB)", d.min_body_rate / 1024),
        format!("`min_free_space` ({} MiB)", d.min_free_space >> 20),
        format!("at most {} s", d.max_wait.as_secs()),
        "Retry-After: 1".to_owned(),
        "SIGHUP".to_owned(),
    ];
    for w in want {
        assert!(description.contains(&w), "the Limits section lacks {w:?}");
    }
    let receipt = format!("{} bytes", group_thousands(d.max_receipt_bytes));
    assert!(description.contains(&receipt), "lacks {receipt:?}");
}

/// `65536` as `65 536`.
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
