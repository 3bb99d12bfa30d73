//! The live progress view for a terminal, after BuildKit's tty view: a header with the elapsed
//! time and the steps done, one line per running step (with its last output line), redrawn in
//! place with ANSI escapes; finished steps scroll up above the live region and stay.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use inlay_builder::progress::ProgressEvent;
use inlay_core::op::VertexId;

#[derive(Debug, Clone)]
enum State {
    Running,
    Cached,
    Done(Duration),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Step {
    name: String,
    started: Instant,
    state: State,
    last_log: Option<String>,
}

/// The view's state; [`Tty::on_event`] returns the bytes that update the screen.
#[derive(Debug)]
pub struct Tty {
    steps: Vec<Step>,
    index: HashMap<VertexId, usize>,
    /// Finished steps not yet printed above the live region.
    finished: Vec<usize>,
    /// How many lines the live region took at the last draw.
    live_lines: usize,
    start: Instant,
    width: usize,
}

impl Tty {
    /// A view `width` columns wide (lines are cut to fit, so that redraws count lines right).
    pub fn new(width: usize) -> Tty {
        Tty {
            steps: Vec::new(),
            index: HashMap::new(),
            finished: Vec::new(),
            live_lines: 0,
            start: Instant::now(),
            width: width.max(20),
        }
    }

    /// The terminal's width from `COLUMNS`, else 80.
    pub fn terminal_width() -> usize {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80)
    }

    fn step(&mut self, vertex: VertexId, name: Option<&str>) -> usize {
        if let Some(i) = self.index.get(&vertex) {
            return *i;
        }
        self.steps.push(Step {
            name: name.unwrap_or_default().to_owned(),
            started: Instant::now(),
            state: State::Running,
            last_log: None,
        });
        let i = self.steps.len() - 1;
        self.index.insert(vertex, i);
        i
    }

    fn finish(&mut self, i: usize, state: State) {
        if matches!(self.steps[i].state, State::Running) {
            self.steps[i].state = state;
            self.finished.push(i);
        }
    }

    /// Applies `event`; returns the escape sequences and text that redraw the view.
    pub fn on_event(&mut self, event: &ProgressEvent) -> String {
        match event {
            ProgressEvent::Started { vertex, name } => {
                self.step(*vertex, Some(name));
            }
            ProgressEvent::Cached { vertex, .. } => {
                let i = self.step(*vertex, None);
                self.finish(i, State::Cached);
            }
            ProgressEvent::Log { vertex, line, .. } => {
                let i = self.step(*vertex, None);
                self.steps[i].last_log = Some(line.clone());
            }
            ProgressEvent::Done {
                vertex, duration, ..
            } => {
                let i = self.step(*vertex, None);
                self.finish(i, State::Done(*duration));
            }
            ProgressEvent::Failed { vertex, error } => {
                let i = self.step(*vertex, None);
                self.finish(i, State::Failed(error.clone()));
            }
            _ => {}
        }
        self.redraw()
    }

    fn line(&self, step: &Step) -> String {
        let (prefix, time) = match &step.state {
            State::Running => ("", step.started.elapsed()),
            State::Cached => ("CACHED ", Duration::ZERO),
            State::Done(d) => ("", *d),
            State::Failed(_) => ("ERROR ", step.started.elapsed()),
        };
        let time = format!("{:.1}s", time.as_secs_f64());
        let text = format!(" => {prefix}{}", step.name);
        self.fit(&text, &time)
    }

    /// `text` cut to leave room for `right`, which is right-aligned.
    fn fit(&self, text: &str, right: &str) -> String {
        let room = self.width.saturating_sub(right.chars().count() + 1);
        let mut left: String = text.chars().take(room).collect();
        let pad = room.saturating_sub(left.chars().count());
        left.push_str(&" ".repeat(pad));
        format!("{left} {right}")
    }

    fn cut(&self, text: &str) -> String {
        text.chars().take(self.width.saturating_sub(1)).collect()
    }

    /// Redraws when a step is running (its time moves), else nothing.
    pub fn on_tick(&mut self) -> Option<String> {
        self.steps
            .iter()
            .any(|s| matches!(s.state, State::Running))
            .then(|| self.redraw())
    }

