//! Arbitrary bytes as a whole segment image: header validation, then
//! whichever flavor it turns out to be, both roles. See
//! `shmlane_ring::testing::open_and_drain`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shmlane_ring::testing::open_and_drain(data);
});
