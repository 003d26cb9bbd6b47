#!/usr/bin/python3
"""Trains the bundled default model (a small Fashion-MNIST CNN with BatchNorm) and exports it to ONNX.

Run with Debian's own interpreter and python3-torch:  /usr/bin/python3 models/train_small_cnn.py
Writes models/fashion_cnn.onnx, models/fashion_cnn.json (accuracy measured by PyTorch) and
models/fashion_sample.npy / fashion_sample_labels.npy (the first 16 test images, for `lowbit run`).
"""
import json, os, sys
import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))


sys.path.insert(0, os.path.join(HERE, "zoo"))
from train_zoo import load  # noqa: E402  (Fashion-MNIST from Debian's dataset-fashion-mnist, scaled to [0, 1])


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def main():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    xtr, ytr = load("train")
    xte, yte = load("test")
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    epochs = int(os.environ.get("EPOCHS", "3"))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (len(xtr) // 128))
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(len(xtr) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {ep}: loss {loss.item():.4f}", file=sys.stderr)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xte[i:i + 1000]).argmax(1) for i in range(0, len(xte), 1000)])
    acc = (pred == yte).float().mean().item() * 100
    print(f"test top-1: {acc:.2f}%", file=sys.stderr)
    onnx_path = os.path.join(HERE, "fashion_cnn.onnx")
    torch.onnx.export(model, xte[:1], onnx_path, opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE)
    np.save(os.path.join(HERE, "fashion_sample.npy"), xte[:16].numpy())
    np.save(os.path.join(HERE, "fashion_sample_labels.npy"), yte[:16].numpy())
    with open(os.path.join(HERE, "fashion_cnn.json"), "w") as f:
        json.dump({"model": "fashion_cnn.onnx", "dataset": "fashion-mnist:test", "epochs": epochs,
                   "pytorch_top1_percent": round(acc, 2), "torch_version": torch.__version__}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
