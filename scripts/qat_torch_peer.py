#!/usr/bin/python3
"""PyTorch's own QAT on a zoo model, as the peer of `lowbit qat` in scripts/qat_results.sh.

Same FP32 weights (the zoo's ONNX initializers, whose names are the PyTorch state_dict keys), same data (Fashion-MNIST
train, test for the accuracy), same batch size, optimizer (Adam), learning rate and cosine schedule, same number of
steps, same thread count. Quantization: torch.ao.quantization FX graph mode (prepare_qat_fx: Conv+BN(+ReLU) fused
into intrinsic QAT modules, BN statistics frozen as lowbit folds them), FakeQuantize with moving-average min-max
observers: weights per-channel symmetric, activations per-tensor affine (unsigned), the requested bit widths;
ranges observed on the calibration rows first. Prints one JSON line.

With --distill A the loss is (1 - A) * cross-entropy + A * KL(softmax(FP32 teacher) || softmax(student)) (temperature
1), as `lowbit qat --distill A`.

usage: qat_torch_peer.py MODEL W_BITS A_BITS STEPS [--batch 64] [--lr 1e-4] [--threads 2] [--calib 1000] [--seed 0]
                         [--distill A]
Runs with Debian's /usr/bin/python3 and python3-torch (1.13).
"""
import argparse, copy, json, math, os, sys, time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F
import torch.ao.quantization as tq
from torch.ao.quantization.quantize_fx import prepare_qat_fx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "zoo"))
import train_zoo  # noqa: E402  (the zoo's architectures and data loader)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("w", type=int)
    ap.add_argument("a", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distill", type=float, default=0.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = train_zoo.load("train")
    xte, yte = train_zoo.load("test")
    model = train_zoo.MODELS[a.model][0]()
    onnx_model = onnx.load(os.path.join(HERE, "..", "models", "zoo", a.model + ".onnx"))
    state = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx_model.graph.initializer}
    for n in onnx_model.graph.node:  # the exporter shares equal initializers through Identity nodes
        if n.op_type == "Identity" and n.input[0] in state:
            state[n.output[0]] = state[n.input[0]]
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        sys.exit("weights not found in the ONNX model: %s" % missing[:5])
    fp32 = train_zoo.evaluate(model, xte, yte)
    teacher = copy.deepcopy(model).eval() if a.distill > 0 else None

    act = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=2 ** a.a - 1,
                                    dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    wq = tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-(2 ** (a.w - 1)),
                                   quant_max=2 ** (a.w - 1) - 1, dtype=torch.qint8,
                                   qscheme=torch.per_channel_symmetric, ch_axis=0)
    mapping = tq.QConfigMapping().set_global(tq.QConfig(activation=act, weight=wq))
    model.train()
    mode = "fx"
    try:
        qat = prepare_qat_fx(model, mapping, example_inputs=(xtr[:2],))
    except Exception as e:  # models FX cannot trace (the ViT's attention): eager mode, module outputs and weights only
        print("FX tracing failed (%s): eager-mode QAT" % str(e).split(".")[0], file=sys.stderr)
        mode = "eager (Conv/Linear weights and module outputs; functional ops in float)"
        model.qconfig = tq.QConfig(activation=act, weight=wq)
        qat = tq.prepare_qat(model, inplace=False)
    qat.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
    # Ranges from the calibration rows (observers on, fake quantization off), then training with both on.
    g = torch.Generator().manual_seed(a.seed + 17)
    calib = xtr[torch.randperm(len(xtr), generator=g)[:a.calib]]
    qat.apply(tq.disable_fake_quant)
    with torch.no_grad():
        for i in range(0, len(calib), 100):
            qat(calib[i:i + 100])
    qat.apply(tq.enable_fake_quant)
    ptq = train_zoo.evaluate(qat, xte, yte)
    qat.train()
    qat.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
    opt = torch.optim.Adam(qat.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / a.steps))))
    perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(a.seed))
    per_epoch = len(xtr) // a.batch
    t0 = time.time()
    for s in range(a.steps):
        if s and s % per_epoch == 0:
            perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(a.seed + s))
        idx = perm[(s % per_epoch) * a.batch:(s % per_epoch + 1) * a.batch]
        logits = qat(xtr[idx])
        loss = F.cross_entropy(logits, ytr[idx])
        if teacher is not None:
            with torch.no_grad():
                soft = F.softmax(teacher(xtr[idx]), dim=1)
            kd = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
            loss = (1 - a.distill) * loss + a.distill * kd
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.time() - t0
    top1 = train_zoo.evaluate(qat, xte, yte)
    print(json.dumps({"model": a.model, "w": a.w, "a": a.a, "steps": a.steps, "batch": a.batch, "fp32_top1": round(fp32, 2),
                      "start_top1": round(ptq, 2), "top1": round(top1, 2),
                      "images_per_second": round(a.steps * a.batch / seconds, 1), "threads": a.threads, "mode": mode, "distill": a.distill,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
