//! Object-storage servers for tests: an S3 (moto's server) and Azure Blob Storage
//! (Azurite), each a process of the test's own on a free port, killed on drop.
//!
//! Neither comes from Debian: `scripts/test.sh` installs them under the tools folder
//! (`TAVERN_TEST_TOOLS_DIR`, default `/var/tmp/tavern-tools`): moto into a Python venv from
//! PyPI, Azurite from the npm registry. `TAVERN_TEST_MOTO_SERVER` and
//! `TAVERN_TEST_AZURITE_BLOB` point at other binaries.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{START_TIMEOUT, free_port, wait_for_port};

/// Azurite's well-known development account (the same in every Azurite).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn tools_dir() -> PathBuf {
    std::env::var_os("TAVERN_TEST_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/tavern-tools"))
}

fn tool(var: &str, in_tools: &str, what: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let path = tools_dir().join(in_tools);
    assert!(
        path.exists(),
        "{what} not found at {}: run scripts/test.sh once (it installs it) or set {var}",
        path.display()
    );
    path
}

/// A server process in its own process group (a launcher's children die with it).
#[derive(Debug)]
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(what: &str, build: impl Fn(u16, &std::path::Path) -> Command) -> Server {
        for _ in 0..5 {
            if let Some(server) = Self::try_start_on(free_port(), what, &build) {
                return server;
            }
        }
        panic!("could not start {what} on a free port after 5 attempts");
    }

    fn try_start_on(
        port: u16,
        what: &str,
        build: &impl Fn(u16, &std::path::Path) -> Command,
    ) -> Option<Server> {
        let dir = tempfile::tempdir().expect("temp dir for an object-store server");
        let mut child = build(port, dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        if wait_for_port(port, &mut child, what, None) {
            return Some(Server {
                child,
                port,
                _dir: dir,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The whole group (a launcher's children too). `--` matters: without it
            // `kill` may read the negative group id as an option.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one HTTP/1.1 request with no body and returns the status code and body.
fn http(port: u16, method: &str, target: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the test server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Retries `attempt` until it returns true or the start timeout passes.
fn until(what: &str, mut attempt: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match attempt() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// moto's S3 server (any access key is accepted; signatures are not checked).
#[derive(Debug)]
pub struct TestS3 {
    server: Server,
}

impl TestS3 {
    pub fn start() -> TestS3 {
        TestS3 {
            server: Server::start("moto_server", Self::command),
        }
    }

    /// Starts on a given port; used to bring S3 up where the app already expects it.
    pub fn start_on(port: u16) -> TestS3 {
        let server = Server::try_start_on(port, "moto_server", &Self::command)
            .unwrap_or_else(|| panic!("moto_server could not listen on {port}"));
        TestS3 { server }
    }

    fn command(port: u16, _dir: &std::path::Path) -> Command {
        let binary = tool(
            "TAVERN_TEST_MOTO_SERVER",
            "venv/bin/moto_server",
            "moto_server",
        );
        let mut cmd = Command::new(binary);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        cmd
    }

    /// `http://127.0.0.1:{port}`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Creates a bucket (object stores write into buckets, they do not make them).
    pub fn create_bucket(&self, bucket: &str) {
        until(&format!("create S3 bucket {bucket}"), || {
            match http(self.server.port, "PUT", &format!("/{bucket}"), &[]) {
                (200, _) => Ok(()),
                (status, body) => Err(format!("status {status}: {body}")),
            }
        });
    }

    /// The body of an object, or `None` when it does not exist. Objects are private, so
    /// the request carries an authorization header (moto does not check signatures).
    pub fn get(&self, bucket: &str, key: &str) -> Option<String> {
        let auth = (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=tavern/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00".to_owned(),
        );
        match http(
            self.server.port,
            "GET",
            &format!("/{bucket}/{key}"),
            &[auth],
        ) {
            (200, body) => Some(body),
            _ => None,
        }
    }

    /// Kills the server now (to test outages).
    pub fn kill(&mut self) {
        self.server.kill();
    }
}

/// Azurite's Blob service, in memory, with the well-known development account.
#[derive(Debug)]
pub struct TestAzurite {
    server: Server,
}

impl TestAzurite {
    pub fn start() -> TestAzurite {
        let binary = tool(
            "TAVERN_TEST_AZURITE_BLOB",
            "npm/node_modules/.bin/azurite-blob",
            "azurite-blob",
        );
        let server = Server::start("azurite-blob", |port, dir| {
            let mut cmd = Command::new(&binary);
            cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--silent"])
                .current_dir(dir);
            cmd
        });
        TestAzurite { server }
    }

    /// The account's Blob endpoint, `http://127.0.0.1:{port}/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.server.port)
    }

    /// Creates a container, signed with the development account's shared key.
    pub fn create_container(&self, container: &str) {
        until(&format!("create Azure container {container}"), || {
            let date = chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            let version = "2021-08-06";
            let to_sign = format!(
                "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
            );
            let key = BASE64
                .decode(AZURITE_KEY)
                .expect("the well-known key is base64");
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
            let signature = BASE64.encode(ring::hmac::sign(&key, to_sign.as_bytes()));
            let headers = [
                ("x-ms-date", date),
                ("x-ms-version", version.to_owned()),
                (
                    "Authorization",
                    format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
                ),
            ];
            let target = format!("/{AZURITE_ACCOUNT}/{container}?restype=container");
            match http(self.server.port, "PUT", &target, &headers) {
                (201, _) => Ok(()),
                (status, body) => Err(format!("status {status}: {body}")),
            }
        });
    }

    /// Kills the server now (to test outages).
    pub fn kill(&mut self) {
        self.server.kill();
    }
}
