//! Reading columns out of `AnyRow`s: every integer comes back as i64 and is
//! narrowed here, where a value that does not fit is a decode error, not a wrap.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::StorageError;

fn decode_error(column: &str, message: String) -> StorageError {
    StorageError::Database(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: message.into(),
    })
}

pub(super) fn text(row: &AnyRow, column: &str) -> Result<String, StorageError> {
    Ok(row.try_get(column)?)
}

pub(super) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, StorageError> {
    Ok(row.try_get(column)?)
}

pub(super) fn int(row: &AnyRow, column: &str) -> Result<i64, StorageError> {
    Ok(row.try_get(column)?)
}

pub(super) fn u32(row: &AnyRow, column: &str) -> Result<u32, StorageError> {
    let value = int(row, column)?;
    u32::try_from(value).map_err(|_| decode_error(column, format!("{value} does not fit in u32")))
}

pub(super) fn u64(row: &AnyRow, column: &str) -> Result<u64, StorageError> {
    let value = int(row, column)?;
    u64::try_from(value).map_err(|_| decode_error(column, format!("{value} is negative")))
}

pub(super) fn json(row: &AnyRow, column: &str) -> Result<serde_json::Value, StorageError> {
    let raw = text(row, column)?;
    serde_json::from_str(&raw).map_err(|e| decode_error(column, format!("stored JSON: {e}")))
}

pub(super) fn opt_json(
    row: &AnyRow,
    column: &str,
) -> Result<Option<serde_json::Value>, StorageError> {
    opt_text(row, column)?
        .map(|raw| {
            serde_json::from_str(&raw)
                .map_err(|e| decode_error(column, format!("stored JSON: {e}")))
        })
        .transpose()
}
