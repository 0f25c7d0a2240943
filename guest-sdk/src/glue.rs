//! The component side: wit-bindgen bindings for `veneer:plugin@0.2.0` (from
//! `wit/plugin.wit` inside this crate), the per-instance plugin value, and the
//! conversions between the bindings' types and the SDK's. Compiled only for
//! WebAssembly; plugin crates never see wit-bindgen.

// Reached only through the doc(hidden) `__private` path, by the export macro.
#![allow(missing_docs)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "veneer_sdk::__private::bindings",
    });
}

use std::cell::OnceCell;
use std::collections::BTreeMap;

use bindings::veneer::plugin::{kv, log, settings, types as wit};

pub use bindings::exports::veneer::plugin::hooks;
pub use bindings::veneer::plugin::types as export_types;

use crate::{Context, Described, Level, Plugin};

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

/// The plugin of this instance, built from the tenant's settings on the first
/// hook call (the host never changes an instance's settings), or the error
/// that building it gave, returned by every hook of the instance.
pub struct Instance<P> {
    plugin: OnceCell<Result<P, crate::PluginError>>,
}

impl<P> Instance<P> {
    pub const fn new() -> Self {
        Self {
            plugin: OnceCell::new(),
        }
    }
}

impl<P> Default for Instance<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Described> Instance<P> {
    pub fn describe() -> wit::PluginInfo {
        let info = crate::describe::<P>();
        wit::PluginInfo {
            name: info.name,
            version: info.version,
            hooks: P::HOOKS.iter().filter_map(|name| hook(name)).collect(),
            description: info.description,
            settings_schema: info.settings_schema,
        }
    }
}

/// The WIT hook of a name the `plugin` attribute wrote.
fn hook(name: &str) -> Option<wit::Hook> {
    Some(match name {
        "categories" => wit::Hook::Categories,
        "size-charts" => wit::Hook::SizeCharts,
        "commission" => wit::Hook::Commission,
        "email" => wit::Hook::Email,
        "product-category" => wit::Hook::ProductCategory,
        _ => return None,
    })
}

impl<P: Plugin> Instance<P> {
    fn get(&self) -> Result<&P, wit::PluginError> {
        self.plugin
            .get_or_init(|| crate::instantiate::<P>(&settings::get(), &Context::host()))
            .as_ref()
            .map_err(|err| wit::PluginError::from(err.clone()))
    }

    pub fn categories(
        &self,
        base: Vec<wit::Category>,
    ) -> Result<Vec<wit::Category>, wit::PluginError> {
        let plugin = self.get()?;
        let base = base.into_iter().map(crate::Category::from).collect();
        plugin
            .categories(&Context::host(), base)
            .map(|list| list.into_iter().map(wit::Category::from).collect())
            .map_err(wit::PluginError::from)
    }

    pub fn size_charts(
        &self,
        base: Vec<wit::SizeChart>,
    ) -> Result<Vec<wit::SizeChart>, wit::PluginError> {
        let plugin = self.get()?;
        let base = base.into_iter().map(crate::SizeChart::from).collect();
        plugin
            .size_charts(&Context::host(), base)
            .map(|list| list.into_iter().map(wit::SizeChart::from).collect())
            .map_err(wit::PluginError::from)
    }

    pub fn commission(
        &self,
        sale: wit::Sale,
        base: wit::CommissionDecision,
    ) -> Result<wit::CommissionDecision, wit::PluginError> {
        let plugin = self.get()?;
        plugin
            .commission(&Context::host(), &sale.into(), base.into())
            .map(wit::CommissionDecision::from)
            .map_err(wit::PluginError::from)
    }

    pub fn email(
        &self,
        template: wit::EmailTemplate,
        context: Vec<wit::ContextEntry>,
    ) -> Result<wit::EmailTemplate, wit::PluginError> {
        let plugin = self.get()?;
        let context: BTreeMap<String, String> = context
            .into_iter()
            .map(|entry| (entry.key, entry.value))
            .collect();
        plugin
            .email(&Context::host(), template.into(), &context)
            .map(wit::EmailTemplate::from)
            .map_err(wit::PluginError::from)
    }

    pub fn product_category(
        &self,
        product: wit::Product,
        base: Option<String>,
    ) -> Result<Option<String>, wit::PluginError> {
        let plugin = self.get()?;
        let product = crate::Product {
            title: product.title,
            vendor: product.vendor,
            product_type: product.product_type,
            tags: product.tags,
        };
        plugin
            .product_category(&Context::host(), &product, base)
            .map_err(wit::PluginError::from)
    }
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

impl From<wit::Category> for crate::Category {
    fn from(c: wit::Category) -> Self {
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

impl From<crate::Category> for wit::Category {
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

impl From<wit::SizeChart> for crate::SizeChart {
    fn from(c: wit::SizeChart) -> Self {
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

impl From<crate::SizeChart> for wit::SizeChart {
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

impl From<wit::Sale> for crate::Sale {
    fn from(s: wit::Sale) -> Self {
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

impl From<wit::CommissionDecision> for crate::CommissionDecision {
    fn from(d: wit::CommissionDecision) -> Self {
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

impl From<crate::CommissionDecision> for wit::CommissionDecision {
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

impl From<wit::EmailTemplate> for crate::EmailTemplate {
    fn from(t: wit::EmailTemplate) -> Self {
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

impl From<crate::EmailTemplate> for wit::EmailTemplate {
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

impl From<crate::PluginError> for wit::PluginError {
    fn from(e: crate::PluginError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}
