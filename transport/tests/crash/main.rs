//! The crash suite (issue #8): real processes SIGKILLed at random points,
//! many times over, for every flavor.
//!
//! What "committed" means is made provable by a [`Board`]: a few counters
//! in a small shared file that a child bumps *after* each `send` / `commit`
//! / `recv` returns. Its stores live in the page cache, not in the child,
//! so they survive the SIGKILL and the parent reads them once the child is
//! reaped. Message `i` is a pure function of `i` ([`Msg::new`], or
//! [`fill_record`] for byte records), so the receiver checks each one is
//! exactly the next, intact.
//!
//! What the protocol guarantees, and what each scenario asserts:
//!
//! - A message is published by one store (the slot's sequence word for the
//!   typed rings, `write_pos` in `Grant::commit_len` for byte rings), made
//!   before `send`/`commit` returns. So after a producer is killed, the
//!   survivor receives exactly messages `0..R` with `P <= R <= P + 1`, `P`
//!   the child's counter: the one message in flight may or may not have
//!   been published, nothing after it was, and nothing is duplicated or torn.
//!   A kill inside an open `Grant` (between `reserve` and `commit`) publishes
//!   nothing: the grant is filled with [`POISON`] first, and `R == P`.
//! - A consumer publishes `read_pos` after copying a message out, before
//!   `recv` returns. After it is killed, `C <= read_pos <= C + 1` for its
//!   counter `C`, and a new consumer receives exactly the messages from
//!   `read_pos` on, once each. (Message `read_pos - 1` is lost to the
//!   application when the kill lands between `recv` returning and the
//!   application recording it: no queue without acknowledgements avoids that.)
//!   A byte record is released when its `ReadGuard` drops, so a consumer
//!   killed holding one leaves it to the next consumer: at-least-once for
//!   the record in hand.
//! - MPMC: a producer killed between claiming a slot and committing it
//!   does not wedge the consumers: the slot is skipped and counted.
//! - A new producer on a ring whose producer was killed continues at the
//!   first position nobody published (its attach scans published slots), so
//!   every committed message is delivered once, across the crash.
//! - The survivor gets `Disconnected` soon after the kill: measured every
//!   iteration and printed (run with `--nocapture`). The promise is 100 ms;
//!   on a noisy 2-core VM one iteration can stall for longer, so a hard
//!   per-iteration 100 ms would flake: the median must be under 100 ms and
//!   every single one under 1 s.
//! - A child's panic fails the test even when the SIGKILL lands while it is
//!   unwinding (it is written on the board by a panic hook).
//! - No segment leaks: a creator that leaves unlinks the name; a segment
//!   whose creator was killed is reported dead by `inspect` (every role
//!   dead, which is what `shmlane clean` removes) and removed through
//!   `shmlane::remove`.
//!
//! Randomness is seeded and printed; rerun a failure with
//! `SHMLANE_CRASH_SEED=<seed>`.
//!
//! Modules: `spsc`, `bytes` and `mpmc` hold the bodies of the tests of each
//! flavor (this file declares the tests, so their names stay top-level);
//! `children` the child roles, `board` the shared counter file, `payload`
//! the messages and records, `support` killing, reaping and timing.
//!
//! [`Board`]: board::Board
//! [`Msg::new`]: common::Msg::new
//! [`fill_record`]: payload::fill_record
//! [`POISON`]: payload::POISON

#[path = "../common/mod.rs"]
mod common;

mod board;
mod bytes;
mod children;
mod mpmc;
mod payload;
mod spsc;
mod support;

use board::{Board, PANICKED};

/// Dispatches a child process to its role; a no-op in the parent run.
#[test]
fn child_entry() {
    let Some(role) = common::role() else { return };
    // A child's panic must fail the test even when our SIGKILL lands while
    // it is still unwinding (its exit status then says "killed"): it is
    // written on the board first, and the parent checks in `reap`.
    let board = common::var("BOARD");
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        Board::open(&board).set(PANICKED, 1);
        report(info);
    }));
    match role.as_str() {
        "spsc_producer" => children::spsc_producer(),
        "spsc_consumer" => children::spsc_consumer(),
        "byte_producer" => children::byte_producer(),
        "byte_consumer" => children::byte_consumer(),
        "mpmc_producer" => children::mpmc_producer(),
        "mpmc_consumer" => children::mpmc_consumer(),
        other => panic!("unknown child role {other}"),
    }
}

