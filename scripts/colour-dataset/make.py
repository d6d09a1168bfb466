#!/usr/bin/env python3
"""Fashion-on-photos: a 32x32 RGB, 10-class image set written as a `folder:` tree.

What it is: each image is one Fashion-MNIST item (its class is the label), scaled to 18-30 px,
tinted with a random colour and shaded by the item's own grey levels, alpha-composited at a random
place onto a random crop (random scale) of one of the colour photographs that scikit-image ships
(astronaut, chelsea, coffee, hubble_deep_field, ihc, motorcycle_left, retina, rocket). Training and
validation images use the left three quarters of each photograph and Fashion-MNIST's training
items; test images use the right quarter and Fashion-MNIST's test items, so no test background
pixel or item was seen in training.

What it is not: natural colour photographs of objects. The class is in the item's shape only;
its colour is random by design (it carries no label information), and the backgrounds come from
eight photographs. It is a colour, cluttered, non-28x28 test bed built from real material that
the package registries carry, not a stand-in for CIFAR or ImageNet.

Deterministic: the same --seed and counts give the same files.

  python make.py --fashion /usr/share/datasets/fashion-mnist --out datasets/fashion-on-photos
  python make.py --train 30 --val 10 --test 10 --out test/fixtures/colour-folder   # the committed fixture
"""
import argparse, gzip, os, shutil, struct

import numpy as np
from PIL import Image
import skimage.data as skd

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
PHOTOS = ["astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "motorcycle_left", "retina", "rocket"]


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_photo(name):
    if name == "motorcycle_left":
        img = skd.stereo_motorcycle()[0]
    else:
        img = getattr(skd, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return img[..., :3].astype(np.uint8)


def hsv_colour(rng):
    h, s, v = rng.random(), 0.5 + 0.5 * rng.random(), 0.6 + 0.4 * rng.random()
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def compose(rng, item, photo, region, size):
    """One image: item (28x28 uint8) tinted and pasted onto a crop of photo[:, region]."""
    h, w = photo.shape[:2]
    x0, x1 = region
    side = int(rng.integers(48, min(h, x1 - x0, 200) + 1))
    cy = int(rng.integers(0, h - side + 1))
    cx = int(rng.integers(x0, x1 - side + 1))
    bg = Image.fromarray(photo[cy : cy + side, cx : cx + side]).resize((size, size), Image.BILINEAR)
    bg = np.asarray(bg, dtype=np.float32) / 255.0
    s = int(rng.integers(int(size * 0.56), int(size * 0.94) + 1))
    it = np.asarray(Image.fromarray(item).resize((s, s), Image.BILINEAR), dtype=np.float32) / 255.0
    oy = int(rng.integers(0, size - s + 1))
    ox = int(rng.integers(0, size - s + 1))
    alpha = np.clip(it * 1.6, 0, 1)[..., None]
    shade = (0.35 + 0.65 * it)[..., None] * hsv_colour(rng)[None, None, :]
    out = bg.copy()
    out[oy : oy + s, ox : ox + s] = bg[oy : oy + s, ox : ox + s] * (1 - alpha) + shade * alpha
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="datasets/fashion-on-photos")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2024)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)

    def fm(stem):
        for n in (stem + ".gz", stem):
            p = os.path.join(a.fashion, n)
            if os.path.exists(p):
                return read_idx(p)
        raise SystemExit(f"{stem} not found in {a.fashion}")

    xtr, ytr = fm("train-images-idx3-ubyte"), fm("train-labels-idx1-ubyte")
    xte, yte = fm("t10k-images-idx3-ubyte"), fm("t10k-labels-idx1-ubyte")
    photos = [load_photo(n) for n in PHOTOS]
    by_class_tr = [np.flatnonzero(ytr == c) for c in range(10)]
    by_class_te = [np.flatnonzero(yte == c) for c in range(10)]

    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    for split, n, items, by_class, test in (("train", a.train, xtr, by_class_tr, False), ("val", a.val, xtr, by_class_tr, False),
                                            ("test", a.test, xte, by_class_te, True)):
        for c in CLASSES:
            os.makedirs(os.path.join(a.out, split, c), exist_ok=True)
        for i in range(n):
            c = i % 10  # balanced classes
            idx = int(rng.choice(by_class[c]))
            p = photos[int(rng.integers(0, len(photos)))]
            w = p.shape[1]
            region = (int(w * 0.75), w) if test else (0, int(w * 0.75))
            img = compose(rng, items[idx], p, region, a.size)
            Image.fromarray(img).save(os.path.join(a.out, split, CLASSES[c], f"{i:05d}.png"), optimize=True)
    with open(os.path.join(a.out, "README.txt"), "w") as f:
        f.write(__doc__.split("Deterministic")[0].strip() + "\n\n")
        f.write(f"Made by scripts/colour-dataset/make.py --train {a.train} --val {a.val} --test {a.test} --size {a.size} --seed {a.seed}\n")
    print(f"wrote {a.out}: {a.train}/{a.val}/{a.test} images of {a.size}x{a.size} RGB")


if __name__ == "__main__":
    main()
