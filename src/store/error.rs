//! The storage layer's one error type.

/// What went wrong with a storage call, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the column that clashed.
    #[error("unique constraint on {0}")]
    Conflict(String),
    /// The database is busy or unreachable; worth retrying later (503).
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Other(anyhow::Error),
}

impl StoreError {
    pub fn other(err: impl std::fmt::Display, context: &str) -> Self {
        StoreError::Other(anyhow::anyhow!("{context}: {err}"))
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &err {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                // SQLite says "UNIQUE constraint failed: users.email_key".
                let column = info
                    .message()
                    .rsplit(&[' ', '.'][..])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                StoreError::Conflict(column)
            }
            Error::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("unable to open") =>
            {
                StoreError::Unavailable(anyhow::anyhow!("{}", info.message()))
            }
            _ => StoreError::Other(err.into()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(err.into())
    }
}
