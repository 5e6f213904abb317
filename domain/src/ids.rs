//! Identifiers. Each is its own type so that a firm id can never be passed where a file id is
//! expected; all are UUIDs on the wire.

use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// The id of an upload session and, once committed, of the file it produced.
    FileId
);
uuid_id!(
    /// The tenant: a firm sees only its own files.
    FirmId
);
uuid_id!(
    /// The user an API key acts for; profile pictures are filed under it.
    UserId
);
uuid_id!(
    /// The public id of an API key, used to revoke it; the secret itself is never stored.
    ApiKeyId
);
uuid_id!(
    /// The id a producer gives a media task; a task delivered twice has the same id.
    TaskId
);
