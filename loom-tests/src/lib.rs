//! loom models of the shmlane ring protocols live in `tests/`; they compile
//! only with `RUSTFLAGS="--cfg loom"`. Without it this crate is empty.
