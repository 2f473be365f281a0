//! The backup passphrase: `KEYHIVE_PASSPHRASE`, else a prompt on the terminal (echo off), else
//! the first line of standard input.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// The environment variable holding the passphrase (for scripts).
pub const ENV: &str = "KEYHIVE_PASSPHRASE";

/// Reads the passphrase; with `confirm`, a prompt asks twice and the answers must match.
pub fn read(confirm: bool) -> Result<Zeroizing<String>> {
    let phrase = match std::env::var(ENV) {
        Ok(value) => Zeroizing::new(value),
        Err(_) if std::io::stdin().is_terminal() => {
            let first = prompt("Backup passphrase: ")?;
            if confirm && *prompt("Again: ")? != *first {
                bail!("the two passphrases differ");
            }
            first
        }
        Err(_) => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the passphrase from standard input")?;
            Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
        }
    };
    if phrase.is_empty() {
        bail!("empty passphrase: set {ENV} or type one at the prompt");
    }
    Ok(phrase)
}

/// Prompts on stderr with the terminal's echo off (restored even when reading fails).
fn prompt(text: &str) -> Result<Zeroizing<String>> {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let echo_off = stty("-echo");
    let mut line = Zeroizing::new(String::new());
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        stty("echo");
        eprintln!();
    }
    read.context("cannot read the passphrase")?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Runs `stty ARG` on the terminal; whether it worked.
fn stty(arg: &str) -> bool {
    std::fs::File::open("/dev/tty")
        .and_then(|tty| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(tty)
                .status()
        })
        .is_ok_and(|s| s.success())
}
