//! A device waiting to join an encrypted group through one node is added by a member's
//! device on another node that never heard its first signal (docs/E2EE.md, "Joining").

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use confab_core::client::{Intent, WAIT_AGAIN_MS};
use confab_core::ids::ConvId;
use confab_e2e::native_support::{
    accepted, device_client, follow_conv, fresh_dirs, group_of, online_with_packages,
};

use super::cluster_nodes::Nodes;

/// Node 0 holds alice's group with dan, who has never signed in; alice goes away. dan's
/// laptop signs in through node 1 and says it waits, with no member online anywhere. Node 0
/// restarts (whatever it kept is gone) and alice comes back through it: she hears dan's
/// laptop when it says so again, and adds it.
pub async fn a_waiting_device_is_added_through_another_node() -> Result<()> {
    let mut nodes = Nodes::on_fresh_database(2).await?;
    let dirs = fresh_dirs("cluster-joining", 2);
    let conv = ConvId::new("latecomers")?;
    let alice = device_client(&nodes.nodes[0], "alice", "phone", &dirs[0]);
    online_with_packages(&[&alice]).await;
    let mut create = group_of(&conv, &["dan"]);
    if let Intent::CreateConversation { encrypted, .. } = &mut create {
        *encrypted = true;
    }
    accepted(&alice, alice.intent(create).await?).await;
    follow_conv(&alice, &conv).await;
    let epoch = alice.query({
        let conv = conv.clone();
        move |e| e.group_epoch(&conv)
    });
    let epoch = epoch.await?.unwrap_or(0);
    alice.set_online(false).await?;

    let dan = device_client(&nodes.nodes[1], "dan", "laptop", &dirs[1]);
    online_with_packages(&[&dan]).await;
    follow_conv(&dan, &conv).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes.nodes[0].restart().await?;
    alice.set_online(true).await?;

    let started = Instant::now();
    let bound = Duration::from_millis(WAIT_AGAIN_MS as u64) + Duration::from_secs(20);
    loop {
        let at = dan
            .query({
                let conv = conv.clone();
                move |e| e.group_epoch(&conv)
            })
            .await?;
        if at == Some(epoch + 1) {
            break;
        }
        ensure!(
            started.elapsed() < bound,
            "dan's laptop not in the group {bound:?} after alice came back (at {at:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "cluster joining: dan's laptop added {:?} after alice came back through the other node",
        started.elapsed()
    );
    Ok(())
}
