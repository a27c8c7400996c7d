//! The OpenAPI document against the handlers: the real router in-process (embedded SQLite,
//! a local port, reqwest), every documented operation called with requests generated from
//! its schemas (valid ones and ones broken on purpose), every answer checked against what
//! the document lists for that operation; and the router's routes against the document's.

use std::collections::{BTreeMap, BTreeSet};

use confab_server::engine::now_ms;
use confab_server::rest::{OPENAPI, ROUTES};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{json, Map, Value};

mod support;

use support::Server;
const ME: &str = "alice";
/// Generated requests per operation, valid and invalid each.
const CASES: u32 = 48;

fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

/// Follows `$ref`s inside the document.
fn resolve<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let path = r.trim_start_matches("#/");
        v = path
            .split('/')
            .fold(root, |node, key| node.get(key).unwrap_or(&Value::Null));
    }
    v
}

// ---------- a JSON Schema subset: what openapi.json uses ----------

/// Whether `value` fits `schema` (types, enum, const, pattern, lengths, ranges, items,
/// properties, required, additionalProperties, oneOf, anyOf, not, minItems, maxItems).
fn fits(root: &Value, schema: &Value, value: &Value) -> bool {
    let s = resolve(root, schema);
    // A `$ref` with siblings (a description, a default) is the referenced schema.
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(value) {
            return false;
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            return false;
        }
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
            || s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
        {
            return false;
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let re = regex_lite(p);
            if !re.is_match(text) {
                return false;
            }
        }
        if s.get("format").and_then(Value::as_str) == Some("date-time") && !is_date_time(text) {
            return false;
        }
    }
    if let Some(n) = value.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
            || s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
        {
            return false;
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
            || s.get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
        {
            return false;
        }
        if let Some(item) = s.get("items") {
            if !items.iter().all(|i| fits(root, item, i)) {
                return false;
            }
        }
    }
    if let Some(obj) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) if !fits(root, ps, v) => return false,
                Some(_) => {}
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => return false,
                None => {}
            }
        }
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            if req
                .iter()
                .filter_map(Value::as_str)
                .any(|k| !obj.contains_key(k))
            {
                return false;
            }
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        if one.iter().filter(|b| fits(root, b, value)).count() != 1 {
            // OpenAPI documents use oneOf loosely for "one of these shapes"; payloads
            // that fit a specific and a generic branch (an object) still fit.
            if !one.iter().any(|b| fits(root, b, value)) {
                return false;
            }
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(|b| fits(root, b, value)) {
            return false;
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        if !all.iter().all(|b| fits(root, b, value)) {
            return false;
        }
    }
    if let Some(not) = s.get("not") {
        if fits(root, not, value) {
            return false;
        }
    }
    true
}

