//! The `keyhive` command: device identity, contacts, sharing, and relay operation.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod access_scope;
mod cli;
mod commands;
mod conflict_names;
mod contacts;
mod debug_trace;
mod device_store;
mod folder_state;
mod home;
mod lookup;
mod name_index;
mod names;
mod out_file;
mod output;
mod passphrase;
mod person;
mod relays;
mod session;
mod sync_state;
#[cfg(unix)]
mod watch;

use std::process::ExitCode;

use clap::Parser;

use cli::{
    Cli, Command, ContactCommand, DeviceCommand, DocCommand, FolderCommand, GroupCommand,
    RelayCommand,
};
use home::Home;
use output::Output;

fn main() -> ExitCode {
    quiet_contained_storage_panics();
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: what failed and, through the context chain, why and what to do. A
            // closed stderr must not turn the failure into a panic (SYNC-99). Under `--json`
            // the error is a JSON object on stdout too, so a script reads one format (unless
            // the command already printed its JSON result, which then describes the failure).
            use std::io::Write;
            if json && !output::emitted() {
                let causes: Vec<String> = error.chain().map(ToString::to_string).collect();
                let value = serde_json::json!({ "error": format!("{error:#}"), "causes": causes });
                let _ = writeln!(std::io::stdout(), "{value}");
            }
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// STORE-8: the store contains redb's panics on a damaged file and reports them as one-line
/// errors, so the panic hook stays silent for panics raised inside redb; every other panic is
/// reported as usual.
///
/// A closed stdout (`keyhive ls | head`) ends the command quietly with status 141, as SIGPIPE
/// ends a C tool (std's `println!` panics on `EPIPE`): every store write is committed or rolled
/// back atomically (the kill -9 tests), so stopping there loses nothing.
fn quiet_contained_storage_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        let in_redb = info.location().is_some_and(|l| {
            std::path::Path::new(l.file())
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("redb-"))
        });
        if !in_redb {
            report(info);
        }
    }));
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = Home::resolve(cli.home)?;
    let out = Output { json: cli.json };
    // LIVE-3: a command on a home a `sync --watch` runs on borrows the store from it.
    let lease = borrow_store(&home, &cli.command)?;
    match cli.command {
        Command::Init { name } => commands::identity::init(&home, out, name),
        Command::Whoami => commands::identity::whoami(&home, out),
        Command::Contact(ContactCommand::Export) => commands::contact::export(&home, out),
        Command::Contact(ContactCommand::Add(args)) => {
            commands::contact::add(&home, out, &args.card, args.name)
        }
        Command::Contact(ContactCommand::List) => commands::contact::list(&home, out),
        Command::Contact(ContactCommand::Remove { contact }) => {
            commands::contact::remove(&home, out, &contact)
        }
        Command::Contact(ContactCommand::Rename { contact, name }) => {
            commands::contact::rename(&home, out, &contact, name)
        }
        Command::Relay(RelayCommand::Add { url, id, ca_cert }) => {
            commands::sync::relay_add(&home, out, &url, id.as_deref(), ca_cert.as_deref())
        }
        Command::Relay(RelayCommand::List) => commands::sync::relay_list(&home, out),
        Command::Relay(RelayCommand::Remove { url }) => {
            commands::sync::relay_remove(&home, out, &url)
        }
        Command::Relay(RelayCommand::Serve {
            listen,
            data,
            store,
            store_pool,
            peers,
            upstream,
            sync_ca_certs,
            tls_cert,
            tls_key,
            stranger_quota,
            stranger_checks,
            per_address,
        }) => {
            let quota = commands::relay::parse_stranger_quota(&stranger_quota)?;
            let per_address = per_address.limits()?;
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(commands::relay::TlsFiles { cert, key }),
                _ => None,
            };
            let store = store.map(|url| commands::relay::SharedStore {
                url,
                pool_size: store_pool,
            });
            commands::relay::serve(
                out,
                &listen,
                &data,
                store.as_ref(),
                commands::relay::ServeOptions {
                    peers: &peers,
                    upstream: commands::relay::Upstream {
                        relays: &upstream,
                        ca_certs: &sync_ca_certs,
                    },
                    tls: tls.as_ref(),
                    quota,
                    per_address,
                    stranger_checks,
                },
            )
        }
        Command::Demo => commands::demo::run(out),
        Command::Bench {
            quick,
            gate,
            plot,
            plot_members,
            plot_documents,
        } => match plot {
            Some(dir) => commands::bench::plot(out, &dir, plot_members, plot_documents),
            None => commands::bench::run(out, quick, gate),
        },
        Command::Sync {
            relays,
            watch: false,
        } => {
            let s = session::Session::open(home, out)?;
            commands::sync::sync(s, relays)
        }
        Command::Sync {
            relays,
            watch: true,
        } => watch_home(home, out, relays),
        Command::Backup { file } => commands::backup::backup(&home, out, &file),
        Command::Restore { file } => commands::backup::restore(&home, out, &file),
        // REP-69: `status` from the name index when it is valid.
        Command::Status if commands::status::status_indexed(&home, out, lease.is_some())? => Ok(()),
        Command::Status => {
            let mut s = session::Session::open(home, out)?;
            commands::status::status(&mut s, lease.is_some())?;
            s.refresh_name_index();
            Ok(())
        }
        Command::Invite(args) => {
            commands::invite::invite(session::Session::open(home, out)?, &args)
        }
        Command::Join { code } => commands::invite::join(session::Session::open(home, out)?, &code),
        Command::Invites { revoke } => {
            commands::invite::list(session::Session::open(home, out)?, revoke.as_deref())
        }
        // REP-60: reading one document replays only what it depends on.
        Command::Get {
            doc,
            out: path,
            change,
        } => {
            let mut s = session::Session::open_reading(home, out, &doc)?;
            let result = commands::content::get(&mut s, &doc, path.as_deref(), change.as_deref());
            // REP-68: also after a failure (an unknown name was looked up in a full replay).
            s.refresh_name_index();
            result
        }
        // REP-60/67: `log` of one document, as `get`.
        Command::Log { doc } => {
            let mut s = session::Session::open_reading(home, out, &doc)?;
            let result = commands::content::log(&mut s, &doc);
            s.refresh_name_index();
            result
        }
        // REP-10: `folder ls` replays the whole store read-only when the name index is valid.
        Command::Folder(FolderCommand::Ls { folder }) => {
            let mut s = access_scope::open_whole(home, out)?;
            let result = commands::folder_ls::ls(&mut s, &folder);
            s.refresh_name_index();
            result
        }
        // REP-69: `members` and `why` replay only what the subject (and agent) depend on when
        // the name index resolves them; a full open otherwise (which writes the index).
        Command::Members { subject } => {
            let mut s = access_scope::open(home, out, &subject, None)?;
            let result = commands::access::members(&mut s, &subject);
            s.refresh_name_index();
            result
        }
        Command::Why {
            agent,
            subject,
            access,
        } => {
            let mut s = access_scope::open(home, out, &subject, Some(&agent))?;
            let result = commands::access::why(&mut s, &agent, &subject, access);
            s.refresh_name_index();
            result
        }
        // REP-66: `ls` prints from the name index when it is valid.
        Command::Ls if commands::subjects::ls_indexed(&home, out)? => Ok(()),
        command => {
            let mut s = session::Session::open(home, out)?;
            let result = run_in_session(&mut s, command);
            // REP-68: a command that replayed the whole store leaves the name index current
            // (also when it failed: the replay was done, and the index follows the store).
            s.refresh_name_index();
            result
        }
    }
}