/// A typed SPSC producer process is SIGKILLed at a random moment, 30
/// times: two in three while streaming (the consumer keeps up; random wait
/// strategies on both sides; the kill lands in `send`, between two sends,
/// or while spinning on a full ring), one in three while parked
/// (`WaitStrategy::Park`) on a full ring the consumer stopped reading.
/// The consumer gets messages `0..R`, each once, intact, `P <= R <= P + 1`
/// (exactly `R == P`, a full ring's worth after the pause, when parked),
/// then `Disconnected`.
#[test]
fn spsc_producer_sigkilled_at_random_points() {
    spsc::spsc_producer_sigkilled_at_random_points();
}

/// A byte-ring producer process is SIGKILLed 30 times: a third at a random
/// moment (it holds each grant for a random while one record in three, so
/// some kills land between `reserve` and `commit`), a third certainly inside
/// a grant (the child stops in it and says so), a third parked in `reserve`
/// on a full ring. Records `0..R` arrive once each, with their exact length
/// and bytes, `P <= R <= P + 1`, and `R == P` when the kill was inside a
/// grant or parked: the poisoned, uncommitted record is never delivered.
#[test]
fn byte_producer_sigkilled_inside_grants_and_parked() {
    bytes::byte_producer_sigkilled_inside_grants_and_parked();
}

/// The consumer process is SIGKILLed while this producer (`Park`, or
/// spin-then-park) waits on the full ring, 20 times: half after the child
/// stopped reading at a random message (the producer certainly asleep in
/// `send`), half while it reads slowly (the kill lands anywhere in its
/// loop, in `recv` or between two). `send` returns `Disconnected` with the
/// message; `C <= read_pos <= C + 1`; then a new consumer gets exactly the
/// messages from `read_pos` on, and the producer continues.
#[test]
fn consumer_sigkilled_while_producer_parked() {
    spsc::consumer_sigkilled_while_producer_parked();
}

/// The byte-ring consumer process is SIGKILLed while this producer is
/// parked in `reserve` on the full ring, 16 times: half while the child
/// holds a record's `ReadGuard` (it stops inside one), half at a random
/// moment while it reads slowly. `reserve` returns `Disconnected`. A record
/// whose guard was not dropped was never released: the new consumer gets
/// it again (at-least-once for the record in hand), so it starts at `C`
/// (guard held, or between records) or `C + 1` (killed between the drop
/// and the count), and then gets every later committed record once.
#[test]
fn byte_consumer_sigkilled_while_producer_parked() {
    bytes::byte_consumer_sigkilled_while_producer_parked();
}

/// Both processes are SIGKILLed (the producer created the segment, so
/// nobody unlinks it), 20 times, at a random moment, in random order. The
/// segment then reads "every role dead" (what `shmlane clean` removes). A
/// new pair attaches instead: the new producer continues at the first
/// position the old one did not publish (`P <= start <= P + 1`), the new
/// consumer at `read_pos` (`C <= read_pos <= C + 1`), and every message
/// committed and not consumed before the crash is delivered exactly once,
/// followed by the new producer's. Afterwards the segment is dead again and
/// is removed.
#[test]
fn both_sigkilled_then_new_pair_resumes() {
    spsc::both_sigkilled_then_new_pair_resumes();
}

/// Two MPMC producer processes are SIGKILLed one after the other at random
/// moments, 30 times, sending 16 KiB messages (so a kill often lands
/// mid-write). A producer killed between claiming a slot and
/// committing it must not wedge the consumer: the slot is skipped and
/// counted. Each producer's messages arrive in order, once, intact,
/// `P <= R <= P + 1` each; the skipped count is at most the number of
/// producers whose in-flight message was not delivered; `Disconnected`
/// follows the second kill.
#[test]
fn mpmc_producers_sigkilled_mid_write() {
    mpmc::mpmc_producers_sigkilled_mid_write();
}

/// MPMC consumers SIGKILLed at random while a producer streams wide
/// messages into a small ring: a kill often lands between a consumer's
/// taking a message and freeing its slot. The producer must never wedge on
/// that slot (it releases it once it sees the claimant dead); no message is
/// delivered twice; each dead consumer takes at most the message it held.
#[test]
fn mpmc_consumers_sigkilled_mid_read_never_wedge_the_producer() {
    mpmc::mpmc_consumers_sigkilled_mid_read_never_wedge_the_producer();
}

/// Found by `mpmc_producers_sigkilled_mid_write`: a slot skipped for a dead
/// claimer (sequence `pos + 1 | SKIPPED`) that no consumer has passed yet
/// must read "full" to a live producer waiting for that slot's next lap,
/// not "corrupted". The window is real: the survivor fills the ring while
/// the consumer is wedged, then spins on exactly that slot while the
/// consumer skips it. Deterministic, on the ring in one process.
#[test]
fn mpmc_skipped_slot_not_yet_passed_is_full_not_corrupt() {
    mpmc::mpmc_skipped_slot_not_yet_passed_is_full_not_corrupt();
}