fn regex_lite(pattern: &str) -> regex::Regex {
    regex::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

/// RFC 3339 date-time (what `format: date-time` means).
fn is_date_time(text: &str) -> bool {
    regex_lite(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$").is_match(text)
}

/// Values that fit `schema` (then filtered through `fits`, which also applies `not` and
/// object-level `anyOf`).
fn valid(root: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let s = resolve(root, schema).clone();
    let strategy = raw_valid(root, &s, depth);
    let (root, check) = (root.clone(), s);
    strategy
        .prop_filter("fits its schema", move |v| fits(&root, &check, v))
        .boxed()
}

fn raw_valid(root: &Value, s: &Value, depth: u32) -> BoxedStrategy<Value> {
    // `allOf: [X]` with siblings (a `not`): generate from X, the filter does the rest.
    if let Some(first) = s
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return valid(root, first, depth);
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return proptest::sample::select(e.clone()).boxed();
    }
    if let Some(c) = s.get("const") {
        return Just(c.clone()).boxed();
    }
    if let Some(branches) = s
        .get("oneOf")
        .or_else(|| {
            s.get("anyOf")
                .filter(|_| s.get("type").is_none() && s.get("properties").is_none())
        })
        .and_then(Value::as_array)
    {
        let options: Vec<BoxedStrategy<Value>> =
            branches.iter().map(|b| valid(root, b, depth)).collect();
        if s.get("properties").is_none() {
            return proptest::strategy::Union::new(options).boxed();
        }
    }
    match s.get("type").and_then(Value::as_str) {
        Some("string") => {
            if s.get("format").and_then(Value::as_str) == Some("date-time") {
                return (
                    2024..2031_u32,
                    1..13_u32,
                    1..29_u32,
                    0..24_u32,
                    0..60_u32,
                    0..1000_u32,
                )
                    .prop_map(|(y, mo, d, h, mi, ms)| {
                        Value::String(format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:00.{ms:03}Z"))
                    })
                    .boxed();
            }
            let max = s.get("maxLength").and_then(Value::as_u64).unwrap_or(40) as usize;
            let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                let body = p.trim_start_matches('^').trim_end_matches('$');
                return proptest::string::string_regex(body)
                    .expect("pattern")
                    .prop_map(Value::String)
                    .boxed();
            }
            let hi = max.min(min + 40);
            proptest::collection::vec(
                prop_oneof![4 => proptest::char::range('a', 'z'), 1 => any::<char>()],
                min..=hi,
            )
            .prop_map(|c| Value::String(c.into_iter().collect()))
            .boxed()
        }
        Some("integer") => {
            let lo = s
                .get("minimum")
                .and_then(Value::as_i64)
                .unwrap_or(-1_000_000);
            let hi = s
                .get("maximum")
                .and_then(Value::as_i64)
                .unwrap_or(1_000_000);
            (lo..=hi).prop_map(Value::from).boxed()
        }
        Some("number") => (-1e6..1e6_f64).prop_map(Value::from).boxed(),
        Some("boolean") => any::<bool>().prop_map(Value::Bool).boxed(),
        Some("null") => Just(Value::Null).boxed(),
        Some("array") => {
            let max = s
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(4)
                .min(4) as usize;
            let item = s.get("items").cloned().unwrap_or(json!({}));
            if depth > 3 {
                return Just(json!([])).boxed();
            }
            proptest::collection::vec(valid(root, &item, depth + 1), 0..=max)
                .prop_map(Value::Array)
                .boxed()
        }
        Some("object") | None if s.get("properties").is_some() => {
            let props = s
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let required: BTreeSet<String> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
            for (k, ps) in props {
                let key = k.clone();
                let value = valid(root, &ps, depth + 1).prop_map(move |v| Some((key.clone(), v)));
                if required.contains(&k) || depth > 3 {
                    if required.contains(&k) {
                        fields.push(value.boxed());
                    }
                } else {
                    fields.push(prop_oneof![1 => Just(None), 1 => value].boxed());
                }
            }
            fields
                .prop_map(|kv| Value::Object(kv.into_iter().flatten().collect::<Map<_, _>>()))
                .boxed()
        }
        Some("object") | None => Just(json!({})).boxed(),
        Some(other) => panic!("schema type {other} is not supported"),
    }
}

/// A value that does NOT fit `schema`: a valid one broken in one place.
fn invalid(root: &Value, schema: &Value) -> BoxedStrategy<Value> {
    let s = resolve(root, schema).clone();
    let (root2, check) = (root.clone(), s.clone());
    (valid(root, &s, 0), any::<prop::sample::Index>(), 0..6_u8)
        .prop_map({
            let root = root.clone();
            move |(v, index, how)| break_value(&root, &s, v, index, how)
        })
        .prop_filter("breaks its schema", move |v| !fits(&root2, &check, v))
        .boxed()
}

fn break_value(root: &Value, s: &Value, v: Value, index: prop::sample::Index, how: u8) -> Value {
    let Value::Object(mut obj) = v else {
        return json!({"not": "this"});
    };
    let props: Vec<(String, Value)> = resolve(root, s)
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    match how {
        // An unknown key.
        0 => {
            obj.insert("surplus_key".into(), json!(1));
        }
        // A required key missing.
        1 => {
            let req: Vec<String> = resolve(root, s)
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if req.is_empty() {
                obj.insert("surplus_key".into(), json!(true));
            } else {
                obj.remove(&req[index.index(req.len())]);
            }
        }
        // A value of the wrong type.
        2 | 3 if !props.is_empty() => {
            let (k, ps) = &props[index.index(props.len())];
            let ps = resolve(root, ps);
            let wrong = match ps.get("type").and_then(Value::as_str) {
                Some("string") | None => json!(12345),
                Some("integer") | Some("number") => json!("12"),
                Some("boolean") => json!("yes"),
                Some("array") => json!({"a": 1}),
                _ => json!([1, 2]),
            };
            obj.insert(k.clone(), wrong);
        }
        // A string over its length limit or off its pattern/enum.
        _ if !props.is_empty() => {
            let (k, ps) = &props[index.index(props.len())];
            let ps = resolve(root, ps);
            let bad = if let Some(max) = ps.get("maxLength").and_then(Value::as_u64) {
                json!("x".repeat(max as usize + 1))
            } else if ps.get("pattern").is_some() {
                json!("has space/and slash")
            } else if ps.get("enum").is_some() {
                json!("no_such_value")
            } else if let Some(max) = ps.get("maximum").and_then(Value::as_i64) {
                json!(max + 1)
            } else {
                json!([[]])
            };
            obj.insert(k.clone(), bad);
        }
        _ => {
            obj.insert("surplus_key".into(), Value::Null);
        }
    }
    Value::Object(obj)
}

// ---------- the server ----------

impl Server {
    /// Opens a resumable upload in "known"; its id.
    async fn open_upload(&self, token: &str) -> String {
        let (status, body, text) = self
            .call(
                &Method::POST,
                "/v1/conversations/known/uploads",
                Some(token),
                Some(&json!({"hash": "ab".repeat(32), "size": 100, "mime": "text/plain"})),
            )
            .await;
        assert_eq!(status, 201, "{text}");
        body.and_then(|b| b["upload"].as_str().map(str::to_owned))
            .expect("an upload id")
    }

    fn token(&self, account: &str, kind: &str) -> String {
        self.mint(account, kind, now_ms() / 1000 + 3600)
    }

    async fn call(
        &self,
        method: &Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Option<Value>, String) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).ok(), text)
    }
}

