//! The component side: wit-bindgen bindings for `veneer:plugin@0.1.0`, conversions
//! between the bindings' types and the SDK's, and the functions the exported hooks
//! forward to. Compiled only for WebAssembly; plugin crates never see wit-bindgen.

// Reached only through the doc(hidden) `__private` path, by the export macro.
#![allow(missing_docs)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "veneer_sdk::__private::bindings",
    });
}

use std::collections::BTreeMap;

use bindings::veneer::plugin::{kv, log, settings, types as wit};

pub use bindings::exports::veneer::plugin::hooks::Guest;
pub use wit::{
    Category, CommissionDecision, ContextEntry, EmailTemplate, PluginError, PluginInfo, Sale,
    SizeChart,
};

use crate::{Context, Hook, Level, Plugin};

pub fn settings_get() -> String {
    settings::get()
}

pub fn kv_get(key: &str) -> Option<String> {
    kv::get(key)
}

pub fn kv_list_keys(prefix: &str, limit: u32) -> Vec<String> {
    kv::list_keys(prefix, limit)
}

pub fn log_write(level: Level, message: &str) {
    let level = match level {
        Level::Trace => log::Level::Trace,
        Level::Debug => log::Level::Debug,
        Level::Info => log::Level::Info,
        Level::Warn => log::Level::Warn,
        Level::Error => log::Level::Error,
    };
    log::write(level, message);
}

pub fn describe(name: &str, version: &str, hooks: &[Hook]) -> PluginInfo {
    PluginInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        hooks: hooks
            .iter()
            .map(|hook| match hook {
                Hook::Categories => wit::Hook::Categories,
                Hook::SizeCharts => wit::Hook::SizeCharts,
                Hook::Commission => wit::Hook::Commission,
                Hook::Email => wit::Hook::Email,
            })
            .collect(),
    }
}

pub fn categories<P: Plugin>(base: Vec<Category>) -> Result<Vec<Category>, PluginError> {
    let ctx = Context::host();
    let base = base.into_iter().map(crate::Category::from).collect();
    P::categories(&ctx, base)
        .map(|list| list.into_iter().map(Category::from).collect())
        .map_err(PluginError::from)
}

pub fn size_charts<P: Plugin>(base: Vec<SizeChart>) -> Result<Vec<SizeChart>, PluginError> {
    let ctx = Context::host();
    let base = base.into_iter().map(crate::SizeChart::from).collect();
    P::size_charts(&ctx, base)
        .map(|list| list.into_iter().map(SizeChart::from).collect())
        .map_err(PluginError::from)
}

pub fn commission<P: Plugin>(
    sale: Sale,
    base: CommissionDecision,
) -> Result<CommissionDecision, PluginError> {
    let ctx = Context::host();
    P::commission(&ctx, &sale.into(), base.into())
        .map(CommissionDecision::from)
        .map_err(PluginError::from)
}

pub fn email<P: Plugin>(
    template: EmailTemplate,
    context: Vec<ContextEntry>,
) -> Result<EmailTemplate, PluginError> {
    let ctx = Context::host();
    let context: BTreeMap<String, String> = context
        .into_iter()
        .map(|entry| (entry.key, entry.value))
        .collect();
    P::email(&ctx, template.into(), &context)
        .map(EmailTemplate::from)
        .map_err(PluginError::from)
}

fn attributes_in(list: Vec<wit::Attribute>) -> Vec<crate::Attribute> {
    list.into_iter()
        .map(|a| crate::Attribute {
            key: a.key,
            value: a.value,
        })
        .collect()
}

fn attributes_out(list: Vec<crate::Attribute>) -> Vec<wit::Attribute> {
    list.into_iter()
        .map(|a| wit::Attribute {
            key: a.key,
            value: a.value,
        })
        .collect()
}

impl From<Category> for crate::Category {
    fn from(c: Category) -> Self {
        Self {
            id: c.id,
            parent: c.parent,
            name: c.name,
            slug: c.slug,
            position: c.position,
            attributes: attributes_in(c.attributes),
        }
    }
}

impl From<crate::Category> for Category {
    fn from(c: crate::Category) -> Self {
        Self {
            id: c.id,
            parent: c.parent,
            name: c.name,
            slug: c.slug,
            position: c.position,
            attributes: attributes_out(c.attributes),
        }
    }
}

impl From<SizeChart> for crate::SizeChart {
    fn from(c: SizeChart) -> Self {
        Self {
            id: c.id,
            name: c.name,
            category_ids: c.category_ids,
            columns: c.columns,
            rows: c
                .rows
                .into_iter()
                .map(|r| crate::SizeRow {
                    label: r.label,
                    values: r.values,
                })
                .collect(),
        }
    }
}

impl From<crate::SizeChart> for SizeChart {
    fn from(c: crate::SizeChart) -> Self {
        Self {
            id: c.id,
            name: c.name,
            category_ids: c.category_ids,
            columns: c.columns,
            rows: c
                .rows
                .into_iter()
                .map(|r| wit::SizeRow {
                    label: r.label,
                    values: r.values,
                })
                .collect(),
        }
    }
}

impl From<Sale> for crate::Sale {
    fn from(s: Sale) -> Self {
        Self {
            order_id: s.order_id,
            sku: s.sku,
            category_id: s.category_id,
            unit_price: s.unit_price,
            quantity: s.quantity,
            currency: s.currency,
            seller_id: s.seller_id,
            attributes: attributes_in(s.attributes),
        }
    }
}

impl From<CommissionDecision> for crate::CommissionDecision {
    fn from(d: CommissionDecision) -> Self {
        Self {
            rule_id: d.rule_id,
            rate_bps: d.rate_bps,
            min_fee: d.min_fee,
            max_fee: d.max_fee,
            fee: d.fee,
            note: d.note,
        }
    }
}

impl From<crate::CommissionDecision> for CommissionDecision {
    fn from(d: crate::CommissionDecision) -> Self {
        Self {
            rule_id: d.rule_id,
            rate_bps: d.rate_bps,
            min_fee: d.min_fee,
            max_fee: d.max_fee,
            fee: d.fee,
            note: d.note,
        }
    }
}

impl From<EmailTemplate> for crate::EmailTemplate {
    fn from(t: EmailTemplate) -> Self {
        Self {
            id: t.id,
            subject: t.subject,
            html: t.html,
            text: t.text,
            from_name: t.from_name,
            reply_to: t.reply_to,
        }
    }
}

impl From<crate::EmailTemplate> for EmailTemplate {
    fn from(t: crate::EmailTemplate) -> Self {
        Self {
            id: t.id,
            subject: t.subject,
            html: t.html,
            text: t.text,
            from_name: t.from_name,
            reply_to: t.reply_to,
        }
    }
}

impl From<crate::PluginError> for PluginError {
    fn from(e: crate::PluginError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}
