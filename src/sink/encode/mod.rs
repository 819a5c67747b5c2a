//! Event → message body, for every sink (SPEC §9).
//!
//! A format is one [`Format`] variant and one module that lays an event out;
//! the value mapping they share (PostgreSQL text output → JSON values, strings,
//! timestamps, base64) is [`value`], so a new format maps no value twice.
//! Everything writes straight into the caller's buffer: no allocation per
//! event.

mod json;
pub(crate) mod value;

use crate::event::Event;

/// How an event is laid out as a message body (`--format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Format {
    /// pgstream's own JSON line (SPEC §2).
    #[default]
    Pgstream,
}

impl Format {
    /// Appends `event` as one line (with its `\n`) to `out`.
    pub(crate) fn write_event(self, out: &mut Vec<u8>, event: &Event<'_>) {
        match self {
            Format::Pgstream => json::write_event(out, event),
        }
    }
}
