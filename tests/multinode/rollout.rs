//! Automatic rollback across two nodes: a release that fails right after it
//! went live is rolled back once, by the first node to see it fail
//! `--rollback-failures` times, and neither node serves it after that.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::auth::OrgRole;

use crate::harness::{Node, TestDb, runtime, serial, token};
use veneer::test_support::Db;

fn sale() -> Value {
    json!({ "order_id": "o-1", "sku": "SKU-1", "category_id": "bags", "unit_price": 250_000,
            "quantity": 1, "currency": "EUR" })
}

async fn quote(node: &Node) -> Value {
    let admin = token("acme", OrgRole::Admin);
    let (status, body) = node
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&admin),
            Some(&sale()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls until `node`'s quotes run `release` again, or `within` has passed.
async fn serves_release(node: &Node, release: i64, within: Duration) -> bool {
    let start = Instant::now();
    loop {
        let q = quote(node).await;
        if q["steps"][0]["release"] == release {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_failing_release_is_rolled_back_once_for_both_nodes() {
    let _serial = serial();
    runtime().block_on(async {
        let db = TestDb::new(Db::Postgres).await;
        let flags: Vec<String> = ["--rollback-failures", "3", "--rollback-calls", "20"]
            .map(String::from)
            .to_vec();
        let node1 = Node::start("node1", &db, &flags).await;
        let node2 = Node::start("node2", &db, &flags).await;
        let admin = token("acme", OrgRole::Admin);
        let good = quote(&node1).await;
        let good_release = good["steps"][0]["release"]
            .as_i64()
            .expect("a live release");

        let bytes = std::fs::read(veneer_plugin_artifacts::HOSTILE).expect("plugin");
        let sha = node1.upload("acme", &admin, bytes).await;
        let (status, body) = node1
            .call(
                Method::POST,
                "acme",
                "/v1/installations/commission/releases",
                Some(&admin),
                Some(&json!({ "plugin": sha, "settings": { "mode": "panic" } })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let bad = body["release"]["id"].as_i64().expect("release id");
        let (status, body) = node1
            .call(
                Method::POST,
                "acme",
                &format!("/v1/installations/commission/releases/{bad}/activate"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Both nodes serve it (and see it fail): two failures on node 2, then
        // node 1's third trips its probation.
        assert!(serves_release(&node2, bad, Duration::from_secs(2)).await);
        let mut failures_seen = 1;
        let q = quote(&node2).await;
        if q["steps"][0]["release"] == bad {
            assert_eq!(q["steps"][0]["outcome"], "trap", "{q}");
            failures_seen += 1;
        }
        for _ in 0..3 {
            let q = quote(&node1).await;
            if q["steps"][0]["release"] != bad {
                break;
            }
            assert_eq!(q["steps"][0]["outcome"], "trap", "{q}");
        }
        assert!(failures_seen <= 3);

        // Back on both nodes, within a second.
        assert!(
            serves_release(&node1, good_release, Duration::from_secs(2)).await,
            "node 1 still serves the failing release"
        );
        assert!(
            serves_release(&node2, good_release, Duration::from_secs(2)).await,
            "node 2 still serves the failing release"
        );
        // Once: one automatic rollback in the history, by Veneer.
        let (status, detail) = node2
            .call(
                Method::GET,
                "acme",
                "/v1/installations/commission",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let rollbacks: Vec<&Value> = detail["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|e| e["actor"] == "veneer:auto-rollback")
            .collect();
        assert_eq!(rollbacks.len(), 1, "{detail}");
        assert_eq!(rollbacks[0]["release_id"], good_release, "{detail}");
        let (_, audit) = node1
            .call(Method::GET, "acme", "/v1/audit", Some(&admin), None)
            .await;
        let row = audit["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .find(|r| r["action"] == "release.auto_rollback")
            .cloned()
            .expect("audited");
        assert!(
            row["after"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("failed 3 of its first 3 calls")),
            "{row}"
        );
        drop((node1, node2));
    });
}
