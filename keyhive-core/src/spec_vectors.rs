//! Test support: writing and checking the JSON test vectors under `specs/vectors/`.

use serde_json::Value;

fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../specs/vectors")
        .join(name)
}

/// Writes `vectors` to `specs/vectors/NAME` (run from an `#[ignore]`d generator test).
pub(crate) fn write(name: &str, vectors: &Value) {
    let text = serde_json::to_string_pretty(vectors).expect("json");
    std::fs::create_dir_all(path(name).parent().expect("parent")).expect("mkdir");
    std::fs::write(path(name), text + "\n").expect("write");
}

/// Reads `specs/vectors/NAME` (for files that several generators share).
pub(crate) fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).expect("vector file exists");
    serde_json::from_str(&text).expect("json")
}

/// Asserts that `specs/vectors/NAME` holds exactly `vectors`.
pub(crate) fn check(name: &str, vectors: &Value) {
    let text = std::fs::read_to_string(path(name)).expect("vector file exists");
    let stored: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        &stored, vectors,
        "specs/vectors/{name} differs from this implementation"
    );
}
