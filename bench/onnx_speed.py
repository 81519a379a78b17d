"""SAR-only segmentation speed and accuracy: eager PyTorch against ONNX Runtime fp32 and int8.

Speed: the ResNet-50 STARS SAR branch on 512-pixel tiles (random weights: speed does not depend on
them), one tile per run as `stars segment` does on a CPU, in tiles/s and as a ratio to eager
PyTorch. Accuracy: a trained model (`--model`, default: trains the demo recipe's model for
`--steps` on the demo scene) segments the held-out test scene through `stars segment` with each
runtime; the SAR-only mIoU of each, and the int8 drop. Prints, never asserts. Usage:
    python bench/onnx_speed.py [--tiles 20] [--model demo_out/model.stars --scene demo_out/scene] [--steps 300]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from stars_core import threads  # first: the toolbox's thread policy, set before torch loads

threads.prepare_environment()
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

from stars_core import StarsConfig  # noqa: E402
from stars_core.checkpoint import load_model  # noqa: E402
from stars_core.config import DataConfig, SegmentConfig, TrainConfig  # noqa: E402
from stars_core.training.data import SceneSpec  # noqa: E402
from stars_core.demo_scene import make_demo_scene  # noqa: E402
from stars_core.evaluate import evaluate  # noqa: E402
from stars_core.segmentation.infer import segment  # noqa: E402
from stars_core.engines.onnx_export import export_onnx  # noqa: E402
from stars_core.engines.onnx_model import INPUT_SCALE, OnnxModel  # noqa: E402
from stars_core.training.train import train  # noqa: E402

threads.configure("auto")


def rate(fn, tiles: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(tiles):
        fn()
    return tiles / (time.perf_counter() - start)


def speed(args, tmp: Path, scene: dict) -> None:
    cfg = StarsConfig(backbone="resnet50")
    payload_path = tmp / "r50.stars"
    _save_untrained(cfg, payload_path, scene)
    model = load_model(payload_path).model
    threads.adapt()  # the same count for every runtime
    x = np.random.default_rng(0).normal(-14, 4, (1, 2, args.size, args.size)).astype(np.float32)
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        eager = rate(lambda: model(xt), args.tiles)
    fp32 = OnnxModel(export_onnx(payload_path, tmp / "r50.onnx", log=lambda *_: None), "cpu", threads.current())
    int8 = OnnxModel(export_onnx(payload_path, tmp / "r50_int8.onnx", int8=True, calibrate=scene["sar"],
                                 log=lambda *_: None), "cpu", threads.current())
    feed = {"input": x / INPUT_SCALE}
    print(f"(PyTorch {torch.get_num_threads()} threads, ONNX Runtime sessions {threads.current()} threads)")
    rows = [("eager PyTorch fp32", eager),
            ("ONNX Runtime fp32 (all graph optimisations)", rate(lambda: fp32.session.run(None, feed), args.tiles)),
            ("ONNX Runtime int8 (static, QDQ, per channel)", rate(lambda: int8.session.run(None, feed), args.tiles))]
    print(f"\n| ResNet-50 STARS, SAR branch, {args.size}-px tile | tiles/s | vs eager PyTorch |\n|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r:.3f} | {r / eager:.2f} |", flush=True)


def _save_untrained(cfg, path: Path, scene: dict) -> None:
    """A model file around random ResNet-50 weights (1 training step at lr 1e-12 keeps them)."""
    spec = [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]
    train(spec, path, cfg, train_cfg=TrainConfig(steps=1, batch_size=1, lr=1e-12, num_workers=0, device="cpu"),
          data_cfg=DataConfig(chip_size=128, val_fraction=0, class_table=str(scene["classes"])), log=lambda *_: None)


def accuracy(args, tmp: Path, scene: dict, test: dict) -> None:
    model = Path(args.model) if args.model else tmp / "demo.stars"
    if not args.model:
        spec = [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]
        train(spec, model, StarsConfig(backbone="resnet18", encoder_width=32),
              train_cfg=TrainConfig.for_steps(args.steps, lr=1e-3, num_workers=0, device="cpu"),
              data_cfg=DataConfig(chip_size=128, class_table=str(scene["classes"]), ignore_values=(0,)),
              log=lambda *_: None)
    onnx = export_onnx(model, tmp / "demo.onnx", log=lambda *_: None)
    int8 = export_onnx(model, tmp / "demo_int8.onnx", int8=True, calibrate=scene["sar"], log=lambda *_: None)
    cfg = SegmentConfig(device="cpu")
    print("\n| runtime | SAR-only mIoU, test scene | seconds | pixels equal to eager |\n|---|---|---|---|")
    ref = None
    for name, m in (("eager PyTorch", model), ("ONNX Runtime fp32", onnx), ("ONNX Runtime int8", int8)):
        out = tmp / f"{name.replace(' ', '_')}.tif"
        r = segment(m, test["sar"], out, cfg)
        report = evaluate(out, test["labels"], ignore_values=[0])
        import rasterio

        with rasterio.open(out) as ds:
            classes = ds.read(1)
        ref = classes if ref is None else ref
        print(f"| {name} | {report['miou']:.4f} | {r.seconds:.1f} | {(classes == ref).mean():.4f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--model", help="trained .stars model for the accuracy rows (default: train one)")
    ap.add_argument("--scene", help="its demo scene folder (sar.tif, optical.tif, labels.tif, classes.csv)")
    ap.add_argument("--steps", type=int, default=300, help="training steps when no --model is given")
    ap.add_argument("--scene-size", type=int, default=1024)
    args = ap.parse_args()
    print(f"# ONNX speed: torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {threads.describe()}, "
          f"{platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.scene:
            names = ("sar", "optical", "labels", "classes")
            scene = {k: Path(args.scene) / f"{k}.{'csv' if k == 'classes' else 'tif'}" for k in names}
        else:
            scene = make_demo_scene(tmp / "scene", size=args.scene_size, seed=0)
        test = make_demo_scene(tmp / "test", size=args.scene_size, seed=1)
        speed(args, tmp, scene)
        accuracy(args, tmp, scene, test)


if __name__ == "__main__":
    main()
