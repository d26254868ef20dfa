//! Header validation: every field corrupted in turn gives its own error.

use shmlane_ring::{Creator, Expect, Flavor, HeapMemory, LayoutError, Memory, Params, Region};
use std::sync::Arc;

/// A heap region the test can keep poking at after handing it to a Region.
struct Shared(Arc<HeapMemory>);

// SAFETY: delegates to HeapMemory, whose guarantees hold while the Arc lives.
unsafe impl Memory for Shared {
    fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn expect() -> Expect {
    Expect { flavor: Flavor::Spsc, msg_size: 8, msg_align: 8, schema_id: Some(7) }
}

fn fresh() -> Arc<HeapMemory> {
    let params = Params::fixed(Flavor::Spsc, 16, 8, 8).unwrap().with_schema(7);
    let mem = Arc::new(HeapMemory::zeroed(params.region_len().unwrap() as usize));
    Region::create(Box::new(Shared(mem.clone())), params, Creator { pid: 1, uid: 2, unix_ns: 3 }).unwrap();
    mem
}

fn poke(mem: &HeapMemory, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= 128);
    // SAFETY: the header lies in the first 128 bytes of the live allocation
    // and nothing else touches it during the test.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_ptr().add(offset), bytes.len()) };
}

fn open(mem: &Arc<HeapMemory>) -> Result<Region, LayoutError> {
    Region::open(Box::new(Shared(mem.clone())), &expect())
}

#[test]
fn a_fresh_segment_validates() {
    let mem = fresh();
    let region = open(&mem).unwrap();
    assert_eq!(region.capacity(), 16);
    let snap = region.header_snapshot();
    assert_eq!((snap.creator_pid, snap.creator_uid, snap.created_unix_ns), (1, 2, 3));
}

#[test]
fn each_corrupt_field_has_its_own_error() {
    type Check = fn(&LayoutError) -> bool;
    let cases: Vec<(&str, usize, Vec<u8>, Check)> = vec![
        ("magic", 0, 0xdead_beef_u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::BadMagic { found: 0xdead_beef })
        }),
        ("version", 8, 2u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::UnsupportedVersion { found: 2, .. })),
        ("flavor unknown", 12, 99u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::UnknownFlavor { found: 99 })),
        ("flavor other", 12, 3u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::FlavorMismatch { .. })),
        ("state", 16, 0u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::NotReady { state: 0 })),
        ("slot size", 20, 24u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadSlotSize { found: 24, .. })),
        ("capacity odd", 24, 3u64.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadCapacity { found: 3 })),
        ("capacity zero", 24, 0u64.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadCapacity { found: 0 })),
        ("capacity huge", 24, (1u64 << 40).to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadCapacity { .. })),
        ("capacity larger", 24, 32u64.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadTotalLength { .. })),
        ("msg size", 32, u32::MAX.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadMessageSize { .. })),
        ("msg size other", 32, 4u32.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::MessageMismatch { found_size: 4, .. })
        }),
        ("msg align", 36, 3u32.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadMessageAlign { align: 3 })),
        ("schema", 40, 8u64.to_le_bytes().to_vec(), |e| {
            matches!(e, LayoutError::SchemaMismatch { expected: 7, found: 8 })
        }),
        ("total len", 48, 1u64.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadTotalLength { header: 1, .. })),
        ("slots offset", 56, 0u64.to_le_bytes().to_vec(), |e| matches!(e, LayoutError::BadSlotsOffset { found: 0 })),
    ];
    for (name, offset, bytes, check) in cases {
        let mem = fresh();
        poke(&mem, offset, &bytes);
        let err = open(&mem).expect_err(name);
        assert!(check(&err), "{name}: unexpected {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn a_region_smaller_than_its_header_claims_is_refused() {
    let mem = fresh();
    // Pretend the mapping is shorter than the file the header describes.
    struct Short(Arc<HeapMemory>);
    // SAFETY: reports a length shorter than the real allocation.
    unsafe impl Memory for Short {
        fn as_ptr(&self) -> *mut u8 {
            self.0.as_ptr()
        }
        fn len(&self) -> usize {
            self.0.len() - 64
        }
    }
    let err = Region::open(Box::new(Short(mem.clone())), &expect()).unwrap_err();
    assert!(matches!(err, LayoutError::BadTotalLength { .. }), "{err:?}");
    struct Tiny(Arc<HeapMemory>);
    // SAFETY: reports a length shorter than the real allocation.
    unsafe impl Memory for Tiny {
        fn as_ptr(&self) -> *mut u8 {
            self.0.as_ptr()
        }
        fn len(&self) -> usize {
            100
        }
    }
    let err = Region::open(Box::new(Tiny(mem)), &expect()).unwrap_err();
    assert!(matches!(err, LayoutError::RegionTooSmall { len: 100, .. }), "{err:?}");
}

#[test]
fn creating_in_too_little_memory_is_refused() {
    let params = Params::fixed(Flavor::Spsc, 16, 8, 8).unwrap();
    let err = Region::create(Box::new(HeapMemory::zeroed(4096)), params, Creator::default()).unwrap_err();
    assert!(matches!(err, LayoutError::RegionTooSmall { .. }));
}
