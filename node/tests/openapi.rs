//! The OpenAPI description (`GET /v1/openapi.json`): it describes every
//! route the router serves, every operation's error answers, and the node
//! serves exactly the generated document.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_node::home::Home;
use custody_node::testnet::{generate, TestnetOptions};
use serde_json::Value;

/// The one route registered outside `routes!`: a wildcard utoipa cannot
/// write, described by hand (`api::document_routes`).
const HAND_DESCRIBED_ROUTES: [&str; 1] = [".route(\"/v1/documents/{*id}\""];

fn document() -> Value {
    let text = custody_node::api::openapi()
        .to_json()
        .expect("the description serializes");
    serde_json::from_str(&text).expect("the description parses as JSON")
}

/// The HTML pages' module: its routes are pages, not API, and are kept
/// out of the description on purpose, each by name
/// (`custody_node::pages::PAGE_PATHS`).
const PAGES_MODULE: &str = "pages";

fn rust_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the source folder is readable")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    files
}

fn source_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = rust_files_in(&dir);
    files.extend(rust_files_in(&dir.join(PAGES_MODULE)));
    files
}

/// Whether `line` of `file` registers one of the HTML pages, by name.
fn registers_a_page(file: &Path, line: &str) -> bool {
    let in_pages = file
        .parent()
        .and_then(|dir| dir.file_name())
        .is_some_and(|name| name == PAGES_MODULE);
    in_pages
        && custody_node::pages::PAGE_PATHS
            .iter()
            .any(|path| line.contains(&format!(".route(\"{path}\"")))
}

/// `(method, path)` of every `#[utoipa::path(method, path = "...")]` in
/// the node's sources.
fn annotated_operations() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for file in source_files() {
        let text = std::fs::read_to_string(&file).expect("source is readable");
        for (at, _) in text.match_indices("#[utoipa::path(") {
            let rest = &text[at + "#[utoipa::path(".len()..];
            let method = rest.split(',').next().unwrap_or("").trim().to_string();
            let path = rest
                .split_once("path = \"")
                .and_then(|(_, after)| after.split_once('"'))
                .map(|(path, _)| path.to_string())
                .unwrap_or_default();
            found.insert((method, path));
        }
    }
    found
}

fn described_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths is an object") {
        for (method, _) in item.as_object().expect("a path item is an object") {
            found.insert((method.clone(), path.clone()));
        }
    }
    found
}

fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths is an object") {
        for (method, operation) in item.as_object().expect("a path item is an object") {
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

#[test]
fn the_description_parses_as_openapi_3() {
    let document = document();
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "version {version}");
    assert!(document["paths"]["/v1/openapi.json"]["get"].is_object());
    assert!(document["components"]["schemas"]["ErrorResponse"].is_object());
}

#[test]
fn every_annotated_route_is_described() {
    let described = described_operations(&document());
    let annotated = annotated_operations();
    assert!(annotated.len() > 20, "found only {annotated:?}");
    let missing: Vec<_> = annotated.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "annotated but not described: {missing:?}"
    );
    let unannotated: Vec<_> = described.difference(&annotated).collect();
    assert!(
        unannotated.is_empty(),
        "described without an annotation: {unannotated:?}"
    );
}

#[test]
fn no_route_is_registered_outside_the_described_groups() {
    let mut strays = Vec::new();
    for file in source_files() {
        let text = std::fs::read_to_string(&file).expect("source is readable");
        for (number, line) in text.lines().enumerate() {
            let registers = [".route(", ".nest(", ".route_service(", ".nest_service("]
                .iter()
                .any(|call| line.contains(call));
            let allowed = HAND_DESCRIBED_ROUTES
                .iter()
                .any(|route| line.contains(route))
                || registers_a_page(&file, line);
            if registers && !allowed {
                strays.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        strays.is_empty(),
        "routes registered without `routes!` (so without a description): {strays:#?}"
    );
}

#[test]
fn html_pages_stay_out_of_the_description() {
    let document = document();
    let paths = document["paths"].as_object().expect("paths is an object");
    for page in custody_node::pages::PAGE_PATHS {
        assert!(
            !page.starts_with("/v1/"),
            "page {page} is under the API's /v1/"
        );
        assert!(
            !paths.contains_key(page),
            "page {page} is in the description"
        );
    }
}

#[test]
fn every_operation_documents_its_error_answers() {
    let document = document();
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(
            responses.contains_key("500"),
            "{method} {path} does not describe 500"
        );
        let takes_input = operation["parameters"]
            .as_array()
            .is_some_and(|parameters| !parameters.is_empty())
            || operation.get("requestBody").is_some();
        if takes_input {
            assert!(
                responses.contains_key("400"),
                "{method} {path} takes input but does not describe 400"
            );
        }
        for (status, answer) in responses {
            let is_error = status.starts_with('4') || status.starts_with('5');
            // A timeout answers with an empty body, and `/readyz` its
            // verdict whether ready or not; every other error answers in
            // the JSON error shape.
            let own_shape = status == "408" || (path == "/readyz" && status == "503");
            if is_error && !own_shape {
                let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorResponse",
                    "{method} {path} {status} is not described as the JSON error"
                );
            }
        }
    }
}

