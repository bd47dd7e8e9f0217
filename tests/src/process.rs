use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process whose output goes to a log file, killed when dropped so a failing test
/// leaves nothing running.
pub struct ChildProcess {
    child: Child,
    log_path: PathBuf,
}

impl ChildProcess {
    pub fn spawn(name: &str, mut command: Command) -> ChildProcess {
        let log_path = std::env::temp_dir().join(format!("{}.log", crate::unique(name)));
        let log = File::create(&log_path).expect("creating a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {name}: {error}"));
        ChildProcess { child, log_path }
    }

    /// Starts a server on a port found free (`command_for` gets its `127.0.0.1:PORT`) and
    /// returns once it accepts connections, with that address. The port can be taken (by any
    /// client's outgoing connection) before the server binds it: the server then exits at once,
    /// saying the address is in use, and another port is tried.
    pub fn spawn_listening(
        name: &str,
        command_for: impl Fn(&str) -> Command,
    ) -> (ChildProcess, String) {
        for attempt in 1..=5 {
            let listen = format!("127.0.0.1:{}", crate::free_port());
            let mut process = ChildProcess::spawn(name, command_for(&listen));
            let deadline = Instant::now() + Duration::from_secs(30);
            while process.is_running() {
                if std::net::TcpStream::connect(&listen).is_ok() {
                    return (process, listen);
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} did not listen on {listen} within 30 s:\n{}",
                    process.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = process.log();
            assert!(
                log.contains("Address already in use") && attempt < 5,
                "{name} exited (attempt {attempt}):\n{log}"
            );
        }
        unreachable!("the last attempt either returns or fails its assertion")
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the process with SIGTERM, as an operator would, and waits for it.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.is_running() {
            self.terminate();
        }
    }
}
