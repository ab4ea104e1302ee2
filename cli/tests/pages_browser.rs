//! The node's HTML pages in a real browser: headless Chromium driven over
//! WebDriver (chromedriver), against a running two-department network.
//!
//! With `CUSTODY_SCREENSHOTS=DIR` the tests save screenshots of the main
//! pages there (`docs/screenshots` in the repository). Without
//! chromedriver on the PATH the browser tests say so loudly and pass
//! (`scripts/test.sh` installs it); the page-content test needs no
//! browser.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{doc_ok, wait_for, wait_until_committing, Testnet, BINARY};
use fantoccini::{Client, ClientBuilder, Locator};

const COMMIT_WAIT: Duration = Duration::from_secs(60);
const IDENTITY: &str = "Zhao Min 110101199003071234";
const OTHER_IDENTITY: &str = "Qian Lei 110101198501010000";
const TITLES: [&str; 3] = [
    "Birth registration of the citizen",
    "Household register transfer",
    "Old residence permit",
];
const RECORD_TYPES: [&str; 3] = [
    "birth-registration",
    "household-register",
    "residence-permit",
];

/// The documents registered about the citizen, one per status.
struct Scenario {
    net: Testnet,
    code: String,
    other_code: String,
    /// Registered and kept (active).
    active: String,
    /// Offered to the second department (in transfer).
    offered: String,
    /// Disposed of after its retention.
    disposed: String,
}