#[test]
fn every_signed_route_describes_the_caller_check() {
    let (_, signed) = custody_node::api::route_groups().signed.split_for_parts();
    let (_, transfers_signed) = custody_node::api::route_groups()
        .transfers_signed
        .split_for_parts();
    let document = document();
    let mut checked = 0;
    for group in [signed, transfers_signed] {
        for (path, item) in &group.paths.paths {
            let item = serde_json::to_value(item).expect("a path item serializes");
            for (method, _) in item.as_object().expect("a path item is an object") {
                let operation = &document["paths"][path][method];
                for status in ["400", "401", "403"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "signed {method} {path} does not describe {status}"
                    );
                }
                assert_eq!(
                    operation["security"][0]["caller_signature"],
                    serde_json::json!([]),
                    "signed {method} {path} does not name the caller signature"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} signed operations");
    let status = &document["paths"]["/v1/status"]["get"];
    assert!(status.get("security").is_none(), "an open route is signed");
}

/// A one-department network's node, running in this process.
struct RunningNode {
    api_url: String,
    trigger: custody_node::shutdown::ShutdownTrigger,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

fn free_base_port() -> u16 {
    for _ in 0..200 {
        let Ok(first) = TcpListener::bind(("127.0.0.1", 0)) else {
            continue;
        };
        let Ok(port) = first.local_addr().map(|address| address.port()) else {
            continue;
        };
        if port < u16::MAX - 2 && TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            drop(first);
            return port;
        }
    }
    panic!("no two free ports on loopback");
}

impl RunningNode {
    fn start() -> RunningNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let manifest = generate(&TestnetOptions {
            departments: 1,
            dir: dir.path().join("net"),
            base_port: free_base_port(),
            fast: true,
            chain_id: "custody-openapi-test".to_string(),
            joining: 0,
            governors: false,
        })
        .expect("testnet generated");
        let node = manifest.nodes.first().expect("one node").clone();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (trigger, shutdown) = custody_node::shutdown::shutdown_channel();
        let home = Home::new(node.home.clone());
        runtime.spawn(async move {
            if let Err(error) = custody_node::node::run(home, shutdown).await {
                eprintln!("node stopped: {error}");
            }
        });
        RunningNode {
            api_url: node.api_url,
            trigger,
            runtime: Some(runtime),
            _dir: dir,
        }
    }

    /// Status and body of a request, retried until the node listens.
    fn request(&self, method: reqwest::Method, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.api_url);
        let runtime = self.runtime.as_ref().expect("the node runs");
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                match client.request(method.clone(), &url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.expect("a body");
                        return (status, body);
                    }
                    Err(error) if tokio::time::Instant::now() > deadline => {
                        panic!("{url} never answered: {error}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.trigger.trigger();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

#[test]
fn the_served_description_is_the_generated_one() {
    let node = RunningNode::start();
    let (status, body) = node.request(reqwest::Method::GET, "/v1/openapi.json");
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).expect("the served description parses");
    assert_eq!(served, document());
}

#[test]
fn axum_refusals_answer_in_the_json_error_shape() {
    let node = RunningNode::start();
    for (method, path, status, code) in [
        (
            reqwest::Method::GET,
            "/v1/evidence?limit=many",
            400,
            "bad_query",
        ),
        (
            reqwest::Method::PUT,
            "/v1/blobs/00?size_bytes=-1",
            400,
            "bad_query",
        ),
        (reqwest::Method::GET, "/v1/nothing-here", 404, "not_found"),
    ] {
        let (answered, body) = node.request(method.clone(), path);
        assert_eq!(answered, status, "{method} {path}: {body}");
        let error: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{method} {path} answered no JSON: {body}"));
        assert_eq!(error["error"]["code"], code, "{method} {path}: {body}");
        assert!(error["error"]["message"].is_string());
    }
}
