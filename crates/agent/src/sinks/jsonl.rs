//! One JSON object per line on stdout (`--json`): the event stream exactly
//! as the report endpoint receives it.

use crate::events::{Event, Sink};
use std::io::Write;

pub struct JsonLines<W: Write + Send>(pub W);

impl<W: Write + Send> Sink for JsonLines<W> {
    fn event(&mut self, ev: &Event) {
        if let Ok(line) = serde_json::to_string(ev) {
            let _ = writeln!(self.0, "{line}");
            let _ = self.0.flush();
        }
    }
}
