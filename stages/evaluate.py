"""Stage evaluate: every model (variant x seed) on clean, white-box, worst-case and transfer conditions; the
seed-paired GR-minus-baseline comparison; headline metrics, details, plots and report.md.

With ``evaluate.nproc > 1`` the stage reruns itself under torchrun: each process scores a contiguous share of
the models on its own device, and rank 0 gathers the scores and computes everything else.
"""

import argparse
import csv
from pathlib import Path

import torch
from sklearn.metrics import roc_curve

from robustdf.evaluate.results import (VARIANTS, ModelResult, TestSet, curve_tables, evaluate_all, load_test_set,
                                       read_curves, score_model, score_on_set)
from robustdf.evaluate.generalization import generalization, load_sets
from robustdf.evaluate.headline import headline
from robustdf.data.manifest import face_share_by_method, read_rows
from robustdf.train.model import load_checkpoint
from robustdf.params import AttackParams, EvaluateParams, ExtractParams, TrainParams, load_group
from robustdf.evaluate.plots import write_all
from robustdf.evaluate.report import render
from robustdf.runtime import StageRun, atomic_dir, main_guard, pick_device, set_cpu_threads, write_json
from robustdf.attack.scoring import exact_float32
from robustdf.attack.sharding import gather, process_group, relaunch, shard


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="data/balanced")
    ap.add_argument("--frames", default="data/frames")
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--attacks", default="data/attacks")
    ap.add_argument("--square", default="data/square")
    ap.add_argument("--train-logs", default="data/train")
    ap.add_argument("--sets", default="data/sets", help="the test-only sets' frames, one folder per set")
    ap.add_argument("--set-attacks", default="data/attacks_sets", help="their artifacts: <set>/<model>/<attack>")
    ap.add_argument("--out", default="data/evaluate")
    args = ap.parse_args()
    p, tp, ap_ = load_group("evaluate"), load_group("train"), load_group("attack")
    xp: ExtractParams = load_group("extract_frames")
    relaunch(p.nproc)
    device = pick_device("auto")
    with process_group(device) as (rank, world):
        evaluate_stage(args, p, tp, ap_, list(xp.test_sets), device, rank, world)


def score_share(args: argparse.Namespace, p: EvaluateParams, tp: TrainParams, ap_: AttackParams, ts: TestSet,
                sets: dict[str, TestSet], run: StageRun, device: torch.device, rank: int,
                world: int) -> list[ModelResult]:
    """Every model's scores (on the FF++ test split and on each test-only set), in (seed, variant) order on rank 0;
    each rank scores a contiguous share."""
    gr = tp.gr  # where the why is measured
    names = [(f"{v}-{seed}", f"{VARIANTS[1 - VARIANTS.index(v)]}-{seed}") for seed in tp.seeds for v in VARIANTS]
    mine = []
    for name, other in (names[i] for i in shard(len(names), 1, rank, world)):
        model, cfg = load_checkpoint(Path(args.models) / name)
        run.read(Path(args.models) / name, f"(best val AUC {cfg['val_auc']:.3f})")
        mine.append(score_model(model, name, cfg, ts, Path(args.attacks), Path(args.square), ap_.attacks, ap_.eps,
                                other, gr.shallow_layer, gr.r, p.batch_size, device))
        run.read(Path(args.attacks) / name, f"({len(mine[-1].scores) - 1} attacked conditions)")
        for set_name, set_ts in sets.items():
            folder = Path(args.set_attacks) / set_name / name
            mine[-1].sets[set_name] = score_on_set(model, set_ts, folder, ap_.attacks, ap_.eps, gr.shallow_layer,
                                                   gr.r, p.batch_size, device)
            run.read(folder, f"({len(mine[-1].sets[set_name].scores) - 1} attacked conditions)")
    return [res for share in gather(mine) for res in share]


def evaluate_stage(args: argparse.Namespace, p: EvaluateParams, tp: TrainParams, ap_: AttackParams,
                   set_names: list[str], device: torch.device, rank: int, world: int) -> None:
    """Score the models (split across ranks when sharded); rank 0 computes the metrics and writes the outputs."""
    run = StageRun("evaluate" + (f"[rank {rank}/{world}]" if world > 1 else ""))
    set_cpu_threads(p.cpu_threads)
    exact_float32()
    rows = read_rows(Path(args.data) / "manifest.csv")
    ts = load_test_set(rows, args.frames, Path(args.data) / "manifest.csv")
    n_videos, n_real = len(set(ts.video)), len(set(ts.video[ts.y == 0]))
    run.read(Path(args.data) / "manifest.csv",
             f"({n_videos} test videos in {len(set(ts.cluster))} identity clusters, {len(ts.y)} frames)")
    sets = load_sets(Path(args.sets), set_names)
    for name, s in sets.items():
        run.read(Path(args.sets) / name / "manifest.csv", f"({len(set(s.video))} videos in {len(set(s.cluster))} "
                 f"identity clusters, {len(s.y)} frames)")
    with run.timed("predict"):
        results = score_share(args, p, tp, ap_, ts, sets, run, device, rank, world)
    if rank != 0:
        return
    curves = {r.name: read_curves(Path(args.train_logs) / r.name) for r in results}
    rocs = {r.name: roc_curve(ts.y, r.scores["clean"])[:2] for r in results}
    with run.timed("metrics+bootstrap"):
        details = evaluate_all(results, ts, p, ap_.eps, ap_.attacks, ap_.pgd.sanity_eps)
        details["generalization"] = generalization(results, ts, sets, details["valid_seeds"], ap_.eps, p)
    context = {"n_frames": len(ts.y), "n_videos": n_videos, "n_real_videos": n_real,
               "n_clusters": len(set(ts.cluster)),
               "n_fake_videos": n_videos - n_real, "n_bootstrap": p.n_bootstrap, "heldout_methods": ts.heldout,
               "face_share": face_share_by_method([r for r in rows if not r.get("copy")]),
               "low_face_videos": sorted(r["key"] for r in rows if r.get("low_face") and not r.get("copy"))}
    details.update(context=context, ci=p.ci, power=p.power, min_val_auc=p.min_val_auc)
    metrics, verdict = headline(details)
    with atomic_dir(args.out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "verdict.json", verdict)
        write_json(tmp / "details.json", details)
        (tmp / "report.md").write_text(render(details, context))
        (tmp / "plots").mkdir()
        for attack, table in curve_tables(details).items():
            write_csv(tmp / "plots" / f"{attack}.csv", table)
        with run.timed("plots"):
            pngs = write_all(details, curves, rocs, {r.name: r.why for r in results}, tmp / "plots")
    run.count(models=len(results), valid_seeds=details["valid_seeds"], degenerate=details["degenerate"],
              plots=len(pngs), cpu_threads=p.cpu_threads)
    run.wrote(args.out, "(metrics.json, verdict.json, details.json, report.md, plots/)")
    run.save(Path(args.out))


if __name__ == "__main__":
    main_guard(main)
