//! The options are in place once the allocator has allocated: what the `trunkline` binary
//! relies on to keep its memory bounds (see the crate's documentation).

#[global_allocator]
static ALLOCATOR: trunkline_alloc::Allocator = trunkline_alloc::Allocator;

#[test]
fn the_first_allocation_sets_the_tuned_options() {
    let held: Vec<Box<[u8; 64]>> = (0..1_000).map(|_| Box::new([7u8; 64])).collect();
    assert_eq!(
        held.iter()
            .map(|block| usize::from(block[63]))
            .sum::<usize>(),
        7_000
    );
    assert_eq!(trunkline_alloc::options(), trunkline_alloc::TUNED);
}
