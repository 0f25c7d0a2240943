//! The hooks of the WIT contract: their names ([`Hook`]) and their calls
//! ([`HookCall`], one zero-sized type per hook: [`Categories`], [`SizeCharts`],
//! [`Commission`], [`Email`], [`ProductCategory`]). A hook's input, output, output size and call
//! through the bindings are defined here once; [`super::Runtime::run`] and
//! [`super::Session::run`] run any of them, and the resolver adds each hook's
//! base value and validator (the resolver's `ResolveHook` (in the veneer crate)). It owns no store
//! and classifies nothing (the runtime does). Which contract version a
//! plugin speaks is the bindings' (`runtime/bindings.rs`): a hook's call is the
//! same for every version that has the hook.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Instance;
use super::bindings::{self, OutputSize};
use veneer_core::base;

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
    /// One product's category (WIT 0.2.0 and later).
    ProductCategory,
}

impl Hook {
    /// Every hook, in contract order.
    pub const ALL: [Hook; 5] = [
        Hook::Categories,
        Hook::SizeCharts,
        Hook::Commission,
        Hook::Email,
        Hook::ProductCategory,
    ];

    /// The hook's name in the contract and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Categories => "categories",
            Hook::SizeCharts => "size-charts",
            Hook::Commission => "commission",
            Hook::Email => "email",
            Hook::ProductCategory => "product-category",
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
#[error(
    "unknown hook `{0}`; expected one of categories, size-charts, commission, email, product-category"
)]
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

/// One hook of the contract as the host calls it: the single definition the
/// runtime, the resolver and `veneer plugin run` go through. Implemented by
/// one zero-sized type per hook; a new hook (or contract version's hook) is
/// one more implementation here and one in the resolver (in the veneer crate).
pub trait HookCall {
    /// The hook's name.
    const HOOK: Hook;
    /// What the hook is given, borrowed from the caller: nothing is cloned
    /// before the call but what the bindings must own.
    type Input<'a>: Copy;
    /// What the hook returns, held to the quota's output cap.
    type Output: OutputSize + Serialize + Clone + fmt::Debug + Send + 'static;

    /// Calls the plugin's export on a live instance: the plugin's value, its
    /// own error (code, message), or the failure the runtime classifies.
    #[doc(hidden)]
    fn call(
        instance: Instance<'_>,
        input: Self::Input<'_>,
    ) -> wasmtime::Result<Result<Self::Output, (String, String)>>;
}

/// The `categories` hook: the base's category tree in, the tenant's out.
#[derive(Debug, Clone, Copy)]
pub struct Categories;

impl HookCall for Categories {
    const HOOK: Hook = Hook::Categories;
    type Input<'a> = &'a [base::Category];
    type Output = Vec<base::Category>;

    fn call(
        i: Instance<'_>,
        input: &[base::Category],
    ) -> wasmtime::Result<Result<Self::Output, (String, String)>> {
        i.bindings.categories(i.store, input)
    }
}

/// The `size-charts` hook: the base's size charts in, the tenant's out.
#[derive(Debug, Clone, Copy)]
pub struct SizeCharts;

impl HookCall for SizeCharts {
    const HOOK: Hook = Hook::SizeCharts;
    type Input<'a> = &'a [base::SizeChart];
    type Output = Vec<base::SizeChart>;

    fn call(
        i: Instance<'_>,
        input: &[base::SizeChart],
    ) -> wasmtime::Result<Result<Self::Output, (String, String)>> {
        i.bindings.size_charts(i.store, input)
    }
}

/// The `commission` hook: one sale line and the base's decision in, the
/// tenant's decision out. The quote path: the input is lowered from borrowed
/// views and the typed export is cached in the store (`runtime/bindings.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Commission;

impl HookCall for Commission {
    const HOOK: Hook = Hook::Commission;
    type Input<'a> = (&'a base::Sale, &'a base::CommissionDecision);
    type Output = base::CommissionDecision;

    fn call(
        i: Instance<'_>,
        (sale, decision): Self::Input<'_>,
    ) -> wasmtime::Result<Result<Self::Output, (String, String)>> {
        bindings::call_commission(i.store, i.bindings, sale, decision)
    }
}

/// The `email` hook: one template and its rendering context in, the tenant's
/// template out.
#[derive(Debug, Clone, Copy)]
pub struct Email;

impl HookCall for Email {
    const HOOK: Hook = Hook::Email;
    type Input<'a> = (&'a base::EmailTemplate, &'a BTreeMap<String, String>);
    type Output = base::EmailTemplate;

    fn call(
        i: Instance<'_>,
        (template, context): Self::Input<'_>,
    ) -> wasmtime::Result<Result<Self::Output, (String, String)>> {
        i.bindings.email(i.store, template, context)
    }
}

/// The `product-category` hook (WIT 0.2.0): a product and the base's choice
/// of category (the platform's mapping of its product type) in, the tenant's
/// choice out — a category id, or none. Only 0.2.0 plugins can implement it.
#[derive(Debug, Clone, Copy)]
pub struct ProductCategory;

impl HookCall for ProductCategory {
    const HOOK: Hook = Hook::ProductCategory;
    type Input<'a> = (&'a base::Product, Option<&'a str>);
    type Output = Option<String>;

    fn call(
        i: Instance<'_>,
        (product, choice): Self::Input<'_>,
    ) -> wasmtime::Result<Result<Self::Output, (String, String)>> {
        i.bindings.product_category(i.store, product, choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_has_one_definition() {
        assert_eq!(
            [
                Categories::HOOK,
                SizeCharts::HOOK,
                Commission::HOOK,
                Email::HOOK,
                ProductCategory::HOOK,
            ],
            Hook::ALL
        );
    }

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
