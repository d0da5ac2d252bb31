//! Running the `zoo` binary under test and capturing what it printed.

use std::process::Command;

/// What a run of the binary printed, and its exit code.
pub struct Output {
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `zoo ARGS` (without `$ZOO_DEFAULT_MODEL` from the environment).
pub fn zoo(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo")).args(args).env_remove("ZOO_DEFAULT_MODEL").output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
