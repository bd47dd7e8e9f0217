//! What bench binaries read off processes and the machine: peak memory of a process and of a
//! Lambda host's function processes, and the facts a published run records (commit, machine,
//! date).

use std::process::Command;

use serde_json::{Value, json};

use crate::LambdaHost;

/// Peak resident memory (VmHWM) of process `pid`, in KiB; 0 once it is gone.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The running children of `pid` whose command line contains `binary`.
pub fn children_running(pid: u32, binary: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|child| child.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|child| {
            std::fs::read(format!("/proc/{child}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(binary))
        })
        .collect()
}

impl LambdaHost {
    /// The largest peak RSS among the host's running `binary` processes (its execution
    /// environments), in KiB. Read it before the host stops.
    pub fn function_peak_rss_kib(&self, binary: &str) -> u64 {
        children_running(self.process.id(), binary)
            .into_iter()
            .map(peak_rss_kib)
            .max()
            .unwrap_or(0)
    }
}

/// Commit, machine and date of a run, for its published results.
pub fn run_facts() -> Value {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|value| value.trim_start_matches([' ', '\t', ':']).to_owned());
    json!({
        "commit": git(&["rev-parse", "HEAD"]),
        // What the benchmark writes itself (its results, the table) is not a change to the code.
        "uncommitted_changes": git(&[
            "status",
            "--porcelain",
            "--",
            ":/",
            ":(top,exclude)benches/results",
            ":(top,exclude)docs/benchmarks.md",
        ])
            .is_some_and(|status| !status.is_empty()),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": {
            "cores": std::thread::available_parallelism().map_or(1, usize::from),
            "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            "cpu": cpu,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|v| v.trim().to_owned()),
        },
    })
}
