//! Where the log goes: journald's native protocol when the daemon runs under
//! systemd (priorities, so `journalctl -p warning` works; no colour codes),
//! human-readable text on a terminal or a pipe (colour only on a terminal),
//! or one JSON object per line. Fields, not formatted strings; names that come
//! from outside are escaped by the callers (`types::printable`).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Whether standard error is the journal (systemd sets `JOURNAL_STREAM` to
/// its device and inode).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(st) = rustix::fs::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// Installs the global subscriber. `level` is the filter (`SEALPOST_LOG` in
/// the environment wins). Returns the format actually used.
pub fn init(format: LogFormat, level: &str) -> LogFormat {
    let filter = || {
        EnvFilter::try_from_env("SEALPOST_LOG")
            .or_else(|_| EnvFilter::try_new(level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let layer: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            // Fields as themselves (`BUNDLE=…`, not `F_BUNDLE=…`); none of ours is
            // named like a journal field (MESSAGE, PRIORITY, …).
            Ok(l) => Box::new(
                l.with_syslog_identifier("sealpost".into())
                    .with_field_prefix(None),
            ),
            Err(_) => text_layer(),
        },
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        ),
        _ => text_layer(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter()))
        .try_init();
    format
}

fn text_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Box::new(
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr),
    )
}
