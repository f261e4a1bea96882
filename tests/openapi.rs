//! `docs/openapi.yaml` agrees with the server: it is a valid OpenAPI 3.1
//! document (checked by the stock `openapi-spec-validator`), its problem-code
//! enum is exactly the set of codes the server can send, every timestamp is a
//! `date-time`, bundle bodies are binary, each operation lists the statuses it
//! can return, the paths and methods are the server's routes table, the case
//! schemas have exactly the members of the server's types, and the query
//! parameters and limits are described as the server reads them.
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
use sealpost::event::{Details, EventError};

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

/// The follow-up event codes (`EventError::code()`): all sent with 422.
fn event_codes() -> BTreeSet<String> {
    let codes = codes_of("src/event/mod.rs");
    let listed: BTreeSet<String> = EventError::CODES.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(
        codes, listed,
        "EventError::code() and EventError::CODES disagree"
    );
    codes
}

/// The status of each code the server sends besides bundle and receipt codes (422).
fn status_of_server_code(code: &str) -> u16 {
    match code {
        "bad-query" | "body-incomplete" => 400,
        "push-not-allowed" | "not-a-submitter" | "not-a-court" => 403,
        "not-found" => 404,
        "method-not-allowed" => 405,
        "body-timeout" => 408,
        "not-deliverable" | "bundle-id-conflict" | "event-id-conflict" => 409,
        "length-required" => 411,
        "body-too-large" | "bundle-too-large" => 413,
        "bad-range" => 416,
        "application-rejected"
        | "event-court-mismatch"
        | "event-committee-mismatch"
        | "event-case-mismatch" => 422,
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
    for c in bundle_fault_codes()
        .into_iter()
        .chain(receipt_codes())
        .chain(event_codes())
    {
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
        ("getCase", &[200, 404, 500, 503][..]),
        (
            "postEvent",
            &[200, 201, 400, 403, 404, 408, 409, 413, 422, 500, 503][..],
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
    for must in [
        "Timestamp",
        "queued_at",
        "received_at",
        "issued_at",
        "recorded_at",
        "accepted_at",
        "delivered_at",
        "next_at",
        "deadline",
    ] {
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

    // The event body limit: in the Limits section, the code table, and postEvent.
    let event = format!("{} bytes", group_thousands(max_event_bytes()));
    let mib = format!("({} MiB)", max_event_bytes() >> 20);
    assert!(
        description.contains(&event) && description.contains(&mib),
        "the description lacks {event:?} {mib:?}"
    );
    let post = operation("postEvent");
    let body = str_at(resolve(&post["requestBody"]), "/description");
    assert!(body.contains(&event), "postEvent's body: {body}");
    let too_large = str_at(resolve(&post["responses"]["413"]), "/description");
    assert!(too_large.contains(&event), "postEvent's 413: {too_large}");
    let order = post["description"].as_str().expect("postEvent description");
    assert!(order.contains(&event), "postEvent's order: {order}");
}

/// `MAX_EVENT_BYTES` of `src/api/cases.rs` (not exported), read from the
/// source: a literal or `A << B`.
fn max_event_bytes() -> usize {
    let src = std::fs::read_to_string(root().join("src/api/cases.rs")).expect("read source");
    let decl = "pub const MAX_EVENT_BYTES: u64 = ";
    let start = src
        .find(decl)
        .expect("src/api/cases.rs has MAX_EVENT_BYTES")
        + decl.len();
    let expr: String = src[start..]
        .split(';')
        .next()
        .expect("expression")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect();
    let num = |s: &str| -> usize {
        s.parse()
            .unwrap_or_else(|_| panic!("MAX_EVENT_BYTES = {expr}: update this test"))
    };
    match expr.split_once("<<") {
        Some((a, b)) => num(a) << num(b),
        None => num(&expr),
    }
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

/// `/v1/cases/{case}` as `/v1/cases/{}`: paths compared without parameter names.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The paths of `ROUTES` in `src/api/routes.rs` and the methods each serves,
/// read from the source (the table is private).
fn routes_table() -> BTreeMap<String, Vec<String>> {
    let src = std::fs::read_to_string(root().join("src/api/routes.rs")).expect("read source");
    let start = src.find("const ROUTES").expect("routes.rs has ROUTES");
    let end = start + src[start..].find("\n];").expect("end of ROUTES");
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut rest = &src[start..end];
    loop {
        let path_at = rest.find("\"/");
        let method_at = rest.find("Method::");
        match (path_at, method_at) {
            (Some(p), m) if m.is_none_or(|m| p < m) => {
                let lit = &rest[p + 1..];
                let close = lit.find('"').expect("closing quote");
                let path = shape(&lit[..close]);
                table.entry(path.clone()).or_default();
                current = Some(path);
                rest = &lit[close + 1..];
            }
            (_, Some(m)) => {
                let name: String = rest[m + 8..]
                    .chars()
                    .take_while(char::is_ascii_alphabetic)
                    .collect();
                let path = current.clone().expect("a method before any path");
                table
                    .get_mut(&path)
                    .expect("path")
                    .push(name.to_lowercase());
                rest = &rest[m + 8 + name.len()..];
            }
            _ => break,
        }
    }
    assert!(table.len() >= 6, "too few routes found: {table:?}");
    table
}

#[test]
fn the_paths_and_methods_are_the_routes_table() {
    let routes = routes_table();
    let paths = at(doc(), "/paths").as_object().expect("paths");
    let mut documented = BTreeMap::new();
    for (path, item) in paths {
        let methods: Vec<String> = HTTP_METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| (*m).to_owned())
            .collect();
        documented.insert(shape(path), methods);
    }
    assert_eq!(documented, routes, "docs/openapi.yaml paths vs ROUTES");
}

#[test]
fn the_case_path_parameter_is_a_percent_encoded_case_number() {
    for (path, method) in [
        ("/v1/cases/{case}", "get"),
        ("/v1/cases/{case}/events", "post"),
    ] {
        let item = at(doc(), &format!("/paths/{}", path.replace('/', "~1")));
        let params = item["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"));
        assert_eq!(params.len(), 1, "{path}: parameters");
        let p = resolve(&params[0]);
        assert_eq!(p["name"], "case", "{path}");
        assert_eq!(p["in"], "path", "{path}");
        assert_eq!(p["required"], true, "{path}");
        let text = p["description"].as_str().expect("description");
        for w in [
            "percent-encoded",
            "UTF-8",
            "404 not-found",
            "1–100 characters",
        ] {
            assert!(
                text.contains(w),
                "{path}: CasePath should say {w:?}: {text}"
            );
        }
        let schema = resolve(&p["schema"]);
        assert_eq!(schema["minLength"], 1);
        assert_eq!(schema["maxLength"], 100);
        assert!(item.get(method).is_some(), "{method} {path}");
    }
    let post = operation("postEvent");
    assert_eq!(post["requestBody"]["required"], true);
    let content = resolve(&post["requestBody"])["content"]
        .as_object()
        .expect("postEvent content");
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["application/json"],
        "postEvent body media types"
    );
    assert_eq!(
        content["application/json"]["schema"]["$ref"],
        "#/components/schemas/Submission"
    );
    for (id, status, schema) in [
        ("postEvent", "200", "EventRecorded"),
        ("postEvent", "201", "EventRecorded"),
        ("getCase", "200", "CaseView"),
    ] {
        let r = resolve(&operation(id)["responses"][status]);
        assert_eq!(
            r["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{id} {status}"
        );
    }
}

/// A `pub struct`'s or an enum variant's serialised members: `(name, optional)`.
type Members = BTreeMap<String, bool>;

/// The fields of the body `lines` (one indentation level below the header),
/// skipping `#[serde(skip)]` ones; optional: an `Option` or `#[serde(default)]`.
fn fields_of<'a>(lines: impl Iterator<Item = &'a str>, indent: usize) -> Members {
    let mut out = Members::new();
    let mut attrs = String::new();
    for line in lines {
        let t = line.trim();
        if t.starts_with("///") || t.is_empty() {
            continue;
        }
        if t.starts_with("#[") {
            attrs.push_str(t);
            continue;
        }
        let lead = line.len() - line.trim_start().len();
        if lead == indent {
            if let Some((name, ty)) = t.trim_start_matches("pub ").split_once(':') {
                if !attrs.contains("serde(skip)") {
                    let optional = ty.trim().starts_with("Option<") || attrs.contains("default");
                    out.insert(name.trim().to_owned(), optional);
                }
            }
        }
        attrs.clear();
    }
    out
}

/// The body lines of the item whose header is `header` in `file`, up to its
/// closing brace at column 0.
fn item_body(file: &str, header: &str) -> Vec<String> {
    let src = std::fs::read_to_string(root().join(file)).expect("read source");
    let start = src
        .find(header)
        .unwrap_or_else(|| panic!("{file} has no {header}"));
    src[start..]
        .lines()
        .skip(1)
        .take_while(|l| *l != "}")
        .map(str::to_owned)
        .collect()
}

fn struct_members(file: &str, name: &str) -> Members {
    let body = item_body(file, &format!("pub struct {name} {{"));
    let m = fields_of(body.iter().map(String::as_str), 4);
    assert!(!m.is_empty(), "no fields found in {file} {name}");
    m
}

/// `MaterialsRequired` as `materials-required` (serde's kebab-case).
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A `#[serde(tag = ..., rename_all = "kebab-case")]` enum's variants (kebab
/// names) and their members.
fn variant_members(file: &str, name: &str) -> BTreeMap<String, Members> {
    let body = item_body(file, &format!("pub enum {name} {{"));
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < body.len() {
        let line = &body[i];
        let t = line.trim();
        let lead = line.len() - line.trim_start().len();
        i += 1;
        if lead != 4 || t.starts_with("///") || t.starts_with("#[") {
            continue;
        }
        let variant: String = t.chars().take_while(char::is_ascii_alphanumeric).collect();
        let mut fields = Vec::new();
        if t.ends_with('{') {
            while i < body.len() && body[i].trim() != "}," {
                fields.push(body[i].as_str());
                i += 1;
            }
            i += 1;
        }
        out.insert(kebab(&variant), fields_of(fields.into_iter(), 8));
    }
    assert!(out.len() >= 5, "too few variants found in {file} {name}");
    out
}

/// A schema's members: `(name, optional)`, with `additionalProperties: false`.
fn schema_members(name: &str) -> Members {
    let s = at(doc(), &format!("/components/schemas/{name}"));
    assert_eq!(
        s["additionalProperties"], false,
        "{name} should not allow other members"
    );
    let required: BTreeSet<&str> = s["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let props = s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} has no properties"));
    for r in &required {
        assert!(props.contains_key(*r), "{name} requires unknown {r}");
    }
    props
        .keys()
        .map(|k| (k.clone(), !required.contains(k.as_str())))
        .collect()
}

/// `oneOf` of `union` by `tag`: each tag value and its schema's name; the
/// discriminator maps the same.
fn tagged_union(union: &str, tag: &str) -> BTreeMap<String, String> {
    let u = at(doc(), &format!("/components/schemas/{union}"));
    assert_eq!(u["discriminator"]["propertyName"], tag, "{union}");
    let mapping = u["discriminator"]["mapping"]
        .as_object()
        .unwrap_or_else(|| panic!("{union} has no discriminator mapping"));
    let mut out = BTreeMap::new();
    for r in u["oneOf"].as_array().expect("oneOf") {
        let target = r["$ref"].as_str().expect("oneOf of references");
        let name = target
            .strip_prefix("#/components/schemas/")
            .expect("a schema")
            .to_owned();
        let value = resolve(r)["properties"][tag]["const"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {tag} is not a const"))
            .to_owned();
        assert_eq!(mapping.get(&value), Some(&Value::from(target)), "{union}");
        assert!(out.insert(value, name).is_none(), "{union}: {tag} twice");
    }
    assert_eq!(mapping.len(), out.len(), "{union}: mapping vs oneOf");
    out
}

#[test]
fn the_case_schemas_have_exactly_the_members_of_the_servers_types() {
    for (file, ty, schema) in [
        ("src/event/mod.rs", "Event", "Event"),
        ("src/event/mod.rs", "SignedEvent", "SignedEvent"),
        ("src/event/mod.rs", "Submission", "Submission"),
        ("src/event/mod.rs", "Attachment", "Attachment"),
        ("src/event/mod.rs", "AttachmentData", "AttachmentData"),
        ("src/event/mod.rs", "Contact", "Contact"),
        ("src/followup/casework.rs", "Recorded", "EventRecorded"),
        ("src/cases.rs", "CaseView", "CaseView"),
        ("src/cases.rs", "ApplicantView", "ApplicantView"),
        ("src/cases.rs", "BundleView", "BundleView"),
        ("src/cases.rs", "EventView", "EventView"),
    ] {
        assert_eq!(
            schema_members(schema),
            struct_members(file, ty),
            "schema {schema} vs {file} {ty} (member: optional)"
        );
    }

    // Details: one schema per kind, with that kind's fields (all required).
    let kinds = tagged_union("EventDetails", "kind");
    let want: BTreeSet<&str> = Details::KINDS.into_iter().collect();
    assert_eq!(
        kinds.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want,
        "EventDetails kinds"
    );
    let variants = variant_members("src/event/mod.rs", "Details");
    assert_eq!(
        variants.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want
    );
    for (kind, schema) in &kinds {
        let mut got = schema_members(schema);
        assert_eq!(got.remove("kind"), Some(false), "{schema}: kind required");
        assert_eq!(got, variants[kind], "{schema} vs Details::{kind}");
    }
    let details = at(doc(), "/components/schemas/Event/properties/details/$ref");
    assert_eq!(details, "#/components/schemas/EventDetails");
    let event = at(
        doc(),
        "/components/schemas/Submission/properties/event/contentSchema/$ref",
    );
    assert_eq!(event, "#/components/schemas/Event");

    // Timeline entries: `at`, `step` and the step's fields (always present).
    let steps = tagged_union("TimelineEntry", "step");
    let variants = variant_members("src/cases.rs", "Step");
    assert_eq!(
        steps.keys().collect::<BTreeSet<_>>(),
        variants.keys().collect::<BTreeSet<_>>(),
        "TimelineEntry steps vs Step"
    );
    for (step, schema) in &steps {
        let mut got = schema_members(schema);
        assert_eq!(got.remove("step"), Some(false), "{schema}: step required");
        assert_eq!(got.remove("at"), Some(false), "{schema}: at required");
        let want: Members = variants[step].keys().map(|k| (k.clone(), false)).collect();
        assert_eq!(got, want, "{schema} vs Step::{step}");
    }
    let entry = struct_members("src/cases.rs", "Entry");
    assert_eq!(
        entry.keys().collect::<Vec<_>>(),
        ["at", "step"],
        "Entry changed: update TimelineEntry"
    );
}
