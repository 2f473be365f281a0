//! A real PostgreSQL server for the tests (issue 14, deliverable 5).
//!
//! With `KEYHIVE_TEST_POSTGRES` set to a superuser URL (`.ci/run` starts a private server and
//! sets it), each test gets a fresh database on that server. Otherwise the harness starts a
//! throwaway server itself with the Debian `initdb`/`pg_ctl` (as the `postgres` user when run as
//! root), on a free loopback port with its socket in a temporary directory. Without either, a
//! test prints a loud SKIPPED line and passes, except under `CI`, where it fails.
// Each test file uses a different part of this shared module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use keyhive_sync::store::{PostgresConfig, PostgresStore};

/// The environment variable naming a server to use instead of starting one.
pub const ENV: &str = "KEYHIVE_TEST_POSTGRES";

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A server the test may create databases on; stops it on drop when it started it.
pub struct Postgres {
    admin_url: String,
    server: Option<Server>,
}

/// A server this process started.
pub struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// The shared server from `KEYHIVE_TEST_POSTGRES`, or a private one; `None` (after a loud
    /// message) when neither is possible outside CI.
    pub fn get() -> Option<Postgres> {
        match std::env::var(ENV) {
            Ok(url) if !url.is_empty() => Some(Postgres {
                admin_url: url,
                server: None,
            }),
            _ => Self::private(),
        }
    }

    /// Always a server of this process (for tests that stop and restart it).
    pub fn private() -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            let message = format!(
                "SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl) and {ENV} unset; \
                 install Debian's postgresql package or run .ci/run"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{message}");
            }
            eprintln!("\n*** {message} ***\n");
            return None;
        };
        let server = Server::start(bin);
        Some(Postgres {
            admin_url: server.url("postgres"),
            server: Some(server),
        })
    }

    /// A new, empty database on this server; returns its URL.
    pub fn database(&self) -> String {
        let name = format!(
            "keyhive_test_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        psql(&self.admin_url, &format!("CREATE DATABASE {name}"));
        with_database(&self.admin_url, &name)
    }

    /// A store on a new, empty database.
    pub fn store(&self) -> PostgresStore {
        PostgresStore::open(PostgresConfig::new(self.database())).expect("open the store")
    }

    /// The server this process started, if it did.
    pub fn server(&mut self) -> Option<&mut Server> {
        self.server.as_mut()
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..authority_end])
}

pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory holding `initdb` and `pg_ctl`: `KEYHIVE_PG_BIN`, Debian's newest
/// `/usr/lib/postgresql/N/bin`, or the `PATH`.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KEYHIVE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Server {
    fn start(bin: PathBuf) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            // initdb refuses to run as root: the server runs as `postgres`, in its own dir.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success(), "chown the server directory to postgres");
        }
        let server = Server {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data();
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server at once (connections are cut, as in a crash of the database host).
    pub fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let args = ["-D", path(&data), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        };
    }
}
