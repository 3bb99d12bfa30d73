//! Instruction dispatch, and the instructions that only change the image config and history
//! (BuildKit's `dispatchEnv`, `dispatchArg`, `dispatchLabel`, `dispatchCmd`, ...).

use std::fmt::Write as _;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::state::{StageState, set_image_env};
use super::{LowerError, Lowering};
use crate::error::ErrorKind;
use crate::go_quote::{quote, quote_list};
use crate::instructions::{CommandLine, HealthConfig, Instruction, Located};
use crate::shell::Lexer;

/// Build args BuildKit keeps out of the env (`nonEnvArgs`).
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// `withShell`: the stage's SHELL (or `/bin/sh -c`) followed by the command line as one word.
pub(crate) fn with_shell(st: &StageState, args: &[String]) -> Vec<String> {
    let mut out = st
        .image
        .config
        .as_ref()
        .and_then(|c| c.shell.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()]);
    out.push(args.join(" "));
    out
}

/// Go's `%v` of a `[]string`: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

impl Lowering<'_> {
    /// Expands an instruction in the stage's env and lowers it.
    #[allow(clippy::too_many_lines)] // one arm per instruction, as BuildKit's dispatch
    pub(crate) fn dispatch(
        &mut self,
        st: &mut StageState,
        located: &Located,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<(), LowerError> {
        let at = located.range.start;
        let mut instruction = located.instruction.clone();
        let lexer = Lexer::new(self.dockerfile.escape);
        let located_err =
            |kind: ErrorKind| -> LowerError { self.dockerfile.error_at(at, kind).into() };
        if !matches!(instruction, Instruction::Arg(_)) {
            let env = st.env.clone();
            instruction
                .expand(&mut |w| lexer.process_word(w, &env).map_err(ErrorKind::from))
                .map_err(located_err)?;
            let raw = Lexer {
                skip_process_quotes: true,
                ..Lexer::new('\\')
            };
            instruction
                .expand_heredocs(&mut |w| raw.process_word(w, &env).map_err(ErrorKind::from))
                .map_err(located_err)?;
        }
        match &instruction {
            Instruction::Env(pairs) => {
                let mut message = String::from("ENV");
                for kv in pairs {
                    let _ = write!(message, " {}={}", kv.key, kv.value);
                    st.add_env(&kv.key, &kv.value);
                    let env = st.config().env.get_or_insert_with(Vec::new);
                    set_image_env(env, &kv.key, &kv.value);
                }
                st.history(message, false, false);
            }
            Instruction::Arg(defs) => self.dispatch_arg(st, defs, at)?,
            Instruction::Label(pairs) => {
                let mut message = String::from("LABEL");
                let labels = st.config().labels.get_or_insert_with(BTreeMap::new);
                for kv in pairs {
                    labels.insert(kv.key.clone(), kv.value.clone());
                    let _ = write!(message, " {}={}", kv.key, kv.value);
                }
                st.history(message, false, false);
            }
            Instruction::Maintainer(name) => {
                st.image.author = Some(name.clone());
                st.history(format!("MAINTAINER {name}"), false, false);
            }
            Instruction::Onbuild(expression) => {
                let config = st.config();
                let list = config
                    .extra
                    .entry("OnBuild".to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(Vec::new());
                }
                if let Value::Array(items) = list {
                    items.push(Value::String(expression.clone()));
                }
            }
            Instruction::Cmd(command) => {
                let args = Self::command_args(st, command);
                st.config().cmd = Some(args.clone());
                if self.options.current() {
                    st.config()
                        .extra
                        .insert("ArgsEscaped".to_owned(), json!(true));
                }
                st.cmd_set = true;
                st.history(format!("CMD {}", quote_list(&args)), false, false);
            }
            Instruction::Entrypoint(command) => {
                let args = Self::command_args(st, command);
                st.config().entrypoint = Some(args.clone());
                if !st.cmd_set {
                    st.config().cmd = None;
                }
                st.history(format!("ENTRYPOINT {}", quote_list(&args)), false, false);
            }
            Instruction::Healthcheck(health) => {
                st.config()
                    .extra
                    .insert("Healthcheck".to_owned(), healthcheck_json(health));
                let text = healthcheck_text(health, self.options.current());
                st.history(format!("HEALTHCHECK {text}"), false, false);
            }
            Instruction::Expose(ports) => self.dispatch_expose(st, ports, at)?,
            Instruction::User(user) => {
                st.user.clone_from(user);
                st.config().user = Some(user.clone());
                st.history(format!("USER {user}"), false, false);
            }
            Instruction::Volume(volumes) => {
                let config = st.config();
                let map = config
                    .extra
                    .entry("Volumes".to_owned())
                    .or_insert_with(|| json!({}));
                if !map.is_object() {
                    *map = json!({});
                }
                for v in volumes {
                    if v.is_empty() {
                        return Err(self.error(at, "VOLUME specified can not be an empty string"));
                    }
                    if let Value::Object(m) = map {
                        m.insert(v.clone(), json!({}));
                    }
                }
                st.history(format!("VOLUME {}", go_list(volumes)), false, false);
            }
            Instruction::StopSignal(signal) => {
                st.config()
                    .extra
                    .insert("StopSignal".to_owned(), json!(signal));
                st.history(format!("STOPSIGNAL {signal}"), false, false);
            }
            Instruction::Shell(shell) => {
                st.config().shell = Some(shell.clone());
                st.history(format!("SHELL {}", go_list(shell)), false, false);
            }
            Instruction::Workdir(path) => self.lower_workdir(st, path, located)?,
            Instruction::Run(run) => self.lower_run(st, run, located, done)?,
            Instruction::Copy(copy) => self.lower_copy(st, copy, located, done)?,
            Instruction::Add(add) => self.lower_add(st, add, located)?,
        }
        Ok(())
    }

    fn command_args(st: &StageState, command: &CommandLine) -> Vec<String> {
        if command.prepend_shell {
            with_shell(st, &command.args)
        } else {
            command.args.clone()
        }
    }

    /// `dispatchArg`: a build arg wins, then the default (expanded in the stage env), then the
    /// global ARG of that name; a value reaches the env of later RUNs (spec section 8c).
    fn dispatch_arg(
        &mut self,
        st: &mut StageState,
        defs: &[crate::instructions::ArgDefinition],
        at: crate::parser::Position,
    ) -> Result<(), LowerError> {
        let lexer = Lexer::new(self.dockerfile.escape);
        let mut parts = Vec::with_capacity(defs.len());
        for def in defs {
            let build_arg = self.options.build.build_args.get(&def.key).cloned();
            let value = if let Some(v) = build_arg {
                Some(v)
            } else if let Some(default) = &def.value {
                Some(
                    lexer
                        .process_word(default, &st.env)
                        .map_err(|e| self.dockerfile.error_at(at, ErrorKind::from(e)))?,
                )
            } else {
                self.stage_graph
                    .global_args
                    .iter()
                    .rev()
                    .find(|(k, _)| k == &def.key)
                    .map(|(_, v)| v.clone())
            };
            if let Some(v) = &value {
                if !(self.options.current() && NON_ENV_ARGS.contains(&def.key.as_str())) {
                    st.add_env(&def.key, v);
                }
            }
            // docker 20.10 prints the default as written; current BuildKit the value used.
            let shown = if self.options.current() {
                value.clone()
            } else {
                def.value.clone()
            };
            parts.push(match shown {
                Some(v) => format!("{}={v}", def.key),
                None => def.key.clone(),
            });
            st.build_args.push((def.key.clone(), value));
        }
        st.history(format!("ARG {}", parts.join(" ")), false, false);
        Ok(())
    }

    fn dispatch_expose(
        &mut self,
        st: &mut StageState,
        ports: &[String],
        at: crate::parser::Position,
    ) -> Result<(), LowerError> {
        let lexer = Lexer::new(self.dockerfile.escape);
        let mut words = Vec::new();
        for p in ports {
            words.extend(
                lexer
                    .process_words(p, &st.env)
                    .map_err(|e| self.dockerfile.error_at(at, ErrorKind::from(e)))?,
            );
        }
        let mut specs = Vec::new();
        for word in &words {
            specs.extend(
                port_specs(word)
                    .ok_or_else(|| self.error(at, format!("invalid containerPort: {word}")))?,
            );
        }
        let config = st.config();
        let map = config
            .extra
            .entry("ExposedPorts".to_owned())
            .or_insert_with(|| json!({}));
        if !map.is_object() {
            *map = json!({});
        }
        if let Value::Object(m) = map {
            for s in &specs {
                m.insert(s.clone(), json!({}));
            }
        }
        // docker 20.10 prints the port list; v0.24 prints an internal struct here, which no
        // cache compares, so the readable form is kept.
        st.history(format!("EXPOSE {}", go_list(&specs)), false, false);
        Ok(())
    }
}

