//! Moving a whole instance with `veneer db copy`, run as a separate process:
//! a SQLite instance (the demo tenants with their plugins, a new release,
//! some traffic) into a fresh PostgreSQL database; the command verifies every
//! tenant, and a server started on the copy serves acme's configuration and
//! quotes as the source did. A second copy into it is refused, and the check
//! finds a tenant changed on the copy afterwards.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::{Db, Server, TestDb, admin, sale};
use veneer::app::instance_copy::TenantCheck;

/// A tenant's configuration and a quote, without the fuel a run used (a warm
/// instance uses less).
async fn served(server: &Server, tenant: &str) -> (Value, Value) {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("fuel_used");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let token = admin(tenant);
    let (status, mut config) = server.get(tenant, "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    strip(&mut config);
    let mut quote = server.quote(tenant, &token, sale("bags", 250_000)).await;
    strip(&mut quote);
    (config, quote)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_a_sqlite_instance_to_postgresql_and_verifies_it() {
    let source = Server::start(Db::Sqlite).await;
    source
        .set_settings("acme", &admin("acme"), json!({ "cap": 1 }))
        .await;
    let acme = served(&source, "acme").await;
    let globex = served(&source, "globex").await;

    let target = TestDb::new(Db::Postgres).await;
    let copy = |json: bool| {
        let mut args = vec![
            "db".to_owned(),
            "copy".to_owned(),
            "--from".to_owned(),
            source.db.url.clone(),
            "--to".to_owned(),
            target.url.clone(),
        ];
        if json {
            args.push("--json".to_owned());
        }
        let source = &source;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            source.veneer(&args, &[]).await
        }
    };
    let run = copy(false).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("(sqlite) into"), "{run:?}");
    for line in ["acme", "globex", "initech"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(line) && l.ends_with("same")),
            "{line}: {run:?}"
        );
    }
    assert!(
        run.stdout.contains("3 tenants: 3 the same, 0 different"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("DIFFERS"), "{run:?}");
    let plugin_runs = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("plugin_runs "))
        .expect("a line per table");
    assert!(!plugin_runs.ends_with(" 0"), "traffic was copied: {run:?}");

    // Into a database that holds rows now: refused, nothing written.
    let again = copy(true).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("already holds rows"), "{again:?}");

    let copied = Server::start_on(target).await;
    assert_eq!(served(&copied, "acme").await, acme);
    assert_eq!(served(&copied, "globex").await, globex);

    // The check sees a difference: acme's settings changed on the copy.
    copied
        .set_settings("acme", &admin("acme"), json!({ "cap": 2 }))
        .await;
    let check = veneer::app::instance_copy::verify(&source.state, &copied.state)
        .await
        .expect("verify");
    assert!(!check.all_same(), "{check:?}");
    let of = |id: &str| {
        check
            .tenants
            .iter()
            .find(|(t, _)| t == id)
            .map(|(_, c)| c.clone())
    };
    assert_eq!(of("globex"), Some(TenantCheck::Same), "{check:?}");
    let Some(TenantCheck::Differs { what }) = of("acme") else {
        panic!("acme differs: {check:?}");
    };
    assert!(what.contains(&"releases".to_owned()), "{what:?}");
}
