//! Peak memory of a process tree: the summed RSS of some root processes and all their
//! descendants, sampled from `/proc` every [`PERIOD`] on a background thread.
//!
//! Summed RSS counts pages shared between processes once per process, so it overstates a little;
//! it is the same measure for both tools.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the tree is sampled.
pub const PERIOD: Duration = Duration::from_millis(20);

/// A running sampler; [`Sampler::stop`] returns the peak.
pub struct Sampler {
    roots: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling the trees under `roots` (more can be added while it runs).
    pub fn start(roots: &[u32]) -> Sampler {
        let roots = Arc::new(Mutex::new(roots.to_vec()));
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (roots, stop, peak) = (roots.clone(), stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let now = {
                        let roots = roots.lock().unwrap_or_else(PoisonError::into_inner);
                        tree_rss(&roots)
                    };
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(PERIOD);
                }
            })
        };
        Sampler {
            roots,
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Adds a root (a client process started after the sampler).
    pub fn add_root(&self, pid: u32) {
        self.roots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pid);
        // Sample at once, so a short-lived process is seen at least once.
        let now = tree_rss(&self.roots.lock().unwrap_or_else(PoisonError::into_inner));
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    /// Stops sampling; the peak summed RSS in bytes.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::SeqCst)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The summed RSS (bytes) of `roots` and their descendants now.
pub fn tree_rss(roots: &[u32]) -> u64 {
    let parents = parent_map();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, parent) in &parents {
        children.entry(*parent).or_default().push(*pid);
    }
    let mut seen = HashSet::new();
    let mut queue: Vec<u32> = roots.to_vec();
    let mut total = 0;
    while let Some(pid) = queue.pop() {
        if !seen.insert(pid) {
            continue;
        }
        total += rss(pid);
        if let Some(kids) = children.get(&pid) {
            queue.extend(kids);
        }
    }
    total
}

/// Every process's parent, from `/proc/<pid>/stat`.
fn parent_map() -> HashMap<u32, u32> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(parent) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| parent_of(&stat))
        {
            parents.insert(pid, parent);
        }
    }
    parents
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
fn parent_of(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// A process's RSS in bytes (`VmRSS` of `/proc/<pid>/status`; 0 once it is gone).
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| vm_rss(&status))
        .unwrap_or(0)
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse() {
        assert_eq!(parent_of("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn status_parses() {
        assert_eq!(vm_rss("Name: x\nVmRSS:\t  1234 kB\n"), Some(1234 * 1024));
        assert_eq!(vm_rss("Name: x\n"), None);
    }

    #[test]
    fn own_process_has_memory() {
        assert!(tree_rss(&[std::process::id()]) > 0);
    }
}
