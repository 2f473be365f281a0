//! A real `keyhive relay serve` child process on loopback, for CLI tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running relay process and what it printed about itself (`--json`).
pub struct RelayProcess {
    child: Child,
    /// The relay's URL (ws:// or wss://, with the real port).
    pub url: String,
    /// The relay's id.
    pub id: String,
}

impl RelayProcess {
    /// Starts `keyhive --json relay serve --listen 127.0.0.1:0 --data DATA EXTRA...` and waits
    /// for it to print its address.
    pub fn start(data: &Path, extra: &[&std::ffi::OsStr]) -> RelayProcess {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("keyhive"))
            .args([
                "--json",
                "relay",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "relay exited early"
            );
            text.push_str(&line);
            if line.starts_with('}') {
                break;
            }
        }
        let info: Value = serde_json::from_str(&text).unwrap();
        RelayProcess {
            child,
            url: info["url"].as_str().unwrap().to_owned(),
            id: info["id"].as_str().unwrap().to_owned(),
        }
    }

    /// SIGTERM, then wait: the relay must shut down cleanly with status 0.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "relay exit status {status:?}");
    }
}
