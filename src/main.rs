//! The `sealpost` binary: parse arguments, run, map to an exit code. Logging
//! is set up by the command itself (`run` logs as its configuration says).

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
    std::process::ExitCode::from(sealpost::cli::run(cli) as u8)
}
