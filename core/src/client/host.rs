//! Helpers for Rust hosts of the engine.

use super::engine::{ClientEngine, Output};
use super::error::ClientError;
use super::store::{block_on_ready, read, LocalStore};

/// For hosts whose store never waits (files, memory): drains the engine, carrying out its
/// store writes and loads in order until it asks for nothing more, and returns what is
/// left for the host (frames and events), in order.
pub fn carry_out_stored<S: LocalStore>(
    engine: &mut ClientEngine,
    store: &S,
) -> Result<Vec<Output>, ClientError> {
    let waited = || ClientError::Store("the store did not finish at once".into());
    let mut rest = Vec::new();
    loop {
        let outputs = engine.drain();
        if outputs.is_empty() {
            return Ok(rest);
        }
        for output in outputs {
            match output {
                Output::Persist(ops) => block_on_ready(store.write(ops))
                    .ok_or_else(waited)?
                    .map_err(|e| ClientError::Store(e.0))?,
                Output::Load(load) => {
                    let answer = block_on_ready(read(store, &load.reads)).ok_or_else(waited)?;
                    engine.loaded(load.id, answer)?;
                }
                other => rest.push(other),
            }
        }
    }
}
