use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

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
