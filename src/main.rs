//! The `sealpost` binary: parse arguments, set up logging, run, map to an exit code.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // A bad command line exits 64 (EX_USAGE) as `--help` says, not clap's 2;
    // `--help` and `--version` themselves succeed.
    let cli = match sealpost::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() {
                sealpost::cli::Exit::Usage as u8
            } else {
                sealpost::cli::Exit::Ok as u8
            });
        }
    };
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
