//! `cargo bench --bench validate`: how long `outrig validate` takes, as a user runs it
//! (the whole release binary, process start included) and in-process (the checking
//! alone), on `examples/full`, on a generated 1 MB config, and on a generated 1.2 MB config
//! with 20,000 errors (unknown keys, bad values and unknown references among 5,000 names).
//! Prints figures; asserts nothing. Targets: under 20 ms for the example, under 200 ms for
//! 1 MB, well under a second for the 20,000 errors.

// A benchmark runs the binary it measures.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use std::path::Path;
use std::process::Command;

mod support;
use support::{measure, ms};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = env!("CARGO_BIN_EXE_outrig");
    let generated = tempfile::tempdir().expect("temp dir");
    let big = generated.path().join("outrig.toml");
    std::fs::write(&big, generate(1024 * 1024)).expect("write generated config");
    let size = std::fs::metadata(&big).unwrap().len();
    let broken = generated.path().join("broken.toml");
    std::fs::write(&broken, generate_errors(20_000)).expect("write generated config");
    let broken_size = std::fs::metadata(&broken).unwrap().len();

    println!("outrig validate (median / p95 of N runs)");
    for (label, config, runs, errors) in [
        (
            "examples/full",
            root.join("examples/full/outrig.toml"),
            50,
            0,
        ),
        (
            &*format!("generated {:.2} MB", size as f64 / 1e6),
            big.clone(),
            15,
            0,
        ),
        (
            &*format!("{:.2} MB, 20,000 errors", broken_size as f64 / 1e6),
            broken.clone(),
            15,
            20_000,
        ),
    ] {
        let process = measure(runs, || {
            let status = Command::new(binary)
                .args(["validate", "--config"])
                .arg(&config)
                .env("NO_COLOR", "1")
                .stderr(std::process::Stdio::null())
                .status()
                .expect("outrig runs");
            assert!(status.code().is_some_and(|c| c <= 1));
        });
        let in_process = measure(runs, || {
            let checked = outrig::config::check_file(&config, root, &|_| true).expect("readable");
            assert_eq!(checked.error_count(), errors, "{label}");
        });
        println!(
            "  {label:<24} binary {} / {}   in-process {} / {}   ({runs} runs)",
            ms(process.0),
            ms(process.1),
            ms(in_process.0),
            ms(in_process.1)
        );
    }
}

/// A config with exactly `errors` errors (an even number): per two, an image with a
/// misspelt key and a pids-limit that is not a number, and an agent naming an image and a
/// model that do not exist; among 5,000 valid images.
fn generate_errors(errors: usize) -> String {
    let mut out = String::from(
        "[providers.local]\nbase-url = \"http://127.0.0.1:8080/v1\"\n\n\
         [models.small]\nprovider = \"local\"\nidentifier = \"m\"\n\n",
    );
    for index in 0..5_000 {
        out.push_str(&format!(
            "[images.image-{index}]\nfrom = \"localhost/outrig-base:bookworm\"\n\
             [images.image-{index}.mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\"]\n\n"
        ));
    }
    for index in 0..errors / 4 {
        out.push_str(&format!(
            "[images.broken-{index}]\nfrom = \"localhost/outrig-base:bookworm\"\n\
             netwrok = \"none\"\npids-limit = \"many\"\n\
             [images.broken-{index}.mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\"]\n\n\
             [agents.agent-{index}]\nmodel = \"smal-{index}\"\nimage = \"imag-{index}\"\n\n"
        ));
    }
    out
}

/// A valid config of about `bytes` bytes: many images, each with servers, mounts and an
/// agent, plus the providers and models they use.
fn generate(bytes: usize) -> String {
    let mut out = String::from(
        "#:schema ../schema/outrig.schema.json\ndefault-agent = \"agent-0\"\n\n\
         [providers.local]\nbase-url = \"http://127.0.0.1:8080/v1\"\n\n\
         [models.small]\nprovider = \"local\"\nidentifier = \"m\"\n\n",
    );
    let mut index = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "[images.image-{index}]\nfrom = \"localhost/outrig-base:bookworm\"\n\
             network = \"none\"\ncap-add = [\"NET_BIND_SERVICE\"]\npids-limit = 256\n\
             memory = \"1g\"\nmounts = [{{ source = \".\", target = \"/data\" }}]\n\
             tmpfs = [\"/tmp\"]\n\n\
             [images.image-{index}.mcp.time]\n\
             command = [\"python3\", \"-m\", \"mcp_server_time\"]\n\
             env = {{ PYTHONPATH = \"/opt/mcp/python\", PRICE = \"$$5\" }}\n\
             call-timeout = \"30s\"\n\n\
             [images.image-{index}.mcp.fs]\n\
             command = [\"node\", \"/opt/mcp/node/server.js\", \"/workspace\"]\n\n\
             [agents.agent-{index}]\nmodel = \"small\"\nimage = \"image-{index}\"\n\
             tools = [\"fs__*\", \"time__get_current_time\"]\n\n"
        ));
        index += 1;
    }
    out
}
