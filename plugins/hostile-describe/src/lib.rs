//! A hostile fixture for the host's upload tests: a component of the Veneer
//! world whose `describe` sleeps for an hour (WASI `monotonic-clock` plus
//! `poll`), the call the host makes at upload before anything else. Every hook
//! refuses. Built with wit-bindgen directly, since the SDK writes `describe`
//! itself. Never install it for a tenant.

// wit-bindgen's generated exports are `unsafe extern` functions; this crate
// writes no unsafe code of its own.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "plugin",
});

use exports::veneer::plugin::hooks::Guest;
use veneer::plugin::types::{
    Category, CommissionDecision, ContextEntry, EmailTemplate, PluginError, PluginInfo, Sale,
    SizeChart,
};

struct SlowDescribe;

fn refuse<T>() -> Result<T, PluginError> {
    Err(PluginError {
        code: "hostile".to_owned(),
        message: "this fixture only sleeps in describe".to_owned(),
    })
}

impl Guest for SlowDescribe {
    fn describe() -> PluginInfo {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        PluginInfo {
            name: "hostile-describe".to_owned(),
            version: "0.1.0".to_owned(),
            hooks: Vec::new(),
        }
    }

    fn categories(_base: Vec<Category>) -> Result<Vec<Category>, PluginError> {
        refuse()
    }

    fn size_charts(_base: Vec<SizeChart>) -> Result<Vec<SizeChart>, PluginError> {
        refuse()
    }

    fn commission(
        _sale: Sale,
        _base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        refuse()
    }

    fn email(
        _template: EmailTemplate,
        _context: Vec<ContextEntry>,
    ) -> Result<EmailTemplate, PluginError> {
        refuse()
    }
}

export!(SlowDescribe);
