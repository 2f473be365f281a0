//! Command-line grammar (clap). Each subcommand's help text is what `keyhive help X` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// keyhive: share local-first documents and folders with end-to-end encryption, without trusting
/// a server.
#[derive(Debug, Parser)]
#[command(name = "keyhive", version, propagate_version = true)]
pub struct Cli {
    /// State directory of this device (several identities can live on one machine).
    #[arg(long, global = true, env = "KEYHIVE_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this device's identity (refuses to overwrite an existing one).
    Init {
        /// A display name others will see on your contact card.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show this device's id and name.
    Whoami,
    /// Exchange contact cards with other devices.
    #[command(subcommand)]
    Contact(ContactCommand),
}

/// `keyhive contact ...`
#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Print this device's contact card as one line to send to others.
    Export,
    /// Add someone's contact card (the line itself, or a file containing it).
    Add(ContactAdd),
    /// List known contacts.
    List,
}

/// Arguments of `contact add`.
#[derive(Debug, Args)]
pub struct ContactAdd {
    /// The `keyhive-card1:...` line, or a path to a file holding it.
    pub card: String,
    /// The name to remember this contact by (default: the name on the card).
    #[arg(long)]
    pub name: Option<String>,
}
