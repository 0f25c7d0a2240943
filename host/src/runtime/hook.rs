//! The hooks of the WIT contract, as the host names them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A hook a plugin may implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// The category tree.
    Categories,
    /// The size charts.
    SizeCharts,
    /// One sale's commission.
    Commission,
    /// One email template.
    Email,
}

impl Hook {
    /// Every hook, in contract order.
    pub const ALL: [Hook; 4] = [
        Hook::Categories,
        Hook::SizeCharts,
        Hook::Commission,
        Hook::Email,
    ];

    /// The hook's name in the contract and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Categories => "categories",
            Hook::SizeCharts => "size-charts",
            Hook::Commission => "commission",
            Hook::Email => "email",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook name that is not in the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook `{0}`; expected one of categories, size-charts, commission, email")]
pub struct UnknownHook(pub String);

impl FromStr for Hook {
    type Err = UnknownHook;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hook::ALL
            .into_iter()
            .find(|hook| hook.as_str() == s || hook.as_str().replace('-', "_") == s)
            .ok_or_else(|| UnknownHook(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for hook in Hook::ALL {
            assert_eq!(hook.as_str().parse::<Hook>().unwrap(), hook);
        }
        assert_eq!("size_charts".parse::<Hook>().unwrap(), Hook::SizeCharts);
        assert!(
            "colors"
                .parse::<Hook>()
                .unwrap_err()
                .to_string()
                .contains("expected one of")
        );
    }
}
