//! One classification of backend failures for every use case: a store that cannot be reached,
//! is overloaded or is missing its container is *unavailable* (the same request may succeed
//! later: 503 with Retry-After on every route); anything else is *broken* (a bug or corrupt
//! data: 500, logged). Each use case's error takes its `Unavailable` and `Unknown` variants from
//! here, so that no route classifies a failure differently from another.

use crate::ports::{BlobError, StoreError};

/// A backend failure, classified.
#[derive(Debug, thiserror::Error)]
pub enum BackendFailure {
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Broken(anyhow::Error),
}

impl From<StoreError> for BackendFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            other @ (StoreError::Conflict(_) | StoreError::Unknown(_)) => {
                Self::Broken(other.into())
            }
        }
    }
}

impl From<BlobError> for BackendFailure {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Unavailable(cause) => Self::Unavailable(cause),
            // A deployment mistake the operator fixes without a new release; until then the
            // request is as retryable as during an outage.
            missing @ BlobError::ContainerMissing(_) => Self::Unavailable(missing.into()),
            // A body reaches a store only through the upload use case, which answers it itself.
            other @ (BlobError::NotFound(_) | BlobError::Body(_) | BlobError::Unknown(_)) => {
                Self::Broken(other.into())
            }
        }
    }
}

/// Gives a use-case error with `Unavailable(anyhow::Error)` and `Unknown(anyhow::Error)`
/// variants its conversions from the ports' errors, through [`BackendFailure`].
macro_rules! classified_backend_errors {
    ($($error:ty),* $(,)?) => {$(
        impl From<$crate::backend::BackendFailure> for $error {
            fn from(e: $crate::backend::BackendFailure) -> Self {
                match e {
                    $crate::backend::BackendFailure::Unavailable(cause) => Self::Unavailable(cause),
                    $crate::backend::BackendFailure::Broken(cause) => Self::Unknown(cause),
                }
            }
        }

        impl From<$crate::ports::StoreError> for $error {
            fn from(e: $crate::ports::StoreError) -> Self {
                $crate::backend::BackendFailure::from(e).into()
            }
        }

        impl From<$crate::ports::BlobError> for $error {
            fn from(e: $crate::ports::BlobError) -> Self {
                $crate::backend::BackendFailure::from(e).into()
            }
        }
    )*};
}
pub(crate) use classified_backend_errors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_container_and_an_outage_are_unavailable_the_rest_broken() {
        let cases: [(BackendFailure, bool); 7] = [
            (
                StoreError::Unavailable(anyhow::anyhow!("down")).into(),
                true,
            ),
            (StoreError::Conflict("dup".into()).into(), false),
            (StoreError::Unknown(anyhow::anyhow!("bug")).into(), false),
            (BlobError::Unavailable(anyhow::anyhow!("down")).into(), true),
            (BlobError::ContainerMissing("uploads".into()).into(), true),
            (BlobError::NotFound("x".into()).into(), false),
            (BlobError::Unknown(anyhow::anyhow!("bug")).into(), false),
        ];
        for (failure, unavailable) in cases {
            assert_eq!(
                matches!(failure, BackendFailure::Unavailable(_)),
                unavailable,
                "{failure:?}"
            );
        }
    }
}
