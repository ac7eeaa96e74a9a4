//! Fuzz target: config parsing and validation (`rooster::config::Config::parse`) on arbitrary
//! text. Properties (issue 7; SPEC §4 Config): never panics; an error that names a line names
//! one that exists in the text (1 ..= number of newlines + 1), and its message is one line.
//! Touches no file or environment: `parse` is pure and secrets are never loaded here.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rooster::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = Config::parse(&text, Path::new("f.toml")) {
        if let Some(line) = e.line {
            let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
        }
        assert!(
            !e.message.contains('\n'),
            "multi-line message: {:?}",
            e.message
        );
    }
});
