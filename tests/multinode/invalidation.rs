//! An activation (and a rollback) of a release through one node is served by
//! the other within a second; so is a tenant's deletion, restore and purge.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use veneer::auth::OrgRole;

use crate::harness::{Node, TestDb, runtime, serial, token};
use veneer::test_support::Db;

/// Polls `node`'s effective configuration of acme until its plugin is `sha`;
/// returns how long that took, or `None` after `within`.
async fn serves_plugin(node: &Node, sha: &str, within: Duration) -> Option<Duration> {
    let admin = token("acme", OrgRole::Admin);
    let start = Instant::now();
    loop {
        let (status, body) = node
            .call(Method::GET, "acme", "/v1/config", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["releases"][0]["plugin"].as_str() == Some(sha) {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn an_activation_on_one_node_is_served_by_the_other_within_a_second() {
    let _serial = serial();
    runtime().block_on(async {
        let db = TestDb::new(Db::Postgres).await;
        // Node 1 seeds the demo into the empty database; node 2 finds it seeded.
        let node1 = Node::start("node1", &db, &[]).await;
        let node2 = Node::start("node2", &db, &[]).await;
        let admin = token("acme", OrgRole::Admin);

        // Warm node 2: the tenant state and the effective configuration cached.
        let (status, before) = node2
            .call(Method::GET, "acme", "/v1/config", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{before}");
        let old_sha = before["releases"][0]["plugin"]
            .as_str()
            .expect("acme has a plugin")
            .to_owned();
        let (status, again) = node2
            .call(Method::GET, "acme", "/v1/config", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["version"], before["version"]);

        let bytes = std::fs::read(veneer_plugin_artifacts::DECLARATIVE_OVERRIDES).expect("plugin");
        let sha = node1.upload("acme", &admin, bytes).await;
        assert_ne!(sha, old_sha);
        // A release of acme's installation with the new plugin, made live.
        let (status, body) = node1
            .call(
                Method::POST,
                "acme",
                "/v1/installations/commission/releases",
                Some(&admin),
                Some(&serde_json::json!({ "plugin": sha, "settings": {} })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let release = body["release"]["id"].as_i64().expect("release id");
        let (status, body) = node1
            .call(
                Method::POST,
                "acme",
                &format!("/v1/installations/commission/releases/{release}/activate"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let took = serves_plugin(&node2, &sha, Duration::from_secs(1)).await;
        assert!(
            took.is_some(),
            "node 2 still serves the old plugin a second after the activation on node 1"
        );
        eprintln!("node 2 served the activation after {took:?}");

        // And back: a rollback through node 2 reaches node 1 (warm too).
        assert!(serves_plugin(&node1, &sha, Duration::ZERO).await.is_some());
        let (status, body) = node2
            .call(
                Method::POST,
                "acme",
                "/v1/installations/commission/rollback",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let took = serves_plugin(&node1, &old_sha, Duration::from_secs(1)).await;
        assert!(took.is_some(), "node 1 missed the rollback made on node 2");
        eprintln!("node 1 served the rollback after {took:?}");
        drop((node1, node2));
    });
}

/// Polls `node` until acme's configuration answers `want`; how long it took.
async fn answers(node: &Node, want: StatusCode, within: Duration) -> Option<Duration> {
    let admin = token("acme", OrgRole::Admin);
    let start = Instant::now();
    loop {
        let (status, _) = node
            .call(Method::GET, "acme", "/v1/config", Some(&admin), None)
            .await;
        if status == want {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_deletion_on_one_node_stops_the_tenant_on_the_other_within_a_second() {
    let _serial = serial();
    runtime().block_on(async {
        let db = TestDb::new(Db::Postgres).await;
        let node1 = Node::start("node1", &db, &[]).await;
        let node2 = Node::start("node2", &db, &[]).await;
        let pa = crate::harness::platform_admin();
        // Warm node 2.
        assert!(
            answers(&node2, StatusCode::OK, Duration::ZERO)
                .await
                .is_some()
        );

        let (status, body) = node1
            .call(
                Method::DELETE,
                "",
                "/v1/admin/tenants/acme",
                Some(&pa),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let took = answers(&node2, StatusCode::GONE, Duration::from_secs(1)).await;
        assert!(
            took.is_some(),
            "node 2 still serves acme a second after its deletion"
        );

        let (status, body) = node2
            .call(
                Method::POST,
                "",
                "/v1/admin/tenants/acme/restore",
                Some(&pa),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let took = answers(&node1, StatusCode::OK, Duration::from_secs(1)).await;
        assert!(took.is_some(), "node 1 missed the restore made on node 2");

        let (status, _) = node1
            .call(
                Method::DELETE,
                "",
                "/v1/admin/tenants/acme",
                Some(&pa),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = node1
            .call(
                Method::POST,
                "",
                "/v1/admin/tenants/acme/purge",
                Some(&pa),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let took = answers(&node2, StatusCode::NOT_FOUND, Duration::from_secs(1)).await;
        assert!(
            took.is_some(),
            "node 2 still knows acme a second after its purge"
        );
        drop((node1, node2));
    });
}
