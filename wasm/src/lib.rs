//! Confab WebAssembly bindings. The client/wasm issue fills this crate.
