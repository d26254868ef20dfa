//! What a scenario is: the flavor, the mode, the victim's program after
//! the attack and what it must see; and the timeouts that bound every run.

use crate::attacker::Target;
use crate::common::Rng;
use crate::report::Report;
use crate::scenarios::SCENARIOS;
use shmlane::{OpenError, WaitStrategy};
use std::time::Duration;

/// Timeout of a victim's blocking call in the paused program: only ever
/// reached when the ring is wedged.
pub(crate) const OP: Duration = Duration::from_millis(500);
/// Timeout of the deliberate waits on an empty or full ring.
pub(crate) const SHORT: Duration = Duration::from_millis(100);
/// Timeout of each call in the racing threads (they loop on it).
pub(crate) const RACE_OP: Duration = Duration::from_millis(200);
/// Longest a deliberate `SHORT` wait may take before we call it a hang.
pub(crate) const HANG: Duration = Duration::from_secs(5);
/// Bound on every child: a victim still running after this is hung.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Spsc,
    Bytes,
    Mpmc,
}

/// Messages exchanged in lockstep before the attack, and sent on top of
/// them, unread, so the attack finds data in flight.
pub(crate) fn pre_counts(kind: Kind) -> (u64, u64) {
    match kind {
        // Five laps and a bit: the victim pauses at write 90, read 85.
        Kind::Spsc | Kind::Mpmc => (85, 5),
        // ~7 laps; two unread records always fit 256 bytes, padding included.
        Kind::Bytes => (40, 2),
    }
}

/// One part of the victim's program after the attack.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// `try_send` until the ring says full.
    Fill,
    /// `try_recv` until the ring says empty.
    Drain,
    /// `n` times: send (timeout [`OP`]), then receive (timeout [`OP`]).
    Flow(u32),
    /// On an empty ring: a receive of [`SHORT`] must time out, not hang.
    WaitEmpty,
    /// Fill, then a send of [`SHORT`] must time out, not hang.
    WaitFull,
}

/// The producer refreshes `read_pos` (on filling up) before the consumer
/// republishes it.
pub(crate) const TX_FIRST: &[Step] = &[Step::Fill, Step::Drain, Step::Flow(32)];
/// The consumer meets the damage first.
pub(crate) const RX_FIRST: &[Step] = &[Step::Drain, Step::Fill, Step::Drain, Step::Flow(32)];
/// Sleeps on both doorbells, then works.
pub(crate) const SLEEPY: &[Step] = &[Step::Drain, Step::WaitEmpty, Step::WaitFull, Step::Drain, Step::Flow(32)];

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    AtRest(&'static [Step]),
    Paused(&'static [Step]),
    /// The attacker hammers for `ms`, or until the victim reports an error.
    Running {
        ms: u64,
    },
}

/// Positions when the attacker wrote (paused mode).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx {
    pub(crate) w: u64,
    pub(crate) r: u64,
}

/// Checks a fresh open made after the attack.
pub(crate) type Reopen = fn(&Ctx, Result<(), OpenError>);

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) mode: Mode,
    pub(crate) wait: WaitStrategy,
    pub(crate) attack: fn(&Target<'_>, &mut Rng),
    /// Checks a fresh open made after the attack (header damage).
    pub(crate) reopen: Option<Reopen>,
    pub(crate) expect: fn(&Ctx, &Report),
}

const SPIN_PARK: WaitStrategy = WaitStrategy::SpinThenPark { spins: 64 };

pub(crate) const fn paused(
    name: &'static str,
    kind: Kind,
    steps: &'static [Step],
    attack: fn(&Target<'_>, &mut Rng),
    expect: fn(&Ctx, &Report),
) -> Scenario {
    Scenario { name, kind, mode: Mode::Paused(steps), wait: SPIN_PARK, attack, reopen: None, expect }
}

/// A header field damaged under a running victim: the victim, which
/// validated the header once at open, is unaffected; a new open is refused.
pub(crate) const fn header(
    name: &'static str,
    kind: Kind,
    attack: fn(&Target<'_>, &mut Rng),
    reopen: Reopen,
) -> Scenario {
    Scenario { reopen: Some(reopen), ..paused(name, kind, RX_FIRST, attack, clean) }
}

pub(crate) const fn at_rest(
    name: &'static str,
    kind: Kind,
    steps: &'static [Step],
    attack: fn(&Target<'_>, &mut Rng),
    expect: fn(&Ctx, &Report),
) -> Scenario {
    Scenario { mode: Mode::AtRest(steps), ..paused(name, kind, steps, attack, expect) }
}

pub(crate) const fn running(
    name: &'static str,
    kind: Kind,
    ms: u64,
    attack: fn(&Target<'_>, &mut Rng),
    expect: fn(&Ctx, &Report),
) -> Scenario {
    Scenario { mode: Mode::Running { ms }, ..paused(name, kind, RX_FIRST, attack, expect) }
}

pub(crate) fn clean(_: &Ctx, r: &Report) {
    r.clean();
}

/// Survived: exited normally within the limit (checked for every scenario);
/// any typed outcome, and accepted messages may be wrong (undetectable).
pub(crate) fn survived(_: &Ctx, _: &Report) {}

pub(crate) fn scenario(name: &str) -> &'static Scenario {
    SCENARIOS.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no scenario {name}"))
}
