//! Command-line grammar (clap). Each subcommand's help text is what `keyhive help X` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use keyhive_core::capability::Access;

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
    /// Groups: a person's devices, or a team.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Folders: documents created in a folder are shared with its members.
    #[command(subcommand)]
    Folder(FolderCommand),
    /// Documents.
    #[command(subcommand)]
    Doc(DocCommand),
    /// List the groups, folders and documents this device can see, with its access level.
    Ls,
    /// Grant AGENT (a contact, `me`, a group or a folder) access to SUBJECT.
    Grant {
        /// Group, folder or document (name or id).
        subject: String,
        /// Contact name or id, `me`, group or folder.
        agent: String,
        /// pull (fetch ciphertext), read, write or admin.
        #[arg(long, value_name = "LEVEL")]
        access: Access,
        /// End the grant after this long (e.g. 12h, 7d): revoked by the first sync after it.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Revoke every grant of AGENT on SUBJECT (and what flowed through it).
    Revoke {
        /// Group, folder or document (name or id).
        subject: String,
        /// Contact name or id, group or folder.
        agent: String,
    },
    /// Show who holds access to SUBJECT, directly or through groups and folders.
    Members {
        /// Group, folder or document (name or id).
        subject: String,
    },
    /// Explain why AGENT holds (or does not hold) access to SUBJECT.
    Why {
        /// Group, folder or document (name or id); first, as in `grant` and `revoke`.
        subject: String,
        /// Contact name or id, `me`, group or folder.
        agent: String,
        /// The level to explain.
        #[arg(long, value_name = "LEVEL", default_value = "read")]
        access: Access,
    },
    /// Encrypt FILE as a new change of DOC.
    Put {
        /// Document (name or id).
        doc: String,
        /// The file to encrypt.
        file: PathBuf,
    },
    /// Decrypt the latest change of DOC this device can read.
    ///
    /// When devices changed DOC concurrently, every version is kept: `get` writes the latest
    /// and names the others on standard error (REP-52).
    Get {
        /// Document (name or id).
        doc: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Decrypt this change instead (an id or a unique prefix of 4 or more hex characters,
        /// as `log` and the conflict note print).
        #[arg(long, value_name = "ID")]
        change: Option<String>,
    },
    /// List the changes of DOC: id, author, validity.
    Log {
        /// Document (name or id).
        doc: String,
    },
    /// Push and pull everything this device may see with its relays.
    ///
    /// The first sync with a relay URL pins the id the relay proves; later syncs fail if it
    /// changes (re-pin with `keyhive relay add URL --id RELAY_ID`).
    Sync {
        /// Relay URL (repeatable); default: the relays added with `relay add`.
        #[arg(long = "relay", value_name = "URL")]
        relays: Vec<String>,
        /// Keep syncing until Ctrl-C: print what arrives as it arrives (with --json one object
        /// per line) and push what other commands on this home write as soon as they finish.
        #[arg(long)]
        watch: bool,
    },
    /// This device, its relays (and whether they answer now), what waits to be pushed, when it
    /// last synced, and what it holds.
    Status,
    /// Write an encrypted backup of this home (identity, documents, contacts, relays) to FILE.
    ///
    /// The passphrase comes from KEYHIVE_PASSPHRASE, or is asked for (twice). Argon2id derives
    /// the key; XChaCha20-Poly1305 seals the archive.
    Backup {
        /// Where to write the backup (mode 0600).
        file: PathBuf,
    },
    /// Restore a backup made by `keyhive backup` into a new home.
    ///
    /// The home becomes the backed-up device: use it instead of the old one, then `keyhive sync`.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Your other devices: link them into your person group, so that a grant to you reaches
    /// each of them, and what you create on one reaches all.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Relays: configure the ones this device uses, or run one.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Run the whole story in one process: three devices, a shared folder, an edit, a
    /// revocation, and proof that the relay holds only ciphertext.
    Demo,
    /// Measure the device API (grant, write, read, revoke, ingest) beside the raw primitives it
    /// is built on, in one process, and print each ratio. Build with --release first.
    Bench {
        /// N = 100 and 1,000 only (no 10,000), fewer repetitions (under a minute on two cores).
        #[arg(long)]
        quick: bool,
        /// Fail when a ratio passes its target by more than 50% (a documented gap: 50% over
        /// what it costs today).
        #[arg(long)]
        gate: bool,
        /// Instead of the table: measure the scaling curves (members N = 10 ... 10,000; a
        /// folder revocation with 1 ... 1,000 documents) and draw them as SVG into DIR (with
        /// the figures in DIR/scaling.json). README's drawings: `--plot docs/perf`.
        #[arg(long, value_name = "DIR")]
        plot: Option<std::path::PathBuf>,
        /// With --plot: the largest N measured.
        #[arg(long, value_name = "N", default_value_t = 10_000, requires = "plot")]
        plot_members: usize,
        /// With --plot: the most documents in the folder.
        #[arg(long, value_name = "N", default_value_t = 1_000, requires = "plot")]
        plot_documents: usize,
    },
    /// Invite whoever gets the printed code to SUBJECT at LEVEL: no contact card needed
    /// (specs/invitations.md). Syncs the invitation to the relay the code names.
    Invite(InviteArgs),
    /// Join with an invite code (on a fresh device, after `keyhive init`): redeems it through
    /// the relay it names and syncs. Reading starts once a member has synced after you joined.
    Join {
        /// The `khi1.` code or `keyhive://invite/` link.
        code: String,
    },
    /// List the invitations this device sees (revoking its own expired ones first).
    Invites {
        /// Revoke this invitation (id or unique id prefix).
        #[arg(long, value_name = "ID")]
        revoke: Option<String>,
    },
}

/// Arguments of `invite`.
#[derive(Debug, Args)]
pub struct InviteArgs {
    /// Group, folder or document (name or id).
    pub subject: String,
    /// pull, read, write or admin (at most what this device holds).
    #[arg(long, value_name = "LEVEL")]
    pub access: Access,
    /// How long the code stays redeemable: e.g. 30m, 12h, 7d, 2w (default: no expiry).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// How many devices may join with the code.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub uses: u32,
    /// The relay the code names (default: the first one added with `relay add`).
    #[arg(long, value_name = "URL")]
    pub relay: Option<String>,
}

/// `keyhive relay ...`
#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Remember a relay URL (ws://HOST:PORT/sync) for `keyhive sync`.
    ///
    /// The relay's id is pinned on the first sync with it (trust on first use); later syncs
    /// fail if the relay proves another id. Pass --id to pin it up front, or to re-pin after
    /// the relay's key really changed.
    Add {
        /// The relay URL; `ws://HOST:PORT` (or with a trailing `/`) means its `/sync` path.
        url: String,
        /// The relay id it must prove (64 hex characters, printed by `keyhive relay serve`);
        /// replaces any id pinned for this URL.
        #[arg(long, value_name = "RELAY_ID")]
        id: Option<String>,
        /// For a wss:// relay whose certificate no public authority signed: trust the PEM
        /// certificate (its self-signed certificate, or your private CA) in FILE, beside the
        /// usual roots. The relay must still prove its id.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
    },
    /// List the relays `keyhive sync` uses, with the id pinned for each.
    List,
    /// Forget a relay URL and the id pinned for it.
    Remove {
        /// The relay URL, as `relay list` prints it (ws://HOST:PORT is read as its /sync path).
        url: String,
    },
    /// Run a relay: stores and forwards ciphertext, serving each device only what it may pull.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7420", value_name = "ADDR")]
        listen: String,
        /// Directory for the relay's identity and its embedded store.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Keep items in this PostgreSQL database instead of the embedded store in --data, e.g.
        /// `postgres://keyhive@db.internal/keyhive`. Several relays (each with its own --data,
        /// holding the same relay.key) may share one database behind a load balancer.
        #[arg(
            long = "store",
            value_name = "postgres://...",
            env = "KEYHIVE_RELAY_STORE"
        )]
        store: Option<String>,
        /// Most connections to the PostgreSQL database this relay opens (plus one for
        /// LISTEN). Only with --store.
        #[arg(long, value_name = "N", default_value_t = 8, requires = "store")]
        store_pool: usize,
        /// Id of another relay allowed to sync everything with this one (repeatable).
        #[arg(long = "peer", value_name = "RELAY_ID")]
        peers: Vec<String>,
        /// Another relay to keep this one in sync with, as RELAY_ID@URL (repeatable), e.g.
        /// `3f2a...c9@wss://relay-b.example/sync`. This relay pushes to and pulls from it only
        /// after the handshake proved that id; the id is the one the other relay prints at
        /// start. It must usually also list this relay with --peer.
        #[arg(long = "sync-with", value_name = "RELAY_ID@URL")]
        upstream: Vec<String>,
        /// Trust the PEM certificate in FILE (a --sync-with relay's self-signed certificate, or
        /// a private CA) for wss:// --sync-with relays, beside the usual roots (repeatable).
        #[arg(long = "sync-ca-cert", value_name = "FILE", requires = "upstream")]
        sync_ca_certs: Vec<PathBuf>,
        /// Serve wss:// (TLS) with this PEM certificate chain, leaf first. Requires --tls-key.
        /// Without it the relay serves plain ws://; the device-key handshake is the same either
        /// way.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Most a key that holds no grant from anyone may store here, as ITEMS,BYTES
        /// (specs/sync.md SYNC-104).
        #[arg(long, value_name = "ITEMS,BYTES", default_value = "1000,4194304")]
        stranger_quota: String,
        // SYNC-111: what a stranger's pushes may cost in signature checks.
        #[command(flatten)]
        stranger_checks: crate::commands::relay::StrangerFlags,
        // SYNC-108: limits per network address.
        #[command(flatten)]
        per_address: Box<crate::commands::relay::AddressFlags>,
    },
}