    /// Moves to the top of the live region, prints the newly finished steps (they stay), then
    /// the live region: the header and each running step with its last output line.
    fn redraw(&mut self) -> String {
        let mut out = String::new();
        if self.live_lines > 0 {
            // Up to the region's first line, column 0; clear to the end of the screen.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.live_lines);
        }
        for i in std::mem::take(&mut self.finished) {
            let step = &self.steps[i];
            out.push_str(&self.line(step));
            out.push('\n');
            if let State::Failed(error) = &step.state {
                out.push_str(&self.cut(&format!(" => ERROR: {error}")));
                out.push('\n');
            }
        }
        let done = self
            .steps
            .iter()
            .filter(|s| !matches!(s.state, State::Running))
            .count();
        let header = format!(
            "[+] Building {:.1}s ({done}/{})",
            self.start.elapsed().as_secs_f64(),
            self.steps.len()
        );
        let mut live = vec![self.cut(&header)];
        for step in self
            .steps
            .iter()
            .filter(|s| matches!(s.state, State::Running))
        {
            live.push(self.line(step));
            if let Some(log) = &step.last_log {
                live.push(self.cut(&format!(" => => # {log}")));
            }
        }
        for l in &live {
            out.push_str(l);
            out.push('\n');
        }
        self.live_lines = live.len();
        out
    }
}

/// Redraws `view` every 200 ms while a step runs, so that running times move without events;
/// stops once the progress sink (the last strong reference) is dropped.
pub fn tick(view: Weak<Mutex<Tty>>) {
    let spawned = std::thread::Builder::new()
        .name("inlay-tty".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let Some(view) = view.upgrade() else {
                    return;
                };
                let Ok(mut view) = view.lock() else {
                    return;
                };
                if let Some(bytes) = view.on_tick() {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(bytes.as_bytes());
                    let _ = err.flush();
                }
            }
        });
    // Without a ticker the view still redraws on every event.
    drop(spawned);
}

#[cfg(test)]
mod tests {
    use inlay_builder::progress::{CacheOrigin, LogStream};

    use super::*;

    /// The screen after applying the escapes the view uses (`ESC[nF`, `ESC[J`).
    fn screen(bytes: &str) -> Vec<String> {
        let mut lines: Vec<String> = vec![String::new()];
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("\x1b[") {
                let end = after.find(|c: char| c.is_ascii_alphabetic()).unwrap();
                let n: usize = after[..end].parse().unwrap_or(1);
                match &after[end..=end] {
                    "F" => {
                        let keep = lines.len().saturating_sub(n + 1);
                        lines.truncate(keep + 1);
                        lines.last_mut().unwrap().clear();
                    }
                    "J" => {}
                    other => panic!("unexpected escape {other}"),
                }
                rest = &after[end + 1..];
            } else {
                let c = rest.chars().next().unwrap();
                if c == '\n' {
                    lines.push(String::new());
                } else {
                    lines.last_mut().unwrap().push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
        lines
    }

    #[test]
    fn finished_steps_scroll_up_and_running_steps_stay_live() {
        let mut tty = Tty::new(60);
        let mut bytes = String::new();
        let (a, b) = (VertexId(1), VertexId(2));
        for event in [
            ProgressEvent::Started {
                vertex: a,
                name: "[1/3] FROM busybox".into(),
            },
            ProgressEvent::Cached {
                vertex: a,
                origin: CacheOrigin::Local,
            },
            ProgressEvent::Started {
                vertex: b,
                name: "[2/3] RUN echo hi".into(),
            },
            ProgressEvent::Log {
                vertex: b,
                stream: LogStream::Stdout,
                line: "hi".into(),
            },
        ] {
            bytes.push_str(&tty.on_event(&event));
        }
        let lines = screen(&bytes);
        assert!(lines[0].starts_with(" => CACHED [1/3] FROM busybox"));
        assert!(lines[1].starts_with("[+] Building "));
        assert!(lines[1].ends_with("(1/2)"));
        assert!(lines[2].starts_with(" => [2/3] RUN echo hi"));
        assert_eq!(lines[3], " => => # hi");
        bytes.push_str(&tty.on_event(&ProgressEvent::Done {
            vertex: b,
            duration: Duration::from_millis(300),
            bytes: 0,
        }));
        let lines = screen(&bytes);
        assert!(lines[1].starts_with(" => [2/3] RUN echo hi"));
        assert!(lines[1].ends_with("0.3s"));
        assert!(lines[2].ends_with("(2/2)"));
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 60));
    }
}
