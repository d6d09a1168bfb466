export * from './declaration.ts';
export * from './types.ts';
export * from './preprocess.ts';
export { loadClassifier, loadClassifierFile, readReference, compareToReference, type CheckedClassifier, type ReferenceCheck, type ReferenceSet } from './load.ts';
export { bundleDeclaration, classifierModel } from './vqguard/index.ts';
export { tfjsKind } from './tfjs/index.ts';
export { resolveClassifierSpec, declarationTemplate, declarationCandidates } from './spec.ts';