/// One documented operation.
struct Operation {
    method: Method,
    path: String,
    op: Value,
    path_params: Vec<(String, Value)>,
    query_params: Vec<(String, Value)>,
    body: Option<Value>,
    public: bool,
}

fn operations(root: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let paths = root["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let shared: Vec<Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (m, op) in item.as_object().expect("path item") {
            if !["get", "put", "post", "delete", "patch", "head", "options"].contains(&m.as_str()) {
                continue;
            }
            let method: Method = m.to_uppercase().parse().expect("an HTTP method");
            let mut params = shared.clone();
            params.extend(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            let (mut path_params, mut query_params) = (Vec::new(), Vec::new());
            for p in &params {
                let p = resolve(root, p);
                let name = p["name"].as_str().expect("name").to_owned();
                let schema = p["schema"].clone();
                match p["in"].as_str() {
                    Some("path") => path_params.push((name, schema)),
                    Some("query") => query_params.push((name, schema)),
                    other => panic!("parameter in {other:?}"),
                }
            }
            // Only JSON bodies are generated; raw bodies (attachments) are sent empty.
            let body = op.get("requestBody").and_then(|b| {
                resolve(root, b)["content"]
                    .get("application/json")
                    .map(|c| c["schema"].clone())
            });
            let public = op.get("security") == Some(&json!([]));
            out.push(Operation {
                method,
                path: path.clone(),
                op: op.clone(),
                path_params,
                query_params,
                body,
                public,
            });
        }
    }
    out
}

/// The documented response for `status`, or a failure naming what is wrong.
fn check_answer(
    root: &Value,
    op: &Operation,
    status: u16,
    body: Option<&Value>,
    text: &str,
    what: &str,
) -> Result<(), String> {
    let responses = op.op["responses"].as_object().expect("responses");
    let Some(response) = responses
        .get(&status.to_string())
        .or_else(|| responses.get("default"))
    else {
        return Err(format!(
            "{} {} answered {status} ({what}), not documented ({:?}): {text}",
            op.method,
            op.path,
            responses.keys().collect::<Vec<_>>()
        ));
    };
    let response = resolve(root, response);
    if let Some(schema) = response
        .get("content")
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"))
    {
        let Some(body) = body else {
            return Err(format!(
                "{} {} {status}: not JSON: {text}",
                op.method, op.path
            ));
        };
        if !fits(root, schema, body) {
            return Err(format!(
                "{} {} {status} ({what}): the body does not fit the documented schema: {body}",
                op.method, op.path
            ));
        }
    }
    Ok(())
}

/// Fills `{param}`s.
fn fill(path: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = path.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), &urlencoding(v));
    }
    out
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sample<T: std::fmt::Debug>(runner: &mut TestRunner, s: &BoxedStrategy<T>) -> T {
    s.new_tree(runner).expect("generate").current()
}

/// `PolicyCode` lists exactly the policy's codes (core's `DenyCode::ALL`): a new code is
/// documented where REST clients read it.
#[test]
fn policy_codes_are_the_policys() {
    let root = doc();
    let listed: BTreeSet<String> = root["components"]["schemas"]["PolicyCode"]["enum"]
        .as_array()
        .expect("PolicyCode is an enum")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let policy: BTreeSet<String> = confab_core::policy::DenyCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(listed, policy);
}

