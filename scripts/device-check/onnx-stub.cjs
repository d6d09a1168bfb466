// The GPU check's bundle carries no onnxruntime (native, per platform): the shipped models are
// vqguard bundles. An ONNX classifier fails loudly here.
const missing = () => {
  throw new Error('onnxruntime-node is not in the GPU check bundle (ONNX classifiers cannot run there)');
};
module.exports = { InferenceSession: { create: missing }, Tensor: missing };
