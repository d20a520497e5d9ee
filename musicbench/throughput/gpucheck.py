"""One prepared check of a GPU (``bench/gpu-check.sh``): training and inference clips/s of
every reference-size preset (``*-ref``) in float32 and bfloat16, eager and under
``torch.compile``; embedding extraction of every bundled encoder; one complete ``cnn2d``
fit on a generated task of 30-s clips (``cnn2d-small``, one epoch, in a dry run). One
JSON with a hardware descriptor.

A GPU lent for minutes is spent on measuring, not on finding out what to measure: the
check runs within ``--budget`` seconds (default 390; a measurement started inside it
may finish past it) in order of what matters most (eager
timings, encoders, the fit, then the compiled variants, whose compilation is the slowest
part), and whatever the budget leaves out is listed as skipped, never silently absent.
``--dry-run`` runs every step at tiny sizes on the CPU (``torch.compile`` with its eager
backend, so no compiler is needed), so the script is exercised where no GPU is.

Networks are timed on inputs already computed (as the trainer reads them from the cache),
a chunk per row; clips/s of inference is for a 30-s clip, cut into the preset's
evaluation chunks; the front end's own clips/s on the device is given beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CLIP_SECONDS = 30.0
N_CLASSES = 10
FIT_TASK, DRY_FIT_TASK = "synth_genre:bench", "synth_genre:mini"  # 120 clips of 30 s; 72 of 3 s
FIT_SYSTEM, DRY_FIT_SYSTEM = "cnn2d", "cnn2d-small"


def ref_presets() -> list[str]:
    from musicbench.presets import preset_files

    return sorted(n for n in preset_files("system") if n.endswith("-ref"))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: str, warmup: int, steps: int) -> tuple[float, float]:
    """(seconds of the warm-up calls, compilation included; mean seconds of a timed call)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    t1 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return t1 - t0, (time.perf_counter() - t1) / steps