#[test]
fn router_routes_are_the_documented_operations() {
    let root = doc();
    let documented: BTreeSet<(String, String)> = operations(&root)
        .into_iter()
        .map(|o| (o.method.as_str().to_owned(), o.path))
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_uppercase(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not routed"
    );
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routed but not documented"
    );
}

#[test]
fn patterns_of_the_document_compile_and_generate() {
    let root = doc();
    let mut patterns = BTreeSet::new();
    collect_patterns(&root, &mut patterns);
    assert!(
        patterns.contains("^[ds]-"),
        "the reserved conversation ids are documented"
    );
    for p in patterns {
        regex_lite(&p);
        let _strategy =
            proptest::string::string_regex(p.trim_start_matches('^').trim_end_matches('$'))
                .unwrap_or_else(|e| panic!("pattern {p}: {e}"));
    }
}

fn collect_patterns(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("pattern", Value::String(p)) => {
                        out.insert(p.clone());
                    }
                    _ => collect_patterns(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_patterns(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let root = doc();
    let server = Server::start().await;
    let me = server.token(ME, "user");
    let service = server.token("svc", "service");
    // Something to find: a group of ME with a message, so generated requests reach past
    // "not found" some of the time.
    let (status, created, text) = server
        .call(
            &Method::POST,
            "/v1/conversations",
            Some(&me),
            Some(&json!({"kind": "group", "id": "known", "members": [{"account": "bob"}]})),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    assert!(created.is_some());
    let (status, _, text) = server
        .call(
            &Method::POST,
            "/v1/conversations/known/messages",
            Some(&me),
            Some(&json!({"id": "m1", "body": "hello"})),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    // A scheduled message of ME named like the conversation, for `/v1/scheduled/{id}`.
    let at = confab_core::model::time::format_rfc3339(now_ms() + 3_600_000);
    let (status, _, text) = server
        .call(
            &Method::POST,
            "/v1/scheduled",
            Some(&me),
            Some(&json!({"id": "known", "conv": "known", "body": "later", "at": at})),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    // An image attachment of "known" (its thumbnail exists too).
    let mut png = Vec::new();
    image::RgbImage::from_pixel(2, 2, image::Rgb([9, 99, 199]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("a PNG");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&png));
    let uploaded = server
        .http
        .put(format!(
            "{}/v1/conversations/known/attachments/{hash}",
            server.base
        ))
        .bearer_auth(&me)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status().as_u16(), 201);
    let mut uploads = std::collections::HashMap::new();
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        uploads.insert(method, server.open_upload(&me).await);
    }
    let known: BTreeMap<&str, &str> = BTreeMap::from([
        ("id", "known"),
        ("message", "m1"),
        ("account", "bob"),
        ("hash", hash.as_str()),
    ]);

    // Boundary values random generation rarely hits: where the document says a body fits,
    // the server takes it, and where it says not, the server refuses it.
    let create = &root["components"]["schemas"]["CreateConversationRequest"];
    for (i, id) in [
        "d-x", "s-x", "direct", "support", "discover", "dx", "sx-1", "direct2",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"kind": "group", "id": id, "title": format!("b{i}")});
        let (status, _, text) = server
            .call(&Method::POST, "/v1/conversations", Some(&me), Some(&body))
            .await;
        assert_eq!(
            fits(&root, create, &body),
            status == 201,
            "id {id}: the document and the server disagree ({status} {text})"
        );
    }
    let post = &root["components"]["schemas"]["PostMessageRequest"];
    for body in [
        json!({}),
        json!({"body": ""}),
        json!({"kind": "text"}),
        json!({"body": "x"}),
        json!({"body": "", "payload": {"a": 1}}),
        json!({"payload": "{\"a\":1}"}),
    ] {
        let (status, _, text) = server
            .call(
                &Method::POST,
                "/v1/conversations/known/messages",
                Some(&me),
                Some(&body),
            )
            .await;
        assert_eq!(
            fits(&root, post, &body),
            status == 201,
            "{body}: the document and the server disagree ({status} {text})"
        );
    }

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for op in operations(&root) {
        let params: Vec<(String, BoxedStrategy<Value>)> = op
            .path_params
            .iter()
            .map(|(n, s)| (n.clone(), valid(&root, s, 0)))
            .collect();
        let queries: Vec<(String, BoxedStrategy<Value>)> = op
            .query_params
            .iter()
            .map(|(n, s)| (n.clone(), valid(&root, s, 0)))
            .collect();
        // A resumable upload of "known" of its own for each operation that names one (a
        // DELETE ends its own), opened before any operation ran (one deletes "known").
        let upload = uploads.get(&op.method).cloned();
        let good = op.body.as_ref().map(|b| valid(&root, b, 0));
        let bad = op.body.as_ref().map(|b| invalid(&root, b));
        for case in 0..CASES * 2 {
            let broken = case % 2 == 1;
            let mut values = BTreeMap::new();
            for (name, strategy) in &params {
                // Half the time the thing that exists.
                let thing = match name.as_str() {
                    "upload" => upload.as_deref(),
                    other => known.get(other).copied(),
                };
                let v = match thing {
                    Some(k) if case % 4 < 2 => k.to_owned(),
                    _ => sample(&mut runner, strategy)
                        .as_str()
                        .map_or_else(String::new, str::to_owned),
                };
                values.insert(name.clone(), v);
            }
            let mut path = fill(&op.path, &values);
            let query: Vec<String> = queries
                .iter()
                .filter(|_| case % 3 != 0)
                .map(|(n, s)| match sample(&mut runner, s) {
                    // A string goes into the query as itself, not as its JSON text.
                    Value::String(text) => format!("{n}={}", urlencoding(&text)),
                    other => format!("{n}={other}"),
                })
                .collect();
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let body = match (broken, &good, &bad) {
                (false, Some(g), _) => Some(sample(&mut runner, g)),
                (true, _, Some(b)) => Some(sample(&mut runner, b)),
                _ => None,
            };
            let token = match case % 16 {
                _ if op.public => None,
                5 => None,
                9 => Some(service.as_str()),
                _ => Some(me.as_str()),
            };
            let (status, json, text) = server.call(&op.method, &path, token, body.as_ref()).await;
            statuses
                .entry(format!("{} {}", op.method, op.path))
                .or_default()
                .insert(status);
            let what = format!(
                "{} body {}",
                if broken && body.is_some() {
                    "invalid"
                } else {
                    "valid"
                },
                body.as_ref().map_or("none".into(), Value::to_string)
            );
            if let Err(e) = check_answer(&root, &op, status, json.as_ref(), &text, &what) {
                failures.push(e);
                continue;
            }
            if status >= 500 {
                failures.push(format!("{} {path} ({what}): {status} {text}", op.method));
            }
            if broken && body.is_some() && token.is_some() && status < 300 {
                failures.push(format!(
                    "{} {path} accepted a body that breaks its schema ({what}): {status} {text}",
                    op.method
                ));
            }
            // A refusal of something the schema describes (lengths, formats, required
            // keys, types, ranges, and the ids, which the schema describes whole) means the
            // document promised more than the server keeps.
            let code = json.as_ref().and_then(|j| j["code"].as_str()).unwrap_or("");
            let field = json
                .as_ref()
                .and_then(|j| j["field"].as_str())
                .unwrap_or("");
            let expressible = [
                "too_long",
                "empty",
                "invalid_format",
                "unknown_key",
                "wrong_type",
            ]
            .contains(&code)
                || (code == "invalid_value" && field == "id");
            // A message payload's rules depend on its `kind` (prose in the document: a
            // proposal's payload is a `ProposalPayload`, a string must be JSON text), beyond
            // what this schema subset checks.
            let has_payload = body
                .as_ref()
                .is_some_and(|b| !b.get("payload").unwrap_or(&Value::Null).is_null());
            if !broken && token.is_some() && status == 422 && expressible && !has_payload {
                failures.push(format!(
                    "{} {path} refused a body that fits its schema ({what}): {text}",
                    op.method
                ));
            }
            if !broken && token.is_some() && status == 400 {
                failures.push(format!(
                    "{} {path} refused a body that fits its schema as malformed ({what}): {text}",
                    op.method
                ));
            }
        }
    }
    failures.sort();
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} disagreements between openapi.json and the server:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The generated requests reached the handlers' logic, not only the doors: every
    // operation answered something besides "malformed", "who are you" and "not found".
    for op in operations(&root) {
        let key = format!("{} {}", op.method, op.path);
        let seen = &statuses[&key];
        assert!(
            seen.iter().any(|s| ![400, 401, 404].contains(s)),
            "{key} never got past the doors: {seen:?}"
        );
    }
}
