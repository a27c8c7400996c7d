//! Members' read times (`readTimes`): asked of the server over the socket, never kept
//! (docs/CLIENT.md, "Read times").

use confab_core::client::Outcome;
use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;

use crate::api::{conv_id, promise, to_js};
use crate::client::ConfabClient;
use crate::error::Failure;
use crate::types::ReadTime;

#[wasm_bindgen]
impl ConfabClient {
    /// Each member's read marker of `conv` with when it last moved, by the server's stored
    /// time (what REST answers as `last_read_at`). Rejects with `offline` when not
    /// connected, `forbidden` for a conversation this account may not read.
    #[wasm_bindgen(js_name = readTimes, unchecked_return_type = "Promise<ReadTime[]>")]
    pub fn read_times(&self, conv: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let conv = conv_id(&conv)?;
            let Outcome::ReadTimes { reads } = rt.request(|e, _| e.read_times(&conv)).await? else {
                return Err(Failure::new("invalid_answer", "read times: another answer"));
            };
            let out = Array::new();
            for read in reads {
                out.push(&to_js(&ReadTime::from(read))?);
            }
            Ok(JsValue::from(out))
        })
    }
}
