"""The benchmark report (eval/bench_report.py) on a hand-made HTTP section: ratios against each plain server, for
`rag serve` and for `rag serve --workers 2` when the run had it, the targets they are held to, and the tables."""

from eval.bench_report import check_targets, compute_ratios, summary_table


def run(rps: float, p50: float, p99: float) -> dict:
    return {"throughput_rps": rps, "latency_ms": {"p50": p50, "p99": p99}, "errors": 0}


def http_section(workers: bool) -> dict:
    runs = {"ours": {"c16": run(300, 50, 70)}, "plain": {"c16": run(100, 150, 175)}, "plain-1t": {"c16": run(60, 250, 350)}}
    servers = {"ours": "rag serve", "plain": "plain", "plain-1t": "plain-1t"}
    rss = {"ours": 250.0, "plain": 500.0, "plain-1t": 500.0}
    if workers:
        runs["ours-w2"] = {"c16": run(550, 28, 30)}
        servers["ours-w2"] = "rag serve --workers 2"
        rss["ours-w2"] = 600.0
    return {"levels": [16], "runs": runs, "servers": servers, "rss_peak_mb": rss, "workers_kind": "ours-w2" if workers else None}


def test_the_workers_server_is_compared_with_each_plain_server_and_held_to_the_same_targets():
    result = {"sections": {"http": http_section(workers=True)}}
    ratios = compute_ratios(result["sections"])
    assert ratios["plain"]["http_c16_throughput"] == 3.0 and ratios["plain"]["workers_http_c16_throughput"] == 5.5
    assert ratios["plain-1t"]["workers_http_c16_p99"] == round(30 / 350, 3)
    assert ratios["plain"]["workers_rss_peak"] == 1.2
    targets = {t["target"]: t for t in check_targets(ratios, result["sections"])}
    assert targets["c16 throughput (ours / plain)"]["met_vs_plain"] is False
    assert targets["c16 throughput (ours --workers 2 / plain)"]["met_vs_plain"] is True
    assert targets["c16 p99 latency (ours --workers 2 / plain)"]["met_vs_plain"] is True  # 30 / 175 = 0.171
    result.update(ratios=ratios, targets=list(targets.values()))
    table = summary_table(result)
    assert "| POST /query, `rag serve --workers 2` | req/s |" in table and "| concurrency 16 | 550.0 | 28.0 | 30.0 | 0 |" in table
    assert "| rag serve --workers 2, c16 vs plain | 5.50x |" in table


def test_without_the_workers_server_its_targets_are_not_measured():
    sections = {"http": http_section(workers=False)}
    ratios = compute_ratios(sections)
    assert "workers_http_c16_throughput" not in ratios["plain"]
    targets = {t["target"]: t for t in check_targets(ratios, sections)}
    assert targets["c16 throughput (ours --workers 2 / plain)"]["met_vs_plain"] is None


def test_the_verifier_run_gets_its_own_ratios_and_targets_beside_the_default_ones():
    verified = http_section(workers=False)
    verified["levels"] = [1, 16]
    verified["runs"]["ours"]["c1"] = run(30, 33.0, 55.0)
    verified["runs"]["plain"]["c1"], verified["runs"]["plain-1t"]["c1"] = run(75, 12.0, 22.0), run(70, 14.0, 20.0)
    verified["runs"]["ours"]["c16"] = run(50, 330, 450)
    sections = {"http": http_section(workers=False), "http_verifier": verified}
    ratios = compute_ratios(sections)
    assert ratios["plain"]["http_c16_throughput"] == 3.0  # the default run's, untouched
    assert ratios["plain"]["verifier_http_c16_throughput"] == 0.5 and ratios["plain"]["verifier_http_c1_p50"] == 2.75
    assert ratios["plain-1t"]["verifier_http_c16_p99"] == round(450 / 350, 3)
    targets = {t["target"]: t for t in check_targets(ratios, sections)}
    assert targets["c1 p50 latency, verifier on (ours / plain)"]["met_vs_plain"] is False
    assert targets["c16 throughput, verifier on (ours / plain)"]["vs_plain"] == 0.5
    table = summary_table({"sections": sections, "ratios": ratios, "targets": list(targets.values())})
    assert "| POST /query, RAG_VERIFIER=true |" in table and "| concurrency 1 | 30.0 | 33.0 | 55.0 | 0.40x | 2.750 | 2.500 |" in table
    without = check_targets(compute_ratios({"http": http_section(workers=False)}), {})
    assert {t["target"]: t for t in without}["c1 p50 latency, verifier on (ours / plain)"]["met_vs_plain"] is None
