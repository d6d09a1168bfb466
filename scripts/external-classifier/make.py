#!/usr/bin/env python3
"""Train a small Fashion-MNIST classifier OUTSIDE vqguard and export it in three formats.

The model is an ordinary Keras (tf_keras, Keras 2 API) network trained with the TensorFlow
wheel the project already uses (tensorflow-cpu 2.21.0). It deliberately reads its input the way
many third-party models do, not the way vqguard's own classifier does:
  - input  `image`: float32 [N, 28, 28, 1], NHWC, pixel values in [0, 255] (not [0, 1]);
  - output `logits`: float32 [N, 10], raw logits (no softmax).
It is then written as
  savedmodel/      a TensorFlow SavedModel (signature serving_default), loaded by tfjs-node;
  tfjs-layers/     a TF.js Layers model (model.json + shards), by the tensorflowjs converter;
  tfjs-graph/      a TF.js Graph model (model.json + shards), converted from the SavedModel;
  model.onnx       ONNX (opset 13) by tf2onnx, with the input transposed to NCHW
                   (--inputs-as-nchw), so the ONNX fixture exercises the NCHW layout;
  reference.json   64 test images (uint8, base64) with Keras's probabilities for them, plus the
                   command, seed, accuracy and versions: the ground truth the TypeScript tests
                   compare every format against;
  */classifier.yaml declarations of how each format reads its input (see src/models/formats).

Usage (see README.md beside this file):
  python make.py --data /usr/share/datasets/fashion-mnist --out test/fixtures/external/fashion
"""
import argparse, base64, gzip, json, os, random, shutil, struct, subprocess, sys, time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = tf_keras (Keras 2), which tensorflowjs reads
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import sys as _sys, types as _types
# tensorflowjs imports tensorflow_decision_forests at module level (for TF-DF models only); no TF-DF
# build matches TF 2.21, and this script converts no TF-DF model, so an empty module stands in.
_sys.modules.setdefault("tensorflow_decision_forests", _types.ModuleType("tensorflow_decision_forests"))
# Likewise tensorflowjs.converters imports jax2tf at module level for JAX models; none is converted here.
if "jax" not in _sys.modules:
    try:
        import jax  # noqa: F401
    except ImportError:
        _jax, _exp = _types.ModuleType("jax"), _types.ModuleType("jax.experimental")
        _exp.jax2tf = _types.ModuleType("jax.experimental.jax2tf")
        _jax.experimental = _exp
        _sys.modules.update({"jax": _jax, "jax.experimental": _exp, "jax.experimental.jax2tf": _exp.jax2tf})

import numpy as np
import tensorflow as tf
import tf_keras as keras

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"make.py: {stem}(.gz) not found in {data}")


