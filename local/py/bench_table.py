"""Writes the throughput table of docs/benchmarks.md from a run's raw results.

The section between `<!-- throughput:begin -->` and `<!-- throughput:end -->` is replaced; the
rest of the page (the reading of the figures) is written by people.
"""
import argparse
import json
import re

def verdict(value, target, higher_is_better=True):
    met = value >= target if higher_is_better else value <= target
    return "**met**" if met else "**missed**"


CPU_ROWS = [
    ("raw consume", "raw_consume"),
    ("bridge alone", "bridge_instant_function"),
    ("backup end to end", "backup_end_to_end"),
    ("backup end to end, one poller per partition", "backup_end_to_end_poller_per_partition"),
    ("produce from memory, 4 partitions", "produce_from_memory_4_partitions"),
    ("restore state machine", "restore_state_machine"),
    ("produce from memory, 1 partition", "produce_from_memory_1_partition"),
    ("restore-partition binary", "restore_partition_binary"),
    ("emulator alone: store every segment", "emulator_writes_alone"),
    ("emulator alone: GET every segment", "emulator_reads_alone"),
    ("backup end to end, S3 on s3s-fs", "backup_end_to_end_fast_s3"),
    ("backup end to end, one poller per partition, S3 on s3s-fs",
     "backup_end_to_end_poller_per_partition_fast_s3"),
    ("restore-partition binary, S3 on s3s-fs", "restore_partition_binary_fast_s3"),
    ("s3s-fs and emulated DynamoDB alone: store every segment", "fast_s3_writes_alone"),
    ("s3s-fs alone: GET every segment", "fast_s3_reads_alone"),
]


def cpu_table(paths, cores):
    """Where each path's core-seconds went: the lines of a table, none for runs before it."""
    rows = [(name, paths[key]["cpu_core_seconds"]) for name, key in CPU_ROWS
            if paths.get(key, {}).get("cpu_core_seconds")]
    if not rows:
        return []
    # Runs before the s3s-fs paths had no such process.
    fast_s3 = any("fast_s3" in cpu for _, cpu in rows)
    lines = [
        "",
        f"Where the CPU went during each path, in core-seconds ({cores} cores × its seconds are "
        "available; *Tidemark and other* is every other process: functions, bridges, Lambda "
        "host, Step Functions gateway; *bench* is the bench binary's own producers, consumer "
        "and instant function; *steal* is time the hypervisor gave to other machines):",
        "",
        "| path | available | Tidemark and other | emulator | " + ("s3s-fs | " if fast_s3 else "")
        + "broker | bench | steal | idle |",
        "|---|---|---|---|" + ("---|" if fast_s3 else "") + "---|---|---|---|",
    ]
    for name, cpu in rows:
        idle = max(cpu["available"] - cpu["busy"] - cpu["steal"], 0.0)
        fast = f"{cpu.get('fast_s3', 0.0):.2f} | " if fast_s3 else ""
        lines.append(
            f"| {name} | {cpu['available']:.2f} | {cpu['tidemark_and_other']:.2f} | "
            f"{cpu['emulator']:.2f} | {fast}{cpu['broker']:.2f} | {cpu['bench']:.2f} | "
            f"{cpu['steal']:.2f} | {idle:.2f} |"
        )
    return lines


