//! Shared helpers for CLI tests: the `keyhive` binary run against a `--home` directory, and a
//! real `keyhive relay serve` child process on loopback.

// Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

/// `keyhive --home HOME`, ignoring any `KEYHIVE_HOME` of the environment.
pub fn keyhive(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("keyhive").unwrap();
    cmd.arg("--home").arg(home).env_remove("KEYHIVE_HOME");
    cmd
}

/// Runs `keyhive --home HOME --json ARGS...`, which must succeed, and parses its output.
pub fn json(home: &Path, args: &[&str]) -> Value {
    let out = keyhive(home).arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a command that must fail and returns its error, which must be one line.
pub fn fails(home: &Path, args: &[&str]) -> String {
    let out = keyhive(home).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    err
}

/// Initialises a home named `name` under `dir` with `relay` as its relay.
pub fn device(dir: &Path, name: &str, relay: &RelayProcess) -> PathBuf {
    let home = dir.join(name);
    json(&home, &["init", "--name", name]);
    json(&home, &["relay", "add", &relay.url]);
    home
}

/// The contact card `home` exports.
pub fn card(home: &Path) -> String {
    json(home, &["contact", "export"])["card"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A running `keyhive --json relay serve` child and what it printed about itself; killed on
/// drop if not stopped.
pub struct RelayProcess {
    child: Child,
    /// The relay's URL (ws:// or wss://, with the real port).
    pub url: String,
    /// The relay's id.
    pub id: String,
    stderr: Option<ChildStderr>,
}

impl RelayProcess {
    /// Starts `keyhive --json relay serve --listen 127.0.0.1:0 --data DATA EXTRA...` and waits
    /// for it to print its address.
    pub fn start(data: &Path, extra: &[&OsStr]) -> RelayProcess {
        Self::spawn("127.0.0.1:0", data, extra, false)
    }

    /// Like [`RelayProcess::start`], listening on `listen`.
    pub fn start_on(listen: &str, data: &Path, extra: &[&OsStr]) -> RelayProcess {
        Self::spawn(listen, data, extra, false)
    }

    /// Like [`RelayProcess::start_on`], keeping the relay's log for
    /// [`RelayProcess::wait_for_log`].
    pub fn start_logged(listen: &str, data: &Path, extra: &[&OsStr]) -> RelayProcess {
        Self::spawn(listen, data, extra, true)
    }

    fn spawn(listen: &str, data: &Path, extra: &[&OsStr], logged: bool) -> RelayProcess {
        let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("keyhive"))
            .args(["--json", "relay", "serve", "--listen", listen, "--data"])
            .arg(data)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(if logged {
                Stdio::piped()
            } else {
                Stdio::null()
            })
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
            stderr: child.stderr.take(),
            child,
            url: info["url"].as_str().unwrap().to_owned(),
            id: info["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Waits (at most 60 s) for a log line containing `needle` (needs
    /// [`RelayProcess::start_logged`]).
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        let stderr = self.stderr.take().expect("started with start_logged");
        let (tx, rx) = mpsc::channel();
        let needle = needle.to_owned();
        // Keeps draining after the match, so the relay never writes to a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if line.contains(&needle) {
                    let _ = tx.send(line);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the log line never appeared")
    }

    /// SIGTERM, then wait: the relay must shut down cleanly with status 0.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            StdCommand::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "relay exit status {status:?}");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one command printed, run with the name index's trace on (`KEYHIVE_DEBUG=index`).
pub struct IndexTrace {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl IndexTrace {
    /// The index events the run reported, without durations ("written (12 ms)" -> "written").
    pub fn events(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("name index: "))
            .map(|e| e.split(" (").next().unwrap_or(e))
            .collect()
    }

    /// Standard error without the index trace.
    pub fn messages(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("name index: "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Standard output as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }
}

/// Runs `keyhive --home HOME ARGS` with the name index's trace on.
pub fn traced(home: &Path, args: &[&str]) -> IndexTrace {
    let out = keyhive(home)
        .env("KEYHIVE_DEBUG", "index")
        .args(args)
        .output()
        .unwrap();
    IndexTrace {
        ok: out.status.success(),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
