//! Block numbering and the set of blocks a session has staged. Completion is a property of this
//! set alone: a file is ready to commit exactly when every index `0..total` is present.

use std::fmt;

/// Azure allows 50,000 committed blocks per block blob; the contract adopts the same bound so
/// that every file accepted here can be committed there.
pub const MAX_TOTAL_BLOCKS: u32 = 50_000;

/// A block-numbering rule broken by a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockRuleError {
    #[error("TotalBlocks must be between 1 and {MAX_TOTAL_BLOCKS}, got {0}")]
    TotalBlocksOutOfRange(i64),
    #[error("BlockIndex must be zero or more, got {0}")]
    NegativeIndex(i64),
    #[error("BlockIndex {index} is out of range: TotalBlocks is {total}, so the last index is {last}", last = total - 1)]
    IndexOutOfRange { index: i64, total: u32 },
}

/// The number of blocks of a whole file, within `1..=MAX_TOTAL_BLOCKS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TotalBlocks(u32);

impl TotalBlocks {
    pub fn new(total: i64) -> Result<Self, BlockRuleError> {
        match u32::try_from(total) {
            Ok(t) if (1..=MAX_TOTAL_BLOCKS).contains(&t) => Ok(Self(t)),
            _ => Err(BlockRuleError::TotalBlocksOutOfRange(total)),
        }
    }

    pub const fn get(&self) -> u32 {
        self.0
    }

    /// How many blocks of its own a store may stage for each of this file's blocks, so that
    /// the whole file still fits in [`MAX_TOTAL_BLOCKS`] committed blocks (Azure's limit): a
    /// store that sends a block on in pieces as it arrives stays within this.
    pub const fn store_blocks_per_block(&self) -> u32 {
        MAX_TOTAL_BLOCKS / self.0
    }

    /// Checks a raw index against this total; the only way to make a `BlockIndex` for a session.
    pub fn index(&self, index: i64) -> Result<BlockIndex, BlockRuleError> {
        if index < 0 {
            return Err(BlockRuleError::NegativeIndex(index));
        }
        match u32::try_from(index) {
            Ok(i) if i < self.0 => Ok(BlockIndex(i)),
            _ => Err(BlockRuleError::IndexOutOfRange {
                index,
                total: self.0,
            }),
        }
    }
}

impl fmt::Display for TotalBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A zero-based block index, known to be below its session's total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockIndex(u32);

impl BlockIndex {
    pub const FIRST: BlockIndex = BlockIndex(0);

    pub const fn get(&self) -> u32 {
        self.0
    }

