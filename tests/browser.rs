//! The status page in a real browser (SPEC §4 "Status page"): the daemon — the real
//! `rooster run` binary, `[web] listen` on 127.0.0.1 — against the simulators, with calendar
//! subjects carrying `<script>`, an `<img onerror>`, a `javascript:` URL and a bidi override,
//! loaded by Debian's headless Chromium.
//!
//! - `--dump-dom`: the DOM Chromium built (after parsing, styling and any script that could
//!   have run) shows every queue and who is on by name; holds no element the page's template
//!   does not write, no script, no event handler, no `javascript:` URL, the hostile subjects
//!   only as text, and no configured mobile number or secret.
//! - `--screenshot` at a desktop (1280×900) and a phone (390×844) window: a complete PNG of
//!   that size (or a device-scale multiple of it), and far more than a blank window's.
//!
//! Chromium only ever loads 127.0.0.1 (or an inline `data:` page): a fresh profile,
//! background networking, sync, component updates and QUIC off, no proxy, every host name
//! unresolvable, and a 60 s limit after which its whole process group is killed. Where
//! `/usr/bin/chromium` is absent (`.ci/run` installs it with apt where it can), each test
//! says so on stderr and returns: the only skip.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rooster::sim::tring::{Action, Fault, FaultKind};
use scraper::{Html, Selector};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Debian's package `chromium`.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The most one Chromium run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);
/// What Chromium is told on every run: headless, no network beyond the page it is given.
const FLAGS: [&str; 12] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--no-proxy-server",
    // No name resolves, and no address but the loopback one the page is on.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--hide-scrollbars",
];
/// Proxy settings a developer's shell may carry; neither the daemon nor Chromium gets them.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// The elements the page's template writes (src/web.rs). Anything else in Chromium's DOM
/// came from somewhere else: calendar text turned into markup.
const TEMPLATE_ELEMENTS: [&str; 28] = [
    "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "main", "section", "h2",
    "strong", "span", "ul", "li", "time", "div", "svg", "text", "g", "rect", "table", "thead",
    "tbody", "tr", "th", "td",
];

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("test selector parses")
}

/// Whether Chromium is here; if not, says why the test does not run.
fn chromium_present(test: &str) -> bool {
    let present = Path::new(CHROMIUM).is_file();
    if !present {
        eprintln!(
            "{test}: skipped: {CHROMIUM} is not installed (Debian's `chromium` package; \
             .ci/run installs it with apt where it can)"
        );
    }
    present
}

// ---------------------------------------------------------------------------------------
// The daemon

/// `rooster run` as a child process, its page's address and everything it logged.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `rooster run` over the harness's simulators and state with the page on
    /// 127.0.0.1 (a free port), and waits for its first cycle (systemd's READY=1).
    async fn start(h: &Harness) -> Daemon {
        let config = h.dir.path().join("rooster.toml");
        let text = config_text(
            h.tring.base_url().as_str(),
            h.graph.base_url().as_str(),
            h.graph.authority().as_str(),
            &h.db,
        ) + "\n[web]\nlisten = \"127.0.0.1:0\"\n";
        std::fs::write(&config, text).expect("config written");
        let notify_path = h.dir.path().join("notify.sock");
        let notify = tokio::net::UnixDatagram::bind(&notify_path).expect("notify socket");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rooster"));
        cmd.arg("--log-format")
            .arg("json")
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("ROOSTER_TEST_TRING_KEY", TRING_KEY)
            .env("ROOSTER_TEST_GRAPH_SECRET", GRAPH_SECRET)
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        let mut child = cmd.spawn().expect("rooster run starts");

        // The log, kept for failure messages; the page's address from its "status page" line.
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["message"] == "status page on /"
                    && let Some(a) = v["addr"].as_str().and_then(|a| a.parse().ok())
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(a);
                }
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let logged = || log.lock().unwrap_or_else(|p| p.into_inner()).clone();

        let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| {
                panic!(
                    "the daemon never said where its page is; it logged:\n{}",
                    logged()
                )
            });
        assert!(addr.ip().is_loopback(), "the page listens on {addr}");
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while !seen.contains("READY=1") {
                let n = notify.recv(&mut buf).await.expect("notify socket reads");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "the daemon's first cycle did not finish within 30 s; it logged:\n{}",
            logged()
        );
        Daemon { child, addr, log }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGTERM, and the exit within SPEC §5's 5 s (10 s allowed here).
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = within("the daemon stopping on SIGTERM", 10, self.child.wait())
            .await
            .expect("the daemon's exit status");
        assert!(
            status.success(),
            "rooster run exited {status}:\n{}",
            self.log()
        );
    }
}

