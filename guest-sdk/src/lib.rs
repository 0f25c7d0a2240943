//! # veneer-sdk
//!
//! Write a Veneer override plugin in Rust. A plugin receives the platform's base
//! configuration and returns the tenant's version of it. The host runs it as a
//! WebAssembly component in a sandbox with fuel, memory and time quotas.
//!
//! A plugin is one type implementing [`Plugin`], whose methods all have defaults
//! that return the base unchanged, registered with the [`plugin`] attribute. Only
//! the hooks you write are reported to the host; the others cost nothing per request.
//!
//! ```
//! use serde::Deserialize;
//! use veneer_sdk::{CommissionDecision, Context, Plugin, PluginError, Sale};
//!
//! /// Caps every commission at a maximum fee the tenant sets.
//! struct CappedCommission;
//!
//! #[derive(Deserialize)]
//! struct Settings {
//!     /// Largest fee, in minor units.
//!     cap: u64,
//! }
//!
//! #[veneer_sdk::plugin]
//! impl Plugin for CappedCommission {
//!     fn commission(
//!         ctx: &Context,
//!         sale: &Sale,
//!         mut base: CommissionDecision,
//!     ) -> Result<CommissionDecision, PluginError> {
//!         let settings: Settings = ctx.settings()?;
//!         base.max_fee = base.max_fee.min(settings.cap).max(base.min_fee);
//!         base.refee(sale.gross());
//!         base.note = format!("capped at {}", settings.cap);
//!         Ok(base)
//!     }
//! }
//!
//! // Plugin logic is plain Rust: test it natively with `cargo test`.
//! let ctx = Context::testing().with_settings(r#"{"cap": 1500}"#);
//! let sale = Sale {
//!     order_id: "o-1".into(),
//!     sku: "bag-1".into(),
//!     category_id: "bags".into(),
//!     unit_price: 100_000,
//!     quantity: 1,
//!     currency: "EUR".into(),
//!     seller_id: None,
//!     attributes: vec![],
//! };
//! let base = CommissionDecision {
//!     rule_id: "bags".into(),
//!     rate_bps: 1_200,
//!     min_fee: 100,
//!     max_fee: 50_000,
//!     fee: 12_000,
//!     note: String::new(),
//! };
//! let decision = CappedCommission::commission(&ctx, &sale, base).unwrap();
//! assert_eq!(decision.fee, 1_500);
//! ```
//!
//! Build the plugin with `cargo build --release --target wasm32-wasip2` (crate
//! type `cdylib`) and try it with `veneer plugin run` before uploading it.
//!
//! Inside the host the SDK installs a size-class allocator as the plugin's
//! global allocator (cargo feature `allocator`, on by default): every hook call
//! allocates a block for each string the host passes in, and this makes each
//! allocation and free a few instructions instead of dlmalloc's bookkeeping.
//! Small blocks are rounded up to a power of two and kept for reuse. A plugin
//! with its own `#[global_allocator]` depends on `veneer-sdk` with
//! `default-features = false`.

#![deny(missing_docs)]

#[cfg(any(test, all(feature = "allocator", target_arch = "wasm32")))]
mod allocator;
mod context;
#[cfg(target_arch = "wasm32")]
mod glue;
mod types;

/// Inside the host, the plugin allocates through size classes (see
/// `allocator.rs`; turn off with `default-features = false`).
#[cfg(all(
    feature = "allocator",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: allocator::SizeClassAlloc<std::alloc::System> =
    allocator::SizeClassAlloc::new(std::alloc::System);

use std::collections::BTreeMap;

pub use context::{Context, Level};
pub use types::{
    Attribute, Category, CommissionDecision, EmailTemplate, Hook, PluginError, Sale, SizeChart,
    SizeRow,
};
/// Registers a plugin: put it on the `impl Plugin for YourType` block.
///
/// It records which hooks the block defines (so the host calls only those) and,
/// when building for WebAssembly, exports the component's entry points.
pub use veneer_sdk_macros::plugin;

/// The values an email template will be rendered with, by variable name.
pub type RenderContext = BTreeMap<String, String>;

/// A tenant's override logic. Every hook receives the base and returns the
/// tenant's result; each default returns the base unchanged.
///
/// Return `Err(PluginError)` to refuse on purpose: the host then serves the base
/// result and records your error. A panic, a runaway loop or excessive memory is
/// stopped by the host and recorded too, but says less to the tenant.
///
/// Write hooks as functions of their inputs, the settings and the key-value
/// data. The host may call `commission` several times on one instance (for the
/// same tenant, settings and data; never after a failed call), so statics and
/// memory may or may not survive from one call to the next: don't rely on
/// either. Every call gets the whole of its fuel, time and host-call quota.
pub trait Plugin {
    /// Changes the category tree. The result must still be a tree: unique ids,
    /// every parent present, no cycles.
    fn categories(ctx: &Context, base: Vec<Category>) -> Result<Vec<Category>, PluginError> {
        let _ = ctx;
        Ok(base)
    }

    /// Changes the size charts. Every row must have one value per column.
    fn size_charts(ctx: &Context, base: Vec<SizeChart>) -> Result<Vec<SizeChart>, PluginError> {
        let _ = ctx;
        Ok(base)
    }

    /// Decides the commission for one sale line, given the base decision. The fee
    /// must stay within the decision's bounds and never exceed the gross amount.
    fn commission(
        ctx: &Context,
        sale: &Sale,
        base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        let _ = (ctx, sale);
        Ok(base)
    }

    /// Customises an email template. The result must keep the unsubscribe link and
    /// every placeholder the base template requires.
    fn email(
        ctx: &Context,
        template: EmailTemplate,
        context: &RenderContext,
    ) -> Result<EmailTemplate, PluginError> {
        let _ = (ctx, context);
        Ok(template)
    }
}

#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::glue::*;
}

/// Exports the component entry points for a plugin type. Expanded by
/// `#[veneer_sdk::plugin]`; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_glue {
    ($ty:ty, $name:expr, $version:expr, [$($hook:expr),*]) => {
        const _: () = {
            struct VeneerGuest;

            impl $crate::__private::Guest for VeneerGuest {
                fn describe() -> $crate::__private::PluginInfo {
                    $crate::__private::describe($name, $version, &[$($hook),*])
                }
                fn categories(
                    base: ::std::vec::Vec<$crate::__private::Category>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::Category>,
                    $crate::__private::PluginError,
                > {
                    $crate::__private::categories::<$ty>(base)
                }
                fn size_charts(
                    base: ::std::vec::Vec<$crate::__private::SizeChart>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::SizeChart>,
                    $crate::__private::PluginError,
                > {
                    $crate::__private::size_charts::<$ty>(base)
                }
                fn commission(
                    sale: $crate::__private::Sale,
                    base: $crate::__private::CommissionDecision,
                ) -> ::std::result::Result<
                    $crate::__private::CommissionDecision,
                    $crate::__private::PluginError,
                > {
                    $crate::__private::commission::<$ty>(sale, base)
                }
                fn email(
                    template: $crate::__private::EmailTemplate,
                    context: ::std::vec::Vec<$crate::__private::ContextEntry>,
                ) -> ::std::result::Result<
                    $crate::__private::EmailTemplate,
                    $crate::__private::PluginError,
                > {
                    $crate::__private::email::<$ty>(template, context)
                }
            }

            $crate::__private::bindings::__export_plugin!(VeneerGuest with_types_in $crate::__private::bindings);
        };
    };
}
