"""``musicbench pretrain``: the command line of ``musicbench.pretrain``."""

from __future__ import annotations

import argparse
from pathlib import Path

from musicbench import flags


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="pretrain a deep backbone contrastively on unlabelled audio",
                       description="SimCLR/CLMR pretraining: two augmented views of random chunks of "
                       "each clip, NT-Xent loss, a projection head dropped afterwards. Audio comes from "
                       "one fold's train (and valid) part of a task -- its test part is never read -- "
                       "or from a folder. Rerunning a killed run resumes it from its last epoch.")
    p.add_argument("--backbone", required=True, metavar="PRESET",
                   help="deep system preset whose network is pretrained (e.g. cnn1d-small, samplecnn-small)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--task", metavar="TASK[:VERSION]", help="pretrain on a fold's training part")
    data.add_argument("--folder", type=Path, metavar="DIR", help="pretrain on every audio file under DIR")
    p.add_argument("--protocol", metavar="SPEC", help="how the task is cut into folds (default: the task's)")
    p.add_argument("--fold", type=int, default=0, metavar="K", help="which fold's training part (default 0)")
    p.add_argument("--parts", default="train,valid", metavar="PARTS",
                   help="the fold's parts to read: train, valid or train,valid (default)")
    p.add_argument("--epochs", type=int, default=20, help="default 20")
    p.add_argument("--batch-size", type=int, default=32,
                   help="clips per step, each giving two views (default 32)")
    p.add_argument("--temperature", type=float, default=0.1, help="NT-Xent temperature (default 0.1)")
    p.add_argument("--views", metavar="V,V", help="view augmentations, from crop, gain, polarity, pitch, "
                   "stretch, eq, noise (default: the preset's, else crop,gain,polarity,noise,eq)")
    p.add_argument("--lr", type=float, help="learning rate (default: the preset's pretrain_lr, 1e-3)")
    p.add_argument("--set", dest="overrides", type=flags.setting, action="append", default=[],
                   metavar="KEY=VALUE", help="override a backbone preset parameter (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    flags.add_device(p)
    p.add_argument("--out", type=Path, required=True, metavar="PATH.pt",
                   help="backbone checkpoint; the card goes to PATH.json, the resume state to PATH.pt.resume")
    flags.add_data(p, partial="pretrain")
    flags.add_tracking(p)


def run(args: argparse.Namespace) -> int:
    from musicbench.errors import ConfigError
    from musicbench.pretrain.run import PretrainRun, pretrain
    from musicbench.systems.deep.contrastive import check_views

    if args.epochs < 0 or args.batch_size < 2 or args.temperature <= 0:
        raise ConfigError(f"--epochs {args.epochs} (>= 0), --batch-size {args.batch_size} (>= 2), "
                          f"--temperature {args.temperature} (> 0): out of range")
    views = tuple(v.strip() for v in args.views.split(",") if v.strip()) if args.views is not None else None
    if views is not None:
        try:
            check_views(views)
        except ConfigError as exc:
            raise ConfigError(f"--views {args.views}: {exc}") from None
    pretrain(PretrainRun(
        backbone=args.backbone, out=args.out, task=args.task, protocol=args.protocol, fold=args.fold,
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()), folder=args.folder,
        epochs=args.epochs, batch_size=args.batch_size, temperature=args.temperature, views=views,
        lr=args.lr, seed=args.seed, device=args.device, overrides=dict(args.overrides),
        data_home=args.data_home, index_dir=args.index_dir, allow_partial=args.allow_partial,
        tracking_uri=args.tracking_uri, track=not args.no_mlflow,
    ))
    return 0
