//! The bytes of chunks still arriving, per upload, so that blocks sent in parallel cannot pass
//! their mode's cap together: each sees what the others are receiving, not only what the
//! metadata store has recorded.
//!
//! The count lives in this process. Two servers behind one balancer each count their own
//! share, so the cap is then enforced early per server and exactly at the commit, which checks
//! the file's total again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use filegate_domain::FileId;

/// Bytes in flight per upload. Cloning shares the count.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashMap<FileId, u64>>>);

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<FileId, u64>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An empty hold on the upload's count, to grow as the chunk's bytes arrive.
    pub(crate) fn hold(&self, file: FileId) -> Hold {
        Hold(Arc::new(Mutex::new(HoldState {
            registry: self.clone(),
            file,
            bytes: 0,
        })))
    }

    #[cfg(test)]
    fn bytes(&self, file: FileId) -> u64 {
        self.lock().get(&file).copied().unwrap_or(0)
    }
}

/// One chunk's bytes counted in its upload's total, given back when the last clone is
/// dropped: the use case keeps a clone until the block is recorded, so that its bytes are never
/// missing from both the recorded total and the count in flight.
#[derive(Debug, Clone)]
pub(crate) struct Hold(Arc<Mutex<HoldState>>);

#[derive(Debug)]
struct HoldState {
    registry: InFlight,
    file: FileId,
    bytes: u64,
}

impl Hold {
    /// Counts `n` more bytes, unless `recorded` bytes plus every byte in flight for the upload
    /// plus `n` would pass `cap`; then answers that size and counts nothing more.
    pub(crate) fn grow(&self, n: u64, recorded: u64, cap: u64) -> Result<(), u64> {
        let mut hold = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts = hold.registry.lock();
        let in_flight = counts.entry(hold.file).or_insert(0);
        let size = recorded.saturating_add(*in_flight).saturating_add(n);
        if size > cap {
            return Err(size);
        }
        *in_flight += n;
        drop(counts);
        hold.bytes += n;
        Ok(())
    }
}

impl Drop for HoldState {
    fn drop(&mut self) {
        let mut counts = self.registry.lock();
        if let Some(in_flight) = counts.get_mut(&self.file) {
            *in_flight = in_flight.saturating_sub(self.bytes);
            if *in_flight == 0 {
                counts.remove(&self.file);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn holds_share_their_uploads_cap_and_give_back_when_dropped() {
        let registry = InFlight::default();
        let file = FileId::from_uuid(Uuid::from_u128(1));
        let other = FileId::from_uuid(Uuid::from_u128(2));
        let first = registry.hold(file);
        let second = registry.hold(file);
        first.grow(60, 10, 100).unwrap();
        assert_eq!(second.grow(40, 10, 100), Err(110));
        second.grow(30, 10, 100).unwrap();
        registry.hold(other).grow(100, 0, 100).unwrap();
        assert_eq!(registry.bytes(file), 90);
        let kept = first.clone();
        drop(first);
        assert_eq!(registry.bytes(file), 90, "a clone keeps the hold");
        drop(kept);
        assert_eq!(registry.bytes(file), 30);
        drop(second);
        assert_eq!(registry.bytes(file), 0);
        assert!(registry.lock().is_empty(), "no entry outlives its holds");
    }
}
