//! The production clock and id source. They live here rather than in an adapter because they
//! touch no external system: time-ordered UUIDs (v7) keep new rows clustered in indexes.

use chrono::{DateTime, Utc};
use filegate_domain::{ApiKeyId, FileId};
use rand::RngCore;
use uuid::Uuid;

use crate::ports::{Clock, IdSource};

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn file_id(&self) -> FileId {
        FileId::from_uuid(Uuid::now_v7())
    }

    fn api_key_id(&self) -> ApiKeyId {
        ApiKeyId::from_uuid(Uuid::now_v7())
    }

    fn secret(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }
}
