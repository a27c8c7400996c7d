//! The accounts that write what the reader misses: one connection and one device each,
//! posting acked messages into the parts of one period, in the clear or sealed into the
//! conversation's MLS group (`confab_bench::sealed`).

use anyhow::{anyhow, bail, Result};
use confab_bench::sealed::SealedGroup;
use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::limits::BUCKET_TARGET_MESSAGES;
use confab_core::model::conversation::{ConvKind, Info, Member, Role, Settings, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_testkit::server::{now_ms, token, TestServer};
use confab_testkit::text::{body, message_id, Rng};
use confab_testkit::wire::Client;
use confab_testkit::{Answer, Device};

use super::{account, tenant, READER, READER_DEVICE, TENANT};

/// The device each writer's `hello` names: its MLS identity in an encrypted conversation
/// (the server takes a sealed message only from a device in the group).
const WRITER_DEVICE: &str = "writer";

/// The writers: one connection and one device each.
pub struct Writers {
    /// The server's WebSocket URL (the reader's device registers on a connection of its own).
    url: String,
    clients: Vec<Client>,
    devices: Vec<Device>,
    rng: Rng,
    /// Per conversation (by index), what was posted.
    progress: Vec<Progress>,
    /// Per conversation (by index), its MLS group when it is encrypted: the writers'
    /// devices, then the reader's.
    groups: Vec<Option<SealedGroup>>,
}

/// What the writers posted into one conversation.
#[derive(Default, Clone)]
struct Progress {
    written: usize,
    /// ((part, seq), message id, body) of every acked message: the server's order.
    acked: Vec<((usize, u64), String, String)>,
}

impl Writers {
    pub async fn start(server: &TestServer, count: usize) -> Result<Self> {
        let mut clients = Vec::new();
        let mut devices = Vec::new();
        for i in 0..count.max(1) {
            let name = format!("w{i}");
            let token = token(TENANT, &name, false, 3600);
            clients.push(Client::connect_device(&server.ws_url(), &token, WRITER_DEVICE).await?);
            devices.push(Device::new(&name, 1));
        }
        Ok(Writers {
            url: server.ws_url(),
            clients,
            devices,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            progress: Vec::new(),
            groups: Vec::new(),
        })
    }

    /// Creates group `conv` (index `index`) of the writers and the reader; an encrypted one
    /// with its MLS group, every writer's device and the reader's in it (epoch 1).
    pub async fn create_group(
        &mut self,
        index: usize,
        conv: &ConvId,
        encrypted: bool,
    ) -> Result<()> {
        let owner = account(&self.devices[0].account)?;
        let mut members = vec![Member::new(owner.clone(), Role::Owner)];
        let invited = self.devices.iter().skip(1).map(|d| d.account.as_str());
        for name in invited.chain([READER]) {
            let mut member = Member::new(account(name)?, Role::Member);
            member.invited_by = Some(owner.clone());
            members.push(member);
        }
        let spec = write::CreateConv {
            kind: ConvKind::Group,
            created_by: owner,
            created_at: now_ms(),
            bucket_ms: DEFAULT_BUCKET_MS,
            thread: None,
            info: Info {
                title: Some("catch-up".into()),
                ..Info::default()
            },
            settings: Settings::defaults_for(ConvKind::Group),
            members,
            encrypted,
        };
        let doc = DocId::conv(&tenant(), conv);
        let change = self.devices[0].write(&doc, |d, t| write::create_conversation(d, t, &spec))?;
        expect_acks(self.clients[0].submit(&doc, &[change]).await?)?;
        if self.groups.len() <= index {
            self.groups.resize_with(index + 1, || None);
        }
        if encrypted {
            let names: Vec<String> = self.devices.iter().map(|d| d.account.clone()).collect();
            let who: Vec<(&str, &str)> = names
                .iter()
                .map(|n| (n.as_str(), WRITER_DEVICE))
                .chain([(READER, READER_DEVICE)])
                .collect();
            let (mut group, changes) =
                SealedGroup::make(&tenant(), &doc, &who, &mut self.devices[0], now_ms())?;
            // Every device registers in the directory first (the Delivery Service takes only
            // registered devices): the writers on their connections, the reader on one of
            // its own.
            for (i, client) in self.clients.iter_mut().enumerate() {
                registered(client.request(&group.registration(i)?).await?)?;
            }
            let token = token(TENANT, READER, false, 3600);
            let mut reader = Client::connect_device(&self.url, &token, READER_DEVICE).await?;
            registered(reader.request(&group.registration(who.len() - 1)?).await?)?;
            reader.close().await;
            for change in changes {
                expect_acks(self.clients[0].submit(&doc, &[change]).await?)?;
            }
            group.confirm()?;
            self.groups[index] = Some(group);
        }
        Ok(())
    }

    /// The MLS record of the reader's device in conversation `index`'s group.
    pub fn reader_saved(&self, index: usize) -> Result<Option<(&'static str, Vec<u8>)>> {
        match self.groups.get(index) {
            Some(Some(group)) => Ok(Some(group.saved(self.devices.len())?)),
            _ => Ok(None),
        }
    }

    /// Posts `count` messages into the bucket `parts` (round robin over writers; the n-th
    /// message of the run goes to part n / BUCKET_TARGET_MESSAGES, as writers following the
    /// conversation fill it; up to 500 per submit), each acked before this returns. A part is
    /// written to the end before the next one. Into an encrypted conversation each message
    /// is sealed by its writer's device.
    pub async fn post(
        &mut self,
        conv: usize,
        parts: &[DocId],
        first_at: i64,
        count: usize,
        chars: usize,
    ) -> Result<()> {
        let writers = self.devices.len();
        if self.progress.len() <= conv {
            self.progress.resize(conv + 1, Progress::default());
        }
        let first = self.progress[conv].written;
        let mut i = 0;
        while i < count {
            let part = (first + i) / BUCKET_TARGET_MESSAGES;
            let doc = parts
                .get(part)
                .ok_or_else(|| anyhow!("message {} falls past the last part", first + i))?;
            let end = count.min((part + 1) * BUCKET_TARGET_MESSAGES - first);
            let mut per_writer: Vec<Vec<(Change, String, String)>> = vec![Vec::new(); writers];
            for k in i..end {
                let w = (first + k) % writers;
                let at = first_at + k as i64;
                let id = MessageId::new(message_id(&mut self.rng, at))?;
                let author = account(&self.devices[w].account)?;
                let text = id.to_string();
                let content = body(&mut self.rng, chars);
                let message = match self.groups.get_mut(conv) {
                    Some(Some(group)) => group.message(w, id, author, content.clone(), at)?,
                    _ => NewMessage::text(id, author, content.clone(), at),
                };
                let change =
                    self.devices[w].write(doc, |d, t| write::post_message(d, t, &message))?;
                per_writer[w].push((change, text, content));
            }
            for (w, changes) in per_writer.iter().enumerate() {
                for chunk in changes.chunks(500) {
                    let batch: Vec<_> = chunk.iter().map(|(c, _, _)| c.clone()).collect();
                    let answers = self.clients[w].submit(doc, &batch).await?;
                    expect_acks(answers.clone())?;
                    for (answer, (_, id, content)) in answers.iter().zip(chunk) {
                        if let Answer::Ack { seq, .. } = answer {
                            self.progress[conv].acked.push((
                                (part, *seq),
                                id.clone(),
                                content.clone(),
                            ));
                        }
                    }
                }
            }
            i = end;
        }
        self.progress[conv].written += count;
        Ok(())
    }

    /// The server order of conversation `conv`'s messages: (id, body) by the seqs their
    /// acks carried.
    pub fn server_order(&self, conv: usize) -> Vec<(String, String)> {
        let mut acked = self
            .progress
            .get(conv)
            .map(|p| p.acked.clone())
            .unwrap_or_default();
        acked.sort();
        acked
            .into_iter()
            .map(|(_, id, content)| (id, content))
            .collect()
    }
}

fn expect_acks(answers: Vec<Answer>) -> Result<()> {
    match answers.iter().find(|a| !matches!(a, Answer::Ack { .. })) {
        Some(other) => bail!("a writer's change was not accepted: {other:?}"),
        None => Ok(()),
    }
}

/// The directory's answer to a registering upload.
fn registered(answer: confab_core::protocol::ServerFrame) -> Result<()> {
    match answer {
        confab_core::protocol::ServerFrame::KeyPackagesStored { .. } => Ok(()),
        other => bail!("registering a device: {other:?}"),
    }
}
