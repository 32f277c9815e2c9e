//! Starting helper processes that cannot outlive the test process.

use std::process::{Command, Stdio};

/// Runs `command` (a shell command line) under a small `sh` supervisor that
/// sends it SIGINT once the test process is gone, then runs `cleanup`.
///
/// Rust's test harness has no global teardown, so a server shared by all the
/// tests of a process would otherwise be left running after they finish.
pub fn spawn_supervised(command: &str, cleanup: &str) -> std::io::Result<()> {
    let script = format!(
        "{command} & child=$!\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done\n\
         kill -INT $child 2>/dev/null; wait $child; {cleanup}",
        parent = std::process::id(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(())
}

/// A free TCP port on 127.0.0.1, for a server that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}
