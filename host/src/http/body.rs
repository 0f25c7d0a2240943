//! Helpers for the typed response bodies the handlers declare. A body is a
//! `#[derive(Serialize)]` struct whose fields are in alphabetical order, with
//! every nested record wrapped in [`Sorted`]: the API has always serialised
//! through `serde_json::Value`, whose maps sort their keys, and its JSON stays
//! byte-compatible. Shapes only: no handler logic, no I/O.

use serde::{Serialize, Serializer};

/// A value serialised with the keys of every object in it sorted (as a
/// `serde_json::Value` is).
#[derive(Debug)]
pub struct Sorted<T>(pub T);

impl<T: Serialize> Serialize for Sorted<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::to_value(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Unsorted {
        zebra: u8,
        apple: u8,
    }

    #[test]
    fn nested_keys_come_out_sorted_like_a_json_value() {
        let typed = serde_json::to_string(&Sorted(Unsorted { zebra: 1, apple: 2 })).unwrap();
        let value = serde_json::to_string(&serde_json::json!({ "zebra": 1, "apple": 2 })).unwrap();
        assert_eq!(typed, value);
        assert_eq!(typed, r#"{"apple":2,"zebra":1}"#);
    }
}
