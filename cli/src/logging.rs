//! Diagnostic logs: the libraries' `tracing` events on stderr when `RUST_LOG` asks for them.
//!
//! `RUST_LOG` is read as a level (`error`, `warn`, `info`, `debug`, `trace`, `off`); a
//! `target=level` list takes its most verbose level. Unset, nothing is logged: progress and the
//! summary are the build's output. The registry client redacts credentials and tokens in its
//! events (`cli/tests/secrets.rs` checks that at `trace`).

use tracing::level_filters::LevelFilter;

/// Installs the stderr subscriber when `RUST_LOG` is set.
pub fn init() {
    let Some(level) = std::env::var("RUST_LOG").ok().and_then(|v| parse(&v)) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn parse(value: &str) -> Option<LevelFilter> {
    value
        .split(',')
        .filter_map(|directive| {
            let level = directive.rsplit('=').next()?.trim();
            // tracing reads an empty level as `error`; an empty RUST_LOG means no logs here.
            (!level.is_empty()).then(|| level.parse::<LevelFilter>().ok())?
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directive_lists_parse() {
        assert_eq!(parse("trace"), Some(LevelFilter::TRACE));
        assert_eq!(parse("inlay_registry=debug,warn"), Some(LevelFilter::DEBUG));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse(""), None);
    }
}
