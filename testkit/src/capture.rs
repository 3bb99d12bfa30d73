//! A `tracing` subscriber that keeps every event's fields as text, to check what a log would hold.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that appends every event (target and fields) and span field to one text.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<String>>);

impl Capture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        // A panic while holding the lock leaves text that is still worth reading.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut s = self.lock();
        span.record(&mut Fields(&mut s));
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Fields(&mut self.lock()));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut s = self.lock();
        s.push('\n');
        s.push_str(event.metadata().target());
        event.record(&mut Fields(&mut s));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
