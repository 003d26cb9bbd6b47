#!/usr/bin/python3
"""Trains the reference FP32 model zoo on Fashion-MNIST and exports each model to ONNX (opset 13).

Run with Debian's own interpreter and python3-torch (fixed seeds):
    /usr/bin/python3 models/zoo/train_zoo.py [resnet mobilenetv2 vit inception]
Writes models/zoo/<name>.onnx and models/zoo/<name>.train.json (PyTorch test accuracy, epochs, seconds).
BatchNormalization nodes are kept unfolded (BN-based range setting and bias correction need them).
Inputs are images scaled to [0, 1], shape [batch, 1, 28, 28]; outputs are logits [batch, 10].
"""
import gzip, json, math, os, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = struct.unpack(">I", raw[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x[:, None].copy()), torch.from_numpy(y.copy())


# ---------------- architectures ----------------

def conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = conv_bn(cin, cout, 3, stride)
        self.c2 = conv_bn(cout, cout, 3, 1, act=None)
        self.short = None if (stride == 1 and cin == cout) else conv_bn(cin, cout, 1, stride, act=None)

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return F.relu(self.c2(self.c1(x)) + s)


class ResNet(nn.Module):
    """ResNet-style: basic blocks with BN and residual Adds, 4 stages (28 -> 28 -> 14 -> 7 -> 4)."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = conv_bn(1, widths[0], 3)
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks.append(BasicBlock(cin, w, stride))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [] if t == 1 else [conv_bn(cin, hidden, 1, act=nn.ReLU6)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn(hidden, cout, 1, act=None)]  # linear bottleneck
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """MobileNetV2-style: inverted residuals, depthwise 3x3, ReLU6, BN, linear bottlenecks."""

    def __init__(self):
        super().__init__()
        settings = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 2, 1)]
        layers, cin = [conv_bn(1, 32, 3, stride=2, act=nn.ReLU6)], 32  # 28 -> 14 -> 7 -> 4
        for t, c, n, s in settings:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 320, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(320, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * (self.hd ** -0.5), dim=-1)
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.n1, self.att = nn.LayerNorm(dim), Attention(dim, heads)
        self.n2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.att(self.n1(x))
        return x + self.mlp(self.n2(x))


class ViT(nn.Module):
    """Small hybrid transformer encoder: a 3x3 convolution stem (local features a 7x7 patch embedding alone
    throws away; a plain 7x7 patch embedding stopped at 87.3% in 12 epochs), then a 7x7 patch embedding
    (16 tokens), LayerNorm, multi-head attention through MatMul/Softmax, GELU MLP, residuals, mean pooling
    over tokens."""

    def __init__(self, dim=96, depth=4, heads=4, mlp=192):
        super().__init__()
        self.patch = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, dim, 7, 7))
        self.pos = nn.Parameter(torch.zeros(1, 16, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        x = self.norm(self.blocks(x))
        return self.fc(x.mean(dim=1))


class InceptionModule(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b3 = nn.Sequential(conv_bn(cin, c3r, 1), conv_bn(c3r, c3, 3))
        self.b5 = nn.Sequential(conv_bn(cin, c5r, 1), conv_bn(c5r, c5, 3), conv_bn(c5, c5, 3))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, cp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class Inception(nn.Module):
    """Inception-style: parallel 1x1 / 3x3 / double-3x3 / pool branches joined by Concat."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 32, 3), nn.MaxPool2d(2), conv_bn(32, 64, 3))  # 28 -> 14
        self.i1 = InceptionModule(64, 32, 32, 48, 16, 24, 24)     # -> 128
        self.i2 = InceptionModule(128, 48, 48, 64, 24, 32, 32)    # -> 176
        self.i3 = InceptionModule(176, 64, 64, 96, 32, 48, 48)    # -> 256
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.i1(self.stem(x)), 2)  # 14 -> 7
        x = self.i3(self.i2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {  # name: (constructor, epochs, peak lr, weight decay)
    "resnet": (ResNet, 8, 3e-3, 5e-4),
    "mobilenetv2": (MobileNetV2, 8, 4e-3, 1e-4),
    "vit": (ViT, 30, 2e-3, 5e-2),
    "inception": (Inception, 8, 3e-3, 5e-4),
}


def augment(x):
    # Random horizontal flips and random shifts of up to 2 pixels (one shift per batch), deterministic by seed.
    flip = torch.rand(x.shape[0]) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dx, dy = torch.randint(-2, 3, (2,)).tolist()
    return torch.roll(F.pad(x, (2, 2, 2, 2)), (dy, dx), (2, 3))[:, :, 2:30, 2:30]


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return (pred == y).float().mean().item() * 100


def train(name, xtr, ytr, xte, yte):
    ctor, epochs, lr, wd = MODELS[name]
    epochs = int(os.environ.get("EPOCHS", epochs))
    torch.manual_seed(0)
    model = ctor()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps = epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(len(xtr) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            loss = F.cross_entropy(model(augment(xtr[idx])), ytr[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"{name} epoch {ep + 1}/{epochs}: loss {loss.item():.4f}, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    acc = evaluate(model, xte, yte)
    print(f"{name}: PyTorch test top-1 {acc:.2f}%", file=sys.stderr, flush=True)
    path = os.path.join(HERE, f"{name}.onnx")
    torch.onnx.export(model, xte[:1], path, opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE)
    info = {"model": f"{name}.onnx", "pytorch_top1_percent": round(acc, 2), "epochs": epochs,
            "train_seconds": round(time.time() - t0), "parameters": sum(p.numel() for p in model.parameters()),
            "torch_version": torch.__version__, "seed": 0}
    with open(os.path.join(HERE, f"{name}.train.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


def main():
    names = sys.argv[1:] or list(MODELS)
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count() or 1)))
    xtr, ytr = load("train")
    xte, yte = load("test")
    for n in names:
        train(n, xtr, ytr, xte, yte)


if __name__ == "__main__":
    main()