fn run_in_session(s: &mut session::Session, command: Command) -> anyhow::Result<()> {
    use commands::{access, content, folder, folder_pull, subjects, tree};
    use keyhive_sync::record::MetadataKind;
    match command {
        Command::Group(GroupCommand::Create { name }) => subjects::create_group(s, &name),
        Command::Group(GroupCommand::Rename { group, name }) => {
            subjects::rename_group(s, &group, &name)
        }
        Command::Folder(FolderCommand::Create { name }) => {
            subjects::create_and_print(s, &name, MetadataKind::Folder, None)
        }
        Command::Folder(FolderCommand::Push { folder, dir }) => folder::push(s, &folder, &dir),
        Command::Folder(FolderCommand::Pull { folder, dir }) => folder_pull::pull(s, &folder, &dir),
        Command::Folder(FolderCommand::Ls { folder }) => commands::folder_ls::ls(s, &folder),
        Command::Doc(DocCommand::Create { name, folder }) => {
            subjects::create_and_print(s, &name, MetadataKind::Document, folder.as_deref())
        }
        Command::Doc(DocCommand::Rm { doc }) => tree::remove(s, &doc),
        Command::Doc(DocCommand::Rename { doc, new_name }) => tree::rename(s, &doc, &new_name),
        Command::Ls => subjects::ls(s),
        Command::Device(DeviceCommand::Add { card, name }) => commands::device::add(s, &card, name),
        Command::Device(DeviceCommand::Join { group }) => {
            commands::device::join(s, group.as_deref())
        }
        Command::Device(DeviceCommand::Remove { device }) => commands::device::remove(s, &device),
        Command::Device(DeviceCommand::List) => commands::device::list(s),
        Command::Grant {
            subject,
            agent,
            access,
            expires: None,
        } => access::grant(s, &subject, &agent, access),
        Command::Grant {
            subject,
            agent,
            access,
            expires: Some(duration),
        } => commands::invite::grant_until(s, &subject, &agent, access, &duration),
        Command::Revoke { subject, agent } => access::revoke(s, &subject, &agent),
        Command::Members { subject } => access::members(s, &subject),
        Command::Why {
            agent,
            subject,
            access,
        } => access::why(s, &agent, &subject, access),
        Command::Put { doc, file } => content::put(s, &doc, &file),
        Command::Get { doc, out, change } => {
            content::get(s, &doc, out.as_deref(), change.as_deref())
        }
        Command::Log { doc } => content::log(s, &doc),
        Command::Init { .. }
        | Command::Whoami
        | Command::Contact(_)
        | Command::Relay(_)
        | Command::Demo
        | Command::Bench { .. }
        | Command::Sync { .. }
        | Command::Status
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Invite(_)
        | Command::Join { .. }
        | Command::Invites { .. } => unreachable_command(),
    }
}

