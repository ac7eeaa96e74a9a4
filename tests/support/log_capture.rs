//! One capturing `tracing` subscriber per test binary: every line any test logs lands in one
//! buffer, filtered as production filters (`rooster::logging::filter`, which keeps the
//! URL-bearing dependencies capped whatever the level). Shared by `tests/common` (TRACE, to
//! scan everything for secrets) and `tests/observability.rs` (INFO, to count what an operator
//! would see).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// The binary's log buffer. The first call installs the subscriber at `level`; later calls
/// return the same buffer whatever level they name (a binary uses one level).
pub fn capture(level: &str) -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(rooster::logging::filter(Some(level)))
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        // Another harness user may have won the race; then its buffer is this one anyway.
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log's length in bytes so far: an offset for [`lines_since`].
pub fn offset(buf: &Mutex<Vec<u8>>) -> usize {
    buf.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// The lines logged since `from` (an [`offset`]).
pub fn lines_since(buf: &Mutex<Vec<u8>>, from: usize) -> Vec<String> {
    let buf = buf.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buf[from..])
        .lines()
        .map(str::to_owned)
        .collect()
}
