"""Figures out of a run: the JSON file, the markdown summary and the plots."""

import json
from pathlib import Path

from bench import coldstart, scrollback
from bench.kit.systems import COLORS, SYSTEMS

TARGETS = {
    "fanout_p50_ms": 10.0,
    "fanout_p99_ms": 50.0,
    "capacity_ratio": 10.0,
    "deliveries_per_core": 25_000.0,
    "idle_bytes_per_connection": 20 * 1024,
    "ingest_per_core": 2_000.0,
    "vs_centrifugo": 1.0,
    "loadgen_us_per_delivery": 5.0,
}


def write(result, out_dir, latest=True):
    out_dir = Path(out_dir)
    stamp = result["timestamp"]
    paths = []
    json_path = out_dir / f"{stamp}.json"
    figures = json.dumps(result, indent=1, default=_jsonable)
    json_path.write_text(figures)
    paths.append(json_path)
    prefix = "latest" if latest else stamp
    if latest:  # committed beside latest.md: the figures the summary was made from
        (out_dir / "latest.json").write_text(figures)
        paths.append(out_dir / "latest.json")
    plots = plot(result, out_dir, prefix)
    paths += plots
    md = summary(result, [p.name for p in plots])
    md_path = out_dir / f"{prefix}.md"
    md_path.write_text(md)
    paths.append(md_path)
    return paths


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# -- the summary ---------------------------------------------------------------------------


