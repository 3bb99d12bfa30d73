//! Progress renderers: BuildKit's plain format, raw JSON lines, quiet, and the live tty view
//! ([`crate::tty`]).

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use inlay_builder::progress::{CacheOrigin, LogStream, ProgressEvent, ProgressSink};
use inlay_core::op::VertexId;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// BuildKit's `--progress plain`.
    Plain,
    /// Nothing (errors still reach stderr).
    Quiet,
    /// One JSON object per event.
    RawJson,
    /// A live view: one line per running step, redrawn.
    Tty,
}

impl Mode {
    /// `auto` is `tty` on a terminal, else `plain`.
    pub fn parse(value: &str) -> Mode {
        match value {
            "plain" => Mode::Plain,
            "quiet" => Mode::Quiet,
            "rawjson" => Mode::RawJson,
            "tty" => Mode::Tty,
            _ if std::io::stderr().is_terminal() => Mode::Tty,
            _ => Mode::Plain,
        }
    }
}

struct State {
    numbers: HashMap<VertexId, usize>,
    started: HashMap<VertexId, Instant>,
    build_start: Instant,
}

/// A sink writing `mode`'s format to stderr.
pub fn sink(mode: Mode) -> ProgressSink {
    if mode == Mode::Tty {
        let view = Arc::new(Mutex::new(crate::tty::Tty::new(
            crate::tty::Tty::terminal_width(),
        )));
        crate::tty::tick(Arc::downgrade(&view));
        return Arc::new(move |event: ProgressEvent| {
            let Ok(mut view) = view.lock() else {
                return;
            };
            let bytes = view.on_event(&event);
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(bytes.as_bytes());
            let _ = err.flush();
        });
    }
    let state = Arc::new(Mutex::new(State {
        numbers: HashMap::new(),
        started: HashMap::new(),
        build_start: Instant::now(),
    }));
    Arc::new(move |event: ProgressEvent| {
        let Ok(mut state) = state.lock() else {
            return;
        };
        let text = match mode {
            Mode::Quiet => return,
            Mode::RawJson => raw_json(&event),
            Mode::Plain | Mode::Tty => plain(&mut state, &event),
        };
        if let Some(text) = text {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        }
    })
}

/// The vertex's number (`#N`), given in start order from 1.
fn number(state: &mut State, vertex: VertexId) -> usize {
    let next = state.numbers.len() + 1;
    *state.numbers.entry(vertex).or_insert(next)
}

fn plain(state: &mut State, event: &ProgressEvent) -> Option<String> {
    Some(match event {
        ProgressEvent::Started { vertex, name } => {
            let n = number(state, *vertex);
            state.started.insert(*vertex, Instant::now());
            format!("#{n} {name}")
        }
        ProgressEvent::Cached { vertex, .. } => format!("#{} CACHED", number(state, *vertex)),
        ProgressEvent::Pulling {
            vertex,
            digest,
            size,
        } => format!(
            "#{} pulling {digest} {:.1}MB",
            number(state, *vertex),
            f64::from(u32::try_from(*size / 1000).unwrap_or(u32::MAX)) / 1e3
        ),
        ProgressEvent::Log { vertex, line, .. } => {
            let n = number(state, *vertex);
            let since = state
                .started
                .get(vertex)
                .map_or(state.build_start, |s| *s)
                .elapsed();
            format!("#{n} {:.3} {line}", since.as_secs_f64())
        }
        ProgressEvent::Done {
            vertex, duration, ..
        } => format!(
            "#{} DONE {:.1}s\n",
            number(state, *vertex),
            duration.as_secs_f64()
        ),
        ProgressEvent::Failed { vertex, error } => {
            format!("#{} ERROR {error}\n", number(state, *vertex))
        }
        _ => return None,
    })
}

fn raw_json(event: &ProgressEvent) -> Option<String> {
    let value = match event {
        ProgressEvent::Started { vertex, name } => {
            serde_json::json!({"event": "started", "vertex": vertex.0, "name": name})
        }
        ProgressEvent::Cached { vertex, origin } => {
            let origin = match origin {
                CacheOrigin::Local => "local".to_owned(),
                CacheOrigin::Other(o) => o.clone(),
                _ => "other".to_owned(),
            };
            serde_json::json!({"event": "cached", "vertex": vertex.0, "origin": origin})
        }
        ProgressEvent::Pulling {
            vertex,
            digest,
            size,
        } => serde_json::json!({
            "event": "pulling", "vertex": vertex.0, "digest": digest.to_string(), "size": size
        }),
        ProgressEvent::Log {
            vertex,
            stream,
            line,
        } => serde_json::json!({
            "event": "log", "vertex": vertex.0,
            "stream": if *stream == LogStream::Stdout { "stdout" } else { "stderr" },
            "line": line
        }),
        ProgressEvent::Done {
            vertex,
            duration,
            bytes,
        } => serde_json::json!({
            "event": "done", "vertex": vertex.0,
            "seconds": duration.as_secs_f64(), "bytes": bytes
        }),
        ProgressEvent::Failed { vertex, error } => {
            serde_json::json!({"event": "error", "vertex": vertex.0, "error": error})
        }
        _ => return None,
    };
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn plain_numbers_vertices_in_start_order_as_buildkit_does() {
        let mut state = State {
            numbers: HashMap::new(),
            started: HashMap::new(),
            build_start: Instant::now(),
        };
        let v = VertexId(7);
        let started = ProgressEvent::Started {
            vertex: v,
            name: "[build 2/4] WORKDIR /src".into(),
        };
        assert_eq!(
            plain(&mut state, &started).unwrap(),
            "#1 [build 2/4] WORKDIR /src"
        );
        let cached = ProgressEvent::Cached {
            vertex: v,
            origin: CacheOrigin::Local,
        };
        assert_eq!(plain(&mut state, &cached).unwrap(), "#1 CACHED");
        let done = ProgressEvent::Done {
            vertex: v,
            duration: Duration::from_millis(210),
            bytes: 0,
        };
        assert_eq!(plain(&mut state, &done).unwrap(), "#1 DONE 0.2s\n");
        let other = ProgressEvent::Failed {
            vertex: VertexId(3),
            error: "exit code 1".into(),
        };
        assert_eq!(plain(&mut state, &other).unwrap(), "#2 ERROR exit code 1\n");
        let json: serde_json::Value = serde_json::from_str(&raw_json(&cached).unwrap()).unwrap();
        assert_eq!(json["event"], "cached");
        assert_eq!(json["origin"], "local");
    }
}
