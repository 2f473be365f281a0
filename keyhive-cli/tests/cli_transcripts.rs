//! Issue 12 item 7: transcripts pin the help text of every command (`tests/cmd/*.toml`).
//! After changing a command's help on purpose, regenerate them with
//! `TRYCMD=overwrite cargo test -p keyhive-cli --test cli_transcripts` and review the diff.

#[test]
fn help_transcripts() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}
