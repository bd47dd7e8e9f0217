//! What bench binaries read off processes and the machine: peak memory of a process and of a
//! Lambda host's function processes, CPU time of the machine and of named processes, and the
//! facts a published run records (commit, machine, date).

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

/// /proc counts CPU time in USER_HZ ticks, 100 a second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// The CPU time the machine and some of its processes had used at one moment: bracketing a
/// path with two samples says where its core-seconds went (Tidemark's processes, the emulator,
/// the broker, the bench itself) and how many the hypervisor took (steal).
#[derive(Debug, Clone)]
pub struct CpuSample {
    busy: f64,
    steal: f64,
    processes: Vec<(&'static str, f64)>,
}

impl CpuSample {
    /// `processes`: a name and a pid each; a process that is gone counts as no time.
    pub fn take(processes: &[(&'static str, u32)]) -> Self {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat is readable");
        // cpu  user nice system idle iowait irq softirq steal guest guest_nice
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("cpu "))
            .expect("/proc/stat starts with the machine's cpu line")
            .split_whitespace()
            .map(|field| field.parse().expect("/proc/stat counts ticks"))
            .collect();
        let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
        CpuSample {
            busy: busy / TICKS_PER_SECOND,
            steal: ticks.get(7).copied().unwrap_or(0.0) / TICKS_PER_SECOND,
            processes: processes
                .iter()
                .map(|&(name, pid)| (name, process_cpu_seconds(pid)))
                .collect(),
        }
    }

    /// Core-seconds used since `earlier`, over `seconds` of wall time: by each named process,
    /// by everything else (`tidemark_and_other`: the functions, bridges, Lambda host), the
    /// hypervisor's steal, and what the machine's cores could have given.
    pub fn since(&self, earlier: &CpuSample, seconds: f64) -> Value {
        let mut account = serde_json::Map::new();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        account.insert("available".into(), json!(cores as f64 * seconds));
        let busy = self.busy - earlier.busy;
        account.insert("busy".into(), json!(busy));
        account.insert("steal".into(), json!(self.steal - earlier.steal));
        let mut named = 0.0;
        for ((name, now), (_, before)) in self.processes.iter().zip(&earlier.processes) {
            let used = (now - before).max(0.0);
            named += used;
            account.insert((*name).into(), json!(used));
        }
        account.insert("tidemark_and_other".into(), json!((busy - named).max(0.0)));
        Value::Object(account)
    }
}

/// User and system CPU seconds of process `pid`, all its threads; 0 once it is gone.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces: fields are counted after its closing ')'.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / TICKS_PER_SECOND)
        })
        .unwrap_or(0.0)
}

/// The pid a local stack script recorded for `server` (`moto`, `kafka`) in `$TIDEMARK_STATE`.
pub fn stack_server_pid(server: &str) -> u32 {
    let state = std::env::var("TIDEMARK_STATE")
        .expect("TIDEMARK_STATE names the local stack's state directory (local/env.sh sets it)");
    let path = format!("{state}/{server}.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{path}: {error}; is the local stack up (local/up.sh)?"))
        .trim()
        .parse()
        .unwrap_or_else(|error| panic!("{path} holds no pid: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_is_accounted_its_core_seconds_within_the_machines_busy_time() {
        let me = [("me", std::process::id())];
        let before = CpuSample::take(&me);
        let spin_from = process_cpu_seconds(std::process::id());
        let mut x = 0u64;
        while process_cpu_seconds(std::process::id()) - spin_from < 0.3 {
            for n in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(n));
            }
        }
        let account = CpuSample::take(&me).since(&before, 1.0);
        let mine = account["me"].as_f64().unwrap();
        assert!(mine >= 0.3, "{account}");
        // The machine's busy time holds this process's (ticks are counted apart: one each way).
        assert!(
            account["busy"].as_f64().unwrap() >= mine - 0.05,
            "{account}"
        );
        let gone = CpuSample::take(&[("gone", u32::MAX)]);
        assert_eq!(gone.since(&gone, 1.0)["gone"], 0.0);
    }
}
