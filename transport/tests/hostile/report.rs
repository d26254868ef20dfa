//! What the victim saw, written by the victim as `key=value` lines and read
//! back by the parent, with the assertions the scenarios make on it.

/// What the victim saw.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The first error (`tx:` or `rx:` and what), `None` for a clean run.
    pub(crate) first: Option<String>,
    /// Messages accepted, all phases.
    pub(crate) received: u64,
    /// Accepted messages that were not the next one, intact.
    pub(crate) bad: u64,
    pub(crate) first_bad: Option<String>,
    /// Running mode: how a final single-threaded check went (drain, then
    /// a few messages), if the race ended without an error.
    pub(crate) after: Option<String>,
    /// MPMC header `skipped` counter at the end.
    pub(crate) skipped: u64,
}

impl Report {
    pub(crate) fn render(&self) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".to_owned());
        format!(
            "first={}\nreceived={}\nbad={}\nfirst_bad={}\nafter={}\nskipped={}\n",
            opt(&self.first),
            self.received,
            self.bad,
            opt(&self.first_bad),
            opt(&self.after),
            self.skipped
        )
    }

    pub(crate) fn parse(text: &str) -> Self {
        let mut r = Report::default();
        for line in text.lines() {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("bad report line {line:?}"));
            let opt = || (value != "none").then(|| value.to_owned());
            let num = || value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            match key {
                "first" => r.first = opt(),
                "received" => r.received = num(),
                "bad" => r.bad = num(),
                "first_bad" => r.first_bad = opt(),
                "after" => r.after = opt(),
                "skipped" => r.skipped = num(),
                _ => panic!("bad report line {line:?}"),
            }
        }
        r
    }

    #[track_caller]
    pub(crate) fn clean(&self) {
        assert_eq!((self.first.as_deref(), self.bad, self.after.as_deref()), (None, 0, None), "{self:?}");
    }

    #[track_caller]
    pub(crate) fn error(&self, want: &str) {
        assert_eq!(self.first.as_deref(), Some(want), "{self:?}");
        assert_eq!(self.bad, 0, "a bad message was accepted before the error: {self:?}");
    }

    #[track_caller]
    pub(crate) fn error_where(&self, what: &str, ok: impl Fn(&str) -> bool) {
        assert!(self.first.as_deref().is_some_and(ok), "expected {what}: {self:?}");
        assert_eq!(self.bad, 0, "a bad message was accepted before the error: {self:?}");
    }

    /// `side:Positions { write: _, read: <read>, capacity: <capacity> }`.
    #[track_caller]
    pub(crate) fn error_positions(&self, side: &str, read: u64, capacity: u64) {
        let tail = format!("read: {read}, capacity: {capacity} }}");
        self.error_where(&format!("{side}:Positions .. {tail}"), |e| {
            e.starts_with(&format!("{side}:Positions {{")) && e.ends_with(&tail)
        });
    }
}
