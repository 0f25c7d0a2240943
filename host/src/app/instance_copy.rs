//! Moving an instance to another database (`veneer db copy`): the rows are
//! storage's to copy ([`crate::storage::copy_instance`]); this checks that the
//! copy serves every tenant as the source does. Each tenant's effective
//! configuration is resolved on each side through its own chain of plugins,
//! past every cache and recording no run (the check writes nothing to either
//! database), and compared as served — version, releases and every section —
//! without what a run used (fuel, memory, time), which varies from run to run.
//!
//! Secrets are not opened: a sealed value is bound to its tenant and field,
//! not to the database, so the copy carries it as it is and the instance's
//! key keeps opening it.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::Result;
use crate::cache::EffectiveKey;
use crate::state::AppState;
use crate::tenancy::TenantId;

/// How one tenant compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TenantCheck {
    /// Served the same configuration on both sides (deleted tenants are
    /// compared too: they keep their rows until purged).
    Same,
    /// What differs: the configuration's fields (`categories`, `releases`, …),
    /// or that only one side has or serves the tenant.
    Differs { what: Vec<String> },
}

/// Every tenant of either side, compared.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// By tenant id.
    pub tenants: Vec<(String, TenantCheck)>,
}

impl Verification {
    /// Whether no tenant differs.
    pub fn all_same(&self) -> bool {
        self.tenants
            .iter()
            .all(|(_, c)| !matches!(c, TenantCheck::Differs { .. }))
    }

    /// How many tenants compare as `check` does.
    pub fn count(&self, check: fn(&TenantCheck) -> bool) -> usize {
        self.tenants.iter().filter(|(_, c)| check(c)).count()
    }
}

/// Compares every tenant's effective configuration on `source` with the one
/// on `target`.
pub async fn verify(source: &AppState, target: &AppState) -> Result<Verification> {
    let ids = |records: Vec<crate::storage::TenantRecord>| -> BTreeSet<TenantId> {
        records.into_iter().map(|r| r.id).collect()
    };
    let on_source = ids(source.storage.platform().list_tenants().await?);
    let on_target = ids(target.storage.platform().list_tenants().await?);
    let mut tenants = Vec::new();
    for id in on_source.union(&on_target) {
        let check = if !on_target.contains(id) {
            only("the source has it, the copy does not")
        } else if !on_source.contains(id) {
            only("the copy has it, the source does not")
        } else {
            compare(source, target, id).await?
        };
        tenants.push((id.to_string(), check));
    }
    Ok(Verification { tenants })
}

fn only(what: &str) -> TenantCheck {
    TenantCheck::Differs {
        what: vec![what.to_owned()],
    }
}

async fn compare(source: &AppState, target: &AppState, id: &TenantId) -> Result<TenantCheck> {
    let (a, b) = (served(source, id).await?, served(target, id).await?);
    Ok(match (a, b) {
        // Listed, then gone from both (a purge meanwhile): they agree.
        (None, None) => TenantCheck::Same,
        (Some(_), None) => only("the source has it, the copy does not"),
        (None, Some(_)) => only("the copy has it, the source does not"),
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            let what: Vec<String> = keys
                .into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect();
            if what.is_empty() {
                TenantCheck::Same
            } else {
                TenantCheck::Differs { what }
            }
        }
        (Some(a), Some(b)) if a == b => TenantCheck::Same,
        (Some(_), Some(_)) => only("the configuration"),
    })
}

/// The tenant's effective configuration as served, serialised, without its
/// runs' use; None when there is no such tenant.
async fn served(app: &AppState, id: &TenantId) -> Result<Option<Value>> {
    let Some(state) = app.tenant_state(id).await? else {
        return Ok(None);
    };
    let base = app.base();
    let version = EffectiveKey::new(id, &base.version, state.data_version).version();
    let config = super::config::resolve_unrecorded(app, &state, base, version).await?;
    let mut value = serde_json::to_value(&config).map_err(super::Error::internal)?;
    without_use(&mut value);
    Ok(Some(value))
}

/// Drops every run's `stats` (fuel, memory, time).
fn without_use(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("stats");
            map.values_mut().for_each(without_use);
        }
        Value::Array(items) => items.iter_mut().for_each(without_use),
        _ => {}
    }
}
