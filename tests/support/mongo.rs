//! A SecantusDB server (MongoDB wire protocol, in memory) for one test, on a free port.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Installs SecantusDB (`pip install --pre secantusdb`) once, if `secantusd-py` is not there yet.
fn ensure_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let present = Command::new("secantusd-py").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !present {
            let status = Command::new("pip").args(["install", "--pre", "--quiet", "secantusdb"]).status().expect("pip is needed to install SecantusDB for the MongoDB tests");
            assert!(status.success(), "`pip install --pre secantusdb` failed");
        }
    });
}

pub struct Secantus {
    child: Child,
    pub port: u16,
}

impl Secantus {
    pub fn start() -> Self {
        ensure_installed();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("secantusd-py")
            .args(["--port", &port.to_string(), "--storage-path", ":memory:"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("secantusd-py is needed for the MongoDB tests: pip install --pre secantusdb");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "secantusd-py did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Secantus { child, port }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