/// Commands without a session are dispatched in `run`; reaching here is a programming error
/// reported as an ordinary failure rather than a panic.
fn unreachable_command() -> anyhow::Result<()> {
    anyhow::bail!("internal error: command dispatched twice")
}

/// LIVE-3: borrows the store from a watcher running on `home`, for every command that reads or
/// writes the home (not `init`, the watcher itself, or commands without a home).
#[cfg(unix)]
fn borrow_store(home: &Home, command: &Command) -> anyhow::Result<Option<watch::lease::Lease>> {
    let homeless = matches!(
        command,
        Command::Init { .. }
            | Command::Relay(RelayCommand::Serve { .. })
            | Command::Demo
            | Command::Bench { .. }
            | Command::Sync { watch: true, .. }
    );
    if homeless {
        return Ok(None);
    }
    watch::lease::acquire(home)
}

#[cfg(not(unix))]
fn borrow_store(_: &Home, _: &Command) -> anyhow::Result<Option<()>> {
    Ok(None)
}

#[cfg(unix)]
fn watch_home(home: Home, out: Output, relays: Vec<String>) -> anyhow::Result<()> {
    watch::run(home, out, relays)
}

#[cfg(not(unix))]
fn watch_home(_: Home, _: Output, _: Vec<String>) -> anyhow::Result<()> {
    anyhow::bail!("`keyhive sync --watch` needs a Unix system (it listens on a Unix domain socket)")
}
