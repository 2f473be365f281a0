//! The `keyhive` command: device identity, contacts, sharing, and relay operation.

mod cli;
mod commands;
mod contacts;
mod device_store;
mod home;
mod output;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ContactCommand};
use home::Home;
use output::Output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: what failed and, through the context chain, why and what to do.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = Home::resolve(cli.home)?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Init { name } => commands::identity::init(&home, out, name),
        Command::Whoami => commands::identity::whoami(&home, out),
        Command::Contact(ContactCommand::Export) => commands::contact::export(&home, out),
        Command::Contact(ContactCommand::Add(args)) => {
            commands::contact::add(&home, out, &args.card, args.name)
        }
        Command::Contact(ContactCommand::List) => commands::contact::list(&home, out),
    }
}
