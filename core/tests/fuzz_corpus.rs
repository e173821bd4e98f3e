//! Replays the committed fuzz seed corpora (fuzz/corpus/<target>/) through
//! the same functions the cargo-fuzz targets run, so CI exercises them
//! without a fuzzer. Inputs a fuzzer finds go into the same folders.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "empty corpus for {target}");
    v
}

#[test]
fn frame_decoder_corpus() {
    for (name, data) in corpus("frame_decoder") {
        eprintln!("frame_decoder/{name}");
        netchan::fuzz::frame_decoder(&data);
    }
}

#[test]
fn handshake_corpus() {
    for (name, data) in corpus("handshake") {
        eprintln!("handshake/{name}");
        netchan::fuzz::handshake(&data);
    }
}

#[test]
fn shared_key_handshake_corpus() {
    for (name, data) in corpus("shared_key_handshake") {
        eprintln!("shared_key_handshake/{name}");
        netchan::fuzz::shared_key_handshake(&data);
    }
}

#[test]
fn credit_corpus() {
    for (name, data) in corpus("credit") {
        eprintln!("credit/{name}");
        netchan::fuzz::credit(&data);
    }
}

#[test]
fn stream_credit_corpus() {
    for (name, data) in corpus("stream_credit") {
        eprintln!("stream_credit/{name}");
        netchan::fuzz::stream_credit(&data);
    }
}

#[test]
fn path_pattern_corpus() {
    for (name, data) in corpus("path_pattern") {
        eprintln!("path_pattern/{name}");
        netchan::fuzz::path_pattern(&data);
    }
}

// A cheap stand-in for a fuzzer in CI: random mutations of the seeds.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    #[test]
    fn mutated_seeds_never_panic(
        seed in 0usize..64,
        flips in proptest::collection::vec((0usize..4096, proptest::num::u8::ANY), 0..8),
        cut in 0usize..4096,
    ) {
        for target in ["frame_decoder", "handshake", "path_pattern", "credit", "stream_credit", "shared_key_handshake"] {
            let seeds = corpus(target);
            let mut data = seeds[seed % seeds.len()].1.clone();
            for (at, b) in &flips {
                if !data.is_empty() {
                    let i = at % data.len();
                    data[i] ^= b;
                }
            }
            data.truncate(cut.max(1).min(data.len()));
            match target {
                "frame_decoder" => netchan::fuzz::frame_decoder(&data),
                "handshake" => netchan::fuzz::handshake(&data),
                "credit" => netchan::fuzz::credit(&data),
                "stream_credit" => netchan::fuzz::stream_credit(&data),
                "shared_key_handshake" => netchan::fuzz::shared_key_handshake(&data),
                _ => netchan::fuzz::path_pattern(&data),
            }
        }
    }
}

// Streams' credit accounting on any sequence of operations.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
    #[test]
    fn stream_credit_holds_for_any_operations(
        data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
    ) {
        netchan::fuzz::stream_credit(&data);
    }
}