fn subject_key(net: &Testnet) -> PathBuf {
    net.nodes[0].home.join("members/subject.key")
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn register(net: &Testnet, index: usize, extra: &[&str]) -> String {
    let file = net.dir.path().join(format!("record-{index}.txt"));
    std::fs::write(&file, format!("record {index} of the citizen")).expect("write document");
    let key = subject_key(net);
    let mut args = vec![
        "register",
        path_text(&file),
        "--title",
        TITLES[index],
        "--record-type",
        RECORD_TYPES[index],
        "--subject",
        IDENTITY,
        "--subject-key",
        path_text(&key),
    ];
    args.extend_from_slice(extra);
    let value = doc_ok(net, 0, &args);
    value["document"].as_str().expect("document id").to_string()
}

fn receipt(net: &Testnet, identity: &str) -> String {
    let key = subject_key(net);
    let value = doc_ok(
        net,
        0,
        &[
            "receipt",
            "--subject",
            identity,
            "--subject-key",
            path_text(&key),
        ],
    );
    value["receipt_code"]
        .as_str()
        .expect("receipt code")
        .to_string()
}

/// `custody doc ARGS` as department 0's admin.
fn doc_as_admin(net: &Testnet, args: &[&str]) {
    let node = &net.nodes[0];
    let output = Command::new(BINARY)
        .arg("doc")
        .args(args)
        .arg("--json")
        .arg("--node")
        .arg(&node.api_url)
        .arg("--key")
        .arg(net.member_key(&node.department, "admin"))
        .arg("--department-key")
        .arg(node.home.join("members/department.key"))
        .output()
        .expect("run custody doc");
    assert!(
        output.status.success(),
        "custody doc {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        net.logs()
    );
}

/// A document registered by department 0 about nobody (no subject tag),
/// so that the citizen's records stay those of the scenario.
fn register_unrelated(net: &Testnet, name: &str) -> String {
    let file = net.dir.path().join(format!("{name}.txt"));
    std::fs::write(&file, format!("document {name}")).expect("write document");
    let value = doc_ok(
        net,
        0,
        &[
            "register",
            path_text(&file),
            "--title",
            "Registry of marriages 1998",
            "--record-type",
            "marriage-registry",
        ],
    );
    value["document"].as_str().expect("document id").to_string()
}

/// Waits until node `index` shows document `id` held by `custodian` with
/// `status` (`active`, or `in-transfer` for an offer): a department's node
/// may be a block behind the node that committed.
async fn wait_for_custody(net: &Testnet, index: usize, id: &str, custodian: &str, status: &str) {
    let url = format!("{}/v1/documents/{id}", net.nodes[index].api_url);
    wait_for(net, "the document's custody", COMMIT_WAIT, || {
        let url = url.clone();
        async move {
            let document = net.get_json(&url).await?;
            let seen_status = match &document["status"] {
                serde_json::Value::String(name) => name.as_str(),
                serde_json::Value::Object(map) => map.keys().next().map_or("", String::as_str),
                _ => "",
            };
            if document["custodian"] == custodian && seen_status == status {
                Ok(())
            } else {
                Err(document.to_string())
            }
        }
    })
    .await;
}

/// How the pages show department `id`: its name, then its id.
async fn shown_department(net: &Testnet, base: &str, id: &str) -> String {
    let department = net
        .get_json(&format!("{base}/v1/departments/{id}"))
        .await
        .expect("the department");
    let name = department["name"].as_str().expect("a department name");
    format!("{name} ({id})")
}

async fn scenario() -> Scenario {
    let mut net = Testnet::init(2);
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let active = register(&net, 0, &[]);
    let offered = register(&net, 1, &[]);
    let other = net.nodes[1].department.clone();
    doc_ok(&net, 0, &["offer", &offered, "--to", &other]);
    let disposed = register(&net, 2, &["--retention", "10", "--created", "1990-03-01"]);
    doc_as_admin(
        &net,
        &[
            "dispose",
            &disposed,
            "--authority",
            "records schedule 4.2",
            "--reason",
            "retention of 10 years elapsed",
        ],
    );
    let code = receipt(&net, IDENTITY);
    let other_code = receipt(&net, OTHER_IDENTITY);
    Scenario {
        net,
        code,
        other_code,
        active,
        offered,
        disposed,
    }
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

/// The driver, or `None` (after a loud message) when chromedriver is not
/// installed.
fn start_driver() -> Option<Driver> {
    let Some(binary) = chromedriver_path() else {
        eprintln!(
            "\n*** SKIPPED: chromedriver is not on the PATH; install Debian's `chromium` and \
             `chromium-driver` (scripts/test.sh does) to run the browser tests ***\n"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    Some(Driver { child, port })
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    let mut options = serde_json::json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=420,1100",
            "--lang=en-US",
        ],
        "prefs": { "intl.accept_languages": "en-US,en" },
    });
    if Path::new("/usr/bin/chromium").is_file() {
        options["binary"] = serde_json::json!("/usr/bin/chromium");
    }
    capabilities.insert("goog:chromeOptions".to_string(), options);
    let url = format!("http://127.0.0.1:{}", driver.port);
    let mut last_error = String::new();
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            Err(error) => last_error = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start a browser: {last_error}");
}

/// Saves a screenshot as `NAME.png` under `$CUSTODY_SCREENSHOTS`, if set.
async fn screenshot(client: &Client, name: &str) {
    let Some(dir) = std::env::var_os("CUSTODY_SCREENSHOTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut found = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.expect("find") {
        found.push(element.text().await.expect("text").trim().to_string());
    }
    found
}

/// Clicks the element at `css` and waits until the browser has left the
/// page it was on (its root element has gone stale), so that what the
/// test reads next is the new page, not the old one.
async fn click_and_wait(client: &Client, css: &str) {
    let old = client.find(Locator::Css("html")).await.expect("the page");
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no `{css}` on the page: {error}"))
        .click()
        .await
        .expect("click");
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking `{css}` did not load a new page");
}

async fn look_up(client: &Client, code: &str) {
    let input = client
        .find(Locator::Css("#receipt_code"))
        .await
        .expect("the receipt code field");
    input.clear().await.expect("clear");
    input.send_keys(code).await.expect("type the code");
    click_and_wait(client, "#look-up").await;
}

/// `custody audit login` against `base`: the one-time link.
fn login_link(net: &Testnet, base: &str) -> String {
    let output = Command::new(BINARY)
        .args(["audit", "login", "--node", base, "--key"])
        .arg(net.auditor_key_path())
        .arg("--json")
        .output()
        .expect("run custody audit login");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let login: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("audit login prints JSON");
    login["url"].as_str().expect("a login link").to_string()
}

/// The chain of node `index`, exported over its API to `NAME` in the
/// network's directory; with a copy whose last block has one byte changed
/// (`NAME.tampered`) and that block's height.
fn export_chain(net: &Testnet, index: usize, name: &str) -> (PathBuf, PathBuf, u64) {
    let node = &net.nodes[index];
    let export = net.dir.path().join(name);
    let output = Command::new(BINARY)
        .args(["chain", "export", "--node", &node.api_url, "--genesis"])
        .arg(node.home.join("genesis.json"))
        .arg("--key")
        .arg(net.auditor_key_path())
        .arg("--to")
        .arg(&export)
        .output()
        .expect("run custody chain export");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut bytes = std::fs::read(&export).expect("the export");
    let mut reader = custody_ledger::export::ExportReader::new(&bytes[..]).expect("an export");
    let mut last = None;
    while let Some(entry) = reader.next_entry().expect("an entry") {
        last = Some((
            entry.height.0,
            entry.block_offset as usize + entry.block.len() - 1,
        ));
    }
    let (height, at) = last.expect("at least one block");
    bytes[at] ^= 0x01;
    let tampered = net.dir.path().join(format!("{name}.tampered"));
    std::fs::write(&tampered, bytes).expect("write the tampered copy");
    (export, tampered, height)
}

/// A `multipart/form-data` body with `export` as the export file.
fn export_form(export: &[u8]) -> (String, Vec<u8>) {
    let boundary = "custody-test-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"export\"; filename=\"chain.export\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(export);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_browser_show_citizens_their_records_and_auditors_checked_proofs() {
    let Some(driver) = start_driver() else {
        return;
    };
    let scenario = scenario().await;
    let net = &scenario.net;
    let base = net.nodes[0].api_url.clone();
    let holder = net.nodes[0].department.clone();
    let receiver = net.nodes[1].department.clone();
    let client = browser(&driver).await;

    // A citizen enters the receipt code and sees the right departments
    // and statuses.
    client
        .goto(&format!("{base}/citizen?lang=en"))
        .await
        .expect("open the citizen page");
    screenshot(&client, "citizen-form-en").await;
    look_up(&client, &scenario.code).await;
    let count = texts(&client, "#record-count").await;
    assert_eq!(
        count,
        vec!["3".to_string()],
        "{}",
        client.source().await.unwrap_or_default()
    );
    let mut statuses = texts(&client, "td.status").await;
    statuses.sort();
    assert_eq!(statuses, vec!["active", "disposed", "in transfer"]);
    let departments = texts(&client, "td.department").await;
    assert!(
        departments.iter().all(|department| *department == holder),
        "{departments:?}"
    );
    screenshot(&client, "citizen-result-en").await;

    // A wrong code shows nothing.
    look_up(&client, &scenario.other_code).await;
    assert_eq!(texts(&client, "#nothing-found").await.len(), 1);
    assert!(texts(&client, "section.record").await.is_empty());
    look_up(&client, "NOT-A-CODE").await;
    assert_eq!(texts(&client, "#nothing-found").await.len(), 1);

    // The language switch shows Chinese, and is remembered.
    click_and_wait(&client, "#lang-switch").await;
    let html_lang = client
        .find(Locator::Css("html"))
        .await
        .expect("html")
        .attr("lang")
        .await
        .expect("lang attribute");
    assert_eq!(html_lang.as_deref(), Some("zh-CN"));
    let heading = texts(&client, "h1").await;
    assert_eq!(heading, vec!["我的档案在哪里？".to_string()]);
    screenshot(&client, "citizen-form-zh").await;
    look_up(&client, &scenario.code).await;
    let mut statuses = texts(&client, "td.status").await;
    statuses.sort();
    let mut expected = vec!["保管中", "已销毁", "移交中"];
    expected.sort();
    assert_eq!(statuses, expected);
    screenshot(&client, "citizen-result-zh").await;

    // An auditor logs in with a one-time link and opens a document's
    // history: every event's proof is checked.
    let link = login_link(net, &base);
    client.goto(&link).await.expect("open the login link");
    let key = texts(&client, "#auditor-key").await;
    assert_eq!(
        key.len(),
        1,
        "{}",
        client.source().await.unwrap_or_default()
    );
    client
        .goto(&format!(
            "{base}/auditor/documents?id={}&lang=en",
            scenario.offered
        ))
        .await
        .expect("open a history");
    let proofs = texts(&client, "td.proof").await;
    assert!(proofs.len() >= 2, "{proofs:?}");
    assert!(
        proofs.iter().all(|proof| proof == "proof checked ✓"),
        "{proofs:?}"
    );
    assert_eq!(texts(&client, "#all-proofs-checked").await.len(), 1);
    screenshot(&client, "auditor-history-en").await;
    client
        .goto(&format!(
            "{base}/auditor/documents?id={}&lang=zh-CN",
            scenario.disposed
        ))
        .await
        .expect("open a history in Chinese");
    let proofs = texts(&client, "td.proof").await;
    assert!(
        !proofs.is_empty() && proofs.iter().all(|proof| proof == "证明已核验 ✓"),
        "{proofs:?}"
    );
    screenshot(&client, "auditor-history-zh").await;

    // The alerts the auditor may see, or the notice that there are none.
    client
        .goto(&format!("{base}/auditor/alerts?lang=en"))
        .await
        .expect("open the alerts");
    let shown =
        texts(&client, "#no-alerts").await.len() + texts(&client, "table#alerts").await.len();
    assert_eq!(shown, 1, "{}", client.source().await.unwrap_or_default());
    screenshot(&client, "auditor-alerts-en").await;

    // A document moves from the first department to the second: the
    // holdings page shows that completed transfer beside the scenario's
    // pending offer, each department by its name and id.
    let moved = register_unrelated(net, "moved");
    doc_ok(net, 0, &["offer", &moved, "--to", &receiver]);
    wait_for_custody(net, 1, &moved, &holder, "in-transfer").await;
    doc_ok(net, 1, &["accept", &moved]);
    wait_for_custody(net, 0, &moved, &receiver, "active").await;
    client
        .goto(&format!("{base}/auditor/holdings?lang=en"))
        .await
        .expect("open the holdings");
    let from = shown_department(net, &base, &holder).await;
    let to = shown_department(net, &base, &receiver).await;
    let flows = texts(&client, "table#flows td").await;
    assert_eq!(
        flows,
        vec![from, to, "1".to_string(), "1".to_string()],
        "{}",
        client.source().await.unwrap_or_default()
    );
    assert!(texts(&client, "#no-flows").await.is_empty());
    screenshot(&client, "auditor-holdings-en").await;

    // The auditor uploads the network's export and sees it verified; a
    // copy with one byte of its last block changed fails at that height.
    let (export, tampered, last_height) = export_chain(net, 0, "chain.export");
    for (file, expected) in [(&export, "verified"), (&tampered, "failed")] {
        client
            .goto(&format!("{base}/auditor/verify?lang=en"))
            .await
            .expect("open the verify page");
        client
            .find(Locator::Css("#export"))
            .await
            .expect("the export file field")
            .send_keys(path_text(file))
            .await
            .expect("choose the export");
        click_and_wait(&client, "#verify-export").await;
        let result = texts(&client, "#verify-result").await;
        assert_eq!(
            result,
            vec![expected.to_string()],
            "{}",
            client.source().await.unwrap_or_default()
        );
        if expected == "verified" {
            assert_eq!(
                texts(&client, "#verify-height").await,
                vec![last_height.to_string()]
            );
            let against = texts(&client, "#verify-against-node").await;
            assert_eq!(against, vec!["the same block at this height ✓".to_string()]);
            screenshot(&client, "auditor-verify-en").await;
        } else {
            assert_eq!(
                texts(&client, "#failed-height").await,
                vec![last_height.to_string()]
            );
            screenshot(&client, "auditor-verify-failed-en").await;
        }
    }

    // The link works once.
    client.goto(&link).await.expect("open the link again");
    assert_eq!(texts(&client, "#link-invalid").await.len(), 1);
    assert!(!scenario.active.is_empty());
    client.close().await.expect("close the browser");
}

/// The citizen page's answer never holds a title, the citizen's name or
/// identity number, a record type, a document id or a document's content,
/// whatever the status of the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_citizen_page_never_shows_a_title_a_name_or_content() {
    let scenario = scenario().await;
    let net = &scenario.net;
    let response = reqwest::Client::new()
        .post(format!("{}/citizen?lang=en", net.nodes[0].api_url))
        .form(&[("receipt_code", scenario.code.as_str())])
        .send()
        .await
        .expect("citizen page");
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("in transfer"), "{page}");
    let mut secrets: Vec<String> = TITLES.iter().map(|title| title.to_string()).collect();
    secrets.extend(RECORD_TYPES.iter().map(|kind| kind.to_string()));
    secrets.extend(["Zhao Min".to_string(), "110101199003071234".to_string()]);
    secrets.extend((0..3).map(|index| format!("record {index} of the citizen")));
    secrets.extend([
        scenario.active.clone(),
        scenario.offered.clone(),
        scenario.disposed.clone(),
    ]);
    for secret in &secrets {
        assert!(
            !page.contains(secret.as_str()),
            "`{secret}` on the citizen page"
        );
    }
}

