//! The child roles: each holds one end of a ring, moves messages forever
//! and counts on the [`Board`] what returned, until the parent kills it.

use crate::board::{Board, COMMITTED, CONSUMED, IN_GRANT, READY};
use crate::common::{self, Msg, Rng, assert_msg, strategy_var};
use crate::payload::{POISON, Wide, check_record, fill_record, record_len};
use crate::support::spin;
use shmlane::{
    ByteConsumer, ByteProducer, Consumer, MpmcConsumer, MpmcProducer, Options, Producer, RecvError, SendError,
};

/// Child: the producer of `NAME` (creating it with capacity `CREATE` if
/// given, else opening it). Sends `Msg::new(0)`, `Msg::new(1)`, ... forever,
/// idling up to `PACE` random spins before each, and bumps `COMMITTED` after
/// each `send` returns.
pub(crate) fn spsc_producer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let opts = Options::new().wait(strategy_var());
    let mut tx = match common::var_opt("CREATE") {
        Some(capacity) => Producer::<Msg>::create(&name, opts.capacity(capacity.parse().expect("CREATE"))),
        None => Producer::<Msg>::open(&name, opts),
    }
    .expect("producer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    for seq in 0.. {
        spin(rng.up_to(pace));
        match tx.send(Msg::new(seq)) {
            Ok(()) => board.set(COMMITTED, seq + 1),
            // Only when both sides are killed: the consumer died first.
            Err(SendError::Disconnected(_)) => common::sleep_forever(),
            Err(e) => panic!("send {seq}: {e}"),
        }
    }
}

/// Child: the consumer of `NAME` (a fresh ring: it starts at message 0).
/// Receives and checks each message and bumps `CONSUMED` after each `recv`
/// returns, idling up to `PACE` random spins after each; after `STOP_AFTER`
/// messages (if given) it stays attached without receiving.
pub(crate) fn spsc_consumer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut rx = Consumer::<Msg>::open(&name, Options::new().wait(strategy_var())).expect("open consumer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    let stop_after = common::var_opt("STOP_AFTER").map_or(u64::MAX, |s| s.parse().expect("STOP_AFTER"));
    for seq in 0..stop_after {
        match rx.recv() {
            Ok(m) => {
                assert_msg(&m, seq);
                board.set(CONSUMED, seq + 1);
            }
            // Only when both sides are killed: the producer died first.
            Err(RecvError::Disconnected) => common::sleep_forever(),
            Err(e) => panic!("recv {seq}: {e}"),
        }
        spin(rng.up_to(pace));
    }
    common::sleep_forever()
}

/// Child: the producer of byte segment `NAME`. Record `seq` is reserved
/// (sometimes a little larger than it is committed), filled with
/// [`POISON`], announced in `IN_GRANT`, sometimes held for a random while,
/// then written and committed; `COMMITTED` is bumped after `commit_len`
/// returns. At record `HOLD_AT` (if given) it stays inside the grant.
pub(crate) fn byte_producer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut tx = ByteProducer::open(&name, Options::new().wait(strategy_var())).expect("open byte producer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let hold_at = common::var_opt("HOLD_AT").map(|h| h.parse::<u64>().expect("HOLD_AT"));
    for seq in 0.. {
        let len = record_len(seq);
        let extra = if rng.up_to(3) == 0 { rng.up_to(16) } else { 0 };
        let mut grant = tx.reserve(len + extra).unwrap_or_else(|e| panic!("reserve record {seq}: {e}"));
        grant.fill(POISON);
        board.set(IN_GRANT, seq + 1);
        if hold_at == Some(seq) {
            common::sleep_forever();
        }
        if rng.up_to(3) == 0 {
            spin(rng.up_to(20_000));
        }
        fill_record(seq, &mut grant[..len]);
        grant.commit_len(len);
        board.set(COMMITTED, seq + 1);
        board.set(IN_GRANT, 0);
    }
}

/// Child: the consumer of byte segment `NAME` (fresh: from record 0).
/// Sets `IN_GRANT` to `seq + 1` while it holds record `seq`'s guard,
/// checks the record, and bumps `CONSUMED` once the guard is dropped (its
/// space released), idling up to `PACE` random spins after each. At record
/// `HOLD_AT` (if given) it keeps the guard and stays.
pub(crate) fn byte_consumer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut rx = ByteConsumer::open(&name, Options::new().wait(strategy_var())).expect("open byte consumer");
    board.set(READY, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    let hold_at = common::var_opt("HOLD_AT").map(|h| h.parse::<u64>().expect("HOLD_AT"));
    for seq in 0.. {
        let record = match rx.recv() {
            Ok(record) => record,
            Err(e) => panic!("recv record {seq}: {e}"),
        };
        board.set(IN_GRANT, seq + 1);
        check_record(&record, seq);
        if hold_at == Some(seq) {
            common::sleep_forever();
        }
        drop(record);
        board.set(CONSUMED, seq + 1);
        board.set(IN_GRANT, 0);
        spin(rng.up_to(pace));
    }
}

/// Child: MPMC producer number `ID` on `NAME`, sending [`Wide::new`]`(ID,
/// n)` for n = 0, 1, ... forever, idling up to `PACE` random spins before
/// each, and bumping `COMMITTED + ID` after each `send`.
pub(crate) fn mpmc_producer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let id = common::var_u64("ID");
    let mut tx = MpmcProducer::<Wide>::open(&name, Options::new().wait(strategy_var())).expect("open mpmc producer");
    board.set(READY + id as usize, 1);
    let mut rng = Rng::new(common::var_u64("SEED"));
    let pace = common::var_u64("PACE") as usize;
    let mut message = Wide::new(id, 0);
    for n in 0.. {
        spin(rng.up_to(pace));
        message.set_seq(id, n);
        if let Err(e) = tx.send(message) {
            panic!("producer {id} send {n}: {e}");
        }
        board.set(COMMITTED + id as usize, n + 1);
    }
}

/// Child: an MPMC consumer of producer 0's wide messages. Checks each is
/// whole and later than the last, records its first on the board (`READY`)
/// and `n + 1` of the last (`CONSUMED`), until it is killed.
pub(crate) fn mpmc_consumer() {
    let name = common::var("NAME");
    let board = Board::open(&common::var("BOARD"));
    let mut rx = MpmcConsumer::<Wide>::open(&name, Options::new()).expect("open mpmc consumer");
    let mut last = None;
    loop {
        let m = rx.recv_timeout(common::TIMEOUT).unwrap_or_else(|e| panic!("mpmc consumer: {e}"));
        let (id, n) = m.check().unwrap_or_else(|e| panic!("mpmc consumer: {e}"));
        assert_eq!(id, 0, "one producer");
        assert!(last.is_none_or(|l| n > l), "message {n} after {last:?}: duplicated or reordered");
        if last.is_none() {
            board.set(READY, n + 1);
        }
        last = Some(n);
        board.set(CONSUMED, n + 1);
    }
}
