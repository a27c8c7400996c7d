//! `--modes sealed`: the burst in an end-to-end encrypted conversation. The group is created
//! encrypted, its first member's device makes the MLS group and commits every other
//! client's device (`confab_bench::sealed`, named as the clients' `hello`), and every client
//! sends its share of the burst as sealed messages: real MLS ciphertext, the body empty in
//! the clear. Sealing is the client's cost, so it happens with the rest of the writing
//! before the clock starts (reported apart, `prepare_us_per_msg`); the timed part is the
//! server's: it checks each sealed message against the group (`accept::mls::check_sealed`)
//! and stores it, without decrypting. Compared with `burst` of the same backend and client
//! count in the same sitting: target ≥ 80% of its msg/s.

use anyhow::{bail, Context, Result};
use confab_bench::sealed::SealedGroup;
use confab_core::ids::{DocId, TenantId};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_testkit::Device;

use super::{median, recv_frame, send_frame, submit_acked, RunResult, Ws, HELLO_DEVICE};

/// Sealed burst msg/s over plaintext burst msg/s, at least.
const TARGET_RATIO: f64 = 0.8;

/// Makes the MLS group of the encrypted `conv_doc` (its creation accepted) of `accounts`
/// (one socket each, in order): every device registers in the directory on its socket, then
/// the first (`owner`) makes the group and submits both its changes; every device is at
/// epoch 1 when this returns.
pub async fn make_group(
    sockets: &mut [Ws],
    tenant: &TenantId,
    conv_doc: &DocId,
    accounts: &[String],
    owner: &mut Device,
    now: i64,
) -> Result<SealedGroup> {
    let members: Vec<(&str, &str)> = accounts
        .iter()
        .map(|a| (a.as_str(), HELLO_DEVICE))
        .collect();
    let (mut group, changes) = SealedGroup::make(tenant, conv_doc, &members, owner, now)?;
    for (i, ws) in sockets.iter_mut().enumerate() {
        register(ws, group.registration(i)?).await?;
    }
    let ws = sockets.first_mut().context("a group needs a member")?;
    for (change, what) in changes.into_iter().zip(["the MLS group", "the MLS commit"]) {
        submit_acked(ws, conv_doc, &change, what).await?;
    }
    group.confirm()?;
    Ok(group)
}

/// Sends a device's registering upload and waits for the directory's answer.
async fn register(ws: &mut Ws, upload: ClientFrame) -> Result<()> {
    send_frame(ws, &upload).await?;
    loop {
        match recv_frame(ws).await? {
            ServerFrame::KeyPackagesStored { .. } => return Ok(()),
            ServerFrame::Error { code, message, .. } => bail!("registering: {code}: {message}"),
            _ => {}
        }
    }
}

/// Per backend and client count with both modes: sealed / plaintext burst (medians).
pub fn ratios(results: &[RunResult]) {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for r in results.iter().filter(|r| r.mode == "sealed") {
        if !seen.contains(&(r.backend, r.clients)) {
            seen.push((r.backend, r.clients));
        }
    }
    for (backend, clients) in seen {
        let rate = |mode: &str| {
            let rates: Vec<f64> = results
                .iter()
                .filter(|r| r.backend == backend && r.clients == clients && r.mode == mode)
                .map(|r| r.accepted_per_s)
                .collect();
            (!rates.is_empty()).then(|| median(rates))
        };
        let (Some(clear), Some(sealed)) = (rate("burst"), rate("sealed")) else {
            continue;
        };
        let ratio = sealed / clear;
        println!(
            "  {backend} N={clients:<2} sealed burst {sealed:>7.0} msg/s, {:.0}% of the plaintext {clear:.0} (target ≥ {:.0}%): {}",
            ratio * 100.0,
            TARGET_RATIO * 100.0,
            if ratio >= TARGET_RATIO { "ok" } else { "MISSED" }
        );
    }
}