class Check:
    """The check's state: where it runs, its sizes, the budget, and what it found."""

    def __init__(self, device: str, dry_run: bool, budget: float, presets: list[str], encoders: list[str]):
        self.device, self.dry_run, self.budget = device, dry_run, budget
        self.presets, self.encoders = presets, encoders
        self.warmup, self.steps = (1, 1) if dry_run else (3, 10)
        self.t0 = time.perf_counter()
        self.out: dict[str, Any] = {"training": [], "inference": [], "encoders": [], "fit": None,
                                    "skipped": [], "errors": []}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def attempt(self, what: str, fn: Callable[[], None]) -> None:
        """Run one measurement if the budget allows; a failure is recorded, not raised."""
        if self.left() <= 0:
            self.out["skipped"].append({"what": what, "why": f"over the {self.budget:.0f} s budget"})
            return
        print(f"gpu-check: {what} ({self.left():.0f} s left)", file=sys.stderr, flush=True)
        try:
            fn()
        except Exception as exc:  # one broken measurement must not lose the others
            self.out["errors"].append({"what": what, "error": f"{type(exc).__name__}: {exc}"})

    # -- networks of the reference presets ------------------------------------------------
    def network(self, preset: str, precision: str, compiled: bool) -> None:
        import torch

        from musicbench.systems import build_system

        system = build_system(preset, seed=0, device=self.device)
        rate = system.sample_rate or 16000
        spec = system.input_spec(rate)
        cfg = system.train_config(spec, None, preset)
        batch = 2 if self.dry_run else cfg.batch_size
        rng = np.random.default_rng(0)
        chunk_audio = rng.standard_normal(cfg.chunk_samples).astype(np.float32) * 0.1
        one = torch.from_numpy(np.ascontiguousarray(spec(chunk_audio).T))[None, :, : cfg.chunk]
        x = one.repeat(batch, 1, 1).to(self.device)
        y = torch.arange(batch, device=self.device) % N_CLASSES
        torch.manual_seed(0)
        model = system.build_network(N_CLASSES, spec).to(self.device)
        if self.device.startswith("cuda") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            model = model.to(memory_format=torch.channels_last)
        net = torch.compile(model, backend="eager" if self.dry_run else "inductor") if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        dev = torch.device(self.device).type

        def train_step() -> None:
            with torch.autocast(dev, dtype=dtype, enabled=precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(net(x).float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def infer_step() -> None:
            with torch.no_grad(), torch.autocast(dev, dtype=dtype, enabled=precision == "bf16"):
                net(x)

        row = {"preset": preset, "precision": precision, "compiled": compiled, "batch": batch,
               "chunk_seconds": cfg.chunk_samples / spec.sample_rate,
               "n_parameters": sum(p.numel() for p in model.parameters())}
        model.train()
        warm, step = _timed(train_step, self.device, self.warmup, self.steps)
        self.out["training"].append({**row, "chunks_per_clip": cfg.chunks_per_clip, "warmup_seconds": warm,
                                     "step_seconds": step, "chunks_per_s": batch / step,
                                     "clips_per_s": batch / step / cfg.chunks_per_clip})
        model.eval()
        warm, step = _timed(infer_step, self.device, self.warmup, self.steps)
        frames = spec.frames(int(CLIP_SECONDS * spec.sample_rate))
        chunks = 1 + max(0, math.ceil((frames - cfg.chunk) / cfg.eval_hop))
        self.out["inference"].append({**row, "chunks_per_30s_clip": chunks, "warmup_seconds": warm,
                                      "step_seconds": step, "chunks_per_s": batch / step,
                                      "clips_per_s": batch / step / chunks,
                                      "frontend_clips_per_s": self.frontend_speed(spec, batch)})

    def frontend_speed(self, spec: Any, batch: int) -> float | None:
        """30-s clips per second through the preset's torch front end on the device."""
        if spec.kind == "wave":
            return None
        import torch

        module = spec.module(self.device)
        waves = torch.randn(batch, int(CLIP_SECONDS * spec.sample_rate), device=self.device) * 0.1

        def run() -> None:
            with torch.no_grad():
                module(waves)

        _, seconds = _timed(run, self.device, self.warmup, self.steps)
        return batch / seconds

    # -- encoders -------------------------------------------------------------------------
    def encoder(self, name: str, audios: list[np.ndarray], rate: int) -> None:
        from musicbench.encoders.extractor import EncoderExtractor

        ex = EncoderExtractor(name, rate, self.device, batch_size=len(audios))
        ex.batch(audios[:1])  # weights loaded, kernels warm
        _sync(self.device)
        t0 = time.perf_counter()
        ex.batch(audios)
        _sync(self.device)
        seconds = time.perf_counter() - t0
        audio = sum(a.shape[-1] for a in audios) / rate
        self.out["encoders"].append({"encoder": name, "clips": len(audios), "audio_seconds": audio,
                                     "seconds": seconds, "clips_per_s": len(audios) / seconds,
                                     "x_realtime": audio / seconds})

    # -- one complete fit -----------------------------------------------------------------
    def fit(self) -> None:
        from musicbench.features.extract import extraction_seconds
        from musicbench.protocol.experiment import TaskSource, fit, open_clips, resolve_split, score
        from musicbench.systems import build_system

        task = DRY_FIT_TASK if self.dry_run else FIT_TASK
        system = DRY_FIT_SYSTEM if self.dry_run else FIT_SYSTEM
        clipset = open_clips(TaskSource(task))
        fold = resolve_split("kfold:5", clipset).folds[0]
        overrides = {"max_epochs": 1} if self.dry_run else {}
        est = build_system(system, seed=0, device=self.device, **overrides)
        x0 = extraction_seconds()
        fit_s = fit(est, clipset.part(fold.train), clipset.part(fold.valid), 0)
        extract = extraction_seconds() - x0
        scored = score(est, clipset.part(fold.test))
        report = est.training_report()
        epochs = len(report.get("history", []))
        self.out["fit"] = {"system": system, "task": task, "protocol": "kfold:5", "fold": 0,
                           "n_train": len(fold.train), "n_test": len(fold.test),
                           "fit_seconds": fit_s, "extract_seconds": extract,
                           "epochs": epochs, "best_epoch": report.get("best_epoch"),
                           "predict_seconds": scored.seconds, "accuracy": scored.result.get("accuracy"),
                           "train_clips_per_s": len(fold.train) * max(1, epochs) / max(fit_s - extract, 1e-9)}

    def run(self) -> dict[str, Any]:
        import torch._dynamo

        from musicbench.protocol.experiment import TaskSource, open_clips

        # every block of a network shares one ``forward``, and training then inference
        # changes grad mode: past the default limit of 8, dynamo falls back to eager unseen
        for limit in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, limit):
                setattr(torch._dynamo.config, limit, 64)

        audio_task = open_clips(TaskSource(DRY_FIT_TASK if self.dry_run else FIT_TASK))
        n = 2 if self.dry_run else 16
        part = audio_task.part([c.track_id for c in audio_task.clips[:n]])
        audios = [part.audio(i) for i in range(len(part))]
        rate = audio_task.task.spec.clip.sample_rate
        for precision in ("float32", "bf16"):
            for preset in self.presets:
                self.attempt(f"{preset} {precision} eager",
                             lambda p=preset, q=precision: self.network(p, q, False))
        for name in self.encoders:
            self.attempt(f"encoder {name}", lambda e=name: self.encoder(e, audios, rate))
        self.attempt("fit", self.fit)
        for precision in ("float32", "bf16"):
            for preset in self.presets:
                self.attempt(f"{preset} {precision} compiled",
                             lambda p=preset, q=precision: self.network(p, q, True))
        return self.out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda[:N] (default), or cpu")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the check")
    p.add_argument("--budget", type=float, default=390.0,
                   help="seconds to start measurements in (default 390)")
    p.add_argument("--presets", help="comma-separated presets (default: every *-ref preset)")
    p.add_argument("--encoders", help="comma-separated encoders (default: every bundled encoder)")
    p.add_argument("--out", default="runs/gpu-check.json", help="JSON to write (default runs/gpu-check.json)")
    args = p.parse_args(argv)
    from musicbench.encoders import encoder_names
    from musicbench.errors import MusicbenchError, UnknownNameError
    from musicbench.runtime import check_device
    from musicbench.throughput.hardware import describe

    device = "cpu" if args.dry_run else args.device
    try:
        check_device(device)
        presets = args.presets.split(",") if args.presets else ref_presets()
        encoders = args.encoders.split(",") if args.encoders else encoder_names()
        for name in presets:
            if name not in ref_presets():
                raise UnknownNameError("reference preset", name, ref_presets())
        for name in encoders:
            if name not in encoder_names():
                raise UnknownNameError("encoder", name, encoder_names())
    except MusicbenchError as exc:
        print(f"gpu-check: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    found = Check(device, args.dry_run, args.budget, presets, encoders).run()
    result = {"hardware": describe(device), "device": device, "dry_run": args.dry_run, "budget_seconds":
              args.budget, **found, "wall_seconds": time.perf_counter() - t0}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"gpu-check: {len(found['training'])} training and {len(found['inference'])} inference timings, "
          f"{len(found['encoders'])} encoder(s), fit {'done' if found['fit'] else 'missing'}, "
          f"{len(found['skipped'])} skipped, {len(found['errors'])} error(s), "
          f"{result['wall_seconds']:.0f} s; written to {out}", file=sys.stderr)
    return 1 if found["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