def table(handler, run):
    facts = run["run"]
    machine = facts["machine"]
    data = run["data_set"]
    paths = run["paths"]
    ratios = run["ratios"]
    lines = []
    commit = (facts["commit"] or "unknown")[:12]
    dirty = " (with uncommitted changes)" if facts.get("uncommitted_changes") else ""
    lines.append(
        f"Run of {facts['date']} at commit `{commit}`{dirty}, on {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB ({machine.get('cpu') or 'unknown CPU'}). Data set: "
        f"{data['records']:,} records, {data['record_bytes'] / 1e6:,.1f} MB of record bytes "
        f"({data['average_record_bytes']:.0f} bytes each on average), {data['partitions']} "
        f"partitions, seed {data['seed']}."
    )
    lines.append("")
    lines.append("| path | seconds | MB/s of record bytes | vs its baseline | peak RSS |")
    lines.append("|---|---|---|---|---|")

    def rss(path):
        parts = [f"{name} {mib:.1f} MiB" for name, mib in path["peak_rss_mib"].items()]
        return ", ".join(parts) or ""

    def row(name, key, ratio=None, shown=None):
        path = paths[key]
        if shown is None:
            shown = "1.00× (baseline)" if ratio is None else f"{ratio:.2f}×"
        runs = path.get("runs_mb_per_s")
        if runs:
            name += f" (median of {len(runs)} runs: " + ", ".join(f"{r:.1f}" for r in runs) + " MB/s)"
        lines.append(
            f"| {name} | {path['seconds']:.2f} | {path['mb_per_s']:.1f} | {shown} | {rss(path)} |"
        )

    def waited(key):
        """A restore-partition invocation's own account of its waits, when the run has it."""
        account = paths[key].get("waited")
        if not account:
            return ""
        return (f" (it waited {account['for_target_ms'] / 1000:.2f} s for the target's "
                f"acknowledgements, {account['for_backup_ms'] / 1000:.2f} s for the backup's records)")

    def by_state(key):
        """Where a state machine's time went, each state of 10 ms or more (the Pass and
        Choice states take less), when the run has it."""
        states = [s for s in paths[key].get("seconds_by_state") or [] if s["seconds"] >= 0.01]
        if not states:
            return ""
        return " (" + ", ".join(f"{s['state']} {s['seconds']:.2f} s" for s in states) + ")"

    row("raw consume, librdkafka with the bridge's settings (backup baseline)", "raw_consume")
    bridge = paths["bridge_instant_function"]
    startup = bridge.get("startup_seconds")
    started = f" (first event after {startup:.2f} s)" if startup is not None else ""
    row(f"bridge alone, function returns at once{started}", "bridge_instant_function",
        ratios["bridge_vs_raw_consume"])
    row("**backup end to end**: bridge → backup-writer → emulated S3 + DynamoDB",
        "backup_end_to_end", ratios["backup_vs_raw_consume"])
    if "backup_end_to_end_poller_per_partition" in paths:
        row("**backup end to end, one poller per partition** (4 bridges in one group, 4 writer "
            "environments, as the event source mapping scales)",
            "backup_end_to_end_poller_per_partition",
            ratios["backup_poller_per_partition_vs_raw_consume"])
    row("produce from memory, 4 partitions at once (restore baseline)",
        "produce_from_memory_4_partitions")
    row(f"**restore state machine**, 4 partitions in parallel{by_state('restore_state_machine')}",
        "restore_state_machine", ratios["restore_state_machine_vs_produce"])
    row("produce from memory, 1 partition (restore-partition baseline)",
        "produce_from_memory_1_partition")
    row(f"**restore-partition binary**, 1 partition{waited('restore_partition_binary')}",
        "restore_partition_binary",
        ratios["restore_partition_vs_produce"])
    compression = run["compression_ratio"]
    row("emulator alone: the writer's storage calls for every segment, no Tidemark work",
        "emulator_writes_alone", ratios["emulator_writes_vs_raw_consume"])
    row("emulator alone: GET every segment, 2 at a time", "emulator_reads_alone",
        shown="(no baseline)")
    if "backup_end_to_end_fast_s3" in paths:
        row("**backup end to end, S3 on s3s-fs** (DynamoDB still emulated)",
            "backup_end_to_end_fast_s3", ratios["backup_fast_s3_vs_raw_consume"])
        row("**backup end to end, one poller per partition, S3 on s3s-fs**",
            "backup_end_to_end_poller_per_partition_fast_s3",
            ratios["backup_poller_per_partition_fast_s3_vs_raw_consume"])
        row("**restore-partition binary, 1 partition, S3 on s3s-fs**"
            + waited("restore_partition_binary_fast_s3"),
            "restore_partition_binary_fast_s3", ratios["restore_partition_fast_s3_vs_produce"])
        row("s3s-fs and emulated DynamoDB alone: the writer's storage calls for every segment",
            "fast_s3_writes_alone", ratios["fast_s3_writes_vs_raw_consume"])
        row("s3s-fs alone: GET every segment, 2 at a time", "fast_s3_reads_alone",
            shown="(no baseline)")
    lines.extend(cpu_table(paths, machine["cores"]))
    lines.append("")
    lines.append(
        f"Compression: {data['record_bytes']:,} record bytes in {run['stored_bytes']:,} stored "
        f"bytes, **{compression:.2f}×**."
    )
    lines.append("")

    h = handler["paths"]
    lines.append(
        f"Handler CPU path on one {handler['event']['json_bytes'] / 1e6:.1f} MB event "
        f"({handler['event']['records']} records, {handler['event']['record_bytes'] / 1e6:.2f} MB "
        f"of record bytes, {handler['event']['partitions']} partitions), median of "
        f"{handler['iterations']} runs on {handler['cores']} cores:"
    )
    lines.append("")
    lines.append("| path | median | MB/s of record bytes | vs plain zstd-3 |")
    lines.append("|---|---|---|---|")
    for name, key in [
        ("plain zstd-3 of the record bytes (baseline)", "plain_zstd3"),
        ("handler CPU path, one thread", "handler_one_thread"),
        ("**handler CPU path, partitions in parallel**", "handler"),
        ("plain zstd-3 split over every core, a thread started for each part (reference)",
         "plain_zstd3_on_every_core"),
    ]:
        if key not in h:
            continue
        p = h[key]
        lines.append(
            f"| {name} | {p['median_ms']:.2f} ms | {p['mb_per_s']:.1f} | {p['vs_plain_zstd3']:.2f}× |"
        )
    b = handler["breakdown_one_thread_ms"]
    lines.append(
        f"| — one thread: JSON + base64 {b['json_and_base64']:.2f} ms, framing + CRC32C + "
        f"zstd-3 {b['framing_crc_zstd']:.2f} ms | | | |"
    )
    through_runtime = b.get("json_and_base64_through_the_runtimes_deserializer")
    if through_runtime is not None:
        lines.append(
            f"| — JSON + base64 through the Lambda runtime's own deserializer "
            f"(serde_path_to_error, which the writer's layer bypasses): {through_runtime:.2f} ms "
            "| | | |"
        )
    lines.append("")
    reading = handler.get("reading")
    if reading is not None:
        plain, reader = reading["plain_zstd_decompress"], reading["segment_reader"]
        lines.append(
            "The restore's side of the same segments (each checked whole, then decoded record by "
            f"record): **{reader['median_ms']:.2f} ms, {reader['mb_per_s']:.1f} MB/s**, "
            f"{reader['vs_plain_zstd_decompress']:.2f}× of plain zstd decompression of their "
            f"bodies ({plain['median_ms']:.2f} ms, {plain['mb_per_s']:.1f} MB/s)."
        )
        lines.append("")

    lines.append("| target | measured | target | |")
    lines.append("|---|---|---|---|")

    def target_row(name, value, target, unit="×", higher=True):
        sign = "≥" if higher else "≤"
        lines.append(
            f"| {name} | {value:.2f}{unit} | {sign} {target}{unit} | {verdict(value, target, higher)} |"
        )

    target_row("handler CPU path vs plain zstd-3", h["handler"]["vs_plain_zstd3"], 0.8)
    target_row("bridge alone vs raw consume", ratios["bridge_vs_raw_consume"], 1.0)
    target_row("backup end to end vs raw consume", ratios["backup_vs_raw_consume"], 0.9)
    if "backup_poller_per_partition_vs_raw_consume" in ratios:
        target_row("backup end to end, one poller per partition, vs raw consume",
                   ratios["backup_poller_per_partition_vs_raw_consume"], 0.9)
    target_row("restore-partition binary vs produce", ratios["restore_partition_vs_produce"], 0.9)
    target_row("restore state machine vs produce", ratios["restore_state_machine_vs_produce"], 0.9)
    if "backup_end_to_end_fast_s3" in paths:
        target_row("backup end to end vs raw consume, S3 on s3s-fs",
                   ratios["backup_fast_s3_vs_raw_consume"], 0.9)
        target_row("backup end to end, one poller per partition, vs raw consume, S3 on s3s-fs",
                   ratios["backup_poller_per_partition_fast_s3_vs_raw_consume"], 0.9)
        target_row("restore-partition binary vs produce, S3 on s3s-fs",
                   ratios["restore_partition_fast_s3_vs_produce"], 0.9)
    backup_paths = [paths[key] for key in
                    ("backup_end_to_end", "backup_end_to_end_poller_per_partition",
                     "backup_end_to_end_fast_s3", "backup_end_to_end_poller_per_partition_fast_s3")
                    if key in paths]
    peak = lambda process: max(path["peak_rss_mib"].get(process, 0) for path in backup_paths)
    target_row("backup-writer peak RSS", peak("backup-writer"), 64, " MiB", False)
    target_row("bridge peak RSS", peak("bridge"), 128, " MiB", False)
    restore_rss = max(paths[key]["peak_rss_mib"].get("restore-partition", 0) for key in
                      ("restore_partition_binary", "restore_partition_binary_fast_s3")
                      if key in paths)
    target_row("restore-partition peak RSS", restore_rss, 128, " MiB", False)
    target_row("compression (record bytes / stored bytes)", compression, 5.08)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--throughput", required=True)
    parser.add_argument("--doc", required=True)
    args = parser.parse_args()
    with open(args.handler) as f:
        handler = json.load(f)
    with open(args.throughput) as f:
        run = json.load(f)
    with open(args.doc) as f:
        doc = f.read()
    begin, end = "<!-- throughput:begin -->", "<!-- throughput:end -->"
    if begin not in doc or end not in doc:
        raise SystemExit(f"{args.doc} has no {begin} … {end} section to replace")
    section = f"{begin}\n{table(handler, run)}\n{end}"
    doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, doc, flags=re.S)
    with open(args.doc, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
