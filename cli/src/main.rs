//! `inlay`: a daemonless Dockerfile image builder whose BuildKit-compatible cache travels inside
//! the image it pushes.

// The binary is the one place that writes to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A daemonless Dockerfile image builder with BuildKit-compatible inline cache.
#[derive(Debug, Parser)]
#[command(name = "inlay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context.
    Build {
        /// The build context directory, or `-` for a Dockerfile on standard input.
        context: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Build { context } => {
            eprintln!("inlay: building is not implemented yet (context {context})");
            ExitCode::from(1)
        }
    }
}
