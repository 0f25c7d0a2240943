//! The base configuration: the data every tenant starts from, loaded from `base-config/`.
//!
//! This module owns the domain types of configuration sections (categories, size charts,
//! commission rules, email templates), reading and checking the base files, and the base
//! commission decision. It does no I/O beyond reading the base directory once, and it knows
//! nothing of tenants or plugins: the rules a plugin's output must also satisfy live in
//! [`crate::validate`], which loading runs on the base itself.

mod commission;
mod load;
mod types;

use std::path::{Path, PathBuf};

pub use types::{
    Attribute, BaseConfig, Category, CommissionDecision, CommissionRule, CommissionRules, EmailDef,
    EmailTemplate, Product, Sale, SizeChart, SizeRow, Tier,
};

/// The repository's `base-config` directory, for tests and benchmarks run in
/// the checkout. The binary does not need it: it carries the same files
/// ([`BaseConfig::built_in`]).
pub fn default_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../base-config"))
}

/// The files of `base-config/` embedded at build time.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/base_config.rs"));
}

impl BaseConfig {
    /// Reads, parses and validates every file of a base configuration directory.
    pub fn load(dir: &Path) -> Result<BaseConfig, BaseError> {
        load::load(dir)
    }

    /// The base configuration this binary was built with (`base-config/`,
    /// embedded), parsed and validated like a directory: the default when no
    /// `--base-config` is given, so a copied binary runs anywhere.
    pub fn built_in() -> Result<BaseConfig, BaseError> {
        load::load_files(embedded::FILES)
    }

    /// The base configuration in `dir`, or the built-in one when `None`.
    pub fn load_or_built_in(dir: Option<&Path>) -> Result<BaseConfig, BaseError> {
        match dir {
            Some(dir) => Self::load(dir),
            None => Self::built_in(),
        }
    }
}

/// Why a base configuration directory could not be loaded. Every variant names the file; those
/// about content also name the field and say what to change.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// The file or directory exists in the layout but could not be read.
    #[error("{file}: cannot read it ({error}); check that it exists and is readable")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },

    /// A file the base configuration needs is absent.
    #[error("{file}: missing; the base configuration needs it: {needed_for}")]
    Missing {
        file: PathBuf,
        needed_for: &'static str,
    },

    /// A file or directory that is not part of the layout. Rejected rather than ignored, so a
    /// misnamed file (`size_charts.toml`, `emails/welcome.tml`) cannot silently drop a section.
    #[error(
        "{file}: not a known base configuration file; rename or remove it (allowed: README.md, \
         categories.toml, size-charts.toml, commission.toml, emails/<id>.toml)"
    )]
    UnknownFile { file: PathBuf },

    /// The file is not UTF-8, so it cannot be TOML.
    #[error("{file}: not valid UTF-8 ({error}); save the file as UTF-8")]
    NotUtf8 {
        file: PathBuf,
        error: std::str::Utf8Error,
    },

    /// TOML syntax, an unknown field, a missing field or a wrong type. The toml message is kept
    /// whole: it gives line, column and the field, and shows the offending line.
    #[error("{file}: {error}")]
    Parse {
        file: PathBuf,
        error: toml::de::Error,
    },

    /// The file parses but breaks a rule of the base configuration.
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        /// Where in the file, e.g. `category[3].parent` or `rule[watches].tiers[1].rate_bps`.
        field: String,
        message: String,
    },
}
