//! The one tokio runtime that drives every object-store request of the process.
//!
//! Python threads call in with the GIL released and block on their request; the runtime's two
//! workers only move bytes between sockets, so more would add nothing on a small machine while
//! still letting a part upload run in the background of a blocked caller.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ocistore-io")
            .enable_all()
            .build()
            .expect("the object-store runtime needs two threads")
    })
}

/// Runs `future` to completion on the shared runtime. Must not be called from inside it (the
/// callers are Python threads and plain Rust threads, never runtime tasks).
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}