/// `keyhive group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group; prints its id. Its name travels encrypted to every member.
    Create {
        /// Shared name of the group (readable by its members only).
        name: String,
    },
    /// Rename a group for every member (needs admin on the group).
    Rename {
        /// Group (name or id).
        group: String,
        /// New shared name.
        name: String,
    },
}

/// `keyhive folder ...`
#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Create a folder; prints its id.
    Create {
        /// Shared name of the folder (travels encrypted).
        name: String,
    },
    /// Push every file under DIR into FOLDER (new documents, or new versions).
    Push {
        /// Folder (name or id).
        folder: String,
        /// The directory to share.
        dir: PathBuf,
    },
    /// Write the latest readable version of every document in FOLDER under DIR.
    Pull {
        /// Folder (name or id).
        folder: String,
        /// Where to write the files.
        dir: PathBuf,
    },
    /// List what FOLDER holds: its documents under the names `folder pull` writes them as,
    /// its sub-folders, and what cannot be written and why, with your access to each.
    Ls {
        /// Folder (name or id).
        folder: String,
    },
}

/// `keyhive doc ...`
#[derive(Debug, Subcommand)]
pub enum DocCommand {
    /// Create a document; prints its id.
    Create {
        /// Shared name of the document (travels encrypted).
        name: String,
        /// Create it in this folder: the folder's members get access by their level.
        #[arg(long)]
        folder: Option<String>,
    },
    /// Remove a document from its folder's tree: members' `folder pull` deletes their copy
    /// (unless they changed it). Its history stays (REP-51).
    Rm {
        /// Document (name or id).
        doc: String,
    },
    /// Give a document a new shared name (for a folder's file: its new relative path).
    Rename {
        /// Document (name or id).
        doc: String,
        /// The new name.
        new_name: String,
    },
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
    /// Forget a contact (its grants stay: revoke them with `keyhive revoke`).
    Remove {
        /// The contact's name or device id.
        contact: String,
    },
    /// Give a contact another local name.
    Rename {
        /// The contact's name or device id.
        contact: String,
        /// The new name.
        name: String,
    },
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

/// `keyhive device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Link another of your devices (its `keyhive contact export` line, or a file holding it)
    /// into your person group, created on first use; what this device created reaches it.
    Add {
        /// The other device's `keyhive-card1:...` line, or a path to a file holding it.
        card: String,
        /// The name to remember that device by (default: the name on its card).
        #[arg(long)]
        name: Option<String>,
    },
    /// On a device just linked with `device add`: adopt the person group (after `sync`); what
    /// this device created reaches your other devices.
    Join {
        /// The group id `device add` printed (default: the one group another device linked
        /// this one into).
        group: Option<String>,
    },
    /// Unlink one of your devices from your person group.
    Remove {
        /// The device's name or id.
        device: String,
    },
    /// List the devices of your person group.
    List,
}