def _get(result, system, *keys):
    node = result["results"].get(system)
    for key in keys:
        if node is None:
            return None
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _fmt(value, unit="", digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def _met(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def summary(result, plots):
    m = result["machine"]
    load = m["load_avg_at_start"]
    lines = [
        f"# Benchmark {result['timestamp']} ({result['profile']} profile)",
        "",
        f"Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs, {m['memory_bytes'] / 2**30:.0f} GiB, "
        f"{m['platform']}, Python {m['python']}, {m['nginx']}, {m['redis']}. Commit {m['git_commit']}"
        f"{' (with uncommitted changes)' if m['git_dirty'] else ''}. Run time {result.get('elapsed_s', 0):.0f} s.",
        "",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        + (" — **other load was on the machine** (above 2 on 2 cores): figures are pessimistic and noisy."
           if load[0] > 2 else "."),
        "",
        "Every system ran in the same invocation on the same Kafka broker and Redis server, through an nginx "
        "gateway each with the same settings, driven by the same load generator (bench/loadgen-go). "
        "`ours-fanout` and `centrifugo-fanout` are the fan-out stage alone: a message published into Redis as "
        "the bridge does, or through Centrifugo's publish API (its Redis engine), to every SSE reader. "
        "Latency is receive time minus send time (the sender's clock, the same host), unless marked `ts`: "
        "receive time minus the message's `ts` stamped by ingest (Centrifugo's: by the producer in front of it).",
        "",
    ]
    lines += _targets_table(result)
    lines += _peer_table(result)
    lines += _fanout_table(result)
    lines += _hops_table(result)
    lines += _capacity_table(result)
    lines += _capacity_table(result, "small_rooms")
    lines += _idle_table(result)
    lines += _ingest_table(result)
    lines += scrollback.summary(_get(result, "ours", "scrollback"))
    lines += coldstart.summary(_get(result, "ours", "coldstart"))
    lines += _resources_table(result)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines) + "\n"


def _targets_table(result):
    t = TARGETS
    rows = []
    f_ours = _get(result, "ours", "fanout")
    f_seed = _get(result, "seed", "fanout")
    if f_ours:
        p = f_ours["params"]
        clean = f_ours["lost"] == 0 and f_ours["duplicates"] == 0 and f_ours["reordered"] == 0
        seed_txt = f"{f_seed['lost']} / {f_seed['duplicates']} / {f_seed['reordered']}" if f_seed else "n/a"
        label = f"{p['clients']:,} clients / {p['rooms']} rooms / {p['rate']} msg/s"
        rows.append((f"fan-out {label}: lost / duplicate / reordered", "0 / 0 / 0",
                     f"{f_ours['lost']} / {f_ours['duplicates']} / {f_ours['reordered']}", seed_txt, "", _met(clean)))
        lt = f_ours["latency_ts"] or f_ours["latency_send"]
        ls = f_ours["latency_send"]
        ss = f_seed["latency_send"] if f_seed else None
        rows.append(("fan-out p50 end to end (`ts`; send)", f"<= {t['fanout_p50_ms']:.0f} ms",
                     f"{lt['p50']:.1f} ms; {ls['p50']:.1f} ms", f"—; {ss['p50']:.1f} ms" if ss else "n/a",
                     _fmt(_ratio(ls["p50"], ss["p50"] if ss else None), "", 2), _met(lt["p50"] <= t["fanout_p50_ms"])))
        rows.append(("fan-out p99 end to end (`ts`; send)", f"<= {t['fanout_p99_ms']:.0f} ms",
                     f"{lt['p99']:.1f} ms; {ls['p99']:.1f} ms", f"—; {ss['p99']:.1f} ms" if ss else "n/a",
                     _fmt(_ratio(ls["p99"], ss["p99"] if ss else None), "", 2), _met(lt["p99"] <= t["fanout_p99_ms"])))
    c_ours = _get(result, "ours", "capacity")
    c_seed = _get(result, "seed", "capacity")
    if c_ours:
        co = c_ours["capacity_deliveries_per_s"]
        cs = c_seed["capacity_deliveries_per_s"] if c_seed else None
        ratio = _ratio(co, cs)
        rows.append((f"capacity: deliveries/s at p99 <= {c_ours['params']['p99_limit_ms']} ms, nothing lost",
                     f">= {t['capacity_ratio']:.0f}x seed", _fmt(co), _fmt(cs), _fmt(ratio, "x", 1),
                     _met(None if ratio is None else ratio >= t["capacity_ratio"])))
        dpc = c_ours["deliveries_per_core_at_capacity"]
        dpc_seed = c_seed["deliveries_per_core_at_capacity"] if c_seed else None
        rows.append(("deliveries/s per core used by the stack, at capacity", f">= {t['deliveries_per_core']:,.0f}",
                     _fmt(dpc) + f" ({_fmt(c_ours['stack_cores_at_capacity'], ' cores', 2)})",
                     _fmt(dpc_seed), _fmt(_ratio(dpc, dpc_seed), "x", 1),
                     _met(None if dpc is None else dpc >= t["deliveries_per_core"])))
    i_ours = _get(result, "ours", "idle")
    i_seed = _get(result, "seed", "idle")
    if i_ours:
        bo = i_ours["bytes_per_connection"]
        bs = i_seed["bytes_per_connection"] if i_seed else None
        rows.append((f"stream-service RSS per idle SSE connection ({i_ours['connections']:,} open)",
                     f"<= {t['idle_bytes_per_connection'] // 1024} KB",
                     _fmt(bo / 1024 if bo is not None else None, " KB"),
                     _fmt(bs / 1024 if bs is not None else None, " KB") + (
                         f" ({i_seed['connections']:,} open)" if i_seed else ""),
                     _fmt(_ratio(bo, bs), "", 2), _met(None if bo is None else bo <= t["idle_bytes_per_connection"])))
    g = _get(result, "ours", "ingest")
    if g:
        rows.append(("ingest: acknowledged POSTs/s per core used by the stack", f">= {t['ingest_per_core']:,.0f}",
                     f"{_fmt(g['acked_per_stack_core'])} ({_fmt(g['acked_per_s'])}/s on "
                     f"{g['stack_cores']:.2f} cores; {_fmt(g['acked_per_ingest_core'])} per ingest core)",
                     "not compared", "", _met(g["acked_per_stack_core"] >= t["ingest_per_core"])))
    lg = _loadgen_us_per_delivery(f_ours)
    if lg is not None:
        rows.append(("load generator CPU per delivery (fan-out)", f"<= {t['loadgen_us_per_delivery']:.0f} µs",
                     _fmt(lg, " µs"), _fmt(_loadgen_us_per_delivery(f_seed), " µs"), "",
                     _met(lg <= t["loadgen_us_per_delivery"])))
    if not rows:
        return []
    out = ["## Targets", "", "| measure | target | ours | seed | ours/seed | |", "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out + [""]


def _loadgen_us_per_delivery(fanout):
    if not fanout or not fanout["received"]:
        return None
    return fanout["resources"]["groups"]["loadgen"]["cpu_seconds"] / fanout["received"] * 1e6


def _stack_us_per_delivery(fanout):
    if not fanout or not fanout["received"]:
        return None
    groups = fanout["resources"]["groups"]
    return sum(g["cpu_seconds"] for n, g in groups.items() if n != "loadgen") / fanout["received"] * 1e6


def _capacity_rows(label, co, cp, target):
    """A capacity search of ours against Centrifugo's: capacity (with a verdict against
    ``target``) and deliveries per stack core."""
    a, b = co["capacity_deliveries_per_s"], cp["capacity_deliveries_per_s"]
    ratio = _ratio(a, b)
    # A search that ran out of steps without failing found a floor, not the capacity.
    ended_o, ended_p = co.get("first_failure") is not None, cp.get("first_failure") is not None
    verdict = None
    if ratio is not None:
        if ended_o and ended_p:
            verdict = ratio >= target
        elif ended_p and ratio >= target:  # ours is at least this
            verdict = True
        elif ended_o and ratio < target:  # Centrifugo's is at least this
            verdict = False
    rows = [(f"{label}: capacity, deliveries/s at p99 <= {co['params']['p99_limit_ms']} ms",
             ("" if ended_o else ">= ") + _fmt(a), ("" if ended_p else ">= ") + _fmt(b),
             _fmt(ratio, "x", 2), f">= {target:.0f}x", _met(verdict))]
    a, b = co["deliveries_per_core_at_capacity"], cp["deliveries_per_core_at_capacity"]
    rows.append((f"{label}: deliveries/s per stack core at capacity", _fmt(a), _fmt(b),
                 _fmt(_ratio(a, b), "x", 2), "", ""))
    return rows


def _peer_table(result):
    """Ours against Centrifugo: the whole pipeline, in many small rooms too, and the fan-out
    stage alone."""
    rows = []
    t = TARGETS["vs_centrifugo"]
    for label, ours_name, peer_name in (("whole pipeline (POST -> Kafka -> every reader)", "ours", "centrifugo"),
                                        ("fan-out stage (publish -> every reader)", "ours-fanout",
                                         "centrifugo-fanout")):
        co, cp = _get(result, ours_name, "capacity"), _get(result, peer_name, "capacity")
        if co and cp:
            rows += _capacity_rows(label, co, cp, t)
        fo, fp = _get(result, ours_name, "fanout"), _get(result, peer_name, "fanout")
        if fo and fp:
            p = fo["params"]
            for basis, key in (("send", "latency_send"), ("`ts`", "latency_ts")):
                lo, lp = fo[key], fp[key]
                if lo and lp:
                    rows.append((f"{label}: {p['clients']:,} / {p['rooms']} / {p['rate']} msg/s, p50 / p99 ({basis})",
                                 f"{lo['p50']:.1f} / {lo['p99']:.1f} ms", f"{lp['p50']:.1f} / {lp['p99']:.1f} ms",
                                 _fmt(_ratio(lo["p99"], lp["p99"]), "", 2) + " (p99)",
                                 *(("below 1 (p99)", _met(lo["p99"] < lp["p99"])) if key == "latency_send"
                                   else ("", ""))))
            a, b = _stack_us_per_delivery(fo), _stack_us_per_delivery(fp)
            rows.append((f"{label}: stack CPU per delivery at that load", _fmt(a, " µs"), _fmt(b, " µs"),
                         _fmt(_ratio(a, b), "", 2), "", ""))
            rows.append((f"{label}: lost / duplicate / reordered",
                         f"{fo['lost']} / {fo['duplicates']} / {fo['reordered']}",
                         f"{fp['lost']} / {fp['duplicates']} / {fp['reordered']}", "", "", ""))
    so, sp = _get(result, "ours", "small_rooms"), _get(result, "centrifugo", "small_rooms")
    if so and sp:
        label = f"many small rooms ({so['params']['clients']:,} clients / {so['params']['rooms']:,} rooms)"
        rows += _capacity_rows(label, so, sp, t)
        rows.append((f"{label}: lost / duplicate / reordered, every step",
                     f"{so['lost']} / {so['duplicates']} / {so['reordered']}",
                     f"{sp['lost']} / {sp['duplicates']} / {sp['reordered']}", "", "0 / 0 / 0",
                     _met(so["lost"] == so["duplicates"] == so["reordered"] == 0)))
    io, ip = _get(result, "ours", "idle"), _get(result, "centrifugo", "idle")
    if io and ip and io["bytes_per_connection"] and ip["bytes_per_connection"]:
        rows.append((f"RSS per idle SSE connection ({io['connections']:,} open; {ip['connections']:,})",
                     _kb(io["bytes_per_connection"]), _kb(ip["bytes_per_connection"]),
                     _fmt(_ratio(io["bytes_per_connection"], ip["bytes_per_connection"]), "", 2), "", ""))
    if not rows:
        return []
    out = ["## Against Centrifugo", "",
           "Capacity and throughput ratios are ours / Centrifugo (above 1: ours does more); latency, CPU and "
           "memory ratios likewise (below 1: ours takes less).", "",
           "| measure | ours | Centrifugo | ours/Centrifugo | target | |", "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out + [""]


def _fanout_table(result):
    out = ["## Fan-out", "",
           "| system | clients / rooms / offered msg/s | acked msg/s | deliveries/s | lost | dup | reordered "
           "| p50 / p90 / p99 / max ms | p50 / p99 `ts` ms | POST p99 ms | stack cores | loadgen cores |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    found = False
    for system in SYSTEMS:
        f = _get(result, system, "fanout")
        if not f:
            continue
        found = True
        p = f["params"]
        ls, lt = f["latency_send"] or {}, f["latency_ts"]
        out.append(
            f"| {system} | {p['clients']:,} / {p['rooms']} / {p['rate']} | {f['acked_rate']:.0f} | "
            f"{f['deliveries_per_s']:,.0f} | {f['lost']} | {f['duplicates']} | {f['reordered']} | "
            f"{ls.get('p50', 0):.1f} / {ls.get('p90', 0):.1f} / {ls.get('p99', 0):.1f} / {ls.get('max', 0):.0f} | "
            f"{_p50_p99(lt)} | "
            f"{f['post_latency']['p99']:.1f} | {f['stack_cores']:.2f} | {f['loadgen_cores']:.2f} |")
    return out + [""] if found else []


def _hops_table(result):
    rows = []
    f = _get(result, "ours", "fanout")
    if f and f.get("hops"):
        rows.append(("fan-out", f["hops"]))
    c = _get(result, "ours", "capacity")
    if c and c["capacity_step"] is not None and c["steps"][c["capacity_step"]].get("hops"):
        rows.append((f"capacity step ({c['steps'][c['capacity_step']]['offered_rate']:.0f} msg/s)",
                     c["steps"][c["capacity_step"]]["hops"]))
    failed = stopping_step(c["steps"]) if c else None
    if failed and failed.get("hops"):
        rows.append((f"first failed step ({failed['offered_rate']:.0f} msg/s)", failed["hops"]))
    if not rows:
        return []
    out = ["## Where the time goes (ours, from the services' own histograms)", "",
           "Bucket-interpolated, so coarse; the client side adds nginx and the load generator's read.", "",
           "| scenario | hop | count | mean ms | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for label, hop_map in rows:
        for hop, v in hop_map.items():
            if v:
                out.append(f"| {label} | {hop} | {v['count']:,} | {v['mean_ms']:.1f} | {_fmt(v['p50_ms'])} | "
                           f"{_fmt(v['p99_ms'])} |")
    return out + [""]


def _p50_p99(q):
    return f"{q['p50']:.1f} / {q['p99']:.1f}" if q else "—"


def stopping_step(steps):
    """The capacity step that stopped the search: the first that failed and was not tried
    again, and not a refinement step; None if the search ran out of steps."""
    return next((s for s in steps if not s["passed"] and not s.get("retry_follows")
                 and not s.get("refinement")), None)


def _step_verdict(step):
    if step.get("refinement"):
        return "refinement: " + ("pass" if step["passed"] else "fail")
    return "pass" if step["passed"] else ("fail, retried" if step.get("retry_follows") else "stop")


CAPACITY_SEARCH = (
    "Each step posts at the offered rate for a few seconds over the same connections as the fan-out "
    "(which runs after the search, once nothing arrives any more); the search "
    "stops at the first step whose p99 passes the limit, that loses, duplicates or reorders anything, "
    "or drops a stream, or whose acknowledged rate falls below 90% of the offered rate; a failed "
    "step is tried once more (after a quiet period) before the search stops. Then a few refinement "
    "steps between the last rate that passed and the one that stopped the search each halve the gap "
    "(on a log scale); the capacity is the most a passing step delivered.")
SMALL_ROOMS = (
    "The capacity search of the whole pipelines (ours, Centrifugo) over many rooms of two readers "
    "(direct messages and small groups), on connections of its own: each message reaches two readers, so "
    "what a message costs before the fan-out is nearly all it costs. The same steps and criteria as the "
    "capacity search; each step's senders spread over every room.")


def _capacity_table(result, key="capacity"):
    title, text = ("Many small rooms", SMALL_ROOMS) if key == "small_rooms" else ("Capacity search", CAPACITY_SEARCH)
    out = [f"## {title}", "", text, "",
           "| system | offered msg/s | acked msg/s | deliveries/s | lost | dup | reord. | p50 ms | p99 ms | "
           "stack cores | deliveries/s per core | loadgen cores | |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    found = False
    for system in SYSTEMS:
        c = _get(result, system, key)
        if not c:
            continue
        found = True
        for s in c["steps"]:
            ls = s["latency_send"] or {"p50": float("nan"), "p99": float("nan")}
            out.append(
                f"| {system} | {s['offered_rate']:.0f} | {s['acked_rate']:.0f} | {s['deliveries_per_s']:,.0f} | "
                f"{s['lost']} | {s['duplicates']} | {s['reordered']} | {ls['p50']:.1f} | {ls['p99']:.1f} | "
                f"{s['stack_cores']:.2f} | {_fmt(s['deliveries_per_core'])} | {s['loadgen_cores']:.2f} | "
                f"{_step_verdict(s)} |")
    return out + [""] if found else []


def _kb(value):
    return _fmt(value / 1024 if value is not None else None, " KB")


def _idle_table(result):
    out = ["## Idle connections", "",
           "Connections straight to the stream service (see bench/README.md). Per connection: the larger of "
           "(after − before) / connections and the slope of RSS against connections over the stages.", "",
           "| system | open (failed) | stream RSS before → after | per connection | (after − before) / n | slope | "
           "nginx Δ | Redis Δ | Redis clients |",
           "|---|---|---|---|---|---|---|---|---|"]
    found = False
    for system in SYSTEMS:
        i = _get(result, system, "idle")
        if not i:
            continue
        found = True
        deltas = i["rss_delta_by_group_bytes"]
        nginx = deltas.get("nginx", deltas.get("seed-nginx", deltas.get("centrifugo-nginx")))
        out.append(
            f"| {system} | {i['connections']:,} ({i['failed']}) | {i['stream_rss_before_bytes'] / 2**20:.1f} → "
            f"{i['stream_rss_after_bytes'] / 2**20:.1f} MiB | "
            f"{_kb(i['bytes_per_connection'])} | {_kb(i.get('bytes_per_connection_before_after'))} | "
            f"{_kb(i.get('bytes_per_connection_slope'))} | "
            f"{(nginx or 0) / 2**20:.1f} MiB | {deltas.get('redis', 0) / 2**20:.1f} MiB | {i['redis_clients']} |")
    return out + [""] if found else []


def _ingest_table(result):
    g = _get(result, "ours", "ingest")
    if not g:
        return []
    cores = {k: v["cpu_cores_mean"] for k, v in g["resources"]["groups"].items()}
    return ["## Ingest throughput (ours)", "",
            f"{g['params']['concurrency']} closed-loop posters over {g['params']['rooms']} rooms for "
            f"{g['seconds']:.1f} s: **{g['acked_per_s']:,.0f} acknowledged POSTs/s**, {g['errors']} errors, POST "
            f"latency p50 {g['post_latency']['p50']:.1f} ms, p99 {g['post_latency']['p99']:.1f} ms. CPU (cores): "
            + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()) + ".", ""]


def _resources_table(result):
    out = ["## CPU and memory per process (fan-out scenario)", "",
           "CPU per delivery: the process's CPU time over the events delivered in the step.", "",
           "| system | process | CPU cores mean / peak | CPU µs per delivery | RSS mean / peak MiB |",
           "|---|---|---|---|---|"]
    found = False
    for system in SYSTEMS:
        f = _get(result, system, "fanout")
        if not f:
            continue
        found = True
        received = f["received"] or None
        for name, g in f["resources"]["groups"].items():
            per = g["cpu_seconds"] / received * 1e6 if received else None
            out.append(f"| {system} | {name} | {g['cpu_cores_mean']:.2f} / {g['cpu_cores_peak']:.2f} | {_fmt(per)} | "
                       f"{g['rss_mean_bytes'] / 2**20:.0f} / {g['rss_peak_bytes'] / 2**20:.0f} |")
        stack = sum(g["cpu_seconds"] for n, g in f["resources"]["groups"].items() if n != "loadgen")
        out.append(f"| {system} | the stack (all but loadgen) | {f['stack_cores']:.2f} | "
                   f"{_fmt(stack / received * 1e6 if received else None)} | |")
        out.append(f"| {system} | whole machine (busy cores) | {f['resources']['machine_busy_cores']:.2f} | | |")
    return out + [""] if found else []


# -- plots ---------------------------------------------------------------------------------


def plot(result, out_dir, prefix):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    paths = []
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")

    def plain_log(ax, y=False):
        for axis in (ax.xaxis, ax.yaxis) if y else (ax.xaxis,):
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(NullFormatter())

    # Latency CDFs: fan-out, the capacity step, ingest POSTs.
    panels = []
    for system in SYSTEMS:
        f = _get(result, system, "fanout")
        if f:
            panels.append(("fan-out", system, "send", f["latency_send"]))
            if f["latency_ts"]:
                panels.append(("fan-out", system, "ts", f["latency_ts"]))
        c = _get(result, system, "capacity")
        if c and c["steps"]:
            passed = c["capacity_step"] is not None
            s = c["steps"][c["capacity_step"] if passed else 0]
            panels.append(("capacity step", system,
                           f"send, {s['offered_rate']:.0f} msg/s{'' if passed else ', failed'}", s["latency_send"]))
    ingest = _get(result, "ours", "ingest")
    if panels or ingest:
        ncols = 3 if ingest else 2
        fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.2))
        for ax, title in zip(axes, ("fan-out", "capacity step"), strict=False):
            for scen, system, label, q in panels:
                if scen != title or not q:
                    continue
                xs = [v for _, v in q["cdf"]]
                ys = [p / 100 for p, _ in q["cdf"]]
                ax.plot(xs, ys, label=f"{system} ({label})", color=COLORS[system],
                        linestyle="--" if label == "ts" else "-")
            ax.set_xscale("log")
            plain_log(ax)
            ax.set_xlabel("end-to-end latency (ms, log)")
            ax.set_ylabel("fraction of deliveries")
            ax.set_title(f"Latency CDF: {title}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        if ingest:
            ax = axes[2]
            q = ingest["post_latency"]
            ax.plot([v for _, v in q["cdf"]], [p / 100 for p, _ in q["cdf"]], color=COLORS["ours"], label="ours")
            ax.set_xscale("log")
            plain_log(ax)
            ax.set_xlabel("POST latency until 201 (ms, log)")
            ax.set_title(f"Latency CDF: ingest ({ingest['acked_per_s']:,.0f} acked/s)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(out_dir) / f"{prefix}-latency-cdf.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    # Throughput and p99 against offered load: the capacity search (solid) and the many small
    # rooms (dashed), each on offered deliveries/s.
    caps = {(system, key): _get(result, system, key) for key in ("capacity", "small_rooms") for system in SYSTEMS}
    if any(caps.values()):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for (system, key), c in caps.items():
            if not c:
                continue
            style, label = ("o-", system) if key == "capacity" else ("s--", f"{system}, small rooms")
            clients_per_room = c["params"]["clients"] / c["params"]["rooms"]
            xs = [s["offered_rate"] * clients_per_room for s in c["steps"]]
            a1.plot(xs, [s["deliveries_per_s"] for s in c["steps"]], style, color=COLORS[system], label=label)
            a2.plot(xs, [s["latency_send"]["p99"] if s["latency_send"] else float("nan") for s in c["steps"]],
                    style, color=COLORS[system], label=label)
            for s, x in zip(c["steps"], xs, strict=True):
                if not s["passed"]:
                    a1.plot([x], [s["deliveries_per_s"]], "x", color="black", markersize=10)
        lim = next(c for c in caps.values() if c)["params"]["p99_limit_ms"]
        a2.axhline(lim, color="grey", linestyle=":", label=f"{lim} ms limit")
        top = max((s["offered_rate"] * c["params"]["clients"] / c["params"]["rooms"]
                   for c in caps.values() if c for s in c["steps"]), default=1)
        a1.plot([0, top], [0, top], color="grey", linestyle=":", label="delivered = offered")
        for ax in (a1, a2):
            ax.set_xscale("log")
            ax.set_xlabel("offered deliveries/s (messages/s x clients per room, log)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        a1.set_yscale("log")
        a2.set_yscale("log")
        plain_log(a1, y=True)
        plain_log(a2, y=True)
        a1.set_ylabel("delivered events/s (log)")
        a1.set_title("Throughput against offered load (x: step stopped)")
        a2.set_ylabel("p99 end-to-end latency (ms, log)")
        a2.set_title("p99 latency against offered load")
        fig.tight_layout()
        path = Path(out_dir) / f"{prefix}-capacity.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    # Memory against connections.
    idles = {s: _get(result, s, "idle") for s in SYSTEMS}
    if any(idles.values()):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for system, i in idles.items():
            if not i:
                continue
            ax.plot([p["connections"] for p in i["points"]], [p["stream_rss_bytes"] / 2**20 for p in i["points"]],
                    "o-", color=COLORS[system],
                    label=f"{system}: {i['bytes_per_connection'] / 1024:.1f} KB/connection"
                    if i["bytes_per_connection"] is not None else system)
        ax.set_xlabel("open idle SSE connections")
        ax.set_ylabel("stream service RSS, master + workers (MiB)")
        ax.set_title("Stream-service memory against connections")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(out_dir) / f"{prefix}-memory.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