    pub const fn is_first(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for BlockIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The staged block indices of one session, as a bit set sized by its total (at most 6.25 KiB
/// for 50,000 blocks), so that "what is missing" is cheap to answer for a resuming client.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockSet {
    total: TotalBlocks,
    words: Vec<u64>,
    len: u32,
}

impl BlockSet {
    pub fn new(total: TotalBlocks) -> Self {
        let words = total.get().div_ceil(64) as usize;
        Self {
            total,
            words: vec![0; words],
            len: 0,
        }
    }

    /// Builds a set from stored indices; indices out of range are a broken invariant of the
    /// store and are reported rather than ignored.
    pub fn from_indices(
        total: TotalBlocks,
        indices: impl IntoIterator<Item = u32>,
    ) -> Result<Self, BlockRuleError> {
        let mut set = Self::new(total);
        for i in indices {
            let index = total.index(i64::from(i))?;
            set.insert(index);
        }
        Ok(set)
    }

    pub const fn total(&self) -> TotalBlocks {
        self.total
    }

    /// Adds an index; answers whether it was new (a re-sent block is not).
    pub fn insert(&mut self, index: BlockIndex) -> bool {
        let (word, bit) = Self::position(index);
        let mask = 1u64 << bit;
        let fresh = self.words[word] & mask == 0;
        if fresh {
            self.words[word] |= mask;
            self.len += 1;
        }
        fresh
    }

    pub fn contains(&self, index: BlockIndex) -> bool {
        let (word, bit) = Self::position(index);
        self.words.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
    }

    pub const fn len(&self) -> u32 {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn is_complete(&self) -> bool {
        self.len == self.total.get()
    }

    /// The received indices in ascending order.
    pub fn received(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.total.get()).filter(|i| self.contains(BlockIndex(*i)))
    }

    /// The indices still to be sent, in ascending order.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.total.get()).filter(|i| !self.contains(BlockIndex(*i)))
    }

    /// The missing indices as runs `[first, last]` (inclusive), ascending: a few runs for an
    /// upload sent in order or in parallel, where the list of indices would have thousands.
    pub fn missing_ranges(&self) -> Vec<[u32; 2]> {
        let mut runs: Vec<[u32; 2]> = Vec::new();
        for i in self.missing() {
            match runs.last_mut() {
                Some(run) if run[1] + 1 == i => run[1] = i,
                _ => runs.push([i, i]),
            }
        }
        runs
    }

    fn position(index: BlockIndex) -> (usize, u32) {
        ((index.0 / 64) as usize, index.0 % 64)
    }
}

impl fmt::Debug for BlockSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockSet")
            .field("total", &self.total.get())
            .field("received", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn total_blocks_must_be_between_one_and_fifty_thousand() {
        assert!(TotalBlocks::new(0).is_err());
        assert!(TotalBlocks::new(-3).is_err());
        assert!(TotalBlocks::new(50_001).is_err());
        assert_eq!(TotalBlocks::new(1).map(|t| t.get()), Ok(1));
        assert_eq!(TotalBlocks::new(50_000).map(|t| t.get()), Ok(50_000));
    }

    #[test]
    fn an_index_must_be_below_the_total() {
        let total = TotalBlocks::new(5).unwrap();
        assert_eq!(total.index(4).map(|i| i.get()), Ok(4));
        assert_eq!(
            total.index(5),
            Err(BlockRuleError::IndexOutOfRange { index: 5, total: 5 })
        );
        assert_eq!(total.index(-1), Err(BlockRuleError::NegativeIndex(-1)));
    }

    #[test]
    fn a_resent_block_is_not_counted_twice() {
        let total = TotalBlocks::new(2).unwrap();
        let mut set = BlockSet::new(total);
        assert!(set.insert(total.index(1).unwrap()));
        assert!(!set.insert(total.index(1).unwrap()));
        assert_eq!(set.len(), 1);
        assert!(!set.is_complete());
    }

    proptest! {
        #[test]
        fn the_set_agrees_with_a_reference_set(
            total in 1u32..=300,
            picks in proptest::collection::vec(0u32..300, 0..400),
        ) {
            let total_blocks = TotalBlocks::new(i64::from(total)).unwrap();
            let mut set = BlockSet::new(total_blocks);
            let mut reference = BTreeSet::new();
            for p in picks.into_iter().filter(|p| *p < total) {
                let fresh = set.insert(total_blocks.index(i64::from(p)).unwrap());
                prop_assert_eq!(fresh, reference.insert(p));
            }
            prop_assert_eq!(set.len() as usize, reference.len());
            prop_assert_eq!(set.received().collect::<Vec<_>>(), reference.iter().copied().collect::<Vec<_>>());
            let missing: Vec<u32> = (0..total).filter(|i| !reference.contains(i)).collect();
            prop_assert_eq!(set.missing().collect::<Vec<_>>(), missing.clone());
            let expanded: Vec<u32> = set.missing_ranges().iter().flat_map(|[a, b]| *a..=*b).collect();
            prop_assert_eq!(expanded, missing);
            // Runs never touch: each is as long as it can be.
            prop_assert!(set.missing_ranges().windows(2).all(|w| w[0][1] + 1 < w[1][0]));
            prop_assert_eq!(set.is_complete(), reference.len() == total as usize);
        }

        #[test]
        fn from_indices_round_trips(total in 1u32..=200, seed in proptest::collection::btree_set(0u32..200, 0..200)) {
            let total_blocks = TotalBlocks::new(i64::from(total)).unwrap();
            let wanted: Vec<u32> = seed.into_iter().filter(|i| *i < total).collect();
            let set = BlockSet::from_indices(total_blocks, wanted.clone()).unwrap();
            prop_assert_eq!(set.received().collect::<Vec<_>>(), wanted);
        }
    }
}