/// The harness with hostile subjects (everyone on now), and TRiNG answering the add of
/// Piet's mobile with an error that names the number: the page must show neither.
async fn hostile_harness() -> Harness {
    let h = Harness::start_with(hostile).await;
    h.tring.inject(Fault {
        queue: Some(q("700")),
        action: Some(Action::Add),
        kind: FaultKind::ErrorIn200(format!("Custom destination {PIET_MOBILE} not found")),
        times: None,
    });
    h
}

// ---------------------------------------------------------------------------------------
// The browser

/// Runs Chromium with [`FLAGS`], a fresh profile and `args`; kills its process group if it
/// takes longer than [`BROWSER_LIMIT`].
async fn chromium(profile: &Path, args: &[String]) -> Output {
    let mut cmd = Command::new(CHROMIUM);
    cmd.args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a hung browser goes with all its helpers.
        .process_group(0)
        .kill_on_drop(true);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    let child = cmd.spawn().expect("chromium starts");
    let group = child.id().expect("a running chromium has a pid");
    match tokio::time::timeout(BROWSER_LIMIT, child.wait_with_output()).await {
        Ok(out) => out.expect("chromium's output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            panic!("chromium {args:?} hung for {BROWSER_LIMIT:?}: killed its process group");
        }
    }
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// PNG, by hand: the signature, then chunks (length, type, data, CRC) from IHDR to IEND.

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The width and height of a complete PNG: signature, IHDR first, every chunk's CRC right,
/// image data present, IEND last.
fn png_size(png: &[u8]) -> Result<(u32, u32), String> {
    if png.get(..8) != Some(&PNG_SIGNATURE[..]) {
        return Err("no PNG signature".into());
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (mut at, mut size, mut idat) = (8, None, 0usize);
    loop {
        let head = png.get(at..at + 8).ok_or("cut short before IEND")?;
        let len = be(&head[..4]) as usize;
        let kind = &head[4..8];
        let body = png
            .get(at + 4..at + 8 + len)
            .ok_or("cut short inside a chunk")?;
        let crc = png.get(at + 8 + len..at + 12 + len).ok_or("no CRC")?;
        if crc32(body) != be(crc) {
            return Err(format!("bad CRC in {}", String::from_utf8_lossy(kind)));
        }
        let data = &body[4..];
        match kind {
            b"IHDR" if at == 8 && len == 13 => size = Some((be(&data[..4]), be(&data[4..8]))),
            _ if at == 8 => return Err("IHDR is not the first chunk".into()),
            b"IDAT" => idat += len,
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    if idat == 0 {
        return Err("no image data".into());
    }
    size.ok_or_else(|| "no IHDR".into())
}

/// A screenshot of `url` in a `w`×`h` window: its PNG bytes.
async fn screenshot(profile: &Path, dir: &Path, url: &str, (w, h): (u32, u32)) -> Vec<u8> {
    let path = dir.join(format!("shot-{w}x{h}-{}.png", url.len()));
    let out = chromium(
        profile,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={w},{h}"),
            url.to_owned(),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "chromium --screenshot exited {}:\n{}",
        out.status,
        tail(&out.stderr)
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}\n{}",
            path.display(),
            tail(&out.stderr)
        )
    })
}

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_every_queue_and_nothing_from_calendar_text_as_markup() {
    if !chromium_present("chromium_renders_every_queue_and_nothing_from_calendar_text_as_markup") {
        return;
    }
    let h = hostile_harness().await;
    let daemon = Daemon::start(&h).await;
    let profile = tempfile::tempdir().expect("a fresh chromium profile");
    let out = chromium(profile.path(), &["--dump-dom".to_owned(), daemon.url()]).await;
    assert!(
        out.status.success(),
        "chromium --dump-dom exited {}:\n{}",
        out.status,
        tail(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).expect("the DOM is UTF-8");
    daemon.stop().await;
    h.shutdown().await;

    // Chromium loaded the page itself, not an error page.
    let doc = Html::parse_document(&dom);
    let title: String = doc
        .select(&sel("head > title"))
        .flat_map(|t| t.text())
        .collect();
    assert_eq!(title, "rooster: who is on", "{dom}");

    // No number, no secret, no bidi override anywhere in what the browser holds.
    for needle in [
        JAN_MOBILE,
        PIET_MOBILE,
        TRING_KEY,
        GRAPH_SECRET,
        TOKEN_PREFIX,
    ] {
        assert!(!dom.contains(needle), "the DOM contains {needle:?}");
    }
    assert!(!dom.contains('\u{202E}'), "a bidi override reached the DOM");

    // Nothing but the template's own elements; no script, no handler, no javascript: URL.
    for el in doc
        .root_element()
        .descendants()
        .filter_map(|n| n.value().as_element())
    {
        assert!(
            TEMPLATE_ELEMENTS.contains(&el.name()),
            "<{}> in the DOM: the template writes no such element\n{dom}",
            el.name()
        );
        for (name, value) in el.attrs() {
            assert!(
                !name.to_ascii_lowercase().starts_with("on"),
                "event handler {name}={value:?} on <{}>",
                el.name()
            );
            assert!(
                !value.to_ascii_lowercase().contains("javascript:"),
                "javascript: URL in {name} of <{}>",
                el.name()
            );
        }
    }
    assert_eq!(doc.select(&sel("script")).count(), 0, "a script element");
    assert_eq!(doc.select(&sel("img")).count(), 0, "an img element");
    assert_eq!(doc.select(&sel("a[href]")).count(), 0, "a link");

    // The hostile subjects are there, as the text of the history's reasons, and the
    // reasons hold text only.
    let reasons: Vec<_> = doc.select(&sel("section.history td.reason")).collect();
    assert!(!reasons.is_empty(), "the history lists the writes\n{dom}");
    for r in &reasons {
        assert_eq!(
            r.children().filter(|c| c.value().is_element()).count(),
            0,
            "markup inside a reason: {}",
            r.html()
        );
    }
    let reason_text: String = reasons.iter().flat_map(|r| r.text()).collect();
    for subject in [SCRIPT, IMG, JS_URL, "piket Piet Jansen ?gnp.exe"] {
        assert!(
            reason_text.contains(subject),
            "subject {subject:?} shown as text: {reason_text}"
        );
    }

    // Every queue, named, with who is on now by name, and its timeline drawn.
    for (number, name, on) in [
        ("600", "Support", vec!["Anouk Bakker"]),
        ("610", "Sales", vec!["Jan de Vries", "Piet Jansen"]),
        ("700", "Piket", vec!["Piet Jansen (mobile)"]),
    ] {
        let section = doc
            .select(&sel(&format!("section#queue-{number}")))
            .next()
            .unwrap_or_else(|| panic!("queue {number} is not in the DOM\n{dom}"));
        let heading: String = section.select(&sel("h2")).flat_map(|e| e.text()).collect();
        assert_eq!(heading, format!("Queue {number} {name}"));
        let now_line: String = section
            .select(&sel("p"))
            .next()
            .map(|p| p.text().collect())
            .unwrap_or_default();
        assert_eq!(
            now_line,
            format!("Now: {}", on.join(", ")),
            "queue {number}"
        );
        assert_eq!(section.select(&sel("svg g")).count(), 7, "queue {number}");
        assert!(
            section.select(&sel("svg rect")).count() >= 7,
            "queue {number}"
        );
    }
    // The failed add of Piet's mobile is there by name, TRiNG's answer with the number masked.
    let history: String = doc
        .select(&sel("section.history tbody"))
        .flat_map(|t| t.text())
        .collect();
    assert!(history.contains("Piet Jansen (mobile)"), "{history}");
    assert!(history.contains("[mobile]"), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_screenshots_the_page_at_desktop_and_phone_width() {
    if !chromium_present("chromium_screenshots_the_page_at_desktop_and_phone_width") {
        return;
    }
    let h = hostile_harness().await;
    let daemon = Daemon::start(&h).await;
    let profile = tempfile::tempdir().expect("a fresh chromium profile");
    let shots = tempfile::tempdir().expect("a directory for the screenshots");
    // An empty page, for what a window of nothing compresses to.
    let blank = "data:text/html,<!DOCTYPE html><title>blank</title>";

    for (what, window) in [("desktop", (1280, 900)), ("phone", (390, 844))] {
        let png = screenshot(profile.path(), shots.path(), &daemon.url(), window).await;
        let (w, h) = png_size(&png).unwrap_or_else(|e| panic!("{what}: not a PNG: {e}"));
        let scale = w / window.0;
        assert!(
            (1..=3).contains(&scale) && (w, h) == (window.0 * scale, window.1 * scale),
            "{what}: {w}×{h} is not the window {}×{} or a multiple",
            window.0,
            window.1
        );
        let empty = screenshot(profile.path(), shots.path(), blank, window).await;
        assert_eq!(png_size(&empty), Ok((w, h)), "{what}: the blank page");
        assert!(
            png.len() > 4 * empty.len(),
            "{what}: the page's screenshot ({} bytes) is hardly more than a blank window's \
             ({} bytes)",
            png.len(),
            empty.len()
        );
    }
    daemon.stop().await;
    h.shutdown().await;
}

#[test]
fn png_check_reads_the_size_and_refuses_a_damaged_file() {
    // A 1×1 grey PNG, made by hand: signature, IHDR, one IDAT, IEND.
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut png = PNG_SIGNATURE.to_vec();
    png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x01, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    assert_eq!(png_size(&png), Ok((1, 1)));
    // The check value of CRC-32 (ISO-HDLC).
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);

    let mut flipped = png.clone();
    flipped[20] ^= 1;
    assert!(png_size(&flipped).unwrap_err().contains("CRC"));
    assert!(png_size(&png[..png.len() - 12]).is_err(), "no IEND");
    assert!(png_size(b"GIF89a").is_err());
}