/// `/auditor/verify` without a session asks for a login; with one, an
/// upload over `pages.verify_upload_max_bytes` gets a 413 page, a file that
/// is no export says so, and the network's own export verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verify_page_needs_a_session_and_refuses_an_upload_over_its_limit() {
    const LIMIT: u64 = 256 * 1024;
    let mut net = Testnet::init(1);
    let config_path = net.nodes[0].home.join("config.toml");
    let text = std::fs::read_to_string(&config_path).expect("config");
    let mut config: toml::Table = text.parse().expect("config parses");
    let pages = config
        .entry("pages".to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("pages table");
    pages.insert(
        "verify_upload_max_bytes".to_string(),
        toml::Value::Integer(LIMIT as i64),
    );
    std::fs::write(&config_path, config.to_string()).expect("write config");
    net.start_all();
    wait_until_committing(&net, COMMIT_WAIT).await;
    let base = net.nodes[0].api_url.clone();
    let url = format!("{base}/auditor/verify?lang=en");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // No session: the login instructions, for the form and the upload.
    let response = http.get(&url).send().await.expect("verify page");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("login-needed"));
    let (content_type, body) = export_form(b"anything");
    let response = http
        .post(&url)
        .header("content-type", &content_type)
        .body(body)
        .send()
        .await
        .expect("upload without a session");
    assert_eq!(response.status().as_u16(), 401);

    // A session, from the one-time link.
    let link = login_link(&net, &base);
    let response = http.get(&link).send().await.expect("login link");
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_string();
    let post = |body: Vec<u8>| {
        http.post(&url)
            .header("content-type", &content_type)
            .header("cookie", &cookie)
            .body(body)
            .send()
    };

    let (_, too_large) = export_form(&vec![0u8; LIMIT as usize + 1]);
    let response = post(too_large).await.expect("too large an upload");
    assert_eq!(response.status().as_u16(), 413);
    let page = response.text().await.expect("page");
    assert!(page.contains("upload-too-large"), "{page}");
    assert!(page.contains(&LIMIT.to_string()), "{page}");

    let (_, not_export) = export_form(b"%PDF-1.7 a scanned letter");
    let response = post(not_export).await.expect("not an export");
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("not-an-export"), "{page}");

    let (export, tampered, last_height) = export_chain(&net, 0, "chain.export");
    let (_, good) = export_form(&std::fs::read(&export).expect("export"));
    let page = post(good)
        .await
        .expect("upload")
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("<span id=\"verify-result\">verified</span>"),
        "{page}"
    );
    let (_, bad) = export_form(&std::fs::read(&tampered).expect("tampered"));
    let page = post(bad).await.expect("upload").text().await.expect("page");
    assert!(
        page.contains("<span id=\"verify-result\">failed</span>"),
        "{page}"
    );
    assert!(
        page.contains(&format!("<td id=\"failed-height\">{last_height}</td>")),
        "{page}"
    );
}
