"""The benchmark report: ratios against the baselines, the targets, the Markdown tables, the tracked summary.

eval/bench.py writes the full result (every section, every slice) under eval/runs/ (ignored by git);
`write_summary` keeps the compact part in eval/results/bench_summary.json (tracked): the machine,
the settings, the ratios, the targets, the tables as Markdown, and the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.bench_langchain import TARGET_RATIO  # noqa: E402
from eval.harness import MODES, PLAINS, RESULTS, ratio, write_json  # noqa: E402

TARGETS = {  # name: (ratio key, comparison, bound)
    "c16 throughput (ours / plain)": ("http_c16_throughput", ">=", 5.0),
    "c16 p99 latency (ours / plain)": ("http_c16_p99", "<=", 0.2),
    "c1 p50 latency (ours / plain)": ("http_c1_p50", "<=", 0.35),
    "c16 throughput (ours --workers 2 / plain)": ("workers_http_c16_throughput", ">=", 5.0),
    "c16 p99 latency (ours --workers 2 / plain)": ("workers_http_c16_p99", "<=", 0.2),
    "in-process per query, hybrid p50 (plain / ours)": ("inproc_speedup_hybrid_p50", ">=", 2.0),
    "cold start (ours / plain)": ("cold_start", "<=", 0.5),
    # the http-verifier section: the same servers with RAG_VERIFIER=true (issue #22 item 3: the ratios with it on)
    "c16 throughput, verifier on (ours / plain)": ("verifier_http_c16_throughput", ">=", 5.0),
    "c16 p99 latency, verifier on (ours / plain)": ("verifier_http_c16_p99", "<=", 0.2),
    "c1 p50 latency, verifier on (ours / plain)": ("verifier_http_c1_p50", "<=", 0.35),
}


def compute_ratios(sections: dict) -> dict:
    """For each baseline (plain = torch default threads, plain-1t = torch on one thread): ours vs it."""
    out: dict[str, dict] = {base: {} for base in PLAINS}
    for base in PLAINS:
        r = out[base]
        for prefix, http in (("", sections.get("http")), ("verifier_", sections.get("http_verifier"))):
            if not http:
                continue
            plain = http["runs"][base]
            for kind_prefix, kind in (("", "ours"), ("workers_", http.get("workers_kind"))):
                if kind is None:
                    continue
                ours, name = http["runs"][kind], prefix + kind_prefix
                for c in http["levels"]:
                    key = f"c{c}"
                    r[f"{name}http_{key}_throughput"] = ratio(ours[key]["throughput_rps"], plain[key]["throughput_rps"])
                    for stat in ("p50", "p99"):
                        r[f"{name}http_{key}_{stat}"] = ratio(ours[key]["latency_ms"][stat], plain[key]["latency_ms"][stat], 3)
                r[f"{name}rss_peak"] = ratio(http["rss_peak_mb"][kind], http["rss_peak_mb"][base])
        if "inproc" in sections:
            for mode in MODES:
                for stat in ("p50", "p99", "mean"):
                    r[f"inproc_speedup_{mode}_{stat}"] = sections["inproc"]["speedup"][base][mode][stat]
        if "cold" in sections and base in sections["cold"]["median_s"]:
            r["cold_start"] = ratio(sections["cold"]["median_s"]["ours"], sections["cold"]["median_s"][base], 3)
    return out


def check_targets(ratios: dict, sections: dict) -> list[dict]:
    rows = []
    for name, (key, op, bound) in TARGETS.items():
        row = {"target": name, "wanted": f"{op} {bound:g}"}
        for base in PLAINS:
            value = ratios[base].get(key)
            row[f"vs_{base}"] = value
            row[f"met_vs_{base}"] = None if value is None else (value >= bound if op == ">=" else value <= bound)
        rows.append(row)
    if "quality" in sections:
        q = sections["quality"]
        rows.append({"target": "quality: |R@5 onnx - torch|, hybrid", "wanted": "<= 0.01", "value": q["hybrid_abs_delta"]["r@5"],
                     "met": q["ok"]})
    tutorial = (sections.get("tutorial") or {}).get("result")
    if tutorial:
        for name, value in tutorial["ratio_to_langchain"].items():
            rows.append({"target": f"python3-doc build, {name} / LangChain tutorial ({tutorial['corpus']['files']} files)",
                         "wanted": f"<= {TARGET_RATIO}", "value": value, "met": value <= TARGET_RATIO})
            rows.append({"target": f"bundled answers, {name} vs LangChain tutorial (R@1, R@5, MRR@10)", "wanted": "same or better",
                         "value": tutorial["same_or_better_answers"][name], "met": tutorial["same_or_better_answers"][name]})
    for row in (sections.get("scale") or []):
        if "recall_at_10" in row:
            rows.append({"target": f"scale {row['vectors']:,} ({row['index_type']}): recall@10", "wanted": ">= 0.98",
                         "value": row["recall_at_10"], "met": row["recall_at_10"] >= 0.98})
    return rows


def _yes(met) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


def summary_table(result: dict) -> str:
    s = result["sections"]
    r = result["ratios"]
    fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = []
    if "http" in s:
        runs = s["http"]["runs"]
        lines += ["| POST /query | ours req/s | plain | plain-1t | ours p50 ms | plain | plain-1t | ours p99 ms | plain | plain-1t | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for c in s["http"]["levels"]:
            k = f"c{c}"
            o, p, p1 = runs["ours"][k], runs["plain"][k], runs["plain-1t"][k]
            errors = "/".join(str(runs[x][k]["errors"]) for x in ("ours", *PLAINS))
            lines.append(f"| concurrency {c} | {o['throughput_rps']:.1f} | {p['throughput_rps']:.1f} | {p1['throughput_rps']:.1f} | "
                         f"{fmt(o['latency_ms']['p50'])} | {fmt(p['latency_ms']['p50'])} | {fmt(p1['latency_ms']['p50'])} | "
                         f"{fmt(o['latency_ms']['p99'])} | {fmt(p['latency_ms']['p99'])} | {fmt(p1['latency_ms']['p99'])} | {errors} |")
        workers = s["http"].get("workers_kind")
        if workers:
            lines += ["", f"| POST /query, `{s['http']['servers'][workers]}` | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---|"]
            for c in s["http"]["levels"]:
                w = runs[workers][f"c{c}"]
                lines.append(f"| concurrency {c} | {w['throughput_rps']:.1f} | {fmt(w['latency_ms']['p50'])} | {fmt(w['latency_ms']['p99'])} | "
                             f"{w['errors']} |")
        lines += ["", "| ours / baseline | throughput | p50 | p99 |", "|---|---:|---:|---:|"]
        for prefix, label in (("", "ours"), *((("workers_", s["http"]["servers"][workers]),) if workers else ())):
            for c in s["http"]["levels"]:
                for base in PLAINS:
                    lines.append(f"| {label}, c{c} vs {base} | {fmt(r[base][f'{prefix}http_c{c}_throughput'], 2)}x | "
                                 f"{fmt(r[base][f'{prefix}http_c{c}_p50'], 3)} | {fmt(r[base][f'{prefix}http_c{c}_p99'], 3)} |")
        lines.append("")
    if "http_verifier" in s:
        runs = s["http_verifier"]["runs"]
        lines += ["| POST /query, RAG_VERIFIER=true | ours req/s | p50 ms | p99 ms | ours / plain: throughput | p50 | p99 | "
                  "ours / plain-1t: throughput | p50 | p99 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in s["http_verifier"]["levels"]:
            o = runs["ours"][f"c{c}"]
            cells = [f"{fmt(r[base][f'verifier_http_c{c}_throughput'], 2)}x | {fmt(r[base][f'verifier_http_c{c}_p50'], 3)} | "
                     f"{fmt(r[base][f'verifier_http_c{c}_p99'], 3)}" for base in PLAINS]
            lines.append(f"| concurrency {c} | {o['throughput_rps']:.1f} | {fmt(o['latency_ms']['p50'])} | {fmt(o['latency_ms']['p99'])} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    if "inproc" in s:
        stage_names = list(dict.fromkeys(st for v in s["inproc"]["systems"].values() for st in v["stages_ms"] if st != "search"))
        lines += ["| in-process, one query | total p50 ms | p99 ms | " + " | ".join(f"{st} p50" for st in stage_names)
                  + " | plain / ours (p50) | plain-1t / ours (p50) |",
                  "|---|---:|---:|" + "---:|" * len(stage_names) + "---:|---:|"]
        for name, v in s["inproc"]["systems"].items():
            st = v["stages_ms"]
            cell = lambda k: f"{st[k]['p50']:.2f}" if k in st else "-"  # noqa: E731
            cells = [cell("search") if name in PLAINS and k == "dense" else cell(k) for k in stage_names]
            sp = lambda base: f"{s['inproc']['speedup'][base][name]['p50']:.1f}x" if name in MODES else "-"  # noqa: E731
            label = f"ours {name}" if name in MODES else {"plain": "plain: ST.encode + flat", "plain-1t": "plain-1t: same, torch 1 thread"}[name]
            lines.append(f"| {label} | {v['total_ms']['p50']:.2f} | {v['total_ms']['p99']:.2f} | " + " | ".join(cells)
                         + f" | {sp('plain')} | {sp('plain-1t')} |")
        cost = s["inproc"].get("encoder_cost")
        if cost:
            lines += ["", f"| embedding only, {cost['mean_tokens_per_question']:.0f} tokens per question on average | ms per question |",
                      "|---|---:|"]
            lines += [f"| {k} | {v:.2f} |" for k, v in cost["ms_per_question"].items()]
        lines.append("")
    other = []
    if "cold" in s:
        m = s["cold"]["median_s"]
        other.append(f"| cold start to first answer, median s | {m['ours']:.2f} | {m['plain']:.2f} | {r['plain'].get('cold_start')} |")
    if "http" in s:
        peak = s["http"]["rss_peak_mb"]
        other.append(f"| peak RSS after the load runs (VmHWM), MB | {peak['ours']:.0f} | {peak['plain']:.0f} (plain-1t {peak['plain-1t']:.0f}) | "
                     f"{r['plain'].get('rss_peak')} |")
    if other:
        lines += ["| | ours | plain | ours / plain |", "|---|---:|---:|---:|", *other, ""]
    if "build" in s:
        b = s["build"]
        lines.append(f"Index build (`rag index --force`, fresh dir): {b['full_build_wall_s']:.1f} s wall "
                     f"({b['full_build_manifest_s']:.1f} s chunk+embed+write), {b['counts']['passages']} passages / "
                     f"{b['counts']['sentences']} sentences; rebuild reusing vectors {b['rebuild_reusing_vectors_wall_s']:.1f} s.")
        lines.append("")
    if "quality" in s:
        lines += ["| quality (eval/questions.jsonl) | R@1 | R@5 | MRR@10 |", "|---|---:|---:|---:|"]
        for name, m in s["quality"]["metrics"].items():
            lines.append(f"| {name} | {m['r@1']:.3f} | {m['r@5']:.3f} | {m['mrr@10']:.3f} |")
        lines.append(f"\nHybrid top 5 identical ONNX vs torch: {s['quality']['hybrid_same_top5']} questions.\n")
    startup = (s.get("startup") or {}).get("result")
    if startup:
        lines += [startup["table"], ""]
    tutorial = (s.get("tutorial") or {}).get("result")
    if tutorial:
        lines += [tutorial["table"], ""]
    if s.get("scale"):
        from eval.bench_scale import table

        lines += [table(s["scale"]), ""]
    lines += ["| target | wanted | vs plain | met | vs plain-1t | met |", "|---|---|---:|---|---:|---|"]
    for t in result["targets"]:
        if "value" in t:
            lines.append(f"| {t['target']} | {t['wanted']} | {t['value']} | {_yes(t['met'])} | | |")
        else:
            lines.append(f"| {t['target']} | {t['wanted']} | {t['vs_plain']} | {_yes(t['met_vs_plain'])} | "
                         f"{t['vs_plain-1t']} | {_yes(t['met_vs_plain-1t'])} |")
    return "\n".join(lines)


def write_summary(result: dict, full_path: Path, folder: Path = RESULTS) -> Path:
    """The compact, tracked record of a full run: what ran where, the ratios, the targets and the tables."""
    summary = {
        "comment": "Written by a full `make bench` run; the full result is in the ignored file named by 'full'.",
        "command": result["command"],
        "created_at": result["created_at"],
        "machine": result["machine"],
        "settings": result["settings"],
        "ratios": result["ratios"],
        "targets": result["targets"],
        "tables": summary_table(result),
        "total_s": result.get("total_s"),
        "full": str(full_path),
    }
    path = folder / "bench_summary.json"
    write_json(path, summary)
    return path