def build(seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((28, 28, 1), name="image")
    h = keras.layers.Rescaling(1.0 / 255.0)(inp)  # the model itself expects [0,255]
    h = keras.layers.Conv2D(16, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(32, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    out = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(inp, out, name="fashion_external")


def build_colour(seed, size):
    """32x32 RGB, input normalised per channel outside the model, softmax output."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inp)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    return keras.Model(inp, out, name="colour_external")


# kind: {file name: (format, path, layout)}
DECLARATIONS = {
    "fashion": {
        "tfjs-layers.yaml": ("tfjs-layers", "tfjs-layers/model.json", "NHWC"),
        "tfjs-graph.yaml": ("tfjs-graph", "tfjs-graph/model.json", "NHWC"),
        "savedmodel.yaml": ("savedmodel", "savedmodel", "NHWC"),
        "onnx.yaml": ("onnx", "model.onnx", "NCHW"),
    },
    "colour": {
        "tfjs-layers.yaml": ("tfjs-layers", "tfjs-layers/model.json", "NHWC"),
        "tfjs-graph.yaml": ("tfjs-graph", "tfjs-graph/model.json", "NHWC"),
        "savedmodel.yaml": ("savedmodel", "savedmodel", "NHWC"),
        "onnx.yaml": ("onnx", "model.onnx", "NHWC"),
    },
}


def write_declarations(out, tolerance=1e-4, kind="fashion", spec=None):
    """How each exported format reads its input (see src/models/formats/declaration.ts)."""
    spec = spec or {"size": 28, "channels": 1, "range": '"0-255"', "output": "logits", "output_name": "logits",
                     "what": "the Fashion-MNIST classifier"}
    for name, (fmt, path, layout) in DECLARATIONS[kind].items():
        with open(os.path.join(out, name), "w") as f:
            f.write(f"# {fmt} export of {spec['what']} made by scripts/external-classifier/make.py\n")
            f.write(f"format: {fmt}\npath: {path}\n")
            f.write(f"input: {{ height: {spec['size']}, width: {spec['size']}, channels: {spec['channels']}, layout: {layout}, range: {spec['range']}, name: image }}\n")
            f.write(f"output: {{ kind: {spec['output']}, name: {spec['output_name']} }}\n")
            f.write("classes: [" + ", ".join(spec.get("classes", CLASSES)) + "]\n")
            f.write(f"reference: {{ file: reference.json, tolerance: {tolerance} }}\n")


def read_folder(root, split, classes):
    from PIL import Image
    xs, ys = [], []
    for c, name in enumerate(classes):
        d = os.path.join(root, split, name)
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".png"):
                xs.append(np.asarray(Image.open(os.path.join(d, fn)).convert("RGB"), dtype=np.uint8))
                ys.append(c)
    return np.stack(xs), np.array(ys, dtype=np.int64)


def export(model, out, size, channels, output_name, onnx_nchw, ref_u8, ref_in, ref_labels, probs, meta, kind, decl_spec):
    """Write SavedModel, TF.js Layers + Graph, ONNX, reference.json and the declarations."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    # An uncompiled copy: the exported files carry the weights, not the optimizer's slots.
    trained = model
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    sm = os.path.join(out, "savedmodel")
    @tf.function(input_signature=[tf.TensorSpec([None, size, size, channels], tf.float32, name="image")])
    def serve(image):
        return {output_name: model(image, training=False)}
    tf.saved_model.save(model, sm, signatures={"serving_default": serve})

    import tensorflowjs as tfjs
    tfjs.converters.save_keras_model(model, os.path.join(out, "tfjs-layers"))
    tfjs.converters.convert_tf_saved_model(sm, os.path.join(out, "tfjs-graph"), signature_def="serving_default",
                                           saved_model_tags="serve")

    onnx_path = os.path.join(out, "model.onnx")
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", sm, "--output", onnx_path,
           "--opset", "13", "--signature_def", "serving_default"]
    if onnx_nchw:
        cmd += ["--inputs-as-nchw", "image:0"]
    subprocess.run(cmd, check=True)

    import onnx, tf2onnx, tensorflowjs
    n = len(ref_u8)
    ref = {
        **meta,
        "command": "python scripts/external-classifier/make.py " + " ".join(sys.argv[1:]),
        "versions": {"tensorflow": tf.__version__, "tf_keras": keras.__version__, "tensorflowjs": tensorflowjs.__version__,
                     "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "numpy": np.__version__},
        "n": n, "height": size, "width": size, "channels": channels,
        "labels": ref_labels.tolist(),
        "images": base64.b64encode(ref_u8.tobytes()).decode("ascii"),
        "probabilities": [[float(v) for v in row] for row in probs],
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")
    try:  # cross-check with onnxruntime's Python package when it is installed
        import onnxruntime as ort
        s = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        x = np.transpose(ref_in, (0, 3, 1, 2)) if onnx_nchw else ref_in
        o = s.run(None, {s.get_inputs()[0].name: x})[0]
        p = o if decl_spec and decl_spec["output"] == "probabilities" else tf.nn.softmax(o).numpy()
        print(f"onnxruntime (python) max |dp| vs keras: {np.abs(p - probs).max():.2e}")
    except ImportError:
        pass
    write_declarations(out, kind=kind, spec=decl_spec)
    print("wrote", out)


def main_colour(a):
    """A classifier for scripts/colour-dataset's fashion-on-photos folder tree."""
    xtr, ytr = read_folder(a.folder, "train", CLASSES)
    xva, yva = read_folder(a.folder, "val", CLASSES)
    xte, yte = read_folder(a.folder, "test", CLASSES)
    size = xtr.shape[1]
    x01 = xtr.astype(np.float32) / 255.0
    mean = x01.reshape(-1, 3).mean(0)
    std = x01.reshape(-1, 3).std(0)
    mean = np.round(mean, 4).astype(np.float32)
    std = np.round(std, 4).astype(np.float32)
    norm = lambda x: ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)
    model = build_colour(a.seed, size)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.time()
    model.fit(norm(xtr), ytr, epochs=a.epochs, batch_size=128, validation_data=(norm(xva), yva), verbose=2, shuffle=True)
    train_s = time.time() - t0
    _, acc = model.evaluate(norm(xte), yte, verbose=0)
    print(f"test accuracy {acc:.4f} ({train_s:.0f}s training)")
    n = a.reference
    probs = model(norm(xte[:n]), training=False).numpy()
    meta = {"about": f"fashion-on-photos test images 0..n-1 (uint8 NHWC {size}x{size}x3, base64) and the source Keras model's probabilities",
            "seed": a.seed, "epochs": a.epochs, "testAccuracy": float(acc), "trainSeconds": round(train_s, 1), "classes": CLASSES,
            "trainSize": int(len(xtr)), "mean": mean.tolist(), "std": std.tolist()}
    rng = "{ mean: [" + ", ".join(f"{v:.4f}" for v in mean) + "], std: [" + ", ".join(f"{v:.4f}" for v in std) + "] }"
    decl = {"size": size, "channels": 3, "range": rng, "output": "probabilities", "output_name": "probs",
            "what": "the fashion-on-photos (32x32 RGB) classifier"}
    export(model, a.out, size, 3, "probs", False, xte[:n], norm(xte[:n]), yte[:n], probs, meta, "colour", decl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["fashion", "colour"], default="fashion")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--folder", default="datasets/fashion-on-photos", help="--kind colour: the folder tree of scripts/colour-dataset")
    ap.add_argument("--out", default="test/fixtures/external/fashion")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reference", type=int, default=64, help="test images kept with reference probabilities")
    a = ap.parse_args()
    random.seed(a.seed)
    np.random.seed(a.seed)
    if a.kind == "colour":
        return main_colour(a)

    xtr = read_idx(find(a.data, "train-images-idx3-ubyte")).astype(np.float32)[..., None]
    ytr = read_idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64)
    xte = read_idx(find(a.data, "t10k-images-idx3-ubyte")).astype(np.float32)[..., None]
    yte = read_idx(find(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64)

    model = build(a.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    t0 = time.time()
    model.fit(xtr, ytr, epochs=a.epochs, batch_size=128, validation_split=0.1, verbose=2, shuffle=True)
    train_s = time.time() - t0
    _, acc = model.evaluate(xte, yte, verbose=0)
    print(f"test accuracy {acc:.4f} ({train_s:.0f}s training)")

    n = a.reference
    probs = tf.nn.softmax(model(xte[:n], training=False)).numpy()
    meta = {"about": "Fashion-MNIST test images 0..n-1 (uint8 NHWC 28x28x1, base64) and the source Keras model's softmax probabilities",
            "seed": a.seed, "epochs": a.epochs, "testAccuracy": float(acc), "trainSeconds": round(train_s, 1), "classes": CLASSES}
    export(model, a.out, 28, 1, "logits", True, xte[:n].astype(np.uint8), xte[:n], yte[:n], probs, meta, "fashion", None)


if __name__ == "__main__":
    main()
