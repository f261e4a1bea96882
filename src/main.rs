//! The `sealpost` binary: parse arguments, set up logging, run, map to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sealpost::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALPOST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        // Colour only on a terminal: never escape codes in journald or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    std::process::ExitCode::from(sealpost::cli::run(cli) as u8)
}
