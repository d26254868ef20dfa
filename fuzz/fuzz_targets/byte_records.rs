//! Arbitrary positions and data area under a valid byte-ring header: the
//! record parser and the producer's padding logic. See
//! `shmlane_ring::testing::drain_byte_records`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shmlane_ring::testing::drain_byte_records(data);
});