/// `[ip:][hostport:]port[-end][/proto]` → `port/proto` entries (ranges expanded).
fn port_specs(word: &str) -> Option<Vec<String>> {
    let (rest, proto) = word.rsplit_once('/').unwrap_or((word, "tcp"));
    let port = rest.rsplit(':').next().unwrap_or(rest);
    let (start, end) = if let Some((a, b)) = port.split_once('-') {
        (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)
    } else {
        let p = port.parse::<u32>().ok()?;
        (p, p)
    };
    if end < start || end > 65535 {
        return None;
    }
    let proto = proto.to_lowercase();
    Some((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn healthcheck_json(h: &HealthConfig) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Test".to_owned(), json!(h.test));
    for (key, value) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if value != 0 {
            m.insert(key.to_owned(), json!(value));
        }
    }
    if h.retries != 0 {
        m.insert("Retries".to_owned(), json!(h.retries));
    }
    Value::Object(m)
}

/// Go's `%q` of BuildKit's `*HealthcheckConfig`: durations through their `String()`, the retry
/// count as a quoted rune; docker 20.10's struct has no `StartInterval`.
fn healthcheck_text(h: &HealthConfig, current: bool) -> String {
    let d = |ns: i64| quote(&go_duration(ns));
    let retries = char::from_u32(u32::try_from(h.retries).unwrap_or(0)).unwrap_or('\0');
    let rune = if retries.is_ascii_graphic() || retries == ' ' {
        format!("'{retries}'")
    } else {
        format!("'\\x{:02x}'", u32::from(retries))
    };
    let mut durations = vec![d(h.interval), d(h.timeout), d(h.start_period)];
    if current {
        durations.push(d(h.start_interval));
    }
    format!(
        "&{{{} {} {rune}}}",
        quote_list(&h.test),
        durations.join(" ")
    )
}

/// Go's `time.Duration.String` for whole units (BuildKit's flags are whole seconds mostly).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_owned();
    }
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    if frac == 0 {
        let _ = write!(out, "{s}s");
    } else {
        let f = format!("{frac:09}");
        let _ = write!(out, "{s}.{}s", f.trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_durations() {
        assert_eq!(port_specs("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(port_specs("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(port_specs("8000-8001").unwrap().len(), 2);
        assert!(port_specs("x").is_none());
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
    }
}
