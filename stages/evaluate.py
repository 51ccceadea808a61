"""Stage evaluate: clean, white-box and transfer metrics with CIs, plot tables and report.md."""

import argparse
import csv
from pathlib import Path

from robustdf.artifacts import load_artifact
from robustdf.evaluation import curve_tables, evaluate_models, load_test_set, predict_conditions, roc_table
from robustdf.manifest import read_rows
from robustdf.model import load_checkpoint
from robustdf.params import load_group
from robustdf.report import render
from robustdf.runtime import StageRun, atomic_dir, main_guard, pick_device, set_cpu_threads, write_json


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
    ap.add_argument("--artifacts", nargs="+", required=True, help="data/attacks/<model>_<attack>.safetensors")
    ap.add_argument("--out", default="data/evaluate")
    args = ap.parse_args()
    p = load_group("evaluate")
    run = StageRun("evaluate")
    set_cpu_threads(p.cpu_threads)
    device = pick_device("auto")
    ts = load_test_set(read_rows(Path(args.data) / "manifest.csv"), args.frames)
    n_videos, n_real = len(set(ts.video)), len(set(ts.video[ts.y == 0]))
    run.read(Path(args.data) / "manifest.csv", f"({n_videos} test videos, {len(ts.y)} frames)")
    artifacts = {}
    for path in sorted(args.artifacts):
        model_name, attack = Path(path).stem.split("_", 1)
        artifacts[f"{model_name}/{attack}"] = load_artifact(path)
        run.read(path)
    models = sorted({k.split("/")[0] for k in artifacts}, key=lambda m: (m != "baseline", m))
    preds = {}
    with run.timed("predict"):
        for m in models:
            model, _ = load_checkpoint(Path(args.models) / m)
            run.read(Path(args.models) / m)
            preds[m] = predict_conditions(model.to(device), ts, artifacts, m, 256, device)
    with run.timed("metrics+bootstrap"):
        metrics, details = evaluate_models(preds, ts, p)
    eps_list = sorted({e for a in artifacts.values() for e in a["eps"].tolist()})
    attacks = sorted({k.split("/")[1] for k in artifacts})
    context = {"n_frames": len(ts.y), "n_videos": n_videos, "n_real_videos": n_real,
               "n_fake_videos": n_videos - n_real, "ci": p.ci, "n_bootstrap": p.n_bootstrap,
               "heldout_methods": ts.heldout}
    details["context"] = context
    with atomic_dir(args.out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "details.json", details)
        (tmp / "report.md").write_text(render(metrics, details, context))
        (tmp / "plots").mkdir()
        for attack, table in curve_tables(metrics, eps_list, attacks).items():
            write_csv(tmp / "plots" / f"{attack}.csv", table)
        for m in models:
            write_csv(tmp / "plots" / f"roc_{m}.csv", roc_table(ts, preds[m][0].p))
    run.count(models=models, conditions=len(metrics[models[0]]), cpu_threads=p.cpu_threads)
    run.wrote(args.out, "(metrics.json, details.json, report.md, plots/)")
    run.save(Path(args.out))


if __name__ == "__main__":
    main_guard(main)
